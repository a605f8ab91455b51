"""The sparse solver: every layer optimal (layer 0 equal to exact within 1e-12), neurons kept in place on ties, max_layer."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.optimize import linear_sum_assignment

from nnstd_dist import nnstd

from nnstd_dist.kernel import distance as kernel
from nnstd_dist.errors import InputError
from nnstd_dist.kernel.sparse_assignment import GRID, sparse_assignment

from _oracle import mask_costs

TOLERANCE = 1e-12


def solve(layer_a, layer_b):
    ta, tb = kernel.prepare([layer_a]), kernel.prepare([layer_b])
    return sparse_assignment(ta.masks[0], tb.masks[0], ta.degrees[0], tb.degrees[0])


def check_optimal(layer_a, layer_b):
    """The sparse assignment is a permutation, its total is its own cost, and that cost is the optimum."""
    order, total = solve(layer_a, layer_b)
    cost = mask_costs(layer_a, layer_b)
    assert sorted(order.tolist()) == list(range(cost.shape[0]))
    assert total == pytest.approx(cost[np.arange(cost.shape[0]), order].sum(), abs=TOLERANCE)
    rows, cols = linear_sum_assignment(cost)
    assert total == pytest.approx(cost[rows, cols].sum(), abs=TOLERANCE * cost.shape[0])
    return order


SIZES = [(1, 1), (6, 1), (1, 6), (5, 5), (30, 12), (12, 30), (60, 40)]
DENSITIES = [0.0, 0.02, 0.1, 0.3, 1.0]


@pytest.mark.parametrize("density", DENSITIES, ids=lambda d: f"p{d}")
@pytest.mark.parametrize("shape", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_assignment_is_optimal(rng, shape, density):
    for _ in range(3):
        check_optimal(rng.random(shape) < density, rng.random(shape) < density)


def test_empty_neurons_pair_at_cost_zero(rng):
    a, b = rng.random((20, 15)) < 0.2, rng.random((20, 15)) < 0.2
    a[:, [1, 4, 7]] = False
    b[:, [2, 4, 9, 11]] = False
    order = check_optimal(a, b)
    assert order[4] == 4  # empty with empty costs 0, and 4 keeps its index
    assert {int(order[j]) for j in (1, 7)} <= {2, 9, 11}


def test_ties_keep_neurons_in_place(rng):
    # Columns 0..4 are one input set, 5..9 another: every permutation within a group is optimal.
    col_a, col_b = rng.random(30) < 0.3, rng.random(30) < 0.3
    a = np.column_stack([col_a] * 5 + [col_b] * 5)
    order, total = solve(a, a.copy())
    assert total == 0.0
    assert order.tolist() == list(range(10))


def test_leftovers_keep_their_index_else_go_in_index_order():
    # Rows 0, 1 share no input with any column of B: both are left over, cost 1 each.
    a = np.zeros((6, 4), bool)
    b = np.zeros((6, 4), bool)
    a[0, 0] = a[1, 1] = True
    a[2, 2] = a[3, 3] = True
    b[4, 0] = b[5, 1] = True  # B's 0, 1: inputs A's 0 and 1 never use
    b[2, 3] = b[3, 2] = True  # B's 3 = A's 2, B's 2 = A's 3
    order, total = solve(a, b)
    assert order.tolist() == [0, 1, 3, 2]
    assert total == 2.0


def test_keeping_in_place_never_costs_more():
    # A's 0 equals B's 1 exactly; trading back to keep 0 in place would cost more, so it is not taken.
    a = np.zeros((4, 2), bool)
    b = np.zeros((4, 2), bool)
    a[[0, 1], 0] = True
    a[[2, 3], 1] = True
    b[[0, 1, 2], 0] = True  # shares 2 of 3 with A's 0, 1 of 4 with A's 1
    b[[0, 1], 1] = True
    order, total = solve(a, b)
    assert order.tolist() == [1, 0]
    assert total == pytest.approx(mask_costs(a, b)[[0, 1], [1, 0]].sum(), abs=0)


def test_costs_closer_than_the_grid_still_give_the_optimum_within_tolerance():
    # n * GRID bounds the loss from matching on rounded costs; per neuron (the distance) it is GRID.
    assert GRID <= 2.0**-42 < TOLERANCE
    rng = np.random.default_rng(7)
    for _ in range(20):  # dense layers: many costs, many near-equal ratios
        check_optimal(rng.random((40, 30)) < 0.5, rng.random((40, 30)) < 0.5)


def test_identical_networks_keep_every_neuron_in_place_in_every_layer(rng, synthetic_network):
    # Duplicated neurons make every layer's optimum a tie among many matchings; only the identity keeps
    # the next layer's rows aligned, and only it gives 0 in every layer.
    layers = synthetic_network(rng, [(12, 8), (8, 8), (8, 3)], 0.4)
    layers[0][:, 4:] = layers[0][:, :4]  # neurons 4..7 copy 0..3
    layers[1][4:] = layers[1][:4]
    ta = kernel.prepare(layers)
    order, total = sparse_assignment(ta.masks[0], ta.masks[0], ta.degrees[0], ta.degrees[0])
    assert total == 0.0 and order.tolist() == list(range(8))
    assert nnstd(layers, [m.copy() for m in layers], solver="sparse").tolist() == [0.0, 0.0, 0.0]


# --- whole networks ---------------------------------------------------------------------------------------


def chained_sparse_is_optimal_per_layer(a, b):
    """Replays the sparse chain and checks every layer's value is the optimum given that chain's order."""
    got = nnstd(a, b, solver="sparse")
    order = None
    for k, (layer_a, layer_b) in enumerate(zip(a, b)):
        layer_b = np.asarray(layer_b)[order] if order is not None else np.asarray(layer_b)
        order = check_optimal(layer_a, layer_b)
        cost = mask_costs(layer_a, layer_b)
        assert got[k] == pytest.approx(cost[np.arange(len(order)), order].sum() / len(order), abs=TOLERANCE)
    return got


@pytest.mark.parametrize("sizes", [(8, 8, 8), (40, 12, 9, 5), (25, 30, 30, 3)], ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("density", [0.05, 0.2, 0.6], ids=lambda d: f"p{d}")
def test_networks_every_layer_optimal_layer0_exact(rng, synthetic_network, sizes, density):
    shapes = list(zip(sizes[:-1], sizes[1:]))
    a, b = synthetic_network(rng, shapes, density), synthetic_network(rng, shapes, density)
    got = chained_sparse_is_optimal_per_layer(a, b)
    assert got[0] == pytest.approx(nnstd(a, b)[0], abs=TOLERANCE)


@st.composite
def networks(draw, max_layers=3, max_size=7):
    sizes = draw(st.lists(st.integers(1, max_size), min_size=2, max_size=max_layers + 1))
    shapes = list(zip(sizes[:-1], sizes[1:]))
    return [[draw(hnp.arrays(np.bool_, shape)) for shape in shapes] for _ in range(2)]


@settings(max_examples=80, deadline=None)
@given(networks())
def test_axioms(nets):
    a, b = nets
    d = nnstd(a, b, solver="sparse")
    assert ((d >= 0) & (d <= 1)).all()
    assert d[0] == pytest.approx(nnstd(a, b)[0], abs=TOLERANCE)
    assert d[0] == pytest.approx(nnstd(b, a, solver="sparse")[0], abs=TOLERANCE)
    assert nnstd(a, a, solver="sparse").tolist() == [0.0] * len(a)


def test_paper_networks(paper_reference):
    """Layer 0 of the paper's epoch-0 reference within 1e-12; every deeper layer optimal for its own chain."""
    ref, nets = paper_reference
    for i, j in [(1, 0), (5, 2), (9, 8)]:
        expected = ref["pairs"][f"{i},{j}"]
        got = nnstd(nets[i], nets[j], solver="sparse")
        assert got[0] == pytest.approx(expected[0], abs=TOLERANCE)
        assert got[-1] == expected[-1] == 0.0  # 784 x 10, fully connected
    a, b = [kernel.prepare(n) for n in (nets[3], nets[0])]
    order = None
    got = kernel.nnstd_prepared(a, b, solver="sparse")
    for k in range(3):
        mask_b = b.masks[k][order] if order is not None else b.masks[k]
        cost = kernel.cost_matrix(a.masks[k], mask_b, a.degrees[k], b.degrees[k])
        rows, cols = linear_sum_assignment(cost)
        assert got[k] == pytest.approx(cost[rows, cols].sum() / len(rows), abs=TOLERANCE)
        order, _ = sparse_assignment(a.masks[k], mask_b, a.degrees[k], b.degrees[k])


# --- options -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("solver", kernel.SOLVERS)
def test_max_layer_is_a_prefix(rng, synthetic_network, solver):
    shapes = [(20, 15), (15, 15), (15, 4)]
    a, b = synthetic_network(rng, shapes, 0.3), synthetic_network(rng, shapes, 0.3)
    full = nnstd(a, b, solver=solver)
    for k in range(3):
        assert nnstd(a, b, solver=solver, max_layer=k).tolist() == full[: k + 1].tolist()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"solver": "fast"}, "unknown solver 'fast'"), ({"max_layer": 2}, "max layer 2 out of range"), ({"max_layer": -1}, "out of range")],
)
def test_bad_options(kwargs, message):
    with pytest.raises(InputError, match=message):
        nnstd([np.ones((3, 4)), np.ones((4, 2))], [np.ones((3, 4)), np.ones((4, 2))], **kwargs)
