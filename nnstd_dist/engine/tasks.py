"""One tile's work, run on a worker: block[k, i, j] = NNSTD_k(network i, network j) for the tile's pairs i > j.

A task receives only the store path, the tile and the population size N; it reads its networks
itself, prepares each once, computes the pairs its tile still lacks, and writes the tile's record
(computed at N) as one file renamed into place. Rerunning a task is harmless. No dask here.
"""

from __future__ import annotations

import os
import resource
import socket
import time
from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np

from ..errors import StoreError
from ..records import mask_digest
from ..store.zarr_io import damage_hint
from ..kernel.distance import nnstd_certified, nnstd_prepared, prepare
from ..tiles import TileTask, tile_task
from ..store.topology_store import TopologyStore

__all__ = ["TileBlock", "TileResult", "TileStopped", "compute_tile", "tile_block", "time_kernel", "TIMED_PAIRS"]

TIMED_PAIRS = 3  # pairs timed to size the default tile: ~0.1-1 s before a run


class TileStopped(Exception):
    """The caller's ``stop()`` said so between two pairs: nothing of the tile was written."""


@dataclass(frozen=True)
class TileResult:
    """What a task did and how long it took, measured inside the task."""

    a: int
    b: int
    pairs: int  # pairs computed by this task
    seconds: float  # the whole task: open, read, prepare, compute, write
    kernel_seconds: float  # inside nnstd_prepared only
    read_seconds: float  # reading and preparing the tile's networks (and its stored block)
    write_seconds: float  # writing the tile's record
    peak_rss: int  # bytes, the worker process's peak resident set so far
    worker: str  # host:pid
    started: float = 0.0  # time.time() on the worker when the task began: where a worker's time goes between tasks
    uncertified: int = 0  # pairs computed by this task whose fast-solver choices were not all certified


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def _read_prepared(store: TopologyStore, indices, layers: int) -> dict:
    """index -> prepared Topology of its first ``layers`` layers, for the networks ``indices`` (one read)."""
    indices = np.asarray(indices, dtype=np.int64)
    if not len(indices):
        return {}
    networks = store.read_masks(indices, layers)
    if layers == store.n_layers:  # a digest covers every layer: a run of fewer layers relies on check_digests at its start
        _check_digests(store, indices, networks)
    return {int(k): prepare(masks, store.blocks[:layers]) for k, masks in zip(indices, networks)}


def check_digests(store: TopologyStore, batch: int = 64) -> None:
    """Every network's masks match its digest: before a new set of results is created from them (a tile checks its own too)."""
    for start in range(0, store.n_networks, batch):
        indices = np.arange(start, min(start + batch, store.n_networks))
        _check_digests(store, indices, store.read_masks(indices))


def _check_digests(store: TopologyStore, indices, networks) -> None:
    """The masks read are the networks' own: chunks swapped or copied between networks pass their checksums, not their digests."""
    digests = store.column("digest")
    for k, masks in zip(indices.tolist(), networks):
        if mask_digest(masks) != str(digests[k]):
            raise StoreError(
                f"{store.path}: the masks of network {k} ({store.names()[k]}) do not match its digest (chunks swapped or overwritten?); "
                f"nothing is computed from them; {damage_hint(store.path)}, ingesting its source again rewrites them"
            )


def _compared_layers(n_layers: int, max_layer: int | None) -> int:
    """Layers 0..max_layer are compared: later ones are NaN."""
    return n_layers if max_layer is None else max_layer + 1


def _read_layers(n_layers: int, max_layer: int | None, solver: str) -> int:
    """Layers read and prepared: exact mode's layers 0..K need nothing beyond K (with --max-layer 0, a third of the work);
    the fast rule's colours see the whole network, so its layers 0..K equal a full run's only from every layer."""
    return n_layers if solver == "fast" else _compared_layers(n_layers, max_layer)


def _holds_valid(block: np.ndarray, task: TileTask, layers: int) -> bool:
    """Whether a stored block really holds every pair the task will not recompute (i < valid_upto)."""
    (r0, r1), (c0, c1) = task.rows, task.cols
    i, j = np.arange(r0, r1)[:, None], np.arange(c0, c1)[None, :]
    kept = (i < task.valid_upto) & (j < i)
    return not np.isnan(block[:layers, kept]).any()


class TileBlock(NamedTuple):
    """A tile's complete work: its distances and which of its pairs are uncertified, and what computing them took."""

    block: np.ndarray  # (L, rows, cols) float64
    pairs: int  # pairs computed now (the others were kept from the tile's record)
    read: float  # seconds reading and preparing networks
    kernel: float  # seconds inside the kernel
    uncertified: np.ndarray  # (rows, cols) bool: the fast solver's choices for the pair were not all certified
    fresh_uncertified: int  # of the pairs computed now, how many are uncertified


def tile_block(
    store: TopologyStore, task: TileTask, stop: Callable[[], bool] | None = None, report: Callable[[int], None] | None = None
) -> TileBlock:
    """The tile's complete (L, rows, cols) block and its uncertified pairs, the pairs computed for it, the read and kernel seconds.

    ``stop()`` is asked before each pair; True raises TileStopped. ``report(k)`` is told after each pair
    that k pairs are done (progress finer than a tile).
    """
    read = time.perf_counter()
    (r0, r1), (c0, c1) = task.rows, task.cols
    # The stored block was fully written before the tile was marked, so its pairs below
    # valid_upto can be kept; a tile never marked may hold a half-written run: not read.
    layers = _compared_layers(store.n_layers, store.max_layer)  # layers past max_layer stay NaN
    read_layers = _read_layers(store.n_layers, store.max_layer, store.solver)
    try:
        block, uncertified = store.read_tile(task.a, task.b, flags=True) if task.valid_upto else (None, None)
    except StoreError:  # a damaged chunk: nothing in it is kept, the whole tile is recomputed
        block = None
    if block is None or not _holds_valid(block, task, layers):
        task = tile_task(task.a, task.b, task.tile, task.n, 0)
        block = np.full((store.n_layers, r1 - r0, c1 - c0), np.nan)
        uncertified = np.zeros((r1 - r0, c1 - c0), dtype=bool)
    pairs = task.pairs()
    if task.diagonal:
        networks = _read_prepared(store, np.arange(r0, r1 if pairs else r0), read_layers)
    else:
        networks = _read_prepared(store, np.arange(min((i for i, _ in pairs), default=r1), r1), read_layers)
        networks.update(_read_prepared(store, np.arange(c0, c1 if pairs else c0), read_layers))
    read = time.perf_counter() - read
    kernel = 0.0
    for done, (i, j) in enumerate(pairs, 1):
        if stop is not None and stop():
            raise TileStopped(f"tile ({task.a}, {task.b}) stopped after {kernel:.1f} s of its pairs")
        start = time.perf_counter()
        distances, certified = nnstd_certified(networks[i], networks[j], solver=store.solver, max_layer=store.max_layer)  # larger index is A
        kernel += time.perf_counter() - start
        block[:layers, i - r0, j - c0] = distances
        uncertified[i - r0, j - c0] = certified is False
        if task.diagonal:
            block[:layers, j - c0, i - r0] = distances  # a diagonal tile holds its own mirror
        if report is not None:
            report(done)
    if task.diagonal:
        idx = np.arange(r1 - r0)
        block[:layers, idx, idx] = 0.0
    fresh = int(sum(uncertified[i - r0, j - c0] for i, j in pairs))
    return TileBlock(block, len(pairs), read, kernel, uncertified, fresh)


def compute_tile(
    store_path: str, a: int, b: int, n: int, stop: Callable[[], bool] | None = None, report: Callable[[int], None] | None = None,
    generation: int | None = None,
) -> TileResult:
    """Bring tile (a, b) of the store at ``store_path`` up to date for a population of n networks.

    ``stop()``, asked between pairs, can end the task early (TileStopped): the tile stays as it was.
    ``report(k)``: k of the tile's pairs are computed (see tile_block). ``generation``: the store's
    generation the run planned for, if known; another is a StoreError.
    """
    started, start = time.time(), time.perf_counter()
    try:
        store = TopologyStore.open_shared(store_path, mode="r+")  # the tasks of a worker share one open store
    except StoreError as exc:
        raise StoreError(f"{exc} [on worker {socket.gethostname()}: every worker must reach the store at this path or URL]") from None
    if store.n_networks != n:
        raise StoreError(f"{store_path}: holds {store.n_networks} networks, this run was planned for {n} (did an ingest run meanwhile?)")
    if not store.has_results or store.tile is None:
        raise StoreError(f"{store_path}: no result arrays (they are created by `compute({str(store_path)!r})`)")
    if generation is not None:
        _unchanged(store, generation, a, b)
    generation = store.generation
    task = tile_task(a, b, store.tile, n, store.tile_marker(a, b))
    pairs, read, kernel, write, fresh_uncertified = 0, 0.0, 0.0, 0.0, 0
    if not task.complete:  # a retry after the first attempt finished finds nothing to do
        block, pairs, read, kernel, uncertified, fresh_uncertified = tile_block(store, task, stop, report)
        write = time.perf_counter()
        _unchanged(store, generation, a, b)  # never write into another run's new results
        try:
            # data, "done" and the uncertified pairs in one file, renamed into place
            store.write_tile(a, b, block, done_at=n, generation=generation, uncertified=uncertified)
        except Exception:
            _unchanged(store, generation, a, b)  # results recreated mid-write (a forced --recompute): that is the error
            raise
        write = time.perf_counter() - write
    return TileResult(
        a, b, pairs, time.perf_counter() - start, kernel, read, write, _peak_rss(), f"{socket.gethostname()}:{os.getpid()}", started,
        fresh_uncertified,
    )

def _unchanged(store: TopologyStore, generation: int, a: int, b: int) -> None:
    """The store's results and networks are still those this task started from (its generation), else a StoreError."""
    if store.generation_on_disk() != generation:
        raise StoreError(
            f"{store.path}: the store changed while tile ({a}, {b}) was computed (networks were replaced, or another run "
            "reset the results, e.g. with `force` and `recompute`); this run stops, the other run's results stand"
        )


def timing_pairs(n: int, pairs: int = TIMED_PAIRS) -> list[tuple[int, int]]:
    """Pairs (i, j), i > j, spread over a population of n: network k of the lower half with network k of the upper.

    Most pairs of a large matrix join networks far apart in store order (other runs, other epochs),
    so the timed pairs do too; neighbours (often near-identical networks) would be faster than typical.
    """
    indices = np.unique(np.linspace(0, n - 1, 2 * min(pairs, n // 2)).round().astype(np.int64))
    half = len(indices) // 2
    return [(int(i), int(j)) for i, j in zip(indices[half:], indices[:half]) if i > j]


def time_kernel(store: TopologyStore, solver: str, max_layer: int | None, pairs: int = TIMED_PAIRS) -> tuple[float | None, float | None, int]:
    """Kernel seconds per pair (median over a few spread pairs), seconds to read and prepare one of their networks
    (mean), and how many pairs were timed: what plan.default_tile sizes a tile from."""
    chosen = timing_pairs(store.n_networks, pairs)
    if not chosen:
        return None, None, 0
    indices = sorted({k for pair in chosen for k in pair})
    start = time.perf_counter()
    networks = _read_prepared(store, indices, _read_layers(store.n_layers, max_layer, solver))  # the run's, not yet the store's
    per_network = (time.perf_counter() - start) / len(indices)
    seconds = []
    for i, j in chosen:
        start = time.perf_counter()
        nnstd_prepared(networks[i], networks[j], solver=solver, max_layer=max_layer)
        seconds.append(time.perf_counter() - start)
    return float(np.median(seconds)), per_network, len(seconds)
