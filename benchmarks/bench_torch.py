"""PyTorch CNN populations: ingest rate of .pt checkpoints, time per pair and memory per worker, each against a baseline.

Usage: python benchmarks/bench_torch.py [--networks 16] [--sparsity 0.9] [--tile 8] [--topo ../shared/topo]

Builds N pruned VGG-like CNNs with torch (six 3x3 conv layers 3-64-64-128-128-256-256, a max-pool
after every second, a linear head 256*4*4 -> 10; `torch.nn.utils.prune.random_unstructured` at
--sparsity on every layer) and saves each as a training checkpoint {"model", "optimizer" (SGD with
momentum, one step), "epoch"}. Then prints, in one run on the same machine:

  1. ingest: reading + checking every checkpoint (no torch) against torch.load(weights_only=True)
     of the same files (the ratio), and writing the store;
  2. per pair: the median NNSTD time of CNN pairs (prepared networks) against the median of the
     paper's SET networks 784-784-784-784-10 (../shared/topo, epoch 0; synthetic ones of the same
     density if absent), with each layer's share;
  3. compute with one local worker process: pairs/s and the worker's peak memory against its idle
     memory (the ratio).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from nnstd_dist.ingest import discover, read_networks
from nnstd_dist.kernel import nnstd_prepared, prepare
from nnstd_dist.store import TopologyStore, add_networks

TOPO = Path(__file__).resolve().parents[1].parent / "shared" / "topo"
MB = 2**20
CHANNELS = (3, 64, 64, 128, 128, 256, 256)


def vgg_like(torch, seed: int, sparsity: float):
    import torch.nn.utils.prune as prune

    nn = torch.nn
    torch.manual_seed(seed)
    layers = []
    for k in range(6):
        layers += [nn.Conv2d(CHANNELS[k], CHANNELS[k + 1], 3, padding=1), nn.BatchNorm2d(CHANNELS[k + 1]), nn.ReLU()]
        if k % 2:
            layers.append(nn.MaxPool2d(2))
    model = nn.Sequential(*layers, nn.Flatten(), nn.Linear(256 * 4 * 4, 10))
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            prune.random_unstructured(module, "weight", sparsity)
    return model


def write_population(folder: Path, n: int, sparsity: float) -> float:
    import torch

    started = time.perf_counter()
    for seed in range(n):
        model = vgg_like(torch, seed, sparsity)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        model(torch.randn(2, 3, 32, 32)).sum().backward()
        optimizer.step()
        torch.save({"epoch": 1, "model": model.state_dict(), "optimizer": optimizer.state_dict()}, folder / f"vgg_{seed:03d}.pt")
    return time.perf_counter() - started


def ingest(folder: Path, store: Path) -> tuple[float, float, float, int]:
    """Seconds reading with nnstd-dist, reading with torch.load(weights_only=True), writing the store; file bytes."""
    files = sorted(folder.glob("*.pt"))
    started = time.perf_counter()
    networks = read_networks(discover([folder]))
    ours = time.perf_counter() - started
    import torch

    started = time.perf_counter()
    for path in files:
        torch.load(path, weights_only=True)
    theirs = time.perf_counter() - started
    started = time.perf_counter()
    add_networks(store, networks)
    write = time.perf_counter() - started
    return ours, theirs, write, sum(p.stat().st_size for p in files)


def pair_times(networks, blocks=None, limit: int = 30) -> tuple[list[float], np.ndarray]:
    """Seconds per pair (i > j, the first `limit` pairs) and the summed seconds per layer (timed by prefixes)."""
    prepared = [prepare(masks, blocks) for masks in networks]
    pairs = [(i, j) for i in range(len(prepared)) for j in range(i)][:limit]
    times = []
    for i, j in pairs:
        started = time.perf_counter()
        nnstd_prepared(prepared[i], prepared[j])
        times.append(time.perf_counter() - started)
    n_layers = len(networks[0])
    per_layer = np.zeros(n_layers)
    for i, j in pairs[:10]:  # a layer's cost = time(first k+1 layers) - time(first k layers)
        for k in range(1, n_layers + 1):
            a = prepare(networks[i][:k], None if blocks is None else blocks[:k])
            b = prepare(networks[j][:k], None if blocks is None else blocks[:k])
            started = time.perf_counter()
            nnstd_prepared(a, b)
            per_layer[k - 1] += time.perf_counter() - started
    per_layer[1:] -= per_layer[:-1].copy()
    return times, np.clip(per_layer, 0, None)


def set_networks(topo: Path, n: int):
    if topo.is_dir():
        from nnstd_dist.formats import load_set_network

        runs = sorted(p for p in topo.iterdir() if (p / "epoch_000").is_dir())[:n]
        if runs:
            return [load_set_network(r / "epoch_000") for r in runs], f"the paper's SET networks ({topo}, epoch 0)"
    rng = np.random.default_rng(0)
    shapes = [(784, 784)] * 3 + [(784, 10)]
    nets = [[rng.random(s) < (0.006 if s[1] > 10 else 1.0) for s in shapes] for _ in range(n)]
    return nets, "synthetic SET-shaped networks (784-784-784-784-10, density 0.6%)"


def worker_memory(store: Path, tile: int):
    from nnstd_dist.schedule import ClusterSpec, connect, plan_store, run_plan

    s = TopologyStore.open(store, mode="r+")
    with connect(ClusterSpec(n_workers=1, threads_per_worker=1)) as client:
        idle = max(client.run(lambda: __import__("psutil").Process().memory_info().rss).values())
        plan = plan_store(s, tile, recompute=True, slots=1)
        stats = run_plan(client, store, plan)
    return idle, stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", type=int, default=16)
    parser.add_argument("--sparsity", type=float, default=0.9)
    parser.add_argument("--tile", type=int, default=8)
    parser.add_argument("--topo", type=Path, default=TOPO)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder = tmp / "runs"
        folder.mkdir()
        made = write_population(folder, args.networks, args.sparsity)
        print(f"built {args.networks} pruned VGG-like checkpoints with torch in {made:.1f} s")

        ours, theirs, write, size = ingest(folder, tmp / "cnn.zarr")
        n = args.networks
        print(
            f"\n1. ingest of {n} checkpoints ({size / MB / n:.1f} MB each): reading {ours:.2f} s = {n / ours:.1f} networks/s, "
            f"{size / MB / ours:.0f} MB/s; torch.load(weights_only=True) alone {theirs:.2f} s; ratio {ours / theirs:.2f}x; "
            f"store written in {write:.2f} s"
        )
        store = TopologyStore.open(tmp / "cnn.zarr")
        density = store.connections().sum(axis=0) / np.array([a * b for a, b in store.shapes]) / n
        for layer, d in zip(store.layers, density):
            print(f"   {layer['param']:>14} {str(tuple(layer['weight_shape'])):>18}  block {layer['block']:3d}  density {100 * d:.1f}%")

        cnn = store.read_masks(np.arange(n))
        cnn_times, cnn_layers = pair_times(cnn, store.blocks)
        fc, fc_label = set_networks(args.topo, 10)
        fc_times, _ = pair_times(fc)
        cnn_median, fc_median = statistics.median(cnn_times), statistics.median(fc_times)
        print(
            f"\n2. per pair: VGG-like CNN median {1e3 * cnn_median:.1f} ms over {len(cnn_times)} pairs; baseline {fc_label}: "
            f"median {1e3 * fc_median:.1f} ms over {len(fc_times)} pairs; ratio {cnn_median / fc_median:.2f}x"
        )
        share = cnn_layers / cnn_layers.sum()
        print("   share per layer: " + ", ".join(f"{layer['param']} {100 * s:.0f}%" for layer, s in zip(store.layers, share)))

        idle, stats = worker_memory(tmp / "cnn.zarr", args.tile)
        peak = max(stats.peak_rss.values())
        print(
            f"\n3. compute, 1 worker, tile {args.tile}: {stats.pairs} pairs in {stats.wall_seconds:.1f} s ({stats.pairs_per_second:.1f} pairs/s); "
            f"worker memory idle {idle / MB:.0f} MB, peak {peak / MB:.0f} MB; ratio {peak / idle:.2f}x"
        )


if __name__ == "__main__":
    main()
