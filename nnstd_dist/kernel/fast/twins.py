"""Twin classes: hidden neurons of one network with the same input set and the same output set.

Neurons i and i' of layer k are twins when column i of mask k equals column i' (the same inputs) and
row block i of mask k+1 equals row block i' (the same outputs, kernel positions included). Swapping two
twins maps every mask onto itself, so it is an automorphism fixing every other neuron: for the pair's
layer k, C(i, .) = C(i', .), and in layer k+1 the rows of i and i' are the same rows, so A^T B' does not
change. Any choice among twins therefore changes no value, bit for bit, and preserves every label-free
state (twins keep equal colours under any refinement that individualises neither). The last layer's
neurons are labelled outputs, never twins. Classes are grouped by a hash of both sets and then checked
exactly, so a hash collision cannot make two neurons twins.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .hashing import SALT, group_sums, mix

__all__ = ["twin_classes"]


def _sets(indptr: np.ndarray, indices: np.ndarray, neuron: int, block: int) -> np.ndarray:
    return indices[indptr[neuron * block]: indptr[(neuron + 1) * block]]


def twin_classes(masks, blocks=()) -> tuple[np.ndarray, ...]:
    """Per layer, each neuron's twin class (int64; equal ids = twins; the last layer's ids are all distinct)."""
    n_layers = len(masks)
    block = [1] * n_layers if not blocks else [1, *blocks[1:]]
    out = []
    for k in range(n_layers - 1):
        csc = sp.csc_matrix(masks[k])
        csc.sort_indices()
        nxt = sp.csr_matrix(masks[k + 1])
        nxt.sort_indices()
        b, n_next = block[k + 1], nxt.shape[1]
        # an out-connection is (kernel position, neuron of layer k+1), so blocks compare position by position
        positions = np.repeat(np.arange(nxt.shape[0], dtype=np.int64), np.diff(nxt.indptr)) % b
        out_keys = positions * n_next + nxt.indices
        with np.errstate(over="ignore"):
            hash_in = group_sums(mix(csc.indices.astype(np.uint64) + SALT["twin-in"]), csc.indptr)
            hash_out = group_sums(mix(out_keys.astype(np.uint64) + SALT["twin-out"]), nxt.indptr[::b])
        with np.errstate(over="ignore"):
            signature = mix(mix(hash_in + np.diff(csc.indptr).astype(np.uint64)) + hash_out)
        _, ids = np.unique(signature, return_inverse=True)
        ids = ids.reshape(-1).astype(np.int64)
        out.append(_checked(ids, csc, nxt.indptr, out_keys, b))
    out.append(np.arange(masks[-1].shape[1], dtype=np.int64))
    return tuple(out)


def _checked(ids: np.ndarray, csc, out_ptr, out_keys, block: int) -> np.ndarray:
    """Split any hash group whose members' sets are not all equal (a 64-bit collision) by the exact sets."""
    counts = np.bincount(ids)
    next_id = ids.max() + 1 if ids.size else 0
    for group in np.flatnonzero(counts > 1):
        members = np.flatnonzero(ids == group)
        exact: dict[tuple, list[int]] = {}
        for m in members:
            key = (_sets(csc.indptr, csc.indices, m, 1).tobytes(), _sets(out_ptr, out_keys, m, block).tobytes())
            exact.setdefault(key, []).append(int(m))
        for extra in list(exact.values())[1:]:
            ids[extra] = next_id
            next_id += 1
    return ids
