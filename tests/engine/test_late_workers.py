"""Workers that join a run after its start (engine/gate.py's EnvironmentGate): real `dask worker` processes, one of them mismatched.

A `dask scheduler` and one good worker run on 127.0.0.1; when the run has written its first tile,
a second worker joins that differs for real: another nnstd-dist install first on its PYTHONPATH,
or (as root) a worker in its own mount namespace, with an empty folder where the store is. It must be refused and named,
run no task and exit; the run goes on with the good worker and the matrix equals the kernel's.
The same check on a SLURM job that joins: tests/engine/test_slurm.py.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from _processes import stop_processes
from _populations import make_store, pair_distances, runs_population
from distributed import Client

from nnstd_dist.engine import compute
from nnstd_dist.store.topology_store import TopologyStore

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DASK = str(Path(sys.executable).with_name("dask"))
WORKER = ["worker", "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1"]


@pytest.fixture
def scheduler(tmp_path):
    """A scheduler file of a running `dask scheduler` with one good worker; every process is stopped afterwards."""
    scheduler_file = tmp_path / "scheduler.json"
    procs = [subprocess.Popen([DASK, "scheduler", "--scheduler-file", str(scheduler_file), "--host", "127.0.0.1", "--port", "0", "--no-dashboard"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    procs.append(subprocess.Popen([DASK, *WORKER, "--scheduler-file", str(scheduler_file)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists():
            assert time.monotonic() < deadline, "dask scheduler did not start"
            time.sleep(0.1)
        yield scheduler_file
    finally:
        stop_processes(procs)


@pytest.fixture
def population(tmp_path):
    networks, records = runs_population(3, [0, 10, 20, 30], seed=16)
    path = tmp_path / "store" / "topos.zarr"
    make_store(path, networks, records, tile=None)
    return path, pair_distances(networks)


def _run_with_a_late_worker(scheduler_file, path, command, env, cwd, caplog):
    """compute on the scheduler; after the first tile, start ``command`` as a worker and wait for it to exit."""
    late, log = [], Path(cwd) / "late-worker.log"

    def on_progress(p):
        if p.tiles_done == 1 and not late:
            late.append(subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=log.open("w")))
            late[0].wait(timeout=120)  # refused as it registers, it closes itself; tiles go on meanwhile

    with Client(scheduler_file=str(scheduler_file)) as client, caplog.at_level(logging.WARNING, logger="nnstd_dist.engine.gate"):
        client.wait_for_workers(1, timeout=60)
        plan, stats = compute(path, tile=2, client=client, on_progress=on_progress)
    return plan, stats, late[0].returncode, log.read_text()


def test_a_late_worker_with_another_nnstd_dist_is_refused(scheduler, population, tmp_path, caplog):
    path, expected = population
    odd = tmp_path / "odd"
    shutil.copytree(ROOT / "nnstd_dist", odd / "nnstd_dist", ignore=shutil.ignore_patterns("__pycache__"))
    init = odd / "nnstd_dist" / "__init__.py"
    init.write_text(re.sub(r'__version__ = "[^"]+"', '__version__ = "0.0.0+odd"', init.read_text()))
    command = [DASK, *WORKER, "--scheduler-file", str(scheduler)]
    plan, stats, exit_code, log = _run_with_a_late_worker(scheduler, path, command, {**os.environ, "PYTHONPATH": str(odd)}, tmp_path, caplog)

    np.testing.assert_array_equal(TopologyStore.open(path).read_distance(), expected)
    assert stats.tiles == len(plan.tasks) and stats.workers == 1  # every tile from the good worker
    (address, why), = stats.refused.items()
    assert why == "nnstd-dist 0.0.0+odd (client 0.1.0)"
    host = subprocess.run(["hostname"], capture_output=True, text=True).stdout.strip()
    assert caplog.messages == [f"refused worker {address} on {host}: {why}; the run goes on with the others"]
    assert exit_code == 0 and "environment differs from the client's" in log


def _can_hide_a_folder() -> bool:
    """Root with unshare: a worker in its own mount namespace can get an empty tmpfs over the store's folder."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", "mount -t tmpfs tmpfs /mnt"], capture_output=True)
    return probe.returncode == 0


def test_a_late_worker_that_cannot_see_the_store_is_refused(scheduler, population, tmp_path, caplog):
    if not _can_hide_a_folder():
        pytest.skip("needs root and unshare --mount to start a worker that does not see the store's folder")
    path, expected = population
    # As on a node that lacks the shared mount: the worker sees an empty folder where the store is.
    worker = " ".join([DASK, *WORKER, "--scheduler-file", str(scheduler)])
    command = ["unshare", "--mount", "--propagation", "private", "sh", "-c", f"mount -t tmpfs tmpfs {path.parent} && exec {worker}"]
    plan, stats, exit_code, log = _run_with_a_late_worker(scheduler, path, command, dict(os.environ), tmp_path, caplog)

    np.testing.assert_array_equal(TopologyStore.open(path).read_distance(), expected)
    assert stats.tiles == len(plan.tasks) and stats.workers == 1
    (address, why), = stats.refused.items()
    assert why == f"cannot open the store at {path} (no such file or directory)"
    assert exit_code == 0 and "environment differs from the client's" in log
