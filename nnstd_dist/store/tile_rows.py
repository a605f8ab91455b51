"""Where one set of results keeps its tiles: a file per tile while a run computes, one file per tile row once the row is done.

    distances/g<R>/tiles/<a>.<b>   the record of tile (a, b) (tile_files.py), written by the task that computed it
    distances/g<R>/rows/<a>        the records of tile row a, b = 0 .. a, written by the run once all of them are done

Few files at rest (a row file per tile row), and one writer per file: a task writes only its own
tile's file, the run alone (one process) writes row files and removes the tile files it packed.
A tile file wins over the row's record of the same tile: it is newer (written after the row was packed,
once an append or a replace made the packed one stale). Readers list the tile files before they
read the rows, and the run writes a row before it removes the tile files it holds, so a tile file
that vanishes while it is read is in the row read after it.

A row file is written whole, so it holds every tile of its row, b = 0 .. a: one that lacks some (empty,
cut at a record's boundary) is damage, as is anything but a regular file where a record belongs, or a
link or non-folder where ``tiles`` or ``rows`` (or a folder above them) belongs (files.py). Names are
``[0-9]+`` and ``[0-9]+.[0-9]+`` in ASCII; other names are not the store's and are left alone. Part of the store; no zarr.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

from . import faults, files
from .lock import process_alive
from .tile_files import Record, partial_tag, read_records, write_atomic

__all__ = ["TileDir", "Found"]

_ROW = re.compile(r"[0-9]{1,18}", re.ASCII)  # never int() of a name like "²" or of 5,000 digits
_TILE = re.compile(r"([0-9]{1,18})\.([0-9]{1,18})", re.ASCII)


class Found:
    """What a scan found: records by place (a, b), and damage as (a, b, why) (b is None when a row's framing broke)."""

    def __init__(self):
        self.records: dict[tuple[int, int], tuple[Record, Path, tuple[int, int] | None]] = {}
        self.damage: list[tuple[int, int | None, str]] = []
        self.folder: str | None = None  # a folder of the results that is a link or no folder: nothing in it was read


class TileDir:
    """The tile files and row files of one set of results, by place."""

    def __init__(self, root: Path, store: Path | None = None):
        """``root``: distances/g<R> of the store at ``store`` (default: two folders up), whose resolved path it is."""
        self.root = Path(root)
        self.store = self.root.parent.parent if store is None else Path(store)
        self.tiles, self.rows = self.root / "tiles", self.root / "rows"

    def folder_problem(self) -> str | None:
        """None if every folder from the store down to ``tiles`` and ``rows`` is a real folder (or missing), else what is not."""
        for folder in (self.tiles, self.rows):
            try:
                files.check_folders(self.store, folder)
            except files.Trespass as exc:
                return f"folder {Path(exc.filename).relative_to(self.store).as_posix()} is {exc.what}"
        return None

    def repair_folders(self) -> str | None:
        """Replace a link or non-folder where a results folder belongs by an empty folder (a link's target untouched); what it was."""
        problem = self.folder_problem()
        if problem is None:
            return None
        here = self.store
        for part in self.tiles.relative_to(self.store).parts[:-1]:
            here = here / part
            faults.before_write()
            files.clear(here, partial_tag(), folder=True)
        for folder in (self.tiles, self.rows):
            faults.before_write()
            files.clear(folder, partial_tag(), folder=True)
        self.create()
        return problem

    def tile_path(self, a: int, b: int) -> Path:
        return self.tiles / f"{a}.{b}"

    def row_path(self, a: int) -> Path:
        return self.rows / str(a)

    def create(self) -> None:
        faults.before_write()
        files.check_folders(self.store, self.tiles)
        self.tiles.mkdir(parents=True, exist_ok=True)
        self.rows.mkdir(exist_ok=True)

    def write_tile(self, a: int, b: int, record: bytes) -> None:
        """The tile's record as its own file; a missing folder (the results were reset meanwhile) is an OSError, never re-created.

        A linked folder is a Trespass (an OSError): nothing is written through it."""
        files.check_folders(self.store, self.tiles)
        write_atomic(self.tile_path(a, b), record)

    def has_row(self, a: int) -> bool:
        """Whether something is at row a's name (a regular file or not: anything else is damage to remove)."""
        return os.path.lexists(self.row_path(a))

    def loose_places(self, tile_rows=None) -> list[tuple[int, int]]:
        """(a, b) of every tile file (of the given tile rows only, if given)."""
        out = []
        for entry in _names(self.tiles):
            match = _TILE.fullmatch(entry)
            if match and (tile_rows is None or int(match[1]) in tile_rows):
                out.append((int(match[1]), int(match[2])))
        return out

    def packed_rows(self, tile_rows=None) -> list[int]:
        return sorted(int(x) for x in _names(self.rows) if _ROW.fullmatch(x) and (tile_rows is None or int(x) in tile_rows))

    def scan(self, blocks: bool, tile_rows=None, loose=None) -> Found:
        """Every record of the given tile rows (default: all), a tile file winning over its row's; damaged ones in ``damage``.

        A record whose header names another place than where it was found is damage too (a file swapped or copied).
        ``loose``: the tile files' places, if already listed (a listing of a run's folder can hold 100,000 names).
        """
        found = Found()
        found.folder = self.folder_problem()
        if found.folder:
            return found  # never listed nor read through a link: the caller reports every tile as damaged
        for a, b in self.loose_places(tile_rows) if loose is None else loose:
            path = self.tile_path(a, b)
            records = read_records(path, blocks)
            if not records:
                continue  # packed into its row meanwhile: read with the row below
            record = records[0]
            problem = record.problem or (None if len(records) == 1 else "damaged (more than one record)") or _misplaced(record, a, b)
            if problem:
                found.damage.append((a, b, f"tile file {a}.{b} {problem}"))
            else:
                found.records[(a, b)] = (record, path, None)
        for a in self.packed_rows(tile_rows):
            self._scan_row(a, blocks, found)
        return found

    def _scan_row(self, a: int, blocks: bool, found: Found) -> None:
        path, offset, seen = self.row_path(a), 0, set()
        for record in read_records(path, blocks):
            place = record.place
            if record.header is None:
                found.damage.append((a, None, f"row file {a} {record.problem}{f' after {offset} bytes' if offset else ''}"))
                return
            size = record.nbytes
            b = place[1] if 0 <= place[1] <= a else None
            problem = record.problem or (None if place[0] == a and b is not None else f"holds tile {place} (a record moved or copied)")
            seen.add(b)
            if problem:
                found.damage.append((a, b, f"row file {a}: tile ({a}, {b}) {problem}"))
            elif (a, b) not in found.records:
                found.records[(a, b)] = (record, path, (offset, offset + size))
            offset += size
        for b in range(a + 1):  # a row is written whole: a record it lacks was lost (cut at a boundary, emptied)
            if b not in seen and (a, b) not in found.records:
                found.damage.append((a, b, f"row file {a} lacks tile ({a}, {b}) (a row file holds its whole row)"))

    def raw(self, place: tuple[Record, Path, tuple[int, int] | None]) -> bytes | None:
        """The bytes of a found record (None if its file vanished)."""
        _, path, span = place
        try:
            with os.fdopen(files.open_regular(path, self.store), "rb") as f:
                if span is None:
                    return f.read()
                f.seek(span[0])
                return f.read(span[1] - span[0])
        except (FileNotFoundError, files.Trespass):  # vanished, or replaced by a link or FIFO since the scan: not ours to copy
            return None

    def write_row(self, a: int, records: list[bytes]) -> None:
        files.check_folders(self.store, self.rows)
        write_atomic(self.row_path(a), b"".join(records))

    def remove_dead_partials(self) -> None:
        """Temporary files (``.NAME.HOST-PID-THREAD.partial``) of writes on this host whose process is gone."""
        host = socket.gethostname()
        if self.folder_problem():
            return  # never listed nor removed through a link
        for folder in (self.tiles, self.rows):
            for name in _hidden(folder):
                who = name.rsplit(".", 2)[-2] if name.endswith(".partial") else ""
                writer_host, _, rest = who.rpartition("-")  # HOST-PID-THREAD: the host may hold dashes
                writer_host, _, pid = writer_host.rpartition("-")
                if writer_host == host and pid.isdigit() and not process_alive(int(pid)):
                    faults.before_write()
                    (folder / name).unlink(missing_ok=True)

    def remove_tile(self, a: int, b: int) -> None:
        self._remove(self.tiles, self.tile_path(a, b))

    def remove_row(self, a: int) -> None:
        self._remove(self.rows, self.row_path(a))

    def _remove(self, folder: Path, path: Path) -> None:
        """The name ``path`` gone: a file or link unlinked (never its target), a folder moved aside; never through a linked folder."""
        faults.before_write()
        files.check_folders(self.store, folder)
        if files.clear(path, partial_tag()) is None:
            path.unlink(missing_ok=True)


def _misplaced(record: Record, a: int, b: int) -> str | None:
    return None if record.place == (a, b) else f"holds tile {record.place} (a file moved or copied)"


def _hidden(folder: Path) -> list[str]:
    try:
        return [e.name for e in os.scandir(folder) if e.name.startswith(".")]
    except FileNotFoundError:
        return []


def _names(folder: Path) -> list[str]:
    try:
        return [e.name for e in os.scandir(folder) if not e.name.startswith(".")]
    except FileNotFoundError:
        return []
