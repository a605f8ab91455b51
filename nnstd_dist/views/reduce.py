"""Labelled distance matrices from a store: D[i, j] = NNSTD at layer L (or mean over layers 0..L) of selected networks.

Everything here works on the selected rows and columns only: ``TopologyStore.read_distance``
is called for the selection's indices and one layer at a time, never for the whole store.
What is drawn from a matrix alone (cluster order, MDS, trajectories) lives in embedding.py.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..sources.naming import HINT
from ..errors import InputError
from ..labels import natural_key, short_labels
from ..tiles import pairs_in_done_tiles, total_pairs
if TYPE_CHECKING:  # the store is passed in; importing it here would pull zarr into plot code
    from ..store.topology_store import TopologyStore

__all__ = [
    "SELECT_KEYS", "FACET_KEYS", "LabelledMatrix", "parse_selection", "describe_selection", "select_indices",
    "layer_description", "read_layers", "read_matrix", "labelled_matrix", "missing_pairs", "facet", "facet_values",
]

SELECT_KEYS = ("run", "epoch", "name")
FACET_KEYS = ("run", "epoch")
_COLUMN = {"run": "run", "epoch": "epoch", "name": "network"}


@dataclass(frozen=True)
class LabelledMatrix:
    """A symmetric (k, k) distance matrix with its networks' names and metadata; NaN = not computed yet."""

    values: np.ndarray
    names: list[str]
    metadata: dict[str, np.ndarray] = field(default_factory=dict)  # run, epoch, accuracy per network
    layer: str = "layer 0"
    selection: dict[str, list[str]] = field(default_factory=dict)  # as parse_selection gives it; {} = all networks
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


def describe_selection(selection: dict[str, list[str]], leave_out: str | None = None) -> str:
    """``run=r0,r1 epoch=30``: the selection as it would be written, without the key ``leave_out``."""
    return " ".join(f"{key}={','.join(values)}" for key, values in selection.items() if key != leave_out)


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
    store.require_results()
    if not 0 <= layer < store.n_layers:
        raise InputError(f"`layer` {layer} out of range: the store's networks have {store.n_layers} layers (0..{store.n_layers - 1})")
    store.check_layer_computed(layer)


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


def missing_pairs(store: "TopologyStore", indices, values: np.ndarray) -> int:
    """Pairs of distinct networks among ``indices`` not computed yet: from the tile markers' geometry (plan.py),
    or, when an index repeats, by counting NaN in ``values``, the (..., k, k) distances read for them."""
    indices = np.asarray(indices, dtype=np.int64)
    distinct = np.unique(indices)
    if len(distinct) == len(indices):  # the same pairs whatever the order
        return total_pairs(len(indices)) - pairs_in_done_tiles(store.tile_markers(), store.n_networks, store.tile, distinct)
    return int(np.count_nonzero(np.isnan(values).reshape(-1, *values.shape[-2:]).any(axis=0)[np.triu_indices(len(indices), 1)]))


def labelled_matrix(
    store, layer: int = 0, cumulative: bool = False, selection: dict[str, list[str]] | None = None,
    indices=None, storage_options: dict | None = None,
) -> LabelledMatrix:
    """The labelled matrix of the selected networks (or of ``indices``) at one layer.

    ``store``: an open TopologyStore, or its path or URL (``s3://bucket/topos.zarr``, with fsspec's ``storage_options``)."""
    if not hasattr(store, "read_distance"):
        from ..store.topology_store import TopologyStore

        store = TopologyStore.open(store, storage_options=storage_options)
    _check_layer(store, layer)
    if indices is None:
        indices = select_indices(store, selection)
    indices = np.asarray(indices, dtype=np.int64)
    values = read_matrix(store, indices, layer, cumulative)
    names = [str(store.column("network")[i]) for i in indices]
    metadata = {key: store.column(key)[indices] for key in ("run", "epoch", "accuracy")}
    n_missing = missing_pairs(store, indices, values)
    return LabelledMatrix(values, names, metadata, layer_description(layer, cumulative), dict(selection or {}), n_missing)


def facet_values(store: "TopologyStore", key: str, indices) -> list[str]:
    """The distinct values of ``key`` among ``indices``, in natural order (epochs numerically)."""
    column = store.column(_COLUMN[key])[indices]
    unlabelled = -1 if key == "epoch" else ""  # what ingest records for a network without an epoch or run
    return [str(v) for v in sorted(set(column.tolist()) - {unlabelled}, key=lambda v: natural_key(str(v)))]  # epochs numerically


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
        if not values:
            raise InputError(f"{store.path}: none of the {len(base)} selected networks has {'an epoch' if key == 'epoch' else 'a run'}: {HINT}")
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
