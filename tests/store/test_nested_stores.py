"""A new store inside another one (a folder or a prefix below it) is refused, in a folder and in a bucket: the outer
store's info would count its files, and removing either would take the other's along."""

from __future__ import annotations

import pytest

from _populations import chain, records
from _s3 import s3_bucket, s3_env, s3_server  # noqa: F401
from nnstd_dist.errors import StoreError
from nnstd_dist.store.topology_store import TopologyStore, add_networks


@pytest.fixture(scope="module")
def named():
    return list(zip(records(3), chain(seed=8, length=3, fraction=0.3)))


@pytest.mark.parametrize("below", ["sub.zarr", "mask_l0/x/y.zarr"], ids=["child", "deeper"])
def test_a_store_inside_a_folder_store_is_refused_and_nothing_is_written(tmp_path, named, below):
    add_networks(tmp_path / "a.zarr", named)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with pytest.raises(StoreError, match=rf"inside the store {tmp_path / 'a.zarr'}; give a path outside it"):
        add_networks(tmp_path / "a.zarr" / below, named)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_a_store_beside_one_is_made(tmp_path, named):
    add_networks(tmp_path / "a.zarr", named)
    add_networks(tmp_path / "b" / "c.zarr", named)
    assert TopologyStore.open(tmp_path / "b" / "c.zarr").n_networks == 3


def test_a_store_inside_a_bucket_store_is_refused_and_nothing_is_written(s3_bucket, s3_env, named):
    add_networks(f"s3://{s3_bucket}/runs/a.zarr", named)
    listed = s3_env.client().list_objects_v2(Bucket=s3_bucket)["Contents"]
    with pytest.raises(StoreError, match=rf"inside the store s3://{s3_bucket}/runs/a.zarr;"):
        add_networks(f"s3://{s3_bucket}/runs/a.zarr/sub.zarr", named)
    assert s3_env.client().list_objects_v2(Bucket=s3_bucket)["Contents"] == listed
    add_networks(f"s3://{s3_bucket}/runs/b.zarr", named)  # beside it: made
    assert TopologyStore.open(f"s3://{s3_bucket}/runs/b.zarr").n_networks == 3
