"""NNSTD's ``fast`` solver: each layer's matching is a canonical, label-free choice among its optimal matchings.

Notation as in distance.py: for layer k, C(i, j) = |N_A(i) ^ N_B(j)| / |N_A(i) | N_B(j)| (0 when both
sets are empty) after B's input rows are put in A's order by layer k-1's matching pi_{k-1}; the layer's
distance is min_pi sum_i C(i, pi(i)) / n. Exact mode takes the pi that scipy's dense solver happens to
return. When the minimum is attained by several pi -- always, on real networks: empty neurons, and
neurons with one input set, are interchangeable for layer k -- that choice decides layer k+1's rows,
so exact mode's deeper layers depend on the neurons' numbering: NNSTD(A, P.A) > 0 for a relabelled
copy P.A of A (0.03-0.07 in layers 1-2 of the paper's networks). Here the choice is a function of the
two networks' graphs alone:

1. **Primary: the optimum, in exact integers.** K(i, j) = rint(C(i, j) * 2^42) on the pairs that share
   inputs (C < 1 exactly there; C = 1 elsewhere, except C = 0 between two empty neurons). A matching M
   of such pairs leaves the other neurons to be paired at cost 1 (or 0, empty with empty), so
   min_pi sum C = min_M [sum_M C + #unmatched pairs], solved as an assignment on the square 2n x 2n graph
   [pairs | A's dummies; B's dummies | pairs transposed] (dummy edges K = 2^41: an unmatched pair costs
   2^42, i.e. 1). Any solver in ``FAST_ALGORITHMS`` returns an optimal matching with integer duals
   (u, v); by complementary slackness the optimal matchings are exactly the perfect matchings of the
   tight subgraph T = {K - u - v = 0}, for *any* optimal duals -- so what follows does not depend on
   which solver, or which optimal duals, found the optimum.
2. **Secondary: colours.** Every neuron has a colour from colour refinement of its own network
   (colours.py: inputs and outputs keep their index as label, hidden neurons are refined from the
   multisets of their in- and out-neighbours' colours, so a colour names what a neuron connects to
   further on, not its index). The colours of layer k of A and B are ranked together by (in-degree,
   out-degree, colour) -- equal rank iff equal key. Among the perfect matchings of T, take the one
   minimising sum_M [(r_A(i) - r_B(j))^2 * U + h(c_A(i), c_B(j))], 0 on dummy edges, with h a 64-bit
   hash reduced mod H and U = 2n * H, so that the squared rank distance decides first and the hash only
   breaks its ties. (r_A - r_B)^2 is strictly Monge: swapping the partners of two pairs costs
   2 (r_A1 - r_A2)(r_B1 - r_B2), zero only when two ranks are equal; so on a relabelled copy the neurons
   of equal colour are paired, and between different networks neurons of close degrees and colours are.
   H shrinks with n so that every sum fits int64 (H = 1, no hash, from about n = 60,000).
3. **Leftovers.** Neurons that M leaves unmatched (cost 1 with any unmatched partner, 0 empty with empty)
   are paired in sorted order of (has inputs, rank): empty neurons first, so the most empty pairs cost 0,
   then by rank, the Monge optimum of the squared rank distance.
4. **Twins.** Neurons of one network with equal colours tie in steps 2-3. They are interchangeable
   whenever refinement separates every non-interchangeable pair (an automorphism fixing inputs and
   outputs swaps them, so no value can depend on how they are paired); colour refinement does so on
   all but special (e.g. regular) structures, and that is where the invariance below rests on an
   assumption. Only to give every algorithm the same bits, such ties are then broken by a third
   objective (a hash of the two indices) on the tight subgraph of step 2, and leftovers by index.

The layer's value is math.fsum of the chosen pairs' float64 C (the same division as exact mode), /n:
bits independent of summation order. Consequences: NNSTD(A, P.B) = NNSTD(A, B) and NNSTD(P.A, B) =
NNSTD(A, B) for any relabelling P of hidden neurons (columns of layer k with the rows, or row blocks,
of layer k+1), so NNSTD(A, P.A) = 0 in every layer; identity gives 0; values lie in [0, 1]; layer 0's
optimum is exact mode's within n * 2^-43 summed, 2^-43 per neuron (<< 1e-12). Deeper layers are not
the paper's numbers: they use a different (canonical) optimal matching of the layer before.
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

__all__ = ["FAST_ALGORITHMS", "RULE_VERSION", "FastLayer", "fast_layers", "fast_layer", "nnstd_fast", "pick_algorithm", "warm_up"]

# Stores record it with fast results: raise it whenever the rule above can change a value.
RULE_VERSION = 1
FAST_ALGORITHMS = ("jv", "lapjvsp")  # "auto" (the default) picks one per layer: pick_algorithm


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
    """The default's choice for a layer of n output neurons and ``edges`` pairs that share inputs."""
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
