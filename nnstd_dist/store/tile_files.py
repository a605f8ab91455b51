"""One tile of distances as one self-checking record: its place, the networks it measures, its numbers, two crc32c.

    record  = MAGIC (8 bytes) | n = header length (u32) | header (n bytes of JSON) | crc32c(header) (u32)
              | payload (8 * layers * rows * cols bytes) | crc32c(payload) (u32)          all little-endian
    header  = {"a", "b", "done_at", "layers", "rows": [r0, r1], "cols": [c0, c1], "results", "networks", "generation"}
              and, for the fast solver's results, "uncertified": [p, ...] when some pairs are (see below)
    payload = float64 D[k, i - r0, j - c0] = NNSTD_k(network i, network j), C order

``uncertified`` lists, ascending, the flat positions p = (i - r0) * (c1 - c0) + (j - c0) of the pairs (i > j)
whose fast-solver matching made a choice that is not proven harmless (kernel/fast: "certified"); absent
means every pair of the record is certified (or the solver makes no such claim: exact).

A checksum alone vouches for bytes, not for where they belong: a tile file swapped with another, or
copied from another store, would pass it. So the header names the tile (a, b), the population size
``done_at`` it was computed at (rows and columns are the tile's extent then), the set of results it
belongs to, and ``networks`` = sha256 over the digests of its row and column networks; a reader
accepts a record for (a, b) only when all of these match the store as it is now (``mismatch`` says why not). A
record is written whole (storage/: renamed into place on a filesystem, one PUT on an object store); a row
file is the records of one tile row, one after another.

Everything read is hostile until checked: a file is opened without following links and only if it is
regular (files.py), a header is parsed by one strict schema (``parse_header``: known keys, integer
types and ranges, nesting depth) before any field is used, and a payload holds distances in [0, 1]
(``payload_problem``) whatever its checksums say. Part of the store; no zarr.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import struct
import threading
from dataclasses import dataclass

import google_crc32c
import numpy as np

from . import files
from ..tiles import extent, n_tiles

__all__ = [
    "MAGIC", "Record", "frame", "encode", "read_records", "parse_header", "payload_problem", "networks_hash", "mismatch", "partial_tag",
]

MAGIC = b"NNSTDT3\0"
# A header is ~200 bytes, or up to a list of every pair of its tile ("uncertified"); a larger length is damage, never an allocation.
_HEADER_MAX = 1 << 20
_COUNTS = {"a": 0, "b": 0, "done_at": 1, "layers": 1, "results": 1, "generation": 0}  # integer keys and their least values
_SPANS = ("rows", "cols")
_KEYS = {*_COUNTS, *_SPANS, "networks"}
_OPTIONAL = {"uncertified"}
_INT_MAX = 2**53  # no count of a store comes near it; JSON readers elsewhere lose integers past it
_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"')
_HEX64 = re.compile(r"[0-9a-f]{64}", re.ASCII)


def _crc(data: bytes) -> bytes:
    return google_crc32c.value(data).to_bytes(4, "little")


@dataclass
class Record:
    """A tile record as found in a file: its header, and its block once read (None: not read, or ``problem``)."""

    header: dict | None
    block: np.ndarray | None = None
    problem: str | None = None
    nbytes: int = 0  # the whole record's length in its file

    @property
    def uncertified(self) -> tuple[np.ndarray, np.ndarray]:
        """(rows, columns) in the block of the pairs whose fast-solver choices were not all certified (see above)."""
        positions = np.asarray(self.header.get("uncertified", ()) if self.header else (), dtype=np.int64)
        return np.divmod(positions, self.header["cols"][1] - self.header["cols"][0]) if len(positions) else (positions, positions)

    @property
    def place(self) -> tuple[int, int] | None:
        return (self.header["a"], self.header["b"]) if self.header else None


def networks_hash(digests, rows: tuple[int, int], cols: tuple[int, int], settings: str = "") -> str:
    """sha256 over the digests of networks [r0, r1) and [c0, c1): what a record measured, and must still measure.

    ``settings`` (the results' solver and tie rule, see Results.binding) makes the hash name how the distances were
    computed too, so a record of an exact run copied into a fast store of the same networks is damage, not numbers."""
    h = hashlib.sha256()
    if settings:
        h.update(f"computed with {settings}\n".encode())
    for start, stop in (rows, cols):
        h.update(f"{start}:{stop}\n".encode())
        h.update("\n".join(str(d) for d in digests[start:stop]).encode())
    return h.hexdigest()


def encode(
    a: int, b: int, tile: int, done_at: int, results: int, digests, block: np.ndarray, generation: int, uncertified=None,
    settings: str = "",
) -> bytes:
    """The record of tile (a, b) computed at population size ``done_at``: ``block`` is (layers, rows, cols) float64;
    ``generation``: the store's when its networks were read; ``uncertified``: flat positions of uncertified pairs."""
    rows, cols = extent(a, tile, done_at), extent(b, tile, done_at)
    if block.shape[1:] != (rows[1] - rows[0], cols[1] - cols[0]):
        raise ValueError(f"tile ({a}, {b}): a block of shape {block.shape} for rows {rows}, columns {cols}")
    header = {
        "a": int(a), "b": int(b), "done_at": int(done_at), "layers": int(block.shape[0]), "rows": list(rows), "cols": list(cols),
        "results": int(results), "networks": networks_hash(digests, rows, cols, settings), "generation": int(generation),
    }
    if uncertified is not None and len(uncertified):
        header["uncertified"] = sorted(int(p) for p in uncertified)
    return frame(json.dumps(header, sort_keys=True).encode(), np.ascontiguousarray(block, dtype="<f8").tobytes())


def frame(header: bytes, payload: bytes) -> bytes:
    """A record around a header's JSON text and a payload's bytes, each followed by its crc32c."""
    return b"".join((MAGIC, struct.pack("<I", len(header)), header, _crc(header), payload, _crc(payload)))


def mismatch(
    header: dict, a: int, b: int, tile: int, n: int, results: int, layers: int, digests, hashes: dict, settings: str = ""
) -> str | None:
    """None if ``header`` is a record of tile (a, b) of these results for the networks the store holds now, else why not.

    ``hashes`` caches networks_hash by extent: most records of a store share a handful of row extents.
    """
    done_at = header.get("done_at")
    if (header.get("a"), header.get("b")) != (a, b):
        return f"its record holds tile ({header.get('a')}, {header.get('b')})"
    if header.get("results") != results or header.get("layers") != layers:
        return f"its record belongs to other results (set {header.get('results')}, {header.get('layers')} layers)"
    if not isinstance(done_at, int) or not 0 < done_at <= n:
        return f"its record was computed for {done_at} networks, the store holds {n}"
    if a >= n_tiles(n, tile) or a < b:
        return "no such tile"
    rows, cols = extent(a, tile, done_at), extent(b, tile, done_at)
    if header.get("rows") != list(rows) or header.get("cols") != list(cols):
        return f"its record's rows {header.get('rows')} and columns {header.get('cols')} are not the tile's (tiles of {tile})"
    if (rows, cols) not in hashes:
        hashes[(rows, cols)] = networks_hash(digests, rows, cols, settings)
    if header.get("networks") != hashes[(rows, cols)]:
        return "its record measures other networks than the store holds there, or comes from another solver or rule (copied from another store?)"
    return None


def read_records(storage, key: str, blocks: bool) -> list[Record]:
    """Every record in the file ``key`` of ``storage`` (storage/), in order; with ``blocks``, their payloads read and checked too.

    A damaged record is returned with its ``problem``; the file's rest after damage that breaks the
    framing (a wrong magic or length) cannot be parsed and is one damaged record. A missing file: [].
    Anything but a regular file (a link, a FIFO, a folder) is one damaged record, never opened for reading;
    a linked folder between the store's root and the file is one too.
    """
    try:
        with storage.open_read(key) as (f, size):  # read within its size: a file growing meanwhile is never followed
            out = []
            while f.tell() < size:
                record = _next_record(f, size, blocks)
                out.append(record)
                if record.header is None:
                    break
            return out
    except FileNotFoundError:
        return []
    except files.Trespass as exc:
        return [Record(None, problem=f"is {exc.what}")]
    except OSError as exc:
        return [Record(None, problem=f"unreadable ({exc.strerror or exc})")]


def _next_record(f, size: int, blocks: bool) -> Record:
    start = f.tell()
    head = f.read(12)
    if len(head) < 12 or head[:8] != MAGIC:
        return Record(None, problem="not a tile record (damaged)" if len(head) == 12 else "truncated")
    (length,) = struct.unpack("<I", head[8:])
    if length > _HEADER_MAX:
        return Record(None, problem="damaged (header length)")
    text, crc = f.read(length), f.read(4)
    if len(crc) < 4:
        return Record(None, problem="truncated")
    if _crc(text) != crc:
        return Record(None, problem="checksum mismatch (header)")
    try:
        header = parse_header(text)
    except ValueError as exc:
        return Record(None, problem=f"damaged (header: {exc})")
    shape = (header["layers"], header["rows"][1] - header["rows"][0], header["cols"][1] - header["cols"][0])
    nbytes = 8 * shape[0] * shape[1] * shape[2]
    end = start + 12 + length + 4 + nbytes + 4
    if end > size:
        return Record(None, problem="truncated")
    if not blocks:
        f.seek(end)
        return Record(header, nbytes=end - start)
    payload, crc = f.read(nbytes), f.read(4)
    if _crc(payload) != crc:
        return Record(header, problem="checksum mismatch", nbytes=end - start)
    return Record(header, np.frombuffer(payload, dtype="<f8").reshape(shape), nbytes=end - start)


def parse_header(text: bytes) -> dict:
    """A record's header, checked against the one schema before any field is used; ValueError saying what is wrong.

    Checked before parsing: the nesting depth (a header is an object of lists of integers, so deeper
    JSON is damage, never a RecursionError); after: known keys, integers (no float, bool, NaN) in range,
    ``rows``/``cols`` increasing pairs, ``networks`` a sha256, ``uncertified`` increasing pair indices of the tile.
    """
    bare = np.frombuffer(_STRINGS.sub(b'""', text), dtype=np.uint8)
    depth = np.cumsum(np.isin(bare, (0x5B, 0x7B)).astype(np.int64) - np.isin(bare, (0x5D, 0x7D)))
    if len(depth) and depth.max() > 2:
        raise ValueError("nested too deep")
    try:
        header = json.loads(text, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError; an int of 5,000 digits too
        raise ValueError(f"not JSON ({str(exc)[:60]})") from None
    if not isinstance(header, dict):
        raise ValueError("not an object")
    if not _KEYS <= header.keys() or not header.keys() <= _KEYS | _OPTIONAL:
        missing, unknown = sorted(_KEYS - header.keys()), sorted(header.keys() - _KEYS - _OPTIONAL)
        raise ValueError(f"keys missing {missing[:4]} or unknown {[k[:20] for k in unknown[:4]]}")
    for key, least in _COUNTS.items():
        if not _is_int(header[key], least):
            raise ValueError(f"{key} is not an integer >= {least}")
    for key in _SPANS:
        span = header[key]
        if not (isinstance(span, list) and len(span) == 2 and all(_is_int(x, 0) for x in span) and span[0] <= span[1]):
            raise ValueError(f"{key} is not a pair of integers [start, stop]")
    if not (isinstance(header["networks"], str) and _HEX64.fullmatch(header["networks"])):
        raise ValueError("networks is not a sha256")
    if "uncertified" in header:
        pairs, size = header["uncertified"], (header["rows"][1] - header["rows"][0]) * (header["cols"][1] - header["cols"][0])
        if not (isinstance(pairs, list) and all(_is_int(p, 0) and p < size for p in pairs) and all(p < q for p, q in zip(pairs, pairs[1:]))):
            raise ValueError(f"uncertified is not an increasing list of pair indices below {size}")
    return header


def _no_constant(name: str):
    raise ValueError(f"{name} is no number of a header")


def _is_int(value, least: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and least <= value < _INT_MAX


def payload_problem(block: np.ndarray, computed: int) -> str | None:
    """None if ``block`` (layers, rows, cols) holds distances in [0, 1] in its first ``computed`` layers and, past them
    (not computed, --max-layer), NaN or distances; else what is wrong. A record's checksums vouch for bytes, not for numbers."""
    done, rest = block[:computed], block[computed:]
    if done.size:  # two passes over a tile, not five: min and max propagate NaN
        low, high = done.min(), done.max()
        if np.isnan(low) or np.isnan(high):
            return "distances marked computed are missing (NaN)"
        if low < 0 or high > 1:
            return "distances outside [0, 1]"
    if rest.size:  # fmin/fmax skip NaN: NaN only if every value is
        low, high = np.fmin.reduce(rest, axis=None), np.fmax.reduce(rest, axis=None)
        if low < 0 or high > 1:
            return "distances outside [0, 1]"
    return None


def partial_tag() -> str:
    """Who writes a temporary file: host, process and thread (a worker process runs tasks on several threads)."""
    return f"{socket.gethostname()}-{os.getpid()}-{threading.get_ident()}"
