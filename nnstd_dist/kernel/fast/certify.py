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
O(connections log connections). When pinning leaves a class of non-twins, a second level pins its first such
class C as well (x = C's first member in r's run, each member y of that colour in m's run), provided pinning any
member of C leaves only twins, a condition on C as a whole. All members pass => every member is the image of r
under an automorphism of the group => the cell is one orbit. A failed test proves nothing, so it only costs the certificate. The
outcome does not depend on neuron numbers: if the cell is an orbit, every member's run is the image of r's
under an automorphism, so either all pass or all leave the same non-twin classes (and the second level's
condition on C holds for all or none; if it holds, the image of x under that automorphism is among the y tried);
if it is not, no sigma can pass. Cells or classes C above ``MAX_CELL`` neurons are not tested (uncertified), a
label-free cap on the work.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .colours import refine_jointly
from .hashing import SALT, mix

__all__ = ["MAX_CELL", "is_orbit"]

MAX_CELL = 32


def _pinned(base: list[np.ndarray], pins) -> list[np.ndarray]:
    """``base`` with each (layer, neuron, colour) of ``pins`` given that colour."""
    out = list(base)
    for layer, neuron, colour in pins:
        out[layer] = out[layer].copy()
        out[layer][neuron] = colour
    return out


def _first_mixed_class(colours: list[np.ndarray], twins) -> tuple[int, np.ndarray] | None:
    """(layer, members in index order) of the colour class of least (layer, colour) that holds two non-twins, or None."""
    for layer, (c, tw) in enumerate(zip(colours[:-1], twins)):
        order = np.lexsort((np.arange(c.size), c))
        same = c[order][1:] == c[order][:-1]
        mixed = same & (tw[order][1:] != tw[order][:-1])
        if mixed.any():
            colour = c[order][1:][mixed].min()
            return layer, np.flatnonzero(c == colour)
    return None


def is_orbit(net, colours: list[np.ndarray], layer: int, cell: np.ndarray) -> bool:
    """Whether the layer-``layer`` neurons ``cell`` of network ``net`` (a FastNetwork) are one orbit of the group above.

    When pinning one member leaves a class of non-twins, one more level is tried: the first such class C (least layer
    and colour) is pinned too, member x of run r against each member y of the same colour in run m, provided that
    pinning any x of C leaves only twins (a condition on C as a whole, so its outcome does not depend on numbering)."""
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
    member, second = mix(np.uint64(0) + SALT["member"]), mix(np.uint64(1) + SALT["member"])
    ref = cell[0]
    second_level = None  # (layer, class C) once known to qualify

    def runs(pins_ref, pins_other):
        return refine_jointly([net.wiring, net.wiring], [_pinned(fixed, pins_ref), _pinned(fixed, pins_other)])[0]

    def found(c_ref, c_other) -> bool:
        sigma = _candidate(c_ref, c_other, net.twins)
        return sigma is not None and _is_automorphism(net, colours, sigma, layer)

    for m in cell[1:]:
        c_ref, c_other = runs([(layer, ref, member)], [(layer, m, member)])
        if not all(np.array_equal(np.sort(x), np.sort(y)) for x, y in zip(c_ref, c_other)):
            return False  # the two pinnings refine differently: ref and m are in different orbits
        if found(c_ref, c_other):
            continue
        if second_level is None:
            second_level = _second_level(net, fixed, layer, ref, member, second, c_ref)
            if not second_level:
                return False
        level, members = second_level
        x = members[0]
        candidates = np.flatnonzero(c_other[level] == c_ref[level][x])
        if not any(found(*runs([(layer, ref, member), (level, x, second)], [(layer, m, member), (level, int(y), second)]))
                   for y in candidates):
            return False
    return True


def _second_level(net, fixed, layer, ref, member, second, c_ref):
    """(layer, class) of the first class of non-twins left by pinning ``ref``, if pinning any one of its members leaves
    only twins (and it has at most MAX_CELL members); else False."""
    mixed = _first_mixed_class(c_ref, net.twins)
    if mixed is None or mixed[1].size > MAX_CELL:
        return False
    level, members = mixed
    for x in members:
        (c,), _ = refine_jointly([net.wiring], [_pinned(fixed, [(layer, ref, member), (level, int(x), second)])])
        if _first_mixed_class(c, net.twins) is not None:
            return False
    return mixed


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
