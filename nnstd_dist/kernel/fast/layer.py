"""One layer of the fast rule: phase 1, the objectives, individualisation until only twins are tied, then the leftovers.

See the package docstring for the rule and why it is label-free; ``choose_layer`` is its step-by-step form.
"""

from __future__ import annotations

import math

import numpy as np

from . import graph
from .dense_counts import build_dense, dense_is_cheaper
from .leftovers import leftover_runs
from .part import Cell, pick_cell, untwinned_rows, without
from .phase_one import phase_one
from .scc import flexible_part
from .ties import EMPTY, LIMIT, narrow

__all__ = ["choose_layer"]


def _check_width(n: int) -> None:
    if 4 * n * int(graph.EXIT) >= LIMIT:
        raise OverflowError(f"a layer of {n:,} neurons is too wide for the fast solver's integer costs (at most {LIMIT // 2**44:,})")


def choose_layer(state, k: int, rowmap: np.ndarray, algorithm: str = "auto") -> tuple[np.ndarray, float]:
    """(order, distance) of layer k: B's neuron order[i] is matched to A's neuron i; ``rowmap[r]``: B's row at A's row r.
    ``state`` (pair.PairState) holds both networks, their current colours and the certificate; choices update it."""
    a, b = state.a.layers[k], state.b.layers[k]
    n = a.n_out
    _check_width(n)
    n_in = state.a.masks[k].shape[0]
    if a.dense is not None and b.dense is not None and dense_is_cheaper(n_in, n, n, a.t_idx.size, b.t_idx.size):
        e_ptr, indptr, indices, cost, c = build_dense(a.dense, b.dense, rowmap, a.degree, b.degree)  # the same graph, faster
    else:
        e_ptr, indptr, indices, cost, c = graph.build(a.t_ptr, a.t_idx, b.ptr, b.idx, rowmap, a.degree, b.degree)
    row_match, u, v = phase_one(indptr, indices, cost, 2 * n, algorithm)
    result = row_match.copy()
    part = flexible_part(indptr, indices, cost, u, v, row_match, 2 * n)
    while part[0].size:
        colour_a, colour_b = state.colours_a[k], state.colours_b[k]
        part = narrow(*part, indptr, indices, a.key1, colour_a, b.key1, colour_b, result)
        if part[0].size == 0:
            break
        open_rows = untwinned_rows(part, state.a.twins[k], state.b.twins[k], n)
        if not open_rows.any():
            break  # only twins are tied: any choice gives the same values
        cell = pick_cell(part, open_rows, colour_a, colour_b, n)
        state.individualise(k, cell)
        result[cell.i] = cell.j
        part = without(part, cell.i, cell.j)
    order = _pair_leftovers(state, k, result, a.key1, b.key1)
    paid = graph.pair_costs(indptr, indices, e_ptr, c, result, order, a.key1, b.key1, EMPTY)
    return order, math.fsum(paid.tolist()) / n


def _pair_leftovers(state, k: int, result: np.ndarray, key1_a: np.ndarray, key1_b: np.ndarray) -> np.ndarray:
    n = key1_a.size
    order = np.where(result < n, result, -1)
    taken = np.zeros(n, bool)
    taken[order[order >= 0]] = True
    free_a, free_b = np.flatnonzero(order < 0), np.flatnonzero(~taken)
    while free_a.size:
        in_a, in_b, p, cell_a, cell_b = leftover_runs(free_a, free_b, key1_a, state.colours_a[k], state.a.twins[k],
                                                      key1_b, state.colours_b[k], state.b.twins[k])
        if p == free_a.size:
            order[in_a] = in_b
            break
        i, j = int(in_a[p]), int(in_b[p])
        state.individualise(k, Cell(i, j, cell_a, cell_b, False))
        order[i] = j
        free_a, free_b = free_a[free_a != i], free_b[free_b != j]
    return order
