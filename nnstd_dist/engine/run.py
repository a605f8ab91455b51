"""The run loop: a store's remaining tiles as Dask tasks, largest first, a bounded window in flight, results as they finish.

A run holds the store's lock, creates the result arrays if needed (fixing the tile size), plans the
remaining tiles from ``tiles_done`` and runs ``tasks.compute_tile(path, a, b, N)`` for each, a bounded window
of them in flight and refilled as they finish (progress from the first finished tile at any N): no array
ever travels through the graph. A worker that dies takes its task with it; the scheduler reruns the
task elsewhere (up to ``distributed.scheduler.allowed-failures`` times), which is safe because a task
writes whole chunks and marks its tile only at the end.
"""

import contextlib
import functools
import itertools
import logging
import queue
import time
import uuid
from pathlib import Path
from typing import Callable

import dask
import numpy as np
from distributed import Client, Reschedule, get_worker
from distributed.scheduler import KilledWorker
from distributed.worker import WORKER_ANY_RUNNING

from ..budget import check_bytes
from ..errors import ClusterError, InputError, NNSTDError, StoreError
from ..kernel import SOLVERS, TIE_RULES
from ..store.topology_store import TopologyStore, locked
from ..tiles import n_tiles
from .connect import ClusterSpec, active_client, connect, dashboard, threads
from .environment import check_cluster
from .gate import EnvironmentGate
from .interrupts import deferred_stop
from .plan import Plan, TileChoice, choose_tile, make_plan
from .progress import Progress, RunStats, WorkLeft
from .tasks import TileResult, TileStopped, compute_tile, time_kernel

__all__ = ["compute", "plan_store", "run_plan"]

log = logging.getLogger(__name__)

IN_FLIGHT_PER_THREAD = 4  # futures submitted ahead per worker thread: no worker idles between tiles
MIN_IN_FLIGHT = 32  # an adaptive cluster may start with no workers
STOP_POLL_SECONDS = 0.1  # how long a Ctrl-C may wait for the run loop to see it
HEARTBEAT_SECONDS = 1.0  # progress shown at least this often while no tile finishes
REPORT_SECONDS = 2.0  # a running tile reports its pairs done at most this often
RETRIES = 2  # reruns of a task that raised (a flaky shared filesystem); worker deaths are counted separately

def run_plan(client: Client, store_path: str | Path, plan: Plan, on_progress: Callable[[Progress], None] | None = None) -> RunStats:
    """Submit one task per planned tile, largest first, and collect their results as they finish."""
    path = str(Path(store_path).resolve())  # workers may run elsewhere: an absolute path on the shared filesystem
    stats = RunStats(str(store_path), plan.n, plan.tile, workers=threads(client), dashboard=dashboard(client))
    tracker = _Tracker(plan, stats, on_progress)
    run = uuid.uuid4().hex[:8]  # keys and topic unique to this run: a shared scheduler may remember older ones
    gate = contextlib.ExitStack()
    gate.enter_context(EnvironmentGate(path, stats.refused).installed(client))
    # A bounded window of futures, refilled as tiles finish: at N = 10,000 (49,141 tiles) submitting
    # everything first kept the first result from the progress bar for minutes, and a window keeps
    # the scheduler's memory flat. Tiles go in largest-first order, so the window keeps LPT order.
    pending = iter(plan.tasks)
    window = max(IN_FLIGHT_PER_THREAD * stats.workers, MIN_IN_FLIGHT)
    events: queue.SimpleQueue = queue.SimpleQueue()  # finished futures and running tiles' reports, from Dask's threads
    topic = f"nnstd-progress-{run}"
    client.subscribe_topic(topic, lambda event: events.put(event[1]))
    gate.callback(client.unsubscribe_topic, topic)

    def submit(t):
        future = client.submit(
            _tile_on_worker, path, t.a, t.b, plan.n, topic, key=f"nnstd-tile-{t.a}-{t.b}-{run}", priority=t.n_pairs, retries=RETRIES, pure=False
        )
        future.add_done_callback(events.put)
        return future

    in_flight = {submit(t) for t in itertools.islice(pending, window)}
    # Ctrl-C and SIGTERM are taken between two waits, never inside Dask's calls (see interrupts.py).
    with deferred_stop() as stop:
        try:
            while in_flight:
                stop.check()
                try:
                    event = events.get(timeout=STOP_POLL_SECONDS)
                except queue.Empty:
                    tracker.tick()
                    continue
                if isinstance(event, (list, tuple)):  # a running tile's report: [a, b, pairs]
                    tracker.reported(*event)
                    tracker.tick()
                    continue
                in_flight.discard(event)
                result = _result(event)
                in_flight.update(submit(t) for t in itertools.islice(pending, 1))  # one out, one in
                tracker.finished(result)
        finally:
            client.cancel([f for f in in_flight if not f.done()])  # an error or Ctrl-C: stop the rest, keep what is done
            gate.close()
    stats.wall_seconds = time.perf_counter() - tracker.start
    stats.workers = len(stats.peak_rss)  # an adaptive cluster may have had none at the start: count who computed
    return stats


class _Tracker:
    """The run's Progress and WorkLeft, kept up to date from finished tiles and running tiles' reports, and shown:
    at the start, after every tile and at least every HEARTBEAT_SECONDS between."""

    def __init__(self, plan: Plan, stats: RunStats, on_progress: Callable[[Progress], None] | None):
        self.stats, self.on_progress = stats, on_progress
        self.planned = {(t.a, t.b): t.n_pairs for t in plan.tasks}
        prior = plan.choice.seconds_per_pair if plan.choice is not None else None
        self.work = WorkLeft(plan.tasks, stats.workers, prior)
        self.progress = Progress(0, plan.n_pairs, 0, len(plan), 0.0, stats.workers, stats.dashboard)
        self.start = time.perf_counter()
        self.shown = self.start
        self._show()

    def finished(self, result: TileResult) -> None:
        self.stats.add(result)
        self.work.finished(result, self.planned.get((result.a, result.b), result.pairs))
        self.progress.tiles_done = self.stats.tiles
        self._show()

    def reported(self, a: int, b: int, pairs: int) -> None:
        if (a, b) in self.planned:
            self.work.reported(a, b, pairs)

    def tick(self) -> None:
        if time.perf_counter() - self.shown >= HEARTBEAT_SECONDS:
            self._show()

    def _show(self) -> None:
        self.shown = time.perf_counter()
        p = self.progress
        p.pairs_done = min(p.pairs_total, self.stats.pairs + self.work.running_pairs)
        p.elapsed = self.shown - self.start
        p.eta_seconds = self.work.seconds()
        if self.on_progress:
            self.on_progress(p)


def _tile_on_worker(store_path: str, a: int, b: int, n: int, topic: str | None = None) -> TileResult:
    """compute_tile, stopped between two pairs once its worker starts closing, and then run again elsewhere.

    When a worker closes (an interrupted run, a batch job at its time limit), Dask lets its running
    task go on: the worker waits for it, its nanny kills the worker after a few seconds, and a killed
    worker leaves its semaphores to Python's resource tracker, which warns of them on the terminal. A
    tile stopped here writes nothing and goes back to the scheduler (Reschedule), as if it had not started.
    Every REPORT_SECONDS the pairs done so far go to the client under ``topic`` (progress finer than a tile).
    """
    worker = get_worker()
    last = [time.monotonic()]

    def report(pairs: int) -> None:
        if topic and time.monotonic() - last[0] >= REPORT_SECONDS:
            last[0] = time.monotonic()
            worker.log_event(topic, [a, b, pairs])

    try:
        return compute_tile(store_path, a, b, n, stop=lambda: worker.status not in WORKER_ANY_RUNNING, report=report)
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
        store.check_continuable(tile, solver, TIE_RULES[solver], max_layer)
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

    ``client`` (an existing Client) wins over ``cluster``; with neither, the active Client (a notebook's
    ``Client()``) is used if there is one, else a LocalCluster of one single-threaded worker process per
    core is started once there is work to do. ``solver`` and ``max_layer`` (layers 0..max_layer only) are recorded with the results; a store whose results used
    another solver, or fewer layers, needs ``recompute`` (a deeper layer needs all earlier matchings).
    """
    if tile is not None and tile < 1:
        raise StoreError(f"`tile` must be at least 1, got {tile}")
    if client is None and cluster is None:
        client = active_client()
    cluster = cluster or ClusterSpec()
    with contextlib.ExitStack() as stack:
        stop = stack.enter_context(deferred_stop())  # first in, last out: Ctrl-C is taken at a check, never inside Dask
        store = _open(stack, store_path, dry_run, command, force)
        if client is None and cluster.external:
            client = stack.enter_context(connect(cluster))  # connecting is cheap: needed to size the default tile
        if client is not None:
            # Workers may be other machines: refuse other library versions, or a store they cannot open, before any change.
            check_cluster(functools.partial(client.run, on_error="return"), store.path, need_write=not dry_run)
        slots = threads(client) if client is not None else cluster.local_workers * cluster.threads_per_worker
        # Results on disk that are damaged or missing: their tiles are reopened and recomputed.
        repaired = store.reopen_damaged_tiles() if store.has_results and not recompute and not dry_run else []
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


def _open(stack: contextlib.ExitStack, store_path, dry_run: bool, command: str | None, force: bool) -> TopologyStore:
    """The store: read-only for a dry run, else under its run lock for the rest of ``stack``."""
    if dry_run:
        return TopologyStore.open(store_path, mode="r")
    return stack.enter_context(locked(store_path, command or f"compute({str(store_path)!r})", force=force))
