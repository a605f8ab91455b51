"""compute against a store that lies or changes under it (issue 23, item 11): refuse, never compute from wrong masks."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from nnstd_dist.engine import compute
from nnstd_dist.errors import StoreError
from nnstd_dist.store.topology_store import TopologyStore

from _populations import make_store, pair_distances, runs_population


def _swap_layer0(path, i: int, j: int) -> None:
    masks = zarr.open_array(str(path / "mask_l0"), mode="r+")
    first, second = masks[i], masks[j]
    masks[i], masks[j] = second, first


def test_a_tile_refuses_masks_that_are_not_their_networks(tmp_path, dask_client):
    """Chunks swapped after the results exist: the tiles a later run computes read them and stop, naming the network."""
    networks, records = runs_population(2, [0, 1, 2])  # 6 networks, tiles of 2
    path = tmp_path / "s.zarr"
    make_store(path, networks, records, tile=2, compute={(0, 0), (1, 1), (2, 2), (2, 1)})
    _swap_layer0(path, 0, 1)
    with pytest.raises(StoreError, match=r"masks of network [01] \(r0/epoch_00[01]\) do not match its digest"):
        compute(path, client=dask_client)
    markers = TopologyStore.open(path).tile_markers()
    assert markers[1, 0] == 0 and markers[2, 0] == 0  # nothing marked from the swapped masks


def test_a_new_set_of_results_is_refused_before_anything_is_written(tmp_path, dask_client):
    networks, records = runs_population(2, [0, 1, 2])
    path = tmp_path / "s.zarr"
    make_store(path, networks, records, tile=2)
    _swap_layer0(path, 2, 4)
    before = TopologyStore.open(path).read_distance()
    with pytest.raises(StoreError, match="do not match its digest"):
        compute(path, client=dask_client, recompute=True, tile=3)
    after = TopologyStore.open(path)
    assert after.tile == 2
    np.testing.assert_array_equal(after.read_distance(), before)
    np.testing.assert_array_equal(before, pair_distances(networks))
