"""The label-free objectives among optimal matchings, compiled with numba: narrow a set of optimal matchings step by step.

A set S of optimal matchings is kept as its *part*: the rows whose partner differs within S, the columns
they can use, the usable edges (each on some matching of S) and the columns every matching of S covers
(``must``); the matchings of the part that match every row and cover every ``must`` column are exactly S
(scc.flexible_part). ``narrow`` minimises, over S, first sum (r_A(i) - r_B(j))^2 (r = dense rank of the
key (in-degree, out-degree, colour) among the neurons of the part, 0 on exits), then
sum pair_hash(c_A(i), c_B(j)) % R: each is an assignment on the part with a bonus below every ``must``
column (larger than any sum of costs, so covered columns stay covered), solved by jv.solve; the part of the
new optimum is what remains. Both objectives are symmetric in A and B and read colours and degrees only.
(r_A - r_B)^2 is strictly Monge: swapping the partners of two pairs changes it by 2 (r_A1 - r_A2)(r_B1 - r_B2),
so neurons of equal keys pair when they can.

A neuron's key is (key1, colour): key1 = in-degree * 2^32 + out-degree, so sorting by key puts neurons
without inputs first, then orders by degrees.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from .graph import matched_edge, rows_of, tie_costs
from .jv import solve
from .scc import flexible_part

__all__ = ["LIMIT", "EMPTY", "narrow", "key_order"]

# numba caches this module's compiled code keyed on this file alone, not on the modules it calls: the digest of
# their sources (sha256 of graph.py, jv.py, scc.py in that order, 16 hex digits) is written here so that editing
# them edits this file too, and the stale cache is dropped (scripts/fast_depends_on.py writes it, a test checks it).
DEPENDS_ON = "4fec5608852e3f0b"
LIMIT = 2**62  # 4 x rows x the largest |cost| stays below this: the solver's duals and path sums fit int64
HASH_RANGE = 2**40  # range of the hashes that break the ties the ranks leave
EMPTY = 2**32  # key1 below this: a neuron without inputs


@nb.njit(cache=True)
def key_order(key1, colour):
    """Positions sorted by (key1, colour), stable (ties keep their order)."""
    order = np.argsort(colour, kind="mergesort")
    return order[np.argsort(key1[order], kind="mergesort")]


@nb.njit(cache=True)
def _isqrt(x):
    r = np.int64(np.sqrt(np.float64(x)))
    while r * r > x:
        r -= 1
    while (r + 1) * (r + 1) <= x:
        r += 1
    return r


@nb.njit(cache=True)
def _hash_range(cap):
    r = np.int64(1)
    while r * 2 <= cap and r < HASH_RANGE:
        r *= 2
    return r


@nb.njit(cache=True)
def rank_costs(indptr, indices, edges, key1_a, colour_a, key1_b, colour_b, cap):
    """(r_A(i) - r_B(j))^2 per edge (0 on exits): dense ranks of the keys among the neurons these edges touch,
    scaled down to at most sqrt(cap) when there are more (ties among them fall to the next objective)."""
    n = key1_a.size
    rows, cols = rows_of(indptr, edges), indices[edges]
    real = cols < n
    touched_a, touched_b = np.unique(rows[real]), np.unique(cols[real])
    k1 = np.concatenate((key1_a[touched_a], key1_b[touched_b]))
    colour = np.concatenate((colour_a[touched_a], colour_b[touched_b]))
    order = key_order(k1, colour)
    dense = np.zeros(order.size, np.int64)
    for t in range(1, order.size):
        same = k1[order[t]] == k1[order[t - 1]] and colour[order[t]] == colour[order[t - 1]]
        dense[order[t]] = dense[order[t - 1]] + (0 if same else 1)
    top, room = dense.max() if dense.size else 0, _isqrt(cap)
    if top > room:
        dense = dense * room // top
    rank_a, rank_b = np.zeros(n, np.int64), np.zeros(n, np.int64)
    rank_a[touched_a], rank_b[touched_b] = dense[: touched_a.size], dense[touched_a.size:]
    return tie_costs(indptr, indices, edges, rank_a, rank_b, colour_a, colour_b, 1, 0)


@nb.njit(cache=True)
def _objective(step, indptr, indices, edges, key1_a, colour_a, key1_b, colour_b, cap):
    if step == 0:
        return rank_costs(indptr, indices, edges, key1_a, colour_a, key1_b, colour_b, cap)
    zero = np.zeros(key1_a.size, np.int64)
    return tie_costs(indptr, indices, edges, zero, zero, colour_a, colour_b, 0, _hash_range(cap))


@nb.njit(cache=True)
def narrow(rows, cols, sub_ptr, sub_idx, edges, must, indptr, indices, key1_a, colour_a, key1_b, colour_b, result):
    """Both objectives on the part (rows, cols, sub_ptr, sub_idx, edges, must) -- rows and cols as the layer graph's
    ids, edges as its edge positions; writes each row's chosen column into ``result`` (row -> column of the layer's
    graph) and returns the part of what is still tied, in the same form (no rows when the choice is made)."""
    n = key1_a.size
    for step in range(2):
        if rows.size == 0:
            break
        # costs <= cap: with the bonus below, sums stay within LIMIT. The cap (and so the hashes' range) is a function of
        # the numbers of tied neurons on both sides together, the same in either orientation of the pair, so that the
        # rule stays mirror-symmetric (the package docstring's orientation argument needs it)
        tied = rows.size + np.count_nonzero(cols < n)
        cap = LIMIT // (8 * (tied + 1) ** 2)
        costs = _objective(step, indptr, indices, edges, key1_a, colour_a, key1_b, colour_b, cap)
        bonus = costs.max() * rows.size + 1 if costs.size else 1  # above any sum of costs: covered columns stay so
        for e in range(costs.size):
            if must[sub_idx[e]]:
                costs[e] -= bonus
        sub_match, u, v = solve(sub_ptr, sub_idx, costs, cols.size)
        taken = matched_edge(sub_ptr, sub_idx, sub_match)
        for t in range(rows.size):
            result[rows[t]] = indices[edges[taken[t]]]
        keep_rows, keep_cols, ptr2, idx2, kept, must2 = flexible_part(sub_ptr, sub_idx, costs, u, v, sub_match, cols.size)
        rows, cols, sub_ptr, sub_idx, edges, must = rows[keep_rows], cols[keep_cols], ptr2, idx2, edges[kept], must2
    return rows, cols, sub_ptr, sub_idx, edges, must
