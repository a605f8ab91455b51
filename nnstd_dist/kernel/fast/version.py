"""The fast solver's names that need no compiler: its algorithms and its rule's version (importing them loads no numba)."""

from __future__ import annotations

__all__ = ["FAST_ALGORITHMS", "RULE_VERSION"]

# Stores record it with fast results: raise it whenever the rule can change a value.
# 2: colours refined to a stable partition, joint individualisation-refinement, twins, certificates, canonical orientation.
RULE_VERSION = 2
FAST_ALGORITHMS = ("jv", "lapjvsp")  # "auto" (the default) picks one per layer: phase_one.pick_algorithm
