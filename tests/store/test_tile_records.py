"""Format 3's results: tile records bound to their place and networks, packed into a file per tile row, few files at rest."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from nnstd_dist.errors import StoreError
from nnstd_dist.store import tile_files
from nnstd_dist.store.topology_store import TopologyStore
from nnstd_dist.store.verify import verify

from _damage import local_file
from _populations import chain, make_store, pair_distances, records

N, TILE = 10, 3  # tiles {0..2} {3..5} {6..8} {9}: 4 tile rows, 10 tiles


@pytest.fixture(scope="module")
def networks():
    return chain(seed=3, length=N, fraction=0.3)


@pytest.fixture
def store(tmp_path, networks):
    return make_store(tmp_path / "s.zarr", networks, records(N), tile=TILE)


def _tiles(path):
    return path / "distances" / "g1" / "tiles"


def _files(path) -> int:
    return sum(len(files) for _, _, files in os.walk(path))


@pytest.mark.parametrize("blocks", [False, True], ids=["headers", "whole"])
def test_a_record_reads_back_as_written(tmp_path, blocks):
    digests = [f"d{i}" for i in range(7)]
    block = np.random.default_rng(0).random((2, 1, 1))
    (tmp_path / "t").write_bytes(tile_files.encode(2, 2, 3, 7, 5, digests, block, generation=5))
    [record] = tile_files.read_records(*local_file(tmp_path / "t"), blocks)
    assert record.header["rows"] == [6, 7] and record.header["cols"] == [6, 7] and record.problem is None
    assert record.header["networks"] == tile_files.networks_hash(digests, (6, 7), (6, 7))
    if blocks:
        assert np.array_equal(record.block, block)


def test_every_bit_of_a_record_is_checked(tmp_path):
    """Flip each byte in turn: the record is damaged or (the header's JSON) no longer vouches; it never reads as a number."""
    digests = [f"d{i}" for i in range(6)]
    raw = tile_files.encode(1, 0, 3, 6, 1, digests, np.full((1, 3, 3), 0.25), generation=1)
    for i in range(len(raw)):
        spoiled = bytearray(raw)
        spoiled[i] ^= 0x01
        (tmp_path / "t").write_bytes(bytes(spoiled))
        records = tile_files.read_records(*local_file(tmp_path / "t"), blocks=True)
        assert records and records[0].problem, f"byte {i}"


def test_a_run_packs_each_tile_row_into_one_file(tmp_path, networks, dask_client):
    from nnstd_dist.engine import compute

    store = make_store(tmp_path / "s.zarr", networks, records(N), tile=None)
    plan, stats = compute(store.path, tile=TILE, client=dask_client)
    path = store.path
    assert sorted(os.listdir(path / "distances" / "g1" / "rows")) == ["0", "1", "2", "3"] and os.listdir(_tiles(path)) == []
    np.testing.assert_array_equal(TopologyStore.open(path).read_distance(), pair_distances(networks))
    # 2 layers: a shard file each; 8 per-network arrays: a chunk each; zarr.json of the group, 10 arrays and distances/; 4 row files
    assert _files(path) == 2 + 8 + 12 + 4


def test_a_replace_makes_its_networks_records_stale_and_compute_redoes_exactly_those(tmp_path, networks, dask_client):
    """A replace writes no result file: the records of the replaced network stop vouching (their digests), and, written
    before the replace, they are stale, not damage."""
    from nnstd_dist.engine import compute
    from nnstd_dist.records import NetworkRecord

    store = make_store(tmp_path / "s.zarr", networks, records(N), tile=None)
    compute(store.path, tile=TILE, client=dask_client)
    other = chain(seed=99, length=1, fraction=0.3)[0]
    store = TopologyStore.open(store.path, mode="r+")
    store.append([(NetworkRecord("net_004"), other)], replace=True)  # tile 1: tiles (1, 0), (1, 1), (2, 1), (3, 1)
    markers = store.tile_markers()
    assert [(a, b) for a in range(4) for b in range(a + 1) if not markers[a, b]] == [(1, 0), (1, 1), (2, 1), (3, 1)]
    assert verify(store.path).ok and np.isnan(store.read_distance()[:, 4, :3]).all()
    plan, stats = compute(store.path, client=dask_client)
    assert sorted((t.a, t.b) for t in plan.tasks) == [(1, 0), (1, 1), (2, 1), (3, 1)] and not stats.repaired
    expected = pair_distances([other if i == 4 else net for i, net in enumerate(networks)])
    np.testing.assert_array_equal(TopologyStore.open(store.path).read_distance(), expected)


def test_a_record_copied_from_a_store_of_other_networks_is_damage(tmp_path, store, networks):
    others = make_store(tmp_path / "o.zarr", chain(seed=4, length=N, fraction=0.3), records(N), tile=TILE)
    shutil.copyfile(_tiles(others.path) / "2.1", _tiles(store.path) / "2.1")  # same place, same shapes, same results number
    with pytest.raises(StoreError, match=r"tile \(2, 1\): its record measures other networks"):
        store.read_distance()
    report = verify(store.path)
    assert report.problems == [
        "tile (2, 1): its record measures other networks than the store holds there, or comes from another solver or rule "
        "(copied from another store?)"
    ]


@pytest.mark.parametrize("solver, tie_rule", [("fast", 2), ("fast", 1)], ids=["fast", "fast-of-another-rule"])
def test_a_record_of_another_solver_for_the_same_networks_is_damage(tmp_path, store, networks, solver, tie_rule):
    """Same networks, place and results number: only the solver or rule differs, and a reader must not serve its numbers."""
    fast = make_store(tmp_path / "f.zarr", networks, records(N), tile=None)
    fast.init_results(TILE, solver=solver, tie_rule=tie_rule)
    assert fast._group.attrs["results"] == store._group.attrs["results"]
    shutil.copyfile(_tiles(store.path) / "2.1", _tiles(fast.path) / "2.1")  # exact's record, in a fast store
    assert verify(fast.path).problems == [
        "tile (2, 1): its record measures other networks than the store holds there, or comes from another solver or rule "
        "(copied from another store?)"
    ]


def test_two_records_swapped_are_damage_and_compute_repairs_them(tmp_path, store, networks, dask_client):
    from nnstd_dist.engine import compute

    a, b = _tiles(store.path) / "0.0", _tiles(store.path) / "1.1"  # both diagonal tiles of 3 x 3: same size, same shape
    data = a.read_bytes()
    a.write_bytes(b.read_bytes())
    b.write_bytes(data)
    assert [p.split(":")[0] for p in verify(store.path).problems] == ["tile (0, 0)", "tile (1, 1)"]
    plan, stats = compute(store.path, client=dask_client)
    assert len(stats.repaired) == 2
    np.testing.assert_array_equal(TopologyStore.open(store.path).read_distance(), pair_distances(networks))


def test_a_truncated_row_file_loses_only_what_follows_the_cut(tmp_path, store, networks, dask_client):
    from nnstd_dist.engine import compute

    assert store.pack_rows() == 4
    row = store.path / "distances" / "g1" / "rows" / "2"
    row.write_bytes(row.read_bytes()[:-10])  # tile (2, 2), the last record, cut short
    damaged = TopologyStore.open(store.path).damaged_tiles()
    assert [(a, b) for a, b, _ in damaged] == [(2, 2)] and "truncated" in damaged[0][2]
    plan, stats = compute(store.path, client=dask_client)
    assert len(stats.repaired) == 1 and stats.repaired[0].startswith("tile (2, 2): row file 2 truncated after "), stats.repaired
    np.testing.assert_array_equal(TopologyStore.open(store.path).read_distance(), pair_distances(networks))
    assert verify(store.path).ok
