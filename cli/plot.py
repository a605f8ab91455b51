"""`nnstd-dist plot --store PATH -o FILE`: heatmaps (Figure 4), evolution lines, MDS maps and dendrograms."""

from __future__ import annotations

from pathlib import Path

import click

from nnstd_dist.errors import InputError
from nnstd_dist.tiles import total_pairs
from nnstd_dist.views.reduce import FACET_KEYS

from .options import layer_option, select_option, store_option
from .text import count

KINDS = ("heatmap", "evolution", "embedding", "dendrogram")
EXTENSIONS = (".png", ".pdf", ".svg")


@click.command(
    epilog="Examples:\n\n\b\n"
    "  nnstd-dist plot --store topos.zarr --select epoch=190 -o epoch190.png\n"
    "  nnstd-dist plot --store topos.zarr --kind evolution --to-final -o evolution.pdf\n"
    "  nnstd-dist plot --store topos.zarr --kind embedding --color-by run -o mds.svg\n"
    "  nnstd-dist plot --store topos.zarr --facet epoch --facet-values 0,10,30,50,100,190 -o figure4.png",
)
@store_option
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Image file: .png, .pdf or .svg.")
@click.option("--kind", type=click.Choice(KINDS), default="heatmap", show_default=True, help="What to draw.")
@layer_option
@click.option("--cumulative", is_flag=True, help="Plot the mean of layers 0..L (the paper's script calls it \"Layer L\").")
@select_option
@click.option("--facet", type=click.Choice(FACET_KEYS), help="Heatmap: one panel per value of this key, one shared colour bar.")
@click.option("--facet-values", metavar="V1,V2,...", help="With --facet: the values to draw, in this order (default: all).")
@click.option("--order", type=click.Choice(["store", "cluster"]), default="store", show_default=True,
              help="Heatmap: network order; cluster = average-linkage clustering with optimal leaf order.")
@click.option("--to-final", is_flag=True, help="Evolution: also plot each epoch's distance to the run's last network.")
@click.option("--color-by", type=click.Choice(["epoch", "run"]), default="epoch", show_default=True, help="Embedding: colour of the points.")
@click.option("--dpi", type=click.IntRange(min=30, max=600), default=150, show_default=True, help="Resolution of a .png.")
def command(store, output, kind, layer, cumulative, select, facet, facet_values, order, to_final, color_by, dpi):
    """Draw the distances of a store's networks (after `nnstd-dist compute`).

    The default heatmap shows one layer on the paper's scale (gnuplot colours, 0 to 1); pairs not
    computed yet are grey, with a warning. Only the selected networks' rows are read, one layer at
    a time. Other kinds: evolution (per run, distance to its first epoch, accuracy dotted),
    embedding (metric MDS in 2-D) and dendrogram (average linkage).
    """
    if output.suffix.lower() not in EXTENSIONS:
        raise InputError(f"{output}: unknown image type {output.suffix or '(none)'!r}; use .png, .pdf or .svg")
    _check_combination(kind, facet, facet_values, order, to_final, color_by)

    import matplotlib

    matplotlib.use("Agg")  # files only, never a window; before anything imports pyplot

    from nnstd_dist.views import plot, reduce
    from nnstd_dist.store.topology_store import TopologyStore

    topos = TopologyStore.open(store)
    selection = reduce.parse_selection(select)
    if kind == "heatmap" and facet:
        values = [v.strip() for v in facet_values.split(",") if v.strip()] if facet_values else None
        matrices = reduce.facet(topos, facet, values, layer, cumulative, selection)
        matrices = [_ordered(m, order) for m in matrices]
        figure = plot.heatmaps(matrices, facet)
    elif kind == "heatmap":
        matrices = [_ordered(reduce.labelled_matrix(topos, layer, cumulative, selection), order)]
        figure = plot.heatmap(matrices[0])
    elif kind == "evolution":
        matrices = reduce.facet(topos, "run", None, layer, cumulative, selection)
        figure = plot.evolution(matrices, to_final)
    else:
        matrices = [reduce.labelled_matrix(topos, layer, cumulative, selection)]
        figure = plot.embedding(matrices[0], color_by) if kind == "embedding" else plot.dendrogram(matrices[0])
    _warn_missing(matrices)
    try:
        figure.savefig(output, dpi=dpi)
    except OSError as exc:
        raise InputError(f"{output}: cannot write ({exc.strerror or exc})") from None
    n = sum(m.size for m in matrices)
    click.echo(f"wrote {output}: {kind}, {count(n, 'network')}, {matrices[0].layer}")


def _check_combination(kind, facet, facet_values, order, to_final, color_by) -> None:
    """Options that belong to another kind are a mistake worth one line, not a silent no-op."""
    if facet and kind != "heatmap":
        raise click.UsageError(f"--facet draws heatmap panels; it does not apply to --kind {kind}")
    if facet_values and not facet:
        raise click.UsageError("--facet-values needs --facet (e.g. --facet epoch)")
    if order == "cluster" and kind != "heatmap":
        raise click.UsageError(f"--order cluster applies to heatmaps (a {kind} has its own layout)")
    if to_final and kind != "evolution":
        raise click.UsageError("--to-final applies to --kind evolution")
    if color_by != "epoch" and kind != "embedding":
        raise click.UsageError("--color-by applies to --kind embedding")


def _ordered(matrix, order: str):
    if order != "cluster":
        return matrix
    from nnstd_dist.views.embedding import cluster_order

    return matrix.reordered(cluster_order(matrix.values), "clustered")


def _warn_missing(matrices) -> None:
    missing = sum(m.n_missing for m in matrices)
    if missing:
        total = sum(total_pairs(m.size) for m in matrices)
        click.echo(f"Warning: {missing} of {total} pairs drawn are not computed yet (run `nnstd-dist compute`); shown as missing", err=True)
