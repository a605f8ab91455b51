"""What else happens to a store while `compute` runs (issue 23, items 11 and 12), with real processes.

Readers (info, export, report, plot) see one consistent state; a second run's forced recompute stops the
first with one Error line and its own matrix is right; SIGSTOP then SIGCONT, and `kill -9` of one worker,
end with the matrix of a clean run; two first ingests racing on one new store path both land.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import scipy.sparse as sp
from click.testing import CliRunner

from nnstd_dist.cli.main import cli
from nnstd_dist.kernel.distance import nnstd_prepared, prepare
from nnstd_dist.records import NetworkRecord
from nnstd_dist.store.topology_store import TopologyStore

from _corpus import population, write_set
from _populations import done_tiles, open_or_create

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
SHAPES = [(300, 300), (300, 300), (300, 10)]  # ~10 ms a pair
N = 30
STOP_SECONDS = 30


@pytest.fixture(scope="module")
def population30():
    rng = np.random.default_rng(23)
    networks = [[sp.random(*s, density=0.02, random_state=rng, format="csr") != 0 for s in SHAPES] for _ in range(N)]
    prepared = [prepare(net) for net in networks]
    expected = np.zeros((len(SHAPES), N, N))
    for i in range(N):
        for j in range(i):
            expected[:, i, j] = expected[:, j, i] = nnstd_prepared(prepared[i], prepared[j])
    return networks, expected


@pytest.fixture
def store(tmp_path, population30):
    path = tmp_path / "s.zarr"
    open_or_create(path, SHAPES).append([(NetworkRecord(f"net_{k:03d}"), net) for k, net in enumerate(population30[0])])
    return path


def _compute(path: Path, *extra: str) -> subprocess.Popen:
    command = [str(BIN / "nnstd-dist"), "compute", "--store", str(path), "--tile", "2", *extra]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _wait_for_tiles(path: Path, proc: subprocess.Popen, tiles: int = 1) -> None:
    deadline = time.monotonic() + 120
    while done_tiles(path) < tiles:
        assert proc.poll() is None and time.monotonic() < deadline, "compute ended before the test could act"
        time.sleep(0.02)


def _finish(proc: subprocess.Popen, timeout: float = 300) -> tuple[str, str]:
    try:
        return proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def _matrix(path: Path) -> np.ndarray:
    return TopologyStore.open(path).read_distance()


def test_readers_while_compute_runs_each_see_one_consistent_state(store, population30, tmp_path):
    expected = population30[1]
    proc = _compute(store, "--n-workers", "1")
    try:
        _wait_for_tiles(store, proc)
        rounds = 0
        while proc.poll() is None or rounds == 0:
            out = tmp_path / f"d{rounds}.npz"
            for argv in (["info", "--store", str(store)], ["export", "--store", str(store), "-o", str(out)],
                         ["report", "--store", str(store), "-o", str(tmp_path / "r.html")],
                         ["plot", "--store", str(store), "-o", str(tmp_path / "p.png")]):
                result = CliRunner().invoke(cli, argv)
                assert result.exit_code == 0, (argv, result.output)
            got = np.load(out)["distance"]
            computed = ~np.isnan(got)
            np.testing.assert_array_equal(got[computed], expected[computed])  # every distance it shows is right
            assert (computed == computed.transpose(0, 2, 1)).all()  # whole tiles and their mirrors, never half
            rounds += 1
    finally:
        _finish(proc)
    assert proc.returncode == 0
    np.testing.assert_array_equal(_matrix(store), expected)


def test_a_forced_recompute_stops_the_running_compute_with_one_error_and_its_own_matrix_stands(store, population30):
    first = _compute(store, "--n-workers", "1")
    try:
        _wait_for_tiles(store, first)
        os.killpg(first.pid, signal.SIGSTOP)  # the first run holds tiles in flight while the second resets the results
        second = subprocess.run([str(BIN / "nnstd-dist"), "compute", "--store", str(store), "--force", "--recompute", "--tile", "3",
                                 "--n-workers", "1"], capture_output=True, text=True, timeout=300)
        os.killpg(first.pid, signal.SIGCONT)
        _, err = _finish(first)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    assert second.returncode == 0, second.stderr
    errors = [line for line in err.splitlines() if line.startswith("Error: ")]  # besides the progress lines
    assert first.returncode == 2 and len(errors) == 1 and errors[0] == err.strip().splitlines()[-1] and "the store changed" in errors[0], err
    assert "Traceback" not in err, err
    assert TopologyStore.open(store).tile == 3
    np.testing.assert_array_equal(_matrix(store), population30[1])


def test_sigstop_then_sigcont_during_compute_ends_with_the_clean_matrix(store, population30):
    proc = _compute(store, "--n-workers", "2")
    _wait_for_tiles(store, proc)
    os.killpg(proc.pid, signal.SIGSTOP)  # the client, its scheduler and its workers, as Ctrl-Z does
    time.sleep(STOP_SECONDS)
    os.killpg(proc.pid, signal.SIGCONT)
    _, err = _finish(proc)
    assert proc.returncode == 0, err
    np.testing.assert_array_equal(_matrix(store), population30[1])


def test_kill_9_of_one_worker_mid_run_ends_with_the_clean_matrix(store, population30):
    proc = _compute(store, "--n-workers", "2")
    try:
        _wait_for_tiles(store, proc)
        children = psutil.Process(proc.pid).children(recursive=True)  # the nannies live in the client; workers are spawned
        workers = [p for p in children if "spawn_main" in " ".join(p.cmdline()) and "resource_tracker" not in " ".join(p.cmdline())]
        assert len(workers) == 2, [p.cmdline() for p in children]
        workers[0].kill()
    finally:
        _, err = _finish(proc)
    assert proc.returncode == 0, err
    np.testing.assert_array_equal(_matrix(store), population30[1])


@pytest.mark.parametrize("trial", range(3))
def test_two_first_ingests_racing_on_one_new_store_path_both_land(tmp_path, trial):
    for side, seed in (("a", 0), ("b", 10)):
        for k in range(3):
            write_set(tmp_path / side / f"{side}{k}" / "epoch_000", population(seed + k))
    store = tmp_path / "new.zarr"
    procs = [subprocess.Popen([str(BIN / "nnstd-dist"), "ingest", str(tmp_path / side), "--store", str(store)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for side in "ab"]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    assert sorted(TopologyStore.open(store).names()) == sorted(f"{s}{k}/epoch_000" for s in "ab" for k in range(3))
    assert CliRunner().invoke(cli, ["verify", "--store", str(store)]).exit_code == 0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".new.zarr")]  # no staging folder left behind
