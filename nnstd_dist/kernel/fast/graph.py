"""The fast solver's per-pair graphs, compiled with numba: shared-input counts, exact integer costs, tie-break costs.

For a layer with A's output neurons i and B's output neurons j (B's input rows already in A's order
through ``rowmap``: row r of the ordered B is B's row ``rowmap[r]``):

- ``intersect``: I[i, j] = |N_A(i) & N_B(j)| for every pair that shares an input, from A^T (CSR) and B
  (CSR), in O(sum over A's connections of B's out-degree of that row);
- ``layer_graph``: the n x 2n graph of the package docstring -- rows: A's neurons; columns: B's
  neurons, then one private exit per A neuron -- with int64 costs K(i, j) = rint(C(i, j) * 2^42) on the
  pairs that share inputs and K = 2^42 on each exit (left unmatched: C = 1 with its eventual partner);
  C is the same float64 division of two integer counts as exact mode's;
- ``tie_costs``: the objectives' costs of a part's edges (ties.py).
"""

from __future__ import annotations

import numba as nb
import numpy as np

__all__ = ["SCALE", "EXIT", "mix", "pair_hash", "intersect", "layer_graph", "build", "tie_costs", "matched_edge", "rows_of", "pair_costs"]

SCALE = np.float64(2.0**42)  # integer cost of C = 1: distinct ratios of counts below 2^20 stay distinct and ordered
EXIT = np.int64(2**42)  # a neuron of A left unmatched: it will be paired with a neuron of B that shares no input, C = 1


@nb.njit(cache=True)
def mix(x):
    """splitmix64's finaliser: a fixed bijection of uint64 that scatters bits (for hashes of colours)."""
    z = x + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@nb.njit(cache=True)
def pair_hash(x, y):
    """A hash of an unordered pair of uint64 (symmetric, so that NNSTD(A, B) and NNSTD(B, A) break ties alike)."""
    low, high = (x, y) if x < y else (y, x)
    return mix(mix(low) + high)


@nb.njit(cache=True)
def intersect(at_ptr, at_idx, b_ptr, b_idx, rowmap, n_b):
    """(e_ptr, e_col, e_count): CSR over A's neurons of the B neurons sharing inputs with each, and I."""
    n_a = at_ptr.size - 1
    count = np.zeros(n_b, np.int64)
    touched = np.empty(n_b, np.int64)
    cap = max(16, 4 * at_idx.size)
    e_col, e_count = np.empty(cap, np.int64), np.empty(cap, np.int64)
    e_ptr = np.zeros(n_a + 1, np.int64)
    size = 0
    for i in range(n_a):
        n_touched = 0
        for t in range(at_ptr[i], at_ptr[i + 1]):
            r = rowmap[at_idx[t]]
            for s in range(b_ptr[r], b_ptr[r + 1]):
                j = b_idx[s]
                if count[j] == 0:
                    touched[n_touched] = j
                    n_touched += 1
                count[j] += 1
        if size + n_touched > cap:
            cap = max(2 * cap, size + n_touched)
            e_col, e_count = _grow(e_col, cap, size), _grow(e_count, cap, size)
        for t in range(n_touched):
            j = touched[t]
            e_col[size], e_count[size] = j, count[j]
            count[j] = 0
            size += 1
        e_ptr[i + 1] = size
    return e_ptr, e_col[:size], e_count[:size]


@nb.njit(cache=True)
def _grow(a, cap, size):
    out = np.empty(cap, a.dtype)
    out[:size] = a[:size]
    return out


@nb.njit(cache=True)
def layer_graph(e_ptr, e_col, e_count, deg_a, deg_b):
    """(indptr, indices, cost, c): the n x 2n graph, and C (float64) per shared-input pair in e's order.

    Row i holds its pairs first (in e's order), then its exit, column n + i, at K = 2^42 (C = 1)."""
    n, m = e_ptr.size - 1, e_col.size
    c = np.empty(m, np.float64)
    indptr = e_ptr + np.arange(n + 1)
    indices, cost = np.empty(m + n, np.int64), np.empty(m + n, np.int64)
    for i in range(n):
        at = indptr[i]
        for e in range(e_ptr[i], e_ptr[i + 1]):
            j, shared = e_col[e], np.float64(e_count[e])
            union = deg_a[i] + deg_b[j] - shared
            c[e] = (union - shared) / union
            indices[at], cost[at] = j, np.int64(np.rint(c[e] * SCALE))
            at += 1
        indices[at], cost[at] = n + i, EXIT
    return indptr, indices, cost, c


@nb.njit(cache=True)
def rows_of(indptr, edges):
    rows = np.empty(edges.size, np.int64)
    i = 0
    for t in range(edges.size):
        while indptr[i + 1] <= edges[t]:
            i += 1
        rows[t] = i
    return rows


@nb.njit(cache=True)
def tie_costs(indptr, indices, edges, rank_a, rank_b, colour_a, colour_b, unit, hash_range):
    """Secondary cost of each given edge (positions, ascending): (rank_a - rank_b)^2 * unit + hash(colours) % hash_range on
    a pair of real neurons, 0 on an exit."""
    n = rank_a.size  # columns >= n are exits
    rows = rows_of(indptr, edges)
    out = np.zeros(edges.size, np.int64)
    for t in range(edges.size):
        i, j = rows[t], indices[edges[t]]
        if j < n:
            d = rank_a[i] - rank_b[j]
            out[t] = d * d * unit
            if hash_range > 0:
                out[t] += np.int64(pair_hash(colour_a[i], colour_b[j]) % np.uint64(hash_range))
    return out


@nb.njit(cache=True)
def matched_edge(indptr, indices, row_match):
    """Position of each row's matched edge."""
    n = indptr.size - 1
    out = np.empty(n, np.int64)
    for i in range(n):
        for e in range(indptr[i], indptr[i + 1]):
            if indices[e] == row_match[i]:
                out[i] = e
    return out


@nb.njit(cache=True)
def build(at_ptr, at_idx, b_ptr, b_idx, rowmap, deg_a, deg_b):
    """``intersect`` then ``layer_graph`` in one call: (e_ptr, indptr, indices, cost, c)."""
    e_ptr, e_col, e_count = intersect(at_ptr, at_idx, b_ptr, b_idx, rowmap, deg_b.size)
    indptr, indices, cost, c = layer_graph(e_ptr, e_col, e_count, deg_a, deg_b)
    return e_ptr, indptr, indices, cost, c


@nb.njit(cache=True)
def pair_costs(indptr, indices, e_ptr, c, result, order, key1_a, key1_b, empty):
    """Each pair's C: the edge's float64 C where A's neuron i took B's order[i] in the graph (result[i] < n), else 0 when
    both neurons have no inputs (key1 < ``empty``) and 1 otherwise (leftovers never share an input)."""
    n = order.size
    paid = np.empty(n, np.float64)
    for i in range(n):
        j = result[i]
        if j < n:
            for e in range(indptr[i], indptr[i + 1]):
                if indices[e] == j:
                    paid[i] = c[e_ptr[i] + e - indptr[i]]
                    break
        else:
            paid[i] = 0.0 if key1_a[i] < empty and key1_b[order[i]] < empty else 1.0
    return paid
