"""Readers that turn topology files into lists of layer masks; nothing here knows zarr or dask.

Layout read here (SET): a directory holding ``weight_l0.npz ... weight_lK.npz``, each written by
``scipy.sparse.save_npz`` (or ``numpy.savez`` of one 2-D array), ``n_in (+1) x n_out``; SET keeps
the bias as the last row, which is dropped unless ``keep_last_row``. Non-zero means connected.

Single-file networks: an ``.npz`` of dense arrays or a ``.safetensors`` file; its 2-D arrays are the
layers in natural order of their keys (digit runs compare as numbers: ``fc2 < fc10``, ``arr_9 <
arr_10``), 0-D and 1-D arrays (biases, counters) are skipped, and layers are returned as stored (no
transpose, no row dropped). An ``.npz`` written by ``scipy.sparse.save_npz`` is a one-layer network.
"""

from __future__ import annotations

import json
import os
import re
import stat
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from ..budget import byte_size, check_bytes, check_layer_shape
from ..errors import InputError
from ..labels import natural_key
from ..kernel.masks import has_nonfinite, to_mask
from .float_bits import RAW_DTYPES, decode

__all__ = [
    "load_set_network", "drop_last_row", "set_layer_files", "set_layer_name", "is_set_layer_file", "read_npz_matrix",
    "read_file_layers", "load_file_network", "NETWORK_FILE_SUFFIXES", "is_export", "EXPORT_MARKER",
]

_LAYER_FILE = re.compile(r"^weight_l(\d+)\.npz$")  # the SET layout's one file name pattern: set_layer_name(k)
NETWORK_FILE_SUFFIXES = (".npz", ".safetensors")
# what a damaged npz raises: a bad zip directory, a bad CRC, a broken deflate stream, a truncated member
_NPZ_ERRORS = (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError, zlib.error)
_SPARSE_NPZ_KEYS = {"format", "shape", "data"}  # scipy.sparse.save_npz
_SPARSE_FORMATS = ("csr", "csc", "bsr", "coo", "dia")  # the formats scipy.sparse.load_npz reads
# `nnstd-dist export` writes this array into every .npz it makes, so that ingest can tell it from a network.
EXPORT_MARKER = "nnstd_dist_export"
_EXPORT_KEYS = {"distance", "names"}  # exports written before the marker existed
# safetensors dtypes numpy has none for, read from their bits (float_bits); F16 numpy reads itself
_SAFETENSORS_BITS = {"BF16": "bfloat16", "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2"}


def set_layer_name(k: int) -> str:
    """The file name of layer k in a SET directory: ``weight_l{k}.npz``."""
    return f"weight_l{k}.npz"


def is_set_layer_file(name: str) -> bool:
    """Whether a file name is one layer of a SET directory."""
    return _LAYER_FILE.match(name) is not None


def set_layer_files(directory: str | Path) -> list[Path]:
    """The ``weight_lK.npz`` files of a SET directory in layer order; K must run 0, 1, ... with no gap."""
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(f"{directory}: not a directory")
    found = {}
    try:
        entries = sorted(directory.iterdir())
    except OSError as exc:
        raise InputError(f"{directory}: cannot list ({exc.strerror or exc})") from None
    for path in entries:
        m = _LAYER_FILE.match(path.name)
        if m:
            found[int(m.group(1))] = path
    if not found:
        raise InputError(f"{directory}: no weight_l*.npz files")
    missing = [k for k in range(max(found) + 1) if k not in found]
    if missing:
        raise InputError(f"{directory}: missing {set_layer_name(missing[0])} (layers found: {sorted(found)})")
    return [found[k] for k in sorted(found)]


def read_npz_matrix(path: str | Path):
    """One 2-D matrix from an npz: a scipy sparse matrix (save_npz) or a single dense array (savez)."""
    path = Path(path)
    arrays = _read_npz_arrays(path)
    if len(arrays) != 1:
        raise InputError(f"{path}: expected one sparse matrix or one array, found arrays {[key for key, _ in arrays]}")
    matrix = arrays[0][1]
    if matrix.ndim != 2:
        raise InputError(f"{path}: expected a 2-D matrix, got shape {matrix.shape}")
    return _checked_layer(path, "", matrix)


def load_set_network(path: str | Path, keep_last_row: bool = False) -> list[sp.csr_matrix]:
    """Layer masks (CSR bool, ``n_in x n_out``) of a SET directory, bias row dropped by default."""
    masks = []
    for file in set_layer_files(path):
        matrix = read_npz_matrix(file)
        if sp.issparse(matrix):
            matrix = sp.csr_matrix(matrix)  # save_npz may have written coo, dia or bsr: no row slicing there
        if not keep_last_row:
            matrix = drop_last_row(matrix, str(file))
        masks.append(to_mask(matrix))
    return masks


def drop_last_row(matrix, where: str):
    """``matrix`` (a layer, ``n_in x n_out``) without its last row, SET's bias; an InputError naming ``where`` if nothing is left."""
    if matrix.shape[0] < 2:
        raise InputError(f"{where}: {matrix.shape[0]} row(s), nothing left once the last (bias) row is dropped")
    return matrix[:-1]


# ---- single-file networks -------------------------------------------------------------------------


def is_export(path: str | Path) -> bool:
    """Whether an .npz is a distance matrix written by `nnstd-dist export` (its marker, or distance + names), not a network."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return False  # a FIFO or device: refused when read as a network, never opened here
        with zipfile.ZipFile(path) as archive:  # the member names only: nothing is loaded
            keys = {name.removesuffix(".npy") for name in archive.namelist()}
    except (OSError, zipfile.BadZipFile):
        return False
    return EXPORT_MARKER in keys or _EXPORT_KEYS <= keys


def read_file_layers(path: str | Path, convolutions: bool = False) -> list[tuple[str, object]]:
    """``(key, 2-D matrix)`` of a single-file network (.npz or .safetensors) in natural key order, 0-D/1-D arrays skipped.

    ``convolutions``: arrays of more than two dimensions (conv weights) are returned too, not refused.
    """
    path = Path(path)
    regular_file(path)
    if path.suffix == ".npz":
        arrays = _read_npz_arrays(path)
    elif path.suffix == ".safetensors":
        arrays = _read_safetensors_arrays(path)
    else:
        raise InputError(f"{path}: not a network file (expected {' or '.join(NETWORK_FILE_SUFFIXES)})")
    layers = [(key, _checked_layer(path, key, a, convolutions)) for key, a in arrays if sp.issparse(a) or np.ndim(a) >= 2]
    if not layers:
        raise InputError(f"{path}: no 2-D arrays (found {len(arrays)} array(s), none 2-D)")
    return layers


def load_file_network(path: str | Path) -> list[sp.csr_matrix]:
    """Layer masks (CSR bool) of a single-file network, as stored: no transpose, no row dropped."""
    return [to_mask(m) for _, m in read_file_layers(path)]


def regular_file(path: Path) -> None:
    """Refuse anything but a regular file (a FIFO would block forever, a device never end) before opening it."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except OSError as exc:  # a symlink loop, a path through a file, no permission
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(mode):
        kind = "a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "a device or socket"
        raise InputError(f"{path}: {kind}, not a regular file")


def _check_npz_members(path: Path) -> None:
    """Every member's declared sizes against the budget, before numpy allocates anything.

    A member's .npy header declares shape and dtype: its bytes must fit the budget and the member
    (a header larger than its data is a lie); the zip entry's uncompressed size bounds decompression.
    """
    with zipfile.ZipFile(path) as zf:
        total = sum(info.file_size for info in zf.infolist())
        check_bytes(str(path), "decompressing it", total)
        for info in zf.infolist():
            if not info.filename.endswith(".npy"):
                continue
            with zf.open(info) as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(f)
                else:
                    shape, _, dtype = np.lib.format.read_array_header_2_0(f)
                header = f.tell()
            where = f"{path}: array {info.filename[:-4]!r}"
            if dtype.hasobject:
                raise InputError(f"{path}: not a readable npz file (array {info.filename[:-4]!r} holds Python objects: pickle, never loaded)")
            nbytes = dtype.itemsize
            for size in shape:
                nbytes *= int(size)
            check_bytes(where, f"shape {tuple(shape)} of {dtype}", nbytes)
            if nbytes > info.file_size - header:
                raise InputError(f"{where}: its header declares {byte_size(nbytes)} but the file holds {byte_size(info.file_size - header)}")


def _read_npz_arrays(path: Path) -> list[tuple[str, object]]:
    regular_file(path)
    _check_npz_magic(path)
    try:
        _check_npz_members(path)
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise InputError(f"{path}: a single .npy array, not an npz archive")
        with loaded as npz:
            if _SPARSE_NPZ_KEYS <= set(npz.files):
                return [("", _load_sparse(path, npz))]
            return [(key, npz[key]) for key in sorted(npz.files, key=natural_key)]
    except InputError:
        raise
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except ValueError as exc:
        if "pickled" in str(exc):  # numpy's advice to load it unsafely is not ours to give
            raise InputError(f"{path}: not a readable npz file (it holds object arrays, pickled Python objects, which are never loaded)") from None
        raise InputError(f"{path}: not a readable npz file ({exc})") from None
    except _NPZ_ERRORS as exc:
        raise InputError(f"{path}: not a readable npz file ({exc})") from None


def _check_npz_magic(path: Path) -> None:
    """An npz is a zip archive: anything else (a text file, a pickle) is named for what it is, before numpy guesses."""
    try:
        with open(path, "rb") as f:
            head = f.read(6)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if head.startswith(b"\x93NUMPY"):
        raise InputError(f"{path}: a single .npy array, not an npz archive")
    if not head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        kind = "an empty file" if not head else "a pickle" if head[:1] == b"\x80" else "not a zip archive"
        raise InputError(f"{path}: not an npz file ({kind}; numpy.savez and scipy.sparse.save_npz write zip archives)")


def _load_sparse(path: Path, npz) -> object:
    """A save_npz matrix whose declared shape fits the budget and whose every index is inside it."""
    shape = npz["shape"]
    if shape.shape != (2,) or not np.issubdtype(shape.dtype, np.integer):
        raise InputError(f"{path}: a sparse matrix whose 'shape' entry is {shape.tolist()!r}, not two integers")
    check_layer_shape(str(path), shape.tolist())
    fmt = npz["format"]
    fmt = fmt.item() if fmt.shape == () and fmt.dtype.kind in "SU" else None
    fmt = fmt.decode("ascii", "replace") if isinstance(fmt, bytes) else fmt
    if fmt not in _SPARSE_FORMATS:
        raise InputError(f"{path}: a sparse matrix of format {str(fmt or npz['format'].tolist())[:40]!r}; scipy.sparse.save_npz writes {', '.join(_SPARSE_FORMATS)}")
    matrix = sp.load_npz(path)  # coo checks its indices here; csr, csc and bsr only their lengths
    if hasattr(matrix, "indptr"):
        matrix.check_format(full_check=True)  # indices inside the shape, indptr monotonic
    return matrix


def _safetensors_header(path: Path) -> dict:
    """The JSON header of a .safetensors file, its declared sizes checked before any tensor is read."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise InputError(f"{path}: not a readable safetensors file (shorter than its 8-byte header length)")
        (n,) = struct.unpack("<Q", head)
        if n > size - 8:
            raise InputError(f"{path}: not a readable safetensors file (header of {n} bytes in a file of {size})")
        try:
            header = json.loads(f.read(n))
        except (ValueError, UnicodeDecodeError):
            raise InputError(f"{path}: not a readable safetensors file (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise InputError(f"{path}: not a readable safetensors file (its header is not a JSON object)")
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        shape = entry.get("shape") if isinstance(entry, dict) else None
        if not isinstance(shape, list) or not all(isinstance(s, int) and s >= 0 for s in shape):
            raise InputError(f"{path}: tensor {key!r} has no valid shape ({shape!r})")
        if len(shape) >= 2:
            check_layer_shape(f"{path}: tensor {key!r}", (shape[0], int(np.prod(shape[1:], dtype=object))))
    return header


def _read_safetensors_arrays(path: Path) -> list[tuple[str, object]]:
    try:
        from safetensors import safe_open
    except ImportError:
        raise InputError(f"{path}: reading .safetensors needs the safetensors package (pip install safetensors)") from None
    regular_file(path)
    header = _safetensors_header(path)
    arrays = []
    try:
        with safe_open(str(path), framework="numpy") as f:
            for key in sorted(f.keys(), key=natural_key):
                tensor = f.get_slice(key)
                if len(tensor.get_shape()) < 2:
                    arrays.append((key, np.empty(0)))  # a bias or a counter: skipped by the caller, never loaded
                    continue
                dtype = tensor.get_dtype()
                if dtype in _SAFETENSORS_BITS:
                    arrays.append((key, _tensor_from_bits(path, header[key], _SAFETENSORS_BITS[dtype])))
                elif dtype.startswith(("F8_", "F6_", "F4")):
                    raise InputError(f"{path}: tensor {key!r} is {dtype}, not read (of the small floats F16, BF16, F8_E4M3 and F8_E5M2 are); save it as one of those")
                else:
                    arrays.append((key, f.get_tensor(key)))
    except InputError:
        raise
    except Exception as exc:  # safetensors raises its own SafetensorError, and OSError for a bad file
        raise InputError(f"{path}: not a readable safetensors file ({exc})") from None
    return arrays


def _tensor_from_bits(path: Path, entry: dict, fmt: str) -> np.ndarray:
    """A tensor of a float format numpy has no dtype for, its little-endian bits read from the file and decoded exactly."""
    raw = RAW_DTYPES[fmt].newbyteorder("<")
    begin, end = entry["data_offsets"]  # checked by safe_open: inside the data, one after another
    if end - begin != int(np.prod(entry["shape"], dtype=np.int64)) * raw.itemsize:
        raise InputError(f"{path}: tensor {entry['shape']} of {fmt} does not fill its {end - begin} bytes")
    with open(path, "rb") as f:
        (header_bytes,) = struct.unpack("<Q", f.read(8))
        f.seek(8 + header_bytes + begin)
        data = f.read(end - begin)
    if len(data) != end - begin:
        raise InputError(f"{path}: truncated ({len(data)} of a tensor's {end - begin} bytes)")
    return decode(np.frombuffer(data, raw).astype(raw.newbyteorder("=")), fmt).reshape(entry["shape"])


def _checked_layer(path: Path, key: str, matrix, convolutions: bool = False):
    """A layer that is 2-D (or more with ``convolutions``), numeric and finite, or an InputError naming the file and key."""
    where = f"{path}: array {key!r}" if key else f"{path}"
    if convolutions and matrix.ndim > 2 and not sp.issparse(matrix):
        return _checked_layer(path, key, matrix.reshape(matrix.shape[0], -1)).reshape(matrix.shape)
    if matrix.ndim != 2:
        raise InputError(f"{where} has shape {matrix.shape}; layers must be 2-D (0-D and 1-D arrays are skipped)")
    check_layer_shape(where, matrix.shape)
    data = matrix.data if sp.issparse(matrix) else matrix
    if data.dtype != bool and not np.issubdtype(data.dtype, np.number):
        raise InputError(f"{where}: expected numbers, got dtype {data.dtype}")
    if has_nonfinite(data):
        raise InputError(f"{where}: contains NaN or infinite weights")
    return matrix
