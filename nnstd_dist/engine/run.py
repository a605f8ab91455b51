"""The run loop: a store's remaining tiles as Dask tasks, largest first, a bounded window in flight, results as they finish.

A run holds the store's lock, creates the result arrays if needed (fixing the tile size), plans the
remaining tiles from the tile records (store/results.py) and runs ``tasks.compute_tile(path, a, b, N)`` for each, a bounded window
of them in flight and refilled as they finish: no array ever travels through the graph. Running tiles
report their pairs done every REPORT_SECONDS (a Dask event), so progress and the time left
(progress.Tracker) move before the first tile ends. A resume plans from the records' headers alone; the check
of every done tile's distances runs in a thread beside it (``scan``). A tile row whose tasks are all done
is packed into one file (``pack``). A worker that dies takes its task
with it; the scheduler reruns the task elsewhere (up to ``distributed.scheduler.allowed-failures``
times), which is safe because a task writes its tile as one file, renamed into place at the end.
"""

import collections
import contextlib
import dataclasses
import functools
import itertools
import logging
import queue
import threading
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
from ..tiles import n_tiles, pairs_in_done_tiles, tile_task, total_pairs
from .clusters import ClusterSpec, active_client, connect, dashboard, threads
from .environment import check_cluster
from .gate import EnvironmentGate
from .interrupts import deferred_stop
from .plan import Plan, TileChoice, choose_tile, make_plan
from .progress import Progress, RunStats, Tracker, watched_bar
from ..warmup import compile_fast_solver
from .tasks import TileResult, TileStopped, check_digests, compute_tile, time_kernel

__all__ = ["compute", "plan_store", "run_plan", "resolve_settings", "pairs_kept"]

log = logging.getLogger(__name__)

IN_FLIGHT_PER_THREAD = 4  # futures submitted ahead per worker thread: no worker idles between tiles
MIN_IN_FLIGHT = 32  # an adaptive cluster may start with no workers
STOP_POLL_SECONDS = 0.1  # how long a Ctrl-C may wait for the run loop to see it
REPORT_SECONDS = 2.0  # a running tile reports its pairs done at most this often
RETRIES = 2  # reruns of a task that raised (a flaky shared filesystem); worker deaths are counted separately

def run_plan(
    client: Client, store_path: str | Path, plan: Plan, on_progress: Callable[[Progress], None] | None = None,
    scan: Callable[[], list] | None = None, reopen: Callable[[int, int], None] | None = None, generation: int | None = None,
    pack: Callable[[int], None] | None = None,
) -> RunStats:
    """Submit one task per planned tile, largest first, and collect their results as they finish.

    ``scan()``, if given, runs in a thread beside the tiles and returns the done tiles it found damaged,
    ``[(a, b, why), ...]``; the run then reopens each, ``reopen(a, b)`` (on this thread: a scan still
    reading when the run stops writes nothing), and computes them too. ``generation``: the store's generation
    the plan was made for; a task that finds another (a replace, another run's forced recompute) fails, retries too.
    ``pack(a)``: called once no task of tile row a is left (the store packs a complete row into one file).
    """
    # Workers may run elsewhere: an absolute path on the shared filesystem, or the store's storage (a URL and its options).
    path = str(Path(store_path).resolve()) if isinstance(store_path, (str, Path)) else store_path
    stats = RunStats(str(store_path), plan.n, plan.tile, workers=threads(client), dashboard=dashboard(client))
    tracker = Tracker(plan, stats, on_progress)
    gate = contextlib.ExitStack()
    gate.enter_context(EnvironmentGate(path, stats.refused).installed(client))
    window = _Window(client, path, plan, gate, generation)
    scanner = _Scan(scan) if scan is not None else None
    rows = _RowsLeft(plan.tasks, pack)
    # Ctrl-C and SIGTERM are taken between two waits, never inside Dask's calls (see interrupts.py).
    with deferred_stop() as stop:
        try:
            while window.in_flight or (scanner is not None and not scanner.taken):
                stop.check()
                if scanner is not None and scanner.ready():
                    tasks = scanner.take(plan, reopen)
                    stats.repaired = [f"tile ({a}, {b}): {why}" for a, b, why in scanner.found]
                    tracker.add(tasks)
                    window.extend(tasks)
                    rows.add(tasks)
                try:
                    event = window.events.get(timeout=STOP_POLL_SECONDS)
                except queue.Empty:
                    tracker.tick()
                    continue
                if isinstance(event, (list, tuple)):  # a running tile's report: [a, b, pairs, seconds]
                    tracker.reported(*event)
                    tracker.tick()
                    continue
                result = window.finished(event)
                tracker.finished(result)
                rows.finished(result.a)
        finally:
            client.cancel([f for f in window.in_flight if not f.done()])  # an error or Ctrl-C: stop the rest, keep what is done
            gate.close()
    stats.wall_seconds = time.perf_counter() - tracker.start
    stats.workers = len(stats.peak_rss)  # an adaptive cluster may have had none at the start: count who computed
    return stats


class _RowsLeft:
    """Tasks left in each tile row; a row with none left is packed (``pack(a)``, if given)."""

    def __init__(self, tasks, pack: Callable[[int], None] | None):
        self.left, self.pack = collections.Counter(t.a for t in tasks), pack

    def add(self, tasks) -> None:
        self.left.update(t.a for t in tasks)

    def finished(self, a: int) -> None:
        self.left[a] -= 1
        if self.pack is not None and not self.left[a]:
            self.pack(a)


class _Window:
    """A bounded window of tile futures, refilled as tiles finish.

    At N = 10,000 (49,141 tiles) submitting everything first kept the first result from the progress bar
    for minutes, and a window keeps the scheduler's memory flat. Tiles go in largest-first order, so the
    window keeps LPT order. ``events`` receives finished futures and running tiles' reports, from Dask's threads.
    """

    def __init__(self, client: Client, path: str, plan: Plan, gate: contextlib.ExitStack, generation: int | None = None):
        self.client, self.path, self.n, self.generation = client, path, plan.n, generation
        self.run = uuid.uuid4().hex[:8]  # keys and topic unique to this run: a shared scheduler may remember older ones
        self.topic = f"nnstd-progress-{self.run}"
        self.events: queue.SimpleQueue = queue.SimpleQueue()
        client.subscribe_topic(self.topic, lambda event: self.events.put(event[1]))
        gate.callback(client.unsubscribe_topic, self.topic)
        self.pending = iter(plan.tasks)
        size = max(IN_FLIGHT_PER_THREAD * threads(client), MIN_IN_FLIGHT)
        self.in_flight = {self._submit(t) for t in itertools.islice(self.pending, size)}

    def _submit(self, t):
        future = self.client.submit(
            _tile_on_worker, self.path, t.a, t.b, self.n, self.topic, self.generation, key=f"nnstd-tile-{t.a}-{t.b}-{self.run}",
            priority=t.n_pairs, retries=RETRIES, pure=False,
        )
        future.add_done_callback(self.events.put)
        return future

    def finished(self, future) -> TileResult:
        """The result of a finished future; one out, one in."""
        self.in_flight.discard(future)
        result = _result(future)
        self.in_flight.update(self._submit(t) for t in itertools.islice(self.pending, 1))
        return result

    def extend(self, tasks) -> None:
        """More tiles, submitted at once (a handful: damaged tiles found by the scan)."""
        self.in_flight.update(self._submit(t) for t in tasks)


class _Scan:
    """The damaged-tile scan (every done tile's chunk files read and checked), in a thread beside the run: a resume
    starts computing at once instead of first reading every stored distance (about 2 GB at N = 10,000)."""

    def __init__(self, scan: Callable[[], list]):
        self.found: list = []
        self.error: BaseException | None = None
        self.taken = False
        self.thread = threading.Thread(target=self._run, args=(scan,), name="nnstd-damage-scan", daemon=True)
        self.thread.start()

    def _run(self, scan) -> None:
        try:
            self.found = scan()
        except BaseException as exc:  # raised in the run loop, on its thread
            self.error = exc

    def ready(self) -> bool:
        return not self.taken and not self.thread.is_alive()

    def take(self, plan: Plan, reopen: Callable[[int, int], None] | None) -> list:
        """The damaged tiles, reopened, as tasks (raises what the scan raised)."""
        self.taken = True
        if self.error is not None:
            raise self.error
        for a, b, _ in self.found:
            if reopen is not None:
                reopen(a, b)
        return [tile_task(a, b, plan.tile, plan.n, 0) for a, b, _ in self.found]


def _tile_on_worker(store_path: str, a: int, b: int, n: int, topic: str | None = None, generation: int | None = None) -> TileResult:
    """compute_tile, stopped between two pairs once its worker starts closing, and then run again elsewhere.

    When a worker closes (an interrupted run, a batch job at its time limit), Dask lets its running
    task go on: the worker waits for it, its nanny kills the worker after a few seconds, and a killed
    worker leaves its semaphores to Python's resource tracker, which warns of them on the terminal. A
    tile stopped here writes nothing and goes back to the scheduler (Reschedule), as if it had not started.
    Every REPORT_SECONDS the pairs done so far, and the seconds they took, go to the client under ``topic``
    (progress finer than a tile, and a price per pair before the first tile is done).
    """
    worker = get_worker()
    start = time.monotonic()
    last = [start]

    def report(pairs: int) -> None:
        now = time.monotonic()
        if topic and now - last[0] >= REPORT_SECONDS:
            last[0] = now
            worker.log_event(topic, [a, b, pairs, now - start])

    try:
        return compute_tile(store_path, a, b, n, stop=lambda: worker.status not in WORKER_ANY_RUNNING, report=report, generation=generation)
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
    solver: str = "exact", max_layer: int | None = None, before_timing: Callable[[], None] | None = None,
) -> Plan:
    """The plan for ``store``; creates (or with ``recompute`` recreates) its result arrays if ``create``.

    A ``recompute`` that was interrupted (the store's ``recomputing``, with these settings and pairs left) is
    resumed, not started a third time. ``before_timing()``, if given, is called before the kernel is timed."""
    plan = _plan(store, tile, recompute, slots, create, solver, max_layer, before_timing)
    return dataclasses.replace(plan, solver=solver, max_layer=max_layer)


def _plan(store, tile, recompute, slots, create, solver, max_layer, before_timing) -> Plan:
    n = store.n_networks
    if solver not in SOLVERS:
        raise InputError(f"unknown solver {solver!r}; choose one of {', '.join(SOLVERS)}")
    if max_layer is not None and not 0 <= max_layer < store.n_layers:
        raise InputError(f"`max_layer` {max_layer} out of range: the store's networks have {store.n_layers} layers (0..{store.n_layers - 1})")
    if store.has_results and (not recompute or _resumes(store, tile, solver, max_layer)):
        store.check_continuable(tile, solver, TIE_RULES[solver], max_layer)
        damaged: list = []  # records whose header is damaged or does not vouch for its place: their tiles are redone
        markers = store.tile_markers(damaged)  # a dry run plans them as not done, and writes nothing
        for a in sorted({a for a, _, _ in damaged} if create else ()):
            store.drop_tiles(a, {b for x, b, _ in damaged if x == a})
        plan = make_plan(n, store.tile, markers, TileChoice(store.tile, "stored"), repaired=damaged, resumed=recompute)
        if plan.tasks or not recompute:
            return plan
        # A recompute that finished every pair but was killed before it could say so: this one starts over.
    if create:
        store.check_masks()  # damaged inputs stop the run before the results are reset (or the kernel is timed)
        check_digests(store)  # and so do masks that are not their networks' (swapped chunks pass their checksums)
    # The default tile is a few seconds of kernel work: a few pairs are timed here, on the client.
    if not tile and before_timing is not None:
        before_timing()
    choice = TileChoice(tile, "given") if tile else choose_tile(n, slots, *time_kernel(store, solver, max_layer))
    tile = choice.tile
    check_bytes(f"`tile` {tile}", f"a tile of {store.n_layers} x {tile} x {tile} distances (written and read whole)", 3 * 8 * store.n_layers * tile * tile)
    if create:
        store.init_results(tile, solver=solver, max_layer=max_layer, tie_rule=TIE_RULES[solver], recompute=store.has_results)
    k = n_tiles(n, tile)
    return make_plan(n, tile, np.zeros((k, k), dtype=np.int64), choice)


def _resumes(store: TopologyStore, tile: int | None, solver: str, max_layer: int | None) -> bool:
    """Whether a recompute with these settings continues the store's unfinished one instead of starting afresh."""
    same = (tile in (None, store.tile), solver == store.solver, TIE_RULES[solver] == store.tie_rule, max_layer == store.max_layer)
    return store.recomputing and all(same)


def resolve_settings(store: TopologyStore, solver: str | None, max_layer: int | str | None, recompute: bool) -> tuple[str, int | None, str | None]:
    """The run's solver and last layer: those given, else the store's when it has distances, else exact and every layer
    (``max_layer="all"``: every layer); and one line saying what a recompute changes, else None."""
    every = max_layer == "all"
    max_layer = None if every else max_layer
    if max_layer is not None and not isinstance(max_layer, (int, np.integer)):
        raise InputError(f"`max_layer` must be a layer number or 'all', got {max_layer!r}")
    if not store.has_results:
        return solver or "exact", max_layer, None
    stored = SUCCESSORS.get(store.solver, store.solver)
    solver = solver or stored
    max_layer = max_layer if every or max_layer is not None else store.max_layer
    was, now = _solver_words(store.solver, store.max_layer), _solver_words(solver, max_layer)
    if recompute and was != now:
        return solver, max_layer, f"The store's distances were computed with {was}; recomputing every pair with {now}."
    return solver, max_layer, None


SUCCESSORS = {"sparse": "fast"}  # a stored solver that is no more -> the one a run uses unless told


def _solver_words(solver: str, max_layer: int | None) -> str:
    return f"the {solver} solver, " + ("every layer" if max_layer is None else f"layers 0..{max_layer}")


def pairs_kept(store_path: str | Path, storage_options: dict | None = None) -> tuple[int, int]:
    """(pairs computed and on disk, all pairs) of a store: what an interrupted run kept."""
    store = TopologyStore.open(store_path, mode="r", storage_options=storage_options)
    done = pairs_in_done_tiles(store.tile_markers(checked=False), store.n_networks, store.tile) if store.has_results else 0
    return done, total_pairs(store.n_networks)


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
    quiet: bool = False,
    command: str | None = None,
    solver: str | None = None,
    max_layer: int | str | None = None,
    storage_options: dict | None = None,
) -> tuple[Plan, RunStats | None]:
    """Compute every missing distance of the store; returns the plan and the run's stats (None if ``dry_run``).

    ``client`` (an existing Client) wins over ``cluster``; with neither, the active Client (a notebook's
    ``Client()``) is used if there is one, else a LocalCluster of one single-threaded worker process per
    core is started once there is work to do. ``solver`` and ``max_layer`` (layers 0..max_layer only; "all": every
    layer) are recorded with the results; left out, a store with distances keeps its own, else exact and every layer.
    Finishing results of another solver, or fewer layers, needs ``recompute`` (a deeper layer needs all earlier
    matchings); an interrupted ``recompute`` is resumed by the same call. ``on_progress(Progress)`` is called with a
    ``note`` (the line saying what starts) and then at the start, after every tile and every second; without it a
    progress bar (tqdm) is shown where a person watches (stderr a terminal, or a notebook), unless ``quiet``.
    ``store_path`` may be a URL (``s3://bucket/topos.zarr``), with fsspec's ``storage_options`` for its backend: the
    workers then read and write the bucket themselves, with the same URL and options.
    """
    if on_progress is None and not quiet and not dry_run:
        on_progress = watched_bar()
    if client is None and cluster is None:
        client = active_client()
    cluster = cluster or ClusterSpec()
    where = "the Dask client's {} worker threads" if client is not None else f"the {cluster.describe()}"
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        stop = stack.enter_context(deferred_stop())  # first in, last out: Ctrl-C is taken at a check, never inside Dask
        if on_progress is not None and hasattr(on_progress, "close"):
            stack.callback(on_progress.close)
        store = _open(stack, store_path, dry_run, command, force, storage_options)
        solver, max_layer, change = resolve_settings(store, solver, max_layer, recompute)
        if client is None and cluster.external:
            client = stack.enter_context(connect(cluster))  # connecting is cheap: needed to size the default tile
        if client is not None:
            # Workers may be other machines: refuse other library versions, or a store they cannot open, before any change.
            check_cluster(functools.partial(client.run, on_error="return"), store.storage, need_write=not dry_run)
        slots = threads(client) if client is not None else cluster.local_workers * cluster.threads_per_worker
        where = where.format(slots)
        say = _Say(on_progress if not dry_run else None, start, slots, total_pairs(store.n_networks))
        say(change)
        words = _solver_words(solver, max_layer)

        def before_timing() -> None:  # the first line comes before the kernel is timed (and compiled) or the cluster starts
            say(f"Starting: {store.n_networks * (store.n_networks - 1) // 2} pairs of {store.n_networks} networks with {words}, "
                f"on {where}; timing a few pairs to choose the tile")
            if solver == "fast":
                compile_fast_solver(quiet)  # here, once, so that local workers load numba's cache instead of each compiling

        settings = dict(tile=tile, recompute=recompute, slots=slots, solver=solver, max_layer=max_layer, before_timing=before_timing)
        resuming = store.has_results and not recompute
        plan, repaired, scanned = _plan_and_repair(store, dry_run, settings)
        if dry_run:
            return plan, None
        if not plan.tasks:
            return plan, RunStats(str(store.path), plan.n, plan.tile)
        if not say.said:
            what = "Resuming the interrupted recompute" if plan.resumed else ("Resuming" if resuming else "Starting")
            say(f"{what}: {plan.n_pairs} of {plan.total_pairs} pairs left, tile {plan.tile}, {words}, on {where}")
        if solver == "fast" and not cluster.external:
            compile_fast_solver(quiet)  # local workers then load numba's cache; remote ones compile in their first task
        if client is None:
            client = stack.enter_context(connect(cluster))
        stop.check()  # a Ctrl-C while the cluster started or the tile was timed
        scan = functools.partial(_find_damaged, store, plan) if (resuming or plan.resumed) and not scanned else None
        stats = run_plan(
            client, store.storage, plan, on_progress, scan=scan, reopen=store.drop_tile, generation=store.generation, pack=store.pack_row
        )
        store.pack_rows()  # rows completed by an earlier, killed run, or by the scan's repairs
        stats.solver = store.solver
        store.finish_recompute()  # every pair is done: a later recompute starts over
        stats.repaired = [f"tile ({a}, {b}): {why}" for a, b, why in repaired] + stats.repaired
        return plan, stats


class _Say:
    """Lines for the person watching (``Progress.note``) through the progress callback, before the run's own progress."""

    def __init__(self, on_progress: Callable[[Progress], None] | None, start: float, workers: int, pairs: int):
        self.on_progress, self.start, self.workers, self.pairs, self.said = on_progress, start, workers, pairs, False

    def __call__(self, line: str | None) -> None:
        if line and self.on_progress is not None:
            self.said = self.said or line.startswith("Starting")
            # counts a callback may divide by: every pair of the store (the plan may not be made yet), none done
            self.on_progress(Progress(0, self.pairs, 0, 1, time.perf_counter() - self.start, self.workers, note=line))


def _plan_and_repair(store: TopologyStore, dry_run: bool, settings: dict) -> tuple[Plan, list, bool]:
    """The plan, the damaged tiles reopened before it, and whether every done tile's record was scanned already.

    Results on disk that are damaged are recomputed: a damaged header or a record out of its place is found by the plan, the
    distances by a scan of every done tile beside the run (a resume computes at once, see run_plan), or here,
    before the run, when nothing else is left to do."""
    if settings["tile"] is not None and settings["tile"] < 1:
        raise StoreError(f"`tile` must be at least 1, got {settings['tile']}")
    plan = plan_store(store, create=not dry_run, **settings)
    if dry_run or plan.tasks or not store.has_results or settings["recompute"]:
        return plan, list(plan.repaired), False
    repaired = list(plan.repaired) + store.reopen_damaged_tiles()
    if not repaired:
        store.pack_rows()  # tile files a killed run left in rows that are complete
    return (plan_store(store, **settings) if repaired else plan), repaired, True


def _find_damaged(store: TopologyStore, plan: Plan) -> list[tuple[int, int, str]]:
    """Done tiles whose records are damaged (read only); not those of the plan (their tasks redo them
    as needed, and a second writer of a running tile would race it)."""
    planned = {(t.a, t.b) for t in plan.tasks}
    return [(a, b, why) for a, b, why in store.damaged_tiles() if (a, b) not in planned]


def _open(stack: contextlib.ExitStack, store_path, dry_run: bool, command: str | None, force: bool, options=None) -> TopologyStore:
    """The store: read-only for a dry run, else under its run lock for the rest of ``stack``."""
    if dry_run:
        return TopologyStore.open(store_path, mode="r", storage_options=options)
    return stack.enter_context(locked(store_path, command or f"compute({str(store_path)!r})", force=force, storage_options=options))
