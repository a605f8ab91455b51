"""Stopping the real processes (dask scheduler and workers) that a test started."""

from __future__ import annotations

import subprocess


def stop_processes(procs, timeout: float = 20) -> None:
    """Terminate ``procs`` newest first, wait for each, and kill one that outlives ``timeout`` seconds."""
    for p in reversed(procs):
        p.terminate()
    for p in reversed(procs):
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
