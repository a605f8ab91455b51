"""`nnstd-dist verify`: read everything a store holds and check every checksum and every invariant.

Invariants: every chunk of the population present and whole (crc32c); n_networks within the arrays;
names unique; each network's digest and connection counts equal to those of its stored masks; every
tile record whole, in its place and measuring the store's networks, its pairs finite and in [0, 1], a
diagonal tile symmetric with a zero diagonal. No zarr here: the store's reads only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import NotAStoreError, StoreAccessError, StoreError
from . import consistency
from ..tiles import extent, n_tiles
from ..records import mask_digest

__all__ = ["VerifyReport", "verify"]

_BATCH = 64  # networks decoded per read; a damaged batch is re-read one network at a time


@dataclass
class VerifyReport:
    """What was checked and every problem found, one line each, by network or tile."""

    store: str
    networks: int = 0
    tiles: int = 0  # tiles marked done and checked
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(path, on_progress=None, storage_options: dict | None = None) -> VerifyReport:
    """Check the store at ``path`` (a path or URL): damage, even one that keeps the store from opening, is a problem in the
    report. A path that holds no store of this format raises NotAStoreError, as for every reader: there is nothing to check."""
    from .storage import open_storage
    from .topology_store import TopologyStore

    storage = open_storage(path, storage_options)
    report = VerifyReport(str(path))
    try:
        store = TopologyStore.open(storage)
    except (NotAStoreError, StoreAccessError):  # nothing there to check, or no way to reach it: not damage
        raise
    except StoreError as exc:
        report.problems += consistency.problems_at(storage) or [str(exc)]
        return report
    report.networks = store.n_networks
    names = _names(store, report)
    damaged_networks = set()
    for name, coords, problem in store.damaged_chunks():
        if name.startswith("mask_l"):
            damaged_networks.add(coords[0])
            report.problems.append(f"network {coords[0]} ({_name(names, coords[0])}): {name} chunk {problem}")
        else:
            report.problems.append(f"{name} chunk {'/'.join(map(str, coords))}: {problem}")
    _check_masks(store, names, damaged_networks, report, on_progress)
    if store.has_results:
        _check_results(store, names, report)
    return report


def _name(names, i: int) -> str:
    return names[i] if names is not None and i < len(names) else "?"


def _names(store, report) -> list[str] | None:
    try:
        names = store.names()
    except StoreError as exc:
        report.problems.append(f"names: {exc}")
        return None
    seen = {}
    for i, name in enumerate(names):
        if name in seen:
            report.problems.append(f"network {i} ({name}): name also held by network {seen[name]}")
        seen.setdefault(name, i)
    return names


def _check_masks(store, names, skip: set, report: VerifyReport, on_progress) -> None:
    """Digests and connection counts recomputed from the stored masks."""
    try:
        digests, connections = store.column("digest"), store.connections()
    except StoreError as exc:
        report.problems.append(f"digests / connections: {exc}")
        digests = connections = None
    indices = [i for i in range(store.n_networks) if i not in skip]
    for start in range(0, len(indices), _BATCH):
        batch = indices[start : start + _BATCH]
        try:
            masks = dict(zip(batch, store.read_masks(batch)))
        except StoreError:
            masks = {}
            for i in batch:
                try:
                    masks[i] = store.read_masks([i])[0]
                except StoreError as exc:
                    report.problems.append(f"network {i} ({_name(names, i)}): {exc}")
        for i, layers in masks.items():
            if digests is not None and mask_digest(layers) != str(digests[i]):
                report.problems.append(f"network {i} ({_name(names, i)}): its masks do not match its digest")
            if connections is not None:
                counts = [int(m.nnz) for m in layers]
                if counts != connections[i].tolist():
                    report.problems.append(f"network {i} ({_name(names, i)}): connections {connections[i].tolist()} stored, masks hold {counts}")
        if on_progress:
            on_progress(min(start + _BATCH, len(indices)), len(indices))


def _check_results(store, names, report: VerifyReport) -> None:
    """Tile records: whole (checksums), in their place and measuring the store's networks; their pairs finite, in [0, 1],
    a diagonal tile symmetric with a zero diagonal."""
    folder = store.tiles_dir.folder_problem()
    if folder:  # nothing in it is read: one line, not one per tile
        report.problems.append(f"results: {folder} (compute replaces it by an empty folder, not touching its target)")
        return
    damaged = store.damaged_tiles()
    for a, b, why in damaged:
        report.problems.append(f"tile ({a}, {b}): {why}")
    bad = {(a, b) for a, b, _ in damaged}
    layers = store.n_layers if store.max_layer is None else store.max_layer + 1  # the rest are NaN by design
    for a in range(n_tiles(store.n_networks, store.tile)):
        for b in range(a + 1):
            block = None if (a, b) in bad else store.read_tile(a, b)
            if block is None:
                continue
            report.tiles += 1
            _check_block(block[:layers], a, b, store, report)


def _check_block(block: np.ndarray, a: int, b: int, store, report: VerifyReport) -> None:
    """A tile's computed pairs (not NaN by the record's extent): in [0, 1]; a diagonal tile symmetric, zero on its diagonal."""
    (r0, r1), (c0, c1) = extent(a, store.tile, store.n_networks), extent(b, store.tile, store.n_networks)
    i, j = np.arange(r0, r1)[:, None], np.arange(c0, c1)[None, :]
    held = ~np.isnan(block[0])  # the pairs its record holds (all layers of a pair are written together)
    values = block[:, held & (j < i)]
    if not np.isfinite(values).all() or (values < 0).any() or (values > 1).any():
        report.problems.append(f"tile ({a}, {b}): distances missing or outside [0, 1] among its computed pairs")
    if a == b:
        d = np.arange(r1 - r0)
        if not np.array_equal(block, block.transpose(0, 2, 1), equal_nan=True):
            report.problems.append(f"tile ({a}, {b}): not symmetric")
        elif not (block[:, d, d][:, held[d, d]] == 0).all():
            report.problems.append(f"tile ({a}, {b}): non-zero diagonal")
