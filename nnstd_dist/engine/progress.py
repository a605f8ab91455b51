"""Where a run stands (for the progress callback) and what it did (counts, times, memory): no dask here."""

from __future__ import annotations

from dataclasses import dataclass, field

from .tasks import TileResult

__all__ = ["Progress", "RunStats"]


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
