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
record is written whole to a temporary name and renamed into place; a row file is the records of one
tile row, one after another. Part of the store; no zarr.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import struct
import threading
from dataclasses import dataclass
from pathlib import Path

import google_crc32c
import numpy as np

from . import faults
from ..tiles import extent, n_tiles

__all__ = ["MAGIC", "Record", "frame", "encode", "read_records", "networks_hash", "mismatch", "write_atomic"]

MAGIC = b"NNSTDT3\0"
_HEADER_MAX = 1 << 20  # a header is ~200 bytes, more with an "uncertified" list; a larger length field is damage, never an allocation


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
    def uncertified(self) -> list[int]:
        """Flat positions in the block of the pairs whose fast-solver choices were not all certified (see above)."""
        return list(self.header.get("uncertified", ())) if self.header else []

    @property
    def place(self) -> tuple[int, int] | None:
        return (self.header["a"], self.header["b"]) if self.header else None


def networks_hash(digests, rows: tuple[int, int], cols: tuple[int, int]) -> str:
    """sha256 over the digests of networks [r0, r1) and [c0, c1): what a record measured, and must still measure."""
    h = hashlib.sha256()
    for start, stop in (rows, cols):
        h.update(f"{start}:{stop}\n".encode())
        h.update("\n".join(str(d) for d in digests[start:stop]).encode())
    return h.hexdigest()


def encode(
    a: int, b: int, tile: int, done_at: int, results: int, digests, block: np.ndarray, generation: int, uncertified=None
) -> bytes:
    """The record of tile (a, b) computed at population size ``done_at``: ``block`` is (layers, rows, cols) float64;
    ``generation``: the store's when its networks were read; ``uncertified``: flat positions of uncertified pairs."""
    rows, cols = extent(a, tile, done_at), extent(b, tile, done_at)
    if block.shape[1:] != (rows[1] - rows[0], cols[1] - cols[0]):
        raise ValueError(f"tile ({a}, {b}): a block of shape {block.shape} for rows {rows}, columns {cols}")
    header = {
        "a": int(a), "b": int(b), "done_at": int(done_at), "layers": int(block.shape[0]), "rows": list(rows), "cols": list(cols),
        "results": int(results), "networks": networks_hash(digests, rows, cols), "generation": int(generation),
    }
    if uncertified is not None and len(uncertified):
        header["uncertified"] = sorted(int(p) for p in uncertified)
    return frame(json.dumps(header, sort_keys=True).encode(), np.ascontiguousarray(block, dtype="<f8").tobytes())


def frame(header: bytes, payload: bytes) -> bytes:
    """A record around a header's JSON text and a payload's bytes, each followed by its crc32c."""
    return b"".join((MAGIC, struct.pack("<I", len(header)), header, _crc(header), payload, _crc(payload)))


def mismatch(header: dict, a: int, b: int, tile: int, n: int, results: int, layers: int, digests, hashes: dict) -> str | None:
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
        hashes[(rows, cols)] = networks_hash(digests, rows, cols)
    if header.get("networks") != hashes[(rows, cols)]:
        return "its record measures other networks than the store holds there (copied from another store?)"
    return None


def read_records(path: Path, blocks: bool) -> list[Record]:
    """Every record in the file at ``path``, in order; with ``blocks``, their payloads read and checked too.

    A damaged record is returned with its ``problem``; the file's rest after damage that breaks the
    framing (a wrong magic or length) cannot be parsed and is one damaged record. A missing file: [].
    """
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            out = []
            while f.tell() < size:
                record = _next_record(f, size, blocks)
                out.append(record)
                if record.header is None:
                    break
            return out
    except FileNotFoundError:
        return []
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
        header = json.loads(text)
        shape = (int(header["layers"]), header["rows"][1] - header["rows"][0], header["cols"][1] - header["cols"][0])
    except (ValueError, KeyError, TypeError, IndexError):
        return Record(None, problem="damaged (header)")
    nbytes = 8 * int(np.prod(shape))
    end = start + 12 + length + 4 + nbytes + 4
    if min(shape) < 0 or end > size:
        return Record(None, problem="truncated")
    if not blocks:
        f.seek(end)
        return Record(header, nbytes=end - start)
    payload, crc = f.read(nbytes), f.read(4)
    if _crc(payload) != crc:
        return Record(header, problem="checksum mismatch", nbytes=end - start)
    return Record(header, np.frombuffer(payload, dtype="<f8").reshape(shape), nbytes=end - start)


def partial_tag() -> str:
    """Who writes a temporary file: host, process and thread (a worker process runs tasks on several threads)."""
    return f"{socket.gethostname()}-{os.getpid()}-{threading.get_ident()}"


def write_atomic(path: Path, data: bytes) -> None:
    """``data`` as the file ``path``, whole or not at all: written to a temporary name, then renamed over it."""
    faults.before_write()
    tmp = path.with_name(f".{path.name}.{partial_tag()}.partial")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.rename(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
