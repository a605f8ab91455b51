"""What a new user trips on: exports in the data folder, --exclude, and messages that say what happened."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from click.testing import CliRunner

from conftest import make_synthetic_network, write_set_network
from nnstd_dist.cli.main import cli
from nnstd_dist.errors import InputError
from nnstd_dist.sources.discover import discover, find_networks
from nnstd_dist.views.embedding import trajectory
from nnstd_dist.views.reduce import LabelledMatrix
from nnstd_dist.store.topology_store import TopologyStore

SHAPES = [(12, 12), (12, 3)]


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture
def folder(tmp_path):
    """data/ holding two SET runs of two epochs and a loose network file."""
    rng = np.random.default_rng(3)
    data = tmp_path / "data"
    for name in ("w0/epoch_000", "w0/epoch_010", "w1/epoch_000", "w1/epoch_010"):
        write_set_network(data / name, make_synthetic_network(rng, SHAPES, 0.3), rng)
    np.savez(data / "loose.npz", a=rng.random(SHAPES[0]) < 0.3, b=np.ones(SHAPES[1]))
    return data


def test_ingest_skips_its_own_export_with_a_note(folder, tmp_path, dask_client):
    store = tmp_path / "s.zarr"
    assert run("ingest", folder, "--store", store).exit_code == 0
    assert run("compute", "--store", store, "--scheduler", dask_client.scheduler.address, "-q").exit_code == 0
    assert run("export", "--store", store, "-o", folder / "distances.npz").exit_code == 0
    np.savez(folder / "old_export.npz", distance=np.zeros((1, 2, 2)), names=np.array(["a", "b"]))  # before the marker
    result = run("ingest", folder, "--store", store)
    assert result.exit_code == 0, result.output
    for name in ("distances.npz", "old_export.npz"):
        assert f"Note: skipped {folder / name}: a distance matrix written by `nnstd-dist export`, not a network" in result.stderr
    assert "nothing to add: all 5 networks found are already in" in result.stdout
    assert TopologyStore.open(store).n_networks == 5


def test_an_export_given_alone_is_one_error(folder, tmp_path):
    np.savez(folder / "d.npz", distance=np.zeros((1, 2, 2)), names=np.array(["a", "b"]))
    result = run("ingest", folder / "d.npz", "--store", tmp_path / "s.zarr")
    assert result.exit_code == 2 and result.stderr.splitlines()[-1].startswith("Error: no networks to ingest: ")
    assert not (tmp_path / "s.zarr").exists()


def test_exclude_drops_files_and_folders_by_name_or_relative_path(folder):
    names = lambda *exclude: [s.name for s in discover([folder], exclude)]  # noqa: E731
    assert names() == ["loose", "w0/epoch_000", "w0/epoch_010", "w1/epoch_000", "w1/epoch_010"]
    assert names("loose.npz") == ["w0/epoch_000", "w0/epoch_010", "w1/epoch_000", "w1/epoch_010"]
    assert names("w1") == ["loose", "w0/epoch_000", "w0/epoch_010"]
    assert names("*/epoch_010", "*.npz") == ["w0/epoch_000", "w1/epoch_000"]
    assert find_networks([folder], ["epoch_000"]).exports == []
    with pytest.raises(InputError, match="no networks found .* with the exclusions given"):
        discover([folder], ["*"])


def test_ingest_exclude_on_the_command_line(folder, tmp_path):
    result = run("ingest", folder, "--store", tmp_path / "s.zarr", "--exclude", "loose.npz", "--exclude", "w1")
    assert result.exit_code == 0, result.output
    assert TopologyStore.open(tmp_path / "s.zarr").names() == ["w0/epoch_000", "w0/epoch_010"]


def test_a_text_file_named_npz_is_not_called_pickled(tmp_path):
    (tmp_path / "notes.npz").write_text("accuracy 0.98\n")
    result = run("ingest", tmp_path / "notes.npz", "--store", tmp_path / "s.zarr")
    assert result.exit_code == 2
    assert "not an npz file (not a zip archive" in result.stderr and "pickle" not in result.stderr


@pytest.fixture(scope="module")
def unlabelled(tmp_path_factory, dask_client):
    """A computed store of networks with no epoch and no run (net_000, net_001, net_002); the tests only read it."""
    tmp_path = tmp_path_factory.mktemp("unlabelled")
    rng = np.random.default_rng(4)
    for k in range(3):
        write_set_network(tmp_path / "nets" / f"net_{k:03d}", make_synthetic_network(rng, SHAPES, 0.3), rng)
    store = tmp_path / "s.zarr"
    assert run("ingest", tmp_path / "nets", "--store", store).exit_code == 0
    assert run("compute", "--store", store, "--scheduler", dask_client.scheduler.address, "-q").exit_code == 0
    return store


@pytest.mark.parametrize("args, fragment", [
    (["--facet", "epoch"], "none of the 3 selected networks has an epoch: ingest takes runs and epochs from epoch_NNN folders"),
    (["--facet", "run"], "none of the 3 selected networks has a run: "),
    (["--kind", "evolution"], "none of the 3 selected networks has a run: "),
    (["--kind", "embedding", "--color-by", "run"], "colour by run: none of the 3 networks has a run; "),
], ids=["facet-epoch", "facet-run", "evolution", "embedding-by-run"])
def test_plots_by_epoch_or_run_of_networks_without_them_say_so(unlabelled, tmp_path, args, fragment):
    result = run("plot", "--store", unlabelled, "-o", tmp_path / "x.png", *args)
    assert result.exit_code == 2 and fragment in result.stderr, result.output
    assert "--layout '{run}/round{epoch}.pt', or --metadata FILE.csv" in result.stderr  # the options that supply them
    assert "epoch -1" not in result.output and not (tmp_path / "x.png").exists()


def test_a_trajectory_without_epochs_names_the_networks():
    m = LabelledMatrix(np.zeros((2, 2)), ["net_000", "net_001"],
                       {"run": np.array(["", ""], dtype=object), "epoch": np.array([-1, 5]), "accuracy": np.full(2, np.nan)})
    with pytest.raises(InputError) as info:
        trajectory(m)
    assert str(info.value).startswith("1 network without an epoch (net_000) cannot be placed on an evolution plot")
    assert "run=" not in str(info.value)


def test_dry_run_of_one_tile_speaks_singular(unlabelled):
    result = run("compute", "--store", unlabelled, "--dry-run", "--recompute")
    assert "(1 tile in the lower triangle)" in result.output and "the largest of 3 pairs" in result.output
    assert "1 tiles" not in result.output
