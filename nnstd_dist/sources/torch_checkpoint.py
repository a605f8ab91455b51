"""PyTorch checkpoints (``torch.save``, zip format) read with numpy alone: no torch, no pickled code run.

A ``.pt`` file is a zip archive ``<name>/data.pkl`` + ``<name>/data/<key>`` (one raw storage per key)
+ ``<name>/byteorder``. ``data.pkl`` is a pickle whose globals name the rebuild functions and storage
classes of torch. It is read here by a restricted unpickler in the spirit of
``torch.load(weights_only=True)``: ``find_class`` hands out this module's own stand-ins for an
allow-list of globals (ordered dicts, tensor and parameter rebuild functions, typed storages) and
refuses every other global, so no object of the file's choosing is ever called. Storages are not
read while unpickling: a tensor is a `StoredTensor` (storage record, offset, shape, strides) whose
bounds are checked against its record's size, and whose bytes are read only on `StoredTensor.numpy`.
"""

from __future__ import annotations

import io
import math
import pickle
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from .float_bits import RAW_DTYPES, decode, decoded_dtype

__all__ = ["StoredTensor", "read_state_dict", "STATE_DICT_KEYS", "TORCH_SUFFIXES"]

TORCH_SUFFIXES = (".pt", ".pth")
# Where training scripts put the model's state_dict inside a checkpoint dict, most specific first.
STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model_state", "model", "net", "network", "module", "weights", "params")
_MAX_PICKLE_BYTES = 256 * 2**20  # data.pkl holds names and shapes only; the tensors are separate records
_MAX_DIMS = 16
_LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"  # PROTO 2, LONG1 0x1950a86a20f9469cfc6c
_RESAVE = "re-save it with a recent PyTorch: torch.save(torch.load(OLD, weights_only=True), NEW)"

# torch storage class -> numpy dtype of its elements (byte order applied when read); the formats of
# float_bits.RAW_DTYPES are read from their bits (bfloat16 widened to float32, FP8 to float16). An
# UntypedStorage holds bytes; _rebuild_tensor_v3 (float8 tensors, in torch 2.x) gives their dtype.
_STORAGE_DTYPES = {
    "DoubleStorage": "f8", "FloatStorage": "f4", "HalfStorage": "f2", "BFloat16Storage": "bfloat16",
    "LongStorage": "i8", "IntStorage": "i4", "ShortStorage": "i2", "CharStorage": "i1", "ByteStorage": "u1",
    "BoolStorage": "b1", "ComplexDoubleStorage": "c16", "ComplexFloatStorage": "c8",
}
# torch dtype (a global ``torch.<name>`` in the pickle) -> element type, for _rebuild_tensor_v3
_TORCH_DTYPES = {
    "float64": "f8", "float32": "f4", "float16": "f2", "bfloat16": "bfloat16", "float8_e4m3fn": "float8_e4m3fn",
    "float8_e5m2": "float8_e5m2", "int64": "i8", "int32": "i4", "int16": "i2", "int8": "i1", "uint8": "u1",
    "uint16": "u2", "uint32": "u4", "uint64": "u8", "bool": "b1", "complex128": "c16", "complex64": "c8",
}


@dataclass(frozen=True, slots=True)  # slots: pickle's BUILD cannot reach the fields
class _StorageType:
    """Stand-in for a class like ``torch.FloatStorage``: only its element type is used."""

    name: str
    dtype: str


@dataclass(frozen=True, slots=True)  # slots: pickle's BUILD cannot reach the fields
class _Storage:
    """One ``data/<key>`` record of the archive: ``numel`` elements of ``dtype``, not read yet."""

    key: str
    dtype: str
    numel: int


@dataclass(frozen=True, slots=True)  # slots: pickle's BUILD cannot reach the fields
class StoredTensor:
    """A tensor of the checkpoint: a strided view of one storage record, read on demand."""

    storage: _Storage
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]
    _reader: "_ArchiveReader"

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def dtype(self) -> np.dtype:
        return decoded_dtype(self.storage.dtype) if self.storage.dtype in RAW_DTYPES else np.dtype(self.storage.dtype)

    def numpy(self) -> np.ndarray:
        """The tensor's values as a new C-ordered array (bfloat16 and FP8 decoded exactly from their bits)."""
        if not _in_bounds(self.storage, self.offset, self.shape, self.stride):  # checked at rebuild; as_strided trusts it
            raise InputError(f"{self._reader.path}: a tensor reaches past its storage")
        flat = self._reader.storage_array(self.storage)
        item = flat.itemsize
        view = np.lib.stride_tricks.as_strided(
            flat[self.offset :], shape=self.shape, strides=[s * item for s in self.stride], writeable=False
        )  # in bounds: checked in _rebuild_tensor
        return np.array(view, order="C")


class _OrderedDict(dict):
    """Stand-in for ``collections.OrderedDict``; a plain dict keeps insertion order, and BUILD may set ``_metadata``."""


def _refuse(what: str):
    raise pickle.UnpicklingError(what)


class _ArchiveReader:
    """The zip archive of one checkpoint: its pickle, its byte order, and its storage records."""

    def __init__(self, path: Path, archive: zipfile.ZipFile):
        self.path = path
        self.archive = archive
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1] or [n for n in names if n == "data.pkl"]
        if len(pickles) != 1:
            if any(n.endswith("constants.pkl") for n in names):
                raise InputError(f"{path}: a TorchScript archive (torch.jit.save); save the model's state_dict with torch.save instead")
            raise InputError(f"{path}: a zip file, but not a torch.save checkpoint (no single <name>/data.pkl)")
        self.prefix = pickles[0][: -len("data.pkl")]
        order = self._small_record("byteorder")
        if order not in (None, b"little", b"big"):
            raise InputError(f"{path}: unknown byte order {order[:20]!r}")
        self.byteorder = "<" if order in (None, b"little") else ">"  # files older than the record are little-endian

    def _small_record(self, name: str) -> bytes | None:
        try:
            info = self.archive.getinfo(self.prefix + name)
        except KeyError:
            return None
        return self.archive.read(info)[:64] if info.file_size <= 64 else b"?"

    def load_pickle(self):
        info = self.archive.getinfo(self.prefix + "data.pkl")
        if info.file_size > _MAX_PICKLE_BYTES:
            raise InputError(f"{self.path}: data.pkl of {info.file_size} bytes, more than a state_dict's names and shapes need")
        data = self.archive.read(info)
        try:
            return _RestrictedUnpickler(io.BytesIO(data), self).load()
        except InputError:
            raise
        except Exception as exc:  # a hostile or damaged pickle may raise anything; it is one line, never a traceback
            raise InputError(f"{self.path}: refused: {exc}") from None

    def record(self, key: str) -> zipfile.ZipInfo:
        try:
            return self.archive.getinfo(f"{self.prefix}data/{key}")
        except KeyError:
            raise pickle.UnpicklingError(f"storage record data/{key} is missing") from None

    def storage_array(self, storage: _Storage) -> np.ndarray:
        """All elements of one storage record, in native byte order."""
        info = self.record(storage.key)
        raw_dtype = _raw_dtype(storage.dtype)
        dtype = raw_dtype.newbyteorder(self.byteorder) if raw_dtype.itemsize > 1 else raw_dtype
        try:
            with self.archive.open(info) as f:
                data = f.read(storage.numel * dtype.itemsize)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise InputError(f"{self.path}: storage record data/{storage.key} is unreadable ({exc})") from None
        if len(data) != storage.numel * dtype.itemsize:
            raise InputError(f"{self.path}: storage record data/{storage.key} is truncated")
        flat = np.frombuffer(data, dtype=dtype).astype(dtype.newbyteorder("="), copy=False)
        return decode(flat, storage.dtype) if storage.dtype in RAW_DTYPES else flat


class _RestrictedUnpickler(pickle.Unpickler):
    """Builds only what the allow-list names; everything else stops the load with the global's name."""

    def __init__(self, file, reader: _ArchiveReader):
        super().__init__(file)
        self.reader = reader
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str):
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor(self.reader)
        if (module, name) == ("torch._utils", "_rebuild_tensor_v3"):
            return _rebuild_tensor_v3(self.reader)
        if (module, name) == ("torch.storage", "UntypedStorage"):
            return _StorageType(name, "u1")
        if module == "torch" and name in _TORCH_DTYPES:
            return _TorchDtype(name)
        allowed = _ALLOWED.get((module, name))
        if allowed is not None:
            return allowed
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name, _STORAGE_DTYPES[name])
        hint = " (a whole pickled model; save model.state_dict() instead)" if module.startswith(("torch.nn.", "__main__")) else ""
        _refuse(f"global {module}.{name} is not on the allow-list of tensors, storages and dicts{hint}")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            _refuse(f"unexpected persistent id {str(pid)[:60]}")
        _, storage_type, key, _location, numel = pid
        if not isinstance(storage_type, _StorageType):
            _refuse(f"storage of unknown type {str(storage_type)[:60]}")
        if not isinstance(key, str) or not isinstance(numel, int) or numel < 0:
            _refuse("malformed storage reference")
        item = _raw_dtype(storage_type.dtype).itemsize
        info = self.reader.record(key)
        if info.compress_type != zipfile.ZIP_STORED:
            _refuse(f"storage record data/{key} is compressed; torch.save stores records uncompressed")
        if info.file_size < numel * item:
            _refuse(f"storage record data/{key} holds {info.file_size} bytes, fewer than its {numel} elements need")
        storage = _Storage(key, storage_type.dtype, numel)
        if self.storages.setdefault(key, storage) != storage:
            _refuse(f"storage record data/{key} is referenced with two types or sizes")
        return storage


def _rebuild_tensor(reader: _ArchiveReader):
    def rebuild(storage, offset, shape, stride, requires_grad=False, backward_hooks=None, metadata=None):
        """Stand-in for torch._utils._rebuild_tensor_v2: a bounds-checked view, nothing read."""
        if not isinstance(storage, _Storage):
            _refuse("a tensor without a storage")
        shape, stride = _int_tuple(shape, "shape"), _int_tuple(stride, "stride")
        if not isinstance(offset, int) or offset < 0 or len(shape) != len(stride) or len(shape) > _MAX_DIMS:
            _refuse(f"malformed tensor (offset {offset!r}, shape {shape}, stride {stride})")
        if not _in_bounds(storage, offset, shape, stride):
            _refuse(f"tensor of shape {shape}, stride {stride} at offset {offset} reaches past its storage of {storage.numel} elements")
        if math.prod(shape) > storage.numel:  # stride-0 views: reading would allocate far more than the file holds
            _refuse(f"tensor of shape {shape} has more elements than its storage of {storage.numel} (an expanded view)")
        return StoredTensor(storage, offset, shape, stride, reader)

    return rebuild


@dataclass(frozen=True, slots=True)  # slots: pickle's BUILD cannot reach the fields
class _TorchDtype:
    """Stand-in for a dtype like ``torch.float8_e4m3fn``: only its name is used."""

    name: str


def _rebuild_tensor_v3(reader: _ArchiveReader):
    rebuild_v2 = _rebuild_tensor(reader)

    def rebuild(storage, offset, shape, stride, requires_grad=False, backward_hooks=None, dtype=None, metadata=None):
        """Stand-in for torch._utils._rebuild_tensor_v3: the bytes of an UntypedStorage read as ``dtype``."""
        if not isinstance(storage, _Storage) or storage.dtype != "u1" or not isinstance(dtype, _TorchDtype):
            _refuse("a tensor without an untyped storage and a dtype")
        code = _TORCH_DTYPES[dtype.name]
        item = _raw_dtype(code).itemsize
        if storage.numel % item:
            _refuse(f"storage record data/{storage.key} of {storage.numel} bytes is not a whole number of {dtype.name} elements")
        return rebuild_v2(_Storage(storage.key, code, storage.numel // item), offset, shape, stride)

    return rebuild


def _raw_dtype(code: str) -> np.dtype:
    """How an element type's bytes are read: its numpy dtype, or the unsigned integer holding its bits."""
    return RAW_DTYPES[code] if code in RAW_DTYPES else np.dtype(code)


def _in_bounds(storage: _Storage, offset: int, shape: tuple, stride: tuple) -> bool:
    """Whether every element of the strided view lies inside the storage (an empty tensor always does)."""
    return math.prod(shape) == 0 or offset + sum((n - 1) * s for n, s in zip(shape, stride)) < storage.numel


def _int_tuple(values, what: str) -> tuple[int, ...]:
    if not isinstance(values, tuple) or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values):
        _refuse(f"malformed tensor {what} {str(values)[:60]}")
    return values


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, state=None):
    """Stand-in for torch._utils._rebuild_parameter(_with_state): a parameter is its tensor."""
    if not isinstance(data, StoredTensor):
        _refuse("a parameter without a tensor")
    return data


# torch._utils._rebuild_tensor_v2 is allowed too: find_class binds it to the archive being read
_ALLOWED = {
    ("collections", "OrderedDict"): _OrderedDict,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
}


# ---- the state dict inside ------------------------------------------------------------------------


def _tensors(obj) -> Iterator[tuple[str, StoredTensor]]:
    if isinstance(obj, dict):
        for name, value in obj.items():
            if isinstance(name, str) and isinstance(value, StoredTensor):
                yield name, value


def _state_dict(path: Path, top, key: str | None) -> list[tuple[str, StoredTensor]]:
    if not isinstance(top, dict):
        raise InputError(f"{path}: holds a {type(top).__name__}, not a state_dict or a dict holding one")
    if key is not None:
        if key not in top:
            raise InputError(f"{path}: no entry {key!r} (entries: {_entries(top)})")
        found = list(_tensors(top[key]))
        if not found:
            raise InputError(f"{path}: entry {key!r} is not a state_dict (no names mapped to tensors)")
        return found
    # a state_dict's values are tensors, never dicts: an entry like "model" holding tensors is a checkpoint's
    for candidate in STATE_DICT_KEYS:
        found = list(_tensors(top.get(candidate)))
        if found:
            return found
    found = list(_tensors(top))
    if found:
        return found
    raise InputError(f"{path}: no state_dict found (entries: {_entries(top)}); name the one holding the weights with `key`")


def _entries(top: dict) -> str:
    names = [repr(k) for k in top][:12]
    return ", ".join(names) + (", ..." if len(top) > 12 else "") if names else "none"


def read_state_dict(path: str | Path, key: str | None = None) -> list[tuple[str, StoredTensor]]:
    """``(name, StoredTensor)`` of a checkpoint's state_dict in file order; ``key`` names its entry in a checkpoint dict.

    Without ``key``: its first entry in STATE_DICT_KEYS that maps names to tensors, else the
    file itself if it does. The archive stays open for `StoredTensor.numpy` until the
    tensors are dropped.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as f:
            head = f.read(len(_LEGACY_MAGIC))
        if head == _LEGACY_MAGIC:
            raise InputError(f"{path}: a legacy torch.save file (PyTorch < 1.6 or _use_new_zipfile_serialization=False); {_RESAVE}")
        raise InputError(f"{path}: not a PyTorch checkpoint (torch.save writes a zip archive)")
    try:
        archive = zipfile.ZipFile(path)
        reader = _ArchiveReader(path, archive)
        return _state_dict(path, reader.load_pickle(), key)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise InputError(f"{path}: not a readable PyTorch checkpoint ({exc})") from None
