"""The NNSTD kernel against the paper's reference, a naive set-based oracle, and the metric's axioms."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.optimize import linear_sum_assignment

from _populations import relabel_hidden
from nnstd_dist import nnstd

from nnstd_dist.kernel import distance as kernel
from nnstd_dist.errors import InputError, ShapeMismatchError

from _oracle import mask_costs


def layer_shapes(sizes):
    """Neuron counts per layer (n_0, n_1, ..., n_L) -> layer shapes [(n_0, n_1), ..., (n_{L-1}, n_L)]."""
    return list(zip(sizes[:-1], sizes[1:]))


# --- the oracle: the paper's definition, one neuron pair at a time, with Python sets ----------------------


def to_dense(layer) -> np.ndarray:
    return layer.toarray() if sp.issparse(layer) else np.asarray(layer)


def oracle_nnstd(layers_a, layers_b) -> np.ndarray:
    out, order = [], None
    for layer_a, layer_b in zip(layers_a, layers_b):
        layer_b = to_dense(layer_b)
        if order is not None:
            layer_b = layer_b[order]  # B's inputs in the order matched to A's in the previous layer
        cost = mask_costs(layer_a, layer_b)
        rows, order = linear_sum_assignment(cost)
        out.append(cost[rows, order].sum() / cost.shape[0])
    return np.array(out)


# --- 1. the paper's own numbers -----------------------------------------------------------------------------

REFERENCE_PAIRS = [(i, j) for i in range(10) for j in range(i + 1)]


@pytest.fixture(scope="module")
def reference(paper_reference):
    return paper_reference


def test_reference_lists_every_pair(reference):
    ref, networks = reference
    assert len(networks) == 10
    assert sorted(ref["pairs"]) == sorted(f"{i},{j}" for i, j in REFERENCE_PAIRS)


@pytest.mark.parametrize(("i", "j"), REFERENCE_PAIRS, ids=[f"w{i}-w{j}" for i, j in REFERENCE_PAIRS])
def test_reference_epoch0(reference, i, j):
    ref, networks = reference
    expected = ref["pairs"][f"{i},{j}"]
    got = nnstd(networks[i], networks[j])  # the reference passes networks[i] first
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    # Same integer counts, same float64 division, same solver: the matrix and matching are identical.
    assert got.tolist() == expected


# --- 2. the oracle on small seeded networks ----------------------------------------------------------------

SIZES = [(1, 1), (1, 5), (6, 1), (3, 5), (8, 8, 8), (40, 12), (5, 40, 7), (12, 20, 9, 4), (9, 15, 15, 15, 3)]
DENSITIES = [0.0, 0.05, 0.3, 1.0]


@pytest.mark.parametrize("density", DENSITIES, ids=lambda d: f"p{d}")
@pytest.mark.parametrize("sizes", SIZES, ids=lambda s: "x".join(map(str, s)))
def test_matches_oracle(rng, synthetic_network, sizes, density):
    shapes = layer_shapes(sizes)
    a, b = synthetic_network(rng, shapes, density), synthetic_network(rng, shapes, density)
    assert nnstd(a, b).tolist() == oracle_nnstd(a, b).tolist()


def stored_zeros_csr(weights: np.ndarray, rng) -> sp.csr_matrix:
    """CSR of `weights` that also stores explicit 0.0 entries at some unconnected positions."""
    rows, cols = np.nonzero(weights)
    zero_rows, zero_cols = np.nonzero(weights == 0)
    extra = rng.random(zero_rows.size) < 0.5
    data = np.concatenate([weights[rows, cols], np.zeros(extra.sum())])
    m = sp.csr_matrix(
        (data, (np.concatenate([rows, zero_rows[extra]]), np.concatenate([cols, zero_cols[extra]]))),
        shape=weights.shape,
    )
    assert m.nnz > np.count_nonzero(weights) or not extra.any()  # the zeros really are stored
    return m


def weighted(mask, rng) -> np.ndarray:
    return np.where(mask, rng.standard_normal(mask.shape), 0.0)


# How a user might hand a layer to nnstd; every kind must give the same masks.
INPUT_KINDS = {
    "dense-bool": lambda m, rng: m,
    "dense-float64": weighted,
    "dense-float32": lambda m, rng: weighted(m, rng).astype(np.float32),
    "dense-int": lambda m, rng: np.where(m, rng.integers(1, 9, m.shape) * rng.choice([-1, 1], m.shape), 0),
    "dense-uint8": lambda m, rng: m.astype(np.uint8),
    "csr": lambda m, rng: sp.csr_matrix(weighted(m, rng)),
    "csc": lambda m, rng: sp.csc_matrix(weighted(m, rng)),
    "coo": lambda m, rng: sp.coo_matrix(weighted(m, rng)),
    "csr-bool": lambda m, rng: sp.csr_matrix(m),
    "csr_array": lambda m, rng: sp.csr_array(weighted(m, rng)),
    "csr-stored-zeros": lambda m, rng: stored_zeros_csr(weighted(m, rng), rng),
}


@pytest.mark.parametrize("sizes", [(4, 6), (10, 7, 7, 3), (30, 25, 5)], ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("kind", INPUT_KINDS)
def test_input_kinds_match_oracle(rng, synthetic_network, kind, sizes):
    shapes = layer_shapes(sizes)
    masks_a, masks_b = synthetic_network(rng, shapes, 0.3), synthetic_network(rng, shapes, 0.3)
    convert = INPUT_KINDS[kind]
    a = [convert(m, rng) for m in masks_a]
    b = [convert(m, rng) for m in masks_b]
    expected = oracle_nnstd(masks_a, masks_b)
    assert nnstd(a, b).tolist() == expected.tolist()
    assert oracle_nnstd(a, b).tolist() == expected.tolist()  # the conversion kept the masks


def with_empty_columns(mask, columns):
    mask = mask.copy()
    mask[:, columns] = False
    return mask


@pytest.mark.parametrize(
    "case",
    ["some-empty-neurons", "all-empty-vs-dense", "both-layer-empty", "empty-middle-layer", "one-link"],
)
def test_empty_neurons_and_layers_match_oracle(rng, synthetic_network, case):
    shapes = layer_shapes((12, 10, 8, 4))
    a, b = synthetic_network(rng, shapes, 0.4), synthetic_network(rng, shapes, 0.4)
    if case == "some-empty-neurons":
        a[0], b[0] = with_empty_columns(a[0], [0, 3, 4]), with_empty_columns(b[0], [1, 3, 9])
        a[1], b[1] = with_empty_columns(a[1], [2]), with_empty_columns(b[1], [2, 5, 6, 7])
    elif case == "all-empty-vs-dense":
        a[0], b[0] = np.zeros_like(a[0]), np.ones_like(b[0])
    elif case == "both-layer-empty":
        a[0], b[0] = np.zeros_like(a[0]), np.zeros_like(b[0])
    elif case == "empty-middle-layer":
        a[1], b[1] = np.zeros_like(a[1]), np.zeros_like(b[1])
    else:
        a = [np.zeros(s, bool) for s in shapes]
        b = [np.zeros(s, bool) for s in shapes]
        a[0][3, 2] = b[0][5, 7] = True
    got = nnstd(a, b)
    assert got.tolist() == oracle_nnstd(a, b).tolist()
    if case == "all-empty-vs-dense":
        assert got[0] == 1.0  # every pair is (empty, non-empty): cost 1
    if case in ("both-layer-empty", "empty-middle-layer"):
        assert got[1 if case == "empty-middle-layer" else 0] == 0.0


@pytest.mark.parametrize("density", [0.05, 0.5], ids=lambda d: f"p{d}")
def test_cost_matrix_is_the_oracle_matrix(rng, synthetic_network, density):
    a, b = synthetic_network(rng, [(30, 20)], density), synthetic_network(rng, [(30, 20)], density)
    ta, tb = kernel.prepare(a), kernel.prepare(b)
    cost = kernel.cost_matrix(ta.masks[0], tb.masks[0], ta.degrees[0], tb.degrees[0])
    np.testing.assert_array_equal(cost, mask_costs(a[0], b[0]))


# --- 3. axioms ---------------------------------------------------------------------------------------------


@st.composite
def networks(draw, count=2, max_layers=3, max_size=7):
    """`count` random networks of one random shape (bool masks; densities anywhere in [0, 1])."""
    sizes = draw(st.lists(st.integers(1, max_size), min_size=2, max_size=max_layers + 1))
    shapes = layer_shapes(sizes)
    return [[draw(hnp.arrays(np.bool_, shape)) for shape in shapes] for _ in range(count)]


@settings(max_examples=60, deadline=None)
@given(networks(count=1))
def test_identity_is_zero(nets):
    (a,) = nets
    assert nnstd(a, a).tolist() == [0.0] * len(a)


@settings(max_examples=60, deadline=None)
@given(networks())
def test_distance_in_unit_interval(nets):
    a, b = nets
    d = nnstd(a, b)
    assert d.shape == (len(a),)
    assert ((d >= 0) & (d <= 1)).all()


@settings(max_examples=60, deadline=None)
@given(networks())
def test_layer0_is_symmetric(nets):
    a, b = nets
    # Same optimum on C and C^T; the matched sums may add up in another order, hence not exact.
    assert nnstd(a, b)[0] == pytest.approx(nnstd(b, a)[0], abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(networks(), st.integers(0, 2**32 - 1))
def test_layer0_unchanged_by_relabelling_hidden_neurons(nets, seed):
    a, b = nets
    relabelled = relabel_hidden(b, np.random.default_rng(seed))
    assert nnstd(a, relabelled)[0] == pytest.approx(nnstd(a, b)[0], abs=1e-12)


@pytest.mark.parametrize(
    "sizes", [(30, 8), (30, 10, 6), (40, 12, 9, 5), (25, 9, 9, 9, 2)], ids=lambda s: "x".join(map(str, s))
)
def test_relabelled_copy_is_zero_on_every_layer(synthetic_network, sizes):
    rng = np.random.default_rng(sum(sizes))
    a = synthetic_network(rng, layer_shapes(sizes), 0.5)
    # Only when hidden neurons are told apart by their inputs is the matching unique: two neurons
    # with equal input sets may be matched crosswise, and a later layer then sees a real difference.
    for layer in a[:-1]:
        assert len({tuple(np.flatnonzero(col)) for col in layer.T}) == layer.shape[1]
    assert nnstd(a, relabel_hidden(a, rng)).tolist() == [0.0] * len(a)


# --- 4. bad input ------------------------------------------------------------------------------------------


ONES = np.ones


@pytest.mark.parametrize(
    ("layers_a", "layers_b", "error", "message"),
    [
        pytest.param([ONES((3, 4))], [ONES((3, 4)), ONES((4, 2))], ShapeMismatchError, "1 and 2 layers", id="layer-count"),
        pytest.param([ONES((3, 4)), ONES((4, 2))], [ONES((3, 4)), ONES((4, 5))], ShapeMismatchError, "layer 1", id="shape"),
        pytest.param([ONES((3, 4))], [ONES((4, 3))], ShapeMismatchError, "layer 0", id="transposed"),
        pytest.param([ONES(4)], [ONES(4)], InputError, "layer 0: expected a 2-D", id="1-d"),
        pytest.param([ONES((2, 2)), ONES((2, 2, 2))], [ONES((2, 2))] * 2, InputError, "layer 1: expected a 2-D", id="3-d"),
        pytest.param([np.float64(1.0)], [ONES((1, 1))], InputError, "layer 0: expected a 2-D", id="scalar"),
        pytest.param([sp.coo_array(ONES(3))], [ONES((1, 3))], InputError, "layer 0: expected a 2-D", id="1-d-sparse"),
        pytest.param([np.array([[np.nan, 1.0]])], [ONES((1, 2))], InputError, "layer 0: contains NaN", id="nan"),
        pytest.param(
            [ONES((2, 2)), sp.csr_matrix([[np.inf], [0.0]])], [ONES((2, 2)), ONES((2, 1))],
            InputError, "layer 1: contains NaN or infinite", id="inf-sparse",
        ),
        pytest.param(
            [ONES((3, 4)), ONES((3, 2))], [ONES((3, 4)), ONES((3, 2))],
            InputError, "layer 1: 3 input rows but layer 0 has 4", id="layers-do-not-chain",
        ),
        pytest.param([ONES((3, 0))], [ONES((3, 0))], InputError, "layer 0: empty shape", id="no-neurons"),
        pytest.param([], [], InputError, "at least one layer", id="no-layers"),
    ],
)
def test_bad_input_raises(layers_a, layers_b, error, message):
    with pytest.raises(error, match=message):
        nnstd(layers_a, layers_b)


# --- 5. the fully-connected last layer shortcut ------------------------------------------------------------


@pytest.fixture
def count_assignments(monkeypatch):
    """Counts calls of the kernel's linear_sum_assignment (to see whether the shortcut was taken)."""
    calls = []

    def counting(cost):
        calls.append(cost.shape)
        return linear_sum_assignment(cost)

    monkeypatch.setattr(kernel, "linear_sum_assignment", counting)
    return calls


@pytest.mark.parametrize("sizes", [(5, 3), (12, 9, 4), (20, 15, 15, 10)], ids=lambda s: "x".join(map(str, s)))
def test_fully_connected_last_layer_shortcut(rng, synthetic_network, count_assignments, sizes):
    shapes = layer_shapes(sizes)
    a, b = synthetic_network(rng, shapes, 0.3), synthetic_network(rng, shapes, 0.3)
    a[-1] = rng.uniform(0.5, 1.0, shapes[-1])  # weights everywhere: fully connected
    b[-1] = sp.csr_matrix(np.ones(shapes[-1], dtype=np.int8))
    got = kernel.nnstd_prepared(kernel.prepare(a), kernel.prepare(b))
    assert len(count_assignments) == len(shapes) - 1  # the last layer was never solved
    assert got[-1] == 0.0
    assert got.tolist() == oracle_nnstd(a, b).tolist()


def test_no_shortcut_when_only_one_last_layer_is_full(rng, synthetic_network, count_assignments):
    shapes = layer_shapes((12, 9, 4))
    a, b = synthetic_network(rng, shapes, 0.3), synthetic_network(rng, shapes, 0.3)
    a[-1] = np.ones(shapes[-1], bool)
    b[-1][0, 0] = False  # one link short of full
    b[-1][1:, 0] = True
    got = nnstd(a, b)
    assert len(count_assignments) == len(shapes)
    assert got[-1] > 0.0
    assert got.tolist() == oracle_nnstd(a, b).tolist()
