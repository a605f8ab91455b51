"""The memory budget: sizes a file declares are checked against it before anything is allocated.

budget = ``NNSTD_DIST_MEMORY_BUDGET`` (bytes, or with a unit: 512MB, 4GiB) or, unset,
min(physical memory / 4, 2 GiB). A layer costs n_in * n_out bytes as the dense bool mask the store
keeps per chunk; the dense assignment solver holds about three n_out x n_out float64 matrices.
"""

from __future__ import annotations

import os
import re

from .errors import InputError

__all__ = ["ENV", "memory_budget", "check_bytes", "check_dense_solver", "check_layer_shape", "solver_bytes", "byte_size"]

ENV = "NNSTD_DIST_MEMORY_BUDGET"
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_SOLVER_MATRICES = 3  # cost matrix, its intersection/union temporaries, the solver's own copy


def memory_budget() -> int:
    """Bytes one array, layer or solver call may take."""
    given = os.environ.get(ENV, "").strip()
    if given:
        m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([a-zA-Z]*)", given)
        if not m or m.group(2).lower() not in _UNITS:
            raise InputError(f"{ENV}={given!r}: expected bytes, e.g. 2000000000 or 2GB or 512MiB")
        return int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    try:
        physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        physical = 8 * 2**30
    return min(physical // 4, 2 * 2**30)


def byte_size(n: float) -> str:
    """A size for people, in decimal units: ``512 B``, ``1.5 kB``, ``3.2 MB``, ``1.0 GB``, ``7.3 TB``."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000


def check_bytes(where: str, what: str, nbytes: int) -> None:
    """An InputError naming ``where`` when ``nbytes`` exceeds the memory budget."""
    budget = memory_budget()
    if nbytes > budget:
        raise InputError(f"{where}: {what} needs {byte_size(nbytes)}, above the memory budget of {byte_size(budget)} (set {ENV} to allow more)")


def solver_bytes(n_out: int) -> int:
    """Bytes the dense assignment solver needs for a layer of n_out output neurons."""
    return _SOLVER_MATRICES * 8 * n_out * n_out


def check_dense_solver(n_out: int) -> None:
    """The exact solver's dense n_out x n_out matrices fit the budget; else an InputError naming the fast solver."""
    nbytes, budget = solver_bytes(n_out), memory_budget()
    if nbytes > budget:
        raise InputError(
            f"a layer of {n_out} output neurons needs {byte_size(nbytes)} for the exact solver's {n_out} x {n_out} matrices, above the "
            f"memory budget of {byte_size(budget)}: use `solver` 'fast' (its memory grows with the connections), or set {ENV} to allow more"
        )


def check_layer_shape(where: str, shape) -> None:
    """A layer shape that is 2-D, non-empty, and whose dense mask and solver matrices fit the budget."""
    shape = tuple(int(s) for s in shape)
    if len(shape) != 2:
        raise InputError(f"{where}: shape {shape}; layers must be 2-D")
    n_in, n_out = shape
    if n_in < 1 or n_out < 1:
        raise InputError(f"{where}: empty layer of shape {n_in} x {n_out}")
    check_bytes(where, f"a {n_in} x {n_out} layer (its dense mask)", n_in * n_out)
    check_bytes(where, f"a layer of {n_out} output neurons (the assignment solver's {n_out} x {n_out} matrices)", solver_bytes(n_out))
