"""plan.py: tiles cover every pair once; a grown population reopens exactly the pairs of its new networks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nnstd_dist.cli.text import describe_plan
from nnstd_dist.plan import Plan, TileTask, default_tile, extent, make_plan, n_tiles, tile_task, total_pairs


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
    assert repr(plan.tasks[0]) == "TileTask((1, 0), rows 4:8, cols 0:4, 16 of 16 pairs)"


@pytest.mark.parametrize(
    "n, workers, tile",
    [(90, 2, 16), (90, 1, 32), (10, 2, 16), (200, 2, 32), (10_000, 2, 32), (10_000, 64, 32), (300, 64, 16)],
    ids=["seed-90-2w", "seed-90-1w", "tiny", "200", "10k", "10k-64w", "300-64w"],
)
def test_default_tile(n, workers, tile):
    assert default_tile(n, workers) == tile


def test_default_tile_keeps_the_graph_small_at_10k():
    k = n_tiles(10_000, default_tile(10_000, 2))
    assert k * (k + 1) // 2 < 100_000
    k16 = n_tiles(10_000, 16)  # even a store whose tile was fixed at 16 while small
    assert k16 * (k16 + 1) // 2 < 1_000_000 / 5


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
