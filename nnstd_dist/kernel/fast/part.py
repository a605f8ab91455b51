"""Operations on a *part* (ties.py): is what is still tied only a choice among twins, which cell to individualise, force a pair.

A part is the tuple (rows, cols, ptr, idx, edges, must): the layer graph's rows and columns (columns >= n are
exits: the row stays unmatched), the usable edges as CSR over positions in rows and cols (``edges``: their
positions in the layer graph) and the columns every matching of the set covers.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from .hashing import pair_hash

__all__ = ["Cell", "untwinned_rows", "pick_cell", "without"]


def _edge_rows(ptr: np.ndarray) -> np.ndarray:
    return np.repeat(np.arange(ptr.size - 1, dtype=np.int64), np.diff(ptr))


@nb.njit(cache=True)
def _root(parent, x):
    while parent[x] != x:
        parent[x] = parent[parent[x]]
        x = parent[x]
    return x


@nb.njit(cache=True)
def _open_rows(ptr, idx, row_class, col_class, real):
    """The rule below per piece (union-find over rows 0..R-1 and columns R..), then per row: its piece is not twin-only."""
    n_rows, n_cols = ptr.size - 1, real.size
    parent = np.arange(n_rows + n_cols)
    for r in range(n_rows):
        for e in range(ptr[r], ptr[r + 1]):
            x, y = _root(parent, r), _root(parent, n_rows + idx[e])
            if x != y:
                parent[max(x, y)] = min(x, y)
    first_row_class = np.full(n_rows + n_cols, -1, np.int64)
    first_col_class = np.full(n_rows + n_cols, -1, np.int64)
    rows_one, cols_one = np.ones(n_rows + n_cols, np.bool_), np.ones(n_rows + n_cols, np.bool_)
    exits, balance = np.zeros(n_rows + n_cols, np.bool_), np.zeros(n_rows + n_cols, np.int64)
    for r in range(n_rows):
        p = _root(parent, r)
        balance[p] += 1
        if first_row_class[p] < 0:
            first_row_class[p] = row_class[r]
        elif first_row_class[p] != row_class[r]:
            rows_one[p] = False
    for c in range(n_cols):
        p = _root(parent, n_rows + c)
        if not real[c]:
            exits[p] = True
            continue
        balance[p] -= 1
        if first_col_class[p] < 0:
            first_col_class[p] = col_class[c]
        elif first_col_class[p] != col_class[c]:
            cols_one[p] = False
    out = np.empty(n_rows, np.bool_)
    for r in range(n_rows):
        p = _root(parent, r)
        perfect = not exits[p] and balance[p] == 0
        out[r] = not ((rows_one[p] and cols_one[p]) or (perfect and (rows_one[p] or cols_one[p])))
    return out


def untwinned_rows(part, twins_a: np.ndarray, twins_b: np.ndarray, n: int) -> np.ndarray:
    """Which of the part's rows lie in a connected piece where the choice is not only among twins.

    A piece's choice is only among twins when (0) its rows are mutual twins in A and its real columns mutual twins in
    B, or when the piece is perfect -- no exit, as many rows as real columns, so every matching pairs all of them --
    and (1) its real columns are mutual twins in B, or (2) its rows are mutual twins in A. Then every matching of the
    set pairs the same (row class, column class) pairs, each row with the same column class in (1), each column with the
    same row class in (2): a pair's C depends only on twin classes, so every matching gives the same C, bit for bit,
    and states that differ by twin swaps (twins.py). In (0), C < 1 on every real pair while an exit costs 1, so even
    the number of pairs is fixed. The conditions are closed under exchanging A and B."""
    rows, cols, ptr, idx, _, _ = part
    real = cols < n
    return _open_rows(ptr, idx, twins_a[rows], twins_b[np.where(real, cols, 0)], real)


class Cell:
    """The individualisation's choice: A's neuron i and B's neuron j, the cells they were chosen from, and whether the
    cell's key was attained by two colour pairs that only differ by orientation (then no symmetric rule can choose)."""

    def __init__(self, i: int, j: int, cell_a: np.ndarray, cell_b: np.ndarray, ambiguous: bool):
        self.i, self.j, self.cell_a, self.cell_b, self.ambiguous = i, j, cell_a, cell_b, ambiguous


def pick_cell(part, open_rows: np.ndarray, colour_a: np.ndarray, colour_b: np.ndarray, n: int) -> Cell:
    """The colour pair (c_A, c_B) of the real usable edges of the part's ``open_rows`` (a mask) with the least (pair_hash, min, max) -- symmetric and
    label-free; A's cell: the part's rows of colour c_A with a usable edge to colour c_B, B's likewise; i = the least
    index of A's cell, j = the least index among i's usable partners in B's cell."""
    rows, cols, ptr, idx, _, _ = part
    edge_rows, edge_cols = rows[_edge_rows(ptr)], cols[idx]
    real = (edge_cols < n) & open_rows[_edge_rows(ptr)]
    ri, cj = edge_rows[real], edge_cols[real]
    xa, xb = colour_a[ri], colour_b[cj]
    key_hash, low, high = pair_hash(xa, xb), np.minimum(xa, xb), np.maximum(xa, xb)
    best = np.lexsort((high, low, key_hash))[0]
    tied = (key_hash == key_hash[best]) & (low == low[best]) & (high == high[best])
    ambiguous = bool((xa[tied] != xa[tied][0]).any())
    ca, cb = (low[best], high[best]) if ambiguous else (xa[best], xb[best])
    chosen = (xa == ca) & (xb == cb)
    cell_a, cell_b = np.unique(ri[chosen]), np.unique(cj[chosen])
    i = int(cell_a[0])
    j = int(cj[chosen & (ri == i)].min())
    return Cell(i, j, cell_a, cell_b, ambiguous)


def without(part, i: int, j: int):
    """The part of the matchings of the set that pair row i with column j (a usable edge): both removed."""
    rows, cols, ptr, idx, edges, must = part
    r, c = int(np.flatnonzero(rows == i)[0]), int(np.flatnonzero(cols == j)[0])
    edge_rows = _edge_rows(ptr)
    keep = (edge_rows != r) & (idx != c)
    kept_rows, kept_idx = edge_rows[keep], idx[keep]
    kept_rows = kept_rows - (kept_rows > r)
    kept_idx = kept_idx - (kept_idx > c)
    new_ptr = np.zeros(rows.size, np.int64)
    np.cumsum(np.bincount(kept_rows, minlength=rows.size - 1), out=new_ptr[1:])
    return (np.delete(rows, r), np.delete(cols, c), new_ptr, kept_idx.astype(np.int64), edges[keep], np.delete(must, c))
