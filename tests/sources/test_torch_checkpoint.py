"""The .pt reader against torch.load(weights_only=True), and every file it must refuse without running it."""

from __future__ import annotations

import collections
import io
import os
import pickle
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nnstd_dist.errors import InputError
from nnstd_dist.sources.torch_checkpoint import read_state_dict

torch = pytest.importorskip("torch", reason="the tests compare with real PyTorch: pip install torch==2.13.0 (CPU wheel)")
nn = torch.nn
prune = pytest.importorskip("torch.nn.utils.prune")


def as_numpy(tensor) -> np.ndarray:
    tensor = tensor.detach()
    return tensor.float().numpy() if tensor.dtype == torch.bfloat16 else tensor.numpy()


def assert_same_state(ours, theirs: dict):
    """What we read equals what torch.load(weights_only=True) reads: names, order, shapes, dtypes, values."""
    assert [name for name, _ in ours] == [name for name, value in theirs.items() if isinstance(value, torch.Tensor)]
    for name, stored in ours:
        expected = as_numpy(theirs[name])
        got = stored.numpy()
        assert got.shape == expected.shape == stored.shape, name
        assert got.dtype == expected.dtype == stored.dtype, name
        np.testing.assert_array_equal(got, expected, err_msg=name)


def small_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(64, 10),
    )


def mlp() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(20, 30), nn.ReLU(), nn.Linear(30, 30), nn.ReLU(), nn.Linear(30, 5))


def pruned(model: nn.Module, amount: float = 0.7) -> nn.Module:
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            prune.l1_unstructured(module, "weight", amount)
    return model


@pytest.mark.parametrize("make", [mlp, small_cnn], ids=["mlp", "cnn"])
@pytest.mark.parametrize("prune_it", [False, True], ids=["dense", "pruned"])
def test_state_dict_equals_torch_load(tmp_path, make, prune_it):
    model = pruned(make()) if prune_it else make()
    path = tmp_path / "model.pt"
    torch.save(model.state_dict(), path)
    ours = read_state_dict(path)
    assert_same_state(ours, torch.load(path, weights_only=True))
    if prune_it:
        assert any(name.endswith("weight_mask") for name, _ in ours)


@pytest.mark.parametrize("key", [None, "state_dict", "model", "net", "model_state_dict"])
def test_checkpoint_dict_with_optimizer_state(tmp_path, key):
    model = pruned(small_cnn())
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(4, 3, 8, 8)).sum().backward()
    optimizer.step()
    entry = key or "model"
    checkpoint = {"epoch": 7, "best_acc": 0.91, entry: model.state_dict(), "optimizer": optimizer.state_dict(), "note": "run 3"}
    path = tmp_path / "checkpoint.pth"
    torch.save(checkpoint, path)
    assert_same_state(read_state_dict(path), torch.load(path, weights_only=True)[entry])


def test_key_names_any_entry(tmp_path):
    model, ema = mlp(), mlp()
    with torch.no_grad():
        for p in ema.parameters():
            p.mul_(0.5)
    path = tmp_path / "checkpoint.pt"
    torch.save({"model": model.state_dict(), "ema_weights": ema.state_dict()}, path)
    loaded = torch.load(path, weights_only=True)
    assert_same_state(read_state_dict(path, key="ema_weights"), loaded["ema_weights"])
    assert_same_state(read_state_dict(path), loaded["model"])
    with pytest.raises(InputError, match=r"no entry 'emma' \(entries: 'model', 'ema_weights'\)"):
        read_state_dict(path, key="emma")


def test_no_state_dict_found_says_use_key(tmp_path):
    path = tmp_path / "checkpoint.pt"
    torch.save({"weights_of_student": mlp().state_dict(), "step": 3}, path)
    with pytest.raises(InputError, match="no state_dict found .*'weights_of_student', 'step'.*`key`"):
        read_state_dict(path)
    assert_same_state(read_state_dict(path, key="weights_of_student"), torch.load(path, weights_only=True)["weights_of_student"])
    with pytest.raises(InputError, match="'step' is not a state_dict"):
        read_state_dict(path, key="step")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int8, torch.uint8, torch.int64, torch.bool])
def test_dtypes(tmp_path, dtype):
    torch.manual_seed(2)
    values = (torch.randn(5, 7) * 3).to(dtype)
    path = tmp_path / "t.pt"
    torch.save({"layer.weight": values}, path)
    assert_same_state(read_state_dict(path), torch.load(path, weights_only=True))


def test_views_offsets_and_shared_storage(tmp_path):
    base = torch.arange(120, dtype=torch.float32).reshape(10, 12)
    state = collections.OrderedDict(
        [("t.weight", base.t()), ("slice.weight", base[3:7, 2:9]), ("step.weight", base[::3, 1::4]),
         ("base.weight", base), ("empty.weight", base[:0]), ("scalar", base[2, 3])]
    )
    path = tmp_path / "views.pt"
    torch.save(state, path)
    assert_same_state(read_state_dict(path), torch.load(path, weights_only=True))


DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int8, torch.uint8, torch.int16, torch.int32, torch.int64, torch.bool]


@st.composite
def tensor_views(draw):
    """A random tensor, then a random view of it: transposed, sliced with steps and offsets, or whole."""
    shape = tuple(draw(st.lists(st.integers(0, 5), min_size=0, max_size=4)))
    dtype = draw(st.sampled_from(DTYPES))
    base = torch.from_numpy(np.asarray(np.random.default_rng(draw(st.integers(0, 2**32 - 1))).normal(size=shape) * 5)).to(dtype)
    if base.ndim >= 2 and draw(st.booleans()):
        base = base.transpose(0, base.ndim - 1)
    for dim in range(base.ndim):
        start, step = draw(st.integers(0, 2)), draw(st.integers(1, 3))
        base = base.narrow(dim, min(start, base.shape[dim]), base.shape[dim] - min(start, base.shape[dim]))[(slice(None),) * dim + (slice(None, None, step),)]
    return base


@settings(max_examples=40, deadline=None)
@given(st.lists(tensor_views(), min_size=1, max_size=4))
def test_random_views_and_dtypes_equal_torch_load(tmp_path_factory, tensors):
    path = tmp_path_factory.mktemp("views") / "t.pt"
    torch.save({f"t{k}.weight": t for k, t in enumerate(tensors)}, path)
    assert_same_state(read_state_dict(path), torch.load(path, weights_only=True))


def test_full_parameters_are_tensors(tmp_path):
    # a dict of nn.Parameter (not detached) goes through torch._utils._rebuild_parameter
    model = mlp()
    path = tmp_path / "params.pt"
    torch.save(collections.OrderedDict(model.named_parameters()), path)
    assert_same_state(read_state_dict(path), torch.load(path, weights_only=True))


# ---- refused files -----------------------------------------------------------------------------------


def test_legacy_format_says_how_to_resave(tmp_path):
    path = tmp_path / "old.pt"
    torch.save(mlp().state_dict(), path, _use_new_zipfile_serialization=False)
    with pytest.raises(InputError, match=r"legacy torch.save file .*torch.save\(torch.load\(OLD, weights_only=True\), NEW\)"):
        read_state_dict(path)


def test_whole_pickled_model_refused(tmp_path):
    path = tmp_path / "whole.pt"
    torch.save(mlp(), path)
    with pytest.raises(InputError, match=r"global torch\.nn\.modules\..* is not on the allow-list.*state_dict\(\)"):
        read_state_dict(path)


def write_archive(path, pickled: bytes, records: dict | None = None, byteorder: bytes | None = b"little"):
    """A zip laid out like torch.save's: <name>/data.pkl, <name>/data/<key>, <name>/byteorder."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pickled)
        z.writestr("archive/version", b"3\n")
        if byteorder is not None:
            z.writestr("archive/byteorder", byteorder)
        for key, data in (records or {}).items():
            z.writestr(f"archive/data/{key}", data)
    return path


class Evil:
    """Unpickling this runs a shell command that creates a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("where", ["top", "inside-a-state-dict", "as-tensor-hooks"])
def test_malicious_pickle_never_runs(tmp_path, where):
    marker = tmp_path / "pwned"
    evil = Evil(marker)
    if where == "top":
        obj = evil
    elif where == "inside-a-state-dict":
        obj = {"fc.weight": evil}
    else:
        obj = {"fc.weight": FakeTensor(FakeStorage("0", 4), 0, (2, 2), (2, 1), hooks=evil)}
    path = write_archive(tmp_path / "evil.pt", dumps(obj), {"0": np.ones(4, "<f4").tobytes()})
    with pytest.raises(InputError) as info:
        read_state_dict(path)
    message = str(info.value)
    assert "\n" not in message and "system is not on the allow-list" in message
    assert not marker.exists()
    with pytest.raises(pickle.UnpicklingError):  # torch's own weights_only reader refuses it too
        torch.load(path, weights_only=True)
    assert not marker.exists()


# Hand-made archives: a pickler that writes torch's own globals for stand-in objects, so that
# shapes, strides, offsets and byte orders torch.save would never write can be tried.


class FakeStorage:
    def __init__(self, key, numel, cls="FloatStorage"):
        self.key, self.numel, self.cls = key, numel, cls


class FakeTensor:
    def __init__(self, storage, offset, shape, stride, hooks=None):
        self.storage, self.offset, self.shape, self.stride = storage, offset, shape, stride
        self.hooks = collections.OrderedDict() if hooks is None else hooks


class TorchLikePickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, FakeStorage):
            return ("storage", getattr(torch, obj.cls), obj.key, "cpu", obj.numel)
        return None

    def reducer_override(self, obj):
        if isinstance(obj, FakeTensor):
            return torch._utils._rebuild_tensor_v2, (obj.storage, obj.offset, obj.shape, obj.stride, False, obj.hooks)
        return NotImplemented


def dumps(obj) -> bytes:
    buffer = io.BytesIO()
    TorchLikePickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue()


def test_big_endian_archive(tmp_path):
    values = np.arange(6, dtype=np.float64) * 1.5
    pickled = dumps({"w.weight": FakeTensor(FakeStorage("0", 6, "DoubleStorage"), 0, (2, 3), (3, 1))})
    path = write_archive(tmp_path / "be.pt", pickled, {"0": values.astype(">f8").tobytes()}, byteorder=b"big")
    (name, tensor), = read_state_dict(path)
    np.testing.assert_array_equal(tensor.numpy(), values.reshape(2, 3))
    assert tensor.numpy().dtype == np.float64


@pytest.mark.parametrize(
    ("tensor", "record_bytes", "message"),
    [
        pytest.param(FakeTensor(FakeStorage("0", 4), 0, (3, 2), (2, 1)), 16, "reaches past its storage of 4", id="shape-past-storage"),
        pytest.param(FakeTensor(FakeStorage("0", 4), 3, (2,), (1,)), 16, "reaches past its storage", id="offset-past-storage"),
        pytest.param(FakeTensor(FakeStorage("0", 4), 0, (2, 2), (9, 1)), 16, "reaches past its storage", id="stride-past-storage"),
        pytest.param(FakeTensor(FakeStorage("0", 10**12), 0, (10**6, 10**6), (10**6, 1)), 16, "holds 16 bytes, fewer than", id="huge-numel"),
        pytest.param(FakeTensor(FakeStorage("0", 4), 0, (10**6, 10**6), (0, 0)), 16, "more elements than its storage", id="stride-0-bomb"),
        pytest.param(FakeTensor(FakeStorage("0", 4), -1, (2,), (1,)), 16, "malformed tensor", id="negative-offset"),
        pytest.param(FakeTensor(FakeStorage("0", 4), 0, (2, -2), (1, 1)), 16, "malformed tensor shape", id="negative-shape"),
        pytest.param(FakeTensor(FakeStorage("9", 4), 0, (2, 2), (2, 1)), 16, "data/9 is missing", id="missing-record"),
        pytest.param(FakeTensor(FakeStorage("0", 4, "QUInt8Storage"), 0, (2, 2), (2, 1)), 16, "QUInt8Storage is not on the allow-list", id="unknown-storage"),
    ],
)
def test_hostile_tensors_refused_before_reading(tmp_path, tensor, record_bytes, message):
    path = write_archive(tmp_path / "bad.pt", dumps({"w.weight": tensor}), {"0": bytes(record_bytes)})
    with pytest.raises(InputError, match=message):
        read_state_dict(path)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        pytest.param(lambda p: p.write_bytes(b"not a checkpoint at all"), "not a PyTorch checkpoint", id="text"),
        pytest.param(lambda p: p.write_bytes(b""), "not a PyTorch checkpoint", id="empty"),
        pytest.param(lambda p: zipfile.ZipFile(p, "w").writestr("x.txt", "hi"), "not a torch.save checkpoint", id="other-zip"),
        pytest.param(lambda p: write_archive(p, b"\x80\x02}q\x00."[:-3]), "refused", id="truncated-pickle"),
        pytest.param(lambda p: write_archive(p, pickle.dumps([1, 2, 3])), "holds a list", id="a-list"),
        pytest.param(lambda p: write_archive(p, pickle.dumps({"a": 1}), byteorder=b"middle"), "unknown byte order", id="byteorder"),
    ],
)
def test_bad_files(tmp_path, make, message):
    path = tmp_path / "bad.pt"
    make(path)
    with pytest.raises(InputError, match=message):
        read_state_dict(path)


def test_truncated_zip(tmp_path):
    path = tmp_path / "cut.pt"
    torch.save(mlp().state_dict(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError):
        read_state_dict(path)


def test_reader_never_imports_torch(tmp_path):
    path = tmp_path / "model.pt"
    torch.save(pruned(small_cnn()).state_dict(), path)
    code = (
        "import sys\n"
        "from nnstd_dist.sources.torch_checkpoint import read_state_dict\n"
        f"tensors = [t.numpy() for _, t in read_state_dict({str(path)!r})]\n"
        "assert len(tensors) > 5\n"
        "assert not any(m == 'torch' or m.startswith('torch.') for m in sys.modules), 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
