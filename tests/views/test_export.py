"""export: npz/csv/nc/zarr carry the store's matrix and names exactly; NaN and a warning where pairs are missing."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from click.testing import CliRunner

from _populations import open_or_create
from nnstd_dist.cli.main import cli
from nnstd_dist.errors import InputError
from nnstd_dist.views.export import export
from nnstd_dist.records import NetworkRecord
from nnstd_dist.store.topology_store import TopologyStore

from _populations import make_store, pair_distances, runs_population

SHAPES = [(30, 30), (30, 4)]
NAMES = ["run 0/epoch_000", "run,1/epoch_000", "ŵ2/epoch_010", "net-3", "net-4"]  # a comma and a non-ASCII name


def networks(seed: int = 0):
    rng = np.random.default_rng(seed)
    return [[sp.csr_matrix(rng.random(SHAPES[0]) < 0.2), sp.csr_matrix(np.ones(SHAPES[1], dtype=bool))] for _ in NAMES]


def expected_matrix() -> np.ndarray:
    return pair_distances(networks())


def filled_store(path: Path, done: str = "all") -> Path:
    """A store whose results are written tile by tile as compute's tasks would (tile 2; "all", "some" or "none")."""
    from nnstd_dist.engine.plan import make_plan
    from nnstd_dist.engine.tasks import compute_tile

    store = open_or_create(path, SHAPES)
    store.append([(NetworkRecord(name), net) for name, net in zip(NAMES, networks())])
    store.init_results(2)
    plan = make_plan(store.n_networks, 2, store.tile_markers())
    chosen = {"all": plan.tasks, "some": [t for t in plan.tasks if (t.a, t.b) != (2, 0)], "none": []}[done]
    for task in chosen:
        compute_tile(str(path), task.a, task.b, store.n_networks)
    return path


@pytest.fixture
def store(tmp_path):
    return filled_store(tmp_path / "s.zarr")


def test_npz_holds_distance_and_names(store, tmp_path):
    out = tmp_path / "d.npz"
    result = CliRunner().invoke(cli, ["export", "--store", str(store), "-o", str(out)])
    assert result.exit_code == 0, result.output
    with np.load(out, allow_pickle=False) as npz:
        assert sorted(npz.files) == ["accuracy", "distance", "epoch", "layer", "names", "nnstd_dist_export", "run"]
        assert npz["distance"].dtype == np.float64 and npz["distance"].shape == (2, 5, 5)
        np.testing.assert_array_equal(npz["distance"], expected_matrix())
        assert npz["names"].tolist() == NAMES
    assert "Warning" not in result.output


def test_npz_single_layer(store, tmp_path):
    export(store, tmp_path / "d.npz", layer=1)
    with np.load(tmp_path / "d.npz", allow_pickle=False) as npz:
        np.testing.assert_array_equal(npz["distance"], expected_matrix()[1:])


@pytest.mark.parametrize("layer", [0, 1], ids=["layer0", "layer1"])
def test_csv_is_one_labelled_layer(store, tmp_path, layer):
    out = tmp_path / "d.csv"
    result = CliRunner().invoke(cli, ["export", "--store", str(store), "-o", str(out), "--layer", str(layer)])
    assert result.exit_code == 0, result.output
    with open(out, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["network", "layer", "run", "epoch", "accuracy", *NAMES]
    assert [r[0] for r in rows[1:]] == NAMES
    assert all(r[1:5] == [str(layer), "", "", ""] for r in rows[1:])  # these networks have no run, epoch or accuracy
    values = np.array([[float(x) for x in r[5:]] for r in rows[1:]])
    np.testing.assert_array_equal(values, expected_matrix()[layer])  # repr round-trips exactly


def test_incomplete_matrix_exports_nan_with_a_warning(tmp_path):
    store = filled_store(tmp_path / "s.zarr", done="some")  # tile (2, 0) = rows 4, cols 0..1 missing
    out = tmp_path / "d.npz"
    result = CliRunner().invoke(cli, ["export", "--store", str(store), "-o", str(out)])
    assert result.exit_code == 0
    assert "Warning: 2 of 10 pairs are not computed yet" in result.output
    with np.load(out, allow_pickle=False) as npz:
        d = npz["distance"]
    missing = np.zeros((5, 5), dtype=bool)
    missing[4, :2] = missing[:2, 4] = True
    assert np.isnan(d[:, missing]).all() and not np.isnan(d[:, ~missing]).any()
    np.testing.assert_array_equal(d[:, ~missing], expected_matrix()[:, ~missing])


@pytest.mark.parametrize("suffix", [".nc", ".zarr"], ids=["netcdf", "zarr"])
def test_xarray_formats_are_labelled(store, tmp_path, suffix):
    xr = pytest.importorskip("xarray")
    out = tmp_path / f"d{suffix}"
    result = CliRunner().invoke(cli, ["export", "--store", str(store), "-o", str(out)])
    assert result.exit_code == 0, result.output
    ds = xr.open_zarr(out) if suffix == ".zarr" else xr.open_dataset(out)
    with ds:
        assert ds["distance"].dims == ("layer", "network_a", "network_b")
        assert [str(n) for n in ds["network_a"].values] == NAMES == [str(n) for n in ds["network_b"].values]
        np.testing.assert_array_equal(ds["distance"].values, expected_matrix())
        np.testing.assert_array_equal(ds["distance"].sel(network_a="net-4", network_b="run 0/epoch_000").values, expected_matrix()[:, 4, 0])


def test_zarr_export_replaces_an_older_one(store, tmp_path):
    pytest.importorskip("xarray")
    out = tmp_path / "d.zarr"
    export(store, out, layer=0)
    export(store, out)
    import xarray as xr

    with xr.open_zarr(out) as ds:
        assert ds.sizes["layer"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.zarr", "s.zarr"]  # no temporaries left


@pytest.mark.parametrize("name", ["d.txt", "d", "d.npy"], ids=["txt", "no-extension", "npy"])
def test_unknown_format_exits_2_and_writes_nothing(store, tmp_path, name):
    result = CliRunner().invoke(cli, ["export", "--store", str(store), "-o", str(tmp_path / name)])
    assert result.exit_code == 2 and "unknown export format" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.zarr"]


def test_a_failed_write_leaves_the_old_file(store, tmp_path, monkeypatch):
    out = tmp_path / "d.npz"
    out.write_bytes(b"old")

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", broken)
    with pytest.raises(InputError, match="No space left"):
        export(store, out)
    assert out.read_bytes() == b"old" and sorted(os.listdir(tmp_path)) == ["d.npz", "s.zarr"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--layer", "5", "-o", "d.npz"], "layer 5 out of range"),
        (["-o", "STORE"], "is the store itself"),
    ],
    ids=["layer-out-of-range", "onto-the-store"],
)
def test_bad_requests_exit_2(store, tmp_path, args, message):
    args = [str(store) if a == "STORE" else str(tmp_path / a) if a.startswith("d.") else a for a in args]
    result = CliRunner().invoke(cli, ["export", "--store", str(store), *args])
    assert result.exit_code == 2 and message in result.output


def test_store_without_results_exits_2(tmp_path):
    store = open_or_create(tmp_path / "s.zarr", SHAPES)
    store.append([(NetworkRecord("a"), networks()[0])])
    result = CliRunner().invoke(cli, ["export", "--store", str(store.path), "-o", str(tmp_path / "d.npz")])
    assert result.exit_code == 2 and "no distances yet" in result.output and not (tmp_path / "d.npz").exists()
    help_text = " ".join(CliRunner().invoke(cli, ["export", "--help"]).output.split())
    assert "a store that compute never ran on is an error (exit 2" in help_text  # the help says what happens


def test_store_of_the_export_is_untouched(store, tmp_path):
    before = TopologyStore.open(store).read_distance()
    export(store, tmp_path / "d.csv")
    np.testing.assert_array_equal(TopologyStore.open(store).read_distance(), before)


def test_export_never_deletes_a_folder_it_did_not_write(tmp_path):
    """-o onto another store or any foreign folder is refused and leaves it whole; an earlier .zarr export is replaced."""
    pytest.importorskip("xarray")
    networks, records = runs_population(2, [0, 1])
    store = make_store(tmp_path / "s.zarr", networks, records, tile=2)
    other = make_store(tmp_path / "other.zarr", networks, records, tile=2)
    foreign = tmp_path / "mine.zarr"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    for target in (other.path, foreign):
        before = sorted(p.name for p in target.rglob("*"))
        result = CliRunner().invoke(cli, ["export", "--store", str(store.path), "-o", str(target)])
        assert result.exit_code == 2 and "not an nnstd-dist export" in result.output
        assert sorted(p.name for p in target.rglob("*")) == before
    out = tmp_path / "d.zarr"
    for _ in range(2):  # the second export replaces the first
        assert CliRunner().invoke(cli, ["export", "--store", str(store.path), "-o", str(out)]).exit_code == 0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".d.zarr")]
