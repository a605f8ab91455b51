"""Ctrl-C and SIGTERM during `compute`: one line, exit 130 / 143, the lock released, and a rerun resumes.

Real subprocesses on real clusters: the signal goes to the whole process group, as a terminal's
Ctrl-C or a batch system's time limit does, so worker processes get it too.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from nnstd_dist.engine.plan import make_plan
from nnstd_dist.tiles import pairs_in_done_tiles
from _processes import stop_processes
from _populations import done_tiles, make_store, pair_distances
from nnstd_dist.store.lock import LOCK_FILE
from nnstd_dist.store.topology_store import TopologyStore

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
SHAPES = [(300, 300), (300, 300), (300, 10)]  # ~10 ms a pair: a run lasts long enough to interrupt it
N = 22
NOISE = ("Traceback", "Warning", "warning", "never awaited", "leaked", "KeyboardInterrupt", "Error")


@pytest.fixture(scope="module")
def population():
    rng = np.random.default_rng(12)
    networks = [
        [sp.random(*s, density=0.02, random_state=rng, format="csr") != 0 for s in SHAPES[:-1]]
        + [sp.csr_matrix(np.ones(SHAPES[-1], dtype=bool))]
        for _ in range(N)
    ]
    return networks, pair_distances(networks)


def _store(path: Path, networks) -> Path:
    return make_store(path, networks, tile=None).path


def _interrupt(path: Path, sig: int, whole_group: bool, *extra: str) -> subprocess.CompletedProcess:
    """Start compute in its own process group, wait for its first tile, send ``sig``, collect what it printed."""
    command = [str(BIN / "nnstd-dist"), "compute", "--store", str(path), "--tile", "4", *extra]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while done_tiles(path) < 1:
            assert proc.poll() is None and time.monotonic() < deadline, "compute ended before it could be interrupted"
            time.sleep(0.02)
        os.killpg(proc.pid, sig) if whole_group else proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


def _check_stopped_cleanly(result, path: Path, code: int, word: str, external: bool = False) -> None:
    assert result.returncode == code, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    store = TopologyStore.open(path)
    kept, n = pairs_in_done_tiles(store.tile_markers(), store.n_networks, store.tile), store.n_networks
    resume = shlex.join(["nnstd-dist", *result.args[1:]])  # the command as typed
    if external:  # the cluster is not ours to stop: a tile it was running may still finish, so the count is a floor
        said = re.fullmatch(rf"{word}: at least (\d+) of {n * (n - 1) // 2} pairs are kept in {re.escape(str(path))}; to resume: (.*)", lines[-1])
        assert said and int(said.group(1)) <= kept and said.group(2) == resume, lines[-1]
    else:
        assert lines[-1] == f"{word}: {kept} of {n * (n - 1) // 2} pairs are kept in {path}; to resume: {resume}"
    # before it: only the first line and the progress bar's own lines
    first = r"(Starting|Resuming)(: | the interrupted recompute: )\d+ "
    assert all(re.match(rf"^({first}|\d+ pairs in \d+ tiles?|(\d\d:\d\d:\d\d )?\[[#.]+\] )", line) for line in lines[:-1]), result.stderr
    assert not any(noise in result.stderr for noise in NOISE), result.stderr
    assert not (path / LOCK_FILE).exists()


def _resume(path: Path, expected: np.ndarray) -> None:
    store = TopologyStore.open(path)
    missing = make_plan(store.n_networks, store.tile, store.tile_markers()).n_pairs
    assert 0 < missing < N * (N - 1) // 2
    again = subprocess.run([str(BIN / "nnstd-dist"), "compute", "--store", str(path), "--n-workers", "2"],
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert int(re.search(r"Computed (\d+) pairs", again.stdout).group(1)) == missing
    np.testing.assert_array_equal(TopologyStore.open(path).read_distance(), expected)


@pytest.mark.parametrize(
    "sig, whole_group, code, word",
    [
        (signal.SIGINT, True, 130, "Interrupted"),  # Ctrl-C in a terminal: the client and its workers
        (signal.SIGTERM, True, 143, "Terminated"),  # a batch system's time limit
        (signal.SIGINT, False, 130, "Interrupted"),  # `kill -INT` of the client alone
    ],
    ids=["ctrl-c", "sigterm", "client-only"],
)
def test_a_local_run_stops_on_one_line_and_resumes(tmp_path, population, sig, whole_group, code, word):
    networks, expected = population
    path = _store(tmp_path / "s.zarr", networks)
    result = _interrupt(path, sig, whole_group, "--n-workers", "2")
    _check_stopped_cleanly(result, path, code, word)
    _resume(path, expected)


def test_a_run_on_a_dask_cluster_stops_on_one_line_and_leaves_the_cluster_up(tmp_path, population):
    networks, expected = population
    path = _store(tmp_path / "s.zarr", networks)
    scheduler_file = tmp_path / "scheduler.json"
    dask = str(BIN / "dask")
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    procs = [subprocess.Popen([dask, "scheduler", "--scheduler-file", str(scheduler_file), "--host", "127.0.0.1",
                               "--port", "0", "--no-dashboard"], **quiet)]
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists():
            assert time.monotonic() < deadline, "dask scheduler did not start"
            time.sleep(0.1)
        procs.append(subprocess.Popen([dask, "worker", "--scheduler-file", str(scheduler_file), "--nworkers", "2",
                                       "--nthreads", "1", "--no-dashboard"], **quiet))
        result = _interrupt(path, signal.SIGTERM, True, "--scheduler-file", str(scheduler_file))
        _check_stopped_cleanly(result, path, 143, "Terminated", external=True)
        assert all(p.poll() is None for p in procs)  # the cluster was not ours to stop
    finally:
        stop_processes(procs)
    _resume(path, expected)


def test_a_run_stops_in_the_middle_of_a_long_tile_without_leaks(tmp_path):
    # One tile of ~1,800 pairs (tens of seconds): interrupted while it runs, its worker stops between
    # two pairs and closes in order. Left to finish it, the nanny killed the worker after a few seconds,
    # and the resource tracker then warned of the killed process's leaked semaphores.
    rng = np.random.default_rng(4)
    n = 60
    networks = [[sp.random(*s, density=0.02, random_state=rng, format="csr") != 0 for s in SHAPES[:-1]]
                + [sp.csr_matrix(np.ones(SHAPES[-1], dtype=bool))] for _ in range(n)]
    path = _store(tmp_path / "s.zarr", networks)
    command = [str(BIN / "nnstd-dist"), "compute", "--store", str(path), "--tile", str(n), "--n-workers", "1"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        first = proc.stderr.readline()  # at once: what starts
        assert first.startswith("Starting: 1770 of 1770 pairs left, tile 60"), first
        header = proc.stderr.readline()  # printed once the cluster is up and the tile submitted
        assert "pairs in 1 tile on 1 worker thread;" in header, header
        time.sleep(3)  # the task is reading its networks or computing pairs by now
        assert proc.poll() is None, "the tile finished before it could be interrupted"
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    result = subprocess.CompletedProcess(command, proc.returncode, "", header + err)
    _check_stopped_cleanly(result, path, 130, "Interrupted")
    assert TopologyStore.open(path).tile_marker(0, 0) == 0  # the stopped tile wrote nothing


def _recomputing(path: Path) -> bool:
    try:
        return TopologyStore.open(path).recomputing and done_tiles(path) >= 1
    except Exception:  # the run is between writes of the store's attributes
        return False


def test_an_interrupted_recompute_is_resumed_by_the_same_command(tmp_path, population):
    """Issue 29, item 1: the same command continues the recompute; the interrupt line counts exactly what is kept."""
    networks, expected = population
    path = _store(tmp_path / "s.zarr", networks)
    command = [str(BIN / "nnstd-dist"), "compute", "--store", str(path), "--tile", "4", "--n-workers", "2", "--recompute"]
    assert subprocess.run(command, capture_output=True, timeout=300).returncode == 0
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not _recomputing(path):
            assert proc.poll() is None and time.monotonic() < deadline, "the recompute ended before it could be interrupted"
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    result = subprocess.CompletedProcess(command, proc.returncode, "", err)
    _check_stopped_cleanly(result, path, 130, "Interrupted")
    store = TopologyStore.open(path)
    missing = make_plan(store.n_networks, store.tile, store.tile_markers()).n_pairs
    assert 0 < missing < N * (N - 1) // 2
    again = subprocess.run(command, capture_output=True, text=True, timeout=300)  # the same command, --recompute and all
    assert again.returncode == 0, again.stderr
    assert again.stderr.startswith(f"Resuming the interrupted recompute: {missing} of {N * (N - 1) // 2} pairs left, tile 4"), again.stderr
    assert int(re.search(r"Computed (\d+) pairs", again.stdout).group(1)) == missing
    np.testing.assert_array_equal(TopologyStore.open(path).read_distance(), expected)
    dry = subprocess.run([*command, "--dry-run"], capture_output=True, text=True, timeout=300)  # finished: afresh
    assert f"pairs remaining: {N * (N - 1) // 2} of {N * (N - 1) // 2}" in dry.stdout, dry.stdout
