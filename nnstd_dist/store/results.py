"""The results half of the store: each tile's distances in one self-checking record, and only the pairs a record vouches for.

Files of a set of results R (created by ``init_results``; see tile_rows.py and tile_files.py)::

    distances/g<R>/tiles/<a>.<b>   tile (a, b), a >= b, as its task wrote it
    distances/g<R>/rows/<a>        tile row a, packed by the run once every tile in it is done

Only the lower triangle is stored: D[k, i, j] for i > j is NNSTD_k(network i, network j), and (j, i)
is the same number, mirrored on read; NNSTD(x, x) = 0. A record computed at population size M
vouches for its pairs (both indices < M) while its header names its place, these results, and the
digests of the networks now at its rows and columns (an append leaves them valid for the pairs they
hold). A replace writes no result: it first records its generation in the network's ``replaced_at``,
and every record written before that generation at the network's rows or columns is stale, recomputed
(even if the crash came before the new digest was written); any other record of other networks is damage. Its "marker" is M, as in tiles.py.

The group attribute ``tile`` is the results' commit point (removed first, written last by
init_results); ``results`` names the folder; ``generation`` is raised by every new set of results and
every replace, so a task of an older run writes nothing.
"""

from __future__ import annotations


import numpy as np

from ..errors import StoreError
from ..tiles import extent, n_tiles, tile_of
from .tile_files import encode, mismatch, partial_tag, payload_problem
from .tile_rows import TileDir
from .zarr_io import damage_hint, group_attributes, reading, writes
from .distances import VouchedMatrix

__all__ = ["Results"]


class Results:
    """TopologyStore's distances and their records (mixed into it: uses its population, ``path`` and ``_group``)."""

    @property
    def has_results(self) -> bool:
        """Results exist and are complete: ``tile`` is written last by init_results, removed first."""
        return "tile" in self._group.attrs and "results" in self._group.attrs

    @property
    def tile(self) -> int | None:
        return self._group.attrs.get("tile")

    @property
    def solver(self) -> str:
        """The solver of the stored distances ("exact" or "fast"); absent means exact."""
        return self._group.attrs.get("solver", "exact")

    @property
    def tie_rule(self) -> int | None:
        """The tie rule of the stored distances (kernel.TIE_RULES: fast's rule version)."""
        if self.solver == "exact":
            return None
        return self._group.attrs.get("tie_rule", 1)

    @property
    def binding(self) -> str:
        """What a record's ``networks`` hash names beside the networks: the solver and tie rule of these results.

        Results created before records were bound to them (no ``record_binding`` attribute) name nothing: their records
        stay readable as written, and a copy from such a store is caught only by its networks and results set."""
        if not self._group.attrs.get("record_binding"):
            return ""
        return f"solver={self.solver} tie_rule={self.tie_rule}"

    @property
    def max_layer(self) -> int | None:
        """The last layer computed (compute's ``max_layer``); absent or None means every layer."""
        return self._group.attrs.get("max_layer")

    @property
    def recomputing(self) -> bool:
        """These results were started by a recompute (they replaced others) and no run has finished them yet."""
        return bool(self._group.attrs.get("recomputing", False))

    @writes
    def finish_recompute(self) -> None:
        """A run finished every pair: a later recompute starts over instead of resuming this one."""
        if self.recomputing:
            self._group.attrs["recomputing"] = False

    @property
    def generation(self) -> int:
        """Raised by every replace and every new set of results: a task's result is kept only if it has not changed."""
        return int(self._group.attrs.get("generation", 0))

    @property
    def tiles_dir(self) -> TileDir:
        return TileDir(self.storage, f"distances/g{int(self._group.attrs['results'])}")

    def generation_on_disk(self) -> int:
        """The generation as stored now (zarr caches the attributes read at open)."""
        with reading(self.path, "the store's zarr.json"):
            return int(group_attributes(self.storage).get("generation", 0))

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
    def init_results(
        self, tile: int, solver: str = "exact", max_layer: int | None = None, tie_rule: int | None = None, recompute: bool = False,
    ) -> None:
        """Start an empty set of results with tiles of ``tile``; replaces any existing results.

        ``solver``, its ``tie_rule`` and ``max_layer`` are recorded as attributes, so that one matrix never
        mixes solvers and a layer not computed is known; ``recompute`` marks them as a recompute (``recomputing``).
        """
        # Atomic by its attributes: `tile` goes first (no reader then sees results) and comes back last,
        # so a crash in between leaves "no distances yet", never old records over new settings. The new
        # generation names a new, empty folder, and tells tasks of an older run not to write anything.
        attrs = {k: v for k, v in self._group.attrs.asdict().items() if k != "tile"}
        attrs["generation"] = self.generation + 1
        attrs["results"] = attrs["generation"]
        self._group.attrs.put(attrs)
        self.storage.clear("distances", partial_tag(), folder=True)  # a link there would have us write and delete in its target
        if "distances" not in self._group:  # a group node: zarr and xarray then know the folder and skip it quietly
            self._group.create_group("distances", attributes={"nnstd-dist": "tile records, not zarr arrays: see docs/store.md"})
        self.tiles_dir.create()
        self._group.attrs.update(
            {"tile": int(tile), "solver": solver, "tie_rule": tie_rule, "max_layer": None if max_layer is None else int(max_layer),
             "recomputing": bool(recompute), "record_binding": 1}
        )  # the commit point
        for old in self.storage.names("distances"):  # earlier results: nothing refers to them any more
            if old not in (self.tiles_dir.name, "zarr.json"):
                self.storage.remove_tree(f"distances/{old}")

    # ---- which tiles are done -----------------------------------------------------------------

    def _vouched(self, blocks: bool, tile_rows=None, loose=None):
        """(records that vouch now by place, damage [(a, b, why)]): a record that does not vouch here is damage.

        ``tile_rows``: only these (default: all); ``loose``: their tile files, if listed already (see TileDir.scan)."""
        self.require_results()
        found = self.tiles_dir.scan(blocks, tile_rows, loose)
        n, tile, results, layers = self.n_networks, self.tile, int(self._group.attrs["results"]), self.n_layers
        digests, hashes, replaced_at, binding = self.column("digest"), {}, self.replaced_at(), self.binding
        vouched, damage = {}, list(found.damage)
        k = n_tiles(n, tile)
        if found.folder:
            damage += [(a, None, found.folder) for a in range(k) if tile_rows is None or a in tile_rows]
        computed = layers if self.max_layer is None else self.max_layer + 1
        for (a, b), place in found.records.items():
            header = place[0].header
            if a < k and b <= a and _stale(header, replaced_at):
                continue  # written before a replace of one of its networks: computed again
            why = mismatch(header, a, b, tile, n, results, layers, digests, hashes, binding)
            if not why and place[0].block is not None:
                why = payload_problem(place[0].block, computed)
            if why:
                damage.append((a, b, why))
            else:
                vouched[(a, b)] = place
        out = []  # a row file unreadable past some point: every tile of the row not read before it
        for a, b, why in damage:
            columns = [b] if b is not None else [x for x in range(a + 1) if (a, x) not in vouched]
            out += [(a, x, why) for x in columns if (a, x, why) not in out]
        return vouched, sorted(out)

    def tile_markers(self, damaged: list | None = None, checked: bool = True, blocks: bool = False) -> np.ndarray:
        """(n_tiles, n_tiles) int64: the population size at which each tile was completed, 0 if never (tiles.py).

        Read from the records' headers alone (their payloads are checked by damaged_tiles and on read), or with ``blocks``
        from whole records, their checksums and numbers checked too (what a count shown to a user must rest on).
        A record that does not vouch for its place is a StoreError, or, given a ``damaged`` list, is appended to
        it as (a, b, why) and read as 0; ``checked`` False reads such records as 0 silently.
        """
        vouched, damage = self._vouched(blocks=blocks)
        if damage and damaged is not None:
            damaged += damage
        elif checked:
            self._refuse(damage)
        return self._markers(vouched)

    def _markers(self, vouched: dict) -> np.ndarray:
        """tile_markers of the records that vouch (by place)."""
        k = n_tiles(self.n_networks, self.tile)
        out = np.zeros((k, k), dtype=np.int64)
        for (a, b), place in vouched.items():
            out[a, b] = place[0].header["done_at"]
        return out

    def _refuse(self, damage: list) -> None:
        """Damage is never served: a StoreError naming the first damaged tile, if any."""
        if damage:
            a, b, why = damage[0]
            raise StoreError(f"{self.path}: damaged: tile ({a}, {b}): {why}; {damage_hint(self.path)}")

    def tile_marker(self, a: int, b: int) -> int:
        """The population size tile (a, b) was done at, from its own files only; 0 if not done or damaged."""
        vouched, _ = self._vouched(blocks=False, tile_rows={a}, loose=[(a, b)])  # no listing of the run's folder
        return int(vouched[(a, b)][0].header["done_at"]) if (a, b) in vouched else 0

    def damaged_tiles(self) -> list[tuple[int, int, str]]:
        """Records that are damaged (checksums of header and payload), misplaced, or measure other networks: (a, b, why).

        Where a row file cannot be parsed past some point, every tile of that row not read before it is listed."""
        return self._vouched(blocks=True)[1]

    @writes
    def reopen_damaged_tiles(self) -> list[tuple[int, int, str]]:
        """Remove every damaged record (see ``damaged_tiles``), so that the next run recomputes its tile; returns them."""
        damaged = self.damaged_tiles()
        self.tiles_dir.repair_folders()
        for a in sorted({a for a, _, _ in damaged}):
            self.drop_tiles(a, {b for x, b, _ in damaged if x == a})
        return damaged

    def drop_tile(self, a: int, b: int) -> None:
        """Forget tile (a, b): it is computed again."""
        self.drop_tiles(a, {b})

    @writes
    def drop_tiles(self, a: int, columns: set) -> None:
        """Forget tiles (a, b) for b in ``columns`` (None: the whole row): they are computed again.

        A row file is written whole only: its other readable records become tile files again, then it is removed
        (a crash in between leaves both, equal). A link or non-folder where a results folder belongs is replaced first."""
        tiles = self.tiles_dir
        tiles.repair_folders()
        columns = set(range(a + 1)) if None in columns else columns
        for b in columns:
            tiles.remove_tile(a, b)
        if tiles.has_row(a):
            vouched, _ = self._vouched(blocks=True, tile_rows={a})
            for (_, b), place in sorted(vouched.items()):
                raw = tiles.raw(place) if b not in columns and place[2] is not None else None
                if raw is not None:
                    tiles.write_tile(a, b, raw)
            tiles.remove_row(a)

    def check_continuable(self, tile: int | None, solver: str, tie_rule: int | None, max_layer: int | None) -> None:
        """Raise StoreError unless a run with these settings may finish the stored results (else it needs `recompute`)."""
        if tile is not None and tile != self.tile:
            raise StoreError(f"{self.path}: results were created with tile {self.tile}; `tile` {tile} needs `recompute`")
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

    # ---- distances ---------------------------------------------------------------------------

    def read_tile(self, a: int, b: int, flags: bool = False):
        """Tile (a, b)'s (L, rows, cols) block at its extent now, NaN beyond the pairs its record holds; None if not done.

        With ``flags``: (block, uncertified), the second a (rows, cols) bool array of the pairs whose fast-solver
        choices were not certified (tile_files.py)."""
        vouched, _ = self._vouched(blocks=True, tile_rows={a}, loose=[(a, b)])
        if (a, b) not in vouched:
            return (None, None) if flags else None
        record, n = vouched[(a, b)][0], self.n_networks
        (r0, r1), (c0, c1) = extent(a, self.tile, n), extent(b, self.tile, n)
        block = np.full((self.n_layers, r1 - r0, c1 - c0), np.nan)
        stored = record.block
        block[:, : stored.shape[1], : stored.shape[2]] = stored
        if not flags:
            return block
        uncertified = np.zeros(block.shape[1:], dtype=bool)
        uncertified[record.uncertified] = True
        return block, uncertified

    def uncertified_pairs(self) -> np.ndarray:
        """(m, 2) network indices (i > j) of every stored pair whose fast-solver choices were not all certified.

        From the records' headers alone; a record that does not vouch is a StoreError (as for tile_markers)."""
        return self.stored_pairs(blocks=False)[1]

    def stored_pairs(self, blocks: bool) -> tuple[np.ndarray, np.ndarray]:
        """(tile_markers, uncertified_pairs) from one scan of the records (whole ones with ``blocks``); damage is a StoreError."""
        vouched, damage = self._vouched(blocks=blocks)
        self._refuse(damage)
        pairs = [np.zeros((0, 2), dtype=np.int64)]
        for place in vouched.values():
            (r0, _), (c0, _) = place[0].header["rows"], place[0].header["cols"]
            i, j = place[0].uncertified
            pairs.append(np.stack([i + r0, j + c0], axis=1))
        out = np.concatenate(pairs)
        return self._markers(vouched), out[out[:, 0] > out[:, 1]]

    @writes
    def write_tile(
        self, a: int, b: int, block: np.ndarray, done_at: int, generation: int | None = None, uncertified: np.ndarray | None = None
    ) -> None:
        """Record tile (a, b)'s whole (L, rows, cols) block for a population of ``done_at`` networks: one file, one rename.

        ``generation``: the store's generation when the networks were read (default: now); see ``replaced_at``.
        ``uncertified``: a (rows, cols) bool array of the pairs whose fast-solver choices were not certified."""
        generation = self.generation if generation is None else generation
        positions = None if uncertified is None else np.flatnonzero(np.tril(uncertified, -1) if a == b else uncertified)
        record = encode(
            a, b, self.tile, done_at, int(self._group.attrs["results"]), self.column("digest"), block, generation, positions,
            self.binding,
        )
        self.tiles_dir.write_tile(a, b, record)

    @writes
    def pack_row(self, a: int) -> bool:
        """Tile row a as one file, once every tile in it is complete at the current population; False if it is not."""
        tiles, n = self.tiles_dir, self.n_networks
        loose = [(a, b) for b in range(a + 1) if tiles.has_tile(a, b)]  # no listing of the run's folder
        if not loose:
            return False
        vouched, damage = self._vouched(blocks=True, tile_rows={a}, loose=loose)
        rows = extent(a, self.tile, n)
        complete = all(
            (a, b) in vouched and vouched[(a, b)][0].header["done_at"] >= min(rows[1], n) and not damage for b in range(a + 1)
        )
        if not complete:
            return False
        records = [tiles.raw(vouched[(a, b)]) for b in range(a + 1)]
        if any(r is None for r in records):
            return False  # another process packed it meanwhile
        tiles.write_row(a, records)
        for x, b in loose:
            tiles.remove_tile(x, b)
        return True

    def pack_rows(self) -> int:
        """Every complete tile row that still has tile files, packed (see pack_row); returns how many.

        Also removes the temporary files of writes on this host whose process is gone (a task killed mid-write)."""
        if not self.has_results:
            return 0
        self.tiles_dir.remove_dead_partials()
        return sum(self.pack_row(a) for a in sorted({a for a, _ in self.tiles_dir.loose_places()}))

    def read_distance(self, layers=None, indices=None) -> np.ndarray:
        """Distances (len(layers), k, k) for the given layers and network indices (default: all)."""
        self.require_results()
        n = self.n_networks
        layers = list(range(self.n_layers)) if layers is None else [int(k) for k in layers]
        for k in layers:
            self._check_layer(k)
            self.check_layer_computed(k)
        rows = np.arange(n) if indices is None else np.asarray(indices, dtype=np.int64)
        self._check_indices(rows)
        tile_rows = sorted(set(np.unique(tile_of(rows, self.tile)).tolist()))
        computed = np.array([self.max_layer is None or k <= self.max_layer for k in layers], dtype=bool)  # past --max-layer: NaN by design
        matrix = VouchedMatrix(self.tile, layers, rows, computed, self.path)
        loose = self.tiles_dir.loose_places(set(tile_rows))  # listed once; then one tile row in memory at a time
        for a in tile_rows:
            vouched, damage = self._vouched(blocks=True, tile_rows={a}, loose=[p for p in loose if p[0] == a])
            self._refuse([d for d in damage if d[1] in tile_rows])
            for (_, b), place in vouched.items():
                matrix.add(a, b, place[0])
        return matrix.result()


def _stale(header: dict, replaced_at: np.ndarray) -> bool:
    """Whether a record was written before the last replace of a network at its rows or columns (its generation is older)."""
    try:
        (r0, r1), (c0, c1) = header["rows"], header["cols"]
        last = max(replaced_at[r0:r1].max(initial=0), replaced_at[c0:c1].max(initial=0))
        return isinstance(header["generation"], int) and header["generation"] < last
    except (KeyError, TypeError, ValueError):
        return False  # a header without these is judged by mismatch: damage
