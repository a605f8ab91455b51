"""Crash injection for tests: ``NNSTD_DIST_FAULT_AFTER_WRITES=k`` ends the process abruptly before its (k+1)-th store write.

Every write a command makes to a store (a zarr chunk or metadata file set or deleted, the lock,
the rename that publishes a new store or an export) first calls ``before_write``. Unset, it costs
one environment lookup. Set, the process dies with ``os._exit(FAULT_EXIT)`` (no cleanup, no
``finally``, like SIGKILL) once k writes are done, so a test can kill a command at every point.
"""

from __future__ import annotations

import os
import threading

__all__ = ["ENV", "FAULT_EXIT", "active", "before_write"]

ENV = "NNSTD_DIST_FAULT_AFTER_WRITES"
FAULT_EXIT = 86
_lock = threading.Lock()  # zarr writes chunks from several threads and coroutines
_writes = 0


def active() -> bool:
    return bool(os.environ.get(ENV))


def before_write() -> None:
    """Count one write; die first if the allowed number of writes is used up."""
    limit = os.environ.get(ENV)
    if not limit:
        return
    global _writes
    with _lock:
        if _writes >= int(limit):
            os._exit(FAULT_EXIT)
        _writes += 1
