"""The pair space {(i, j): N > i > j >= 0} cut into T x T tiles (a, b), a >= b; which tiles and pairs remain.

Tile (a, b) holds rows a*T .. min((a+1)*T, N) and columns b*T .. min((b+1)*T, N); a diagonal tile holds
only its pairs i > j. A tile marked done at population size M (``tiles_done[a, b] = M > 0``) holds valid
distances for every pair with both indices < M, i.e. (since j < i) every pair with i < M; it is complete
when its extent at M equals its extent now, otherwise exactly its pairs with i >= M remain. Pure: no
dask, no zarr.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "TileTask", "Plan", "n_tiles", "extent", "tile_of", "tile_task", "make_plan", "default_tile", "total_pairs",
    "pairs_in_done_tiles",
]

# Candidate tile sizes, largest first. At ~25 ms per pair (784-784-784-784-10 networks) a full tile of
# 32 x 32 is ~25 s of work and N = 10,000 gives 49,141 tasks; 16 x 16 is ~6 s and 195,625 tasks.
TILE_CHOICES = (32, 16)
TILES_PER_WORKER = 4  # enough that the last, largest-first scheduled tiles leave little idle time


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


def pairs_in_done_tiles(tiles_done: np.ndarray, n: int, tile: int) -> int:
    """Pairs i > j that the tile markers vouch for among n networks.

    Tile (a, b) marked done at population size M holds every pair of its extent with i < M;
    M above n (a population rebuilt since) vouches for nothing.
    """
    a, b = np.tril_indices(tiles_done.shape[0])
    upto = tiles_done[a, b]
    upto = np.where((upto > 0) & (upto <= n), upto, 0)
    rows = np.clip(np.minimum((a + 1) * tile, upto) - a * tile, 0, None)
    cols = np.clip(np.minimum((b + 1) * tile, upto) - b * tile, 0, None)
    return int(np.where(a == b, rows * (rows - 1) // 2, rows * cols).sum())


def default_tile(n: int, n_workers: int) -> int:
    """The largest tile in TILE_CHOICES that still gives every worker TILES_PER_WORKER tiles, else the smallest.

    The tile is fixed when results are created and kept as the population grows, so it is never
    below 16: a store started small and grown to 10,000 networks still has < 200,000 tasks.
    """
    for tile in TILE_CHOICES:
        k = n_tiles(n, tile)
        if k * (k + 1) // 2 >= TILES_PER_WORKER * max(1, n_workers):
            return tile
    return TILE_CHOICES[-1]


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
        # done_at > n means the population shrank or was rebuilt since: trust nothing
        return self.done_at if 0 < self.done_at <= self.n else 0

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


@dataclass(frozen=True)
class Plan:
    """The tiles of an N-network population that still need a task, largest first."""

    n: int
    tile: int
    tasks: tuple[TileTask, ...]

    @property
    def n_tiles(self) -> int:
        """Tiles (a >= b) of the whole matrix."""
        k = n_tiles(self.n, self.tile)
        return k * (k + 1) // 2

    @property
    def total_pairs(self) -> int:
        return total_pairs(self.n)

    @property
    def n_pairs(self) -> int:
        """Pairs to compute."""
        return sum(t.n_pairs for t in self.tasks)

    def __len__(self) -> int:
        return len(self.tasks)

    def __repr__(self) -> str:
        return (
            f"<Plan N={self.n} tile={self.tile}: {len(self.tasks)} of {self.n_tiles} tiles, "
            f"{self.n_pairs} of {self.total_pairs} pairs to compute>"
        )


def make_plan(n: int, tile: int, tiles_done: np.ndarray) -> Plan:
    """The tasks left for a population of n given ``tiles_done`` (see store.py), largest first."""
    if tile < 1:
        raise ValueError(f"tile size must be >= 1, got {tile}")
    k = n_tiles(n, tile)
    tiles_done = np.asarray(tiles_done)
    if tiles_done.shape != (k, k):
        raise ValueError(f"tiles_done has shape {tiles_done.shape}, expected ({k}, {k}) for N={n}, tile={tile}")
    tasks = [tile_task(a, b, tile, n, tiles_done[a, b]) for a in range(k) for b in range(a + 1)]
    remaining = [t for t in tasks if not t.complete]
    # Largest first: the short tiles fill the gaps at the end (list scheduling, LPT order).
    remaining.sort(key=lambda t: (-t.n_pairs, t.a, t.b))
    return Plan(n, tile, tuple(remaining))
