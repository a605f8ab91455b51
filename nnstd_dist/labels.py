"""Network names for people: natural order (digit runs as numbers) and the shortest unambiguous labels."""

from __future__ import annotations

import os
import re

__all__ = ["natural_key", "short_labels"]

_SEPARATORS = "/_-. "


def natural_key(name: str) -> tuple:
    """Sort key comparing digit runs as numbers: ``layer2 < layer10``, ``arr_9 < arr_10``, ``r2 < r10``."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name) if part)


def short_labels(names) -> list[str]:
    """``e5_s0_w0/epoch_190 .. e5_s0_w9/epoch_190`` -> ``w0 .. w9``; the names again if nothing can go.

    Shared leading and trailing path parts are dropped first, then a shared text prefix up to
    its last separator and a shared text suffix from its first separator, so that labels are
    cut at word boundaries (``net_000 .. net_009`` -> ``000 .. 009``, never ``0 .. 9``).
    A step that would leave a label empty or two labels equal is skipped.
    """
    names = [str(n) for n in names]
    if len(set(names)) < len(names):
        return names  # already ambiguous: shortening cannot help
    if len(names) == 1:
        return [names[0].rstrip("/").rsplit("/", 1)[-1] or names[0]]
    labels = names
    for step in (_drop_common_parts, _drop_common_prefix, _drop_common_suffix):
        shorter = step(labels)
        if all(shorter) and len(set(shorter)) == len(shorter):
            labels = shorter
    return labels


def _drop_common_parts(labels: list[str]) -> list[str]:
    """Remove the path parts shared, position by position, at the start and at the end of every label."""
    parts = [label.split("/") for label in labels]
    shortest = min(len(p) for p in parts)
    lead = 0
    while lead < shortest - 1 and len({p[lead] for p in parts}) == 1:
        lead += 1
    trail = 0
    while trail < shortest - 1 - lead and len({p[-1 - trail] for p in parts}) == 1:
        trail += 1
    return ["/".join(p[lead : len(p) - trail]) for p in parts]


def _drop_common_prefix(labels: list[str]) -> list[str]:
    prefix = os.path.commonprefix(labels)
    cut = max(prefix.rfind(s) for s in _SEPARATORS) + 1  # 0 when the prefix holds no separator
    return [label[cut:] for label in labels]


def _drop_common_suffix(labels: list[str]) -> list[str]:
    suffix = os.path.commonprefix([label[::-1] for label in labels])[::-1]
    found = [suffix.find(s) for s in _SEPARATORS if s in suffix]
    if not found:
        return labels
    keep = len(suffix) - min(found)  # characters to cut from the end of every label
    return [label[: len(label) - keep] for label in labels]
