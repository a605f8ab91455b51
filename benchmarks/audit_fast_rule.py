"""Audit the fast solver's promises on adversarial families, as a sceptical reviewer would: prints counts, asserts nothing.

For every family (networks relabelled with random permutations P, Q of their hidden neurons):

- copies: NNSTD(P.A, Q.A) != 0 in some layer, among pairs the solver certified, and how many it did not certify;
- relabel: NNSTD(A, P.B) != NNSTD(A, B), among pairs certified both ways;
- symmetry: NNSTD(A, B) != NNSTD(B, A) bit for bit, on every pair (promised whether certified or not);
- triangle: d(A, C) > d(A, B) + d(B, C) + 1e-12 per layer over all ordered triples of a small population, both solvers.

    .venv/bin/python benchmarks/audit_fast_rule.py                 # every family, ~1-3 minutes
    .venv/bin/python benchmarks/audit_fast_rule.py --trials 50 --family regular
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))  # the tests' population helpers
from _populations import relabel_hidden as relabel  # noqa: E402
from nnstd_dist.kernel.distance import nnstd_certified, prepare  # noqa: E402


def widths(rng, low=3, high=10):
    n_layers = int(rng.integers(2, 7))
    return [int(w) for w in rng.integers(low, high, n_layers + 1)]


def plain(rng):
    w, density = widths(rng), rng.uniform(0.03, 0.7)
    return [(rng.random((w[k], w[k + 1])) < density).astype(np.int8) for k in range(len(w) - 1)]


def twins(rng):
    """Plain, then some neurons made empty (no inputs), dead (no outputs) or copies of another neuron's inputs."""
    layers = plain(rng)
    for k in range(len(layers) - 1):
        n = layers[k].shape[1]
        for j in rng.choice(n, size=max(1, n // 3), replace=False):
            kind = rng.integers(3)
            if kind == 0:
                layers[k][:, j] = 0
            elif kind == 1:
                layers[k + 1][j, :] = 0
            else:
                layers[k][:, j] = layers[k][:, rng.integers(n)]
    return layers


def low_degree(rng):
    """Every neuron reads 1-2 inputs, as in late pruning rounds."""
    w = widths(rng)
    layers = []
    for k in range(len(w) - 1):
        m = np.zeros((w[k], w[k + 1]), np.int8)
        for j in range(w[k + 1]):
            m[rng.choice(w[k], size=min(w[k], int(rng.integers(1, 3))), replace=False), j] = 1
        layers.append(m)
    return layers


def zigzag(rng):
    """A path h1_0 - h2_0 - h1_1 - h2_1 - ... zigzagging between two hidden layers, anchored at one end by input 0 only:
    no symmetry at all, but colour refinement needs about its length in rounds to separate its neurons."""
    n = int(rng.integers(6, 17))
    first = np.zeros((n, n), np.int8)
    first[0, 0] = 1
    middle = np.zeros((n, n), np.int8)
    for j in range(n):
        middle[j, j] = 1
        if j + 1 < n:
            middle[j + 1, j] = 1
    return [first, middle, np.ones((n, int(rng.integers(1, 3))), np.int8)]


def regular(rng):
    """Two hidden layers joined by a union of cycles of random lengths (2-regular), the layers around them dense:
    every hidden neuron has one colour under colour refinement, yet neurons on cycles of other lengths are not interchangeable."""
    n = int(rng.integers(5, 11))
    sizes, left = [], n
    while left:
        m = int(rng.integers(2, left + 1)) if left >= 4 else left
        m = left if left - m == 1 else m
        sizes.append(m)
        left -= m
    middle, at = np.zeros((n, n), np.int8), 0
    for m in sizes:
        for t in range(m):
            middle[at + t, at + t] = middle[at + (t + 1) % m, at + t] = 1
        at += m
    n_in = int(rng.integers(2, 5))
    return [np.ones((n_in, n), np.int8), middle, np.ones((n, int(rng.integers(1, 3))), np.int8)]


def cherries(rng):
    """The issue's smallest case of twins chosen group by group, relabelled: 4 hidden neurons, two cherries."""
    a = [np.array([[1, 1, 0, 0], [0, 0, 1, 1]]), np.array([[1, 0], [0, 1], [1, 0], [0, 1]]), np.array([[1], [1]])]
    b = [np.array([[1, 1, 1, 1], [0, 0, 0, 0]]), np.array([[1, 0], [1, 0], [0, 1], [0, 1]]), np.array([[1], [1]])]
    return relabel(a if rng.random() < 0.5 else b, rng)


FAMILIES = {"plain": plain, "twins": twins, "low-degree": low_degree, "zigzag": zigzag, "regular": regular, "cherries": cherries}


def fast(a, b):
    return nnstd_certified(prepare(a), prepare(b), solver="fast")


def audit_family(name, make, trials, seed):
    rng = np.random.default_rng(seed)
    counts = dict.fromkeys(["pairs", "uncertified", "copy_broken", "relabel_broken", "asymmetric"], 0)
    worst = dict.fromkeys(["copy", "relabel"], 0.0)
    for _ in range(trials):
        a = make(rng)
        b = make(rng)
        while [m.shape for m in b] != [m.shape for m in a]:  # a partner of the same shapes: relabel a perturbed copy
            b = [np.where(rng.random(m.shape) < 0.15, 1 - m, m).astype(np.int8) for m in a]
        counts["pairs"] += 1
        d_copy, ok_copy = fast(relabel(a, rng), relabel(a, rng))
        d_ab, ok_ab = fast(a, b)
        d_ba, ok_ba = fast(b, a)
        d_apb, ok_apb = fast(a, relabel(b, rng))
        counts["uncertified"] += (not ok_copy) + (not ok_ab)
        if ok_copy and np.any(d_copy != 0):
            counts["copy_broken"] += 1
            worst["copy"] = max(worst["copy"], float(np.max(d_copy)))
        if ok_ab and ok_apb and np.any(d_apb != d_ab):
            counts["relabel_broken"] += 1
            worst["relabel"] = max(worst["relabel"], float(np.max(np.abs(d_apb - d_ab))))
        counts["asymmetric"] += bool(np.any(d_ab != d_ba))
    return counts, worst


def triangle(make, size, seed, solver):
    """Ordered triples (A, B, C) of a drifting population breaking d(A, C) <= d(A, B) + d(B, C), per layer."""
    rng = np.random.default_rng(seed)
    base = make(rng)
    population = [base]
    for _ in range(size - 1):
        population.append([np.where(rng.random(m.shape) < 0.08, 1 - m, m).astype(np.int8) for m in population[-1]])
    prepared = [prepare(p) for p in population]
    d = {}
    for i, j in itertools.permutations(range(size), 2):
        d[i, j] = nnstd_certified(prepared[max(i, j)], prepared[min(i, j)], solver=solver)[0]  # the store's orientation
    breaks, excess = np.zeros(len(base), int), np.zeros(len(base))
    for i, j, k in itertools.permutations(range(size), 3):
        over = d[i, k] - d[i, j] - d[j, k]
        breaks += over > 1e-12
        excess = np.maximum(excess, over)
    return breaks, excess, size * (size - 1) * (size - 2)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--family", choices=sorted(FAMILIES), action="append")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--triangle-size", type=int, default=10)
    args = parser.parse_args()
    start = time.process_time()
    print(f"load average {os.getloadavg()[0]:.1f}")
    print("family       trials  uncertified  copies != 0 (certified)  relabel moves (certified)  asymmetric")
    for name in args.family or FAMILIES:
        counts, worst = audit_family(name, FAMILIES[name], args.trials, args.seed)
        print(
            f"{name:<12} {counts['pairs']:>6}  {counts['uncertified']:>5} of {2 * counts['pairs']:<5} "
            f"{counts['copy_broken']:>5} (max {worst['copy']:.3g})          {counts['relabel_broken']:>5} (max {worst['relabel']:.3g})"
            f"            {counts['asymmetric']}"
        )
    print(f"\ntriangle inequality, all ordered triples of a drifting population of {args.triangle_size} (8 % of entries flipped per step)")
    for name in args.family or FAMILIES:
        for solver in ("exact", "fast"):
            breaks, excess, total = triangle(FAMILIES[name], args.triangle_size, args.seed + 1, solver)
            per_layer = ", ".join(f"L{k}: {b} (+{e:.3g})" if b else f"L{k}: 0" for k, (b, e) in enumerate(zip(breaks, excess)))
            print(f"{name:<12} {solver:<6} of {total}: {per_layer}")
    print(f"\nCPU {time.process_time() - start:.1f} s")


if __name__ == "__main__":
    main()
