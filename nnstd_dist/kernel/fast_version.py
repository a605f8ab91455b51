"""The fast solver's names that need no compiler: its algorithms and its rule's version (fast.py imports numba)."""

from __future__ import annotations

__all__ = ["FAST_ALGORITHMS", "RULE_VERSION"]

# Stores record it with fast results: raise it whenever fast.py's rule can change a value.
RULE_VERSION = 1
FAST_ALGORITHMS = ("jv", "lapjvsp")  # "auto" (the default) picks one per layer: fast.pick_algorithm
