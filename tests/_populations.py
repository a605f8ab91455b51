"""Small seeded populations and filled stores for tests: distances computed directly with the kernel."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from nnstd_dist.kernel.distance import nnstd_prepared, prepare
from nnstd_dist.engine.plan import make_plan
from nnstd_dist.tiles import extent, n_tiles
from nnstd_dist.records import NetworkRecord
from nnstd_dist.sources.param_layers import weights_to_layers

SHAPES = [(60, 60), (60, 5)]


@dataclass(frozen=True)
class WrittenPopulation:
    """What `write_population` wrote."""

    out: Path
    names: list[str]
    n_bytes: int


def random_network(rng: np.random.Generator, shapes=SHAPES, density: float = 0.1) -> list[sp.csr_matrix]:
    """Sparse hidden layers with ``density`` of their connections, the last layer dense (as SET)."""
    layers = [sp.csr_matrix(rng.random(shape) < density) for shape in shapes[:-1]]
    return layers + [sp.csr_matrix(np.ones(shapes[-1], dtype=bool))]


def rewire(rng: np.random.Generator, network, fraction: float) -> list[sp.csr_matrix]:
    """Move ``fraction`` of every sparse layer's connections to random empty positions."""
    out = []
    for layer in network[:-1]:
        dense = layer.toarray().ravel()
        on, off = np.flatnonzero(dense), np.flatnonzero(~dense)
        k = round(fraction * on.size)
        dense[rng.choice(on, k, replace=False)] = False
        dense[rng.choice(off, k, replace=False)] = True
        out.append(sp.csr_matrix(dense.reshape(layer.shape)))
    return out + [network[-1]]


def chain(seed: int, length: int, fraction: float = 0.1, shapes=SHAPES) -> list[list[sp.csr_matrix]]:
    """A SET-like run: a random network, then each step rewires ``fraction`` of the previous one."""
    rng = np.random.default_rng(seed)
    networks = [random_network(rng, shapes)]
    for _ in range(length - 1):
        networks.append(rewire(rng, networks[-1], fraction))
    return networks


def runs_population(n_runs: int, epochs, seed: int = 0, fraction: float = 0.1):
    """``n_runs`` chains sampled at ``epochs``: (networks, records) named ``r{run}/epoch_{epoch:03d}``."""
    networks, records = [], []
    for r in range(n_runs):
        for e, net in zip(epochs, chain(seed + r, len(epochs), fraction)):
            networks.append(net)
            records.append(NetworkRecord(f"r{r}/epoch_{e:03d}", run=f"r{r}", epoch=int(e), accuracy=0.5 + e / 1000 + r / 100))
    return networks, records


def relabel_hidden(layers, rng):
    """The same network with every hidden layer's neurons permuted (columns of k and rows of k+1 alike)."""
    layers = [np.array(layer) for layer in layers]
    for k in range(len(layers) - 1):
        perm = rng.permutation(layers[k].shape[1])
        layers[k], layers[k + 1] = layers[k][:, perm], layers[k + 1][perm]
    return layers


def random_cnn(rng, channels, kernels, spatial, classes, density):
    """Random conv weights (out, in, *kernel) of the given channels, then a linear layer over ``spatial`` positions per channel."""
    weights = [rng.random((channels[k + 1], channels[k], *kernels[k])) < density for k in range(len(kernels))]
    return weights + [rng.random((classes, channels[-1] * spatial)) < density]


def permute_channels(weights, rng):
    """Every conv's output channels relabelled, with the next layer's input channels (blocks of rows) alike."""
    weights = [np.array(w) for w in weights]
    for k in range(len(weights) - 1):
        perm = rng.permutation(weights[k].shape[0])
        weights[k] = weights[k][perm]
        nxt = weights[k + 1]
        weights[k + 1] = nxt[:, perm] if nxt.ndim > 2 else nxt.reshape(nxt.shape[0], len(perm), -1)[:, perm].reshape(nxt.shape[0], -1)
    return weights


def prepare_cnn(weights):
    """Conv and linear weights (PyTorch's out x in layout, 0/1) as a prepared network, convolutions moving blocks of rows."""
    masks, specs = weights_to_layers([(f"l{k}.weight", w.astype(float)) for k, w in enumerate(weights)])
    return prepare(masks, [s.block for s in specs])


def records(n: int, digits: int = 3) -> list[NetworkRecord]:
    """Plain records named net_000, net_001, ... (``digits`` digits)."""
    return [NetworkRecord(f"net_{i:0{digits}d}") for i in range(n)]


def pair_distances(networks, solver: str = "exact") -> np.ndarray:
    """(L, N, N) from the kernel alone: entry (i, j), i > j, is NNSTD(network i, network j), mirrored; diagonal 0."""
    prepared = [prepare(n) for n in networks]
    n = len(prepared)
    out = np.zeros((len(prepared[0].masks), n, n))
    for i in range(n):
        for j in range(i):
            out[:, i, j] = out[:, j, i] = nnstd_prepared(prepared[i], prepared[j], solver=solver)
    return out


def open_or_create(path, shapes):
    """The store at ``path`` for read-write, created for ``shapes`` if it does not exist."""
    from nnstd_dist.store.topology_store import TopologyStore

    path = Path(path)
    if path.exists():
        return TopologyStore.open(path, mode="r+")
    return TopologyStore.create(path, shapes)


def done_tiles(path) -> int:
    """How many tiles of the store at ``path`` are marked done; 0 before a run has created its result arrays."""
    from nnstd_dist.errors import StoreError
    from nnstd_dist.store.topology_store import TopologyStore

    try:
        return int(np.count_nonzero(TopologyStore.open(path).tile_markers()))
    except (StoreError, KeyError):  # the run has not created its result arrays yet
        return 0


def write_tile(store, a: int, b: int, block: np.ndarray, done_at: int) -> None:
    """Record tile (a, b) as a task does, computed at population ``done_at`` (``block`` at the tile's extent now, cut to its
    extent then); ``done_at`` 0 forgets the tile."""
    if not done_at:
        store.drop_tiles(a, {b})
        return
    (r0, r1), (c0, c1) = extent(a, store.tile, done_at), extent(b, store.tile, done_at)
    store.write_tile(a, b, block[:, : r1 - r0, : c1 - c0], done_at)


def make_store(path, networks, names=None, tile: int | None = 4, compute=True):
    """A store holding ``networks``, their records ``names`` (default: `records`, net_000, ...).

    ``tile`` None: no results yet (compute chooses the tile). Else results in tiles of ``tile``, and
    ``compute`` True fills every tile, False none, or a set of (a, b) tiles, from `pair_distances`.
    """
    store = open_or_create(path, [n.shape for n in networks[0]])
    store.append(list(zip(records(len(networks)) if names is None else names, networks)))
    if tile is None:
        return store
    store.init_results(tile)
    if compute is False:
        return store
    full = pair_distances(networks)
    k = n_tiles(len(networks), tile)
    for task in make_plan(len(networks), tile, np.zeros((k, k), dtype=np.int64)).tasks:
        if compute is True or (task.a, task.b) in compute:
            (r0, r1), (c0, c1) = task.rows, task.cols
            write_tile(store, task.a, task.b, full[:, r0:r1, c0:c1], done_at=store.n_networks)
    return store


def write_population(out, layers, density, n_networks, rewire=0.01, seed=0, mode="chain", overwrite=False):
    """Write `generate_population`'s networks as ``out/<name>/weight_lK.npz``; returns (out, names, bytes written)."""
    from nnstd_dist.sources.generate import write_networks

    names, n_bytes = [], 0
    for name, size in write_networks(out, layers, density, n_networks, rewire, seed, mode, overwrite):
        names.append(name)
        n_bytes += size
    return WrittenPopulation(Path(out), names, n_bytes)
