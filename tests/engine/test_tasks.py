"""One tile's work without Dask: what a task reads, what it keeps, what it recomputes; a serial loop of tasks equals the kernel.

Correctness of the tiling needs no cluster: these tests run `compute_tile` in this process, one tile
after another. test_compute.py runs the same tasks on real Dask clusters.
"""

from __future__ import annotations

import numpy as np
import pytest

from _populations import chain, make_store, pair_distances, records
from nnstd_dist.errors import StoreError
from nnstd_dist.engine.plan import make_plan
from nnstd_dist.tiles import n_tiles, tile_task, total_pairs
from nnstd_dist.store.topology_store import TopologyStore
from nnstd_dist.engine import tasks
from nnstd_dist.engine.tasks import compute_tile, tile_block, time_kernel, timing_pairs

N_FIRST, N = 6, 10  # a store computed at 6 networks, then grown to 10; tiles of 4: {0..3} {4..7} {8, 9}
TILE = 4


@pytest.fixture(scope="module")
def networks():
    return chain(seed=3, length=N, fraction=0.2)


@pytest.fixture(scope="module")
def expected(networks):
    return pair_distances(networks)


@pytest.fixture
def grown(tmp_path, networks):
    """Every tile computed and marked at 6 networks, then 4 networks appended: the edge tiles are half done."""
    store = make_store(tmp_path / "s.zarr", networks[:N_FIRST], records(N_FIRST), tile=TILE)
    store.append(list(zip(records(N)[N_FIRST:], networks[N_FIRST:])))
    return TopologyStore.open(store.path, mode="r+")


def reads_of(monkeypatch) -> list[tuple[int, int]]:
    """The [start, stop) network ranges any store is asked for from now on, in order."""
    calls = []
    real = TopologyStore.read_masks

    def spy(self, indices, n_layers=None):
        indices = np.asarray(indices)
        calls.append((int(indices[0]), int(indices[-1]) + 1))
        assert np.array_equal(indices, np.arange(indices[0], indices[-1] + 1))  # one contiguous range per call
        return real(self, indices, n_layers)

    monkeypatch.setattr(TopologyStore, "read_masks", spy)
    return calls


def task_of(store: TopologyStore, a: int, b: int):
    return tile_task(a, b, TILE, store.n_networks, store.tile_marker(a, b))


@pytest.mark.parametrize(
    "a, b, reads, pairs",
    [
        (1, 0, [(6, 8), (0, 4)], 2 * 4),  # rows 4, 5 are done below 6: only rows 6, 7 are read, with all columns
        (1, 1, [(4, 8)], 2 + 3),  # diagonal: pairs (6, 4..5) and (7, 4..6) need the whole row range
        (2, 0, [(8, 10), (0, 4)], 2 * 4),  # a new tile: all its rows and columns
        (2, 2, [(8, 10)], 1),
    ],
    ids=["kept-rows-skipped", "diagonal", "new-tile", "new-diagonal"],
)
def test_tile_block_reads_only_the_networks_of_the_missing_pairs(grown, expected, monkeypatch, a, b, reads, pairs):
    calls = reads_of(monkeypatch)
    task = task_of(grown, a, b)
    block, computed = tile_block(grown, task)[:2]
    assert calls == reads and computed == pairs == task.n_pairs
    (r0, r1), (c0, c1) = task.rows, task.cols
    np.testing.assert_array_equal(block, expected[:, r0:r1, c0:c1])  # kept pairs read back, new ones computed: bit for bit


def test_a_complete_tile_reads_nothing(grown, monkeypatch):
    calls = reads_of(monkeypatch)
    task = task_of(grown, 0, 0)  # rows 0..3 were all below 6: complete
    assert task.complete
    result = compute_tile(str(grown.path), 0, 0, N)
    assert result.pairs == 0 and calls == []


def test_a_done_tile_holding_nan_is_recomputed_whole(grown, expected, monkeypatch):
    """The marker says pairs below 6 are valid, but one of them is NaN (a lost write): trust nothing of that tile."""
    block = grown.read_tile(1, 0)[:, : N_FIRST - 4, :]  # what it holds at 6 networks: rows 4, 5
    block[:, 1, 1] = np.nan  # pair (5, 1)
    grown.write_tile(1, 0, block, done_at=N_FIRST)
    calls = reads_of(monkeypatch)
    task = task_of(grown, 1, 0)
    assert task.valid_upto == N_FIRST and task.n_pairs == 8
    block, computed = tile_block(grown, task)[:2]
    assert computed == 16 and calls == [(4, 8), (0, 4)]
    np.testing.assert_array_equal(block, expected[:, 4:8, 0:4])


def test_compute_tile_writes_the_block_and_its_mirror_then_marks_it(grown, expected):
    result = compute_tile(str(grown.path), 1, 0, N)
    assert (result.a, result.b, result.pairs) == (1, 0, 8)
    store = TopologyStore.open(grown.path)
    np.testing.assert_array_equal(store.read_distance()[:, 4:8, 0:4], expected[:, 4:8, 0:4])
    np.testing.assert_array_equal(store.read_distance()[:, 0:4, 4:8], expected[:, 0:4, 4:8])
    assert store.tile_marker(1, 0) == N


def test_a_stopped_tile_writes_nothing(grown):
    before = TopologyStore.open(grown.path).read_distance()
    asked = []

    def stop() -> bool:  # as on a worker that starts closing after three pairs
        asked.append(len(asked))
        return len(asked) > 3

    with pytest.raises(tasks.TileStopped, match=r"tile \(2, 0\) stopped"):
        compute_tile(str(grown.path), 2, 0, N, stop=stop)
    assert len(asked) == 4  # asked before each pair: three computed, the fourth not started
    store = TopologyStore.open(grown.path)
    assert store.tile_marker(2, 0) == 0
    np.testing.assert_array_equal(store.read_distance(), before)  # NaN where it was NaN, nothing half-written


def test_compute_tile_refuses_a_population_it_was_not_planned_for(grown):
    with pytest.raises(StoreError, match=f"holds {N} networks, this run was planned for {N + 1}"):
        compute_tile(str(grown.path), 1, 0, N + 1)


def test_compute_tile_needs_result_arrays(tmp_path, networks):
    store = TopologyStore.create(tmp_path / "s.zarr", [m.shape for m in networks[0]])
    store.append(list(zip(records(3), networks[:3])))
    with pytest.raises(StoreError, match="no result arrays"):
        compute_tile(str(store.path), 0, 0, 3)


def run_serially(store: TopologyStore) -> list:
    """Every remaining tile of the plan, largest first, through compute_tile in this process."""
    plan = make_plan(store.n_networks, store.tile, store.tile_markers())
    return [compute_tile(str(store.path), t.a, t.b, plan.n) for t in plan.tasks]


@pytest.mark.parametrize("n, tile", [(8, 1), (10, 4), (10, 3), (10, 30)], ids=["tile1", "tile4", "tile3", "one-tile"])
def test_serial_tiles_equal_the_kernel(tmp_path, networks, expected, n, tile):
    store = make_store(tmp_path / "s.zarr", networks[:n], records(n), tile=tile, compute=False)
    results = run_serially(store)
    k = n_tiles(n, tile)
    assert sum(r.pairs for r in results) == total_pairs(n) and len(results) == k * (k + 1) // 2
    store = TopologyStore.open(store.path)
    np.testing.assert_array_equal(store.read_distance(), expected[:, :n, :n])  # same kernel, same order: bit for bit
    markers = store.tile_markers()
    assert (markers[np.tril_indices(k)] == n).all() and (markers[np.triu_indices(k, 1)] == 0).all()
    assert run_serially(store) == []  # nothing left


def test_serial_tiles_after_growth_compute_only_the_new_pairs(grown, expected):
    results = run_serially(grown)
    assert sum(r.pairs for r in results) == total_pairs(N) - total_pairs(N_FIRST)
    np.testing.assert_array_equal(TopologyStore.open(grown.path).read_distance(), expected)


@pytest.mark.parametrize(
    "n, pairs",
    [(0, []), (1, []), (2, [(1, 0)]), (4, [(2, 0), (3, 1)]), (10, [(5, 0), (7, 2), (9, 4)]), (1000, [(599, 0), (799, 200), (999, 400)])],
)
def test_timing_pairs_join_networks_far_apart(n, pairs):
    assert timing_pairs(n) == pairs


def test_time_kernel_times_the_spread_pairs_with_the_stores_solver(tmp_path, networks, monkeypatch):
    store = make_store(tmp_path / "s.zarr", networks, records(N), tile=TILE, compute=False)
    seen = []
    real = tasks.nnstd_prepared

    def spy(a, b, solver, max_layer):
        seen.append((solver, max_layer))
        return real(a, b, solver=solver, max_layer=max_layer)

    monkeypatch.setattr(tasks, "nnstd_prepared", spy)
    seconds, per_network, timed = time_kernel(store, "fast", 0)
    assert timed == 3 and seen == [("fast", 0)] * 3 and 0 < seconds < 10 and 0 < per_network < 10
    one = make_store(tmp_path / "one.zarr", networks[:1], records(1), tile=TILE, compute=False)
    assert time_kernel(one, "exact", None) == (None, None, 0)


def test_with_max_layer_a_task_reads_and_prepares_only_the_compared_layers(tmp_path, networks, expected, monkeypatch):
    store = make_store(tmp_path / "s.zarr", networks, records(N), tile=TILE, compute=False)
    store.init_results(TILE, solver="exact", max_layer=0)
    asked = []
    real = TopologyStore.read_masks
    monkeypatch.setattr(TopologyStore, "read_masks", lambda self, indices, n_layers=None: asked.append(n_layers) or real(self, indices, n_layers))
    for task in make_plan(N, TILE, np.zeros((n_tiles(N, TILE),) * 2, dtype=np.int64)).tasks:
        compute_tile(str(store.path), task.a, task.b, N)
    assert asked and set(asked) == {1}
    distance = TopologyStore.open(store.path).read_distance([0])
    np.testing.assert_array_equal(distance, expected[:1])  # layer 0 of a truncated network: bit for bit the full kernel's
