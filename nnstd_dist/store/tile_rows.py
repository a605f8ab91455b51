"""Where one set of results keeps its tiles: a file per tile while a run computes, one file per tile row once the row is done.

    distances/g<R>/tiles/<a>.<b>   the record of tile (a, b) (tile_files.py), written by the task that computed it
    distances/g<R>/rows/<a>        the records of tile row a, b = 0 .. a, written by the run once all of them are done

Few files at rest (a row file per tile row), and one writer per file: a task writes only its own
tile's file, the run alone (one process) writes row files and removes the tile files it packed.
A tile file wins over the row's record of the same tile: it is newer (written after the row was packed,
once an append or a replace made the packed one stale). Readers list the tile files before they
read the rows, and the run writes a row before it removes the tile files it holds, so a tile file
that vanishes while it is read is in the row read after it. Part of the store; no zarr.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from . import faults
from .lock import process_alive
from .tile_files import Record, read_records, write_atomic

__all__ = ["TileDir", "Found"]


class Found:
    """What a scan found: records by place (a, b), and damage as (a, b, why) (b is None when a row's framing broke)."""

    def __init__(self):
        self.records: dict[tuple[int, int], tuple[Record, Path, tuple[int, int] | None]] = {}
        self.damage: list[tuple[int, int | None, str]] = []


class TileDir:
    """The tile files and row files of one set of results, by place."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.tiles, self.rows = self.root / "tiles", self.root / "rows"

    def tile_path(self, a: int, b: int) -> Path:
        return self.tiles / f"{a}.{b}"

    def row_path(self, a: int) -> Path:
        return self.rows / str(a)

    def create(self) -> None:
        faults.before_write()
        self.tiles.mkdir(parents=True, exist_ok=True)
        self.rows.mkdir(exist_ok=True)

    def write_tile(self, a: int, b: int, record: bytes) -> None:
        """The tile's record as its own file; a missing folder (the results were reset meanwhile) is an OSError, never re-created."""
        write_atomic(self.tile_path(a, b), record)

    def loose_places(self, tile_rows=None) -> list[tuple[int, int]]:
        """(a, b) of every tile file (of the given tile rows only, if given)."""
        out = []
        for entry in _names(self.tiles):
            a, _, b = entry.partition(".")
            if a.isdigit() and b.isdigit() and (tile_rows is None or int(a) in tile_rows):
                out.append((int(a), int(b)))
        return out

    def packed_rows(self, tile_rows=None) -> list[int]:
        return sorted(int(x) for x in _names(self.rows) if x.isdigit() and (tile_rows is None or int(x) in tile_rows))

    def scan(self, blocks: bool, tile_rows=None, loose=None) -> Found:
        """Every record of the given tile rows (default: all), a tile file winning over its row's; damaged ones in ``damage``.

        A record whose header names another place than where it was found is damage too (a file swapped or copied).
        ``loose``: the tile files' places, if already listed (a listing of a run's folder can hold 100,000 names).
        """
        found = Found()
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
        path, offset = self.row_path(a), 0
        for record in read_records(path, blocks):
            place = record.place
            if record.header is None:
                found.damage.append((a, None, f"row file {a} {record.problem} after {offset} bytes"))
                break
            size = record.nbytes
            b = place[1] if isinstance(place[1], int) and 0 <= place[1] <= a else None
            problem = record.problem or (None if place[0] == a and b is not None else f"holds tile {place} (a record moved or copied)")
            if problem:
                found.damage.append((a, b, f"row file {a}: tile ({a}, {b}) {problem}"))
            elif (a, b) not in found.records:
                found.records[(a, b)] = (record, path, (offset, offset + size))
            offset += size

    def raw(self, place: tuple[Record, Path, tuple[int, int] | None]) -> bytes | None:
        """The bytes of a found record (None if its file vanished)."""
        _, path, span = place
        try:
            with open(path, "rb") as f:
                if span is None:
                    return f.read()
                f.seek(span[0])
                return f.read(span[1] - span[0])
        except FileNotFoundError:
            return None

    def write_row(self, a: int, records: list[bytes]) -> None:
        write_atomic(self.row_path(a), b"".join(records))

    def remove_dead_partials(self) -> None:
        """Temporary files (``.NAME.HOST-PID-THREAD.partial``) of writes on this host whose process is gone."""
        host = socket.gethostname()
        for folder in (self.tiles, self.rows):
            for name in _hidden(folder):
                who = name.rsplit(".", 2)[-2] if name.endswith(".partial") else ""
                writer_host, _, rest = who.rpartition("-")  # HOST-PID-THREAD: the host may hold dashes
                writer_host, _, pid = writer_host.rpartition("-")
                if writer_host == host and pid.isdigit() and not process_alive(int(pid)):
                    faults.before_write()
                    (folder / name).unlink(missing_ok=True)

    def remove_tile(self, a: int, b: int) -> None:
        faults.before_write()
        self.tile_path(a, b).unlink(missing_ok=True)

    def remove_row(self, a: int) -> None:
        faults.before_write()
        self.row_path(a).unlink(missing_ok=True)


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
