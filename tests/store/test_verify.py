"""verify finds every kind of damage by network or tile; compute repairs damaged distances and says so; readers refuse damage."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from nnstd_dist.cli.main import cli
from nnstd_dist.cli.text import run_summary
from nnstd_dist.errors import StoreError
from nnstd_dist.views.export import export
from nnstd_dist.engine import compute
from nnstd_dist.store.topology_store import TopologyStore

from _corpus import tree_hashes
from _populations import make_store, pair_distances, runs_population


@pytest.fixture
def store(tmp_path):
    networks, records = runs_population(3, [0, 1])  # 6 networks, tiles of 2: 3 x 3 tiles
    make_store(tmp_path / "s.zarr", networks, records, tile=2)
    return tmp_path / "s.zarr", networks


def flip(path, offset=0.5):
    """One byte of the file inverted: at ``offset`` (a fraction of its length, or a byte position if an int)."""
    raw = bytearray(path.read_bytes())
    raw[offset if isinstance(offset, int) else int(len(raw) * offset)] ^= 0xFF
    path.write_bytes(bytes(raw))


def tile_file(path, a, b):
    return path / "distances" / "g1" / "tiles" / f"{a}.{b}"


def swap(first, second):
    data = first.read_bytes()
    first.write_bytes(second.read_bytes())
    second.write_bytes(data)


def inner_chunk(path, array, network):
    """(shard file, offset, length) of one network's chunk of ``array`` inside its shard (index last: offset, length pairs)."""
    import zarr

    per_shard = zarr.open_array(str(path / array), mode="r").shards[0]
    shard = path / array / "c" / str(network // per_shard) / "0" / "0"
    raw = shard.read_bytes()
    entry = len(raw) - 4 - 16 * per_shard + 16 * (network % per_shard)
    return shard, int.from_bytes(raw[entry : entry + 8], "little"), int.from_bytes(raw[entry + 8 : entry + 16], "little")


def flip_mask(path, array, network):
    shard, offset, length = inner_chunk(path, array, network)
    flip(shard, offset + length // 2)


def delete_mask(path, array, network):
    """The network's chunk removed from its shard's index, as zarr marks a chunk never written (index crc made right again)."""
    import google_crc32c
    import zarr

    shard, _, _ = inner_chunk(path, array, network)
    per_shard = zarr.open_array(str(path / array), mode="r").shards[0]
    raw = bytearray(shard.read_bytes())
    entry = len(raw) - 4 - 16 * per_shard + 16 * (network % per_shard)
    raw[entry : entry + 16] = b"\xff" * 16
    raw[-4:] = google_crc32c.value(bytes(raw[len(raw) - 4 - 16 * per_shard : -4])).to_bytes(4, "little")
    shard.write_bytes(bytes(raw))


def run_verify(path):
    return CliRunner().invoke(cli, ["verify", "--store", str(path)])


def test_an_intact_store_verifies(store):
    path, _ = store
    result = run_verify(path)
    assert result.exit_code == 0 and "6 networks and 6 computed tiles checked, no damage" in result.output


def test_verify_counts_one_tile_in_the_singular(tmp_path):
    networks, records = runs_population(1, [0, 1, 2])
    path = tmp_path / "one.zarr"
    make_store(path, networks, records, tile=4)  # 3 networks: one tile
    result = run_verify(path)
    assert result.exit_code == 0 and "3 networks and 1 computed tile checked, no damage" in result.output


DAMAGE = {
    "distance bit flip": (lambda p: flip(tile_file(p, 2, 1), -8), "tile (2, 1): tile file 2.1 checksum mismatch"),
    "tiles swapped": (lambda p: swap(tile_file(p, 2, 0), tile_file(p, 1, 0)), "tile (2, 0): tile file 2.0 holds tile (1, 0)"),
    "distance truncated": (lambda p: tile_file(p, 1, 1).write_bytes(b"ab"), "tile (1, 1): tile file 1.1 truncated"),
    "header flipped": (lambda p: flip(tile_file(p, 1, 0), 20), "tile (1, 0): tile file 1.0 checksum mismatch (header)"),
    "mask deleted": (lambda p: delete_mask(p, "mask_l0", 3), "network 3 (r1/epoch_001): mask_l0 chunk missing"),
    "mask flipped": (lambda p: flip_mask(p, "mask_l1", 4), "network 4 (r2/epoch_000): mask_l1 chunk checksum mismatch"),
    "names deleted": (lambda p: (p / "network/c/0").unlink(), "network chunk 0: missing"),
    "connections flipped": (lambda p: flip(p / "connections/c/0/0", 0.9), "connections chunk 0/0: checksum mismatch"),
    "n_networks raised": (
        lambda p: p.joinpath("zarr.json").write_text(json.dumps({**json.loads(p.joinpath("zarr.json").read_text()),
                                                                  "attributes": {**json.loads(p.joinpath("zarr.json").read_text())["attributes"], "n_networks": 9}})),
        "n_networks is 9 but accuracy holds 6",
    ),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_verify_names_the_damage_and_exits_1(store, damage):
    path, _ = store
    spoil, expected = DAMAGE[damage]
    spoil(path)
    before = tree_hashes(path)
    result = run_verify(path)
    assert result.exit_code == 1, result.output
    assert expected in result.output
    assert tree_hashes(path) == before  # verify only reads


@pytest.mark.parametrize("damage", ["distance bit flip", "tiles swapped", "distance truncated", "header flipped"])
def test_readers_refuse_damaged_distances_and_compute_repairs_them(store, tmp_path, damage, dask_client):
    path, networks = store
    DAMAGE[damage][0](path)
    with pytest.raises(StoreError, match="damaged|missing") as refused:
        export(path, tmp_path / "d.npz")
    assert str(refused.value).endswith(f"`verify({str(path)!r})` lists all damage")
    result = CliRunner().invoke(cli, ["export", "--store", str(path), "-o", str(tmp_path / "d.npz")])
    assert result.exit_code == 2 and result.output.endswith(f"; `nnstd-dist verify --store {path}` lists all damage\n"), result.output
    plan, stats = compute(path, cluster=None, client=dask_client)
    assert stats.repaired and "tile (" in run_summary(stats) and "damaged or missing" in run_summary(stats)
    assert run_verify(path).exit_code == 0
    np.testing.assert_array_equal(TopologyStore.open(path).read_distance(), pair_distances(networks))


def test_a_resume_finds_damaged_tiles_beside_the_run_and_computes_them_too(store, dask_client):
    path, networks = store
    flip(tile_file(path, 2, 1), -8)  # a done tile, its distances damaged (a header read sees nothing wrong)
    TopologyStore.open(path, mode="r+").drop_tiles(1, {0})  # a tile left to compute: the run starts with it
    plan, stats = compute(path, cluster=None, client=dask_client)
    assert [(t.a, t.b) for t in plan.tasks] == [(1, 0)]  # the plan comes from the markers alone
    assert stats.tiles == 2 and stats.repaired == ["tile (2, 1): tile file 2.1 checksum mismatch"]
    assert run_verify(path).exit_code == 0
    np.testing.assert_array_equal(TopologyStore.open(path).read_distance(), pair_distances(networks))


def test_a_damaged_mask_is_rewritten_by_ingesting_its_source_again(store, tmp_path):
    from _corpus import write_set

    path, networks = store
    delete_mask(path, "mask_l0", 3)
    with pytest.raises(StoreError, match="mask_l0 of network 3 .* missing"):
        TopologyStore.open(path).read_masks([3])
    src = write_set(tmp_path / "src" / "r1" / "epoch_001", [m.toarray() for m in networks[3]])
    result = CliRunner().invoke(cli, ["ingest", str(tmp_path / "src"), "--store", str(path)])
    assert result.exit_code == 0, result.output
    assert run_verify(path).exit_code == 0
