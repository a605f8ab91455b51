"""A sparse assignment solver on exact int64 costs, compiled with numba: optimal matching and optimal duals.

The graph is square CSR (``indptr``, ``indices``, ``cost``: row i's columns and their int64 costs) and
has a perfect matching. ``solve`` returns ``(row_match, u, v)``: row i takes column ``row_match[i]``,
and the duals satisfy, in integers with no rounding,

    c(i, j) - u[i] - v[j] >= 0 on every edge,   = 0 on every matched edge,

so the matching is optimal and (complementary slackness) the perfect matchings of the *tight*
subgraph {c - u - v = 0} are exactly the optimal matchings, whichever optimal duals are used.

Method: column reduction (v[j] = the cheapest edge into j), a greedy pass in which every row takes
a free column at its reduced-cost minimum, then one Dijkstra per remaining free row over the reduced
costs (lazy binary heap over the columns reached through edges), potentials updated on the finalised
columns only, as in Jonker and Volgenant's shortest augmenting path method.

``duals_of`` gives optimal duals for a matching found elsewhere (scipy's LAPJVsp): shortest paths
(Bellman-Ford with a FIFO queue) in the residual graph; it reports whether the matching was optimal.
"""

from __future__ import annotations

import numba as nb
import numpy as np

__all__ = ["solve", "duals_of"]

INF = np.int64(2**62)


@nb.njit(cache=True)
def _push(heap_d, heap_j, size, d, j):
    at = size
    while at > 0:
        parent = (at - 1) >> 1
        if heap_d[parent] <= d:
            break
        heap_d[at], heap_j[at] = heap_d[parent], heap_j[parent]
        at = parent
    heap_d[at], heap_j[at] = d, j
    return size + 1


@nb.njit(cache=True)
def _pop(heap_d, heap_j, size):
    d, j = heap_d[0], heap_j[0]
    size -= 1
    last_d, last_j = heap_d[size], heap_j[size]
    at = 0
    while True:
        child = 2 * at + 1
        if child >= size:
            break
        if child + 1 < size and heap_d[child + 1] < heap_d[child]:
            child += 1
        if heap_d[child] >= last_d:
            break
        heap_d[at], heap_j[at] = heap_d[child], heap_j[child]
        at = child
    heap_d[at], heap_j[at] = last_d, last_j
    return d, j, size


@nb.njit(cache=True)
def _greedy_start(indptr, indices, cost, u, row_match, col_match):
    """Every row at its cheapest edge (v = 0), taking that column if it is free; returns the rows left free."""
    n = indptr.size - 1
    free = np.empty(n, np.int64)
    n_free = 0
    for i in range(n):
        best, pick = INF, -1
        for e in range(indptr[i], indptr[i + 1]):
            j = indices[e]
            if cost[e] < best or (cost[e] == best and col_match[pick] >= 0 and col_match[j] < 0):
                best, pick = cost[e], j
        u[i] = best
        if pick >= 0 and col_match[pick] < 0:
            row_match[i], col_match[pick] = pick, i
        else:
            free[n_free] = i
            n_free += 1
    return free[:n_free]


@nb.njit(cache=True)
def _two_cheapest(indptr, indices, cost, v, i):
    u1, u2, j1, j2 = INF, INF, -1, -1
    for e in range(indptr[i], indptr[i + 1]):
        r = cost[e] - v[indices[e]]
        if r < u2:
            if r < u1:
                u1, u2, j1, j2 = r, u1, indices[e], j1
            else:
                u2, j2 = r, indices[e]
    return u1, u2, j1, j2


@nb.njit(cache=True)
def _row_reduction(indptr, indices, cost, u, v, row_match, col_match, free):
    """Jonker-Volgenant's augmenting row reduction: a free row takes its cheapest column, lowering that column's
    dual to its second-cheapest reduced cost, and evicts the holder; returns the rows still free."""
    n_free, k, steps, limit = 0, 0, 0, 16 * free.size + 64
    while k < free.size:
        i = free[k]
        k += 1
        u1, u2, j1, j2 = _two_cheapest(indptr, indices, cost, v, i)
        if j2 < 0:  # one edge: take it if free, else leave the row to the shortest paths
            if col_match[j1] < 0:
                u[i], row_match[i], col_match[j1] = u1, j1, i
            else:
                free[n_free] = i
                n_free += 1
            continue
        i0 = col_match[j1]
        lowers = u1 < u2
        if lowers:
            v[j1] -= u2 - u1
        elif i0 >= 0:
            j1, i0 = j2, col_match[j2]
        u[i], row_match[i], col_match[j1] = u2, j1, i
        if i0 >= 0:
            row_match[i0] = -1
            steps += 1
            if lowers and steps < limit:
                k -= 1
                free[k] = i0
            else:
                free[n_free] = i0
                n_free += 1
    return free[:n_free]


@nb.njit(cache=True)
def _relax(i, d, indptr, indices, cost, u, v, col_match, dist, done, pred, heap_d, heap_j, seen, size, n_seen, bound):
    """Relax row i's edges, the row reached at distance d; (size, n_seen, bound, sink): sink >= 0 is a free column at
    distance d, which ends the search (nothing is nearer). ``bound``: the nearest free column reached so far."""
    for e in range(indptr[i], indptr[i + 1]):
        j = indices[e]
        if done[j] >= 0:
            continue
        d2 = d + cost[e] - u[i] - v[j]
        if d2 < dist[j] and d2 < bound:  # a column at or beyond the nearest free one is never needed
            if col_match[j] < 0:
                bound = d2
            if dist[j] == INF:
                seen[n_seen] = j
                n_seen += 1
            dist[j], pred[j] = d2, i
            if d2 == d and col_match[j] < 0:
                return size, n_seen, bound, j
            size = _push(heap_d, heap_j, size, d2, j)
    return size, n_seen, bound, -1


@nb.njit(cache=True)
def _augment_from(r, indptr, indices, cost, u, v, row_match, col_match, dist, done, pred, heap_d, heap_j, seen):
    """One Dijkstra from free row r, the dual update on finalised columns, and the augmentation."""
    graph = (indptr, indices, cost, u, v, col_match, dist, done, pred, heap_d, heap_j, seen)
    size, n_seen, bound, sink = _relax(r, 0, *graph, 0, 0, INF)
    dstar, n_done = 0, 0
    while sink < 0 and size > 0:
        d, j, size = _pop(heap_d, heap_j, size)
        if done[j] >= 0 or d > dist[j]:
            continue
        done[j], n_done, dstar = n_done, n_done + 1, d
        if col_match[j] < 0:
            sink = j
        else:
            size, n_seen, bound, sink = _relax(col_match[j], d, *graph, size, n_seen, bound)
    if sink < 0:
        raise ValueError("the graph has no matching of every row")
    done[sink] = n_done
    for t in range(n_seen):
        j = seen[t]
        if done[j] >= 0:
            delta = dstar - dist[j]
            v[j] -= delta
            if col_match[j] >= 0:
                u[col_match[j]] += delta
        dist[j], done[j] = INF, -1
    u[r] += dstar
    _augment(r, sink, pred, row_match, col_match)


@nb.njit(cache=True)
def _augment(r, sink, pred, row_match, col_match):
    """Flip the alternating path from free row r to the free column ``sink`` (predecessors in ``pred``)."""
    j = sink
    while True:
        i = pred[j]
        nxt = row_match[i]
        row_match[i], col_match[j] = j, i
        if i == r:
            break
        j = nxt


@nb.njit(cache=True)
def solve(indptr, indices, cost, n_cols):
    """Optimal matching of every row and exact integer duals of a sparse graph with n_rows <= n_cols (module docstring)."""
    n = indptr.size - 1
    u, v = np.zeros(n, np.int64), np.zeros(n_cols, np.int64)
    row_match, col_match = np.full(n, -1, np.int64), np.full(n_cols, -1, np.int64)
    free = _greedy_start(indptr, indices, cost, u, row_match, col_match)
    for _ in range(12):
        free = _row_reduction(indptr, indices, cost, u, v, row_match, col_match, free.copy())
    dist, done, pred = np.full(n_cols, INF), np.full(n_cols, -1, np.int64), np.full(n_cols, -1, np.int64)
    heap_d, heap_j = np.empty(indices.size + 1, np.int64), np.empty(indices.size + 1, np.int64)
    seen = np.empty(n_cols, np.int64)
    for r in free:
        _augment_from(r, indptr, indices, cost, u, v, row_match, col_match, dist, done, pred, heap_d, heap_j, seen)
    return row_match, u, v


@nb.njit(cache=True)
def duals_of(indptr, indices, cost, row_match, n_cols):
    """(ok, u, v): duals for a matching of every row, by shortest paths in its residual graph; ok False if not optimal.

    Node = column. An edge (i, j) of row i, matched to m = row_match[i], gives the arc m -> j of length
    c(i, j) - c(i, m); v = the distances from a virtual source joined to every column at 0 (so v <= 0, and
    v = 0 on the free columns, which have no arcs out), u[i] = c(i, m) - v[m].
    """
    n = indptr.size - 1
    owner = np.full(n_cols, -1, np.int64)
    paid = np.empty(n, np.int64)
    for i in range(n):
        owner[row_match[i]] = i
        for e in range(indptr[i], indptr[i + 1]):
            if indices[e] == row_match[i]:
                paid[i] = cost[e]
    v = np.zeros(n_cols, np.int64)
    queue = np.empty(n_cols, np.int64)
    queued = np.zeros(n_cols, np.bool_)
    count = 0
    for m in range(n_cols):
        if owner[m] >= 0:
            queue[count], queued[m] = m, True
            count += 1
    head, relaxations, limit = 0, 0, np.int64(n_cols) * (indices.size + 1)
    while count > 0:
        m = queue[head]
        head = (head + 1) % n_cols
        count -= 1
        queued[m] = False
        i = owner[m]
        for e in range(indptr[i], indptr[i + 1]):
            j = indices[e]
            d = v[m] + cost[e] - paid[i]
            if d < v[j]:
                v[j] = d
                relaxations += 1
                if relaxations > limit or owner[j] < 0:  # a negative cycle, or a cheaper free column: not optimal
                    return False, paid, v
                if not queued[j]:
                    queue[(head + count) % n_cols] = j
                    queued[j] = True
                    count += 1
    u = np.empty(n, np.int64)
    for i in range(n):
        u[i] = paid[i] - v[row_match[i]]
    return True, u, v
