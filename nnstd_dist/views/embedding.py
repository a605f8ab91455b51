"""What a labelled matrix alone gives: a clustering order, a 2-D metric MDS map, one run's trajectory over epochs.

No store here: every function takes a (k, k) distance matrix or a ``reduce.LabelledMatrix``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..sources.naming import HINT
from ..errors import InputError

__all__ = ["OPTIMAL_ORDER_MAX", "cluster_order", "linkage_of", "mds", "Trajectory", "trajectory"]

OPTIMAL_ORDER_MAX = 1000


def cluster_order(values: np.ndarray) -> np.ndarray:
    """Leaf order of average-linkage clustering with optimal leaf ordering; needs every pair computed."""
    from scipy.cluster.hierarchy import leaves_list

    n = len(values)
    if n < 3:
        return np.arange(n)
    return leaves_list(linkage_of(values))


def linkage_of(values: np.ndarray) -> np.ndarray:
    """scipy linkage matrix (average; optimal leaf order up to OPTIMAL_ORDER_MAX networks) of a complete matrix."""
    from scipy.cluster.hierarchy import linkage
    from scipy.spatial.distance import squareform

    missing = int(np.isnan(values[np.triu_indices(len(values), 1)]).sum())
    if missing:
        raise InputError(
            f"clustering needs every pair: {missing} of the selection's pairs are not computed yet "
            "(compute the rest of the store, or narrow `select`)"
        )
    symmetric = (values + values.T) / 2
    np.fill_diagonal(symmetric, 0.0)
    # Optimal leaf ordering grows ~n^3 (30 s at 2000 networks here); past the limit the plain
    # average-linkage order still keeps every cluster contiguous.
    optimal = len(values) <= OPTIMAL_ORDER_MAX
    return linkage(squareform(symmetric, checks=False), method="average", optimal_ordering=optimal)


def _classical_mds(delta: np.ndarray) -> np.ndarray:
    """Torgerson scaling: the top two eigenvectors of -J D^2 J / 2, scaled by sqrt(eigenvalue)."""
    n = len(delta)
    sq = delta**2
    centred = sq - sq.mean(axis=0) - sq.mean(axis=1)[:, None] + sq.mean()
    b = -0.5 * centred
    if n > 200:  # only two eigenpairs are needed: Lanczos instead of a full O(n^3) decomposition
        from scipy.sparse.linalg import eigsh

        w, v = eigsh(b, k=2, which="LA")
    else:
        w, v = np.linalg.eigh(b)
    top = np.argsort(w)[::-1][:2]
    coords = v[:, top] * np.sqrt(np.clip(w[top], 0.0, None))
    if coords.shape[1] < 2:
        coords = np.column_stack([coords, np.zeros(n)])
    return coords


def mds(values: np.ndarray, max_iter: int = 300, tol: float = 1e-5) -> tuple[np.ndarray, float]:
    """Metric MDS in 2-D: classical scaling, refined by SMACOF; returns coordinates and Kruskal stress-1.

    SMACOF minimises sigma(X) = sum_{i<j} w_ij (|x_i - x_j| - delta_ij)^2 by the Guttman transform
    X <- V^+ B(X) X, with w_ij = 0 for pairs not computed yet and 1 otherwise; it stops when an
    iteration lowers sigma by less than ``tol`` of its value.
    """
    n = len(values)
    if n < 3:
        return np.column_stack([np.arange(n, dtype=float), np.zeros(n)]), 0.0
    known = ~np.isnan(values)
    np.fill_diagonal(known, False)
    if not known.any():
        raise InputError("embedding needs computed distances: none of the selection's pairs is computed yet")
    mean = values[known].mean()
    x = _classical_mds(np.where(known | np.eye(n, dtype=bool), np.nan_to_num(values), mean))  # a guess for the unknown
    delta = np.where(known, values, 0.0)
    if known.sum() == n * (n - 1):
        weights, v_pinv = None, None  # V = nI - 11^T and X stays centred, so V^+ B X = B X / n
    else:
        if n > 3000:
            raise InputError(f"embedding of a partial matrix is limited to 3000 networks ({n} selected); finish compute first")
        weights = known.astype(float)
        v = -weights
        np.fill_diagonal(v, weights.sum(axis=1))
        v_pinv = np.linalg.pinv(v)
    d = _pairwise(x)
    stress = _stress(d, delta, weights)
    for _ in range(max_iter):
        x = _guttman(x, d, delta, weights, v_pinv)
        d = _pairwise(x)
        new = _stress(d, delta, weights)
        done = stress - new <= tol * stress
        stress = new
        if done:
            break
    norm = (delta**2).sum()  # unknown pairs have delta 0: the weights need not appear
    return x, float(np.sqrt(stress / norm)) if norm > 0 else 0.0


def _pairwise(x: np.ndarray) -> np.ndarray:
    from scipy.spatial.distance import cdist

    return cdist(x, x)


def _stress(d, delta, weights) -> float:
    residual = d - delta
    residual **= 2
    if weights is not None:
        residual *= weights
    return float(residual.sum())


def _guttman(x, d, delta, weights, v_pinv):
    """X <- V^+ B(X) X with B_ij = -w_ij delta_ij / d_ij (0 where d_ij = 0) and B_ii = -sum_j B_ij."""
    with np.errstate(divide="ignore", invalid="ignore"):
        b = np.divide(delta, d, out=np.zeros_like(d), where=d > 0)
    b *= -1
    if weights is not None:
        b *= weights
    np.fill_diagonal(b, 0.0)
    np.fill_diagonal(b, -b.sum(axis=1))
    if v_pinv is None:
        return b @ x / len(x)
    return v_pinv @ (b @ x)


@dataclass(frozen=True)
class Trajectory:
    """One run's networks in epoch order and each one's distance to the run's first and last network."""

    run: str
    epochs: np.ndarray
    to_first: np.ndarray
    to_final: np.ndarray
    accuracy: np.ndarray


def trajectory(matrix) -> Trajectory:
    """The trajectory of a matrix that holds one run's networks (e.g. a ``facet(..., "run")`` panel)."""
    epochs = np.asarray(matrix.metadata["epoch"])
    if (epochs < 0).any():
        unplaced = [name for name, epoch in zip(matrix.names, epochs) if epoch < 0]
        raise InputError(
            f"{len(unplaced)} network{'s' if len(unplaced) != 1 else ''} without an epoch ({', '.join(unplaced[:3])}"
            f"{', ...' if len(unplaced) > 3 else ''}) cannot be placed on an evolution plot: {HINT}"
        )
    order = np.argsort(epochs, kind="stable")
    values = matrix.values[np.ix_(order, order)]
    runs = sorted(set(np.asarray(matrix.metadata["run"]).astype(str)))
    return Trajectory(
        ", ".join(runs), epochs[order], values[0], values[-1], np.asarray(matrix.metadata["accuracy"], dtype=float)[order]
    )
