"""Kernel speed on the paper's SET networks: median seconds per NNSTD pair vs a straightforward set-based version.

Run from the repository root (needs ../shared/topo, or pass --topo):

    .venv/bin/python benchmarks/bench_kernel.py            # all 45 pairs at epochs 0 and 190, ~2 min
    .venv/bin/python benchmarks/bench_kernel.py --quick    # 6 pairs per epoch, no numpy-set baseline, ~10 s

Prints figures only; nothing here is a test and nothing asserts a speed.
"""

from __future__ import annotations

import os

# One core, as the target says: keep any BLAS/OpenMP pool from using the second.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import scipy  # noqa: E402
from scipy.optimize import linear_sum_assignment  # noqa: E402

from nnstd_dist.sources.formats import load_set_network  # noqa: E402
from nnstd_dist.kernel.distance import cost_matrix, nnstd, nnstd_prepared, prepare  # noqa: E402

DEFAULT_TOPO = Path(__file__).resolve().parents[1].parent / "shared" / "topo"
RUNS = [f"e5_s0_w{k}" for k in range(10)]


def python_set_cost(n_a: set, n_b: set) -> float:
    union = len(n_a | n_b)
    return len(n_a ^ n_b) / union if union else 0.0


def numpy_set_cost(n_a: np.ndarray, n_b: np.ndarray) -> float:
    union = np.union1d(n_a, n_b).size
    return np.setxor1d(n_a, n_b).size / union if union else 0.0


def straightforward_nnstd(layers_a, layers_b, inputs_of=lambda col: set(col.tolist()), pair_cost=python_set_cost) -> np.ndarray:
    """NNSTD as research code writes it: each neuron's inputs as a set, a double loop over neuron pairs.

    The default uses Python sets; ``inputs_of=lambda col: col, pair_cost=numpy_set_cost`` uses numpy
    set routines on index arrays, once per neuron pair, as the paper's script does.
    """
    distances, order = [], None
    for layer_a, layer_b in zip(layers_a, layers_b):
        dense_a, dense_b = layer_a.toarray(), layer_b.toarray()
        if order is not None:
            dense_b = dense_b[order]
        inputs_a = [inputs_of(np.flatnonzero(dense_a[:, j])) for j in range(dense_a.shape[1])]
        inputs_b = [inputs_of(np.flatnonzero(dense_b[:, j])) for j in range(dense_b.shape[1])]
        cost = np.zeros((len(inputs_a), len(inputs_b)))
        for j1, n_a in enumerate(inputs_a):
            for j2, n_b in enumerate(inputs_b):
                cost[j1, j2] = pair_cost(n_a, n_b)
        rows, order = linear_sum_assignment(cost)
        distances.append(cost[rows, order].sum() / len(inputs_a))
    return np.array(distances)


def numpy_sets_nnstd(layers_a, layers_b) -> np.ndarray:
    """NNSTD as the paper's script computes it: numpy set routines on two index arrays, once per neuron pair."""
    return straightforward_nnstd(layers_a, layers_b, inputs_of=lambda col: col, pair_cost=numpy_set_cost)


def seconds(call) -> tuple[float, float]:
    """(wall, cpu) seconds of one call; CPU time is the steadier figure when other jobs share the cores."""
    wall, cpu = time.perf_counter(), time.process_time()
    call()
    return time.perf_counter() - wall, time.process_time() - cpu


def median_ms(times, which: int) -> float:
    return 1e3 * statistics.median(t[which] for t in times)


def pairs_to_time(quick: bool) -> list[tuple[int, int]]:
    """Unordered pairs as (i, j) with i > j, the larger index first as in the paper's reference."""
    pairs = [(i, j) for i in range(len(RUNS)) for j in range(i)]
    return pairs[:: len(pairs) // 6][:6] if quick else pairs


def time_pairs(masks, prepared, pairs) -> tuple[list, list]:
    nnstd_prepared(prepared[1], prepared[0])  # warm caches and lazy imports before the first timing
    on_prepared = [seconds(lambda: nnstd_prepared(prepared[i], prepared[j])) for i, j in pairs]
    with_prepare = [seconds(lambda: nnstd(masks[i], masks[j])) for i, j in pairs]
    return on_prepared, with_prepare


def layer_breakdown(a, b) -> tuple[list[dict], np.ndarray]:
    """The kernel's own loop, step by step, with B's row reorder, cost matrix and solver timed apart (CPU)."""
    steps, distances, order = [], np.zeros(len(a.masks)), None
    for k in range(len(a.masks)):
        mask_a, mask_b = a.masks[k], b.masks[k]
        if k == len(a.masks) - 1 and mask_a.nnz == np.prod(mask_a.shape) and mask_b.nnz == np.prod(mask_b.shape):
            steps.append(None)  # the kernel skips a fully-connected last layer: distance 0, no work
            break
        start = time.process_time()
        if order is not None:
            mask_b = mask_b[order]
        reordered = time.process_time()
        cost = cost_matrix(mask_a, mask_b, a.degrees[k], b.degrees[k])
        built = time.process_time()
        rows, order = linear_sum_assignment(cost)
        solved = time.process_time()
        distances[k] = cost[rows, order].sum() / cost.shape[0]
        steps.append({"reorder": reordered - start, "cost": built - reordered, "lsa": solved - built})
    return steps, distances


def print_breakdown(prepared, pairs) -> None:
    per_layer: dict[int, list[dict]] = {}
    for i, j in pairs:
        steps, distances = layer_breakdown(prepared[i], prepared[j])
        assert distances.tolist() == nnstd_prepared(prepared[i], prepared[j]).tolist(), "breakdown != kernel"
        for k, step in enumerate(steps):
            per_layer.setdefault(k, []).append(step)
    print("  where the time goes (median CPU ms per layer; reorder = B_k[pi], cost = cost_matrix, lsa = solver):")
    for k, steps in per_layer.items():
        if steps[0] is None:
            print(f"    layer {k}: skipped (both fully connected: distance 0 without solving)")
            continue
        medians = {part: 1e3 * statistics.median(s[part] for s in steps) for part in ("reorder", "cost", "lsa")}
        total = sum(medians.values())
        shares = ", ".join(f"{part} {ms:.2f} ({100 * ms / total:.0f}%)" for part, ms in medians.items())
        print(f"    layer {k}: {shares}")


def load_epoch(topo: Path, epoch: int):
    masks = [load_set_network(topo / run / f"epoch_{epoch:03d}") for run in RUNS]
    return masks, [prepare(m) for m in masks]


def bench_epoch(topo: Path, epoch: int, pairs) -> None:
    masks, prepared = load_epoch(topo, epoch)
    shapes = " - ".join(f"{n_in}x{n_out}" for n_in, n_out in prepared[0].shapes)
    density = np.mean([m.nnz / np.prod(m.shape) for p in prepared for m in p.masks[:-1]])
    print(f"\nepoch {epoch}: 10 networks, layers {shapes}, hidden-layer density {100 * density:.2f}%")
    on_prepared, with_prepare = time_pairs(masks, prepared, pairs)
    for label, times in (("prepared networks", on_prepared), ("including prepare", with_prepare)):
        walls = [wall for wall, _ in times]
        print(
            f"  nnstd per pair, {label}: median {median_ms(times, 0):6.2f} ms wall, {median_ms(times, 1):6.2f} ms CPU"
            f"  (wall min {1e3 * min(walls):.2f}, max {1e3 * max(walls):.2f}; {len(times)} pairs)"
        )
    print_breakdown(prepared, pairs)


def bench_baseline(topo: Path, skip_numpy_sets: bool) -> None:
    """One pair, (w1, w0) at epoch 0, by the kernel and by straightforward versions; outputs must be identical."""
    masks, prepared = load_epoch(topo, 0)
    a, b = masks[1], masks[0]
    got = nnstd(a, b)
    kernel = [seconds(lambda: nnstd(a, b)) for _ in range(20)]
    kernel_prepared = [seconds(lambda: nnstd_prepared(prepared[1], prepared[0])) for _ in range(20)]
    baselines = [("Python sets, double loop over neuron pairs", straightforward_nnstd)]
    if not skip_numpy_sets:
        baselines.append(("numpy set routines per neuron pair, as the paper's script", numpy_sets_nnstd))
    print("\npair (w1, w0) at epoch 0:")
    for label, runs in (("kernel incl. prepare", kernel), ("kernel on prepared", kernel_prepared)):
        print(f"  {label:<22}: {median_ms(runs, 0):9.2f} ms wall, {median_ms(runs, 1):9.2f} ms CPU (median of 20)")
    for label, implementation in baselines:
        result = []
        wall, cpu = seconds(lambda: result.append(implementation(a, b)))
        identical = result[0].tolist() == got.tolist()
        print(f"  straightforward: {label}")
        print(f"    {1e3 * wall:9.1f} ms wall, {1e3 * cpu:9.1f} ms CPU (one run); outputs identical to the kernel: {identical}")
        for kernel_label, runs in (("incl. prepare", kernel), ("on prepared", kernel_prepared)):
            print(
                f"    kernel {kernel_label:<13} is {1e3 * wall / median_ms(runs, 0):6.0f}x faster (wall), "
                f"{1e3 * cpu / median_ms(runs, 1):6.0f}x (CPU)"
            )
        if not identical:
            raise SystemExit(f"kernel {got.tolist()} != straightforward {result[0].tolist()}")
    print(f"  kernel output: {got.tolist()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topo", type=Path, default=DEFAULT_TOPO, help=f"SET runs e5_s0_w0..9 (default {DEFAULT_TOPO})")
    parser.add_argument("--quick", action="store_true", help="time 6 pairs per epoch instead of all 45")
    parser.add_argument("--epochs", type=int, nargs="+", default=[0, 190], help="epochs to time (default 0 190)")
    args = parser.parse_args()
    if not (args.topo / RUNS[0]).is_dir():
        raise SystemExit(f"{args.topo}: the paper's SET runs (e5_s0_w0 ...) are not there; pass --topo")
    versions = f"python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}"
    print(f"{versions}, {platform.machine()}, OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}")
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores (wall times grow with it, CPU times less)")
    print("pairs (i, j) with i > j, networks[i] first, as in the paper's reference")
    pairs = pairs_to_time(args.quick)
    for epoch in args.epochs:
        bench_epoch(args.topo, epoch, pairs)
    bench_baseline(args.topo, skip_numpy_sets=args.quick)


if __name__ == "__main__":
    main()
