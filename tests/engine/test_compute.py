"""compute on Dask: equals the kernel pair by pair, survives killed workers and a killed run, reuses its work.

Real processes throughout: LocalClusters, the `nnstd-dist` executable, `dask scheduler` / `dask worker`.
"""

from __future__ import annotations

import json
import os
import re
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
from distributed import Client, LocalCluster

from _processes import stop_processes
from _populations import done_tiles, make_store, open_or_create, pair_distances
from nnstd_dist.cli.compute import ProgressBar
from nnstd_dist.cli.main import cli
from nnstd_dist.errors import ClusterError, StoreError
from nnstd_dist.sources.formats import load_set_network
from nnstd_dist.engine.plan import make_plan
from nnstd_dist.engine import progress
from nnstd_dist.engine import run as run_loop
from nnstd_dist.engine import ClusterSpec, Progress, compute
from nnstd_dist.records import NetworkRecord
from nnstd_dist.store.lock import LOCK_FILE
from nnstd_dist.store.topology_store import TopologyStore

NNSTD_DIST = str(Path(sys.executable).with_name("nnstd-dist"))
DASK = str(Path(sys.executable).with_name("dask"))
SMALL = [(40, 40), (40, 40), (40, 5)]  # ~1 ms a pair
MEDIUM = [(300, 300), (300, 300), (300, 10)]  # ~10 ms a pair: runs last long enough to kill things in them


def random_networks(n: int, shapes, density: float, seed: int) -> list[list[sp.csr_matrix]]:
    """SET-like networks: sparse hidden layers, a fully connected last layer."""
    rng = np.random.default_rng(seed)
    return [
        [sp.random(*s, density=density, random_state=rng, format="csr") != 0 for s in shapes[:-1]]
        + [sp.csr_matrix(np.ones(shapes[-1], dtype=bool))]
        for _ in range(n)
    ]


def stored(path: Path) -> np.ndarray:
    return TopologyStore.open(path).read_distance()


@pytest.fixture(scope="module")
def client(dask_client):
    return dask_client


@pytest.fixture(scope="module")
def small():
    networks = random_networks(23, SMALL, 0.15, seed=1)
    return networks, pair_distances(networks)


@pytest.fixture(scope="module")
def medium():
    """22 networks, 231 pairs in 21 tiles of 4: a run of a few seconds, long enough to kill things in it."""
    networks = random_networks(22, MEDIUM, 0.02, seed=2)
    return networks, pair_distances(networks)


# Other tile sizes, down to 1 and up to one tile, run serially without a cluster: test_tasks.py.
@pytest.mark.parametrize("n, tile", [(23, 4), (23, 7)], ids=["tile4", "tile7"])
def test_tiled_run_equals_the_kernel(tmp_path, client, small, n, tile):
    networks, expected = small
    path = make_store(tmp_path / "s.zarr", networks[:n], tile=None).path
    plan, stats = compute(path, tile=tile, client=client)
    assert stats.pairs == n * (n - 1) // 2 and stats.tiles == plan.n_tiles == len(plan)
    np.testing.assert_array_equal(stored(path), expected[:, :n, :n])  # same kernel, same order: bit for bit
    done, k = TopologyStore.open(path).tile_markers(), -(-n // tile)
    assert (done[np.tril_indices(k)] == n).all() and (done[np.triu_indices(k, 1)] == 0).all()
    again_plan, again = compute(path, client=client)
    assert len(again_plan) == 0 and again.pairs == 0


@pytest.mark.slow
def test_epoch0_block_of_the_90_networks_equals_the_paper(tmp_path, client, paper_data, paper_reference_file):
    runs = sorted(p for p in (paper_data / "topo").iterdir() if p.is_dir())
    dirs = [d for run in runs for d in sorted(run.glob("epoch_*"))]
    assert len(dirs) == 90
    store = open_or_create(tmp_path / "topo.zarr", [(784, 784), (784, 784), (784, 784), (784, 10)])
    store.append([(NetworkRecord(f"{d.parent.name}/{d.name}"), load_set_network(d)) for d in dirs])
    plan, stats = compute(store.path, tile=16, client=client)
    assert stats.pairs == 4005 and len(plan) == 21
    reference = json.loads(paper_reference_file.read_text())
    index = [store.names().index(name) for name in reference["networks"]]
    block = TopologyStore.open(store.path).read_distance(indices=index)
    for key, layers in reference["pairs"].items():
        i, j = map(int, key.split(","))
        np.testing.assert_allclose(block[:, i, j], layers, rtol=0, atol=1e-12, err_msg=key)
        np.testing.assert_allclose(block[:, j, i], layers, rtol=0, atol=1e-12, err_msg=key)


def _disturb_a_busy_worker(path: Path, tile: int, disturb):
    """compute on a fresh 2-worker LocalCluster; after the first finished tile, ``disturb(client, address)`` once,
    on a worker that is running a tile. Returns the plan, the stats, what disturb returned, and the worker pids after."""
    done = []
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, Client(cluster) as c:

        def on_progress(progress):
            if progress.tiles_done == 1 and not done:
                busy = next(w for w, keys in c.processing().items() if keys)
                done.append(disturb(c, busy))

        plan, stats = compute(path, tile=tile, client=c, on_progress=on_progress)
        c.wait_for_workers(2, timeout=30)  # the nanny restarted the disturbed one
        after = set(c.run(os.getpid).values())
    assert done, "no tile was running after the first one finished"
    return plan, stats, done[0], after


@pytest.mark.slow
def test_a_worker_killed_mid_run_changes_nothing(tmp_path, medium):
    networks, expected = medium
    path = make_store(tmp_path / "s.zarr", networks, tile=None).path

    def kill(c, busy):
        pid = c.run(os.getpid, workers=[busy])[busy]
        os.kill(pid, signal.SIGKILL)
        return pid

    plan, stats, killed, after = _disturb_a_busy_worker(path, 4, kill)
    assert not psutil.pid_exists(killed) and killed not in after
    assert stats.tiles == len(plan) == 21
    np.testing.assert_array_equal(stored(path), expected)


def _children(pid: int) -> list[psutil.Process]:
    return psutil.Process(pid).children(recursive=True)


@pytest.mark.slow
def test_a_killed_run_resumes_with_only_the_missing_pairs(tmp_path, medium):
    networks, expected = medium
    path = make_store(tmp_path / "s.zarr", networks, tile=None).path
    first = subprocess.Popen([NNSTD_DIST, "compute", "--store", str(path), "--tile", "4", "--n-workers", "2", "--quiet"])
    try:
        deadline = time.monotonic() + 120
        while done_tiles(path) < 1:
            assert first.poll() is None and time.monotonic() < deadline, "compute ended before it could be killed"
            time.sleep(0.02)
        workers = _children(first.pid)
        first.send_signal(signal.SIGKILL)
        first.wait()
    finally:
        first.kill()
    psutil.wait_procs(workers, timeout=30)  # the orphaned workers notice their parent is gone and exit
    assert not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers)
    assert (path / LOCK_FILE).exists()  # the dead run's lock is left behind...
    store = TopologyStore.open(path)
    missing = make_plan(store.n_networks, store.tile, store.tile_markers()).n_pairs
    assert 0 < missing < 231
    second = subprocess.run([NNSTD_DIST, "compute", "--store", str(path), "--n-workers", "2"], capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr  # ...and taken over: its process is gone
    assert int(re.search(r"Computed (\d+) pairs", second.stdout).group(1)) == missing
    np.testing.assert_array_equal(stored(path), expected)
    assert not (path / LOCK_FILE).exists()


@pytest.mark.slow
def test_a_real_cluster_from_a_scheduler_file(tmp_path, small):
    networks, expected = small
    path = make_store(tmp_path / "s.zarr", networks, tile=None).path
    scheduler_file = tmp_path / "scheduler.json"
    procs = [
        subprocess.Popen([DASK, "scheduler", "--scheduler-file", str(scheduler_file), "--host", "127.0.0.1", "--port", "0", "--no-dashboard"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ]
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists():
            assert time.monotonic() < deadline, "dask scheduler did not start"
            time.sleep(0.1)
        for _ in range(2):
            procs.append(subprocess.Popen(
                [DASK, "worker", "--scheduler-file", str(scheduler_file), "--nworkers", "1", "--nthreads", "1", "--no-dashboard"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ))
        with Client(scheduler_file=str(scheduler_file)) as c:
            c.wait_for_workers(2, timeout=60)
        result = CliRunner().invoke(cli, ["compute", "--store", str(path), "--scheduler-file", str(scheduler_file), "--tile", "5"])
        assert result.exit_code == 0, result.output
        assert "Computed 253 pairs in 15 tiles" in result.output and "tiles ran on 2 worker processes" in result.output
        np.testing.assert_array_equal(stored(path), expected)
    finally:
        stop_processes(procs)


@pytest.mark.parametrize("tile", [3, 4, 16], ids=["tile3", "tile4", "tile16"])
def test_new_networks_cost_only_their_own_pairs(tmp_path, client, small, tile):
    networks, expected = small
    path = make_store(tmp_path / "s.zarr", networks[:10], tile=None).path
    assert compute(path, tile=tile, client=client)[1].pairs == 45
    TopologyStore.open(path, mode="r+").append([(NetworkRecord(f"net_{k:03d}"), networks[k]) for k in range(10, 15)])
    plan, stats = compute(path, client=client)
    assert plan.n_pairs == stats.pairs == 15 * 14 // 2 - 10 * 9 // 2 == 60
    np.testing.assert_array_equal(stored(path), expected[:, :15, :15])


@pytest.mark.slow  # a real second process; store/test_lock checks the refusal of a live holder in-process
def test_a_second_run_stops_naming_the_first(tmp_path, medium):
    networks, _ = medium
    path = make_store(tmp_path / "s.zarr", networks, tile=None).path
    first = subprocess.Popen([NNSTD_DIST, "compute", "--store", str(path), "--tile", "4", "--n-workers", "1", "--quiet"])
    try:
        deadline = time.monotonic() + 60
        while not (path / LOCK_FILE).exists():
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        result = CliRunner().invoke(cli, ["compute", "--store", str(path)])
        assert result.exit_code == 2
        assert f"pid {first.pid}" in result.output and "started " in result.output and "host " in result.output
        assert "nnstd-dist compute --store" in result.output
    finally:
        first.terminate()
        first.wait(timeout=60)


def test_force_takes_a_lock_from_another_host(tmp_path, small):
    networks, expected = small
    path = make_store(tmp_path / "s.zarr", networks[:6], tile=None).path
    lock = {"host": "node-17", "pid": 4242, "started": "2024-01-01 00:00:00", "command": "nnstd-dist compute --store s.zarr"}
    (path / LOCK_FILE).write_text(json.dumps(lock))
    refused = CliRunner().invoke(cli, ["compute", "--store", str(path), "--n-workers", "1"])
    assert refused.exit_code == 2 and "node-17" in refused.output and f"remove {path / LOCK_FILE}" in refused.output
    forced = CliRunner().invoke(cli, ["compute", "--store", str(path), "--n-workers", "1", "--force"])
    assert forced.exit_code == 0, forced.output
    assert "Computed 15 pairs" in forced.output and "15/15 pairs" in forced.output  # summary and progress
    np.testing.assert_array_equal(stored(path), expected[:, :6, :6])


def test_dry_run_changes_nothing(tmp_path, small):
    path = make_store(tmp_path / "s.zarr", small[0], tile=None).path
    result = CliRunner().invoke(cli, ["compute", "--store", str(path), "--dry-run", "--tile", "4", "--n-workers", "2"])
    assert result.exit_code == 0, result.output
    assert "tiles remaining: 21" in result.output and "pairs remaining: 253 of 253" in result.output
    assert "tile size:       4 x 4 networks (21 tiles in the lower triangle); given by --tile" in result.output
    assert not TopologyStore.open(path).has_results


def test_dry_run_shows_the_adapted_tile_and_why(tmp_path, small, monkeypatch):
    """Without --tile a few pairs are timed; the tile follows from that timing alone (plan.default_tile) and is printed with it."""
    path = make_store(tmp_path / "s.zarr", small[0], tile=None).path
    timed = []
    monkeypatch.setattr(run_loop, "time_kernel", lambda store, solver, max_layer: timed.append((solver, max_layer)) or (0.001, 0.0005, 3))
    result = CliRunner().invoke(cli, ["compute", "--store", str(path), "--dry-run", "--n-workers", "1", "--solver", "fast", "--max-layer", "0"])
    assert result.exit_code == 0, result.output
    assert timed == [("fast", 0)]
    assert ("tile size:       16 x 16 networks (3 tiles in the lower triangle); from a timing here (median of 3 pairs: 1 ms per pair, "
            "0.5 ms to read and prepare a network): the smallest multiple of 8 in 16..256 with >= 4 s of kernel work and reading < 2 % of it, "
            "<= 60 s, >= 4 tiles per worker; the 16-network minimum decided: ~0.26 s per tile, reading 6.2 %") in result.output
    monkeypatch.undo()
    real = CliRunner().invoke(cli, ["compute", "--store", str(path), "--dry-run", "--n-workers", "1"])  # the real timing, on this machine
    assert real.exit_code == 0 and "from a timing here (median of 3 pairs: " in real.output, real.output
    assert not TopologyStore.open(path).has_results


def test_tile_cannot_change_without_recompute(tmp_path, client, small):
    path = make_store(tmp_path / "s.zarr", small[0][:8], tile=None).path
    compute(path, tile=4, client=client)
    result = CliRunner().invoke(cli, ["compute", "--store", str(path), "--tile", "3"])
    assert result.exit_code == 2 and "tile 4" in result.output and "--recompute" in result.output
    plan, stats = compute(path, tile=3, recompute=True, client=client)
    assert plan.tile == 3 and stats.pairs == 28


@pytest.mark.parametrize(
    "args, message",
    [
        (["--scheduler", "tcp://127.0.0.1:1", "--scheduler-file", "f.json"], "not both"),
        (["--scheduler", "tcp://127.0.0.1:1", "--n-workers", "2"], "--n-workers configure the local cluster"),
        (["--scheduler-file", "nowhere.json"], "nowhere.json: no such scheduler file"),
    ],
    ids=["two-schedulers", "local-option-remote", "missing-scheduler-file"],
)
def test_bad_cluster_options_exit_2(tmp_path, small, args, message):
    path = make_store(tmp_path / "s.zarr", small[0][:3], tile=None).path
    result = CliRunner().invoke(cli, ["compute", "--store", str(path), *args])
    assert result.exit_code == 2 and message in result.output


def test_tile_below_one_is_refused_once_by_the_library_in_option_terms(tmp_path, small):
    path = make_store(tmp_path / "s.zarr", small[0][:3], tile=None).path
    result = CliRunner().invoke(cli, ["compute", "--store", str(path), "--tile", "0"])
    assert result.exit_code == 2 and "Error: --tile must be at least 1, got 0" in result.output
    with pytest.raises(StoreError, match="^`tile` must be at least 1, got -2$"):
        compute(path, tile=-2)


def test_missing_store_exits_2_naming_the_command_that_creates_one(tmp_path):
    path = tmp_path / "none.zarr"
    result = CliRunner().invoke(cli, ["compute", "--store", str(path)])
    assert result.exit_code == 2
    assert result.output == f"Error: {path}: no nnstd-dist store here (create one with `nnstd-dist ingest SOURCES --store {path}`)\n"
    with pytest.raises(StoreError, match=re.escape(f"(create one with `add_networks({str(path)!r}, networks)`)")):
        TopologyStore.open(path)  # the library names its own call


def test_scheduler_address_from_the_environment(monkeypatch):
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", "tcp://10.0.0.1:8786")
    assert ClusterSpec.from_env().scheduler == "tcp://10.0.0.1:8786"
    assert ClusterSpec.from_env(scheduler_file="s.json").scheduler is None  # an explicit option wins
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS")
    assert not ClusterSpec.from_env(n_workers=3).external
    with pytest.raises(ClusterError, match="not both"):
        ClusterSpec(scheduler="tcp://a:1", scheduler_file="s.json")


class _Terminal:
    def __init__(self):
        self.text = ""

    def isatty(self):
        return True

    def write(self, text):
        self.text += text

    def flush(self):
        pass


def test_progress_bar_redraws_one_line_on_a_terminal():
    term = _Terminal()
    bar = ProgressBar(term)
    bar(Progress(0, 100, 0, 4, 0.0, 2, "http://127.0.0.1:8787/status"))
    bar.last_draw = 0.0  # the bar redraws at most every 0.1 s
    bar(Progress(25, 100, 1, 4, 5.0, 2))
    bar(Progress(100, 100, 4, 4, 20.0, 2))
    lines = term.text.split("\n")
    assert lines[0] == "100 pairs in 4 tiles on 2 worker threads; dashboard http://127.0.0.1:8787/status"
    assert "\r[#######.....................] 25/100 pairs  5.0 pairs/s  ETA 0:15" in lines[1]
    assert lines[1].endswith("\r[############################] 100/100 pairs  5.0 pairs/s  ETA 0:00")
    assert lines[2] == ""


def test_progress_bar_in_a_log_has_a_line_at_the_first_pairs_each_tenth_and_each_minute(monkeypatch):
    log = _Terminal()
    log.isatty = lambda: False
    bar = ProgressBar(log)
    bar(Progress(0, 1000, 0, 10, 0.0, 2))
    bar(Progress(0, 1000, 0, 10, 1.0, 2))  # a heartbeat with nothing done: no line
    bar(Progress(3, 1000, 0, 10, 2.0, 2, eta_seconds=600.0))  # the first pairs, reported by a running tile
    bar(Progress(50, 1000, 0, 10, 3.0, 2))  # within the same tenth: no line
    bar.last_line -= ProgressBar.LOG_SECONDS  # a minute later
    bar(Progress(60, 1000, 0, 10, 63.0, 2, eta_seconds=900.0))
    bar(Progress(120, 1000, 1, 10, 70.0, 2))  # 10 %
    bar(Progress(1000, 1000, 10, 10, 500.0, 2))
    lines = log.text.splitlines()
    assert lines[0] == "1000 pairs in 10 tiles on 2 worker threads"
    assert [re.sub(r"^\d\d:\d\d:\d\d ", "", line) for line in lines[1:]] == [
        "[............................] 3/1000 pairs  1.5 pairs/s  ETA 10:00",
        "[##..........................] 60/1000 pairs  1.0 pairs/s  ETA 15:00",
        "[###.........................] 120/1000 pairs  1.7 pairs/s  ETA 8:33",
        "[############################] 1000/1000 pairs  2.0 pairs/s  ETA 0:00",
    ]


def test_running_tiles_report_their_pairs_before_they_finish(tmp_path, medium, monkeypatch):
    networks, expected = medium
    path = make_store(tmp_path / "s.zarr", networks, tile=None).path
    monkeypatch.setattr(run_loop, "REPORT_SECONDS", 0.0)  # in-process workers: the module's own setting
    monkeypatch.setattr(progress, "HEARTBEAT_SECONDS", 0.0)
    seen = []
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster, Client(cluster) as c:
        plan, stats = compute(
            path, tile=22, client=c, on_progress=lambda p: p.note or seen.append((p.tiles_done, p.pairs_done, p.pairs_running, p.eta))
        )
    assert len(plan) == 1 and stats.pairs == 231
    assert all(done == 0 for tiles, done, _, _ in seen if tiles == 0)  # the bar counts pairs on disk only
    partial = [(running, eta) for tiles, _, running, eta in seen if tiles == 0 and running > 0]
    assert partial and all(0 < pairs <= 231 for pairs, _ in partial), seen
    assert all(eta is not None and eta >= 0 for _, eta in partial)  # priced from the plan's... or the rate so far
    assert seen[-1][:3] == (1, 231, 0)


def test_a_tile_on_a_closing_worker_goes_back_to_the_scheduler(tmp_path, small, monkeypatch):
    from distributed import Reschedule
    from distributed.core import Status

    networks, _ = small
    path = make_store(tmp_path / "s.zarr", networks, tile=None).path
    run_loop.plan_store(TopologyStore.open(path, mode="r+"), 8, False, 2)  # creates the result arrays, tiles of 8
    closing = type("Worker", (), {"status": Status.closing})()
    monkeypatch.setattr(run_loop, "get_worker", lambda: closing)
    with pytest.raises(Reschedule):
        run_loop._tile_on_worker(str(path), 1, 0, len(networks))
    assert TopologyStore.open(path).tile_marker(1, 0) == 0


@pytest.mark.slow
def test_a_worker_closed_mid_tile_changes_nothing(tmp_path, medium):
    # A batch job at its time limit closes a worker while it runs a tile: the tile stops between two
    # pairs and runs again elsewhere; the matrix is the same.
    networks, expected = medium
    path = make_store(tmp_path / "s.zarr", networks, tile=None).path

    def close(c, busy):
        c.run(lambda dask_worker: dask_worker.loop.add_callback(dask_worker.close, nanny=False), workers=[busy])

    plan, stats, _, _ = _disturb_a_busy_worker(path, 11, close)
    assert stats.tiles == len(plan) == 3
    np.testing.assert_array_equal(stored(path), expected)
