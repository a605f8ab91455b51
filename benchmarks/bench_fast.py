"""Fast vs exact solver: CPU-time ratios from one run, deviations from the paper's numbers, relabelling, first call.

Run from the repository root (needs ../shared/topo, or pass --topo):

    .venv/bin/python benchmarks/bench_fast.py                 # all parts, a few minutes
    .venv/bin/python benchmarks/bench_fast.py --part speed     # ratios only

speed: median CPU time per pair (this thread's, time.thread_time) of exact, fast (default algorithm) and
fast with each of FAST_ALGORITHMS, in block order (each variant runs all pairs in turn, as a worker runs
a tile, ``--rounds`` times, rounds interleaving the variants): the paper's 45 pairs at epochs 0 and 190,
64-300-300-300-10 networks at 15 % density and unrelated 784-784-784-784-10 networks at 0.6 %; ratio
exact / fast. Targets (issue 21): >= 10x at epoch 190, >= 5x at epoch 0, >= 1x at 15 %, >= 8x unrelated.
deviation: per layer, over the 45 pairs of each epoch, max / mean |fast - exact| (exact = the paper's
numbers), beside exact mode's relabelling artefact: NNSTD_exact(A, P.A) over the 10 networks and
|NNSTD_exact(A, P.B) - NNSTD_exact(A, B)| over the pairs, P a random renumbering of every hidden layer;
and fast's own: the largest |NNSTD_fast(A, P.B) - NNSTD_fast(A, B)| and NNSTD_fast(A, P.A).
first-call: a new process's import and first fast pair, with numba's cache empty and then filled.
layers: per layer (pairs computed up to --max-layer K, K = 0, 1, ...), CPU time per pair of exact and fast, on 16
magnitude-pruned CNNs (3-16-32-64 channels of 3x3 kernels, then a linear layer to 10 classes; 10 % and 90 % of the
weights kept) and on 64-300-300-300-10 networks at 50 % and 90 % density: fast must not lose on any layer (issue 27).
Figures only, nothing asserted.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one core per pair, as a worker runs it

import argparse  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

from nnstd_dist.kernel import FAST_ALGORITHMS, nnstd_prepared, prepare  # noqa: E402
from nnstd_dist.sources.formats import load_set_network  # noqa: E402

DEFAULT_TOPO = Path(__file__).resolve().parents[1].parent / "shared" / "topo"
RUNS = [f"e5_s0_w{k}" for k in range(10)]
VARIANTS = {"exact": {}, "fast": {"solver": "fast"}, **{f"fast, {a}": {"solver": "fast", "algorithm": a} for a in FAST_ALGORITHMS}}


def paper(topo: Path, epoch: int) -> list:
    return [prepare(load_set_network(topo / run / f"epoch_{epoch:03d}")) for run in RUNS]


def generated(sizes, density: float, n: int, seed: int) -> list:
    rng = np.random.default_rng(seed)
    return [prepare([sp.random(a, b, density, random_state=rng, format="csr") for a, b in zip(sizes[:-1], sizes[1:])]) for _ in range(n)]


def block_times(nets, pairs, rounds: int) -> dict[str, float]:
    """Median CPU seconds per pair of every variant, each running all pairs in turn, rounds interleaving them."""
    for net in nets:
        net.fast  # noqa: B018 -- built once per network, as a task's prepare does
    nnstd_prepared(nets[1], nets[0], solver="fast")  # compiled or loaded from the cache before timing
    times = {name: [] for name in VARIANTS}
    for _ in range(rounds):
        for name, kwargs in VARIANTS.items():
            for i, j in pairs:
                start = time.thread_time()
                nnstd_prepared(nets[i], nets[j], **kwargs)
                times[name].append(time.thread_time() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def speed(topo: Path, rounds: int) -> None:
    cases = {
        "paper epoch 190": (paper(topo, 190), 45),
        "paper epoch 0": (paper(topo, 0), 45),
        "64-300-300-300-10 at 15 %": (generated((64, 300, 300, 300, 10), 0.15, 10, 1), 45),
        "unrelated 784-784-784-784-10 at 0.6 %": (generated((784, 784, 784, 784, 10), 0.006, 6, 2), 15),
    }
    print("speed: median CPU ms per pair, block order; ratio exact / variant")
    for label, (nets, count) in cases.items():
        pairs = [(i, j) for i in range(len(nets)) for j in range(i)][:count]
        median = block_times(nets, pairs, rounds)
        cells = ", ".join(f"{name} {1e3 * t:.2f} ms ({median['exact'] / t:.1f}x)" for name, t in median.items() if name != "exact")
        print(f"  {label} ({len(pairs)} pairs x {rounds}): exact {1e3 * median['exact']:.2f} ms; {cells}")


def pruned_cnns(keep: float, n: int = 16) -> list:
    """Magnitude-pruned random CNNs (conv weights out x in x 3 x 3, then a linear layer), prepared with their blocks."""
    from nnstd_dist.sources.param_layers import weights_to_layers

    nets = []
    for seed in range(n):
        rng = np.random.default_rng(seed)
        weights = []
        for shape in ((16, 3, 3, 3), (32, 16, 3, 3), (64, 32, 3, 3), (10, 64 * 4 * 4)):
            w = np.abs(rng.standard_normal(shape))
            weights.append((w >= np.quantile(w, 1 - keep)).astype(float))
        masks, specs = weights_to_layers([(f"l{k}.weight", w) for k, w in enumerate(weights)])
        nets.append(prepare(masks, [s.block for s in specs]))
    return nets


def layers(rounds: int) -> None:
    cases = {f"16 CNNs, {100 * keep:g} % kept": pruned_cnns(keep) for keep in (0.1, 0.9)}
    cases.update({f"64-300-300-300-10 at {100 * d:g} %": generated((64, 300, 300, 300, 10), d, 6, 1) for d in (0.5, 0.9)})
    print("layers: CPU ms per pair computed up to layer K, exact / fast")
    for label, nets in cases.items():
        pairs = [(i, j) for i in range(len(nets)) for j in range(i)]
        for net in nets:
            net.fast  # noqa: B018
        nnstd_prepared(nets[1], nets[0], solver="fast")
        cells = []
        for k in range(len(nets[0].masks)):
            spent = {}
            for solver in ("exact", "fast"):
                start = time.thread_time()
                for _ in range(rounds):
                    for i, j in pairs:
                        nnstd_prepared(nets[i], nets[j], solver=solver, max_layer=k)
                spent[solver] = (time.thread_time() - start) / (rounds * len(pairs))
            cells.append(f"K={k}: {1e3 * spent['exact']:.2f} / {1e3 * spent['fast']:.2f}")
        print(f"  {label} ({len(pairs)} pairs x {rounds}): {'; '.join(cells)}")


def relabel(net, rng):
    """The same network with every hidden layer's neurons renumbered (columns of layer k, rows of layer k+1)."""
    masks = [m.tocsc() for m in net.masks]
    for k in range(len(masks) - 1):
        perm = rng.permutation(masks[k].shape[1])
        masks[k], masks[k + 1] = masks[k][:, perm], masks[k + 1].tocsr()[perm]
    return prepare(masks)


def max_mean(values: np.ndarray, k: int) -> str:
    return f"{values[:, k].max():.3g} / {values[:, k].mean():.3g}"


def deviation(topo: Path) -> None:
    rng = np.random.default_rng(21)
    for epoch in (0, 190):
        nets = paper(topo, epoch)
        pairs = [(i, j) for i in range(10) for j in range(i)]
        moved = [relabel(net, rng) for net in nets]
        d = {solver: np.array([nnstd_prepared(nets[i], nets[j], solver=solver) for i, j in pairs]) for solver in ("exact", "fast")}
        shifted = {s: np.abs(np.array([nnstd_prepared(nets[i], moved[j], solver=s) for i, j in pairs]) - d[s]) for s in d}
        copy = {s: np.array([nnstd_prepared(net, other, solver=s) for net, other in zip(nets, moved)]) for s in d}
        print(f"deviation, epoch {epoch}: per layer max / mean; exact = the paper's numbers")
        print("  layer | fast - exact (45 pairs) | exact(A, P.A) (10 nets) | exact |d(A,P.B) - d(A,B)| | fast(A, P.A) | fast |d(A,P.B) - d(A,B)|")
        for k in range(d["exact"].shape[1]):
            print(f"  {k}     | {max_mean(np.abs(d['fast'] - d['exact']), k)}         | {max_mean(copy['exact'], k)}         "
                  f"| {max_mean(shifted['exact'], k)}                 | {copy['fast'][:, k].max():.2g}          | {shifted['fast'][:, k].max():.2g}")
        print(f"  signed mean fast - exact per layer: {', '.join(f'{x:+.4f}' for x in (d['fast'] - d['exact']).mean(axis=0))}")


FIRST_CALL = """
import time
t0, c0 = time.perf_counter(), time.process_time()
from nnstd_dist.kernel.fast import warm_up
t1, c1 = time.perf_counter(), time.process_time()
warm_up()
print(f"import {t1 - t0:.2f} s wall / {c1 - c0:.2f} s CPU, first fast pairs {time.perf_counter() - t1:.2f} s wall / {time.process_time() - c1:.2f} s CPU")
"""


def first_call() -> None:
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        for label in ("empty numba cache (compiles)", "filled cache (a new worker)"):
            out = subprocess.run([sys.executable, "-c", FIRST_CALL], env=env, capture_output=True, text=True, check=True)
            print(f"first call, {label}: {out.stdout.strip()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topo", type=Path, default=DEFAULT_TOPO)
    parser.add_argument("--rounds", type=int, default=2, help="times each pair is timed with each variant [2]")
    parser.add_argument("--part", choices=["speed", "deviation", "first-call", "layers", "all"], default="all")
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    if args.part in ("speed", "all"):
        speed(args.topo, args.rounds)
    if args.part in ("deviation", "all"):
        deviation(args.topo)
    if args.part in ("first-call", "all"):
        first_call()
    if args.part in ("layers", "all"):
        layers(args.rounds)


if __name__ == "__main__":
    main()
