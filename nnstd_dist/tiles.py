"""Tile geometry: the pair space {(i, j): N > i > j >= 0} cut into T x T tiles (a, b), a >= b, and what a done tile holds.

Tile (a, b) holds rows a*T .. min((a+1)*T, N) and columns b*T .. min((b+1)*T, N); a diagonal tile holds
only its pairs i > j. A tile marked done at population size M (``tiles_done[a, b] = M > 0``: its record's
``done_at``, see store/results.py) holds valid
distances for every pair with both indices < M, i.e. (since j < i) every pair with i < M; it is complete
when its extent at M equals its extent now, otherwise exactly its pairs with i >= M remain.
Shared by the store (which tiles hold what) and compute (which tiles remain); no dask, no zarr.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["TileTask", "n_tiles", "extent", "tile_of", "tile_task", "total_pairs", "pairs_in_done_tiles", "vouched_upto"]


def total_pairs(n: int) -> int:
    """Pairs i > j among n networks."""
    return n * (n - 1) // 2


def n_tiles(n: int, tile: int) -> int:
    """Tiles along one side of the matrix."""
    return -(-n // tile)


def extent(index: int, tile: int, n: int) -> tuple[int, int]:
    """Networks [start, stop) of tile row/column ``index`` in a population of n."""
    return min(index * tile, n), min((index + 1) * tile, n)


def tile_of(network: int, tile: int) -> int:
    """The tile row/column that holds network index ``network``."""
    return network // tile


def vouched_upto(done_at, n: int):
    """Pairs with both indices below this are held by a tile marked done at ``done_at`` (scalar or array), for a
    population of n: done_at itself, or 0 where the tile is not done or done_at > n (a population rebuilt since)."""
    done_at = np.asarray(done_at)
    return np.where((done_at > 0) & (done_at <= n), done_at, 0)


def pairs_in_done_tiles(tiles_done: np.ndarray, n: int, tile: int, indices=None) -> int:
    """Pairs i > j among n networks (or among the sorted, distinct ``indices``) that the tile markers vouch for.

    Tile (a, b) marked done at population size M holds every pair of its extent with i < M;
    M above n (a population rebuilt since) vouches for nothing. Counted per marked tile from its
    extent, never per pair: at N = 10,000 an index array of all pairs alone takes seconds.
    """
    upto = vouched_upto(tiles_done, n)
    a, b = np.nonzero(np.tril(upto))
    upto = upto[a, b]
    if indices is None:
        rows = np.clip(np.minimum((a + 1) * tile, upto) - a * tile, 0, None)
        cols = np.clip(np.minimum((b + 1) * tile, upto) - b * tile, 0, None)
    else:  # how many of the indices fall in [start, min(stop, M)) of each tile
        indices = np.asarray(indices, dtype=np.int64)

        def within(t):
            start, stop = t * tile, np.maximum(np.minimum((t + 1) * tile, upto), t * tile)
            return np.searchsorted(indices, stop) - np.searchsorted(indices, start)

        rows, cols = within(a), within(b)
    return int(np.where(a == b, rows * (rows - 1) // 2, rows * cols).sum())


def _valid_pairs(rows: tuple[int, int], cols: tuple[int, int], diagonal: bool, upto: int) -> int:
    """Pairs of a tile with both indices < upto."""
    r = max(0, min(rows[1], upto) - rows[0])
    if diagonal:
        return total_pairs(r)
    return r * max(0, min(cols[1], upto) - cols[0])


@dataclass(frozen=True)
class TileTask:
    """The work left in tile (a, b) at population size n, given the size it was last done at."""

    a: int
    b: int
    tile: int
    n: int
    done_at: int = 0

    def __post_init__(self):
        if self.a < self.b:
            raise ValueError(f"tile ({self.a}, {self.b}): only tiles with a >= b exist")

    @property
    def rows(self) -> tuple[int, int]:
        return extent(self.a, self.tile, self.n)

    @property
    def cols(self) -> tuple[int, int]:
        return extent(self.b, self.tile, self.n)

    @property
    def diagonal(self) -> bool:
        return self.a == self.b

    @property
    def valid_upto(self) -> int:
        """Pairs with i below this are already valid in the stored block; 0 if the block cannot be trusted."""
        return int(vouched_upto(self.done_at, self.n))

    @property
    def size(self) -> int:
        """All pairs of the tile at n."""
        return _valid_pairs(self.rows, self.cols, self.diagonal, self.n)

    @property
    def n_pairs(self) -> int:
        """Pairs still to compute."""
        return self.size - _valid_pairs(self.rows, self.cols, self.diagonal, self.valid_upto)

    @property
    def complete(self) -> bool:
        """Its extent when marked done equals its extent now: nothing to write."""
        m = self.valid_upto
        return m > 0 and extent(self.a, self.tile, m) == self.rows and extent(self.b, self.tile, m) == self.cols

    def pairs(self) -> list[tuple[int, int]]:
        """Pairs (i, j), i > j, still to compute: those with i >= valid_upto."""
        (r0, r1), (c0, c1) = self.rows, self.cols
        first = max(r0, self.valid_upto)
        if self.diagonal:
            return [(i, j) for i in range(first, r1) for j in range(c0, i)]
        return [(i, j) for i in range(first, r1) for j in range(c0, c1)]

    def __repr__(self) -> str:
        (r0, r1), (c0, c1) = self.rows, self.cols
        return f"TileTask(({self.a}, {self.b}), rows {r0}:{r1}, cols {c0}:{c1}, {self.n_pairs} of {self.size} pairs)"


def tile_task(a: int, b: int, tile: int, n: int, done_at: int) -> TileTask:
    return TileTask(int(a), int(b), int(tile), int(n), int(done_at))
