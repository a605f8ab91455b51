"""Convolutional layers: weights -> block masks, a set-based oracle on small CNNs, and NNSTD's axioms for CNNs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment

from _oracle import input_sets, oracle_cnn
from nnstd_dist.errors import InputError
from nnstd_dist.kernel.distance import nnstd, nnstd_prepared, prepare
from nnstd_dist.sources.param_layers import LayerSpec, ParamFilter, select_weights, weights_to_layers

def kernel_cnn(weights_a, weights_b) -> list[float]:
    masks_a, specs_a = weights_to_layers([(f"l{k}.weight", w) for k, w in enumerate(weights_a)])
    masks_b, specs_b = weights_to_layers([(f"l{k}.weight", w) for k, w in enumerate(weights_b)])
    return nnstd_prepared(prepare(masks_a, [s.block for s in specs_a]), prepare(masks_b, [s.block for s in specs_b])).tolist()


def random_cnn(rng, channels=(3, 6, 5, 4), kernels=((3, 3), (3, 3), (1, 2)), spatial=4, classes=3, density=0.3):
    """Conv weights (out, in, *kernel) for each kernel, then a linear head over `spatial` positions per channel."""
    weights = [rng.random((channels[k + 1], channels[k], *kernels[k])) < density for k in range(len(kernels))]
    head = rng.random((classes, channels[len(kernels)] * spatial)) < density
    return [w * rng.normal(size=w.shape) for w in weights] + [head * rng.normal(size=head.shape)]


CNNS = {
    "conv2d": dict(),
    "conv1d": dict(channels=(2, 5, 4), kernels=((3,), (5,)), spatial=6),
    "conv3d": dict(channels=(1, 4, 3), kernels=((2, 2, 2), (1, 3, 2)), spatial=2),
    "1x1-then-pooled-head": dict(channels=(4, 6, 6), kernels=((1, 1), (3, 3)), spatial=1),
    "dense": dict(density=0.9),
    "very-sparse": dict(density=0.05),
}


@pytest.mark.parametrize("shape", CNNS)
def test_kernel_matches_set_oracle_on_small_cnns(shape):
    rng = np.random.default_rng(len(shape))
    for _ in range(5):
        a, b = random_cnn(rng, **CNNS[shape]), random_cnn(rng, **CNNS[shape])
        assert kernel_cnn(a, b) == oracle_cnn(a, b)


def test_blocks_of_one_row_are_the_paper_rule(rng, synthetic_network):
    shapes = [(30, 20), (20, 15), (15, 4)]
    a, b = synthetic_network(rng, shapes, 0.3), synthetic_network(rng, shapes, 0.3)
    assert nnstd(a, b, blocks=[1, 1, 1]).tolist() == nnstd(a, b).tolist()
    # the same masks as PyTorch linear weights (out, in): same layers, blocks of one
    masks, specs = weights_to_layers([(f"fc{k}.weight", m.T) for k, m in enumerate(a)])
    assert [s.block for s in specs] == [1, 1, 1]
    assert all((m.toarray() == layer).all() for m, layer in zip(masks, a))


# --- axioms on random sparse CNNs ------------------------------------------------------------------------


@st.composite
def cnn_pairs(draw, count=2):
    """`count` random sparse CNNs of one random architecture: 1-3 convs of 1-D or 2-D kernels, then a linear head."""
    n_conv = draw(st.integers(1, 3))
    dims = draw(st.integers(1, 2))
    channels = [draw(st.integers(1, 4)) for _ in range(n_conv + 1)]
    kernels = [tuple(draw(st.integers(1, 3)) for _ in range(dims)) for _ in range(n_conv)]
    spatial, classes = draw(st.integers(1, 3)), draw(st.integers(1, 4))
    seed, density = draw(st.integers(0, 2**32 - 1)), draw(st.sampled_from([0.1, 0.3, 0.6, 1.0]))
    rng = np.random.default_rng(seed)
    return [random_cnn(rng, channels, kernels, spatial, classes, density) for _ in range(count)]


@settings(max_examples=60, deadline=None)
@given(cnn_pairs(count=1))
def test_cnn_against_itself_is_zero(nets):
    (a,) = nets
    assert kernel_cnn(a, a) == [0.0] * len(a)


@settings(max_examples=60, deadline=None)
@given(cnn_pairs())
def test_cnn_distances_in_unit_interval_and_oracle(nets):
    a, b = nets
    got = kernel_cnn(a, b)
    assert all(0.0 <= d <= 1.0 for d in got)
    assert got == oracle_cnn(a, b)


def permute_channels(weights, k: int, perm: np.ndarray):
    """The same CNN with conv k's output channels relabelled: its rows, and the matching inputs of layer k+1."""
    weights = [np.array(w) for w in weights]
    weights[k] = weights[k][perm]
    nxt = weights[k + 1]
    if nxt.ndim > 2:
        weights[k + 1] = nxt[:, perm]
    else:  # a linear head: whole channel-major blocks of inputs
        c = len(perm)
        weights[k + 1] = nxt.reshape(nxt.shape[0], c, -1)[:, perm].reshape(nxt.shape[0], -1)
    return weights


def distinct_input_sets(weights) -> bool:
    prev = None
    for w in weights[:-1]:
        sets = [frozenset(s) for s in input_sets(w, prev)]
        if len(set(sets)) != len(sets):
            return False
        prev = w.shape[0]
    return True


@settings(max_examples=80, deadline=None)
@given(cnn_pairs(), st.integers(0, 2**32 - 1))
def test_permuting_channels_and_their_input_blocks_changes_nothing(nets, seed):
    a, b = nets
    rng = np.random.default_rng(seed)
    relabelled = b
    for k in range(len(b) - 1):
        relabelled = permute_channels(relabelled, k, rng.permutation(b[k].shape[0]))
    if distinct_input_sets(b):  # the matching of B to its relabelled copy is unique: exactly 0 on every layer
        assert kernel_cnn(b, relabelled) == [0.0] * len(b)
    # To any other network: bit for bit up to the first layer whose optimal matching is not unique
    # (a tie may then be broken another way); that layer's optimum is still the same.
    costs = []
    oracle_cnn(a, b, costs)
    tie = next((k for k, cost in enumerate(costs) if not unique_optimum(cost)), len(costs))
    got, expected = kernel_cnn(a, relabelled), kernel_cnn(a, b)
    assert got[:tie] == expected[:tie]
    if tie < len(costs):
        assert got[tie] == pytest.approx(expected[tie], abs=1e-12)


def unique_optimum(cost: np.ndarray) -> bool:
    """Whether no other assignment reaches the optimum: forbid each optimal pair in turn and solve again."""
    rows, cols = linear_sum_assignment(cost)
    best = cost[rows, cols].sum()
    for i, j in zip(rows, cols):
        forbidden = cost.copy()
        forbidden[i, j] = 1e9
        r, c = linear_sum_assignment(forbidden)
        if forbidden[r, c].sum() <= best + 1e-9:
            return False
    return True


# --- weights -> layers ---------------------------------------------------------------------------------


def test_conv_mask_layout_and_blocks():
    conv1 = np.zeros((4, 2, 3, 3))
    conv1[1, 0, 2, 1] = conv1[3, 1, 0, 0] = 0.5
    conv2, head = np.ones((5, 4, 2, 2)), np.ones((7, 5 * 6))
    masks, specs = weights_to_layers([("c1.weight", conv1), ("c2.weight", conv2), ("fc.weight", head)])
    assert [m.shape for m in masks] == [(18, 4), (16, 5), (30, 7)]
    assert specs == [LayerSpec("c1.weight", (4, 2, 3, 3), 9), LayerSpec("c2.weight", (5, 4, 2, 2), 4), LayerSpec("fc.weight", (7, 30), 6)]
    # row = channel * kh*kw + ky * kw + kx, column = output channel
    assert sorted(zip(*masks[0].nonzero())) == [(0 * 9 + 2 * 3 + 1, 1), (1 * 9 + 0, 3)]


def test_in_out_orientation_is_the_transposed_layout(rng):
    weights = random_cnn(rng)
    out_in = weights_to_layers([(f"w{k}", w) for k, w in enumerate(weights)], "out-in")
    in_out = weights_to_layers([(f"w{k}", np.transpose(w, (*range(2, w.ndim), 1, 0))) for k, w in enumerate(weights)], "in-out")
    assert [m.toarray().tolist() for m in out_in[0]] == [m.toarray().tolist() for m in in_out[0]]
    assert [s.block for s in out_in[1]] == [s.block for s in in_out[1]]


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        pytest.param(
            [("stem.weight", np.ones((8, 3, 3, 3))), ("dw.weight", np.ones((8, 1, 3, 3)))],
            r"'dw.weight': its 1 input channels are not the 8 outputs of 'stem.weight' \(a grouped or depthwise.*`exclude_params` 'dw.weight'",
            id="depthwise",
        ),
        pytest.param(
            [("layer1.conv.weight", np.ones((16, 8, 3, 3))), ("layer2.downsample.0.weight", np.ones((32, 8, 1, 1)))],
            r"'layer2.downsample.0.weight'.*ResNet downsample shortcut\); leave it out with `exclude_params`",
            id="downsample",
        ),
        pytest.param(
            [("conv.weight", np.ones((6, 3, 3, 3))), ("fc.weight", np.ones((4, 20)))],
            r"'fc.weight': its 20 inputs are not a whole number of rows for each of the 6 channels", id="flatten-mismatch",
        ),
        pytest.param([("a.weight", np.ones((4, 3))), ("b.weight", np.ones((2, 5)))], r"'b.weight': its 5 input neurons are not the 4 outputs", id="linear-chain"),
        pytest.param([("a.weight", np.array([[np.nan, 1.0]]))], "contains NaN", id="nan"),
        pytest.param([("a.weight", np.ones((0, 3)))], "empty shape", id="empty"),
    ],
)
def test_layers_that_do_not_chain_are_named(weights, message):
    with pytest.raises(InputError, match=message):
        weights_to_layers(weights, where="net.pt")


def test_blocks_must_tile_the_rows():
    masks = [np.ones((4, 2)), np.ones((8, 3))]
    assert prepare(masks, blocks=[9, 4]).blocks == (1, 4)  # the first layer's block is never used
    with pytest.raises(InputError, match=r"layer 1: 8 input rows but layer 0 has 2 output columns \(3 rows per output\)"):
        prepare(masks, blocks=[1, 3])
    with pytest.raises(InputError, match="one positive row count per layer"):
        prepare(masks, blocks=[1])


# --- which parameters are layers ------------------------------------------------------------------------


class Shape:
    """A tensor stand-in: select_weights reads names and shapes only."""

    def __init__(self, *shape):
        self.shape, self.ndim = shape, len(shape)


STATE = [
    ("features.0.weight", Shape(8, 3, 3, 3)), ("features.0.bias", Shape(8)),
    ("features.1.weight", Shape(8)), ("features.1.running_mean", Shape(8)), ("features.1.num_batches_tracked", Shape()),
    ("features.3.bias", Shape(16)), ("features.3.weight_orig", Shape(16, 8, 3, 3)), ("features.3.weight_mask", Shape(16, 8, 3, 3)),
    ("embed.positions", Shape(5, 5)),
    ("classifier.weight", Shape(10, 64)), ("classifier.bias", Shape(10)),
]


def test_default_layers_are_weights_of_two_or_more_dims_pruned_masks_included():
    chosen = select_weights(STATE)
    assert [name for name, _ in chosen] == ["features.0.weight", "features.3.weight", "classifier.weight"]
    assert chosen[1][1] is STATE[7][1]  # the pruning mask, not weight_orig


def test_include_and_exclude_globs():
    chosen = select_weights(STATE, ParamFilter(exclude=("classifier.*",)))
    assert [name for name, _ in chosen] == ["features.0.weight", "features.3.weight"]
    chosen = select_weights(STATE, ParamFilter(include=("features.*.weight", "embed.*")))
    assert [name for name, _ in chosen] == ["features.0.weight", "features.3.weight", "embed.positions"]
    chosen = select_weights(STATE, ParamFilter(include=("features.*",)))  # 1-D tensors never are layers
    assert [name for name, _ in chosen] == ["features.0.weight", "features.3.weight"]
    with pytest.raises(InputError, match="no layers among the parameters.*`include_params`"):
        select_weights(STATE, ParamFilter(include=("nothing*",)))


def test_pruning_mask_is_the_topology():
    weight_orig = np.ones((3, 4))  # every weight non-zero: only the mask says what is pruned
    mask = np.eye(3, 4)
    chosen = select_weights([("fc.weight_orig", weight_orig), ("fc.bias", np.ones(3)), ("fc.weight_mask", mask)])
    masks, specs = weights_to_layers(chosen)
    assert specs == [LayerSpec("fc.weight", (3, 4), 1)]
    assert (masks[0].toarray() == mask.T.astype(bool)).all()


def test_block_count_matches_kernel_elements():
    for kernel in [(1,), (3,), (3, 3), (2, 3, 4)]:
        _, specs = weights_to_layers([("a", np.ones((2, 3, *kernel))), ("b", np.ones((4, 2, *kernel)))])
        assert specs[1].block == math.prod(kernel)
