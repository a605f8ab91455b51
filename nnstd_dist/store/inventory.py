"""What a store holds, for `nnstd-dist info`: population, shapes, densities, runs, epochs, progress, bytes on disk.

Built from the store's public reads and its storage's sizes; no zarr here.
"""

from __future__ import annotations

import numpy as np

from ..tiles import pairs_in_done_tiles, total_pairs
__all__ = ["pairs_computed", "file_sizes", "summarize"]


def pairs_computed(store) -> int:
    """Pairs i > j whose distances are stored, from whole tile records (checksums and numbers checked: about 1.5x the
    cost of reading their headers alone); a damaged record is a StoreError, so the count is never of damage."""
    return _stored(store)[0]


def _stored(store) -> tuple[int, int | None]:
    """(pairs computed, pairs not certified: None unless fast results) from one scan of whole records (see pairs_computed)."""
    if not store.has_results:
        return 0, None
    markers, uncertified = store.stored_pairs(blocks=True)
    return pairs_in_done_tiles(markers, store.n_networks, store.tile), len(uncertified) if store.solver == "fast" else None


def file_sizes(store) -> dict[str, tuple[int, int, int]]:
    """Bytes, file count and bytes on disk (allocated blocks) of every top-level entry (array, zarr.json, lock) of the store."""
    return store.storage.sizes()


def summarize(store) -> dict:
    """Plain-JSON facts about ``store`` (a TopologyStore): what `nnstd-dist info` prints."""
    store.check_columns()  # damage is reported, never summarised
    n, shapes = store.n_networks, store.shapes
    connections = store.connections()
    density = connections / np.array([n_in * n_out for n_in, n_out in shapes], dtype=np.float64)
    epochs = store.column("epoch")
    sizes = file_sizes(store)
    computed, uncertified = _stored(store)  # one scan of the records for both counts
    mask_bytes = sum(b for name, (b, _, _) in sizes.items() if name.startswith("mask_l"))
    return {
        "store": str(store.path),
        "format_version": store.format_version,
        "networks": n,
        "layers": [
            {"layer": k, "shape": list(shape), "density": float(density[:, k].mean()) if n else None, **source}
            # where each layer came from: absent in stores written before parameter names were kept
            for k, (shape, source) in enumerate(zip(shapes, store.layers or [{}] * len(shapes)))
        ],
        "connections": int(connections.sum()),
        "runs": sorted({r for r in store.column("run") if r}),
        "epochs": sorted({int(e) for e in epochs if e >= 0}),
        "networks_without_epoch": int((epochs < 0).sum()),
        "networks_with_accuracy": int(np.isfinite(store.column("accuracy").astype(float)).sum()),
        "pairs_total": total_pairs(n),
        "pairs_computed": computed,
        "tile": store.tile,
        "solver": store.solver if store.has_results else None,
        "tie_rule": store.tie_rule if store.has_results else None,
        # pairs whose fast-solver choices were not all certified (None: exact, which claims no invariance)
        "pairs_uncertified": uncertified,
        "max_layer": store.max_layer,
        "bytes": sum(b for b, _, _ in sizes.values()),
        "files": sum(f for _, f, _ in sizes.values()),
        "bytes_on_disk": sum(d for _, _, d in sizes.values()),
        "mask_bytes_per_connection": mask_bytes / connections.sum() if connections.sum() else None,
    }
