"""Exports carry run, epoch, accuracy and layer: each format opened with xarray / pandas and grouped by epoch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import xarray as xr
from click.testing import CliRunner

from nnstd_dist.cli.main import cli
from _populations import make_store, pair_distances
from nnstd_dist.records import NetworkRecord

SHAPES = [(24, 24), (24, 3)]
RUNS, EPOCHS = ("w0", "w1", "w2"), (0, 10)
ACCURACY = {(run, epoch): 0.5 + 0.1 * r + 0.01 * epoch for r, run in enumerate(RUNS) for epoch in EPOCHS}


def population():
    """Three runs at epochs 0 and 10, plus one network with no run, epoch or accuracy."""
    rng = np.random.default_rng(7)
    records = [NetworkRecord(f"{run}/epoch_{epoch:03d}", run, epoch, ACCURACY[run, epoch]) for run in RUNS for epoch in EPOCHS]
    records.append(NetworkRecord("stray"))
    nets = [[sp.csr_matrix(rng.random(SHAPES[0]) < 0.25), sp.csr_matrix(np.ones(SHAPES[1], dtype=bool))] for _ in records]
    return records, nets


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("labels") / "s.zarr"
    records, nets = population()
    make_store(path, nets, records, tile=4)
    return path


def expected(layer: int) -> np.ndarray:
    return pair_distances(population()[1])[layer]


def run_export(store: Path, out: Path, *args: str) -> None:
    result = CliRunner().invoke(cli, ["export", "--store", str(store), "-o", str(out), *args])
    assert result.exit_code == 0, result.output


def mean_by_epoch(d: np.ndarray, epochs: np.ndarray) -> dict[int, float]:
    """The oracle: mean distance from each network of an epoch to every network, per epoch."""
    return {int(e): float(d[epochs == e].mean()) for e in sorted(set(epochs.tolist()))}


EPOCH_COLUMN = np.array([e for _ in RUNS for e in EPOCHS] + [-1])


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_xarray_exports_group_by_epoch(store, tmp_path, suffix):
    out = tmp_path / f"d{suffix}"
    run_export(store, out)
    ds = xr.open_dataset(out, engine="zarr" if suffix == ".zarr" else None)
    with ds:
        assert ds.layer.values.tolist() == [0, 1]
        assert ds.run_a.values.tolist() == [*(r for r in RUNS for _ in EPOCHS), ""]
        assert ds.epoch_b.values.tolist() == EPOCH_COLUMN.tolist()
        np.testing.assert_array_equal(ds.accuracy_a.values[:6], [ACCURACY[r, e] for r in RUNS for e in EPOCHS])
        assert np.isnan(ds.accuracy_a.values[6])
        grouped = ds.distance.sel(layer=0).groupby("epoch_a").mean(...)
        assert dict(zip(grouped.epoch_a.values.tolist(), grouped.values.tolist())) == pytest.approx(
            mean_by_epoch(expected(0), EPOCH_COLUMN), abs=1e-15
        )
        np.testing.assert_array_equal(ds.distance.sel(layer=1).values, expected(1))


def test_npz_arrays_beside_distance_group_by_epoch(store, tmp_path):
    out = tmp_path / "d.npz"
    run_export(store, out, "--layer", "1")
    with np.load(out, allow_pickle=False) as npz:
        assert npz["layer"].tolist() == [1]
        assert npz["run"].tolist() == [*(r for r in RUNS for _ in EPOCHS), ""]
        np.testing.assert_array_equal(npz["epoch"], EPOCH_COLUMN)
        d = npz["distance"][0]
        frame = pd.DataFrame(d, index=npz["names"])
        frame["epoch"] = npz["epoch"]
        grouped = frame.groupby("epoch").mean().mean(axis=1)
    np.testing.assert_array_equal(d, expected(1))
    assert grouped.to_dict() == pytest.approx(mean_by_epoch(expected(1), EPOCH_COLUMN), abs=1e-15)


def test_csv_columns_group_by_epoch_in_pandas(store, tmp_path):
    out = tmp_path / "d.csv"
    run_export(store, out)
    frame = pd.read_csv(out, index_col="network")
    names = frame.index.tolist()
    assert frame["layer"].unique().tolist() == [0]
    assert frame.loc["w1/epoch_010", ["run", "epoch", "accuracy"]].tolist() == ["w1", 10, ACCURACY["w1", 10]]
    assert frame.loc["stray", ["run", "epoch", "accuracy"]].isna().all()  # labels it does not have are empty
    np.testing.assert_array_equal(frame[names].to_numpy(), expected(0))  # exact: repr round-trips
    grouped = frame.groupby("epoch")[names].mean().mean(axis=1)
    labelled = EPOCH_COLUMN != -1
    want = mean_by_epoch(expected(0)[labelled], EPOCH_COLUMN[labelled])
    assert grouped.to_dict() == pytest.approx(want, abs=1e-15)


@pytest.mark.parametrize("suffix", [".npz", ".csv", ".nc"])
def test_select_takes_the_same_selections_as_plot(store, tmp_path, suffix):
    out = tmp_path / f"d{suffix}"
    run_export(store, out, "--select", "epoch=10", "--select", "run=w0,w2")
    keep = [1, 5]  # w0/epoch_010, w2/epoch_010 in store order
    want = expected(0)[np.ix_(keep, keep)]
    if suffix == ".npz":
        with np.load(out, allow_pickle=False) as npz:
            names, got = npz["names"].tolist(), npz["distance"][0]
    elif suffix == ".csv":
        frame = pd.read_csv(out, index_col="network")
        names = frame.index.tolist()
        got = frame[names].to_numpy()
    else:
        with xr.open_dataset(out) as ds:
            names, got = ds.network_a.values.tolist(), ds.distance.sel(layer=0).values
    assert names == ["w0/epoch_010", "w2/epoch_010"]
    np.testing.assert_array_equal(got, want)


def test_select_matching_nothing_is_one_error(store, tmp_path):
    result = CliRunner().invoke(cli, ["export", "--store", str(store), "-o", str(tmp_path / "d.npz"), "--select", "epoch=7"])
    assert result.exit_code == 2 and result.output.count("\n") == 1 and result.output.startswith("Error: ")
    assert not (tmp_path / "d.npz").exists()
