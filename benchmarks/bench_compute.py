"""All-pairs compute on Dask: pipeline wall time, 1 vs 2 workers, worker memory vs N, time outside the kernel.

Run from the repository root (needs ../shared/topo, or pass --topo):

    .venv/bin/python benchmarks/bench_compute.py            # ~6 min on 2 idle cores
    .venv/bin/python benchmarks/bench_compute.py --quick    # 40 networks for the scaling run, N=500 only

Figures printed:
  1. ingest -> compute -> export of the 90 seed networks (4005 pairs) with the CLI, wall time;
  2. pairs/s of the same compute with 1 and 2 local workers, and the speed-up;
  3. each worker's peak resident memory computing tiles of 32 from stores of N = 500 and 2000
     synthetic networks of the seed's shape (784-784-784-784-10, density 0.006);
  4. the tasks' own time against the kernel's time inside them (store reads, prepare, writes, Python).
Nothing here asserts a speed; wall times grow when other jobs share the cores, so the load average
and the CPU time of the child processes are printed too.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from nnstd_dist.sources.generate import generate_population
from nnstd_dist.engine.plan import Plan
from nnstd_dist.engine import ClusterSpec, RunStats, compute, connect, plan_store, run_plan
from nnstd_dist.store.topology_store import NetworkRecord, TopologyStore

DEFAULT_TOPO = Path(__file__).resolve().parents[1].parent / "shared" / "topo"
NNSTD_DIST = str(Path(sys.executable).with_name("nnstd-dist"))
SEED_LAYERS = (784, 784, 784, 784, 10)
MB = 2**20


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_cli(*args: str) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run([NNSTD_DIST, *args], capture_output=True, text=True, check=True)
    return time.perf_counter() - start, done.stdout.strip()


def pipeline(topo: Path, work: Path) -> None:
    """1. The user's path, one CLI process per step."""
    store = work / "topo.zarr"
    cpu = children_cpu()
    t_ingest, _ = run_cli("ingest", str(topo), "--store", str(store))
    t_compute, summary = run_cli("compute", "--store", str(store))  # progress on stderr, summary on stdout
    t_export, _ = run_cli("export", "--store", str(store), "-o", str(work / "distances.npz"))
    total = t_ingest + t_compute + t_export
    with np.load(work / "distances.npz", allow_pickle=False) as npz:
        shape, nan = npz["distance"].shape, int(np.isnan(npz["distance"]).sum())
    print("1. ingest -> compute -> export, 90 seed networks (4005 pairs), CLI, default local cluster")
    print(f"   ingest {t_ingest:6.1f} s   compute {t_compute:6.1f} s   export {t_export:5.1f} s   total {total:6.1f} s (target < 120 s)")
    print(f"   CPU of the child processes {children_cpu() - cpu:.0f} s; exported {shape}, {nan} NaN")
    print(f"   {summary}")


def copy_first(src: Path, dst: Path, n: int) -> Path:
    """A new store holding the first n networks of ``src``."""
    source = TopologyStore.open(src)
    target = TopologyStore.create(dst, source.shapes)
    target.append(list(zip(source.records()[:n], source.read_networks(np.arange(n)))))
    return dst


def scaling(store: Path, work: Path, n: int, tile: int) -> list[RunStats]:
    """2. The same population with 1 and 2 worker processes; the cluster's start-up is not counted."""
    runs = []
    for workers in (1, 2):
        path = copy_first(store, work / f"scale{workers}.zarr", n)
        _, stats = compute(path, tile=tile, cluster=ClusterSpec(n_workers=workers))
        runs.append(stats)
    one, two = runs
    print(f"\n2. throughput, {n} seed networks ({one.pairs} pairs), tile {tile}")
    for stats in runs:
        print(f"   {stats.workers} worker(s): {stats.wall_seconds:6.1f} s  {stats.pairs_per_second:6.1f} pairs/s  ({stats.tiles} tiles)")
    print(f"   speed-up {two.pairs_per_second / one.pairs_per_second:.2f}x (target >= 1.8x)")
    return runs


def synthetic_store(path: Path, n: int) -> Path:
    """n seed-shaped networks, a rewiring chain (0.5% of links a step), so tile neighbours differ as SET runs do."""
    store = TopologyStore.create(path, [(a, b) for a, b in zip(SEED_LAYERS, SEED_LAYERS[1:])])
    batch = []
    for name, masks in generate_population(SEED_LAYERS, 0.006, n, rewire=0.005, seed=0):
        batch.append((NetworkRecord(name), masks))
        if len(batch) == 250:
            store.append(batch)
            batch = []
    store.append(batch)
    return path


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def memory(work: Path, sizes, tile: int = 32) -> list[RunStats]:
    """3. Peak RSS of each worker computing one full tile from the far end of the matrix."""
    print(f"\n3. worker memory, synthetic {'-'.join(map(str, SEED_LAYERS))} networks, density 0.006, tile {tile}, 2 workers")
    runs = []
    for n in sizes:
        start = time.perf_counter()
        path = synthetic_store(work / f"mem{n}.zarr", n)
        built = time.perf_counter() - start
        store = TopologyStore.open(path, mode="r+")
        with connect(ClusterSpec(n_workers=2)) as client:
            full = plan_store(store, tile, recompute=False, slots=2)
            k = -(-n // tile)
            # two full off-diagonal tiles next to the diagonal, at the largest indices the store has
            chosen = tuple(t for t in full.tasks if (t.a, t.b) in {(k - 2, k - 3), (k - 3, k - 4)})
            baseline = client.run(lambda: __import__("psutil").Process().memory_info().rss)
            stats = run_plan(client, path, Plan(n, tile, chosen))
        peak = max(stats.peak_rss.values())
        print(
            f"   N={n:5d}: store {du(path) / MB:6.1f} MB (built in {built:.0f} s); {stats.tiles} tiles, {stats.pairs} pairs in "
            f"{stats.wall_seconds:.0f} s; worker RSS idle {max(baseline.values()) / MB:.0f} MB, peak {peak / MB:.0f} MB (target < 1024 MB)"
        )
        runs.append(stats)
    return runs


def overhead(runs: list[RunStats]) -> None:
    """4. What the tasks spend outside nnstd_prepared, from their own timers."""
    print("\n4. time outside the kernel (task time = open store, read + prepare networks, kernel, write tile)")
    for stats in runs:
        extra = stats.task_seconds / stats.kernel_seconds - 1
        print(
            f"   N={stats.n_networks:5d} tile {stats.tile:2d} {stats.workers} worker(s): tasks {stats.task_seconds:7.1f} s, kernel "
            f"{stats.kernel_seconds:7.1f} s: +{100 * extra:.1f}% (target < 5%)"
        )
        other = stats.task_seconds - stats.kernel_seconds - stats.read_seconds - stats.write_seconds
        print(
            f"   {'':35s}read+prepare {stats.read_seconds:5.1f} s, write {stats.write_seconds:4.1f} s, rest {other:4.1f} s; "
            f"workers busy {stats.task_seconds / (stats.workers * stats.wall_seconds):.0%} of the wall time"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topo", type=Path, default=DEFAULT_TOPO, help="the paper's topologies (default ../shared/topo)")
    parser.add_argument("--quick", action="store_true", help="40 networks for the scaling run, N=500 only for memory")
    parser.add_argument("--only", default="1234", help="the figures to measure, e.g. --only 12 (4 needs 2 or 3)")
    args = parser.parse_args()
    if not args.topo.is_dir():
        sys.exit(f"{args.topo}: not found (pass --topo DIR)")
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, load average {load()}\n")
    with tempfile.TemporaryDirectory(prefix="bench-compute-") as tmp:
        work = Path(tmp)
        store, runs = work / "topo.zarr", []
        if "1" in args.only:
            pipeline(args.topo, work)
        if "2" in args.only:
            if not store.exists():
                run_cli("ingest", str(args.topo), "--store", str(store))
            runs += scaling(store, work, 40 if args.quick else 90, tile=16)
        if "3" in args.only:
            runs += memory(work, (500,) if args.quick else (500, 2000))
        if "4" in args.only and runs:
            overhead(runs)
    print(f"\nload average at the end {load()}")


if __name__ == "__main__":
    main()
