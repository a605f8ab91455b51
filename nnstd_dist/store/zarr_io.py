"""How the store modules talk to zarr: checksummed codecs, writes a crash test can interrupt, damage as one StoreError.

Every chunk ends with its crc32c (the last bytes-to-bytes codec) and every chunk of the population is
written, even one equal to the fill value, so damage or a missing chunk reads as an error, never a
number. Part of the store: only the store modules import this, and they alone know zarr.
"""

from __future__ import annotations

import contextlib
import functools
import json
from pathlib import Path

import numpy as np
import zarr
from zarr.codecs import BloscCodec, Crc32cCodec, ZstdCodec

from . import files
from ..errors import StoreError
from .chunks import chunk_key

__all__ = ["MASK_CODECS", "CODECS", "zarr_store", "group_attributes", "writes", "reading", "require_chunks", "damage_hint", "consecutive_runs"]

MASK_CODECS = (BloscCodec(cname="zstd", clevel=5, shuffle="bitshuffle"), Crc32cCodec())  # masks are bits: ~2 B/connection
CODECS = (ZstdCodec(level=0), Crc32cCodec())
# A chunk file that is missing is damage, not a default (zarr skips chunks equal to the fill value otherwise).
zarr.config.set({"array.write_empty_chunks": True})


def zarr_store(storage, mode: str):
    """What zarr.open_group is given for the store in ``storage`` (storage/): a store that stays inside it."""
    return storage.zarr_store(read_only=mode == "r")


def group_attributes(storage) -> dict:
    """The group's attributes as stored now, read from its zarr.json (an open group caches those it read at open).

    OSError if the file cannot be read (missing: FileNotFoundError); ValueError if it is no JSON object of attributes."""
    meta = json.loads(storage.read("zarr.json"))
    attributes = meta.get("attributes") if isinstance(meta, dict) else None
    if not isinstance(attributes, dict):
        raise ValueError("zarr.json holds no attributes")
    return attributes


def writes(method):
    """A write that fails for the filesystem's reasons (full disk, read-only store) is one StoreError, not a traceback."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except OSError as exc:
            _settle()
            raise StoreError(f"{self.path}: cannot write ({exc.strerror or exc}); the store keeps its last complete state, run the command again once fixed") from None
        except KeyboardInterrupt:  # Ctrl-C: the chunks in flight end first (each write is atomic), no "Task was destroyed" at exit
            _settle()
            raise
    return wrapper


def _settle(seconds: float = 30.0) -> None:
    """Let the chunk writes zarr still has in flight end (each fails or completes) after one of them failed, or Ctrl-C.

    zarr writes a call's chunks as concurrent tasks on its I/O thread's event loop; when one fails
    (a full disk), the call raises and leaves the others pending, and at exit Python prints "Task was
    destroyed but it is pending!" for each, after our one-line error.
    """
    import asyncio

    from zarr.core import sync

    loop = sync.loop[0]
    if loop is None or not loop.is_running():
        return

    async def others():
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        await asyncio.wait(pending, timeout=seconds) if pending else None
        for task in pending:  # retrieve their errors: nothing is reported at exit
            if task.done() and not task.cancelled():
                task.exception()

    with contextlib.suppress(Exception):
        asyncio.run_coroutine_threadsafe(others(), loop).result(seconds + 1)


@contextlib.contextmanager
def reading(store_path: Path, what: str):
    """zarr's errors on a damaged chunk or metadata file (checksum, codec, JSON) as one StoreError naming ``what``."""
    try:
        yield
    except StoreError:
        raise
    except KeyboardInterrupt:
        _settle()
        raise
    except (ValueError, RuntimeError, OSError, KeyError, TypeError) as exc:
        reason = "checksum mismatch" if "checksum" in str(exc).lower() else f"{type(exc).__name__}: {str(exc)[:120]}"
        raise StoreError(f"{store_path}: {what} is damaged ({reason}); {damage_hint(store_path)}") from None


def damage_hint(store_path: Path) -> str:
    """Where every message about damage points: verify, named as the library call (the CLI shows its command line)."""
    return f"`verify({str(store_path)!r})` lists all damage"


def require_chunks(storage, name: str, coords, what=None) -> None:
    """Every listed chunk of array ``name`` exists: zarr would read a missing one as its fill value."""
    store_path = storage.location
    for c in coords:
        try:
            present = storage.regular_or_missing(chunk_key(name, c))
        except files.Trespass as exc:
            raise StoreError(f"{store_path}: {name} {what(c) if what else 'chunk'} is {exc.what}; {damage_hint(store_path)}") from None
        if not present:
            where = what(c) if what else f"chunk {'/'.join(map(str, c))}"
            raise StoreError(f"{store_path}: {name} {where} is missing; {damage_hint(store_path)}")


def consecutive_runs(sorted_unique: np.ndarray) -> list[np.ndarray]:
    """``sorted_unique`` split where a value skips: each run is one contiguous range (of chunks, of rows) for one zarr call."""
    return np.split(sorted_unique, np.flatnonzero(np.diff(sorted_unique) != 1) + 1) if len(sorted_unique) else []
