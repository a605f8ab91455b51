"""The topology store: layout, append rules, reading masks back, results bookkeeping, the run lock."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st

from _populations import write_tile
from nnstd_dist.errors import LockError, ShapeMismatchError, StoreError
from nnstd_dist.engine.plan import make_plan
from nnstd_dist.store.inventory import pairs_computed, summarize
from nnstd_dist.tiles import pairs_in_done_tiles, total_pairs
from nnstd_dist.records import NetworkRecord, mask_digest
from nnstd_dist.store import lock as runlock
from nnstd_dist.store.lock import LOCK_FILE
from nnstd_dist.store.topology_store import FORMAT_VERSION, TopologyStore, add_networks, locked

SHAPES = [(12, 10), (10, 10), (10, 3)]


def network(rng, density=0.3, shapes=SHAPES):
    return [sp.csr_matrix(rng.random(s) < density) for s in shapes]


def population(rng, n, prefix="net"):
    return [(NetworkRecord(f"{prefix}_{i:03d}", run=f"r{i % 2}", epoch=i, accuracy=i / 10), network(rng)) for i in range(n)]


@pytest.fixture
def store(tmp_path, rng):
    s = TopologyStore.create(tmp_path / "s.zarr", SHAPES)
    s.append(population(rng, 7))
    return s


def assert_same_masks(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g.toarray(), w.toarray())


# ---- layout and population ----------------------------------------------------------------------------


def test_round_trip_masks_and_metadata(tmp_path, rng):
    nets = population(rng, 5)
    s = TopologyStore.create(tmp_path / "s.zarr", SHAPES)
    report = s.append(nets)
    assert report.added == [r.name for r, _ in nets] and not report.unchanged and not report.replaced
    s = TopologyStore.open(tmp_path / "s.zarr")
    assert s.n_networks == 5 and s.shapes == SHAPES and s.names() == [r.name for r, _ in nets]
    for got, (want, masks) in zip(s.records(), nets):
        assert (got.name, got.run, got.epoch, got.accuracy) == (want.name, want.run, want.epoch, want.accuracy)
        assert got.digest == mask_digest(masks)
    for got, (_, masks) in zip(s.read_masks(range(5)), nets):
        assert_same_masks(got, masks)
    np.testing.assert_array_equal(s.connections(), [[m.nnz for m in masks] for _, masks in nets])


@pytest.mark.parametrize(
    "indices", [[3, 1, 3, 0], [6, 5, 4], [0, 2, 4, 6], list(range(7)), []], ids=["dup", "reverse", "strided", "all", "none"]
)
def test_read_layer_any_order(store, rng, indices):
    everything = [m.toarray() for m in store.read_layer(range(7), 1)]
    got = store.read_layer(indices, 1)
    assert all(m.format == "csr" and m.dtype == bool and m.has_sorted_indices for m in got)
    np.testing.assert_array_equal([m.toarray() for m in got], [everything[i] for i in indices])


def test_read_layer_bounds(store):
    with pytest.raises(StoreError, match="out of range"):
        store.read_layer([7], 0)
    with pytest.raises(StoreError, match="layer 3 out of range"):
        store.read_layer([0], 3)


def test_indices_by_name(store):
    np.testing.assert_array_equal(store.indices(["net_004", "net_000"]), [4, 0])
    with pytest.raises(StoreError, match="no network named 'nope'"):
        store.indices(["net_001", "nope"])


def test_missing_metadata_defaults(tmp_path, rng):
    s = TopologyStore.create(tmp_path / "s.zarr", SHAPES)
    s.append([(NetworkRecord("bare"), network(rng))])
    (record,) = TopologyStore.open(tmp_path / "s.zarr").records()
    assert record.run == "" and record.epoch == -1 and np.isnan(record.accuracy)


def test_append_grows_and_keeps_order(store, rng):
    more = population(rng, 3, prefix="more")
    store.append(more)
    assert store.n_networks == 10 and store.names()[7:] == [r.name for r, _ in more]
    np.testing.assert_array_equal(store.read_layer([9], 2)[0].toarray(), more[2][1][2].toarray())


def test_same_name_same_content_is_unchanged(store, rng):
    first = TopologyStore.open(store.path).read_layer([2], 0)[0].toarray()
    masks = [m.copy() for m in store.read_masks([2])[0]]
    report = store.append([(NetworkRecord("net_002", run="elsewhere"), [m.astype(np.float32) * 3 for m in masks])])
    assert report.unchanged == ["net_002"] and not report.added and store.n_networks == 7
    np.testing.assert_array_equal(store.read_layer([2], 0)[0].toarray(), first)
    assert store.records()[2].run == "r0"  # a no-op leaves metadata alone too


def test_same_name_other_content_needs_replace(store, rng):
    with pytest.raises(StoreError, match="a different network named 'net_002'.*`replace`"):
        store.append([(NetworkRecord("net_002"), network(rng))])
    replacement = network(rng)
    report = store.append([(NetworkRecord("net_002", run="new"), replacement)], replace=True)
    assert report.replaced == ["net_002"] and store.n_networks == 7
    assert_same_masks(store.read_masks([2])[0], replacement)
    assert store.records()[2].run == "new" and store.connections()[2].tolist() == [m.nnz for m in replacement]


def test_shape_mismatch_names_source_and_both_shapes(store, rng):
    other = network(rng, shapes=[(12, 10), (10, 9), (9, 3)])
    with pytest.raises(ShapeMismatchError, match=r"odd.npz: layer shapes \[12x10, 10x9, 9x3\] differ from the store's \[12x10, 10x10, 10x3\]"):
        store.append([(NetworkRecord("odd", source="/data/odd.npz"), other)])


def test_name_twice_in_one_append(store, rng):
    with pytest.raises(StoreError, match="given twice"):
        store.append([(NetworkRecord("x"), network(rng)), (NetworkRecord("x"), network(rng))])
    assert store.n_networks == 7


def test_mask_digest_ignores_weights_and_format():
    a = sp.csr_matrix(np.array([[0.5, 0.0], [1.0, -2.0]]))
    assert mask_digest([a]) == mask_digest([a.toarray() != 0]) == mask_digest([sp.coo_matrix(a * 9)])
    assert mask_digest([a]) != mask_digest([a.T])
    assert mask_digest([a]) != mask_digest([sp.csr_matrix((2, 2))])


# ---- opening -------------------------------------------------------------------------------------------


def test_open_rejects_what_is_not_a_store(tmp_path):
    (tmp_path / "file.zarr").write_text("x")
    with pytest.raises(StoreError, match="is a file"):
        TopologyStore.open(tmp_path / "file.zarr")
    with pytest.raises(StoreError, match="no nnstd-dist store"):
        TopologyStore.open(tmp_path / "absent.zarr")
    zarr.open_group(str(tmp_path / "plain.zarr"), mode="w").attrs["x"] = 1
    with pytest.raises(StoreError, match="not an nnstd-dist store"):
        TopologyStore.open(tmp_path / "plain.zarr")


def test_open_checks_format_version(store):
    zarr.open_group(str(store.path), mode="r+").attrs["format_version"] = FORMAT_VERSION + 1
    with pytest.raises(StoreError, match=f"format version {FORMAT_VERSION + 1}, this nnstd-dist reads version {FORMAT_VERSION}"):
        TopologyStore.open(store.path)


def test_xarray_labels_the_store(store):
    xr = pytest.importorskip("xarray")
    store.init_results(4)
    ds = xr.open_zarr(store.path, consolidated=False)
    assert list(ds["network"].values) == store.names()
    assert ds["mask_l0"].dims == ("network", "in_l0", "out_l0")
    assert {"run", "epoch", "accuracy"} <= set(ds.coords)
    assert "distance" not in ds  # distances are tile records, lower triangle only: nd.labelled_matrix labels them
    assert ds["connections"].sel(network="net_003").values.tolist() == store.connections()[3].tolist()
    assert int(ds["mask_l1"].sel(network="net_005").sum()) == store.connections()[5, 1]


# ---- add_networks: create or append ---------------------------------------------------------------------


def test_add_networks_creates_then_appends(tmp_path, rng):
    path = tmp_path / "deep" / "s.zarr"
    report, created = add_networks(path, population(rng, 3))
    assert created and len(report.added) == 3
    report, created = add_networks(path, population(rng, 2, prefix="b"))
    assert not created and TopologyStore.open(path).n_networks == 5
    assert sorted(p.name for p in path.parent.iterdir()) == ["s.zarr"]  # no staging folder left
    assert not (path / LOCK_FILE).exists()


def test_add_networks_sees_an_append_made_while_it_waited_for_the_lock(tmp_path, rng, monkeypatch):
    path = tmp_path / "s.zarr"
    add_networks(path, population(rng, 2))
    real_hold = runlock.hold

    def hold_after_another_ingest(directory, command, force=False):
        TopologyStore.open(path, mode="r+").append(population(rng, 1, prefix="other"))  # won the race
        return real_hold(directory, command, force)

    monkeypatch.setattr(runlock, "hold", hold_after_another_ingest)
    add_networks(path, population(rng, 1, prefix="mine"))
    assert TopologyStore.open(path).names() == ["net_000", "net_001", "other_000", "mine_000"]


def test_add_networks_into_empty_directory(tmp_path, rng):
    (tmp_path / "s.zarr").mkdir()
    _, created = add_networks(tmp_path / "s.zarr", population(rng, 2))
    assert created and TopologyStore.open(tmp_path / "s.zarr").n_networks == 2


def test_failed_creation_leaves_nothing(tmp_path, rng):
    nets = population(rng, 3) + [(NetworkRecord("odd"), network(rng, shapes=[(12, 10), (10, 4), (4, 3)]))]
    with pytest.raises(ShapeMismatchError):
        add_networks(tmp_path / "s.zarr", nets)
    assert list(tmp_path.iterdir()) == []


def test_add_networks_refuses_a_foreign_directory(tmp_path, rng):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "notes.txt").write_text("mine")
    with pytest.raises(StoreError, match="not an nnstd-dist store; give a new path"):
        add_networks(tmp_path / "data", population(rng, 1))


# ---- results bookkeeping ---------------------------------------------------------------------------------


def test_append_after_results_keeps_what_done_tiles_hold(store, rng):
    store.init_results(3)  # tiles: {0,1,2} {3,4,5} {6}
    write_tile(store, 2, 0, np.full((3, 1, 3), 0.5), done_at=7)
    store.append(population(rng, 2, prefix="late"))  # tile row 2 grows to {6,7,8}
    assert store.tile_markers().shape == (3, 3) and store.tile_markers()[2, 0] == 7
    d = store.read_distance()
    assert (d[:, 6, :3] == 0.5).all() and (d[:, :3, 6] == 0.5).all() and np.isnan(d[:, 7:, :3]).all()


def test_replace_forgets_that_networks_distances(store, rng):
    store.init_results(3)  # tiles: {0,1,2} {3,4,5} {6}
    for a in range(3):
        for b in range(a + 1):
            rows, cols = min(3, 7 - 3 * a), min(3, 7 - 3 * b)
            write_tile(store, a, b, np.full((3, rows, cols), 0.5), done_at=7)
    assert pairs_computed(store) == total_pairs(7)
    store.append([(NetworkRecord("net_004"), network(rng))], replace=True)
    d = store.read_distance()
    assert np.isnan(d[:, 4, np.arange(7) != 4]).all() and np.isnan(d[:, np.arange(7) != 4, 4]).all()
    assert (d[:, 4, 4] == 0).all() and (d[:, 0, 1] == 0.5).all()
    done = store.tile_markers()
    assert done[1, 0] == done[1, 1] == done[2, 1] == 0 and done[0, 0] == done[2, 0] == done[2, 2] == 7
    assert pairs_computed(store) == total_pairs(7) - (3 * 3 + 3 + 3 * 1)


def test_done_markers_after_a_replace_and_an_append(store, rng):
    """tile_markers() reads the records' headers only (fast at N = 10,000)."""
    store.init_results(2)  # tiles of {0,1} {2,3} {4,5} {6}
    for a, b, n in [(0, 0, 7), (2, 1, 7), (3, 0, 5), (3, 3, 7)]:
        rows, cols = min(2, 7 - 2 * a), min(2, 7 - 2 * b)
        write_tile(store, a, b, np.full((3, rows, cols), 0.25), done_at=n)
    store.append([(NetworkRecord("net_002"), network(rng))], replace=True)  # zeroes tile row/column 1
    store.append(population(rng, 3, prefix="late"))  # 10 networks: the grid grows to 5 x 5
    expected = np.zeros((5, 5), dtype=np.int64)
    expected[0, 0], expected[3, 0], expected[3, 3] = 7, 5, 7
    assert np.array_equal(store.tile_markers(), expected)


@settings(max_examples=80, deadline=None)
@given(n=st.integers(2, 60), tile=st.integers(1, 9), data=st.data())
def test_pairs_in_done_tiles_agrees_with_the_plan(n, tile, data):
    """Counted from tiles_done alone; the compute planner must see exactly the rest as remaining."""
    k = -(-n // tile)
    done = np.array(data.draw(st.lists(st.sampled_from([0, 1, n // 2, n - 1, n, n + 3]), min_size=k * k, max_size=k * k))).reshape(k, k)
    assert pairs_in_done_tiles(done, n, tile) == total_pairs(n) - make_plan(n, tile, done).n_pairs


def test_summary(store):
    summary = summarize(store)
    assert summary["networks"] == 7 and [l["shape"] for l in summary["layers"]] == [list(s) for s in SHAPES]
    conn = store.connections()
    for k, (n_in, n_out) in enumerate(SHAPES):
        assert summary["layers"][k]["density"] == pytest.approx(conn[:, k].mean() / (n_in * n_out))
    assert summary["runs"] == ["r0", "r1"] and summary["epochs"] == list(range(7))
    assert summary["pairs_total"] == 21 and summary["pairs_computed"] == 0 and summary["tile"] is None
    on_disk = sum(p.stat().st_size for p in store.path.rglob("*") if p.is_file())
    assert summary["bytes"] == on_disk and summary["connections"] == conn.sum()
    json.dumps(summary)  # every value is plain JSON


# ---- the run lock ----------------------------------------------------------------------------------------


def test_second_lock_names_the_holder(store):
    with locked(store.path, "nnstd-dist compute --store s.zarr"):
        with pytest.raises(LockError) as info:
            with locked(store.path, "nnstd-dist ingest"):
                pass
        message = str(info.value)
        assert f"host {socket.gethostname()}" in message and "pid " in message and "nnstd-dist compute" in message
    assert not (store.path / LOCK_FILE).exists()
    with locked(store.path, "again"):  # released, so it can be taken again
        pass


def test_stale_lock_of_a_dead_process_is_taken_over(store):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    holder = {"host": socket.gethostname(), "pid": dead.pid, "started": "yesterday", "command": "crashed run"}
    (store.path / LOCK_FILE).write_text(json.dumps(holder))
    with locked(store.path, "nnstd-dist ingest"):
        assert json.loads((store.path / LOCK_FILE).read_text())["pid"] != dead.pid
    assert not (store.path / LOCK_FILE).exists()


def test_lock_of_another_host_needs_force(store):
    holder = {"host": "some-other-node", "pid": 1, "started": "now", "command": "remote run"}
    (store.path / LOCK_FILE).write_text(json.dumps(holder))
    with pytest.raises(LockError, match="host some-other-node, pid 1"):
        with locked(store.path, "mine"):
            pass
    with locked(store.path, "mine", force=True):
        pass


def test_a_mask_read_that_fails_its_checksum_once_is_read_again(store, monkeypatch):
    """An ingest rewriting a shard between zarr's read of its index and of its chunks: the second read sees one file."""
    import zarr

    real, calls = zarr.Array.__getitem__, []

    def once_torn(self, selection):
        calls.append(selection)
        if len(calls) == 1:
            raise ValueError("Stored and computed checksum do not match")
        return real(self, selection)

    expected = store.read_layer([0, 1], 0)
    monkeypatch.setattr(zarr.Array, "__getitem__", once_torn)
    got = store.read_layer([0, 1], 0)
    assert len(calls) == 2 and all((g != e).nnz == 0 for g, e in zip(got, expected))


def test_a_mask_that_fails_its_checksum_twice_is_damage(store, monkeypatch):
    import zarr

    monkeypatch.setattr(zarr.Array, "__getitem__", lambda self, selection: (_ for _ in ()).throw(ValueError("checksum do not match")))
    with pytest.raises(StoreError, match="mask_l0 of networks 0..1 is damaged"):
        store.read_layer([0, 1], 0)
