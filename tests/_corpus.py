"""The bad-input corpus: hostile files and damaged stores, each a case that must end in one `Error:` line.

A case builds its input under a fresh folder beside a small store, returns the command line, and is
run in-process (CliRunner) under an alarm. ``outcome`` classifies the run the way issue #11 counts:
clean (exit 2, one ``Error:`` line, the store's files unchanged), traceback, silent (accepted: exit 0),
hang (the alarm fired), lost (the store's files changed by a refused command).

A `verify` case (``Case.lists``) expects instead "listed": exit 1, the store unchanged, the damage among the problems printed
("unlisted" otherwise). A case that repairs or finishes (``Case.done``: compute over damage it replaces, upgrade through a
linked store path) expects "done": exit 0 and `verify` finding nothing after it ("silent" otherwise).

Issue 28: every case also checks that no file outside the store's folder changed ("outside-write", which wins over any
other outcome): the work folder, with the links and user files a case planted, is hashed before and after, links and
special files by what they are (never followed, never read).

``python tests/_corpus.py`` prints the outcome table for the nnstd_dist that is importable.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import struct
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import scipy.sparse as sp

from _damage import (
    RESULTS, append_file, block, clear_inner, copy_file, cut_record, drop_attrs, edit_attrs, edit_inner_chunks, edit_meta, edit_record, flip_inner,
    flip_record, flip_shard_index, forge_values, link_folder, lock_pid, plant, remove, scheduler_at, swap_files, swap_masks, then, unpack_row,
    wide_pt_pair, write_file,
)

SHAPES = [(8, 6), (6, 3)]
BUDGET = "4MB"  # NNSTD_DIST_MEMORY_BUDGET during the corpus: bombs stay small, still 1000x their file
HANG_SECONDS = 90  # a compute case starts a local cluster: slow on a loaded machine, never this slow
NEW_STORE = "new.zarr"  # cases that ingest into a new store name it so; it must not appear
FOREIGN = "foreign.zarr"  # beside the template: a store of the same shapes and tile, other networks (a case copies its records)


@dataclass(frozen=True)
class Case:
    name: str
    cls: int  # the class of issue #11's list it belongs to
    build: Callable[[Path, Path], list[str]]  # (work folder, store) -> argv
    lists: str = ""  # a `verify` case: it must exit 1, the store unchanged, printing a problem line holding this text
    done: bool = False  # a case that must succeed (exit 0), leaving a store verify finds whole
    root: str = "store.zarr"  # the store the case's command works on, relative to the work folder

    @property
    def expected(self) -> str:
        return "done" if self.done else "listed" if self.lists else "clean"


def write_set(folder: Path, layers, seed: int = 0) -> Path:
    """A SET folder: weight_lK.npz (save_npz, CSR float) with a bias row."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for k, mask in enumerate(layers):
        w = np.where(mask, rng.uniform(0.1, 1, mask.shape), 0.0)
        sp.save_npz(folder / f"weight_l{k}.npz", sp.csr_matrix(np.vstack([w, np.ones((1, mask.shape[1]))])))
    return folder


def population(seed: int, shapes=SHAPES):
    rng = np.random.default_rng(seed)
    return [rng.random(s) < 0.4 for s in shapes]


def good_set(folder: Path, seed: int = 7) -> Path:
    return write_set(folder, population(seed))


def tree_hashes(path: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """sha256 of every regular file below ``path`` (relative path -> digest); a link as its target's name, a FIFO, socket or
    device as its kind (never followed, opened or read: a case plants them); top-level entries named in ``skip`` left out."""
    import stat

    out = {}
    for root, dirs, files in os.walk(path):
        if Path(root) == Path(path):
            dirs[:] = [d for d in dirs if d not in skip]
            files = [f for f in files if f not in skip]
        for name in files + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            p = Path(root) / name
            mode = os.lstat(p).st_mode
            key = p.relative_to(path).as_posix()
            if stat.S_ISLNK(mode):
                out[key] = f"link -> {os.readlink(p)}"
            elif stat.S_ISREG(mode):
                out[key] = hashlib.sha256(p.read_bytes()).hexdigest()
            else:
                out[key] = f"special {stat.S_IFMT(mode)}"
    return out


# ---- builders ---------------------------------------------------------------------------------


def _ingest(src: Path, store: Path, *extra) -> list[str]:
    return ["ingest", str(src), "--store", str(store), *extra]


def _set_with_layer(work: Path, store: Path, layer1_writer) -> list[str]:
    """A SET folder whose weight_l0.npz is good and weight_l1.npz is written by ``layer1_writer(path)``."""
    folder = good_set(work / "run" / "epoch_001")
    (folder / "weight_l1.npz").unlink()
    layer1_writer(folder / "weight_l1.npz")
    return _ingest(work / "run", store)


def _save_arrays(path: Path, **arrays) -> None:
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _csr_members(path: Path, shape, indices, indptr, data, fmt=b"csr") -> None:
    _save_arrays(path, indices=np.asarray(indices), indptr=np.asarray(indptr), format=np.array(fmt),
                 shape=np.asarray(shape), data=np.asarray(data, dtype=float))


def _lying_npy_header(path: Path) -> None:
    """An npz whose member's header declares (10^6, 10^6) float64 (7.3 TiB) over 48 bytes of data."""
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000, 1000000), }"
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    npy = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + b"\0" * 48
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("arr_0.npy", npy)


def _bomb(path: Path) -> None:
    """A dense layer of 2048 x 4096 float64 zeros but one: 64 MiB compressed to ~70 kB."""
    a = np.zeros((2048, 4096))
    a[0, 0] = 1
    with open(path, "wb") as f:
        np.savez_compressed(f, a)


def _safetensors(path: Path, header: dict, data: bytes = b"") -> None:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _symlink_loop(path: Path) -> None:
    path.symlink_to(path.name)


def _dev_zero(path: Path) -> None:
    path.symlink_to("/dev/zero")


def _single(work: Path, store: Path, writer, name="net.npz", *extra) -> list[str]:
    src = work / "files"
    src.mkdir()
    writer(src / name)
    return _ingest(src, store, *extra)


def _fresh(work: Path, store: Path, writer, name="net.npz") -> list[str]:
    """Like _single, into a new store: the file must be refused for itself, not for differing from a store."""
    return _single(work, work / NEW_STORE, writer, name)


def _with_testacc(work: Path, store: Path, writer) -> list[str]:
    good_set(work / "run" / "epoch_001")
    writer(work / "run" / "testacc.txt")
    return _ingest(work / "run", store)


def _unreadable_subfolder(work: Path, store: Path) -> list[str]:
    good_set(work / "runs" / "a" / "epoch_001")
    good_set(work / "runs" / "b" / "epoch_001", seed=8)
    (work / "runs" / "b").chmod(0)
    return _ingest(work / "runs", store)


def _other_shapes(work: Path, store: Path) -> list[str]:
    write_set(work / "x", population(1, [(8, 6), (6, 4)]))
    return _ingest(work / "x", store)


def _broken_chain(work: Path, store: Path) -> list[str]:
    src = work / "files"
    src.mkdir()
    _save_arrays(src / "net.npz", a=np.ones((8, 6)), b=np.ones((5, 3)))
    return _ingest(src, store)


def _gap(work: Path, store: Path) -> list[str]:
    folder = good_set(work / "n")
    (folder / "weight_l1.npz").rename(folder / "weight_l2.npz")
    return _ingest(folder, store)


def _duplicate_names(work: Path, store: Path) -> list[str]:
    good_set(work / "a" / "net")
    good_set(work / "b" / "net", seed=9)
    return ["ingest", str(work / "a"), str(work / "b"), "--store", str(store)]


def _changed_without_replace(work: Path, store: Path) -> list[str]:
    write_set(work / "r0" / "epoch_000", population(99))  # the base store's first network's name, other connections
    return _ingest(work, store)


def _huge_epoch(work: Path, store: Path) -> list[str]:
    good_set(work / "run" / ("epoch_" + "9" * 25))
    return _ingest(work / "run", store)




def _text(content: bytes):
    return lambda path: path.write_bytes(content)


def _csr(shape, indices, indptr, data, fmt=b"csr"):
    return lambda path: _csr_members(path, shape, indices, indptr, data, fmt)


CASES = [
    # 4: indices outside the declared shape, and other lying sparse members
    Case("sparse column index outside the shape", 4, lambda w, s: _set_with_layer(w, s, _csr((7, 3), [0, 5], [0, 1, 2, 2, 2, 2, 2, 2], [1, 1]))),
    Case("sparse negative column index", 4, lambda w, s: _set_with_layer(w, s, _csr((7, 3), [0, -1], [0, 1, 2, 2, 2, 2, 2, 2], [1, 1]))),
    Case("sparse indptr decreasing", 4, lambda w, s: _set_with_layer(w, s, _csr((7, 3), [0, 1], [0, 2, 1, 2, 2, 2, 2, 2], [1, 1]))),
    Case("sparse indptr past the data", 4, lambda w, s: _set_with_layer(w, s, _csr((7, 3), [0, 1], [0, 1, 2, 2, 2, 2, 2, 9], [1, 1]))),
    Case("sparse indptr of the wrong length", 4, lambda w, s: _set_with_layer(w, s, _csr((7, 3), [0, 1], [0, 1, 2], [1, 1]))),
    Case("sparse coo row outside the shape", 4, lambda w, s: _set_with_layer(w, s, lambda p: _save_arrays(
        p, row=np.array([0, 9]), col=np.array([0, 1]), format=np.array(b"coo"), shape=np.array([7, 3]), data=np.ones(2))) ),
    Case("sparse csc row index outside the shape", 4, lambda w, s: _set_with_layer(w, s, _csr((7, 3), [0, 8], [0, 1, 2, 2], [1, 1], b"csc"))),
    Case("sparse unknown format", 4, lambda w, s: _set_with_layer(w, s, _csr((7, 3), [0], [0, 1, 1, 1, 1, 1, 1, 1], [1], b"xyz"))),
    Case("sparse format lil", 10, lambda w, s: _set_with_layer(w, s, _csr((7, 3), [0], [0, 1, 1, 1, 1, 1, 1, 1], [1], b"lil"))),
    Case("sparse format dok", 10, lambda w, s: _set_with_layer(w, s, _csr((7, 3), [0], [0, 1, 1, 1, 1, 1, 1, 1], [1], b"dok"))),
    Case("sparse format not a string", 10, lambda w, s: _set_with_layer(w, s, _csr((7, 3), [0], [0, 1, 1, 1, 1, 1, 1, 1], [1], 3))),
    Case("exact solver on a layer too wide for the budget (.pt, pair)", 10, wide_pt_pair),
    Case("sparse shape of three numbers", 4, lambda w, s: _set_with_layer(w, s, _csr((7, 3, 1), [0], [0, 1, 1, 1, 1, 1, 1, 1], [1]))),
    Case("sparse data shorter than indices", 4, lambda w, s: _set_with_layer(w, s, _csr((7, 3), [0, 1], [0, 1, 2, 2, 2, 2, 2, 2], [1]))),
    # 7: non-regular files
    Case("FIFO named weight_l1.npz", 7, lambda w, s: _set_with_layer(w, s, _fifo)),
    Case("FIFO named net.npz", 7, lambda w, s: _single(w, s, _fifo)),
    Case("FIFO named net.safetensors", 7, lambda w, s: _single(w, s, _fifo, "net.safetensors")),
    Case("/dev/zero linked as weight_l1.npz", 7, lambda w, s: _set_with_layer(w, s, _dev_zero)),
    Case("/dev/zero linked as net.npz", 7, lambda w, s: _single(w, s, _dev_zero)),
    Case("FIFO named testacc.txt", 7, lambda w, s: _with_testacc(w, s, _fifo)),
    Case("FIFO given as SOURCE", 7, lambda w, s: (_fifo(w / "pipe.npz"), _ingest(w / "pipe.npz", s))[1]),
    Case("directory named weight_l1.npz", 7, lambda w, s: _set_with_layer(w, s, lambda p: p.mkdir())),
    # 10: declared sizes
    Case("npy header declaring 7.3 TiB", 10, lambda w, s: _single(w, s, _lying_npy_header)),
    Case("npy header declaring 7.3 TiB as a SET layer", 10, lambda w, s: _set_with_layer(w, s, _lying_npy_header)),
    Case("sparse layer of 10^6 x 10^6", 10, lambda w, s: _set_with_layer(w, s, _csr((10**6, 10**6), [0], [0, 1] + [1] * (10**6 - 1), [1]))),
    Case("sparse shape 10^12 x 3 (no indptr)", 10, lambda w, s: _set_with_layer(w, s, _csr((10**12, 3), [0], [0, 1], [1]))),
    Case("safetensors of shape [0, 1e12]", 10, lambda w, s: _single(w, s, lambda p: _safetensors(p, {"w": {"dtype": "F32", "shape": [0, 10**12], "data_offsets": [0, 0]}}), "net.safetensors")),
    Case("safetensors of shape [1e6, 1e6]", 10, lambda w, s: _single(w, s, lambda p: _safetensors(p, {"w": {"dtype": "F32", "shape": [10**6, 10**6], "data_offsets": [0, 4 * 10**12]}}), "net.safetensors")),
    Case("safetensors header length beyond the file", 10, lambda w, s: _single(w, s, lambda p: p.write_bytes(struct.pack("<Q", 10**15) + b"{}"), "net.safetensors")),
    Case("safetensors header not JSON", 10, lambda w, s: _single(w, s, lambda p: p.write_bytes(struct.pack("<Q", 4) + b"\xff\xfe{["), "net.safetensors")),
    Case("safetensors data offsets outside the file", 10, lambda w, s: _single(w, s, lambda p: _safetensors(p, {"w": {"dtype": "F32", "shape": [6, 3], "data_offsets": [0, 72]}}), "net.safetensors")),
    Case("safetensors BF16 tensor", 10, lambda w, s: _single(w, s, lambda p: _safetensors(p, {"w": {"dtype": "BF16", "shape": [6, 3], "data_offsets": [0, 36]}}, bytes(36)), "net.safetensors")),
    Case("npz bomb: 64 MiB of zeros in 70 kB", 10, lambda w, s: _fresh(w, s, _bomb)),
    Case("layer too wide for the dense solver", 10, lambda w, s: _fresh(w, s, lambda p: _save_arrays(p, a=np.ones((1, 600))))),
    Case("empty layer 0 x 3", 10, lambda w, s: _fresh(w, s, lambda p: _save_arrays(p, a=np.ones((0, 3)), b=np.ones((3, 3))))),
    # 12: tracebacks seen
    Case("symlink loop as weight_l1.npz", 12, lambda w, s: _set_with_layer(w, s, _symlink_loop)),
    Case("symlink loop as net.npz", 12, lambda w, s: _single(w, s, _symlink_loop)),
    Case("binary testacc.txt", 12, lambda w, s: _with_testacc(w, s, _text(b"\xff\xfe\x00\x01garbage\n"))),
    Case("testacc.txt line not a number", 12, lambda w, s: _with_testacc(w, s, _text(b"0.9\nabc\n"))),
    Case("huge epoch number", 12, _huge_epoch),
    Case("unreadable subfolder", 12, _unreadable_subfolder),
    Case("truncated npz", 12, lambda w, s: _set_with_layer(w, s, lambda p: (sp.save_npz(p, sp.csr_matrix(np.ones((7, 3)))), p.write_bytes(p.read_bytes()[:200])))),
    Case("npz of random bytes", 12, lambda w, s: _set_with_layer(w, s, _text(os.urandom(300)))),
    Case("zero-byte npz", 12, lambda w, s: _set_with_layer(w, s, _text(b""))),
    Case("a .npy renamed .npz", 12, lambda w, s: _set_with_layer(w, s, lambda p: np.save(open(p, "wb"), np.ones((7, 3))))),
    Case("npz with a pickled object array", 12, lambda w, s: _single(w, s, lambda p: np.savez(open(p, "wb"), a=np.array([{}, 1], dtype=object)))),
    Case("npz with NaN weights", 12, lambda w, s: _single(w, s, lambda p: _save_arrays(p, a=np.full((8, 6), np.nan), b=np.ones((6, 3))))),
    Case("npz with string weights", 12, lambda w, s: _single(w, s, lambda p: _save_arrays(p, a=np.full((8, 6), "x"), b=np.ones((6, 3))))),
    Case("npz with a 3-D layer", 12, lambda w, s: _single(w, s, lambda p: _save_arrays(p, a=np.ones((8, 6, 2))))),
    Case("npz with no arrays", 12, lambda w, s: _single(w, s, lambda p: _save_arrays(p))),
    Case("npz with only 1-D arrays", 12, lambda w, s: _single(w, s, lambda p: _save_arrays(p, bias=np.ones(3)))),
    Case("SET layer with only the bias row", 12, lambda w, s: _set_with_layer(w, s, lambda p: sp.save_npz(p, sp.csr_matrix(np.ones((1, 3)))))),
    Case("zip member whose CRC is wrong", 12, lambda w, s: _set_with_layer(w, s, _bad_crc)),
    # shapes and names
    Case("layer shapes differ from the store's", 0, _other_shapes),
    Case("layer chain broken (8x6 then 5x3)", 0, _broken_chain),
    Case("gap in weight_lK numbering", 0, _gap),
    Case("two sources give one name", 0, _duplicate_names),
    Case("same name, other connections, no --replace", 0, _changed_without_replace),
    Case("source does not exist", 0, lambda w, s: _ingest(w / "nothing", s)),
    Case("folder without networks", 0, lambda w, s: ((w / "empty").mkdir(), _ingest(w / "empty", s))[1]),
    Case("a text file as SOURCE", 0, lambda w, s: ((w / "a.txt").write_text("x"), _ingest(w / "a.txt", s))[1]),
]


def _bad_crc(path: Path) -> None:
    sp.save_npz(path, sp.csr_matrix(np.ones((7, 3))), compressed=False)
    raw = bytearray(path.read_bytes())
    i = raw.index(b"\x93NUMPY") + 200  # inside the first member's data
    raw[i] ^= 0xFF
    path.write_bytes(bytes(raw))


# ---- damaged stores: the template holds 3 networks and their distances in tiles of 2 ------------------


def _flip(relative: str, offset: float = 0.5):
    """Damage one file of the store: flip every bit of the byte at ``offset`` (a fraction of its length)."""

    def damage(store: Path) -> None:
        path = store / relative
        raw = bytearray(path.read_bytes())
        raw[int(len(raw) * offset)] ^= 0xFF
        path.write_bytes(bytes(raw))
    return damage


def _delete(relative: str):
    return lambda store: (store / relative).unlink()


def _truncate(relative: str):
    return lambda store: (store / relative).write_bytes((store / relative).read_bytes()[:5])


def _write(relative: str, content: bytes):
    return lambda store: (store / relative).write_bytes(content)


















def _live_lock(store: Path) -> None:
    import socket

    lock = {"host": socket.gethostname(), "pid": 1, "started": "2026-01-01 00:00:00", "command": "nnstd-dist compute --store x"}
    (store / "nnstd-dist.lock").write_text(json.dumps(lock))


def _on_store(damage, *argv):
    """A case that damages the store, then runs ``argv`` (STORE stands for the store's path)."""

    def build(work: Path, store: Path) -> list[str]:
        damage(store)
        good_set(work / "more" / "epoch_009", seed=11)
        write_set(work / "four" / "epoch_009", population(12, [(4, 6), (6, 3)]))
        return [str(store) if a == "STORE" else str(work / a[5:]) if a.startswith("WORK/") else a for a in argv]
    return build


def _nothing(store: Path) -> None:
    pass


def _cut_at_boundary(relative: str):
    """The file ``relative`` cut after its first record: whole records, one missing (a copy that stopped there)."""
    def damage(store: Path) -> None:
        from _damage import records

        path = store / relative
        path.write_bytes(path.read_bytes()[: records(path)[0]["end"]])
    return damage


def _format2(work: Path, damage=None, link: bool = False) -> list[str]:
    """`upgrade` of a format-2 store of three networks, work/old.zarr, damaged by ``damage``; with ``link``, given as a link to it."""
    from _format2 import write_format2
    from nnstd_dist.records import NetworkRecord

    networks = [[sp.csr_matrix(m) for m in population(k)] for k in range(3)]
    write_format2(work / "old.zarr", networks, [NetworkRecord(f"r{k}/epoch_000", run=f"r{k}", epoch=0) for k in range(3)])
    if damage:
        damage(work / "old.zarr")
    if link:
        (work / "link.zarr").symlink_to(work / "old.zarr")
    return ["upgrade", "--store", str(work / ("link.zarr" if link else "old.zarr"))]


EXPORT = ("export", "--store", "STORE", "-o", "WORK/d.npz")
INFO = ("info", "--store", "STORE")
RECOMPUTE = ("compute", "--store", "STORE", "--recompute", "--n-workers", "1")
COMPUTE = ("compute", "--store", "STORE", "--n-workers", "1")
APPEND = ("ingest", "WORK/more", "--store", "STORE")

ROW0, ROW1 = f"{RESULTS}/rows/0", f"{RESULTS}/rows/1"  # the template's row files: tile (0, 0); tiles (1, 0) and (1, 1)
T10, T11 = f"{RESULTS}/tiles/1.0", f"{RESULTS}/tiles/1.1"  # tile files, once unpack_row(1) made row 1 a run's unpacked row
FOREIGN_ROW1 = f"../{FOREIGN}/{ROW1}"  # the same row of the store beside it: same shapes, tile and results, other networks
VERIFY = ("verify", "--store", "STORE")

STORE_CASES = [
    # 3: on-disk damage (a distance chunk in format 2: a tile record, in its row file or its own tile file, in format 3)
    Case("bit flip in a tile record's distances (row file), export", 3, _on_store(flip_record(ROW1, 0, "payload"), *EXPORT)),
    Case("bit flip near the end of a row file (a payload checksum), export", 3, _on_store(flip_record(ROW1, 1, "payload crc", 0.9), *EXPORT)),
    Case("bit flip in a tile file's distances, export", 3, _on_store(then(unpack_row(1), flip_record(T11, 0, "payload")), *EXPORT)),
    Case("results folder distances/g1 deleted, export", 3, _on_store(remove(RESULTS), *EXPORT)),
    Case("truncated tile file, export", 3, _on_store(then(unpack_row(1), _truncate(T11)), *EXPORT)),
    Case("row file truncated in a record's distances, export", 3, _on_store(cut_record(ROW1, 1, "payload"), *EXPORT)),
    Case("row file truncated in a record's header, info", 3, _on_store(cut_record(ROW1, 0, "header"), *INFO)),
    Case("row file cut to 5 bytes, info", 3, _on_store(_truncate(ROW0), *INFO)),
    Case("mask chunk of network 1 missing from its shard, compute --recompute", 3, _on_store(clear_inner(0, 1), *RECOMPUTE)),
    Case("bit flip in network 1's mask chunk inside its shard, compute --recompute", 3, _on_store(flip_inner(0, 1, 0.9), *RECOMPUTE)),
    Case("bit flip in a mask shard's index, compute --recompute", 3, _on_store(flip_shard_index(0, 1), *RECOMPUTE)),
    Case("mask shard file deleted, compute --recompute", 3, _on_store(_delete("mask_l1/c/0/0/0"), *RECOMPUTE)),
    Case("deleted names chunk, export", 3, _on_store(_delete("network/c/0"), *EXPORT)),
    Case("deleted names chunk, info", 3, _on_store(_delete("network/c/0"), *INFO)),
    Case("deleted connections chunk, info", 3, _on_store(_delete("connections/c/0/0"), *INFO)),
    Case("bit flip in the connections chunk, info", 3, _on_store(_flip("connections/c/0/0", 0.9), *INFO)),
    Case("bit flip in a tile file's header, info", 3, _on_store(then(unpack_row(1), flip_record(T10, 0, "header", 0.0)), *INFO)),
    Case("bit flip in a row file's header checksum, info", 3, _on_store(flip_record(ROW1, 1, "header crc"), *INFO)),
    Case("n_networks above the real count, info", 3, _on_store(edit_attrs(n_networks=5), *INFO)),
    Case("n_networks above the real count, export", 3, _on_store(edit_attrs(n_networks=5), *EXPORT)),
    Case("tile attribute changed, export", 3, _on_store(edit_attrs(tile=3), *EXPORT)),
    Case("tile record whose header is not JSON (checksums right), export", 12, _on_store(edit_record(ROW1, 0, text=b"{not json"), *EXPORT)),
    Case("tile file of garbage bytes, export", 12, _on_store(_write(T10, b"\x89PNG garbage, not a tile record"), *EXPORT)),
    Case("broken mask zarr.json, append", 12, _on_store(_write("mask_l0/zarr.json", b"{}"), *APPEND)),
    Case("broken group zarr.json, info", 12, _on_store(_write("zarr.json", b"\x00\x01"), *INFO)),
    Case("format version 1, info", 12, _on_store(edit_attrs(format_version=1), *INFO)),
    Case("format version 2, info", 12, _on_store(edit_attrs(format_version=2), *INFO)),
    # issue 23, item 9: attributes (and record headers) that contradict the arrays or the rules
    Case("shapes edited to 4 x 6 over 8 x 6 masks, info", 9, _on_store(edit_attrs(shapes=[[4, 6], [6, 3]]), *INFO)),
    Case("shapes edited to 4 x 6, append of 4-input networks", 9, _on_store(edit_attrs(shapes=[[4, 6], [6, 3]]), "ingest", "WORK/four", "--store", "STORE")),
    Case("layers[1].block 0, export", 9, _on_store(block(1, 0), *EXPORT)),
    Case("layers[1].block 2, export", 9, _on_store(block(1, 2), *EXPORT)),
    Case("solver bogus, export", 9, _on_store(edit_attrs(solver="bogus"), *EXPORT)),
    Case("solver sparse (format 2's, gone), info", 9, _on_store(edit_attrs(solver="sparse"), *INFO)),
    Case("max_layer 99, info", 9, _on_store(edit_attrs(max_layer=99), *INFO)),
    Case("max_layer -1, export", 9, _on_store(edit_attrs(max_layer=-1), *EXPORT)),
    Case("tile record above the diagonal (tiles/0.1, checksums right), export", 9,
         _on_store(edit_record(ROW1, 0, dest=f"{RESULTS}/tiles/0.1", fit=True, a=0, b=1, rows=[0, 2], cols=[2, 3]), *EXPORT)),
    Case("tile record done at -3 networks (checksums right), info", 9, _on_store(edit_record(ROW1, 0, done_at=-3), *INFO)),
    Case("tile record done at 5 networks of 3 (checksums right), export", 9, _on_store(edit_record(ROW1, 1, done_at=5), *EXPORT)),
    Case("tile record of results 2 in results 1 (checksums right), export", 9, _on_store(edit_record(ROW1, 1, results=2), *EXPORT)),
    # issue 23, item 10: a store partly deleted or edited
    Case("distances removed, info", 10, _on_store(remove("distances"), *INFO)),
    Case("distances removed, export", 10, _on_store(remove("distances"), *EXPORT)),
    Case("distances removed, compute", 10, _on_store(remove("distances"), *COMPUTE)),
    Case("results attribute removed, info", 10, _on_store(drop_attrs("results"), *INFO)),
    Case("results attribute removed, export", 10, _on_store(drop_attrs("results"), *EXPORT)),
    Case("results attribute edited to 2 (no such folder), export", 10, _on_store(edit_attrs(results=2), *EXPORT)),
    Case("results attribute a string, info", 10, _on_store(edit_attrs(results="g1"), *INFO)),
    Case("tile record's extent edited to 1 x 1 (checksums right), info", 10, _on_store(edit_record(ROW1, 0, cols=[0, 1]), *INFO)),
    Case("tile record's layers edited to 1 (checksums right), export", 10, _on_store(edit_record(ROW1, 0, layers=1), *EXPORT)),
    Case("tile record of 3 layers in a 2-layer store (checksums right), export", 10, _on_store(edit_record(ROW1, 1, fit=True, layers=3), *EXPORT)),
    Case("mask_l0 reshaped to 3 x 4 x 6, info", 10, _on_store(edit_meta("mask_l0", shape=[3, 4, 6]), *INFO)),
    Case("mask_l0's inner chunks edited to 2 networks, info", 10, _on_store(edit_inner_chunks("mask_l0", [2, 8, 6]), *INFO)),
    Case("shapes shortened, info", 10, _on_store(edit_attrs(shapes=[[8, 6]]), *INFO)),
    Case("lock whose pid is 10^30, append", 10, _on_store(lock_pid(10**30), *APPEND)),
    # issue 23, item 11: records in the wrong place, or of other networks (each whole, its checksums right)
    Case("tiles folder of the results removed, info", 11, _on_store(remove(f"{RESULTS}/tiles"), *INFO)),
    Case("two tile files swapped, export", 11, _on_store(then(unpack_row(1), swap_files(T10, T11)), *EXPORT)),
    Case("a tile file copied to another tile's name, info", 11, _on_store(then(unpack_row(1), copy_file(T10, T11)), *INFO)),
    Case("two records in one tile file, export", 11, _on_store(then(unpack_row(1), append_file(T11, T10)), *EXPORT)),
    Case("row file 1 moved to row 0's name, export", 11, _on_store(then(copy_file(ROW1, ROW0), _delete(ROW1)), *EXPORT)),
    Case("row file copied from another store of the same shape, export", 11, _on_store(copy_file(FOREIGN_ROW1, ROW1), *EXPORT)),
    Case("tile record copied from another store of the same shape, info", 11, _on_store(edit_record(FOREIGN_ROW1, 0, dest=T10), *INFO)),
    Case("tile record from another store over a run's tile file, export", 11,
         _on_store(then(unpack_row(1), edit_record(FOREIGN_ROW1, 1, dest=T11)), *EXPORT)),
    Case("mask chunks of two networks swapped, compute --recompute", 11, _on_store(swap_masks, *RECOMPUTE)),
    Case("mask chunks of two networks swapped, compute --recompute --tile 2", 11, _on_store(swap_masks, *RECOMPUTE, "--tile", "2")),
    Case("max_layer -1, compute", 11, _on_store(edit_attrs(max_layer=-1), *COMPUTE)),
    # verify lists what the commands above refuse (exit 1), and writes nothing
    Case("bit flip in a tile record's distances, verify", 3, _on_store(flip_record(ROW1, 0, "payload"), *VERIFY), lists="tile (1, 0)"),
    Case("row file truncated, verify", 3, _on_store(cut_record(ROW1, 1, "payload"), *VERIFY), lists="tile (1, 1)"),
    Case("bit flip in network 1's mask chunk, verify", 3, _on_store(flip_inner(0, 1, 0.9), *VERIFY), lists="network 1"),
    Case("mask chunk of network 2 missing from its shard, verify", 3, _on_store(clear_inner(1, 2), *VERIFY), lists="network 2"),
    Case("results attribute removed, verify", 10, _on_store(drop_attrs("results"), *VERIFY), lists="attribute results"),
    Case("two tile files swapped, verify", 11, _on_store(then(unpack_row(1), swap_files(T10, T11)), *VERIFY), lists="holds tile (1, 1)"),
    Case("tile record copied from another store of the same shape, verify", 11, _on_store(copy_file(FOREIGN_ROW1, ROW1), *VERIFY),
         lists="other networks"),
    Case("mask chunks of two networks swapped, verify", 11, _on_store(swap_masks, *VERIFY), lists="do not match its digest"),
    # 6: locks
    Case("0-byte lock, append", 6, _on_store(_write("nnstd-dist.lock", b""), *APPEND)),
    Case("0-byte lock, compute", 6, _on_store(_write("nnstd-dist.lock", b""), *RECOMPUTE)),
    Case("garbage lock, append", 6, _on_store(_write("nnstd-dist.lock", b"\x89PNG garbage"), *APPEND)),
    Case("lock of a live process, append", 6, _on_store(_live_lock, *APPEND)),
    # 8: a tile that cannot be allocated
    Case("compute --tile 100000", 8, _on_store(_nothing, *RECOMPUTE, "--tile", "100000")),
    # 12: schedulers
    Case("garbage scheduler file", 12, _on_store(_write("../sched.json", b"garbage"), *COMPUTE[:3], "--scheduler-file", "WORK/sched.json")),
    Case("scheduler file without an address", 12, _on_store(_write("../sched.json", b'{"type": "Scheduler"}'), *COMPUTE[:3], "--scheduler-file", "WORK/sched.json")),
    # issue 23, item 10: scheduler addresses that are not a Dask scheduler's
    Case("scheduler not-an-address", 10, _on_store(_nothing, *COMPUTE[:3], "--scheduler", "not-an-address")),
    Case("scheduler ftp://", 10, _on_store(_nothing, *COMPUTE[:3], "--scheduler", "ftp://example.org:21")),
    Case("scheduler address of an HTTP server", 10, scheduler_at("http")),
    Case("scheduler address of a server that greets first", 10, scheduler_at("ssh")),
    # issue 23, item 11: options checked before any write
    Case("compute --recompute --memory-limit abc", 11, _on_store(_nothing, *RECOMPUTE[:4], "--memory-limit", "abc")),
    Case("compute --recompute --memory-limit -5GB", 11, _on_store(_nothing, *RECOMPUTE[:4], "--memory-limit", "-5GB")),
    Case("compute --memory-limit 1KB", 11, _on_store(_nothing, *COMPUTE[:3], "--recompute", "--memory-limit", "1KB")),
    # 5: export onto what it did not create
    Case("export -o another store", 5, _on_store(_nothing, "export", "--store", "STORE", "-o", "WORK/other.zarr")),
    # issue 28, item 1: links inside the store lead outside it; compute replaces them, never touching their targets
    Case("tiles folder a link to a user's folder holding 1.0, compute", 28, _on_store(link_folder(f"{RESULTS}/tiles"), *COMPUTE), done=True),
    Case("rows folder a link to a user's folder holding 1, compute", 28, _on_store(link_folder(f"{RESULTS}/rows"), *COMPUTE), done=True),
    Case("rows folder a link to a user's folder, export", 28, _on_store(link_folder(f"{RESULTS}/rows"), *EXPORT)),
    Case("rows folder a link to a user's folder, verify", 28, _on_store(link_folder(f"{RESULTS}/rows"), *VERIFY), lists="symbolic link"),
    Case("row file a link to a user's file, compute", 28, _on_store(plant(ROW1, "user"), *COMPUTE), done=True),
    Case("row file a link to a user's file, info", 28, _on_store(plant(ROW1, "user"), *INFO)),
    Case("format-2 store behind a link, upgrade", 28, lambda w, s: _format2(w, link=True), done=True, root="old.zarr"),
    # items 2 and 3: nothing blocks
    Case("FIFO as a row file, verify", 28, _on_store(plant(ROW1, "fifo"), *VERIFY), lists="FIFO"),
    Case("FIFO as a row file, info", 28, _on_store(plant(ROW1, "fifo"), *INFO)),
    Case("FIFO as a row file, export", 28, _on_store(plant(ROW1, "fifo"), *EXPORT)),
    Case("FIFO as a row file, compute", 28, _on_store(plant(ROW1, "fifo"), *COMPUTE), done=True),
    Case("FIFO as a tile file, export", 28, _on_store(then(unpack_row(1), plant(T11, "fifo")), *EXPORT)),
    Case("/dev/zero linked as a row file, verify", 28, _on_store(plant(ROW1, "dev zero"), *VERIFY), lists="symbolic link"),
    Case("/dev/zero linked as a row file, export", 28, _on_store(plant(ROW1, "dev zero"), *EXPORT)),
    Case("dangling link as a row file, verify", 28, _on_store(plant(ROW1, "dangling"), *VERIFY), lists="symbolic link"),
    Case("folder as a row file, compute", 28, _on_store(plant(ROW1, "folder"), *COMPUTE), done=True),
    Case("folder as a row file, verify", 28, _on_store(plant(ROW1, "folder"), *VERIFY), lists="folder"),
    Case("FIFO as the lock, append", 28, _on_store(lambda st: os.mkfifo(st / "nnstd-dist.lock"), *APPEND)),
    Case("mask shard linked to /dev/zero, verify", 28, _on_store(plant("mask_l0/c/0/0/0", "dev zero"), *VERIFY), lists="network 0"),
    Case("mask shard linked to /dev/zero, compute --recompute", 28, _on_store(plant("mask_l0/c/0/0/0", "dev zero"), *RECOMPUTE)),
    # item 3: numbers checked before they are served, whatever the checksums say
    Case("record's distances +5 (checksums right), export", 28, _on_store(forge_values(ROW1, 0, lambda v: v + 5), *EXPORT)),
    Case("record's distances +5 (checksums right), info", 28, _on_store(forge_values(ROW1, 0, lambda v: v + 5), *INFO)),
    Case("record's distances negated (checksums right), export", 28, _on_store(forge_values(ROW1, 0, lambda v: -v - 0.1), *EXPORT)),
    Case("record's distances all NaN (checksums right), verify", 28, _on_store(forge_values(ROW1, 0, lambda v: v * np.nan), *VERIFY),
         lists="tile (1, 0)"),
    Case("record's distances all NaN (checksums right), compute", 28, _on_store(forge_values(ROW1, 0, lambda v: v * np.nan), *COMPUTE), done=True),
    Case("record's distances +5 (checksums right), compute", 28, _on_store(forge_values(ROW1, 0, lambda v: v + 5), *COMPUTE), done=True),
    # item 4: one strict header schema
    Case("header rows as floats (checksums right), export", 28, _on_store(edit_record(ROW1, 0, rows=[2.0, 3.0]), *EXPORT)),
    Case("header rows NaN (checksums right), export", 28, _on_store(edit_record(ROW1, 0, text=b'{"a": 1, "b": 0, "rows": [NaN, 3]}'), *EXPORT)),
    Case("header without a (checksums right), info", 28, _on_store(edit_record(ROW1, 0, text=b'{"b": 0, "rows": [2, 3], "cols": [0, 2]}'), *INFO)),
    Case("header a 2,000-deep array (checksums right), export", 28, _on_store(edit_record(ROW1, 0, text=b"[" * 2000 + b"]" * 2000), *EXPORT)),
    Case("header a 2,000-deep array (checksums right), verify", 28, _on_store(edit_record(ROW1, 0, text=b"[" * 2000 + b"]" * 2000), *VERIFY),
         lists="tile (1, "),
    Case("a file named \u00b2 among the row files, info", 28, _on_store(write_file(f"{RESULTS}/rows/\u00b2"), *INFO), done=True),
    Case("a file named \u00b2 among the tile files, compute", 28, _on_store(write_file(f"{RESULTS}/tiles/\u00b2.0"), *COMPUTE), done=True),
    # item 5: upgrade of a damaged format-2 store
    Case("format-2 store with a garbage zarr.json, upgrade", 28, lambda w, s: _format2(w, lambda p: (p / "zarr.json").write_bytes(b"\0{")),
         root="old.zarr"),
    Case("format-2 store with n_networks beyond its arrays, upgrade", 28, lambda w, s: _format2(w, edit_attrs(n_networks=9)), root="old.zarr"),
    Case("format-2 store whose shapes is a string, upgrade", 28, lambda w, s: _format2(w, edit_attrs(shapes="8x6")), root="old.zarr"),
    Case("format-2 store with tile 0, upgrade", 28, lambda w, s: _format2(w, edit_attrs(tile=0)), root="old.zarr"),
    # item 6: options
    Case("compute --memory-limit inf", 28, _on_store(_nothing, *COMPUTE[:3], "--memory-limit", "inf")),
    Case("compute --scheduler inproc://x", 28, _on_store(_nothing, *COMPUTE[:3], "--scheduler", "inproc://x")),
    # item 8: a row file is written whole
    Case("row file empty, verify", 28, _on_store(write_file(ROW1, b""), *VERIFY), lists="lacks tile (1, 0)"),
    Case("row file cut at a record's boundary, verify", 28, _on_store(_cut_at_boundary(ROW1), *VERIFY), lists="lacks tile (1, 1)"),
    Case("row file cut at a record's boundary, compute", 28, _on_store(_cut_at_boundary(ROW1), *COMPUTE), done=True),
    Case("row file empty, export", 28, _on_store(write_file(ROW1, b""), *EXPORT)),
]


class _Hang(Exception):
    pass


def run_case(case: Case, work: Path, template: Path) -> tuple[str, str]:
    """Run one case against a copy of ``template``; returns (outcome, what it printed)."""
    from click.testing import CliRunner

    from nnstd_dist.cli.main import cli

    store = work / "store.zarr"
    shutil.copytree(template, store)
    if case.name == "export -o another store":
        shutil.copytree(template, work / "other.zarr")
    if case in STORE_CASES and (template.parent / FOREIGN).exists():  # records to copy from (no case ingests its work folder)
        shutil.copytree(template.parent / FOREIGN, work / FOREIGN)
    argv = case.build(work, store)
    case_root = work / case.root
    before = {**tree_hashes(case_root), **{f"other/{k}": v for k, v in tree_hashes(work / "other.zarr").items()}}
    mine = (case.root, "other.zarr", *(Path(argv[i + 1]).name for i, a in enumerate(argv[:-1]) if a == "-o"))  # the command's own output
    outside = tree_hashes(work, skip=mine)

    def alarm(signum, frame):
        raise _Hang()

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(HANG_SECONDS)
    env = {"NNSTD_DIST_MEMORY_BUDGET": BUDGET}
    try:
        result = CliRunner().invoke(cli, argv, env=env)
    except _Hang:
        return "hang", ""
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    for root, dirs, _ in os.walk(work):  # chmod 0 folders back, for cleanup
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o755)
    if isinstance(result.exception, _Hang):
        return "hang", ""
    now = tree_hashes(work, skip=mine)
    changed = sorted(k for k in outside.keys() | now.keys() if outside.get(k) != now.get(k))
    if changed:
        return "outside-write", f"changed outside the store: {', '.join(changed)[:160]}"
    err = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        return "traceback", f"{type(result.exception).__name__}: {result.exception}"[:200]
    if result.exit_code == 0:
        if case.done:
            from nnstd_dist.store.verify import verify

            problems = verify(case_root).problems
            return ("done", result.output.strip().splitlines()[-1:][0] if result.output.strip() else "") if not problems else (
                "silent", f"exit 0 but verify finds: {problems[0]}"[:200])
        return "silent", result.output[:200]
    after = {**tree_hashes(case_root), **{f"other/{k}": v for k, v in tree_hashes(work / "other.zarr").items()}}
    if after != before:
        return "lost", f"changed: {', '.join(sorted(k for k in after.keys() | before.keys() if after.get(k) != before.get(k)))[:150]}"
    if (work / NEW_STORE).exists() or any(p.name.startswith((".store.zarr", ".new.zarr")) for p in work.iterdir()):
        return "lost", err[:200]
    if case.lists:  # verify: exit 1, and the damage named among the problems it prints
        found = [line for line in result.stdout.splitlines() if case.lists in line]
        if result.exit_code == 1 and found:
            return "listed", found[0]
        return "unlisted", f"exit {result.exit_code}: {(result.stdout + err).strip()}"[:200]
    lines = [line for line in err.splitlines() if line.strip()]
    if result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("Error: "):
        return "clean", lines[0]
    return "traceback", err[:200]  # a multi-line or misleading message


def make_template(folder: Path) -> Path:
    """A small store of three SET networks (r0/epoch_000 ...) with its distances computed in tiles of 2: row files
    distances/g1/rows/0 (tile (0, 0)) and rows/1 (tiles (1, 0) and (1, 1)). Beside it FOREIGN: the same, of three other networks.
    """
    from nnstd_dist.sources.discover import discover, read_networks
    from nnstd_dist.store.topology_store import add_networks

    from distributed import Client, LocalCluster

    from nnstd_dist.engine import compute

    for k in range(3):
        write_set(folder / "src" / f"r{k}" / "epoch_000", population(k))
        write_set(folder / "foreign" / f"r{k}" / "epoch_000", population(k + 3))
    store = folder / "template.zarr"
    add_networks(store, read_networks(discover([folder / "src"])))
    add_networks(folder / FOREIGN, read_networks(discover([folder / "foreign"])))
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster, Client(cluster) as client:
        compute(store, client=client, tile=2)
        compute(folder / FOREIGN, client=client, tile=2)
    return store


def main() -> None:
    import collections
    import tempfile

    import nnstd_dist

    print(f"nnstd_dist from {Path(nnstd_dist.__file__).parent}", file=sys.stderr)
    counts = collections.Counter()
    with tempfile.TemporaryDirectory() as tmp:
        template = make_template(Path(tmp))
        for i, case in enumerate(CASES + STORE_CASES):
            work = Path(tmp) / f"case{i}"
            work.mkdir()
            if case.name == "unreadable subfolder" and os.geteuid() == 0:
                print(f"n/a       [{case.cls:2}] {case.name}: root reads folders of mode 000")
                continue
            outcome, text = run_case(case, work, template)
            counts[outcome] += 1
            counts["as expected"] += outcome == case.expected
            print(f"{outcome:9} [{case.cls:2}] {case.name}: {text.strip()[:150]}")
    kinds = ("clean", "listed", "done", "traceback", "silent", "hang", "lost", "outside-write", "unlisted", "as expected")
    print(f"{len(CASES) + len(STORE_CASES)} cases: " + ", ".join(f"{k} {counts[k]}" for k in kinds))


if __name__ == "__main__":
    main()
