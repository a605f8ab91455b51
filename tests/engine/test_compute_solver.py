"""compute --solver and --max-layer: recorded in the store, never mixed, a layer not computed is an error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from click.testing import CliRunner

from nnstd_dist.cli.main import cli
from nnstd_dist.errors import StoreError
from nnstd_dist.kernel.distance import TIE_RULES, nnstd_certified, prepare
from nnstd_dist.records import NetworkRecord
from nnstd_dist.engine import compute
from nnstd_dist.store.topology_store import TopologyStore

from _populations import make_store, pair_distances

SHAPES = [(40, 40), (40, 40), (40, 5)]


@pytest.fixture(scope="module")
def client(dask_client):
    return dask_client


@pytest.fixture(scope="module")
def networks():
    rng = np.random.default_rng(16)
    return [[sp.random(*s, density=0.15, random_state=rng, format="csr") != 0 for s in SHAPES] for _ in range(9)]


@pytest.fixture
def store_path(tmp_path, networks):
    return make_store(tmp_path / "s.zarr", networks, [NetworkRecord(f"net_{k}") for k in range(len(networks))], tile=None).path


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_fast_run_equals_the_fast_kernel_and_is_recorded(store_path, networks, client):
    _, stats = compute(store_path, tile=4, client=client, solver="fast")
    store = TopologyStore.open(store_path)
    assert (store.solver, store.tie_rule, store.max_layer) == ("fast", TIE_RULES["fast"], None)
    prepared = [prepare(n) for n in networks]
    flags = {(i, j) for i in range(9) for j in range(i) if nnstd_certified(prepared[i], prepared[j], solver="fast")[1] is False}
    assert stats.solver == "fast" and stats.uncertified == len(flags)  # the run's summary counts what the kernel said
    assert {tuple(p) for p in store.uncertified_pairs().tolist()} == flags
    got = store.read_distance()
    np.testing.assert_array_equal(got, pair_distances(networks, solver="fast"))
    np.testing.assert_allclose(got[0], pair_distances(networks)[0], rtol=0, atol=1e-12)


def test_one_matrix_never_mixes_solvers(store_path, client):
    compute(store_path, tile=4, client=client)
    result = run("compute", "--store", store_path, "--solver", "fast")
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"Error: {store_path}: its distances were computed with the exact solver; --solver fast needs --recompute"
    ]
    plan, stats = compute(store_path, client=client, solver="fast", recompute=True)
    assert stats.pairs == 36 and TopologyStore.open(store_path).solver == "fast"


def test_fast_results_of_another_rule_are_not_finished(store_path, client):
    # Deeper layers depend on the rule's choice among optimal matchings: one matrix never mixes two rules.
    compute(store_path, tile=4, client=client, solver="fast")
    store = TopologyStore.open(store_path, mode="r+")
    # a store as an older rule left it: another tie_rule, and records that name no rule (no record_binding), rewritten so
    blocks = {(a, b): store.read_tile(a, b) for a in range(3) for b in range(a + 1)}
    store._group.attrs["tie_rule"] = 0
    del store._group.attrs["record_binding"]
    store = TopologyStore.open(store_path, mode="r+")
    for (a, b), block in blocks.items():
        store.write_tile(a, b, block, done_at=9)
    result = run("compute", "--store", store_path, "--solver", "fast")
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"Error: {store_path}: its distances came from tie rule 0 of the fast solver, this version uses rule "
        f"{TIE_RULES['fast']}; finishing them needs --recompute"
    ]
    # the old rule's distances stay readable: exported and described as they are
    out = Path(store_path).with_name("old_rule.npz")
    assert run("export", "--store", store_path, "-o", str(out)).exit_code == 0
    with np.load(out, allow_pickle=False) as data:
        assert data["distance"].shape[1:] == (9, 9) and not np.isnan(data["distance"]).any()
    assert json.loads(run("info", "--store", store_path, "--json").output)["tie_rule"] == 0
    plan, stats = compute(store_path, client=client, solver="fast", recompute=True)
    assert stats.pairs == 36 and TopologyStore.open(store_path).tie_rule == TIE_RULES["fast"]


def test_sparse_is_no_solver_any_more(store_path):
    result = run("compute", "--store", store_path, "--solver", "sparse")
    assert result.exit_code == 2 and "'sparse' is not one of 'exact', 'fast'" in result.output


def test_fast_max_layer_equals_the_full_runs_first_layers(store_path, networks, client):
    """The fast rule's colours see the whole network: tasks read every layer, so layers 0..K are a full run's."""
    compute(store_path, tile=4, client=client, solver="fast", max_layer=1)
    got = TopologyStore.open(store_path).read_distance(layers=[0, 1])
    np.testing.assert_array_equal(got, pair_distances(networks, solver="fast")[:2])


def test_max_layer(store_path, networks, client, tmp_path):
    compute(store_path, tile=4, client=client, max_layer=0)
    store = TopologyStore.open(store_path)
    assert store.max_layer == 0
    np.testing.assert_array_equal(store.read_distance([0]), pair_distances(networks)[:1])
    assert all(np.isnan(store.read_tile(a, b)[1:]).all() for a in range(3) for b in range(a + 1))  # nothing beyond layer 0
    with pytest.raises(StoreError, match="layer 1 was not computed") as refused:
        store.read_distance([1])
    assert str(refused.value).endswith(f"run `compute({str(store_path)!r}, max_layer=1, recompute=True)`")  # the library names no option
    for command, layer in ((["export", "--layer", "2", "-o", tmp_path / "d.npz"], 2), (["plot", "--layer", "1", "-o", tmp_path / "d.png"], 1)):
        result = run(*command, "--store", store_path)
        assert result.exit_code == 2, result.output
        assert (f"layer {layer} was not computed (the distances stop at layer 0); "
                f"run `nnstd-dist compute --store {store_path} --max-layer {layer} --recompute`") in result.output, result.output
    result = run("export", "--store", store_path, "-o", tmp_path / "d.npz")  # default: the computed layers
    assert result.exit_code == 0, result.output
    with np.load(tmp_path / "d.npz", allow_pickle=False) as f:
        assert f["layer"].tolist() == [0]
    plan, _ = compute(store_path, client=client, max_layer=0)
    assert len(plan) == 0  # the same layers again: nothing to do
    plan, _ = compute(store_path, client=client)
    assert len(plan) == 0  # no max_layer given: the store's is kept
    for more in (1, "all"):
        with pytest.raises(StoreError, match="more layers need every layer again"):
            compute(store_path, client=client, max_layer=more)
    result = run("compute", "--store", store_path, "--max-layer", "5")
    assert result.exit_code == 2 and "--max-layer 5 out of range" in result.output


def test_a_store_without_the_new_attributes_is_exact_with_all_layers(store_path, client):
    compute(store_path, tile=4, client=client)
    store = TopologyStore.open(store_path, mode="r+")
    for key in ("solver", "max_layer"):
        del store._group.attrs[key]
    store = TopologyStore.open(store_path)
    assert (store.solver, store.tie_rule, store.max_layer) == ("exact", None, None)
    plan, _ = compute(store_path, client=client)
    assert len(plan) == 0


def test_a_bounded_window_of_tiles_in_flight(store_path, networks, client, monkeypatch):
    """Tiles are submitted a window at a time and collected as they finish; the result is the same."""
    from nnstd_dist.engine import run as run_loop

    monkeypatch.setattr(run_loop, "MIN_IN_FLIGHT", 3)
    monkeypatch.setattr(run_loop, "IN_FLIGHT_PER_THREAD", 1)
    seen = []

    def on_progress(p):
        seen.append((p.tiles_done, client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks))))

    plan, stats = compute(store_path, tile=1, client=client, on_progress=on_progress)
    assert len(plan) == stats.tiles == 45 and sorted({t for t, _ in seen}) == list(range(46))
    # the window, plus finished tiles the scheduler has not forgotten yet (it releases them asynchronously)
    assert max(known for _, known in seen) <= 3 + 2  # all at once, this would be 45
    np.testing.assert_array_equal(TopologyStore.open(store_path).read_distance(), pair_distances(networks))
