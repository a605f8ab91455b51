"""The reducer: selections, labelled matrices read from a store (selected rows only), facets, clustering, MDS, labels."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _populations import chain, make_store, pair_distances, runs_population
from nnstd_dist.views import embedding, reduce
from nnstd_dist.errors import InputError, NNSTDError
from nnstd_dist.labels import short_labels
from nnstd_dist.store.topology_store import TopologyStore

EPOCHS = [0, 10, 30]


@pytest.fixture(scope="module")
def population():
    return runs_population(3, EPOCHS, seed=7)  # names r{run}/epoch_{epoch:03d}, store order run-major


@pytest.fixture(scope="module")
def full_store(population, tmp_path_factory):
    networks, records = population
    return make_store(tmp_path_factory.mktemp("full") / "s.zarr", networks, records, tile=4)


@pytest.fixture(scope="module")
def expected(population):
    return pair_distances(population[0])


# ---- labels -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "names, labels",
    [
        ([f"e5_s0_w{k}/epoch_190" for k in range(10)], [f"w{k}" for k in range(10)]),
        (["e5_s0_w0/epoch_000", "e5_s0_w0/epoch_190", "e5_s0_w1/epoch_000"], ["w0/epoch_000", "w0/epoch_190", "w1/epoch_000"]),
        ([f"net_{k:03d}" for k in range(3)], ["000", "001", "002"]),
        (["a_final", "b_final"], ["a", "b"]),
        (["run1", "run2"], ["run1", "run2"]),
        (["run1", "run1/epoch_0"], ["run1", "run1/epoch_0"]),
        (["topo/x/epoch_000"], ["epoch_000"]),
        (["same", "same"], ["same", "same"]),
    ],
    ids=["paper-runs", "runs-and-epochs", "numbered", "common-suffix", "no-separator", "prefix-of-other", "single", "duplicates"],
)
def test_short_labels(names, labels):
    assert short_labels(names) == labels


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(alphabet="ab_/0", min_size=1, max_size=8), min_size=2, max_size=6, unique=True))
def test_short_labels_stay_unique_and_non_empty(names):
    labels = short_labels(names)
    assert len(set(labels)) == len(names) and all(labels)


# ---- selections -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "items, parsed",
    [
        ([], {}),
        (["epoch=190"], {"epoch": ["190"]}),
        (["epoch=0,190", "run=e5_s0_w3"], {"epoch": ["0", "190"], "run": ["e5_s0_w3"]}),
        (["run=a", "run=b"], {"run": ["a", "b"]}),
        (["name=e5_*/epoch_000"], {"name": ["e5_*/epoch_000"]}),
    ],
    ids=["none", "one", "two-keys", "key-twice", "glob"],
)
def test_parse_selection(items, parsed):
    assert reduce.parse_selection(items) == parsed


@pytest.mark.parametrize("item", ["epoch", "epoch=", "colour=red", "epoch=ten"], ids=["no-equals", "no-value", "unknown-key", "not-int"])
def test_parse_selection_rejects(item):
    with pytest.raises(InputError, match="`select`"):
        reduce.parse_selection([item])


@pytest.mark.parametrize(
    "items, names",
    [
        (["epoch=10"], ["r0/epoch_010", "r1/epoch_010", "r2/epoch_010"]),
        (["run=r1"], ["r1/epoch_000", "r1/epoch_010", "r1/epoch_030"]),
        (["run=r1,r2", "epoch=30"], ["r1/epoch_030", "r2/epoch_030"]),
        (["name=r[02]/epoch_01*"], ["r0/epoch_010", "r2/epoch_010"]),
    ],
    ids=["epoch", "run", "and-of-keys", "name-glob"],
)
def test_select_indices(full_store, items, names):
    indices = reduce.select_indices(full_store, reduce.parse_selection(items))
    assert [full_store.names()[i] for i in indices] == names


@pytest.mark.parametrize("items", [["epoch=20"], ["run=r9"], ["run=r0", "epoch=20"]], ids=["epoch", "run", "combination"])
def test_selection_matching_nothing_is_an_error(full_store, items):
    with pytest.raises(InputError, match="matches no network"):
        reduce.select_indices(full_store, reduce.parse_selection(items))


# ---- matrices from the store --------------------------------------------------------------------


def test_labelled_matrix_holds_the_selected_block(full_store, expected):
    m = reduce.labelled_matrix(full_store, layer=0, selection={"epoch": ["30"]})
    idx = [2, 5, 8]  # store order is run-major: run r at index 3 r + epoch position
    np.testing.assert_array_equal(m.values, expected[0][np.ix_(idx, idx)])
    assert m.names == ["r0/epoch_030", "r1/epoch_030", "r2/epoch_030"]
    assert m.labels == ["r0", "r1", "r2"]
    assert m.metadata["epoch"].tolist() == [30, 30, 30]
    assert m.metadata["run"].tolist() == ["r0", "r1", "r2"]
    assert (m.layer, reduce.describe_selection(m.selection), m.n_missing) == ("layer 0", "epoch=30", 0)


def test_cumulative_is_the_mean_of_layers_0_to_L(full_store, expected):
    m = reduce.labelled_matrix(full_store, layer=1, cumulative=True)
    np.testing.assert_allclose(m.values, expected[:2].mean(axis=0), rtol=0, atol=1e-15)
    assert m.layer == "layer 1 (mean of layers 0-1)"


def test_reads_selected_indices_one_layer_at_a_time(full_store, monkeypatch):
    calls = []
    original = TopologyStore.read_distance

    def spy(self, layers=None, indices=None):
        calls.append((list(layers), None if indices is None else np.asarray(indices).tolist()))
        return original(self, layers, indices)

    monkeypatch.setattr(TopologyStore, "read_distance", spy)
    reduce.labelled_matrix(full_store, layer=1, cumulative=True, selection={"run": ["r2"]})
    assert calls == [([0], [6, 7, 8]), ([1], [6, 7, 8])]


@pytest.mark.parametrize("layer", [2, 99], ids=["just-past", "far"])
def test_layer_out_of_range(full_store, layer):
    with pytest.raises(InputError, match=f"`layer` {layer} out of range"):
        reduce.labelled_matrix(full_store, layer=layer)


def test_store_without_results(population, tmp_path):
    networks, records = population
    store = make_store(tmp_path / "s.zarr", networks, records, tile=4, compute=False)
    store = TopologyStore.open(tmp_path / "s.zarr")
    assert store.has_results  # all-NaN results: every pair missing
    assert reduce.labelled_matrix(store).n_missing == 9 * 8 // 2
    empty = tmp_path / "bare.zarr"
    TopologyStore.create(empty, [n.shape for n in networks[0]])
    with pytest.raises(NNSTDError, match="no distances yet"):
        reduce.labelled_matrix(TopologyStore.open(empty))


def test_partial_results_are_nan_and_counted(population, expected, tmp_path):
    networks, records = population
    store = make_store(tmp_path / "s.zarr", networks, records, tile=4, compute={(0, 0), (2, 1)})
    m = reduce.labelled_matrix(store)
    done = np.zeros((9, 9), dtype=bool)
    done[0:4, 0:4] = True
    done[8:9, 4:8] = done[4:8, 8:9] = True
    np.fill_diagonal(done, True)
    np.testing.assert_array_equal(np.isnan(m.values), ~done)
    np.testing.assert_array_equal(m.values[done], expected[0][done])
    assert m.n_missing == int((~done)[np.triu_indices(9, 1)].sum())


def test_facet_by_epoch(full_store, expected):
    panels = reduce.facet(full_store, "epoch", ["30", "0"], selection={"run": ["r0", "r1"]})
    assert [reduce.describe_selection(p.selection) for p in panels] == ["run=r0,r1 epoch=30", "run=r0,r1 epoch=0"]
    np.testing.assert_array_equal(panels[0].values, expected[0][np.ix_([2, 5], [2, 5])])
    assert [p.metadata["epoch"].tolist() for p in panels] == [[30, 30], [0, 0]]


def test_facet_defaults_to_every_value_in_natural_order(full_store):
    assert [p.metadata["epoch"][0] for p in reduce.facet(full_store, "epoch")] == EPOCHS
    assert [p.metadata["run"][0] for p in reduce.facet(full_store, "run")] == ["r0", "r1", "r2"]


@pytest.mark.parametrize(
    "key, values, message", [("epoch", ["20"], "no network with epoch=20"), ("name", None, "`facet` 'name'"), ("epoch", ["x"], "not an integer")],
    ids=["absent-value", "bad-key", "bad-epoch"],
)
def test_facet_errors(full_store, key, values, message):
    with pytest.raises(InputError, match=message):
        reduce.facet(full_store, key, values)


# ---- matrix-only helpers -----------------------------------------------------------------------


def test_cluster_order_separates_two_planted_clusters():
    # Two SET-like chains from different seeds: near within a chain, far (~0.8) across chains.
    a, b = chain(seed=1, length=6, fraction=0.05), chain(seed=2, length=6, fraction=0.05)
    shuffle = np.random.default_rng(0).permutation(12)
    networks = [(a + b)[i] for i in shuffle]
    truth = shuffle < 6  # True where the network came from chain a
    order = embedding.cluster_order(pair_distances(networks)[0])
    assert sorted(order.tolist()) == list(range(12))
    assert len(set(truth[order[:6]])) == 1 and len(set(truth[order[6:]])) == 1


def test_clustering_refuses_missing_pairs():
    values = np.array([[0, 0.5, np.nan], [0.5, 0, 0.2], [np.nan, 0.2, 0]])
    with pytest.raises(InputError, match="1 of the selection's pairs are not computed"):
        embedding.cluster_order(values)


def _euclidean(points):
    return np.sqrt(((points[:, None] - points[None]) ** 2).sum(-1))


@settings(max_examples=15, deadline=None)
@given(st.integers(4, 25), st.integers(0, 2**32 - 1))
def test_mds_recovers_a_planar_configuration(n, seed):
    points = np.random.default_rng(seed).random((n, 2))
    coords, stress = embedding.mds(_euclidean(points))
    assert coords.shape == (n, 2)
    np.testing.assert_allclose(_euclidean(coords), _euclidean(points), atol=1e-5)
    assert stress < 1e-5


def test_mds_uses_only_the_computed_pairs():
    points = np.random.default_rng(3).random((12, 2))
    delta = _euclidean(points)
    known = np.random.default_rng(4).random((12, 12)) < 0.8
    known = np.triu(known, 1)
    known = known | known.T
    partial = np.where(known | np.eye(12, dtype=bool), delta, np.nan)
    coords, stress = embedding.mds(partial, max_iter=2000, tol=1e-12)
    np.testing.assert_allclose(_euclidean(coords)[known], delta[known], atol=1e-3)
    assert stress < 1e-3


def test_trajectory_orders_by_epoch():
    values = np.array([[0, 0.3, 0.1], [0.3, 0, 0.2], [0.1, 0.2, 0]])
    meta = {"run": np.array(["r", "r", "r"], dtype=object), "epoch": np.array([20, 0, 10]), "accuracy": np.array([0.9, 0.1, 0.5])}
    t = embedding.trajectory(reduce.LabelledMatrix(values, ["c", "a", "b"], meta))
    assert t.run == "r"
    assert t.epochs.tolist() == [0, 10, 20]
    assert t.to_first.tolist() == [0, 0.2, 0.3]  # a -> a, b, c
    assert t.to_final.tolist() == [0.3, 0.1, 0]  # c <- a, b, c
    assert t.accuracy.tolist() == [0.1, 0.5, 0.9]


def test_trajectory_needs_epochs():
    meta = {"run": np.array(["r", "r"], dtype=object), "epoch": np.array([-1, -1]), "accuracy": np.full(2, np.nan)}
    with pytest.raises(InputError, match="without an epoch"):
        embedding.trajectory(reduce.LabelledMatrix(np.zeros((2, 2)), ["a", "b"], meta))
