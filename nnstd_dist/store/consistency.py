"""The group attributes checked against the arrays and the store's rules, before anything trusts them.

A store edited by hand or partly deleted (``shapes`` over masks of another shape, a ``block`` of 0,
``solver`` "bogus", ``max_layer`` -1, the results' folder removed) would otherwise be read
as a valid one: a wrong number, or a KeyError deep in a reader. ``problems`` lists every
contradiction, one line each; ``TopologyStore.open`` refuses a store with any (one error naming the
first), ``verify`` lists them all. Arrays larger than the population are allowed: a killed append
leaves them so, and the next append cuts them back. Part of the store: it reads zarr's metadata.
"""

from __future__ import annotations


import numpy as np
import zarr

from ..kernel import SOLVERS
from ..records import METADATA_COLUMNS
from . import files
from .format import FORMAT, FORMAT_VERSION
from .lock import LOCK_FILE
from .zarr_io import zarr_store

__all__ = ["problems", "problems_at"]


def _count(value, least: int = 0) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def problems(group, storage) -> list[str]:
    """Every contradiction between the group's attributes, its arrays' metadata and the store's rules."""
    attrs = group.attrs.asdict()
    out: list[str] = []
    n, shapes = attrs.get("n_networks"), attrs.get("shapes")
    if not _count(n):
        out.append(f"attribute n_networks is {n!r}, not a count of networks")
        n = 0
    for name in ("generation", "replaced_at"):
        if not _count(attrs.get(name, 0)):
            out.append(f"attribute {name} is {attrs.get(name)!r}, not a count")
    if not (isinstance(shapes, list) and shapes and all(isinstance(s, list) and len(s) == 2 and all(_count(x, 1) for x in s) for s in shapes)):
        return out + [f"attribute shapes is {str(shapes)[:80]}, not a list of [n_in, n_out] pairs of positive integers"]
    arrays = _arrays(group, storage)
    short = {name: a.shape[0] for name, a in arrays.items() if _per_network(name, attrs) and a is not None and a.ndim and a.shape[0] < n}
    if short:
        out.append(f"n_networks is {n} but {', '.join(f'{k} holds {v}' for k, v in short.items())}")
    out += _layer_rules(attrs, shapes)
    out += _population_arrays(arrays, shapes, n)
    if "tile" in attrs:
        out += _results(attrs, len(shapes), storage)
    return out


def problems_at(storage) -> list[str]:
    """``problems`` of the nnstd-dist store in ``storage``; [] if it is no readable nnstd-dist group at all (open says why)."""
    try:
        group = zarr.open_group(zarr_store(storage, "r"), mode="r", zarr_format=3)
        ours = group.attrs.get("format") == FORMAT and group.attrs.get("format_version") == FORMAT_VERSION  # else open's message says why
    except Exception:  # zarr raises several types for a broken group
        return []
    return problems(group, storage) if ours else []


def _per_network(name: str, attrs: dict) -> bool:
    """Arrays whose first axis is the network (distance's first axis is the layer)."""
    return name in (*METADATA_COLUMNS, "connections", "replaced_at") or (name.startswith("mask_l") and name[6:].isdigit())


def _arrays(group, storage) -> dict:
    """name -> array (shape, chunks, dtype) of every array folder in the store; None for an unreadable zarr.json."""
    out = {}
    # On a folder, only folders holding a zarr.json; on an object store every listed name (one request less per array):
    # zarr finds no array at a name that is none (the lock, zarr.json), and no rule asks for such a name.
    listed = [n for n in storage.names("") if n not in ("distances", "zarr.json", LOCK_FILE)]
    for name in sorted(n for n in listed if not storage.is_local or _is_file(storage, f"{n}/zarr.json")):
        try:
            out[name] = group[name]
        except Exception:  # zarr raises several types for a broken zarr.json
            out[name] = None
    return out


def _layer_rules(attrs: dict, shapes: list) -> list[str]:
    """``layers``: one entry per layer, blocks that divide its rows and chain it to the previous layer's outputs."""
    layers = attrs.get("layers")
    if layers is None:
        layers = [{"block": 1}] * len(shapes)  # stores written before convolutions: fully connected
    elif not isinstance(layers, list) or len(layers) != len(shapes) or not all(isinstance(x, dict) for x in layers):
        return [f"attribute layers does not describe the {len(shapes)} layers of attribute shapes"]
    out = []
    for k, ((n_in, n_out), layer) in enumerate(zip(shapes, layers)):
        block = layer.get("block")
        if not _count(block, 1) or n_in % block:
            out.append(f"layer {k}: attribute block {block!r} is not a positive divisor of its {n_in} rows")
        elif k and n_in != shapes[k - 1][1] * block:
            out.append(f"layer {k}: {n_in} rows are not {block} per output of layer {k - 1} ({shapes[k - 1][1]} outputs)")
    return out


def _population_arrays(arrays: dict, shapes: list, n: int) -> list[str]:
    out = []
    for k, (n_in, n_out) in enumerate(shapes):
        mask = arrays.get(f"mask_l{k}")
        if mask is None:
            out.append(f"array mask_l{k} is {_absent(arrays, f'mask_l{k}')} (attribute shapes lists {len(shapes)} layers)")
        elif mask.ndim != 3 or tuple(mask.shape[1:]) != (n_in, n_out) or mask.dtype != np.bool_ or tuple(mask.chunks) != (1, n_in, n_out) \
                or mask.shards is None or tuple(mask.shards[1:]) != (n_in, n_out):
            out.append(f"array mask_l{k} holds {_describe(mask)}; attribute shapes says masks of {n_in} x {n_out}")
    extra = sorted(name for name in arrays if name.startswith("mask_l") and name[6:].isdigit() and int(name[6:]) >= len(shapes))
    if extra:
        out.append(f"arrays {', '.join(extra)} exist beyond the {len(shapes)} layers of attribute shapes")
    for name in (*METADATA_COLUMNS, "replaced_at"):
        out += _rows(arrays, name, 1, n)
    out += _rows(arrays, "connections", 2, n, (len(shapes),))
    return out


def _rows(arrays: dict, name: str, ndim: int, n: int, rest: tuple = ()) -> list[str]:
    """Array ``name`` exists with ``ndim`` dimensions, at least ``n`` rows and the trailing shape ``rest``."""
    array = arrays.get(name)
    if array is None:
        return [f"array {name} is {_absent(arrays, name)}"]
    if array.ndim != ndim or tuple(array.shape[1:]) != rest:
        return [f"array {name} holds {_describe(array)}, expected {ndim} dimension(s){f' ending in {rest}' if rest else ''}"]
    return []


def _results(attrs: dict, n_layers: int, storage) -> list[str]:
    """With ``tile`` (results committed): the tile size, the results' folder, solver, tie rule and max_layer."""
    tile, results, out = attrs["tile"], attrs.get("results"), []
    if not _count(tile, 1):
        return [f"attribute tile is {tile!r}, not a positive tile size"]
    if not _count(results, 1):
        return [f"attribute results is {results!r}, not the number of a set of results (attribute tile says distances were computed)"]
    if not _folder_present(storage, f"distances/g{results}/tiles"):
        out.append(f"folder distances/g{results}/tiles is missing (attribute tile says distances were computed)")
    solver, max_layer = attrs.get("solver", "exact"), attrs.get("max_layer")
    if solver not in SOLVERS:
        out.append(f"attribute solver is {solver!r}, not one of {', '.join(SOLVERS)}")
    if not (attrs.get("tie_rule") is None or _count(attrs.get("tie_rule"))):
        out.append(f"attribute tie_rule is {attrs.get('tie_rule')!r}, not a rule number")
    if max_layer is not None and not (_count(max_layer) and max_layer < n_layers):
        out.append(f"attribute max_layer is {max_layer!r}, not a layer of 0..{n_layers - 1}")
    return out


def _is_file(storage, key: str) -> bool:
    """Whether something is at ``key`` that may be a zarr.json: a link or FIFO there is an array whose metadata is unreadable."""
    try:
        return storage.regular_or_missing(key)
    except files.Trespass:
        return True


def _folder_present(storage, folder: str) -> bool:
    """Whether ``folder`` is there; a link or non-folder on its way is the results' damage, which compute repairs (tile_rows.py).

    An object store has no folders: an empty set of results holds no object, so its folder is taken as present."""
    if not storage.is_local:
        return True
    try:
        storage.check_folder(folder)
    except files.Trespass:
        return True
    return storage.exists(folder)


def _absent(arrays: dict, name: str) -> str:
    return "unreadable (its zarr.json)" if name in arrays else "missing"


def _describe(array) -> str:
    return f"shape {tuple(array.shape)}, chunks {tuple(array.chunks)}, dtype {array.dtype}"
