"""The store's tile markers read straight from their chunk files: zarr spends ~1 ms per chunk, the filesystem far less.

One (1, 1) chunk per tile keeps tasks from ever writing the same chunk, but reading 49,141 of them
(N = 10,000) through zarr takes 36-54 s. Uncompressed, each marker is a file ``<array>/c/<a>/<b>`` of
8 little-endian bytes and their crc32c (absent = fill 0), read here in under 1 s. Part of the store: it knows zarr's
chunk layout, and it gives up (None) on any array it does not recognise.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import StoreError
from .chunks import chunk_problem, payload
from .zarr_io import damage_hint

__all__ = ["read_marker_files"]


def _plain_int64_files(markers) -> bool:
    """Whether every chunk of ``markers`` is stored as a little-endian file under ``c/<a>/<b>``, then its crc32c."""
    encoding = markers.metadata.chunk_key_encoding
    return (
        [type(c).__name__ for c in markers.compressors] == ["Crc32cCodec"] and markers.filters == ()
        and getattr(markers.serializer, "endian", None) is not None
        and markers.serializer.endian.value == "little" and getattr(encoding, "separator", None) == "/"
        and type(encoding).__name__ == "DefaultChunkKeyEncoding"
    )


def read_marker_files(markers, directory: Path, damaged: list | None = None) -> np.ndarray | None:
    """The 2-D int64 zarr array ``markers`` stored at ``directory``, read from its chunk files; None if they are not plain.

    A damaged marker raises a StoreError, or, when a ``damaged`` list is given, is appended to it as
    ``(a, b)`` and read as 0 (not done). Names that are not chunk indices (zarr's ``*.partial``
    files left by a killed write) are skipped.
    """
    if not _plain_int64_files(markers):
        return None
    out = np.zeros(markers.shape, dtype=np.int64)
    root = Path(directory) / "c"
    if not root.is_dir():
        return out
    for row in os.scandir(root):
        if not row.name.isdigit() or not row.is_dir():
            continue
        for cell in os.scandir(row.path):
            if not cell.name.isdigit():
                continue
            a, b = int(row.name), int(cell.name)
            if a >= out.shape[0] or b >= out.shape[1]:
                continue  # left beyond the edge by an earlier, larger shape
            data = payload(Path(cell.path))
            if (data is None or len(data) != 8) and damaged is not None:
                damaged.append((a, b))
                continue
            if data is None or len(data) != 8:
                raise StoreError(f"{directory.parent}: the done marker of tile ({a}, {b}) is damaged ({chunk_problem(Path(cell.path)) or 'wrong size'}); "
                                 f"{damage_hint(directory.parent)}")
            out[a, b] = int.from_bytes(data, "little", signed=True)
    return out
