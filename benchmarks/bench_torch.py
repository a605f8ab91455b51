"""PyTorch CNN populations: ingest rate of .pt checkpoints, time per pair and memory per worker, each against a baseline.

Usage: python benchmarks/bench_torch.py [--networks 16] [--sparsity 0.9] [--tile 8] [--pairs 40] [--repeat 3] [--topo ../shared/topo]

Builds N pruned VGG-like CNNs with torch (six 3x3 conv layers 3-64-64-128-128-256-256, a max-pool
after every second, a linear head 256*4*4 -> 10; `torch.nn.utils.prune.random_unstructured` at
--sparsity on every layer) and saves each as a training checkpoint {"model", "optimizer" (SGD with
momentum, one step), "epoch"}. Then prints, in one run on the same machine:

  1. ingest: reading + checking every checkpoint (no torch) against torch.load(weights_only=True)
     of the same files (the ratio of CPU times), and writing the store;
  2. per pair: the median NNSTD time of CNN pairs (prepared networks) against the median of the
     paper's SET networks 784-784-784-784-10 (../shared/topo, epoch 0; synthetic ones of the same
     density if absent), timed alternately so both see the same load, and each layer's share;
  3. compute with one local worker process: pairs/s and the worker's peak memory against its idle
     memory (the ratio). torch runs in a separate process, so no worker inherits its memory.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from nnstd_dist.sources.discover import discover, read_networks
from nnstd_dist.kernel.distance import nnstd_prepared, prepare
from nnstd_dist.store.topology_store import TopologyStore, add_networks

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


def clocks() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def since(start: tuple[float, float]) -> tuple[float, float]:
    """(wall, CPU) seconds since ``start``; CPU time is what the shared cores' other jobs disturb least."""
    wall, cpu = clocks()
    return wall - start[0], cpu - start[1]


def torch_load_seconds(files: list[Path], repeat: int) -> tuple[float, float]:
    import torch

    best = (math.inf, math.inf)
    for _ in range(repeat):
        start = clocks()
        for path in files:
            torch.load(path, weights_only=True)
        best = min(best, since(start), key=lambda t: t[1])
    return best


def in_fresh_process(function, *args):
    """Run torch's part in a spawned process: this one stays free of torch, so its workers' peak memory is their own."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(function, args)


def ingest(folder: Path, store: Path, repeat: int):
    """(wall, CPU) seconds reading with nnstd-dist and with torch.load(weights_only=True) (best of ``repeat``), writing the store; file bytes."""
    files = sorted(folder.glob("*.pt"))
    ours = (math.inf, math.inf)
    for _ in range(repeat):
        start = clocks()
        networks = read_networks(discover([folder]))
        ours = min(ours, since(start), key=lambda t: t[1])
    theirs = in_fresh_process(torch_load_seconds, files, repeat)
    start = clocks()
    add_networks(store, networks)
    return ours, theirs, since(start), sum(p.stat().st_size for p in files)


def interleaved_pair_times(cnn, blocks, fc, pairs: int) -> tuple[np.ndarray, np.ndarray]:
    """(wall, CPU) seconds per pair, shape (pairs, 2), for CNN pairs and baseline pairs timed alternately (same load)."""
    prepared_cnn = [prepare(masks, blocks) for masks in cnn]
    prepared_fc = [prepare(masks) for masks in fc]
    cnn_pairs = [(i, j) for i in range(len(cnn)) for j in range(i)]
    fc_pairs = [(i, j) for i in range(len(fc)) for j in range(i)]
    times = np.zeros((2, pairs, 2))
    for p in range(pairs):
        for which, (networks, all_pairs) in enumerate(((prepared_cnn, cnn_pairs), (prepared_fc, fc_pairs))):
            i, j = all_pairs[p % len(all_pairs)]
            start = clocks()
            nnstd_prepared(networks[i], networks[j])
            times[which, p] = since(start)
    return times[0], times[1]


def layer_shares(networks, blocks, pairs: int = 10) -> np.ndarray:
    """Each layer's share of a pair's CPU time: time(first k+1 layers) - time(first k layers), over ``pairs`` pairs."""
    n_layers = len(networks[0])
    cumulative = np.zeros(n_layers)
    for i, j in [(i, j) for i in range(len(networks)) for j in range(i)][:pairs]:
        for k in range(1, n_layers + 1):
            a, b = prepare(networks[i][:k], blocks[:k]), prepare(networks[j][:k], blocks[:k])
            start = time.process_time()
            nnstd_prepared(a, b)
            cumulative[k - 1] += time.process_time() - start
    per_layer = np.clip(np.diff(cumulative, prepend=0.0), 0, None)
    return per_layer / per_layer.sum()


def set_networks(topo: Path, n: int):
    if topo.is_dir():
        from nnstd_dist.sources.formats import load_set_network

        runs = sorted(p for p in topo.iterdir() if (p / "epoch_000").is_dir())[:n]
        if runs:
            return [load_set_network(r / "epoch_000") for r in runs], f"the paper's SET networks ({topo}, epoch 0)"
    rng = np.random.default_rng(0)
    shapes = [(784, 784)] * 3 + [(784, 10)]
    nets = [[rng.random(s) < (0.006 if s[1] > 10 else 1.0) for s in shapes] for _ in range(n)]
    return nets, "synthetic SET-shaped networks (784-784-784-784-10, density 0.6%)"


def worker_memory(store: Path, tile: int):
    from nnstd_dist.engine import ClusterSpec, connect, plan_store, run_plan

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
    parser.add_argument("--pairs", type=int, default=40, help="pairs timed for figure 2, each kind")
    parser.add_argument("--repeat", type=int, default=3, help="ingest runs; the best is printed")
    parser.add_argument("--topo", type=Path, default=TOPO)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder = tmp / "runs"
        folder.mkdir()
        made = in_fresh_process(write_population, folder, args.networks, args.sparsity)
        print(f"built {args.networks} pruned VGG-like checkpoints with torch in {made:.1f} s")

        ours, theirs, write, size = ingest(folder, tmp / "cnn.zarr", args.repeat)
        n = args.networks
        print(
            f"\n1. ingest of {n} checkpoints ({size / MB / n:.1f} MB each), best of {args.repeat}: reading and checking "
            f"{ours[0]:.2f} s wall, {ours[1]:.2f} s CPU = {n / ours[0]:.1f} networks/s, {size / MB / ours[0]:.0f} MB/s; "
            f"baseline torch.load(weights_only=True) of the same files {theirs[0]:.2f} s wall, {theirs[1]:.2f} s CPU; "
            f"ratio {ours[1] / theirs[1]:.2f}x (CPU); store written in {write[0]:.2f} s"
        )
        store = TopologyStore.open(tmp / "cnn.zarr")
        density = store.connections().sum(axis=0) / np.array([a * b for a, b in store.shapes]) / n
        for layer, d in zip(store.layers, density):
            print(f"   {layer['param']:>14} {str(tuple(layer['weight_shape'])):>18}  block {layer['block']:3d}  density {100 * d:.1f}%")

        cnn = store.read_masks(np.arange(n))
        fc, fc_label = set_networks(args.topo, 10)
        cnn_times, fc_times = interleaved_pair_times(cnn, store.blocks, fc, args.pairs)
        (cnn_wall, cnn_cpu), (fc_wall, fc_cpu) = np.median(cnn_times, axis=0), np.median(fc_times, axis=0)
        print(
            f"\n2. per pair (median of {args.pairs}, timed alternately): VGG-like CNN {1e3 * cnn_wall:.1f} ms wall, "
            f"{1e3 * cnn_cpu:.1f} ms CPU; baseline {fc_label}: {1e3 * fc_wall:.1f} ms wall, {1e3 * fc_cpu:.1f} ms CPU; "
            f"ratio {cnn_cpu / fc_cpu:.2f}x (CPU)"
        )
        shares = layer_shares(cnn, store.blocks)
        print("   CPU share per layer: " + ", ".join(f"{layer['param']} {100 * s:.0f}%" for layer, s in zip(store.layers, shares)))

        idle, stats = worker_memory(tmp / "cnn.zarr", args.tile)
        peak = max(stats.peak_rss.values())
        print(
            f"\n3. compute, 1 worker, tile {args.tile}: {stats.pairs} pairs in {stats.wall_seconds:.1f} s ({stats.pairs_per_second:.1f} pairs/s); "
            f"worker memory idle {idle / MB:.0f} MB, peak {peak / MB:.0f} MB; ratio {peak / idle:.2f}x"
        )


if __name__ == "__main__":
    main()
