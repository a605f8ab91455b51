"""Ctrl-C stops pytest (issue 29, item 7): dask_jobqueue's import-time SIGINT handler is neutralised by tests/conftest.py."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("dask_jobqueue")

PROBE = '''
import time
import dask_jobqueue  # as test_hpc.py and test_slurm.py do: its runner module sets a SIGINT handler calling sys.exit()


def test_waits():
    print("waiting", flush=True)
    time.sleep(120)


def test_after():
    pass
'''


def test_ctrl_c_stops_a_pytest_run_that_imports_dask_jobqueue(tmp_path):
    shutil.copy(Path(__file__).parent / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_probe.py").write_text(PROBE)
    command = [sys.executable, "-m", "pytest", "-s", "-p", "no:cacheprovider", "-q", str(tmp_path / "test_probe.py")]
    proc = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        seen = ""
        deadline = time.monotonic() + 120
        while "waiting" not in seen:
            assert proc.poll() is None and time.monotonic() < deadline, seen
            seen += proc.stdout.readline()
        os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C goes to the whole process group
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    out = seen + out
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out  # stopped, not a failed test and the run going on
    assert "KeyboardInterrupt" in out and "SystemExit" not in out and "passed" not in out, out
