"""The bad-input corpus (tests/_corpus.py): every case ends in exit 2, one `Error:` line, the store untouched.

Hostile input files (fast) and damaged stores, locks and requests (some start a local cluster: slow).
"""

from __future__ import annotations

import os

import pytest

from _corpus import CASES, STORE_CASES, make_template, run_case


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
    assert (outcome, case.name) == ("clean", case.name), message
