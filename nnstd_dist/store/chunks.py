"""Chunk files checked without decoding them: present, and their crc32c (the last 4 bytes, zarr's crc32c codec) right.

Every array of a format-2 store ends its codec chain with crc32c, so a chunk file is
``payload + crc32c(payload)`` (little-endian): checking it costs one read and one crc, no
decompression. Part of the store (it knows zarr's chunk layout ``<array>/c/<i>/<j>...``).
"""

from __future__ import annotations

from pathlib import Path

import google_crc32c

__all__ = ["chunk_path", "chunk_problem", "payload"]


def chunk_path(store: Path, array: str, coords) -> Path:
    """The file of chunk ``coords`` of ``array`` (default chunk key encoding, separator "/")."""
    return Path(store, array, "c", *(str(int(c)) for c in coords))


def chunk_problem(path: Path) -> str | None:
    """None if the chunk file is whole, else what is wrong with it: missing, unreadable, truncated, checksum mismatch."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    if len(raw) < 4:
        return "truncated"
    if google_crc32c.value(raw[:-4]).to_bytes(4, "little") != raw[-4:]:
        return "checksum mismatch"
    return None


def payload(path: Path) -> bytes | None:
    """The chunk's bytes before its checksum, or None when the file is missing or damaged."""
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    if len(raw) < 4 or google_crc32c.value(raw[:-4]).to_bytes(4, "little") != raw[-4:]:
        return None
    return raw[:-4]
