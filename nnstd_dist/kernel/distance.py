"""NNSTD between two sparse networks: plain numpy/scipy, no I/O, no engine.

For networks A and B of equal layer shapes, layer k is an ``n_in x n_out`` 0/1 mask
(row = input neuron, column = output neuron). Write N(j) for the input set of output
neuron j and d(j) = |N(j)| for its in-degree. For layer 0

    I[j1, j2] = |N_A(j1) & N_B(j2)|            = (A^T B)[j1, j2]
    U[j1, j2] = |N_A(j1) | N_B(j2)|            = d_A(j1) + d_B(j2) - I[j1, j2]
    C[j1, j2] = |N_A(j1) ^ N_B(j2)| / U        = (U - I) / U,   0 where U = 0

and the layer distance is ``sum_j C[j, pi(j)] / n_out`` for the assignment pi that
``scipy.optimize.linear_sum_assignment`` returns on C. For layer k > 0 the rows of B
(its input neurons, which are layer k-1's outputs) are first put in A's order:
``B_k <- B_k[pi_{k-1}]``. The result is one distance per layer, each in [0, 1].

Convolutional layers (beyond the paper): layer k's rows may come in blocks, ``blocks[k]`` rows
per output neuron (channel) of layer k-1, and the matching then moves whole blocks: block j of
B_k becomes block pi_{k-1}(j). With blocks of one row this is the rule above, unchanged.

C is built as float64 division of the two exact integer counts, the same operation
the paper's per-pair Python code performs, so the matrix -- and therefore the
solver's tie-breaking and matching -- is identical bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linear_sum_assignment

from ..budget import check_dense_solver
from ..errors import InputError, ShapeMismatchError
from .fast.version import FAST_ALGORITHMS, RULE_VERSION
from .masks import chain_break, has_nonfinite

__all__ = ["SOLVERS", "TIE_RULES", "FAST_ALGORITHMS", "Topology", "as_mask", "prepare", "cost_matrix", "nnstd", "nnstd_prepared", "nnstd_certified"]

# "exact": the dense cost matrix and scipy's linear_sum_assignment, the paper's computation bit for bit.
# "fast": the same optimum per layer from the sparse graph of pairs that share inputs, and a canonical,
# label-free choice among the optimal matchings (the fast package): symmetric, and blind to relabelling on certified pairs.
# ("sparse", an earlier solver that kept tied neurons at their index, is superseded by fast: its stored
# results stay readable and exportable, not computable.)
SOLVERS = ("exact", "fast")
TIE_RULES = {"exact": None, "fast": RULE_VERSION}  # recorded with stored results; exact's ties are scipy's dense solver's


def as_mask(layer, where: str = "layer") -> sp.csr_matrix:
    """Any 2-D array or sparse matrix -> CSR float64 mask, 1.0 at every non-zero entry."""
    if sp.issparse(layer):
        if len(layer.shape) != 2:
            raise InputError(f"{where}: expected a 2-D matrix, got shape {layer.shape}")
        m = sp.csr_matrix(layer, copy=True)
        _check_finite(m.data, where)
        m.eliminate_zeros()  # an explicitly stored 0 is no connection
    else:
        arr = np.asarray(layer)
        if arr.ndim != 2:
            raise InputError(f"{where}: expected a 2-D array, got shape {arr.shape}")
        _check_finite(arr, where)
        m = sp.csr_matrix(arr != 0)
    m.data = np.ones(m.nnz, dtype=np.float64)
    m.sort_indices()
    return m


def _check_finite(values: np.ndarray, where: str) -> None:
    # NaN != 0 would silently count as a connection; the file readers refuse it too.
    if has_nonfinite(values):
        raise InputError(f"{where}: contains NaN or infinite weights")


@dataclass(frozen=True)
class Topology:
    """A network's masks, ready for the kernel: CSR 0/1 float64 plus each output neuron's in-degree."""

    masks: tuple[sp.csr_matrix, ...]
    degrees: tuple[np.ndarray, ...]
    blocks: tuple[int, ...] = ()  # rows of layer k per output neuron of layer k-1 (conv layers); () = all 1

    @property
    def shapes(self) -> list[tuple[int, int]]:
        return [m.shape for m in self.masks]

    @cached_property
    def transposed(self) -> tuple[sp.csr_matrix, ...]:
        """Each mask transposed (``n_out x n_in`` CSR): each output neuron's inputs."""
        return tuple(m.T.tocsr() for m in self.masks)

    @cached_property
    def fast(self):
        """The fast solver's per-network arrays, stable colours and twins (fast.network.fast_network), built once per network."""
        from .fast.network import fast_network  # numba loads on the fast solver's first use only

        return fast_network(self.masks, self.transposed, self.degrees, self.blocks)


def prepare(layers, blocks=None) -> Topology:
    """Masks and in-degrees of every layer, computed once per network rather than once per pair.

    ``blocks[k]``: rows of layer k per output neuron of layer k-1 (``blocks[0]`` is not used);
    None means one row each, as for fully connected layers.
    """
    if isinstance(layers, Topology):
        return layers
    masks = tuple(as_mask(layer, f"layer {k}") for k, layer in enumerate(layers))
    if not masks:
        raise InputError("a network needs at least one layer")
    blocks = (1,) * len(masks) if blocks is None else tuple(int(b) for b in blocks)
    if len(blocks) != len(masks) or min(blocks) < 1:
        raise InputError(f"blocks {list(blocks)}: expected one positive row count per layer ({len(masks)})")
    _check_chain([m.shape for m in masks], blocks)
    degrees = tuple(np.diff(m.tocsc().indptr).astype(np.float64) for m in masks)
    return Topology(masks, degrees, () if set(blocks[1:]) <= {1} else (1, *blocks[1:]))  # blocks[0] never matters


def _check_chain(shapes: list[tuple[int, int]], blocks: tuple[int, ...]) -> None:
    """Every layer has neurons, and layer k's inputs are layer k-1's outputs (else B_k[pi] is meaningless)."""
    for k, (n_in, n_out) in enumerate(shapes):
        if n_in == 0 or n_out == 0:
            raise InputError(f"layer {k}: empty shape {(n_in, n_out)}")
    k = chain_break(shapes, blocks)
    if k is not None:
        per = f" ({blocks[k]} rows per output)" if blocks[k] > 1 else ""
        raise InputError(f"layer {k}: {shapes[k][0]} input rows but layer {k - 1} has {shapes[k - 1][1]} output columns{per}")


def _block_rows(order: np.ndarray, block: int) -> np.ndarray:
    """Row indices that move whole blocks: block j of the result is block order[j]."""
    return (order[:, None] * block + np.arange(block)).ravel()


def cost_matrix(a: sp.csr_matrix, b: sp.csr_matrix, deg_a: np.ndarray, deg_b: np.ndarray) -> np.ndarray:
    """C[j1, j2] = |N_A(j1) ^ N_B(j2)| / |N_A(j1) | N_B(j2)|, 0 where both sets are empty."""
    n_a, n_b = a.shape[1], b.shape[1]
    # Sparse layers share few inputs, so I = A^T B is mostly 0 and there C = U / U = 1.0
    # exactly (or 0 where U = 0 too). Only I's non-zeros need a real division.
    cost = np.ones((n_a, n_b))
    empty_a, empty_b = deg_a == 0, deg_b == 0
    if empty_a.any() and empty_b.any():
        cost[np.ix_(empty_a, empty_b)] = 0.0
    inter = (a.T @ b).tocoo()
    rows, cols, i = inter.row, inter.col, inter.data
    union = deg_a[rows] + deg_b[cols] - i
    cost[rows, cols] = (union - i) / union  # counts are exact in float64; one rounding
    return cost


def _fully_connected(mask: sp.csr_matrix) -> bool:
    return mask.nnz == mask.shape[0] * mask.shape[1]


def nnstd_prepared(a: Topology, b: Topology, solver: str = "exact", max_layer: int | None = None, algorithm: str = "auto") -> np.ndarray:
    """NNSTD(A, B) for networks already passed through `prepare`: one float64 per layer (0..max_layer if given)."""
    return nnstd_certified(a, b, solver, max_layer, algorithm)[0]


def nnstd_certified(a: Topology, b: Topology, solver: str = "exact", max_layer: int | None = None,
                    algorithm: str = "auto") -> tuple[np.ndarray, bool | None]:
    """(NNSTD(A, B) per layer, certified) for prepared networks: certified is the fast rule's flag (every choice it made was
    among provably interchangeable neurons, so relabelling either network changes nothing), None for exact mode, which
    makes no such claim."""
    if solver not in SOLVERS:
        raise InputError(f"unknown solver {solver!r}; choose one of {', '.join(SOLVERS)}")
    if algorithm != "auto" and (solver != "fast" or algorithm not in FAST_ALGORITHMS):
        raise InputError(f"unknown algorithm {algorithm!r} for the {solver} solver; the fast solver has auto, {', '.join(FAST_ALGORITHMS)}")
    if len(a.masks) != len(b.masks):
        raise ShapeMismatchError(f"networks have {len(a.masks)} and {len(b.masks)} layers")
    for k, (sa, sb) in enumerate(zip(a.shapes, b.shapes)):
        if sa != sb:
            raise ShapeMismatchError(f"layer {k}: shapes {sa} and {sb} differ")
    n_layers = len(a.masks) if max_layer is None else _check_max_layer(max_layer, len(a.masks)) + 1
    if solver == "fast":
        from .fast.pair import nnstd_fast

        return nnstd_fast(a.fast, b.fast, a.blocks, n_layers, algorithm)
    return _nnstd_exact(a, b, n_layers), None


def _nnstd_exact(a: Topology, b: Topology, n_layers: int) -> np.ndarray:
    """The paper's computation: dense cost matrices and scipy's linear_sum_assignment, layer after layer."""
    check_dense_solver(max(n_out for _, n_out in a.shapes[:n_layers]))  # refused before a dense cost matrix is allocated
    out = np.zeros(n_layers)
    order = None  # B's neuron order that matches A's, carried from layer to layer
    for k in range(n_layers):
        mask_a, mask_b, deg_a, deg_b = a.masks[k], b.masks[k], a.degrees[k], b.degrees[k]
        last = k == len(a.masks) - 1
        if last and _fully_connected(mask_a) and _fully_connected(mask_b):
            break  # every cost is 0 and no later layer needs the matching: distance 0
        if order is not None:
            # equal shapes, equal blocks: each is layer k's rows / layer k-1's columns
            mask_b = mask_b[order if not a.blocks or a.blocks[k] == 1 else _block_rows(order, a.blocks[k])]
        cost = cost_matrix(mask_a, mask_b, deg_a, deg_b)
        rows, order = linear_sum_assignment(cost)
        out[k] = cost[rows, order].sum() / cost.shape[0]
    return out


def _check_max_layer(max_layer: int, n_layers: int) -> int:
    if not 0 <= max_layer < n_layers:
        raise InputError(f"max layer {max_layer} out of range: the networks have {n_layers} layers (0..{n_layers - 1})")
    return int(max_layer)


def nnstd(layers_a, layers_b, blocks=None, solver: str = "exact", max_layer: int | None = None, algorithm: str = "auto") -> np.ndarray:
    """Per-layer NNSTD of network A to network B (lists of ``n_in x n_out`` masks, no bias rows; ``blocks``: see prepare).

    ``solver="fast"`` finds each layer's optimal assignment from the neuron pairs that share inputs and
    picks a canonical one among the optimal assignments (the fast package): layer 0 equal to exact within 1e-12,
    symmetric bit for bit, deeper layers independent of how hidden neurons are numbered whenever the pair is
    certified (``nnstd_certified`` says; exact's are not); ``algorithm`` is one
    of ``FAST_ALGORITHMS`` (all give the same bits) or "auto". ``max_layer=K`` computes layers 0..K only.
    """
    return nnstd_prepared(prepare(layers_a, blocks), prepare(layers_b, blocks), solver=solver, max_layer=max_layer, algorithm=algorithm)
