"""Where a store's bytes live: one small interface (base.Storage), a local folder or an object store behind it.

``open_storage(where, options)`` picks the implementation: a path (or ``file://``) is a folder on a
filesystem (local.py: today's closed-world files, atomic renames, an O_EXCL lock), any other URL --
``s3://``, ``gs://``, ``az://``, ``memory://`` -- an object store through fsspec (objects.py: one PUT per
file, a create-only PUT for the lock, listings by prefix). The rest of the store only calls the
interface; nothing outside the store subpackage knows which one it talks to.
"""

from __future__ import annotations

import re

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
    _refuse_near_url(text)
    if is_url(text) and not text.lower().startswith("file://"):
        from .objects import ObjectStorage  # fsspec and its backends load only for a URL

        return ObjectStorage(text, options)
    if options:
        from ...errors import StoreError

        raise StoreError(f"{text}: storage options apply to a store URL (s3://..., gs://...), not to a local path")
    return LocalStorage(text[len("file://"):] if text.startswith("file://") else where)


_NEAR_URL = re.compile(r"([A-Za-z][A-Za-z0-9+.-]+):/{0,1}(?!/)(.*)")


def _refuse_near_url(text: str) -> None:
    """``s3:/bucket/x`` or ``s3:bucket/x`` (a slash short of a URL) would be a local folder named ``s3:``: refused.

    A path of a store whose first part ends in a colon is written ./s3:/... (a single letter, C:, is no scheme)."""
    from ...errors import StoreError

    match = _NEAR_URL.fullmatch(text)
    if match and not is_url(text):
        raise StoreError(
            f"{text}: not a URL (a scheme needs two slashes) and not meant as a folder named {match[1]}:; "
            f"did you mean {match[1]}://{match[2].lstrip('/')}? (a local folder of that name: ./{text})"
        )
