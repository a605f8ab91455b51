"""What an object store costs: the same population ingested, computed, described and exported on a local folder and on s3://.

Run from the repository root (needs the test extras: moto[server], s3fs):

    .venv/bin/python benchmarks/bench_object_store.py                      # 48 networks of 400-400-400-10, ~4 minutes
    .venv/bin/python benchmarks/bench_object_store.py --networks 24 --rounds 1

A seeded population (`nnstd-dist generate`, chain mode) is ingested into a fresh local store and into a fresh
``s3://BUCKET/tR.zarr`` on a moto S3 server this script starts on 127.0.0.1 (tests/_s3.py), then `compute` runs on each
with the same solver, tile and workers. Every step is the CLI in a subprocess (the S3 one with the server's AWS_*
variables), so both sides pay the same interpreter start-up. Rounds alternate the order (local s3, s3 local, ...) so
that load drifts hit both; the best round of each is compared.

Printed: wall time of ingest, compute (and compute's own figure from its summary line), info and export on each side and
the ratio s3/local; the requests the S3 server logged during each S3 step by kind (PUT/GET/HEAD/LIST/DELETE/POST), for
compute also per tile, and which keys the compute's requests went to (grouped by the key with digits as N); the objects
at rest after compute (against the local store's files); and whether the two exported matrices are bit-identical.
moto on loopback has no network latency: on a real object store each request costs ~10-50 ms more, which the request
counts let you estimate.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _s3 import _CLEARED, S3Server  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "nnstd_dist"]
KINDS = ("PUT", "GET", "HEAD", "LIST", "DELETE", "POST")
SUMMARY = re.compile(r"Computed (\d+) pairs in (\d+) tiles? of (\d+) x \d+ in (\S+(?: s)?) \(")


def summary_seconds(text: str) -> float:
    """compute's summary duration back in seconds: ``12.3 s``, ``4m05s`` or ``1h02m03s`` (cli/text.py's duration)."""
    if text.endswith(" s"):
        return float(text[:-2])
    parts = dict((unit, int(value)) for value, unit in re.findall(r"(\d+)([hms])", text))
    return 3600 * parts.get("h", 0) + 60 * parts.get("m", 0) + parts.get("s", 0)


def cli_command() -> list[str]:
    """How to run the CLI: the venv's script beside this interpreter, else ``python -m nnstd_dist``."""
    script = Path(sys.executable).with_name("nnstd-dist")
    return [str(script)] if script.exists() else CLI


def run(args: list[str], env: dict[str, str]) -> tuple[float, str]:
    """Run the CLI with ``args``; seconds of wall time and its stdout + stderr. A failure stops the benchmark."""
    start = time.perf_counter()
    done = subprocess.run(cli_command() + args, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"nnstd-dist {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return seconds, done.stdout + done.stderr


def kinds(counter: collections.Counter) -> str:
    return " ".join(f"{k} {counter.get(k, 0)}" for k in KINDS) + f" (total {sum(counter.values())})"


def key_pattern(target: str, bucket: str, store: str, digits: bool = True) -> str:
    """``/bucket/t0.zarr/mask_l0/c/3/0?x=y`` -> ``mask_l0/c/N/N``: the key below the store, digits as N, no query."""
    path = target.partition("?")[0]
    prefix = f"/{bucket}/{store}"
    if path.startswith(prefix):
        path = path[len(prefix):].lstrip("/") or "(store root)"
    elif path.strip("/") == bucket:
        query = target.partition("?")[2]
        prefix_arg = re.search(r"prefix=([^&]*)", query)
        path = f"(bucket list, prefix={prefix_arg.group(1) if prefix_arg else ''})"
    return re.sub(r"\d+", "N", path) if digits else path


def objects_at_rest(server: S3Server, bucket: str, store: str) -> tuple[int, int]:
    """Objects and bytes under ``store/`` in ``bucket`` (listed with boto3 after the measured steps)."""
    client = server.client()
    count = size = 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{store}/"):
        for item in page.get("Contents", []):
            count += 1
            size += item["Size"]
    return count, size


def local_files(path: Path) -> tuple[int, int]:
    files = [p for p in path.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", type=int, default=48, help="population size [48]")
    parser.add_argument("--layers", default="400,400,400,10", help="neuron counts, input first [400,400,400,10]")
    parser.add_argument("--density", type=float, default=0.05, help="density of every layer but the last [0.05]")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tile", type=int, default=8, help="compute --tile [8]")
    parser.add_argument("--workers", type=int, default=2, help="compute --n-workers [2]")
    parser.add_argument("--solver", choices=("exact", "fast"), default="exact")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of local + s3, alternating the order [2]")
    parser.add_argument("--top", type=int, default=12, help="key patterns shown for the s3 compute's requests [12]")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-object-store-") as tmp:
        work = Path(tmp)
        base_env = {k: v for k, v in os.environ.items() if k not in _CLEARED and not k.startswith("AWS_")}
        pop = work / "pop"
        run(["generate", str(pop), "--layers", args.layers, "--density", str(args.density), "--networks", str(args.networks),
             "--seed", str(args.seed), "-q"], base_env)
        server = S3Server.start(work / "s3")
        s3_env = {**base_env, **server.env()}
        bucket = server.make_bucket()
        print(f"population: {args.networks} networks of {args.layers}, density {args.density}, seed {args.seed}; "
              f"compute --solver {args.solver} --tile {args.tile} --n-workers {args.workers}; moto S3 at {server.endpoint}")
        print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at the start")

        times: dict[tuple[str, str], list[float]] = collections.defaultdict(list)
        own: dict[str, list[float]] = collections.defaultdict(list)
        step_requests: dict[str, list[collections.Counter]] = collections.defaultdict(list)
        compute_lines: list[list[tuple[str, str, int]]] = []
        at_rest: dict[str, tuple[int, int]] = {}
        tiles = None
        matrices: dict[str, list[dict[str, np.ndarray]]] = collections.defaultdict(list)

        for r in range(args.rounds):
            order = ("local", "s3") if r % 2 == 0 else ("s3", "local")
            for side in order:
                if side == "local":
                    store, env = str(work / f"t{r}.zarr"), base_env
                else:
                    store, env = f"s3://{bucket}/t{r}.zarr", s3_env
                out = work / f"{side}{r}.npz"
                steps = (
                    ("ingest", ["ingest", str(pop), "--store", store, "-q"]),
                    ("compute", ["compute", "--store", store, "--solver", args.solver, "--tile", str(args.tile),
                                 "--n-workers", str(args.workers)]),
                    ("info", ["info", "--store", store, "--json"]),
                    ("export", ["export", "--store", store, "-o", str(out), "-q"]),
                )
                for step, command in steps:
                    mark = server.mark()
                    seconds, output = run(command, env)
                    until = server.mark()
                    times[(side, step)].append(seconds)
                    if side == "s3":
                        step_requests[step].append(server.requests(since=mark, until=until))
                        if step == "compute":
                            compute_lines.append(server.request_lines(since=mark, until=until))
                    if step == "compute":
                        m = SUMMARY.search(output)
                        if not m:
                            raise SystemExit(f"no summary line in compute's output:\n{output}")
                        tiles = int(m.group(2))
                        own[side].append(summary_seconds(m.group(4)))
                    if step == "info" and side == "s3" and r == 0:
                        info = json.loads(output)
                        print(f"info --json of the s3 store: {info['pairs_computed']}/{info['pairs_total']} pairs computed, "
                              f"tile {info['tile']}, {info['files']} objects, {info['bytes']} bytes")
                at_rest[side] = (objects_at_rest(server, bucket, f"t{r}.zarr") if side == "s3"
                                 else local_files(work / f"t{r}.zarr"))
                with np.load(out, allow_pickle=False) as f:
                    matrices[side].append({k: f[k] for k in f.files})
                print(f"round {r + 1} {side:5}: " + ", ".join(f"{step} {times[(side, step)][-1]:.2f} s" for step, _ in steps)
                      + f" (compute's own figure {own[side][-1]:.1f} s)", flush=True)

        print()
        print(f"wall time, best of {args.rounds} (each a CLI subprocess, start-up included):")
        for step in ("ingest", "compute", "info", "export"):
            local, s3 = min(times[("local", step)]), min(times[("s3", step)])
            print(f"  {step:8} local {local:7.2f} s   s3 {s3:7.2f} s   s3/local {s3 / local:.2f}x")
        local, s3 = min(own["local"]), min(own["s3"])
        print(f"  compute's own figure (summary line, no start-up): local {local:.1f} s   s3 {s3:.1f} s   s3/local {s3 / local:.2f}x")

        print()
        print("requests during each s3 step (moto's log), per round:")
        for step in ("ingest", "compute", "info", "export"):
            for r, counter in enumerate(step_requests[step]):
                print(f"  {step:8} round {r + 1}: {kinds(counter)}")
        last = step_requests["compute"][-1]
        total = sum(last.values())
        print(f"compute: {tiles} tiles of {args.tile} x {args.tile}: {total / tiles:.1f} requests per tile ("
              + ", ".join(f"{k} {last.get(k, 0) / tiles:.1f}" for k in KINDS) + ")")

        print()
        lines = compute_lines[-1]
        store_name = f"t{args.rounds - 1}.zarr"
        patterns = collections.Counter((kind, key_pattern(target, bucket, store_name)) for kind, target, _ in lines)
        statuses = collections.Counter(status for _, _, status in lines)
        print(f"the last s3 compute's {len(lines)} requests by key (digits as N), top {args.top}; statuses "
              + ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items())))
        for (kind, pattern), n in patterns.most_common(args.top):
            print(f"  {n:6}  {n / tiles:6.1f}/tile  {kind:6} {pattern}")
        metadata = sum(n for (kind, pattern), n in patterns.items() if pattern.endswith("zarr.json"))
        print(f"  zarr.json (metadata) requests: {metadata} of {len(lines)} ({100 * metadata / max(len(lines), 1):.0f} %), "
              f"{metadata / tiles:.1f} per tile")
        repeated = collections.Counter(target.partition("?")[0] for kind, target, _ in lines if kind in ("GET", "HEAD"))
        print("  most read keys (GET + HEAD): "
              + ", ".join(f"{key_pattern(t, bucket, store_name, digits=False)} x{n}" for t, n in repeated.most_common(6)))
        missing = collections.Counter(key_pattern(t, bucket, store_name) for _, t, status in lines if status == 404)
        print("  404 (absent key) by key: " + (", ".join(f"{p} x{n}" for p, n in missing.most_common(6)) or "none"))

        print()
        (lo, lb), (so, sb) = at_rest["local"], at_rest["s3"]
        print(f"at rest after compute: s3 {so} objects ({sb / 1e6:.2f} MB); local {lo} files ({lb / 1e6:.2f} MB)")

        reference = matrices["local"][0]

        def identical(a: np.ndarray, b: np.ndarray) -> bool:
            return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()

        others = [m for side in ("local", "s3") for m in matrices[side]]
        same = all(np.array_equal(m["distance"], reference["distance"]) and identical(m["distance"], reference["distance"])
                   for m in others)
        differing = sorted({k for m in others for k in set(m) | set(reference)
                            if k not in m or k not in reference or not identical(m[k], reference[k])})
        shape = reference["distance"].shape
        print(f"exported distance matrices (.npz, {shape[0]} layers x {shape[1]} x {shape[2]}): local and s3 of every round "
              f"bit-identical (np.array_equal and the same bytes): {same}; the file's other arrays "
              + (f"differ: {', '.join(differing)}" if differing else "are identical too"))
        server.stop()
        if not same:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
