"""What checksums and crash-safety bookkeeping cost a compute: store format 3 against the same code without them.

Run from the repository root:

    .venv/bin/python benchmarks/bench_integrity.py            # 20 networks of 784-784-784-784-10, 4 rounds
    .venv/bin/python benchmarks/bench_integrity.py --quick    # 12 networks, 2 rounds

Both variants ingest the same synthetic population (the paper's seed shape, density 0.006) and
compute all pairs on one in-process worker thread, after a warm-up round, in the order A B, B A, ...
so that load drifts hit both; the fastest round of each is compared. Baseline: no crc32c codec on any array or tile
record (a constant in its place), and none of the bookkeeping (damaged-tile scan, mask check before new results,
generation check before each tile is written). Target (issue #11): under 2 %. Also printed:
the bookkeeping steps timed alone, so the figure can be checked against its parts.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
from pathlib import Path
from unittest import mock

import google_crc32c
from distributed import Client, LocalCluster
from zarr.codecs import BloscCodec, ZstdCodec

from nnstd_dist.store import tile_files, zarr_io as store_io
from nnstd_dist.sources.generate import generate_population
from nnstd_dist.records import NetworkRecord
from nnstd_dist.engine import compute
from nnstd_dist.store.topology_store import TopologyStore, add_networks

LAYERS = (784, 784, 784, 784, 10)


@contextlib.contextmanager
def without_integrity():
    """The store as it would be without checksums and without the crash-safety reads."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch.object(store_io, "MASK_CODECS", (BloscCodec(cname="zstd", clevel=5, shuffle="bitshuffle"),)))
        stack.enter_context(mock.patch.object(store_io, "CODECS", (ZstdCodec(level=0),)))
        stack.enter_context(mock.patch.object(tile_files, "_crc", lambda data: b"\0\0\0\0"))
        stack.enter_context(mock.patch.object(TopologyStore, "damaged_tiles", lambda self: []))
        stack.enter_context(mock.patch.object(TopologyStore, "check_masks", lambda self: None))
        stack.enter_context(mock.patch.object(TopologyStore, "generation_on_disk", lambda self: self.generation))
        yield


def one_round(networks, work: Path, client, tile: int) -> float:
    """Ingest, then compute every pair; seconds of the compute alone."""
    path = work / "s.zarr"
    add_networks(path, networks)
    start = time.perf_counter()
    compute(path, client=client, tile=tile)
    seconds = time.perf_counter() - start
    os.system(f"rm -rf '{path}'")
    return seconds


def bookkeeping(networks, work: Path, client, tile: int) -> dict[str, float]:
    """The integrity steps of a compute timed alone on a computed store."""
    path = work / "s.zarr"
    add_networks(path, networks)
    compute(path, client=client, tile=tile)
    store = TopologyStore.open(path)
    out = {}
    chunks = [p.read_bytes() for p in path.rglob("*") if p.is_file() and p.name.replace(".", "").isdigit()]
    start = time.perf_counter()
    for raw in chunks:
        google_crc32c.value(raw)
    out[f"crc32c of all {len(chunks)} chunks ({sum(map(len, chunks)) / 2**20:.1f} MiB) once"] = time.perf_counter() - start
    for name, step in (
        ("damaged-tile scan (every tile record's crc)", store.damaged_tiles),
        ("mask check before new results", store.check_masks),
        ("generation read (once per tile)", store.generation_on_disk),
    ):
        start = time.perf_counter()
        step()
        out[name] = time.perf_counter() - start
    os.system(f"rm -rf '{path}'")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="12 networks, 2 rounds")
    parser.add_argument("--networks", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--tile", type=int, default=4)
    args = parser.parse_args()
    n = args.networks or (12 if args.quick else 20)
    rounds = args.rounds or (2 if args.quick else 4)
    population = [
        (NetworkRecord(name), masks) for name, masks in generate_population(LAYERS, 0.006, n, rewire=0.05, seed=1)
    ]
    times = {"format 3 (crc32c + bookkeeping)": [], "baseline (neither)": []}
    with tempfile.TemporaryDirectory() as tmp, LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0"
    ) as cluster, Client(cluster) as client:
        work = Path(tmp)
        one_round(population, work, client, args.tile)  # warm-up: imports, first cluster use, page cache
        for r in range(rounds):
            # A B, then B A: a drift in load hits both variants alike
            for variant in (("format 3 (crc32c + bookkeeping)", "baseline (neither)") if r % 2 == 0 else ("baseline (neither)", "format 3 (crc32c + bookkeeping)")):
                with without_integrity() if variant.startswith("baseline") else contextlib.nullcontext():
                    times[variant].append(one_round(population, work, client, args.tile))
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()), flush=True)
        parts = bookkeeping(population, work, client, args.tile)
    pairs = n * (n - 1) // 2
    best = {k: min(v) for k, v in times.items()}
    with_, without = best["format 3 (crc32c + bookkeeping)"], best["baseline (neither)"]
    print(f"\n{n} networks of {'-'.join(map(str, LAYERS))}, {pairs} pairs, tiles of {args.tile}, fastest of {rounds} rounds; load {os.getloadavg()[0]:.1f}")
    for k, v in best.items():
        print(f"  {k:36} {v:8.2f} s")
    print(f"  ratio format 2 / baseline          {with_ / without:8.4f}  (overhead {100 * (with_ / without - 1):+.2f} %, target < 2 %)")
    print("bookkeeping steps alone, on the computed store:")
    for k, v in parts.items():
        print(f"  {k:44} {1000 * v:8.2f} ms  ({100 * v / with_:.3f} % of the compute)")


if __name__ == "__main__":
    main()
