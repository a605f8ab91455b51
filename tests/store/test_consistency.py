"""Attributes that contradict the arrays or the rules (issue 23, item 9): open refuses with one error, verify lists every one."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from nnstd_dist.cli.main import cli
from nnstd_dist.errors import StoreError
from nnstd_dist.store.topology_store import TopologyStore

from _corpus import tree_hashes
from _populations import make_store, runs_population


@pytest.fixture
def store(tmp_path):
    networks, records = runs_population(3, [0, 1])  # 6 networks of SHAPES, tiles of 2
    make_store(tmp_path / "s.zarr", networks, records, tile=2)
    return tmp_path / "s.zarr"


def _attrs(**changes):
    def edit(path):
        meta = json.loads((path / "zarr.json").read_text())
        meta["attributes"].update({k: v(meta["attributes"]) if callable(v) else v for k, v in changes.items()})
        (path / "zarr.json").write_text(json.dumps(meta))
    return edit


def _array_meta(name, **changes):
    def edit(path):
        meta = json.loads((path / name / "zarr.json").read_text())
        meta.update(changes)
        (path / name / "zarr.json").write_text(json.dumps(meta))
    return edit


def _tile_file(source, target):
    """Tile file ``source`` copied to the name of tile ``target`` (a file moved by hand, or a bad copy)."""
    def edit(path):
        tiles = path / "distances" / "g1" / "tiles"
        shutil.copyfile(tiles / "{}.{}".format(*source), tiles / "{}.{}".format(*target))
    return edit


EDITS = {
    "shapes of another layer 0": (_attrs(shapes=lambda a: [[a["shapes"][0][0] - 1, a["shapes"][0][1]], *a["shapes"][1:]]), "array mask_l0 holds shape"),
    "shapes shortened": (_attrs(shapes=lambda a: a["shapes"][:1]), "exist beyond the 1 layers of attribute shapes"),
    "block 0": (_attrs(layers=lambda a: [{"block": 1}, {"block": 0}, *[{"block": 1}] * (len(a["shapes"]) - 2)]), "attribute block 0"),
    "block 2": (_attrs(layers=lambda a: [{"block": 1}, {"block": 2}, *[{"block": 1}] * (len(a["shapes"]) - 2)]), "rows are not 2 per output of layer 0"),
    "solver bogus": (_attrs(solver="bogus"), "attribute solver is 'bogus'"),
    "max_layer 99": (_attrs(max_layer=99), "attribute max_layer is 99"),
    "max_layer -1": (_attrs(max_layer=-1), "attribute max_layer is -1"),
    "tile 0": (_attrs(tile=0), "attribute tile is 0"),
    "n_networks negative": (_attrs(n_networks=-1), "attribute n_networks is -1"),
    "results folder removed": (lambda p: shutil.rmtree(p / "distances"), "folder distances/g1/tiles is missing"),
    "results not a number": (_attrs(results="x"), "attribute results is 'x'"),
    "masks not sharded": (_array_meta("mask_l0", codecs=[{"name": "bytes"}]), "array mask_l0 holds shape"),
}


@pytest.mark.parametrize("edit", list(EDITS))
def test_open_refuses_and_verify_lists_the_contradiction(store, edit):
    spoil, expected = EDITS[edit]
    spoil(store)
    before = tree_hashes(store)
    with pytest.raises(StoreError, match="damaged: "):
        TopologyStore.open(store)
    result = CliRunner().invoke(cli, ["verify", "--store", str(store)])
    assert result.exit_code == 1 and expected in result.output, result.output
    assert tree_hashes(store) == before


@pytest.mark.parametrize("a, b, source, expected", [(0, 1, (1, 0), r"holds tile \(1, 0\)"), (2, 2, (1, 1), r"holds tile \(1, 1\)")])
def test_records_in_the_wrong_place_are_damage(store, a, b, source, expected):
    _tile_file(source, (a, b))(store)
    with pytest.raises(StoreError, match=expected):
        TopologyStore.open(store).read_distance()
    result = CliRunner().invoke(cli, ["verify", "--store", str(store)])
    assert result.exit_code == 1 and f"tile ({a}, {b}): " in result.output and expected.replace("\\", "") in result.output, result.output


def test_verify_lists_every_contradiction_not_only_the_first(store):
    _attrs(solver="bogus", max_layer=-1)(store)
    shutil.rmtree(store / "connections")
    out = CliRunner().invoke(cli, ["verify", "--store", str(store)]).output
    assert "solver is 'bogus'" in out and "max_layer is -1" in out and "array connections is missing" in out, out
    assert "3 problems found" in out, out


def test_an_intact_store_has_no_contradiction(store):
    from nnstd_dist.store.consistency import problems_at
    from nnstd_dist.store.storage import open_storage

    assert problems_at(open_storage(store)) == []
