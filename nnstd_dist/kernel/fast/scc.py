"""Where an optimal matching can still change: the tight edges that lie on some optimal matching (numba).

The problem: match every row, each column at most once (n_rows <= n_cols), minimum cost. Given an
optimal matching and optimal duals (c - u - v >= 0, = 0 on matched edges, v <= 0, v = 0 on free
columns), the optimal matchings are exactly the matchings of every row that use tight edges only
(c - u - v = 0) and cover every column with v < 0 (complementary slackness). Which of them exist is
read off one directed graph on the rows plus a pool node S: i -> o when row i can take o's column by a
tight edge, i -> S when it can take a free column, S -> o when o's column may be left free (v = 0).
A tight edge lies on some optimal matching iff it is matched or closes a cycle of that graph, i.e. its
two ends lie in one strongly connected component (as in the Dulmage-Mendelsohn decomposition used to
enumerate perfect matchings, Tassa 2012). So every optimal matching agrees with the given one outside
the non-trivial components, and a choice among optimal matchings is a choice inside them:
``flexible_part`` returns just that part, renumbered compactly.
"""

from __future__ import annotations

import numba as nb
import numpy as np

__all__ = ["flexible_part"]


@nb.njit(cache=True)
def _components(ptr, succ):
    """Tarjan's strongly connected components of a directed graph in CSR (iterative); component id per node."""
    n = ptr.size - 1
    index, low = np.full(n, -1, np.int64), np.zeros(n, np.int64)
    comp = np.full(n, -1, np.int64)
    on_stack = np.zeros(n, np.bool_)
    stack, call, edge_at = np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n, np.int64)
    counter, n_stack, n_comp = 0, 0, 0
    for root in range(n):
        if index[root] >= 0:
            continue
        depth = 0
        call[0], edge_at[0] = root, ptr[root]
        index[root] = low[root] = counter
        counter += 1
        stack[n_stack] = root
        n_stack += 1
        on_stack[root] = True
        while depth >= 0:
            x = call[depth]
            if edge_at[depth] < ptr[x + 1]:
                y = succ[edge_at[depth]]
                edge_at[depth] += 1
                if index[y] < 0:
                    index[y] = low[y] = counter
                    counter += 1
                    stack[n_stack] = y
                    n_stack += 1
                    on_stack[y] = True
                    depth += 1
                    call[depth], edge_at[depth] = y, ptr[y]
                elif on_stack[y] and index[y] < low[x]:
                    low[x] = index[y]
                continue
            if low[x] == index[x]:
                while True:
                    n_stack -= 1
                    y = stack[n_stack]
                    on_stack[y] = False
                    comp[y] = n_comp
                    if y == x:
                        break
                n_comp += 1
            depth -= 1
            if depth >= 0 and low[x] < low[call[depth]]:
                low[call[depth]] = low[x]
    return comp


@nb.njit(cache=True)
def _arcs(indptr, indices, cost, u, v, row_match, owner):
    """Rows 0..n-1 and the pool S = n: i -> o if i can take o's column (tight), i -> S if i can take a free
    column (tight; a free column has v = 0), S -> o if o's column may be left free (v = 0)."""
    n = indptr.size - 1
    ptr = np.zeros(n + 2, np.int64)
    succ = np.empty(indices.size + n, np.int64)
    at = 0
    for i in range(n):
        for e in range(indptr[i], indptr[i + 1]):
            j = indices[e]
            if j != row_match[i] and cost[e] - u[i] - v[j] == 0:
                succ[at] = owner[j] if owner[j] >= 0 else n
                at += 1
        ptr[i + 1] = at
    for o in range(n):
        if v[row_match[o]] == 0:
            succ[at] = o
            at += 1
    ptr[n + 1] = at
    return ptr, succ[:at]


@nb.njit(cache=True)
def flexible_part(indptr, indices, cost, u, v, row_match, n_cols):
    """(rows, cols, sub_ptr, sub_idx, edges, must): the rows whose partner differs between optimal matchings, the
    columns they can use (first the ones they hold, in ``rows``' order, then free ones), those usable edges as
    CSR over compact ids (``edges``: their positions in the full graph), and which compact columns every optimal
    matching covers (v < 0). Every row is matched; columns may stay free; ``rows`` is empty when the optimum is
    unique."""
    n = indptr.size - 1
    owner = np.full(n_cols, -1, np.int64)
    for i in range(n):
        owner[row_match[i]] = i
    comp = _components(*_arcs(indptr, indices, cost, u, v, row_match, owner))
    size = np.zeros(n + 1, np.int64)
    for x in range(n + 1):
        size[comp[x]] += 1
    rows = np.flatnonzero(size[comp[:n]] > 1)
    compact = np.full(n_cols, -1, np.int64)
    cols = np.empty(n_cols, np.int64)
    for t in range(rows.size):
        compact[row_match[rows[t]]] = t
        cols[t] = row_match[rows[t]]
    n_sub = rows.size
    sub_ptr = np.zeros(rows.size + 1, np.int64)
    keep, sub_idx = np.empty(indices.size, np.int64), np.empty(indices.size, np.int64)
    m = 0
    for t in range(rows.size):
        i = rows[t]
        for e in range(indptr[i], indptr[i + 1]):
            j = indices[e]
            if cost[e] - u[i] - v[j] != 0:
                continue
            if j != row_match[i] and comp[owner[j] if owner[j] >= 0 else n] != comp[i]:
                continue
            if compact[j] < 0:
                compact[j], cols[n_sub] = n_sub, j
                n_sub += 1
            keep[m], sub_idx[m] = e, compact[j]
            m += 1
        sub_ptr[t + 1] = m
    must = np.empty(n_sub, np.bool_)
    for s in range(n_sub):
        must[s] = v[cols[s]] < 0
    return rows, cols[:n_sub], sub_ptr, sub_idx[:m], keep[:m], must
