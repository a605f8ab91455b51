"""Runs, epochs and accuracies from the user's own naming: a path pattern (``--layout``) and a table (``--metadata``).

Without either, ``epoch_NNN`` path parts and ``testacc.txt`` decide (discover.py). A layout such as
``{run}/round{epoch}.pt`` is matched against each network's path relative to its SOURCE (with or
without the file's suffix): ``{run}`` is one or more path parts, ``{epoch}`` a whole number, ``*``
anything within one part. A metadata table (CSV with a header) names networks in a ``name`` column (the
name ingest gives them) or a ``path`` column (the file or SET folder), and gives any of ``run``,
``epoch``, ``accuracy``; an empty cell gives nothing. The table wins over the layout, the layout over
``epoch_NNN``. A network the layout does not match, or a row that names no network found, is an error:
a typo would otherwise leave runs silently empty.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from .formats import regular_file

__all__ = ["Naming", "Layout", "read_metadata", "MAX_EPOCH", "HINT"]

# What plot, report and info say when runs or epochs are missing: where they come from, and the options that supply them.
HINT = (
    "ingest takes runs and epochs from epoch_NNN folders (run/epoch_003); for other names, ingest the same "
    "sources again with --layout, e.g. --layout '{run}/round{epoch}.pt', or --metadata FILE.csv (columns name,run,epoch,accuracy)"
)

MAX_EPOCH = 2**63 - 1  # the store keeps epochs as int64
MAX_METADATA_BYTES = 64 * 2**20
KEY_COLUMNS = ("name", "path")
VALUE_COLUMNS = ("run", "epoch", "accuracy")
_TOKEN = re.compile(r"\{run\}|\{epoch\}|\*|\{[^}]*\}")


@dataclass(frozen=True)
class Layout:
    """A path pattern with {run}, {epoch} and *, compiled to a regular expression over relative paths."""

    pattern: str
    regex: re.Pattern = field(compare=False)

    @classmethod
    def compile(cls, pattern: str) -> "Layout":
        """The layout of ``pattern``; an unknown {placeholder}, a placeholder twice, or none at all is an InputError."""
        parts, seen, at = [], set(), 0
        for token in _TOKEN.finditer(pattern):
            parts.append(re.escape(pattern[at:token.start()]))
            at = token.end()
            word = token.group()
            if word == "*":
                parts.append("[^/]*")
                continue
            if word not in ("{run}", "{epoch}"):
                raise InputError(f"`layout` {pattern!r}: unknown placeholder {word}; use {{run}}, {{epoch}} and *")
            if word in seen:
                raise InputError(f"`layout` {pattern!r}: {word} appears twice")
            seen.add(word)
            parts.append(r"(?P<run>[^/]+(?:/[^/]+)*?)" if word == "{run}" else r"(?P<epoch>[0-9]+)")
        parts.append(re.escape(pattern[at:]))
        if not seen:
            raise InputError(f"`layout` {pattern!r} has neither {{run}} nor {{epoch}}, e.g. '{{run}}/round{{epoch}}.pt'")
        return cls(pattern, re.compile("".join(parts)))

    def match(self, relative: str, suffix: str) -> tuple[str | None, int | None] | None:
        """(run, epoch) of a network at ``relative`` (its path under SOURCE, without ``suffix``); None if it does not match."""
        found = self.regex.fullmatch(relative + suffix) or self.regex.fullmatch(relative)
        if found is None:
            return None
        groups = found.groupdict()
        epoch = groups.get("epoch")
        return groups.get("run"), None if epoch is None else _epoch(epoch, f"{relative}{suffix}")


@dataclass(frozen=True)
class Naming:
    """What the user said about runs and epochs: a Layout, metadata rows by name and by path, or neither."""

    layout: Layout | None = None
    by_name: dict = field(default_factory=dict)  # name -> {column: value}
    by_path: dict = field(default_factory=dict)  # absolute normalised path -> {column: value}
    table: str = ""  # the metadata file, for messages

    @classmethod
    def load(cls, layout: str | None = None, metadata: str | Path | None = None) -> "Naming":
        """The Naming of a layout pattern and a metadata CSV file (either may be None)."""
        by_name, by_path = read_metadata(metadata) if metadata else ({}, {})
        return cls(Layout.compile(layout) if layout else None, by_name, by_path, str(metadata or ""))

    @property
    def given(self) -> bool:
        return self.layout is not None or bool(self.by_name or self.by_path)

    def label(self, name: str, path: Path, suffix: str, found: tuple[str, int, float]) -> tuple[str, int, float]:
        """(run, epoch, accuracy) of the network ``name`` at ``path``: the table's, else the layout's, else ``found``."""
        run, epoch, accuracy = found
        if self.layout is not None:
            matched = self.layout.match(name, suffix)
            if matched is None:
                raise InputError(
                    f"{path}: its path under the source, {name}{suffix}, does not match `layout` {self.layout.pattern!r} "
                    "(exclude it, or give its run and epoch in `metadata`)"
                )
            run = matched[0] if matched[0] is not None else run
            epoch = matched[1] if matched[1] is not None else epoch
        row = self.by_name.get(name) or self.by_path.get(os.path.abspath(path)) or {}
        return row.get("run", run), row.get("epoch", epoch), row.get("accuracy", accuracy)

    def check_all_used(self, names, paths) -> None:
        """Every row of the table names a network found (a typo in a name would otherwise pass unnoticed)."""
        unknown = [n for n in self.by_name if n not in set(names)]
        unknown += [p for p in self.by_path if p not in {os.path.abspath(x) for x in paths}]
        if unknown:
            listed = ", ".join(unknown[:3]) + (", ..." if len(unknown) > 3 else "")
            raise InputError(f"{self.table}: {len(unknown)} row(s) name no network found: {listed} (names are as `ingest` gives them, see `info`)")


def read_metadata(path: str | Path) -> tuple[dict, dict]:
    """The rows of a metadata CSV: ({name: values}, {absolute path: values}); values typed (run str, epoch int, accuracy float)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    regular_file(path)
    if path.stat().st_size > MAX_METADATA_BYTES:
        raise InputError(f"{path}: {path.stat().st_size} bytes, too large for a table of networks")
    try:
        text = path.read_bytes().decode("utf-8-sig")  # a spreadsheet's export may start with a byte-order mark
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a UTF-8 text file (a CSV table with a header row expected)") from None
    reader = csv.DictReader(io.StringIO(text))
    columns = [c.strip() for c in reader.fieldnames or []]
    keys = [c for c in KEY_COLUMNS if c in columns]
    if len(keys) != 1 or not set(columns) & set(VALUE_COLUMNS):
        raise InputError(
            f"{path}: its header {','.join(columns) or '(none)'} needs one of the columns name or path, and any of run, epoch, accuracy"
        )
    unknown = [c for c in columns if c not in KEY_COLUMNS + VALUE_COLUMNS]
    if unknown:
        raise InputError(f"{path}: unknown column(s) {', '.join(unknown)}; read are name or path, run, epoch, accuracy")
    rows: dict = {}
    for line, raw in enumerate(reader, start=2):
        row = {k.strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        key = row[keys[0]]
        if not key:
            raise InputError(f"{path}: line {line} has no {keys[0]}")
        if keys[0] == "path":
            key = os.path.abspath(path.parent / key)  # relative paths are relative to the table's folder
        if key in rows:
            raise InputError(f"{path}: line {line} names {row[keys[0]]!r} a second time")
        rows[key] = _values(row, f"{path}: line {line}")
    return (rows, {}) if keys[0] == "name" else ({}, rows)


def _values(row: dict, where: str) -> dict:
    out: dict = {}
    if row.get("run"):
        out["run"] = row["run"]
    if row.get("epoch"):
        out["epoch"] = _epoch(row["epoch"], where)
    if row.get("accuracy"):
        try:
            accuracy = float(row["accuracy"])
        except ValueError:
            raise InputError(f"{where}: accuracy {row['accuracy'][:30]!r} is not a number") from None
        if not math.isfinite(accuracy):
            raise InputError(f"{where}: accuracy {row['accuracy']!r} is not finite (leave the cell empty for none)")
        out["accuracy"] = accuracy
    return out


def _epoch(text: str, where: str) -> int:
    if not text.isdigit() or not text.isascii():
        raise InputError(f"{where}: epoch {text[:30]!r} is not a whole number >= 0")
    if len(text) > 19 or int(text) > MAX_EPOCH:
        raise InputError(f"{where}: epoch {text[:30]}... is too large (at most {MAX_EPOCH})")
    return int(text)
