"""The store format's name and version: one owner below topology_store.py, consistency.py and upgrade.py, which all check them."""

from __future__ import annotations

__all__ = ["FORMAT", "FORMAT_VERSION"]

FORMAT = "nnstd-dist"
FORMAT_VERSION = 3  # 2: crc32c on every chunk, results committed by `tile`; 3: mask shards, tile records bound to place and networks
