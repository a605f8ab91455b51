"""A store on an object store (s3:// against moto's server, tests/_s3.py), end to end with real processes.

The whole pipeline (ingest, compute on a multi-process local cluster, info, verify, export) gives the matrix of a
local-path store bit for bit and leaves few objects; `kill -9` of a running compute leaves a stale lock that the next
run takes over, keeping the tiles already on the bucket; a second compute on a store in use stops with one line naming
the holder, and the lock is one create-only PUT that exactly one of two racing processes wins; a flipped byte in a row
object is listed by `verify` and recomputed by `compute`.
"""

from __future__ import annotations

import json
import os
import re
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from nnstd_dist.cli.main import cli
from nnstd_dist.engine.plan import make_plan
from nnstd_dist.store.lock import LOCK_FILE, process_alive
from nnstd_dist.store.topology_store import TopologyStore

from _damage import MAGIC
from _populations import write_population
from _s3 import s3_bucket, s3_env, s3_server  # noqa: F401

BIN = Path(sys.executable).parent
NND = str(BIN / "nnstd-dist")
LAYERS = (24, 20, 16, 4)  # three layers of a few milliseconds a pair: the object store's round trips dominate
N = 12
PAIRS = N * (N - 1) // 2


# ---- the population, and its matrix from a local-path store -------------------------------------------------------

@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> Path:
    """A seeded SET-like population written as `weight_lK.npz` folders, the sources every store here ingests."""
    out = tmp_path_factory.mktemp("sources") / "topo"
    assert len(write_population(out, LAYERS, density=0.2, n_networks=N, rewire=0.1, seed=7).names) == N
    return out


@pytest.fixture(scope="module")
def reference(sources, tmp_path_factory) -> np.ndarray:
    """The same sources ingested and computed in a local-path store, exported as .npz: what every s3:// store must hold."""
    work = tmp_path_factory.mktemp("local")
    store, out = work / "t.zarr", work / "d.npz"
    assert _invoke("ingest", str(sources), "--store", str(store), "-q").exit_code == 0
    done = subprocess.run([NND, "compute", "--store", str(store), "--tile", "4", "--n-workers", "2", "-q"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert _invoke("export", "--store", str(store), "-o", str(out)).exit_code == 0
    distance = np.load(out)["distance"]
    assert distance.shape == (len(LAYERS) - 1, N, N) and not np.isnan(distance).any()
    return distance


@pytest.fixture(scope="module")
def ingested(s3_server, sources) -> str:
    """The sources ingested once, by the CLI, into s3://BUCKET/src.zarr (the tests below copy it: a test's own store)."""
    url = f"s3://{s3_server.make_bucket()}/src.zarr"
    done = subprocess.run([NND, "ingest", str(sources), "--store", url], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **s3_server.env()})
    assert done.returncode == 0, done.stderr
    assert f"added {N}, unchanged 0, replaced 0: created {url} ({N} networks)" in done.stdout, done.stdout
    return url


@pytest.fixture(scope="module")
def computed(s3_server, ingested) -> tuple[str, str]:
    """``ingested`` copied and computed by the CLI on a local cluster of 2 worker processes, tiles of 6 (3 tiles): the URL
    and what compute printed."""
    env = {**os.environ, **s3_server.env()}
    url = _copy_store(ingested, s3_server.make_bucket(), s3_server.storage_options())
    done = subprocess.run([NND, "compute", "--store", url, "--tile", "6", "--n-workers", "2"], capture_output=True, text=True,
                          timeout=180, env=env)
    assert done.returncode == 0, done.stderr
    return url, done.stdout


# ---- helpers --------------------------------------------------------------------------------------------------------

def _fs(options: dict | None = None):
    import s3fs

    return s3fs.S3FileSystem(use_listings_cache=False, **(options or {}))


def _copy_store(source_url: str, bucket: str, options: dict | None = None) -> str:
    """A copy of the store at ``source_url`` at s3://bucket/t.zarr (server-side copies, object by object)."""
    fs, src, dst = _fs(options), source_url.removeprefix("s3://"), f"{bucket}/t.zarr"
    for path in fs.find(src):
        fs.copy(path, dst + path[len(src):])
    return f"s3://{dst}"


def _nnstd(*argv: str, timeout: float = 180) -> subprocess.CompletedProcess:
    """The CLI in its own process (the s3 variables of s3_env are in os.environ)."""
    return subprocess.run([NND, *argv], capture_output=True, text=True, timeout=timeout)


def _start(*argv: str) -> subprocess.Popen:
    """The CLI in its own process group (its local cluster's workers with it), to signal them all at once."""
    return subprocess.Popen([NND, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)


def _invoke(*argv: str):
    return CliRunner().invoke(cli, list(argv))


def _export(url: str, out: Path) -> np.ndarray:
    result = _invoke("export", "--store", url, "-o", str(out))
    assert result.exit_code == 0, result.output
    return np.load(out)["distance"]


def _tiles_on_the_bucket(fs, bucket: str) -> int:
    """Tiles whose records are on the bucket: a tile object each, a row object A holding A + 1 (one LIST)."""
    found = fs.find(f"{bucket}/t.zarr/distances")
    return sum(1 for p in found if "/tiles/" in p) + sum(int(p.rsplit("/", 1)[1]) + 1 for p in found if "/rows/" in p)


def _records(raw: bytes) -> list[dict]:
    """The tile records of a tile or row object (tests/_damage.records, from the bytes)."""
    out, start = [], 0
    while start < len(raw):
        assert raw[start : start + 8] == MAGIC
        (n,) = struct.unpack("<I", raw[start + 8 : start + 12])
        header = json.loads(raw[start + 12 : start + 12 + n])
        payload = start + 12 + n + 4
        size = 8 * header["layers"] * (header["rows"][1] - header["rows"][0]) * (header["cols"][1] - header["cols"][0])
        out.append({"header": header, "payload_at": payload, "end": payload + size + 4})
        start = payload + size + 4
    return out


# ---- 1. the whole pipeline ------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_the_pipeline_on_s3_gives_the_local_matrix_bit_for_bit_in_few_objects(s3_env, computed, reference, tmp_path):
    # `ingested` ran `nnstd-dist ingest SOURCES --store s3://...`, `computed` `nnstd-dist compute --n-workers 2` on a copy
    url, said = computed
    s3_bucket = url.removeprefix("s3://").split("/", 1)[0]
    assert re.search(rf"^Computed {PAIRS} pairs in 3 tiles of 6 x 6 .* on 2 worker processes\); distances in {re.escape(url)}$",
                     said, re.M), said

    np.testing.assert_array_equal(_export(url, tmp_path / "d.npz"), reference)
    assert np.array_equal(np.load(tmp_path / "d.npz")["distance"], reference)  # bit for bit, NaN nowhere

    info = _invoke("info", "--store", url, "--json")
    assert info.exit_code == 0, info.output
    info = json.loads(info.output)
    assert info["store"] == url and info["networks"] == N and info["pairs_total"] == PAIRS == info["pairs_computed"]

    verify = _invoke("verify", "--store", url)
    assert verify.exit_code == 0 and verify.output.startswith(f"OK: {url}: {N} networks and 3 computed tiles checked"), verify.output

    # At rest: per layer one mask shard and its zarr.json, one object per tile row, 8 column chunks and their 8 zarr.json,
    # the group's and distances/'s: 3 + 3 + 2 + 8 + 8 + 2 = 26 objects, no tile object, lock or probe left.
    objects = [p.split("/t.zarr/", 1)[1] for p in _fs().find(f"{s3_bucket}/t.zarr")]
    layers, rows = len(LAYERS) - 1, N // 6
    assert len(objects) == layers + layers + rows + 8 + 8 + 2 == 26 == info["files"], sorted(objects)
    assert sum("/rows/" in p for p in objects) == rows and not any("/tiles/" in p or "lock" in p or "probe" in p for p in objects)


# ---- 2. kill -9, then resume ----------------------------------------------------------------------------------------

@pytest.mark.slow
def test_kill_9_during_compute_then_the_next_run_takes_the_stale_lock_and_computes_only_the_rest(s3_bucket, ingested, reference, tmp_path):
    url = _copy_store(ingested, s3_bucket)
    fs = _fs()
    proc = _start("compute", "--store", url, "--tile", "3", "--n-workers", "2")  # 10 tiles in 4 rows
    try:
        deadline = time.monotonic() + 120
        while _tiles_on_the_bucket(fs, s3_bucket) < 3:
            assert proc.poll() is None and time.monotonic() < deadline, "compute ended before it could be killed"
            time.sleep(0.1)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)  # reaped: its pid is gone, not a zombie
    finally:
        _kill(proc)
    assert proc.returncode == -signal.SIGKILL

    lock = json.loads(fs.cat_file(f"{s3_bucket}/t.zarr/{LOCK_FILE}"))  # left behind by the dead run
    assert lock["pid"] == proc.pid and lock["command"].startswith("nnstd-dist compute --store") and not process_alive(proc.pid)
    store = TopologyStore.open(url)
    left = make_plan(store.n_networks, store.tile, store.tile_markers()).n_pairs
    assert 0 < left < PAIRS

    dry = _invoke("compute", "--store", url, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert f"pairs remaining: {left} of {PAIRS}" in dry.output, dry.output

    again = _nnstd("compute", "--store", url, "--n-workers", "2")
    assert again.returncode == 0, again.stderr
    assert int(re.search(r"^Computed (\d+) pairs", again.stdout, re.M).group(1)) == left  # not the pairs already kept
    assert not fs.exists(f"{s3_bucket}/t.zarr/{LOCK_FILE}")
    np.testing.assert_array_equal(_export(url, tmp_path / "d.npz"), reference)


# ---- 3. two runs at once --------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_second_compute_on_a_store_in_use_exits_2_with_one_line_naming_the_holder(s3_bucket, ingested):
    url = _copy_store(ingested, s3_bucket)
    fs, lock_key = _fs(), f"{s3_bucket}/t.zarr/{LOCK_FILE}"
    first = _start("compute", "--store", url, "--tile", "2", "--n-workers", "1")
    try:
        deadline = time.monotonic() + 60
        while not fs.exists(lock_key):
            assert first.poll() is None and time.monotonic() < deadline, "the first compute ended before it took the lock"
            time.sleep(0.05)
        second = _nnstd("compute", "--store", url, "--n-workers", "1")
        still_running = first.poll() is None
    finally:
        _kill(first)
    assert still_running, "the first compute ended while the second ran: the test proved nothing"
    assert second.returncode == 2, (second.stdout, second.stderr)
    lines = [line for line in second.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"Error: {url}: in use by `nnstd-dist compute --store {url}"), second.stderr
    assert f"pid {first.pid}," in lines[0] and f"remove the object {url}/{LOCK_FILE}" in lines[0]
    assert "Traceback" not in second.stderr


_RACER = """
import os, sys, time
from nnstd_dist.errors import LockError
from nnstd_dist.store.lock import hold
from nnstd_dist.store.storage import open_storage

storage = open_storage(sys.argv[1])
print("ready", flush=True)
while not os.path.exists(sys.argv[2]):
    time.sleep(0.001)
try:
    with hold(storage, "race"):
        print("won", flush=True)
        time.sleep(3)  # held while the other one tries
except LockError as exc:
    print("lost:", exc, flush=True)
"""


@pytest.mark.slow
def test_the_lock_is_a_create_only_put_that_exactly_one_of_two_racing_processes_wins(s3_bucket, s3_env, tmp_path):
    url = f"s3://{s3_bucket}/t.zarr"
    go = tmp_path / "go"
    racers = [subprocess.Popen([sys.executable, "-c", _RACER, url, str(go)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True) for _ in range(2)]
    try:
        for racer in racers:
            assert racer.stdout.readline() == "ready\n", racer.stderr.read()
        mark = s3_env.mark()
        go.touch()
        outputs = [racer.communicate(timeout=60) for racer in racers]
    finally:
        for racer in racers:
            if racer.poll() is None:
                racer.kill()
    assert all(racer.returncode == 0 for racer in racers), outputs
    said = sorted(out.split(":", 1)[0].strip() for out, _ in outputs)
    assert said == ["lost", "won"], outputs
    winner = racers[[out.strip() == "won" for out, _ in outputs].index(True)]
    loser_said = next(out for out, _ in outputs if out.startswith("lost"))
    assert f"in use by `race` (host " in loser_said and f"pid {winner.pid}," in loser_said
    # On the wire: two PUTs of the lock with If-None-Match, one created (200) and one refused (412), then one DELETE.
    lock_requests = [(kind, status) for kind, target, status in s3_env.request_lines(since=mark)
                     if target.split("?")[0].endswith(f"/t.zarr/{LOCK_FILE}") and kind in ("PUT", "DELETE")]
    assert sorted(lock_requests) == [("DELETE", 204), ("PUT", 200), ("PUT", 412)], lock_requests
    assert not _fs().exists(f"{s3_bucket}/t.zarr/{LOCK_FILE}")


# ---- 4. a damaged record ---------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_flipped_byte_in_a_row_object_is_listed_by_verify_and_recomputed_by_compute(s3_bucket, computed, reference, tmp_path):
    url = _copy_store(computed[0], s3_bucket)  # tiles of 6: (0, 0) in row 0, (1, 0) and (1, 1) in row 1
    assert _invoke("verify", "--store", url).exit_code == 0  # the copy is a whole store
    fs = _fs()
    rows = sorted(p for p in fs.find(f"{s3_bucket}/t.zarr/distances") if "/rows/" in p)
    assert [p.rsplit("/", 1)[1] for p in rows] == ["0", "1"] and not any("/tiles/" in p for p in fs.find(f"{s3_bucket}/t.zarr"))
    raw = bytearray(fs.cat_file(rows[1]))
    record = _records(bytes(raw))[0]
    assert (record["header"]["a"], record["header"]["b"]) == (1, 0)
    raw[(record["payload_at"] + record["end"] - 4) // 2] ^= 0xFF  # one byte of tile (1, 0)'s distances
    fs.pipe_file(rows[1], bytes(raw))

    verify = _invoke("verify", "--store", url)
    assert verify.exit_code == 1, verify.output
    problems = [line for line in verify.output.splitlines() if "tile (" in line]
    assert len(problems) == 1 and "tile (1, 0)" in problems[0] and "checksum" in problems[0], verify.output

    repair = _nnstd("compute", "--store", url, "--n-workers", "1")
    assert repair.returncode == 0, repair.stderr
    said = re.search(r"^Recomputed 1 tile whose stored results were damaged or missing \(tile \(1, 0\): .*\)\. Computed (\d+) pairs in 1 tile ",
                     repair.stdout, re.M)
    assert said and int(said.group(1)) == 36, (repair.stdout, repair.stderr)  # tile (1, 0) alone: 6 x 6 pairs
    verify = _invoke("verify", "--store", url)
    assert verify.exit_code == 0 and verify.output.startswith(f"OK: {url}: {N} networks and 3 computed tiles checked"), verify.output
    np.testing.assert_array_equal(_export(url, tmp_path / "d.npz"), reference)
