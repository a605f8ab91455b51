"""store_distances.py through TopologyStore.read_distance: only done tiles are read; NaN exactly where the markers vouch for nothing.

The oracle decides pair by pair from the markers (a tile done at M vouches for its pairs with both
indices < M) and takes the value from the kernel's own matrix, so reads must equal it bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest

from _populations import chain, make_store, pair_distances, records, write_tile
from nnstd_dist.errors import StoreError
from nnstd_dist.views.export import export
from nnstd_dist.store.topology_store import TopologyStore

N, TILE = 11, 3  # tiles {0..2} {3..5} {6..8} {9, 10}


@pytest.fixture(scope="module")
def networks():
    return chain(seed=5, length=N, fraction=0.3)


@pytest.fixture(scope="module")
def full(networks):
    return pair_distances(networks)


def oracle(full: np.ndarray, markers: np.ndarray, n: int, rows, layers) -> np.ndarray:
    rows = list(rows)
    out = np.full((len(layers), len(rows), len(rows)), np.nan)
    for p, i in enumerate(rows):
        for q, j in enumerate(rows):
            m = markers[max(i, j) // TILE, min(i, j) // TILE]
            if i == j:
                out[:, p, q] = 0.0
            elif 0 < m <= n and max(i, j) < m:
                out[:, p, q] = full[layers, i, j]
    return out


@pytest.fixture
def partial(tmp_path, networks, full):
    """Tiles (1, 0), (2, 2) and (3, 1) computed at 11 networks, (2, 1) at 7 (its rows 7, 8 not yet), the rest never."""
    store = make_store(tmp_path / "s.zarr", networks, records(N, digits=2), tile=TILE, compute={(1, 0), (2, 2), (3, 1)})
    block = np.full((2, 3, 3), np.nan)
    block[:, 0] = full[:, 6, 3:6]  # row 6 only, as a run at 7 networks left it
    write_tile(store, 2, 1, block, done_at=7)
    return TopologyStore.open(store.path, mode="r+")


def reads_of(monkeypatch) -> list:
    """The files tile records are read from, from now on."""
    from nnstd_dist.store import tile_rows

    calls = []
    real = tile_rows.read_records

    def spy(storage, key, blocks):
        calls.append(key.rsplit("/", 1)[-1])
        return real(storage, key, blocks)

    monkeypatch.setattr(tile_rows, "read_records", spy)
    return calls


@pytest.mark.parametrize(
    "rows",
    [None, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [10, 4, 0, 7, 3], [1, 3, 5, 7, 9], [6, 6, 3], [2]],
    ids=["all", "all-given", "shuffled", "spread", "repeated", "one"],
)
def test_partial_store_reads_as_the_markers_vouch(partial, full, rows):
    markers = partial.tile_markers()
    assert markers[2, 1] == 7 and markers[3, 1] == N and markers[0, 0] == 0
    expected = oracle(full, markers, N, range(N) if rows is None else rows, [0, 1])
    got = partial.read_distance([0, 1], rows)
    np.testing.assert_array_equal(got, expected)  # NaN where the oracle has NaN, the kernel's values bit for bit elsewhere
    if rows is None:
        assert np.isnan(got).any() and not np.isnan(got).all()


def test_a_selection_reads_only_its_tile_rows(partial, monkeypatch):
    calls = reads_of(monkeypatch)
    partial.read_distance([0], [0, 4])  # tile rows 0 and 1: of the done tiles, only (1, 0)
    assert calls == ["1.0"]
    calls.clear()
    partial.read_distance([0])
    assert sorted(calls) == ["1.0", "2.1", "2.2", "3.1"]  # done tiles only, and never a mirror


def test_nothing_computed_reads_no_distance_chunk(tmp_path, networks, monkeypatch):
    store = make_store(tmp_path / "s.zarr", networks, records(N, digits=2), tile=TILE, compute=False)
    calls = reads_of(monkeypatch)  # no tile file exists: none is opened
    values = store.read_distance()
    assert calls == []
    assert np.isnan(values[:, ~np.eye(N, dtype=bool)]).all() and (values[:, np.eye(N, dtype=bool)] == 0).all()


def test_export_of_a_partial_store_is_nan_exactly_where_tiles_are_missing(partial, full, tmp_path):
    report = export(partial.path, tmp_path / "out.npz")
    with np.load(tmp_path / "out.npz", allow_pickle=False) as saved:
        distance = saved["distance"]
    expected = oracle(full, partial.tile_markers(), N, range(N), [0, 1])
    np.testing.assert_array_equal(distance, expected)
    lower = np.tril(np.ones((N, N), dtype=bool), -1)
    assert report.missing_pairs == int(np.isnan(expected[0][lower]).sum()) and report.total_pairs == N * (N - 1) // 2
    selected = export(partial.path, tmp_path / "sel.npz", layer=1, selection={"name": ["net_0[13579]", "net_10"]})
    rows = [1, 3, 5, 7, 9, 10]
    with np.load(tmp_path / "sel.npz", allow_pickle=False) as saved:
        np.testing.assert_array_equal(saved["distance"], oracle(full, partial.tile_markers(), N, rows, [1]))
    sub = oracle(full, partial.tile_markers(), N, rows, [1])[0]
    assert selected.missing_pairs == int(np.isnan(sub[np.tril(np.ones((6, 6), dtype=bool), -1)]).sum())


def test_a_vouched_pair_that_reads_nan_is_damage(partial):
    write_tile(partial, 3, 1, np.full((2, 2, 3), np.nan), done_at=N)  # marked done, but its distances are NaN
    with pytest.raises(StoreError, match="distances marked computed are missing"):
        partial.read_distance([0])
