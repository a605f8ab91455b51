"""The topology store: the only module that knows zarr.

Layout of a store (a zarr v3 group on a local or shared filesystem)::

    attrs         format="nnstd-dist", format_version=1, shapes=[[n_in, n_out], ...],
                  n_networks=N, tile=T (once results exist), layers=[{param, weight_shape, block}, ...]
                  (the first network's parameter names and weight shapes, and rows of layer k per output
                  of layer k-1; absent in stores written before convolutions: blocks of one row)
    mask_l{k}     bool (N, n_in_k, n_out_k), one chunk per network and layer, blosc-zstd bitshuffle
    network       str  (N,)  unique network names, store order = matrix order
    run, source, digest   str (N,);  epoch int64 (N,), -1 if none;  accuracy float64 (N,), NaN if none
    connections   int64 (N, L): connections per network and layer, so densities need no mask read
    distance      float64 (L, N, N), chunks (L, T, T), NaN = not computed yet; (i, j) with i > j is
                  NNSTD(network i, network j), mirrored to (j, i); diagonal 0
    network_a, network_b   str (N,): the names again, as coordinates of distance's two network axes
    layer         int64 (L,)
    tiles_done    int64 (ceil(N/T), ceil(N/T)), chunks (1, 1), uncompressed: for tile (a, b), a >= b, the N at which
                  its pairs were complete; 0 = nothing valid. A tile is complete when its extent at that
                  N equals its extent now, so appending networks reopens only the edge tiles.
    nnstd-dist.lock   JSON {host, pid, started, command} while a compute or ingest runs (runlock.py)

``n_networks`` is written last by an append, so a crash mid-append leaves the population unchanged.
Every array's dimension names, and a ``coordinates`` attribute naming run, epoch and accuracy on the
per-network arrays, make ``xarray.open_zarr(path, consolidated=False)`` label it. Metadata is not
consolidated: every append resizes the arrays, and a stale consolidated copy would hide networks.
Tile geometry (which rows and columns tile (a, b) covers) belongs to plan.py: the store reads and
writes row/column ranges and keeps one marker per tile. See docs/store.md.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import zarr
from zarr.codecs import BloscCodec

from . import runlock
from .errors import ShapeMismatchError, StoreError
from .masks import dense_to_csr, describe_shapes
from .plan import n_tiles, tile_of
from .records import METADATA_COLUMNS, AppendReport, NetworkRecord, mask_digest
from .store_markers import read_marker_files

__all__ = ["FORMAT", "FORMAT_VERSION", "TopologyStore", "NetworkRecord", "AppendReport", "mask_digest", "locked", "add_networks"]

FORMAT = "nnstd-dist"
FORMAT_VERSION = 1
_STRING_COLUMNS = ("network", "run", "source", "digest", "network_a", "network_b")
_MASK_CODEC = BloscCodec(cname="zstd", clevel=5, shuffle="bitshuffle")  # masks are bits: ~2 B/connection
_WRITE_BATCH = 64  # networks per zarr write call: zarr encodes a call's chunks concurrently
_READ_BYTES = 256 * 2**20  # dense bytes per zarr read call in read_layer: bounds memory, not speed
_NETWORK_COORDINATES = {"coordinates": "run epoch accuracy"}  # xarray shows these along `network`


class TopologyStore:
    """A population of same-shaped sparse networks and their pairwise distances, in one zarr group."""

    def __init__(self, path: str | Path, group: zarr.Group):
        self.path = Path(path)
        self._group = group
        self._cache: dict[str, np.ndarray] = {}

    # ---- opening -----------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | Path, mode: str = "r") -> "TopologyStore":
        """Open an existing store; ``mode`` "r" or "r+"."""
        path = Path(path)
        if path.is_file():
            raise StoreError(f"{path}: is a file, not a zarr store directory")
        if not (path / "zarr.json").is_file():
            raise StoreError(f"{path}: no nnstd-dist store here (create one with `nnstd-dist ingest ... --store {path}`)")
        try:
            group = zarr.open_group(str(path), mode=mode)
        except Exception as exc:  # zarr raises several types for a broken group
            raise StoreError(f"{path}: not a readable zarr group ({exc})") from None
        attrs = group.attrs.asdict()
        if attrs.get("format") != FORMAT:
            raise StoreError(f"{path}: a zarr group, but not an nnstd-dist store")
        if attrs.get("format_version") != FORMAT_VERSION:
            raise StoreError(
                f"{path}: store format version {attrs.get('format_version')}, this nnstd-dist reads version {FORMAT_VERSION}"
            )
        return cls(path, group)

    @classmethod
    def create(cls, path: str | Path, shapes: list[tuple[int, int]], layers=()) -> "TopologyStore":
        """A new, empty store for networks of the given layer shapes; ``layers``: their LayerSpecs, if known."""
        path = Path(path)
        if path.exists():
            raise StoreError(f"{path}: already exists")
        group = zarr.open_group(str(path), mode="w-")
        for k, (n_in, n_out) in enumerate(shapes):
            group.create_array(
                f"mask_l{k}", shape=(0, n_in, n_out), chunks=(1, n_in, n_out), dtype=bool,
                compressors=_MASK_CODEC, dimension_names=("network", f"in_l{k}", f"out_l{k}"),
                attributes=_NETWORK_COORDINATES,
            )
        group.create_array(
            "connections", shape=(0, len(shapes)), chunks=(4096, len(shapes)), dtype="int64",
            fill_value=0, dimension_names=("network", "layer"), attributes=_NETWORK_COORDINATES,
        )
        for column in METADATA_COLUMNS:
            dtype = {"epoch": "int64", "accuracy": "float64"}.get(column, str)
            fill = {"epoch": -1, "accuracy": np.nan}.get(column)
            group.create_array(column, shape=(0,), chunks=(4096,), dtype=dtype, fill_value=fill, dimension_names=("network",))
        # attrs last: a directory without them is not taken for a store
        attrs = {"format": FORMAT, "format_version": FORMAT_VERSION, "shapes": [list(map(int, s)) for s in shapes], "n_networks": 0}
        if layers:
            attrs["layers"] = [
                {"param": spec.param, "weight_shape": [int(n) for n in spec.weight_shape], "block": int(spec.block)} for spec in layers
            ]
        group.attrs.update(attrs)
        return cls(path, group)

    # ---- population --------------------------------------------------------------------------

    @property
    def n_networks(self) -> int:
        return int(self._group.attrs["n_networks"])

    @property
    def shapes(self) -> list[tuple[int, int]]:
        return [tuple(s) for s in self._group.attrs["shapes"]]

    @property
    def format_version(self) -> int:
        return int(self._group.attrs["format_version"])

    @property
    def n_layers(self) -> int:
        return len(self.shapes)

    @property
    def layers(self) -> list[dict]:
        """Per layer: parameter name, weight shape and block as first ingested; [] for a store written before they were kept."""
        return list(self._group.attrs.get("layers", []))

    @property
    def blocks(self) -> tuple[int, ...]:
        """Rows of layer k per output neuron of layer k-1 (convolutions); 1 for fully connected layers and older stores."""
        return tuple(int(layer["block"]) for layer in self.layers) or (1,) * self.n_layers

    def column(self, name: str) -> np.ndarray:
        """One metadata column (see METADATA_COLUMNS) for the current population."""
        if name not in METADATA_COLUMNS:
            raise StoreError(f"unknown metadata column {name!r}; known: {', '.join(METADATA_COLUMNS)}")
        if name not in self._cache:
            values = self._group[name][: self.n_networks]
            self._cache[name] = values.astype(object) if name in _STRING_COLUMNS else values
        return self._cache[name]

    def names(self) -> list[str]:
        return [str(n) for n in self.column("network")]

    def records(self) -> list[NetworkRecord]:
        cols = [self.column(c) for c in METADATA_COLUMNS]
        return [
            NetworkRecord(str(n), str(r), int(e), float(a), str(s), str(d)) for n, r, e, a, s, d in zip(*cols)
        ]

    def connections(self) -> np.ndarray:
        """(N, L) int64: connections of every network in every layer."""
        return self._group["connections"][: self.n_networks]

    def indices(self, names) -> np.ndarray:
        """Store indices of the given network names, in the order given."""
        where = {name: i for i, name in enumerate(self.names())}
        missing = [name for name in names if name not in where]
        if missing:
            raise StoreError(f"{self.path}: no network named {missing[0]!r} ({len(missing)} name(s) not found)")
        return np.array([where[name] for name in names], dtype=np.int64)

    def read_layer(self, indices, layer: int) -> list[sp.csr_matrix]:
        """Masks of one layer for the given network indices, as CSR bool, in the order given."""
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        self._check_indices(indices)
        self._check_layer(layer)
        array = self._group[f"mask_l{layer}"]
        wanted = np.unique(indices)
        masks = {}
        # One zarr call per run of consecutive indices: its chunks decode concurrently, whereas
        # zarr's integer-array (orthogonal) selection is several times slower.
        for start, stop in _runs(wanted, max_len=max(1, _READ_BYTES // max(1, int(np.prod(self.shapes[layer]))))):
            for i, dense in zip(range(start, stop), array[start:stop]):
                masks[i] = dense_to_csr(dense)
        return [masks[i] for i in indices.tolist()]

    def read_masks(self, indices) -> list[list[sp.csr_matrix]]:
        """All layers of the given networks: result[i][k] is layer k of network indices[i]."""
        per_layer = [self.read_layer(indices, k) for k in range(self.n_layers)]
        return [list(layers) for layers in zip(*per_layer)]

    def _check_layer(self, layer: int) -> None:
        if not 0 <= layer < self.n_layers:
            raise StoreError(f"layer {layer} out of range: the store's networks have {self.n_layers} layers (0..{self.n_layers - 1})")

    def _require_results(self) -> None:
        if not self.has_results:
            raise StoreError(f"{self.path}: no distances yet (run `nnstd-dist compute --store {self.path}`)")

    def _check_indices(self, indices: np.ndarray) -> None:
        if len(indices) and (indices.min() < 0 or indices.max() >= self.n_networks):
            raise StoreError(f"{self.path}: network index out of range 0..{self.n_networks - 1}")

    def append(self, networks, replace: bool = False) -> AppendReport:
        """Add networks ``[(NetworkRecord, masks), ...]``; all are validated before anything is written.

        A name already present with the same digest is left alone; with another digest it is an
        error unless ``replace``, which overwrites its masks and forgets its computed distances.
        """
        shapes = self.shapes
        existing = {name: i for i, name in enumerate(self.names())}
        digests = self.column("digest")
        report, new, replaced, seen = AppendReport(), [], [], set()
        for record, masks in networks:
            got = [tuple(m.shape) for m in masks]
            if got != shapes:
                raise ShapeMismatchError(
                    f"{record.source or record.name}: layer shapes {describe_shapes(got)} differ from the store's {describe_shapes(shapes)}"
                )
            if record.name in seen:
                raise StoreError(f"network name {record.name!r} given twice")
            seen.add(record.name)
            digest = record.digest or mask_digest(masks)
            record = NetworkRecord(record.name, record.run, record.epoch, record.accuracy, record.source, digest)
            if record.name not in existing:
                new.append((record, masks))
            elif digests[existing[record.name]] == digest:
                report.unchanged.append(record.name)
            elif replace:
                replaced.append((existing[record.name], record, masks))
            else:
                raise StoreError(
                    f"{record.source or record.name}: a different network named {record.name!r} is already in the store (use `replace`)"
                )
        # ---- nothing is written above this line ----
        old_n = self.n_networks
        new_n = old_n + len(new)
        if new:
            self._resize_population(new_n)
            for start in range(0, len(new), _WRITE_BATCH):
                batch = new[start : start + _WRITE_BATCH]
                self._write_networks(old_n + start, [m for _, m in batch], [r for r, _ in batch])
            report.added = [r.name for r, _ in new]
        for index, record, masks in replaced:
            self._write_networks(index, [masks], [record])
            self._forget_distances(index)
            report.replaced.append(record.name)
        self._group.attrs["n_networks"] = new_n  # the commit point
        self._cache.clear()
        return report

    def _resize_population(self, n: int) -> None:
        for k, (n_in, n_out) in enumerate(self.shapes):
            self._group[f"mask_l{k}"].resize((n, n_in, n_out))
        for column in METADATA_COLUMNS:
            self._group[column].resize((n,))
        self._group["connections"].resize((n, self.n_layers))
        if self.has_results:
            tile, n_t = self.tile, n_tiles(n, self.tile)
            self._group["distance"].resize((self.n_layers, n, n))
            self._group["tiles_done"].resize((n_t, n_t))
            for column in ("network_a", "network_b"):  # zarr drops writes past an array's end silently
                self._group[column].resize((n,))

    def _write_networks(self, start: int, masks_list, records) -> None:
        stop = start + len(records)
        connections = np.zeros((len(records), self.n_layers), dtype=np.int64)
        for k in range(self.n_layers):
            dense = np.stack([np.asarray(sp.csr_matrix(m[k]).toarray() != 0) for m in masks_list])
            self._group[f"mask_l{k}"][start:stop] = dense
            connections[:, k] = dense.sum(axis=(1, 2))
        self._group["connections"][start:stop] = connections
        for column in METADATA_COLUMNS:
            attr = "name" if column == "network" else column
            values = [getattr(r, attr) for r in records]
            self._group[column][start:stop] = np.array(values, dtype=object if column in _STRING_COLUMNS else None)
        if self.has_results:
            for column in ("network_a", "network_b"):
                self._group[column][start:stop] = np.array([r.name for r in records], dtype=object)

    def _forget_distances(self, index: int) -> None:
        """A replaced network's distances are stale: NaN them and reopen every tile that holds them."""
        if not self.has_results:
            return
        distance, done = self._group["distance"], self._group["tiles_done"]
        distance[:, index, :] = np.nan
        distance[:, :, index] = np.nan
        distance[:, index, index] = 0.0
        t = tile_of(index, self.tile)
        done[t, :] = 0
        done[:, t] = 0

    # ---- results -----------------------------------------------------------------------------

    @property
    def has_results(self) -> bool:
        return "distance" in self._group

    @property
    def tile(self) -> int | None:
        return self._group.attrs.get("tile")

    @property
    def solver(self) -> str:
        """The solver of the stored distances ("exact" or "sparse"); absent, as in older stores, means exact."""
        return self._group.attrs.get("solver", "exact")

    @property
    def max_layer(self) -> int | None:
        """The last layer computed (compute --max-layer); absent or None means every layer."""
        return self._group.attrs.get("max_layer")

    def check_layer_computed(self, layer: int) -> None:
        """A layer beyond the run's --max-layer holds no distances: say so rather than hand out NaN."""
        if self.max_layer is not None and layer > self.max_layer:
            raise StoreError(
                f"{self.path}: layer {layer} was not computed (compute ran with --max-layer {self.max_layer}); "
                f"run `nnstd-dist compute --store {self.path} --max-layer {layer} --recompute`"
            )

    def init_results(self, tile: int, solver: str = "exact", max_layer: int | None = None) -> None:
        """Create empty (all-NaN) result arrays, chunked by ``tile``; replaces any existing results.

        ``solver`` and ``max_layer`` are recorded as attributes (absent in stores made before them:
        exact, all layers), so that one matrix never mixes solvers and a layer not computed is known.
        """
        n, n_layers = self.n_networks, self.n_layers
        n_t = n_tiles(n, tile)
        names = np.array(self.names(), dtype=object)
        self._group.create_array(
            "distance", shape=(n_layers, n, n), chunks=(n_layers, tile, tile), dtype="float64",
            fill_value=np.nan, dimension_names=("layer", "network_a", "network_b"), overwrite=True,
        )
        self._group.create_array(
            "tiles_done", shape=(n_t, n_t), chunks=(1, 1), dtype="int64", fill_value=0,
            dimension_names=("tile_a", "tile_b"), overwrite=True,
            compressors=None,  # each marker is a plain 8-byte file: see store_markers.py
        )
        for column in ("network_a", "network_b"):
            arr = self._group.create_array(column, shape=(n,), chunks=(4096,), dtype=str, dimension_names=(column,), overwrite=True)
            if n:
                arr[:] = names
        layer = self._group.create_array("layer", shape=(n_layers,), dtype="int64", dimension_names=("layer",), overwrite=True)
        layer[:] = np.arange(n_layers)
        self._group.attrs.update({"tile": int(tile), "solver": solver, "max_layer": None if max_layer is None else int(max_layer)})

    def tile_markers(self) -> np.ndarray:
        """(n_tiles, n_tiles) int64: the population size at which each tile was completed, 0 if never."""
        self._require_results()
        markers = self._group["tiles_done"]
        from_files = read_marker_files(markers, self.path / "tiles_done")
        return markers[:] if from_files is None else from_files

    def tile_marker(self, a: int, b: int) -> int:
        """The marker of tile (a, b) alone: one chunk read, for a task that needs only its own tile's state."""
        return int(self._group["tiles_done"][a, b])

    def mark_tile(self, a: int, b: int, done_at: int) -> None:
        """Record that tile (a, b) holds every pair of a population of ``done_at`` networks; call after its data."""
        self._group["tiles_done"][a, b] = done_at

    def read_block(self, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
        """The (L, rows, cols) distances of networks [rows[0], rows[1]) x [cols[0], cols[1]) as stored now."""
        return self._group["distance"][:, rows[0] : rows[1], cols[0] : cols[1]]

    def write_block(self, rows: tuple[int, int], cols: tuple[int, int], block: np.ndarray) -> None:
        """Write the (L, rows, cols) ``block`` and its mirror (cols, rows); ranges on tile boundaries write whole chunks."""
        distance = self._group["distance"]
        distance[:, rows[0] : rows[1], cols[0] : cols[1]] = block
        if rows != cols:  # a diagonal block holds its own mirror
            distance[:, cols[0] : cols[1], rows[0] : rows[1]] = block.transpose(0, 2, 1)

    def read_distance(self, layers=None, indices=None) -> np.ndarray:
        """Distances (len(layers), k, k) for the given layers and network indices (default: all)."""
        self._require_results()
        n = self.n_networks
        layers = list(range(self.n_layers)) if layers is None else [int(k) for k in layers]
        for k in layers:
            self._check_layer(k)
            self.check_layer_computed(k)
        distance = self._group["distance"]
        if indices is None:
            return distance.get_orthogonal_selection((np.asarray(layers), slice(0, n), slice(0, n)))
        indices = np.asarray(indices, dtype=np.int64)
        self._check_indices(indices)
        return distance.get_orthogonal_selection((np.asarray(layers), indices, indices))

def _runs(sorted_unique: np.ndarray, max_len: int):
    """[start, stop) ranges of consecutive values, each at most max_len long."""
    if not len(sorted_unique):
        return
    breaks = np.flatnonzero(np.diff(sorted_unique) != 1) + 1
    for run in np.split(sorted_unique, breaks):
        for start in range(int(run[0]), int(run[-1]) + 1, max_len):
            yield start, min(start + max_len, int(run[-1]) + 1)


@contextlib.contextmanager
def locked(path: str | Path, command: str, force: bool = False):
    """The store at ``path`` for writing, under its run lock (see runlock.py), opened again once the lock is held.

    zarr caches the attributes (n_networks) read at open, and another run may have appended between
    a first open and the lock: only a store opened under the lock is current.
    """
    runlock_dir = TopologyStore.open(path, mode="r+").path  # a store, not any folder, gets a lock file
    with runlock.hold(runlock_dir, command, force):
        yield TopologyStore.open(path, mode="r+")


def add_networks(path: str | Path, networks, replace: bool = False, command: str = "nnstd-dist ingest"):
    """Append ``[(NetworkRecord, masks), ...]`` to the store at ``path`` under its lock, creating it if missing.

    Returns ``(AppendReport, created)``. A new store is built in a hidden sibling directory and
    renamed into place once complete: a failed first ingest leaves no store behind, and no reader
    ever sees a half-built one. An empty directory at ``path`` counts as missing.
    """
    path, networks = Path(path), list(networks)
    if path.is_dir() and any(path.iterdir()) and not (path / "zarr.json").exists():
        raise StoreError(f"{path}: a directory that is not an nnstd-dist store; give a new path for the store")
    if path.exists() and not _is_empty_dir(path):
        with locked(path, command) as store:
            return store.append(networks, replace=replace), False
    if not networks:
        raise StoreError(f"{path}: no networks to create the store from")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"{path}: cannot create its folder ({exc.strerror})") from None
    staging = path.parent / f".{path.name}.creating-{socket.gethostname()}-{os.getpid()}"
    try:
        store = TopologyStore.create(staging, [tuple(m.shape) for m in networks[0][1]], networks[0][0].layers)
        report = store.append(networks, replace=replace)
        try:
            os.rename(staging, path)  # atomic; refused if another ingest created the store meanwhile
        except OSError:
            if not path.exists() or _is_empty_dir(path):
                raise
            return add_networks(path, networks, replace, command)
        return report, True
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _is_empty_dir(path: Path) -> bool:
    return path.is_dir() and not any(path.iterdir())
