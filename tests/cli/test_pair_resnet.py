"""The README's PyTorch lines on a small ResNet: every off-chain parameter named in one error, one option that works."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from nnstd_dist.cli.main import cli

torch = pytest.importorskip("torch", reason="the tests use real PyTorch: pip install torch==2.13.0 (CPU wheel)")
nn = torch.nn
prune = pytest.importorskip("torch.nn.utils.prune")
README = Path(__file__).resolve().parents[2] / "README.md"
DOWNSAMPLES = ["layer2.0.downsample.0.weight", "layer3.0.downsample.0.weight"]


class Block(nn.Module):
    """torchvision's BasicBlock in its parameter names: conv1, bn1, conv2, bn2, downsample.0/1."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))


def small_resnet(seed: int) -> nn.Module:
    """A ResNet-18 in miniature: stem, three stages of two blocks (the last two open with a downsample), fc."""
    torch.manual_seed(seed)
    model = nn.Sequential()
    model.add_module("conv1", nn.Conv2d(3, 8, 7, 2, 3, bias=False))
    model.add_module("bn1", nn.BatchNorm2d(8))
    for stage, (c_in, c_out, stride) in enumerate([(8, 8, 1), (8, 16, 2), (16, 32, 2)], start=1):
        model.add_module(f"layer{stage}", nn.Sequential(Block(c_in, c_out, stride), Block(c_out, c_out)))
    model.add_module("fc", nn.Linear(32, 5))
    for module in model.modules():  # the README's pruning loop
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            prune.l1_unstructured(module, "weight", amount=0.9)
    return model


@pytest.fixture
def runs(tmp_path, monkeypatch):
    """runs/seed0/epoch_010.pt and runs/seed1/epoch_010.pt saved as the README saves them, in the working folder."""
    for seed in range(2):
        model = small_resnet(seed)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        (tmp_path / f"runs/seed{seed}").mkdir(parents=True)
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, tmp_path / f"runs/seed{seed}/epoch_010.pt")
    monkeypatch.chdir(tmp_path)
    return tmp_path / "runs"


def readme_line(prefix: str) -> list[str]:
    """The arguments of the README's first command line starting with ``prefix``, its comment dropped."""
    for line in README.read_text().splitlines():
        if line.startswith(prefix):
            return shlex.split(line, comments=True)[1:]
    raise AssertionError(f"no line starting with {prefix!r} in the README")


def invoke(args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_the_readme_pair_line_works_as_written_on_a_resnet(runs):
    result = invoke(readme_line("nnstd-dist pair runs/"))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    params = [re.search(r"\((.*)\)$", line)[1] for line in lines]
    assert params[0] == "conv1.weight" and params[-1] == "fc.weight" and len(params) == 1 + 3 * 2 * 2 + 1
    assert not any("downsample" in p for p in params)
    distances = [float(line.split()[2]) for line in lines]
    assert all(0 < d <= 1 for d in distances[:-1])  # 90 % pruned, different seeds: no two layers alike


def test_every_off_chain_parameter_in_one_error_and_its_fix_works_first_time(runs):
    result = invoke(["pair", runs / "seed1/epoch_010.pt", runs / "seed0/epoch_010.pt"])
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith("Error: ") and all(repr(name) in line for name in DOWNSAMPLES), line
    assert "2 parameters are not fed by the layer before them" in line
    fix = re.search(r"leave them out with (.*)$", line)[1]
    assert fix == "--exclude-param '*downsample*'"
    fixed = invoke(["pair", runs / "seed1/epoch_010.pt", runs / "seed0/epoch_010.pt", *shlex.split(fix), "--json"])
    assert fixed.exit_code == 0, fixed.output
    report = json.loads(fixed.stdout)
    assert len(report["layers"]) == len(report["params"]) == 14 and "layer3.1.conv2.weight" in report["params"]


def test_the_readme_ingest_line_takes_the_same_layers(runs):
    result = invoke(readme_line("nnstd-dist ingest runs/"))
    assert result.exit_code == 0, result.output
    info = invoke(["info", "--store", "cnns.zarr", "--json"])
    assert [layer["param"] for layer in json.loads(info.stdout)["layers"]][:3] == ["conv1.weight", "layer1.0.conv1.weight", "layer1.0.conv2.weight"]


def test_without_a_shared_part_each_name_is_excluded():
    from nnstd_dist.sources.param_layers import exclusion_globs

    assert exclusion_globs(["a.skip.weight", "b.proj.weight"], ["a.conv.weight"]) == ["a.skip.weight", "b.proj.weight"]
    assert exclusion_globs(["x.shortcut.0.weight", "y.shortcut.0.weight"], ["x.conv.weight"]) == ["*shortcut*"]
    assert exclusion_globs(["only.weight"], []) == ["only.weight"]
