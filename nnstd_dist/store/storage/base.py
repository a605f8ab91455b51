"""The storage interface: what the store does with its bytes, named by keys relative to the store's root.

A key is a POSIX path inside the store (``zarr.json``, ``distances/g3/rows/12``, ``nnstd-dist.lock``).
Every implementation gives the same guarantees, which the store's crash consistency rests on:

    read(key)            the whole file; FileNotFoundError if missing, files.Trespass if not a regular file
    open_read(key)       a seekable binary file and its size (records are read header by header)
    write(key, data)     the file whole or not at all: a reader sees the old bytes or the new, never a part
    create(key, data)    like write, but only if nothing is at ``key``: False if something is (the run lock)
    delete(key)          the name gone (missing is fine); never through a link
    names(folder)        the entries directly under ``folder``, hidden ones (``.*``) apart
    prefetch(key, ...)   byte ranges zarr is about to read, fetched at once (an object store; a no-op on a folder)
    guard()              a mutex held while a stale lock is taken over (one taker at a time)

Folders exist on a filesystem only: ``check_folder``, ``clear`` and ``make_folders`` guard the local
store's closed world (files.py) and do nothing on an object store, where no key is a link or a FIFO.
"""

from __future__ import annotations

import contextlib
import re

__all__ = ["Storage", "is_url"]

_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(text: str) -> bool:
    """Whether ``text`` names a store by URL (``s3://...``) rather than by path."""
    return bool(_URL.match(str(text)))


class Storage:
    """The bytes of one store (see the module's docstring for what each method guarantees)."""

    is_local: bool = True
    location = None  # what messages name: the path (a Path) or the URL (a str)

    def __str__(self) -> str:
        return str(self.location)

    def holds_store(self) -> bool:
        """Whether a zarr group is at the root (its zarr.json); on an object store, a missing bucket or refused
        credentials are a StoreError saying so."""
        raise NotImplementedError

    def writable(self) -> bool:
        """Whether this process may write the store (on an object store: a small object written and removed)."""
        raise NotImplementedError

    # ---- zarr --------------------------------------------------------------------------------
    def zarr_store(self, read_only: bool):
        raise NotImplementedError

    # ---- files -------------------------------------------------------------------------------
    def open_read(self, key: str, limit: int | None = None):
        """A context manager yielding (binary file, size); see ``read`` for the errors."""
        raise NotImplementedError

    def read(self, key: str, limit: int | None = None) -> bytes:
        """The file's bytes; more than ``limit`` bytes is damage (files.Trespass), never read."""
        with self.open_read(key, limit) as (f, size):
            return f.read(size)

    def read_tail(self, key: str, n: int) -> bytes:
        """The last ``n`` bytes of the file (the whole file if it is shorter); errors as ``read``."""
        with self.open_read(key) as (f, size):
            f.seek(max(0, size - n))
            return f.read(n)

    def prefetch(self, key: str, ranges, tail: bytes = b""):
        """A context manager: the byte ``ranges`` [(start, stop), ...] of file ``key``, about to be read by zarr, fetched
        at once (one request on an object store, where zarr reads a shard's chunks one request each), with ``tail`` the
        file's last bytes as just read (its shard index). A folder reads them from the file as it is: nothing to do."""
        return contextlib.nullcontext()

    def drop_prefetched(self) -> None:
        """Forget what ``prefetch`` fetched: the next reads go to the store (a retry after a checksum error)."""

    def write(self, key: str, data: bytes) -> None:
        raise NotImplementedError

    def create(self, key: str, data: bytes) -> bool:
        raise NotImplementedError

    def delete(self, key: str, hook: bool = True) -> None:
        """``hook`` False: not a write crash tests stop at (releasing the run's lock, which a full disk never refuses)."""
        raise NotImplementedError

    def regular_or_missing(self, key: str) -> bool:
        """True if a regular file is at ``key``, False if nothing is; files.Trespass if anything else is."""
        raise NotImplementedError

    def exists(self, key: str) -> bool:
        """Whether anything is at ``key`` (a file, a folder, a link: not followed)."""
        raise NotImplementedError

    def names(self, folder: str, hidden: bool = False) -> list[str]:
        """Entries directly under ``folder`` ([] if none): visible ones, or with ``hidden`` only the ``.*`` ones."""
        raise NotImplementedError

    def remove_tree(self, folder: str) -> None:
        """``folder`` and everything under it gone (a link in it removed, never followed)."""
        raise NotImplementedError

    def sizes(self) -> dict[str, tuple[int, int, int]]:
        """Per top-level entry: (bytes, files, bytes on disk)."""
        raise NotImplementedError

    def guard(self):
        """A context manager: the mutex under which a stale lock is taken over."""
        raise NotImplementedError

    # ---- the local store's closed world (no-ops on an object store) -------------------------
    def check_folder(self, folder: str) -> None:
        """Every folder from the root down to ``folder`` is a real one (files.check_folders); files.Trespass if not."""

    def clear(self, key: str, tag: str, folder: bool = False) -> str | None:
        """Whatever at ``key`` is not what the store keeps there removed (files.clear); what it was, or None."""
        return None

    def make_folders(self, folder: str) -> None:
        """``folder`` and its parents (real folders)."""

    def with_options(self):
        """What recreates this storage in another process: (location, options)."""
        return str(self.location), None
