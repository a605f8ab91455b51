"""Toward 10,000 networks: pairs/s per core of both solvers on generated networks, projected; N = 10,000 bookkeeping.

Run from the repository root:

    .venv/bin/python benchmarks/bench_scale.py                     # both parts, ~10 min on 2 idle cores
    .venv/bin/python benchmarks/bench_scale.py --part scale        # 1,000 networks, a fraction of the tiles
    .venv/bin/python benchmarks/bench_scale.py --part bookkeeping  # N = 10,000 without computing

scale: N generated networks of the paper's shape (784-784-784-784-10, density 0.006, a rewiring chain as
SET runs drift), a LocalCluster of 2 single-threaded workers; an evenly spread subset of the tiles (about
--seconds of work per solver) runs through the real scheduler and store. Prints pairs/s per core, ms per
pair per core, the projection to 10,000 networks (49,995,000 pairs) on 128 cores, the ratio fast/exact
from the same run, the share of task time outside the kernel (store, prepare, Python) and of
worker time outside tasks (Dask), and every worker's time split by where it went (kernel, read, write,
the rest of the task, between tasks, before its first task, after its last: the run's tail); besides
both solvers, fast with --max-layer 0 (Figure 4), whose quick kernel is where the tile must adapt.
bookkeeping: a store of 10,000 small networks (32-32-16-4); times the
plan, `info`, `compute --dry-run`, creating the result arrays and markers, and a NaN export of layer 0.
Figures only; the load average is printed because 2 shared cores make absolute times noisy.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nnstd_dist.sources.generate import generate_population
from nnstd_dist.engine.plan import Plan
from nnstd_dist.records import NetworkRecord
from nnstd_dist.engine import run as run_loop
from nnstd_dist.engine import ClusterSpec, connect, plan_store, run_plan
from nnstd_dist.store.topology_store import TopologyStore

NNSTD_DIST = str(Path(sys.executable).with_name("nnstd-dist"))
PAPER_LAYERS = (784, 784, 784, 784, 10)
SMALL_LAYERS = (32, 32, 16, 4)
TARGET_N, TARGET_CORES = 10_000, 128


def make_store(path: Path, layers, density: float, n: int) -> float:
    start = time.perf_counter()
    store = TopologyStore.create(path, list(zip(layers, layers[1:])))
    batch = []
    for name, masks in generate_population(layers, density, n, rewire=0.005, seed=0):
        batch.append((NetworkRecord(name), masks))
        if len(batch) == 500:
            store.append(batch)
            batch = []
    store.append(batch)
    return time.perf_counter() - start


def where_time_goes(results, run_start: float, run_end: float) -> dict[str, float]:
    """Seconds of worker time (workers x wall) by where it went, from each task's own start time and timers."""
    spent = dict.fromkeys(("kernel", "read + prepare", "write", "other in task", "between tasks", "start-up", "tail"), 0.0)
    by_worker: dict[str, list] = {}
    for r in results:
        by_worker.setdefault(r.worker, []).append(r)
        spent["kernel"] += r.kernel_seconds
        spent["read + prepare"] += r.read_seconds
        spent["write"] += r.write_seconds
        spent["other in task"] += r.seconds - r.kernel_seconds - r.read_seconds - r.write_seconds  # open the store, marker, plan
    for tasks in by_worker.values():
        tasks.sort(key=lambda r: r.started)
        spent["start-up"] += tasks[0].started - run_start
        spent["between tasks"] += sum(b.started - (a.started + a.seconds) for a, b in zip(tasks, tasks[1:]))
        spent["tail"] += run_end - (tasks[-1].started + tasks[-1].seconds)
    return spent


def scale(work: Path, n: int, seconds: float, tile: int | None, modes) -> None:
    path = work / "paper-shape.zarr"
    print(f"generating and storing {n} networks of shape {'-'.join(map(str, PAPER_LAYERS))}: {make_store(path, PAPER_LAYERS, 0.006, n):.1f} s")
    rates = {}
    results: list = []
    add = run_loop.RunStats.add

    def keep(self, result):  # every task's result, for the breakdown by worker below
        results.append(result)
        add(self, result)

    run_loop.RunStats.add = keep
    with connect(ClusterSpec(n_workers=2)) as client:
        for solver, max_layer in modes:
            store = TopologyStore.open(path, mode="r+")
            plan = plan_store(store, tile, recompute=True, slots=2, solver=solver, max_layer=max_layer)
            label = solver if max_layer is None else f"{solver}, layers 0..{max_layer}"
            choice = plan.choice
            chosen = f"tile {plan.tile} ({choice.reason}" + (f": {1e3 * choice.seconds_per_pair:.1f} ms/pair, {1e3 * choice.seconds_per_network:.1f} ms to read and prepare a network, timed on the client)" if choice.seconds_per_pair else ")")
            # a first small sample sizes the measured fraction to about `seconds` of work
            probe = run_plan(client, path, Plan(plan.n, plan.tile, plan.tasks[:2]))
            per_pair = probe.task_seconds / max(1, probe.pairs)
            wanted = max(4, int(seconds * 2 / (per_pair * plan.tile * plan.tile)))
            step = max(1, len(plan.tasks) // wanted)
            subset = plan.tasks[2::step][:wanted]
            results.clear()
            run_start = time.time()
            stats = run_plan(client, path, Plan(plan.n, plan.tile, subset))
            spent = where_time_goes(results, run_start, time.time())
            per_core = stats.pairs / stats.wall_seconds / 2
            rates[label] = per_core
            projected = TARGET_N * (TARGET_N - 1) // 2 / (per_core * TARGET_CORES)
            outside_kernel = 1 - stats.kernel_seconds / stats.task_seconds
            outside_tasks = 1 - stats.task_seconds / (stats.wall_seconds * 2)
            total = sum(spent.values())
            print(
                f"{label}: {chosen}; {stats.pairs} pairs in {len(subset)} of {len(plan.tasks)} tiles, {stats.wall_seconds:.1f} s wall; "
                f"{per_core:.1f} pairs/s per core = {1e3 / per_core:.1f} ms/pair/core; 10,000 networks on 128 cores: {projected / 3600:.2f} h\n"
                f"        task time outside the kernel (read, prepare, write): {100 * outside_kernel:.1f} %; "
                f"worker time outside tasks (Dask, idle): {100 * outside_tasks:.1f} %; kernel {1e3 * stats.kernel_seconds / stats.pairs:.1f} ms/pair; "
                f"{stats.task_seconds / len(subset):.1f} s per task\n"
                f"        worker time ({total:.1f} s): " + ", ".join(f"{k} {100 * v / total:.1f} %" for k, v in spent.items())
            )
    run_loop.RunStats.add = add
    if "fast" in rates and "exact" in rates:
        print(f"fast / exact pairs per second, same run: {rates['fast'] / rates['exact']:.2f}x")


def timed_cli(*args: str) -> float:
    start = time.perf_counter()
    subprocess.run([NNSTD_DIST, *args], check=True, capture_output=True)
    return time.perf_counter() - start


def bookkeeping(work: Path, n: int) -> None:
    path = work / "small.zarr"
    print(f"generating and storing {n} networks of shape {'-'.join(map(str, SMALL_LAYERS))}: {make_store(path, SMALL_LAYERS, 0.3, n):.1f} s")
    store = TopologyStore.open(path, mode="r+")
    start = time.perf_counter()
    plan = plan_store(store, None, recompute=False, slots=128, create=False)
    print(f"plan ({len(plan)} tiles of {plan.tile}, no results yet): {time.perf_counter() - start:.2f} s")
    print(f"`nnstd-dist compute --dry-run`: {timed_cli('compute', '--store', str(path), '--dry-run', '--n-workers', '2'):.2f} s")
    start = time.perf_counter()
    plan = plan_store(store, 32, recompute=True, slots=128)
    print(f"creating the result arrays and {plan.n_tiles} tile markers: {time.perf_counter() - start:.2f} s")
    print(f"`nnstd-dist info`: {timed_cli('info', '--store', str(path)):.2f} s")
    print(f"`nnstd-dist compute --dry-run` with results: {timed_cli('compute', '--store', str(path), '--dry-run', '--n-workers', '2'):.2f} s")
    out = work / "nan.npz"
    print(f"`nnstd-dist export --layer 0` (all NaN, {n} x {n}): {timed_cli('export', '--store', str(path), '--layer', '0', '-o', str(out), '-q'):.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["scale", "bookkeeping", "both"], default="both")
    parser.add_argument("--networks", type=int, default=1000, help="networks for the scale part [1000]")
    parser.add_argument("--seconds", type=float, default=60, help="work per solver in the scale part, in core-seconds per core [60]")
    parser.add_argument("--tile", type=int, default=None, help="tile size of the scale part [default: compute's adaptive choice]")
    parser.add_argument("--modes", default="exact,fast,fast:0", help="solver[:max layer], comma-separated [exact,fast,fast:0]")
    parser.add_argument("--big", type=int, default=TARGET_N, help="networks for the bookkeeping part [10000]")
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp:
        if args.part in ("scale", "both"):
            modes = [(m.split(":")[0], int(m.split(":")[1]) if ":" in m else None) for m in args.modes.split(",")]
            scale(Path(tmp), args.networks, args.seconds, args.tile, modes)
        if args.part in ("bookkeeping", "both"):
            bookkeeping(Path(tmp), args.big)


if __name__ == "__main__":
    main()
