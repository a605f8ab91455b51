"""Issue 28: nothing outside the store, nothing hangs, nothing forged is served.

A store on a shared filesystem may hold links, FIFOs and folders where its files belong, and records whose
checksums are right over impossible numbers or headers. Each is damage: listed by verify, one StoreError for
readers, repaired by compute, and no file outside the store's folder ever changes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import struct
from pathlib import Path

import numpy as np
import pytest

from nnstd_dist.errors import LockError, StoreError
from nnstd_dist.store import lock, tile_files
from nnstd_dist.store.topology_store import TopologyStore
from nnstd_dist.store.verify import verify

from _damage import local_file
from _populations import chain, make_store, pair_distances, records

N, TILE = 7, 3  # tile rows {0..2} {3..5} {6}: row a holds tiles (a, 0) .. (a, a)
RESULTS = Path("distances") / "g1"


@pytest.fixture(scope="module")
def networks():
    return chain(seed=5, length=N, fraction=0.3)


@pytest.fixture
def packed(tmp_path, networks):
    """A store whose distances are all computed and packed in row files rows/0, rows/1, rows/2."""
    store = make_store(tmp_path / "s.zarr", networks, records(N), tile=TILE)
    store.pack_rows()
    assert sorted(os.listdir(store.path / RESULTS / "rows")) == ["0", "1", "2"]
    return store


@pytest.fixture
def outside(tmp_path):
    """A user's folder beside the store, holding files named like a tile record and a row file."""
    folder = tmp_path / "user"
    folder.mkdir()
    (folder / "1.0").write_bytes(b"the user's tile-named file")
    (folder / "1").write_bytes(b"the user's row-named file")
    return folder


def _hashes(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}


@contextlib.contextmanager
def _within(seconds: int):
    """Fail instead of hanging the suite (a FIFO read would block forever)."""
    def alarm(signum, frame):
        raise AssertionError(f"blocked for {seconds} s")
    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _compute(path, client):
    from nnstd_dist.engine import compute

    return compute(path, tile=TILE, client=client)


def _problems(path) -> list[str]:
    with _within(60):
        return verify(path).problems


def _refused(path) -> str:
    with _within(60), pytest.raises(StoreError) as info:
        TopologyStore.open(path).read_distance()
    return str(info.value)


# ---- item 1: links to folders outside ----------------------------------------------------------


def test_a_linked_tiles_folder_is_damage_and_compute_never_writes_or_deletes_through_it(tmp_path, packed, outside, networks, dask_client):
    tiles = packed.path / RESULTS / "tiles"
    tiles.rmdir()
    tiles.symlink_to(outside)
    before = _hashes(outside)
    assert any("folder distances/g1/tiles is a symbolic link" in p for p in _problems(packed.path))
    assert "symbolic link" in _refused(packed.path)
    _compute(packed.path, dask_client)
    assert _hashes(outside) == before and sorted(os.listdir(outside)) == ["1", "1.0"]
    assert not tiles.is_symlink() and tiles.is_dir()
    np.testing.assert_array_equal(TopologyStore.open(packed.path).read_distance(), pair_distances(networks))
    assert _problems(packed.path) == []


def test_a_linked_rows_folder_is_damage_and_its_target_keeps_its_files(tmp_path, packed, outside, networks, dask_client):
    rows = packed.path / RESULTS / "rows"
    for name in os.listdir(rows):
        (rows / name).unlink()
    rows.rmdir()
    rows.symlink_to(outside)
    before = _hashes(outside)
    _compute(packed.path, dask_client)
    assert _hashes(outside) == before
    assert not rows.is_symlink() and sorted(os.listdir(rows)) == ["0", "1", "2"]
    np.testing.assert_array_equal(TopologyStore.open(packed.path).read_distance(), pair_distances(networks))


def test_a_linked_distances_folder_is_replaced_not_emptied(tmp_path, packed, outside, networks, dask_client):
    """compute --recompute used to list the linked folder's entries and remove them as old results."""
    from nnstd_dist.engine import compute

    (outside / "g7").mkdir()
    (outside / "g7" / "keep").write_bytes(b"x")
    distances = packed.path / "distances"
    distances.rename(tmp_path / "moved")
    distances.symlink_to(outside)
    before = _hashes(outside)
    compute(packed.path, tile=TILE, client=dask_client, recompute=True)
    assert _hashes(outside) == before and not distances.is_symlink()
    np.testing.assert_array_equal(TopologyStore.open(packed.path).read_distance(), pair_distances(networks))


@pytest.mark.parametrize("kind", ["link to a user's file", "link to /dev/zero", "dangling link", "FIFO", "folder"])
def test_a_row_file_that_is_no_regular_file_is_listed_refused_and_replaced(tmp_path, packed, outside, networks, kind, dask_client):
    row = packed.path / RESULTS / "rows" / "1"
    row.unlink()
    if kind == "link to a user's file":
        row.symlink_to(outside / "1")
    elif kind == "link to /dev/zero":
        row.symlink_to("/dev/zero")
    elif kind == "dangling link":
        row.symlink_to(tmp_path / "nothing")
    elif kind == "FIFO":
        os.mkfifo(row)
    else:
        row.mkdir()
        (row / "inside").write_bytes(b"y")
    before = _hashes(outside)
    problems = _problems(packed.path)
    assert problems and all(p.startswith("tile (1, ") for p in problems), problems
    assert "tile (1, 0)" in _refused(packed.path)
    with _within(120):
        _compute(packed.path, dask_client)
    assert _hashes(outside) == before
    assert row.is_file() and not row.is_symlink()
    np.testing.assert_array_equal(TopologyStore.open(packed.path).read_distance(), pair_distances(networks))
    if kind == "folder":  # moved aside, with what it held
        [aside] = [p for p in row.parent.iterdir() if p.name.startswith(".1.damaged-")]
        assert (aside / "inside").read_bytes() == b"y"


def test_a_fifo_as_a_tile_file_does_not_block_info_or_export(tmp_path, packed):
    os.mkfifo(packed.path / RESULTS / "tiles" / "2.2")
    with _within(60):
        store = TopologyStore.open(packed.path)
        with pytest.raises(StoreError, match=r"tile \(2, 2\).*FIFO"):
            store.tile_markers()
        with pytest.raises(StoreError, match="FIFO"):
            store.read_distance()


def test_a_mask_shard_linked_to_dev_zero_is_an_error_not_an_endless_read(tmp_path, packed):
    shard = packed.path / "mask_l0" / "c" / "0" / "0" / "0"
    shard.unlink()
    shard.symlink_to("/dev/zero")
    with _within(60):
        store = TopologyStore.open(packed.path)
        with pytest.raises(StoreError, match="symbolic link"):
            store.read_layer([0, 1], 0)
        assert any("network 0" in p for p in verify(packed.path).problems)


def test_a_linked_mask_folder_is_never_written_through(tmp_path, packed, networks):
    chunks = packed.path / "mask_l1" / "c"
    chunks.rename(tmp_path / "elsewhere")
    chunks.symlink_to(tmp_path / "elsewhere")
    before = _hashes(tmp_path / "elsewhere")
    with pytest.raises(StoreError):
        TopologyStore.open(packed.path, mode="r+").append(list(zip(records(1, digits=4), chain(seed=9, length=1))))
    assert _hashes(tmp_path / "elsewhere") == before


@pytest.mark.parametrize("kind", ["FIFO", "link", "folder"])
def test_a_lock_that_is_no_regular_file_is_a_damaged_lock_never_waited_on(tmp_path, packed, kind):
    path = packed.path / lock.LOCK_FILE
    {"FIFO": lambda: os.mkfifo(path), "link": lambda: path.symlink_to("/dev/zero"), "folder": path.mkdir}[kind]()
    with _within(30):
        assert "damaged" in lock.holder(path)
        with pytest.raises(LockError, match="damaged"):
            with lock.hold(packed.path, "compute"):
                pass


def test_a_linked_guard_file_is_not_followed(tmp_path, packed):
    target = tmp_path / "user-file"
    (packed.path / lock.GUARD_FILE).symlink_to(target)
    (packed.path / lock.LOCK_FILE).write_text(json.dumps({"host": "x", "pid": 5, "command": "c"}))
    with pytest.raises(StoreError, match=lock.GUARD_FILE):
        with lock.hold(packed.path, "compute", force=True):
            pass
    assert not target.exists()


def test_a_store_path_that_is_a_link_is_opened_as_its_target(tmp_path, packed):
    (tmp_path / "link.zarr").symlink_to(packed.path)
    store = TopologyStore.open(tmp_path / "link.zarr")
    assert store.path == packed.path.resolve() and store.n_networks == N


# ---- items 3 and 8: numbers and rows checked before they are served --------------------------------


def _forge(store, a: int, b: int, values) -> None:
    """Tile (a, b)'s record rewritten with ``values`` in its payload and both checksums right."""
    path = store.path / RESULTS / "tiles" / f"{a}.{b}"
    [record] = tile_files.read_records(*local_file(path), blocks=True)
    block = np.broadcast_to(np.asarray(values, dtype=float), record.block.shape)
    header = json.dumps(record.header, sort_keys=True).encode()
    path.write_bytes(tile_files.frame(header, np.ascontiguousarray(block, dtype="<f8").tobytes()))


@pytest.mark.parametrize("values", [5.0, -0.25, np.nan, np.inf], ids=["5", "negative", "all NaN", "infinite"])
def test_a_record_with_impossible_numbers_and_right_checksums_is_damage_everywhere(tmp_path, networks, values, dask_client):
    store = make_store(tmp_path / "s.zarr", networks, records(N), tile=TILE)
    _forge(store, 1, 0, values)
    assert any(p.startswith("tile (1, 0)") for p in _problems(store.path))
    assert "tile (1, 0)" in _refused(store.path)
    _compute(store.path, dask_client)
    np.testing.assert_array_equal(TopologyStore.open(store.path).read_distance(), pair_distances(networks))
    assert _problems(store.path) == []


def test_layers_past_max_layer_may_hold_nan_but_nothing_outside_0_1(tmp_path, networks):
    store = make_store(tmp_path / "s.zarr", networks, records(N), tile=TILE, compute=False)
    store.init_results(TILE, max_layer=0)
    block = pair_distances(networks)[:, 3:6, 0:3].copy()
    block[1:] = np.nan
    store.write_tile(1, 0, block, done_at=N)
    assert TopologyStore.open(store.path).read_tile(1, 0)[0].tolist() == block[0].tolist()
    block[1:] = 2.0
    store.write_tile(1, 0, block, done_at=N)
    assert any("outside [0, 1]" in p for p in verify(store.path).problems)


@pytest.mark.parametrize("cut", ["empty", "at the last record's start", "at the first record's end"])
def test_a_row_file_missing_records_is_damage_and_compute_rewrites_it(tmp_path, packed, networks, cut, dask_client):
    row = packed.path / RESULTS / "rows" / "2"
    raw = row.read_bytes()
    sizes = [r.nbytes for r in tile_files.read_records(*local_file(row), blocks=False)]
    assert len(sizes) == 3
    row.write_bytes({"empty": b"", "at the last record's start": raw[: sum(sizes[:2])], "at the first record's end": raw[: sizes[0]]}[cut])
    lacking = {"empty": [0, 1, 2], "at the last record's start": [2], "at the first record's end": [1, 2]}[cut]
    problems = _problems(packed.path)
    assert sorted(p for p in problems if "lacks" in p) == [
        f"tile (2, {b}): row file 2 lacks tile (2, {b}) (a row file holds its whole row)" for b in lacking
    ]
    _compute(packed.path, dask_client)
    assert len(tile_files.read_records(*local_file(row), blocks=False)) == 3 and _problems(packed.path) == []
    np.testing.assert_array_equal(TopologyStore.open(packed.path).read_distance(), pair_distances(networks))


def test_dropping_a_tile_of_a_packed_row_keeps_the_others_as_tile_files(tmp_path, packed, networks):
    packed.drop_tile(1, 0)
    assert not (packed.path / RESULTS / "rows" / "1").exists()
    assert sorted(os.listdir(packed.path / RESULTS / "tiles")) == ["1.1"]
    markers = TopologyStore.open(packed.path).tile_markers()
    assert markers[1, 0] == 0 and markers[1, 1] == N and markers[2, 2] == N


# ---- item 4: one strict header schema ---------------------------------------------------------------


def _header(**changes) -> dict:
    header = {"a": 1, "b": 0, "done_at": 7, "layers": 2, "rows": [3, 6], "cols": [0, 3], "results": 1, "networks": "0" * 64, "generation": 0}
    header.update(changes)
    return {k: v for k, v in header.items() if v is not _DROP}


_DROP = object()


@pytest.mark.parametrize("text", [
    json.dumps(_header(rows=[3.0, 6.0])).encode(),
    json.dumps(_header(rows=[3, 6.5])).encode(),
    json.dumps(_header(done_at=True)).encode(),
    json.dumps(_header(layers=2**60)).encode(),
    json.dumps(_header(a=_DROP)).encode(),
    json.dumps(_header(b=_DROP)).encode(),
    json.dumps(_header(extra=1)).encode(),
    json.dumps(_header(networks="xyz")).encode(),
    json.dumps(_header(rows=[6, 3])).encode(),
    json.dumps(_header(uncertified=[2, 1])).encode(),
    json.dumps(_header(uncertified=[0, 9])).encode(),
    json.dumps(_header(uncertified=[[1]])).encode(),
    b'{"a": NaN}',
    json.dumps(_header()).encode().replace(b'"rows": [3, 6]', b'"rows": [3, Infinity]'),
    b"[" * 2000 + b"]" * 2000,
    b'{"a": ' + b"[" * 2000 + b"]" * 2000 + b"}",
    b'{"a": 1' + b"0" * 5000 + b"}",
    b"\xff\xfe",
    b"[1, 2]",
], ids=["rows floats", "rows half", "bool", "huge layers", "no a", "no b", "unknown key", "networks not hex", "rows reversed",
        "uncertified decreasing", "uncertified past the tile", "uncertified nested", "NaN", "Infinity", "2000-deep array",
        "2000-deep value", "5000 digits", "not UTF-8", "an array"])
def test_a_header_outside_the_schema_is_damage_not_a_traceback(tmp_path, text):
    path = tmp_path / "t"
    path.write_bytes(tile_files.frame(text, bytes(8 * 2 * 3 * 3)))
    [record] = tile_files.read_records(*local_file(path), blocks=True)
    assert record.header is None and record.problem.startswith("damaged (header")


def test_a_header_with_an_uncertified_list_is_accepted_up_to_a_mebibyte():
    pairs = list(range(0, 9, 2))
    assert tile_files.parse_header(json.dumps(_header(uncertified=pairs)).encode())["uncertified"] == pairs
    big = _header(rows=[0, 300], cols=[0, 400], uncertified=list(range(0, 120000, 1)))
    text = json.dumps(big).encode()
    assert 2**19 < len(text) < 2**20
    assert len(tile_files.parse_header(text)["uncertified"]) == 120000


def test_a_header_length_past_a_mebibyte_is_damage_never_an_allocation(tmp_path):
    path = tmp_path / "t"
    path.write_bytes(tile_files.MAGIC + struct.pack("<I", 2**20 + 1) + b"{}")
    [record] = tile_files.read_records(*local_file(path), blocks=False)
    assert record.problem == "damaged (header length)"


@pytest.mark.parametrize("name", ["²", "1²", "0" * 200, "１"])
def test_names_that_are_not_ascii_digits_are_not_the_stores(tmp_path, packed, name, networks):
    (packed.path / RESULTS / "rows" / name).write_bytes(b"x")
    (packed.path / RESULTS / "tiles" / f"{name}.0").write_bytes(b"x")
    assert _problems(packed.path) == []
    np.testing.assert_array_equal(TopologyStore.open(packed.path).read_distance(), pair_distances(networks))


@pytest.mark.parametrize("kind", ["link", "FIFO"])
def test_ingesting_the_sources_again_replaces_a_mask_shard_that_is_no_regular_file(tmp_path, packed, networks, kind):
    shard = packed.path / "mask_l1" / "c" / "0" / "0" / "0"
    shard.unlink()
    shard.symlink_to("/dev/zero") if kind == "link" else os.mkfifo(shard)
    with _within(60):
        report = TopologyStore.open(packed.path, mode="r+").append(list(zip(records(N), networks)))
    assert len(report.replaced) == N and shard.is_file() and not shard.is_symlink()
    assert verify(packed.path).problems == []


def test_a_link_planted_at_a_temporary_name_is_never_followed(tmp_path):
    target = tmp_path / "victim"
    target.write_bytes(b"keep me")
    path = tmp_path / "rows" / "0"
    path.parent.mkdir()
    (path.parent / f".0.{tile_files.partial_tag()}.partial").symlink_to(target)
    storage, key = local_file(path)
    storage.write(key, b"record")
    assert path.read_bytes() == b"record" and target.read_bytes() == b"keep me"
    assert os.listdir(path.parent) == ["0"]
