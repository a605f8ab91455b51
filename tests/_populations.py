"""Small seeded populations and filled stores for tests: distances computed directly with the kernel."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from nnstd_dist.kernel import nnstd_prepared, prepare
from nnstd_dist.store import NetworkRecord, open_or_create

SHAPES = [(60, 60), (60, 5)]


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


def pair_distances(networks) -> np.ndarray:
    """(L, N, N): entry (i, j), i > j, is NNSTD(network i, network j), mirrored; diagonal 0."""
    prepared = [prepare(n) for n in networks]
    n = len(prepared)
    out = np.zeros((len(prepared[0].masks), n, n))
    for i in range(n):
        for j in range(i):
            out[:, i, j] = out[:, j, i] = nnstd_prepared(prepared[i], prepared[j])
    return out


def make_store(path, networks, records, tile: int = 4, compute=True):
    """A store holding ``networks``; ``compute`` True fills every tile, False none, or a set of (a, b) tiles."""
    store = open_or_create(path, [n.shape for n in networks[0]])
    store.append(list(zip(records, networks)))
    store.init_results(tile)
    if compute is False:
        return store
    full = pair_distances(networks)
    n_tiles = -(-len(networks) // tile)
    for a in range(n_tiles):
        for b in range(a + 1):
            if compute is True or (a, b) in compute:
                rows, cols = slice(a * tile, (a + 1) * tile), slice(b * tile, (b + 1) * tile)
                store.write_tile(a, b, full[:, rows, cols], done_at=store.n_networks)
    return store
