"""A command run in a fresh child of a fork server, killable before any store write: the crash tests' runner.

The child sets ``env`` and, with ``fault``, NNSTD_DIST_FAULT_AFTER_WRITES (nnstd_dist/store/faults.py), which ends it
like SIGKILL before its (fault+1)-th store write. An action is ``cli(*argv)`` (the command line, in process) or
``compute(store, **options)`` (``nd.compute`` on an in-process Dask cluster: a fault kills the whole run, scheduler and
workers alike). Each child is forked from the server, never from pytest, whose Dask clusters of other tests leave
threads and locks a plain fork would copy mid-use; the server imports the package once and starts no thread.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import traceback

from nnstd_dist.store import faults

_SERVER = mp.get_context("forkserver")
# s3fs for the object-store crash tests; a module that is not installed is skipped by the server.
_SERVER.set_forkserver_preload(["nnstd_dist.cli.main", "nnstd_dist.store.topology_store", "nnstd_dist.engine.run", "distributed", "s3fs"])


def cli(*argv):
    return ("cli", tuple(str(a) for a in argv))


def compute(store, **options):
    return ("compute", str(store), options)


def run_forked(action, fault: int | None = None, env: dict | None = None, count=None, timeout: float | None = None) -> int | None:
    """Run ``action`` in a child (``env`` set, the fault armed); its exit code, FAULT_EXIT if the fault killed it, None if
    it outlived ``timeout``. ``count``: a file the child writes its number of store writes to, if it completes."""
    child = _SERVER.Process(target=_child, args=(action, fault, env or {}, count and str(count)))
    child.start()
    child.join(timeout)
    return child.exitcode


def _child(action, fault, env, count):
    os.environ.update(env)
    if fault is not None:
        os.environ[faults.ENV] = str(fault)
    code = 0
    try:
        if action[0] == "cli":
            from nnstd_dist.cli.main import cli as group

            group.main(args=list(action[1]), prog_name="nnstd-dist")
        else:
            from distributed import Client, LocalCluster

            from nnstd_dist.engine import compute as run

            # No dashboard: importing it costs a fresh child 0.35 s, most of a small compute.
            with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, Client(cluster) as client:
                run(action[1], client=client, **action[2])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
        code = 99
    if code == 0 and count:
        with open(count, "w") as f:
            f.write(str(faults._writes))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
