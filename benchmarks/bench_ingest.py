"""Time `nnstd-dist ingest` of the 90 seed networks (../shared/topo) into a fresh store, its size, and reading masks back.

Usage: python benchmarks/bench_ingest.py [--repeat 3] [--topo ../shared/topo]

Prints, best of --repeat runs each: the ingest time (reading and checking every file, then
writing the store), the store's bytes (file sizes) and files, bytes per connection for every
layer's masks, and the time to read the layer-0 masks of 64 networks (consecutive and scattered
indices) as CSR. Targets (issue 3): ingest < 10 s, reading 64 masks < 0.5 s.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from nnstd_dist.sources.discover import discover, read_networks
from nnstd_dist.store.inventory import file_sizes
from nnstd_dist.store.topology_store import TopologyStore, add_networks

TOPO = Path(__file__).resolve().parents[1].parent / "shared" / "topo"


def time_ingest(topo: Path, store: Path) -> tuple[float, float]:
    """Seconds to read and check the sources, and to write them into a new store."""
    started = time.perf_counter()
    networks = read_networks(discover([topo]))
    read = time.perf_counter() - started
    add_networks(store, networks)
    return read, time.perf_counter() - started - read


def time_read(store: TopologyStore, indices) -> float:
    started = time.perf_counter()
    masks = store.read_layer(indices, 0)
    seconds = time.perf_counter() - started
    assert len(masks) == len(indices)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure; the best is printed")
    parser.add_argument("--topo", type=Path, default=TOPO)
    args = parser.parse_args()
    if not args.topo.is_dir():
        raise SystemExit(f"{args.topo}: absent; the seed topologies are needed")
    with tempfile.TemporaryDirectory() as tmp:
        runs = [time_ingest(args.topo, Path(tmp) / f"s{i}.zarr") for i in range(args.repeat)]
        read, write = min(runs, key=sum)
        store = TopologyStore.open(Path(tmp) / "s0.zarr")
        n = store.n_networks
        print(f"ingest of {n} networks: {read + write:.2f} s (reading and checking {read:.2f} s, writing {write:.2f} s)")

        sizes = file_sizes(store)
        total_bytes, files, on_disk = (sum(s[x] for s in sizes.values()) for x in range(3))
        connections = store.connections().sum(axis=0)
        print(f"store: {total_bytes / 1e6:.2f} MB in {files} files ({on_disk / 1e6:.2f} MB on disk), {store.connections().sum()} connections")
        for k, shape in enumerate(store.shapes):
            layer_bytes = sizes[f"mask_l{k}"][0]
            print(
                f"  mask_l{k} {shape[0]}x{shape[1]}: {layer_bytes / 1e3:.0f} kB, {connections[k]} connections, "
                f"{layer_bytes / connections[k]:.2f} bytes/connection ({8 * layer_bytes / (n * shape[0] * shape[1]):.3f} bits/entry)"
            )
        mask_bytes = sum(sizes[f"mask_l{k}"][0] for k in range(store.n_layers))
        print(f"  all masks: {mask_bytes / connections.sum():.2f} bytes/connection")

        scattered = np.random.default_rng(0).choice(n, 64, replace=False)
        for label, indices in (("consecutive 0..63", np.arange(64)), ("scattered", scattered)):
            best = min(time_read(store, indices) for _ in range(args.repeat))
            print(f"read layer 0 of 64 networks ({label}): {best:.3f} s")


if __name__ == "__main__":
    main()
