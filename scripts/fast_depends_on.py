"""Rewrite the DEPENDS_ON digests of the fast solver's compiled modules that call compiled code of other modules.

numba's cache (``cache=True``) keys a module's compiled code on that module's file alone, so a change in a function it
calls from another module would leave a stale cache; writing the callees' digest into the caller makes every such
change a change of the caller too. Run after editing graph.py, jv.py, scc.py or ties.py:

    .venv/bin/python scripts/fast_depends_on.py
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

FAST = Path(__file__).resolve().parents[1] / "nnstd_dist" / "kernel" / "fast"
# caller -> the modules whose compiled functions it calls, in digest order (ties before leftovers: leftovers hashes ties)
DEPENDS_ON = {"ties": ("graph", "jv", "scc"), "leftovers": ("ties",)}


def digest(names) -> str:
    return hashlib.sha256(b"".join((FAST / f"{name}.py").read_bytes() for name in names)).hexdigest()[:16]


def main() -> None:
    for caller, callees in DEPENDS_ON.items():
        path = FAST / f"{caller}.py"
        path.write_text(re.sub(r'DEPENDS_ON = "[0-9a-f]*"', f'DEPENDS_ON = "{digest(callees)}"', path.read_text()))
        print(f"{caller}.py: DEPENDS_ON = {digest(callees)}")


if __name__ == "__main__":
    main()
