"""The store as a closed world: its own files opened without following links, and only if they are regular files.

A store may live on a shared filesystem that others can write to. A symbolic link inside it (a tile
folder pointing elsewhere, a record linked to a user's file) must never make a command read, write,
rename or delete outside the store, and a FIFO, socket or device where a file belongs must never block
a read or stream forever. So every store file is opened with ``O_NOFOLLOW | O_NONBLOCK`` and checked
by ``fstat`` before a byte is read, and every folder between the store's root (resolved once, when the
store is opened) and a file is checked by ``lstat`` to be a real folder. Anything else is ``Trespass``:
an OSError the store's readers report as damage. Part of the store; no zarr.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

__all__ = ["Trespass", "what_is", "resolved", "check_folders", "open_regular", "read_regular", "regular_or_missing", "clear"]

_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


class Trespass(OSError):
    """A store path that is a symbolic link or not the kind of file it should be (its message says which)."""

    def __init__(self, path, what: str):
        super().__init__(errno.ELOOP, what, str(path))
        self.what = what


def what_is(mode: int) -> str:
    """A file type in words, for a message: what was found where a regular file or folder belongs."""
    for test, name in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"), (stat.S_ISDIR, "a folder"), (stat.S_ISREG, "a file")):
        if test(mode):
            return name
    return "not a regular file"


def resolved(path) -> Path:
    """The store path with every symbolic link in it resolved, once: a linked store stands for its target.

    A path without links is returned as given, so that messages name the store as the user typed it."""
    path = Path(path)
    real = os.path.realpath(path)
    return path if real == os.path.abspath(path) else Path(real)


def check_folders(root: Path, folder: Path) -> None:
    """Every existing folder from ``root`` (exclusive) down to ``folder`` (inclusive) is a real folder, no link.

    ``root`` is the store's resolved path; a missing folder ends the check (a write creates real ones).
    """
    root, folder = Path(root), Path(folder)
    try:
        parts = folder.relative_to(root).parts
    except ValueError:
        raise Trespass(folder, f"outside the store {root}") from None
    here = root
    for part in parts:
        here = here / part
        try:
            mode = os.lstat(here).st_mode
        except FileNotFoundError:
            return
        if not stat.S_ISDIR(mode):
            raise Trespass(here, f"{what_is(mode)} where the store keeps a folder")


def open_regular(path: Path, root: Path | None = None) -> int:
    """A read-only descriptor of the regular file ``path`` (no link followed, a FIFO never waited on); else Trespass.

    With ``root``, the folders between it and the file are checked too. A missing file: FileNotFoundError.
    """
    path = Path(path)
    if root is not None:
        check_folders(root, path.parent)
    try:
        fd = os.open(path, _READ)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK):  # O_NOFOLLOW on a link
            raise Trespass(path, "a symbolic link where the store keeps a file") from None
        raise
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise Trespass(path, f"{what_is(mode)} where the store keeps a file")
    return fd


def read_regular(path: Path, root: Path | None = None, limit: int | None = None) -> bytes:
    """The bytes of the regular file ``path`` (see open_regular); more than ``limit`` bytes is a Trespass too."""
    fd = open_regular(path, root)
    with os.fdopen(fd, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if limit is not None and size > limit:
            raise Trespass(path, f"a file of {size} bytes where the store keeps one of at most {limit}")
        return f.read(size)


def regular_or_missing(path: Path, root: Path) -> bool:
    """True if ``path`` is a regular file inside ``root``, False if missing; Trespass if anything else is there."""
    check_folders(root, Path(path).parent)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(mode):
        raise Trespass(path, f"{what_is(mode)} where the store keeps a file")
    return True


def clear(path: Path, tag: str, folder: bool = False) -> str | None:
    """Remove whatever is at ``path`` that is not what the store keeps there (a regular file, or with ``folder`` a real
    folder), without following it; what it was, or None.

    A link, FIFO, socket, device or misplaced file is unlinked (the name only: a link's target is untouched);
    a misplaced folder is renamed aside to a hidden ``.NAME.damaged-TAG`` (it may hold someone's files)."""
    path = Path(path)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return None
    if (stat.S_ISDIR if folder else stat.S_ISREG)(mode):
        return None
    if stat.S_ISDIR(mode):
        os.rename(path, path.with_name(f".{path.name}.damaged-{tag}"))
    else:
        os.unlink(path)
    return what_is(mode)
