"""One exit-code rule for every command: 0 ok, 1 problems found (verify), 2 bad input or store, 130/143 interrupted."""

from __future__ import annotations

import errno
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from nnstd_dist.cli.main import COMMANDS, cli
from nnstd_dist.store.topology_store import TopologyStore

from _populations import make_store, runs_population

SHAPES = [(6, 5), (5, 3)]
STORE_ONLY = ["--store", "s.zarr"]
# command -> (arguments that succeed, arguments that are bad input), run in a folder holding nets/ and s.zarr
CASES = {
    "pair": (["nets/n1", "nets/n0"], ["nets/n1", "nets/missing"]),
    "generate": (["gen", "--layers", "6,5,3", "--density", "0.3", "--networks", "2", "-q"], ["gen", "--layers", "6,5,3", "--density", "2"]),
    "ingest": (["nets", "--store", "new.zarr", "-q"], ["missing", "--store", "new.zarr"]),
    "info": (STORE_ONLY, ["--store", "missing.zarr"]),
    "compute": (STORE_ONLY, ["--store", "missing.zarr"]),  # every pair is done: nothing to compute
    "export": ([*STORE_ONLY, "-o", "d.npz"], ["--store", "missing.zarr", "-o", "d.npz"]),
    "plot": ([*STORE_ONLY, "-o", "p.png"], ["--store", "missing.zarr", "-o", "p.png"]),
    "report": ([*STORE_ONLY, "-o", "r.html"], ["--store", "missing.zarr", "-o", "r.html"]),
    "verify": (STORE_ONLY, ["--store", "missing.zarr"]),
    "upgrade": (STORE_ONLY, ["--store", "missing.zarr"]),  # a store of this format: nothing to do
}
# where each command first calls the library: an interruption is injected there
FIRST_CALL = {
    "pair": "nnstd_dist.sources.discover.read_network",
    "ingest": "nnstd_dist.sources.discover.read_network",
    "generate": "nnstd_dist.sources.generate.generate_population",
    "compute": "nnstd_dist.engine.compute",
    "upgrade": "nnstd_dist.store.upgrade.upgrade",
}


@pytest.fixture
def folder(tmp_path, monkeypatch, rng, synthetic_network, set_network_dir):
    for i in range(3):
        set_network_dir(tmp_path / "nets" / f"n{i}", synthetic_network(rng, SHAPES, 0.4), rng)
    networks, records = runs_population(2, [0, 1])
    make_store(tmp_path / "s.zarr", networks, records, tile=2)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def invoke(name, args):
    return CliRunner().invoke(cli, [name, *args])


def test_every_command_is_covered():
    assert set(CASES) == set(COMMANDS)


@pytest.mark.parametrize("name", list(CASES))
def test_ok_is_0(folder, name):
    result = invoke(name, CASES[name][0])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_or_store_is_2_with_one_error_line(folder, name):
    result = invoke(name, CASES[name][1])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and result.stderr.rstrip().endswith(errors[0]), result.stderr
    assert "Traceback" not in result.output


def test_verify_of_a_missing_store_is_bad_input_not_a_problem_found(folder):
    result = invoke("verify", ["--store", "missing.zarr"])
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr.startswith("Error: missing.zarr: no nnstd-dist store here")


def test_problems_found_is_1(folder):
    (folder / "s.zarr" / "mask_l0" / "c" / "0" / "0" / "0").unlink()  # the shard of every network's layer 0
    result = invoke("verify", STORE_ONLY)
    assert result.exit_code == 1 and "network 1 (r0/epoch_001): mask_l0 chunk missing" in result.stdout, result.output


@pytest.mark.parametrize("name", ["generate", "info", "ingest"])
def test_an_os_error_the_library_did_not_foresee_is_2(folder, monkeypatch, name):
    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", "s.zarr/mask_l0/c/9/0/0")

    _interrupt(monkeypatch, name, full_disk)
    result = invoke(name, CASES[name][0])
    assert (result.exit_code, result.stderr) == (2, "Error: s.zarr/mask_l0/c/9/0/0: No space left on device\n"), result.output


def _interrupt(monkeypatch, name, raise_it):
    target = FIRST_CALL.get(name)
    if target is None:
        monkeypatch.setattr(TopologyStore, "open", classmethod(lambda cls, *a, **k: raise_it()))
    else:
        monkeypatch.setattr(target, lambda *a, **k: raise_it())


def _ctrl_c():
    raise KeyboardInterrupt


@pytest.mark.parametrize("name", list(CASES))
def test_ctrl_c_is_130_with_one_line(folder, monkeypatch, name):
    _interrupt(monkeypatch, name, _ctrl_c)
    result = invoke(name, CASES[name][0])
    assert result.exit_code == 130, result.output
    assert "Interrupted" in result.stderr and "Aborted!" not in result.output and "Traceback" not in result.output


def test_sigterm_stops_compute_in_order_with_143(folder, monkeypatch):
    before = signal.getsignal(signal.SIGTERM)

    def terminated(*args, **kwargs):
        assert signal.getsignal(signal.SIGTERM) is not before  # compute's handler, else this would end pytest
        signal.raise_signal(signal.SIGTERM)

    monkeypatch.setattr("nnstd_dist.engine.compute", terminated)
    result = invoke("compute", STORE_ONLY)
    # the folder's store is computed: the line counts its pairs, and the command that resumes is the one typed
    assert result.exit_code == 143 and "Terminated: 6 of 6 pairs are kept in s.zarr; to resume: nnstd-dist compute --store s.zarr" in result.stderr, result.output
    assert signal.getsignal(signal.SIGTERM) is before


@pytest.mark.parametrize("name", ["info", "ingest"])
def test_sigterm_ends_any_other_command_by_the_signal(folder, name):
    """No handler: the default action ends the process (143 in a shell) wherever it is; every write survives that."""
    process = subprocess.Popen([sys.executable, "-m", "nnstd_dist", name, *CASES[name][0]], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(0.2)  # still starting: importing numpy, scipy and zarr takes longer
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGTERM
