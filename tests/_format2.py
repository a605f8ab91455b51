"""A store of format 2, written here through zarr as nnstd-dist 0.x wrote it, for the tests of `upgrade`.

Format 2: one chunk per network and layer (``mask_l{k}``, chunks (1, n_in, n_out)), the full
(L, N, N) ``distance`` matrix in (L, T, T) chunks with each tile's mirror, one ``tiles_done`` marker
chunk per tile, ``network_a``/``network_b``/``layer`` coordinates, every chunk ending in crc32c.
"""

from __future__ import annotations

import numpy as np
import zarr
from zarr.codecs import BloscCodec, Crc32cCodec, ZstdCodec

from nnstd_dist.records import mask_digest
from nnstd_dist.tiles import extent, n_tiles

MASK_CODECS = (BloscCodec(cname="zstd", clevel=5, shuffle="bitshuffle"), Crc32cCodec())
CODECS = (ZstdCodec(level=0), Crc32cCodec())


def write_format2(path, networks, records, tile: int | None = None, distances=None, done=None, solver: str = "exact") -> None:
    """``networks`` with ``records`` as a format-2 store; with ``tile``, results: tiles in ``done`` {(a, b): done_at}
    (default: every tile at N) hold ``distances`` (L, N, N) cut to their extent then, the rest NaN."""
    n, shapes = len(networks), [m.shape for m in networks[0]]
    g = zarr.open_group(str(path), mode="w-")
    for k, (n_in, n_out) in enumerate(shapes):
        a = g.create_array(f"mask_l{k}", shape=(n, n_in, n_out), chunks=(1, n_in, n_out), dtype=bool, compressors=MASK_CODECS)
        a[:] = np.stack([net[k].toarray() != 0 for net in networks])
    columns = {
        "network": [r.name for r in records], "run": [r.run for r in records], "source": [r.source for r in records],
        "digest": [mask_digest(net) for net in networks],
    }
    for name, values in columns.items():
        g.create_array(name, shape=(n,), chunks=(4096,), dtype=str, compressors=CODECS)[:] = np.array(values, dtype=object)
    g.create_array("epoch", shape=(n,), chunks=(4096,), dtype="int64", fill_value=-1, compressors=CODECS)[:] = [r.epoch for r in records]
    g.create_array("accuracy", shape=(n,), chunks=(4096,), dtype="float64", fill_value=np.nan, compressors=CODECS)[:] = [r.accuracy for r in records]
    connections = np.array([[m.nnz for m in net] for net in networks], dtype=np.int64)
    g.create_array("connections", shape=(n, len(shapes)), chunks=(4096, len(shapes)), dtype="int64", compressors=CODECS)[:] = connections
    attrs = {"format": "nnstd-dist", "format_version": 2, "shapes": [list(s) for s in shapes], "n_networks": n, "generation": 1}
    if tile:
        _results(g, n, len(shapes), tile, distances, done, [r.name for r in records])
        attrs.update({"tile": tile, "solver": solver, "tie_rule": None if solver == "exact" else 2, "max_layer": None})
    g.attrs.update(attrs)


def _results(g, n: int, n_layers: int, tile: int, distances, done, names) -> None:
    k = n_tiles(n, tile)
    done = {(a, b): n for a in range(k) for b in range(a + 1)} if done is None else done
    d = g.create_array("distance", shape=(n_layers, n, n), chunks=(n_layers, tile, tile), dtype="float64", fill_value=np.nan, compressors=CODECS)
    markers = g.create_array("tiles_done", shape=(k, k), chunks=(1, 1), dtype="int64", fill_value=0, compressors=(Crc32cCodec(),))
    full = np.full((n_layers, n, n), np.nan)
    for (a, b), m in done.items():
        (r0, r1), (c0, c1) = extent(a, tile, m), extent(b, tile, m)
        full[:, r0:r1, c0:c1] = distances[:, r0:r1, c0:c1]
        full[:, c0:c1, r0:r1] = distances[:, c0:c1, r0:r1]
        markers[a, b] = m
    d[:] = full
    for name in ("network_a", "network_b"):
        g.create_array(name, shape=(n,), chunks=(4096,), dtype=str, compressors=CODECS)[:] = np.array(names, dtype=object)
    g.create_array("layer", shape=(n_layers,), dtype="int64", compressors=CODECS)[:] = np.arange(n_layers)
