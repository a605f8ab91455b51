"""`nnstd-dist export --store PATH -o FILE`: the distance matrix as .npz, .csv, .nc or .zarr."""

from __future__ import annotations

import click

from .options import quiet_option, select_option, store_option

EPILOG = """Examples:

\b
  nnstd-dist export --store topos.zarr -o distances.npz
  nnstd-dist export --store topos.zarr -o layer0.csv --layer 0
  nnstd-dist export --store topos.zarr -o distances.nc --select epoch=0,190
  python -c "import xarray; print(xarray.open_dataset('distances.nc').distance.groupby('epoch_a').mean())"
"""


@click.command(epilog=EPILOG)
@store_option
@click.option("-o", "--output", required=True, type=click.Path(path_type=str), help="Output file: .npz, .csv, .nc or .zarr.")
@click.option(
    "--layer", type=int, default=None,  # checked once, by the library against the store's layer count
    help="Export only this layer (0 = first) [default: all layers; .csv holds one layer, default 0].",
)
@select_option
@quiet_option
def command(store, output, layer, select, quiet):
    """Write the store's distance matrix to FILE, in the format its extension names.

    Every format carries each network's name, run, epoch and test accuracy (no run: '', no epoch:
    -1 or an empty cell, no accuracy: NaN or an empty cell), so the matrix can be grouped without
    parsing names. .npz holds `distance` (layers x N x N, float64), `names`, `run`, `epoch`,
    `accuracy` and `layer`, and loads with numpy.load(allow_pickle=False); .csv holds one layer,
    a row per network: network, layer, run, epoch, accuracy, then one column per network;
    .nc and .zarr hold a (layer, network_a, network_b) array with run_a, epoch_a, accuracy_a
    (and _b) as coordinates and need xarray. Results of the fast solver also carry which pairs
    are not certified (their tie choices not proven harmless, see the README): .npz an N x N
    bool array `uncertified`, .nc and .zarr an `uncertified` variable (0/1), and .csv a column
    `uncertified` after accuracy (how many of that network's pairs are not certified). Entry (i, j) with i > j is NNSTD(network i,
    network j) in store order, mirrored. Pairs not computed yet are NaN, with a warning; a store
    that compute never ran on is an error (exit 2: run `nnstd-dist compute` first), not a file of NaN.
    """
    from nnstd_dist.views.export import export
    from nnstd_dist.views.reduce import parse_selection

    report = export(store, output, layer, parse_selection(select) or None)
    if report.missing_pairs:
        click.echo(
            f"Warning: {report.missing_pairs} of {report.total_pairs} pairs are not computed yet and are NaN in {output} "
            f"(run `nnstd-dist compute --store {store}`)",
            err=True,
        )
    if not quiet:
        click.echo(f"Wrote {report.n_networks} x {report.n_networks} distances of {len(report.layers)} layer(s) to {output}")
