"""A layer mask: non-zero weight = connection, kept as CSR bool ``n_in x n_out``; the checks that readers and kernel share.

Weights must be finite (NaN != 0 would count as a connection), and layer k's input rows must be
``blocks[k]`` times layer k-1's outputs (one row per output neuron for a fully connected layer,
one per kernel position for a convolution), or NNSTD's neuron matching cannot carry over.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["positions_to_csr", "dense_to_csr", "to_mask", "has_nonfinite", "chain_break", "describe_shapes"]


def positions_to_csr(flat: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    """Sorted row-major positions ``row * n_cols + col`` -> CSR bool mask (they are already in CSR order)."""
    n_rows, n_cols = shape
    rows, cols = np.divmod(flat, n_cols)
    index_dtype = np.int32 if max(flat.size, n_rows, n_cols) < 2**31 else np.int64
    indptr = np.zeros(n_rows + 1, dtype=index_dtype)
    np.cumsum(np.bincount(rows, minlength=n_rows), out=indptr[1:])
    return sp.csr_matrix((np.ones(flat.size, dtype=bool), cols.astype(index_dtype), indptr), shape=(n_rows, n_cols))


def dense_to_csr(array: np.ndarray) -> sp.csr_matrix:
    """A 2-D array's non-zeros as CSR bool with sorted indices; ~15x faster than ``sp.csr_matrix(array != 0)``."""
    return positions_to_csr(np.flatnonzero(array), array.shape)


def to_mask(matrix) -> sp.csr_matrix:
    """Non-zero entries of a dense or sparse 2-D matrix as CSR bool."""
    return sp.csr_matrix(matrix != 0, dtype=bool) if sp.issparse(matrix) else dense_to_csr(matrix)


def has_nonfinite(values: np.ndarray) -> bool:
    """Whether float ``values`` hold a NaN or an infinity (integers and bools never do)."""
    return bool(np.issubdtype(values.dtype, np.inexact) and not np.isfinite(values).all())


def chain_break(shapes, blocks=None) -> int | None:
    """The first layer k > 0 whose input rows are not blocks[k] x layer k-1's outputs; None if the layers chain."""
    for k in range(1, len(shapes)):
        if shapes[k][0] != (1 if blocks is None else blocks[k]) * shapes[k - 1][1]:
            return k
    return None


def describe_shapes(shapes) -> str:
    """``[784x784, 784x10]``: layer shapes for a message."""
    return "[" + ", ".join(f"{a}x{b}" for a, b in shapes) + "]"
