"""A pair's computation: canonical orientation, the state that individualisation changes, the layers in turn."""

from __future__ import annotations

import numpy as np

from .certify import is_orbit
from .colours import individualise, refine_jointly
from .hashing import SALT, mix
from .layer import choose_layer
from .network import FastNetwork
from .part import Cell
from .version import FAST_ALGORITHMS

__all__ = ["PairState", "oriented", "fast_orders", "nnstd_fast"]


class PairState:
    """Both networks (A first), their current colours (individualisations included) and whether every choice so far was
    certified (certify.py)."""

    def __init__(self, a: FastNetwork, b: FastNetwork):
        self.a, self.b = a, b
        self.colours_a, self.colours_b = list(a.colours), list(b.colours)
        self.sequence = 0
        self.certified = True

    def individualise(self, k: int, cell: Cell) -> None:
        """Pair A's ``cell.i`` with B's ``cell.j`` of layer k: one fresh shared colour, both refined again.

        Certified when both cells are orbits (tested only while the pair is still certified: the first uncertified
        choice decides). When both neurons were alone in their colour within their layer, the partitions do not change
        and refinement is skipped (a label-free shortcut: only the shared colour's value is new)."""
        if self.certified:
            self.certified = (not cell.ambiguous and is_orbit(self.a, self.colours_a, k, cell.cell_a)
                              and is_orbit(self.b, self.colours_b, k, cell.cell_b))
        with np.errstate(over="ignore"):
            fresh = mix(np.uint64(self.sequence) + SALT["fresh"])
        self.sequence += 1
        colours_a, colours_b = individualise(self.colours_a, k, cell.i, fresh), individualise(self.colours_b, k, cell.j, fresh)
        if _shares_colour(self.colours_a[k], cell.i) or _shares_colour(self.colours_b[k], cell.j):
            (colours_a, colours_b), _ = refine_jointly([self.a.wiring, self.b.wiring], [colours_a, colours_b])
        self.colours_a, self.colours_b = colours_a, colours_b


def _shares_colour(colours: np.ndarray, neuron: int) -> bool:
    return np.count_nonzero(colours == colours[neuron]) > 1


def oriented(a: FastNetwork, b: FastNetwork) -> bool:
    """Whether (B, A) is the canonical orientation: ordered by the label-free invariant, then by the labelled digest."""
    return (b.invariant, b.digest) < (a.invariant, a.digest)


def _block_rows(order: np.ndarray, block: int) -> np.ndarray:
    return (order[:, None] * block + np.arange(block)).ravel()


def fast_orders(a: FastNetwork, b: FastNetwork, blocks, n_layers: int, algorithm: str = "auto"):
    """(orders, values, certified) of the rule in the orientation given (no canonical swap): orders[k][i] is the neuron
    of the second network matched to neuron i of the first in layer k (None where the layer needed no matching)."""
    if algorithm != "auto" and algorithm not in FAST_ALGORITHMS:
        raise ValueError(f"unknown fast algorithm {algorithm!r}; choose one of auto, {', '.join(FAST_ALGORITHMS)}")
    state = PairState(a, b)
    values, orders = np.zeros(n_layers), []
    rowmap = np.arange(a.layers[0].ptr.size - 1, dtype=np.int64)
    for k in range(n_layers):
        if k == len(a.layers) - 1 and a.layers[k].full and b.layers[k].full:
            orders.append(None)
            break  # every cost is 0 and no later layer needs the matching: distance 0
        if k:
            rowmap = _block_rows(orders[-1], blocks[k] if blocks else 1)
        order, values[k] = choose_layer(state, k, rowmap, algorithm)
        orders.append(order)
    return orders, values, state.certified


def nnstd_fast(a: FastNetwork, b: FastNetwork, blocks, n_layers: int, algorithm: str = "auto") -> tuple[np.ndarray, bool]:
    """(layers 0..n_layers-1 of NNSTD(A, B), certified) under the rule, computed in the canonical orientation, so that
    NNSTD(B, A) returns the same bits; ``blocks[k]``: rows of layer k per neuron of layer k-1."""
    if oriented(a, b):
        a, b = b, a
    _, values, certified = fast_orders(a, b, blocks, n_layers, algorithm)
    return values, certified
