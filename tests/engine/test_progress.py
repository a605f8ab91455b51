"""The time left is priced from the work left, per kind of tile; the plan's order makes the first tiles a fair sample."""

from __future__ import annotations

import numpy as np
import pytest

from nnstd_dist.engine.plan import make_plan
from nnstd_dist.engine.progress import Progress, RunStats, Tracker, WorkLeft
from nnstd_dist.engine.tasks import TileResult


def result(a, b, pairs, seconds):
    return TileResult(a, b, pairs, seconds, seconds, 0.0, 0.0, 0, "host:1")


def test_before_any_tile_the_plans_timing_prices_the_pairs():
    plan = make_plan(40, 10, np.zeros((4, 4), dtype=np.int64))  # 6 tiles of 100 pairs, 4 diagonal of 45
    work = WorkLeft(plan.tasks, workers=2, seconds_per_pair=0.01)
    assert work.seconds() == pytest.approx(780 * 0.01 / 2)
    assert WorkLeft(plan.tasks, workers=2).seconds() is None  # nothing to price it with: the rate so far is used


def test_each_kind_of_tile_is_priced_from_its_own_finished_tiles():
    plan = make_plan(40, 10, np.zeros((4, 4), dtype=np.int64))
    work = WorkLeft(plan.tasks, workers=2, seconds_per_pair=0.5)
    work.finished(result(1, 0, 100, 4.0), 100)  # far pairs: 40 ms each
    assert work.seconds() == pytest.approx((500 + 180) * 0.04 / 2)  # diagonal tiles priced like the others until one is done
    work.finished(result(2, 2, 45, 0.45), 45)  # near pairs: 10 ms each
    assert work.seconds() == pytest.approx((500 * 0.04 + 135 * 0.01) / 2)
    work.reported(3, 0, 50, 2.0)  # half of a running tile, also at 40 ms a pair
    assert work.seconds() == pytest.approx((450 * 0.04 + 135 * 0.01) / 2)


def test_running_tiles_price_the_pairs_before_any_tile_is_done():
    plan = make_plan(40, 10, np.zeros((4, 4), dtype=np.int64))
    work = WorkLeft(plan.tasks, workers=2, seconds_per_pair=0.001)  # the client's timing: far too hopeful
    work.reported(1, 0, 20, 1.0)
    work.reported(2, 0, 30, 1.5)
    assert work.price(False) == pytest.approx(0.05) and work.price(True) == pytest.approx(0.05)
    assert work.seconds() == pytest.approx((780 - 50) * 0.05 / 2)


def test_the_tracker_counts_running_tiles_pairs_and_ignores_late_reports():
    plan = make_plan(20, 10, np.zeros((2, 2), dtype=np.int64))
    shown = []
    tracker = Tracker(plan, RunStats("s", 20, 10, workers=1), lambda p: shown.append((p.pairs_done, p.eta)))
    tracker.reported(1, 0, 30)
    tracker.tick()  # within a second of the last line: nothing shown
    tracker.finished(result(1, 0, 100, 10.0))
    tracker.reported(1, 0, 99)  # arrived after the result
    tracker.finished(result(0, 0, 45, 0.9))
    assert shown == [(0, None), (100, pytest.approx(90 * 0.1)), (145, pytest.approx(45 * 0.02))]


def test_tiles_of_one_size_run_in_a_shuffled_but_fixed_order_largest_first():
    plan = make_plan(100, 10, np.zeros((10, 10), dtype=np.int64))
    sizes = [t.n_pairs for t in plan.tasks]
    assert sizes == sorted(sizes, reverse=True)
    full = [(t.a, t.b) for t in plan.tasks if t.n_pairs == 100]
    assert full != sorted(full) and full == [(t.a, t.b) for t in make_plan(100, 10, np.zeros((10, 10), dtype=np.int64)).tasks[: len(full)]]
    assert max(a - b for a, b in full[:5]) > 3  # the first tiles are not all beside the diagonal


def test_eta_falls_back_to_the_rate_so_far():
    assert Progress(10, 100, 0, 4, 5.0, 2).eta == pytest.approx(45.0)
    assert Progress(10, 100, 0, 4, 5.0, 2, eta_seconds=7.0).eta == 7.0
