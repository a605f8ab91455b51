"""Reading masks from an object store: a shard's chunks come in one ranged request (storage.prefetch), the same masks as
from a folder; the spans serve exactly the bytes asked for, and nothing else."""

from __future__ import annotations

import time

import numpy as np
import pytest
from zarr.abc.store import OffsetByteRequest, RangeByteRequest, SuffixByteRequest

from _populations import chain, records
from _s3 import s3_bucket, s3_env, s3_server  # noqa: F401
from nnstd_dist.store.storage.objects import _GAP, _merged, _Span
from nnstd_dist.store.topology_store import TopologyStore, add_networks

N = 12


@pytest.fixture
def stores(s3_bucket, tmp_path):
    """The same 12 networks (layers 24-20-16-4) in a folder and in a bucket."""
    networks = chain(seed=11, length=N, fraction=0.3)
    named = list(zip(records(N), networks))
    add_networks(tmp_path / "t.zarr", named)
    add_networks(f"s3://{s3_bucket}/t.zarr", named)
    return TopologyStore.open(tmp_path / "t.zarr"), TopologyStore.open(f"s3://{s3_bucket}/t.zarr")


def _same(a, b) -> bool:
    return all((x != y).nnz == 0 and x.shape == y.shape for ra, rb in zip(a, b) for x, y in zip(ra, rb))


@pytest.mark.parametrize("indices", [[0, 1, 2, 3], [11, 0, 5], list(range(N)), [7]], ids=["run", "scattered", "all", "one"])
def test_masks_read_from_a_bucket_equal_a_folders(stores, indices):
    local, remote = stores
    assert _same(local.read_masks(indices), remote.read_masks(indices))


def test_a_layer_of_many_networks_costs_two_requests_per_shard(stores, s3_env):
    _, remote = stores
    remote.read_layer([0], 0)  # the array's metadata, read once per store object
    mark = s3_env.mark()
    remote.read_layer(list(range(N)), 0)
    time.sleep(0.3)  # the server logs a request before it answers; the last line may trail the answer
    requests = s3_env.requests(since=mark)
    assert sum(requests.values()) == 2 and requests["GET"] == 2  # the shard's index, then one span of its 12 chunks


def test_a_span_serves_the_ranges_it_holds_and_no_other():
    span = _Span(100, bytes(range(50)), b"tail-bytes")
    assert span.serve(RangeByteRequest(100, 110)) == bytes(range(10))
    assert span.serve(RangeByteRequest(140, 150)) == bytes(range(40, 50))
    assert span.serve(RangeByteRequest(99, 110)) is None and span.serve(RangeByteRequest(140, 151)) is None
    assert span.serve(SuffixByteRequest(5)) == b"bytes" and span.serve(SuffixByteRequest(11)) is None
    assert span.serve(OffsetByteRequest(100)) is None  # its end is the object's: unknown here


def test_ranges_merge_across_small_gaps_only():
    assert _merged([(50, 60), (0, 10), (10, 20)]) == [(0, 60)]
    assert _merged([(0, 10), (10 + _GAP, 20 + _GAP)]) == [(0, 10), (10 + _GAP, 20 + _GAP)]
    assert _merged([]) == []
