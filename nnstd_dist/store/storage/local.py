"""A store in a folder of a local or shared filesystem: a closed world of regular files (files.py), written by rename.

A write goes to a hidden temporary name (``.NAME.HOST-PID-THREAD.partial``) and is renamed over the file:
atomic on POSIX filesystems, NFS, Lustre and GPFS. The lock is created whole by ``os.link`` of a private
temporary file (fails if the name exists, also on NFS); a stale lock is taken over under an ``flock`` of
``nnstd-dist.lock.guard``. Nothing is read, written or removed through a link, and nothing but a regular
file is read (zarr's keys too: ClosedZarrStore).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import stat
from pathlib import Path

from zarr.storage import LocalStore

from .. import faults, files
from .base import Storage

__all__ = ["LocalStorage", "ClosedZarrStore", "GUARD_FILE"]

GUARD_FILE = "nnstd-dist.lock.guard"
_WRITE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


class LocalStorage(Storage):
    """The files of the store in folder ``root`` (a linked store path is resolved once, here: it stands for its target)."""

    is_local = True

    def __init__(self, root):
        self.root = files.resolved(root)
        self.location = self.root

    def __repr__(self) -> str:
        return f"LocalStorage({str(self.root)!r})"

    def __reduce__(self):  # another process (a worker) may have another working directory: the absolute path
        return LocalStorage, (os.path.abspath(self.root),)

    def path(self, key: str) -> Path:
        return self.root / key if key else self.root

    def holds_store(self) -> bool:
        return (self.root / "zarr.json").is_file()

    def writable(self) -> bool:
        return os.access(self.root, os.W_OK)

    def zarr_store(self, read_only: bool):
        return ClosedZarrStore(self.root, read_only=read_only)

    @contextlib.contextmanager
    def open_read(self, key: str, limit: int | None = None):
        path = self.path(key)
        with os.fdopen(files.open_regular(path, self.root), "rb") as f:
            size = os.fstat(f.fileno()).st_size  # read within it: a file growing meanwhile is never followed
            if limit is not None and size > limit:
                raise files.Trespass(path, f"a file of {size} bytes where the store keeps one of at most {limit}")
            yield f, size

    def write(self, key: str, data: bytes) -> None:
        """``data`` as the file ``key``, whole or not at all: written to a temporary name, then renamed over it.

        A missing folder (results reset meanwhile) is an OSError, never re-created; a linked one a Trespass."""
        from ..tile_files import partial_tag

        path = self.path(key)
        files.check_folders(self.root, path.parent)
        faults.before_write()
        tag = partial_tag()
        tmp = path.with_name(f".{path.name}.{tag}.partial")
        try:
            try:
                fd = os.open(tmp, _WRITE, 0o644)
            except FileExistsError:  # left by a killed writer whose ids we now reuse (or planted): the name only, never followed
                os.unlink(tmp)
                fd = os.open(tmp, _WRITE, 0o644)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            files.clear(path, tag)  # a folder where the file belongs would refuse the rename; a link or FIFO is replaced by it anyway
            os.rename(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def create(self, key: str, data: bytes) -> bool:
        """Publish ``data`` whole under ``key`` unless something is there: a private file ``os.link``-ed to the name."""
        from ..tile_files import partial_tag

        path = self.path(key)
        tmp = path.with_name(f".{path.name}.{partial_tag()}.tmp")
        try:
            faults.before_write()
            with open(tmp, "xb") as f:
                f.write(data)
            faults.before_write()
            os.link(tmp, path)
            return True
        except FileExistsError:
            return False
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()

    def delete(self, key: str, hook: bool = True) -> None:
        """The name gone: a file or link unlinked (never its target), a folder moved aside; never through a linked folder."""
        from ..tile_files import partial_tag

        path = self.path(key)
        if hook:
            faults.before_write()
        files.check_folders(self.root, path.parent)
        if files.clear(path, partial_tag()) is None:
            path.unlink(missing_ok=True)

    def regular_or_missing(self, key: str) -> bool:
        return files.regular_or_missing(self.path(key), self.root)

    def exists(self, key: str) -> bool:
        return os.path.lexists(self.path(key))

    def names(self, folder: str, hidden: bool = False) -> list[str]:
        try:
            return [e.name for e in os.scandir(self.path(folder)) if e.name.startswith(".") == hidden]
        except (FileNotFoundError, NotADirectoryError):
            return []

    def remove_tree(self, folder: str) -> None:
        path = self.path(folder)
        faults.before_write()
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            path.unlink(missing_ok=True)  # the name only: a link's target is not ours
        else:
            shutil.rmtree(path, ignore_errors=True)  # rmtree never follows links inside

    def sizes(self) -> dict[str, tuple[int, int, int]]:
        sizes = {}
        for entry in os.scandir(self.root):
            found = [entry] if entry.is_file() else list(_walk_files(entry.path))
            stats = [s for s in map(_stat, found) if s is not None]
            sizes[entry.name] = (sum(s.st_size for s in stats), len(stats), sum(_allocated(s) for s in stats))
        return sizes

    @contextlib.contextmanager
    def guard(self):
        path = self.root / GUARD_FILE
        try:
            fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                raise files.Trespass(path, "not a regular file")
        except OSError as exc:  # a link (ELOOP) or a FIFO there: never followed, never waited on
            from ...errors import StoreError

            raise StoreError(f"{self.root}: cannot use {GUARD_FILE} ({exc.strerror or exc}); if no nnstd-dist run is using the store, "
                             f"remove {path} and run again") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the flock

    def check_folder(self, folder: str) -> None:
        files.check_folders(self.root, self.path(folder))

    def clear(self, key: str, tag: str, folder: bool = False) -> str | None:
        faults.before_write()
        return files.clear(self.path(key), tag, folder)

    def make_folders(self, folder: str) -> None:
        faults.before_write()
        files.check_folders(self.root, self.path(folder))
        self.path(folder).mkdir(parents=True, exist_ok=True)


def _stat(entry):
    """The entry's stat, or None if it went away meanwhile (a running compute's zarr renames its `.partial` files)."""
    try:
        return entry.stat()
    except FileNotFoundError:
        return None


def _allocated(st) -> int:
    """Bytes a file takes on disk: its blocks (a small file takes a whole filesystem block, often 4 kB)."""
    blocks = getattr(st, "st_blocks", None)
    return st.st_size if blocks is None else 512 * blocks


def _walk_files(directory: str):
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:  # removed meanwhile (an array recreated by a running compute)
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            yield from _walk_files(entry.path)
        elif entry.is_file(follow_symlinks=False):
            yield entry


class ClosedZarrStore(LocalStore):
    """A LocalStore that never reads, writes or deletes through a link inside the store, nor reads anything but a regular file.

    zarr's LocalStore follows links and opens whatever is at a key: a mask shard linked to /dev/zero
    would stream forever, a FIFO block, a linked ``mask_l0/c`` folder take writes elsewhere. Every key
    is checked first (files.py): a Trespass is an OSError, which the store reports as damage. It also
    calls faults.before_write before every change: crash tests kill a command at each write.
    """

    def _check(self, key: str, read: bool) -> None:
        path = self.root / key
        if read:
            files.regular_or_missing(path, self.root)
        else:
            files.check_folders(self.root, path.parent)

    async def get(self, key, prototype=None, byte_range=None):
        self._check(key, read=True)
        return await super().get(key, prototype, byte_range)

    async def get_partial_values(self, prototype, key_ranges):
        key_ranges = list(key_ranges)
        for key, _ in key_ranges:
            self._check(key, read=True)
        return await super().get_partial_values(prototype, key_ranges)

    async def set(self, key, value):
        faults.before_write()
        self._check(key, read=False)
        await super().set(key, value)

    async def set_if_not_exists(self, key, value):
        faults.before_write()
        self._check(key, read=False)
        await super().set_if_not_exists(key, value)

    async def delete(self, key):
        faults.before_write()
        self._check(key, read=False)
        await super().delete(key)

    async def delete_dir(self, prefix):
        faults.before_write()
        self._check(prefix, read=False)
        await super().delete_dir(prefix)
