"""The store's distance matrix D[k, i, j] = NNSTD_k(network i, network j) (i > j, mirrored) to .npz, .csv, .nc or .zarr.

Every format is written to a temporary name beside the target and renamed into place, so a failed
export never leaves a half-written file. Pairs not computed yet are exported as NaN; a store that compute never
ran on is a StoreError (nothing to export), not a file of NaN.
"""

from __future__ import annotations

import contextlib
import csv
import glob
import json
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..sources.formats import EXPORT_MARKER
from ..tiles import total_pairs
from .reduce import missing_pairs, read_layers, select_indices
from ..store.lock import process_alive
from ..store.topology_store import TopologyStore

__all__ = ["FORMATS", "ExportReport", "export"]

FORMATS = (".npz", ".csv", ".nc", ".zarr")
LABELS = ("run", "epoch", "accuracy")
CSV_LABELS = ("layer", *LABELS)
ABSENT = "a network without a run has run '', without an epoch epoch -1, without an accuracy NaN"  # per-network metadata written beside the names
DESCRIPTION = "NNSTD distances: distance[k, i, j] (i > j) = layer-k NNSTD(network i, network j), mirrored; diagonal 0; NaN = not computed"


@dataclass(frozen=True)
class ExportReport:
    """What was written: where, how many networks and layers, and how many pairs are still NaN."""

    path: Path
    n_networks: int
    layers: list[int]
    missing_pairs: int  # pairs i > j with NaN in any exported layer
    total_pairs: int


def export(
    store_path: str | Path, output: str | Path, layer: int | None = None, selection: dict[str, list[str]] | None = None
) -> ExportReport:
    """Write the store's distances to ``output`` (format from its extension); ``layer`` None = all layers (.csv: 0).

    ``selection`` keeps the networks matching it, as for plots (``reduce.parse_selection``); None keeps all.
    """
    output = Path(output)
    suffix = output.suffix.lower()
    if suffix not in FORMATS:
        raise InputError(f"{output}: unknown export format {suffix or '(no extension)'!r}; use one of {', '.join(FORMATS)}")
    if suffix in (".nc", ".zarr"):
        _require_xarray(output)
    store = TopologyStore.open(store_path)
    if store.is_at(output):
        raise InputError(f"{output}: is the store itself; export to another path")
    _check_replaceable(output)
    if layer is None and suffix == ".csv":
        layer = 0  # a table holds one layer
    computed = store.n_layers if store.max_layer is None else store.max_layer + 1  # compute --max-layer
    layers = list(range(computed)) if layer is None else [int(layer)]
    indices = select_indices(store, selection) if selection else None
    distance = read_layers(store, layers, indices)
    rows = np.arange(store.n_networks) if indices is None else np.asarray(indices)
    labels = {key: store.column(key)[rows] for key in LABELS}
    names = [str(n) for n in store.column("network")[rows]]
    matrix = _Matrix(distance, names, layers, store.address, labels, _uncertified(store, rows))
    writer = {".npz": _write_npz, ".csv": _write_csv, ".nc": _write_netcdf, ".zarr": _write_zarr}[suffix]
    _replace_atomically(output, lambda tmp: writer(tmp, matrix))
    n = len(names)
    return ExportReport(output, n, layers, missing_pairs(store, rows, distance), total_pairs(n))


@dataclass(frozen=True)
class _Matrix:
    distance: np.ndarray  # (layers, N, N)
    names: list[str]
    layers: list[int]
    store: str
    labels: dict[str, np.ndarray]  # run (str, "" = none), epoch (int, -1 = none), accuracy (float, NaN = none) per network
    uncertified: np.ndarray | None = None  # (N, N) bool, fast results only: the pair's tie choices were not all certified

    @property
    def runs(self) -> np.ndarray:
        return np.array([str(r) for r in self.labels["run"]], dtype=str)

    @property
    def epochs(self) -> np.ndarray:
        return np.asarray(self.labels["epoch"], dtype=np.int64)

    @property
    def accuracies(self) -> np.ndarray:
        return np.asarray(self.labels["accuracy"], dtype=np.float64)


def _uncertified(store: TopologyStore, rows: np.ndarray) -> np.ndarray | None:
    """(k, k) bool for the exported networks: the fast solver's pairs not certified (mirrored); None for exact results."""
    if not store.has_results or store.solver != "fast":
        return None
    flags = np.zeros((store.n_networks, store.n_networks), dtype=bool)
    pairs = store.uncertified_pairs()
    flags[pairs[:, 0], pairs[:, 1]] = flags[pairs[:, 1], pairs[:, 0]] = True
    return flags[np.ix_(rows, rows)]


def _require_xarray(output: Path) -> None:
    try:
        import xarray  # noqa: F401
    except ImportError:
        raise InputError(f"{output}: writing {output.suffix} needs xarray (pip install xarray, or pip install -e '.[xarray]' in the nnstd-dist checkout); .npz and .csv need nothing") from None


def _is_our_export(path: Path) -> bool:
    """Whether ``path`` is a .zarr folder this module wrote (its group attributes carry DESCRIPTION)."""
    try:
        meta = json.loads((path / "zarr.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and isinstance(meta.get("attributes"), dict) and meta["attributes"].get("description") == DESCRIPTION


def _check_replaceable(output: Path) -> None:
    """Files are overwritten; a folder only if it is an earlier export: export never deletes what it did not create."""
    if output.is_dir() and not output.is_symlink() and not _is_our_export(output):
        raise InputError(f"{output}: an existing folder that is not an nnstd-dist export; remove it yourself or choose another path")


def _remove_leftovers(output: Path) -> None:
    """Hidden .tmp/.old siblings of ``output`` left by an export that was killed (its process is gone)."""
    for entry in output.parent.glob(f".{glob.escape(output.name)}.*.*"):
        pid, _, kind = entry.name[len(output.name) + 2 :].partition(".")
        if kind in ("tmp", "old") and pid.isdigit() and int(pid) != os.getpid() and not process_alive(int(pid)):
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)



def _replace_atomically(output: Path, write) -> None:
    """Write to a hidden temporary beside ``output``, then rename it over ``output``."""
    _check_replaceable(output)
    tmp = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    try:
        _remove_leftovers(output)
        write(tmp)
        if output.is_dir() and not output.is_symlink():
            # os.replace cannot put a directory over another: move the old one aside first
            old = output.with_name(f".{output.name}.{os.getpid()}.old")
            os.replace(output, old)
            os.replace(tmp, output)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, output)
    except OSError as exc:
        raise InputError(f"{output}: cannot write ({exc.strerror or exc})") from None
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()


def _write_npz(tmp: Path, m: _Matrix) -> None:
    with open(tmp, "wb") as f:  # a file object: np.savez would append .npz to a bare name
        np.savez(
            f, distance=m.distance, names=np.array(m.names, dtype=str), run=m.runs, epoch=m.epochs, accuracy=m.accuracies,
            layer=np.array(m.layers, dtype=np.int64), **{EXPORT_MARKER: np.array(DESCRIPTION)},
            **({} if m.uncertified is None else {"uncertified": m.uncertified}),
        )


def _write_csv(tmp: Path, m: _Matrix) -> None:
    """One row per network: its name, layer, run, epoch and accuracy (fast results: how many of its pairs are uncertified),
    then its distance to every network (a column each)."""
    counts = None if m.uncertified is None else m.uncertified.sum(axis=1)
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["network", *CSV_LABELS, *([] if counts is None else ["uncertified"]), *m.names])
        for p, (name, run, epoch, accuracy, row) in enumerate(zip(m.names, m.runs, m.epochs, m.accuracies, m.distance[0])):
            # repr: the shortest text that reads back exactly; an absent label is an empty cell
            labels = [m.layers[0], run, epoch if epoch >= 0 else "", repr(float(accuracy)) if np.isfinite(accuracy) else ""]
            labels += [] if counts is None else [int(counts[p])]
            out.writerow([name, *labels, *(repr(float(x)) for x in row)])


def _dataset(m: _Matrix):
    """A labelled (layer, network_a, network_b) xarray Dataset; run, epoch and accuracy of both axes as coordinates."""
    import xarray as xr

    labels = np.array(m.names, dtype=object)  # variable-length strings in every format
    coords = {"layer": np.array(m.layers, dtype=np.int64), "network_a": labels, "network_b": labels}
    for axis in ("a", "b"):
        dim = f"network_{axis}"
        coords[f"run_{axis}"] = (dim, m.runs.astype(object))
        coords[f"epoch_{axis}"] = (dim, m.epochs)
        coords[f"accuracy_{axis}"] = (dim, m.accuracies)
    data = xr.DataArray(m.distance, dims=("layer", "network_a", "network_b"), coords=coords, name="distance")
    ds = data.to_dataset()
    if m.uncertified is not None:  # fast results: netCDF has no bool type, so 0/1 bytes
        ds["uncertified"] = (("network_a", "network_b"), m.uncertified.astype(np.int8))
        ds["uncertified"].attrs["description"] = "1: the fast solver broke a tie for this pair that was not proven harmless"
    return ds.assign_attrs(description=DESCRIPTION, store=m.store, absent_labels=ABSENT)


def _write_netcdf(tmp: Path, m: _Matrix) -> None:
    try:
        _dataset(m).to_netcdf(tmp)
    except ValueError as exc:  # no netCDF engine installed
        raise InputError(f"{tmp.name[1:].rsplit('.', 2)[0]}: cannot write netCDF ({exc})") from None


def _write_zarr(tmp: Path, m: _Matrix) -> None:
    ds = _dataset(m)
    with warnings.catch_warnings():
        # consolidated metadata lets xarray.open_zarr open the result in one read; zarr warns it is not in the v3 spec
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
        ds.to_zarr(tmp, mode="w-")
