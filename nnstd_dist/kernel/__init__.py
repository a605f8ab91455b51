"""The distance itself: NNSTD between two networks' layer masks (numpy, scipy and numba; no I/O, no engine)."""

from .distance import FAST_ALGORITHMS, SOLVERS, TIE_RULES, Topology, as_mask, cost_matrix, nnstd, nnstd_certified, nnstd_prepared, prepare

__all__ = ["FAST_ALGORITHMS", "SOLVERS", "TIE_RULES", "Topology", "as_mask", "cost_matrix", "nnstd", "nnstd_certified", "nnstd_prepared", "prepare"]
