"""Steps 2-4 of the fast solver's rule (see fast.py), compiled with numba: which optimal matching, chosen without indices.

``canonical`` narrows the optimal matchings objective after objective -- squared rank distance, a hash
of the two colours, and (only for twins) a hash of the two indices -- each time solving again only
the part where optimal matchings still differ (fast_scc.flexible_part), with a bonus on the columns
that every optimal matching of the previous objective covers. ``finish`` pairs the neurons left
unmatched in sorted key order and lists every pair's C.

A neuron's key is (key1, colour): key1 = in-degree * 2^32 + out-degree, so that sorting by key puts
neurons without inputs first and then orders by degrees; equal keys mean equal colours.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from .fast_graph import index_costs, matched_edge, rows_of, tie_costs
from .fast_jv import solve
from .fast_scc import flexible_part

__all__ = ["LIMIT", "canonical", "finish"]

# numba caches this module's compiled code keyed on this file alone, not on the modules it calls: the digest of
# their sources (sha256 of fast_graph.py, fast_jv.py, fast_scc.py in that order, 16 hex digits) is written here so
# that editing them edits this file too, and the stale cache is dropped (tests/kernel/test_fast_solver.py checks it).
DEPENDS_ON = "75672fc0e5459c26"
LIMIT = 2**62  # 4 x rows x the largest |cost| stays below this: the solver's duals and path sums fit int64
HASH_RANGE = 2**40  # range of the hashes that break the ties the ranks leave
EMPTY = 2**32  # key1 below this: a neuron without inputs


@nb.njit(cache=True)
def _key_order(key1, colour):
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
    order = _key_order(k1, colour)
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
    if step == 1:
        zero = np.zeros(key1_a.size, np.int64)
        return tie_costs(indptr, indices, edges, zero, zero, colour_a, colour_b, 0, _hash_range(cap))
    return index_costs(indptr, indices, edges, _hash_range(cap))


@nb.njit(cache=True)
def canonical(indptr, indices, cost, u, v, row_match, key1_a, colour_a, key1_b, colour_b, twins):
    """Steps 2 and 4: the matching chosen among the optimal ones (row -> column of the layer's graph)."""
    n = indptr.size - 1
    result = row_match.copy()
    p_ptr, p_idx, p_cost, p_cols, p_u, p_v, p_match = indptr, indices, cost, 2 * n, u, v, row_match
    p_rows, p_edges = np.arange(n), np.arange(indices.size)
    for step in range(3 if twins else 2):
        sub_rows, cols, sub_ptr, sub_idx, kept, must = flexible_part(p_ptr, p_idx, p_cost, p_u, p_v, p_match, p_cols)
        if sub_rows.size == 0:
            break
        full_edges = p_edges[kept]
        cap = LIMIT // (8 * (sub_rows.size + 1) ** 2)  # costs <= cap: with the bonus below, sums stay within LIMIT
        costs = _objective(step, indptr, indices, full_edges, key1_a, colour_a, key1_b, colour_b, cap)
        bonus = costs.max() * sub_rows.size + 1 if costs.size else 1  # above any sum of costs: covered columns stay so
        for e in range(costs.size):
            if must[sub_idx[e]]:
                costs[e] -= bonus
        sub_match, u2, v2 = solve(sub_ptr, sub_idx, costs, cols.size)
        rows_full = p_rows[sub_rows]
        taken = matched_edge(sub_ptr, sub_idx, sub_match)
        for t in range(rows_full.size):
            result[rows_full[t]] = indices[full_edges[taken[t]]]
        p_ptr, p_idx, p_cost, p_cols, p_u, p_v, p_match = sub_ptr, sub_idx, costs, cols.size, u2, v2, sub_match
        p_rows, p_edges = rows_full, full_edges
    return result


@nb.njit(cache=True)
def finish(indptr, indices, e_ptr, c, row_match, key1_a, colour_a, key1_b, colour_b):
    """(order, paid): B's neuron per A neuron and the C of each pair. Step 3: the neurons left unmatched are paired
    in sorted key order (empty neurons first, so that most of them pair at C = 0; else C = 1), index last."""
    n = key1_a.size
    order, paid = np.full(n, -1, np.int64), np.zeros(n, np.float64)
    taken = np.zeros(n, np.bool_)
    for i in range(n):
        j = row_match[i]
        if j < n:
            order[i], taken[j] = j, True
            for e in range(indptr[i], indptr[i] + e_ptr[i + 1] - e_ptr[i]):
                if indices[e] == j:
                    paid[i] = c[e_ptr[i] + e - indptr[i]]
    free_a, free_b = np.flatnonzero(order < 0), np.flatnonzero(~taken)
    free_a = free_a[_key_order(key1_a[free_a], colour_a[free_a])]
    free_b = free_b[_key_order(key1_b[free_b], colour_b[free_b])]
    for t in range(free_a.size):
        i, j = free_a[t], free_b[t]
        order[i] = j
        paid[i] = 0.0 if key1_a[i] < EMPTY and key1_b[j] < EMPTY else 1.0
    return order, paid
