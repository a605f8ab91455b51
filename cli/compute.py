"""`nnstd-dist compute --store PATH`: every missing pairwise distance of the store, on local cores or a Dask cluster."""

from __future__ import annotations

import signal
import sys
import time

import click

from nnstd_dist.engine.hpc import KINDS

from .options import quiet_option, solver_option, store_option
from .text import TILE_RULE, clock, command_line, count, describe_plan, run_summary

EPILOG = """Examples:

\b
  nnstd-dist compute --store topos.zarr
  nnstd-dist compute --store topos.zarr --solver fast --max-layer 0     # Figure 4 (layer 0), fast
  nnstd-dist compute --store topos.zarr --dry-run
  nnstd-dist compute --store topos.zarr --recompute --solver exact --max-layer all   # start over with other settings
  nnstd-dist compute --store topos.zarr --n-workers 8 --tile 32
  dask scheduler --scheduler-file sched.json &   # plus `dask worker --scheduler-file sched.json` per node
  nnstd-dist compute --store /shared/topos.zarr --scheduler-file sched.json
  nnstd-dist compute --store /shared/topos.zarr --cluster slurm --jobs 1:20 --cluster-option memory=16GB
  nnstd-dist compute --store s3://lab-bucket/topos.zarr --scheduler tcp://dask-scheduler:8786   # no shared filesystem
"""


class ProgressBar:
    """Pairs on disk / total (and those running tiles hold), pairs/s and the time left on stderr: one line redrawn on a
    terminal; otherwise (a log file) a line, with the clock time, at the first pairs, at every 10 %, at least every
    LOG_SECONDS and at the end. Notes (what the run starts) are lines of their own, first."""

    WIDTH = 28
    LOG_SECONDS = 60.0

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.announced = False
        self.shown_decile = 0
        self.shown_pairs = False
        self.last_draw = 0.0
        self.last_line = time.monotonic()

    def __call__(self, p) -> None:
        if p.note:  # what the run starts, a change of solver: before any count
            self._line(p.note)
            return
        if not self.announced:
            self.announced = True
            where = f"; dashboard {p.dashboard}" if p.dashboard else ""
            # An adaptive cluster (--cluster) often starts with no worker: its batch jobs are still queued.
            on = f"on {count(p.workers, 'worker thread')}" if p.workers else "as workers join"
            self._line(f"{p.pairs_total} pairs in {count(p.tiles_total, 'tile')} {on}{where}")
        finished = p.tiles_done == p.tiles_total
        now = time.monotonic()
        if self.tty:
            if finished or now - self.last_draw > 0.1:
                self.last_draw = now
                self.stream.write("\r" + self._text(p) + ("\n" if finished else "\x1b[K"))
                self.stream.flush()
            return
        decile = 10 * p.pairs_done // max(1, p.pairs_total)
        started = p.pairs_done + p.pairs_running > 0
        first = started and not self.shown_pairs
        if first or decile > self.shown_decile or finished or now - self.last_line >= self.LOG_SECONDS:
            self.shown_decile, self.shown_pairs, self.last_line = max(decile, self.shown_decile), self.shown_pairs or started, now
            self._line(f"{time.strftime('%H:%M:%S')} {self._text(p)}")

    def _line(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def _text(self, p) -> str:
        fraction = p.pairs_done / p.pairs_total if p.pairs_total else 1.0
        filled = round(fraction * self.WIDTH)
        eta = "--" if p.eta is None else clock(p.eta)
        running = f" (+{p.pairs_running} running)" if p.pairs_running else ""  # the bar itself counts only pairs on disk
        return f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {p.pairs_done}/{p.pairs_total} pairs{running}  {p.rate:.1f} pairs/s  ETA {eta}"


class LayerLimit(click.ParamType):
    """--max-layer: a layer number >= 0, or `all`."""

    name = "K|all"

    def convert(self, value, param, ctx):
        if value == "all" or isinstance(value, int):
            return value
        if isinstance(value, str) and value.isdigit():
            return int(value)
        self.fail(f"{value!r} is not a layer number (0, 1, ...) or 'all'", param, ctx)


class Terminated(BaseException):
    """SIGTERM (a batch system's time limit, `kill`): unwinds like Ctrl-C, so the run stops in order."""


def _raise_terminated(signum, frame):
    raise Terminated()


@click.command(epilog=EPILOG)
@store_option
@click.option(
    "--tile", type=int, default=None,  # checked once, by the library
    help="Networks per tile side: one task computes a B x B block of pairs. Fixed when the results are "
    f"created [default: adapted to the kernel: a few pairs and networks are timed before the run, and a tile is "
    f"{TILE_RULE}; --dry-run shows the timing and the choice].",
)
@click.option("--n-workers", type=click.IntRange(min=1), default=None, help="Local cluster: worker processes [default: one per core].")
@click.option("--threads-per-worker", type=click.IntRange(min=1), default=None, help="Local cluster: threads per worker process [default: 1].")
@click.option("--memory-limit", default=None, help="Local cluster: memory limit per worker, e.g. 2GB [default: auto, RAM / workers].")
@click.option("--scheduler", metavar="ADDRESS", default=None, help="Use the Dask scheduler at ADDRESS (or set DASK_SCHEDULER_ADDRESS).")
@click.option("--scheduler-file", type=click.Path(dir_okay=False), default=None, help="Use the Dask scheduler described in this file.")
@click.option("--cluster", "job_queue", type=click.Choice(list(KINDS)), default=None,
              help="Run the workers as SLURM or PBS batch jobs (dask-jobqueue, the hpc extra), as set in Dask's jobqueue.yaml.")
@click.option("--cluster-option", "job_options", multiple=True, metavar="KEY=VALUE",
              help="With --cluster: override one jobqueue.yaml setting, e.g. memory=16GB; repeatable.")
@click.option("--jobs", default=None, metavar="MIN:MAX", help="With --cluster: scale between MIN and MAX batch jobs [default: 1:1].")
@solver_option
@click.option(
    "--max-layer", type=LayerLimit(), default=None, metavar="K|all",
    help="Compute layers 0..K only (the paper's Figure 4 is layer 0) [default: the store's once it has distances, "
    "else all]. Recorded in the store; plot/export "
    "of a later layer is an error. A larger K later means --recompute: layer k needs the matchings of layers 0..k-1, "
    "which are not stored, so adding layers costs as much as starting over.",
)
@click.option("--recompute", is_flag=True, help="Forget all computed distances and start afresh (needed to change --tile, --solver or "
              "raise --max-layer). Interrupted, the same command resumes it; only after a finished run does it start over.")
@click.option("--force", is_flag=True, help="Take over the store's lock even if another run seems to hold it (a dead run on another host).")
@click.option("--dry-run", is_flag=True, help="Print what would be computed and exit; changes nothing.")
@quiet_option
def command(store, tile, n_workers, threads_per_worker, memory_limit, scheduler, scheduler_file, job_queue, job_options, jobs,
            solver, max_layer, recompute, force, dry_run, quiet):
    """Compute all missing pairwise NNSTD distances of a store.

    Pairs are grouped in tiles of networks; each tile is one Dask task that reads its networks
    from the store, computes its pairs and writes them back, so an interrupted run resumes where
    it stopped and networks ingested later cost only their own pairs. Without --scheduler or
    --scheduler-file a local cluster of one single-threaded process per core is started. With a
    remote cluster the store must be on a filesystem every worker can see, at the same path, or
    in a bucket every worker reaches (--store s3://bucket/topos.zarr; docs/cluster.md).

    Ctrl-C or SIGTERM (a batch system's time limit) stops the run in order: running tiles are
    cancelled, finished ones kept, the store unlocked, exit code 130 or 143. A second Ctrl-C while it
    stops interrupts that too.
    """
    from nnstd_dist.engine.hpc import parse_jobs
    from nnstd_dist.engine import ClusterSpec, compute

    local = {"n_workers": n_workers, "threads_per_worker": threads_per_worker, "memory_limit": memory_limit}
    hpc = {"job_queue": job_queue, "job_options": job_options, "jobs": parse_jobs(jobs) if jobs else None}
    cluster = ClusterSpec.from_env(scheduler=scheduler, scheduler_file=scheduler_file, **hpc, **{k: v for k, v in local.items() if v is not None})
    given = [f"--{k.replace('_', '-')}" for k, v in local.items() if v is not None]
    if cluster.external and given:
        raise click.UsageError(f"{', '.join(given)} configure the local cluster; they do not apply to the {cluster.describe()}")
    command = command_line(click.get_current_context())
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        plan, stats = compute(
            store, tile=tile, recompute=recompute, force=force, cluster=cluster, dry_run=dry_run, solver=solver, max_layer=max_layer,
            on_progress=None if quiet else ProgressBar(), quiet=quiet, command=command,
        )
    except (KeyboardInterrupt, Terminated) as stop:
        # Everything below a finished tile is on disk and marked done; the lock is released by now.
        from nnstd_dist.engine.run import pairs_kept
        from nnstd_dist.errors import NNSTDError

        what = "Terminated" if isinstance(stop, Terminated) else "Interrupted"
        try:
            # an external cluster is not ours to stop: a tile it was running may still finish and be kept
            kept = ("at least " if cluster.external else "") + "{} of {} pairs are kept".format(*pairs_kept(store))
        except (NNSTDError, KeyboardInterrupt):  # stopped before the store was read, or a second Ctrl-C while counting
            kept = "finished tiles are kept"
        click.echo(f"\n{what}: {kept} in {store}; to resume: {command}", err=True)
        sys.exit(143 if isinstance(stop, Terminated) else 130)  # 128 + the signal's number, as a shell reports it
    finally:
        signal.signal(signal.SIGTERM, previous)
    if dry_run:
        layers = "all" if plan.max_layer is None else f"0..{plan.max_layer}"
        resumed = "; resumes the interrupted recompute" if plan.resumed else ""
        click.echo(
            f"store:           {store}\n{describe_plan(plan)}\nsolver:          {plan.solver}, layers {layers}{resumed}\n"
            f"would run on:    {cluster.describe()}"
        )
    elif not quiet:
        click.echo(run_summary(stats))
