"""Where a run stands (for the progress callback), how long it has left (WorkLeft), and what it did (RunStats): no dask here.

The time left is estimated from the work remaining, not from the rate so far: every remaining tile's
pairs, priced at the seconds per pair measured on finished tiles of its kind (diagonal tiles hold
pairs of neighbouring, often near-identical networks, which are faster), divided among the worker
threads. Before the first tile the plan's kernel timing prices the pairs. The plan runs equal-sized
tiles in a shuffled order (plan.make_plan), so the tiles finished first are a fair sample of the rest.
"""

from __future__ import annotations

import sys

import time
from dataclasses import dataclass, field
from typing import Callable

from .tasks import TileResult

__all__ = ["Progress", "RunStats", "WorkLeft", "Tracker", "TqdmBar", "watched_bar"]

HEARTBEAT_SECONDS = 1.0  # progress shown at least this often while no tile finishes


@dataclass
class Progress:
    """Where a run stands, passed to the progress callback at the start, after every tile and every few seconds between.

    ``pairs_done`` counts the pairs of finished tiles, all on disk; ``pairs_running`` those running tiles have
    computed so far (lost if the run stops now). A Progress with a ``note`` carries one line to show the person
    watching, once (what the run starts, a change of solver), before the run's first counts.
    """

    pairs_done: int
    pairs_total: int
    tiles_done: int
    tiles_total: int
    elapsed: float
    workers: int
    dashboard: str | None = None
    eta_seconds: float | None = None  # from the work remaining (WorkLeft); None: not known yet
    pairs_running: int = 0
    note: str | None = None

    @property
    def rate(self) -> float:
        """Pairs per second so far."""
        return self.pairs_done / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds left: from the work remaining when known, else at the rate so far; None before any pair."""
        if self.eta_seconds is not None:
            return self.eta_seconds
        return (self.pairs_total - self.pairs_done) / self.rate if self.rate > 0 else None


class WorkLeft:
    """The seconds of work left in a run, priced per kind of tile (diagonal or not) from the tiles finished so far.

    ``tasks``: the plan's TileTasks; ``workers``: worker threads; ``seconds_per_pair``: the plan's kernel
    timing (None if the tile size was not timed), the price until a tile of either kind has finished.
    """

    def __init__(self, tasks, workers: int, seconds_per_pair: float | None = None):
        self.left = {True: 0, False: 0}  # diagonal? -> pairs not yet in a finished tile
        self.add(tasks)
        self.spent = {True: [0.0, 0], False: [0.0, 0]}  # diagonal? -> [task seconds, pairs] of finished tiles
        self.running: dict[tuple[int, int], tuple[int, float]] = {}  # (a, b) -> pairs and seconds a running tile has reported
        self.workers = max(1, workers)
        self.prior = seconds_per_pair

    def add(self, tasks) -> None:
        """More tiles to compute (damaged ones, reopened during the run)."""
        for t in tasks:
            self.left[t.diagonal] += t.n_pairs

    def finished(self, result: TileResult, planned_pairs: int) -> None:
        """Tile (result.a, result.b), planned for ``planned_pairs``, is done."""
        diagonal = result.a == result.b
        self.left[diagonal] -= planned_pairs
        self.running.pop((result.a, result.b), None)
        if result.pairs:
            self.spent[diagonal][0] += result.seconds
            self.spent[diagonal][1] += result.pairs

    def reported(self, a: int, b: int, pairs: int, seconds: float = 0.0) -> None:
        """A running tile (a, b) has computed ``pairs`` of its pairs in its first ``seconds``."""
        if pairs >= self.running.get((a, b), (0, 0.0))[0]:
            self.running[(a, b)] = (pairs, seconds)

    @property
    def running_pairs(self) -> int:
        return sum(pairs for pairs, _ in self.running.values())

    def price(self, diagonal: bool) -> float | None:
        """Seconds per pair of this kind of tile, measured on finished and running tiles of its kind, else of the other
        kind, else the plan's timing (the kernel alone, on the client: a first guess)."""
        for kind in (diagonal, not diagonal):
            seconds, pairs = self.spent[kind]
            for (a, b), (done, spent) in self.running.items():
                if (a == b) == kind and spent > 0:
                    seconds, pairs = seconds + spent, pairs + done
            if pairs:
                return seconds / pairs
        return self.prior

    def seconds(self) -> float | None:
        """Wall seconds left: the work left divided among the workers; None when nothing prices it yet."""
        running = {True: 0, False: 0}
        for (a, b), (pairs, _) in self.running.items():
            running[a == b] += pairs
        total = 0.0
        for diagonal in (True, False):
            pairs = max(0, self.left[diagonal] - running[diagonal])
            if pairs:
                price = self.price(diagonal)
                if price is None:
                    return None
                total += pairs * price
        return total / self.workers


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
    uncertified: int = 0  # pairs computed in this run whose fast-solver choices were not all certified
    solver: str = "exact"

    @property
    def pairs_per_second(self) -> float:
        return self.pairs / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def add(self, result: TileResult) -> None:
        self.pairs += result.pairs
        self.uncertified += result.uncertified
        self.tiles += 1
        self.task_seconds += result.seconds
        self.kernel_seconds += result.kernel_seconds
        self.read_seconds += result.read_seconds
        self.write_seconds += result.write_seconds
        self.peak_rss[result.worker] = max(self.peak_rss.get(result.worker, 0), result.peak_rss)


class Tracker:
    """The run's Progress and WorkLeft, kept up to date from finished tiles and running tiles' reports, and shown:
    at the start, after every tile and at least every HEARTBEAT_SECONDS between."""

    def __init__(self, plan, stats: RunStats, on_progress: Callable[[Progress], None] | None):
        self.stats, self.on_progress = stats, on_progress
        self.planned = {(t.a, t.b): t.n_pairs for t in plan.tasks}
        self.done: set[tuple[int, int]] = set()  # a report may arrive after its tile's result: it is ignored
        prior = plan.choice.seconds_per_pair if plan.choice is not None else None
        self.work = WorkLeft(plan.tasks, stats.workers, prior)
        self.progress = Progress(0, plan.n_pairs, 0, len(plan), 0.0, stats.workers, stats.dashboard)
        self.start = time.perf_counter()
        self.shown = self.start
        self._show()

    def finished(self, result: TileResult) -> None:
        self.stats.add(result)
        self.done.add((result.a, result.b))
        self.work.finished(result, self.planned.get((result.a, result.b), result.pairs))
        self.progress.tiles_done = self.stats.tiles
        self._show()

    def reported(self, a: int, b: int, pairs: int, seconds: float = 0.0) -> None:
        if (a, b) in self.planned and (a, b) not in self.done:
            self.work.reported(a, b, pairs, seconds)

    def add(self, tasks) -> None:
        """Tiles added to the run (damaged ones, reopened)."""
        for t in tasks:
            self.planned[(t.a, t.b)] = t.n_pairs
            self.done.discard((t.a, t.b))
        self.work.add(tasks)
        self.progress.pairs_total += sum(t.n_pairs for t in tasks)
        self.progress.tiles_total += len(tasks)

    def tick(self) -> None:
        if time.perf_counter() - self.shown >= HEARTBEAT_SECONDS:
            self._show()

    def _show(self) -> None:
        self.shown = time.perf_counter()
        p = self.progress
        p.pairs_done = min(p.pairs_total, self.stats.pairs)  # only pairs on disk: a stop now keeps exactly these
        p.pairs_running = min(p.pairs_total - p.pairs_done, self.work.running_pairs)
        p.elapsed = self.shown - self.start
        p.eta_seconds = self.work.seconds()
        if self.on_progress:
            self.on_progress(p)


class TqdmBar:
    """An ``on_progress`` for scripts and notebooks: a tqdm bar of pairs on disk (tqdm.auto: a widget in a notebook), notes above it."""

    def __init__(self, **tqdm_options):
        self.options, self.bar = {"unit": " pairs", "smoothing": 0, **tqdm_options}, None

    def __call__(self, p: Progress) -> None:
        from tqdm.auto import tqdm

        if p.note:
            tqdm.write(p.note, file=self.options.get("file") or sys.stderr)  # beside the bar (tqdm.write's default is stdout)
            return
        if self.bar is None:
            self.bar = tqdm(total=p.pairs_total, **self.options)
        self.bar.total = p.pairs_total  # tiles reopened during the run add pairs
        self.bar.n = p.pairs_done
        self.bar.set_postfix_str(f"{p.pairs_running} running" if p.pairs_running else "", refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        """End the bar (the run is over, or stopped)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def watched_bar() -> TqdmBar | None:
    """A TqdmBar where a person watches the run (stderr a terminal, or a Jupyter kernel), else None: no output in a batch log."""
    import sys

    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    notebook = shell is not None and type(shell).__name__ == "ZMQInteractiveShell"
    watched = notebook or (hasattr(sys.stderr, "isatty") and sys.stderr.isatty())
    return TqdmBar() if watched else None
