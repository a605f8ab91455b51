"""Where the tests look for the paper's data: NNSTD_DIST_PAPER_DATA, ../shared (CI), ../paper (the README's clone)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import PAPER_DATA_VARIABLE, REPOSITORY, find_paper_data, missing_paper_data, paper_data_places


def fake_clone(root: Path) -> Path:
    (root / "topo" / "e5_s0_w0" / "epoch_000").mkdir(parents=True)
    return root


def test_the_places_in_order(monkeypatch, tmp_path):
    monkeypatch.delenv(PAPER_DATA_VARIABLE, raising=False)
    assert paper_data_places() == [REPOSITORY.parent / "shared", REPOSITORY.parent / "paper"]
    monkeypatch.setenv(PAPER_DATA_VARIABLE, str(tmp_path / "mine"))
    assert paper_data_places() == [tmp_path / "mine", REPOSITORY.parent / "shared", REPOSITORY.parent / "paper"]


def test_a_clone_of_the_paper_or_its_topo_folder_is_found(tmp_path):
    clone = fake_clone(tmp_path / "paper")
    assert find_paper_data([tmp_path / "nothing", clone]) == clone
    assert find_paper_data([clone / "topo"]) == clone  # the variable may name topo/ itself
    assert find_paper_data([tmp_path / "nothing", tmp_path]) is None  # a folder above a clone is not one


def test_the_skip_reason_names_every_place_and_the_way_out(tmp_path):
    places = [tmp_path / "mine", Path("/ci/shared"), Path("/home/me/paper")]
    reason = missing_paper_data(places)
    assert all(str(place) in reason for place in places)
    assert "clone the paper's repository to ../paper" in reason and PAPER_DATA_VARIABLE in reason


def test_the_data_found_here_is_the_papers(paper_data):
    runs = sorted(p.name for p in (paper_data / "topo").iterdir() if p.is_dir())
    assert runs == [f"e5_s0_w{i}" for i in range(10)]
    assert paper_data in [find_paper_data([place]) for place in paper_data_places()]


def test_the_readme_says_where_the_tests_look():
    readme = (REPOSITORY / "README.md").read_text()
    assert PAPER_DATA_VARIABLE in readme and "../shared/topo" in readme and "../paper" in readme
