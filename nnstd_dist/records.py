"""What the store keeps about each network besides its masks: a record of metadata and a digest of its connectivity.

No zarr here, so that readers (``ingest``) can build records without loading the store's engine.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

__all__ = ["METADATA_COLUMNS", "NetworkRecord", "AppendReport", "mask_digest"]

METADATA_COLUMNS = ("network", "run", "epoch", "accuracy", "source", "digest")


@dataclass(frozen=True)
class NetworkRecord:
    """Metadata of one network; epoch -1 and accuracy NaN mean "not recorded"."""

    name: str
    run: str = ""
    epoch: int = -1
    accuracy: float = float("nan")
    source: str = ""
    digest: str = ""
    layers: tuple = field(default=(), compare=False, repr=False)  # LayerSpec per layer as read; not a column


@dataclass
class AppendReport:
    """What an append did: names added, replaced, left alone because identical, and relabelled (same connections, other run, epoch or accuracy)."""

    added: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    relabelled: list[str] = field(default_factory=list)


def mask_digest(masks) -> str:
    """sha256 of a network's connectivity: layer shapes and CSR structure, independent of weights and dtype."""
    h = hashlib.sha256()
    for mask in masks:
        csr = sp.csr_matrix(mask, dtype=bool)
        csr.eliminate_zeros()
        csr.sort_indices()
        h.update(np.asarray(csr.shape, dtype=np.int64).tobytes())
        h.update(csr.indptr.astype(np.int64).tobytes())
        h.update(csr.indices.astype(np.int64).tobytes())
    return h.hexdigest()
