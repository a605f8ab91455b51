"""Label-free 64-bit hashes in numpy: splitmix64's finaliser, symmetric pair hashes and the salts that keep uses apart.

mix is a bijection of uint64 (x -> odd multiplications and xor-shifts), so distinct inputs never collide;
sums of mixed values mod 2^64 hash multisets independently of order, which is what makes a neuron's
colour independent of how its neighbours are numbered. pair_hash(x, y) = mix(mix(min) + max) is
symmetric in its arguments. graph.mix is the same function compiled for numba code.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SALT", "mix", "pair_hash", "group_sums"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
# One constant per use, so that e.g. an in-connection and an out-connection of equal colours hash apart.
SALT = {name: np.uint64(s) for name, s in (("input", 0x51A7), ("output", 0x07E7), ("hidden", 0x41D3), ("in", 0x1A55),
                                             ("out", 0x0B0B), ("pos", 0x9051), ("fresh", 0xF2E5), ("fixed", 0xF1CE),
                                             ("member", 0x3E3B), ("twin-in", 0x7171), ("twin-out", 0x7272))}


def mix(x) -> np.ndarray:
    """splitmix64's finaliser on uint64 values (arrays or scalars)."""
    with np.errstate(over="ignore"):
        z = np.asarray(x, dtype=np.uint64) + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def pair_hash(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """A hash of each unordered pair (x[t], y[t]): pair_hash(x, y) == pair_hash(y, x)."""
    low, high = np.minimum(x, y), np.maximum(x, y)
    with np.errstate(over="ignore"):
        return mix(mix(low) + high)


def group_sums(values: np.ndarray, indptr: np.ndarray) -> np.ndarray:
    """Sum (mod 2^64) of values[indptr[g]:indptr[g + 1]] for every group g: the hash of each group's multiset."""
    total = np.zeros(len(values) + 1, dtype=np.uint64)
    np.cumsum(values, dtype=np.uint64, out=total[1:])
    with np.errstate(over="ignore"):
        return total[indptr[1:]] - total[indptr[:-1]]
