"""Crash injection: every writing command, killed before its k-th store write for every k, leaves the old or the new state.

Each command runs in a child process (forked from a fork server) with NNSTD_DIST_FAULT_AFTER_WRITES=k (nnstd_dist/faults.py),
which dies like SIGKILL before its (k+1)-th write. After each kill: the store opens (or is absent,
for a first ingest), its population is the old or the new one, and every distance it reports
equals NNSTD of the masks it holds. Then the same command is rerun without the fault, compute
finishes the rest, and the exported matrix is bit-identical to a clean run's. k grows until the
command completes, so every write boundary is a kill point (the full sweep is marked slow; the fast
tier kills each command once, about half-way through its writes, with the same checks).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from nnstd_dist.store import faults
from nnstd_dist.store.topology_store import TopologyStore

from _corpus import write_set
from _forked import cli, run_forked
from _forked import compute as forked_compute
from _populations import chain, pair_distances

SHAPES = [(20, 20), (20, 4)]
MAX_WRITES = 400  # no command here writes more: a sweep that gets there is a bug


def _networks(seed: int, n: int):
    return [[m.toarray() for m in net] for net in chain(seed, n, 0.2, SHAPES)]


def _write_sources(folder: Path, networks, first: int = 0) -> Path:
    for i, net in enumerate(networks):
        write_set(folder / f"r0" / f"epoch_{first + i:03d}", net, seed=first + i)
    return folder


def compute(store: Path, *extra: str):
    """compute on an in-process Dask cluster (_forked.compute) with the command line's --recompute and --tile."""
    options = {"recompute": "--recompute" in extra}
    if "--tile" in extra:
        options["tile"] = int(extra[extra.index("--tile") + 1])
    return forked_compute(store, **options)


def population(store: Path):
    """(names, digests) of the store, or None when there is no store."""
    if not (store / "zarr.json").exists():
        return None
    s = TopologyStore.open(store)
    return tuple(s.names()), tuple(str(d) for d in s.column("digest"))


def check_reported_distances(store: Path) -> None:
    """Every distance the store reports (non-NaN) equals NNSTD of the masks it holds, bit for bit."""
    s = TopologyStore.open(store)
    if not s.has_results:
        return
    reported = s.read_distance()
    truth = pair_distances(s.read_masks(np.arange(s.n_networks)))
    known = ~np.isnan(reported)
    assert np.array_equal(reported[known], truth[known]), "a reported distance differs from NNSTD of the stored masks"


def assert_no_leftovers(store: Path) -> None:
    """No staging folder of a killed first ingest, no rows past n_networks left by a killed append."""
    assert not [p.name for p in store.parent.iterdir() if p.name.startswith(f".{store.name}.")]
    n = TopologyStore.open(store).n_networks
    for array in ("mask_l0", "network", "connections"):
        assert json.loads((store / array / "zarr.json").read_text())["shape"][0] == n, array


def exported(store: Path, out: Path) -> bytes:
    assert run_forked(cli("export", "--store", store, "-o", out)) == 0
    with np.load(out, allow_pickle=False) as f:
        return f["distance"].tobytes() + "|".join(f["names"].tolist()).encode()


def sweep(tmp_path: Path, prepare, command, states, every: int = 1, rerun_every: int = 1) -> int:
    """Kill ``command`` before its k-th write for k = 0, 1, ... until it completes; returns the writes it made.

    ``prepare(folder)`` builds the starting point and returns the store path; ``states`` are the
    acceptable populations after a kill (old and new). Every ``every``-th kill point (and the first
    four) is checked; every ``rerun_every``-th of those is also rerun, computed and exported.
    """
    clean = tmp_path / "clean"
    store = prepare(clean)
    assert run_forked(command(store)) == 0
    assert run_forked(compute(store)) == 0
    expected = exported(store, clean / "out.npz")
    checked = 0
    for k in range(MAX_WRITES):
        work = tmp_path / f"k{k}"
        store = prepare(work)
        code = run_forked(command(store), fault=k)
        if code == 0:
            assert k > 0
            return k
        assert code == faults.FAULT_EXIT, f"k={k}: exit {code} instead of being killed"
        if k > 3 and k % every:
            shutil.rmtree(work)
            continue
        assert population(store) in states, f"k={k}: neither the old nor the new population"
        if population(store) is not None:
            check_reported_distances(store)
            assert run_forked(cli("info", "--store", store)) == 0, f"k={k}: info fails after the kill"
        if checked % rerun_every == 0:
            assert run_forked(command(store)) == 0, f"k={k}: the rerun did not finish"
            assert_no_leftovers(store)
            assert run_forked(compute(store)) == 0
            assert exported(store, work / "out.npz") == expected, f"k={k}: the matrix differs from a clean run's"
        checked += 1
        shutil.rmtree(work)
    raise AssertionError(f"the command made more than {MAX_WRITES} writes")


# ---- the commands --------------------------------------------------------------------------------

NET = _networks(3, 7)


def _ingested(folder: Path, networks, computed: bool, tile: int = 2) -> Path:
    src = _write_sources(folder / "src", networks)
    store = folder / "s.zarr"
    assert run_forked(cli("ingest", src, "--store", store)) == 0
    if computed:
        assert run_forked(compute(store, "--tile", str(tile))) == 0
    return store


def _names(networks, first=0):
    return tuple(f"r0/epoch_{first + i:03d}" for i in range(len(networks)))


def _digests(networks):
    from nnstd_dist.store.topology_store import mask_digest

    return tuple(mask_digest(n) for n in networks)


def _state(networks):
    return (_names(networks), _digests(networks))


SCENARIOS = {
    "first ingest": (
        lambda f: (_write_sources(f / "src", NET[:5]), f / "s.zarr")[1],
        lambda s: cli("ingest", s.parent / "src", "--store", s),
        [None, _state(NET[:5])],
    ),
    "append to a computed store": (
        lambda f: (_ingested(f, NET[:4], True), _write_sources(f / "more", NET[4:], first=4))[0],
        lambda s: cli("ingest", s.parent / "more", "--store", s),
        [_state(NET[:4]), _state(NET)],
    ),
    "ingest --replace": (
        lambda f: (_ingested(f, NET[:5], True), shutil.rmtree(f / "src"), _write_sources(f / "src", NET[:2] + NET[5:6] + NET[3:5]))[0],
        lambda s: cli("ingest", s.parent / "src", "--store", s, "--replace"),
        [_state(NET[:5]), (_names(NET[:5]), _digests(NET[:2] + NET[5:6] + NET[3:5]))],
    ),
    "compute": (
        lambda f: _ingested(f, NET[:6], False),
        lambda s: compute(s, "--tile", "2"),
        [_state(NET[:6])],
    ),
    "compute --recompute --tile 3": (
        lambda f: _ingested(f, NET[:6], True, tile=2),
        lambda s: compute(s, "--recompute", "--tile", "3"),
        [_state(NET[:6])],
    ),
}


# About half the writes each command makes today (53, 31, 28, 40 and 32): the fast tier's one kill point.
HALF_WAY = {"first ingest": 26, "append to a computed store": 15, "ingest --replace": 6, "compute": 20, "compute --recompute --tile 3": 16}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_killed_half_way_leaves_old_or_new_and_the_rerun_finishes(tmp_path, scenario):
    """One kill point per command; instead of a clean run's export, the final distances are compared with NNSTD of the stored masks."""
    prepare, command, states = SCENARIOS[scenario]
    store = prepare(tmp_path)
    code = run_forked(command(store), fault=HALF_WAY[scenario])
    assert code == faults.FAULT_EXIT, f"exit {code}: the command no longer makes {HALF_WAY[scenario]} writes (lower HALF_WAY)"
    assert population(store) in states
    if population(store) is not None:
        check_reported_distances(store)
        assert run_forked(cli("info", "--store", store)) == 0
    assert run_forked(command(store)) == 0
    assert_no_leftovers(store)
    assert population(store) == states[-1]
    if command(store)[0] != "compute":
        assert run_forked(compute(store)) == 0
    check_reported_distances(store)
    assert not np.isnan(TopologyStore.open(store).read_distance()).any()  # every pair known again


@pytest.mark.slow
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_killed_at_every_write_leaves_old_or_new(tmp_path, scenario):
    prepare, command, states = SCENARIOS[scenario]
    sweep(tmp_path, prepare, command, states)


def test_killed_export_leaves_the_old_file_or_the_new(tmp_path):
    networks = NET[:4]
    store = _ingested(tmp_path, networks, True)
    out = tmp_path / "d.npz"
    out.write_bytes(b"an older export")
    for k in range(MAX_WRITES):
        code = run_forked(cli("export", "--store", store, "-o", out), fault=k)
        assert out.read_bytes() == b"an older export" or code == 0
        if code == 0:
            break
        assert code == faults.FAULT_EXIT
    assert exported(store, tmp_path / "again.npz")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".d.npz")]


@pytest.mark.parametrize("every", [6, pytest.param(1, marks=pytest.mark.slow)])
def test_a_full_disk_at_any_write_of_an_append_is_one_error_and_the_old_population(tmp_path, monkeypatch, every):
    """ENOSPC raised at the k-th write, for every k (every 6th in the fast tier): exit 2, one `Error:` line, the old population; then the rerun works."""
    from click.testing import CliRunner

    from nnstd_dist.cli.main import cli as group

    base = _ingested(tmp_path / "base", NET[:4], True)
    more = _write_sources(tmp_path / "more", NET[4:], first=4)
    monkeypatch.setenv(faults.ENV, str(10**9))  # routes writes through the counting store
    original = faults.before_write
    for k in range(0, MAX_WRITES, every):
        store = tmp_path / f"k{k}.zarr"
        shutil.copytree(base, store)
        calls = []

        def full(k=k, calls=calls):
            calls.append(1)
            if len(calls) > k:
                raise OSError(28, "No space left on device")

        monkeypatch.setattr(faults, "before_write", full)
        result = CliRunner().invoke(group, ["ingest", str(more), "--store", str(store)])
        monkeypatch.setattr(faults, "before_write", original)
        if result.exit_code == 0:
            assert k > 3
            break
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.exit_code == 2 and lines[-1].startswith("Error: ") and "No space left" in lines[-1], (k, result.stderr, result.exception)
        assert population(store) == _state(NET[:4]), k
        rerun = CliRunner().invoke(group, ["ingest", str(more), "--store", str(store)])
        assert rerun.exit_code == 0, (k, rerun.output)
        assert population(store) == _state(NET)
        shutil.rmtree(store)
