"""Shared fixtures: the paper's data (wherever it is), seeded randomness and small synthetic networks."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from nnstd_dist.engine.hpc import import_dask_jobqueue

# dask_jobqueue sets, when first imported, a SIGINT handler that calls sys.exit(): Ctrl-C would then fail the running
# test and pytest would go on with the next. Imported once here with Ctrl-C left alone, so that no test module's
# import of it (test_hpc, test_slurm) sets that handler again and Ctrl-C stops pytest.
try:
    import_dask_jobqueue()
except ImportError:  # the hpc extra is not installed: nothing sets the handler
    pass

# The paper's data: its SET topologies (a topo/ folder of e5_s0_w0 ... e5_s0_w9) and, in CI only, the distances
# its script computed on them (reference/epoch000.json). Looked for in a folder holding topo/ (or topo/ itself):
# NNSTD_DIST_PAPER_DATA if set, then ../shared (CI), then ../paper (where the README's recipe clones the paper).
# The data is read where it is, never copied into the repository.
PAPER_DATA_VARIABLE = "NNSTD_DIST_PAPER_DATA"
REPOSITORY = Path(__file__).resolve().parents[1]
REFERENCE = Path("reference") / "epoch000.json"


def paper_data_places() -> list[Path]:
    """Where the paper's data is looked for, in order."""
    given = os.environ.get(PAPER_DATA_VARIABLE)
    return ([Path(given).expanduser()] if given else []) + [REPOSITORY.parent / "shared", REPOSITORY.parent / "paper"]


def find_paper_data(places, holding: Path = Path("topo") / "e5_s0_w0") -> Path | None:
    """The first place (or the folder above a place named topo) holding ``holding``: the paper's topo/ by default."""
    for place in places:
        for root in (place, place.parent) if place.name == "topo" else (place,):
            if (root / holding).exists():
                return root
    return None


def missing_paper_data(places, what: str = "topo/") -> str:
    """The skip reason: what is missing, everywhere it was looked for, and how to provide it."""
    return (
        f"the paper's {what} is in none of {', '.join(str(p) for p in places)}: clone the paper's repository to ../paper "
        f"(see the README's Figure 4), or set {PAPER_DATA_VARIABLE} to a folder holding its topo/"
    )


@pytest.fixture(scope="session")
def paper_data() -> Path:
    """A folder holding the paper's topo/ (see find_paper_data); skips, saying where it looked, when there is none."""
    root = find_paper_data(paper_data_places())
    if root is None:
        pytest.skip(missing_paper_data(paper_data_places()))
    return root


@pytest.fixture(scope="session")
def paper_reference_file(paper_data) -> Path:
    """reference/epoch000.json, the distances the paper's script computed on the epoch-0 networks: CI's ../shared has
    it beside topo/, a clone of the paper does not. Any of the places may hold it: the networks are the same."""
    root = find_paper_data(paper_data_places(), REFERENCE)
    if root is None:
        places = ", ".join(str(p) for p in paper_data_places())
        pytest.skip(f"the distances the paper's script computed ({REFERENCE}, beside topo/ in CI's ../shared) are in none of {places}")
    return root / REFERENCE


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
def paper_reference(paper_data, paper_reference_file):
    """(epoch000.json as a dict, the 10 epoch-0 networks it names, bias rows dropped); skips when absent."""
    import json

    from nnstd_dist import load_set_network

    ref = json.loads(paper_reference_file.read_text())
    return ref, [load_set_network(paper_data / "topo" / name) for name in ref["networks"]]


@pytest.fixture(scope="session")
def dask_client():
    """One real LocalCluster of two worker processes, started once (~1 s) for every test that needs a cluster but not its own."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        # Not the default client: a compute() that names no client would otherwise use it (as in a notebook).
        with distributed.Client(cluster, set_as_default=False) as client:
            client.wait_for_workers(2)
            yield client
