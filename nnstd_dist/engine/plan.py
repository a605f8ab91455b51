"""The plan of a run: which tiles remain (largest first), and how large a tile is (the tile-size policy).

Tile geometry (extents, what a done tile holds) is ``nnstd_dist.tiles``. Pure: no dask, no zarr.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..tiles import TileTask, n_tiles, tile_task, total_pairs

__all__ = ["Plan", "make_plan", "default_tile", "tile_and_bound", "TileChoice", "choose_tile"]

# The default tile adapts to the kernel, from a few pairs and networks timed before the run. A task reads
# and prepares 2T networks for T^2 pairs: that share falls as 1/T, while the run's tail (its last tiles)
# grows with the tile. So a tile is the smallest that is TILE_SECONDS of kernel work and keeps reading
# under READ_SHARE of it, but never more than MAX_TILE_SECONDS. Opening the store and writing two chunks
# (~10 ms) and Dask between tasks (~1 ms) are small beside that.
TILE_SECONDS = 4.0
READ_SHARE = 0.02
MAX_TILE_SECONDS = 60.0
MIN_TILE = 16  # the tile is fixed when results are created: a store grown to 10,000 networks keeps < 200,000 tasks
MAX_TILE = 256  # a block of L x 256 x 256 float64 is 0.5 MB per layer
TILE_STEP = 8  # tiles are multiples of 8: a slightly different timing gives the same tile
TILES_PER_WORKER = 4  # enough that the last, largest-first scheduled tiles leave little idle time


@dataclass(frozen=True)
class TileChoice:
    """How the plan's tile size was chosen: ``given`` (by the caller), ``stored`` (fixed when the results were
    created), ``timed`` (from the kernel's ``seconds_per_pair`` and the ``seconds_per_network`` to read and
    prepare a network, over ``pairs_timed`` pairs; ``bound``: which bound of the rule decided, see
    tile_and_bound) or ``untimed`` (no pair to time)."""

    tile: int
    reason: str
    seconds_per_pair: float | None = None
    pairs_timed: int = 0
    seconds_per_network: float | None = None
    bound: str | None = None

    @property
    def tile_seconds(self) -> float | None:
        """Kernel seconds of one full off-diagonal tile at the timed rate."""
        return None if self.seconds_per_pair is None else self.seconds_per_pair * self.tile * self.tile

    @property
    def read_share(self) -> float | None:
        """Reading and preparing an off-diagonal tile's 2T networks, as a share of its kernel time."""
        if self.seconds_per_pair is None or self.seconds_per_network is None:
            return None
        return 2 * self.seconds_per_network / (self.tile * self.seconds_per_pair)


def default_tile(n: int, n_workers: int, seconds_per_pair: float | None, seconds_per_network: float | None = 0.0) -> int:
    """The smallest multiple of TILE_STEP, T, with T^2 s >= TILE_SECONDS and 2 T r <= READ_SHARE T^2 s (s the kernel's
    seconds per pair, r to read and prepare a network), but T^2 s <= MAX_TILE_SECONDS, within [MIN_TILE, MAX_TILE];
    then no larger than gives every worker TILES_PER_WORKER tiles. MIN_TILE if nothing was timed.

    Deterministic: the same population size, workers and timings give the same tile.
    """
    return tile_and_bound(n, n_workers, seconds_per_pair, seconds_per_network)[0]


def tile_and_bound(n: int, n_workers: int, seconds_per_pair: float | None, seconds_per_network: float | None = 0.0) -> tuple[int, str]:
    """default_tile, and the bound that decided it: ``work`` (>= TILE_SECONDS of kernel work), ``read`` (reading
    <= READ_SHARE of it), ``cap`` (<= MAX_TILE_SECONDS), ``max`` (MAX_TILE), ``workers`` (TILES_PER_WORKER tiles per
    worker), or ``min`` (MIN_TILE: whatever asked for less, including too few tiles per worker even at MIN_TILE)."""
    if not seconds_per_pair or seconds_per_pair <= 0:
        return MIN_TILE, "min"
    work = math.sqrt(TILE_SECONDS / seconds_per_pair)
    read = 2 * (seconds_per_network or 0.0) / (READ_SHARE * seconds_per_pair)
    tile, bound = math.ceil(max(work, read) / TILE_STEP) * TILE_STEP, "work" if work >= read else "read"
    most = math.floor(math.sqrt(MAX_TILE_SECONDS / seconds_per_pair) / TILE_STEP) * TILE_STEP
    if most < tile:
        tile, bound = most, "cap"
    if tile < MIN_TILE or tile > MAX_TILE:
        tile, bound = (MIN_TILE, "min") if tile < MIN_TILE else (MAX_TILE, "max")
    while tile > MIN_TILE and not _enough_tiles(n, tile, n_workers):
        tile, bound = tile - TILE_STEP, "workers"
    if tile == MIN_TILE and not _enough_tiles(n, tile, n_workers):
        bound = "min"
    return tile, bound


def _enough_tiles(n: int, tile: int, n_workers: int) -> bool:
    k = n_tiles(n, tile)
    return k * (k + 1) // 2 >= TILES_PER_WORKER * max(1, n_workers)


def choose_tile(n: int, n_workers: int, seconds_per_pair: float | None, seconds_per_network: float | None, pairs_timed: int) -> TileChoice:
    """The default tile for a population of n on ``n_workers`` worker threads, given a timing (see tasks.time_kernel)."""
    if not pairs_timed:
        return TileChoice(MIN_TILE, "untimed")
    tile, bound = tile_and_bound(n, n_workers, seconds_per_pair, seconds_per_network)
    return TileChoice(tile, "timed", seconds_per_pair, pairs_timed, seconds_per_network, bound)


@dataclass(frozen=True)
class Plan:
    """The tiles of an N-network population that still need a task, largest first."""

    n: int
    tile: int
    tasks: tuple[TileTask, ...]
    choice: TileChoice | None = None  # how the tile size was chosen, for `compute --dry-run`
    repaired: tuple = ()  # (a, b, why): done tiles found damaged while planning (a record's header), reopened
    resumed: bool = False  # continues a recompute that was interrupted
    solver: str | None = None  # the run's solver and last layer (None: every layer), once plan_store has chosen them
    max_layer: int | None = None

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


def make_plan(n: int, tile: int, tiles_done: np.ndarray, choice: TileChoice | None = None, repaired=(), resumed: bool = False) -> Plan:
    """The tasks left for a population of n given ``tiles_done`` (see store/results.py), largest first."""
    if tile < 1:
        raise ValueError(f"tile size must be >= 1, got {tile}")
    k = n_tiles(n, tile)
    tiles_done = np.asarray(tiles_done)
    if tiles_done.shape != (k, k):
        raise ValueError(f"tiles_done has shape {tiles_done.shape}, expected ({k}, {k}) for N={n}, tile={tile}")
    tasks = [tile_task(a, b, tile, n, tiles_done[a, b]) for a in range(k) for b in range(a + 1)]
    remaining = [t for t in tasks if not t.complete]
    # Largest first: the short tiles fill the gaps at the end (list scheduling, LPT order). Tiles of one
    # size go in a shuffled (seeded) order, so that the first to finish are a fair sample of the rest:
    # in store order the first are near the diagonal, pairs of similar networks that are faster than
    # most, and the time left was underestimated three-fold (progress.WorkLeft prices the rest from them).
    shuffled = np.random.default_rng(n * 100_003 + tile).permutation(len(remaining))
    order = sorted(range(len(remaining)), key=lambda x: (-remaining[x].n_pairs, shuffled[x]))
    remaining = [remaining[x] for x in order]
    return Plan(n, tile, tuple(remaining), choice, tuple(repaired), resumed)
