"""The run lock: a JSON file ``{host, pid, started, command, token}`` created atomically while one ingest or compute runs.

Created whole or not at all, and only if no lock is there (``Storage.create``: an ``os.link`` of a
private file on a filesystem, atomic also on NFS; a create-only PUT on an object store), so no reader
ever sees an empty or half-written lock, and a full disk leaves no lock behind. A lock whose process
is gone (same host) is stale; taking it over is serialised by the storage's guard (an ``flock``) and
re-checks the holder under it, so two runs never both take the same stale lock. Another host's
lock, or a damaged one, is only taken with ``force``; the way out every message names is to remove
the lock file. A link, FIFO or folder at the lock's name is a damaged lock, never followed or waited
on. No zarr.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import uuid
from pathlib import Path

from . import files
from .storage.local import GUARD_FILE  # the guard of a store on a filesystem, named here beside the lock
from ..errors import LockError, StoreError

__all__ = ["LOCK_FILE", "GUARD_FILE", "hold", "holder", "process_alive"]

LOCK_FILE = "nnstd-dist.lock"
_LOCK_MAX = 1 << 16  # a lock is ~200 bytes of JSON; more is damage, never read whole


@contextlib.contextmanager
def hold(storage, command: str, force: bool = False):
    """Hold the lock of the store in ``storage`` (storage/) for one run; a lock whose process is gone (same host) is taken over."""
    storage = _storage(storage)
    me = {
        "host": socket.gethostname(), "pid": os.getpid(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "command": command, "token": uuid.uuid4().hex,
    }
    while not _create(storage, me):
        other = holder(storage)
        if not other:
            continue  # released between our attempt and our look: try again
        if not (force or _is_stale(other)):
            raise LockError(_in_use(storage, other))
        _take_over(storage, other)
    try:
        yield
    finally:
        if holder(storage).get("token") == me["token"]:
            with contextlib.suppress(OSError):
                storage.delete(LOCK_FILE, hook=False)


def holder(storage) -> dict:
    """The lock's content; {} if there is none; ``{"damaged": why}`` if it cannot be read as a lock."""
    storage = _storage(storage)
    try:
        text = storage.read(LOCK_FILE, limit=_LOCK_MAX)  # a FIFO or link there is damage, never waited on or followed
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


def _storage(where):
    """A store's storage, given it or (a local store) its folder or its lock file's path."""
    from .storage import Storage, open_storage

    if isinstance(where, Storage):
        return where
    return open_storage(Path(where).parent if Path(where).name == LOCK_FILE else where)


def _create(storage, me: dict) -> bool:
    """Publish our lock whole; False if a lock is already there."""
    try:
        return storage.create(LOCK_FILE, json.dumps(me).encode())
    except OSError as exc:
        raise StoreError(
            f"{storage.location}: cannot create the lock {LOCK_FILE} ({exc.strerror or exc}); is the store read-only or the disk full?"
        ) from None


def _take_over(storage, seen: dict) -> None:
    """Remove the lock ``seen`` if it is still the one there: under the guard, so only one run removes it."""
    with storage.guard():
        if holder(storage) == seen:
            with contextlib.suppress(FileNotFoundError):
                storage.delete(LOCK_FILE)


def _in_use(storage, other: dict) -> str:
    directory = storage.location
    remove = f"remove {directory}/{LOCK_FILE}" if storage.is_local else f"remove the object {directory}/{LOCK_FILE} (for s3: `aws s3 rm`)"
    way_out = f"if no nnstd-dist run is using the store, {remove} and run again"
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
