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
    raw = bytearray(path.read_bytes())
    raw[int(len(raw) * offset)] ^= 0xFF
    path.write_bytes(bytes(raw))


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
    "distance bit flip": (lambda p: flip(p / "distance/c/0/2/1"), "tile (2, 1): distance chunk 2/1 checksum mismatch"),
    "distance mirror deleted": (lambda p: (p / "distance/c/0/0/2").unlink(), "tile (2, 0): distance chunk 0/2 missing"),
    "distance truncated": (lambda p: (p / "distance/c/0/1/1").write_bytes(b"ab"), "tile (1, 1): distance chunk 1/1 truncated"),
    "marker flipped": (lambda p: flip(p / "tiles_done/c/1/0", 0.0), "tile (1, 0): done marker damaged"),
    "mask deleted": (lambda p: (p / "mask_l0/c/3/0/0").unlink(), "network 3 (r1/epoch_001): mask_l0 chunk missing"),
    "mask flipped": (lambda p: flip(p / "mask_l1/c/4/0/0", 0.9), "network 4 (r2/epoch_000): mask_l1 chunk checksum mismatch"),
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


@pytest.mark.parametrize("damage", ["distance bit flip", "distance mirror deleted", "distance truncated", "marker flipped"])
def test_readers_refuse_damaged_distances_and_compute_repairs_them(store, tmp_path, damage, dask_client):
    path, networks = store
    DAMAGE[damage][0](path)
    if damage != "marker flipped":  # a damaged marker only reopens its tile: nothing wrong can be read
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
    flip(path / "distance/c/0/2/1")  # a done tile, damaged
    TopologyStore.open(path, mode="r+").mark_tile(1, 0, 0)  # a tile left to compute: the run starts with it
    plan, stats = compute(path, cluster=None, client=dask_client)
    assert [(t.a, t.b) for t in plan.tasks] == [(1, 0)]  # the plan comes from the markers alone
    assert stats.tiles == 2 and stats.repaired == ["tile (2, 1): distance chunk 2/1 checksum mismatch"]
    assert run_verify(path).exit_code == 0
    np.testing.assert_array_equal(TopologyStore.open(path).read_distance(), pair_distances(networks))


def test_a_damaged_mask_is_rewritten_by_ingesting_its_source_again(store, tmp_path):
    from _corpus import write_set

    path, networks = store
    (path / "mask_l0/c/3/0/0").unlink()
    with pytest.raises(StoreError, match="mask_l0 of network 3 .* missing"):
        TopologyStore.open(path).read_masks([3])
    src = write_set(tmp_path / "src" / "r1" / "epoch_001", [m.toarray() for m in networks[3]])
    result = CliRunner().invoke(cli, ["ingest", str(tmp_path / "src"), "--store", str(path)])
    assert result.exit_code == 0, result.output
    assert run_verify(path).exit_code == 0
