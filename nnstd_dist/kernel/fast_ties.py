"""Steps 2-4 of the fast solver's rule (see fast.py): which optimal matching, chosen without neuron indices.

``canonical`` narrows the optimal matchings objective after objective -- squared rank distance, a hash
of the two colours, and (only for twins) a hash of the two indices -- each time solving again only
the part where optimal matchings still differ (fast_scc.flexible_part). ``pair_leftovers`` pairs the
neurons left unmatched in sorted key order.
"""

from __future__ import annotations

import math

import numpy as np

from . import fast_graph as graph
from .fast_jv import solve
from .fast_scc import flexible_part

__all__ = ["LIMIT", "Objectives", "canonical", "pair_leftovers"]

LIMIT = 2**62  # 4 x rows x the largest |cost| stays below this: the solver's duals and path sums fit int64
HASH_RANGE = 2**40  # range of the hashes that break the ties the ranks leave


def _dense_ranks(keys: list[np.ndarray]) -> np.ndarray:
    """Dense ranks of the rows of ``keys`` (columns: in-degree, out-degree, colour): equal rank iff equal key."""
    order = np.lexsort(keys[::-1])
    new = np.zeros(order.size, dtype=np.int64)
    for key in keys:
        new[1:] |= np.diff(key[order]) != 0
    rank = np.empty(order.size, dtype=np.int64)
    rank[order] = np.cumsum(new)
    return rank


class Objectives:
    """The tie-break objectives of one layer as int64 costs of its graph's edges (0 on exits)."""

    def __init__(self, indptr, indices, key_a, key_b):
        self.indptr, self.indices, self.key_a, self.key_b = indptr, indices, key_a, key_b
        self.n = key_a[0].size

    def _ends(self, edges):
        rows, cols = graph.rows_of(self.indptr, edges), self.indices[edges]
        real = cols < self.n
        return rows[real], cols[real]

    def ranks(self, edges, cap):
        """(r_A(i) - r_B(j))^2, ranks of the keys among the neurons these edges touch (scaled down to at most sqrt(cap))."""
        rows, cols = self._ends(edges)
        touched_a, touched_b = np.unique(rows), np.unique(cols)
        keys = [np.concatenate([ka[touched_a], kb[touched_b]]) for ka, kb in zip(self.key_a, self.key_b)]
        dense = _dense_ranks(keys)
        top, room = int(dense.max(initial=0)), math.isqrt(cap)
        if top > room:  # very many tied neurons: coarser ranks (ties among them fall to the hash that follows)
            dense = dense * room // top
        rank_a, rank_b = np.zeros(self.n, np.int64), np.zeros(self.n, np.int64)
        rank_a[touched_a], rank_b[touched_b] = dense[: touched_a.size], dense[touched_a.size:]
        return graph.tie_costs(self.indptr, self.indices, edges, rank_a, rank_b, self.key_a[2], self.key_b[2], 1, 0)

    def colours(self, edges, cap):
        """A hash of the two colours, 40 bits (fewer if cap is lower)."""
        zero = np.zeros(self.n, np.int64)
        return graph.tie_costs(self.indptr, self.indices, edges, zero, zero, self.key_a[2], self.key_b[2], 0, _hash_range(cap))

    def indices_hash(self, edges, cap):
        """A hash of the two neurons' indices, 40 bits (fewer if cap is lower): twins only."""
        return graph.index_costs(self.indptr, self.indices, edges, _hash_range(cap))


def _hash_range(cap: int) -> int:
    return min(HASH_RANGE, 1 << max(0, cap.bit_length() - 1))


def _narrow(problem, objective):
    """Among the optimal matchings of ``problem``, one that minimises ``objective``; the narrowed problem, or None.

    problem = (indptr, indices, cost, n_cols, u, v, row_match, rows, edges): a graph over compact ids, its optimum,
    its duals, and its rows' and edges' ids in the layer's graph."""
    indptr, indices, cost, n_cols, u, v, row_match, rows, edges = problem
    sub_rows, cols, sub_ptr, sub_idx, kept, must = flexible_part(indptr, indices, cost, u, v, row_match, n_cols)
    if not sub_rows.size:
        return None
    full_edges = edges[kept]
    # costs <= cap, so that with the bonus below every sum the solver forms stays within LIMIT
    costs = objective(full_edges, LIMIT // (8 * (sub_rows.size + 1) ** 2))
    if must.any():  # columns every optimal matching covers: a bonus above any sum of costs keeps them covered
        costs = costs - (int(costs.max()) * sub_rows.size + 1) * must[sub_idx]
    sub_match, u2, v2 = solve(sub_ptr, sub_idx, costs, cols.size)
    return sub_ptr, sub_idx, costs, cols.size, u2, v2, sub_match, rows[sub_rows], full_edges


def canonical(indptr, indices, cost, duals, row_match, objectives: Objectives, twins: bool) -> np.ndarray:
    """Steps 2 and 4: the matching chosen among the optimal ones (row -> column of the layer's graph)."""
    problem = (indptr, indices, cost, 2 * (indptr.size - 1), *duals, row_match, np.arange(indptr.size - 1), np.arange(indices.size))
    row_match = row_match.copy()
    steps = [objectives.ranks, objectives.colours] + ([objectives.indices_hash] if twins else [])
    for objective in steps:
        narrowed = _narrow(problem, objective)
        if narrowed is None:
            break
        problem = narrowed
        sub_ptr, sub_idx, _, _, _, _, sub_match, rows, full_edges = problem
        row_match[rows] = indices[full_edges[graph.matched_edge(sub_ptr, sub_idx, sub_match)]]
    return row_match


def pair_leftovers(order: np.ndarray, key_a, key_b, empty_a: np.ndarray, empty_b: np.ndarray) -> int:
    """Step 3: neurons left unmatched (order -1 in A; in B, those no A neuron holds), paired in sorted order of
    (has inputs, in-degree, out-degree, colour), index last; fills ``order`` and returns how many pairs cost 1."""
    free_a = np.flatnonzero(order < 0)
    if not free_a.size:
        return 0
    taken = np.zeros(order.size, dtype=bool)
    taken[order[order >= 0]] = True
    free_b = np.flatnonzero(~taken)
    free_a = free_a[np.lexsort((free_a, key_a[2][free_a], key_a[1][free_a], key_a[0][free_a], ~empty_a[free_a]))]
    free_b = free_b[np.lexsort((free_b, key_b[2][free_b], key_b[1][free_b], key_b[0][free_b], ~empty_b[free_b]))]
    order[free_a] = free_b
    return int(np.count_nonzero(~(empty_a[free_a] & empty_b[free_b])))
