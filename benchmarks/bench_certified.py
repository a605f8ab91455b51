"""How often the fast rule certifies its choices: the paper's networks, generated populations, pruned MLPs.

Run from the repository root (the paper's part needs ../shared/topo, or pass --topo):

    .venv/bin/python benchmarks/bench_certified.py                  # all populations, a few minutes
    .venv/bin/python benchmarks/bench_certified.py --part generated

For every population: the pairs (i > j) whose fast distance is certified (every choice among provably
interchangeable neurons, nnstd_dist.kernel.nnstd_certified), the networks whose relabelled copy (every hidden
layer renumbered at random) is certified and at distance 0 in every layer, and the CPU time per pair.
Populations: the paper's 90 SET networks (10 runs x 9 epochs, 784-784-784-784-10; all 4,005 pairs with
--all-pairs, else the 45 pairs within each epoch); generated ones (nnstd_dist.sources.generate: chains rewiring
1 % per step and independent networks, of the paper's shape at 0.6 % and of a small 64-32-32-10 shape at 5 %, where
empty neurons and twins abound); magnitude-pruned MLPs (dense Gaussian 256-128-128-10 weights of 10 seeds, each
pruned to its largest 10 % and 3 % of weights per layer, numpy only); regular ones, where colour refinement cannot
tell neurons apart (4-5-5-5-5-3 and 10-10-10-10-3, every output neuron reading 2 inputs at random circulant
offsets, every network relabelled). Figures only, nothing asserted.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

from nnstd_dist.kernel import nnstd_certified, prepare  # noqa: E402
from nnstd_dist.sources.formats import load_set_network  # noqa: E402
from nnstd_dist.sources.generate import generate_population  # noqa: E402

DEFAULT_TOPO = Path(__file__).resolve().parents[1].parent / "shared" / "topo"


def relabelled(net, rng):
    """The same network with every hidden layer's neurons renumbered (columns of layer k, rows of layer k+1)."""
    masks = [sp.csc_matrix(m) for m in net.masks]
    for k in range(len(masks) - 1):
        perm = rng.permutation(masks[k].shape[1])
        masks[k], masks[k + 1] = masks[k][:, perm], sp.csr_matrix(masks[k + 1])[perm]
    return prepare(masks)


def report(label: str, nets, pairs, rng) -> None:
    for net in nets:
        net.fast  # noqa: B018 -- once per network, as a task does
    start, certified = time.process_time(), 0
    for i, j in pairs:
        certified += bool(nnstd_certified(nets[i], nets[j], solver="fast")[1])
    per_pair = (time.process_time() - start) / max(len(pairs), 1)
    copies = 0
    for net in nets:
        values, ok = nnstd_certified(net, relabelled(net, rng), solver="fast")
        copies += bool(ok) and not values.any()
    print(f"  {label}: certified pairs {certified:,} / {len(pairs):,} ({100 * certified / max(len(pairs), 1):.1f} %), "
          f"relabelled copies certified at 0 {copies} / {len(nets)}, {1e3 * per_pair:.2f} ms CPU per pair")


def paper(topo: Path, all_pairs: bool, rng) -> None:
    runs = sorted(p.name for p in topo.iterdir() if p.is_dir())
    epochs = sorted({e.name for run in runs for e in (topo / run).iterdir() if e.name.startswith("epoch_")})
    nets, epoch_of = [], []
    for epoch in epochs:
        for run in runs:
            nets.append(prepare(load_set_network(topo / run / epoch)))
            epoch_of.append(epoch)
    pairs = [(i, j) for i in range(len(nets)) for j in range(i) if all_pairs or epoch_of[i] == epoch_of[j]]
    report(f"paper, {len(nets)} networks ({'all pairs' if all_pairs else 'pairs within an epoch'})", nets, pairs, rng)


def generated(rng) -> None:
    for layers, density in (((784, 784, 784, 784, 10), 0.006), ((64, 32, 32, 10), 0.05)):
        for mode in ("chain", "independent"):
            nets = [prepare(masks) for _, masks in generate_population(layers, density, 12, rewire=0.01, seed=3, mode=mode)]
            pairs = [(i, j) for i in range(len(nets)) for j in range(i)]
            report(f"generated {'-'.join(map(str, layers))} at {100 * density:g} %, {mode}, {len(nets)} networks", nets, pairs, rng)


def pruned_mlps(rng) -> None:
    sizes = (256, 128, 128, 10)
    for keep in (0.10, 0.03):
        nets = []
        for seed in range(10):
            weights = np.random.default_rng(seed)
            layers = []
            for n_in, n_out in zip(sizes[:-1], sizes[1:]):
                w = np.abs(weights.standard_normal((n_in, n_out)))
                layers.append(w >= np.quantile(w, 1 - keep))  # magnitude pruning, per layer
            nets.append(prepare(layers))
        pairs = [(i, j) for i in range(len(nets)) for j in range(i)]
        report(f"magnitude-pruned MLPs {'-'.join(map(str, sizes))}, {100 * keep:g} % kept, {len(nets)} networks", nets, pairs, rng)


def circulant(n_in: int, n_out: int, offsets) -> np.ndarray:
    """Output j reads inputs (j + o) mod n_in: every neuron of the layer has the same in-degree (regular)."""
    mask = np.zeros((n_in, n_out), bool)
    for j in range(n_out):
        mask[(j + np.asarray(offsets)) % n_in, j] = True
    return mask


def regular(rng) -> None:
    for sizes in ((4, 5, 5, 5, 5, 3), (10, 10, 10, 10, 3)):
        nets = []
        for _ in range(20):
            layers = [circulant(n_in, n_out, rng.choice(n_in, 2, replace=False)) for n_in, n_out in zip(sizes[:-1], sizes[1:])]
            nets.append(relabelled(prepare(layers), rng))
        pairs = [(i, j) for i in range(len(nets)) for j in range(i)]
        report(f"regular {'-'.join(map(str, sizes))}, {len(nets)} networks", nets, pairs, rng)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topo", type=Path, default=DEFAULT_TOPO)
    parser.add_argument("--part", choices=["paper", "generated", "pruned", "regular", "all"], default="all")
    parser.add_argument("--all-pairs", action="store_true", help="the paper's 4,005 pairs, not only those within an epoch")
    args = parser.parse_args()
    rng = np.random.default_rng(27)
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    if args.part in ("paper", "all"):
        paper(args.topo, args.all_pairs, rng)
    if args.part in ("generated", "all"):
        generated(rng)
    if args.part in ("pruned", "all"):
        pruned_mlps(rng)
    if args.part in ("regular", "all"):
        regular(rng)


if __name__ == "__main__":
    main()
