"""Files at rest: what a store of format 3 leaves on disk once `compute` has finished, against format 2's count.

Run from the repository root:

    .venv/bin/python benchmarks/bench_files.py                  # N = 1,000 computed, N = 10,000 bookkeeping
    .venv/bin/python benchmarks/bench_files.py --big 0          # N = 1,000 only

N = 1,000: generated networks of 32-32-16-4 (a rewiring chain), tiles of 16, a real `compute` (exact
solver, a LocalCluster of 2 single-threaded workers). N = --big (10,000), tiles of 24: the same networks
ingested, then every tile written as the run's tasks write it (random numbers: computing 50 million
pairs takes hours here) and every row packed as the run packs it. For each: files and bytes by part
of the store, and format 2's count for the same store (L per network, a distance chunk per tile and
its mirror, a marker per tile, ~20 others). N = 100,000 is predicted from the same layout.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

import bench_batch  # this folder is on sys.path when the script runs
from nnstd_dist.engine import ClusterSpec, compute, connect
from nnstd_dist.store.population import shard_networks
from nnstd_dist.store.topology_store import TopologyStore
from nnstd_dist.tiles import extent, n_tiles

SMALL_LAYERS = bench_batch.SMALL_LAYERS  # 32-32-16-4


def make_store(path: Path, n: int) -> TopologyStore:
    """n generated networks of SMALL_LAYERS (a rewiring chain), as bench_batch's stores."""
    bench_batch.make_store(path, SMALL_LAYERS, 0.3, n, rewire=0.005)
    return TopologyStore.open(path, mode="r+")


def census(path: Path) -> tuple[Counter, Counter]:
    """Files and bytes by part: masks, distances, everything else."""
    files, size = Counter(), Counter()
    for root, _, names in os.walk(path):
        part = Path(root).relative_to(path).parts[:1]
        kind = "masks" if part and part[0].startswith("mask_l") else "distances" if part == ("distances",) else "other"
        for name in names:
            files[kind] += 1
            size[kind] += (Path(root) / name).stat().st_size
    return files, size


def format2_files(n: int, layers: int, tile: int, others: int = 20) -> int:
    k = n_tiles(n, tile)
    return layers * n + k * k + k * (k + 1) // 2 + others


def format3_files(n: int, layers, tile: int) -> int:
    """Shards per layer, a row file per tile row, the 8 per-network arrays' chunks of 4,096, and the zarr.json of the
    group, of each array and of distances/."""
    shards = sum(n_tiles(n, shard_networks(n_in, n_out)) for n_in, n_out in zip(layers, layers[1:]))
    metadata = 1 + (len(layers) - 1) + 8 + 1
    return shards + n_tiles(n, tile) + 8 * n_tiles(n, 4096) + metadata


def report(label: str, path: Path, n: int, tile: int, seconds: float) -> None:
    files, size = census(path)
    print(f"{label}: N = {n:,}, tiles of {tile}: {sum(files.values()):,} files "
          f"(masks {files['masks']}, distances {files['distances']}, other {files['other']}), "
          f"{sum(size.values()) / 1e6:,.1f} MB (distances {size['distances'] / 1e6:,.1f} MB), in {seconds:.0f} s; "
          f"format 2: {format2_files(n, len(SMALL_LAYERS) - 1, tile):,} files")


def computed(work: Path, n: int, tile: int) -> None:
    path = work / "computed.zarr"
    make_store(path, n)
    start = time.perf_counter()
    with connect(ClusterSpec(n_workers=2)) as client:
        client.wait_for_workers(2)
        compute(path, tile=tile, client=client)
    report("computed", path, n, tile, time.perf_counter() - start)


def bookkeeping(work: Path, n: int, tile: int) -> None:
    path = work / "bookkeeping.zarr"
    store = make_store(path, n)
    store.init_results(tile)
    start, rng, k = time.perf_counter(), np.random.default_rng(0), n_tiles(n, tile)
    for a in range(k):
        for b in range(a + 1):
            (r0, r1), (c0, c1) = extent(a, tile, n), extent(b, tile, n)
            store.write_tile(a, b, rng.random((store.n_layers, r1 - r0, c1 - c0)), n)
        store.pack_row(a)
    report("bookkeeping", path, n, tile, time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", type=int, default=1000)
    parser.add_argument("--tile", type=int, default=16)
    parser.add_argument("--big", type=int, default=10_000, help="networks of the bookkeeping store [10,000; 0: skip]")
    parser.add_argument("--big-tile", type=int, default=24)
    args = parser.parse_args()
    print(f"load average at the start: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        computed(Path(tmp), args.networks, args.tile)
    if args.big:
        with tempfile.TemporaryDirectory() as tmp:
            bookkeeping(Path(tmp), args.big, args.big_tile)
    for n, tile in ((args.networks, args.tile), (args.big or 10_000, args.big_tile), (100_000, 32)):
        print(f"predicted: N = {n:,}, tiles of {tile}: format 3 {format3_files(n, SMALL_LAYERS, tile):,} files, "
              f"format 2 {format2_files(n, len(SMALL_LAYERS) - 1, tile):,}")
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
