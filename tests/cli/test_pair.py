"""`nnstd-dist pair A B`: the kernel's numbers on stdout, bad input as one `Error:` line and exit code 2."""

from __future__ import annotations

import json
import runpy
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp
from click.testing import CliRunner

from nnstd_dist import load_set_network, nnstd
from nnstd_dist.cli.main import cli

SHAPES = [(9, 7), (7, 7), (7, 3)]


@pytest.fixture
def two_networks(tmp_path, rng, synthetic_network, set_network_dir):
    a = set_network_dir(tmp_path / "net_a", synthetic_network(rng, SHAPES, 0.3), rng)
    b = set_network_dir(tmp_path / "net_b", synthetic_network(rng, SHAPES, 0.3), rng)
    return a, b


def expected_distances(a, b) -> list[float]:
    return nnstd(load_set_network(a), load_set_network(b)).tolist()


def run(*args):
    return CliRunner(catch_exceptions=False).invoke(cli, ["pair", *map(str, args)])


def test_text_output(two_networks):
    a, b = two_networks
    result = run(a, b)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == ["layer 0", "layer 1", "layer 2"]
    # repr round-trips a float64: the printed value is the kernel's value exactly, written as --json writes it.
    assert [float(line.split()[2]) for line in lines] == expected_distances(a, b)
    assert [line.split()[2] for line in lines] == [json.dumps(d) for d in expected_distances(a, b)]
    assert [line.split()[3] for line in lines] == ["(weight_l0)", "(weight_l1)", "(weight_l2)"]  # the parameter, as info names it
    assert 0 < expected_distances(a, b)[0] < 1  # a real comparison, not two identical networks


def test_json_output(two_networks):
    a, b = two_networks
    result = run(a, b, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["layers"] == expected_distances(a, b)
    assert (report["a"], report["b"]) == (str(a), str(b))
    assert report["params"] == ["weight_l0", "weight_l1", "weight_l2"]


@pytest.mark.parametrize("solver", ["exact", "fast"])
def test_solver_option(two_networks, solver):
    a, b = two_networks
    result = run(a, b, "--json", "--solver", solver)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["solver"] == solver
    assert report["layers"] == nnstd(load_set_network(a), load_set_network(b), solver=solver).tolist()
    assert report["layers"][0] == pytest.approx(expected_distances(a, b)[0], abs=1e-12)


@pytest.mark.parametrize("solver, certified", [("exact", None), ("fast", True)], ids=["exact-claims-nothing", "fast-says-certified"])
def test_the_certified_line(two_networks, solver, certified):
    """fast ends with one line on whether every tie it broke was harmless (random networks: certified); exact claims nothing."""
    a, b = two_networks
    lines = run(a, b, "--solver", solver).stdout.splitlines()
    assert [line for line in lines if line.startswith("certified:")] == (
        [] if certified is None else ["certified: yes (every tie the fast solver broke was between interchangeable neurons)"]
    )
    assert json.loads(run(a, b, "--json", "--solver", solver).stdout)["certified"] is certified


def test_unknown_solver_is_a_usage_error(two_networks):
    result = run(*two_networks, "--solver", "sparse")  # superseded by fast
    assert result.exit_code == 2
    assert "'sparse' is not one of 'exact', 'fast'" in result.output


def test_order_of_arguments_is_kept(two_networks):
    a, b = two_networks
    assert json.loads(run(b, a, "--json").stdout)["layers"] == expected_distances(b, a)


def test_keep_last_row_on_one_layer_networks(tmp_path, rng, synthetic_network, set_network_dir):
    a = set_network_dir(tmp_path / "a", synthetic_network(rng, [(6, 4)], 0.5), rng)
    b = set_network_dir(tmp_path / "b", synthetic_network(rng, [(6, 4)], 0.5), rng)
    result = run(a, b, "--json", "--keep-last-row")
    assert result.exit_code == 0, result.output
    expected = nnstd(load_set_network(a, keep_last_row=True), load_set_network(b, keep_last_row=True))
    assert json.loads(result.stdout)["layers"] == expected.tolist()


# Each spoils the pair (a, b) and returns the command's arguments and a fragment its error must name.


def spoil_garbage(a, b):
    (b / "weight_l1.npz").write_bytes(b"not an npz")
    return [a, b], f"{b / 'weight_l1.npz'}: not an npz file (not a zip archive"


def spoil_gap(a, b):
    (a / "weight_l1.npz").unlink()
    return [a, b], f"{a}: missing weight_l1.npz"


def spoil_shape(a, b):
    sp.save_npz(b / "weight_l2.npz", sp.csr_matrix(np.ones((8, 4))))
    return [a, b], "layer 2: shapes (7, 3) and (7, 4) differ"


def spoil_layer_count(a, b):
    (b / "weight_l2.npz").unlink()
    return [a, b], "3 and 2 layers"


def spoil_missing_dir(a, b):
    return [a, b.parent / "no_such_network"], f"{b.parent / 'no_such_network'}: no such file or directory"


def spoil_bias_kept(a, b):
    # With the bias rows kept, layer 1 has one input more than layer 0 has outputs.
    return [a, b, "--keep-last-row"], f"{a}: layer 1 has 8 input rows but layer 0 has 7 outputs"


SPOILS = {
    "garbage-file": spoil_garbage,
    "gap": spoil_gap,
    "layer-shape": spoil_shape,
    "layer-count": spoil_layer_count,
    "missing-dir": spoil_missing_dir,
    "keep-last-row-multilayer": spoil_bias_kept,
}


@pytest.mark.parametrize("case", SPOILS)
def test_bad_input_is_one_error_line_and_exit_2(two_networks, case):
    args, fragment = SPOILS[case](*two_networks)
    result = CliRunner().invoke(cli, ["pair", *map(str, args)])
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1
    assert fragment in result.stderr
    assert "Traceback" not in result.output


def test_python_dash_m_runs_the_cli_in_process(two_networks, monkeypatch, capsys):
    """The fast variant of the test below: nnstd_dist/__main__.py run as `python -m` runs it, without a new interpreter."""
    a, b = two_networks
    monkeypatch.setattr(sys, "argv", ["nnstd_dist", "pair", str(a), str(b), "--json"])
    with pytest.raises(SystemExit) as done:
        runpy.run_module("nnstd_dist", run_name="__main__")
    assert done.value.code == 0
    assert json.loads(capsys.readouterr().out)["layers"] == expected_distances(a, b)


@pytest.mark.slow  # a fresh interpreter; the test above runs the same module in-process
def test_python_dash_m(two_networks):
    a, b = two_networks
    done = subprocess.run(
        [sys.executable, "-m", "nnstd_dist", "pair", str(a), str(b), "--json"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["layers"] == expected_distances(a, b)
    broken = subprocess.run(
        [sys.executable, "-m", "nnstd_dist", "pair", str(a), str(a.parent / "nothing")],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert broken.returncode == 2
    assert broken.stderr.startswith("Error: ") and broken.stderr.count("\n") == 1
