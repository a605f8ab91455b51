"""Distances D[k, p, q] of any networks rows[p], rows[q], read from the tiles the done markers vouch for; NaN elsewhere.

A tile (a, b), a >= b, marked done at M (0 < M <= N) vouches for its pairs with both indices < M;
any other pair is NaN and NNSTD(x, x) = 0. zarr fills every absent chunk of a selection with its
fill value one chunk at a time (19 s for an all-NaN 10,000 x 10,000 layer), so the result starts as
NaN in numpy and only the chunks of done tiles are read: one zarr call per run of consecutive done
tiles along a tile row, whose chunks zarr decodes concurrently. Part of the store (it reads a zarr array).
"""

from __future__ import annotations

import numpy as np

from ..errors import StoreError
from ..tiles import tile_of, vouched_upto
from .zarr_io import consecutive_runs, damage_hint

__all__ = ["read_vouched"]


def _index(positions: np.ndarray):
    """A slice when ``positions`` are consecutive and increasing (a view, no copy), else the array itself."""
    if len(positions) and positions[-1] - positions[0] == len(positions) - 1 and np.all(np.diff(positions) == 1):
        return slice(int(positions[0]), int(positions[-1]) + 1)
    return positions


def read_vouched(distance, markers: np.ndarray, n: int, tile: int, layers, rows: np.ndarray, computed: np.ndarray, where) -> np.ndarray:
    """(len(layers), k, k) distances of networks ``rows`` from the zarr array ``distance`` (L, N, N) chunked by ``tile``.

    ``markers``: the tiles' done markers; ``computed[x]``: whether layers[x] was computed (a layer past
    --max-layer is NaN by design). A vouched pair that reads NaN in a computed layer is damage: a
    StoreError naming ``where``.
    """
    layers = np.asarray(layers, dtype=np.int64)
    rows = np.asarray(rows, dtype=np.int64)
    values = np.full((len(layers), len(rows), len(rows)), np.nan)
    layer_index = _index(layers)
    row_tiles = tile_of(rows, tile)
    order = np.argsort(row_tiles, kind="stable")
    tiles, starts = np.unique(row_tiles[order], return_index=True)
    positions = dict(zip(tiles.tolist(), np.split(order, starts[1:])))  # tile -> positions p of its rows, in order
    for a in tiles.tolist():
        upto = vouched_upto(markers[np.maximum(a, tiles), np.minimum(a, tiles)], n)  # tile (a, t) or its mirror (t, a): one marker
        done = tiles[upto > 0]
        if not len(done):
            continue
        pa = positions[a]
        for run in consecutive_runs(done):
            pc = np.concatenate([positions[t] for t in run.tolist()])
            block = distance.get_orthogonal_selection((layer_index, _index(rows[pa]), _index(rows[pc])))
            i, j = rows[pa][:, None], rows[pc][None, :]
            upto = vouched_upto(markers[np.maximum(a, row_tiles[pc]), np.minimum(a, row_tiles[pc])], n)[None, :]
            vouched = np.maximum(i, j) < upto
            if np.isnan(block[computed][:, vouched & (i != j)]).any():
                raise StoreError(f"{where}: distances marked computed are missing; {damage_hint(where)}")
            block[:, ~vouched] = np.nan
            rp, cp = _index(pa), _index(pc)
            if isinstance(rp, slice) and isinstance(cp, slice):
                values[:, rp, cp] = block
            else:
                values[:, pa[:, None], pc[None, :]] = block
    _zero_same_networks(values, rows)
    return values


def _zero_same_networks(values: np.ndarray, rows: np.ndarray) -> None:
    """NNSTD(x, x) = 0: the diagonal, and wherever an index is given twice."""
    same = np.arange(len(rows))
    values[:, same, same] = 0.0
    distinct, inverse, counts = np.unique(rows, return_inverse=True, return_counts=True)
    for group in np.flatnonzero(counts > 1):
        p = np.flatnonzero(inverse == group)
        values[:, p[:, None], p[None, :]] = 0.0
