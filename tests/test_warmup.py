"""The fast solver's first compile is said once per machine and numba cache (issue 27, item 6)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nnstd_dist import warmup

ROOT = Path(__file__).resolve().parents[1]
LINE = f"Compiling the fast solver (numba, once per machine; {warmup.EXPECTED}) ..."


def test_the_marker_is_per_numba_cache_and_kernel_source(tmp_path, monkeypatch):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "a"))
    a = warmup.marker_path()
    assert a.parent == tmp_path / "a"  # deleting numba's cache deletes the marker with it
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "b"))
    assert warmup.marker_path().parent == tmp_path / "b" and warmup.marker_path().name != a.name


def test_a_marked_cache_says_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(warmup, "_done_here", False)
    warmup.marker_path().write_text("compiled in 21.0 s\n")
    assert warmup.compile_fast_solver() is False and capsys.readouterr().err == ""


@pytest.mark.slow
def test_the_first_fast_run_says_it_compiles_once_for_pair_and_the_api(tmp_path):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    pair = [sys.executable, "-m", "nnstd_dist", "pair", str(ROOT / "topo" / "net_001"), str(ROOT / "topo" / "net_000"), "--solver", "fast"]
    first = subprocess.run(pair, capture_output=True, text=True, env=env, timeout=600)
    assert first.returncode == 0 and first.stderr.splitlines() == [LINE], first.stderr
    again = subprocess.run(pair, capture_output=True, text=True, env=env, timeout=600)
    assert again.returncode == 0 and again.stderr == "" and again.stdout == first.stdout
    api = "import numpy as np, nnstd_dist as nd; print(nd.nnstd([np.eye(3)], [np.eye(3)[::-1]], solver='fast'))"
    quiet = subprocess.run([sys.executable, "-c", api], capture_output=True, text=True, env=env, timeout=600)
    assert quiet.returncode == 0 and quiet.stderr == ""  # compiled already on this cache: nothing said
    fresh = {**env, "NUMBA_CACHE_DIR": str(tmp_path / "other")}
    said = subprocess.run([sys.executable, "-c", api], capture_output=True, text=True, env=fresh, timeout=600)
    assert said.returncode == 0 and said.stderr.splitlines() == [LINE] and said.stdout == quiet.stdout
