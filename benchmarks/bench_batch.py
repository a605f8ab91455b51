"""Batch runs: how good the time left is after 10 % of a run, and how soon a log or a terminal shows the first pairs.

Run from the repository root:

    .venv/bin/python benchmarks/bench_batch.py                 # all parts
    .venv/bin/python benchmarks/bench_batch.py --part eta      # the ETA on 150 and 1,000 generated networks
    .venv/bin/python benchmarks/bench_batch.py --part first    # N = 10,000: first pairs shown, in a log and on a terminal
    .venv/bin/python benchmarks/bench_batch.py --part resume   # N = 10,000, half the tiles done: start to the first new tile

eta: full `compute` runs (library, a LocalCluster of 2 single-threaded workers) of generated populations
(a rewiring chain, so far pairs are slower than near ones): 150 networks of the paper's shape, the population
`nnstd-dist generate --networks 150` writes, and 1,000 networks of 24-24-8 (``--small``, exact solver). Every progress
callback is recorded; at the first one with >= 10 % of the pairs done, the ETA shown (from the work left)
and the ETA the rate so far gives are compared with the time the run then really took. Prints both errors.
first: a store of 10,000 networks of 32-32-16-4 (as bench_scale's bookkeeping); `nnstd-dist compute` is
started with its stderr a pipe (a log) and then a pseudo-terminal; the time from the start to the first
line showing pairs done is printed, then the run is interrupted (Ctrl-C).
resume: the same 10,000 networks, results of tile 32 with about half the tiles (the first tile rows) written
as tile records with random numbers and packed into row files; the time from calling `compute` (cluster running) to its first finished tile.
Figures only; 2 shared cores make absolute times noisy, so the load average is printed.
"""

from __future__ import annotations

import argparse
import os
import pty
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from nnstd_dist.engine import ClusterSpec, compute, connect
from nnstd_dist.records import NetworkRecord
from nnstd_dist.sources.generate import generate_population
from nnstd_dist.store.topology_store import TopologyStore
from nnstd_dist.tiles import extent

NNSTD_DIST = str(Path(sys.executable).with_name("nnstd-dist"))
PAPER_LAYERS = (784, 784, 784, 784, 10)
SMALL_LAYERS = (32, 32, 16, 4)


def make_store(path: Path, layers, density: float, n: int, rewire: float) -> None:
    store = TopologyStore.create(path, list(zip(layers, layers[1:])))
    batch = []
    for name, masks in generate_population(layers, density, n, rewire=rewire, seed=0):
        batch.append((NetworkRecord(name), masks))
        if len(batch) == 500:
            store.append(batch)
            batch = []
    store.append(batch)


def eta_run(path: Path, solver: str, label: str) -> None:
    seen = []
    with connect(ClusterSpec(n_workers=2)) as client:
        start = time.perf_counter()
        plan, stats = compute(path, client=client, solver=solver, recompute=True,
                              on_progress=lambda p: p.note or seen.append((time.perf_counter() - start, p.pairs_done, p.pairs_total, p.eta, p.rate, p.pairs_running)))
        wall = time.perf_counter() - start
    at, done, total, eta, rate, _ = next(s for s in seen if s[1] >= 0.1 * s[2])
    truth = wall - at
    by_rate = (total - done) / rate
    first = next((s[0] for s in seen if s[1] + s[5] > 0), None)  # pairs on disk or in running tiles
    print(f"{label}: {total} pairs, tile {plan.tile}, {stats.wall_seconds:.1f} s ({stats.pairs_per_second:.1f} pairs/s, {solver}); "
          f"first pairs shown after {first:.1f} s")
    print(f"    at {100 * done / total:.1f} % ({at:.1f} s): ETA {eta:.0f} s, truth {truth:.0f} s: error {100 * (eta - truth) / truth:+.1f} % "
          f"(at the rate so far: {by_rate:.0f} s, {100 * (by_rate - truth) / truth:+.1f} %)")


def eta(work: Path, solver: str, small: int, runs) -> None:
    if "paper" in runs:
        paper = work / "paper150.zarr"
        make_store(paper, PAPER_LAYERS, 0.006, 150, rewire=0.01)
        eta_run(paper, solver, "150 networks of 784-784-784-784-10")
    if "small" not in runs:
        return
    layers = (24, 24, 8)  # ~0.5 ms a pair: 1,000 networks in a few minutes on 2 cores
    many = work / "many.zarr"
    make_store(many, layers, 0.25, small, rewire=0.01)
    eta_run(many, "exact", f"{small} networks of {'-'.join(map(str, layers))}")


def first_line(path: Path, terminal: bool, limit: float) -> float | None:
    """Seconds from starting `nnstd-dist compute` to its first line (or redraw) showing pairs done; None after ``limit``."""
    if terminal:
        reader, writer = pty.openpty()
    else:
        reader, writer = os.pipe()
    start = time.perf_counter()
    # Ctrl-C as from a terminal; a shell's background job would pass on SIGINT ignored
    proc = subprocess.Popen([NNSTD_DIST, "compute", "--store", str(path), "--n-workers", "2", "--recompute"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=writer,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    os.close(writer)
    text, found = b"", None
    while found is None and time.perf_counter() - start < limit:
        ready, _, _ = select.select([reader], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(reader, 4096)
            except OSError:
                break
            if not chunk:
                break
            text += chunk
            if any(int(m) > 0 for m in re.findall(rb"\] (\d+)/\d+ pairs", text)):
                found = time.perf_counter() - start
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    os.close(reader)
    return found


def first(work: Path, n: int, limit: float) -> None:
    path = work / "small.zarr"
    make_store(path, SMALL_LAYERS, 0.3, n, rewire=0.005)
    for terminal in (False, True):
        seconds = first_line(path, terminal, limit)
        where = "a terminal" if terminal else "a log (pipe)"
        print(f"N = {n}, first pairs shown on {where}: " + (f"none within {limit:.0f} s" if seconds is None else f"{seconds:.1f} s after the start"))


class _FirstTile(Exception):
    """Raised from the progress callback at the first finished tile: the measurement is done."""


def half_done(path: Path, tile: int) -> int:
    """Results of tile ``tile`` with the tiles of the first rows, about half of them, written (random numbers) and packed
    into row files as a run leaves them: computing half of 50 million pairs would take hours here."""
    store = TopologyStore.open(path, mode="r+")
    store.init_results(tile)
    n, n_t = store.n_networks, -(-store.n_networks // tile)
    rows = round(n_t / 2**0.5)
    rng = np.random.default_rng(0)
    for a in range(rows):
        for b in range(a + 1):
            (r0, r1), (c0, c1) = extent(a, tile, n), extent(b, tile, n)
            store.write_tile(a, b, rng.random((store.n_layers, r1 - r0, c1 - c0)), n)
        store.pack_row(a)
    return rows * (rows + 1) // 2


def resume(work: Path, n: int, tile: int) -> None:
    """Start-to-first-new-tile of a resume: the time from calling compute to its first finished tile."""
    path = work / "resume.zarr"
    make_store(path, SMALL_LAYERS, 0.3, n, rewire=0.005)
    start = time.perf_counter()
    done = half_done(path, tile)
    total = -(-n // tile) * (-(-n // tile) + 1) // 2
    print(f"N = {n}, tile {tile}: {done} of {total} tiles written and marked done in {time.perf_counter() - start:.0f} s; "
          f"store {sum(f.stat().st_size for f in path.rglob('*') if f.is_file()) / 1e9:.2f} GB")
    store = TopologyStore.open(path)
    for label, step in (("done tiles from the records' headers", store.tile_markers), ("every record read and checked", store.damaged_tiles)):
        start = time.perf_counter()
        step()
        print(f"{label}: {time.perf_counter() - start:.2f} s")
    with connect(ClusterSpec(n_workers=2)) as client:
        client.wait_for_workers(2)
        seen = {}

        def on_progress(p):
            if p.tiles_done and "first" not in seen:
                seen["first"] = time.perf_counter() - start
                raise _FirstTile()

        start = time.perf_counter()
        try:
            compute(path, client=client, on_progress=on_progress)
        except _FirstTile:
            pass
    print(f"resume, start to the first new tile: {seen['first']:.2f} s (cluster already running)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("eta", "first", "resume", "all"), default="all")
    parser.add_argument("--tile", type=int, default=32, help="tile of the resume store [32, as bench_scale's bookkeeping]")
    parser.add_argument("--solver", default="fast", help="solver of the ETA runs [fast: minutes on 2 cores]")
    parser.add_argument("--small", type=int, default=1000, help="networks of the second ETA run")
    parser.add_argument("--eta-runs", default="paper,small", help="which ETA runs: paper (150 networks), small (--small networks)")
    parser.add_argument("--networks", type=int, default=10_000, help="networks of the first-progress store")
    parser.add_argument("--limit", type=float, default=300, help="seconds to wait for the first pairs shown")
    args = parser.parse_args()
    print(f"load average at the start: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        if args.part in ("eta", "all"):
            eta(Path(tmp), args.solver, args.small, args.eta_runs.split(","))
        if args.part in ("first", "all"):
            first(Path(tmp), args.networks, args.limit)
        if args.part in ("resume", "all"):
            resume(Path(tmp), args.networks, args.tile)
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
