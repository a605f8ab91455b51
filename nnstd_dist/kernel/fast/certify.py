"""Proofs that a cell of neurons is one orbit, so that picking any member of it gives the same distances.

The group: automorphisms of one network that fix every input, every output and every neuron of the
layers before layer k, and preserve the current colours (so also every neuron already individualised,
and everything the pair's state is built from). A cell of layer-k neurons is certified as one orbit by
(a) all members being mutual twins (twins.py: a swap of two twins is such an automorphism), or
(b) individualisation-refinement: the layers before k are individualised pointwise (each neuron its own
colour, the same in every run), then for the reference member r (the cell's first) and for each other
member m the network is refined with that member individualised, r's and m's runs the same rounds. If every
colour class of both runs with more than one neuron consists of mutual twins, the map sigma sending each
of r's classes to m's class of the same colour (members in index order) is a candidate; it is checked to
fix the layers before k, to preserve the current colours and to map every mask onto itself, in
O(connections log connections). All members pass => every member is the image of r under an automorphism
of the group => the cell is one orbit. A failed test proves nothing, so it only costs the certificate. The
outcome does not depend on neuron numbers: if the cell is an orbit, every member's run is the image of r's
under an automorphism, so either all pass or all leave the same non-twin classes; if it is not, no sigma
can pass. Cells above ``MAX_CELL`` neurons are not tested (uncertified), a label-free cap on the work.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .colours import refine_jointly
from .hashing import SALT, mix

__all__ = ["MAX_CELL", "is_orbit"]

MAX_CELL = 32


def is_orbit(net, colours: list[np.ndarray], layer: int, cell: np.ndarray) -> bool:
    """Whether the layer-``layer`` neurons ``cell`` of network ``net`` (a FastNetwork) are one orbit of the group above."""
    cell = np.sort(np.asarray(cell, np.int64))
    if cell.size <= 1:
        return True
    twins = net.twins[layer]
    if (twins[cell] == twins[cell[0]]).all():
        return True
    if cell.size > MAX_CELL:
        return False
    fixed = list(colours)
    for k in range(layer):  # the layers already matched are fixed pointwise: each neuron its own colour
        with np.errstate(over="ignore"):
            fixed[k] = mix(mix(colours[k]) + mix(np.arange(colours[k].size, dtype=np.uint64) + SALT["fixed"]))
    member = mix(np.uint64(0) + SALT["member"])

    def pinned(m):
        out = list(fixed)
        out[layer] = fixed[layer].copy()
        out[layer][m] = member
        return out

    for m in cell[1:]:
        (ref, other), _ = refine_jointly([net.wiring, net.wiring], [pinned(cell[0]), pinned(m)])
        sigma = _candidate(ref, other, net.twins)
        if sigma is None or not _is_automorphism(net, colours, sigma, layer):
            return False
    return True


def _candidate(ref: list[np.ndarray], other: list[np.ndarray], twins) -> list[np.ndarray] | None:
    """sigma per hidden layer (ref's neuron -> other's neuron of the same colour), or None if a class is not twins."""
    sigma = []
    for c_ref, c_other, tw in zip(ref[:-1], other[:-1], twins):
        by_ref, by_other = np.lexsort((np.arange(c_ref.size), c_ref)), np.lexsort((np.arange(c_other.size), c_other))
        if not np.array_equal(c_ref[by_ref], c_other[by_other]):
            return None
        for colours, order in ((c_ref, by_ref), (c_other, by_other)):
            sorted_colours, sorted_twins = colours[order], tw[order]
            same_class = sorted_colours[1:] == sorted_colours[:-1]
            if (sorted_twins[1:][same_class] != sorted_twins[:-1][same_class]).any():
                return None
        s = np.empty(c_ref.size, np.int64)
        s[by_ref] = by_other
        sigma.append(s)
    return sigma


def _is_automorphism(net, colours, sigma: list[np.ndarray], layer: int) -> bool:
    """sigma fixes layers < ``layer``, keeps every neuron's current colour and maps every mask onto itself."""
    for k in range(layer):
        if not np.array_equal(sigma[k], np.arange(sigma[k].size)):
            return False
    for k, s in enumerate(sigma):
        if not np.array_equal(colours[k][s], colours[k]):
            return False
    n_layers = len(net.masks)
    for k, mask in enumerate(net.masks):
        coo = sp.coo_matrix(mask)
        rows, cols = coo.row.astype(np.int64), coo.col.astype(np.int64)
        if k > 0:
            b = net.blocks[k] if net.blocks else 1
            rows = sigma[k - 1][rows // b] * b + rows % b
        if k < n_layers - 1:
            cols = sigma[k][cols]
        n_cols = mask.shape[1]
        if not np.array_equal(np.sort(rows * n_cols + cols), np.sort(coo.row.astype(np.int64) * n_cols + coo.col)):
            return False
    return True
