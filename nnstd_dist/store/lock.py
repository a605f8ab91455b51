"""The run lock: a JSON file ``{host, pid, started, command, token}`` created atomically while one ingest or compute runs.

Created whole or not at all: the content is written to a private temporary file, then ``os.link``-ed
to the lock's name, which fails if the name exists (atomic, also on NFS), so no reader ever sees an
empty or half-written lock, and a full disk leaves no lock behind. A lock whose process is gone
(same host) is stale; taking it over is serialised by an ``flock`` on ``nnstd-dist.lock.guard`` and
re-checks the holder under it, so two runs never both take the same stale lock. Another host's
lock, or a damaged one, is only taken with ``force``; the way out every message names is to remove
the lock file. A link, FIFO or folder at the lock's name is a damaged lock, never followed or waited
on, and the guard is opened without following a link. Plain files, no zarr.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import stat
import time
import uuid
from pathlib import Path

from . import faults, files
from ..errors import LockError, StoreError

__all__ = ["LOCK_FILE", "GUARD_FILE", "hold", "holder", "process_alive"]

LOCK_FILE = "nnstd-dist.lock"
GUARD_FILE = "nnstd-dist.lock.guard"
_LOCK_MAX = 1 << 16  # a lock is ~200 bytes of JSON; more is damage, never read whole


@contextlib.contextmanager
def hold(directory: str | Path, command: str, force: bool = False):
    """Hold the lock of ``directory`` for one run; a lock whose process is gone (same host) is taken over."""
    directory = Path(directory)
    path = directory / LOCK_FILE
    me = {
        "host": socket.gethostname(), "pid": os.getpid(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "command": command, "token": uuid.uuid4().hex,
    }
    while not _create(path, me):
        other = holder(path)
        if not other:
            continue  # released between our attempt and our look: try again
        if not (force or _is_stale(other)):
            raise LockError(_in_use(directory, path, other))
        _take_over(directory, path, other)
    try:
        yield
    finally:
        if holder(path).get("token") == me["token"]:
            with contextlib.suppress(OSError):
                os.unlink(path)


def holder(path: str | Path) -> dict:
    """The lock's content; {} if there is none; ``{"damaged": why}`` if it cannot be read as a lock."""
    try:
        text = files.read_regular(Path(path), limit=_LOCK_MAX)  # a FIFO or link there is damage, never waited on or followed
    except FileNotFoundError:
        return {}
    except files.Trespass as exc:
        return {"damaged": exc.what}
    except OSError as exc:
        return {"damaged": f"unreadable: {exc.strerror or exc}"}
    if not text.strip():
        return {"damaged": "empty"}
    try:
        content = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        return {"damaged": "not JSON"}
    if not isinstance(content, dict) or not content:
        return {"damaged": "not a lock record"}
    pid = content.get("pid")
    if "pid" in content and not (isinstance(pid, int) and not isinstance(pid, bool) and 0 < pid < 2**31):
        return {"damaged": f"its pid {str(pid)[:40]} is not a process id"}
    return content


def _create(path: Path, me: dict) -> bool:
    """Publish our lock whole under ``path``; False if a lock is already there."""
    tmp = path.with_name(f".{path.name}.{me['token']}.tmp")
    try:
        faults.before_write()
        with open(tmp, "x") as f:
            json.dump(me, f)
        faults.before_write()
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    except OSError as exc:
        raise StoreError(f"{path.parent}: cannot create the lock {path.name} ({exc.strerror or exc}); is the store read-only or the disk full?") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def _take_over(directory: Path, path: Path, seen: dict) -> None:
    """Remove the lock ``seen`` if it is still the one there: under the guard, so only one run removes it."""
    try:
        guard = os.open(directory / GUARD_FILE, os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
        if not stat.S_ISREG(os.fstat(guard).st_mode):
            os.close(guard)
            raise files.Trespass(directory / GUARD_FILE, "not a regular file")
    except OSError as exc:  # a link (ELOOP) or a FIFO there: never followed, never waited on
        raise StoreError(f"{directory}: cannot use {GUARD_FILE} ({exc.strerror or exc}); if no nnstd-dist run is using the store, "
                         f"remove {directory / GUARD_FILE} and run again") from None
    try:
        fcntl.flock(guard, fcntl.LOCK_EX)
        if holder(path) == seen:
            with contextlib.suppress(FileNotFoundError):
                faults.before_write()
                os.unlink(path)
    finally:
        os.close(guard)  # releases the flock


def _in_use(directory: Path, path: Path, other: dict) -> str:
    way_out = f"if no nnstd-dist run is using the store, remove {path} and run again"
    if "damaged" in other:
        return f"{directory}: its lock file is damaged ({other['damaged']}); {way_out}"
    return (
        f"{directory}: in use by `{other.get('command', '?')}` (host {other.get('host', '?')}, pid {other.get('pid', '?')}, "
        f"started {other.get('started', '?')}); wait for it, or {way_out}"
    )


def _is_stale(other: dict) -> bool:
    """A lock is stale when it names a process on this host that no longer exists."""
    if other.get("host") != socket.gethostname() or not isinstance(other.get("pid"), int):
        return False  # another machine's run, or a damaged lock: only force may take it
    return not process_alive(other["pid"])


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host still runs; one we may not signal counts as running.

    A zombie (killed, not yet reaped) counts as gone: it holds nothing, and where nobody reaps
    orphans -- a container's or sandbox's init, a batch system's killed job -- it may stay forever.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (or it just exited): trust kill()
    return stat[stat.rindex(")") + 2 :][:1] != "Z"  # the state follows the command name in parentheses
