"""Store URLs on the command line: near-URLs and URLs no command can use are one line (nothing written locally), and
every command line the tool prints (the resume line, a suggested command) carries the --storage-options it was given."""

from __future__ import annotations

import json
import shlex

import pytest
from click.testing import CliRunner

from _populations import chain, records
from _s3 import s3_bucket, s3_env, s3_server  # noqa: F401
from nnstd_dist.cli import GIVEN
from nnstd_dist.cli.main import cli, in_option_terms
from nnstd_dist.cli.text import command_line
from nnstd_dist.store.storage.objects import describe_failure
from nnstd_dist.store.topology_store import add_networks


@pytest.mark.parametrize(
    "store, says",
    [
        ("s3:/lab/y.zarr", "did you mean s3://lab/y.zarr?"),
        ("s3:lab/y.zarr", "did you mean s3://lab/y.zarr?"),
        ("memory://y.zarr", "memory:// lives inside one process"),
        ("https://example.com/y.zarr", "cannot be written or listed"),
    ],
    ids=["one-slash", "no-slash", "memory", "https"],
)
@pytest.mark.parametrize("command", ["ingest", "info", "compute"])
def test_a_store_no_command_can_use_is_one_line_and_nothing_is_written(tmp_path, monkeypatch, store, says, command):
    monkeypatch.chdir(tmp_path)
    args = [command, *([str(tmp_path)] if command == "ingest" else []), "--store", store]
    result = CliRunner().invoke(cli, args)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and says in result.output and lines[-1].startswith("Error:"), result.output
    assert list(tmp_path.iterdir()) == []  # no folder named s3: (the old bug)


def test_the_resume_line_repeats_storage_options_as_json():
    from nnstd_dist.cli.compute import command

    options = {"endpoint_url": "http://minio:9000", "client_kwargs": {"region_name": "eu-west-1"}}
    ctx = command.make_context("compute", ["--store", "s3://lab/t.zarr", "--storage-options", json.dumps(options), "--tile", "8"])
    words = shlex.split(command_line(ctx))
    assert words[words.index("--storage-options") + 1] == json.dumps(options)
    assert json.loads(words[words.index("--storage-options") + 1]) == options


def test_a_suggested_command_carries_the_storage_options_given(monkeypatch):
    from nnstd_dist.cli.export import command

    monkeypatch.setitem(GIVEN, "storage_options", {"profile": "lab"})
    text = in_option_terms("run `compute('s3://lab/t.zarr', max_layer=2, recompute=True)` first", command)
    assert text == """run `nnstd-dist compute --store s3://lab/t.zarr --max-layer 2 --recompute --storage-options '{"profile": "lab"}'` first"""


def test_an_unknown_storage_option_is_named():
    exc = TypeError("AioSession.__init__() got an unexpected keyword argument 'foo'")
    assert describe_failure(exc) == "unknown storage option 'foo' for this URL's backend (check --storage-options)"


def test_upgrade_of_a_format_3_store_on_s3_has_nothing_to_do(s3_bucket):
    url = f"s3://{s3_bucket}/t.zarr"
    add_networks(url, list(zip(records(3), chain(seed=2, length=3, fraction=0.3))))
    result = CliRunner().invoke(cli, ["upgrade", "--store", url])
    assert result.exit_code == 0 and result.output.strip() == f"{url}: already format 3, nothing to do"
