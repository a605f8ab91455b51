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

import numba as nb

from .ties import key_order

__all__ = ["leftover_runs"]

# numba's cache keys this module's compiled code on this file alone; it calls ties.key_order, so the digest of
# ties.py (sha256, 16 hex digits) is written here: editing ties.py edits this file too (scripts/fast_depends_on.py).
DEPENDS_ON = "79c3b9a07ce7b408"


@nb.njit(cache=True)
def _sorted(free, key1, colour):
    return free[key_order(key1[free], colour[free])]


@nb.njit(cache=True)
def _same_key(ordered, key1, colour, t):
    return key1[ordered[t]] == key1[ordered[t - 1]] and colour[ordered[t]] == colour[ordered[t - 1]]


@nb.njit(cache=True)
def _first_untwinned(ordered, key1, colour, twins):
    """Start of the first run of equal keys whose members are not all mutual twins (ordered.size if none)."""
    start = 0
    for t in range(1, ordered.size):
        if not _same_key(ordered, key1, colour, t):
            start = t
        elif twins[ordered[t]] != twins[ordered[start]]:
            return start
    return ordered.size


@nb.njit(cache=True)
def _run_around(ordered, key1, colour, p):
    """[start, end) of the run of equal keys holding position p."""
    start, end = p, p + 1
    while start > 0 and _same_key(ordered, key1, colour, start):
        start -= 1
    while end < ordered.size and _same_key(ordered, key1, colour, end):
        end += 1
    return start, end


@nb.njit(cache=True)
def leftover_runs(free_a, free_b, key1_a, colour_a, twins_a, key1_b, colour_b, twins_b):
    """(A's leftovers in key order, B's, p, A's run at p, B's run at p): p is the first position where a run of equal
    keys in either network is not all mutual twins (the runs there are the cells to individualise), or the number
    of leftovers when there is none."""
    in_a, in_b = _sorted(free_a, key1_a, colour_a), _sorted(free_b, key1_b, colour_b)
    p = min(_first_untwinned(in_a, key1_a, colour_a, twins_a), _first_untwinned(in_b, key1_b, colour_b, twins_b))
    if p == in_a.size:
        return in_a, in_b, p, in_a[:0], in_b[:0]
    start_a, end_a = _run_around(in_a, key1_a, colour_a, p)
    start_b, end_b = _run_around(in_b, key1_b, colour_b, p)
    return in_a, in_b, p, in_a[start_a:end_a], in_b[start_b:end_b]
