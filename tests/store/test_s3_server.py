"""The S3 test server of tests/_s3.py itself: a bucket, a PUT and a GET through s3fs, the request count, create-only writes."""

from __future__ import annotations

import time

import pytest

from _s3 import FAIL_FAST, classify, dead_endpoint, s3_auth_server, s3_bucket, s3_env, s3_server  # noqa: F401

s3fs = pytest.importorskip("s3fs")


def test_bucket_is_made_and_s3fs_with_no_arguments_reaches_it(s3_bucket, s3_env):
    assert s3_bucket in {b["Name"] for b in s3_env.client().list_buckets()["Buckets"]}
    assert s3fs.S3FileSystem().ls(s3_bucket) == []  # AWS_ENDPOINT_URL alone points s3fs at the server


def test_put_and_get_through_s3fs_are_counted(s3_bucket, s3_env):
    fs = s3fs.S3FileSystem()
    mark = s3_env.mark()
    fs.pipe_file(f"{s3_bucket}/tile/0", b"payload")
    after_put = s3_env.mark()
    assert s3_env.requests(since=mark) == {"PUT": 1}
    assert fs.cat_file(f"{s3_bucket}/tile/0") == b"payload"
    assert s3_env.requests(since=after_put)["GET"] == 1
    fs.invalidate_cache()
    fs.ls(s3_bucket)
    seen = s3_env.requests(since=mark)
    assert seen["PUT"] == 1 and seen["GET"] == 1 and seen["LIST"] == 1
    assert [(kind, status) for kind, _, status in s3_env.request_lines(since=mark, until=after_put)] == [("PUT", 200)]


def test_create_only_put_is_refused_on_an_existing_key(s3_bucket, s3_env):
    fs = s3fs.S3FileSystem()
    fs.pipe_file(f"{s3_bucket}/k", b"first", mode="create")
    mark = s3_env.mark()
    with pytest.raises(FileExistsError):
        fs.pipe_file(f"{s3_bucket}/k", b"second", mode="create")
    assert [(kind, status) for kind, _, status in s3_env.request_lines(since=mark)] == [("PUT", 412)]
    assert fs.cat_file(f"{s3_bucket}/k") == b"first"


def test_buckets_are_fresh_per_test(s3_bucket, s3_env):
    assert s3fs.S3FileSystem().ls(s3_bucket) == []


def test_zarr_opens_an_s3_url_from_the_environment(s3_bucket, s3_env):
    zarr = pytest.importorskip("zarr")
    np = pytest.importorskip("numpy")
    store = zarr.storage.FsspecStore.from_url(f"s3://{s3_bucket}/x.zarr", read_only=False)
    group = zarr.open_group(store, mode="w-")
    group.create_array("a", shape=(4, 5), chunks=(2, 5), dtype="f8")[:] = np.arange(20.0).reshape(4, 5)
    again = zarr.open_group(zarr.storage.FsspecStore.from_url(f"s3://{s3_bucket}/x.zarr", read_only=True), mode="r")
    assert (again["a"][:] == np.arange(20.0).reshape(4, 5)).all()
    with pytest.raises(FileExistsError):
        zarr.open_group(zarr.storage.FsspecStore.from_url(f"s3://{s3_bucket}/x.zarr", read_only=False), mode="w-")


def test_missing_bucket_is_file_not_found(s3_env):
    fs = s3fs.S3FileSystem()
    with pytest.raises(FileNotFoundError):
        fs.cat_file("nnstd-no-such-bucket/k")
    with pytest.raises(FileNotFoundError):
        fs.pipe_file("nnstd-no-such-bucket/k", b"x")


def test_the_auth_server_refuses_unknown_keys_and_wrong_secrets(s3_auth_server):
    bucket = s3_auth_server.make_bucket()
    good = s3fs.S3FileSystem(**s3_auth_server.storage_options(), skip_instance_cache=True)
    good.pipe_file(f"{bucket}/k", b"x")
    assert good.cat_file(f"{bucket}/k") == b"x"
    for key, secret in (("testing", "testing"), (s3_auth_server.key, "wrong")):
        options = {**s3_auth_server.storage_options(), "key": key, "secret": secret}
        bad = s3fs.S3FileSystem(**options, skip_instance_cache=True)
        with pytest.raises(PermissionError):
            bad.pipe_file(f"{bucket}/k2", b"x")
        with pytest.raises(PermissionError):
            bad.cat_file(f"{bucket}/k")


def test_unreachable_endpoint_fails_fast_with_fail_fast_options():
    fs = s3fs.S3FileSystem(key="testing", secret="testing", endpoint_url=dead_endpoint(), skip_instance_cache=True, **FAIL_FAST)
    start = time.monotonic()
    with pytest.raises(Exception) as raised:
        fs.cat_file("bucket/k")
    assert type(raised.value).__name__ == "EndpointConnectionError"
    assert time.monotonic() - start < 2


@pytest.mark.parametrize(
    ("method", "target", "kind"),
    [
        ("GET", "/b?list-type=2&prefix=&delimiter=/&encoding-type=url", "LIST"),
        ("GET", "/b/?prefix=x", "LIST"),
        ("GET", "/b/key", "GET"),
        ("GET", "/b/key?prefix=x", "GET"),
        ("PUT", "/b/key", "PUT"),
        ("HEAD", "/b/key", "HEAD"),
        ("DELETE", "/b/key", "DELETE"),
        ("POST", "/b?delete", "POST"),
    ],
)
def test_classify(method, target, kind):
    assert classify(method, target) == kind
