"""The bad-input corpus (tests/_corpus.py): every case ends in exit 2, one `Error:` line, the store untouched; a `verify`
case in exit 1, the damage listed, the store untouched.

Hostile input files (fast) and damaged stores (format 3: tile records, row files, mask shards), locks and requests (some
start a local cluster: slow).
"""

from __future__ import annotations

import os

import pytest

from _corpus import CASES, ROW1, STORE_CASES, T10, T11, make_template, run_case, tree_hashes
from _damage import edit_record, then, unpack_row


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return make_template(tmp_path_factory.mktemp("template"))


def _starts_a_cluster(case) -> bool:
    """compute and scheduler cases start (or try) a Dask cluster: seconds each."""
    return "compute" in case.name or "scheduler" in case.name


ALL = CASES + STORE_CASES
MARKED = [pytest.param(c, id=c.name, marks=[pytest.mark.slow] if _starts_a_cluster(c) else []) for c in ALL]


@pytest.mark.parametrize("case", MARKED)
def test_bad_input_is_one_clean_error(case, template, tmp_path):
    if case.name == "unreadable subfolder" and os.geteuid() == 0:
        pytest.skip("root reads folders of mode 000: an unreadable folder cannot be made here")
    outcome, message = run_case(case, tmp_path, template)
    assert (outcome, case.name) == (case.expected, case.name), message


def test_the_damage_builders_start_from_a_valid_store(template, tmp_path):
    """unpack_row (a row as a run leaves it before packing) and a record re-encoded unchanged are no damage: the tile-file
    cases fail for their damage, not for their set-up."""
    import shutil

    from click.testing import CliRunner

    from nnstd_dist.cli.main import cli

    store = tmp_path / "store.zarr"
    shutil.copytree(template, store)
    then(unpack_row(1), edit_record(T10, 0), edit_record(T11, 0, dest=T11))(store)
    assert not (store / ROW1).exists() and (store / T10).is_file() and (store / T11).is_file()
    before = tree_hashes(store)
    result = CliRunner().invoke(cli, ["verify", "--store", str(store)])
    assert result.exit_code == 0, result.output
    assert "3 computed tiles checked" in result.output
    result = CliRunner().invoke(cli, ["export", "--store", str(store), "-o", str(tmp_path / "d.npz")])
    assert result.exit_code == 0 and "Warning" not in result.output, result.output
    assert tree_hashes(store) == before
