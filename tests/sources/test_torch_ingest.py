"""PyTorch models end to end: pruned MLPs and CNNs saved by torch -> ingest / pair / info / compute, and what is refused."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import zarr
from click.testing import CliRunner

from _oracle import oracle_cnn
from nnstd_dist.cli.main import cli
from nnstd_dist.sources.formats import load_set_network
from nnstd_dist.engine.plan import make_plan
from nnstd_dist.store.topology_store import TopologyStore
from nnstd_dist.engine.tasks import compute_tile

torch = pytest.importorskip("torch", reason="the tests use real PyTorch: pip install torch==2.13.0 (CPU wheel)")
nn = torch.nn
prune = pytest.importorskip("torch.nn.utils.prune")


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def assert_one_line_error(result, *fragments):
    assert result.exit_code == 2, result.output
    last = result.stderr.splitlines()[-1]
    assert last.startswith("Error: ") and all(f in last for f in fragments), result.stderr


def vgg_mini(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
        nn.Conv2d(6, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 8, (1, 3), padding=(0, 1)), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 12), nn.ReLU(), nn.Linear(12, 5),
    )


def prune_all(model: nn.Module, amount: float) -> nn.Module:
    for module in model.modules():
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
            prune.random_unstructured(module, "weight", amount)
    return model


def layer_weights(model: nn.Module) -> list[np.ndarray]:
    """The topology as torch sees it: each pruned layer's mask (or its weight), in module order."""
    out = []
    for module in model.modules():
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
            out.append((module.weight_mask if hasattr(module, "weight_mask") else module.weight).detach().numpy())
    return out


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Four pruned VGG-like CNNs saved as training checkpoints (model + optimizer state), and their masks."""
    folder = tmp_path_factory.mktemp("runs")
    weights = {}
    for seed in range(4):
        model = prune_all(vgg_mini(seed), 0.6 + 0.05 * seed)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        model(torch.randn(2, 3, 8, 8)).sum().backward()
        optimizer.step()
        torch.save({"epoch": 3, "model": model.state_dict(), "optimizer": optimizer.state_dict()}, folder / f"seed{seed}.pt")
        weights[f"seed{seed}"] = layer_weights(model)
    return folder, weights


def compute_all(path):
    store = TopologyStore.open(path, mode="r+")
    plan = make_plan(store.n_networks, 2, np.zeros((2, 2), dtype=np.int64))
    store.init_results(2)
    for task in plan.tasks:
        compute_tile(str(path), task.a, task.b, store.n_networks)
    return TopologyStore.open(path).read_distance()


def test_ingest_compute_equals_the_set_oracle(checkpoints, tmp_path):
    folder, weights = checkpoints
    store = tmp_path / "cnns.zarr"
    result = run("ingest", folder, "--store", store, "-q")
    assert result.exit_code == 0, result.output
    s = TopologyStore.open(store)
    assert s.names() == ["seed0", "seed1", "seed2", "seed3"]
    assert s.shapes == [(27, 6), (54, 8), (24, 8), (128, 12), (12, 5)]
    distance = compute_all(store)
    for i in range(4):
        for j in range(i):
            expected = oracle_cnn(weights[f"seed{i}"], weights[f"seed{j}"])
            assert distance[:, i, j].tolist() == expected
            assert distance[:, j, i].tolist() == expected


def test_store_keeps_parameter_names_shapes_and_blocks(checkpoints, tmp_path):
    folder, _ = checkpoints
    store = tmp_path / "cnns.zarr"
    assert run("ingest", folder, "--store", store, "-q").exit_code == 0
    s = TopologyStore.open(store)
    assert s.layers == [
        {"param": "0.weight", "weight_shape": [6, 3, 3, 3], "block": 9},
        {"param": "3.weight", "weight_shape": [8, 6, 3, 3], "block": 9},
        {"param": "7.weight", "weight_shape": [8, 8, 1, 3], "block": 3},
        {"param": "10.weight", "weight_shape": [12, 128], "block": 16},
        {"param": "12.weight", "weight_shape": [5, 12], "block": 1},
    ]
    assert s.blocks == (9, 9, 3, 16, 1)
    text = run("info", "--store", store).stdout
    assert "0: 27 x 6, density" in text and "0.weight (6, 3, 3, 3), 9 rows per input channel" in text
    assert "10.weight (12, 128), 16 rows per input channel" in text and "12.weight (5, 12)\n" in text
    layers = json.loads(run("info", "--store", store, "--json").stdout)["layers"]
    assert layers[3] | {"density": None} == {"layer": 3, "shape": [128, 12], "density": None, "param": "10.weight", "weight_shape": [12, 128], "block": 16}


def test_an_older_store_without_layer_names_is_read_as_blocks_of_one(tmp_path, rng, synthetic_network, set_network_dir):
    for k in range(3):
        set_network_dir(tmp_path / "topo" / f"net{k}", synthetic_network(rng, [(9, 7), (7, 4)], 0.4), rng)
    store = tmp_path / "old.zarr"
    assert run("ingest", tmp_path / "topo", "--store", store, "-q").exit_code == 0
    expected = compute_all(store)
    group = zarr.open_group(str(store), mode="r+")
    del group.attrs["layers"]  # as written before parameter names and blocks were kept
    s = TopologyStore.open(store)
    assert s.layers == [] and s.blocks == (1, 1)
    assert (compute_all(store) == expected).all()
    text = run("info", "--store", store).stdout
    assert "0: 9 x 7, density" in text and "weight_l0" not in text


def test_pair_reads_checkpoints_like_ingest(checkpoints):
    folder, weights = checkpoints
    result = run("pair", folder / "seed2.pt", folder / "seed0.pt", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["layers"] == oracle_cnn(weights["seed2"], weights["seed0"])
    assert run("pair", folder / "seed1.pt", folder / "seed1.pt", "--json").stdout.count("0.0") == 5


def test_pair_reads_every_source_kind(tmp_path, rng, synthetic_network, set_network_dir):
    layers = [synthetic_network(rng, [(12, 8), (8, 3)], 0.5) for _ in range(2)]
    set_network_dir(tmp_path / "a", layers[0], rng)
    np.savez(tmp_path / "b.npz", fc1=layers[1][0].astype(float), fc2=layers[1][1].astype(float))
    torch.save({"fc1.weight": torch.tensor(layers[1][0].T, dtype=torch.float32), "fc2.weight": torch.tensor(layers[1][1].T * 1.0)}, tmp_path / "b.pt")
    expected = run("pair", tmp_path / "a", tmp_path / "b.npz").stdout
    assert expected.startswith("layer 0: ") and "(weight_l0 / fc1)" in expected  # each side's parameter name
    distances = [line.split()[2] for line in expected.splitlines()]
    from_pt = run("pair", tmp_path / "a", tmp_path / "b.pt").stdout
    assert [line.split()[2] for line in from_pt.splitlines()] == distances and "(weight_l1 / fc2.weight)" in from_pt
    set_network_dir(tmp_path / "many" / "x", layers[0], rng)
    set_network_dir(tmp_path / "many" / "y", layers[0], rng)
    assert "holds 2 networks" in run("pair", tmp_path / "many", tmp_path / "b.pt").output


def test_reference_pairs_stay_bit_identical_through_pt_files(paper_data, paper_reference_file, tmp_path):
    """The paper's networks as PyTorch nn.Linear state_dicts (out x in): the reference distances, bit for bit."""
    reference = json.loads(paper_reference_file.read_text())
    for i in (0, 1, 2):
        masks = load_set_network(paper_data / "topo" / reference["networks"][i])
        state = {f"fc{k}.weight": torch.tensor(m.toarray().T, dtype=torch.float32) for k, m in enumerate(masks)}
        torch.save({"state_dict": state, "epoch": 0}, tmp_path / f"w{i}.pt")
    for i, j in [(1, 0), (2, 0), (2, 1), (2, 2)]:
        result = run("pair", tmp_path / f"w{i}.pt", tmp_path / f"w{j}.pt", "--json")
        assert json.loads(result.stdout)["layers"] == reference["pairs"][f"{i},{j}"]


def test_conv_weights_in_npz_and_safetensors(tmp_path):
    """The same pruned CNNs as .pt (PyTorch order), .safetensors (PyTorch order) and .npz in Keras order (kh, kw, in, out)."""
    from safetensors.numpy import save_file

    for seed in range(2):
        weights = layer_weights(prune_all(vgg_mini(seed), 0.6))
        names = [f"l{k}.weight" for k in range(len(weights))]  # natural key order = layer order
        torch.save({n: torch.tensor(w) for n, w in zip(names, weights)}, tmp_path / f"n{seed}.pt")
        save_file({n: np.ascontiguousarray(w) for n, w in zip(names, weights)}, str(tmp_path / f"n{seed}.safetensors"))
        keras = {n: np.transpose(w, (*range(2, w.ndim), 1, 0)) for n, w in zip(names, weights)}
        np.savez(tmp_path / f"n{seed}.npz", **keras)
    distances = {
        (suffix, extra): tuple(json.loads(run("pair", tmp_path / f"n1{suffix}", tmp_path / f"n0{suffix}", *extra, "--json").stdout)["layers"])
        for suffix, extra in [(".pt", ()), (".safetensors", ()), (".npz", ()), (".safetensors", ("--orientation", "out-in"))]
    }
    assert len(set(distances.values())) == 1 and distances[".pt", ()][0] > 0
    store = tmp_path / "k.zarr"
    assert run("ingest", tmp_path / "n0.npz", tmp_path / "n1.npz", "--store", store, "-q").exit_code == 0
    assert TopologyStore.open(store).blocks == (9, 9, 3, 16, 1)


class Residual(nn.Module):
    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))


def tiny_resnet(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential()
    model.add_module("stem", nn.Conv2d(3, 4, 3, bias=False))
    model.add_module("layer1", Residual(4, 8, 2))
    model.add_module("fc", nn.Linear(8, 3))  # after global average pooling: one input per channel
    return prune_all(model, 0.5)


def test_resnet_downsample_is_named_and_excluded(tmp_path):
    for seed in range(2):
        torch.save(tiny_resnet(seed).state_dict(), tmp_path / f"r{seed}.pth")
    store = tmp_path / "r.zarr"
    assert_one_line_error(
        run("ingest", tmp_path, "--store", store), "'layer1.downsample.0.weight'", "ResNet downsample", "--exclude-param"
    )
    assert not store.exists()
    result = run("ingest", tmp_path, "--store", store, "--exclude-param", "*downsample*", "-q")
    assert result.exit_code == 0, result.output
    assert [layer["param"] for layer in TopologyStore.open(store).layers] == ["stem.weight", "layer1.conv1.weight", "layer1.conv2.weight", "fc.weight"]
    only = run("pair", tmp_path / "r1.pth", tmp_path / "r0.pth", "--include-param", "layer1.conv*", "--json")
    assert len(json.loads(only.stdout)["layers"]) == 2


def test_depthwise_convolution_is_refused_by_name(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 8, 3, groups=8), nn.Conv2d(8, 4, 1))
    torch.save(model.state_dict(), tmp_path / "mobile.pt")
    assert_one_line_error(run("pair", tmp_path / "mobile.pt", tmp_path / "mobile.pt"), "'1.weight'", "grouped or depthwise")


def test_conv1d_and_conv3d_models(tmp_path):
    torch.manual_seed(0)
    models = {
        "c1": lambda: nn.Sequential(nn.Conv1d(2, 5, 3), nn.Conv1d(5, 4, 5), nn.Flatten(), nn.Linear(4 * 4, 3)),
        "c3": lambda: nn.Sequential(nn.Conv3d(1, 3, 2), nn.Conv3d(3, 4, (1, 2, 2)), nn.Flatten(), nn.Linear(4 * 2 * 1 * 1, 2)),
    }
    for name, make in models.items():
        a, b = prune_all(make(), 0.5), prune_all(make(), 0.5)
        torch.save(a.state_dict(), tmp_path / f"{name}a.pt")
        torch.save(b.state_dict(), tmp_path / f"{name}b.pt")
        result = run("pair", tmp_path / f"{name}a.pt", tmp_path / f"{name}b.pt", "--json")
        assert json.loads(result.stdout)["layers"] == oracle_cnn(layer_weights(a), layer_weights(b))


def test_key_and_bad_checkpoints_exit_2(tmp_path):
    model = prune_all(vgg_mini(0), 0.5)
    torch.save({"student": model.state_dict(), "teacher_acc": 0.9}, tmp_path / "kd.pt")
    assert_one_line_error(run("pair", tmp_path / "kd.pt", tmp_path / "kd.pt"), "no state_dict found", "--key")
    assert run("pair", tmp_path / "kd.pt", tmp_path / "kd.pt", "--key", "student").exit_code == 0
    torch.save(model.state_dict(), tmp_path / "old.pt", _use_new_zipfile_serialization=False)
    assert_one_line_error(run("ingest", tmp_path / "old.pt", "--store", tmp_path / "s.zarr"), "legacy torch.save file", "weights_only=True")
    torch.save(model, tmp_path / "whole.pt")
    assert_one_line_error(run("ingest", tmp_path / "whole.pt", "--store", tmp_path / "s.zarr"), "not on the allow-list", "state_dict()")
    assert not (tmp_path / "s.zarr").exists()


def test_ingest_path_never_imports_torch(checkpoints, tmp_path):
    folder, _ = checkpoints
    code = (
        "import sys\n"
        "from nnstd_dist.cli.main import cli\n"
        f"try:\n    cli([{'ingest'!r}, {str(folder)!r}, '--store', {str(tmp_path / 's.zarr')!r}, '-q'])\n"
        "except SystemExit as exit:\n    assert exit.code in (0, None), exit.code\n"
        "assert not any(m == 'torch' or m.startswith('torch.') for m in sys.modules), 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert TopologyStore.open(tmp_path / "s.zarr").n_networks == 4
