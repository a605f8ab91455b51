"""Sources -> networks: SET folders and .npz/.safetensors files under each SOURCE, read as ``(NetworkRecord, masks)``.

Discovery rules (the store knows nothing of them; `nnstd-dist ingest --help` repeats them):

- A directory holding ``weight_lK.npz`` files is one SET network; a SOURCE that is such a directory
  is named by its own folder name, one found below a SOURCE by its path relative to it
  (``e5_s0_w0/epoch_000``). Other files inside a SET folder are ignored.
- Any other ``.npz``, ``.safetensors``, ``.pt`` or ``.pth`` file is one network named by its path
  relative to the SOURCE without the suffix (a SOURCE that is a file: its stem). A ``.pt``/``.pth``
  is a PyTorch checkpoint (see torch_checkpoint and param_layers for which parameters are layers).
- Hidden entries and zarr stores (folders holding ``zarr.json``) are not searched; symlinked
  folders are, each real folder once. Distance matrices written by `nnstd-dist export` are skipped
  (and reported), as is every file or folder whose name or path relative to SOURCE matches an
  ``exclude`` glob.
- Networks are returned in natural order of name (``epoch_2`` before ``epoch_10``); names are unique.
- Unless the user's own naming says otherwise (naming.py: ``--layout``, ``--metadata``), the deepest ``epoch_NNN`` part of a name is the epoch; the parts above it are the run (if there
  are none, the name of the folder above on disk); ``testacc.txt`` in that run folder gives the
  accuracy at epoch e on line e + 1 (NaN if the file or the line is missing): the line's one number,
  or the middle of three (the SET code's metrics file, ``np.savetxt`` of train loss, test accuracy
  and test loss per epoch).

Orientation and last rows: layers are ``n_in x n_out`` (in-out). ``orientation="auto"`` reads
.safetensors and .pt/.pth as PyTorch's ``out x in`` (convolutions ``out x in x kernel``) and
transposes it, everything else as in-out (convolutions ``kernel x in x out``). A file holding
arrays of more than two dimensions is read as convolutions (see param_layers). The last row
(after orienting) is SET's bias: dropped for SET folders, kept for single files, unless
``keep_last_row`` says otherwise for all sources.
"""

from __future__ import annotations

import fnmatch
import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import scipy.sparse as sp

from ..errors import InputError, ShapeMismatchError
from .formats import NETWORK_FILE_SUFFIXES as _ARRAY_FILE_SUFFIXES
from .formats import drop_last_row, is_set_layer_file, load_set_network, read_file_layers, regular_file
from ..labels import natural_key
from ..kernel.masks import chain_break, describe_shapes, to_mask
from .param_layers import LayerSpec, ParamFilter, select_weights, weights_to_layers
from .formats import is_export
from ..records import NetworkRecord, mask_digest
from .naming import MAX_EPOCH, Naming
from .torch_checkpoint import TORCH_SUFFIXES, read_state_dict

__all__ = ["ORIENTATIONS", "Source", "Discovery", "discover", "find_networks", "read_network", "read_networks"]

ORIENTATIONS = ("auto", "in-out", "out-in")
ACCURACY_FILE = "testacc.txt"
_EPOCH_PART = re.compile(r"^epoch_(\d+)$")
NETWORK_FILE_SUFFIXES = _ARRAY_FILE_SUFFIXES + TORCH_SUFFIXES
MAX_ACCURACY_BYTES = 64 * 2**20  # one number per line: far more epochs than any run has
# values on a testacc.txt line -> which is the test accuracy: one accuracy per line, or the SET code's
# metrics (np.savetxt of train loss, test accuracy, test loss per epoch)
_ACCURACY_COLUMN = {1: 0, 3: 1}


@dataclass(frozen=True)
class Source:
    """One network found on disk: a SET folder (``kind="set"``) or a single file (``kind="file"``)."""

    name: str
    path: Path
    kind: str


@dataclass(frozen=True)
class Discovery:
    """The networks found, and the files passed over because they are the project's own exports."""

    networks: list[Source]
    exports: list[Path]


def discover(sources: Iterable[str | Path], exclude: Iterable[str] = ()) -> list[Source]:
    """Every network under the given paths, in natural order of name; a name found twice is an error."""
    return find_networks(sources, exclude).networks


def find_networks(sources: Iterable[str | Path], exclude: Iterable[str] = ()) -> Discovery:
    """As ``discover``, also naming the exports skipped; ``exclude`` globs drop files and folders by name or relative path."""
    exclude = tuple(exclude)
    found: dict[str, Source] = {}
    exports: list[Path] = []
    for given in sources:
        for source in _discover_one(Path(given), exclude, exports):
            if source.name in found:
                raise InputError(
                    f"two networks named {source.name!r}: {found[source.name].path} and {source.path} "
                    "(names are paths relative to each source; give their common parent folder instead)"
                )
            found[source.name] = source
    if not found and exports:
        raise InputError(f"no networks to ingest: {', '.join(map(str, exports[:3]))}{', ...' if len(exports) > 3 else ''} "
                         "are exported distance matrices, not networks")
    return Discovery([found[name] for name in sorted(found, key=natural_key)], exports)


def _excluded(relative: str, exclude: tuple[str, ...]) -> bool:
    name = relative.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatchcase(name, glob) or fnmatch.fnmatchcase(relative, glob) for glob in exclude)


def _discover_one(root: Path, exclude: tuple[str, ...] = (), exports: list[Path] | None = None) -> list[Source]:
    exports = [] if exports is None else exports
    if not root.exists():
        raise InputError(f"{root}: no such file or directory")
    if not root.is_dir():
        regular_file(root)  # a FIFO or device is refused, never opened
    if root.is_file():
        if root.suffix not in NETWORK_FILE_SUFFIXES:
            raise InputError(f"{root}: not a network file ({' or '.join(NETWORK_FILE_SUFFIXES)}) nor a folder")
        if is_set_layer_file(root.name):
            raise InputError(f"{root}: one layer of a SET network; give its folder {root.parent} instead")
        if root.suffix == ".npz" and is_export(root):
            exports.append(root)
            return []
        return [Source(root.stem, root, "file")]
    if _is_set_folder(root):
        return [Source(_absolute(root).name, root, "set")] + _walk(root, exclude, exports, skip_top_files=True)
    n_exports = len(exports)
    found = _walk(root, exclude, exports)
    if not found and len(exports) == n_exports:
        raise InputError(
            f"{root}: no networks found (looked for folders of weight_l0.npz, weight_l1.npz, ... "
            f"and for {' / '.join(NETWORK_FILE_SUFFIXES)} files{', with the exclusions given' if exclude else ''})"
        )
    return found


def _walk(root: Path, exclude: tuple[str, ...] = (), exports: list[Path] | None = None, skip_top_files: bool = False) -> list[Source]:
    """SET folders and network files below ``root`` (``root`` itself only for its files)."""
    found, seen = [], set()

    def unreadable(exc: OSError):  # os.walk skips what it cannot list: that would lose networks silently
        raise InputError(f"{exc.filename}: cannot list ({exc.strerror or exc})")

    for folder, dirs, files in os.walk(root, followlinks=True, onerror=unreadable):
        here, real = Path(folder), os.path.realpath(folder)
        if real in seen:  # a symlink back up the tree, or a second link to one folder
            dirs[:] = []
            continue
        seen.add(real)
        # sorted for a deterministic walk; hidden folders and zarr stores hold no networks
        dirs[:] = sorted(
            d for d in dirs
            if not d.startswith(".") and not (here / d / "zarr.json").exists() and not _excluded((here / d).relative_to(root).as_posix(), exclude)
        )
        if here != root and _is_set_folder(here):
            found.append(Source(here.relative_to(root).as_posix(), here, "set"))
            continue  # the folder's other files belong to it
        if here == root and skip_top_files:
            continue
        for name in sorted(files):
            path = here / name
            if path.suffix not in NETWORK_FILE_SUFFIXES or name.startswith(".") or _excluded(path.relative_to(root).as_posix(), exclude):
                continue
            if path.suffix == ".npz" and is_export(path):
                if exports is not None:
                    exports.append(path)
                continue
            found.append(Source(path.relative_to(root).with_suffix("").as_posix(), path, "file"))
    return found


def _is_set_folder(folder: Path) -> bool:
    """Whether ``folder`` holds a weight_lK.npz entry (a non-regular one is refused when read, not skipped)."""
    try:
        with os.scandir(folder) as entries:
            return any(is_set_layer_file(entry.name) and not entry.is_dir() for entry in entries)
    except OSError as exc:
        raise InputError(f"{folder}: cannot list ({exc.strerror or exc})") from None


def read_networks(
    sources: Iterable[Source], orientation: str = "auto", keep_last_row: bool | None = None,
    params: ParamFilter = ParamFilter(), naming: Naming | None = None,
) -> list[tuple[NetworkRecord, list[sp.csr_matrix]]]:
    """Read every source (iterate a progress bar over them if you like); all must have the same layer shapes.

    ``naming``: runs, epochs and accuracies the user gave (a layout, a metadata table; see naming.py)."""
    accuracies: dict[Path, list[str] | None] = {}
    networks, first, seen = [], None, []
    for source in sources:
        seen.append(source)
        record, masks = read_network(source, orientation, keep_last_row, accuracies, params, naming)
        shapes = [m.shape for m in masks]
        if first is None:
            first = (source, shapes)
        elif shapes != first[1]:
            raise ShapeMismatchError(
                f"{source.path}: layer shapes {describe_shapes(shapes)} differ from {describe_shapes(first[1])} of {first[0].path}"
            )
        networks.append((record, masks))
    if naming is not None:
        naming.check_all_used([s.name for s in seen], [s.path for s in seen])
    return networks


def read_network(
    source: Source | str | Path, orientation: str = "auto", keep_last_row: bool | None = None, accuracies: dict | None = None,
    params: ParamFilter = ParamFilter(), naming: Naming | None = None,
) -> tuple[NetworkRecord, list[sp.csr_matrix]]:
    """One source's record (name, run, epoch, accuracy, absolute source path, digest, layers) and CSR bool masks.

    ``source`` is a discovered Source or a path that holds exactly one network (a SET folder or one file).
    """
    if not isinstance(source, Source):
        source = _the_one_network(source)
    if orientation not in ORIENTATIONS:
        raise InputError(f"`orientation` must be one of {', '.join(ORIENTATIONS)}, got {orientation!r}")
    if source.kind == "set":
        masks = load_set_network(source.path, keep_last_row=True)
        layers = [LayerSpec(f"weight_l{k}", m.shape) for k, m in enumerate(masks)]
    elif source.path.suffix in TORCH_SUFFIXES:  # oriented and split into blocks by the reader
        chosen = select_weights(read_state_dict(source.path, params.key), params, str(source.path))
        torch_order = "in-out" if orientation == "in-out" else "out-in"
        masks, layers = weights_to_layers(((name, t.numpy()) for name, t in chosen), torch_order, str(source.path))
    else:
        arrays = [(key, m) for key, m in read_file_layers(source.path, convolutions=True) if params.chooses(key, default=True)]
        if not arrays:
            raise InputError(f"{source.path}: no arrays left after `include_params`/`exclude_params`")
        out_in = orientation == "out-in" or (orientation == "auto" and source.path.suffix == ".safetensors")
        if any(m.ndim > 2 for _, m in arrays):  # convolutions: split into blocks like a checkpoint's weights
            masks, layers = weights_to_layers(arrays, "out-in" if out_in else "in-out", str(source.path))
        else:
            masks = [to_mask(m) for _, m in arrays]
            layers = [LayerSpec(key, m.shape) for key, m in arrays]
            if out_in:
                masks = [m.T.tocsr() for m in masks]
    drop = source.kind == "set" if keep_last_row is None else not keep_last_row
    if drop:
        masks = [drop_last_row(m, f"{source.path}: layer {k}") for k, m in enumerate(masks)]
    _check_chain(source, [m.shape for m in masks], [spec.block for spec in layers])
    run, epoch, accuracy = _run_epoch_accuracy(source, {} if accuracies is None else accuracies)
    if naming is not None and naming.given:
        suffix = source.path.suffix if source.kind == "file" else ""
        run, epoch, accuracy = naming.label(source.name, source.path, suffix, (run, epoch, accuracy))
    record = NetworkRecord(source.name, run, epoch, accuracy, str(_absolute(source.path)), mask_digest(masks), tuple(layers))
    return record, masks


def _the_one_network(path: str | Path) -> Source:
    found = discover([path])
    if len(found) != 1:
        listed = ", ".join(str(s.path) for s in found[:2]) + (", ..." if len(found) > 2 else "")
        raise InputError(f"{path}: holds {len(found)} networks, give one" + (f" ({listed})" if found else ""))
    return found[0]


def _check_chain(source: Source, shapes: list[tuple[int, int]], blocks: list[int]) -> None:
    """Layer k's inputs must be layer k-1's outputs (blocks[k] rows each), or NNSTD's neuron matching cannot carry over."""
    k = chain_break(shapes, blocks)
    if k is not None:
        per = f" ({blocks[k]} rows each)" if blocks[k] > 1 else ""
        raise ShapeMismatchError(
            f"{source.path}: layer {k} has {shapes[k][0]} input rows but layer {k - 1} has {shapes[k - 1][1]} outputs{per} "
            f"(shapes {describe_shapes(shapes)}; check `orientation` and `keep_last_row`)"
        )


def _run_epoch_accuracy(source: Source, accuracies: dict) -> tuple[str, int, float]:
    parts = PurePosixPath(source.name).parts
    for i in reversed(range(len(parts))):
        match = _EPOCH_PART.match(parts[i])
        if match:
            epoch = int(match.group(1))
            if epoch > MAX_EPOCH:
                raise InputError(f"{source.path}: epoch {parts[i][6:][:30]}... is too large (at most {MAX_EPOCH})")
            run_folder = _absolute(source.path).parents[len(parts) - 1 - i]  # the folder holding part i
            run = "/".join(parts[:i]) or run_folder.name
            return run, epoch, _accuracy(run_folder, epoch, accuracies)
    return "", -1, math.nan


def _accuracy(run_folder: Path, epoch: int, cache: dict) -> float:
    """Line epoch + 1 of the run's testacc.txt, NaN when the file or the line is missing."""
    if run_folder not in cache:
        path = run_folder / ACCURACY_FILE
        cache[run_folder] = _accuracy_lines(path) if os.path.lexists(path) else None
    lines = cache[run_folder]
    if lines is None or epoch >= len(lines) or not lines[epoch].strip():
        return math.nan
    values = lines[epoch].replace(",", " ").split()
    if len(values) not in _ACCURACY_COLUMN:
        raise InputError(
            f"{run_folder / ACCURACY_FILE}: line {epoch + 1} holds {len(values)} values; read are one accuracy per line, "
            "or three (the SET code's metrics: train loss, test accuracy, test loss)"
        )
    try:
        return float(values[_ACCURACY_COLUMN[len(values)]])
    except ValueError:
        raise InputError(f"{run_folder / ACCURACY_FILE}: line {epoch + 1} is not a number: {lines[epoch].strip()[:40]!r}") from None


def _accuracy_lines(path: Path) -> list[str]:
    """The lines of a testacc.txt: a regular, bounded, UTF-8 text file."""
    regular_file(path)
    try:
        if os.path.getsize(path) > MAX_ACCURACY_BYTES:
            raise InputError(f"{path}: {os.path.getsize(path)} bytes, too large for a file of one accuracy per epoch")
        return Path(path).read_bytes().decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text file (one accuracy per line expected)") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None


def _absolute(path: Path) -> Path:
    """Absolute and normalised, but symlinks kept: names and runs are what the user sees."""
    return Path(os.path.abspath(path))

