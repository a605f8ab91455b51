"""Distances D[k, p, q] of any networks rows[p], rows[q], from the tile records that vouch for them; NaN elsewhere.

A record of tile (a, b), a >= b, computed at population size M holds D[k, i, j] for the rows i and columns j
of the tile's extent at M; the store keeps only this lower triangle, so D[k, j, i] is the same number
(the mirror) and NNSTD(x, x) = 0. Pure numpy: the records are read by results.py.
"""

from __future__ import annotations

import numpy as np

from ..errors import StoreError
from ..tiles import tile_of

__all__ = ["read_vouched"]


def _index(positions: np.ndarray):
    """A slice when ``positions`` are consecutive and increasing (a view, no copy), else the array itself."""
    if len(positions) and positions[-1] - positions[0] == len(positions) - 1 and np.all(np.diff(positions) == 1):
        return slice(int(positions[0]), int(positions[-1]) + 1)
    return positions


def read_vouched(records: dict, tile: int, layers, rows: np.ndarray, computed: np.ndarray, where) -> np.ndarray:
    """(len(layers), k, k) distances of networks ``rows`` from ``records`` {(a, b): Record with its block}.

    ``computed[x]``: whether layers[x] was computed (a layer past --max-layer is NaN by design). A record
    whose computed layers hold NaN (a task writes whole blocks) is damage: a StoreError naming ``where``.
    """
    layers = np.asarray(layers, dtype=np.int64)
    rows = np.asarray(rows, dtype=np.int64)
    values = np.full((len(layers), len(rows), len(rows)), np.nan)
    row_tiles = tile_of(rows, tile)
    order = np.argsort(row_tiles, kind="stable")
    tiles, starts = np.unique(row_tiles[order], return_index=True)
    positions = dict(zip(tiles.tolist(), np.split(order, starts[1:])))  # tile -> positions p of its rows, in order
    layer_index = _index(layers)
    for (a, b), record in records.items():
        if a not in positions or b not in positions:
            continue
        header, block = record.header, record.block
        pa, pb = _held(positions[a], rows, header["rows"]), _held(positions[b], rows, header["cols"])
        if not len(pa) or not len(pb):
            continue
        sub = block[layer_index][:, (rows[pa] - header["rows"][0])[:, None], (rows[pb] - header["cols"][0])[None, :]]
        if np.isnan(sub[computed]).any():
            raise StoreError(f"{where}: damaged: tile ({a}, {b}): distances marked computed are missing; `verify({str(where)!r})` lists all damage")
        ia, ib = _index(pa), _index(pb)
        if isinstance(ia, slice) and isinstance(ib, slice):
            values[:, ia, ib] = sub
            if a != b:
                values[:, ib, ia] = sub.transpose(0, 2, 1)
        else:
            values[:, pa[:, None], pb[None, :]] = sub
            if a != b:
                values[:, pb[:, None], pa[None, :]] = sub.transpose(0, 2, 1)
    _zero_same_networks(values, rows)
    return values


def _held(positions: np.ndarray, rows: np.ndarray, span) -> np.ndarray:
    """The positions whose network lies in the record's [start, stop)."""
    network = rows[positions]
    return positions[(network >= span[0]) & (network < span[1])]


def _zero_same_networks(values: np.ndarray, rows: np.ndarray) -> None:
    """NNSTD(x, x) = 0: the diagonal, and wherever an index is given twice."""
    same = np.arange(len(rows))
    values[:, same, same] = 0.0
    distinct, inverse, counts = np.unique(rows, return_inverse=True, return_counts=True)
    for group in np.flatnonzero(counts > 1):
        p = np.flatnonzero(inverse == group)
        values[:, p[:, None], p[None, :]] = 0.0
