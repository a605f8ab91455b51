"""`nnstd-dist upgrade --store PATH`: rewrite a store of format 2 as format 3, in place, keeping its networks and distances."""

from __future__ import annotations

import click

from .options import store_option
from .text import count


@click.command(epilog="Example:\n\n\b\n  nnstd-dist upgrade --store topos.zarr\n  nnstd-dist info --store topos.zarr")
@store_option
def command(store):
    """Rewrite a store of format 2 (a file per mask, per distance tile and its mirror, per done
    marker) as format 3 (masks in shards of up to 1,024 networks, one file per tile row of
    distances), in place and under the store's lock.

    Every chunk is read through its checksum; the distances of every tile marked done are kept,
    bound to their networks' digests (results of the superseded sparse solver are dropped).
    Killed at any point, the store is the old one or the new one: run the command again.
    A store already of format 3 is left as it is. A store on an object store (a URL) is upgraded as a
    local copy, then uploaded: there are no renames there.
    """
    from nnstd_dist.store.upgrade import upgrade

    report = upgrade(store)
    if report.already:
        click.echo(f"{report.store}: already format 3, nothing to do")
        return
    click.echo(
        f"Upgraded {report.store} to format 3: {count(report.networks, 'network')}, {count(report.tiles, 'computed tile')} kept; "
        f"{report.files_before:,} files before, {report.files_after:,} after"
    )
    if report.dropped:
        click.echo(f"Distances not kept: {report.dropped}", err=True)
