"""The topology store: a zarr v3 group holding a population of networks and their pairwise distances.

Layout of a store (a zarr group on a local or shared filesystem)::

    attrs         format="nnstd-dist", format_version=3, shapes=[[n_in, n_out], ...], generation=G,
                  n_networks=N, tile=T and results=R (once results exist), layers=[{param, weight_shape, block}, ...]
                  (the first network's parameter names and weight shapes, and rows of layer k per output
                  of layer k-1; absent in stores written before convolutions: blocks of one row)
    mask_l{k}, network, run, source, digest, epoch, accuracy, connections    the population: population.py
    distances/g<R>/rows/<a>, distances/g<R>/tiles/<a>.<b>                   the results: results.py
    nnstd-dist.lock   JSON {host, pid, started, command, token} while a compute or ingest runs (lock.py)

``TopologyStore`` joins the two halves; this module opens and creates stores and changes their
population. ``n_networks`` is written last by an append, so a crash mid-append leaves the
population unchanged; replace marks the network (replaced_at) before it changes masks, which makes its tiles stale. Every chunk and
tile record ends with its crc32c, so damage is a StoreError, never a number. See docs/store.md, "Crash consistency".

Every array's dimension names, and a ``coordinates`` attribute naming run, epoch and accuracy on the
per-network arrays, make ``xarray.open_zarr(path, consolidated=False)`` label it. Metadata is not
consolidated: every append resizes the arrays, and a stale consolidated copy would hide networks.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import threading
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import zarr

from . import faults

from . import consistency, lock
from .format import FORMAT, FORMAT_VERSION
from ..errors import NotAStoreError, ShapeMismatchError, StoreError
from ..kernel.masks import describe_shapes
from ..records import METADATA_COLUMNS, AppendReport, NetworkRecord, mask_digest
from .chunks import chunk_key
from .storage import open_storage
from .lock import process_alive
from .tile_files import partial_tag
from .zarr_io import damage_hint, group_attributes, writes, zarr_store
from .population import PER_NETWORK, STRING_COLUMNS, Population
from .results import Results

__all__ = ["FORMAT", "FORMAT_VERSION", "TopologyStore", "NetworkRecord", "AppendReport", "mask_digest", "locked", "add_networks"]

_SHARED: dict = {}  # open_shared's stores: (mode, storage, options) -> (their group attributes, the store)
_SHARED_LOCK = threading.Lock()  # a worker runs tasks on several threads
_WRITE_BATCH = 64  # networks per zarr write call: zarr encodes a call's chunks concurrently


class TopologyStore(Population, Results):
    """A population of same-shaped sparse networks and their pairwise distances, in one zarr group."""

    def __init__(self, storage, group: zarr.Group):
        """``storage``: where the store's bytes are (storage/: a folder or an object store), or a local path."""
        self.storage = open_storage(storage)
        self.path = self.storage.location  # what messages name: the path (a Path) or the URL
        self._group = group
        self._cache: dict[str, np.ndarray] = {}

    @property
    def name(self) -> str:
        """The store's own name: the last part of its path or URL (topos.zarr)."""
        return str(self.path).rstrip("/").rsplit("/", 1)[-1]

    @property
    def address(self) -> str:
        """Where the store is, for any process: its absolute path, or its URL."""
        return str(Path(self.path).resolve()) if self.storage.is_local else str(self.path)

    def is_at(self, path) -> bool:
        """Whether the local ``path`` is this store's folder."""
        return self.storage.is_local and Path(path).resolve() == Path(self.path).resolve()

    @classmethod
    def open(cls, path, mode: str = "r", storage_options: dict | None = None) -> "TopologyStore":
        """Open an existing store; ``mode`` "r" or "r+". ``path``: a local path or a URL (``s3://bucket/topos.zarr``), with
        ``storage_options`` for its backend (fsspec's). A linked store path is resolved once, here: it stands for its target."""
        storage = open_storage(path, storage_options)
        path = storage.location
        if storage.is_local:
            if path.is_file():
                raise NotAStoreError(f"{path}: is a file, not a zarr store directory")
            if not path.exists() and any(path.parent.glob(f".{path.name}.format2-*")):
                raise NotAStoreError(f"{path}: an upgrade of this store was interrupted; run `upgrade({str(path)!r})` again to finish it")
            present = (path / "zarr.json").is_file()
        else:
            present = storage.holds_store()
        if not present:
            raise NotAStoreError(f"{path}: no nnstd-dist store here (create one with `add_networks({str(path)!r}, networks)`)")
        try:
            group = zarr.open_group(zarr_store(storage, mode), mode=mode, zarr_format=3)  # no probes for v2 metadata files
        except Exception as exc:  # zarr raises several types for a broken group
            raise StoreError(f"{path}: not a readable zarr group ({str(exc)[:160]})") from None
        attrs = group.attrs.asdict()
        if attrs.get("format") != FORMAT:
            raise NotAStoreError(f"{path}: a zarr group, but not an nnstd-dist store")
        if attrs.get("creating"):
            raise NotAStoreError(f"{path}: its first ingest did not finish (no store yet); run the ingest again to create it")
        if attrs.get("format_version") == 1:
            raise NotAStoreError(
                f"{path}: store format version 1 (no checksums), this nnstd-dist reads version {FORMAT_VERSION}: "
                "re-ingest its sources into a new store (`add_networks('NEW.zarr', networks)`)"
            )
        if attrs.get("format_version") == 2:
            raise NotAStoreError(
                f"{path}: store format version 2 (a file per mask and tile), this nnstd-dist reads version {FORMAT_VERSION}: "
                f"upgrade it in place with `upgrade({str(path)!r})`"
            )
        if attrs.get("format_version") != FORMAT_VERSION:
            raise NotAStoreError(
                f"{path}: store format version {attrs.get('format_version')}, this nnstd-dist reads version {FORMAT_VERSION}"
            )
        found = consistency.problems(group, storage)
        if found:
            more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
            raise StoreError(f"{path}: damaged: {found[0]}{more}; {damage_hint(path)}")
        return cls(storage, group)

    @classmethod
    def open_shared(cls, where, mode: str = "r") -> "TopologyStore":
        """The store at ``where``, shared by the calls of this process while its group attributes stay the same.

        A task of a run opens the store it works on; opening reads the group's and every array's metadata (28 requests
        on an object store). Every change a writer makes that readers must see (an append's ``n_networks``, a replace's
        ``generation``, new results) changes the attributes, so one read of ``zarr.json`` tells whether the open
        store is still current; if not, it is opened again."""
        storage = open_storage(where)
        key = (mode, json.dumps(storage.with_options(), sort_keys=True, default=str))
        try:
            attributes = group_attributes(storage)
        except (OSError, ValueError):
            attributes = None  # open says what is wrong
        with _SHARED_LOCK:
            shared = _SHARED.get(key)
        if shared is not None and attributes is not None and shared[0] == attributes:
            return shared[1]
        store = cls.open(storage, mode)
        with _SHARED_LOCK:
            _SHARED[key] = (store._group.attrs.asdict(), store)
        return store

    @classmethod
    def create(cls, path, shapes: list[tuple[int, int]], layers=()) -> "TopologyStore":
        """A new, empty store for networks of the given layer shapes; ``layers``: their LayerSpecs, if known.

        ``path``: a local path (which must not exist) or a storage (storage/) whose store has no committed group yet."""
        storage = open_storage(path)
        if storage.is_local:
            if storage.location.exists():
                raise StoreError(f"{storage.location}: already exists")
            group = zarr.open_group(zarr_store(storage, "w-"), mode="w-", zarr_format=3)
        else:  # built in place under the lock (add_networks): "w-" would see the lock, "w" would delete it
            group = zarr.open_group(zarr_store(storage, "a"), mode="a", attributes={"format": FORMAT, "creating": True}, zarr_format=3)
        cls._create_population(group, shapes)
        # attrs last: a directory without them is not taken for a store
        attrs = {"format": FORMAT, "format_version": FORMAT_VERSION, "shapes": [list(map(int, s)) for s in shapes], "n_networks": 0, "generation": 0}
        if not storage.is_local:
            attrs["creating"] = True  # no renames on an object store: add_networks commits the new store by clearing this
        if layers:
            attrs["layers"] = [
                {"param": spec.param, "weight_shape": [int(n) for n in spec.weight_shape], "block": int(spec.block)} for spec in layers
            ]
        group.attrs.update(attrs)
        return cls(storage, group)

    @writes
    def append(self, networks, replace: bool = False, relabel: bool = False) -> AppendReport:
        """Add networks ``[(NetworkRecord, masks), ...]``; all are validated before anything is written.

        A name already present with the same digest is left alone (with ``relabel``, its run, epoch and accuracy
        take the new record's, for an ingest again with ``--layout``; its distances stay); with another digest it is an
        error unless ``replace``, which overwrites its masks and forgets its computed distances.
        """
        report, new, replaced, relabelled = self._sort_appended(networks, replace)
        relabelled = relabelled if relabel else []
        report.relabelled = [r.name for _, r in relabelled]
        # ---- nothing is written above this line ----
        old_n = self.n_networks
        new_n = old_n + len(new)
        if replaced:
            # Written before (never after) the masks change: a record vouches only if written at or after the
            # replaced_at generation of each of its networks, so no record of the old masks vouches for the new
            # ones even before their digests are written (a crash in between), and such records are stale,
            # not damage. The generation also tells a task still running from before not to write.
            generation = self.generation + 1
            self._group.attrs["generation"] = generation
            for index, _, _ in replaced:
                self._group["replaced_at"][index] = generation
        if any(self._group[name].shape[0] != old_n for name in (*PER_NETWORK, *(f"mask_l{k}" for k in range(self.n_layers)))):
            self._resize_population(old_n)  # drop rows (orphan chunks) a killed append left past n_networks
        if new:
            self._resize_population(new_n)
            for start in range(0, len(new), _WRITE_BATCH):
                batch = new[start : start + _WRITE_BATCH]
                self._write_networks(old_n + start, [m for _, m in batch], [r for r, _ in batch])
            self._group["replaced_at"][old_n:new_n] = 0  # rows a killed append may have left are cut, not trusted
            report.added = [r.name for r, _ in new]
        self._clear_odd_shards([index for index, _, _ in replaced])
        for index, record in relabelled:  # the same connections, other labels: the distances stay valid
            for column in LABEL_COLUMNS:
                self._group[column][index] = getattr(record, column)
        for index, record, masks in replaced:
            self._write_networks(index, [masks], [record])
            report.replaced.append(record.name)
        self._group.attrs["n_networks"] = new_n  # the commit point
        self._cache.clear()
        return report

    def _sort_appended(self, networks, replace: bool):
        """Check every network to append and sort it: (report with the unchanged ones, new, replaced, relabel); writes nothing.

        ``new``: [(record, masks)] to add at the end; ``replaced``: [(index, record, masks)] to
        overwrite, for ``replace`` or because the stored copy of the same network is damaged; ``relabel``:
        [(index, record)] stored with the same connections but another run, epoch or accuracy.
        """
        shapes = self.shapes
        existing = {name: i for i, name in enumerate(self.names())}
        digests = self.column("digest")
        stored = self.records() if existing else []
        report, new, replaced, seen, relabel = AppendReport(), [], [], set(), []
        for record, masks in networks:
            record = self._checked_record(record, masks, shapes, seen)
            if record.name not in existing:
                new.append((record, masks))
            elif digests[existing[record.name]] == record.digest and not self._mask_damaged(existing[record.name]):
                report.unchanged.append(record.name)
                if _labels(stored[existing[record.name]]) != _labels(record):  # ingested again with --layout/--metadata
                    relabel.append((existing[record.name], record))
            elif digests[existing[record.name]] == record.digest:  # same network, damaged on disk: rewritten
                replaced.append((existing[record.name], record, masks))
            elif replace:
                replaced.append((existing[record.name], record, masks))
            else:
                raise StoreError(
                    f"{record.source or record.name}: a different network named {record.name!r} is already in the store (use `replace`)"
                )
        return report, new, replaced, relabel

    @staticmethod
    def _checked_record(record: NetworkRecord, masks, shapes, seen: set) -> NetworkRecord:
        """``record`` with its masks' digest, once its shapes, name (not in ``seen``, then added) and epoch fit the store."""
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
        return record

    def _clear_odd_shards(self, indices) -> None:
        """A link, FIFO or folder where a mask shard of these networks belongs, removed (never followed) so the rewrite can land.

        zarr reads a shard before it writes one of its networks; its other networks' masks were unreadable already
        and read as missing until their sources are ingested again."""
        for k in range(self.n_layers):
            per_shard = self._group[f"mask_l{k}"].shards[0]
            for shard in sorted({int(i) // per_shard for i in indices}):
                self.storage.clear(chunk_key(f"mask_l{k}", (shard, 0, 0)), partial_tag())

    def _resize_population(self, n: int) -> None:
        for k, (n_in, n_out) in enumerate(self.shapes):
            self._group[f"mask_l{k}"].resize((n, n_in, n_out))
        for column in METADATA_COLUMNS:
            self._group[column].resize((n,))
        self._group["connections"].resize((n, self.n_layers))
        self._group["replaced_at"].resize((n,))

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
            self._group[column][start:stop] = np.array(values, dtype=object if column in STRING_COLUMNS else None)


def store_status(where) -> dict:
    """Whether this process finds, opens and may write the store at ``where`` (a path, a URL or a storage): plain data,
    for a worker's report to its client (engine/environment.py)."""
    from ..errors import NNSTDError

    status = {"path": str(where), "exists": False, "opens": False, "writable": False, "error": ""}
    try:
        storage = open_storage(where)
        status["path"] = str(storage.location)
        status["exists"] = storage.location.exists() if storage.is_local else storage.holds_store()
        if not status["exists"]:
            status["error"] = "no such file or directory" if storage.is_local else "no store at this URL"
            return status
        TopologyStore.open(storage)
        status["opens"] = True
        status["writable"] = storage.writable()
    except NNSTDError as exc:
        status["error"] = str(exc).removeprefix(f"{status['path']}: ")  # the message names the path already
    except Exception as exc:  # a worker-side surprise (permissions, a broken mount) must still come back as text
        status["error"] = f"{type(exc).__name__}: {exc}"
    return status


LABEL_COLUMNS = ("run", "epoch", "accuracy")


def _labels(record: NetworkRecord) -> tuple:
    """A record's run, epoch and accuracy, NaN compared as equal to NaN."""
    return record.run, int(record.epoch), "nan" if np.isnan(record.accuracy) else float(record.accuracy)


@contextlib.contextmanager
def locked(path, command: str, force: bool = False, storage_options: dict | None = None):
    """The store at ``path`` (a path or URL) for writing, under its run lock (see lock.py), opened again once the lock is held.

    zarr caches the attributes (n_networks) read at open, and another run may have appended between
    a first open and the lock: only a store opened under the lock is current.
    """
    storage = TopologyStore.open(path, mode="r+", storage_options=storage_options).storage  # a store, not any folder, gets a lock
    with lock.hold(storage, command, force):
        yield TopologyStore.open(storage, mode="r+")


def add_networks(
    path, networks, replace: bool = False, command: str = "add_networks", relabel: bool = False, storage_options: dict | None = None,
):
    """Append ``[(NetworkRecord, masks), ...]`` to the store at ``path`` (a path or URL) under its lock, creating it if missing.

    ``relabel``: networks already stored take the run, epoch and accuracy of their new records (see ``append``).

    Returns ``(AppendReport, created)``. A new store is built in a hidden sibling directory and
    renamed into place once complete: a failed first ingest leaves no store behind, and no reader
    ever sees a half-built one. An empty directory at ``path`` counts as missing; a symbolic link
    stands for its target (created there if missing). On an object store (no renames) the store is
    built in place under its lock, its group marked ``creating`` until the last write (see _add_to_objects).
    """
    storage = open_storage(path, storage_options)
    if not storage.is_local:
        return _add_to_objects(storage, list(networks), replace, command, relabel)
    path = storage.location if path is storage else path  # as given: a link is followed by _through_link
    path, networks = _through_link(Path(path)), list(networks)
    if path.is_dir() and any(path.iterdir()) and not (path / "zarr.json").exists():
        raise StoreError(f"{path}: a directory that is not an nnstd-dist store; give a new path for the store")
    if path.exists() and not _is_empty_dir(path):
        with locked(path, command) as store:
            return store.append(networks, replace=replace, relabel=relabel), False
    if not networks:
        raise StoreError(f"{path}: no networks to create the store from")
    _refuse_inside_a_store(Path(os.path.abspath(path)), shown=path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"{path}: cannot create its folder ({exc.strerror})") from None
    _remove_dead_staging(path)
    staging = path.parent / f".{path.name}.creating-{socket.gethostname()}-{os.getpid()}"
    try:
        store = TopologyStore.create(staging, [tuple(m.shape) for m in networks[0][1]], networks[0][0].layers)
        report = store.append(networks, replace=replace)
        faults.before_write()
        os.rename(staging, path)  # atomic; refused if another ingest created the store meanwhile
        return report, True
    except OSError as exc:
        if path.exists() and not _is_empty_dir(path):  # another ingest created it first: append to it
            return add_networks(path, networks, replace, command)
        raise StoreError(f"{path}: cannot create the store ({exc.strerror or exc}); nothing was written") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _add_to_objects(storage, networks, replace: bool, command: str, relabel: bool):
    """add_networks on an object store: append under the lock, or create the store in place, committed by its last write.

    A first ingest killed midway leaves its lock and a group marked ``creating`` (the group's first write): no store,
    as if nothing was written. The next ingest, holding the lock, removes them and starts over. A prefix holding
    objects without such a group is someone else's: refused, never emptied."""
    if _committed(storage):
        with locked(storage, command) as store:
            return store.append(networks, replace=replace, relabel=relabel), False
    if not networks:
        raise StoreError(f"{storage.location}: no networks to create the store from")
    _refuse_inside_a_store(storage.location, storage.with_options()[1])
    try:
        with lock.hold(storage, command):
            if _committed(storage):  # another ingest created it meanwhile: append to it
                store = TopologyStore.open(storage, mode="r+")
                return store.append(networks, replace=replace, relabel=relabel), False
            leftovers = [name for name in storage.names("") if name != lock.LOCK_FILE]
            if leftovers and not _creating(storage):  # its group's first write marks it: anything else is not ours
                raise StoreError(
                    f"{storage.location}: holds other objects ({', '.join(leftovers[:3])}), not an nnstd-dist store; "
                    "give a new URL for the store"
                )
            for name in leftovers:  # what a killed first ingest left: not a store yet, nothing to keep
                storage.remove_tree(name)
            store = TopologyStore.create(storage, [tuple(m.shape) for m in networks[0][1]], networks[0][0].layers)
            report = store.append(networks, replace=replace)
            faults.before_write()
            store._group.attrs["creating"] = False  # the commit point: one PUT of the group's zarr.json
            return report, True
    except OSError as exc:
        raise StoreError(f"{storage.location}: cannot create the store ({exc.strerror or exc}); no store was made") from None


def _refuse_inside_a_store(location, options: dict | None = None, shown=None) -> None:
    """A new store inside another one (a folder or prefix below it) is refused: the other's info would count its files,
    and removing either would take the other's along."""
    text = str(location).rstrip("/")
    scheme, _, rest = text.rpartition("://")
    parts = rest.split("/")
    for depth in range(len(parts) - 1, 0, -1):
        parent = (f"{scheme}://" if scheme else "") + "/".join(parts[:depth])
        try:
            attributes = group_attributes(open_storage(parent or "/", options))
        except Exception:  # nothing there, or nothing readable: no store of ours
            continue
        if attributes.get("format") == FORMAT:
            raise StoreError(f"{shown or location}: inside the store {parent or '/'}; give a path outside it for a new store")


def _committed(storage) -> bool:
    """Whether the object store holds a store whose first ingest finished."""
    return storage.holds_store() and not _creating(storage)


def _creating(storage) -> bool:
    """Whether the group at ``storage`` is a store whose first ingest has not finished (object stores only)."""
    try:
        return bool(group_attributes(storage).get("creating", False))
    except (OSError, ValueError):
        return False


def _through_link(path: Path) -> Path:
    """The store path with a symbolic link replaced by its target; a link loop is an error."""
    if not path.is_symlink():
        return path
    target = Path(os.path.realpath(path))
    if target.is_symlink() or target == path.absolute():
        raise StoreError(f"{path}: a symbolic link that leads nowhere (a loop); give the store's real path")
    return target


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
