"""`nnstd-dist export --store PATH -o FILE`: the distance matrix as .npz, .csv, .nc or .zarr."""

from __future__ import annotations

import click

from .options import quiet_option, store_option

EPILOG = """Examples:

\b
  nnstd-dist export --store topos.zarr -o distances.npz
  nnstd-dist export --store topos.zarr -o layer0.csv --layer 0
  nnstd-dist export --store topos.zarr -o distances.nc
"""


@click.command(epilog=EPILOG)
@store_option
@click.option("-o", "--output", required=True, type=click.Path(path_type=str), help="Output file: .npz, .csv, .nc or .zarr.")
@click.option(
    "--layer", type=click.IntRange(min=0), default=None,
    help="Export only this layer (0 = first) [default: all layers; .csv holds one layer, default 0].",
)
@quiet_option
def command(store, output, layer, quiet):
    """Write the store's distance matrix to FILE, in the format its extension names.

    .npz holds `distance` (layers x N x N, float64) and `names` (N strings) and loads with
    numpy.load(allow_pickle=False); .csv holds one layer with the network names labelling rows
    and columns; .nc and .zarr hold a labelled (layer, network_a, network_b) array and need
    xarray. Entry (i, j) with i > j is NNSTD(network i, network j) in store order, mirrored.
    Pairs not computed yet are NaN, with a warning.
    """
    from nnstd_dist.export import export

    report = export(store, output, layer)
    if report.missing_pairs:
        click.echo(
            f"Warning: {report.missing_pairs} of {report.total_pairs} pairs are not computed yet and are NaN in {output} "
            f"(run `nnstd-dist compute --store {store}`)",
            err=True,
        )
    if not quiet:
        click.echo(f"Wrote {report.n_networks} x {report.n_networks} distances of {len(report.layers)} layer(s) to {output}")
