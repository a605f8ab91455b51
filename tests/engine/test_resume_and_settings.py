"""An interrupted recompute resumes, the store's solver is kept, the first line comes first, progress in Python (issue 29)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import scipy.sparse as sp
from click.testing import CliRunner

from nnstd_dist.cli.main import cli
from nnstd_dist.engine import compute
from nnstd_dist.engine.progress import TqdmBar
from nnstd_dist.engine.run import pairs_kept
from nnstd_dist.records import NetworkRecord
from nnstd_dist.store.topology_store import TopologyStore, add_networks

from _populations import make_store, pair_distances

SHAPES = [(30, 30), (30, 30), (30, 4)]
N = 9
PAIRS = N * (N - 1) // 2


@pytest.fixture(scope="module")
def networks():
    rng = np.random.default_rng(29)
    return [[sp.random(*s, density=0.2, random_state=rng, format="csr") != 0 for s in SHAPES] for _ in range(N + 1)]


@pytest.fixture
def store_path(tmp_path, networks):
    names = [NetworkRecord(f"net_{k}") for k in range(N)]
    return make_store(tmp_path / "s.zarr", networks[:N], names, tile=None).path


def _stop_after(tiles: int, path, seen: list):
    """An on_progress that checks the bar against the disk, then stops the run (as Ctrl-C does) after ``tiles`` tiles."""

    def on_progress(p):
        if p.note:
            return
        seen.append(p.pairs_done)
        assert p.pairs_done <= pairs_kept(path)[0]  # the bar never counts a pair that is not on disk
        if p.tiles_done >= tiles:
            raise KeyboardInterrupt

    return on_progress


def test_an_interrupted_recompute_resumes_and_only_a_finished_one_starts_over(store_path, networks, dask_client):
    compute(store_path, tile=2, client=dask_client)
    seen: list = []
    with pytest.raises(KeyboardInterrupt):
        compute(store_path, recompute=True, tile=2, client=dask_client, on_progress=_stop_after(3, store_path, seen))
    kept, total = pairs_kept(store_path)
    assert total == PAIRS and 0 < kept < PAIRS and seen[-1] <= kept
    assert TopologyStore.open(store_path).recomputing
    # (a cancelled tile already running on a worker may still finish and be kept: at most PAIRS - kept are left)
    plan, _ = compute(store_path, recompute=True, tile=2, client=dask_client, dry_run=True)  # the same call again
    assert plan.resumed and 0 < plan.n_pairs <= PAIRS - kept
    plan, stats = compute(store_path, recompute=True, tile=2, client=dask_client)
    assert 0 < stats.pairs <= PAIRS - kept
    store = TopologyStore.open(store_path)
    assert not store.recomputing
    np.testing.assert_array_equal(store.read_distance(), pair_distances(networks[:N]))
    plan, _ = compute(store_path, recompute=True, client=dask_client, dry_run=True)  # after a finished run: afresh
    assert not plan.resumed and plan.n_pairs == PAIRS


def test_an_interrupted_recompute_with_other_settings_is_not_resumed(store_path, dask_client):
    compute(store_path, tile=2, client=dask_client)
    with pytest.raises(KeyboardInterrupt):
        compute(store_path, recompute=True, tile=2, client=dask_client, on_progress=_stop_after(2, store_path, []))
    plan, _ = compute(store_path, recompute=True, client=dask_client, dry_run=True)  # the tile given no more: resumed
    assert plan.resumed and plan.tile == 2
    plan, _ = compute(store_path, recompute=True, solver="fast", client=dask_client, dry_run=True)
    assert not plan.resumed and plan.n_pairs == PAIRS
    plan, _ = compute(store_path, recompute=True, tile=3, client=dask_client, dry_run=True)
    assert not plan.resumed and plan.n_pairs == PAIRS


def test_the_stores_solver_and_layers_are_kept_unless_given(store_path, networks, dask_client, tmp_path):
    compute(store_path, tile=4, client=dask_client, solver="fast", max_layer=1)
    add_networks(store_path, [(NetworkRecord(f"net_{N}"), networks[N])])  # the population grows
    notes: list = []
    plan, stats = compute(store_path, client=dask_client, on_progress=lambda p: p.note and notes.append(p.note))
    assert stats.pairs == N and plan.solver == "fast" and plan.max_layer == 1
    assert notes == [f"Resuming: {N} of {PAIRS + N} pairs left, tile 4, the fast solver, layers 0..1, on the Dask client's 2 worker threads"]
    store = TopologyStore.open(store_path)
    assert (store.solver, store.max_layer) == ("fast", 1)
    np.testing.assert_allclose(store.read_distance([0])[0], pair_distances(networks, solver="fast")[0], rtol=0, atol=1e-12)
    # a recompute without a solver keeps it too, and says nothing about a change
    notes.clear()
    plan, _ = compute(store_path, recompute=True, client=dask_client, on_progress=lambda p: p.note and notes.append(p.note))
    assert (plan.solver, plan.max_layer) == ("fast", 1) and not any("computed with" in n for n in notes)
    # changing it is said in one line, first
    notes.clear()
    plan, _ = compute(store_path, recompute=True, solver="exact", max_layer="all", client=dask_client,
                      on_progress=lambda p: p.note and notes.append(p.note))
    assert notes[0] == "The store's distances were computed with the fast solver, layers 0..1; recomputing every pair with the exact solver, every layer."
    assert notes[1].startswith(f"Starting: {PAIRS + N} pairs of {N + 1} networks with the exact solver, every layer")
    assert (TopologyStore.open(store_path).solver, TopologyStore.open(store_path).max_layer) == ("exact", None)


def test_the_cli_keeps_the_stores_solver_with_recompute(store_path, dask_client):
    compute(store_path, tile=4, client=dask_client, solver="fast")
    address = ["--scheduler", dask_client.scheduler.address]
    result = CliRunner().invoke(cli, ["compute", "--store", str(store_path), "--recompute", *address])
    assert result.exit_code == 0, result.output
    assert TopologyStore.open(store_path).solver == "fast" and "computed with" not in result.stderr
    result = CliRunner().invoke(cli, ["compute", "--store", str(store_path), "--recompute", "--solver", "exact", *address])
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[0] == (
        "The store's distances were computed with the fast solver, every layer; recomputing every pair with the exact solver, every layer."
    )


def test_the_first_line_says_what_starts_before_the_kernel_is_timed(store_path, dask_client, monkeypatch):
    from nnstd_dist.engine import run as run_loop

    order = []
    timed = run_loop.time_kernel
    monkeypatch.setattr(run_loop, "time_kernel", lambda *a, **k: order.append("timed") or timed(*a, **k))
    result = CliRunner().invoke(cli, ["compute", "--store", str(store_path), "--scheduler", dask_client.scheduler.address],
                                catch_exceptions=False)
    assert result.exit_code == 0
    lines = result.stderr.splitlines()
    assert lines[0] == (
        f"Starting: {PAIRS} pairs of {N} networks with the exact solver, every layer, on the scheduler {dask_client.scheduler.address}; "
        "timing a few pairs to choose the tile"
    )
    assert order == ["timed"] and lines[1].startswith(f"{PAIRS} pairs in 1 tile on 2 worker threads")


def test_compute_shows_a_tqdm_bar_of_pairs_on_disk(store_path, dask_client):
    out = io.StringIO()
    compute(store_path, tile=4, client=dask_client, on_progress=TqdmBar(file=out, ascii=True))
    text = out.getvalue()
    assert text.startswith("Starting: ") and f"{PAIRS}/{PAIRS}" in text


def test_compute_is_silent_where_nobody_watches_or_when_quiet(store_path, dask_client, capsys):
    compute(store_path, tile=4, client=dask_client)  # stderr is captured here: not a terminal
    compute(store_path, recompute=True, client=dask_client, quiet=True)
    assert capsys.readouterr().err == ""
