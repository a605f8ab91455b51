"""Operations on a *part* (ties.py): is what is still tied only a choice among twins, which cell to individualise, force a pair.

A part is the tuple (rows, cols, ptr, idx, edges, must): the layer graph's rows and columns (columns >= n are
exits: the row stays unmatched), the usable edges as CSR over positions in rows and cols (``edges``: their
positions in the layer graph) and the columns every matching of the set covers.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from .hashing import pair_hash

__all__ = ["Cell", "only_twins", "pick_cell", "without"]


def _edge_rows(ptr: np.ndarray) -> np.ndarray:
    return np.repeat(np.arange(ptr.size - 1, dtype=np.int64), np.diff(ptr))


def _one_class_per_component(labels: np.ndarray, classes: np.ndarray, n_components: int) -> bool:
    reference = np.zeros(n_components, np.int64)
    reference[labels] = classes  # any member's class; all must equal it
    return bool((classes == reference[labels]).all())


def only_twins(part, twins_a: np.ndarray, twins_b: np.ndarray, n: int) -> bool:
    """Whether every connected piece of the part has all its rows mutual twins in A and all its real columns mutual
    twins in B: then every matching of the set pairs the same twin classes (each pair's C depends on the classes
    only, and within a piece C < 1 on every real pair while an exit costs 1, so even the number of pairs is fixed),
    so all give the same values, bit for bit, and states that differ by twin swaps (twins.py). Symmetric in A, B."""
    rows, cols, ptr, idx, _, _ = part
    n_rows = rows.size
    adjacency = sp.csr_matrix((np.ones(idx.size), (_edge_rows(ptr), idx + n_rows)), shape=(n_rows + cols.size,) * 2)
    n_components, labels = connected_components(adjacency, directed=False)
    real = cols < n
    return (_one_class_per_component(labels[:n_rows], twins_a[rows], n_components)
            and _one_class_per_component(labels[n_rows:][real], twins_b[cols[real]], n_components))


class Cell:
    """The individualisation's choice: A's neuron i and B's neuron j, the cells they were chosen from, and whether the
    cell's key was attained by two colour pairs that only differ by orientation (then no symmetric rule can choose)."""

    def __init__(self, i: int, j: int, cell_a: np.ndarray, cell_b: np.ndarray, ambiguous: bool):
        self.i, self.j, self.cell_a, self.cell_b, self.ambiguous = i, j, cell_a, cell_b, ambiguous


def pick_cell(part, colour_a: np.ndarray, colour_b: np.ndarray, n: int) -> Cell:
    """The colour pair (c_A, c_B) of the part's real usable edges with the least (pair_hash, min, max) -- symmetric and
    label-free; A's cell: the part's rows of colour c_A with a usable edge to colour c_B, B's likewise; i = the least
    index of A's cell, j = the least index among i's usable partners in B's cell."""
    rows, cols, ptr, idx, _, _ = part
    edge_rows, edge_cols = rows[_edge_rows(ptr)], cols[idx]
    real = edge_cols < n
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
