"""A store on an object store (s3:// on moto's server, memory:// in-process): its failures are one `Error:` line, and its
writes keep the local store's guarantees.

- Refused credentials, a missing bucket and an endpoint that does not answer: every command that takes --store exits 2
  with one `Error:` line saying which (never a traceback, never a "problem" of verify's); writes a bucket policy refuses
  stop at the lock, one line, the store unchanged.
- --storage-options alone (no AWS_* variable) reaches the store; bad JSON, a non-object and options given with a local
  path are exit 2.
- Crash consistency without renames: a first ingest, an append and a compute on s3, each killed before its k-th write
  for every k (NNSTD_DIST_FAULT_AFTER_WRITES, store/faults.py), leave no store / the old population / a resumable
  compute, never a half one; the killed run's lock (its pid dead) is taken over by the next run, which completes.
- Append and `ingest --replace` on s3: only the replaced network's pairs are recomputed, and the matrix equals a fresh
  local computation.
- The Python API on memory:// (one process, a threads-only cluster) gives a local store's values.
"""

from __future__ import annotations

import json
import os
import uuid

import numpy as np
import pytest
from click.testing import CliRunner

from nnstd_dist.cli.main import cli
from nnstd_dist.store import faults

from _corpus import write_set
from _forked import cli as forked_cli
from _forked import compute, run_forked
from _populations import chain, pair_distances
from _s3 import _CLEARED, dead_endpoint, s3_auth_server, s3_bucket, s3_env, s3_server  # noqa: F401

SHAPES = [(10, 8), (8, 3)]
MAX_WRITES = 400  # no command here writes more: a sweep that gets there is a bug
COMMANDS = {  # command -> its arguments besides --store ("SRC": the sources folder, "OUT": an output folder)
    "ingest": ["SRC", "-q"],
    "info": [],
    "compute": ["--n-workers", "1", "-q"],
    "verify": [],
    "export": ["-o", "OUT/d.npz", "-q"],
}


def _networks(seed: int, n: int):
    return [[m.toarray() for m in net] for net in chain(seed, n, 0.25, SHAPES)]


def _write_sources(folder, networks, first: int = 0):
    for i, net in enumerate(networks):
        write_set(folder / "r0" / f"epoch_{first + i:03d}", net, seed=first + i)
    return folder


def _invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=True)


def _one_error(result, *words: str) -> str:
    """The run exited 2 with exactly one `Error:` line and no traceback; that line, which holds every one of ``words``."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    for word in words:
        assert word in errors[0], (word, errors[0])
    return errors[0]


def _run(tmp_path, name: str, url: str, *extra: str):
    folder = tmp_path / "src"
    if not folder.exists():
        _write_sources(folder, _networks(0, 3))
    args = [a.replace("SRC", str(folder)).replace("OUT", str(tmp_path)) for a in COMMANDS[name]]
    return _invoke(name, *args, "--store", url, *extra)


def _use_env(monkeypatch, env: dict) -> None:
    import s3fs

    for name in _CLEARED:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    s3fs.S3FileSystem.clear_instance_cache()  # a cached filesystem would keep the credentials of another test


# ---- 1. refused credentials, a missing bucket, no answer: one line, exit 2 ----------------------------------------


@pytest.mark.parametrize("name", list(COMMANDS))
def test_refused_credentials_are_one_error_line(tmp_path, s3_auth_server, monkeypatch, name):
    bucket = s3_auth_server.make_bucket()
    _use_env(monkeypatch, s3_auth_server.env(AWS_ACCESS_KEY_ID="AKIANOSUCHKEY0000000", AWS_SECRET_ACCESS_KEY="wrong"))
    line = _one_error(_run(tmp_path, name, f"s3://{bucket}/t.zarr"), f"s3://{bucket}/t.zarr", "access refused", "check the credentials")
    assert "InvalidAccessKeyId" in line or "does not exist in our records" in line


def test_a_wrong_secret_is_refused_too(tmp_path, s3_auth_server, monkeypatch):
    bucket = s3_auth_server.make_bucket()
    _use_env(monkeypatch, s3_auth_server.env(AWS_SECRET_ACCESS_KEY="not-the-secret"))
    _one_error(_run(tmp_path, "info", f"s3://{bucket}/t.zarr"), "access refused", "check the credentials")


@pytest.mark.parametrize("name", list(COMMANDS))
def test_a_missing_bucket_is_one_error_line(tmp_path, s3_env, name):
    bucket = f"nnstd-missing-{uuid.uuid4().hex[:12]}"
    _one_error(_run(tmp_path, name, f"s3://{bucket}/t.zarr"), f"the bucket {bucket} does not exist")


@pytest.mark.parametrize("name", list(COMMANDS))
def test_an_endpoint_that_does_not_answer_is_one_error_line(tmp_path, s3_env, monkeypatch, name):
    # a port like 40377 holds "403": it once read as refused credentials (describe_failure)
    _use_env(monkeypatch, s3_env.env(AWS_ENDPOINT_URL=dead_endpoint(), AWS_MAX_ATTEMPTS="1"))
    line = _one_error(_run(tmp_path, name, "s3://somebucket/t.zarr"), "does not answer", "AWS_ENDPOINT_URL")
    assert "access refused" not in line


def test_an_object_store_failure_after_the_store_opened_is_one_error_line(tmp_path, s3_bucket, monkeypatch):
    """botocore's errors are no OSError: one raised mid-command (a connection lost after the store opened) is mapped by
    the CLI like any store error."""
    from botocore.exceptions import EndpointConnectionError

    url = f"s3://{s3_bucket}/t.zarr"
    assert _run(tmp_path, "ingest", url).exit_code == 0

    def lost(store):
        raise EndpointConnectionError(endpoint_url="http://127.0.0.1:40399/b?list-type=2")

    monkeypatch.setattr("nnstd_dist.store.inventory.summarize", lost)
    line = _one_error(_invoke("info", "--store", url), "does not answer")
    assert "access refused" not in line


@pytest.mark.slow
def test_writes_refused_by_a_bucket_policy_are_one_error_line_and_reads_still_work(tmp_path, s3_auth_server, monkeypatch):
    """Credentials that may read but not write (a bucket policy denying PutObject, which moto enforces): ingest and compute
    stop at their lock, one line naming the store, exit 2, nothing changed; info and verify still read."""
    bucket = s3_auth_server.make_bucket()
    _use_env(monkeypatch, s3_auth_server.env())
    url = f"s3://{bucket}/t.zarr"
    assert _run(tmp_path, "ingest", url).exit_code == 0
    deny = {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Principal": "*", "Action": ["s3:PutObject", "s3:DeleteObject"],
                                                     "Resource": f"arn:aws:s3:::{bucket}/*"}]}
    s3_auth_server.client().put_bucket_policy(Bucket=bucket, Policy=json.dumps(deny))
    more = _write_sources(tmp_path / "more", _networks(9, 2), first=3)
    for args in (["ingest", more, "-q"], ["compute", "--n-workers", "1", "-q"]):
        _one_error(_invoke(*args, "--store", url), url, "cannot create the lock", "read-only")
    info = _invoke("info", "--store", url, "--json")
    assert info.exit_code == 0 and json.loads(info.output)["networks"] == 3, info.output
    assert _invoke("verify", "--store", url).exit_code == 0
    s3_auth_server.client().delete_bucket_policy(Bucket=bucket)


def test_describe_failure_words():
    from botocore.exceptions import ClientError, EndpointConnectionError

    from nnstd_dist.store.storage.objects import describe_failure

    assert "does not answer" in describe_failure(EndpointConnectionError(endpoint_url="http://127.0.0.1:40377/x"))
    forbidden = ClientError({"Error": {"Code": "403", "Message": "Forbidden"}}, "HeadObject")
    assert "access refused" in describe_failure(forbidden)
    assert "access refused" in describe_failure(PermissionError("The AWS Access Key Id you provided does not exist"))
    assert "bucket does not exist" in describe_failure(ClientError({"Error": {"Code": "NoSuchBucket"}}, "ListObjectsV2"))


# ---- 2. --storage-options ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_storage_options_alone_reach_the_store(tmp_path, s3_server, monkeypatch):
    for name in [*_CLEARED, "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_REGION"]:
        monkeypatch.delenv(name, raising=False)
    missing_file = str(tmp_path / "no-aws-config")  # no ~/.aws of the machine's
    monkeypatch.setenv("AWS_CONFIG_FILE", missing_file)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", missing_file)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    bucket = s3_server.make_bucket()
    url, options = f"s3://{bucket}/t.zarr", json.dumps(s3_server.storage_options())
    networks = _networks(1, 4)
    _write_sources(tmp_path / "src", networks)

    done = _invoke("ingest", tmp_path / "src", "--store", url, "--storage-options", options, "-q")
    assert done.exit_code == 0, done.output
    done = _invoke("compute", "--store", url, "--storage-options", options, "--n-workers", "1", "-q")
    assert done.exit_code == 0, done.output
    info = _invoke("info", "--store", url, "--storage-options", options, "--json")
    assert info.exit_code == 0, info.output
    summary = json.loads(info.output)
    assert summary["networks"] == 4 and summary["pairs_computed"] == summary["pairs_total"] == 6
    # and without them, nothing reaches the server (no credentials, no endpoint): one line, exit 2
    _one_error(_invoke("info", "--store", url))


@pytest.mark.parametrize("options, words", [("{not json", "not JSON"), ("[1, 2]", "must be a JSON object"), ('"key"', "must be a JSON object")])
def test_bad_storage_options_are_a_usage_error(s3_env, options, words):
    result = _invoke("info", "--store", "s3://b/t.zarr", "--storage-options", options)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "Invalid value for '--storage-options'" in result.output and words in result.output


def test_storage_options_with_a_local_path_are_an_error(tmp_path):
    line = _one_error(_invoke("info", "--store", tmp_path / "t.zarr", "--storage-options", '{"key": "k"}'), "storage options apply to a store URL")
    assert str(tmp_path / "t.zarr") in line


# ---- 3. crash consistency on s3 -------------------------------------------------------------------------------------
# Each kill point gets a fresh store (a first ingest's URL, or the old population ingested again), so the kill lands on
# the write it names: the lock, the first chunks, the middle, the commit point. The sample keeps the file near its time
# budget; NNSTD_DIST_S3_FULL_SWEEP=1 kills at every write (measured on a clean store: a first ingest of 3 networks makes
# 42 writes, an append of 2 more 22, a compute of 5 networks in tiles of 2 makes 24; a kill point costs 4-12 s on moto).
FULL_SWEEP = bool(os.environ.get("NNSTD_DIST_S3_FULL_SWEEP"))


def _spawn(action, env, fault=None, count=None) -> int:
    code = run_forked(action, fault, env, count, timeout=120)
    assert code is not None, f"{action} with fault {fault} did not end in 120 s"
    return code


def _writes(action, env, tmp_path) -> int:
    """The writes ``action`` makes, counted by a run that completes (a fault limit it never reaches counts them)."""
    count = tmp_path / f"writes-{uuid.uuid4().hex[:6]}"
    assert _spawn(action, env, MAX_WRITES, count) == 0
    return int(count.read_text())


def _kill_points(writes: int) -> list[int]:
    """Before the first writes (the lock), a few in the middle, and before the last two (the commit point)."""
    if FULL_SWEEP:
        return list(range(writes))
    return sorted({k for k in (0, 1, writes // 2, writes - 2, writes - 1) if 0 <= k < writes})


def _killed(action, env, k):
    code = _spawn(action, env, k)
    assert code == faults.FAULT_EXIT, f"killed before write {k}: exit {code}"


def _population(url):
    """(networks, pairs computed) that `info` finds at ``url``; (None, 0) if it says there is no store."""
    result = _invoke("info", "--store", url, "--json")
    if result.exit_code == 2:
        assert "no nnstd-dist store" in result.output or "first ingest did not finish" in result.output, result.output
        return None, 0
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    return summary["networks"], summary["pairs_computed"]


def _lock_left(url) -> bool:
    from nnstd_dist.store import lock
    from nnstd_dist.store.storage import open_storage

    return open_storage(url).exists(lock.LOCK_FILE)


@pytest.mark.slow
def test_first_ingest_killed_at_any_write_leaves_no_store_and_the_next_completes(tmp_path, s3_bucket, s3_env):
    from nnstd_dist.store.topology_store import TopologyStore

    env = s3_env.env()
    sources = _write_sources(tmp_path / "src", _networks(2, 3))
    ingest = lambda url: forked_cli("ingest", sources, "--store", url, "-q")  # noqa: E731
    clean = f"s3://{s3_bucket}/clean.zarr"
    writes = _writes(ingest(clean), env, tmp_path)
    assert 5 < writes < MAX_WRITES and _population(clean) == (3, 0)
    digests = [r.digest for r in TopologyStore.open(clean).records()]
    points = _kill_points(writes)
    locks = 0
    for k in points:
        url = f"s3://{s3_bucket}/k{k}.zarr"
        _killed(ingest(url), env, k)
        assert _population(url) == (None, 0), f"killed before write {k}: a store is visible"
        locks += _lock_left(url)  # the killed run's, its pid dead: the next run on this host takes it over
        assert _spawn(ingest(url), env) == 0, f"the ingest after a kill before write {k} failed"
        assert _population(url) == (3, 0) and not _lock_left(url)
        assert [r.digest for r in TopologyStore.open(url).records()] == digests
    print(f"first ingest on s3: {writes} writes, killed before writes {points}, a lock left by {locks}")
    assert locks >= len(points) - 1  # every kill but the one before the lock's own write


@pytest.mark.slow
def test_append_killed_at_any_write_keeps_the_old_population_and_the_next_completes(tmp_path, s3_bucket, s3_env):
    from nnstd_dist.store.topology_store import TopologyStore

    env = s3_env.env()
    networks = _networks(3, 5)
    first = _write_sources(tmp_path / "first", networks[:3])
    more = _write_sources(tmp_path / "more", networks[3:], first=3)
    append = lambda url: forked_cli("ingest", more, "--store", url, "-q")  # noqa: E731

    def old_store(name):
        url = f"s3://{s3_bucket}/{name}.zarr"
        assert _invoke("ingest", first, "--store", url, "-q").exit_code == 0
        return url

    writes = _writes(append(old_store("clean")), env, tmp_path)
    assert 3 < writes < MAX_WRITES
    points = _kill_points(writes)
    locks = 0
    for k in points:
        url = old_store(f"k{k}")
        _killed(append(url), env, k)
        assert _population(url) == (3, 0), f"killed before write {k}: not the old population"
        locks += _lock_left(url)
        assert _spawn(append(url), env) == 0, f"the append after a kill before write {k} failed"
        assert _population(url) == (5, 0) and not _lock_left(url)
    print(f"append on s3: {writes} writes, killed before writes {points}, a lock left by {locks}")
    assert locks >= len(points) - 1
    assert _spawn(compute(url, tile=2, quiet=True), env) == 0  # the last store appended to after a kill: its distances are right
    np.testing.assert_array_equal(TopologyStore.open(url).read_distance(), pair_distances(networks))


@pytest.mark.slow
def test_compute_killed_at_any_write_then_finished_equals_a_clean_run(tmp_path, s3_bucket, s3_env):
    from nnstd_dist.store.topology_store import TopologyStore

    env = s3_env.env()
    networks = _networks(4, 5)
    sources = _write_sources(tmp_path / "src", networks)
    expected = pair_distances(networks)

    def ingested(name):
        url = f"s3://{s3_bucket}/{name}.zarr"
        assert _invoke("ingest", sources, "--store", url, "-q").exit_code == 0
        return url

    clean = ingested("clean")
    writes = _writes(compute(clean, tile=2, quiet=True), env, tmp_path)
    reference = TopologyStore.open(clean).read_distance()
    np.testing.assert_array_equal(reference, expected)
    points = [writes // 2, writes - 1] if not FULL_SWEEP else list(range(writes))  # a compute in a child costs ~5 s
    locks = 0
    for k in points:
        url = ingested(f"k{k}")
        _killed(compute(url, tile=2, quiet=True), env, k)
        networks_now, _ = _population(url)  # opens: never a damaged store
        assert networks_now == 5, f"killed before write {k}"
        store = TopologyStore.open(url)
        if store.has_results:  # what a killed run kept is right
            kept = store.read_distance()
            np.testing.assert_array_equal(kept[~np.isnan(kept)], expected[~np.isnan(kept)])
        locks += _lock_left(url)
        assert _spawn(compute(url, tile=2, quiet=True), env) == 0, f"the compute after a kill before write {k} failed"
        assert _population(url) == (5, 10) and not _lock_left(url)
        np.testing.assert_array_equal(TopologyStore.open(url).read_distance(), reference)
    print(f"compute on s3 (5 networks, tile 2): {writes} writes, killed before writes {points}, a lock left by {locks}")
    assert locks >= len(points) - 1


# ---- 4. append and replace on s3 ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_replace_on_s3_recomputes_only_its_pairs_and_equals_a_local_store(tmp_path, s3_bucket, s3_env):
    from distributed import Client, LocalCluster

    import nnstd_dist as nd

    networks = _networks(5, 6)
    url = f"s3://{s3_bucket}/t.zarr"
    assert _invoke("ingest", _write_sources(tmp_path / "src", networks[:4]), "--store", url, "-q").exit_code == 0
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster, Client(cluster) as client:
        _, stats = nd.compute(url, client=client, tile=2, quiet=True)
        assert stats.pairs == 6
        # append two networks: only their pairs are computed
        assert _invoke("ingest", _write_sources(tmp_path / "more", networks[4:], first=4), "--store", url, "-q").exit_code == 0
        _, stats = nd.compute(url, client=client, quiet=True)
        assert (stats.pairs, stats.tiles) == (15 - 6, 3)  # tiles (2,0), (2,1), (2,2)
        # replace network 1 (tile 0) with another: tiles (0,0), (1,0), (2,0) again, nothing else
        changed = [m.copy() for m in networks[1]]
        changed[0] = np.logical_not(changed[0])
        networks[1] = changed
        replaced = _write_sources(tmp_path / "replaced", [changed], first=1)
        refused = _invoke("ingest", replaced, "--store", url, "-q")
        _one_error(refused, "a different network", "--replace")
        done = _invoke("ingest", replaced, "--store", url, "--replace")
        assert done.exit_code == 0 and "replaced 1" in done.output, done.output
        _, stats = nd.compute(url, client=client, quiet=True)
        assert stats.tiles == 3 and stats.pairs == 1 + 4 + 4  # (0,0): 1 pair, (1,0) and (2,0): 4 each
        _, stats = nd.compute(url, client=client, quiet=True)
        assert stats is None or stats.pairs == 0

        local = tmp_path / "local.zarr"
        assert _invoke("ingest", _write_sources(tmp_path / "all", networks), "--store", local, "-q").exit_code == 0
        nd.compute(str(local), client=client, tile=2, quiet=True)
    on_s3 = nd.TopologyStore.open(url).read_distance()
    np.testing.assert_array_equal(on_s3, nd.TopologyStore.open(local).read_distance())
    np.testing.assert_array_equal(on_s3, pair_distances(networks))
    assert nd.TopologyStore.open(url).names() == nd.TopologyStore.open(local).names()
    verified = _invoke("verify", "--store", url)
    assert verified.exit_code == 0, verified.output


# ---- 5. the Python API on memory:// -----------------------------------------------------------------------------------


def test_python_api_on_memory_equals_a_local_store(tmp_path):
    from distributed import Client, LocalCluster

    import nnstd_dist as nd
    from nnstd_dist.store.topology_store import add_networks

    networks = _networks(6, 5)
    records = [nd.NetworkRecord(f"net_{i}", run="r0", epoch=i) for i in range(5)]
    url = f"memory://nnstd-{uuid.uuid4().hex[:8]}/t.zarr"
    local = tmp_path / "t.zarr"
    for where in (url, local):
        report, created = add_networks(where, list(zip(records[:3], networks[:3])))
        assert created and report.added == ["net_0", "net_1", "net_2"]
        report, created = add_networks(where, list(zip(records, networks)))
        assert not created and report.added == ["net_3", "net_4"] and len(report.unchanged) == 3
    store = nd.TopologyStore.open(url)
    assert store.n_networks == 5 and store.names() == [r.name for r in records] and store.address == url
    with LocalCluster(n_workers=2, threads_per_worker=2, processes=False, dashboard_address=None) as cluster, Client(cluster) as client:
        _, on_memory = nd.compute(url, client=client, tile=2, quiet=True)
        _, on_disk = nd.compute(str(local), client=client, tile=2, quiet=True)
    assert on_memory.pairs == on_disk.pairs == 10
    expected = pair_distances(networks)
    for layer in range(len(SHAPES)):
        matrix = nd.labelled_matrix(url, layer=layer)
        np.testing.assert_array_equal(matrix.values, nd.labelled_matrix(local, layer=layer).values)
        np.testing.assert_array_equal(matrix.values, expected[layer])
        assert matrix.names == [r.name for r in records] and matrix.n_missing == 0
    # a second, different-process-free reader sees the same bytes; and no store at another memory:// path
    with pytest.raises(nd.NNSTDError, match="no nnstd-dist store"):
        nd.TopologyStore.open(f"memory://nnstd-{uuid.uuid4().hex[:8]}/none.zarr")
