"""SET directories -> layer masks: layer order, bias row, every save_npz format, and every bad file."""

from __future__ import annotations

import re

import numpy as np
import pytest
import scipy.sparse as sp

from nnstd_dist.errors import InputError
from nnstd_dist.sources.formats import load_set_network, read_npz_matrix, set_layer_files

SHAPES = [(6, 5), (5, 4), (4, 3)]


@pytest.fixture
def network(rng, synthetic_network):
    return synthetic_network(rng, SHAPES, 0.4)


@pytest.fixture
def set_dir(tmp_path, network, set_network_dir):
    return set_network_dir(tmp_path / "net", network)


def assert_masks_equal(loaded, expected):
    assert len(loaded) == len(expected)
    for got, want in zip(loaded, expected):
        assert sp.issparse(got) and got.format == "csr" and got.dtype == bool
        np.testing.assert_array_equal(got.toarray(), want)


def test_load_drops_bias_row(set_dir, network):
    assert_masks_equal(load_set_network(set_dir), network)


def test_keep_last_row(set_dir, network):
    loaded = load_set_network(set_dir, keep_last_row=True)
    assert [m.shape for m in loaded] == [(n_in + 1, n_out) for n_in, n_out in SHAPES]
    assert all(m[-1].toarray().all() for m in loaded)  # the bias row written by the fixture is dense
    assert_masks_equal([m[:-1] for m in loaded], network)


@pytest.mark.parametrize(
    "save",
    [
        pytest.param(lambda path, w: sp.save_npz(path, sp.csr_matrix(w)), id="csr"),
        pytest.param(lambda path, w: sp.save_npz(path, sp.csc_matrix(w)), id="csc"),
        pytest.param(lambda path, w: sp.save_npz(path, sp.coo_matrix(w)), id="coo"),
        pytest.param(lambda path, w: sp.save_npz(path, sp.bsr_matrix(w)), id="bsr"),
        pytest.param(lambda path, w: sp.save_npz(path, sp.dia_matrix(w)), id="dia"),
        pytest.param(lambda path, w: sp.save_npz(path, sp.csr_array(w)), id="csr_array"),
        pytest.param(lambda path, w: sp.save_npz(path, sp.csr_matrix(w), compressed=False), id="uncompressed"),
        pytest.param(lambda path, w: np.savez(path, w), id="savez-dense"),
        pytest.param(lambda path, w: np.savez_compressed(path, weights=w.astype(np.float32)), id="savez-named-f32"),
        pytest.param(lambda path, w: np.savez(path, (w != 0).astype(np.int8)), id="savez-int8"),
        pytest.param(lambda path, w: np.savez(path, w != 0), id="savez-bool"),
    ],
)
def test_every_npz_layout_reads_the_same_masks(tmp_path, rng, network, save):
    for k, mask in enumerate(network):
        weights = np.vstack([np.where(mask, rng.uniform(-1, 1, mask.shape), 0.0), np.ones((1, mask.shape[1]))])
        save(tmp_path / f"weight_l{k}.npz", weights)
    assert_masks_equal(load_set_network(tmp_path), network)


def test_stored_zeros_are_not_connections(tmp_path):
    rows, cols = np.array([0, 0, 1, 2, 2]), np.array([0, 1, 1, 0, 1])
    weights = sp.csr_matrix((np.array([0.5, 0.0, -1.0, 0.0, 2.0]), (rows, cols)), shape=(3, 2))
    assert weights.nnz == 5  # two explicit zeros really are stored
    sp.save_npz(tmp_path / "weight_l0.npz", weights)
    np.testing.assert_array_equal(load_set_network(tmp_path)[0].toarray(), [[True, False], [False, True]])


def test_layer_files_in_numeric_order_and_others_ignored(tmp_path):
    for k in range(12):
        (tmp_path / f"weight_l{k}.npz").write_bytes(b"")
    for name in ["testacc.txt", "weight_l0.npy", "weight_lx.npz", "bias_l0.npz", "weight_l3.npz.bak"]:
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "weight_l99.npz.d").mkdir()
    assert [p.name for p in set_layer_files(tmp_path)] == [f"weight_l{k}.npz" for k in range(12)]


def write_bytes(name, content):
    def write(directory):
        (directory / name).write_bytes(content)

    return write


def write_array(name, **arrays):
    def write(directory):
        np.savez(directory / name, **arrays)

    return write


def truncated_npz(directory):
    sp.save_npz(directory / "weight_l1.npz", sp.csr_matrix(np.eye(6, 5)))
    data = (directory / "weight_l1.npz").read_bytes()
    (directory / "weight_l1.npz").write_bytes(data[: len(data) // 2])


def without_layer_1(directory):
    (directory / "weight_l1.npz").unlink()


def without_any_layer(directory):
    for path in directory.glob("weight_l*.npz"):
        path.unlink()


def npy_named_npz(directory):
    with open(directory / "weight_l1.npz", "wb") as f:
        np.save(f, np.ones((6, 5)))


def one_row_layer(directory):
    sp.save_npz(directory / "weight_l2.npz", sp.csr_matrix(np.ones((1, 3))))


BAD_DIRECTORIES = {
    "gap": (without_layer_1, "missing weight_l1.npz"),
    "no-weight-files": (without_any_layer, r"no weight_l\*\.npz files"),
    "garbage-bytes": (write_bytes("weight_l1.npz", b"no npz here\x00\xff" * 4), "weight_l1.npz: not an npz file .not a zip archive"),
    "empty-file": (write_bytes("weight_l0.npz", b""), "weight_l0.npz: not an npz file .an empty file"),
    "truncated": (truncated_npz, "weight_l1.npz: not a readable npz"),
    "npy-content": (npy_named_npz, "weight_l1.npz: a single .npy array"),
    "3-d": (write_array("weight_l2.npz", w=np.ones((5, 3, 2))), r"weight_l2.npz: expected a 2-D matrix, got shape \(5, 3"),
    "1-d": (write_array("weight_l2.npz", w=np.ones(5)), "weight_l2.npz: expected a 2-D matrix"),
    "nan": (write_array("weight_l1.npz", w=np.where(np.eye(6, 5), np.nan, 0.0)), "weight_l1.npz: contains NaN"),
    "inf": (write_array("weight_l0.npz", w=np.full((7, 6), -np.inf)), "weight_l0.npz: contains NaN or infinite"),
    "two-arrays": (write_array("weight_l0.npz", w=np.ones((7, 6)), b=np.ones(6)), r"l0.npz: expected one .* \['b', 'w'\]"),
    "no-arrays": (write_array("weight_l0.npz"), r"weight_l0.npz: expected one .* found arrays \[\]"),
    "strings": (write_array("weight_l0.npz", w=np.full((7, 6), "x")), "weight_l0.npz: expected numbers"),
    # allow_pickle=False: an object array is refused, never unpickled.
    "pickled-objects": (write_array("weight_l0.npz", w=np.array([[{"a": 1}]], dtype=object)), "l0.npz: not a readable npz"),
    "only-a-bias-row": (one_row_layer, "weight_l2.npz: 1 row"),
}


@pytest.mark.parametrize("case", BAD_DIRECTORIES)
def test_bad_directory_raises_input_error_naming_the_file(set_dir, case):
    spoil, message = BAD_DIRECTORIES[case]
    spoil(set_dir)
    with pytest.raises(InputError, match=message) as info:
        load_set_network(set_dir)
    assert str(set_dir) in str(info.value)  # the message says where
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("target", ["missing", "a-file"])
def test_not_a_directory(tmp_path, target):
    path = tmp_path / target
    if target == "a-file":
        path.write_text("x")
    with pytest.raises(InputError, match=re.escape(f"{path}: not a directory")):
        load_set_network(path)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_npz_matrix(tmp_path / "weight_l0.npz")


def test_real_set_network(paper_data):
    layers = load_set_network(paper_data / "topo" / "e5_s0_w0" / "epoch_000")
    assert [m.shape for m in layers] == [(784, 784)] * 3 + [(784, 10)]
    assert layers[-1].nnz == 7840  # the output layer is fully connected
    for layer in layers[:-1]:
        assert 0.003 < layer.nnz / (784 * 784) < 0.01  # the paper's SET density, well under 1%
