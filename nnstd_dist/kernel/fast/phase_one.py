"""Phase 1 of a layer: an optimal assignment of the layer graph's exact integer costs, with optimal integer duals.

Any algorithm will do: by complementary slackness the optimal matchings are the tight-edge matchings that
cover every column of negative dual, whichever optimal duals are used (scc.py), so nothing after phase 1
depends on which algorithm ran. ``jv``: jv.solve. ``lapjvsp``: scipy's LAPJVsp on the same costs (+1: it needs
non-zero weights), then duals for its matching by jv.duals_of.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import csr_array
from scipy.sparse.csgraph import min_weight_full_bipartite_matching

from .jv import duals_of, solve
from .version import FAST_ALGORITHMS

__all__ = ["PHASE_ONE", "pick_algorithm", "phase_one"]


def _jv(indptr, indices, cost, n_cols):
    return solve(indptr, indices, cost, n_cols)


def _lapjvsp(indptr, indices, cost, n_cols):
    weights = csr_array(((cost + 1).astype(np.float64), indices, indptr), shape=(indptr.size - 1, n_cols))
    row_match = min_weight_full_bipartite_matching(weights)[1].astype(np.int64)
    ok, u, v = duals_of(indptr, indices, cost, row_match, n_cols)
    if not ok:
        raise ArithmeticError("LAPJVsp's matching is not optimal on the integer costs")
    return row_match, u, v


PHASE_ONE = {"jv": _jv, "lapjvsp": _lapjvsp}
assert tuple(PHASE_ONE) == FAST_ALGORITHMS


def pick_algorithm(n: int, edges: int) -> str:
    """The default's choice for a layer of n output neurons and ``edges`` pairs that share inputs: jv, the faster in
    every case measured (benchmarks/bench_fast.py)."""
    return "jv"


def phase_one(indptr, indices, cost, n_cols, algorithm: str):
    """(row_match, u, v): an optimal assignment of every row and optimal integer duals."""
    if algorithm == "auto":
        algorithm = pick_algorithm(indptr.size - 1, indices.size)
    return PHASE_ONE[algorithm](indptr, indices, cost, n_cols)
