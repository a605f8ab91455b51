"""NNSTD's ``fast`` solver: each layer's matching is a canonical, label-free choice among its optimal matchings.

Notation as in distance.py: for layer k, C(i, j) = |N_A(i) ^ N_B(j)| / |N_A(i) | N_B(j)| (0 when both
sets are empty) after B's input rows are put in A's order by layer k-1's matching pi_{k-1}; the layer's
distance is min_pi sum_i C(i, pi(i)) / n. Exact mode takes the pi that scipy's dense solver happens to
return. When the minimum is attained by several pi -- always, on real networks: empty neurons, and
neurons with one input set, are interchangeable for layer k -- that choice decides layer k+1's rows,
so exact mode's deeper layers depend on how hidden neurons are numbered: NNSTD(A, P.A) > 0 for a
relabelled copy P.A of A (0.05-0.07 in layers 1-2 of the paper's networks). Here the choice is a
function of the two networks' graphs alone:

1. **Primary: the optimum, in exact integers.** K(i, j) = rint(C(i, j) * 2^42) on the pairs that share
   inputs (C < 1 exactly there; C = 1 elsewhere, except C = 0 between two empty neurons; distinct ratios
   of counts below 2^20 stay distinct and ordered). A matching M of such pairs leaves the other neurons
   to be paired at cost 1 (or 0, empty with empty: step 3), so min_pi sum C = min_M [sum_M C + #unmatched],
   an assignment of every row of the n x 2n graph [pairs | exits]: row i takes a neuron j of B or its
   own exit n + i at K = 2^42 (left unmatched); B's neurons may stay free. Every algorithm in
   ``FAST_ALGORITHMS`` returns an optimal assignment with integer duals u, v (K - u - v >= 0, = 0 on
   the assignment, v <= 0, v = 0 on free columns). By complementary slackness the optimal assignments
   are exactly those that use tight edges (K - u - v = 0) and cover every column with v < 0 -- the
   same set for *any* optimal duals, so nothing below depends on which algorithm found the optimum.
2. **Secondary: colours.** Every neuron has a colour from colour refinement (1-WL) of its own network
   (colours.py: inputs and outputs keep their index as label; hidden neurons are refined from the
   multisets of their in- and out-neighbours' colours, so a colour says what a neuron connects to
   further on, never its index). A neuron's key is (in-degree, out-degree, colour). Among the optimal
   assignments, take one minimising sum_M (r_A(i) - r_B(j))^2, r = dense rank of the key among the
   neurons involved (0 on exits); among those, one minimising sum_M h(c_A(i), c_B(j)), h a symmetric
   40-bit hash of the two colours. (r_A - r_B)^2 is strictly Monge: swapping the partners of two pairs
   changes it by 2 (r_A1 - r_A2)(r_B1 - r_B2), zero only when two ranks are equal; so a relabelled copy
   pairs neurons of equal colour, and different networks pair neurons of close degrees and colours. Each
   objective is solved again only where optimal assignments still differ: the strongly connected parts
   of the tight graph (fast_scc.py), with a bonus on the columns every previous optimum covers.
3. **Leftovers.** Neurons left unmatched (C = 1 with any unmatched partner, 0 empty with empty) are
   paired in sorted key order, A's with B's: empty neurons first, so that as many as possible pair at 0,
   then by degrees and colour (the Monge optimum of the squared rank distance).
4. **Twins.** Neurons of one network with equal colours can still tie. They are interchangeable
   whenever colour refinement separates every pair of non-interchangeable neurons (an automorphism
   fixing inputs and outputs then swaps them, so no value can depend on how they are paired); it does
   on all but special (e.g. regular) structures, and that is where the invariance below rests on an
   assumption. Only so that every algorithm gives the same bits, such ties are then broken by a third
   objective, a hash of the two indices, and leftovers of equal keys in index order.

The layer's value is math.fsum of the chosen pairs' float64 C (the same division as exact mode), / n:
bits independent of summation order. Hence NNSTD(A, P.B) = NNSTD(P.A, B) = NNSTD(A, B) for any
renumbering P of hidden neurons (columns of layer k with the rows, or row blocks, of layer k+1), so
NNSTD(A, P.A) = 0 in every layer; NNSTD(A, A) = 0; values lie in [0, 1]; the rule is symmetric, so
NNSTD(B, A) = NNSTD(A, B); layer 0's optimum is exact mode's within 2^-43 (<< 1e-12). Deeper layers are
not the paper's numbers: they follow another, canonical, optimal matching of the layer before.
Magnitudes: every sum the solver forms stays below 2^62 (tie-break costs are scaled to the size of the
part being solved), so layers of up to 2^18 neurons are exact in int64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_array
from scipy.sparse.csgraph import min_weight_full_bipartite_matching

from . import fast_graph as graph
from .colours import refine
from .fast_jv import duals_of, solve
from .fast_ties import LIMIT, canonical, finish
from .fast_version import FAST_ALGORITHMS, RULE_VERSION

__all__ = ["FAST_ALGORITHMS", "RULE_VERSION", "FastLayer", "fast_layers", "fast_layer", "nnstd_fast", "pick_algorithm", "warm_up"]


@dataclass(frozen=True)
class FastLayer:
    """One layer of one network as the compiled code reads it, built once per network (``fast_layers``)."""

    n_out: int
    t_ptr: np.ndarray  # A^T as CSR: each output neuron's input rows (int64)
    t_idx: np.ndarray
    ptr: np.ndarray  # the mask as CSR: each input row's output neurons (int64)
    idx: np.ndarray
    degree: np.ndarray  # in-degrees, float64 (exact counts)
    key1: np.ndarray  # in-degree * 2^32 + out-degree of each output neuron (int64): the start of its key
    colour: np.ndarray  # each output neuron's colour (uint64): the rest of its key
    twins: bool  # two neurons with inputs share a colour: step 4's third objective is needed
    full: bool  # every input connects to every output


def fast_layers(masks, transposed, degrees, blocks=()) -> tuple[FastLayer, ...]:
    """Every layer's ``FastLayer`` (colour refinement of the whole network included)."""
    colours = refine(masks, blocks)
    out = []
    for k, (m, t, d) in enumerate(zip(masks, transposed, degrees)):
        colour = colours.colours[k]
        with_inputs = colour[d > 0]
        twins = np.unique(with_inputs).size < with_inputs.size
        key1 = colours.in_degrees[k] * 2**32 + colours.out_degrees[k]
        out.append(FastLayer(m.shape[1], t.indptr.astype(np.int64), t.indices.astype(np.int64), m.indptr.astype(np.int64),
                             m.indices.astype(np.int64), np.asarray(d, np.float64), key1, colour, bool(twins), m.nnz == m.shape[0] * m.shape[1]))
    return tuple(out)


def _jv(indptr, indices, cost, n_cols):
    return solve(indptr, indices, cost, n_cols)


def _lapjvsp(indptr, indices, cost, n_cols):
    """scipy's LAPJVsp on the same integer costs (+1: it needs non-zero weights), then duals for its matching."""
    weights = csr_array(((cost + 1).astype(np.float64), indices, indptr), shape=(indptr.size - 1, n_cols))
    row_match = min_weight_full_bipartite_matching(weights)[1].astype(np.int64)
    ok, u, v = duals_of(indptr, indices, cost, row_match, n_cols)
    if not ok:
        raise ArithmeticError("LAPJVsp's matching is not optimal on the integer costs")
    return row_match, u, v


_PHASE_ONE = {"jv": _jv, "lapjvsp": _lapjvsp}


def pick_algorithm(n: int, edges: int) -> str:
    """The default's choice for a layer of n output neurons and ``edges`` pairs that share inputs.

    jv in every case measured (benchmarks/bench_fast.py): faster than lapjvsp on the paper's layers, on
    unrelated 784-neuron layers at 0.6 % and on 300-neuron layers at 15-90 %, and faster than exact mode in all
    of them (1.2x at 64-300-300-300-10 and 90 %, the densest)."""
    return "jv"


def fast_layer(a: FastLayer, b: FastLayer, rowmap: np.ndarray, algorithm: str = "auto") -> tuple[np.ndarray, float]:
    """(order, distance) of one layer: B's neuron order[i] is matched to A's neuron i; ``rowmap[r]``: B's row at A's row r."""
    n = a.n_out
    if 4 * n * int(graph.EXIT) >= LIMIT:
        raise OverflowError(f"a layer of {n:,} neurons is too wide for the fast solver's integer costs (at most {LIMIT // 2**44:,})")
    e_ptr, indptr, indices, cost, c = graph.build(a.t_ptr, a.t_idx, b.ptr, b.idx, rowmap, a.degree, b.degree)
    if algorithm == "auto":
        algorithm = pick_algorithm(n, indices.size - n)
    row_match, u, v = _PHASE_ONE[algorithm](indptr, indices, cost, 2 * n)
    row_match = canonical(indptr, indices, cost, u, v, row_match, a.key1, a.colour, b.key1, b.colour, a.twins or b.twins)
    order, paid = finish(indptr, indices, e_ptr, c, row_match, a.key1, a.colour, b.key1, b.colour)
    return order, math.fsum(paid.tolist()) / n


def nnstd_fast(a: tuple[FastLayer, ...], b: tuple[FastLayer, ...], blocks, n_layers: int, algorithm: str = "auto") -> np.ndarray:
    """Layers 0..n_layers-1 of NNSTD(A, B) under the rule above; ``blocks[k]``: rows of layer k per neuron of layer k-1."""
    if algorithm != "auto" and algorithm not in FAST_ALGORITHMS:
        raise ValueError(f"unknown fast algorithm {algorithm!r}; choose one of auto, {', '.join(FAST_ALGORITHMS)}")
    out = np.zeros(n_layers)
    rowmap = np.arange(a[0].ptr.size - 1, dtype=np.int64)
    for k in range(n_layers):
        if k == len(a) - 1 and a[k].full and b[k].full:
            break  # every cost is 0 and no later layer needs the matching: distance 0
        if k:
            block = blocks[k] if blocks else 1
            rowmap = (order[:, None] * block + np.arange(block)).ravel()
        order, out[k] = fast_layer(a[k], b[k], rowmap, algorithm)
    return out


def warm_up() -> None:
    """Compile (or load from numba's cache) every compiled function, on a tiny pair with ties and twins.

    Compiling takes about 11 s of CPU once per machine (numba's cache, ``cache=True``: next to this module
    or in ``NUMBA_CACHE_DIR``); loading from the cache then costs a new worker process about 0.2 s."""
    import scipy.sparse as sp

    from .distance import prepare

    layers = [np.array([[1, 1, 0], [1, 1, 0], [0, 0, 1]]), np.array([[1, 0], [0, 1], [1, 1]])]
    other = [np.array([[1, 0, 1], [0, 1, 0], [0, 1, 1]]), np.array([[1, 1], [0, 1], [1, 0]])]
    a, b = prepare([sp.csr_matrix(m) for m in layers]), prepare([sp.csr_matrix(m) for m in other])
    for algorithm in FAST_ALGORITHMS:
        nnstd_fast(a.fast, b.fast, (), 2, algorithm)
