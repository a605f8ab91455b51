"""`nnstd-dist verify --store PATH`: check every checksum and invariant of a store; exit 1 if anything is damaged, 2 if there is no store."""

from __future__ import annotations

import json

import click

from .main import EXIT_OK, EXIT_PROBLEMS
from .options import json_option, store_option
from .text import count


@click.command(epilog="Example:\n\n\b\n  nnstd-dist verify --store topos.zarr\n  nnstd-dist verify --store topos.zarr --json")
@store_option
@json_option
def command(store, as_json):
    """Read everything the store holds and check it: every chunk's checksum, every network's digest
    and connection counts against its masks, names, and every tile record (whole, in its place,
    measuring the store's networks; its distances finite, in [0, 1], zero diagonal).

    Prints each problem by network or tile and exits with 1 if there is any, 0 if none; a path
    that holds no store (of this format) is an error, exit 2, as for every command.
    `nnstd-dist compute` recomputes damaged or missing distances; ingesting a damaged network's
    source again rewrites its masks.
    """
    from nnstd_dist.store.verify import verify

    report = verify(store)
    if as_json:
        click.echo(json.dumps({"store": report.store, "networks": report.networks, "tiles": report.tiles, "problems": report.problems}, indent=2))
    elif report.ok:
        click.echo(f"OK: {report.store}: {count(report.networks, 'network')} and {count(report.tiles, 'computed tile')} checked, no damage")
    else:
        from .main import in_option_terms

        for problem in report.problems:
            click.echo(in_option_terms(problem, command))
        click.echo(f"{count(len(report.problems), 'problem')} found in {report.store}", err=True)
    raise SystemExit(EXIT_OK if report.ok else EXIT_PROBLEMS)
