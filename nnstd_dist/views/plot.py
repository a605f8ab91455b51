"""Figures from labelled matrices: heatmaps (colour = NNSTD in [0, 1]), evolution lines, MDS maps, dendrograms.

Every function takes ``LabelledMatrix`` objects and returns a ``matplotlib.figure.Figure`` built
without pyplot (no global figure registry, no backend needed until the caller saves it).
Cells whose distance is not computed yet (NaN) are drawn in the colour map's "bad" colour.
"""

from __future__ import annotations

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from ..sources.naming import HINT
from ..errors import InputError
from ..labels import short_labels
from .embedding import linkage_of, mds, trajectory
from .reduce import LabelledMatrix, describe_selection

__all__ = ["HEATMAP_CMAP", "MISSING_COLOUR", "MAX_LABELS", "heatmap", "heatmaps", "evolution", "embedding", "dendrogram"]

HEATMAP_CMAP = "gnuplot"  # the paper's colour map, on the fixed scale 0..1
MISSING_COLOUR = "lightgrey"
MAX_LABELS = 40  # beyond this many networks, tick labels overlap: leave them out
MAX_PANELS = 36


def heatmap_cmap():
    return matplotlib.colormaps[HEATMAP_CMAP].with_extremes(bad=MISSING_COLOUR)


def _missing_note(n_missing: int) -> str:
    return f"{n_missing} pair{'s' if n_missing != 1 else ''} not computed yet (grey)" if n_missing else ""


def _title(*parts: str) -> str:
    return " - ".join(p for p in parts if p)


def _draw_matrix(ax, matrix: LabelledMatrix):
    """One heatmap panel: imshow on 0..1, network labels on both axes when they fit."""
    image = ax.imshow(matrix.values, cmap=heatmap_cmap(), vmin=0.0, vmax=1.0, interpolation="nearest")
    k = matrix.size
    if k <= MAX_LABELS:
        labels = matrix.labels
        ax.set_xticks(range(k), labels, rotation=90, fontsize=_label_size(k))
        ax.set_yticks(range(k), labels, fontsize=_label_size(k))
    else:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel(f"{k} networks")
    return image


def _label_size(k: int) -> float:
    return 9 if k <= 12 else 7 if k <= 25 else 5


def heatmap(matrix: LabelledMatrix, title: str | None = None) -> Figure:
    """One layer's distance matrix as in the paper's Figure 4, with a colour bar."""
    side = 5.0 if matrix.size <= MAX_LABELS else 7.0
    fig = Figure(figsize=(side + 1.2, side), layout="constrained")
    ax = fig.add_subplot()
    image = _draw_matrix(ax, matrix)
    selection = describe_selection(matrix.selection) or f"all {matrix.size} networks"
    title = title or _title(f"NNSTD, {matrix.layer}", selection, matrix.ordering)
    ax.set_title("\n".join(p for p in (title, _missing_note(matrix.n_missing)) if p), fontsize=10)
    fig.colorbar(image, ax=ax, label="NNSTD", shrink=0.85)
    return fig


def heatmaps(matrices: list[LabelledMatrix], facet_key: str, ncols: int | None = None) -> Figure:
    """One panel per matrix (e.g. per epoch), sharing one colour bar: Figure 4 for a list of epochs."""
    n = len(matrices)
    if n == 0:
        raise ValueError("heatmaps needs at least one matrix")
    if n > MAX_PANELS:
        raise InputError(f"`facet` {facet_key} gives {n} panels (at most {MAX_PANELS}); choose some with `facet_values`")
    ncols = ncols or (n if n <= 4 else 3 if n <= 9 else 4 if n <= 16 else 6)
    nrows = -(-n // ncols)
    side = 3.2 if max(m.size for m in matrices) <= 12 else 4.5
    fig = Figure(figsize=(side * ncols + 1.0, side * nrows + 0.6), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[n:]:
        fig.delaxes(ax)  # a grid cell with no panel would be an empty frame
    for ax, matrix in zip(axes, matrices):
        image = _draw_matrix(ax, matrix)
        value = matrix.metadata.get(facet_key)
        label = f"{facet_key} {value[0]}" if value is not None and len(value) else describe_selection(matrix.selection)
        label = ", ".join(p for p in (label, matrix.ordering) if p)
        ax.set_title("\n".join(p for p in (label, _missing_note(matrix.n_missing)) if p), fontsize=10)
    layer = matrices[0].layer
    rest = describe_selection(matrices[0].selection, leave_out=facet_key)
    fig.suptitle(_title(f"NNSTD, {layer}, by {facet_key}", rest))
    fig.colorbar(image, ax=list(axes[:n]), label="NNSTD", shrink=0.8)
    return fig


def _run_colours(n: int):
    if n <= 10:
        return [matplotlib.colormaps["tab10"](i) for i in range(n)]
    return [matplotlib.colormaps["viridis"](i / (n - 1)) for i in range(n)]


def evolution(matrices: list[LabelledMatrix], to_final: bool = False) -> Figure:
    """Per run (one matrix each), distance at every epoch to the run's first (and last) network; accuracy dotted."""
    paths = [trajectory(m) for m in matrices]
    colours = _run_colours(len(paths))
    names = short_labels([p.run for p in paths]) if len(paths) > 1 else [p.run for p in paths]
    references = [("to_first", "first")] + ([("to_final", "last")] if to_final else [])
    fig = Figure(figsize=(6.5 * len(references) + 1.0, 4.8), layout="constrained")
    axes = fig.subplots(1, len(references), squeeze=False, sharey=True).ravel()
    has_accuracy = any(np.isfinite(p.accuracy).any() for p in paths)
    twins = []
    for ax, (attr, which) in zip(axes, references):
        for path, colour, name in zip(paths, colours, names):
            ax.plot(path.epochs, getattr(path, attr), marker="o", ms=3, color=colour, label=name)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        ax.set_ylabel(f"NNSTD to the run's {which} network")
        ax.set_ylim(bottom=0.0)
        ax.grid(alpha=0.3)
        if has_accuracy:
            twin = ax.twinx()
            for path, colour in zip(paths, colours):
                twin.plot(path.epochs, path.accuracy, ls=":", color=colour, alpha=0.8)
            twin.set_ylabel("accuracy (dotted)")
            twins.append(twin)
    if len(paths) <= 12:
        axes[0].legend(title="run", fontsize=8, loc="best")
    layer = matrices[0].layer if matrices else ""
    rest = describe_selection(matrices[0].selection, leave_out="run") if matrices else ""
    n_missing = sum(m.n_missing for m in matrices)
    fig.suptitle(_title(f"NNSTD evolution per run, {layer}", rest, _missing_note(n_missing).replace(" (grey)", ": gaps")))
    return fig


def embedding(matrix: LabelledMatrix, color_by: str = "epoch") -> Figure:
    """Networks placed in 2-D by metric MDS of the distances, coloured by epoch or run."""
    coords, stress = mds(matrix.values)
    fig = Figure(figsize=(7.0, 6.0), layout="constrained")
    ax = fig.add_subplot()
    runs = np.asarray(matrix.metadata.get("run", np.array([""] * matrix.size))).astype(str)
    epochs = np.asarray(matrix.metadata.get("epoch", np.full(matrix.size, -1)))
    run_names = sorted(set(runs.tolist()))
    if color_by == "run" and run_names in ([], [""]):
        raise InputError(f"colour by run: none of the {matrix.size} networks has a run; {HINT}")
    run_colours = dict(zip(run_names, _run_colours(len(run_names))))
    _draw_runs(ax, coords, runs, epochs, run_colours if color_by == "run" else None)
    if color_by == "run":
        ax.scatter(coords[:, 0], coords[:, 1], c=[run_colours[r] for r in runs], s=25, zorder=3)
        if len(run_names) <= 12:
            short = short_labels(run_names) if len(run_names) > 1 else run_names
            handles = [Line2D([], [], ls="", marker="o", color=run_colours[r], label=s) for r, s in zip(run_names, short)]
            ax.legend(handles=handles, title="run", fontsize=8)
    elif (epochs >= 0).any():
        points = ax.scatter(coords[:, 0], coords[:, 1], c=epochs, cmap="viridis", s=25, zorder=3)
        fig.colorbar(points, ax=ax, label="epoch")
    else:
        ax.scatter(coords[:, 0], coords[:, 1], s=25, zorder=3)
    if matrix.size <= MAX_LABELS:
        for (x, y), label in zip(coords, matrix.labels):
            ax.annotate(label, (x, y), xytext=(3, 3), textcoords="offset points", fontsize=7)
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel("MDS 1")
    ax.set_ylabel("MDS 2")
    selection = describe_selection(matrix.selection) or f"all {matrix.size} networks"
    ax.set_title(_title(f"metric MDS of NNSTD, {matrix.layer}", selection, f"stress-1 {stress:.3f}", _missing_note(matrix.n_missing).replace(" (grey)", "")), fontsize=10)
    return fig


def _draw_runs(ax, coords, runs, epochs, run_colours) -> None:
    """Join each run's networks in epoch order, so a run's drift reads as a path."""
    if not (epochs >= 0).any():
        return
    for run in sorted(set(runs.tolist())):
        members = np.flatnonzero(runs == run)
        if len(members) < 2:
            continue
        members = members[np.argsort(epochs[members], kind="stable")]
        colour = run_colours[run] if run_colours else "0.7"
        ax.plot(coords[members, 0], coords[members, 1], color=colour, lw=0.8, alpha=0.6, zorder=2)


def dendrogram(matrix: LabelledMatrix) -> Figure:
    """Average-linkage dendrogram (optimal leaf order) with the networks' labels as leaves."""
    from scipy.cluster.hierarchy import dendrogram as draw

    k = matrix.size
    if k < 2:
        raise InputError("a dendrogram needs at least 2 networks in the selection")
    fig = Figure(figsize=(max(6.0, min(0.25 * k, 16.0)), 5.0), layout="constrained")
    ax = fig.add_subplot()
    labels = matrix.labels if k <= MAX_LABELS else None
    draw(linkage_of(matrix.values), labels=labels, no_labels=labels is None, ax=ax, leaf_rotation=90, leaf_font_size=_label_size(k) + 1)
    ax.set_ylabel("NNSTD (average linkage)")
    selection = describe_selection(matrix.selection) or f"all {k} networks"
    ax.set_title(_title(f"NNSTD dendrogram, {matrix.layer}", selection), fontsize=10)
    return fig
