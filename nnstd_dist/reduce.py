"""Labelled distance matrices from a store: D[i, j] = NNSTD at layer L (or mean over layers 0..L) of selected networks.

Everything here works on the selected rows and columns only: ``TopologyStore.read_distance``
is called for the selection's indices and one layer at a time, never for the whole store.
The matrix-only helpers at the end (``cluster_order``, ``mds``, ``trajectory``) need no store.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .errors import InputError, StoreError
from .labels import short_labels

if TYPE_CHECKING:  # the store is passed in; importing it here would pull zarr into plot code
    from .store import TopologyStore

__all__ = [
    "SELECT_KEYS", "FACET_KEYS", "LabelledMatrix", "parse_selection", "describe_selection", "select_indices",
    "layer_description", "read_matrix", "labelled_matrix", "facet", "facet_values",
    "cluster_order", "linkage_of", "mds", "Trajectory", "trajectory",
]

SELECT_KEYS = ("run", "epoch", "name")
FACET_KEYS = ("run", "epoch")
_COLUMN = {"run": "run", "epoch": "epoch", "name": "network"}
OPTIMAL_ORDER_MAX = 1000


@dataclass(frozen=True)
class LabelledMatrix:
    """A symmetric (k, k) distance matrix with its networks' names and metadata; NaN = not computed yet."""

    values: np.ndarray
    names: list[str]
    metadata: dict[str, np.ndarray] = field(default_factory=dict)  # run, epoch, accuracy per network
    layer: str = "layer 0"
    selection: str = ""
    n_missing: int = 0  # pairs i < j whose distance is not computed yet
    ordering: str = ""  # how the networks were reordered, e.g. "clustered"; "" = store order

    @property
    def size(self) -> int:
        return len(self.names)

    @property
    def labels(self) -> list[str]:
        return short_labels(self.names)

    def reordered(self, order, ordering: str = "reordered") -> "LabelledMatrix":
        """The same matrix with its networks in ``order`` (a permutation of 0..k-1)."""
        order = np.asarray(order, dtype=np.int64)
        return LabelledMatrix(
            self.values[np.ix_(order, order)], [self.names[i] for i in order],
            {key: column[order] for key, column in self.metadata.items()}, self.layer, self.selection, self.n_missing, ordering,
        )


# ---- selecting networks ----------------------------------------------------------------------


def parse_selection(items) -> dict[str, list[str]]:
    """``["epoch=0,190", "run=e5_s0_w3"]`` -> {key: values}; a key given twice collects both values."""
    selection: dict[str, list[str]] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        key = key.strip().lower()
        if not sep or not value.strip():
            raise InputError(f"`select` {item!r}: expected KEY=VALUE, e.g. epoch=190 or run=e5_s0_w3")
        if key not in SELECT_KEYS:
            raise InputError(f"`select` {item!r}: unknown key {key!r}; use {', '.join(SELECT_KEYS)}")
        values = [v.strip() for v in value.split(",") if v.strip()]
        if key == "epoch":
            _check_epochs(values, f"`select` {item!r}")
        selection.setdefault(key, []).extend(values)
    return selection


def describe_selection(selection: dict[str, list[str]]) -> str:
    return " ".join(f"{key}={','.join(values)}" for key, values in selection.items())


def _check_epochs(values, where: str) -> None:
    for v in values:
        try:
            int(v)
        except ValueError:
            raise InputError(f"{where}: epoch {v!r} is not an integer") from None


def _matches(column: np.ndarray, key: str, values: list[str]) -> np.ndarray:
    """Which entries of a metadata column equal one of ``values`` (glob patterns for run and name)."""
    if key == "epoch":
        return np.isin(column, [int(v) for v in values])
    text = column.astype(str)
    hit = np.zeros(len(text), dtype=bool)
    for pattern in values:
        hit |= np.fromiter((fnmatch.fnmatchcase(t, pattern) for t in text), dtype=bool, count=len(text))
    return hit


def select_indices(store: "TopologyStore", selection: dict[str, list[str]] | None = None) -> np.ndarray:
    """Sorted store indices of the networks matching every key of ``selection`` (any of a key's values)."""
    keep = np.ones(store.n_networks, dtype=bool)
    for key, values in (selection or {}).items():
        hit = _matches(store.column(_COLUMN[key]), key, values)
        if not hit.any():
            raise InputError(f"{store.path}: `select` {key}={','.join(values)} matches no network")
        keep &= hit
    if not keep.any():
        raise InputError(f"{store.path}: no network matches `select` {describe_selection(selection)}")
    return np.flatnonzero(keep)


# ---- reading matrices ------------------------------------------------------------------------


def _check_layer(store: "TopologyStore", layer: int) -> None:
    if not store.has_results:
        raise StoreError(f"{store.path}: no distances yet (run `nnstd-dist compute --store {store.path}`)")
    if not 0 <= layer < store.n_layers:
        raise InputError(f"`layer` {layer} out of range: the store's networks have {store.n_layers} layers (0..{store.n_layers - 1})")


def layer_description(layer: int, cumulative: bool) -> str:
    if cumulative and layer > 0:
        return f"layer {layer} (mean of layers 0-{layer})"
    return f"layer {layer}"


def read_layers(store: "TopologyStore", layers, indices=None) -> np.ndarray:
    """(len(layers), k, k) distances of the networks at ``indices`` (default: all), diagonal 0, read one layer at a time."""
    layers = [int(k) for k in layers]
    for k in layers:
        _check_layer(store, k)
    k_networks = store.n_networks if indices is None else len(indices)
    values = np.empty((len(layers), k_networks, k_networks))
    for out, k in zip(values, layers):
        out[...] = store.read_distance([k], indices)[0]
        np.fill_diagonal(out, 0.0)  # NNSTD(x, x) = 0 whether or not its tile is computed
    return values


def read_matrix(store: "TopologyStore", indices, layer: int = 0, cumulative: bool = False) -> np.ndarray:
    """(k, k) distances of the networks at ``indices``: layer ``layer``, or the mean of layers 0..layer."""
    _check_layer(store, layer)
    layers = range(layer + 1) if cumulative else [layer]
    total = None
    for k in layers:  # one layer at a time: a cumulative read never holds L matrices at once
        block = read_layers(store, [k], indices)[0]
        total = block if total is None else total + block
    return total / len(layers)


def labelled_matrix(
    store: "TopologyStore", layer: int = 0, cumulative: bool = False, selection: dict[str, list[str]] | None = None,
    indices=None,
) -> LabelledMatrix:
    """The labelled matrix of the selected networks (or of ``indices``) at one layer."""
    _check_layer(store, layer)
    if indices is None:
        indices = select_indices(store, selection)
    indices = np.asarray(indices, dtype=np.int64)
    values = read_matrix(store, indices, layer, cumulative)
    names = [str(store.column("network")[i]) for i in indices]
    metadata = {key: store.column(key)[indices] for key in ("run", "epoch", "accuracy")}
    n_missing = int(np.isnan(values[np.triu_indices(len(indices), 1)]).sum())
    return LabelledMatrix(values, names, metadata, layer_description(layer, cumulative), describe_selection(selection or {}), n_missing)


def facet_values(store: "TopologyStore", key: str, indices) -> list[str]:
    """The distinct values of ``key`` among ``indices``, in natural order (epochs numerically)."""
    column = store.column(_COLUMN[key])[indices]
    return [str(v) for v in sorted(set(column.tolist()), key=_natural)]


def _natural(value) -> list:
    """Sort key: digit runs compare as numbers, so r2 comes before r10 and epochs sort numerically."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", str(value)) if t]


def facet(
    store: "TopologyStore", key: str, values=None, layer: int = 0, cumulative: bool = False,
    selection: dict[str, list[str]] | None = None,
) -> list[LabelledMatrix]:
    """One labelled matrix per value of ``key`` (run or epoch) within the selection, each read on its own."""
    if key not in FACET_KEYS:
        raise InputError(f"`facet` {key!r}: use one of {', '.join(FACET_KEYS)}")
    _check_layer(store, layer)
    selection = dict(selection or {})
    base = select_indices(store, selection)
    if values is None:
        values = facet_values(store, key, base)
    elif key == "epoch":
        _check_epochs(values, "`facet_values`")
    column = store.column(_COLUMN[key])[base]
    matrices = []
    for value in values:
        hit = column == int(value) if key == "epoch" else column.astype(str) == str(value)
        if not hit.any():
            raise InputError(f"{store.path}: no network with {key}={value} in the selection")
        panel_selection = {**selection, key: [str(value)]}
        matrices.append(labelled_matrix(store, layer, cumulative, panel_selection, indices=base[hit]))
    return matrices


# ---- matrix-only helpers ---------------------------------------------------------------------


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
            "(finish `nnstd-dist compute`, or narrow `select`)"
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


def trajectory(matrix: LabelledMatrix) -> Trajectory:
    """The trajectory of a matrix that holds one run's networks (e.g. a ``facet(..., "run")`` panel)."""
    epochs = np.asarray(matrix.metadata["epoch"])
    if (epochs < 0).any():
        raise InputError(f"{matrix.selection or 'selection'}: networks without an epoch cannot be placed on an evolution plot")
    order = np.argsort(epochs, kind="stable")
    values = matrix.values[np.ix_(order, order)]
    runs = sorted(set(np.asarray(matrix.metadata["run"]).astype(str)))
    return Trajectory(
        ", ".join(runs), epochs[order], values[0], values[-1], np.asarray(matrix.metadata["accuracy"], dtype=float)[order]
    )
