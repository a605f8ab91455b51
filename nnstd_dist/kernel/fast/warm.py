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

    # cherries (issue 27): ties, leftovers, an individualisation; twins: a piece of twins; ones: the dense count
    cherries = ([[[1, 1, 0, 0], [0, 0, 1, 1]], [[1, 0], [0, 1], [1, 0], [0, 1]], [[1], [1]]],
                [[[1, 1, 1, 1], [0, 0, 0, 0]], [[1, 0], [1, 0], [0, 1], [0, 1]], [[1], [1]]])
    twins = ([[[1, 1, 0], [1, 1, 0], [0, 0, 1]], [[1, 0], [1, 0], [1, 1]]], [[[1, 0, 1], [1, 0, 1], [0, 1, 1]], [[1, 1], [0, 1], [1, 1]]])
    ones = ([np.ones((4, 4)), np.ones((4, 2))], [np.ones((4, 4)), np.eye(4, 2)])
    for pair in (cherries, twins, ones):
        a, b = (prepare([sp.csr_matrix(np.array(m)) for m in layers]) for layers in pair)
        for algorithm in FAST_ALGORITHMS:
            nnstd_prepared(a, b, solver="fast", algorithm=algorithm)
