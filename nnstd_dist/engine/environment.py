"""Cluster preflight: every worker must run the client's nnstd-dist, numpy, scipy, zarr, dask, distributed and Python x.y, and open the store.

Workers that compute with other library versions than the client can return other distances
(another scipy assignment solver) or fail mid-run on a pickling or zarr format change, so a run
stops before its first task and names each difference on one line. Nothing here imports dask:
``check_cluster`` takes the function that runs a callable on every worker (``client.run``).
"""

from __future__ import annotations

import importlib
import os
import platform
import socket
from collections.abc import Callable, Mapping

from ..errors import ClusterError

__all__ = ["CHECKED", "environment_report", "compare", "check_cluster"]

# What a worker must share with the client, as (name in messages, module to ask for __version__).
CHECKED = {
    "nnstd-dist": "nnstd_dist",
    "numpy": "numpy",
    "scipy": "scipy",
    "zarr": "zarr",
    "dask": "dask",
    "distributed": "distributed",
}
_SHOWN_WORKERS = 3  # addresses named per problem before "and N more"


def _version(module_name: str) -> str:
    # The imported module's __version__, not the installed metadata: it is what actually runs.
    try:
        return str(importlib.import_module(module_name).__version__)
    except ImportError:
        return "not installed"


def _store_status(store) -> dict:
    """Whether this process finds, opens and may write the store ``store`` (a path, or the store's storage: its URL
    and credentials, so a worker of a cluster without a shared filesystem is checked against the bucket itself)."""
    from ..store.topology_store import store_status  # imports zarr: only where a store is checked

    return store_status(store)


def environment_report(store_path: str | None = None) -> dict:
    """This process's versions of CHECKED and Python, its host name and, if given, the store's status.

    Runs on a worker (sent by ``check_cluster``) and on the client; returns plain data only.
    """
    report = {name: _version(module) for name, module in CHECKED.items()}
    report["python"] = platform.python_version()
    report["hostname"] = socket.gethostname()
    if store_path is not None:
        report["store"] = _store_status(store_path)
    return report


def _same(name: str, a, b) -> bool:
    if name == "python":  # patch releases share bytecode and pickle formats; minor releases may not
        return str(a).split(".")[:2] == str(b).split(".")[:2]
    return a == b


def _who(addresses: list[str], singular: str = "", plural: str = "") -> str:
    """``tcp://a`` or ``tcp://a, tcp://b, tcp://c and 4 more``, with an optional word in front."""
    shown = ", ".join(addresses[:_SHOWN_WORKERS])
    if len(addresses) > _SHOWN_WORKERS:
        shown += f" and {len(addresses) - _SHOWN_WORKERS} more"
    word = singular if len(addresses) == 1 else plural
    return f"{word} {shown}" if word else shown


def _group(pairs) -> dict[str, list[str]]:
    """[(address, problem), ...] -> {problem: [addresses]}: 200 workers with one mismatch make one entry."""
    grouped: dict[str, list[str]] = {}
    for address, problem in pairs:
        grouped.setdefault(problem, []).append(address)
    return grouped


def compare(client_report: Mapping, worker_reports: Mapping[str, object], need_write: bool = False) -> list[str]:
    """The ways the workers differ from the client, one string per distinct problem; [] if none.

    ``worker_reports`` maps a worker address to its ``environment_report``, or to the exception
    it raised (``client.run(..., on_error="return")``), e.g. when nnstd-dist is not installed there.
    """
    versions, stores, failures = [], [], []
    for address, report in sorted(worker_reports.items()):
        if isinstance(report, BaseException):
            failures.append((address, f"cannot run the check ({type(report).__name__}: {report}); {check_hint(report, client_report.get('nnstd-dist'))}"))
            continue
        diffs = [
            f"{name} {report.get(name, 'unknown')} (client {client_report.get(name)})"
            for name in [*CHECKED, "python"]
            if not _same(name, report.get(name, "unknown"), client_report.get(name))
        ]
        if diffs:
            versions.append((address, ", ".join(diffs)))
        store = report.get("store")
        if store is not None and not store["opens"]:
            stores.append((address, f"cannot open the store at {store['path']} ({store['error']})"))
        elif store is not None and need_write and not store["writable"]:
            stores.append((address, f"cannot write to the store at {store['path']}"))
    problems = [f"{_who(addresses)} {diff}" for diff, addresses in _group(versions).items()]
    problems += [f"{_who(addresses, 'worker', 'workers')} {what}" for what, addresses in _group(failures + stores).items()]
    return problems


def check_hint(exc: BaseException, version: str | None) -> str:
    """What a failed check of a worker most likely means: it timed out (busy or unreachable), nnstd-dist is missing there, or another version is."""
    text = f"{type(exc).__name__}: {exc}"  # a worker's exception may come back wrapped, its type only in the text
    if isinstance(exc, TimeoutError) or "timed out" in text.lower():
        return ("it did not answer in time: the worker is busy, overloaded or unreachable, not necessarily misinstalled; "
                "try again, or allow more time (Dask's distributed.comm.timeouts.connect)")
    if ("ModuleNotFoundError" in text or "ImportError" in text) and "nnstd_dist" in text:
        return f"nnstd-dist is not installed there: install nnstd-dist {version} in the workers' environment"
    return f"is nnstd-dist {version}, the client's version, installed there? (another version may not run this client's check)"


def check_cluster(run_on_workers: Callable, store_path=None, need_write: bool = False) -> dict:
    """Refuse a cluster whose workers differ from this client or cannot open ``store_path``; return their reports.

    ``run_on_workers(function, *args)`` runs ``function(*args)`` on every worker and returns
    ``{address: result}``: ``client.run``, or ``functools.partial(client.run, on_error="return")``
    to have a worker that cannot even import nnstd-dist named in the message. A store path is
    made absolute here, because a worker's working directory is not the client's; a store's storage
    (its URL and options) is sent as it is. A cluster with no workers yet passes (there is nothing
    to compare); wait for workers first to check them.
    """
    path = os.path.abspath(store_path) if isinstance(store_path, (str, os.PathLike)) else store_path
    client_report = environment_report(None)
    try:
        worker_reports = run_on_workers(environment_report, path)
    except Exception as exc:  # e.g. a worker without nnstd_dist cannot unpickle environment_report
        raise ClusterError(
            f"could not check the workers' environment ({type(exc).__name__}: {exc}); {check_hint(exc, client_report['nnstd-dist'])}"
        ) from None
    problems = compare(client_report, worker_reports, need_write)
    if problems:
        raise ClusterError("workers differ from this client: " + "; ".join(problems))
    return dict(worker_reports)
