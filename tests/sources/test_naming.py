"""ingest --layout and --metadata: runs, epochs and accuracies from the user's own naming (issue 29, item 2)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from click.testing import CliRunner

from nnstd_dist.cli.main import cli
from nnstd_dist.errors import InputError
from nnstd_dist.sources.naming import Layout
from nnstd_dist.store.topology_store import TopologyStore

SEEDS, ROUNDS = 3, 4


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture
def tickets(tmp_path):
    """A lottery-ticket tree as a training script writes it: runs/seed<S>/round<R>.npz, 30 % more pruned each round."""
    rng = np.random.default_rng(7)
    for seed in range(SEEDS):
        weights = [rng.normal(size=(12, 8)), rng.normal(size=(8, 3))]
        for r in range(ROUNDS):
            (tmp_path / "runs" / f"seed{seed}").mkdir(parents=True, exist_ok=True)
            np.savez(tmp_path / "runs" / f"seed{seed}" / f"round{r}.npz", fc1=weights[0], fc2=weights[1])
            weights = [np.where(np.abs(w) < np.quantile(np.abs(w), 0.3), 0.0, w) for w in weights]
    return tmp_path


def _labels(store_path):
    store = TopologyStore.open(store_path)
    return {r.name: (r.run, r.epoch, r.accuracy) for r in store.records()}


def test_a_layout_gives_runs_and_epochs(tickets):
    result = run("ingest", tickets / "runs", "--store", tickets / "s.zarr", "--layout", "{run}/round{epoch}.npz", "-q")
    assert result.exit_code == 0, result.output
    labels = _labels(tickets / "s.zarr")
    assert len(labels) == SEEDS * ROUNDS
    assert all((run_, epoch) == (name.split("/")[0], int(name.split("round")[1])) for name, (run_, epoch, _) in labels.items())
    info = run("info", "--store", tickets / "s.zarr")
    assert "runs:        3 (seed0, seed1, seed2)" in info.output and "epochs:      0, 1, 2, 3" in info.output
    assert "accuracies:  0 of 12 networks" in info.output and "--layout" not in info.output


def test_without_a_layout_info_says_which_options_supply_runs_and_epochs(tickets):
    assert run("ingest", tickets / "runs", "--store", tickets / "s.zarr", "-q").exit_code == 0
    info = run("info", "--store", tickets / "s.zarr").output
    assert "runs:        0" in info and "--layout, e.g. --layout '{run}/round{epoch}.pt', or --metadata FILE.csv" in info


def test_metadata_wins_over_the_layout_and_gives_accuracies(tickets):
    (tickets / "meta.csv").write_text("name,run,accuracy\nseed0/round0,,0.91\nseed1/round2,renamed,0.5\n")
    result = run("ingest", tickets / "runs", "--store", tickets / "s.zarr", "--layout", "seed{run}/round{epoch}", "--metadata", tickets / "meta.csv")
    assert result.exit_code == 0, result.output
    labels = _labels(tickets / "s.zarr")
    assert labels["seed0/round0"] == ("0", 0, 0.91)  # an empty cell gives nothing: the layout's run stays
    assert labels["seed1/round2"] == ("renamed", 2, 0.5)
    assert labels["seed2/round3"][:2] == ("2", 3) and math.isnan(labels["seed2/round3"][2])


def test_metadata_by_path_alone(tickets):
    (tickets / "meta.csv").write_text("path,run,epoch\n" + "".join(
        f"runs/seed{s}/round{r}.npz,s{s},{10 * r}\n" for s in range(SEEDS) for r in range(ROUNDS)))
    assert run("ingest", tickets / "runs", "--store", tickets / "s.zarr", "--metadata", tickets / "meta.csv", "-q").exit_code == 0
    assert _labels(tickets / "s.zarr")["seed2/round3"][:2] == ("s2", 30)


def test_ingesting_again_with_a_layout_relabels_and_keeps_the_distances(tickets, dask_client):
    store = tickets / "s.zarr"
    assert run("ingest", tickets / "runs", "--store", store, "-q").exit_code == 0
    assert run("compute", "--store", store, "--scheduler", dask_client.scheduler.address, "-q").exit_code == 0
    before = TopologyStore.open(store).read_distance()
    result = run("ingest", tickets / "runs", "--store", store, "--layout", "{run}/round{epoch}.npz")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith("(12 networks); 12 networks relabelled (new run, epoch or accuracy)")
    np.testing.assert_array_equal(TopologyStore.open(store).read_distance(), before)  # still computed, unchanged
    assert _labels(store)["seed1/round2"][:2] == ("seed1", 2)
    assert run("ingest", tickets / "runs", "--store", store, "-q").exit_code == 0  # without the options: labels kept
    assert _labels(store)["seed1/round2"][:2] == ("seed1", 2)
    plot = run("plot", "--store", store, "--kind", "evolution", "-o", tickets / "e.png")
    assert plot.exit_code == 0, plot.output


@pytest.mark.parametrize("args, fragment", [
    (["--layout", "{run}/epoch{epoch}.npz"], "its path under the source, seed0/round0.npz, does not match --layout '{run}/epoch{epoch}.npz'"),
    (["--layout", "{seed}/round{epoch}.npz"], "unknown placeholder {seed}"),
    (["--layout", "round*.npz"], "has neither {run} nor {epoch}"),
    (["--layout", "{run}/{run}.npz"], "{run} appears twice"),
], ids=["no-match", "unknown", "no-placeholder", "twice"])
def test_a_layout_that_does_not_fit_is_one_error(tickets, args, fragment):
    result = run("ingest", tickets / "runs", "--store", tickets / "s.zarr", *args)
    assert result.exit_code == 2 and fragment in result.stderr, result.output
    assert not (tickets / "s.zarr").exists()


@pytest.mark.parametrize("table, fragment", [
    ("name,run\nseed9/round0,x\n", "1 row(s) name no network found: seed9/round0"),
    ("name,epoch\nseed0/round0,three\n", "line 2: epoch 'three' is not a whole number >= 0"),
    ("name,accuracy\nseed0/round0,nan\n", "line 2: accuracy 'nan' is not finite"),
    ("name,seed\nseed0/round0,1\n", "needs one of the columns name or path"),
    ("name,run,colour\nseed0/round0,a,red\n", "unknown column(s) colour"),
    ("name,run\nseed0/round0,a\nseed0/round0,b\n", "line 3 names 'seed0/round0' a second time"),
], ids=["unknown-name", "bad-epoch", "nan", "no-value-column", "unknown-column", "twice"])
def test_a_table_that_does_not_fit_is_one_error(tickets, table, fragment):
    (tickets / "meta.csv").write_text(table)
    result = run("ingest", tickets / "runs", "--store", tickets / "s.zarr", "--metadata", tickets / "meta.csv")
    assert result.exit_code == 2 and fragment in result.stderr, result.output
    assert not (tickets / "s.zarr").exists()


def test_layout_patterns():
    layout = Layout.compile("{run}/ckpt_*_ep{epoch}.pt")
    assert layout.match("lr0.1/seed3/ckpt_best_ep12", ".pt") == ("lr0.1/seed3", 12)  # {run} spans folders
    assert layout.match("seed3/ckpt_ep12", ".pt") is None
    assert Layout.compile("round{epoch}").match("round7", ".npz") == (None, 7)  # the suffix may be left out
    with pytest.raises(InputError, match="too large"):
        Layout.compile("{run}/{epoch}").match("a/99999999999999999999", "")
