"""The run lock: created whole or not at all, taken over by one run only, a damaged lock explained."""

from __future__ import annotations

import errno
import json
import multiprocessing as mp
import os
import socket
import time
from pathlib import Path

import pytest

from nnstd_dist.store import lock as runlock
from nnstd_dist.errors import LockError, StoreError

CONTENDERS = 3


def _dead_pid() -> int:
    p = mp.get_context("fork").Process(target=lambda: None)
    p.start()
    p.join()
    return p.pid


def _stale_lock(directory: Path) -> None:
    record = {"host": socket.gethostname(), "pid": _dead_pid(), "started": "2026-01-01 00:00:00", "command": "killed run"}
    (directory / runlock.LOCK_FILE).write_text(json.dumps(record))


def _contend(directory, go, results):
    go.wait()
    try:
        with runlock.hold(directory, "contender"):
            start = time.monotonic()
            time.sleep(0.02)
            results.put((start, time.monotonic()))
    except LockError:
        results.put(None)


@pytest.mark.parametrize("trials", [5, pytest.param(60, marks=pytest.mark.slow)])
def test_a_stale_lock_is_taken_over_by_one_run_at_a_time(tmp_path, trials):
    """Trials of three processes racing for one stale lock: never two holders at once (60 in the slow tier)."""
    ctx = mp.get_context("fork")
    doubles, takers = 0, 0
    for trial in range(trials):
        directory = tmp_path / f"t{trial}"
        directory.mkdir()
        _stale_lock(directory)
        go, results = ctx.Event(), ctx.Queue()
        procs = [ctx.Process(target=_contend, args=(directory, go, results)) for _ in range(CONTENDERS)]
        for p in procs:
            p.start()
        go.set()
        for p in procs:
            p.join()
        held = sorted(r for r in (results.get() for _ in procs) if r)
        takers += len(held)
        doubles += any(later[0] < earlier[1] for earlier, later in zip(held, held[1:]))
        assert not (directory / runlock.LOCK_FILE).exists()
    assert doubles == 0
    assert takers >= trials  # every trial had a holder


def test_a_full_disk_leaves_no_lock(tmp_path, monkeypatch):
    from nnstd_dist.store import faults

    calls = []

    def full(*args, **kwargs):  # the lock's content written, then the disk is full where it is published
        calls.append(1)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(faults, "before_write", full)
    with pytest.raises(StoreError, match="No space left on device"):
        with runlock.hold(tmp_path, "ingest"):
            pass
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("content, why", [(b"", "empty"), (b"\x89PNG", "not JSON"), (b"[1, 2]", "not a lock record")])
def test_a_damaged_lock_is_explained_with_the_way_out(tmp_path, content, why):
    (tmp_path / runlock.LOCK_FILE).write_bytes(content)
    with pytest.raises(LockError) as info:
        with runlock.hold(tmp_path, "ingest"):
            pass
    assert f"damaged ({why})" in str(info.value) and f"remove {tmp_path / runlock.LOCK_FILE}" in str(info.value)
    with runlock.hold(tmp_path, "compute", force=True):
        assert runlock.holder(tmp_path / runlock.LOCK_FILE)["command"] == "compute"


def test_a_live_holder_is_named_and_kept(tmp_path):
    record = {"host": socket.gethostname(), "pid": os.getpid(), "started": "now", "command": "nnstd-dist compute --store s"}
    (tmp_path / runlock.LOCK_FILE).write_text(json.dumps(record))
    with pytest.raises(LockError, match=r"in use by `nnstd-dist compute --store s`.*remove"):
        with runlock.hold(tmp_path, "ingest"):
            pass
    assert runlock.holder(tmp_path / runlock.LOCK_FILE) == record


def test_a_lock_of_a_killed_unreaped_process_is_taken_over(tmp_path):
    # A killed process nobody has reaped yet (a zombie) still answers kill(pid, 0); it holds nothing.
    child = os.fork()
    if child == 0:
        time.sleep(60)
        os._exit(0)
    try:
        os.kill(child, 9)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            assert time.monotonic() < deadline, "the killed child did not become a zombie"
            time.sleep(0.01)
        assert not runlock.process_alive(child)
        assert runlock.process_alive(os.getpid())
        record = {"host": socket.gethostname(), "pid": child, "started": "2026-01-01 00:00:00", "command": "killed run"}
        (tmp_path / runlock.LOCK_FILE).write_text(json.dumps(record))
        with runlock.hold(tmp_path, "next run"):
            assert runlock.holder(tmp_path / runlock.LOCK_FILE)["command"] == "next run"
    finally:
        os.waitpid(child, 0)
