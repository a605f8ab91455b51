"""NNSTD's ``fast`` solver: each layer's matching is a label-free choice among its optimal matchings (rule version 2).

Notation as in distance.py: for layer k, C(i, j) = |N_A(i) ^ N_B(j)| / |N_A(i) | N_B(j)| (0 when both sets are
empty) after B's input rows are put in A's order by layer k-1's matching pi_{k-1}; the layer's distance is
min_pi sum_i C(i, pi(i)) / n. Exact mode takes the pi scipy's dense solver happens to return; when several
attain the minimum (always, on real networks), that choice sets layer k+1's rows, so exact mode's deeper layers
depend on how hidden neurons are numbered. Here the choice is a function of the graphs, step by step:

0. **Orientation.** The pair is computed as (X, Y) = (A, B) or (B, A), ordered by a label-free invariant of each
   network (a digest of its sorted stable colours per layer, colours.py), then by a digest of the labelled masks.
   The same per-layer values are returned either way, so NNSTD(B, A) == NNSTD(A, B) bit for bit, on every input.
1. **The optimum, in exact integers** (graph.py or dense_counts.py, phase_one.py). K(i, j) = rint(C(i, j) * 2^42)
   on the pairs that share inputs (C < 1 exactly there; distinct ratios of counts below 2^20 stay distinct and ordered); a neuron of
   X left unmatched pays K = 2^42 (C = 1 with its eventual partner, or 0 empty with empty: step 4). Any algorithm
   of ``FAST_ALGORITHMS`` gives an optimal assignment with integer duals; by complementary slackness the optimal
   matchings are exactly the tight-edge matchings covering every column of negative dual, the same set S for any
   optimal duals (scc.py), so nothing below depends on the algorithm.
2. **Colours** (colours.py): colour refinement (1-WL) of each network to a stable partition, inputs and outputs
   keeping their index as label, at least 2 rounds per layer so that most networks' colours compare. Within S,
   minimise sum (r_X(i) - r_Y(j))^2 over the pairs (r: dense rank of (in-degree, out-degree, colour) among the
   neurons still tied), then sum pair_hash(c_X(i), c_Y(j)) (ties.py); each objective is solved again only on the
   part where optimal matchings still differ, its strongly connected components.
3. **Individualisation** (part.py, pair.py). If what is still tied is only a choice among twins (twins.py: the same
   inputs and the same outputs; in every connected piece of the part, one twin class on each side, or a perfect
   piece with one twin class on one side), any choice gives the same values and the solver's is kept. Otherwise the colour pair (c_X, c_Y) of least symmetric key
   (pair_hash, min, max) over the tied real pairs names a cell in each network (its tied neurons of that colour
   that can pair with the other colour); i = the least index of X's cell, j = the least index of i's partners in
   Y's cell. Both get one fresh shared colour (a hash of the individualisation's number within the pair), both
   networks are refined again to a stable partition, the same rounds (McKay and Piperno's individualisation-
   refinement, on the pair; skipped when both were alone in their colour, as nothing would split), (i, j) is
   fixed and step 2 runs again on what is still tied, until nothing is.
4. **Leftovers** (leftovers.py), the neurons left unmatched, are paired in sorted key order, empty neurons first so
   that most of them pair at C = 0; a run of equal keys that are not mutual twins is individualised as in step 3
   at its first position, and the rest sorted again.

The layer's value is math.fsum of the chosen pairs' float64 C (the same division as exact mode's), / n: its bits
do not depend on summation order, so every algorithm gives the same bits. Each layer's matching is optimal given
the previous one; layer 0's optimum is exact mode's within 2^-43 per neuron (<< 1e-12); values lie in [0, 1].

**Certified, or said** (certify.py). Every step is label-free except the choices of i and j in steps 3-4 and the
twin choices. A twin choice changes no value and gives states that differ by an automorphism (a twin swap). For
i and j, the rule tests whether X's cell is one orbit of the automorphisms of X that fix inputs, outputs and every
neuron of layers < k, and preserve the current colours, and Y's cell likewise; a pair is *certified* when every
choice passed. Why certified => NNSTD(A, P.B) = NNSTD(A, B) and NNSTD(A, P.A) = 0 for any renumbering P of hidden
neurons: the state after a step (networks, colours, matchings so far) is built label-free from the state before,
except at choices; a choice inside an orbit of the state's automorphisms gives, for any other member, the image
of the same state under an automorphism, which the rest of the computation (label-free again) carries along to
the same values. So two relabelled inputs follow isomorphic trajectories as long as every choice is certified.
Copies: on (A, A) the matching chosen stays an automorphism of A -- i's image is in Y's cell and usable, and the
partner picked lies in its orbit when certified (the identity itself when the labels are equal, since then both
cells are the same set) -- so every C is 0; with the invariance, a certified relabelled copy is at 0 too. The flag itself is
label-free: the first uncertified choice occurs at the same point of isomorphic trajectories, and its test's
outcome (an orbit whose refinement leaves only twin classes, cell size <= certify.MAX_CELL) does not depend on
numbering. Orientation: every step above is mirror-symmetric in X and Y except the choices inside cells (the
objectives, the cells' key, the twin conditions, the leftovers' positions; the objectives' integer range depends
on the tied neurons of both sides together), and C(i, j) is the same float64 either way; so when a relabelling
flips step 0's order (only possible between networks of equal invariants), a certified pair keeps its values
and every pair its flag. Uncertified pairs remain symmetric (step 0) and optimal in every layer, but relabelling may move
their deeper layers. Colour refinement cannot separate some non-isomorphic neurons (regular, CFI-like
structures): there the orbit test fails and the pair is said to be uncertified, not silently wrong.

Not guaranteed, in either solver: deeper layers are not metrics (they break the triangle inequality); layer 0 is.
Magnitudes: every sum the compiled code forms stays below 2^62 (objective costs are scaled to the size of the
part), so layers of up to 2^18 neurons are exact in int64.

Modules: version (no numba), hashing, colours, twins, network (per network), graph and dense_counts (the layer graph),
jv, phase_one, scc, ties, part, leftovers, certify, layer, pair (orientation, state, the layers in turn), warm.
Importing this package loads no numba: the names below load on first use.
"""

from __future__ import annotations

from importlib import import_module

from .version import FAST_ALGORITHMS, RULE_VERSION

__all__ = ["FAST_ALGORITHMS", "RULE_VERSION", "fast_network", "fast_orders", "nnstd_fast", "warm_up"]

_LAZY = {"fast_network": "network", "fast_orders": "pair", "nnstd_fast": "pair", "warm_up": "warm"}


def __getattr__(name: str):
    if name in _LAZY:  # numba loads on the fast solver's first use only
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
