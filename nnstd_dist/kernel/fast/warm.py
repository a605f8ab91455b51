"""Compile (or load from numba's cache) every compiled function of the fast solver, on tiny pairs with ties and twins."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["warm_up"]


def warm_up() -> None:
    """Compiling takes about 11-20 s of CPU once per machine (numba's cache, ``cache=True``: next to the package or in
    ``NUMBA_CACHE_DIR``); loading from the cache then costs a new worker process about 0.2 s."""
    from ..distance import nnstd_prepared, prepare  # lazily: distance.py imports this package lazily too

    from .version import FAST_ALGORITHMS

    layers = [np.array([[1, 1, 0], [1, 1, 0], [0, 0, 1]]), np.array([[1, 0], [0, 1], [1, 1]])]
    other = [np.array([[1, 0, 1], [0, 1, 0], [0, 1, 1]]), np.array([[1, 1], [0, 1], [1, 0]])]
    a, b = prepare([sp.csr_matrix(m) for m in layers]), prepare([sp.csr_matrix(m) for m in other])
    for algorithm in FAST_ALGORITHMS:
        nnstd_prepared(a, b, solver="fast", algorithm=algorithm)
