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

import re
import socket

from . import files
from .lock import process_alive
from .tile_files import Record, partial_tag, read_records

__all__ = ["TileDir", "Found"]

_ROW = re.compile(r"[0-9]{1,18}", re.ASCII)  # never int() of a name like "²" or of 5,000 digits
_TILE = re.compile(r"([0-9]{1,18})\.([0-9]{1,18})", re.ASCII)


class Found:
    """What a scan found: records by place (a, b), and damage as (a, b, why) (b is None when a row's framing broke)."""

    def __init__(self):
        self.records: dict[tuple[int, int], tuple[Record, str, tuple[int, int] | None]] = {}
        self.damage: list[tuple[int, int | None, str]] = []
        self.folder: str | None = None  # a folder of the results that is a link or no folder: nothing in it was read


class TileDir:
    """The tile files and row files of one set of results, by place."""

    def __init__(self, storage, root: str):
        """``root``: the key of distances/g<R> in the store's ``storage`` (storage/)."""
        self.storage, self.root = storage, root
        self.tiles, self.rows = f"{root}/tiles", f"{root}/rows"

    @property
    def name(self) -> str:
        return self.root.rsplit("/", 1)[-1]

    def folder_problem(self) -> str | None:
        """None if every folder from the store down to ``tiles`` and ``rows`` is a real folder (or missing), else what is not."""
        for folder in (self.tiles, self.rows):
            try:
                self.storage.check_folder(folder)
            except files.Trespass as exc:
                return f"folder {_relative(exc.filename, self.storage)} is {exc.what}"
        return None

    def repair_folders(self) -> str | None:
        """Replace a link or non-folder where a results folder belongs by an empty folder (a link's target untouched); what it was."""
        problem = self.folder_problem()
        if problem is None:
            return None
        parts = self.tiles.split("/")
        for depth in range(1, len(parts)):
            self.storage.clear("/".join(parts[:depth]), partial_tag(), folder=True)
        for folder in (self.tiles, self.rows):
            self.storage.clear(folder, partial_tag(), folder=True)
        self.create()
        return problem

    def tile_key(self, a: int, b: int) -> str:
        return f"{self.tiles}/{a}.{b}"

    def row_key(self, a: int) -> str:
        return f"{self.rows}/{a}"

    def create(self) -> None:
        self.storage.make_folders(self.tiles)
        self.storage.make_folders(self.rows)

    def write_tile(self, a: int, b: int, record: bytes) -> None:
        """The tile's record as its own file; a missing folder (the results were reset meanwhile) is an OSError, never re-created.

        A linked folder is a Trespass (an OSError): nothing is written through it."""
        self.storage.write(self.tile_key(a, b), record)

    def has_row(self, a: int) -> bool:
        """Whether something is at row a's name (a regular file or not: anything else is damage to remove)."""
        return self.storage.exists(self.row_key(a))

    def has_tile(self, a: int, b: int) -> bool:
        return self.storage.exists(self.tile_key(a, b))

    def loose_places(self, tile_rows=None) -> list[tuple[int, int]]:
        """(a, b) of every tile file (of the given tile rows only, if given)."""
        out = []
        for entry in self.storage.names(self.tiles):
            match = _TILE.fullmatch(entry)
            if match and (tile_rows is None or int(match[1]) in tile_rows):
                out.append((int(match[1]), int(match[2])))
        return out

    def packed_rows(self, tile_rows=None) -> list[int]:
        return sorted(int(x) for x in self.storage.names(self.rows) if _ROW.fullmatch(x) and (tile_rows is None or int(x) in tile_rows))

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
            key = self.tile_key(a, b)
            records = read_records(self.storage, key, blocks)
            if not records:
                continue  # packed into its row meanwhile: read with the row below
            record = records[0]
            problem = record.problem or (None if len(records) == 1 else "damaged (more than one record)") or _misplaced(record, a, b)
            if problem:
                found.damage.append((a, b, f"tile file {a}.{b} {problem}"))
            else:
                found.records[(a, b)] = (record, key, None)
        for a in self.packed_rows(tile_rows):
            self._scan_row(a, blocks, found)
        return found

    def _scan_row(self, a: int, blocks: bool, found: Found) -> None:
        key, offset, seen = self.row_key(a), 0, set()
        for record in read_records(self.storage, key, blocks):
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
                found.records[(a, b)] = (record, key, (offset, offset + size))
            offset += size
        for b in range(a + 1):  # a row is written whole: a record it lacks was lost (cut at a boundary, emptied)
            if b not in seen and (a, b) not in found.records:
                found.damage.append((a, b, f"row file {a} lacks tile ({a}, {b}) (a row file holds its whole row)"))

    def raw(self, place: tuple[Record, str, tuple[int, int] | None]) -> bytes | None:
        """The bytes of a found record (None if its file vanished)."""
        _, key, span = place
        try:
            with self.storage.open_read(key) as (f, size):
                if span is None:
                    return f.read(size)
                f.seek(span[0])
                return f.read(span[1] - span[0])
        except (FileNotFoundError, files.Trespass):  # vanished, or replaced by a link or FIFO since the scan: not ours to copy
            return None

    def write_row(self, a: int, records: list[bytes]) -> None:
        self.storage.write(self.row_key(a), b"".join(records))

    def remove_dead_partials(self) -> None:
        """Temporary files (``.NAME.HOST-PID-THREAD.partial``) of writes on this host whose process is gone (none on an object store)."""
        host = socket.gethostname()
        if self.folder_problem():
            return  # never listed nor removed through a link
        for folder in (self.tiles, self.rows):
            for name in self.storage.names(folder, hidden=True):
                who = name.rsplit(".", 2)[-2] if name.endswith(".partial") else ""
                writer_host, _, rest = who.rpartition("-")  # HOST-PID-THREAD: the host may hold dashes
                writer_host, _, pid = writer_host.rpartition("-")
                if writer_host == host and pid.isdigit() and not process_alive(int(pid)):
                    self.storage.delete(f"{folder}/{name}")

    def remove_tile(self, a: int, b: int) -> None:
        self.storage.delete(self.tile_key(a, b))

    def remove_row(self, a: int) -> None:
        self.storage.delete(self.row_key(a))


def _relative(filename, storage) -> str:
    """A path reported by a Trespass, relative to the store's root (for a message)."""
    root = str(storage.location)
    text = str(filename)
    return text[len(root) + 1 :] if text.startswith(root + "/") else text


def _misplaced(record: Record, a: int, b: int) -> str | None:
    return None if record.place == (a, b) else f"holds tile {record.place} (a file moved or copied)"
