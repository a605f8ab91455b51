"""Readers that turn topology files into lists of layer masks; nothing here knows zarr or dask.

Layout read here (SET): a directory holding ``weight_l0.npz ... weight_lK.npz``, each written by
``scipy.sparse.save_npz`` (or ``numpy.savez`` of one 2-D array), ``n_in (+1) x n_out``; SET keeps
the bias as the last row, which is dropped unless ``keep_last_row``. Non-zero means connected.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from .errors import InputError

__all__ = ["load_set_network", "set_layer_files", "read_npz_matrix"]

_LAYER_FILE = re.compile(r"^weight_l(\d+)\.npz$")


def set_layer_files(directory: str | Path) -> list[Path]:
    """The ``weight_lK.npz`` files of a SET directory in layer order; K must run 0, 1, ... with no gap."""
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(f"{directory}: not a directory")
    found = {}
    for path in directory.iterdir():
        m = _LAYER_FILE.match(path.name)
        if m:
            found[int(m.group(1))] = path
    if not found:
        raise InputError(f"{directory}: no weight_l*.npz files")
    missing = [k for k in range(max(found) + 1) if k not in found]
    if missing:
        raise InputError(f"{directory}: missing weight_l{missing[0]}.npz (layers found: {sorted(found)})")
    return [found[k] for k in sorted(found)]


def read_npz_matrix(path: str | Path):
    """One 2-D matrix from an npz: a scipy sparse matrix (save_npz) or a single dense array (savez)."""
    path = Path(path)
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise InputError(f"{path}: a single .npy array, not an npz archive")
        with loaded as npz:
            keys = set(npz.files)
            if {"format", "shape", "data"} <= keys:  # scipy.sparse.save_npz layout
                matrix = sp.load_npz(path)
            elif len(keys) == 1:
                matrix = npz[next(iter(keys))]
            else:
                raise InputError(f"{path}: expected one sparse matrix or one array, found arrays {sorted(keys)}")
    except InputError:
        raise
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError) as exc:
        raise InputError(f"{path}: not a readable npz file ({exc})") from None
    if matrix.ndim != 2:
        raise InputError(f"{path}: expected a 2-D matrix, got shape {matrix.shape}")
    if not sp.issparse(matrix) and not np.issubdtype(matrix.dtype, np.number) and matrix.dtype != bool:
        raise InputError(f"{path}: expected numbers, got dtype {matrix.dtype}")
    data = matrix.data if sp.issparse(matrix) else matrix
    if np.issubdtype(data.dtype, np.inexact) and not np.isfinite(data).all():
        raise InputError(f"{path}: contains NaN or infinite weights")
    return matrix


def load_set_network(path: str | Path, keep_last_row: bool = False) -> list[sp.csr_matrix]:
    """Layer masks (CSR bool, ``n_in x n_out``) of a SET directory, bias row dropped by default."""
    masks = []
    for file in set_layer_files(path):
        matrix = read_npz_matrix(file)
        if sp.issparse(matrix):
            matrix = sp.csr_matrix(matrix)  # save_npz may have written coo, dia or bsr: no row slicing there
        if not keep_last_row:
            if matrix.shape[0] < 2:
                raise InputError(f"{file}: {matrix.shape[0]} row(s), nothing left once the bias row is dropped")
            matrix = matrix[:-1]
        mask = sp.csr_matrix(matrix != 0) if not sp.issparse(matrix) else sp.csr_matrix(matrix) != 0
        masks.append(sp.csr_matrix(mask, dtype=bool))
    return masks
