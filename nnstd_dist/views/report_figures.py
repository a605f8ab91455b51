"""The report's bokeh figures: the heatmap and its menus, the evolution and accuracy lines, the MDS map.

report.py reads the store and lays the page out; every function here takes arrays and labels only.
bokeh is imported inside the functions: importing this module costs nothing.
"""

from __future__ import annotations

import numpy as np

from .embedding import mds

__all__ = ["MAX_RUN_LINES", "heatmap", "evolution", "accuracy", "embedding"]

MAX_RUN_LINES = 20  # more runs than this: the evolution plot shows their mean only
MAX_AXIS_NAMES = 60  # more networks shown than this: no names on the heatmap's axes (they would overlap), hover names them
_TOOLS = "pan,wheel_zoom,box_zoom,reset,save"


def _palette() -> list[str]:
    """The paper's gnuplot colour map (as in the static plots), 256 steps."""
    import matplotlib
    from matplotlib.colors import to_hex

    cmap = matplotlib.colormaps["gnuplot"]
    return [to_hex(cmap(i / 255)) for i in range(256)]


def heatmap(codes: np.ndarray, labels: dict[str, list], n_layers: int, facets: list[tuple[str, str]]):
    """The heatmap of the (L, k(k-1)/2) uint16 ``codes``, its layer and facet menus and the CustomJS that redraws it."""
    from bokeh.models import ColorBar, ColumnDataSource, CustomJS, LinearColorMapper, Range1d, Select
    from bokeh.plotting import figure

    k = len(labels["name"])
    mapper = LinearColorMapper(palette=_palette(), low=0.0, high=1.0, nan_color="lightgrey")
    image = ColumnDataSource({"image": [np.full((1, 1), np.nan)], "x": [0], "y": [0], "dw": [k], "dh": [k]})
    subset = ColumnDataSource({"index": list(range(k))})  # heatmap row/column -> position in the shown networks
    heat = figure(title="NNSTD, layer 0, all networks", width=640, height=600, x_range=Range1d(0, k), y_range=Range1d(k, 0),
                  tools=_TOOLS, toolbar_location="above", name="heatmap")
    heat.image(image="image", x="x", y="y", dw="dw", dh="dh", source=image, color_mapper=mapper)
    heat.add_layout(ColorBar(color_mapper=mapper, title="NNSTD"), "right")
    heat.xaxis.axis_label, heat.yaxis.axis_label = "network b", "network a"
    ticks = _axis_names(heat, subset, labels)
    _heatmap_hover(heat, subset, labels)

    layer_menu = Select(title="Layer", value="0", options=[(str(layer), f"layer {layer}") for layer in range(n_layers)], name="layer")
    facet_menu = Select(title="Networks", value="all", options=facets, name="facet")
    redraw = CustomJS(
        args={"codes": codes, "labels": labels, "image": image, "subset": subset, "heat": heat,
              "layer_menu": layer_menu, "facet_menu": facet_menu, "k": k, "ticks": ticks, "max_names": MAX_AXIS_NAMES},
        code=_REDRAW,
    )
    layer_menu.js_on_change("value", redraw)
    facet_menu.js_on_change("value", redraw)
    return heat, layer_menu, facet_menu, redraw


def _axis_names(heat, subset, labels: dict[str, list]):
    """Each shown network's name at its row and column (up to MAX_AXIS_NAMES; the redraw keeps them to the menu's subset)."""
    import math

    from bokeh.models import CustomJSTickFormatter, FixedTicker

    k = len(labels["name"])
    ticks = FixedTicker(ticks=[i + 0.5 for i in range(k)] if k <= MAX_AXIS_NAMES else [], minor_ticks=[])
    name = CustomJSTickFormatter(args={"subset": subset, "labels": labels},
                                 code="const i = subset.data.index[Math.floor(tick)]; return i === undefined ? '' : labels.name[i];")
    for axis in (heat.xaxis[0], heat.yaxis[0]):
        axis.ticker, axis.formatter, axis.major_label_text_font_size = ticks, name, "7pt"
    heat.xaxis[0].major_label_orientation = math.pi / 2
    return ticks


def _heatmap_hover(heat, subset, labels: dict[str, list]) -> None:
    """Hover names both networks (run, epoch, accuracy) and the distance."""
    from bokeh.models import CustomJSHover, HoverTool

    describe = """
        const i = subset.data.index[Math.floor(value)];
        if (i === undefined) return "";
        const acc = Number.isFinite(labels.accuracy[i]) ? labels.accuracy[i].toFixed(4) : "-";
        const epoch = labels.epoch[i] >= 0 ? labels.epoch[i] : "-";
        return labels.name[i] + "  (run " + (labels.run[i] || "-") + ", epoch " + epoch + ", accuracy " + acc + ")";
    """
    network = CustomJSHover(code=describe, args={"subset": subset, "labels": labels})
    distance = CustomJSHover(code='return Number.isFinite(value) ? value.toFixed(4) : "not computed yet";')
    heat.add_tools(HoverTool(
        tooltips=[("a", "$y{network}"), ("b", "$x{network}"), ("NNSTD", "@image{distance}")],
        formatters={"$y": network, "$x": network, "@image": distance},
    ))


def evolution(curves, all_epochs: np.ndarray, mean: np.ndarray, layer_menu):
    """NNSTD to the run's first network over epochs (as `plot --kind evolution`): a line per run (up to MAX_RUN_LINES runs) and their mean.

    ``curves``: (run, epochs, to_first (L, k), accuracy) per run; ``mean``: (L, len(all_epochs)).
    The layer menu switches every line to its layer.
    """
    from bokeh.models import ColumnDataSource, CustomJS, HoverTool
    from bokeh.plotting import figure

    def columns(ep, d, extra):
        data = {"epoch": ep.tolist(), "y": d[0].tolist(), **extra}
        data.update({f"layer{li}": d[li].tolist() for li in range(len(d))})
        return data

    evo = figure(title="NNSTD to the run's first network", width=640, height=380, x_axis_label="epoch",
                 y_axis_label="NNSTD (layer in the menu)", tools=_TOOLS, name="evolution")
    _integer_ticks(evo)
    sources = []
    if len(curves) <= MAX_RUN_LINES:
        for run, ep, d, _ in curves:
            src = ColumnDataSource(columns(ep, d, {"run": [run] * len(ep)}))
            evo.line("epoch", "y", source=src, line_alpha=0.6, line_width=1.5, color="#4c72b0")
            evo.scatter("epoch", "y", source=src, size=5, color="#4c72b0")
            sources.append(src)
    mean_src = ColumnDataSource(columns(all_epochs, mean, {"run": [f"mean of {len(curves)} runs"] * len(all_epochs)}))
    evo.line("epoch", "y", source=mean_src, line_width=3, color="#c44e52", legend_label=f"mean of {len(curves)} runs")
    sources.append(mean_src)
    evo.add_tools(HoverTool(tooltips=[("run", "@run"), ("epoch", "@epoch"), ("NNSTD to first", "@y{0.0000}")]))
    evo.legend.location = "top_right"
    layer_menu.js_on_change("value", CustomJS(args={"sources": sources, "menu": layer_menu}, code="""
        for (const s of sources) { s.data.y = s.data["layer" + menu.value].slice(); s.change.emit(); }
    """))
    return evo


def _integer_ticks(fig) -> None:
    """Epochs are whole numbers: ticks at least 1 apart (never 1.5, 2.5, ...)."""
    from bokeh.models import BasicTicker

    fig.xaxis[0].ticker = BasicTicker(min_interval=1)


def accuracy(curves):
    """Test accuracy over epochs, a line per run (the first MAX_RUN_LINES); None when no network has one."""
    from bokeh.models import ColumnDataSource, HoverTool
    from bokeh.plotting import figure

    if not any(np.isfinite(a).any() for *_, a in curves):
        return None
    plot = figure(title="Test accuracy", width=560, height=380, x_axis_label="epoch", y_axis_label="accuracy",
                  tools=_TOOLS, name="accuracy")
    _integer_ticks(plot)
    for run, ep, _, acc in curves[:MAX_RUN_LINES]:
        src = ColumnDataSource({"epoch": ep.tolist(), "accuracy": acc.tolist(), "run": [run] * len(ep)})
        plot.line("epoch", "accuracy", source=src, line_alpha=0.6, color="#55a868")
        plot.scatter("epoch", "accuracy", source=src, size=5, color="#55a868")
    plot.add_tools(HoverTool(tooltips=[("run", "@run"), ("epoch", "@epoch"), ("accuracy", "@accuracy{0.0000}")]))
    return plot


def embedding(values: np.ndarray, labels: dict[str, list]):
    """Metric MDS of layer 0's matrix, coloured by epoch when there are epochs; hover names every point."""
    from bokeh.models import ColorBar, ColumnDataSource, HoverTool, LinearColorMapper
    from bokeh.plotting import figure

    coords, stress = mds(values)
    data = {"x": coords[:, 0].tolist(), "y": coords[:, 1].tolist(), **labels}
    data["epoch_text"] = [str(e) if e >= 0 else "-" for e in labels["epoch"]]
    data["accuracy_text"] = [f"{a:.4f}" if np.isfinite(a) else "-" for a in labels["accuracy"]]
    plot = figure(title="MDS embedding (layer 0)", width=560, height=600, tools=_TOOLS, name="embedding", match_aspect=True)
    source = ColumnDataSource(data)
    epochs = [e for e in labels["epoch"] if e >= 0]
    if epochs:
        from bokeh.palettes import Viridis256

        mapper = LinearColorMapper(palette=Viridis256, low=min(epochs), high=max(max(epochs), min(epochs) + 1), nan_color="grey")
        source.data["colour_epoch"] = [e if e >= 0 else float("nan") for e in labels["epoch"]]
        plot.scatter("x", "y", source=source, size=8, fill_color={"field": "colour_epoch", "transform": mapper}, line_color=None)
        plot.add_layout(ColorBar(color_mapper=mapper, title="epoch"), "right")
    else:
        plot.scatter("x", "y", source=source, size=8, color="#4c72b0")
    plot.add_tools(HoverTool(tooltips=[("network", "@name"), ("run", "@run"), ("epoch", "@epoch_text"), ("accuracy", "@accuracy_text")]))
    return plot, stress


# Rebuilds the heatmap's image from the uint16 lower triangle for the layer and the networks chosen.
_REDRAW = """
const layer = Number(layer_menu.value);
const [key, value] = facet_menu.value === "all" ? ["all", null] : facet_menu.value.split(/=(.*)/s);
const keep = [];
for (let i = 0; i < k; i++) {
    if (key === "all" || (key === "epoch" && String(labels.epoch[i]) === value) || (key === "run" && labels.run[i] === value)) keep.push(i);
}
const tri = codes.slice ? codes : codes.array;
const width = k * (k - 1) / 2;
const m = keep.length;
const img = new Float64Array(m * m);
for (let r = 0; r < m; r++) {
    for (let c = 0; c < r; c++) {
        const a = keep[r], b = keep[c];
        const code = tri[layer * width + a * (a - 1) / 2 + b];
        const d = code === 65535 ? NaN : code / 65534;
        img[r * m + c] = d;
        img[c * m + r] = d;
    }
}
const { ndarray } = Bokeh.require("core/util/ndarray");
image.data = {image: [ndarray(img, {shape: [m, m]})], x: [0], y: [0], dw: [m], dh: [m]};
subset.data = {index: keep};
ticks.ticks = m <= max_names ? keep.map((_, r) => r + 0.5) : [];  // names on the axes, or hover alone beyond max_names
heat.x_range.setv({start: 0, end: m});
heat.y_range.setv({start: m, end: 0});
heat.title.text = "NNSTD, layer " + layer + ", " + facet_menu.options.find(o => o[0] === facet_menu.value)[1] + " (" + m + ")";
"""
