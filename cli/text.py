"""How the commands word numbers for people: counts with their noun, durations, clock times (byte sizes: budget.byte_size)."""

from __future__ import annotations

import click

from nnstd_dist.engine.plan import MAX_TILE, MAX_TILE_SECONDS, MIN_TILE, READ_SHARE, TILE_SECONDS, TILE_STEP, TILES_PER_WORKER

from nnstd_dist.tiles import total_pairs
# The default tile's rule in words (plan.default_tile), for compute's --help and --dry-run, and each of its bounds
# (plan.tile_and_bound), for --dry-run to say which one decided.
BOUND_WORDS = {
    "work": f">= {TILE_SECONDS:.0f} s of kernel work", "read": f"reading < {100 * READ_SHARE:.0f} % of it",
    "cap": f"<= {MAX_TILE_SECONDS:.0f} s", "workers": f">= {TILES_PER_WORKER} tiles per worker",
    "min": f"the {MIN_TILE}-network minimum", "max": f"the {MAX_TILE}-network maximum",
}
TILE_RULE = (
    f"the smallest multiple of {TILE_STEP} in {MIN_TILE}..{MAX_TILE} with {BOUND_WORDS['work']} and {BOUND_WORDS['read']}, "
    f"{BOUND_WORDS['cap']}, {BOUND_WORDS['workers']}"
)


def command_line(ctx) -> str:
    """The command as typed (options given on the command line, in the command's order), e.g. to repeat it."""
    import shlex

    from click.core import ParameterSource

    words = ["nnstd-dist", ctx.info_name]
    for param in ctx.command.params:
        if ctx.get_parameter_source(param.name) is not ParameterSource.COMMANDLINE:
            continue
        value = ctx.params[param.name]
        if not isinstance(param, click.Option):
            words.append(str(value))
        elif param.is_flag and not param.secondary_opts:
            words += [param.opts[-1]] if value else []
        elif param.is_flag:
            words.append(param.opts[-1] if value else param.secondary_opts[-1])
        else:
            words += [w for v in (value if param.multiple else [value]) for w in (max(param.opts, key=len), _word(v))]
    return shlex.join(words)


def _word(value) -> str:
    """An option's value as typed: JSON for --storage-options (a dict once parsed), else its text."""
    import json

    return json.dumps(value) if isinstance(value, dict) else str(value)


def count(n: int, noun: str) -> str:
    """``3 tiles``, ``1 tile``: the noun takes an s unless n is 1."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def duration(seconds: float) -> str:
    """``12.3 s`` under a minute, then ``4m05s`` and ``1h02m03s``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, s = divmod(int(round(seconds)), 60)
    return f"{minutes // 60}h{minutes % 60:02d}m{s:02d}s" if minutes >= 60 else f"{minutes}m{s:02d}s"


def clock(seconds: float) -> str:
    """``4:05`` or ``1:02:03``: a time left, as a progress bar shows it."""
    minutes, s = divmod(int(round(seconds)), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{s:02d}" if minutes >= 60 else f"{minutes}:{s:02d}"


def describe_plan(plan) -> str:
    """A few lines for `compute --dry-run`: networks, tile size, tiles and pairs remaining."""
    largest = f" (one task each, the largest of {count(plan.tasks[0].n_pairs, 'pair')})" if plan.tasks else ""
    return "\n".join(
        [
            f"networks:        {plan.n}",
            f"tile size:       {plan.tile} x {plan.tile} networks ({count(plan.n_tiles, 'tile')} in the lower triangle){tile_reason(plan.choice)}",
            f"tiles remaining: {len(plan.tasks)}{largest}",
            f"pairs remaining: {plan.n_pairs} of {plan.total_pairs}",
        ]
    )


def tile_reason(choice) -> str:
    """Why the plan has its tile size (a plan.TileChoice), as a clause after the size; "" if unknown."""
    if choice is None:
        return ""
    if choice.reason == "given":
        return "; given by --tile"
    if choice.reason == "stored":
        return "; fixed when the results were created (--recompute to change it)"
    if choice.reason == "untimed":
        return "; the smallest default: no pair to time"
    decided = f"; {BOUND_WORDS[choice.bound]} decided" if choice.bound in BOUND_WORDS else ""
    return (
        f"; from a timing here (median of {count(choice.pairs_timed, 'pair')}: {1e3 * choice.seconds_per_pair:.3g} ms per pair, "
        f"{1e3 * (choice.seconds_per_network or 0):.3g} ms to read and prepare a network): {TILE_RULE}{decided}: "
        f"~{choice.tile_seconds:.2g} s per tile, reading {100 * choice.read_share:.2g} %"
    )


def _processes(n: int) -> str:
    """``1 worker process``, ``2 worker processes``: the workers that ran tiles (the first progress line counts threads)."""
    return f"{n} worker {'process' if n == 1 else 'processes'}"


def run_summary(stats) -> str:
    """One line on what a compute run did (a compute.progress.RunStats)."""
    if not stats.tiles:
        return f"Nothing to compute: all {total_pairs(stats.n_networks)} pairs of {stats.n_networks} networks are done ({stats.store})"
    repaired = ""
    if getattr(stats, "repaired", None):
        shown = "; ".join(stats.repaired[:3]) + ("; ..." if len(stats.repaired) > 3 else "")
        repaired = f"Recomputed {count(len(stats.repaired), 'tile')} whose stored results were damaged or missing ({shown}). "
    return repaired + (
        f"Computed {stats.pairs} pairs in {count(stats.tiles, 'tile')} of {stats.tile} x {stats.tile} in {duration(stats.wall_seconds)} "
        f"({stats.pairs_per_second:.1f} pairs/s; tiles ran on {_processes(stats.workers)}); distances in {stats.store}"
    ) + _uncertified(stats)


def _uncertified(stats) -> str:
    """The fast solver's pairs not certified invariant and symmetric (README, "The fast solver"), if it ran."""
    if getattr(stats, "solver", "exact") != "fast":
        return ""
    if not stats.uncertified:
        return "; every one certified (fast solver: each tie it broke was between interchangeable neurons)"
    return f"; {stats.uncertified} of them not certified (fast solver: a tie it broke was not proven harmless; see `info`)"
