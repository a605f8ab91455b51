"""The layer graph of a dense layer pair, from I = A^T B as one matrix product (BLAS) instead of the compiled per-edge count.

Both give the same graph -- the same pairs that share inputs, the same exact integer counts I (float32 holds counts
below 2^24 exactly) and so the same costs; only the order of the pairs within a row may differ, which no value
depends on (the rule reads sets of optimal matchings, package docstring). graph.build walks, for every connection of A,
the connections of B's row: about nnz_A * nnz_B / n_in steps; the product costs n_in * n_A * n_B multiply-adds at BLAS
speed, so it is chosen when the layers are dense enough that it is the cheaper (``dense_is_cheaper``).
"""

from __future__ import annotations

import numpy as np

from .graph import layer_graph

__all__ = ["dense_is_cheaper", "dense_mask", "build_dense"]

# BLAS does about this many multiply-adds in the time graph.build takes per step: measured on 64-300-300-300-10,
# the product took 0.5x graph.build's time at 90 % density (steps / multiply-adds 0.81) and about the same at 50 % (0.25)
BLAS_ADVANTAGE = 3
MAX_CELLS = 4_000_000  # the dense product's size in float64 (32 MB): beyond it, the sparse count


def dense_is_cheaper(n_in: int, n_a: int, n_b: int, nnz_a: int, nnz_b: int) -> bool:
    return n_a * n_b <= MAX_CELLS and nnz_a * nnz_b * BLAS_ADVANTAGE > n_in * n_in * n_a * n_b


def dense_mask(mask) -> np.ndarray | None:
    """The mask as a dense float32 array (counts below 2^24 are exact in float32 products) when a product could ever
    be the cheaper count for it: dense_is_cheaper needs density_A * density_B > 1 / BLAS_ADVANTAGE, so at least that
    density here; None otherwise (no memory spent on sparse layers)."""
    n_in, n_out = mask.shape
    if n_in * n_out > MAX_CELLS or mask.nnz * BLAS_ADVANTAGE <= n_in * n_out or n_in >= 2**24:
        return None
    return np.asarray(mask.toarray(), np.float32)


def build_dense(a_dense: np.ndarray, b_dense: np.ndarray, rowmap, deg_a, deg_b):
    """(e_ptr, indptr, indices, cost, c) as graph.build returns them, with I = A^T B[rowmap] from one dense product."""
    shared = a_dense.T @ b_dense[rowmap]
    rows, cols = np.nonzero(shared)
    e_ptr = np.zeros(shared.shape[0] + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=shared.shape[0]), out=e_ptr[1:])
    counts = np.rint(shared[rows, cols]).astype(np.int64)
    indptr, indices, cost, c = layer_graph(e_ptr, cols.astype(np.int64), counts, deg_a, deg_b)
    return e_ptr, indptr, indices, cost, c
