"""`nnstd-dist ingest` and `info`: discovery rules, metadata, orientation, all-or-nothing, every bad input."""

from __future__ import annotations

import hashlib
import json
import re
import math
import os

import numpy as np
import pytest
import scipy.sparse as sp
import zarr
from click.testing import CliRunner
from safetensors.numpy import save_file

from _populations import write_tile
from nnstd_dist.cli.main import cli
from nnstd_dist.errors import InputError, ShapeMismatchError
from nnstd_dist.sources.formats import load_set_network
from nnstd_dist.sources.discover import Source, discover, read_network, read_networks
from nnstd_dist.store.inventory import pairs_computed
from nnstd_dist.store.lock import LOCK_FILE
from nnstd_dist.store.topology_store import TopologyStore

SHAPES = [(8, 6), (6, 6), (6, 3)]
EPOCHS = (0, 2, 10)


@pytest.fixture
def tree(tmp_path, rng, synthetic_network, set_network_dir):
    """topo/run_a, topo/run_b, each with epoch_000, epoch_002, epoch_010; run_a has a 3-line testacc.txt."""
    root, masks = tmp_path / "topo", {}
    for run in ("run_a", "run_b"):
        for epoch in EPOCHS:
            name = f"{run}/epoch_{epoch:03d}"
            masks[name] = synthetic_network(rng, SHAPES, 0.3)
            set_network_dir(root / name, masks[name], rng)
    (root / "run_a" / "testacc.txt").write_text("0.11\n0.22\n0.33\n")  # no line for epoch 10
    return root, masks


def ingest(*args):
    return CliRunner().invoke(cli, ["ingest", *map(str, args)])


def info(*args):
    return CliRunner().invoke(cli, ["info", *map(str, args)])


def assert_one_line_error(result, *fragments):
    """Exit 2 and one `Error:` line, the last on stderr (a progress label may precede it)."""
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert lines and lines[-1].startswith("Error: "), result.stderr
    assert all(line.startswith("Reading ") for line in lines[:-1]), result.stderr
    for fragment in fragments:
        assert fragment in lines[-1]


def tree_hashes(path):
    """sha256 of every file under ``path`` by relative path: the store's exact state."""
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.rglob("*")) if p.is_file()
    }


def weights(rng, shape, density=0.4):
    return np.where(rng.random(shape) < density, rng.normal(size=shape), 0.0)


# ---- discovery ----------------------------------------------------------------------------------------


def test_discover_set_tree_names_in_order(tree):
    root, masks = tree
    assert [s.name for s in discover([root])] == sorted(masks)
    assert all(s.kind == "set" for s in discover([root]))


def test_names_in_natural_order(tmp_path, rng, synthetic_network, set_network_dir):
    for epoch in (10, 2, 1):
        set_network_dir(tmp_path / "run" / f"epoch_{epoch}", synthetic_network(rng, SHAPES, 0.3), rng)
    assert [s.name for s in discover([tmp_path])] == ["run/epoch_1", "run/epoch_2", "run/epoch_10"]


def test_source_that_is_a_network_folder_is_named_by_it(tree):
    root, _ = tree
    (source,) = discover([root / "run_b" / "epoch_002"])
    assert source.name == "epoch_002" and source.kind == "set"


def test_single_files_named_by_relative_path_without_suffix(tmp_path, rng):
    (tmp_path / "models" / "deep").mkdir(parents=True)
    np.savez(tmp_path / "models" / "a.npz", w=weights(rng, (4, 4)))
    save_file({"w": weights(rng, (4, 4))}, str(tmp_path / "models" / "deep" / "b.safetensors"))
    (tmp_path / "models" / "notes.txt").write_text("ignored")
    assert [(s.name, s.kind) for s in discover([tmp_path / "models"])] == [("a", "file"), ("deep/b", "file")]
    assert [s.name for s in discover([tmp_path / "models" / "a.npz"])] == ["a"]


def test_hidden_folders_stores_and_files_inside_set_folders_are_skipped(tree, rng):
    root, masks = tree
    np.savez(root / "run_a" / "epoch_000" / "extra.npz", w=weights(rng, (3, 3)))  # belongs to the SET folder
    (root / ".cache").mkdir()
    np.savez(root / ".cache" / "x.npz", w=weights(rng, (3, 3)))
    (root / "old.zarr").mkdir()
    (root / "old.zarr" / "zarr.json").write_text("{}")
    np.savez(root / "old.zarr" / "y.npz", w=weights(rng, (3, 3)))
    assert [s.name for s in discover([root])] == sorted(masks)


def test_symlinked_folders_are_followed_once(tree, tmp_path):
    root, masks = tree
    (root / "linked_b").symlink_to(root / "run_b", target_is_directory=True)
    (root / "run_a" / "loop").symlink_to(root, target_is_directory=True)  # a cycle must not hang the walk
    names = [s.name for s in discover([root])]
    # the walk is sorted, so linked_b is met first and run_b, the same real folder, is skipped
    assert names == [n.replace("run_b", "linked_b") for n in sorted(masks)[3:]] + sorted(masks)[:3]


def test_two_sources_giving_one_name(tree):
    root, _ = tree
    with pytest.raises(InputError, match="two networks named 'epoch_000'.*common parent"):
        discover([root / "run_a", root / "run_b"])


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: d / "absent", "no such file or directory"),
        (lambda d: (d / "empty").mkdir() or d / "empty", "no networks found"),
        (lambda d: (d / "w.txt").write_text("x") and d / "w.txt", "not a network file"),
        (lambda d: (d / "weight_l0.npz").write_bytes(b"") or d / "weight_l0.npz", "one layer of a SET network"),
    ],
    ids=["absent", "empty-folder", "other-suffix", "set-layer-file"],
)
def test_discover_bad_sources(tmp_path, make, message):
    with pytest.raises(InputError, match=message):
        discover([make(tmp_path)])


# ---- metadata -------------------------------------------------------------------------------------------


def test_runs_epochs_and_accuracies(tree):
    root, _ = tree
    records = {r.name: r for r, _ in read_networks(discover([root]))}
    assert {(r.run, r.epoch) for r in records.values()} == {(run, e) for run in ("run_a", "run_b") for e in EPOCHS}
    assert records["run_a/epoch_000"].accuracy == 0.11 and records["run_a/epoch_002"].accuracy == 0.33
    assert math.isnan(records["run_a/epoch_010"].accuracy)  # testacc.txt too short
    assert math.isnan(records["run_b/epoch_000"].accuracy)  # no testacc.txt
    assert records["run_a/epoch_002"].source == str(root / "run_a" / "epoch_002")


def test_run_of_an_epoch_folder_given_alone_comes_from_disk(tree):
    root, _ = tree
    (record, _), = read_networks(discover([root / "run_a" / "epoch_002"]))
    assert (record.name, record.run, record.epoch, record.accuracy) == ("epoch_002", "run_a", 2, 0.33)


def test_nested_run_and_single_file_epochs(tmp_path, rng):
    (tmp_path / "exp" / "seed0").mkdir(parents=True)
    np.savez(tmp_path / "exp" / "seed0" / "epoch_005.npz", w=weights(rng, (4, 4)))
    np.savez(tmp_path / "exp" / "final.npz", w=weights(rng, (4, 4)))
    records = {r.name: r for r, _ in read_networks(discover([tmp_path]))}
    assert (records["exp/seed0/epoch_005"].run, records["exp/seed0/epoch_005"].epoch) == ("exp/seed0", 5)
    assert (records["exp/final"].run, records["exp/final"].epoch) == ("", -1)


def test_unreadable_accuracy_line(tree):
    root, _ = tree
    (root / "run_a" / "testacc.txt").write_text("0.1\n0.2\nbroken\n")
    with pytest.raises(InputError, match="testacc.txt: line 3 is not a number"):
        read_networks(discover([root / "run_a" / "epoch_002"]))


def test_the_set_codes_metrics_file_gives_its_test_accuracy_column(tree, tmp_path):
    """SET's fit() saves np.savetxt(save_filename, metrics): per epoch train loss, test accuracy, test loss."""
    root, _ = tree
    metrics = np.zeros((11, 3))
    metrics[:, 0] = np.linspace(0.9, 0.1, 11)  # train loss
    metrics[:, 1] = np.linspace(0.5, 0.97, 11)  # test accuracy
    metrics[:, 2] = np.linspace(1.2, 0.3, 11)  # test loss
    for run in ("run_a", "run_b"):
        np.savetxt(root / run / "testacc.txt", metrics)
    records = {r.name: r for r, _ in read_networks(discover([root]))}
    assert {name: r.accuracy for name, r in records.items()} == {
        f"{run}/epoch_{e:03d}": metrics[e, 1] for run in ("run_a", "run_b") for e in EPOCHS
    }
    result = ingest(root, "--store", tmp_path / "s.zarr", "-q")
    assert result.exit_code == 0, result.output
    np.savetxt(root / "run_a" / "testacc.txt", metrics, delimiter=",")  # a csv of the same columns
    assert [r.accuracy for r, _ in read_networks(discover([root / "run_a"]))] == [records[f"run_a/epoch_{e:03d}"].accuracy for e in EPOCHS]


@pytest.mark.parametrize("line", ["0.1 0.2", "0.9 0.8 0.7 0.6"], ids=["two", "four"])
def test_other_accuracy_layouts_are_refused_naming_those_read(tree, line):
    root, _ = tree
    (root / "run_a" / "testacc.txt").write_text(f"{line}\n{line}\n{line}\n")
    with pytest.raises(InputError, match=r"testacc.txt: line 3 holds \d values; read are one accuracy per line, or three \(the SET code's metrics"):
        read_networks(discover([root / "run_a" / "epoch_002"]))


# ---- masks: orientation and last rows -----------------------------------------------------------------


def test_set_masks_equal_the_reader(tree):
    root, masks = tree
    for record, got in read_networks(discover([root])):
        for g, want in zip(got, load_set_network(root / record.name)):
            np.testing.assert_array_equal(g.toarray(), want.toarray())
        for g, want in zip(got, masks[record.name]):
            np.testing.assert_array_equal(g.toarray(), want)


def test_keep_last_row_for_set(tree):
    root, _ = tree
    source = discover([root / "run_a" / "epoch_000"])[0]
    with pytest.raises(ShapeMismatchError, match=r"layer 1 has 7 input rows but layer 0 has 6 outputs.*`keep_last_row`"):
        read_network(source, keep_last_row=True)  # SET's bias rows break the layer chain


def torch_style(rng, shapes):
    """PyTorch nn.Linear layout: weight (out, in) plus a 1-D bias per layer."""
    tensors = {}
    for k, (n_in, n_out) in enumerate(shapes):
        tensors[f"layers.{k}.weight"] = weights(rng, (n_out, n_in)).astype(np.float32)
        tensors[f"layers.{k}.bias"] = np.ones(n_out, np.float32)
    return tensors


def test_safetensors_default_is_out_in(tmp_path, rng):
    tensors = torch_style(rng, SHAPES)
    save_file(tensors, str(tmp_path / "m.safetensors"))
    source = Source("m", tmp_path / "m.safetensors", "file")
    _, masks = read_network(source)
    assert [m.shape for m in masks] == SHAPES
    for k, mask in enumerate(masks):
        np.testing.assert_array_equal(mask.toarray(), tensors[f"layers.{k}.weight"].T != 0)
    with pytest.raises(ShapeMismatchError, match="check `orientation`"):
        read_network(source, orientation="in-out")


@pytest.mark.parametrize("orientation, transposed", [("auto", False), ("in-out", False), ("out-in", True)], ids=str)
def test_npz_orientation(tmp_path, rng, orientation, transposed):
    arrays = [weights(rng, (5, 5)), weights(rng, (5, 5))]
    np.savez(tmp_path / "m.npz", *arrays)
    _, masks = read_network(Source("m", tmp_path / "m.npz", "file"), orientation=orientation)
    for mask, array in zip(masks, arrays):
        np.testing.assert_array_equal(mask.toarray(), (array.T if transposed else array) != 0)


def test_single_files_keep_their_last_row_unless_asked(tmp_path, rng):
    arrays = [weights(rng, (7, 6)), weights(rng, (6, 3))]
    np.savez(tmp_path / "m.npz", *arrays)
    source = Source("m", tmp_path / "m.npz", "file")
    assert [m.shape for m in read_network(source)[1]] == [(7, 6), (6, 3)]
    with pytest.raises(ShapeMismatchError, match="layer 1 has 5 input rows"):
        read_network(source, keep_last_row=False)
    np.savez(tmp_path / "b.npz", weights(rng, (8, 6)), weights(rng, (7, 3)))  # SET-style bias rows
    _, masks = read_network(Source("b", tmp_path / "b.npz", "file"), keep_last_row=False)
    assert [m.shape for m in masks] == [(7, 6), (6, 3)]


def test_sources_with_other_shapes_name_both(tmp_path, rng):
    np.savez(tmp_path / "a.npz", weights(rng, (4, 4)))
    np.savez(tmp_path / "b.npz", weights(rng, (4, 5)))
    with pytest.raises(ShapeMismatchError, match=r"b.npz: layer shapes \[4x5\] differ from \[4x4\] of .*a.npz"):
        read_networks(discover([tmp_path]))


# ---- the command -------------------------------------------------------------------------------------


def test_ingest_creates_then_says_unchanged(tree, tmp_path):
    root, masks = tree
    store = tmp_path / "s.zarr"
    result = ingest(root, "--store", store)
    assert result.exit_code == 0, result.output
    assert f"added 6, unchanged 0, replaced 0: created {store} (6 networks)" in result.stdout
    assert "Reading 6 networks" in result.stderr  # the progress bar (a label only, off a terminal)
    result = ingest(root, "--store", store)
    assert result.exit_code == 0 and f"nothing to add: all 6 networks found are already in {store} (6 networks)" in result.stdout
    s = TopologyStore.open(store)
    assert s.names() == sorted(masks)
    for i, name in enumerate(s.names()):
        for got, want in zip(s.read_masks([i])[0], masks[name]):
            np.testing.assert_array_equal(got.toarray(), want)


def test_ingest_appends_new_networks(tree, tmp_path, rng, synthetic_network, set_network_dir):
    root, _ = tree
    store = tmp_path / "s.zarr"
    assert ingest(root / "run_a", "--store", store).exit_code == 0
    set_network_dir(root / "run_a" / "epoch_020", synthetic_network(rng, SHAPES, 0.3), rng)
    result = ingest(root / "run_a", "--store", store)
    assert "added 1, unchanged 3, replaced 0: updated" in result.stdout
    assert TopologyStore.open(store).names()[-1] == "epoch_020"


def test_quiet(tree, tmp_path):
    result = ingest(tree[0], "--store", tmp_path / "s.zarr", "--quiet")
    assert result.exit_code == 0 and result.stdout == "" and result.stderr == ""


def test_ingest_safetensors_cli(tmp_path, rng):
    for i in range(3):
        save_file(torch_style(rng, SHAPES), str(tmp_path / f"ckpt_{i}.safetensors"))
    result = ingest(*sorted(tmp_path.glob("*.safetensors")), "--store", tmp_path / "s.zarr")
    assert result.exit_code == 0, result.output
    s = TopologyStore.open(tmp_path / "s.zarr")
    assert s.names() == ["ckpt_0", "ckpt_1", "ckpt_2"] and s.shapes == SHAPES


def test_replace_resets_that_networks_distances(tree, tmp_path, rng, synthetic_network, set_network_dir):
    root, masks = tree
    store = tmp_path / "s.zarr"
    assert ingest(root, "--store", store).exit_code == 0
    s = TopologyStore.open(store, mode="r+")
    s.init_results(4)  # tiles {0..3} {4, 5}
    write_tile(s, 0, 0, np.full((3, 4, 4), 0.25), done_at=6)
    write_tile(s, 1, 0, np.full((3, 2, 4), 0.5), done_at=6)
    write_tile(s, 1, 1, np.full((3, 2, 2), 0.75), done_at=6)
    set_network_dir(root / "run_a" / "epoch_002", synthetic_network(rng, SHAPES, 0.3), rng)  # index 1 changes

    result = ingest(root, "--store", store)
    assert_one_line_error(result, "a different network named 'run_a/epoch_002'", "--replace")
    result = ingest(root, "--store", store, "--replace")
    assert result.exit_code == 0 and "added 0, unchanged 5, replaced 1" in result.stdout

    s = TopologyStore.open(store)
    d = s.read_distance()
    others = np.arange(6) != 1
    assert np.isnan(d[:, 1, others]).all() and np.isnan(d[:, others, 1]).all() and (d[:, 1, 1] == 0).all()
    assert (d[:, 5, 4] == 0.75).all()
    assert s.tile_markers()[0, 0] == s.tile_markers()[1, 0] == 0 and s.tile_markers()[1, 1] == 6
    assert pairs_computed(s) == 1


def _failing_ingest(case, root, store, tmp_path, rng, synthetic_network, set_network_dir):
    """Prepare one failure on top of a filled store; return the ingest arguments that must fail."""
    if case == "changed-content":
        set_network_dir(root / "run_b" / "epoch_010", synthetic_network(rng, SHAPES, 0.3), rng)
        return [root]
    if case == "other-shapes":
        set_network_dir(root / "run_c" / "epoch_000", synthetic_network(rng, [(8, 6), (6, 5), (5, 3)], 0.3), rng)
        return [root]
    if case == "corrupt-among-new":
        set_network_dir(root / "run_c" / "epoch_000", synthetic_network(rng, SHAPES, 0.3), rng)
        bad = set_network_dir(root / "run_c" / "epoch_001", synthetic_network(rng, SHAPES, 0.3), rng)
        (bad / "weight_l1.npz").write_bytes((bad / "weight_l1.npz").read_bytes()[:100])
        return [root]
    if case == "nan-weights":
        set_network_dir(root / "run_c" / "epoch_000", synthetic_network(rng, SHAPES, 0.3), rng)
        path = root / "run_c" / "epoch_000" / "weight_l0.npz"
        m = sp.load_npz(path)
        m.data[0] = np.nan
        sp.save_npz(path, m)
        return [root]
    if case == "duplicate-names":
        return [root / "run_a", root / "run_b"]
    if case == "locked":
        (store / LOCK_FILE).write_text(json.dumps({"host": os.uname().nodename, "pid": os.getpid(), "started": "now", "command": "compute"}))
        np.savez(tmp_path / "new.npz", *[weights(rng, s) for s in SHAPES])
        return [tmp_path / "new.npz"]
    raise AssertionError(case)


FAILURES = {
    "changed-content": "a different network named 'run_b/epoch_010'",
    "other-shapes": "differ from",
    "corrupt-among-new": "not a readable npz",
    "nan-weights": "NaN or infinite",
    "duplicate-names": "two networks named",
    "locked": "in use by `compute`",
}


@pytest.mark.parametrize("case", list(FAILURES), ids=list(FAILURES))
def test_failed_ingest_leaves_the_store_byte_identical(case, tree, tmp_path, rng, synthetic_network, set_network_dir):
    root, _ = tree
    store = tmp_path / "s.zarr"
    assert ingest(root, "--store", store).exit_code == 0
    args = _failing_ingest(case, root, store, tmp_path, rng, synthetic_network, set_network_dir)
    before = tree_hashes(store)
    result = ingest(*args, "--store", store)
    assert_one_line_error(result, FAILURES[case])
    assert tree_hashes(store) == before


def test_failed_first_ingest_creates_nothing(tree, tmp_path, rng, synthetic_network, set_network_dir):
    root, _ = tree
    set_network_dir(root / "run_c" / "epoch_000", synthetic_network(rng, [(8, 6), (6, 5), (5, 3)], 0.3), rng)
    assert_one_line_error(ingest(root, "--store", tmp_path / "out" / "s.zarr"), "differ from")
    assert not (tmp_path / "out" / "s.zarr").exists()


def test_other_shapes_than_the_store_names_source_and_both_shapes(tree, tmp_path, rng, synthetic_network, set_network_dir):
    root, _ = tree
    store = tmp_path / "s.zarr"
    assert ingest(root, "--store", store).exit_code == 0
    odd = set_network_dir(tmp_path / "odd", synthetic_network(rng, [(8, 6), (6, 5), (5, 3)], 0.3), rng)
    assert_one_line_error(ingest(odd, "--store", store), str(odd), "[8x6, 6x5, 5x3]", "the store's [8x6, 6x6, 6x3]")


@pytest.mark.parametrize(
    "case, fragment",
    [
        ("absent-source", "no such file or directory"),
        ("empty-folder", "no networks found"),
        ("store-is-a-file", "is a file, not a zarr store"),
        ("store-other-version", "store format version 99"),
        ("conv-off-chain", "not a whole number of rows"),
        ("pickled", "not a readable npz"),
        ("inf", "NaN or infinite"),
    ],
    ids=lambda v: v if " " not in v else "",
)
def test_bad_input_one_line_exit_2(case, fragment, tree, tmp_path, rng):
    root, _ = tree
    store, source = tmp_path / "s.zarr", root
    if case == "absent-source":
        source = tmp_path / "nowhere"
    elif case == "empty-folder":
        source = tmp_path / "empty"
        source.mkdir()
    elif case == "store-is-a-file":
        store.write_text("not a store")
    elif case == "store-other-version":
        assert ingest(root, "--store", store).exit_code == 0
        zarr.open_group(str(store), mode="r+").attrs["format_version"] = 99
    elif case == "conv-off-chain":  # a 1-D convolution (k=3, in=3, out=2), then 5 inputs for its 2 channels
        source = tmp_path / "conv.npz"
        np.savez(source, a=np.ones((3, 3, 2)), b=np.ones((5, 4)))
    elif case == "pickled":
        source = tmp_path / "obj.npz"
        np.savez(source, w=np.array([[{"x": 1}]], dtype=object))
    elif case == "inf":
        source = tmp_path / "inf.safetensors"
        save_file({"w": np.full((3, 3), np.inf, np.float32)}, str(source))
    assert_one_line_error(ingest(source, "--store", store), fragment)


# ---- info ---------------------------------------------------------------------------------------------------


def test_info_text_and_json(tree, tmp_path):
    root, masks = tree
    store = tmp_path / "s.zarr"
    assert ingest(root, "--store", store).exit_code == 0
    text = info("--store", store)
    assert text.exit_code == 0
    assert "networks:    6" in text.stdout and "0: 8 x 6, density" in text.stdout
    assert "runs:        2 (run_a, run_b)" in text.stdout and "epochs:      0, 2, 10" in text.stdout
    assert "pairs:       0 of 15 computed (compute not run yet)" in text.stdout

    s = TopologyStore.open(store, mode="r+")
    s.init_results(4)
    write_tile(s, 1, 0, np.full((3, 2, 4), 0.5), done_at=6)
    data = json.loads(info("--store", store, "--json").stdout)
    assert data["networks"] == 6 and data["pairs_total"] == 15 and data["pairs_computed"] == 8 and data["tile"] == 4
    density0 = np.mean([m[0].sum() / (8 * 6) for m in masks.values()])
    assert data["layers"][0]["shape"] == [8, 6] and data["layers"][0]["density"] == pytest.approx(density0)
    assert data["bytes"] == sum(p.stat().st_size for p in store.rglob("*") if p.is_file())
    files = [p for p in store.rglob("*") if p.is_file()]
    assert data["files"] == len(files) and data["bytes_on_disk"] == sum(512 * p.stat().st_blocks for p in files)
    assert re.search(rf"files:\s+{len(files)}, [\d.]+ kB \([\d.]+ kB on disk\)", info("--store", store).stdout)


def test_info_on_a_missing_store():
    assert_one_line_error(info("--store", "/nonexistent/s.zarr"), "no nnstd-dist store")


# ---- the paper's topologies ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_ingest_the_90_seed_networks(paper_data, tmp_path):
    topo = paper_data / "topo"
    result = ingest(topo, "--store", tmp_path / "s.zarr", "--quiet")
    assert result.exit_code == 0, result.output
    s = TopologyStore.open(tmp_path / "s.zarr")
    runs = [f"e5_s0_w{w}" for w in range(10)]
    epochs = [0, 10, 20, 30, 40, 50, 100, 150, 190]
    assert s.names() == [f"{run}/epoch_{e:03d}" for run in runs for e in epochs]
    records = s.records()
    with_accuracy = 0
    for record in records:
        assert record.name == f"{record.run}/epoch_{record.epoch:03d}"
        assert record.source == str(topo / record.name)
        accuracies = topo / record.run / "testacc.txt"
        if accuracies.is_file():  # some runs were published without one
            assert record.accuracy == float(accuracies.read_text().splitlines()[record.epoch])  # line 1 = epoch 0
            with_accuracy += 1
        else:
            assert math.isnan(record.accuracy)
    assert with_accuracy == 9 * len(list(topo.glob("*/testacc.txt"))) > 0
    stored = s.read_masks(range(s.n_networks))
    for record, layers in zip(records, stored):
        for got, want in zip(layers, load_set_network(topo / record.name)):
            assert got.shape == want.shape and (got != want).nnz == 0
    assert s.shapes == [(784, 784), (784, 784), (784, 784), (784, 10)]


def test_the_readmes_two_lines_save_a_set_folder_from_the_set_code(tmp_path, monkeypatch, rng):
    """The README's lines for SET's fit() loop, run on an object shaped like its SET_MLP (w[k]: n_in x n_out, b[k]: n_out)."""
    import re
    import types
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "weightsEvolution" not in b and "run0/epoch_" in b)
    w = {1: sp.random(7, 6, density=0.4, format="csr", random_state=1), 2: sp.random(6, 3, density=0.5, format="csr", random_state=2)}
    fake = types.SimpleNamespace(n_layers=3, w=w, b={1: rng.standard_normal(6), 2: np.zeros(3)})
    monkeypatch.chdir(tmp_path)
    for epoch in (0, 1):
        exec(block, {"os": os, "scipy": __import__("scipy.sparse"), "self": fake, "i": epoch})
    np.savetxt("run0/testacc.txt", np.array([[0.5, 0.81, 0.6], [0.4, 0.87, 0.5]]))  # fit(..., save_filename=...)
    networks = read_networks(discover([tmp_path]))
    assert [r.name for r, _ in networks] == ["run0/epoch_000", "run0/epoch_001"]
    assert [r.accuracy for r, _ in networks] == [0.81, 0.87]
    for _, masks in networks:
        assert [m.toarray().tolist() for m in masks] == [(w[k].toarray() != 0).tolist() for k in (1, 2)]  # bias rows dropped
    assert sp.load_npz("run0/epoch_000/weight_l0.npz").shape == (8, 6)  # (n_in + 1) x n_out
