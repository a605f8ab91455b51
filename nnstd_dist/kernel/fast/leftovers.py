"""Step 3 of a layer: the neurons left unmatched, paired in sorted key order, individualising where equal keys are not twins.

Leftovers pay C = 0 (both without inputs) or 1 (no shared input), whoever pairs with whom, but the pairing
sets the next layer's rows. A's and B's leftovers are sorted by key (key1, colour): neurons without inputs
first, so that as many as possible pair at 0, and A's t-th is paired with B's t-th (the Monge optimum of the
squared rank distance). A run of equal keys in either network is a choice; it changes nothing when the run's
neurons are mutual twins. At the first position p where a run is not, A's and B's neurons at p are
individualised as a pair (their runs are the cells to certify), both networks refined, the pair fixed and
the rest sorted again by the new colours. Symmetric in A and B.
"""

from __future__ import annotations

import numpy as np

from .ties import key_order

__all__ = ["first_untwinned_run", "sorted_leftovers"]


def sorted_leftovers(free: np.ndarray, key1: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """The neurons ``free`` (ascending) in key order, ties by index."""
    return free[key_order(key1[free], colour[free])]


def _runs(ordered: np.ndarray, key1: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """Run id per position of ``ordered``: consecutive positions of equal keys share one."""
    same = (key1[ordered][1:] == key1[ordered][:-1]) & (colour[ordered][1:] == colour[ordered][:-1])
    return np.concatenate(([0], np.cumsum(~same)))


def first_untwinned_run(ordered: np.ndarray, key1: np.ndarray, colour: np.ndarray, twins: np.ndarray) -> tuple[int, np.ndarray]:
    """(position where the first run of equal keys whose members are not all mutual twins starts, the run id per position);
    the position is ``ordered.size`` when there is none."""
    runs = _runs(ordered, key1, colour)
    if ordered.size < 2:
        return ordered.size, runs
    tw = twins[ordered]
    differs = (runs[1:] == runs[:-1]) & (tw[1:] != tw[:-1])
    if not differs.any():
        return ordered.size, runs
    bad_run = runs[1:][differs].min()
    return int(np.flatnonzero(runs == bad_run)[0]), runs
