"""Builders of the bad-input corpus for issue 23 (items 9-11): attribute and array edits, tile records and mask shards damaged
byte by byte, swapped masks, locks, servers that are not a Dask scheduler, checkpoints too wide for the exact solver. Used by
_corpus.py's CASES and STORE_CASES.

The tile records and mask shards are parsed here on their own (store format 3: tile_files.py's framing, zarr's sharding index),
not through the library, so that a damage is made to the bytes whatever the library believes about them.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
from pathlib import Path

import google_crc32c

RESULTS = "distances/g1"  # the corpus template's one set of results (attribute results 1)
MAGIC = b"NNSTDT3\0"  # a tile record's first bytes (tile_files.py)
SHARD = 1024  # networks per mask shard file: the template's network i, layer k is inner chunk i of mask_l{k}/c/0/0/0
_EMPTY = 2**64 - 1  # a shard index entry of an inner chunk never written


def edit_attrs(**changes):
    """A damage that updates the store group's attributes in its zarr.json."""
    def damage(store: Path) -> None:
        meta = json.loads((store / "zarr.json").read_text())
        meta["attributes"].update(changes)
        (store / "zarr.json").write_text(json.dumps(meta))
    return damage


def drop_attrs(*names):
    """A damage that removes attributes from the store group's zarr.json."""
    def damage(store: Path) -> None:
        meta = json.loads((store / "zarr.json").read_text())
        for name in names:
            meta["attributes"].pop(name)
        (store / "zarr.json").write_text(json.dumps(meta))
    return damage


def edit_meta(relative: str, **changes):
    """Edit an array's zarr.json (its shape, say), as a hand edit or a bad copy would."""
    def damage(store: Path) -> None:
        meta = json.loads((store / relative / "zarr.json").read_text())
        meta.update(changes)
        (store / relative / "zarr.json").write_text(json.dumps(meta))
    return damage


def remove(relative: str):
    return lambda store: shutil.rmtree(store / relative)


def block(k: int, block):
    def damage(store: Path) -> None:
        layers = json.loads((store / "zarr.json").read_text())["attributes"]["layers"]
        layers[k]["block"] = block
        edit_attrs(layers=layers)(store)
    return damage


def then(*damages):
    """Several damages, one after the other."""
    def damage(store: Path) -> None:
        for d in damages:
            d(store)
    return damage


def _crc(data: bytes) -> bytes:
    return google_crc32c.value(data).to_bytes(4, "little")


def records(path: Path) -> list[dict]:
    """The tile records of a tile or row file: per record its header, and the offsets of its header, payload and end.

    Parsed from the framing alone (MAGIC | u32 n | header | crc | payload | crc), for a whole file.
    """
    raw, out, start = path.read_bytes(), [], 0
    while start < len(raw):
        assert raw[start : start + 8] == MAGIC, f"{path}: no tile record at {start}"
        (n,) = struct.unpack("<I", raw[start + 8 : start + 12])
        header = json.loads(raw[start + 12 : start + 12 + n])
        payload = start + 12 + n + 4
        size = 8 * header["layers"] * (header["rows"][1] - header["rows"][0]) * (header["cols"][1] - header["cols"][0])
        out.append({"header": header, "start": start, "header_at": start + 12, "payload_at": payload, "end": payload + size + 4})
        start = payload + size + 4
    return out


def encode(header: dict | bytes, payload: bytes) -> bytes:
    """A record with both checksums right, whatever its header says (``bytes``: the header's text as is)."""
    from nnstd_dist.store.tile_files import frame

    return frame(header if isinstance(header, bytes) else json.dumps(header, sort_keys=True).encode(), payload)


def edit_record(relative: str, index: int, dest: str | None = None, fit: bool = False, text: bytes | None = None, **changes):
    """Record ``index`` of the file ``relative`` re-encoded with its header ``changes`` (or header ``text``), checksums right.

    Written in place of the old record (the file's other records kept), or alone as the file ``dest``. With ``fit`` the payload
    is made the size the new header declares (zeros), so the record stays well framed; else the old payload is kept.
    """
    def damage(store: Path) -> None:
        path = store / relative
        raw, record = path.read_bytes(), records(path)[index]
        header = {**record["header"], **changes}
        payload = raw[record["payload_at"] : record["end"] - 4]
        if fit:
            payload = bytes(8 * header["layers"] * (header["rows"][1] - header["rows"][0]) * (header["cols"][1] - header["cols"][0]))
        new = encode(text if text is not None else header, payload)
        if dest is None:
            path.write_bytes(raw[: record["start"]] + new + raw[record["end"] :])
        else:
            (store / dest).parent.mkdir(parents=True, exist_ok=True)
            (store / dest).write_bytes(new)
    return damage


def flip_record(relative: str, index: int, part: str, offset: float = 0.5):
    """Flip every bit of one byte of record ``index`` of ``relative``: in its "header", "header crc", "payload" or "payload crc"."""
    def damage(store: Path) -> None:
        path = store / relative
        r = records(path)[index]
        start, stop = {"header": (r["header_at"], r["payload_at"] - 4), "header crc": (r["payload_at"] - 4, r["payload_at"]),
                       "payload": (r["payload_at"], r["end"] - 4), "payload crc": (r["end"] - 4, r["end"])}[part]
        raw = bytearray(path.read_bytes())
        raw[start + int((stop - start) * offset)] ^= 0xFF
        path.write_bytes(bytes(raw))
    return damage


def cut_record(relative: str, index: int, part: str = "payload"):
    """The file ``relative`` cut in the middle of record ``index``'s header or payload (a copy or a disk that stopped there)."""
    def damage(store: Path) -> None:
        path = store / relative
        r = records(path)[index]
        at = (r["header_at"] + r["payload_at"]) // 2 if part == "header" else (r["payload_at"] + r["end"]) // 2
        path.write_bytes(path.read_bytes()[:at])
    return damage


def unpack_row(a: int):
    """Row file ``a`` split back into its tile files ``tiles/a.b`` and removed: a store as a run leaves it before it packs row a.

    Not damage (every record in its place): the state the tile-file cases start from."""
    def damage(store: Path) -> None:
        row = store / RESULTS / "rows" / str(a)
        raw = row.read_bytes()
        for r in records(row):
            (store / RESULTS / "tiles" / f"{a}.{r['header']['b']}").write_bytes(raw[r["start"] : r["end"]])
        row.unlink()
    return damage


def swap_files(first: str, second: str):
    def damage(store: Path) -> None:
        x, y = (store / first).read_bytes(), (store / second).read_bytes()
        (store / first).write_bytes(y)
        (store / second).write_bytes(x)
    return damage


def append_file(source: str, dest: str):
    """The file ``source`` appended to ``dest``: two records in one tile file."""
    def damage(store: Path) -> None:
        (store / dest).write_bytes((store / dest).read_bytes() + (store / source).read_bytes())
    return damage


def copy_file(source: str, dest: str):
    """Copy a file within the store; ``source`` "../NAME/..." copies from a store beside it (run_case puts foreign.zarr there)."""
    def damage(store: Path) -> None:
        (store / dest).parent.mkdir(parents=True, exist_ok=True)
        (store / dest).write_bytes((store / source).read_bytes())
    return damage


def shard_index(path: Path) -> list[tuple[int, int] | None]:
    """(offset, length) of every inner chunk of a mask shard file (None: never written), from zarr's index at the file's end."""
    raw = path.read_bytes()[-(16 * SHARD + 4) :]
    pairs = [struct.unpack("<QQ", raw[16 * i : 16 * i + 16]) for i in range(SHARD)]
    return [None if p == (_EMPTY, _EMPTY) else p for p in pairs]


def clear_inner(layer: int, network: int):
    """Network ``network``'s chunk of mask_l{layer} dropped from its shard's index (index checksum right): a missing chunk."""
    def damage(store: Path) -> None:
        path = store / f"mask_l{layer}" / "c" / "0" / "0" / "0"
        raw = bytearray(path.read_bytes())
        at = len(raw) - (16 * SHARD + 4) + 16 * network
        raw[at : at + 16] = struct.pack("<QQ", _EMPTY, _EMPTY)
        raw[-4:] = _crc(bytes(raw[len(raw) - (16 * SHARD + 4) : -4]))
        path.write_bytes(bytes(raw))
    return damage


def flip_inner(layer: int, network: int, offset: float = 0.5):
    """One byte flipped inside network ``network``'s chunk of mask_l{layer}, within its shard file."""
    def damage(store: Path) -> None:
        path = store / f"mask_l{layer}" / "c" / "0" / "0" / "0"
        start, length = shard_index(path)[network]
        raw = bytearray(path.read_bytes())
        raw[start + int(length * offset)] ^= 0xFF
        path.write_bytes(bytes(raw))
    return damage


def flip_shard_index(layer: int, network: int):
    """One byte flipped in the shard index entry of network ``network`` of mask_l{layer}: the index's checksum fails."""
    def damage(store: Path) -> None:
        path = store / f"mask_l{layer}" / "c" / "0" / "0" / "0"
        raw = bytearray(path.read_bytes())
        raw[len(raw) - (16 * SHARD + 4) + 16 * network] ^= 0xFF
        path.write_bytes(bytes(raw))
    return damage


def edit_inner_chunks(relative: str, chunk_shape):
    """The inner chunk shape of a sharded array's zarr.json edited (as a hand edit or a bad copy would)."""
    def damage(store: Path) -> None:
        meta = json.loads((store / relative / "zarr.json").read_text())
        meta["codecs"][0]["configuration"]["chunk_shape"] = list(chunk_shape)
        (store / relative / "zarr.json").write_text(json.dumps(meta))
    return damage


def swap_masks(store: Path) -> None:
    """Layer 0 of networks 0 and 1 swapped through zarr (inside their shard): every chunk whole, the digests wrong."""
    import zarr

    masks = zarr.open_array(str(store / "mask_l0"), mode="r+")
    first, second = masks[0], masks[1]
    masks[0], masks[1] = second, first


def lock_pid(pid):
    def damage(store: Path) -> None:
        import socket

        lock = {"host": socket.gethostname(), "pid": pid, "started": "2026-01-01 00:00:00", "command": "nnstd-dist compute --store x"}
        (store / "nnstd-dist.lock").write_text(json.dumps(lock))
    return damage


def server(kind: str) -> str:
    """A server on 127.0.0.1 that is not a Dask scheduler, in a daemon thread: "http" (waits for a request) or "ssh" (greets first)."""
    import http.server
    import socketserver
    import threading

    class Greeter(socketserver.BaseRequestHandler):
        def handle(self):
            self.request.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")

    server = (http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler) if kind == "http"
              else socketserver.ThreadingTCPServer(("127.0.0.1", 0), Greeter))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"127.0.0.1:{server.server_address[1]}"


def scheduler_at(kind: str):
    def build(work: Path, store: Path) -> list[str]:
        return ["compute", "--store", str(store), "--scheduler", server(kind)]
    return build


def wide_pt_pair(work: Path, store: Path) -> list[str]:
    """Two .pt checkpoints of one 2-input layer of 2,000 output neurons: the exact solver's matrices (96 MB) exceed the corpus budget.

    At the default budget (2 GiB) a layer of 100,000 outputs is the same case: 74.5 GiB per cost matrix.
    """
    import torch

    for seed in (0, 1):
        torch.manual_seed(seed)
        torch.save({"fc.weight": (torch.rand(2000, 2) < 0.5).float()}, work / f"wide{seed}.pt")
    return ["pair", str(work / "wide0.pt"), str(work / "wide1.pt")]


# ---- issue 28: links, special files, forged numbers, format-2 stores for `upgrade` -----------------------------------


USER = "user"  # beside the store in a case's work folder: a user's folder a link in the store points to


def user_folder(store: Path) -> Path:
    """The user's folder beside the store, holding files named like a tile record (1.0) and a row file (1)."""
    folder = store.parent / USER
    folder.mkdir(exist_ok=True)
    (folder / "1.0").write_bytes(b"a user's file named like a tile record")
    (folder / "1").write_bytes(b"a user's file named like a row file")
    return folder


def link_folder(relative: str):
    """The store's folder ``relative`` (its files moved to the user's folder first) replaced by a link to the user's folder."""
    def damage(store: Path) -> None:
        folder = user_folder(store)
        for p in (store / relative).iterdir():
            p.rename(folder / f"moved-{p.name}")
        (store / relative).rmdir()
        (store / relative).symlink_to(folder)
    return damage


def plant(relative: str, kind: str):
    """The file ``relative`` replaced by a FIFO, a link (to the user's file "1", to /dev/zero, to nothing), or a folder."""
    def damage(store: Path) -> None:
        path = store / relative
        path.unlink()
        if kind == "fifo":
            os.mkfifo(path)
        elif kind == "folder":
            path.mkdir()
        elif kind == "dev zero":
            path.symlink_to("/dev/zero")
        elif kind == "dangling":
            path.symlink_to(store.parent / "nothing-here")
        else:
            path.symlink_to(user_folder(store) / "1")
    return damage


def forge_values(relative: str, index: int, transform):
    """Record ``index`` of ``relative`` with its payload's float64 values replaced by ``transform(values)``, both checksums right."""
    import numpy as np

    def damage(store: Path) -> None:
        path = store / relative
        raw, r = path.read_bytes(), records(path)[index]
        values = np.frombuffer(raw[r["payload_at"] : r["end"] - 4], dtype="<f8")
        new = encode(raw[r["header_at"] : r["payload_at"] - 4], np.ascontiguousarray(transform(values), dtype="<f8").tobytes())
        path.write_bytes(raw[: r["start"]] + new + raw[r["end"] :])
    return damage


def write_file(relative: str, content: bytes = b"x"):
    def damage(store: Path) -> None:
        (store / relative).write_bytes(content)
    return damage


def local_file(path: Path):
    """(storage, key) of a file of a local store: what tile_files.read_records and the storage interface take."""
    from nnstd_dist.store.storage import LocalStorage

    return LocalStorage(path.parent), path.name
