"""`upgrade`: a format-2 store becomes format 3 in place, networks and distances bit for bit, killed at any write recoverable."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from nnstd_dist.cli.main import cli
from nnstd_dist.errors import NotAStoreError
from nnstd_dist.store import faults
from nnstd_dist.store.topology_store import TopologyStore
from nnstd_dist.store.upgrade import upgrade
from nnstd_dist.store.verify import verify

from _format2 import write_format2
from _populations import chain, pair_distances, records

N, TILE = 11, 3  # tiles {0..2} {3..5} {6..8} {9, 10}


@pytest.fixture(scope="module")
def networks():
    return chain(seed=8, length=N, fraction=0.3)


@pytest.fixture(scope="module")
def full(networks):
    return pair_distances(networks)


def _files(path) -> int:
    return sum(len(files) for _, _, files in os.walk(path))


def test_a_format_2_store_is_refused_with_the_command_that_upgrades_it(tmp_path, networks, full):
    write_format2(tmp_path / "old.zarr", networks, records(N), TILE, full)
    with pytest.raises(NotAStoreError, match=r"format version 2 .* upgrade it in place with `upgrade\("):
        TopologyStore.open(tmp_path / "old.zarr")
    result = CliRunner().invoke(cli, ["info", "--store", str(tmp_path / "old.zarr")])
    assert result.exit_code == 2 and result.stderr.strip().endswith(f"`nnstd-dist upgrade --store {tmp_path / 'old.zarr'}`"), result.output


def test_upgrade_keeps_networks_and_distances_bit_for_bit(tmp_path, networks, full):
    path = tmp_path / "s.zarr"
    write_format2(path, networks, records(N), TILE, full)
    before = _files(path)
    result = CliRunner().invoke(cli, ["upgrade", "--store", str(path)])
    assert result.exit_code == 0 and f"{N} networks, 10 computed tiles kept" in result.output, result.output
    store = TopologyStore.open(path)
    assert store.names() == [r.name for r in records(N)] and store.tile == TILE and store.solver == "exact"
    np.testing.assert_array_equal(store.read_distance(), full)
    for i, net in enumerate(store.read_masks(range(N))):
        assert all((m != o).nnz == 0 for m, o in zip(net, networks[i]))
    assert verify(path).ok and _files(path) < before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.zarr"]  # no staging or backup left
    assert "already format 3" in CliRunner().invoke(cli, ["upgrade", "--store", str(path)]).output


def test_partial_results_stay_partial_and_compute_finishes_them(tmp_path, networks, full, dask_client):
    from nnstd_dist.engine import compute

    path = tmp_path / "s.zarr"
    done = {(1, 0): N, (2, 2): N, (3, 1): N, (2, 1): 7}  # (2, 1) at 7 networks: its row 6 only
    write_format2(path, networks, records(N), TILE, full, done=done)
    report = upgrade(path)
    assert report.tiles == 4
    store = TopologyStore.open(path)
    markers = store.tile_markers()
    assert {(a, b): int(markers[a, b]) for a, b in zip(*np.nonzero(markers))} == done
    d = store.read_distance()
    assert np.array_equal(d[:, 6, 3:6], full[:, 6, 3:6]) and np.isnan(d[:, 7, 3:6]).all() and np.isnan(d[:, 1, 0]).all()
    plan, stats = compute(path, client=dask_client)
    np.testing.assert_array_equal(TopologyStore.open(path).read_distance(), full)


def test_results_of_the_sparse_solver_are_dropped(tmp_path, networks, full):
    path = tmp_path / "s.zarr"
    write_format2(path, networks, records(N), TILE, full, solver="sparse")
    result = CliRunner().invoke(cli, ["upgrade", "--store", str(path)])
    assert result.exit_code == 0 and "Distances not kept: its distances came from the superseded sparse solver" in result.stderr
    store = TopologyStore.open(path)
    assert store.n_networks == N and not store.has_results


def _upgrade_killed_after(path, k: int | None) -> int:
    env = {**os.environ, faults.ENV: str(k)} if k is not None else dict(os.environ)
    code = "import sys; from nnstd_dist.cli.main import cli; sys.exit(cli(['upgrade', '--store', sys.argv[1]]))"
    return subprocess.run([sys.executable, "-c", code, str(path)], env=env, capture_output=True).returncode


@pytest.mark.slow
def test_killed_at_every_write_leaves_the_old_store_or_the_new_and_the_rerun_finishes(tmp_path, networks, full):
    """Killed before the swap: the format-2 store, untouched. Between the two renames: no store, and the next upgrade puts
    the old one back and starts over. After: the new store. Each time the rerun ends with the clean upgrade's store."""
    done = {(1, 0): N, (2, 2): N, (3, 1): N, (2, 1): 7}
    k, outcomes = 0, set()
    while True:
        path = tmp_path / f"k{k}" / "s.zarr"
        write_format2(path, networks, records(N), TILE, full, done=done)
        code = _upgrade_killed_after(path, k)
        if code == 0:
            break
        assert code == faults.FAULT_EXIT, f"k={k}: exit {code}"
        if (path / "zarr.json").is_file():
            version = __import__("json").loads((path / "zarr.json").read_text())["attributes"]["format_version"]
            outcomes.add(version)
        else:
            outcomes.add("between the renames")
        assert _upgrade_killed_after(path, None) == 0, f"k={k}: the rerun failed"
        store = TopologyStore.open(path)
        d = store.read_distance()
        assert np.array_equal(d[:, 6, 3:6], full[:, 6, 3:6]) and np.isnan(d[:, 7, 3:6]).all(), f"k={k}"
        assert verify(path).ok and sorted(p.name for p in path.parent.iterdir()) == ["s.zarr"], f"k={k}"
        k += 1
    assert k > 10 and outcomes == {2, "between the renames"}


# ---- issue 28: a linked store path, damaged format-2 stores, leftovers after a stop -------------------------


def _tree(path) -> dict:
    return {str(p.relative_to(path)): p.read_bytes() for p in path.rglob("*") if p.is_file()}


def test_upgrade_through_a_linked_store_path_upgrades_its_target_and_keeps_the_link(tmp_path, networks, full):
    target = tmp_path / "data" / "s.zarr"
    target.parent.mkdir()
    write_format2(target, networks, records(N), TILE, full)
    (tmp_path / "link.zarr").symlink_to(target)
    result = CliRunner().invoke(cli, ["upgrade", "--store", str(tmp_path / "link.zarr")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "link.zarr").is_symlink() and os.readlink(tmp_path / "link.zarr") == str(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "link.zarr"] and sorted(os.listdir(target.parent)) == ["s.zarr"]
    np.testing.assert_array_equal(TopologyStore.open(tmp_path / "link.zarr").read_distance(), full)


def _garbage_group(path):
    (path / "zarr.json").write_bytes(b"\x00garbage{")


def _edit(**changes):
    def damage(path):
        import json

        meta = json.loads((path / "zarr.json").read_text())
        meta["attributes"].update(changes)
        (path / "zarr.json").write_text(json.dumps(meta))
    return damage


@pytest.mark.parametrize("damage, says", [
    (_garbage_group, "not a readable zarr group"),
    (_edit(n_networks=N + 5), "n_networks"),
    (_edit(shapes="784x784"), "attribute shapes"),
    (_edit(tile=0), "attribute tile"),
    (_edit(n_networks=-1), "n_networks"),
], ids=["garbage zarr.json", "n_networks beyond the arrays", "shapes a string", "tile 0", "n_networks negative"])
def test_upgrade_of_a_damaged_format_2_store_is_one_error_and_leaves_it_as_it_was(tmp_path, networks, full, damage, says):
    path = tmp_path / "s.zarr"
    write_format2(path, networks, records(N), TILE, full)
    damage(path)
    before = _tree(path)
    result = CliRunner().invoke(cli, ["upgrade", "--store", str(path)])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and says in lines[0] and "left as it was" in lines[0], result.output
    assert _tree(path) == before and sorted(p.name for p in tmp_path.iterdir()) == ["s.zarr"]


def test_a_copy_of_the_old_store_left_after_the_swap_is_removed_by_the_next_upgrade(tmp_path, networks, full):
    path = tmp_path / "s.zarr"
    write_format2(path, networks, records(N), TILE, full)
    upgrade(path)
    leftover = tmp_path / ".s.zarr.format2-999999999"  # a pid no process has: an upgrade stopped while removing it
    write_format2(leftover, networks, records(N), TILE, full)
    assert upgrade(path).already
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.zarr"]
