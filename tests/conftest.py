"""Shared fixtures: the read-only ../shared data, seeded randomness and small synthetic networks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

# CI checks the repository out next to shared/, never inside it; the data is not copied in.
SHARED_DIR = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared (the paper's SET topologies and reference distances); skips when it is absent."""
    if not (SHARED_DIR / "topo").is_dir():
        pytest.skip(f"{SHARED_DIR / 'topo'} is absent: the paper's topologies are not available on this machine")
    return SHARED_DIR


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20200914)


def make_synthetic_network(rng: np.random.Generator, shapes, density: float) -> list[np.ndarray]:
    """Dense bool masks of the given ``(n_in, n_out)`` layer shapes, each link present with probability `density`."""
    return [rng.random(shape) < density for shape in shapes]


def write_set_network(directory: Path, layers, rng: np.random.Generator | None = None) -> Path:
    """Save masks as a SET directory: ``weight_lK.npz`` (save_npz, CSR float), random weights, a bias last row."""
    rng = rng or np.random.default_rng(0)
    directory.mkdir(parents=True, exist_ok=True)
    for k, mask in enumerate(layers):
        mask = sp.csr_matrix(mask).toarray() != 0
        # Weights of either sign and no exact zeros, so only the mask decides connectivity.
        weights = np.where(mask, rng.uniform(0.1, 1.0, mask.shape) * rng.choice([-1.0, 1.0], mask.shape), 0.0)
        bias = rng.uniform(0.1, 1.0, (1, mask.shape[1]))
        sp.save_npz(directory / f"weight_l{k}.npz", sp.csr_matrix(np.vstack([weights, bias])))
    return directory


@pytest.fixture
def synthetic_network():
    """`synthetic_network(rng, shapes, density)` -> list of dense bool masks (see make_synthetic_network)."""
    return make_synthetic_network


@pytest.fixture
def set_network_dir():
    """`set_network_dir(directory, layers, rng=None)` -> directory written in the SET layout (see write_set_network)."""
    return write_set_network


@pytest.fixture(scope="session")
def paper_reference(shared_dir):
    """(epoch000.json as a dict, the 10 epoch-0 networks it names, bias rows dropped); skips when absent."""
    import json

    from nnstd_dist import load_set_network

    path = shared_dir / "reference" / "epoch000.json"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    ref = json.loads(path.read_text())
    return ref, [load_set_network(shared_dir / "topo" / name) for name in ref["networks"]]


@pytest.fixture(scope="session")
def dask_client():
    """One real LocalCluster of two worker processes, started once (~1 s) for every test that needs a cluster but not its own."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        # Not the default client: a compute() that names no client would otherwise use it (as in a notebook).
        with distributed.Client(cluster, set_as_default=False) as client:
            client.wait_for_workers(2)
            yield client
