"""The run lock: a JSON file ``{host, pid, started, command}`` created exclusively while one ingest or compute runs.

A lock whose process is gone (same host) is stale and taken over; another host's lock is taken
only when forced. Plain files, no zarr: ``store.locked`` puts it around a store.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path

from .errors import LockError

__all__ = ["LOCK_FILE", "hold", "holder"]

LOCK_FILE = "nnstd-dist.lock"


@contextlib.contextmanager
def hold(directory: str | Path, command: str, force: bool = False):
    """Hold the lock of ``directory`` for one run; a lock whose process is gone (same host) is taken over."""
    directory = Path(directory)
    path = directory / LOCK_FILE
    me = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.strftime("%Y-%m-%d %H:%M:%S"), "command": command}
    while True:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            other = holder(path)
            if force or _is_stale(other):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                continue
            raise LockError(
                f"{directory}: in use by `{other.get('command', '?')}` (host {other.get('host', '?')}, pid {other.get('pid', '?')}, "
                f"started {other.get('started', '?')}); wait for it, or use `force` if that run is dead"
            ) from None
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        break
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            if holder(path).get("pid") == me["pid"]:
                os.unlink(path)


def holder(path: Path) -> dict:
    """The lock file's contents; {} when there is none."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        return {"host": "?", "pid": "?", "started": "?", "command": "unknown (unreadable lock)"}


def _is_stale(holder: dict) -> bool:
    """A lock is stale when it names a process on this host that no longer exists."""
    if not holder:
        return True
    if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
        return False  # another machine's run: only `force` may take it
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
