"""The topology store: the only module that knows zarr.

Layout of a store (a zarr v3 group on a local or shared filesystem)::

    attrs         format="nnstd-dist", format_version=2, shapes=[[n_in, n_out], ...], generation=G,
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
    tiles_done    int64 (ceil(N/T), ceil(N/T)), chunks (1, 1), uncompressed + crc32c: for tile (a, b), a >= b, the N at which
                  its pairs were complete; 0 = nothing valid. A tile is complete when its extent at that
                  N equals its extent now, so appending networks reopens only the edge tiles.
    nnstd-dist.lock   JSON {host, pid, started, command, token} while a compute or ingest runs (runlock.py)

Every chunk ends with its crc32c and every chunk of the population is written (even one equal to
the fill value), so damage or a missing chunk is a StoreError, never a number. ``tile`` is the
results' commit point (removed first, written last by init_results); replace invalidates tiles
before it changes masks; reads return only what the done markers vouch for. See docs/store.md,
"Crash consistency".

``n_networks`` is written last by an append, so a crash mid-append leaves the population unchanged.
Every array's dimension names, and a ``coordinates`` attribute naming run, epoch and accuracy on the
per-network arrays, make ``xarray.open_zarr(path, consolidated=False)`` label it. Metadata is not
consolidated: every append resizes the arrays, and a stale consolidated copy would hide networks.
Tile geometry (which rows and columns tile (a, b) covers) belongs to plan.py: the store reads and
writes row/column ranges and keeps one marker per tile. See docs/store.md.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import socket
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import zarr
from zarr.codecs import BloscCodec, Crc32cCodec, ZstdCodec
from zarr.storage import LocalStore

from . import faults, runlock
from .errors import ShapeMismatchError, StoreError
from .masks import dense_to_csr, describe_shapes
from .plan import n_tiles, tile_of
from .records import METADATA_COLUMNS, AppendReport, NetworkRecord, mask_digest
from .runlock import process_alive
from .store_chunks import chunk_path, chunk_problem
from .store_markers import read_marker_files

__all__ = ["FORMAT", "FORMAT_VERSION", "TopologyStore", "NetworkRecord", "AppendReport", "mask_digest", "locked", "add_networks"]

FORMAT = "nnstd-dist"
FORMAT_VERSION = 2  # 2: crc32c on every chunk, results committed by the `tile` attribute, `generation`
_STRING_COLUMNS = ("network", "run", "source", "digest", "network_a", "network_b")
# Every chunk ends with its crc32c (the last bytes-to-bytes codec), so damage reads as an error, never a number.
_MASK_CODECS = (BloscCodec(cname="zstd", clevel=5, shuffle="bitshuffle"), Crc32cCodec())  # masks are bits: ~2 B/connection
_CODECS = (ZstdCodec(level=0), Crc32cCodec())
_MARKER_CODECS = (Crc32cCodec(),)  # a marker is 8 bytes + 4 of checksum: see store_markers.py
_PER_NETWORK = ("connections", *METADATA_COLUMNS)  # besides the masks: arrays whose first axis is the network
# Every chunk of the population is written, even one equal to the fill value (an empty mask, zero
# connections), so a chunk file that is missing is damage, not a default (zarr skips them otherwise).
zarr.config.set({"array.write_empty_chunks": True})


class _FaultInjectingStore(LocalStore):
    """A LocalStore that calls faults.before_write before every change: crash tests kill a command at each write."""

    async def set(self, key, value):
        faults.before_write()
        await super().set(key, value)

    async def set_if_not_exists(self, key, value):
        faults.before_write()
        await super().set_if_not_exists(key, value)

    async def delete(self, key):
        faults.before_write()
        await super().delete(key)

    async def delete_dir(self, prefix):
        faults.before_write()
        await super().delete_dir(prefix)


def _writes(method):
    """A write that fails for the filesystem's reasons (full disk, read-only store) is one StoreError, not a traceback."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot write ({exc.strerror or exc}); the store keeps its last complete state, run the command again once fixed") from None
    return wrapper


def _zarr_store(path: Path, mode: str):
    return _FaultInjectingStore(path, read_only=mode == "r") if faults.active() else str(path)


@contextlib.contextmanager
def _reading(store_path: Path, what: str):
    """zarr's errors on a damaged chunk or metadata file (checksum, codec, JSON) as one StoreError naming ``what``."""
    try:
        yield
    except StoreError:
        raise
    except (ValueError, RuntimeError, OSError, KeyError, TypeError) as exc:
        reason = "checksum mismatch" if "checksum" in str(exc).lower() else f"{type(exc).__name__}: {str(exc)[:120]}"
        raise StoreError(f"{store_path}: {what} is damaged ({reason}); `nnstd-dist verify --store {store_path}` lists all damage") from None
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
            group = zarr.open_group(_zarr_store(path, mode), mode=mode)
        except Exception as exc:  # zarr raises several types for a broken group
            raise StoreError(f"{path}: not a readable zarr group ({str(exc)[:160]})") from None
        attrs = group.attrs.asdict()
        if attrs.get("format") != FORMAT:
            raise StoreError(f"{path}: a zarr group, but not an nnstd-dist store")
        if attrs.get("format_version") == 1:
            raise StoreError(
                f"{path}: store format version 1 (no checksums), this nnstd-dist reads version {FORMAT_VERSION}: "
                "re-ingest its sources into a new store (`nnstd-dist ingest SOURCES --store NEW.zarr`)"
            )
        if attrs.get("format_version") != FORMAT_VERSION:
            raise StoreError(
                f"{path}: store format version {attrs.get('format_version')}, this nnstd-dist reads version {FORMAT_VERSION}"
            )
        store = cls(path, group)
        store._check_shapes()
        return store

    def _check_shapes(self) -> None:
        """The attributes agree with the arrays' metadata: n_networks within every per-network array, the tile with distance's chunks."""
        n = self.n_networks
        with _reading(self.path, "the store's metadata"):
            lengths = {name: self._group[name].shape[0] for name in ("network", "digest", "mask_l0")}
            if self.has_results:
                lengths["distance"] = self._group["distance"].shape[1]
                chunk = self._group["distance"].chunks[1]
        short = {name: length for name, length in lengths.items() if length < n}
        if not isinstance(self._group.attrs.get("n_networks"), int) or n < 0 or short:
            raise StoreError(f"{self.path}: damaged: n_networks is {n} but {', '.join(f'{k} holds {v}' for k, v in short.items()) or 'it is not a count'}")
        if self.has_results and chunk != self.tile:
            raise StoreError(f"{self.path}: damaged: the tile attribute is {self.tile} but the distances are stored in tiles of {chunk}")

    @classmethod
    def create(cls, path: str | Path, shapes: list[tuple[int, int]], layers=()) -> "TopologyStore":
        """A new, empty store for networks of the given layer shapes; ``layers``: their LayerSpecs, if known."""
        path = Path(path)
        if path.exists():
            raise StoreError(f"{path}: already exists")
        group = zarr.open_group(_zarr_store(path, "w-"), mode="w-")
        for k, (n_in, n_out) in enumerate(shapes):
            group.create_array(
                f"mask_l{k}", shape=(0, n_in, n_out), chunks=(1, n_in, n_out), dtype=bool,
                compressors=_MASK_CODECS, dimension_names=("network", f"in_l{k}", f"out_l{k}"),
                attributes=_NETWORK_COORDINATES,
            )
        group.create_array(
            "connections", shape=(0, len(shapes)), chunks=(4096, len(shapes)), dtype="int64",
            fill_value=0, dimension_names=("network", "layer"), attributes=_NETWORK_COORDINATES, compressors=_CODECS,
        )
        for column in METADATA_COLUMNS:
            dtype = {"epoch": "int64", "accuracy": "float64"}.get(column, str)
            fill = {"epoch": -1, "accuracy": np.nan}.get(column)
            group.create_array(
                column, shape=(0,), chunks=(4096,), dtype=dtype, fill_value=fill, dimension_names=("network",), compressors=_CODECS
            )
        # attrs last: a directory without them is not taken for a store
        attrs = {"format": FORMAT, "format_version": FORMAT_VERSION, "shapes": [list(map(int, s)) for s in shapes], "n_networks": 0, "generation": 0}
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
            self._require_chunks(name, self._column_chunks(name))
            with _reading(self.path, f"the {name} column"):
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
        self._require_chunks("connections", [(c, 0) for c, in self._column_chunks("connections")])
        with _reading(self.path, "the connections array"):
            return self._group["connections"][: self.n_networks]

    def _column_chunks(self, name: str) -> list[tuple[int]]:
        """Chunk indices along the network axis that hold the population's rows."""
        return [(c,) for c in range(n_tiles(self.n_networks, self._group[name].chunks[0]))]

    def _require_chunks(self, name: str, coords, what=None) -> None:
        """Every listed chunk of array ``name`` exists: zarr would read a missing one as its fill value."""
        for c in coords:
            if not chunk_path(self.path, name, c).is_file():
                where = what(c) if what else f"chunk {'/'.join(map(str, c))}"
                raise StoreError(f"{self.path}: {name} {where} is missing; `nnstd-dist verify --store {self.path}` lists all damage")

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
        self._require_chunks(f"mask_l{layer}", [(i, 0, 0) for i in wanted.tolist()], lambda c: f"of network {c[0]}")
        masks = {}
        # One zarr call per run of consecutive indices: its chunks decode concurrently, whereas
        # zarr's integer-array (orthogonal) selection is several times slower.
        for start, stop in _runs(wanted, max_len=max(1, _READ_BYTES // max(1, int(np.prod(self.shapes[layer]))))):
            with _reading(self.path, f"mask_l{layer} of networks {start}..{stop - 1}"):
                block = array[start:stop]
            for i, dense in zip(range(start, stop), block):
                masks[i] = dense_to_csr(dense)
        return [masks[i] for i in indices.tolist()]

    def damaged_chunks(self) -> list[tuple[str, tuple[int, ...], str]]:
        """(array, chunk index, problem) for every chunk the population needs that is missing or fails its checksum.

        Masks one chunk per network and layer; the per-network columns and connections their chunks
        along the network axis; with results, network_a/network_b and layer. Distances and done
        markers: see damaged_tiles (only done tiles must exist).
        """
        wanted = [(f"mask_l{k}", (i, 0, 0)) for k in range(self.n_layers) for i in range(self.n_networks)]
        wanted += [(name, c) for name in METADATA_COLUMNS for c in self._column_chunks(name)]
        wanted += [("connections", (c, 0)) for c, in self._column_chunks("connections")]
        if self.has_results:
            wanted += [(name, c) for name in ("network_a", "network_b") for c in self._column_chunks(name)]
            wanted += [("layer", (0,))]
        out = []
        for name, coords in wanted:
            problem = chunk_problem(chunk_path(self.path, name, coords))
            if problem:
                out.append((name, coords, problem))
        return out

    def check_columns(self) -> None:
        """The per-network columns and connections are whole (present, checksums right): a few small files."""
        for name in ("connections", *METADATA_COLUMNS):
            for coords in self._column_chunks(name):
                coords = (coords[0], 0) if name == "connections" else coords
                problem = chunk_problem(chunk_path(self.path, name, coords))
                if problem:
                    raise StoreError(f"{self.path}: {name} chunk {'/'.join(map(str, coords))} is {problem}; `nnstd-dist verify --store {self.path}` lists all damage")

    def results_names(self) -> tuple[list[str], list[str]]:
        """The names stored along distance's two network axes (network_a, network_b)."""
        self.require_results()
        with _reading(self.path, "network_a/network_b"):
            return ([str(x) for x in self._group["network_a"][: self.n_networks]], [str(x) for x in self._group["network_b"][: self.n_networks]])

    def _mask_damaged(self, index: int) -> bool:
        return any(chunk_problem(chunk_path(self.path, f"mask_l{k}", (index, 0, 0))) for k in range(self.n_layers))

    def check_masks(self) -> None:
        """Every mask chunk of the population exists and passes its checksum (read raw, not decoded)."""
        for k in range(self.n_layers):
            for i in range(self.n_networks):
                problem = chunk_problem(chunk_path(self.path, f"mask_l{k}", (i, 0, 0)))
                if problem:
                    raise StoreError(
                        f"{self.path}: mask_l{k} of network {i} ({self.names()[i]}) is {problem}; "
                        f"`nnstd-dist verify --store {self.path}` lists all damage; ingesting its source again rewrites it"
                    )

    def read_masks(self, indices) -> list[list[sp.csr_matrix]]:
        """All layers of the given networks: result[i][k] is layer k of network indices[i]."""
        per_layer = [self.read_layer(indices, k) for k in range(self.n_layers)]
        return [list(layers) for layers in zip(*per_layer)]

    def _check_layer(self, layer: int) -> None:
        if not 0 <= layer < self.n_layers:
            raise StoreError(f"layer {layer} out of range: the store's networks have {self.n_layers} layers (0..{self.n_layers - 1})")

    def require_results(self) -> None:
        """Refuse a store whose distances were never computed."""
        if not self.has_results:
            raise StoreError(f"{self.path}: no distances yet (run `nnstd-dist compute --store {self.path}`)")

    def _check_indices(self, indices: np.ndarray) -> None:
        if len(indices) and (indices.min() < 0 or indices.max() >= self.n_networks):
            raise StoreError(f"{self.path}: network index out of range 0..{self.n_networks - 1}")

    @_writes
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
            if not -1 <= record.epoch < 2**63:
                raise StoreError(f"{record.source or record.name}: epoch {record.epoch} does not fit the store (0 .. 2^63-1, or -1 for none)")
            if record.name not in existing:
                new.append((record, masks))
            elif digests[existing[record.name]] == digest and not self._mask_damaged(existing[record.name]):
                report.unchanged.append(record.name)
            elif digests[existing[record.name]] == digest:  # same network, damaged on disk: rewritten
                replaced.append((existing[record.name], record, masks))
            elif replace:
                replaced.append((existing[record.name], record, masks))
            else:
                raise StoreError(
                    f"{record.source or record.name}: a different network named {record.name!r} is already in the store (use `replace`)"
                )
        # ---- nothing is written above this line ----
        old_n = self.n_networks
        new_n = old_n + len(new)
        if replaced:
            # Results are invalidated before (never after) the masks they depend on change: a crash
            # in between leaves tiles to recompute, never old distances vouched for new masks. The
            # generation tells a task still running from before that its result is stale.
            self._group.attrs["generation"] = self.generation + 1
            for index, _, _ in replaced:
                self._forget_distances(index)
        if any(self._group[name].shape[0] != old_n for name in (*_PER_NETWORK, *(f"mask_l{k}" for k in range(self.n_layers)))):
            self._resize_population(old_n)  # drop rows (orphan chunks) a killed append left past n_networks
        if new:
            self._resize_population(new_n)
            for start in range(0, len(new), _WRITE_BATCH):
                batch = new[start : start + _WRITE_BATCH]
                self._write_networks(old_n + start, [m for _, m in batch], [r for r, _ in batch])
            report.added = [r.name for r, _ in new]
        for index, record, masks in replaced:
            self._write_networks(index, [masks], [record])
            report.replaced.append(record.name)
        self._group.attrs["n_networks"] = new_n  # the commit point
        self._cache.clear()
        return report

    @property
    def generation(self) -> int:
        """Raised by every replace and every new set of results: a task's result is kept only if it has not changed."""
        return int(self._group.attrs.get("generation", 0))

    def generation_on_disk(self) -> int:
        """The generation as stored now (zarr caches the attributes read at open)."""
        with _reading(self.path, "the store's zarr.json"):
            return int(json.loads((self.path / "zarr.json").read_bytes())["attributes"].get("generation", 0))

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
        """A replaced network's distances are stale: reopen every tile that holds them (markers first), then NaN them."""
        if not self.has_results:
            return
        distance, done = self._group["distance"], self._group["tiles_done"]
        t = tile_of(index, self.tile)
        done[t, :] = 0
        done[:, t] = 0
        distance[:, index, :] = np.nan
        distance[:, :, index] = np.nan
        distance[:, index, index] = 0.0

    # ---- results -----------------------------------------------------------------------------

    @property
    def has_results(self) -> bool:
        """Result arrays exist and are complete: ``tile`` is written last by init_results, removed first."""
        return "tile" in self._group.attrs and "distance" in self._group

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

    @_writes
    def init_results(self, tile: int, solver: str = "exact", max_layer: int | None = None) -> None:
        """Create empty (all-NaN) result arrays, chunked by ``tile``; replaces any existing results.

        ``solver`` and ``max_layer`` are recorded as attributes (absent in stores made before them:
        exact, all layers), so that one matrix never mixes solvers and a layer not computed is known.
        """
        n, n_layers = self.n_networks, self.n_layers
        n_t = n_tiles(n, tile)
        names = np.array(self.names(), dtype=object)
        # Atomic by its attributes: `tile` goes first (no reader then sees results: has_results is
        # False) and comes back last, so a crash in between leaves "no distances yet", never old
        # markers over new arrays. The generation tells tasks of an older run not to mark anything.
        attrs = {k: v for k, v in self._group.attrs.asdict().items() if k != "tile"}
        attrs["generation"] = self.generation + 1
        self._group.attrs.put(attrs)
        self._group.create_array(
            "tiles_done", shape=(n_t, n_t), chunks=(1, 1), dtype="int64", fill_value=0,
            dimension_names=("tile_a", "tile_b"), overwrite=True, compressors=_MARKER_CODECS,
        )
        self._group.create_array(
            "distance", shape=(n_layers, n, n), chunks=(n_layers, tile, tile), dtype="float64",
            fill_value=np.nan, dimension_names=("layer", "network_a", "network_b"), overwrite=True, compressors=_CODECS,
        )
        for column in ("network_a", "network_b"):
            arr = self._group.create_array(
                column, shape=(n,), chunks=(4096,), dtype=str, dimension_names=(column,), overwrite=True, compressors=_CODECS
            )
            if n:
                arr[:] = names
        layer = self._group.create_array(
            "layer", shape=(n_layers,), dtype="int64", dimension_names=("layer",), overwrite=True, compressors=_CODECS
        )
        layer[:] = np.arange(n_layers)
        self._group.attrs.update({"tile": int(tile), "solver": solver, "max_layer": None if max_layer is None else int(max_layer)})  # the commit point

    def tile_markers(self) -> np.ndarray:
        """(n_tiles, n_tiles) int64: the population size at which each tile was completed, 0 if never."""
        self.require_results()
        markers = self._group["tiles_done"]
        from_files = read_marker_files(markers, self.path / "tiles_done")
        if from_files is None:
            with _reading(self.path, "the done markers (tiles_done)"):
                return markers[:]
        return from_files

    def damaged_tiles(self) -> list[tuple[int, int, str]]:
        """Tiles (a, b) marked done whose marker or distance chunks, (a, b) or its mirror (b, a), are missing or fail their checksum.

        Reads every done tile's chunk files and checks their crc32c without decoding them.
        """
        self.require_results()
        damaged: list = []
        markers = read_marker_files(self._group["tiles_done"], self.path / "tiles_done", damaged)
        out = [(a, b, "done marker damaged") for a, b in damaged]
        if markers is None:
            return out
        for a, b in zip(*np.nonzero(markers)):
            if a < b:
                continue
            for key in {(0, a, b), (0, b, a)}:
                problem = chunk_problem(chunk_path(self.path, "distance", key))
                if problem:
                    out.append((int(a), int(b), f"distance chunk {key[1]}/{key[2]} {problem}"))
                    break
        return out

    def tile_marker(self, a: int, b: int) -> int:
        """The marker of tile (a, b) alone: one chunk read, for a task that needs only its own tile's state; damaged reads as 0."""
        try:
            return int(self._group["tiles_done"][a, b])
        except ValueError:  # checksum mismatch: the tile is redone
            return 0

    @_writes
    def mark_tile(self, a: int, b: int, done_at: int) -> None:
        """Record that tile (a, b) holds every pair of a population of ``done_at`` networks; call after its data."""
        self._group["tiles_done"][a, b] = done_at

    def read_block(self, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
        """The (L, rows, cols) distances of networks [rows[0], rows[1]) x [cols[0], cols[1]) as stored now."""
        with _reading(self.path, f"the distances of rows {rows[0]}..{rows[1] - 1}, columns {cols[0]}..{cols[1] - 1}"):
            return self._group["distance"][:, rows[0] : rows[1], cols[0] : cols[1]]

    @_writes
    def write_block(self, rows: tuple[int, int], cols: tuple[int, int], block: np.ndarray) -> None:
        """Write the (L, rows, cols) ``block`` and its mirror (cols, rows); ranges on tile boundaries write whole chunks."""
        distance = self._group["distance"]
        distance[:, rows[0] : rows[1], cols[0] : cols[1]] = block
        if rows != cols:  # a diagonal block holds its own mirror
            distance[:, cols[0] : cols[1], rows[0] : rows[1]] = block.transpose(0, 2, 1)

    def read_distance(self, layers=None, indices=None) -> np.ndarray:
        """Distances (len(layers), k, k) for the given layers and network indices (default: all)."""
        self.require_results()
        n = self.n_networks
        layers = list(range(self.n_layers)) if layers is None else [int(k) for k in layers]
        for k in layers:
            self._check_layer(k)
            self.check_layer_computed(k)
        distance = self._group["distance"]
        rows = np.arange(n) if indices is None else np.asarray(indices, dtype=np.int64)
        self._check_indices(rows)
        markers = self.tile_markers()
        self._require_done_chunks(rows, markers)
        with _reading(self.path, "the distance array"):
            if indices is None:
                values = distance.get_orthogonal_selection((np.asarray(layers), slice(0, n), slice(0, n)))
            else:
                values = distance.get_orthogonal_selection((np.asarray(layers), rows, rows))
        self._keep_vouched(values, rows, markers, computed=np.array([self.max_layer is None or k <= self.max_layer for k in layers]))
        return values

    def _require_done_chunks(self, rows: np.ndarray, markers: np.ndarray) -> None:
        """The distance chunks of every done tile among ``rows`` exist: zarr would read a missing one as NaN."""
        tiles = np.unique(rows // self.tile)
        x, y = np.meshgrid(tiles, tiles, indexing="ij")
        done = (x >= y) & (markers[x, y] > 0) & (markers[x, y] <= self.n_networks)
        keys = [(0, int(a), int(b)) for a, b in zip(x[done], y[done])]
        self._require_chunks("distance", keys + [(0, b, a) for _, a, b in keys], lambda c: f"chunk of tile ({max(c[1:])}, {min(c[1:])})")

    def _keep_vouched(self, values: np.ndarray, rows: np.ndarray, markers: np.ndarray, computed: np.ndarray) -> None:
        """NaN every pair the done markers do not vouch for; a vouched pair that is NaN is damage. NNSTD(x, x) = 0.

        Tile (a, b) done at M vouches for its pairs with both indices < M. Done in slabs of rows, so
        that the masks cost a few MB whatever the population.
        """
        n, tile = self.n_networks, self.tile
        col_tiles = rows // tile
        for r0 in range(0, len(rows), 1024):
            slab = rows[r0 : r0 + 1024]
            hi = np.maximum(slab[:, None], rows[None, :])
            ta = slab[:, None] // tile
            done_at = markers[np.maximum(ta, col_tiles[None, :]), np.minimum(ta, col_tiles[None, :])]
            vouched = (done_at > 0) & (done_at <= n) & (hi < done_at)
            same = slab[:, None] == rows[None, :]
            block = values[:, r0 : r0 + 1024]
            if np.isnan(block[computed][:, vouched & ~same]).any():  # layers past --max-layer are NaN by design
                raise StoreError(f"{self.path}: distances marked computed are missing; `nnstd-dist verify --store {self.path}` lists all damage")
            block[:, ~vouched] = np.nan
            block[:, same] = 0.0


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
    _remove_dead_staging(path)
    staging = path.parent / f".{path.name}.creating-{socket.gethostname()}-{os.getpid()}"
    try:
        store = TopologyStore.create(staging, [tuple(m.shape) for m in networks[0][1]], networks[0][0].layers)
        report = store.append(networks, replace=replace)
        try:
            faults.before_write()
            os.rename(staging, path)  # atomic; refused if another ingest created the store meanwhile
        except OSError:
            if not path.exists() or _is_empty_dir(path):
                raise
            return add_networks(path, networks, replace, command)
        return report, True
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _remove_dead_staging(path: Path) -> None:
    """Staging folders of first ingests on this host whose process is gone (killed before its rename)."""
    prefix = f".{path.name}.creating-{socket.gethostname()}-"
    with contextlib.suppress(OSError):
        for entry in path.parent.iterdir():
            pid = entry.name[len(prefix):] if entry.name.startswith(prefix) else ""
            if pid.isdigit() and not process_alive(int(pid)):
                shutil.rmtree(entry, ignore_errors=True)



def _is_empty_dir(path: Path) -> bool:
    return path.is_dir() and not any(path.iterdir())
