"""Distances D[k, p, q] of any networks rows[p], rows[q], from the tile records that vouch for them; NaN elsewhere.

A record of tile (a, b), a >= b, computed at population size M holds D[k, i, j] for the rows i and columns j
of the tile's extent at M; the store keeps only this lower triangle, so D[k, j, i] is the same number
(the mirror) and NNSTD(x, x) = 0. Pure numpy: the records are read by results.py.
"""

from __future__ import annotations

import numpy as np

from ..errors import StoreError
from ..tiles import tile_of

__all__ = ["VouchedMatrix"]


def _index(positions: np.ndarray):
    """A slice when ``positions`` are consecutive and increasing (a view, no copy), else the array itself."""
    if len(positions) and positions[-1] - positions[0] == len(positions) - 1 and np.all(np.diff(positions) == 1):
        return slice(int(positions[0]), int(positions[-1]) + 1)
    return positions


class VouchedMatrix:
    """The (len(layers), k, k) distances of networks ``rows``, NaN until records fill them (``add``), row by row.

    ``computed[x]``: whether layers[x] was computed (a layer past --max-layer is NaN by design). A record
    whose computed layers hold NaN (a task writes whole blocks) is damage: a StoreError naming ``where``.
    """

    def __init__(self, tile: int, layers, rows: np.ndarray, computed: np.ndarray, where):
        self.layers = _index(np.asarray(layers, dtype=np.int64))
        self.rows = np.asarray(rows, dtype=np.int64)
        self.computed, self.where = computed, where
        self.values = np.full((len(layers), len(self.rows), len(self.rows)), np.nan)
        row_tiles = tile_of(self.rows, tile)
        order = np.argsort(row_tiles, kind="stable")
        tiles, starts = np.unique(row_tiles[order], return_index=True)
        self.positions = dict(zip(tiles.tolist(), np.split(order, starts[1:])))  # tile -> positions p of its rows, in order

    def add(self, a: int, b: int, record) -> None:
        """Tile (a, b)'s record, and its mirror: a record of tile (a, b) holds D[i, j] for i in tile a, j in tile b."""
        if a not in self.positions or b not in self.positions:
            return
        header, rows = record.header, self.rows
        pa, pb = _held(self.positions[a], rows, header["rows"]), _held(self.positions[b], rows, header["cols"])
        if not len(pa) or not len(pb):
            return
        sub = record.block[self.layers][:, (rows[pa] - header["rows"][0])[:, None], (rows[pb] - header["cols"][0])[None, :]]
        if np.isnan(sub[self.computed]).any():
            raise StoreError(f"{self.where}: damaged: tile ({a}, {b}): distances marked computed are missing; `verify({str(self.where)!r})` lists all damage")
        ia, ib = _index(pa), _index(pb)
        if not (isinstance(ia, slice) and isinstance(ib, slice)):
            ia, ib = pa[:, None], pb[None, :]
        self.values[:, ia, ib] = sub
        if a != b:
            self.values[:, ib.T if not isinstance(ib, slice) else ib, ia.T if not isinstance(ia, slice) else ia] = sub.transpose(0, 2, 1)

    def result(self) -> np.ndarray:
        _zero_same_networks(self.values, self.rows)
        return self.values


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
