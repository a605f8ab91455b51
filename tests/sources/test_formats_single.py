"""Single-file networks (.npz of dense arrays, .safetensors): layer order, skipped 1-D arrays, every bad file."""

from __future__ import annotations

import json
import struct
import sys

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from safetensors.numpy import save_file

from nnstd_dist.errors import InputError
from nnstd_dist.sources.formats import load_file_network, read_file_layers
from nnstd_dist.labels import natural_key
from nnstd_dist.kernel.masks import dense_to_csr


def weights(rng, shape, density=0.4):
    """Random weights of either sign, exact zeros where there is no connection."""
    return np.where(rng.random(shape) < density, rng.normal(size=shape), 0.0)


def assert_masks(masks, arrays):
    assert len(masks) == len(arrays)
    for mask, array in zip(masks, arrays):
        assert mask.format == "csr" and mask.dtype == bool and mask.has_sorted_indices
        np.testing.assert_array_equal(mask.toarray(), array != 0)


# ---- layer order -----------------------------------------------------------------------------------


def test_natural_key_orders_digit_runs_by_value():
    keys = ["fc10.weight", "fc2.weight", "fc1.weight", "arr_10", "arr_9", "out.weight"]
    assert sorted(keys, key=natural_key) == ["arr_9", "arr_10", "fc1.weight", "fc2.weight", "fc10.weight", "out.weight"]


@given(st.lists(st.integers(0, 10**6), unique=True, min_size=1, max_size=30))
def test_natural_key_sorts_numbered_names_by_number(numbers):
    names = [f"net.{n}.weight" for n in numbers]
    assert sorted(names, key=natural_key) == [f"net.{n}.weight" for n in sorted(numbers)]


def test_npz_layers_in_natural_key_order_biases_skipped(tmp_path, rng):
    # 11 positional arrays: savez names them arr_0 .. arr_10, which sort wrongly as plain strings
    shapes = [(5 + k, 6 + k) for k in range(11)]
    arrays = [weights(rng, s) for s in shapes]
    path = tmp_path / "net.npz"
    np.savez(path, *arrays)
    assert [k for k, _ in read_file_layers(path)] == [f"arr_{k}" for k in range(11)]
    assert_masks(load_file_network(path), arrays)


def test_npz_named_keys_with_biases_and_counters(tmp_path, rng):
    fc1, fc2, fc10 = weights(rng, (4, 3)), weights(rng, (3, 5)), weights(rng, (5, 2))
    path = tmp_path / "net.npz"
    np.savez(path, fc10=fc10, fc2=fc2, fc1=fc1, fc1_bias=np.ones(3), steps=np.int64(7))
    assert [k for k, _ in read_file_layers(path)] == ["fc1", "fc2", "fc10"]
    assert_masks(load_file_network(path), [fc1, fc2, fc10])


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int8, bool], ids=["f32", "f16", "i8", "bool"])
def test_npz_dtypes(tmp_path, rng, dtype):
    array = weights(rng, (7, 4)).astype(dtype)
    np.savez_compressed(tmp_path / "net.npz", w=array)
    assert_masks(load_file_network(tmp_path / "net.npz"), [array])


def test_sparse_npz_is_one_layer(tmp_path, rng):
    array = weights(rng, (6, 4))
    sp.save_npz(tmp_path / "layer.npz", sp.coo_matrix(array))
    assert_masks(load_file_network(tmp_path / "layer.npz"), [array])


def test_explicit_zeros_in_sparse_npz_are_not_connections(tmp_path):
    matrix = sp.csr_matrix((np.array([0.0, 2.0]), np.array([0, 1]), np.array([0, 2, 2])), shape=(2, 3))
    sp.save_npz(tmp_path / "layer.npz", matrix)
    np.testing.assert_array_equal(load_file_network(tmp_path / "layer.npz")[0].toarray(), [[0, 1, 0], [0, 0, 0]])


def test_safetensors_natural_order_as_stored(tmp_path, rng):
    # safetensors keeps no insertion order: the natural order of names is the layer order
    tensors = {f"layers.{k}.weight": weights(rng, (3 + k, 4 + k)).astype(np.float32) for k in (0, 1, 2, 10)}
    tensors["layers.0.bias"] = np.ones(3, np.float32)
    save_file(tensors, str(tmp_path / "net.safetensors"))
    keys = [k for k, _ in read_file_layers(tmp_path / "net.safetensors")]
    assert keys == ["layers.0.weight", "layers.1.weight", "layers.2.weight", "layers.10.weight"]
    assert_masks(load_file_network(tmp_path / "net.safetensors"), [tensors[k] for k in keys])  # not transposed here


@pytest.mark.parametrize("dtype", [np.float16, np.float64, np.int32, np.bool_], ids=["f16", "f64", "i32", "bool"])
def test_safetensors_dtypes(tmp_path, rng, dtype):
    array = weights(rng, (5, 6)).astype(dtype)
    save_file({"w": array}, str(tmp_path / "net.safetensors"))
    assert_masks(load_file_network(tmp_path / "net.safetensors"), [array])


# ---- bad files ----------------------------------------------------------------------------------------


def _bf16_file(path, dtype="BF16"):
    """A valid safetensors file holding one BF16 tensor (or FP8 bytes as ``dtype``), written by hand (numpy has no bfloat16)."""
    data = np.array([0x3F80, 0, 0, 0x3F80], dtype="<u2").tobytes()
    shape = [2, 2] if dtype == "BF16" else [2, 4]
    header = json.dumps({"w": {"dtype": dtype, "shape": shape, "data_offsets": [0, len(data)]}}).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header + data)


def _write_bad(tmp_path, case):
    path = tmp_path / ("net.safetensors" if case.startswith("st_") else "net.npz")
    good = np.arange(1, 2001, dtype=np.float64).reshape(40, 50)
    if case == "truncated":
        np.savez_compressed(path, w=good)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif case == "corrupt_deflate":
        np.savez_compressed(path, w=good)
        raw = bytearray(path.read_bytes())
        raw[60:90] = bytes(30)
        path.write_bytes(bytes(raw))
    elif case == "not_zip":
        path.write_bytes(b"this is not an npz file")
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "npy":
        np.save(tmp_path / "x.npy", good)
        (tmp_path / "x.npy").rename(path)
    elif case == "pickle":
        np.savez(path, w=np.array([{"evil": 1}], dtype=object))
    elif case == "three_d":
        np.savez(path, w=np.ones((2, 3, 4)))
    elif case == "nan":
        np.savez(path, a=good, b=np.where(good > 1000, np.nan, good))
    elif case == "inf":
        np.savez(path, w=np.where(good > 1000, -np.inf, good))
    elif case == "strings":
        np.savez(path, w=np.array([["a", "b"], ["c", "d"]]))
    elif case == "only_biases":
        np.savez(path, b0=np.ones(3), b1=np.ones(4))
    elif case == "no_arrays":
        np.savez(path)
    elif case == "st_corrupt":
        path.write_bytes(struct.pack("<Q", 10**6) + b"{")
    elif case == "st_f8_e8m0":
        _bf16_file(path, "F8_E8M0")
    elif case == "st_nan":
        save_file({"w": np.full((3, 3), np.nan, np.float32)}, str(path))
    elif case == "st_three_d":
        save_file({"conv": np.ones((2, 3, 4), np.float32)}, str(path))
    return path


BAD_FILES = {
    "truncated": "not a readable npz",
    "corrupt_deflate": "not a readable npz",
    "not_zip": "not an npz file .not a zip archive",
    "empty": "not an npz file .an empty file",
    "npy": "single .npy array",
    "pickle": "not a readable npz",
    "three_d": "must be 2-D",
    "nan": "NaN or infinite",
    "inf": "NaN or infinite",
    "strings": "expected numbers",
    "only_biases": "no 2-D arrays",
    "no_arrays": "no 2-D arrays",
    "st_corrupt": "not a readable safetensors",
    "st_f8_e8m0": "F8_E8M0, not read",
    "st_nan": "NaN or infinite",
    "st_three_d": "must be 2-D",
}


@pytest.mark.parametrize("case", list(BAD_FILES), ids=list(BAD_FILES))
def test_bad_file_is_one_input_error_naming_it(tmp_path, case):
    path = _write_bad(tmp_path, case)
    with pytest.raises(InputError, match=BAD_FILES[case]) as info:
        read_file_layers(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message


def test_missing_and_unknown_files(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_file_layers(tmp_path / "absent.npz")
    (tmp_path / "net.pt").write_bytes(b"\x80\x04")  # a torch pickle is never opened
    with pytest.raises(InputError, match="not a network file"):
        read_file_layers(tmp_path / "net.pt")


def test_safetensors_without_the_package(tmp_path, rng, monkeypatch):
    save_file({"w": weights(rng, (3, 3))}, str(tmp_path / "net.safetensors"))
    monkeypatch.setitem(sys.modules, "safetensors", None)  # makes `import safetensors` raise ImportError
    with pytest.raises(InputError, match="needs the safetensors package"):
        read_file_layers(tmp_path / "net.safetensors")


# ---- dense -> CSR --------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=2, max_dims=2, min_side=0, max_side=12),
                  elements=st.sampled_from([0.0, 0.0, 0.0, 1.5, -2.0])))
def test_dense_to_csr_matches_scipy(array):
    got, want = dense_to_csr(array), sp.csr_matrix(array != 0)
    assert got.shape == array.shape and got.dtype == bool and got.has_sorted_indices
    np.testing.assert_array_equal(got.indptr, want.indptr)
    np.testing.assert_array_equal(got.indices, want.indices)
    np.testing.assert_array_equal(got.toarray(), array != 0)
