"""plan.py: tiles cover every pair once; a grown population reopens exactly the pairs of its new networks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nnstd_dist.cli.text import describe_plan
from nnstd_dist.engine.plan import MAX_TILE, MAX_TILE_SECONDS, MIN_TILE, READ_SHARE, TILE_SECONDS, Plan, TileChoice, choose_tile, default_tile, make_plan
from nnstd_dist.tiles import TileTask, extent, n_tiles, pairs_in_done_tiles, tile_task, total_pairs


def done_at(m: int, n: int, tile: int) -> np.ndarray:
    """tiles_done of a population computed completely at size m, then grown to n (what append leaves)."""
    k = n_tiles(n, tile)
    done = np.zeros((k, k), dtype=np.int64)
    km = n_tiles(m, tile)
    done[:km, :km][np.tril_indices(km)] = m
    return done


def planned_pairs(plan: Plan) -> list[tuple[int, int]]:
    return [pair for task in plan.tasks for pair in task.pairs()]


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 60), tile=st.integers(1, 20))
def test_fresh_plan_covers_every_pair_once(n, tile):
    plan = make_plan(n, tile, np.zeros((n_tiles(n, tile),) * 2, dtype=np.int64))
    pairs = planned_pairs(plan)
    assert len(pairs) == len(set(pairs)) == total_pairs(n) == plan.n_pairs
    assert set(pairs) == {(i, j) for i in range(n) for j in range(i)}
    assert len(plan) == plan.n_tiles  # every tile has work, even a 1 x 1 diagonal one (its 0)


@settings(max_examples=60, deadline=None)
@given(m=st.integers(1, 50), grow=st.integers(0, 30), tile=st.integers(1, 16))
def test_grown_population_reopens_only_pairs_with_a_new_network(m, grow, tile):
    n = m + grow
    plan = make_plan(n, tile, done_at(m, n, tile))
    pairs = planned_pairs(plan)
    assert sorted(pairs) == sorted((i, j) for i in range(m, n) for j in range(i))
    assert plan.n_pairs == total_pairs(n) - total_pairs(m)
    # reopened tiles are exactly those whose extent grew
    for task in plan.tasks:
        assert extent(task.a, tile, m) != task.rows or extent(task.b, tile, m) != task.cols


def test_incremental_count_of_the_issue():
    plan = make_plan(15, 4, done_at(10, 15, 4))
    assert plan.n_pairs == 15 * 14 // 2 - 10 * 9 // 2 == 60


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 80), tile=st.integers(1, 16))
def test_tasks_are_largest_first(n, tile):
    sizes = [t.n_pairs for t in make_plan(n, tile, np.zeros((n_tiles(n, tile),) * 2, dtype=np.int64)).tasks]
    assert sizes == sorted(sizes, reverse=True)


def test_complete_population_has_no_tasks():
    plan = make_plan(90, 16, done_at(90, 90, 16))
    assert len(plan) == 0 and plan.n_pairs == 0
    assert repr(plan) == "<Plan N=90 tile=16: 0 of 21 tiles, 0 of 4005 pairs to compute>"


def test_marker_beyond_population_is_not_trusted():
    # done at 20 but the population is 10: the store was rebuilt, nothing in the block can be kept
    task = tile_task(1, 0, 4, 10, 20)
    assert task.valid_upto == 0 and not task.complete and task.n_pairs == 16


def test_partially_valid_diagonal_tile():
    task = TileTask(2, 2, 4, 12, done_at=10)  # rows 8..11; pairs with i < 10 are valid
    assert task.pairs() == [(10, 8), (10, 9), (11, 8), (11, 9), (11, 10)]
    assert task.n_pairs == 5 and task.size == 6


def test_repr_and_describe():
    plan = make_plan(23, 4, np.zeros((6, 6), dtype=np.int64))
    assert repr(plan) == "<Plan N=23 tile=4: 21 of 21 tiles, 253 of 253 pairs to compute>"
    assert "pairs remaining: 253 of 253" in describe_plan(plan)
    assert repr(next(t for t in plan.tasks if (t.a, t.b) == (1, 0))) == "TileTask((1, 0), rows 4:8, cols 0:4, 16 of 16 pairs)"


@pytest.mark.parametrize(
    "n, workers, seconds, network, tile",
    [
        (1000, 2, 0.030, 0.0, 16),  # paper-shaped pairs, ~30 ms: 4 s is sqrt(4 / 0.03) = 11.5, up to the floor
        (1000, 2, 0.025, 0.008, 32),  # reading 8 ms per network: 2 x 8 / (0.02 x 25) = 32 keeps it at 2 %
        (1000, 2, 0.0084, 0.0029, 40),  # layer 0 only: 34.5 for reading, up to a multiple of 8
        (1000, 2, 0.003, 0.0, 40),  # sqrt(1333) = 36.5 -> 40
        (1000, 2, 0.4, 0.05, 16),  # reading wants 12.5, 4 s wants 3.2: the floor
        (1000, 2, 0.030, 1.0, 40),  # reading wants 3,333, but 60 s of kernel work caps the tile at sqrt(2000) = 44.7 -> 40
        (100_000, 2, 1e-6, 0.0, MAX_TILE),  # 2000 -> the ceiling
        (300, 2, 1e-6, 0.0, 96),  # tiles of 256 would be 3 tiles; 96 is the largest giving 4 x 5 / 2 = 10 >= 4 per worker
        (90, 2, 1e-4, 0.0, 24),  # 200 wanted, but 24 is the largest that still gives 2 workers 4 tiles
        (90, 1, 1e-4, 0.0, 40),  # one worker: 3 x 4 / 2 = 6 tiles of 40 are enough
        (10, 2, 1e-4, 0.0, MIN_TILE),  # one tile whatever the size: the floor
        (10_000, 128, 1e-4, 0.0, 200),
        (1000, 2, 1.2, 0.0, MIN_TILE),  # a slow kernel never goes below the floor (10,000 networks: < 200,000 tasks)
        (1000, 2, None, None, MIN_TILE),  # nothing timed
    ],
)
def test_default_tile_from_the_timings(n, workers, seconds, network, tile):
    assert default_tile(n, workers, seconds, network) == tile
    assert default_tile(n, workers, seconds, network) == tile  # deterministic: the same inputs, the same tile
    assert tile % 8 == 0 and MIN_TILE <= tile <= MAX_TILE


def test_default_tile_against_its_rule():
    """The smallest allowed multiple of 8 with >= TILE_SECONDS of kernel work and reading <= READ_SHARE of it (else the
    largest allowed), then the largest not above it that gives 4 tiles per worker; allowed: 16..256 and <= MAX_TILE_SECONDS."""
    for n in (10, 90, 500, 1000, 10_000):
        for workers in (1, 2, 64):
            for seconds in (1e-6, 1e-4, 1e-3, 5e-3, 0.03, 1.0):
                for network in (0.0, 1e-4, 3e-3, 0.05):
                    allowed = [t for t in range(MIN_TILE, MAX_TILE + 1, 8) if t == MIN_TILE or t * t * seconds <= MAX_TILE_SECONDS]
                    good = [t for t in allowed if t * t * seconds >= TILE_SECONDS and 2 * network <= READ_SHARE * t * seconds]
                    wanted = min(good) if good else max(allowed)
                    fits = [t for t in range(MIN_TILE, wanted + 1, 8) if n_tiles(n, t) * (n_tiles(n, t) + 1) // 2 >= 4 * workers]
                    assert default_tile(n, workers, seconds, network) == max(fits, default=MIN_TILE)


def test_choose_tile_says_why():
    assert choose_tile(1000, 2, 0.001, 0.0005, 3) == TileChoice(64, "timed", 0.001, 3, 0.0005, "work")
    choice = choose_tile(1000, 2, 0.001, 0.0005, 3)
    assert choice.tile_seconds == pytest.approx(64 * 64 * 0.001) and choice.read_share == pytest.approx(2 * 0.0005 / (64 * 0.001))
    assert choose_tile(1, 2, None, None, 0) == TileChoice(MIN_TILE, "untimed")


@pytest.mark.parametrize(
    "choice, text",
    [
        (TileChoice(56, "timed", 0.001, 3, 0.0005), "56 x 56 networks (10 tiles in the lower triangle); from a timing here (median of 3 pairs: "
         "1 ms per pair, 0.5 ms to read and prepare a network): the smallest multiple of 8 in 16..256 with >= 4 s of kernel work and "
         "reading < 2 % of it, <= 60 s, >= 4 tiles per worker: ~3.1 s per tile, reading 1.8 %"),
        (TileChoice(56, "given"), "56 x 56 networks (10 tiles in the lower triangle); given by --tile"),
        (TileChoice(56, "stored"), "; fixed when the results were created (--recompute to change it)"),
        (None, "56 x 56 networks (10 tiles in the lower triangle)\n"),
    ],
    ids=["timed", "given", "stored", "unknown"],
)
def test_dry_run_text_says_how_the_tile_was_chosen(choice, text):
    plan = make_plan(200, 56, np.zeros((4, 4), dtype=np.int64), choice)
    assert plan.choice == choice
    assert text in describe_plan(plan)


@pytest.mark.parametrize(
    ("n", "workers", "seconds", "network", "tile", "decided"),
    [
        (1000, 2, 0.001, 0.0005, 64, ">= 4 s of kernel work decided"),
        (1000, 2, 0.025, 0.008, 32, "reading < 2 % of it decided"),
        (1000, 2, 0.030, 1.0, 40, "<= 60 s decided"),
        (100_000, 2, 1e-6, 0.0, MAX_TILE, "the 256-network maximum decided"),
        (300, 2, 1e-6, 0.0, 96, ">= 4 tiles per worker decided"),
        (1000, 2, 1.2, 0.0, MIN_TILE, "the 16-network minimum decided"),  # 4 s of work would be 1.8 networks
        (10, 2, 0.001, 0.0005, MIN_TILE, "the 16-network minimum decided"),  # 4 tiles per worker would need less than 16
    ],
    ids=["work", "read", "cap", "max", "workers", "min-slow-kernel", "min-few-networks"],
)
def test_dry_run_says_which_bound_decided(n, workers, seconds, network, tile, decided):
    choice = choose_tile(n, workers, seconds, network, 5)
    assert choice.tile == tile == default_tile(n, workers, seconds, network)
    text = describe_plan(make_plan(n, choice.tile, np.zeros((n_tiles(n, tile),) * 2, dtype=np.int64), choice))
    assert f"<= 60 s, >= 4 tiles per worker; {decided}: ~" in text  # the whole rule, then the bound that decided


def test_default_tile_keeps_the_graph_small_at_10k():
    k16 = n_tiles(10_000, MIN_TILE)  # the smallest default, kept as a store grows to 10,000 networks
    assert k16 * (k16 + 1) // 2 < 200_000


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: make_plan(10, 4, np.zeros((2, 2))), "expected (3, 3)"),
        (lambda: make_plan(10, 0, np.zeros((0, 0))), "tile size"),
        (lambda: TileTask(0, 1, 4, 10), "a >= b"),
    ],
    ids=["tiles-done-shape", "zero-tile", "upper-tile"],
)
def test_bad_arguments(call, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call()


@settings(max_examples=80, deadline=None)
@given(n=st.integers(2, 60), tile=st.integers(1, 9), data=st.data())
def test_pairs_in_done_tiles_of_a_selection_against_a_pair_by_pair_count(n, tile, data):
    """A tile done at M vouches for its pairs i > j with i < M (M <= n); counted for any subset of the networks."""
    k = n_tiles(n, tile)
    done = np.array(data.draw(st.lists(st.sampled_from([0, 1, n // 2, n - 1, n, n + 3]), min_size=k * k, max_size=k * k))).reshape(k, k)
    chosen = sorted(data.draw(st.sets(st.integers(0, n - 1))))
    vouched = sum(
        1 for x, i in enumerate(chosen) for j in chosen[:x] if 0 < done[i // tile, j // tile] <= n and i < done[i // tile, j // tile]
    )
    assert pairs_in_done_tiles(done, n, tile, np.array(chosen, dtype=np.int64)) == vouched
    assert pairs_in_done_tiles(done, n, tile, np.arange(n)) == pairs_in_done_tiles(done, n, tile)


@pytest.mark.parametrize(("processes", "words"), [(1, "tiles ran on 1 worker process)"), (2, "tiles ran on 2 worker processes)")])
def test_run_summary_counts_the_worker_processes_that_ran_tiles(processes, words):
    """The first progress line counts the cluster's worker threads ("on 2 worker threads"); a one-tile run then
    ran on one of them, and the summary says what it counts rather than a bare "(..., 1 worker)"."""
    from types import SimpleNamespace

    from nnstd_dist.cli.text import run_summary

    stats = SimpleNamespace(tiles=processes, repaired=[], pairs=45, tile=16, wall_seconds=1.5, pairs_per_second=30.0,
                            workers=processes, store="s.zarr", n_networks=10)
    assert run_summary(stats) == f"Computed 45 pairs in {processes} tile{'s' * (processes > 1)} of 16 x 16 in 1.5 s (30.0 pairs/s; {words}; distances in s.zarr"
