"""Where a run's tasks go: a LocalCluster started here, an existing scheduler, a batch-job cluster, or the active Client.

One BLAS/OpenMP thread per task thread (worker processes share the cores), and a worker saturation of 1.0
so the last large tiles go to whichever worker frees up first.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import signal
import socket
from dataclasses import dataclass
from pathlib import Path

import dask
from distributed import Client, LocalCluster

from ..errors import ClusterError

__all__ = ["ClusterSpec", "connect", "active_client", "threads", "dashboard"]

# One BLAS/OpenMP thread per task thread: worker processes share the cores, they must not oversubscribe.
PROBE_SECONDS = 10.0  # a scheduler sends its handshake at once; this bounds a server that says nothing
MIN_WORKER_MEMORY = 256 * 2**20
REMOTE_PROTOCOLS = ("tcp", "tls", "ws", "wss")  # what a client in another process can reach a scheduler by
log = logging.getLogger(__name__)
_ONE_THREAD = {name: 1 for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")}

def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass(frozen=True)
class ClusterSpec:
    """Where tasks run: an existing scheduler (address or scheduler file) or a LocalCluster to start."""

    scheduler: str | None = None
    scheduler_file: str | None = None
    n_workers: int | None = None  # LocalCluster: default one single-threaded process per core
    threads_per_worker: int = 1
    memory_limit: str | int = "auto"
    job_queue: str | None = None  # "slurm" or "pbs": workers are batch jobs (dask-jobqueue, nnstd_dist.compute.hpc)
    job_options: tuple[str, ...] = ()  # KEY=VALUE overrides of Dask's jobqueue.<job_queue> settings
    jobs: tuple[int, int] | None = None  # adaptive scaling between MIN and MAX batch jobs; None = 1:1

    def __post_init__(self):
        if self.scheduler and self.scheduler_file:
            raise ClusterError("give `scheduler` or `scheduler_file`, not both")
        if self.job_queue and (self.scheduler or self.scheduler_file):
            raise ClusterError("`job_queue` starts its own scheduler: give it without `scheduler` or `scheduler_file`")
        if (self.job_options or self.jobs) and not self.job_queue:
            raise ClusterError("`job_options` and `jobs` go with `job_queue` (slurm or pbs)")
        if self.scheduler:
            _check_address_form(self.scheduler)
        # 'auto' is Dask's own share of the machine's (or batch job's) memory and is not checked: in a 500 MB job it
        # is below the floor, and with --cluster slurm it is not even used (a CI run's SLURM client job failed on it).
        if self.memory_limit != "auto":
            _check_memory_limit(self.memory_limit, self.threads_per_worker)

    @classmethod
    def from_env(cls, **kwargs) -> "ClusterSpec":
        """As given, falling back on the DASK_SCHEDULER_ADDRESS convention when no scheduler is named."""
        named = kwargs.get("scheduler") or kwargs.get("scheduler_file") or kwargs.get("job_queue")
        if not named and os.environ.get("DASK_SCHEDULER_ADDRESS"):
            kwargs["scheduler"] = os.environ["DASK_SCHEDULER_ADDRESS"]
        return cls(**kwargs)

    @property
    def external(self) -> bool:
        return bool(self.scheduler or self.scheduler_file or self.job_queue)

    @property
    def local_workers(self) -> int:
        return self.n_workers or _cores()

    def describe(self) -> str:
        if self.job_queue:
            low, high = self.jobs or (1, 1)
            return f"{self.job_queue} cluster of {low} to {high} batch jobs"
        if self.scheduler:
            return f"scheduler {self.scheduler}"
        if self.scheduler_file:
            return f"scheduler file {self.scheduler_file}"
        return f"local cluster of {self.local_workers} worker process(es) x {self.threads_per_worker} thread(s)"


@contextlib.contextmanager
def connect(spec: ClusterSpec):
    """A Client on the cluster ``spec`` names; a LocalCluster is started here and closed on exit."""
    environ = {**dask.config.get("distributed.nanny.pre-spawn-environ", {}), **_ONE_THREAD}
    # Saturation 1.0: a worker holds only the task it runs, so the last large tiles go to whichever
    # worker frees up first instead of waiting in a busy worker's queue (tasks last seconds: no gap to hide).
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environ, "distributed.scheduler.worker-saturation": 1.0}):
        if not spec.external:
            # CRITICAL: a task's own error reaches the client through its future; what workers log
            # besides is noise, such as heartbeats failing while an interrupted run shuts down.
            with _signals_blocked():
                cluster = LocalCluster(
                    n_workers=spec.local_workers, threads_per_worker=spec.threads_per_worker, processes=True,
                    memory_limit=spec.memory_limit, silence_logs=logging.CRITICAL, dashboard_address=":0",
                )
            with cluster, Client(cluster) as client:
                yield client
            return
        if spec.job_queue:
            from .hpc import make_job_cluster  # dask-jobqueue: the optional hpc extra

            with make_job_cluster(spec.job_queue, spec.job_options, spec.jobs or (1, 1)) as cluster, Client(cluster) as client:
                yield client
            return
        if spec.scheduler_file and not Path(spec.scheduler_file).is_file():
            raise ClusterError(f"{spec.scheduler_file}: no such scheduler file (the Dask scheduler writes it once started with this path as its scheduler file)")
        address = spec.scheduler or _check_scheduler_file(spec.scheduler_file)
        probe_scheduler(address)
        try:
            client = Client(spec.scheduler, scheduler_file=spec.scheduler_file, timeout="20s")
        except (OSError, TimeoutError) as exc:
            raise ClusterError(f"cannot reach the Dask {spec.describe()}: {exc}") from None
        with client:
            yield client


@contextlib.contextmanager
def _signals_blocked():
    """Block SIGINT and SIGTERM in this thread while the LocalCluster starts; the main thread gets them again after.

    Ctrl-C (and a batch system's SIGTERM) goes to the whole process group. Worker processes that
    took it would die mid-task with tracebacks and leaked semaphores; instead, the cluster's event
    loop thread and every worker process spawned from it inherit this mask and never see the
    signal, and the client, which does, cancels the run and stops the workers in order.
    """
    if not hasattr(signal, "pthread_sigmask"):  # Windows: nothing to block
        yield
        return
    from multiprocessing import resource_tracker

    # Started first: starting it later, from the thread that spawns workers, would unblock both signals there.
    resource_tracker.ensure_running()
    blocked = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)  # a signal that came meanwhile is delivered now


def _check_scheduler_file(path: str) -> str:
    """A scheduler file is JSON naming the scheduler's address (returned); distributed asserts on anything else."""
    try:
        info = json.loads(Path(path).read_text())
        ok = isinstance(info, dict) and isinstance(info.get("address"), str)
    except (OSError, ValueError, UnicodeDecodeError):
        ok = False
    if not ok:
        raise ClusterError(f"{path}: not a Dask scheduler file (JSON with an 'address', as a Dask scheduler writes it)")
    _check_address_form(info["address"])
    return info["address"]


def _check_address_form(address: str) -> None:
    """PROTOCOL://HOST:PORT or HOST:PORT of a protocol another process can reach; distributed raises ValueError deep inside otherwise.

    inproc:// names a scheduler inside the process that made it: from here, a wait and a traceback."""
    from distributed.comm.addressing import parse_address, parse_host_port

    try:
        protocol, location = parse_address(address)
        if protocol not in REMOTE_PROTOCOLS:
            raise ValueError(f"protocol {protocol!r} is not one a client elsewhere reaches ({', '.join(p + '://' for p in REMOTE_PROTOCOLS)})")
        parse_host_port(location)  # every remote protocol is HOST:PORT
    except ValueError as exc:
        raise ClusterError(f"`scheduler` {address!r} is not a Dask scheduler address such as tcp://host:8786: {exc}") from None


def probe_scheduler(address: str, seconds: float = PROBE_SECONDS) -> None:
    """A TCP address answers as a Dask scheduler does: on accepting, it sends its handshake's 8-byte length first.

    distributed would take any server's reply (an HTTP server's "HTTP/1.1") as that length and try
    to allocate it (3 EiB), or wait forever on a server that says nothing; here both are one error.
    """
    from distributed.comm.addressing import parse_address, parse_host_port

    protocol, location = parse_address(address)
    if protocol != "tcp":
        return  # TLS, websockets, UCX: their own handshake comes first
    host, port = parse_host_port(location)
    head = b""
    try:
        with socket.create_connection((host, port), timeout=seconds) as conn:
            conn.settimeout(seconds)
            while len(head) < 8:
                more = conn.recv(8 - len(head))
                if not more:
                    break
                head += more
    except socket.timeout:
        pass
    except OSError as exc:
        raise ClusterError(f"cannot reach the Dask scheduler at {address}: {exc.strerror or exc}") from None
    if len(head) < 8 or not 0 < int.from_bytes(head, "little") < 2**24:
        said = f"it sent {head[:8]!r}" if head else f"it said nothing within {seconds:g} s"
        raise ClusterError(f"{address} is not a Dask scheduler: {said} where a scheduler sends its handshake")


def _check_memory_limit(limit, threads: int) -> None:
    """A worker memory limit distributed can read, and enough for a worker to run a task: below it a worker pauses forever."""
    from distributed.worker_memory import parse_memory_limit

    if isinstance(limit, float) and not math.isfinite(limit):
        raise ClusterError(f"`memory_limit` {limit!r} is not a finite amount of memory such as 2GB or 512MiB (or auto)")
    try:
        nbytes = parse_memory_limit(limit, threads, _cores(), logger=log)
    except (ValueError, TypeError, OverflowError):  # "inf": int(inf) overflows inside distributed
        raise ClusterError(f"`memory_limit` {limit!r} is not an amount of memory such as 2GB or 512MiB (or auto)") from None
    if nbytes is not None and nbytes <= 0:
        raise ClusterError(f"`memory_limit` {limit!r} is not a positive amount of memory")
    if nbytes is not None and nbytes < MIN_WORKER_MEMORY:
        raise ClusterError(
            f"`memory_limit` {limit!r} is below the {MIN_WORKER_MEMORY // 2**20} MiB a worker needs (an idle worker process takes ~110 MB, "
            "and Dask pauses a worker at 80 % of its limit: no tile would ever start)"
        )


def active_client() -> Client | None:
    """The Client this process made current (a notebook's ``Client()``), as Dask's own libraries pick it up; None if none."""
    from distributed import default_client

    try:
        return default_client()
    except ValueError:
        return None


def threads(client: Client) -> int:
    """Worker threads on the cluster now."""
    return sum(client.nthreads().values())


def dashboard(client: Client) -> str | None:
    """The dashboard's address, or None (no bokeh, no dashboard)."""
    with contextlib.suppress(Exception):
        if "dashboard" in client.scheduler_info().get("services", {}):
            return client.dashboard_link
    return None
