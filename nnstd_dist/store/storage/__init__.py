"""Where a store's bytes live: one small interface (base.Storage), a local folder or an object store behind it.

``open_storage(where, options)`` picks the implementation: a path (or ``file://``) is a folder on a
filesystem (local.py: today's closed-world files, atomic renames, an O_EXCL lock), any other URL --
``s3://``, ``gs://``, ``az://``, ``memory://`` -- an object store through fsspec (objects.py: one PUT per
file, a create-only PUT for the lock, listings by prefix). The rest of the store only calls the
interface; nothing outside the store subpackage knows which one it talks to.
"""

from __future__ import annotations

from .base import Storage, is_url
from .local import LocalStorage

__all__ = ["Storage", "LocalStorage", "open_storage", "is_url"]


def open_storage(where, options: dict | None = None) -> Storage:
    """The storage of the store at ``where``: a Storage (returned as it is), a local path, or an fsspec URL.

    ``options`` (fsspec's storage options: credentials, an endpoint) apply to URLs only; the standard places
    (``AWS_*`` environment variables, profiles, instance roles) are read by the object store's own library."""
    if isinstance(where, Storage):
        return where
    text = str(where)
    if is_url(text) and not text.startswith("file://"):
        from .objects import ObjectStorage  # fsspec and its backends load only for a URL

        return ObjectStorage(text, options)
    if options:
        from ...errors import StoreError

        raise StoreError(f"{text}: storage options apply to a store URL (s3://..., gs://...), not to a local path")
    return LocalStorage(text[len("file://"):] if text.startswith("file://") else where)
