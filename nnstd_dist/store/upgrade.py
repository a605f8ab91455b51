"""`upgrade`: a store of format 2 (a file per mask, per distance tile and its mirror, per done marker) rewritten as format 3.

The new store is built beside the old one from the old one's arrays (every chunk read through its
crc32c), under the old store's lock, then swapped in by two renames: the old store to
``.NAME.format2-PID``, the new one to NAME; the old one is then removed. Killed before the swap, the
old store is untouched (the staging folder is removed by the next upgrade); killed between the
renames, NAME is missing and ``upgrade`` run again puts the old store back and starts over; stopped after
them (SIGTERM while the old copy is removed), the next ``upgrade`` removes that copy. A linked store path
is resolved first: the target is upgraded, the link stays. A damaged format-2 store (unreadable
metadata, attributes that contradict its arrays) is one StoreError, the store left as it was. Distances
of tiles marked done are carried over as tile records (bound to the networks' digests); results of the
superseded ``sparse`` solver are dropped (compute them again with ``fast``).
"""

from __future__ import annotations

import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zarr

from . import faults, files, lock
from ..errors import NotAStoreError, StoreError
from ..records import METADATA_COLUMNS
from ..tiles import extent, n_tiles, vouched_upto
from .format import FORMAT, FORMAT_VERSION
from .zarr_io import reading, zarr_store

__all__ = ["upgrade", "UpgradeReport"]

_BATCH = 64  # networks copied per write
_LEFT = "the store is left as it was"


def _count(value, least: int = 0) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


@dataclass
class UpgradeReport:
    store: str
    networks: int = 0
    tiles: int = 0  # done tiles carried over
    files_before: int = 0
    files_after: int = 0
    dropped: str | None = None  # why results were not carried over
    already: bool = False


def upgrade(path, on_progress=None) -> UpgradeReport:
    """Rewrite the format-2 store at ``path`` as format 3, in place; a store of format 3 is left as it is."""
    from .storage import LocalStorage, Storage, is_url
    from .topology_store import TopologyStore

    if isinstance(path, Storage) and path.is_local:
        path = path.location
    if isinstance(path, Storage) or is_url(str(path)) and not str(path).startswith("file://"):
        try:
            TopologyStore.open(path)  # format 3, or what open refuses said by open; format 2 only below
            return UpgradeReport(str(path), already=True)
        except NotAStoreError as exc:
            if "format version 2" not in str(exc):
                raise
        raise StoreError(f"{path}: upgrade rewrites a store on a filesystem; format 2 predates store URLs, so upgrade a local copy "
                         "and upload it")
    path = files.resolved(path)
    _put_back_interrupted(path)
    if not (path / "zarr.json").is_file():
        raise NotAStoreError(f"{path}: no nnstd-dist store here")
    try:
        old = zarr.open_group(zarr_store(LocalStorage(path), "r"), mode="r")
        attrs = old.attrs.asdict()
    except Exception as exc:  # zarr raises several types for a broken group
        raise StoreError(f"{path}: not a readable zarr group ({str(exc)[:120]}); {_LEFT}") from None
    version = attrs.get("format_version")
    if attrs.get("format") != FORMAT:
        raise NotAStoreError(f"{path}: a zarr group, but not an nnstd-dist store")
    report = UpgradeReport(str(path))
    if version == FORMAT_VERSION:
        _remove_dead_backups(path)
        report.already = True
        return report
    if version != 2:
        raise StoreError(f"{path}: store format version {version}: only version 2 upgrades; re-ingest its sources into a new store")
    problem = _format2_problem(old, attrs)
    if problem:
        raise StoreError(f"{path}: a damaged format-2 store: {problem}; {_LEFT}")
    with lock.hold(path, "upgrade"):
        report.files_before = _count_files(path)
        staging = path.parent / f".{path.name}.upgrading-{socket.gethostname()}-{os.getpid()}"
        backup = path.parent / f".{path.name}.format2-{os.getpid()}"
        _remove_dead_staging(path)
        try:
            new = TopologyStore.create(staging, [tuple(s) for s in old.attrs["shapes"]])
            try:
                _copy_population(old, new, path, on_progress)
                _copy_results(old, new, path, report)
            except (ValueError, TypeError, KeyError, IndexError) as exc:  # metadata that passed the checks above yet does not read
                raise StoreError(f"{path}: a damaged format-2 store ({type(exc).__name__}: {str(exc)[:120]}); {_LEFT}") from None
            report.networks = new.n_networks
            faults.before_write()
            os.rename(path, backup)
            faults.before_write()
            os.rename(staging, path)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(backup, ignore_errors=True)
    report.files_after = _count_files(path)
    return report


def _copy_population(old, new, path: Path, on_progress) -> None:
    """Masks, metadata columns and connections of the first n_networks rows, then the attributes (n_networks last)."""
    n = int(old.attrs["n_networks"])
    group = new._group
    for name in (*[f"mask_l{k}" for k in range(len(old.attrs["shapes"]))], *METADATA_COLUMNS, "connections"):
        target = group[name]
        target.resize((n, *target.shape[1:]))
        for start in range(0, n, _BATCH):
            stop = min(n, start + _BATCH)
            with reading(path, f"{name} of networks {start}..{stop - 1}"):
                values = old[name][start:stop]
            target[start:stop] = values
            if on_progress and name.startswith("mask_l"):
                on_progress(name, stop, n)
    group["replaced_at"].resize((n,))
    group["replaced_at"][:] = 0  # format 2 kept no such column: no record of it predates a replace
    attrs = {k: v for k, v in old.attrs.asdict().items() if k not in ("tile", "solver", "tie_rule", "max_layer", "results")}
    attrs["format_version"] = group.attrs["format_version"]
    group.attrs.put(attrs)  # n_networks among them: the population is complete


def _copy_results(old, new, path: Path, report: UpgradeReport) -> None:
    """Every done tile's distances as a tile record computed at the population its marker names."""
    if "tile" not in old.attrs:
        return
    if old.attrs.get("solver", "exact") == "sparse":
        report.dropped = "its distances came from the superseded sparse solver; compute them again with the fast solver"
        return
    tile, n = int(old.attrs["tile"]), new.n_networks
    new.init_results(tile, solver=old.attrs.get("solver", "exact"), max_layer=old.attrs.get("max_layer"), tie_rule=old.attrs.get("tie_rule"))
    with reading(path, "the done markers (tiles_done)"):
        markers = vouched_upto(old["tiles_done"][:], n)
    distance = old["distance"]
    for a in range(n_tiles(n, tile)):
        for b in range(a + 1):
            done_at = int(markers[a, b])
            if not done_at:
                continue
            (r0, r1), (c0, c1) = extent(a, tile, done_at), extent(b, tile, done_at)
            with reading(path, f"the distances of tile ({a}, {b})"):
                block = np.asarray(distance[:, r0:r1, c0:c1])
            new.write_tile(a, b, block, done_at)
            report.tiles += 1
    new.pack_rows()


def _format2_problem(old, attrs: dict) -> str | None:
    """What contradicts the format-2 layout the upgrade reads (attributes against arrays), or None."""
    shapes, n, tile = attrs.get("shapes"), attrs.get("n_networks"), attrs.get("tile")
    if not (isinstance(shapes, list) and shapes and all(isinstance(x, list) and len(x) == 2 and all(_count(v, 1) for v in x) for x in shapes)):
        return f"attribute shapes is {str(shapes)[:60]}, not a list of [n_in, n_out] pairs"
    if not _count(n):
        return f"attribute n_networks is {str(n)[:40]}, not a count"
    wanted = {f"mask_l{k}": (n_in, n_out) for k, (n_in, n_out) in enumerate(shapes)}
    wanted.update({name: () for name in METADATA_COLUMNS})
    wanted["connections"] = (len(shapes),)
    if tile is not None:
        if not _count(tile, 1):
            return f"attribute tile is {str(tile)[:40]}, not a positive tile size"
        wanted["tiles_done"] = None
        wanted["distance"] = None
    for name, rest in wanted.items():
        try:
            array = old[name]
            shape = tuple(array.shape)
        except Exception:  # zarr raises several types for a missing or broken array
            return f"array {name} is missing or unreadable"
        if name == "tiles_done":
            k = n_tiles(n, tile)
            if len(shape) != 2 or min(shape) < k:
                return f"array tiles_done holds {shape}, not the {k} x {k} tiles of {n} networks"
        elif name == "distance":
            if len(shape) != 3 or shape[0] != len(shapes) or min(shape[1:]) < n:
                return f"array distance holds {shape}, not {len(shapes)} x {n} x {n}"
        elif not shape or shape[0] < n or shape[1:] != rest:
            return f"array {name} holds {shape}, attribute n_networks is {n}"
    return None


def _remove_dead_backups(path: Path) -> None:
    """Copies of the old store left by an upgrade stopped after its swap (the store at ``path`` is format 3): removed."""
    from .lock import process_alive

    for backup in path.parent.glob(f".{path.name}.format2-*"):
        pid = backup.name.rsplit("-", 1)[-1]
        if pid.isdigit() and pid.isascii() and not process_alive(int(pid)) and not backup.is_symlink():
            faults.before_write()
            shutil.rmtree(backup, ignore_errors=True)


def _put_back_interrupted(path: Path) -> None:
    """An upgrade killed between its two renames left no store at ``path`` and the old one under a hidden name: put it back."""
    if path.exists():
        return
    for backup in sorted(path.parent.glob(f".{path.name}.format2-*")):
        if (backup / "zarr.json").is_file():
            os.rename(backup, path)
            return


def _remove_dead_staging(path: Path) -> None:
    """Staging folders of upgrades on this host whose process is gone (killed before the swap)."""
    from .lock import process_alive

    prefix = f".{path.name}.upgrading-{socket.gethostname()}-"
    for entry in path.parent.glob(f"{prefix}*"):
        pid = entry.name[len(prefix):]
        if pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(entry, ignore_errors=True)


def _count_files(path: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(path))
