"""The top-level API (`import nnstd_dist as nd`): the names the README uses, light to import, and compute() in a notebook."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nnstd_dist as nd
from _populations import chain, pair_distances, records

ROOT = Path(__file__).resolve().parents[1]


def test_the_readme_names_are_there():
    assert {"nnstd", "read_network", "compute", "labelled_matrix", "TopologyStore"} <= set(nd.__all__)
    for name in nd.__all__:
        assert getattr(nd, name) is not None


def test_importing_the_package_loads_neither_zarr_nor_dask():
    # numba too: it loads on the fast solver's first use
    code = "import sys, nnstd_dist as nd; nd.nnstd; print(sorted(m for m in ('zarr', 'dask', 'distributed', 'numba') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_read_network_takes_a_path_and_gives_what_nnstd_takes():
    record, masks = nd.read_network(ROOT / "topo" / "net_000")
    assert record.name == "net_000"
    assert [m.shape for m in masks] == [(784, 784), (784, 784), (784, 784), (784, 10)]
    np.testing.assert_array_equal(nd.nnstd(masks, masks), np.zeros(4))


def test_read_network_refuses_a_folder_of_many_networks():
    with pytest.raises(nd.NNSTDError, match="holds 10 networks, give one"):
        nd.read_network(ROOT / "topo")


def test_compute_in_a_notebook_uses_the_active_client(tmp_path, monkeypatch):
    """A Client made current (as a notebook's `Client()` is) runs the tasks; no LocalCluster of its own is started."""
    distributed = pytest.importorskip("distributed")
    from nnstd_dist.engine import run

    networks = chain(seed=5, length=6)
    path = tmp_path / "s.zarr"
    store = nd.TopologyStore.create(path, [m.shape for m in networks[0]])
    store.append(list(zip(records(len(networks)), networks)))
    monkeypatch.setattr(run, "connect", lambda spec: pytest.fail("compute() started a cluster of its own"))
    with distributed.Client(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as client:
        plan, stats = nd.compute(path, tile=4)
        assert stats.pairs == 15 and client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.task_groups)) >= 1
    m = nd.labelled_matrix(nd.TopologyStore.open(path), layer=1)
    np.testing.assert_array_equal(m.values, pair_distances(networks)[1])
