"""One network as the fast solver reads it, built once per network: compiled arrays, stable colours, twins, invariants."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from .colours import MIN_ROUNDS_PER_LAYER, Wiring, colour_invariant, initial_colours, refine_jointly, wiring
from .dense_counts import dense_mask
from .twins import twin_classes

__all__ = ["FastLayer", "FastNetwork", "fast_network"]


@dataclass(frozen=True)
class FastLayer:
    """One layer as the compiled code reads it."""

    n_out: int
    t_ptr: np.ndarray  # A^T as CSR: each output neuron's input rows (int64)
    t_idx: np.ndarray
    ptr: np.ndarray  # the mask as CSR: each input row's output neurons (int64)
    idx: np.ndarray
    degree: np.ndarray  # in-degrees, float64 (exact counts)
    key1: np.ndarray  # in-degree * 2^32 + out-degree of each output neuron (int64): the start of its key
    full: bool  # every input connects to every output
    dense: np.ndarray | None  # the mask as dense float32 where a BLAS product may count shared inputs (dense_counts.py)


@dataclass(frozen=True)
class FastNetwork:
    """The layers, the masks and blocks (for automorphism checks), the stable colouring and what orders a pair."""

    layers: tuple[FastLayer, ...]
    masks: tuple
    blocks: tuple[int, ...]
    wiring: Wiring
    colours: tuple[np.ndarray, ...]  # per layer, each output neuron's stable colour (uint64; the outputs' labels last)
    twins: tuple[np.ndarray, ...]  # per layer, twin class ids (twins.py)
    invariant: bytes  # label-free: equal for isomorphic networks (colours.colour_invariant)
    digest: bytes  # of the labelled masks: equal only for identical networks


def _digest(masks) -> bytes:
    digest = hashlib.sha256()
    for m in masks:
        digest.update(np.array(m.shape, np.int64).tobytes())
        digest.update(m.indptr.astype(np.int64).tobytes())
        digest.update(m.indices.astype(np.int64).tobytes())
    return digest.digest()


def fast_network(masks, transposed, degrees, blocks=()) -> FastNetwork:
    """Everything per network the fast solver needs (masks: CSR with sorted indices, as distance.prepare makes them)."""
    w = wiring(masks, blocks)
    (colours,), rounds = refine_jointly([w], [initial_colours(w)], MIN_ROUNDS_PER_LAYER * len(masks))
    block = [1] * len(masks) if not blocks else [1, *blocks[1:]]
    layers = []
    for k, (m, t, d) in enumerate(zip(masks, transposed, degrees)):
        in_degree = np.diff(t.indptr).astype(np.int64)
        out_degree = np.diff(masks[k + 1].indptr[:: block[k + 1]]).astype(np.int64) if k + 1 < len(masks) else np.zeros(m.shape[1], np.int64)
        layers.append(FastLayer(m.shape[1], t.indptr.astype(np.int64), t.indices.astype(np.int64), m.indptr.astype(np.int64),
                                m.indices.astype(np.int64), np.asarray(d, np.float64), in_degree * 2**32 + out_degree,
                                m.nnz == m.shape[0] * m.shape[1], dense_mask(m)))
    return FastNetwork(tuple(layers), tuple(masks), tuple(blocks), w, tuple(colours), twin_classes(masks, blocks),
                       colour_invariant(colours, rounds), _digest(masks))
