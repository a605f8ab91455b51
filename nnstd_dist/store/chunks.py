"""Chunk files checked without decoding them: present, and their crc32c (the last 4 bytes, zarr's crc32c codec) right.

Every array of the store ends its codec chain with crc32c, so a chunk file is
``payload + crc32c(payload)`` (little-endian): checking it costs one read and one crc, no
decompression. Part of the store (it knows zarr's chunk layout ``<array>/c/<i>/<j>...``); reads go
through the store's storage (storage/), a folder or an object store alike.
"""

from __future__ import annotations

import google_crc32c

from . import files

__all__ = ["chunk_key", "chunk_problem", "shard_index", "read_shard_index", "shard_index_size", "parse_shard_index", "shard_problems"]


def chunk_key(array: str, coords) -> str:
    """The key of chunk ``coords`` of ``array`` (default chunk key encoding, separator "/")."""
    return "/".join((array, "c", *(str(int(c)) for c in coords)))


def chunk_problem(storage, key: str) -> str | None:
    """None if the chunk file is whole, else what is wrong with it: missing, unreadable, truncated, checksum mismatch,
    or no regular file (a link, a FIFO: never followed or read; a linked folder on the way too)."""
    try:
        raw = storage.read(key)
    except FileNotFoundError:
        return "missing"
    except files.Trespass as exc:
        return exc.what
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    if len(raw) < 4:
        return "truncated"
    if google_crc32c.value(raw[:-4]).to_bytes(4, "little") != raw[-4:]:
        return "checksum mismatch"
    return None


_EMPTY = 2**64 - 1  # zarr's sharding index marks an inner chunk that was never written with this offset and length


def shard_index(storage, key: str, n_inner: int) -> list[tuple[int, int] | None] | str:
    """The (offset, length) of each inner chunk of a zarr shard file (None: never written), or what is wrong with the file.

    zarr's sharding codec puts the index last: n_inner pairs of little-endian uint64, then their crc32c.
    Reading it costs one small read at the file's end.
    """
    return read_shard_index(storage, key, n_inner)[0]


def read_shard_index(storage, key: str, n_inner: int) -> tuple[list[tuple[int, int] | None] | str, bytes]:
    """(shard_index, the index's bytes as read: b"" if none could be)."""
    try:
        raw = storage.read_tail(key, shard_index_size(n_inner))
    except FileNotFoundError:
        return "missing", b""
    except files.Trespass as exc:
        return exc.what, b""
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})", b""
    return parse_shard_index(raw, n_inner), raw


def shard_index_size(n_inner: int) -> int:
    """Bytes of a shard's index: n_inner (offset, length) pairs of uint64, then their crc32c."""
    return 16 * n_inner + 4


def parse_shard_index(raw: bytes, n_inner: int) -> list[tuple[int, int] | None] | str:
    """The shard index in ``raw`` (a shard file's last bytes) as shard_index gives it, or what is wrong with it."""
    if len(raw) < shard_index_size(n_inner):
        return "truncated"
    if google_crc32c.value(raw[:-4]).to_bytes(4, "little") != raw[-4:]:
        return "checksum mismatch (shard index)"
    pairs = [(int.from_bytes(raw[16 * i : 16 * i + 8], "little"), int.from_bytes(raw[16 * i + 8 : 16 * i + 16], "little")) for i in range(n_inner)]
    return [None if p == (_EMPTY, _EMPTY) else p for p in pairs]


def shard_problems(storage, key: str, n_inner: int, wanted, read: bool = True) -> dict[int, str]:
    """Problems of the inner chunks ``wanted`` (indices within the shard): missing, or, with ``read``, their crc32c wrong."""
    index = shard_index(storage, key, n_inner)
    if isinstance(index, str):
        return {i: index for i in wanted}
    out = {i: "missing" for i in wanted if index[i] is None}
    if not read:
        return out
    try:
        raw = storage.read(key)
    except OSError as exc:
        return {i: f"unreadable ({exc.strerror or exc})" for i in wanted}
    for i in wanted:
        if index[i] is None:
            continue
        offset, length = index[i]
        chunk = raw[offset : offset + length]
        if length < 4 or len(chunk) != length or google_crc32c.value(chunk[:-4]).to_bytes(4, "little") != chunk[-4:]:
            out[i] = "checksum mismatch"
    return out
