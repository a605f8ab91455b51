"""The distance itself: NNSTD between two networks' layer masks (numpy and scipy; no I/O, no engine)."""

from .distance import SOLVERS, TIE_RULES, Topology, as_mask, cost_matrix, nnstd, nnstd_prepared, prepare

__all__ = ["SOLVERS", "TIE_RULES", "Topology", "as_mask", "cost_matrix", "nnstd", "nnstd_prepared", "prepare"]
