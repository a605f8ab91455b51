"""Synthetic populations: exact densities and rewiring, determinism, the SET files, NNSTD growth, the CLI."""

from __future__ import annotations

import shlex

import numpy as np
import pytest
import scipy.sparse as sp
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import chisquare, spearmanr

from _populations import write_population
from nnstd_dist import load_set_network, nnstd
from nnstd_dist.cli.main import cli
from nnstd_dist.errors import InputError
from nnstd_dist.sources.generate import _rewire, generate_population, network_names, write_networks

SMALL = [30, 20, 25, 4]


def population(layers=SMALL, density=0.1, n=5, rewire=0.1, seed=0, mode="chain"):
    return [masks for _, masks in generate_population(layers, density, n, rewire, seed, mode)]


def links(mask) -> set[tuple[int, int]]:
    coo = sp.coo_matrix(mask)
    return set(zip(coo.row.tolist(), coo.col.tolist()))


def same(a, b) -> bool:
    return all(x.shape == y.shape and (x != y).nnz == 0 for x, y in zip(a, b, strict=True))


# ----------------------------------------------------------------------------- shape and density


@pytest.mark.parametrize("n, first, last", [(1, "net_000", "net_000"), (10, "net_000", "net_009"),
                                            (1000, "net_000", "net_999"), (1001, "net_0000", "net_1000")],
                         ids=["one", "ten", "thousand", "over-thousand"])
def test_names_are_zero_padded_to_the_count(n, first, last):
    names = network_names(n)
    assert (len(names), names[0], names[-1]) == (n, first, last)


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 12), min_size=2, max_size=5),
    density=st.floats(0.05, 1.0),
    rewire=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**32),
    mode=st.sampled_from(["chain", "independent"]),
)
def test_every_network_has_exact_density_and_a_dense_output(sizes, density, rewire, seed, mode):
    try:
        nets = population(sizes, density, 4, rewire, seed, mode)
    except InputError:
        return  # a layer with 0 connections, or more to move than free positions: refused, checked below
    for masks in nets:
        assert [m.shape for m in masks] == list(zip(sizes[:-1], sizes[1:]))
        for mask in masks[:-1]:
            assert mask.dtype == bool and mask.has_sorted_indices
            assert mask.nnz == round(density * mask.shape[0] * mask.shape[1])
        assert masks[-1].nnz == sizes[-2] * sizes[-1]


@settings(max_examples=40, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 15), st.integers(1, 15)),
    density=st.floats(0.01, 1.0),
    rewire=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**32),
)
def test_each_chain_step_moves_exactly_k_links_to_free_positions(shape, density, rewire, seed):
    m = round(density * shape[0] * shape[1])
    k = round(rewire * m)
    if m == 0 or k > shape[0] * shape[1] - m:
        with pytest.raises(InputError):
            population([*shape, 2], density, 3, rewire, seed)
        return
    nets = population([*shape, 2], density, 3, rewire, seed)
    for before, after in zip(nets, nets[1:]):
        old, new = links(before[0]), links(after[0])
        assert len(old - new) == len(new - old) == k  # symmetric difference 2k, density unchanged


def test_seed_experiment_moves_37_of_3688_links_per_layer():
    nets = population([784, 784, 784, 784, 10], 0.006, 3, 0.01, 0)
    for before, after in zip(nets, nets[1:]):
        assert [m.nnz for m in after] == [3688, 3688, 3688, 7840]
        assert [(a != b).nnz for a, b in zip(before, after)] == [2 * 37, 2 * 37, 2 * 37, 0]


def test_rewiring_picks_free_positions_uniformly():
    # 4 x 4 layer, 8 links: the one link added each time must be any of the 8 free cells equally often.
    occupied = np.array([0, 1, 3, 6, 7, 10, 12, 15])
    free = np.setdiff1d(np.arange(16), occupied)
    rng = np.random.default_rng(7)
    added = [np.setdiff1d(_rewire(rng, occupied, 16, 1), occupied)[0] for _ in range(4000)]
    counts = np.array([added.count(p) for p in free])
    assert counts.sum() == 4000
    assert chisquare(counts).pvalue > 1e-3


# ----------------------------------------------------------------------------- determinism


def test_same_seed_gives_identical_masks():
    for a, b in zip(population(seed=3), population(seed=3), strict=True):
        assert same(a, b)
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x.indptr, y.indptr)
            np.testing.assert_array_equal(x.indices, y.indices)


@pytest.mark.parametrize("mode", ["chain", "independent"])
def test_different_seeds_differ(mode):
    a, b = population(seed=1, mode=mode), population(seed=2, mode=mode)
    assert all(not same(x[:-1], y[:-1]) for x, y in zip(a, b))


@pytest.mark.parametrize("mode", ["chain", "independent"])
def test_a_network_does_not_depend_on_the_population_size(mode):
    short, long = population(n=3, mode=mode), population(n=7, mode=mode)
    assert all(same(a, b) for a, b in zip(short, long[:3]))


def test_independent_networks_are_fresh_draws_not_chains():
    chain, independent = population(mode="chain"), population(mode="independent")
    assert same(chain[0], independent[0])  # both modes start from the same network
    k = round(0.1 * round(0.1 * 30 * 20))
    for before, after in zip(independent, independent[1:]):
        assert len(links(before[0]) ^ links(after[0])) > 2 * k


# ----------------------------------------------------------------------------- NNSTD on a population


def test_nnstd_to_the_first_network_grows_along_a_chain():
    chain = population([100, 100, 100, 10], 0.05, 10, 0.05, seed=0)
    to_first = [nnstd(net, chain[0])[0] for net in chain[1:]]
    assert spearmanr(np.arange(1, 10), to_first).statistic > 0.9
    independent = population([100, 100, 100, 10], 0.05, 10, 0.05, seed=0, mode="independent")
    neighbours = np.mean([nnstd(b, a)[0] for a, b in zip(chain, chain[1:])])
    strangers = np.mean([nnstd(b, a)[0] for a, b in zip(independent, independent[1:])])
    assert strangers > 2 * neighbours


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(density=0.0), dict(density=1.5), dict(rewire=-0.1), dict(rewire=1.1),
        dict(layers=[10]), dict(layers=[10, 0, 5]), dict(layers=[10, -3, 5]), dict(n=0),
        dict(mode="shuffle"), dict(seed=-1), dict(layers=[3, 3, 2], density=0.01),  # 0 connections
        dict(layers=[3, 3, 2], density=1.0, rewire=0.5),  # nowhere to move links to
    ],
    ids=["density-0", "density-above-1", "rewire-negative", "rewire-above-1", "one-size",
         "zero-size", "negative-size", "no-networks", "bad-mode", "negative-seed", "zero-links", "no-free-positions"],
)
def test_bad_parameters_raise_before_anything_is_made(kwargs):
    params = dict(layers=SMALL, density=0.1, n=3, rewire=0.1, seed=0, mode="chain") | kwargs
    with pytest.raises(InputError):
        generate_population(*(params[key] for key in ["layers", "density", "n", "rewire", "seed", "mode"]))


# ----------------------------------------------------------------------------- files


def test_files_have_a_full_bias_row_that_the_reader_drops(tmp_path):
    summary = write_population(tmp_path / "pop", SMALL, 0.1, 3, 0.1, seed=0)
    assert summary.names == ["net_000", "net_001", "net_002"]
    assert sorted(p.name for p in (tmp_path / "pop").iterdir()) == summary.names
    assert summary.n_bytes == sum(f.stat().st_size for f in (tmp_path / "pop").rglob("*.npz"))
    for name, masks in generate_population(SMALL, 0.1, 3, 0.1, 0):
        for k, mask in enumerate(masks):
            stored = sp.load_npz(tmp_path / "pop" / name / f"weight_l{k}.npz")
            assert stored.format == "csr" and stored.dtype == np.float32
            assert stored.shape == (mask.shape[0] + 1, mask.shape[1])
            assert stored[-1].nnz == mask.shape[1]  # bias row full
            assert np.all(stored.data == 1.0)
        assert same(load_set_network(tmp_path / "pop" / name), masks)


def test_refuses_an_out_with_networks_unless_overwrite(tmp_path):
    write_population(tmp_path, SMALL, 0.1, 5, 0.1, seed=0)
    with pytest.raises(InputError, match="`overwrite`"):
        write_population(tmp_path, SMALL, 0.1, 2, 0.1, seed=1)
    write_population(tmp_path, SMALL, 0.1, 2, 0.1, seed=1, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net_000", "net_001"]  # no stale net_002..4
    assert same(load_set_network(tmp_path / "net_001"), population(n=2, seed=1)[1])


def test_overwrite_never_deletes_networks_it_did_not_write(tmp_path):
    write_population(tmp_path / "e5_s0_w0", SMALL, 0.1, 1, 0.1, seed=0)  # a network dir, foreign name
    (tmp_path / "e5_s0_w0" / "net_000").rename(tmp_path / "real")
    with pytest.raises(InputError, match="real"):
        write_population(tmp_path, SMALL, 0.1, 2, 0.1, seed=0, overwrite=True)
    assert (tmp_path / "real" / "weight_l0.npz").exists()


def test_an_interrupted_run_leaves_only_complete_networks(tmp_path):
    written = write_networks(tmp_path, SMALL, 0.1, 5, 0.1, seed=0)
    next(written), next(written)
    written.close()  # stop as a killed run would, between networks
    (tmp_path / ".net_002.partial").mkdir()  # and a half-written one, as if killed mid-network
    names = sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("."))
    assert names == ["net_000", "net_001"]
    assert all(len(load_set_network(tmp_path / n)) == 3 for n in names)
    write_population(tmp_path, SMALL, 0.1, 5, 0.1, seed=0, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == network_names(5)  # partial dir cleaned up


def test_out_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="not a directory"):
        write_population(tmp_path / "file", SMALL, 0.1, 1, 0.1)


# ----------------------------------------------------------------------------- CLI

ARGS = ["--layers", "30,20,25,4", "--density", "0.1", "--networks", "3", "--rewire", "0.1", "--seed", "0"]


def test_cli_writes_the_population(tmp_path):
    result = CliRunner().invoke(cli, ["generate", str(tmp_path / "pop"), *ARGS])
    assert result.exit_code == 0, result.output
    assert "wrote 3 networks" in result.output
    for name, masks in generate_population(SMALL, 0.1, 3, 0.1, 0):
        assert same(load_set_network(tmp_path / "pop" / name), masks)


def test_cli_quiet_prints_nothing(tmp_path):
    result = CliRunner().invoke(cli, ["generate", str(tmp_path), *ARGS, "--quiet"])
    assert result.exit_code == 0 and result.output == ""


def test_cli_refuses_an_existing_population_in_one_line(tmp_path):
    runner = CliRunner()
    assert runner.invoke(cli, ["generate", str(tmp_path), *ARGS, "-q"]).exit_code == 0
    result = runner.invoke(cli, ["generate", str(tmp_path), *ARGS])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0 and result.output.startswith("Error:")
    assert runner.invoke(cli, ["generate", str(tmp_path), *ARGS, "--overwrite", "-q"]).exit_code == 0


@pytest.mark.parametrize("layers", ["784,x,10", "784;10", "", "10", "10,0"],
                         ids=["not-a-number", "wrong-separator", "empty", "one-size", "zero-size"])
def test_cli_bad_layers_exit_2(tmp_path, layers):
    result = CliRunner().invoke(cli, ["generate", str(tmp_path / "pop"), "--layers", layers])
    assert result.exit_code == 2
    assert not (tmp_path / "pop").exists()


def test_cli_help_examples_work_and_make_the_seed_experiment(tmp_path, monkeypatch):
    """The help's two example lines run as written (in an empty folder): 10 networks, then a distance > 0."""
    result = CliRunner().invoke(cli, ["generate", "--help"])
    assert result.exit_code == 0
    examples = [shlex.split(line) for line in result.output.splitlines() if line.strip().startswith("nnstd-dist ")]
    assert [e[1] for e in examples] == ["generate", "pair"]
    monkeypatch.chdir(tmp_path)
    made, paired = (CliRunner().invoke(cli, e[1:]) for e in examples)
    assert made.exit_code == 0 and len(list((tmp_path / examples[0][2]).glob("net_*"))) == 10
    distances = [float(line.split()[2]) for line in paired.output.splitlines()]
    assert paired.exit_code == 0 and len(distances) == 4 and 0 < distances[0] < 1 and distances[-1] == 0.0
