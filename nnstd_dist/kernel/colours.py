"""Label-free colours of a network's neurons (colour refinement, 1-WL), the fast solver's tie-breaker.

The network is a layered graph: input rows, then each layer's output neurons. Inputs and the last
layer's outputs carry fixed labels (their index: input r of every network is the same input, output j
the same class); hidden neurons start alike. A round replaces every hidden neuron's colour by a hash
of its colour, the multiset of its in-neighbours' colours and the multiset of its out-neighbours'
colours (a convolution's kernel position is part of each connection's contribution). Multisets are
hashed as sums of mixed 64-bit values mod 2^64, so a colour does not depend on any hidden neuron's
index, and colours of two networks compare: equal colours mean equal refined neighbourhoods (up to
a 64-bit hash collision). ``ROUNDS_PER_LAYER`` x layers rounds are run, the same for every network of a
shape, so that a neuron's colour sees both ends of the network.

Two neurons of one network with the same colour are in practice interchangeable (an automorphism of the
network fixing inputs and outputs swaps them); colour refinement cannot tell every pair of
non-interchangeable neurons apart (e.g. in regular structures), and that is where the fast solver's
invariance rests on this assumption.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["ROUNDS_PER_LAYER", "NeuronColours", "refine"]

ROUNDS_PER_LAYER = 2
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_SALT = {name: np.uint64(s) for name, s in (("input", 0x51A7), ("output", 0x07E7), ("hidden", 0x41D3),
                                              ("in", 0x1A55), ("out", 0x0B0B), ("pos", 0x9051))}


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser on uint64 arrays (the same bijection as fast_graph.mix)."""
    with np.errstate(over="ignore"):
        z = np.asarray(x, dtype=np.uint64) + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


class NeuronColours:
    """Per layer k: the colours, in-degrees and out-degrees of layer k's output neurons (uint64, int64, int64)."""

    def __init__(self, colours, in_degrees, out_degrees):
        self.colours, self.in_degrees, self.out_degrees = tuple(colours), tuple(in_degrees), tuple(out_degrees)


def _group_sums(values: np.ndarray, indptr: np.ndarray) -> np.ndarray:
    """Sum (mod 2^64) of values[indptr[g]:indptr[g + 1]] for every group g."""
    total = np.zeros(len(values) + 1, dtype=np.uint64)
    np.cumsum(values, dtype=np.uint64, out=total[1:])
    with np.errstate(over="ignore"):
        return total[indptr[1:]] - total[indptr[:-1]]


def _position_salt(rows: np.ndarray, block: int) -> np.ndarray:
    return _mix((rows % block).astype(np.uint64) + _SALT["pos"]) if block > 1 else np.zeros(len(rows), np.uint64)


def _in_sums(csc: sp.csc_matrix, row_colours: np.ndarray, block: int) -> np.ndarray:
    """Per output neuron: the hashed multiset of (input neuron's colour, kernel position) over its connections."""
    rows = csc.indices.astype(np.int64)
    with np.errstate(over="ignore"):
        values = _mix(row_colours[rows // block] + _position_salt(rows, block) + _SALT["in"])
    return _group_sums(values, csc.indptr)


def _out_sums(csr: sp.csr_matrix, next_colours: np.ndarray, block: int) -> np.ndarray:
    """Per neuron of the layer below (block of ``block`` rows of ``csr``): the hashed multiset of its out-connections."""
    rows = np.repeat(np.arange(csr.shape[0], dtype=np.int64), np.diff(csr.indptr))
    with np.errstate(over="ignore"):
        values = _mix(next_colours[csr.indices] + _position_salt(rows, block) + _SALT["out"])
    return _group_sums(values, csr.indptr[::block])


def refine(masks, blocks=()) -> NeuronColours:
    """Colours of every layer's output neurons after ``ROUNDS_PER_LAYER * len(masks)`` rounds (see the module docstring)."""
    n_layers = len(masks)
    block = [1] * n_layers if not blocks else [1, *blocks[1:]]
    csc = [m.tocsc() for m in masks]
    for m in csc:
        m.sort_indices()
    inputs = _mix(np.arange(masks[0].shape[0], dtype=np.uint64) + _SALT["input"])
    outputs = _mix(np.arange(masks[-1].shape[1], dtype=np.uint64) + _SALT["output"])
    colours = [np.full(m.shape[1], _mix(np.uint64(k) + _SALT["hidden"]), np.uint64) for k, m in enumerate(masks[:-1])]
    colours.append(outputs)
    for _ in range(ROUNDS_PER_LAYER * n_layers):
        fresh = []
        for k in range(n_layers - 1):
            below = inputs if k == 0 else colours[k - 1]
            in_sum = _in_sums(csc[k], below, 1 if k == 0 else block[k])
            out_sum = _out_sums(masks[k + 1], colours[k + 1], block[k + 1])
            with np.errstate(over="ignore"):
                fresh.append(_mix(_mix(_mix(colours[k]) + in_sum) + out_sum))
        colours[: n_layers - 1] = fresh
    in_degrees = [np.diff(m.indptr).astype(np.int64) for m in csc]
    out_degrees = [np.diff(np.asarray(masks[k + 1].indptr[:: block[k + 1]])).astype(np.int64) for k in range(n_layers - 1)]
    out_degrees.append(np.zeros(masks[-1].shape[1], np.int64))
    return NeuronColours(colours, in_degrees, out_degrees)
