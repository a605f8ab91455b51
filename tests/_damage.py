"""Builders of the bad-input corpus for issue 23 (items 9-11): attribute and array edits, markers, swapped masks, locks,
servers that are not a Dask scheduler, checkpoints too wide for the exact solver. Used by _corpus.py's CASES and STORE_CASES.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path


def edit_attrs(**changes):
    """A damage that updates the store group's attributes in its zarr.json."""
    def damage(store: Path) -> None:
        meta = json.loads((store / "zarr.json").read_text())
        meta["attributes"].update(changes)
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


def marker(a: int, b: int, value: int):
    """Write one done marker through zarr, whatever the markers' encoding."""
    def damage(store: Path) -> None:
        import zarr

        zarr.open_array(str(store / "tiles_done"), mode="r+")[a, b] = value
    return damage


def swap_masks(store: Path) -> None:
    """Layer 0 of networks 0 and 1 swapped through zarr: every chunk whole, the digests wrong."""
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
