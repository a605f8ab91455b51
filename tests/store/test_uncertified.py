"""Uncertified pairs (the fast solver's ties not proven harmless) go from the kernel into the records and out again.

The kernel's flag is replaced here by a fixed rule (pairs with i + j divisible by 3 are "uncertified") so that the
plumbing is checked on many pairs; tests/kernel/ checks the flag itself. Tasks run in this process, tile by tile.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from click.testing import CliRunner

from _populations import chain, records
from nnstd_dist.cli.main import cli
from nnstd_dist.engine import tasks
from nnstd_dist.engine.plan import make_plan
from nnstd_dist.engine.tasks import compute_tile
from nnstd_dist.kernel import TIE_RULES
from nnstd_dist.store.topology_store import TopologyStore
from nnstd_dist.tiles import n_tiles
from nnstd_dist.views.export import export

N_FIRST, N, TILE = 7, 11, 4


def flagged(i: int, j: int) -> bool:
    return (i + j) % 3 == 0


@pytest.fixture
def kernel_flags(monkeypatch):
    """The kernel's certified flag replaced by `flagged`, keyed on the networks' identity (index in the store)."""
    real = tasks.nnstd_certified
    index = {}

    def fake(a, b, **kwargs):
        values, _ = real(a, b, **kwargs)
        return values, not flagged(index[id(a)], index[id(b)])

    real_prepare = tasks.prepare

    def remember(masks, blocks=None):
        topology = real_prepare(masks, blocks)
        index[id(topology)] = remember.order[masks_key(masks)]
        return topology

    monkeypatch.setattr(tasks, "nnstd_certified", fake)
    monkeypatch.setattr(tasks, "prepare", remember)
    return remember


def masks_key(masks) -> bytes:
    return b"".join(m.tocsr().indices.tobytes() + m.tocsr().indptr.tobytes() for m in masks)


def compute_all(path, n):
    store = TopologyStore.open(path, mode="r+")
    k = n_tiles(n, TILE)
    return [compute_tile(str(path), t.a, t.b, n) for t in make_plan(n, TILE, store.tile_markers()).tasks] if k else []


@pytest.fixture
def computed(tmp_path, kernel_flags):
    networks = chain(seed=5, length=N, fraction=0.3)
    kernel_flags.order = {masks_key(m): i for i, m in enumerate(networks)}
    path = tmp_path / "s.zarr"
    store = TopologyStore.create(path, [m.shape for m in networks[0]])
    store.append(list(zip(records(N_FIRST), networks[:N_FIRST])))
    store.init_results(TILE, solver="fast", tie_rule=TIE_RULES["fast"])
    first = compute_all(path, N_FIRST)
    store = TopologyStore.open(path, mode="r+")
    store.append(list(zip(records(N)[N_FIRST:], networks[N_FIRST:])))  # the edge tiles keep their pairs and flags
    second = compute_all(path, N)
    TopologyStore.open(path, mode="r+").pack_rows()
    return path, first, second


def expected_pairs(n: int) -> set:
    return {(i, j) for i in range(n) for j in range(i) if flagged(i, j)}


def test_records_keep_every_uncertified_pair_through_append_and_packing(computed):
    path, first, second = computed
    store = TopologyStore.open(path)
    assert {tuple(p) for p in store.uncertified_pairs().tolist()} == expected_pairs(N)
    # each task counts only the pairs it computed: the kept ones were counted by the run that computed them
    assert sum(r.uncertified for r in first) == len(expected_pairs(N_FIRST))
    assert sum(r.uncertified for r in second) == len(expected_pairs(N) - expected_pairs(N_FIRST))


def test_export_carries_the_flag_per_pair(computed, tmp_path):
    path, _, _ = computed
    export(path, tmp_path / "d.npz")
    with np.load(tmp_path / "d.npz", allow_pickle=False) as data:
        flags = data["uncertified"]
    want = np.zeros((N, N), dtype=bool)
    for i, j in expected_pairs(N):
        want[i, j] = want[j, i] = True
    np.testing.assert_array_equal(flags, want)
    export(path, tmp_path / "d.csv")
    with open(tmp_path / "d.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["uncertified"]) for r in rows] == want.sum(axis=1).tolist()


def test_info_counts_them(computed):
    path, _, _ = computed
    result = CliRunner().invoke(cli, ["info", "--store", str(path), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["pairs_uncertified"] == len(expected_pairs(N)) and summary["tie_rule"] == TIE_RULES["fast"]
    text = CliRunner().invoke(cli, ["info", "--store", str(path)]).output
    assert f"uncertified: {len(expected_pairs(N))} of the {N * (N - 1) // 2} pairs computed" in " ".join(text.split())


def test_exact_results_claim_nothing(tmp_path):
    networks = chain(seed=6, length=5, fraction=0.3)
    path = tmp_path / "e.zarr"
    store = TopologyStore.create(path, [m.shape for m in networks[0]])
    store.append(list(zip(records(5), networks)))
    store.init_results(TILE)
    assert sum(r.uncertified for r in compute_all(path, 5)) == 0
    export(path, tmp_path / "d.npz")
    with np.load(tmp_path / "d.npz", allow_pickle=False) as data:
        assert "uncertified" not in data.files
    summary = json.loads(CliRunner().invoke(cli, ["info", "--store", str(path), "--json"]).output)
    assert summary["pairs_uncertified"] is None
