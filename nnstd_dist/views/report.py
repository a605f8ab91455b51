"""One self-contained interactive HTML page of a store's distances (bokeh, resources inline): heatmaps, evolution, MDS.

Size: a heatmap of N networks holds N(N-1)/2 distances per layer. They travel as the lower triangle,
quantised to uint16 (d -> round(d * 65534), 65535 = not computed: resolution 1.5e-5, shown to 4
decimals), and the page rebuilds the N x N image in the browser for the layer and facet chosen.
Beyond ``max_networks`` the heatmap and the embedding use an evenly spaced sample in store order,
and the page says so; the evolution lines always use every network of every run.

This module reads the store and lays out the page; the bokeh figures are in report_figures.py.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from . import report_figures as figures
from ..sources.naming import HINT
from ..errors import InputError
from ..labels import natural_key
from .embedding import trajectory
from .reduce import LabelledMatrix, read_layers

if TYPE_CHECKING:
    from ..store.topology_store import TopologyStore

__all__ = ["MAX_NETWORKS", "ReportSummary", "write_report"]

MAX_NETWORKS = 2000
_SCALE = 65534  # uint16 code of distance 1.0; 65535 marks a pair not computed yet
_MISSING = 65535


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
    page = _page(store, max_networks, title or f"NNSTD report: {store.name}")
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
    from bokeh.models import Div
    from bokeh.resources import INLINE

    n = store.n_networks
    # only the layers compute filled (all, unless it ran with a last layer)
    n_layers = store.n_layers if store.max_layer is None else min(store.n_layers, store.max_layer + 1)
    shown = sample_indices(n, max_networks)
    values = read_layers(store, range(n_layers), shown)
    codes = quantise_lower_triangle(values)
    labels = _labels(store, shown)
    heat, layer_menu, facet_menu, redraw = figures.heatmap(codes, labels, n_layers, _facets(labels))
    curves = _run_curves(store, n_layers)
    lower = []
    if curves:
        lower = [figures.evolution(curves, *_mean_curve(curves, n_layers), layer_menu), figures.accuracy(curves)]
        lower = [p for p in lower if p is not None]
    embedding, stress = figures.embedding(values[0], labels)

    notes = _notes(store, n_layers, len(shown), max_networks, int(np.count_nonzero(codes[0] == _MISSING)), len(curves), stress)
    header = Div(text=f"<h2>{html.escape(title)}</h2><p>" + "<br>".join(notes) + "</p>", width=1200, name="header")
    status = Div(text="", name="status")
    layout = column(header, row(layer_menu, facet_menu), row(heat, embedding), *([row(*lower)] if lower else []), status)

    document = Document()
    document.add_root(layout)
    document.js_on_event(DocumentReady, redraw)
    page = file_html(document, INLINE, title=title)
    head, tail = page.rsplit("</body>", 1)  # the last one: bokeh's inline scripts may spell the tag too
    page = head + _SELF_CHECK.replace("@PLOTS@", str(2 + len(lower))) + "</body>" + tail
    return _Page(page, len(shown), len(curves), n_layers)


def _notes(store: "TopologyStore", n_layers: int, k: int, max_networks: int, missing: int, n_runs: int, stress: float) -> list[str]:
    """The lines above the plots: what the store holds, what the page samples, rounds or leaves out."""
    n = store.n_networks
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
    if not n_runs:
        notes.append(f"Evolution: no network has an epoch and a run, so there is no evolution plot; {html.escape(HINT)}.")
    elif n_runs > figures.MAX_RUN_LINES:
        notes.append(f"Evolution: {n_runs} runs, more than {figures.MAX_RUN_LINES}: only their mean is drawn.")
    notes.append(f"Embedding: metric MDS of layer 0, Kruskal stress-1 {stress:.3f}.")
    return notes


def _run_curves(store: "TopologyStore", n_layers: int) -> list[tuple]:
    """Per run with epochs: (run, epochs, (L, k) NNSTD of each epoch's network to the run's first one, accuracies).

    Every network of the run is read, not only the sampled ones; each layer's matrix goes through
    ``embedding.trajectory``, which orders the run by epoch.
    """
    runs, epochs = store.column("run"), store.column("epoch")
    run_names = sorted({str(r) for r, e in zip(runs, epochs) if r and e >= 0}, key=natural_key)
    curves = []
    for run in run_names:
        members = np.flatnonzero((runs.astype(str) == run) & (epochs >= 0))
        names = [str(name) for name in store.column("network")[members]]
        metadata = {key: store.column(key)[members] for key in ("run", "epoch", "accuracy")}
        paths = [trajectory(LabelledMatrix(layer, names, metadata)) for layer in read_layers(store, range(n_layers), members)]
        to_first = np.stack([path.to_first for path in paths])  # as `plot --kind evolution`: the drift from where the run started
        curves.append((run, paths[0].epochs.astype(np.int64), to_first, paths[0].accuracy))
    return curves


def _mean_curve(curves, n_layers: int) -> tuple[np.ndarray, np.ndarray]:
    """Every epoch of any run, and per layer the mean over the runs that have it (NaN distances left out)."""
    all_epochs = np.array(sorted({int(e) for _, ep, _, _ in curves for e in ep}))
    mean = np.full((n_layers, len(all_epochs)), np.nan)
    for li in range(n_layers):
        for col, e in enumerate(all_epochs):
            vals = [d[li][ep == e][0] for _, ep, d, _ in curves if (ep == e).any()]
            vals = [v for v in vals if np.isfinite(v)]
            mean[li, col] = np.mean(vals) if vals else np.nan
    return all_epochs, mean


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
