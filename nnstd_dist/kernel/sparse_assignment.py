"""One NNSTD layer's assignment from the sparse graph of neuron pairs that share inputs: plain numpy/scipy.

With C[j1, j2] = |N_A(j1) ^ N_B(j2)| / |N_A(j1) | N_B(j2)| (see distance.py), C < 1 exactly where the two
neurons share an input (I = (A^T B)[j1, j2] > 0), C = 0 for two neurons without inputs, and C = 1 everywhere
else. Two neurons left unmatched by a partial matching M can always be paired at cost 1, so

    min over permutations pi of sum_j C[j, pi(j)]  =  min over matchings M of  sum_{M} C  +  (n - |M|)

where M uses only the pairs with C < 1 (~3 % of the n x n pairs of the paper's layers). Neurons without
inputs only pair with each other at C < 1 (at 0), so they are matched in closed form, and the rest is a
full matching of the 2n x 2n graph

    [ E  D_A ]     E:   the pairs that share inputs, at C          D_A: row j1 -> its own column n + j1,
    [ D_B  E']          (A's neuron j1 left unmatched, cost 1)      D_B: row n + j2 -> column j2 (B's neuron
                                                                         j2 left unmatched, cost 0)

with E' the pattern of E transposed at cost 0 (row n + j2 -> column n + j1 for every pair (j1, j2) in E),
which pairs up the dummies that a matching M leaves over. scipy's ``min_weight_full_bipartite_matching``
(LAPJVsp) solves it. It is square so that LAPJVsp runs its column reduction and augmenting row reduction
first; on the paper's layers those settle most rows, and few shortest augmenting paths remain (the
n x 2n form, without dummy rows, skips them: it took about twice as long on the epoch-190 layers). Each
dummy edge comes first in its row, so scipy's feasibility check (Hopcroft-Karp) finds the all-dummy
perfect matching at once.

Weights are integers: C on a grid of 2^-42 (``GRID``), plus 1 (LAPJVsp needs non-zero weights; every
row is matched once, so the shift changes no optimum). Integer arithmetic has no rounding, so the
augmenting row reduction never chases differences of a few ulps: with float weights (and a tiny tie
bonus) the square form did not finish on one of the paper's epoch-190 layers. The matching is optimal
for the rounded costs, so its true cost -- summed from the float64 C, the same division as exact mode --
is within n * 2^-42 of the optimum: the layer's distance within 2^-42 = 2.3e-13.

Ties. The optimal cost is unique, the matching is not: costs are ratios of small integers, so neurons can
have several equally good partners, and the pick decides the rows of the next layer (B_k+1[pi]). Any
optimal matching is as valid as scipy's dense solver's choice; the rule here keeps neurons at their own
index where that costs nothing, which is what gives identical networks 0 in every layer:
- neurons without inputs pair with B's at their own index where both are empty, the rest in index order;
- so do neurons left unmatched (cost 1 with any free partner);
- then, while a neuron i can take its own column by trading partners with the neuron holding it at no
  extra cost (C[i, i] + C[k, j] = C[i, j] + C[k, i]), it does (``_keep_in_place``).
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import min_weight_full_bipartite_matching

__all__ = ["GRID", "TIE_RULE", "sparse_assignment"]

GRID = 2.0**-42  # cost resolution of the matching: << the 1e-12 layer-0 tolerance, >> float64's 2^-52 at 1
# Stores record it with sparse results, so that one matrix never mixes two tie choices (deeper layers'
# values depend on them). Raise it whenever the matching picked among equal optima can change.
# 1: the rectangular graph with a 2^-42 bonus per neuron kept in place (nnstd-dist before this rule).
TIE_RULE = 2


def sparse_assignment(
    a: sp.csr_matrix, b: sp.csr_matrix, deg_a: np.ndarray, deg_b: np.ndarray, a_t: sp.csr_matrix | None = None
) -> tuple[np.ndarray, float]:
    """(order, total): B's column order[j] is matched to A's column j, and total = sum_j C[j, order[j]].

    ``a_t``: A transposed as CSR, if the caller keeps it (it is the same for every pair of A's).
    """
    n = a.shape[1]
    if b.shape[1] != n:
        raise ValueError(f"the sparse solver needs square layers' outputs: {n} and {b.shape[1]} columns")
    inter = ((a.T.tocsr() if a_t is None else a_t) @ b).tocsr()  # I = A^T B, only pairs that share inputs
    by_b = inter.tocsc()  # I's CSC arrays are I^T's CSR: row j2, the j1 that share inputs with j2, ascending
    # Arrays over all the pairs (~18,000 on the paper's layers) are few, and built in place where they
    # can be: each new one costs page faults (dropping most of them, with the per-pair row indices, took
    # 14-16 % off this solver's time). Gathers use repeat and take: a fancy index first converts int32 indices.
    per_row, cols = np.diff(inter.indptr), inter.indices
    union = np.repeat(deg_a, per_row)
    union += deg_b.take(cols)
    cost = _costs(inter.data, union)
    match = _match(inter, by_b, cost)
    matched = np.flatnonzero(match < n)  # rows that took one of their pairs, ascending like the pairs
    order = np.full(n, -1, dtype=np.intp)
    order[matched] = match[matched]
    paid = np.ones(n)  # C[j, order[j]]: 1 for a neuron left unmatched
    paid[matched] = cost[np.repeat(match, per_row) == cols]  # one pair per matched row (no duplicate pairs)
    paid[_pair_without_inputs(order, deg_a, deg_b)] = 0.0
    _place_leftovers(order)
    _keep_in_place(order, paid, _Pairs(by_b, deg_a, deg_b))
    return order, float(paid.sum())


def _match(inter: sp.csr_matrix, by_b: sp.csr_matrix, cost: np.ndarray) -> np.ndarray:
    """match[j1] = the column row j1 takes in the 2n x 2n graph (see the module docstring); >= n: unmatched."""
    n, nnz = inter.shape[0], inter.nnz
    half, unit = nnz + n, 1.0 / GRID  # entries in rows 0..n-1 (and in rows n..2n-1); weight of cost 0
    own = np.arange(n, dtype=np.int32)
    # Row j1: [n + j1, then j1's pairs]; row n + j2: [j2, then n + j1 for every j1 paired with j2].
    indptr = np.empty(2 * n + 1, dtype=np.int32)
    indptr[: n + 1] = inter.indptr + np.arange(n + 1, dtype=np.int32)
    indptr[n + 1 :] = by_b.indptr[1:] + np.arange(1, n + 1, dtype=np.int32) + half
    indices = np.empty(2 * half, dtype=np.int32)
    weight = np.full(2 * half, unit)
    on_grid = cost * unit
    np.rint(on_grid, out=on_grid)
    on_grid += unit
    top, top_weight, bottom = indices[:half], weight[:half], indices[half:]  # views
    first = indptr[:n]  # each dummy comes first in its row
    top[first], top_weight[first] = n + own, 2 * unit
    pairs = _after_first(first, half)  # bool masks: ~8x smaller than the index arrays they replace
    top[pairs], top_weight[pairs] = inter.indices, on_grid
    first = indptr[n:-1] - half
    bottom[first] = own
    bottom[_after_first(first, half)] = n + by_b.indices
    graph = sp.csr_array((weight, indices, indptr), shape=(2 * n, 2 * n))
    _, match = min_weight_full_bipartite_matching(graph)
    return match[:n]


def _after_first(first: np.ndarray, size: int) -> np.ndarray:
    """The ``size`` slots of one half of the graph, True except at each row's first slot (its dummy)."""
    mask = np.ones(size, dtype=bool)
    mask[first] = False
    return mask


def _pair_without_inputs(order: np.ndarray, deg_a: np.ndarray, deg_b: np.ndarray) -> np.ndarray:
    """Pair A's neurons without inputs with B's (cost 0): at their own index where both are empty, else in index order.

    Returns the rows paired."""
    empty_a, empty_b = deg_a == 0, deg_b == 0
    if not (empty_a.any() and empty_b.any()):
        return np.zeros(0, dtype=np.intp)
    both = np.flatnonzero(empty_a & empty_b)
    rest_a, rest_b = np.flatnonzero(empty_a & ~empty_b), np.flatnonzero(empty_b & ~empty_a)
    m = min(len(rest_a), len(rest_b))
    order[both] = both
    order[rest_a[:m]] = rest_b[:m]
    return np.concatenate([both, rest_a[:m]])


def _place_leftovers(order: np.ndarray) -> None:
    """Give every unmatched row (order -1) a free column: its own index if free, else in index order."""
    n = len(order)
    free_rows = np.flatnonzero(order < 0)
    if not len(free_rows):
        return
    taken = np.zeros(n, dtype=bool)
    taken[order[order >= 0]] = True
    keep = free_rows[~taken[free_rows]]  # rows whose own column is free keep it
    order[keep] = keep
    taken[keep] = True
    rest = np.flatnonzero(order < 0)
    order[rest] = np.flatnonzero(~taken)


def _keep_in_place(order: np.ndarray, paid: np.ndarray, pairs: "_Pairs") -> None:
    """Trade partners, at no extra cost, so that neurons keep their own index; updates order and paid in place.

    Neuron i holds j = order[i] and k holds i: swapping to (i -> i, k -> j) changes the cost by
    C[i, i] + C[k, j] - C[i, j] - C[k, i], and a trade is taken when that is 0 (up to float64's rounding of
    two sums, ``TRADE_TOLERANCE``). Every trade puts one more neuron in place, so this ends. It gives
    identical networks the identity matching in every layer (distance 0), and keeps equal neurons in place.
    """
    n = len(order)
    everyone = np.arange(n)
    if (order == everyone).all():
        return
    stay = pairs.stay()  # C[i, i]
    holder = np.empty(n, dtype=np.intp)
    while True:
        holder[order] = everyone
        # C[k, j] >= 0, so only rows with C[i, i] <= C[i, j] + C[k, i] can trade.
        i = np.flatnonzero((order != everyone) & (stay <= paid + paid[holder] + TRADE_TOLERANCE))
        k, j = holder[i], order[i]
        other = pairs.cost(k, j)
        free = stay[i] + other <= paid[i] + paid[k] + TRADE_TOLERANCE
        if not free.any():
            return
        busy = np.zeros(n, dtype=bool)
        for i1, k1, j1, c in zip(i[free].tolist(), k[free].tolist(), j[free].tolist(), other[free].tolist()):
            if not (busy[i1] or busy[k1]):  # trades in one round must touch different rows
                busy[i1] = busy[k1] = True
                order[i1], order[k1], paid[i1], paid[k1] = i1, j1, stay[i1], c


TRADE_TOLERANCE = 1e-15  # > the rounding of two sums of two costs in [0, 1]; << any real difference of such sums


def _costs(shared: np.ndarray, union: np.ndarray) -> np.ndarray:
    """C from the shared-input counts and in-degree sums of neuron pairs: the same float64 division as exact mode, 0 where U = 0.

    ``union``: deg_i + deg_j, overwritten (U is formed in place: the caller's sum is a new array anyway).
    """
    union -= shared
    cost = union - shared
    cost /= np.maximum(union, 1.0, out=union)  # U = 0 only with I = 0: 0 / 1; U >= 1 is divided by itself
    return cost


class _Pairs:
    """C[i, j] for any pairs, looked up in I^T = B^T A (CSR, sorted indices)."""

    def __init__(self, by_b: sp.csr_matrix, deg_a: np.ndarray, deg_b: np.ndarray):
        self.by_b, self.deg_a, self.deg_b = by_b, deg_a, deg_b

    @cached_property
    def keys(self) -> np.ndarray:
        """j * n + i of every stored pair, ascending (rows ascend, a transpose's columns are sorted)."""
        n = self.by_b.shape[1]
        return np.repeat(np.arange(0, n * n, n, dtype=np.int64), np.diff(self.by_b.indptr)) + self.by_b.indices

    def stay(self) -> np.ndarray:
        """C[i, i] for every i."""
        return _costs(self.by_b.diagonal(), self.deg_a + self.deg_b)

    def cost(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        if len(i) <= 16 and "keys" not in self.__dict__:  # a few lookups: search their rows, build no index
            shared = np.array([self._shared(i1, j1) for i1, j1 in zip(i.tolist(), j.tolist())])
        elif not len(self.keys):
            shared = np.zeros(len(i))
        else:
            key = j.astype(np.int64) * self.by_b.shape[1] + i
            at = np.minimum(np.searchsorted(self.keys, key), len(self.keys) - 1)
            shared = np.where(self.keys[at] == key, self.by_b.data[at], 0.0)
        return _costs(shared, self.deg_a[i] + self.deg_b[j])

    def _shared(self, i: int, j: int) -> float:
        start, stop = self.by_b.indptr[j], self.by_b.indptr[j + 1]
        at = start + np.searchsorted(self.by_b.indices[start:stop], i)
        return float(self.by_b.data[at]) if at < stop and self.by_b.indices[at] == i else 0.0
