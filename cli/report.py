"""`nnstd-dist report --store PATH -o report.html`: one self-contained interactive page of the distances."""

from __future__ import annotations

import click

from nnstd_dist.budget import byte_size

from .options import store_option
from .text import count

EPILOG = """Examples:

\b
  nnstd-dist report --store topos.zarr -o report.html
  nnstd-dist report --store big.zarr -o report.html --max-networks 1000
"""


@click.command(epilog=EPILOG)
@store_option
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=str), help="The .html file to write.")
@click.option("--max-networks", type=click.IntRange(min=3), default=2000, show_default=True,
              help="Heatmap and embedding show at most this many networks (an evenly spaced sample beyond; the page says so).")
def command(store, output, max_networks):
    """Write one HTML file that opens offline (bokeh, resources inline) and can be mailed.

    It holds the distance heatmap with a layer menu and a menu of networks (all, one epoch or one
    run), the networks' names on its axes (up to 60; hover names them always, with run, epoch,
    accuracy and distance); the evolution of each run (NNSTD of every epoch to the run's first
    network, as `plot --kind evolution`, mean over runs, test accuracy beside); and the metric MDS
    embedding with hover. Runs and epochs come from ingest (epoch_NNN folders, --layout, --metadata).
    """
    from nnstd_dist.views.report import write_report
    from nnstd_dist.store.topology_store import TopologyStore

    summary = write_report(TopologyStore.open(store), output, max_networks)
    shown = f"{summary.n_shown} of {summary.n_networks} networks (sampled)" if summary.sampled else f"{summary.n_networks} networks"
    click.echo(f"wrote {output}: {shown}, {count(summary.n_layers, 'layer')}, {byte_size(summary.bytes)}")
