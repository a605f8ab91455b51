"""The fast solver: NNSTD's axioms over both solvers, relabelling invariance of certified pairs (empty, duplicated
neurons, the paper's networks), every algorithm bit for bit, every layer optimal, layer 0 equal to exact, and a layer
too wide for a dense matrix. The rule's own cases (issue 27) and the convolutional families are in test_fast_rule.py."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.optimize import linear_sum_assignment

from _oracle import mask_costs
from _populations import relabel_hidden
from nnstd_dist.errors import InputError
from nnstd_dist.kernel import FAST_ALGORITHMS, SOLVERS, nnstd, nnstd_certified, nnstd_prepared, prepare
from nnstd_dist.kernel.fast.pair import fast_orders

TOLERANCE = 1e-12
ALGORITHMS = ("auto", *FAST_ALGORITHMS)


@st.composite
def networks(draw, count=2, max_layers=3, max_size=7):
    """`count` random networks of one shape; some hidden neurons emptied or given another's input set (twins)."""
    sizes = draw(st.lists(st.integers(1, max_size), min_size=2, max_size=max_layers + 1))
    shapes = list(zip(sizes[:-1], sizes[1:]))
    nets = [[draw(hnp.arrays(np.bool_, shape)) for shape in shapes] for _ in range(count)]
    for net in nets:
        for k, layer in enumerate(net[:-1]):
            j, other = draw(st.integers(0, layer.shape[1] - 1)), draw(st.integers(0, layer.shape[1] - 1))
            action = draw(st.sampled_from(["none", "empty", "same inputs", "full twin"]))
            if action != "none":
                layer[:, j] = False if action == "empty" else layer[:, other]
            if action == "full twin":
                net[k + 1][j] = net[k + 1][other]
    return nets


# --- axioms, over both solvers ---------------------------------------------------------------------------


@pytest.mark.parametrize("solver", SOLVERS)
@settings(max_examples=40, deadline=None)
@given(networks(count=1))
def test_identity_is_zero(solver, nets):
    (a,) = nets
    assert nnstd(a, a, solver=solver).tolist() == [0.0] * len(a)


@pytest.mark.parametrize("solver", SOLVERS)
@settings(max_examples=40, deadline=None)
@given(networks())
def test_distance_in_unit_interval(solver, nets):
    a, b = nets
    d = nnstd(a, b, solver=solver)
    assert d.shape == (len(a),) and ((d >= 0) & (d <= 1)).all()


@settings(max_examples=80, deadline=None)
@given(networks(), st.integers(0, 2**32 - 1))
def test_fast_is_blind_to_relabelling_either_network(nets, seed):
    # promised for certified pairs (test_fast_rule.py measures how many are); the flag itself never depends on labels
    a, b = nets
    rng = np.random.default_rng(seed)
    d, certified = nnstd_certified(prepare(a), prepare(b), solver="fast")
    for moved_a, moved_b in ((a, relabel_hidden(b, rng)), (relabel_hidden(a, rng), b)):
        moved, moved_certified = nnstd_certified(prepare(moved_a), prepare(moved_b), solver="fast")
        assert moved_certified == certified
        if certified:
            assert moved.tolist() == d.tolist()
    copy, copy_certified = nnstd_certified(prepare(a), prepare(relabel_hidden(a, rng)), solver="fast")
    if copy_certified:
        assert copy.tolist() == [0.0] * len(a)


@settings(max_examples=60, deadline=None)
@given(networks())
def test_fast_is_symmetric(nets):
    # the rule runs in one canonical orientation of the pair, so both directions return its values
    a, b = nets
    assert nnstd(a, b, solver="fast").tolist() == nnstd(b, a, solver="fast").tolist()


@settings(max_examples=60, deadline=None)
@given(networks(), st.integers(0, 2**32 - 1))
def test_exact_is_blind_to_relabelling_in_layer0_only(nets, seed):
    a, b = nets
    relabelled = relabel_hidden(b, np.random.default_rng(seed))
    assert nnstd(a, relabelled)[0] == pytest.approx(nnstd(a, b)[0], abs=TOLERANCE)


def twins_network():
    """Hidden neurons h0 and h1 share their input set but feed different neurons g0, g1, and g0 feeds two outputs."""
    layer0 = np.zeros((4, 3), bool)
    layer0[[0, 1], 0] = layer0[[0, 1], 1] = True
    layer0[[2, 3], 2] = True
    layer1 = np.zeros((3, 2), bool)
    layer1[0, 0] = layer1[1, 1] = layer1[2, :] = True
    layer2 = np.array([[True, True], [True, False]])
    return [layer0, layer1, layer2]


def test_exact_has_the_relabelling_artefact_fast_has_not():
    a = twins_network()
    swapped = [a[0][:, [1, 0, 2]], a[1][[1, 0, 2]], a[2]]  # the same graph, hidden neurons h0 and h1 renumbered
    # exact pairs the tied h0, h1 by index, so h0 with h1; layer 1 pairs g0 with g1 at no cost, and layer 2 pays
    assert nnstd(a, swapped).tolist() == [0.0, 0.0, 0.5]
    assert nnstd(a, swapped, solver="fast").tolist() == [0.0, 0.0, 0.0]


# --- relabelled copies: empty and duplicated neurons, the paper's networks, convolutions ---------------------


def crowded_network(rng, sizes, density, empty=5, duplicated=6):
    """Random masks with `empty` neurons without inputs and `duplicated` neurons given another's input set per hidden layer."""
    layers = [rng.random(shape) < density for shape in zip(sizes[:-1], sizes[1:])]
    for k, layer in enumerate(layers[:-1]):
        n = layer.shape[1]
        layer[:, rng.choice(n, empty, replace=False)] = False
        source, target = rng.choice(n, (2, duplicated))
        layer[:, target] = layer[:, source]
        layers[k + 1][target[:2]] = layers[k + 1][source[:2]]  # two of them twins in every respect
    return layers


@pytest.mark.parametrize("sizes", [(30, 12, 12, 4), (50, 40, 30, 20, 5), (20, 25, 25, 3)], ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("density", [0.05, 0.2, 0.5])
def test_relabelled_copies_with_empty_and_duplicated_neurons(sizes, density):
    rng = np.random.default_rng(sum(sizes) + int(density * 100))
    a, b = crowded_network(rng, sizes, density), crowded_network(rng, sizes, density)
    assert nnstd(a, relabel_hidden(a, rng), solver="fast").tolist() == [0.0] * len(a)
    d, certified = nnstd_certified(prepare(a), prepare(b), solver="fast")
    assert certified  # what the invariance below rests on (the rule's guarantee is for certified pairs)
    for _ in range(3):
        np.testing.assert_allclose(nnstd(relabel_hidden(a, rng), relabel_hidden(b, rng), solver="fast"), d, rtol=0, atol=TOLERANCE)


def relabel_sparse(layers, rng):
    layers = [sp.csc_matrix(layer) for layer in layers]
    for k in range(len(layers) - 1):
        perm = rng.permutation(layers[k].shape[1])
        layers[k], layers[k + 1] = layers[k][:, perm], sp.csr_matrix(layers[k + 1])[perm]
    return layers


@pytest.mark.parametrize("epoch", ["epoch_000", "epoch_190"])
def test_paper_networks_relabelled(paper_data, epoch):
    from nnstd_dist import load_set_network

    a, b = (load_set_network(paper_data / "topo" / f"e5_s0_w{w}" / epoch) for w in (2, 7))
    rng = np.random.default_rng(7)
    assert nnstd(a, relabel_sparse(a, rng), solver="fast").tolist() == [0.0] * 4
    d = nnstd(a, b, solver="fast")
    np.testing.assert_allclose(nnstd(relabel_sparse(a, rng), relabel_sparse(b, rng), solver="fast"), d, rtol=0, atol=TOLERANCE)
    assert d[0] == pytest.approx(nnstd(a, b, max_layer=0)[0], abs=TOLERANCE)
    for algorithm in FAST_ALGORITHMS:
        assert nnstd(a, b, solver="fast", algorithm=algorithm).tolist() == d.tolist()


# --- algorithms: the same bits; every layer optimal; layer 0 exact -------------------------------------------


@settings(max_examples=150, deadline=None)
@given(networks(max_layers=4, max_size=9))
def test_every_algorithm_gives_the_same_bits(nets):
    a, b = nets
    results = {algorithm: nnstd(a, b, solver="fast", algorithm=algorithm).tolist() for algorithm in ALGORITHMS}
    assert len({tuple(r) for r in results.values()}) == 1, results


@pytest.mark.parametrize("density", [0.02, 0.1, 0.4, 0.9])
def test_every_algorithm_gives_the_same_bits_on_larger_layers(rng, density):
    shapes = [(60, 50), (50, 50), (50, 40), (40, 5)]
    for _ in range(4):
        a, b = crowded_network(rng, [60, 50, 50, 40, 5], density), crowded_network(rng, [60, 50, 50, 40, 5], density)
        assert [s.shape for s in a] == shapes
        results = {nnstd(a, b, solver="fast", algorithm=algorithm).tobytes() for algorithm in ALGORITHMS}
        assert len(results) == 1


@pytest.mark.parametrize("sizes", [(8, 8, 8), (40, 12, 9, 5), (25, 30, 30, 3)], ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("density", [0.05, 0.2, 0.6])
def test_every_layer_is_optimal_and_layer0_is_exact(rng, sizes, density):
    a, b = crowded_network(rng, sizes, density, empty=2, duplicated=2), crowded_network(rng, sizes, density, empty=2, duplicated=2)
    ta, tb = prepare(a), prepare(b)
    orders, values, _ = fast_orders(ta.fast, tb.fast, (), len(a))
    rowmap = np.arange(sizes[0])
    for k in range(len(a)):  # replay the chain: each layer's value is the optimum given the previous matching
        if k:
            rowmap = orders[k - 1]
        order, value = orders[k], values[k]
        if order is None:  # a fully connected last layer: 0, no matching needed
            assert value == 0.0
            break
        cost = mask_costs(a[k], b[k][rowmap])
        assert sorted(order.tolist()) == list(range(len(order)))
        rows, cols = linear_sum_assignment(cost)
        assert value == pytest.approx(cost[rows, cols].sum() / len(order), abs=TOLERANCE)
        assert value == pytest.approx(cost[np.arange(len(order)), order].mean(), abs=TOLERANCE)
    got = nnstd_prepared(ta, tb, solver="fast")
    assert got.tolist() in (values.tolist(), fast_orders(tb.fast, ta.fast, (), len(a))[1].tolist())  # the canonical orientation's
    assert got[0] == pytest.approx(nnstd(a, b)[0], abs=TOLERANCE)


def test_the_compiled_modules_name_the_sources_they_call():
    # numba's cache of a module does not notice edits of the modules its functions call; their digest, written in the
    # caller, makes every such edit an edit of the caller as well
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "scripts" / "fast_depends_on.py"
    spec = importlib.util.spec_from_file_location("fast_depends_on", script)
    depends = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(depends)
    for caller, callees in depends.DEPENDS_ON.items():
        module = importlib.import_module(f"nnstd_dist.kernel.fast.{caller}")
        assert module.DEPENDS_ON == depends.digest(callees), "run scripts/fast_depends_on.py"


def test_max_layer_and_bad_algorithm(rng, synthetic_network):
    a, b = (synthetic_network(rng, [(20, 10), (10, 10), (10, 3)], 0.3) for _ in range(2))
    assert nnstd(a, b, solver="fast", max_layer=1).tolist() == nnstd(a, b, solver="fast")[:2].tolist()
    with pytest.raises(InputError, match="unknown algorithm 'hungarian'"):
        nnstd(a, b, solver="fast", algorithm="hungarian")
    with pytest.raises(InputError, match="exact solver"):
        nnstd(a, b, algorithm="jv")


# --- a layer too wide for a dense cost matrix ---------------------------------------------------------------


def wide_network(rng, n_in=100_000, n_hidden=100_000, per_neuron=3, classes=10):
    rows = rng.integers(0, n_in, (n_hidden, per_neuron)).ravel()
    layer0 = sp.csr_matrix((np.ones(rows.size), (rows, np.repeat(np.arange(n_hidden), per_neuron))), shape=(n_in, n_hidden))
    layer1 = sp.csr_matrix((np.ones(n_hidden), (np.arange(n_hidden), rng.integers(0, classes, n_hidden))), shape=(n_hidden, classes))
    return [layer0, layer1]


def rewired(layers, rng, share=0.1):
    """A copy with `share` of every layer's connections moved to random rows (as a sparse training run drifts)."""
    out = []
    for layer in layers:
        coo = layer.tocoo()
        rows = coo.row.copy()
        moved = rng.random(rows.size) < share
        rows[moved] = rng.integers(0, layer.shape[0], moved.sum())
        out.append(sp.csr_matrix((np.ones(rows.size), (rows, coo.col)), shape=layer.shape))
    return out


def test_100000_neurons_from_the_sparse_graph(rng):
    # exact mode would hold 100,000 x 100,000 float64 cost matrices (74.5 GiB each)
    a = wide_network(rng)
    b = rewired(a, rng)
    assert nnstd(a, relabel_sparse(a, rng), solver="fast").tolist() == [0.0, 0.0]
    d = nnstd(a, b, solver="fast")
    assert 0.05 < d[0] < 0.3 and 0.0 <= d[1] <= 1.0
    np.testing.assert_allclose(nnstd(a, relabel_sparse(b, rng), solver="fast"), d, rtol=0, atol=TOLERANCE)
