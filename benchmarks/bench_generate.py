"""Time `write_networks` for the seed-experiment shapes (784-784-784-784-10, density 0.006, rewire 0.01).

Usage: python benchmarks/bench_generate.py [--networks 1000 10000] [--budget 180]

Measures each N in a fresh temporary directory and prints networks/s and MB written. An N whose
run would, at the rate measured for the previous N, exceed --budget seconds is skipped (and said
so) rather than run or estimated.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from nnstd_dist.sources.generate import generate_population, write_networks

LAYERS = [784, 784, 784, 784, 10]


def time_generation(n: int) -> float:
    """Seconds to make n networks in memory (the maths alone)."""
    started = time.perf_counter()
    for _ in generate_population(LAYERS, 0.006, n, 0.01, seed=0):
        pass
    return time.perf_counter() - started


def time_writing(n: int) -> tuple[float, int]:
    """Seconds and bytes to make and write n networks."""
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        n_bytes = sum(size for _, size in write_networks(Path(tmp) / "pop", LAYERS, 0.006, n, 0.01, seed=0))
        return time.perf_counter() - started, n_bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--budget", type=float, default=180.0, help="skip an N expected to take longer (seconds)")
    args = parser.parse_args()
    rate = None
    for n in args.networks:
        if rate is not None and n / rate > args.budget:
            print(f"N={n}: skipped, over the {args.budget:.0f} s budget at {rate:.0f} networks/s")
            continue
        maths = time_generation(n)
        seconds, n_bytes = time_writing(n)
        rate = n / seconds
        print(
            f"N={n}: {seconds:.1f} s, {rate:.0f} networks/s, {n_bytes / 1e6:.1f} MB written "
            f"({n_bytes / 1e6 / seconds:.1f} MB/s); generating alone {maths:.1f} s ({n / maths:.0f} networks/s)"
        )


if __name__ == "__main__":
    main()
