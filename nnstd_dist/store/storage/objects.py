"""A store on an object store (``s3://``, ``gs://``, ``az://``, ``memory://``, any fsspec URL zarr can open).

Objects have no folders, links or renames, and a PUT replaces an object whole (S3, GCS and Azure make
a PUT atomic: a reader sees the old object or the new one). So a record or row is one PUT, with no
temporary name; the lock is a create-only PUT (``If-None-Match: *``, which S3, GCS, MinIO and moto
honour), refused if the lock exists; a listing is by prefix, never from a cache (fsspec's listings
cache is off: another process may have written since). The mutex under which a stale lock is taken
over is an ``flock`` on this machine: a lock is stale only when its process, on this host, is gone.
Credentials and endpoints come from where the object store's library reads them (for S3: the
``AWS_*`` environment variables, ``AWS_ENDPOINT_URL`` among them, profiles, instance roles), and
from ``options`` (fsspec's storage options).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import os
import re
import tempfile
import threading

from zarr.abc.store import RangeByteRequest, SuffixByteRequest
from zarr.storage import FsspecStore

from .. import faults, files
from ...errors import StoreAccessError, StoreError
from .base import Storage

__all__ = ["ObjectStorage"]

_NO_CACHE = {"use_listings_cache": False}
# Backend defaults: s3fs reads a whole object with a HEAD (its size) before the GET unless it may not split the read
# (max_concurrency 1); the store's objects are records, rows, metadata and shards read by range, never worth splitting.
_DEFAULTS = {"s3": {"max_concurrency": 1}, "s3a": {"max_concurrency": 1}}


class ObjectStorage(Storage):
    """The objects under the URL ``url``, through fsspec; ``options`` are fsspec's storage options for its backend."""

    is_local = False

    def __init__(self, url: str, options: dict | None = None):
        import fsspec

        scheme, rest = url.split("://", 1)
        self.location = f"{scheme.lower()}://{rest}".rstrip("/")  # S3://: fsspec knows its protocols in lower case
        if scheme.lower() in ("http", "https"):
            raise StoreError(f"{url}: a store on http(s) cannot be written or listed; give an object store's URL (s3://, gs://, az://)")
        self.options = dict(options or {})
        try:
            self.fs, self.root = fsspec.url_to_fs(self.location, **self._backend_options())
        except ImportError as exc:  # e.g. s3fs not installed
            extra = {"s3": "s3", "gs": "gcs", "gcs": "gcs", "az": "azure", "abfs": "azure"}.get(scheme.lower())
            hint = f"`pip install 'nnstd-dist[{extra}]'`" if extra else "install the package fsspec names"
            raise StoreError(f"{self.location}: {exc} ({hint})") from None
        except ValueError as exc:
            raise StoreError(f"{self.location}: {exc}") from None
        except TypeError as exc:
            raise StoreError(f"{self.location}: cannot open with these storage options ({str(exc)[:160]})") from None
        self.root = self.root.rstrip("/")
        self._spans: dict[str, list[_Span]] = {}  # prefetched byte spans by key (prefetch)
        self._spans_lock = threading.Lock()

    def _backend_options(self) -> dict:
        protocol = self.location.split("://", 1)[0].lower()
        return {**_NO_CACHE, **_DEFAULTS.get(protocol, {}), **self.options}

    def __reduce__(self):  # a worker process opens its own connection, with the same URL and options
        return ObjectStorage, (self.location, self.options)

    def __repr__(self) -> str:
        return f"ObjectStorage({self.location!r})"

    def with_options(self):
        return self.location, self.options

    def _path(self, key: str) -> str:
        return f"{self.root}/{key}" if key else self.root

    def holds_store(self) -> bool:
        """Whether the group's zarr.json is there; a missing bucket, refused credentials or no answer are one StoreError."""
        try:
            self.fs.invalidate_cache(self.root)
            if self.fs.isfile(self._path("zarr.json")):
                return True
            self._require_bucket()
            return False
        except StoreError:
            raise
        except Exception as exc:  # botocore and aiohttp raise their own types for a refused or unreachable endpoint
            raise StoreAccessError(f"{self.location}: {describe_failure(exc)}") from None

    def writable(self) -> bool:
        """A hidden probe object PUT and removed: the credentials may write (two requests, once per worker and run)."""
        import socket

        key = f".nnstd-dist-probe-{socket.gethostname()}-{os.getpid()}"
        try:
            self.fs.pipe_file(self._path(key), b"")
            self.fs.rm_file(self._path(key))
            return True
        except PermissionError:
            return False

    def _require_bucket(self) -> None:
        """A StoreAccessError naming the bucket (the URL's first part) if it does not exist; memory:// has none."""
        bucket = self.root.split("/", 1)[0]
        if self.location.startswith("memory://"):
            return
        try:
            self.fs.ls(bucket, detail=False)
        except FileNotFoundError:
            raise StoreAccessError(f"{self.location}: the bucket {bucket} does not exist (create it, or check the URL)") from None

    def zarr_store(self, read_only: bool):
        store = _HookedFsspecStore.from_url(self.location, storage_options=self._backend_options(), read_only=read_only)
        store.storage = self  # its reads look in the spans this storage prefetched first
        return store

    @contextlib.contextmanager
    def open_read(self, key: str, limit: int | None = None):
        """The whole object, fetched by one GET (with ``limit``, a HEAD first: a huge object is never fetched)."""
        path = self._path(key)
        try:
            if limit is not None:
                size = int(self.fs.info(path)["size"])
                if size > limit:
                    raise files.Trespass(path, f"an object of {size} bytes where the store keeps one of at most {limit}")
            data = self.fs.cat_file(path)
        except (IsADirectoryError, NotADirectoryError):
            raise FileNotFoundError(path) from None
        yield io.BytesIO(data), len(data)

    def read_tail(self, key: str, n: int) -> bytes:
        """The last ``n`` bytes of the object: one GET of a suffix range (a shard's index, not the shard)."""
        path = self._path(key)
        try:
            return self.fs.cat_file(path, start=-n)
        except (IsADirectoryError, NotADirectoryError):
            raise FileNotFoundError(path) from None

    @contextlib.contextmanager
    def prefetch(self, key: str, ranges, tail: bytes = b""):
        """The span covering ``ranges`` fetched by one ranged GET, served to zarr's reads of ``key`` (and ``tail`` to its
        read of the shard index) until the block ends. Threads may prefetch the same key: each span serves any of them."""
        spans = [_Span(a, self.fs.cat_file(self._path(key), start=a, end=b), bytes(tail)) for a, b in _merged(ranges)]
        with self._spans_lock:
            self._spans.setdefault(key, []).extend(spans)
        try:
            yield
        finally:
            with self._spans_lock:
                held = [s for s in self._spans.get(key, []) if not any(s is mine for mine in spans)]
                if held:
                    self._spans[key] = held
                else:
                    self._spans.pop(key, None)

    def drop_prefetched(self) -> None:
        with self._spans_lock:
            self._spans.clear()

    def prefetched(self, key: str, byte_range) -> bytes | None:
        """The bytes of ``byte_range`` of ``key`` if a prefetched span holds them, else None (zarr then asks the store)."""
        with self._spans_lock:
            spans = list(self._spans.get(key, ()))
        for span in spans:
            found = span.serve(byte_range)
            if found is not None:
                return found
        return None

    def write(self, key: str, data: bytes) -> None:
        faults.before_write()
        self.fs.pipe_file(self._path(key), bytes(data))

    def create(self, key: str, data: bytes) -> bool:
        faults.before_write()
        try:
            self.fs.pipe_file(self._path(key), bytes(data), mode="create")
            return True
        except FileExistsError:
            return False
        except OSError as exc:
            if "PreconditionFailed" in str(exc) or "412" in str(exc):
                return False
            raise

    def delete(self, key: str, hook: bool = True) -> None:
        if hook:
            faults.before_write()
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self._path(key))

    def regular_or_missing(self, key: str) -> bool:
        return self.fs.isfile(self._path(key))

    def exists(self, key: str) -> bool:
        return self.fs.exists(self._path(key))

    def names(self, folder: str, hidden: bool = False) -> list[str]:
        path = self._path(folder)
        self.fs.invalidate_cache(path)
        try:
            found = self.fs.ls(path, detail=False)
        except (FileNotFoundError, NotADirectoryError):
            return []
        names = {p.rstrip("/").rsplit("/", 1)[-1] for p in found if p.rstrip("/") != path}
        return sorted(n for n in names if n and n.startswith(".") == hidden)

    def remove_tree(self, folder: str) -> None:
        faults.before_write()
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm(self._path(folder), recursive=True)

    def sizes(self) -> dict[str, tuple[int, int, int]]:
        self.fs.invalidate_cache(self.root)
        sizes: dict[str, list[int]] = {}
        for path, info in self.fs.find(self.root, detail=True).items():
            top = path[len(self.root) + 1 :].split("/", 1)[0]
            size = int(info.get("size") or 0)
            entry = sizes.setdefault(top, [0, 0, 0])
            entry[0] += size
            entry[1] += 1
            entry[2] += size  # an object store bills bytes, not blocks
        return {k: tuple(v) for k, v in sizes.items()}

    @contextlib.contextmanager
    def guard(self):
        """An flock on this machine, named by the URL: only this host's runs may take over this host's stale lock."""
        folder = os.path.join(tempfile.gettempdir(), f"nnstd-dist-{os.getuid()}")
        os.makedirs(folder, mode=0o700, exist_ok=True)
        name = hashlib.sha256(self.location.encode()).hexdigest()[:32]
        fd = os.open(os.path.join(folder, f"{name}.guard"), os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def describe_failure(exc: BaseException) -> str:
    """An object store's refusal in words: wrong credentials, no such bucket, an endpoint that does not answer."""
    text = f"{type(exc).__name__}: {exc}"
    unknown = re.search(r"unexpected keyword argument '([^']+)'", text)
    if isinstance(exc, TypeError) and unknown:  # s3fs passes storage options it does not know on to its session
        return f"unknown storage option {unknown[1]!r} for this URL's backend (check --storage-options)"
    if any(w in text for w in ("EndpointConnectionError", "Could not connect", "ConnectionRefused", "Cannot connect", "timed out", "Timeout")):
        # first: the endpoint's URL in the text may hold "403" (a port 40377)
        return f"the object store does not answer (check AWS_ENDPOINT_URL or the endpoint in --storage-options) ({text[:160]})"
    if isinstance(exc, PermissionError) or any(w in text for w in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "(403)")):
        return f"access refused: check the credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, a profile, or --storage-options) ({text[:160]})"
    if "NoSuchBucket" in text:
        return "the bucket does not exist (create it, or check the URL)"
    return f"cannot reach the store ({text[:200]})"


_GAP = 1 << 20  # ranges closer than this are fetched as one: a gap's bytes cost less than another request


def _merged(ranges) -> list[tuple[int, int]]:
    """Byte ranges sorted and merged where they overlap or lie less than _GAP apart."""
    out: list[list[int]] = []
    for a, b in sorted(ranges):
        if out and a - out[-1][1] < _GAP:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


class _Span:
    """Bytes [start, start + len(data)) of one object, and its last bytes (``tail``), fetched by ObjectStorage.prefetch."""

    def __init__(self, start: int, data: bytes, tail: bytes):
        self.start, self.data, self.tail = start, data, tail

    def serve(self, byte_range) -> bytes | None:
        if isinstance(byte_range, RangeByteRequest):
            lo, hi = byte_range.start - self.start, byte_range.end - self.start
            return self.data[lo:hi] if 0 <= lo <= hi <= len(self.data) else None
        if isinstance(byte_range, SuffixByteRequest) and 0 < byte_range.suffix <= len(self.tail):
            return self.tail[-byte_range.suffix :]
        return None


class _HookedFsspecStore(FsspecStore):
    """zarr's FsspecStore with faults.before_write before every change (crash tests kill a command at each write), and
    reads served from the spans its storage prefetched (a shard's chunks: one request, not one each)."""

    storage = None

    async def get(self, key, prototype, byte_range=None):
        if self.storage is not None and byte_range is not None:
            found = self.storage.prefetched(key, byte_range)
            if found is not None:
                return prototype.buffer.from_bytes(found)
        return await super().get(key, prototype, byte_range)

    async def set(self, key, value, byte_range=None):
        faults.before_write()
        await super().set(key, value, byte_range)

    async def delete(self, key):
        faults.before_write()
        await super().delete(key)

    async def delete_dir(self, prefix):
        faults.before_write()
        await super().delete_dir(prefix)
