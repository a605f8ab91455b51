"""Label-free colours of neurons by colour refinement (1-WL) run to a stable partition, per network or jointly for a pair.

The network is a layered graph: input rows, then each layer's output neurons. Inputs and the last
layer's outputs carry fixed labels (their index: input r of every network is the same input, output j
the same class); hidden neurons start with one colour per layer. A round replaces every hidden
neuron's colour c by mix(mix(mix(c) + in) + out), where in and out hash the multisets of its in- and
out-neighbours' colours (sums of mixed values mod 2^64, a convolution's kernel position salted into each
connection). The old colour is hashed in, so a round only splits colour classes (up to 64-bit
collisions); a round that splits none leaves an equitable (stable) partition, which no further round
changes. Rounds run until the number of colours stops growing, and at least ``MIN_ROUNDS_PER_LAYER``
per layer, so that networks that stabilise early (most) ran the same number of rounds and their colours
compare: equal colours then mean equal refined neighbourhoods. Networks needing more rounds get
colours that are still label-free (a preference, not an identity); isomorphic networks always run the
same rounds and get the same colours. A round costs O(connections + neurons log neurons) in numpy.

``individualise`` gives one neuron of A and one of B a fresh shared colour (a hash of the individualisation's
sequence number within the pair, so still label-free); ``refine_jointly`` then refines both, the same
number of rounds, until neither's partition splits (McKay and Piperno's individualisation-refinement,
applied to the pair).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .hashing import SALT, group_sums, mix

__all__ = ["MIN_ROUNDS_PER_LAYER", "Wiring", "wiring", "initial_colours", "refine_jointly", "individualise", "colour_invariant"]

MIN_ROUNDS_PER_LAYER = 2


@dataclass(frozen=True)
class Wiring:
    """What a round reads, per hidden layer k (outputs of layers 0..L-2): its in-edges and out-edges, salted."""

    sizes: tuple[int, ...]  # output neurons of every layer
    inputs: np.ndarray  # fixed colours of the input rows
    outputs: np.ndarray  # fixed colours of the last layer's neurons
    in_ptr: tuple[np.ndarray, ...]  # CSC of mask k: each neuron's in-edges
    in_from: tuple[np.ndarray, ...]  # the neuron below each in-edge comes from (an input row for k = 0)
    in_salt: tuple[np.ndarray, ...]
    out_ptr: tuple[np.ndarray, ...]  # rows of mask k+1 grouped by neuron of layer k (a block of rows each)
    out_to: tuple[np.ndarray, ...]  # the neuron of layer k+1 each out-edge goes to
    out_salt: tuple[np.ndarray, ...]


def _position_salt(rows: np.ndarray, block: int) -> np.ndarray:
    return mix((rows % block).astype(np.uint64) + SALT["pos"]) if block > 1 else np.zeros(len(rows), np.uint64)


def wiring(masks, blocks=()) -> Wiring:
    """The round's arrays of a network (``blocks[k]``: rows of layer k per neuron of layer k-1; () = all 1)."""
    n_layers = len(masks)
    block = [1] * n_layers if not blocks else [1, *blocks[1:]]
    csc = [sp.csc_matrix(m) for m in masks]
    csr = [sp.csr_matrix(m) for m in masks]
    for m in csc + csr:
        m.sort_indices()
    in_ptr, in_from, in_salt, out_ptr, out_to, out_salt = [], [], [], [], [], []
    for k in range(n_layers - 1):
        rows = csc[k].indices.astype(np.int64)
        b = block[k]
        in_ptr.append(csc[k].indptr.astype(np.int64))
        in_from.append(rows // b)
        with np.errstate(over="ignore"):
            in_salt.append(_position_salt(rows, b) + SALT["in"])
        nxt, b = csr[k + 1], block[k + 1]
        next_rows = np.repeat(np.arange(nxt.shape[0], dtype=np.int64), np.diff(nxt.indptr))
        out_ptr.append(nxt.indptr[::b].astype(np.int64))
        out_to.append(nxt.indices.astype(np.int64))
        with np.errstate(over="ignore"):
            out_salt.append(_position_salt(next_rows, b) + SALT["out"])
    return Wiring(tuple(m.shape[1] for m in masks), mix(np.arange(masks[0].shape[0], dtype=np.uint64) + SALT["input"]),
                  mix(np.arange(masks[-1].shape[1], dtype=np.uint64) + SALT["output"]),
                  *(tuple(x) for x in (in_ptr, in_from, in_salt, out_ptr, out_to, out_salt)))


def initial_colours(w: Wiring) -> list[np.ndarray]:
    """One colour per hidden layer (the layer's number hashed), the outputs' fixed labels last."""
    hidden = [np.full(n, mix(np.uint64(k) + SALT["hidden"]), np.uint64) for k, n in enumerate(w.sizes[:-1])]
    return [*hidden, w.outputs]


def _round(w: Wiring, colours: list[np.ndarray]) -> list[np.ndarray]:
    fresh = []
    for k in range(len(w.sizes) - 1):
        below = w.inputs if k == 0 else colours[k - 1]
        with np.errstate(over="ignore"):
            in_sum = group_sums(mix(below[w.in_from[k]] + w.in_salt[k]), w.in_ptr[k])
            out_sum = group_sums(mix(colours[k + 1][w.out_to[k]] + w.out_salt[k]), w.out_ptr[k])
            fresh.append(mix(mix(mix(colours[k]) + in_sum) + out_sum))
    return [*fresh, colours[-1]]


def _count(colours: list[np.ndarray]) -> int:
    return sum(np.unique(c).size for c in colours[:-1])


def refine_jointly(wirings, colourings, min_rounds: int = 1) -> tuple[list[list[np.ndarray]], int]:
    """Refine every colouring with its wiring, all the same number of rounds, until no partition splits any more
    (and at least ``min_rounds``); returns the colourings and the rounds run."""
    colourings = [list(c) for c in colourings]
    counts = [_count(c) for c in colourings] if min_rounds <= 1 else None
    rounds = 0
    while True:
        colourings = [_round(w, c) for w, c in zip(wirings, colourings)]
        rounds += 1
        if rounds < min_rounds - 1:
            continue  # no stop before min_rounds: colours need not be counted yet
        fresh = [_count(c) for c in colourings]
        grew = counts is None or any(new > old for new, old in zip(fresh, counts))
        counts = fresh
        if rounds >= min_rounds and not grew:
            return colourings, rounds


def individualise(colours: list[np.ndarray], layer: int, neuron: int, fresh: np.uint64) -> list[np.ndarray]:
    """A copy of ``colours`` in which ``neuron`` of ``layer`` has the colour ``fresh``, which no other neuron has.

    The same ``fresh`` goes to the A and the B neuron of a matched pair, whatever their colours were, so that
    refinement sees them as the same neuron from then on."""
    out = list(colours)
    out[layer] = colours[layer].copy()
    out[layer][neuron] = fresh
    return out


def colour_invariant(colours: list[np.ndarray], rounds: int) -> bytes:
    """A digest of every layer's sorted colours and the rounds run: equal for isomorphic networks, label-free."""
    digest = hashlib.sha256(np.int64(rounds).tobytes())
    for c in colours:
        digest.update(np.sort(c).tobytes())
    return digest.digest()
