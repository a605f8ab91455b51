"""One NNSTD layer's assignment from the sparse graph of neuron pairs that share inputs: plain numpy/scipy.

With C[j1, j2] = |N_A(j1) ^ N_B(j2)| / |N_A(j1) | N_B(j2)| (see kernel.py), C < 1 exactly where the two
neurons share an input (I > 0), C = 0 for two neurons without inputs, and C = 1 everywhere else. Two
neurons left unmatched by a partial matching M can always be paired at cost 1, so

    min over permutations pi of sum_j C[j, pi(j)]  =  min over matchings M of  sum_{M} C  +  (n - |M|)

where M uses only the edges with C < 1 (~3 % of the n x n pairs of the paper's layers). The right-hand
side is a full matching of the n x 2n graph [E | D]: E holds those edges, D one "stay unmatched" edge per
row at cost 1 (its own column n + j1); a row on D leaves a column of B free, which costs nothing more since
the row already paid 1. scipy's ``min_weight_full_bipartite_matching`` (LAPJVsp) solves it; its weights
must be non-zero, so every edge weighs 1 more (all n rows are matched: the optimum is unchanged).

Ties. The optimal cost is unique, the matching is not: costs are ratios of small integers, so many
neurons have several equally good partners, and the pick decides the rows of the next layer (B_k+1[pi]).
The rule here: among optimal matchings, keep as many neurons as possible at their own index (j -> j).
That is what scipy's dense solver does in practice (it kept 99.7 % of neurons in place in the paper's
epoch-0 layers, whose runs share an initial topology, so index j is the same neuron in every run), and for
networks whose indices mean nothing it is as valid as any other tie choice. It is enforced by a bonus of
``IN_PLACE_BONUS`` = 2^-42 on every edge (j, j); it can cost at most that much per neuron, so a layer's
distance stays within 2.3e-13 of the exact optimum. Neurons left unmatched (cost 1 with every free
partner) follow the same rule: a neuron whose own index is free keeps it, the others pair in index order.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import min_weight_full_bipartite_matching

__all__ = ["IN_PLACE_BONUS", "sparse_assignment"]

IN_PLACE_BONUS = 2.0**-42  # >> the 2^-52 spacing of weights in [1, 2], << the 1e-12 layer-0 tolerance


def sparse_assignment(
    a: sp.csr_matrix, b: sp.csr_matrix, deg_a: np.ndarray, deg_b: np.ndarray
) -> tuple[np.ndarray, float]:
    """(order, total): B's column order[j] is matched to A's column j, and total = sum_j C[j, order[j]]."""
    n = a.shape[1]
    if b.shape[1] != n:
        raise ValueError(f"the sparse solver needs square layers' outputs: {n} and {b.shape[1]} columns")
    rows, cols, cost = _edges(a, b, deg_a, deg_b)
    match = _match(rows, cols, cost, n)
    on_edge = match[rows] == cols  # the edge each matched row took (at most one per row: no duplicate edges)
    order = np.full(n, -1, dtype=np.intp)
    order[rows[on_edge]] = cols[on_edge]
    total = float(cost[on_edge].sum())
    left = _place_leftovers(order)
    return order, total + left


def _edges(a, b, deg_a, deg_b) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pairs (j1, j2) with C < 1, grouped by j1, and their costs: the same float64 division as the exact mode."""
    inter = (a.T.tocsr() @ b).tocsr()  # I = A^T B as CSR: csr @ csr is scipy's fastest product
    counts = np.diff(inter.indptr)
    rows = np.repeat(np.arange(inter.shape[0], dtype=np.intp), counts)
    cols = inter.indices.astype(np.intp, copy=False)
    i = inter.data
    union = deg_a[rows] + deg_b[cols] - i
    cost = (union - i) / union
    empty_a, empty_b = np.flatnonzero(deg_a == 0), np.flatnonzero(deg_b == 0)
    if len(empty_a) and len(empty_b):  # two neurons without inputs: cost 0; such rows have no other edge
        rows = np.concatenate([rows, np.repeat(empty_a, len(empty_b))])
        cols = np.concatenate([cols, np.tile(empty_b, len(empty_a))])
        cost = np.concatenate([cost, np.zeros(len(empty_a) * len(empty_b))])
    return rows, cols, cost


def _match(rows: np.ndarray, cols: np.ndarray, cost: np.ndarray, n: int) -> np.ndarray:
    """match[j1] = the column row j1 takes in the n x 2n graph [E | D]; >= n means unmatched."""
    # Rectangular, not the square 2n x 2n form with dummy rows: on the square form scipy's LAPJVsp runs
    # its augmenting row reduction, which was slower here and did not finish on one of the paper's layers
    # (float ties cycling); the rectangular form goes straight to shortest augmenting paths.
    weight = cost + 1.0
    weight[rows == cols] -= IN_PLACE_BONUS
    own = np.arange(n, dtype=np.intp)  # row j1's "unmatched" column n + j1, at cost 1 (+ 1)
    graph = sp.csr_array(
        (np.concatenate([weight, np.full(n, 2.0)]), (np.concatenate([rows, own]), np.concatenate([cols, n + own]))),
        shape=(n, 2 * n),
    )
    _, match = min_weight_full_bipartite_matching(graph)
    return match


def _place_leftovers(order: np.ndarray) -> int:
    """Give every unmatched row (order -1) a free column: its own index if free, else in index order. Returns their count."""
    n = len(order)
    free_rows = np.flatnonzero(order < 0)
    if not len(free_rows):
        return 0
    taken = np.zeros(n, dtype=bool)
    taken[order[order >= 0]] = True
    keep = free_rows[~taken[free_rows]]  # rows whose own column is free keep it
    order[keep] = keep
    taken[keep] = True
    rest = np.flatnonzero(order < 0)
    order[rest] = np.flatnonzero(~taken)
    return len(free_rows)
