"""The worker check on a store URL: each worker opens the store in the bucket with its own credentials and proves it may
write (a probe object, removed); a worker whose credentials are refused is named on one line. Real worker processes."""

from __future__ import annotations

import functools

import pytest

from _populations import chain, records
from _s3 import s3_auth_server  # noqa: F401
from nnstd_dist.engine.environment import check_cluster
from nnstd_dist.errors import ClusterError
from nnstd_dist.store.storage import open_storage
from nnstd_dist.store.topology_store import add_networks, store_status


@pytest.fixture
def s3_store(s3_auth_server):
    """A store of 4 networks on the credential-checking server, made with its key given as storage options."""
    bucket = s3_auth_server.make_bucket()
    url = f"s3://{bucket}/topos.zarr"
    networks = chain(seed=5, length=4, fraction=0.3)
    add_networks(url, list(zip(records(4), networks)), storage_options=s3_auth_server.storage_options())
    return s3_auth_server, bucket, url


def _objects(server, bucket: str) -> list[str]:
    listed = server.client().list_objects_v2(Bucket=bucket).get("Contents", [])
    return sorted(o["Key"] for o in listed)


def test_a_worker_with_the_store_credentials_opens_and_may_write_and_leaves_no_probe(s3_store, dask_client):
    server, bucket, url = s3_store
    before = _objects(server, bucket)
    reports = check_cluster(functools.partial(dask_client.run, on_error="return"), open_storage(url, server.storage_options()),
                            need_write=True)
    assert len(reports) == 2
    for report in reports.values():
        assert report["store"] == {"path": url, "exists": True, "opens": True, "writable": True, "error": ""}
    assert _objects(server, bucket) == before  # the probe objects are gone


def test_workers_whose_credentials_are_refused_are_named_on_one_line(s3_store, dask_client):
    server, _, url = s3_store
    wrong = {**server.storage_options(), "key": "AKIANOSUCHKEY0000000", "secret": "wrong"}
    with pytest.raises(ClusterError) as info:
        check_cluster(functools.partial(dask_client.run, on_error="return"), open_storage(url, wrong), need_write=True)
    message = str(info.value)
    assert "\n" not in message and "workers" in message and f"cannot open the store at {url}" in message
    assert "access refused" in message and "credentials" in message


def test_the_status_of_a_missing_store_and_a_missing_bucket(s3_store):
    server, bucket, _ = s3_store
    options = server.storage_options()
    missing = store_status(open_storage(f"s3://{bucket}/elsewhere.zarr", options))
    assert (missing["exists"], missing["opens"], missing["error"]) == (False, False, "no store at this URL")
    no_bucket = store_status(open_storage("s3://nnstd-no-such-bucket/topos.zarr", options))
    assert not no_bucket["opens"] and "bucket nnstd-no-such-bucket does not exist" in no_bucket["error"]
