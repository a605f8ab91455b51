"""The results half of the store: distances by tile, one done marker per tile, and only the pairs the markers vouch for.

Arrays (created by ``init_results``)::

    distance      float64 (L, N, N), chunks (L, T, T), NaN = not computed yet; (i, j) with i > j is
                  NNSTD(network i, network j), mirrored to (j, i); diagonal 0
    network_a, network_b   str (N,): the names again, as coordinates of distance's two network axes
    layer         int64 (L,)
    tiles_done    int64 (ceil(N/T), ceil(N/T)), chunks (1, 1), uncompressed + crc32c: for tile (a, b), a >= b,
                  the N at which its pairs were complete; 0 = nothing valid. A tile is complete when its
                  extent at that N equals its extent now, so appending networks reopens only the edge tiles.

The group attribute ``tile`` is the results' commit point (removed first, written last by
init_results); ``generation`` is raised by every new set of results and every replace, so a task of
an older run marks nothing. Which rows and columns tile (a, b) covers belongs to plan.py.
"""

from __future__ import annotations

import json

import numpy as np

from . import zarr_io
from ..errors import StoreError
from ..tiles import n_tiles, tile_of, vouched_upto
from .chunks import chunk_path, chunk_problem
from .distances import read_vouched
from .zarr_io import damage_hint, reading, require_chunks, writes
from .markers import read_marker_files
from .consistency import marker_problems

__all__ = ["Results", "RESULT_NAMES"]

RESULT_NAMES = ("network_a", "network_b")  # per-network arrays that exist only with results


class Results:
    """TopologyStore's distances and done markers (mixed into it: uses its population, ``path`` and ``_group``)."""

    @property
    def has_results(self) -> bool:
        """Result arrays exist and are complete: ``tile`` is written last by init_results, removed first."""
        return "tile" in self._group.attrs and "distance" in self._group

    @property
    def tile(self) -> int | None:
        return self._group.attrs.get("tile")

    @property
    def solver(self) -> str:
        """The solver of the stored distances ("exact", "fast", or "sparse" from older versions); absent means exact."""
        return self._group.attrs.get("solver", "exact")

    @property
    def tie_rule(self) -> int | None:
        """The tie rule of the stored distances (kernel.TIE_RULES: fast's rule version); sparse results without one used rule 1."""
        if self.solver == "exact":
            return None
        return self._group.attrs.get("tie_rule", 1)

    @property
    def max_layer(self) -> int | None:
        """The last layer computed (compute's ``max_layer``); absent or None means every layer."""
        return self._group.attrs.get("max_layer")

    @property
    def generation(self) -> int:
        """Raised by every replace and every new set of results: a task's result is kept only if it has not changed."""
        return int(self._group.attrs.get("generation", 0))

    def generation_on_disk(self) -> int:
        """The generation as stored now (zarr caches the attributes read at open)."""
        with reading(self.path, "the store's zarr.json"):
            return int(json.loads((self.path / "zarr.json").read_bytes())["attributes"].get("generation", 0))

    def require_results(self) -> None:
        """Refuse a store whose distances were never computed."""
        if not self.has_results:
            raise StoreError(f"{self.path}: no distances yet (run `compute({str(self.path)!r})`)")

    def check_layer_computed(self, layer: int) -> None:
        """A layer beyond the run's ``max_layer`` holds no distances: say so rather than hand out NaN."""
        if self.max_layer is not None and layer > self.max_layer:
            raise StoreError(
                f"{self.path}: layer {layer} was not computed (the distances stop at layer {self.max_layer}); "
                f"run `compute({str(self.path)!r}, max_layer={layer}, recompute=True)`"
            )

    @writes
    def init_results(self, tile: int, solver: str = "exact", max_layer: int | None = None, tie_rule: int | None = None) -> None:
        """Create empty (all-NaN) result arrays, chunked by ``tile``; replaces any existing results.

        ``solver``, its ``tie_rule`` and ``max_layer`` are recorded as attributes (absent in stores made before
        them: exact, all layers), so that one matrix never mixes solvers and a layer not computed is known.
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
            dimension_names=("tile_a", "tile_b"), overwrite=True, compressors=zarr_io.MARKER_CODECS,
        )
        self._group.create_array(
            "distance", shape=(n_layers, n, n), chunks=(n_layers, tile, tile), dtype="float64",
            fill_value=np.nan, dimension_names=("layer", "network_a", "network_b"), overwrite=True, compressors=zarr_io.CODECS,
        )
        for column in RESULT_NAMES:
            arr = self._group.create_array(
                column, shape=(n,), chunks=(4096,), dtype=str, dimension_names=(column,), overwrite=True, compressors=zarr_io.CODECS
            )
            if n:
                arr[:] = names
        layer = self._group.create_array(
            "layer", shape=(n_layers,), dtype="int64", dimension_names=("layer",), overwrite=True, compressors=zarr_io.CODECS
        )
        layer[:] = np.arange(n_layers)
        self._group.attrs.update(
            {"tile": int(tile), "solver": solver, "tie_rule": tie_rule, "max_layer": None if max_layer is None else int(max_layer)}
        )  # the commit point

    def _resize_results(self, n: int) -> None:
        """Result arrays for a population of ``n`` (an append): new rows NaN, new tiles not done."""
        n_t = n_tiles(n, self.tile)
        self._group["distance"].resize((self.n_layers, n, n))
        self._group["tiles_done"].resize((n_t, n_t))
        for column in RESULT_NAMES:  # zarr drops writes past an array's end silently
            self._group[column].resize((n,))

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

    def results_names(self) -> tuple[list[str], list[str]]:
        """The names stored along distance's two network axes (network_a, network_b)."""
        self.require_results()
        with reading(self.path, "network_a/network_b"):
            return ([str(x) for x in self._group["network_a"][: self.n_networks]], [str(x) for x in self._group["network_b"][: self.n_networks]])

    # ---- done markers ------------------------------------------------------------------------

    def tile_markers(self, damaged: list | None = None, checked: bool = True) -> np.ndarray:
        """(n_tiles, n_tiles) int64: the population size at which each tile was completed, 0 if never.

        A damaged marker raises a StoreError, or, given a ``damaged`` list, is appended to it as (a, b) and read as 0.
        ``checked``: a marker no run writes (negative, above the diagonal) is a StoreError.
        """
        self.require_results()
        markers = self._group["tiles_done"]
        out = read_marker_files(markers, self.path / "tiles_done", damaged)
        if out is None:
            with reading(self.path, "the done markers (tiles_done)"):
                out = markers[:]
        wrong = marker_problems(out, n_tiles(self.n_networks, self.tile)) if checked else []
        if wrong:
            raise StoreError(f"{self.path}: damaged: {wrong[0]}; {damage_hint(self.path)}")
        return out

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

    def reopen_damaged_tiles(self) -> list[tuple[int, int, str]]:
        """Mark every damaged done tile (see ``damaged_tiles``) not done, so that the next run recomputes it; returns them."""
        damaged = self.damaged_tiles()
        for a, b, _ in damaged:
            self.mark_tile(a, b, 0)
        return damaged

    def check_continuable(self, tile: int | None, solver: str, tie_rule: int | None, max_layer: int | None) -> None:
        """Raise StoreError unless a run with these settings may finish the stored results (else it needs `recompute`)."""
        if tile is not None and tile != self.tile:
            raise StoreError(f"{self.path}: results were created with tile {self.tile}; `tile` {tile} needs `recompute`")
        if self.solver == "sparse" and solver != "sparse":  # results of the superseded solver: readable, not extended
            raise StoreError(
                f"{self.path}: its distances came from the sparse solver, which fast replaces (sparse's tie choices depend on "
                f"neuron numbering); to compute with fast, run `compute({str(self.path)!r}, solver='fast', recompute=True)` "
                f"(export, plot and report read the sparse distances as they are)"
            )
        if solver != self.solver:
            raise StoreError(f"{self.path}: its distances were computed with the {self.solver} solver; `solver` {solver} needs `recompute`")
        if tie_rule != self.tie_rule:  # deeper layers depend on the tie choice: never mix two
            raise StoreError(
                f"{self.path}: its distances came from tie rule {self.tie_rule} of the {solver} solver, this version uses "
                f"rule {tie_rule}; finishing them needs `recompute`"
            )
        if self.max_layer is not None and (max_layer is None or max_layer > self.max_layer):
            # Layer k needs the matchings of layers 0..k-1, which are not stored: more layers cost a full run.
            raise StoreError(
                f"{self.path}: layers 0..{self.max_layer} were computed; more layers need every layer again, so `max_layer` "
                f"{'all' if max_layer is None else max_layer} needs `recompute`"
            )

    def tile_marker(self, a: int, b: int) -> int:
        """The marker of tile (a, b) alone: one chunk read, for a task that needs only its own tile's state; damaged reads as 0."""
        try:
            return int(self._group["tiles_done"][a, b])
        except ValueError:  # checksum mismatch: the tile is redone
            return 0

    @writes
    def mark_tile(self, a: int, b: int, done_at: int) -> None:
        """Record that tile (a, b) holds every pair of a population of ``done_at`` networks; call after its data."""
        self._group["tiles_done"][a, b] = done_at

    # ---- distances ---------------------------------------------------------------------------

    def read_block(self, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
        """The (L, rows, cols) distances of networks [rows[0], rows[1]) x [cols[0], cols[1]) as stored now."""
        with reading(self.path, f"the distances of rows {rows[0]}..{rows[1] - 1}, columns {cols[0]}..{cols[1] - 1}"):
            return self._group["distance"][:, rows[0] : rows[1], cols[0] : cols[1]]

    @writes
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
        computed = np.array([self.max_layer is None or k <= self.max_layer for k in layers], dtype=bool)  # past --max-layer: NaN by design
        with reading(self.path, "the distance array"):
            return read_vouched(distance, markers, n, self.tile, layers, rows, computed, self.path)

    def check_done_chunks(self) -> None:
        """Every done tile's distance chunks exist (one stat each, no read): a count of computed pairs is true."""
        if self.has_results:
            self._require_done_chunks(np.arange(self.n_networks), self.tile_markers())

    def _require_done_chunks(self, rows: np.ndarray, markers: np.ndarray) -> None:
        """The distance chunks of every done tile among ``rows`` exist: zarr would read a missing one as NaN."""
        tiles = np.unique(tile_of(rows, self.tile))
        x, y = np.meshgrid(tiles, tiles, indexing="ij")
        done = (x >= y) & (vouched_upto(markers[x, y], self.n_networks) > 0)
        keys = [(0, int(a), int(b)) for a, b in zip(x[done], y[done])]
        require_chunks(self.path, "distance", keys + [(0, b, a) for _, a, b in keys], lambda c: f"chunk of tile ({max(c[1:])}, {min(c[1:])})")
