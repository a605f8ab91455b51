"""Store paths and filesystems that fight back (issue 23, item 10): symbolic links, a read-only filesystem, a full disk.

The filesystem cases mount a small tmpfs (root only: as root, chmod does not make a folder read-only)
and are skipped where mounting is not allowed.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from nnstd_dist.cli.main import cli
from nnstd_dist.store.topology_store import TopologyStore

from _corpus import population, write_set


def _sources(folder: Path, n: int, first_seed: int = 0) -> Path:
    for i in range(n):
        write_set(folder / f"r{first_seed + i}" / "epoch_000", population(first_seed + i))
    return folder


def _ingest(src: Path, store: Path):
    return CliRunner().invoke(cli, ["ingest", str(src), "--store", str(store)])


def _one_error(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("Reading ")]
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


@contextlib.contextmanager
def _tmpfs(where: Path, options: str):
    where.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True).returncode:
        pytest.skip("mounting a tmpfs needs root (and CAP_SYS_ADMIN)")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_a_store_path_that_is_a_dangling_link_creates_the_store_at_its_target(tmp_path):
    (tmp_path / "s.zarr").symlink_to(tmp_path / "target.zarr")
    result = _ingest(_sources(tmp_path / "src", 2), tmp_path / "s.zarr")
    assert result.exit_code == 0, result.output
    assert TopologyStore.open(tmp_path / "s.zarr").n_networks == 2 and (tmp_path / "target.zarr" / "zarr.json").is_file()


def test_a_store_path_linked_to_an_empty_folder_creates_the_store_there(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "s.zarr").symlink_to(tmp_path / "empty")
    result = _ingest(_sources(tmp_path / "src", 2), tmp_path / "s.zarr")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "s.zarr").is_symlink() and TopologyStore.open(tmp_path / "empty").n_networks == 2


def test_a_store_path_that_is_a_link_loop_is_one_error(tmp_path):
    (tmp_path / "s.zarr").symlink_to("s.zarr")
    assert "a symbolic link that leads nowhere" in _one_error(_ingest(_sources(tmp_path / "src", 2), tmp_path / "s.zarr"))


def test_a_first_ingest_on_a_read_only_filesystem_is_one_error(tmp_path):
    with _tmpfs(tmp_path / "ro", "ro,size=1m") as ro:
        result = _ingest(_sources(tmp_path / "src", 2), ro / "s.zarr")
        assert "cannot create the store (Read-only file system)" in _one_error(result)
        assert not any(ro.iterdir())


@pytest.mark.slow
def test_a_full_disk_during_an_append_is_one_line_and_the_store_unchanged(tmp_path):
    """In a subprocess: zarr's write tasks left pending would print 'Task was destroyed' at the interpreter's exit."""
    src = _sources(tmp_path / "src", 2)
    # Sized for format 3: the first store takes ~108 kB there, the 200 more networks need ~20 kB more (masks in shards)
    with _tmpfs(tmp_path / "full", "size=140k") as full:
        assert _ingest(src, full / "s.zarr").exit_code == 0
        more = _sources(tmp_path / "more", 200, first_seed=100)
        cmd = [sys.executable, "-m", "nnstd_dist", "ingest", str(more), "--store", str(full / "s.zarr")]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        lines = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith("Reading ")]
        assert proc.returncode == 2 and len(lines) == 1 and "No space left on device" in lines[0], proc.stderr[-2000:]
        assert TopologyStore.open(full / "s.zarr").n_networks == 2
        assert not (full / "s.zarr" / "nnstd-dist.lock").exists()
        assert CliRunner().invoke(cli, ["verify", "--store", str(full / "s.zarr")]).exit_code == 0  # rows past n_networks are the next append's to cut
