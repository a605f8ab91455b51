"""Synthetic populations: Erdos-Renyi masks of m = round(density*n_in*n_out) links, k = round(rewire*m) moved per step.

A layer's connections are kept as sorted flat positions ``p = row * n_out + col`` in
``[0, n_in * n_out)``, never as a dense mask: sampling, rewiring and the CSR conversion all
cost O(m log m), whatever the layer's size.

``generate_population`` is the maths (pure, no I/O); ``write_networks`` writes its networks
in the SET layout that ``nnstd_dist.sources.formats.load_set_network`` reads: ``OUT/<name>/weight_lK.npz``
(``scipy.sparse.save_npz``, compressed, CSR float32, ``(n_in + 1) x n_out``). Every stored weight
is 1.0 -- the topology is all that NNSTD looks at, and constant values compress best -- and the
last row is a full bias row, as SET stores it, which the reader drops by default.

Random streams: layer k of network i draws from ``SeedSequence(seed, spawn_key=(i, k))``, so a
network's randomness depends only on (seed, i, k), never on how many processes share the work.
In chain mode network 0 is drawn, and network i > 0 is network i - 1 rewired with stream (i, k);
in independent mode every network is drawn like network 0, so both modes share ``net_000``.
"""

from __future__ import annotations

import io
import os
import re
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from ..errors import InputError
from .formats import is_set_layer_file, set_layer_name
from ..kernel.masks import positions_to_csr

__all__ = ["MODES", "network_names", "generate_population", "write_networks"]

MODES = ("chain", "independent")
_NETWORK_DIR = re.compile(r"^net_\d+$")


# --------------------------------------------------------------------------- maths


def network_names(n_networks: int) -> list[str]:
    """``net_000, net_001, ...``: zero-padded to the width of the largest index, at least 3 digits."""
    width = max(3, len(str(n_networks - 1)))
    return [f"net_{i:0{width}d}" for i in range(n_networks)]


def _stream(seed: int, network: int, layer: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(network, layer)))


def _draw(rng: np.random.Generator, n_positions: int, n_links: int) -> np.ndarray:
    """Exactly ``n_links`` distinct positions out of ``n_positions``, uniformly, sorted."""
    # Without shuffling numpy uses Floyd's algorithm for sparse draws: O(n_links), no dense array.
    return np.sort(rng.choice(n_positions, size=n_links, replace=False, shuffle=False))


def _rewire(rng: np.random.Generator, links: np.ndarray, n_positions: int, k: int) -> np.ndarray:
    """Remove k of the sorted ``links`` and add k of the positions not in ``links``, uniformly."""
    if k == 0:
        return links
    keep = np.ones(links.size, dtype=bool)
    keep[rng.choice(links.size, size=k, replace=False, shuffle=False)] = False
    # Draw k ranks among the n_positions - m free positions and map rank r to its position:
    # free_before[i] = links[i] - i free positions precede links[i], so the r-th free position
    # is r plus the number of links whose free_before <= r.
    ranks = _draw(rng, n_positions - links.size, k)
    free_before = links - np.arange(links.size)
    added = ranks + np.searchsorted(free_before, ranks, side="right")
    return np.sort(np.concatenate([links[keep], added]))  # disjoint sets: no dedup needed


@dataclass(frozen=True)
class _Layout:
    shapes: list[tuple[int, int]]  # every layer's n_in x n_out
    n_links: list[int]  # per sparse layer (all but the last)
    n_moved: list[int]  # per sparse layer, links moved by one chain step


def _layout(layers: Sequence[int], density: float, n_networks: int, rewire: float, seed: int, mode: str) -> _Layout:
    """Check the parameters and work out each layer's size, link count and links per step."""
    sizes = list(layers)
    if len(sizes) < 2:
        raise InputError(f"`layers` needs at least 2 sizes (input and output), got {len(sizes)}")
    if any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1 for s in sizes):
        raise InputError(f"`layers`: every size must be a positive integer, got {sizes}")
    if not 0.0 < density <= 1.0:
        raise InputError(f"`density` must be in (0, 1], got {density}")
    if not 0.0 <= rewire <= 1.0:
        raise InputError(f"`rewire` must be in [0, 1], got {rewire}")
    if n_networks < 1:
        raise InputError(f"`n_networks` must be at least 1, got {n_networks}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"`seed` must be a non-negative integer, got {seed!r}")
    if mode not in MODES:
        raise InputError(f"`mode` must be one of {', '.join(MODES)}, got {mode!r}")
    shapes = [(int(a), int(b)) for a, b in zip(sizes[:-1], sizes[1:])]
    n_links, n_moved = [], []
    for k, (n_in, n_out) in enumerate(shapes[:-1]):
        m = round(density * n_in * n_out)
        if m == 0:
            raise InputError(f"layer {k} ({n_in} x {n_out}): density {density} gives 0 connections")
        moved = round(rewire * m) if mode == "chain" else 0
        if moved > n_in * n_out - m:
            raise InputError(
                f"layer {k} ({n_in} x {n_out}): cannot move {moved} of {m} connections, "
                f"only {n_in * n_out - m} free positions (lower `density` or `rewire`)"
            )
        n_links.append(m)
        n_moved.append(moved)
    return _Layout(shapes, n_links, n_moved)


def generate_population(
    layers: Sequence[int],
    density: float,
    n_networks: int,
    rewire: float = 0.01,
    seed: int = 0,
    mode: str = "chain",
) -> Iterator[tuple[str, list[sp.csr_matrix]]]:
    """Yield ``(name, masks)`` per network: CSR bool ``n_in x n_out`` masks, no bias row.

    ``layers`` lists neuron counts (784, 784, 10 -> layers 784 x 784 and 784 x 10). Every layer
    but the last is sparse with exactly ``round(density * n_in * n_out)`` connections; the last
    is dense, as in SET. Parameters are checked here, before the first network is made.
    """
    layout = _layout(layers, density, n_networks, rewire, seed, mode)
    return _networks(layout, n_networks, seed, mode)


def _networks(layout: _Layout, n_networks: int, seed: int, mode: str):
    dense_out = sp.csr_matrix(np.ones(layout.shapes[-1], dtype=bool))
    sparse_shapes = layout.shapes[:-1]
    links = None
    for i, name in enumerate(network_names(n_networks)):
        if links is None or mode == "independent":
            links = [
                _draw(_stream(seed, i, k), a * b, m)
                for k, ((a, b), m) in enumerate(zip(sparse_shapes, layout.n_links))
            ]
        else:
            links = [
                _rewire(_stream(seed, i, k), prev, a * b, moved)
                for k, (prev, (a, b), moved) in enumerate(zip(links, sparse_shapes, layout.n_moved))
            ]
        masks = [positions_to_csr(pos, shape) for pos, shape in zip(links, sparse_shapes)]
        yield name, masks + [dense_out.copy()]


# --------------------------------------------------------------------------- I/O


def _npz_bytes(mask: sp.csr_matrix) -> bytes:
    """A mask as SET stores a layer: float32 weights 1.0 plus a full bias row, compressed npz."""
    n_in, n_out = mask.shape
    indptr = np.concatenate([mask.indptr, [mask.indptr[-1] + n_out]]).astype(np.int32)
    indices = np.concatenate([mask.indices, np.arange(n_out)]).astype(np.int32)
    weights = np.ones(indices.size, dtype=np.float32)
    matrix = sp.csr_matrix((weights, indices, indptr), shape=(n_in + 1, n_out))
    buffer = io.BytesIO()
    sp.save_npz(buffer, matrix, compressed=True)
    return buffer.getvalue()


def _network_dirs(out: Path) -> list[Path]:
    """Subdirectories of ``out`` that hold at least one weight_l*.npz, i.e. look like networks."""
    return [d for d in sorted(out.iterdir()) if d.is_dir() and any(map(_is_layer_file, d.iterdir()))]


def _is_layer_file(path: Path) -> bool:
    return is_set_layer_file(path.name)


def _written_by_us(directory: Path) -> bool:
    return _NETWORK_DIR.match(directory.name) is not None and all(map(_is_layer_file, directory.iterdir()))


def _prepare_out(out: Path, overwrite: bool) -> None:
    """Create ``out``, or clear the networks a previous run left there if ``overwrite``."""
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    existing = _network_dirs(out)
    if existing and not overwrite:
        raise InputError(
            f"{out}: holds {len(existing)} network(s) (e.g. {existing[0].name}); `overwrite` replaces them"
        )
    foreign = [d for d in existing if not _written_by_us(d)]
    if foreign:
        # Deleting networks `generate` did not write could destroy real data; keeping them would mix populations.
        raise InputError(f"{out}: holds {foreign[0].name}, a network not written by generate; choose another OUT")
    for d in existing:
        shutil.rmtree(d)
    for d in out.glob(".net_*.partial"):
        shutil.rmtree(d)  # left by an interrupted run


def write_networks(
    out: str | Path,
    layers: Sequence[int],
    density: float,
    n_networks: int,
    rewire: float = 0.01,
    seed: int = 0,
    mode: str = "chain",
    overwrite: bool = False,
) -> Iterator[tuple[str, int]]:
    """Check the parameters and ``out`` now, then write one network per item taken: ``(name, bytes written)``.

    Each network is written into a hidden ``out/.<name>.partial`` directory and renamed into
    place once complete, so an interrupted run never leaves a ``net_*`` directory with missing
    layers. Refuses an ``out`` that already holds networks unless ``overwrite``.
    """
    networks = generate_population(layers, density, n_networks, rewire, seed, mode)
    out = Path(out)
    _prepare_out(out, overwrite)
    return _write_each(out, networks)


def _write_each(out: Path, networks) -> Iterator[tuple[str, int]]:
    dense_bytes = None  # the dense output layer is the same in every network: compress it once
    for name, masks in networks:
        if dense_bytes is None:
            dense_bytes = _npz_bytes(masks[-1])
        blobs = [_npz_bytes(m) for m in masks[:-1]] + [dense_bytes]
        partial = out / f".{name}.partial"
        partial.mkdir()
        for k, blob in enumerate(blobs):
            (partial / set_layer_name(k)).write_bytes(blob)
        os.rename(partial, out / name)
        yield name, sum(len(b) for b in blobs)
