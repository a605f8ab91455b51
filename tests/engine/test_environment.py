"""Cluster preflight: environment_report, compare and check_cluster, on reports and on a real LocalCluster."""

from __future__ import annotations

import functools
import platform

import numpy as np
import pytest
import scipy
import zarr
from hypothesis import given
from hypothesis import strategies as st

import nnstd_dist
from nnstd_dist.engine.environment import CHECKED, check_cluster, compare, environment_report
from nnstd_dist.errors import ClusterError
from nnstd_dist.store.topology_store import TopologyStore

CLIENT = {"nnstd-dist": "0.1.0", "numpy": "2.4.6", "scipy": "1.17.1", "zarr": "3.1.6", "dask": "2026.8.0",
          "distributed": "2026.8.0", "python": "3.11.7", "hostname": "laptop"}
A, B, C = "tcp://10.0.0.1:40001", "tcp://10.0.0.2:40002", "tcp://10.0.0.3:40003"


def like_client(**changes) -> dict:
    return {**CLIENT, **changes}


def store_status(path="/data/topos.zarr", opens=True, writable=True, error="") -> dict:
    return {"path": path, "exists": opens, "opens": opens, "writable": writable, "error": error}


@pytest.fixture
def store_path(tmp_path):
    """A real, empty nnstd-dist store."""
    TopologyStore.create(tmp_path / "topos.zarr", [(6, 4), (4, 2)])
    return tmp_path / "topos.zarr"


# --------------------------------------------------------------------------- environment_report


def test_report_gives_the_versions_this_process_runs():
    report = environment_report()
    assert report["nnstd-dist"] == nnstd_dist.__version__
    assert (report["numpy"], report["scipy"], report["zarr"]) == (np.__version__, scipy.__version__, zarr.__version__)
    assert report["python"] == platform.python_version()
    assert set(CHECKED) | {"python", "hostname"} == set(report)  # no store key unless a store is asked about


def test_report_opens_a_real_store(store_path):
    status = environment_report(str(store_path))["store"]
    assert status == {"path": str(store_path), "exists": True, "opens": True, "writable": True, "error": ""}


@pytest.mark.parametrize(
    "make, expected_error",
    [
        (lambda tmp: tmp / "missing.zarr", "no such file or directory"),
        (lambda tmp: tmp, "no nnstd-dist store here"),  # a directory, but not a store
    ],
    ids=["missing", "not-a-store"],
)
def test_report_says_why_a_store_does_not_open(tmp_path, make, expected_error):
    status = environment_report(str(make(tmp_path)))["store"]
    assert not status["opens"]
    assert expected_error in status["error"]
    assert not status["error"].startswith(str(tmp_path))  # the message names the path once, not twice


# --------------------------------------------------------------------------- compare


def test_identical_workers_have_no_problems():
    assert compare(CLIENT, {A: like_client(hostname="node1"), B: like_client(hostname="node2")}) == []


@pytest.mark.parametrize(
    "worker, expected",
    [
        (like_client(numpy="2.3.0"), [f"{A} numpy 2.3.0 (client 2.4.6)"]),
        (like_client(numpy="2.3.0", zarr="3.0.8"), [f"{A} numpy 2.3.0 (client 2.4.6), zarr 3.0.8 (client 3.1.6)"]),
        (like_client(**{"nnstd-dist": "0.2.0"}), [f"{A} nnstd-dist 0.2.0 (client 0.1.0)"]),
        (like_client(python="3.11.13"), []),  # a patch release pickles the same
        (like_client(python="3.12.1"), [f"{A} python 3.12.1 (client 3.11.7)"]),
        (like_client(dask="not installed"), [f"{A} dask not installed (client 2026.8.0)"]),
    ],
    ids=["numpy", "numpy-and-zarr", "nnstd-dist", "python-patch", "python-minor", "missing-package"],
)
def test_version_differences_are_named(worker, expected):
    assert compare(CLIENT, {A: worker, B: like_client()}) == expected


def test_workers_with_the_same_difference_make_one_problem():
    workers = {f"tcp://10.0.0.{i}:4000": like_client(numpy="2.3.0") for i in range(1, 6)}
    assert compare(CLIENT, workers) == [
        "tcp://10.0.0.1:4000, tcp://10.0.0.2:4000, tcp://10.0.0.3:4000 and 2 more numpy 2.3.0 (client 2.4.6)"
    ]


def test_a_worker_that_cannot_open_the_store_is_named_with_the_path():
    workers = {
        A: like_client(store=store_status()),
        B: like_client(store=store_status(opens=False, error="no such file or directory")),
    }
    assert compare(CLIENT, workers) == [f"worker {B} cannot open the store at /data/topos.zarr (no such file or directory)"]


@pytest.mark.parametrize("need_write, expected", [(False, []), (True, [f"worker {A} cannot write to the store at /data/topos.zarr"])],
                         ids=["read-only-ok", "write-needed"])
def test_write_access_is_checked_only_when_needed(need_write, expected):
    assert compare(CLIENT, {A: like_client(store=store_status(writable=False))}, need_write=need_write) == expected


@pytest.mark.parametrize("failure, hint", [
    (ModuleNotFoundError("No module named 'nnstd_dist'"), "nnstd-dist is not installed there: install nnstd-dist 0.1.0 in the workers' environment"),
    (OSError("Timed out during handshake while connecting to tcp://10.0.0.2:40002 after 30 s"),
     "it did not answer in time: the worker is busy, overloaded or unreachable, not necessarily misinstalled"),
    (TimeoutError(), "it did not answer in time"),
    (AttributeError("module 'nnstd_dist.engine.environment' has no attribute 'environment_report'"),
     "is nnstd-dist 0.1.0, the client's version, installed there? (another version may not run this client's check)"),
], ids=["missing", "timed-out", "timeout-error", "other-version"])
def test_a_worker_that_failed_the_check_is_named_with_the_likely_cause(failure, hint):
    problems = compare(CLIENT, {A: like_client(), B: failure})
    assert len(problems) == 1 and problems[0].startswith(f"worker {B} cannot run the check ({type(failure).__name__}: {failure}); {hint}")


version = st.from_regex(r"\A[0-9]{1,2}\.[0-9]{1,2}\.[0-9]{1,2}\Z")


@given(name=st.sampled_from(sorted(CHECKED)), other=version, n_workers=st.integers(1, 6), odd=st.integers(0, 5))
def test_exactly_the_worker_that_differs_is_reported(name, other, n_workers, odd):
    odd %= n_workers
    workers = {f"tcp://w{i}:1": like_client() for i in range(n_workers)}
    workers[f"tcp://w{odd}:1"] = like_client(**{name: other})
    problems = compare(CLIENT, workers)
    if other == CLIENT[name]:
        assert problems == []
    else:
        assert problems == [f"tcp://w{odd}:1 {name} {other} (client {CLIENT[name]})"]


# --------------------------------------------------------------------------- check_cluster with a stand-in for client.run


def test_check_sends_an_absolute_store_path(tmp_path, monkeypatch, store_path):
    monkeypatch.chdir(tmp_path)
    calls = []

    def run(function, *args):
        calls.append(args)
        return {A: function(*args)}

    reports = check_cluster(run, "topos.zarr", need_write=True)
    assert calls == [(str(store_path),)]
    assert reports[A]["store"]["opens"]


def test_a_failing_run_becomes_one_cluster_error():
    def run(function, *args):
        raise ModuleNotFoundError("No module named 'nnstd_dist'")

    with pytest.raises(ClusterError, match=r"^could not check the workers' environment \(ModuleNotFoundError: .*\); nnstd-dist is not installed there: install nnstd-dist .* in the workers' environment$"):
        check_cluster(run)


def test_no_workers_yet_passes():
    assert check_cluster(lambda function, *args: {}) == {}


# --------------------------------------------------------------------------- a real LocalCluster


@pytest.fixture(scope="module")
def client(dask_client):
    return dask_client


def _set_numpy_version(value):
    np.__version__ = value  # runs inside one worker process only


def test_a_real_cluster_with_the_same_versions_passes(client, store_path):
    reports = check_cluster(client.run, store_path, need_write=True)
    assert sorted(reports) == sorted(client.scheduler_info()["workers"])
    assert all(r["store"]["opens"] and r["numpy"] == np.__version__ for r in reports.values())


def test_a_real_worker_with_another_numpy_is_refused(client, store_path):
    odd, other = sorted(client.scheduler_info()["workers"])
    client.run(_set_numpy_version, "2.3.0", workers=[odd])
    try:
        with pytest.raises(ClusterError) as refused:
            check_cluster(client.run, store_path)
    finally:
        client.run(_set_numpy_version, np.__version__, workers=[odd])
    assert str(refused.value) == f"workers differ from this client: {odd} numpy 2.3.0 (client {np.__version__})"
    assert other not in str(refused.value)


def test_real_workers_without_the_store_are_named_with_the_path(client, tmp_path):
    missing = tmp_path / "elsewhere" / "topos.zarr"
    with pytest.raises(ClusterError) as refused:
        check_cluster(client.run, missing)
    workers = ", ".join(sorted(client.scheduler_info()["workers"]))
    assert str(refused.value) == f"workers differ from this client: workers {workers} cannot open the store at {missing} (no such file or directory)"


def _forget_nnstd_dist_environment():
    import sys

    sys.modules["nnstd_dist.engine.environment"] = None  # as on a worker where nnstd-dist is not installed


def _remember_nnstd_dist_environment():
    import importlib
    import sys

    del sys.modules["nnstd_dist.engine.environment"]
    importlib.import_module("nnstd_dist.engine.environment")


def test_a_real_worker_without_nnstd_dist_is_named(client):
    odd, _ = sorted(client.scheduler_info()["workers"])
    client.run(_forget_nnstd_dist_environment, workers=[odd])
    try:
        with pytest.raises(ClusterError) as refused:
            check_cluster(functools.partial(client.run, on_error="return"))
    finally:
        client.run(_remember_nnstd_dist_environment, workers=[odd])
    message = str(refused.value)
    assert message.startswith(f"workers differ from this client: worker {odd} cannot run the check (")
    assert "nnstd_dist.engine.environment" in message and message.endswith("nnstd-dist is not installed there: install nnstd-dist 0.1.0 in the workers' environment")
