"""Tiles to Dask tasks: which cluster, one task per remaining tile largest first, progress. The only module that imports dask.

A run holds the store's lock, creates the result arrays if needed (fixing the tile size), plans the
remaining tiles from ``tiles_done`` and runs ``tasks.compute_tile(path, a, b, N)`` for each, a bounded window
of them in flight and refilled as they finish (progress from the first finished tile at any N): no array
ever travels through the graph. A worker that dies takes its task with it; the scheduler reruns the
task elsewhere (up to ``distributed.scheduler.allowed-failures`` times), which is safe because a task
writes whole chunks and marks its tile only at the end.
"""

from __future__ import annotations

import contextlib
import functools
import json
import itertools
import logging
import os
import queue
import signal
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import dask
import numpy as np
from distributed import Client, LocalCluster, Reschedule, WorkerPlugin, get_worker
from distributed.scheduler import KilledWorker
from distributed.worker import WORKER_ANY_RUNNING

from .environment import check_cluster, compare, environment_report
from .interrupts import deferred_stop
from ..errors import ClusterError, InputError, NNSTDError, StoreError
from ..kernel.distance import SOLVERS, TIE_RULES
from .plan import Plan, TileChoice, choose_tile, make_plan
from ..tiles import n_tiles
from ..budget import check_bytes
from ..store.topology_store import TopologyStore, locked
from .tasks import TileResult, TileStopped, compute_tile, time_kernel

__all__ = ["ClusterSpec", "EnvironmentGate", "Progress", "RunStats", "compute", "connect", "plan_store", "run_plan"]

log = logging.getLogger(__name__)

IN_FLIGHT_PER_THREAD = 4  # futures submitted ahead per worker thread: no worker idles between tiles
MIN_IN_FLIGHT = 32  # an adaptive cluster may start with no workers
STOP_POLL_SECONDS = 0.1  # how long a Ctrl-C may wait for the run loop to see it
RETRIES = 2  # reruns of a task that raised (a flaky shared filesystem); worker deaths are counted separately
# One BLAS/OpenMP thread per task thread: worker processes share the cores, they must not oversubscribe.
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
        if spec.scheduler_file:
            _check_scheduler_file(spec.scheduler_file)
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


def _check_scheduler_file(path: str) -> None:
    """A scheduler file is JSON naming the scheduler's address; distributed asserts on anything else."""
    try:
        info = json.loads(Path(path).read_text())
        ok = isinstance(info, dict) and isinstance(info.get("address"), str)
    except (OSError, ValueError, UnicodeDecodeError):
        ok = False
    if not ok:
        raise ClusterError(f"{path}: not a Dask scheduler file (JSON with an 'address', as a Dask scheduler writes it)")


def _threads(client: Client) -> int:
    return sum(client.nthreads().values())


def _dashboard(client: Client) -> str | None:
    with contextlib.suppress(Exception):  # no bokeh, no dashboard
        if "dashboard" in client.scheduler_info().get("services", {}):
            return client.dashboard_link
    return None


@dataclass
class Progress:
    """Where a run stands, passed to the progress callback at the start and after every tile."""

    pairs_done: int
    pairs_total: int
    tiles_done: int
    tiles_total: int
    elapsed: float
    workers: int
    dashboard: str | None = None

    @property
    def rate(self) -> float:
        """Pairs per second so far."""
        return self.pairs_done / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds left at the rate so far; None before the first tile."""
        return (self.pairs_total - self.pairs_done) / self.rate if self.rate > 0 else None


@dataclass
class RunStats:
    """What a compute run did: counts, times and memory, from the tasks' own timers."""

    store: str
    n_networks: int
    tile: int
    pairs: int = 0  # pairs computed in this run
    tiles: int = 0  # tiles written in this run
    wall_seconds: float = 0.0
    task_seconds: float = 0.0  # sum of task durations
    kernel_seconds: float = 0.0  # sum of time inside the kernel
    read_seconds: float = 0.0  # sum of time reading and preparing networks
    write_seconds: float = 0.0  # sum of time writing tiles
    workers: int = 0  # worker threads at the start; after the run, the worker processes that ran at least one tile
    dashboard: str | None = None
    peak_rss: dict[str, int] = field(default_factory=dict)  # worker -> peak resident bytes
    refused: dict[str, str] = field(default_factory=dict)  # worker address -> why it got no task (EnvironmentGate)
    repaired: list[str] = field(default_factory=list)  # done tiles found damaged or missing on disk, recomputed

    @property
    def pairs_per_second(self) -> float:
        return self.pairs / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def add(self, result: TileResult) -> None:
        self.pairs += result.pairs
        self.tiles += 1
        self.task_seconds += result.seconds
        self.kernel_seconds += result.kernel_seconds
        self.read_seconds += result.read_seconds
        self.write_seconds += result.write_seconds
        self.peak_rss[result.worker] = max(self.peak_rss.get(result.worker, 0), result.peak_rss)


def run_plan(client: Client, store_path: str | Path, plan: Plan, on_progress: Callable[[Progress], None] | None = None) -> RunStats:
    """Submit one task per planned tile, largest first, and collect their results as they finish."""
    path = str(Path(store_path).resolve())  # workers may run elsewhere: an absolute path on the shared filesystem
    stats = RunStats(str(store_path), plan.n, plan.tile, workers=_threads(client), dashboard=_dashboard(client))
    progress = Progress(0, plan.n_pairs, 0, len(plan), 0.0, stats.workers, stats.dashboard)
    if on_progress:
        on_progress(progress)
    start = time.perf_counter()
    run = uuid.uuid4().hex[:8]  # keys unique to this run: a shared scheduler may remember older ones
    gate = contextlib.ExitStack()
    gate.enter_context(EnvironmentGate(path, stats.refused).installed(client))
    # A bounded window of futures, refilled as tiles finish: at N = 10,000 (49,141 tiles) submitting
    # everything first kept the first result from the progress bar for minutes, and a window keeps
    # the scheduler's memory flat. Tiles go in largest-first order, so the window keeps LPT order.
    pending = iter(plan.tasks)
    window = max(IN_FLIGHT_PER_THREAD * stats.workers, MIN_IN_FLIGHT)

    finished: queue.SimpleQueue = queue.SimpleQueue()  # filled by Dask's callback thread as tiles finish

    def submit(t):
        future = client.submit(
            _tile_on_worker, path, t.a, t.b, plan.n, key=f"nnstd-tile-{t.a}-{t.b}-{run}", priority=t.n_pairs, retries=RETRIES, pure=False
        )
        future.add_done_callback(finished.put)
        return future

    in_flight = {submit(t) for t in itertools.islice(pending, window)}
    # Ctrl-C and SIGTERM are taken between two waits, never inside Dask's calls (see interrupts.py).
    with deferred_stop() as stop:
        try:
            while in_flight:
                stop.check()
                try:
                    future = finished.get(timeout=STOP_POLL_SECONDS)
                except queue.Empty:
                    continue
                in_flight.discard(future)
                result = _result(future)
                in_flight.update(submit(t) for t in itertools.islice(pending, 1))  # one out, one in
                stats.add(result)
                progress.pairs_done, progress.tiles_done = stats.pairs, stats.tiles
                progress.elapsed = time.perf_counter() - start
                if on_progress:
                    on_progress(progress)
        finally:
            client.cancel([f for f in in_flight if not f.done()])  # an error or Ctrl-C: stop the rest, keep what is done
            gate.close()
    stats.wall_seconds = time.perf_counter() - start
    stats.workers = len(stats.peak_rss)  # an adaptive cluster may have had none at the start: count who computed
    return stats


class EnvironmentGate(WorkerPlugin):
    """Checks every worker, including those joining later (adaptive scaling), before it runs a task; a mismatched one is closed.

    A worker sets its plugins up before it reads any message from the scheduler, so a task sent to it
    meanwhile waits. A worker that differs from the client (``environment.compare``: versions, store
    access) is paused, removed from the scheduler as an expected departure (its waiting tasks go to
    the other workers and count as no failure) and closed with its nanny, which ends its batch job
    and frees the allocation. It is named on the client through the scheduler's event log.
    """

    name = "nnstd-dist-environment-gate"
    topic = "nnstd-dist-refused"

    def __init__(self, store_path: str, refused: dict[str, str] | None = None):
        self.store_path = store_path
        self.client_report = environment_report(None)
        self.refused = {} if refused is None else refused  # filled on the client, never sent to workers

    def __getstate__(self):
        return {"store_path": self.store_path, "client_report": self.client_report, "refused": {}}

    async def setup(self, worker) -> None:
        from distributed.core import Status

        report = environment_report(self.store_path)
        # compare() names the worker in front of each problem; the message below names it once.
        problems = [p.removeprefix(f"worker {worker.address} ").removeprefix(f"{worker.address} ")
                    for p in compare(self.client_report, {worker.address: report}, need_write=True)]
        if not problems:
            return
        worker.status = Status.paused  # from here on it starts no task
        job = os.environ.get("SLURM_JOB_ID") or os.environ.get("PBS_JOBID")  # what the user can look up, or scancel
        where = f"on {report['hostname']}" + (f", batch job {job}" if job else "")
        worker.log_event(self.topic, {"worker": worker.address, "where": where, "problems": problems})
        await worker.scheduler.unregister(address=worker.address, stimulus_id=f"nnstd-dist-refused-{time.time()}", expected=True, close=False)
        worker.loop.add_callback(worker.close, nanny=True, reason="nnstd-dist: environment differs from the client's")

    @contextlib.contextmanager
    def installed(self, client: Client):
        """Registered on every worker present and to come, for the duration of the block; refusals logged and kept."""
        def on_refused(event) -> None:
            _, message = event
            why = "; ".join(message["problems"])
            self.refused[message["worker"]] = why
            log.warning("refused worker %s %s: %s; the run goes on with the others", message["worker"], message["where"], why)

        client.subscribe_topic(self.topic, on_refused)
        client.register_plugin(self, name=self.name)
        try:
            yield self
        finally:
            with contextlib.suppress(Exception):  # a lost cluster has no plugin left to remove
                client.unregister_worker_plugin(self.name)
            client.unsubscribe_topic(self.topic)


def _tile_on_worker(store_path: str, a: int, b: int, n: int) -> TileResult:
    """compute_tile, stopped between two pairs once its worker starts closing, and then run again elsewhere.

    When a worker closes (an interrupted run, a batch job at its time limit), Dask lets its running
    task go on: the worker waits for it, its nanny kills the worker after a few seconds, and a killed
    worker leaves its semaphores to Python's resource tracker, which warns of them on the terminal. A
    tile stopped here writes nothing and goes back to the scheduler (Reschedule), as if it had not started.
    """
    worker = get_worker()
    try:
        return compute_tile(store_path, a, b, n, stop=lambda: worker.status not in WORKER_ANY_RUNNING)
    except TileStopped:
        raise Reschedule() from None


def _result(future) -> TileResult:
    try:
        return future.result()
    except KilledWorker as exc:
        raise ClusterError(
            f"task {future.key} killed {dask.config.get('distributed.scheduler.allowed-failures') + 1} workers in a row "
            f"(out of memory? try a larger `memory_limit`): {exc}"
        ) from None
    except NNSTDError:
        raise
    except (OSError, TimeoutError) as exc:
        raise ClusterError(f"lost the Dask cluster during task {future.key}: {exc}") from None


def plan_store(
    store: TopologyStore, tile: int | None, recompute: bool, slots: int, create: bool = True,
    solver: str = "exact", max_layer: int | None = None,
) -> Plan:
    """The plan for ``store``; creates (or with ``recompute`` recreates) its result arrays if ``create``."""
    n = store.n_networks
    if solver not in SOLVERS:
        raise InputError(f"unknown solver {solver!r}; choose one of {', '.join(SOLVERS)}")
    if max_layer is not None and not 0 <= max_layer < store.n_layers:
        raise InputError(f"`max_layer` {max_layer} out of range: the store's networks have {store.n_layers} layers (0..{store.n_layers - 1})")
    if store.has_results and not recompute:
        if tile is not None and tile != store.tile:
            raise StoreError(f"{store.path}: results were created with tile {store.tile}; `tile` {tile} needs `recompute`")
        if solver != store.solver:
            raise StoreError(f"{store.path}: its distances were computed with the {store.solver} solver; `solver` {solver} needs `recompute`")
        if TIE_RULES[solver] != store.tie_rule:  # deeper layers depend on the tie choice: never mix two
            raise StoreError(
                f"{store.path}: its distances came from tie rule {store.tie_rule} of the {solver} solver, this version uses "
                f"rule {TIE_RULES[solver]}; finishing them needs `recompute`"
            )
        if _layers_beyond(max_layer, store.max_layer):
            # Layer k needs the matchings of layers 0..k-1, which are not stored: more layers cost a full run.
            raise StoreError(
                f"{store.path}: layers 0..{store.max_layer} were computed; more layers need every layer again, so `max_layer` "
                f"{'all' if max_layer is None else max_layer} needs `recompute`"
            )
        return make_plan(n, store.tile, store.tile_markers(), TileChoice(store.tile, "stored"))
    if create:
        store.check_masks()  # damaged inputs stop the run before the results are reset (or the kernel is timed)
    # The default tile is a few seconds of kernel work: a few pairs are timed here, on the client.
    choice = TileChoice(tile, "given") if tile else choose_tile(n, slots, *time_kernel(store, solver, max_layer))
    tile = choice.tile
    check_bytes(f"`tile` {tile}", f"a tile of {store.n_layers} x {tile} x {tile} distances (written and read whole)", 3 * 8 * store.n_layers * tile * tile)
    if create:
        store.init_results(tile, solver=solver, max_layer=max_layer, tie_rule=TIE_RULES[solver])
    k = n_tiles(n, tile)
    return make_plan(n, tile, np.zeros((k, k), dtype=np.int64), choice)


def _layers_beyond(wanted: int | None, stored: int | None) -> bool:
    """Whether layers 0..wanted (None: all) reach past the stored layers 0..stored (None: all)."""
    return stored is not None and (wanted is None or wanted > stored)


def compute(
    store_path: str | Path,
    *,
    tile: int | None = None,
    recompute: bool = False,
    force: bool = False,
    cluster: ClusterSpec | None = None,
    client: Client | None = None,
    dry_run: bool = False,
    on_progress: Callable[[Progress], None] | None = None,
    command: str | None = None,
    solver: str = "exact",
    max_layer: int | None = None,
) -> tuple[Plan, RunStats | None]:
    """Compute every missing distance of the store; returns the plan and the run's stats (None if ``dry_run``).

    ``client`` (an existing Client) wins over ``cluster``; with neither, a LocalCluster of one
    single-threaded worker process per core is started once there is work to do. ``solver`` and
    ``max_layer`` (layers 0..max_layer only) are recorded with the results; a store whose results used
    another solver, or fewer layers, needs ``recompute`` (a deeper layer needs all earlier matchings).
    """
    if tile is not None and tile < 1:
        raise StoreError(f"`tile` must be at least 1, got {tile}")
    cluster = cluster or ClusterSpec()
    with contextlib.ExitStack() as stack:
        stop = stack.enter_context(deferred_stop())  # first in, last out: Ctrl-C is taken at a check, never inside Dask
        if dry_run:
            store = TopologyStore.open(store_path, mode="r")
        else:
            store = stack.enter_context(locked(store_path, command or f"compute({str(store_path)!r})", force=force))
        if client is None and cluster.external:
            client = stack.enter_context(connect(cluster))  # connecting is cheap: needed to size the default tile
        if client is not None:
            # Workers may be other machines: refuse other library versions, or a store they cannot open, before any change.
            check_cluster(functools.partial(client.run, on_error="return"), store.path, need_write=not dry_run)
        slots = _threads(client) if client is not None else cluster.local_workers * cluster.threads_per_worker
        repaired = []
        if store.has_results and not recompute and not dry_run:
            # Results on disk that are damaged or missing: their tiles are reopened and recomputed.
            repaired = store.damaged_tiles()
            for a, b, _ in repaired:
                store.mark_tile(a, b, 0)
        plan = plan_store(store, tile, recompute, slots, create=not dry_run, solver=solver, max_layer=max_layer)
        if dry_run:
            return plan, None
        if not plan.tasks:
            return plan, RunStats(str(store.path), plan.n, plan.tile)
        if client is None:
            client = stack.enter_context(connect(cluster))
        stop.check()  # a Ctrl-C while the cluster started or the tile was timed
        stats = run_plan(client, store.path, plan, on_progress)
        stats.repaired = [f"tile ({a}, {b}): {why}" for a, b, why in repaired]
        return plan, stats
