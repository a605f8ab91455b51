"""The fast solver's first compile, said in one line on stderr, once per machine and numba cache.

numba compiles the fast solver's functions on their first call and caches the machine code
(``cache=True``), so only the first run on a machine is slow: 20-30 s of silence without this line.
Whether that first run is still to come is read from a marker file written after a successful
warm-up, not from numba's own cache index: the index files' names and layout are numba's internals
(one per function and line, beside each module or in a user-wide fallback folder), and the fast
solver's modules are being moved and rewritten. The marker's name is a hash of what invalidates
numba's cache -- every kernel source file's size and mtime (numba's own stamp), numba's and
Python's versions -- plus this package's version and the cache folder; it lives in numba's cache
folder (``NUMBA_CACHE_DIR``, or the kernel's ``__pycache__`` where numba writes beside the
modules), so deleting the cache deletes the marker too. A read-only folder means the line is shown
again next time, never an error.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import sys
import time
from pathlib import Path

from . import __version__

__all__ = ["compile_fast_solver", "marker_path", "nnstd", "EXPECTED"]

EXPECTED = "about 20-30 s"  # warm_up with an empty NUMBA_CACHE_DIR: 22.0 s wall (20.2 s CPU) at load 0.5, 2 cores
KERNEL = Path(__file__).parent / "kernel"
_done_here = False  # this process has checked (or compiled) already


def _warm_up():
    """The fast solver's warm-up function (the one import to change when the solver's modules move)."""
    from .kernel.fast import warm_up

    return warm_up


def marker_path() -> Path:
    """The marker file that says the fast solver is compiled for this machine, numba cache and kernel source."""
    stamps = sorted((str(p.relative_to(KERNEL)), p.stat().st_size, p.stat().st_mtime_ns) for p in KERNEL.rglob("*.py"))
    cache = os.environ.get("NUMBA_CACHE_DIR", "")
    key = repr((__version__, importlib.metadata.version("numba"), sys.version, cache, stamps))
    if cache:
        folder = Path(cache)
    elif os.access(KERNEL, os.W_OK):
        folder = KERNEL / "__pycache__"  # where numba writes its cache when the package folder is writable
    else:
        folder = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nnstd-dist"
    return folder / f"nnstd-dist-fast-{hashlib.sha256(key.encode()).hexdigest()[:16]}.compiled"


def compile_fast_solver(quiet: bool = False, stream=None) -> bool:
    """Compile (or load) the fast solver if this machine has not yet; the first time, say so on stderr first. True if it compiled."""
    global _done_here
    if _done_here:
        return False
    marker = marker_path()
    if marker.exists():
        _done_here = True
        return False
    if not quiet:
        print(f"Compiling the fast solver (numba, once per machine; {EXPECTED}) ...", file=stream or sys.stderr, flush=True)
    start = time.perf_counter()
    _warm_up()()
    _done_here = True
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(f"compiled in {time.perf_counter() - start:.1f} s\n")
    except OSError:
        pass  # a read-only cache folder: the line comes again next time, which is all it costs
    return True


def nnstd(layers_a, layers_b, blocks=None, solver: str = "exact", max_layer: int | None = None, algorithm: str = "auto"):
    """Per-layer NNSTD of network A to network B: a float64 array, one distance per layer (0..max_layer if given).

    ``layers_a``, ``layers_b``: lists of ``n_in x n_out`` masks (2-D arrays or scipy sparse, no bias rows); ``blocks``:
    rows of layer k per output neuron of layer k-1 for convolutions (None: fully connected). ``solver``: "exact" (the
    paper's numbers, bit for bit) or "fast" (symmetric; blind to neuron numbering on certified pairs; the first fast call
    on a machine compiles for 20-30 s and says so on stderr). For the certified flag use
    ``nnstd_dist.kernel.nnstd_certified(prepare(a), prepare(b), solver="fast")``. This is
    nnstd_dist.kernel.distance.nnstd, loaded on first use so that ``import nnstd_dist`` stays light."""
    from .kernel import nnstd as kernel_nnstd

    if solver == "fast":
        compile_fast_solver()
    return kernel_nnstd(layers_a, layers_b, blocks=blocks, solver=solver, max_layer=max_layer, algorithm=algorithm)
