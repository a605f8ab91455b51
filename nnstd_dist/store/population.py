"""The population half of the store: per-network metadata columns and layer masks, read back and checked chunk by chunk.

Arrays (created here, written by ``TopologyStore.append``): ``mask_l{k}`` bool (N, n_in_k, n_out_k),
one chunk per network and layer (blosc-zstd bitshuffle, crc32c), packed into shards of up to 1,024
networks (one file each: few files at rest; one writer, the ingest that holds the lock); ``network`` (unique names, store order =
matrix order), ``run``, ``source``, ``digest`` str (N,); ``epoch`` int64 (N,), -1 if none;
``accuracy`` float64 (N,), NaN if none; ``connections`` int64 (N, L), so densities need no mask read;
``replaced_at`` int64 (N,): the generation of the network's last replace, 0 if none (see results.py).
"""

from __future__ import annotations

import contextlib

import numpy as np
import scipy.sparse as sp

from . import zarr_io
from ..errors import StoreError
from ..kernel.masks import dense_to_csr
from ..tiles import n_tiles
from ..records import METADATA_COLUMNS, NetworkRecord
from .chunks import chunk_key, chunk_problem, read_shard_index, shard_problems
from .zarr_io import consecutive_runs, damage_hint, reading, require_chunks

__all__ = ["Population", "STRING_COLUMNS", "PER_NETWORK"]

STRING_COLUMNS = ("network", "run", "source", "digest")
PER_NETWORK = ("connections", "replaced_at", *METADATA_COLUMNS)  # besides the masks: arrays whose first axis is the network
_READ_BYTES = 256 * 2**20  # dense bytes per zarr read call in read_layer: bounds memory, not speed
_NETWORK_COORDINATES = {"coordinates": "run epoch accuracy"}  # xarray shows these along `network`
SHARD_NETWORKS = 1024  # networks per mask shard file, fewer where their dense masks would pass SHARD_DENSE_BYTES
SHARD_DENSE_BYTES = 2**30  # an append rewrites a whole shard: bounds the bytes one holds


def shard_networks(n_in: int, n_out: int) -> int:
    """Networks per shard of a layer of n_in x n_out: a power of two, at most SHARD_NETWORKS."""
    s = SHARD_NETWORKS
    while s > 1 and s * n_in * n_out > SHARD_DENSE_BYTES:
        s //= 2
    return s


class Population:
    """TopologyStore's reads of its networks (mixed into it: uses its ``path``, ``_group`` and ``_cache``)."""

    def _array(self, name: str):
        """The zarr array ``name``, opened once per store object: each open reads its metadata (a request on an object
        store). Writers use the group itself; an append clears the cache."""
        key = f"array {name}"
        if key not in self._cache:
            self._cache[key] = self._group[name]
        return self._cache[key]

    @staticmethod
    def _create_population(group, shapes) -> None:
        """The empty per-network arrays of a new store."""
        for k, (n_in, n_out) in enumerate(shapes):
            group.create_array(
                f"mask_l{k}", shape=(0, n_in, n_out), chunks=(1, n_in, n_out), shards=(shard_networks(n_in, n_out), n_in, n_out), dtype=bool,
                compressors=zarr_io.MASK_CODECS, dimension_names=("network", f"in_l{k}", f"out_l{k}"),
                attributes=_NETWORK_COORDINATES,
            )
        group.create_array(
            "connections", shape=(0, len(shapes)), chunks=(4096, len(shapes)), dtype="int64",
            fill_value=0, dimension_names=("network", "layer"), attributes=_NETWORK_COORDINATES, compressors=zarr_io.CODECS,
        )
        group.create_array(  # the generation of each network's last replace: records written before it are stale
            "replaced_at", shape=(0,), chunks=(4096,), dtype="int64", fill_value=0, dimension_names=("network",), compressors=zarr_io.CODECS
        )
        for column in METADATA_COLUMNS:
            dtype = {"epoch": "int64", "accuracy": "float64"}.get(column, str)
            fill = {"epoch": -1, "accuracy": np.nan}.get(column)
            group.create_array(
                column, shape=(0,), chunks=(4096,), dtype=dtype, fill_value=fill, dimension_names=("network",), compressors=zarr_io.CODECS
            )

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
            require_chunks(self.storage, name, self._column_chunks(name))
            with reading(self.path, f"the {name} column"):
                values = self._array(name)[: self.n_networks]
            self._cache[name] = values.astype(object) if name in STRING_COLUMNS else values
        return self._cache[name]

    def names(self) -> list[str]:
        return [str(n) for n in self.column("network")]

    def records(self) -> list[NetworkRecord]:
        cols = [self.column(c) for c in METADATA_COLUMNS]
        return [
            NetworkRecord(str(n), str(r), int(e), float(a), str(s), str(d)) for n, r, e, a, s, d in zip(*cols)
        ]

    def replaced_at(self) -> np.ndarray:
        """(N,) int64: the store's generation at each network's last replace, 0 if never replaced."""
        if "replaced_at" not in self._cache:
            require_chunks(self.storage, "replaced_at", self._column_chunks("replaced_at"))
            with reading(self.path, "the replaced_at column"):
                self._cache["replaced_at"] = self._array("replaced_at")[: self.n_networks]
        return self._cache["replaced_at"]

    def connections(self) -> np.ndarray:
        """(N, L) int64: connections of every network in every layer."""
        require_chunks(self.storage, "connections", [(c, 0) for c, in self._column_chunks("connections")])
        with reading(self.path, "the connections array"):
            return self._array("connections")[: self.n_networks]

    def _column_chunks(self, name: str) -> list[tuple[int]]:
        """Chunk indices along the network axis that hold the population's rows."""
        return [(c,) for c in range(n_tiles(self.n_networks, self._array(name).chunks[0]))]

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
        array = self._array(f"mask_l{layer}")
        wanted = np.unique(indices)
        masks = {}
        with contextlib.ExitStack() as prefetched:
            missing = self._prefetch_masks(layer, wanted.tolist(), prefetched)  # zarr would read a missing chunk as no connections
            if missing:
                i, problem = next(iter(missing.items()))
                raise StoreError(f"{self.path}: mask_l{layer} of network {i} is {problem}; {damage_hint(self.path)}")
            # One zarr call per run of consecutive indices: its chunks decode concurrently, whereas
            # zarr's integer-array (orthogonal) selection is several times slower.
            for start, stop in _ranges(wanted, max_len=max(1, _READ_BYTES // max(1, int(np.prod(self.shapes[layer]))))):
                block = self._read_mask_block(array, layer, start, stop)
                for i, dense in zip(range(start, stop), block):
                    masks[i] = dense_to_csr(dense)
        return [masks[i] for i in indices.tolist()]

    def _prefetch_masks(self, layer: int, indices, stack: contextlib.ExitStack) -> dict[int, str]:
        """Network index -> why its mask chunk of ``layer`` is missing, from each shard's index (read once); the chunks
        that are there prefetched for the zarr read that follows, until ``stack`` closes.

        zarr reads a shard's index again and then each chunk, one request each on an object store (48 of a tile's 82
        requests before this): the storage serves them from one ranged read per shard (storage.prefetch)."""
        s = self._array(f"mask_l{layer}").shards[0]
        out = {}
        for shard, inner in _by_shard(indices, s).items():
            key = chunk_key(f"mask_l{layer}", (shard, 0, 0))
            index, raw = read_shard_index(self.storage, key, s)
            if isinstance(index, str):
                out.update({shard * s + i: index for i in inner})
                continue
            out.update({shard * s + i: "missing" for i in inner if index[i] is None})
            ranges = [(index[i][0], index[i][0] + index[i][1]) for i in inner if index[i] is not None]
            stack.enter_context(self.storage.prefetch(key, ranges, tail=raw))
        return out

    def _read_mask_block(self, array, layer: int, start: int, stop: int) -> np.ndarray:
        """Masks [start, stop) of one layer; a checksum error is read once more before it counts as damage.

        zarr reads a shard's index and then its chunks, one file open each: an ingest that rewrites the shard
        in between (a new file renamed over it) makes the old index point into the new file.
        """
        for attempt in (0, 1):
            try:
                with reading(self.path, f"mask_l{layer} of networks {start}..{stop - 1}"):
                    return array[start:stop]
            except StoreError:
                if attempt:
                    raise
                self.storage.drop_prefetched()  # the second reading is of the shard as it is now

    def read_masks(self, indices, n_layers: int | None = None) -> list[list[sp.csr_matrix]]:
        """All layers (or the first ``n_layers``) of the given networks: result[i][k] is layer k of network indices[i]."""
        per_layer = [self.read_layer(indices, k) for k in range(self.n_layers if n_layers is None else n_layers)]
        return [list(layers) for layers in zip(*per_layer)]

    def damaged_chunks(self) -> list[tuple[str, tuple[int, ...], str]]:
        """(array, chunk index, problem) for every chunk the population needs that is missing or fails its checksum.

        Masks one chunk per network and layer; the per-network columns and connections their chunks
        along the network axis. Distances and done
        records: see damaged_tiles.
        """
        out = [
            (f"mask_l{k}", (i, 0, 0), problem)
            for k in range(self.n_layers) for i, problem in self._mask_problems(k, range(self.n_networks)).items()
        ]
        wanted = [(name, c) for name in (*METADATA_COLUMNS, "replaced_at") for c in self._column_chunks(name)]
        wanted += [("connections", (c, 0)) for c, in self._column_chunks("connections")]
        for name, coords in wanted:
            problem = chunk_problem(self.storage, chunk_key(name, coords))
            if problem:
                out.append((name, coords, problem))
        return out

    def check_columns(self) -> None:
        """The per-network columns and connections are whole (present, checksums right): a few small files."""
        for name in PER_NETWORK:
            for coords in self._column_chunks(name):
                coords = (coords[0], 0) if name == "connections" else coords
                problem = chunk_problem(self.storage, chunk_key(name, coords))
                if problem:
                    raise StoreError(f"{self.path}: {name} chunk {'/'.join(map(str, coords))} is {problem}; {damage_hint(self.path)}")

    def _mask_problems(self, layer: int, indices, read: bool = True) -> dict[int, str]:
        """Network index -> what is wrong with its mask chunk of ``layer`` (missing; with ``read``, its crc32c), from the shard files."""
        s = self._array(f"mask_l{layer}").shards[0]
        out = {}
        for shard, inner in _by_shard(indices, s).items():
            found = shard_problems(self.storage, chunk_key(f"mask_l{layer}", (shard, 0, 0)), s, inner, read)
            out.update({shard * s + i: problem for i, problem in sorted(found.items())})
        return out

    def _mask_damaged(self, index: int) -> bool:
        return any(self._mask_problems(k, [index]) for k in range(self.n_layers))

    def check_masks(self) -> None:
        """Every mask chunk of the population exists and passes its checksum (read raw, not decoded)."""
        for k in range(self.n_layers):
            for i, problem in self._mask_problems(k, range(self.n_networks)).items():
                raise StoreError(
                    f"{self.path}: mask_l{k} of network {i} ({self.names()[i]}) is {problem}; "
                    f"{damage_hint(self.path)}; ingesting its source again rewrites it"
                )

    def _check_layer(self, layer: int) -> None:
        if not 0 <= layer < self.n_layers:
            raise StoreError(f"layer {layer} out of range: the store's networks have {self.n_layers} layers (0..{self.n_layers - 1})")

    def _check_indices(self, indices: np.ndarray) -> None:
        if len(indices) and (indices.min() < 0 or indices.max() >= self.n_networks):
            raise StoreError(f"{self.path}: network index out of range 0..{self.n_networks - 1}")


def _ranges(sorted_unique: np.ndarray, max_len: int):
    """[start, stop) ranges of consecutive values, each at most max_len long."""
    for run in consecutive_runs(sorted_unique):
        for start in range(int(run[0]), int(run[-1]) + 1, max_len):
            yield start, min(start + max_len, int(run[-1]) + 1)


def _by_shard(indices, per_shard: int) -> dict[int, list[int]]:
    """Network indices by shard, ascending: shard -> positions within it."""
    out: dict[int, list[int]] = {}
    for i in sorted(int(i) for i in indices):
        out.setdefault(i // per_shard, []).append(i % per_shard)
    return out
