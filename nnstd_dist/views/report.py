"""One self-contained interactive HTML page of a store's distances (bokeh, resources inline): heatmaps, evolution, MDS.

Size: a heatmap of N networks holds N(N-1)/2 distances per layer. They travel as the lower triangle,
quantised to uint16 (d -> round(d * 65534), 65535 = not computed: resolution 1.5e-5, shown to 4
decimals), and the page rebuilds the N x N image in the browser for the layer and facet chosen.
Beyond ``max_networks`` the heatmap and the embedding use an evenly spaced sample in store order,
and the page says so; the evolution lines always use every network of every run.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .embedding import mds
from ..errors import InputError
from ..labels import natural_key
from .reduce import read_layers

if TYPE_CHECKING:
    from ..store.topology_store import TopologyStore

__all__ = ["MAX_NETWORKS", "ReportSummary", "write_report"]

MAX_NETWORKS = 2000
_SCALE = 65534  # uint16 code of distance 1.0; 65535 marks a pair not computed yet
_MISSING = 65535
MAX_RUN_LINES = 20  # more runs than this: the evolution plot shows their mean only


@dataclass(frozen=True)
class ReportSummary:
    """What the page shows: networks in the store, in the heatmap (a sample beyond the limit), layers computed, bytes written."""

    path: Path
    n_networks: int
    n_shown: int
    n_layers: int
    n_runs: int
    bytes: int

    @property
    def sampled(self) -> bool:
        return self.n_shown < self.n_networks


def sample_indices(n: int, limit: int) -> np.ndarray:
    """All of 0..n-1, or ``limit`` of them evenly spaced (first and last included)."""
    if n <= limit:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, limit).round().astype(np.int64))


def quantise_lower_triangle(values: np.ndarray) -> np.ndarray:
    """(L, k, k) distances in [0, 1] -> (L, k(k-1)/2) uint16 codes of entries i > j, row by row; NaN -> 65535."""
    rows, cols = np.tril_indices(values.shape[-1], -1)  # row-major: (1,0), (2,0), (2,1), ... = index i(i-1)/2 + j
    tri = values[:, rows, cols]
    codes = np.full(tri.shape, _MISSING, dtype=np.uint16)
    known = ~np.isnan(tri)
    codes[known] = np.rint(np.clip(tri[known], 0.0, 1.0) * _SCALE).astype(np.uint16)
    return codes


def write_report(store: "TopologyStore", output: str | Path, max_networks: int = MAX_NETWORKS, title: str | None = None) -> ReportSummary:
    """Write the report of ``store`` to ``output`` (.html), atomically; returns what it holds."""
    output = Path(output)
    if output.suffix.lower() not in (".html", ".htm"):
        raise InputError(f"{output}: a report is an .html file")
    if max_networks < 3:
        raise InputError(f"a report needs room for at least 3 networks, not {max_networks}")
    if not store.has_results:
        raise InputError(f"{store.path}: no distances yet: compute them before writing a report")
    page = _page(store, max_networks, title or f"NNSTD report: {store.path.name}")
    tmp = output.with_name(f".{output.name}.tmp")
    try:
        tmp.write_text(page.html, encoding="utf-8")
        tmp.replace(output)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise InputError(f"{output}: cannot write ({exc.strerror or exc})") from None
    return ReportSummary(output, store.n_networks, page.n_shown, page.n_layers, page.n_runs, output.stat().st_size)


@dataclass(frozen=True)
class _Page:
    html: str
    n_shown: int
    n_runs: int
    n_layers: int


def _labels(store: "TopologyStore", indices) -> dict[str, list]:
    runs = [str(r) for r in store.column("run")[indices]]
    epochs = [int(e) for e in store.column("epoch")[indices]]
    accuracy = [float(a) for a in store.column("accuracy")[indices]]
    return {"name": [str(n) for n in store.column("network")[indices]], "run": runs, "epoch": epochs, "accuracy": accuracy}


def _palette() -> list[str]:
    """The paper's gnuplot colour map (as in the static plots), 256 steps."""
    import matplotlib
    from matplotlib.colors import to_hex

    cmap = matplotlib.colormaps["gnuplot"]
    return [to_hex(cmap(i / 255)) for i in range(256)]


def _facets(labels: dict[str, list]) -> list[tuple[str, str]]:
    """(value, title) of the facet menu: everything, then each epoch, then each run (runs only if they are few)."""
    options = [("all", "all networks")]
    epochs = sorted({e for e in labels["epoch"] if e >= 0})
    options += [(f"epoch={e}", f"epoch {e}") for e in epochs]
    runs = sorted({r for r in labels["run"] if r}, key=natural_key)
    if len(runs) <= 200:
        options += [(f"run={r}", f"run {r}") for r in runs]
    return options


def _page(store: "TopologyStore", max_networks: int, title: str) -> _Page:
    from bokeh.document import Document
    from bokeh.embed import file_html
    from bokeh.events import DocumentReady
    from bokeh.layouts import column, row
    from bokeh.models import (
        ColorBar, ColumnDataSource, CustomJS, CustomJSHover, Div, HoverTool, LinearColorMapper, Range1d, Select,
    )
    from bokeh.plotting import figure
    from bokeh.resources import INLINE

    n = store.n_networks
    # only the layers compute filled (all, unless it ran with a last layer)
    n_layers = store.n_layers if store.max_layer is None else min(store.n_layers, store.max_layer + 1)
    shown = sample_indices(n, max_networks)
    values = read_layers(store, range(n_layers), shown)
    codes = quantise_lower_triangle(values)
    labels = _labels(store, shown)
    k = len(shown)
    missing = int(np.count_nonzero(codes[0] == _MISSING))

    mapper = LinearColorMapper(palette=_palette(), low=0.0, high=1.0, nan_color="lightgrey")
    image = ColumnDataSource({"image": [np.full((1, 1), np.nan)], "x": [0], "y": [0], "dw": [k], "dh": [k]})
    subset = ColumnDataSource({"index": list(range(k))})  # heatmap row/column -> position in the shown networks
    heat = figure(title="NNSTD, layer 0, all networks", width=640, height=600, x_range=Range1d(0, k), y_range=Range1d(k, 0),
                  tools="pan,wheel_zoom,box_zoom,reset,save", toolbar_location="above", name="heatmap")
    heat.image(image="image", x="x", y="y", dw="dw", dh="dh", source=image, color_mapper=mapper)
    heat.add_layout(ColorBar(color_mapper=mapper, title="NNSTD"), "right")
    heat.xaxis.axis_label, heat.yaxis.axis_label = "network b", "network a"
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

    layer_menu = Select(title="Layer", value="0", options=[(str(layer), f"layer {layer}") for layer in range(n_layers)], name="layer")
    facet_menu = Select(title="Networks", value="all", options=_facets(labels), name="facet")
    redraw = CustomJS(
        args={"codes": codes, "labels": labels, "image": image, "subset": subset, "heat": heat,
              "layer_menu": layer_menu, "facet_menu": facet_menu, "k": k},
        code=_REDRAW,
    )
    layer_menu.js_on_change("value", redraw)
    facet_menu.js_on_change("value", redraw)

    evolution, accuracy_plot, n_runs, evolution_note = _evolution(store, n_layers, figure, ColumnDataSource, HoverTool, layer_menu, CustomJS)
    embedding, stress = _embedding(values[0], labels, figure, ColumnDataSource, HoverTool, LinearColorMapper, ColorBar)

    computed = f" ({n_layers} of {store.n_layers} computed)" if n_layers < store.n_layers else ""
    solver = "" if store.solver == "exact" else f" Distances from the {html.escape(store.solver)} solver."
    notes = [f"<b>{n}</b> network{'s' if n != 1 else ''}, {store.n_layers} layer{'s' if store.n_layers != 1 else ''}{computed}, from "
             f"<code>{html.escape(str(store.path))}</code>.{solver}"]
    if k < n:
        notes.append(f"<b>Sampled:</b> the heatmap and the embedding show {k} of the {n} networks, evenly spaced in store "
                     f"order (at most {max_networks}); the evolution lines use every network.")
    if missing:
        notes.append(f"{missing} of the shown pairs are not computed yet (grey).")
    notes.append("Colours and hover values are rounded to 1/65534 (shown to 4 decimals); export the store for exact values.")
    if evolution_note:
        notes.append(evolution_note)
    notes.append(f"Embedding: metric MDS of layer 0, Kruskal stress-1 {stress:.3f}.")
    header = Div(text=f"<h2>{html.escape(title)}</h2><p>" + "<br>".join(notes) + "</p>", width=1200, name="header")
    status = Div(text="", name="status")
    plots = [heat, embedding] + [p for p in (evolution, accuracy_plot) if p is not None]
    lower = [p for p in (evolution, accuracy_plot) if p is not None]
    layout = column(header, row(layer_menu, facet_menu), row(heat, embedding), *([row(*lower)] if lower else []), status)

    document = Document()
    document.add_root(layout)
    document.js_on_event(DocumentReady, redraw)
    page = file_html(document, INLINE, title=title)
    head, tail = page.rsplit("</body>", 1)  # the last one: bokeh's inline scripts may spell the tag too
    page = head + _SELF_CHECK.replace("@PLOTS@", str(len(plots))) + "</body>" + tail
    return _Page(page, k, n_runs, n_layers)


def _evolution(store, n_layers, figure, ColumnDataSource, HoverTool, layer_menu, CustomJS):
    """Per run, NNSTD of each epoch's network to the run's final one (every layer, the menu's shown), and accuracy."""
    runs, epochs, accuracy = store.column("run"), store.column("epoch"), store.column("accuracy")
    run_names = sorted({str(r) for r, e in zip(runs, epochs) if r and e >= 0}, key=natural_key)
    if not run_names:
        return None, None, 0, "Evolution: no network has an epoch and a run (ingest takes them from epoch_NNN folders), so there is no evolution plot."
    curves = []
    for run in run_names:
        members = np.flatnonzero((runs.astype(str) == run) & (epochs >= 0))
        members = members[np.argsort(epochs[members], kind="stable")]
        to_final = read_layers(store, range(n_layers), members)[:, :, -1]  # (L, k): distance to the last epoch
        curves.append((run, epochs[members].astype(np.int64), to_final, accuracy[members].astype(float)))
    all_epochs = np.array(sorted({int(e) for _, ep, _, _ in curves for e in ep}))
    mean = np.full((n_layers, len(all_epochs)), np.nan)
    for li in range(n_layers):
        for col, e in enumerate(all_epochs):
            vals = [d[li][ep == e][0] for _, ep, d, _ in curves if (ep == e).any()]
            vals = [v for v in vals if np.isfinite(v)]
            mean[li, col] = np.mean(vals) if vals else np.nan

    def columns(ep, d, extra):
        data = {"epoch": ep.tolist(), "y": d[0].tolist(), **extra}
        data.update({f"layer{li}": d[li].tolist() for li in range(len(d))})
        return data

    evo = figure(title="NNSTD to the run's final network", width=640, height=380, x_axis_label="epoch",
                 y_axis_label="NNSTD (layer in the menu)", tools="pan,wheel_zoom,box_zoom,reset,save", name="evolution")
    sources = []
    draw_runs = len(curves) <= MAX_RUN_LINES
    if draw_runs:
        for run, ep, d, _ in curves:
            src = ColumnDataSource(columns(ep, d, {"run": [run] * len(ep)}))
            evo.line("epoch", "y", source=src, line_alpha=0.6, line_width=1.5, color="#4c72b0")
            evo.scatter("epoch", "y", source=src, size=5, color="#4c72b0")
            sources.append(src)
    mean_src = ColumnDataSource(columns(all_epochs, mean, {"run": [f"mean of {len(curves)} runs"] * len(all_epochs)}))
    evo.line("epoch", "y", source=mean_src, line_width=3, color="#c44e52", legend_label=f"mean of {len(curves)} runs")
    sources.append(mean_src)
    evo.add_tools(HoverTool(tooltips=[("run", "@run"), ("epoch", "@epoch"), ("NNSTD to final", "@y{0.0000}")]))
    evo.legend.location = "top_right"
    layer_menu.js_on_change("value", CustomJS(args={"sources": sources, "menu": layer_menu}, code="""
        for (const s of sources) { s.data.y = s.data["layer" + menu.value].slice(); s.change.emit(); }
    """))
    note = None if draw_runs else f"Evolution: {len(curves)} runs, more than {MAX_RUN_LINES}: only their mean is drawn."

    acc_plot = None
    if any(np.isfinite(a).any() for *_, a in curves):
        acc_plot = figure(title="Test accuracy", width=560, height=380, x_axis_label="epoch", y_axis_label="accuracy",
                          tools="pan,wheel_zoom,box_zoom,reset,save", name="accuracy")
        for run, ep, _, acc in curves[:MAX_RUN_LINES]:
            src = ColumnDataSource({"epoch": ep.tolist(), "accuracy": acc.tolist(), "run": [run] * len(ep)})
            acc_plot.line("epoch", "accuracy", source=src, line_alpha=0.6, color="#55a868")
            acc_plot.scatter("epoch", "accuracy", source=src, size=5, color="#55a868")
        acc_plot.add_tools(HoverTool(tooltips=[("run", "@run"), ("epoch", "@epoch"), ("accuracy", "@accuracy{0.0000}")]))
    return evo, acc_plot, len(curves), note


def _embedding(values, labels, figure, ColumnDataSource, HoverTool, LinearColorMapper, ColorBar):
    """Metric MDS of layer 0's matrix, coloured by epoch when there are epochs; hover names every point."""
    coords, stress = mds(values)
    data = {"x": coords[:, 0].tolist(), "y": coords[:, 1].tolist(), **labels}
    data["epoch_text"] = [str(e) if e >= 0 else "-" for e in labels["epoch"]]
    data["accuracy_text"] = [f"{a:.4f}" if np.isfinite(a) else "-" for a in labels["accuracy"]]
    plot = figure(title="MDS embedding (layer 0)", width=560, height=600, tools="pan,wheel_zoom,box_zoom,reset,save",
                  name="embedding", match_aspect=True)
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
heat.x_range.setv({start: 0, end: m});
heat.y_range.setv({start: m, end: 0});
heat.title.text = "NNSTD, layer " + layer + ", " + facet_menu.options.find(o => o[0] === facet_menu.value)[1] + " (" + m + ")";
"""

# A marker in the page's own DOM once bokeh has drawn: how many plot canvases, and any error seen.
# Tests (and a curious user) read it; bokeh draws inside shadow roots, which a DOM dump does not show.
_SELF_CHECK = """<script>
(function () {
  const errors = [];
  window.addEventListener("error", e => errors.push(String(e.message)));
  function canvases(root) {
    let count = 0;
    for (const el of root.querySelectorAll("*")) {
      if (el.tagName === "CANVAS" && el.width > 0) count++;
      if (el.shadowRoot) count += canvases(el.shadowRoot);
    }
    return count;
  }
  // report.html#layer=2&networks=epoch=190 opens on that layer and those networks (a link to share a view)
  function applyHash(doc) {
    const wanted = new URLSearchParams(location.hash.slice(1));
    for (const [name, value] of [["layer", wanted.get("layer")], ["facet", wanted.get("networks")]]) {
      const menu = doc.get_model_by_name(name);
      if (value !== null && menu && menu.options.some(o => o[0] === value)) menu.value = value;
    }
  }
  let tries = 0, applied = -1;
  const timer = setInterval(function () {
    const doc = window.Bokeh && Bokeh.documents && Bokeh.documents[0];
    ++tries;
    if (doc && applied < 0 && doc.get_model_by_name("heatmap")) { applied = tries; applyHash(doc); }
    const n = canvases(document);
    if ((n >= @PLOTS@ && applied > 0 && tries > applied + 3) || tries > 150) {
      clearInterval(timer);
      const mark = document.createElement("div");
      mark.id = "nnstd-report-status";
      mark.hidden = true;
      mark.dataset.canvases = String(n);
      mark.dataset.errors = errors.join(" | ");
      const heat = doc && doc.get_model_by_name("heatmap");
      mark.dataset.heatmap = heat ? heat.title.text : "";
      document.body.appendChild(mark);
    }
  }, 100);
})();
</script>
"""
