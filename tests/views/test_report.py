"""`nnstd-dist report`: one self-contained HTML page, checked in headless chromium (plots drawn, no console error, not blank)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from click.testing import CliRunner

from _populations import make_store, open_or_create, write_tile
from nnstd_dist.cli.main import cli
from nnstd_dist.errors import InputError
from nnstd_dist.engine.plan import make_plan
from nnstd_dist.tiles import n_tiles
from nnstd_dist.records import NetworkRecord
from nnstd_dist.views.report import quantise_lower_triangle, sample_indices, write_report
from nnstd_dist.store.topology_store import TopologyStore

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
SHAPES = [(20, 20), (20, 3)]


def runs_store(path: Path, n_runs=3, epochs=(0, 10, 20), compute=True):
    rng = np.random.default_rng(5)
    records = [NetworkRecord(f"w{r}/epoch_{e:03d}", f"w{r}", e, 0.5 + 0.01 * e + 0.001 * r) for r in range(n_runs) for e in epochs]
    nets = [[sp.csr_matrix(rng.random(SHAPES[0]) < 0.3), sp.csr_matrix(np.ones(SHAPES[1], dtype=bool))] for _ in records]
    make_store(path, nets, records, tile=4, compute=compute)
    return path


def test_quantised_triangle_round_trips_to_the_resolution():
    rng = np.random.default_rng(0)
    d = rng.random((2, 6, 6))
    d = (d + d.transpose(0, 2, 1)) / 2
    d[1, 4, 2] = d[1, 2, 4] = np.nan
    codes = quantise_lower_triangle(d)
    assert codes.dtype == np.uint16 and codes.shape == (2, 15)
    i, j = 4, 2
    assert codes[1, i * (i - 1) // 2 + j] == 65535  # row-major lower triangle, the index the page uses
    back = np.where(codes == 65535, np.nan, codes / 65534)
    rows, cols = np.tril_indices(6, -1)
    np.testing.assert_allclose(back, d[:, rows, cols], atol=0.5 / 65534, equal_nan=True)


def test_sample_is_every_network_up_to_the_limit_then_evenly_spaced():
    assert sample_indices(5, 10).tolist() == [0, 1, 2, 3, 4]
    s = sample_indices(1000, 7)
    assert s.tolist() == [0, 166, 333, 500, 666, 832, 999]


def test_cli_writes_a_page_and_refuses_what_it_cannot_draw(tmp_path):
    store = runs_store(tmp_path / "s.zarr")
    result = CliRunner().invoke(cli, ["report", "--store", str(store), "-o", str(tmp_path / "r.html")])
    assert result.exit_code == 0, result.output
    assert re.match(r"wrote .*r\.html: 9 networks, 2 layers, \d+\.\d MB", result.output)
    page = (tmp_path / "r.html").read_text()
    assert "<script src=" not in page and "cdn.bokeh.org" not in page  # resources inline: opens offline
    assert "w1/epoch_010" in page and "NNSTD to the run" in page
    bad = CliRunner().invoke(cli, ["report", "--store", str(store), "-o", str(tmp_path / "r.png")])
    assert bad.exit_code == 2 and bad.output.startswith("Error: ") and "an .html file" in bad.output
    empty = runs_store(tmp_path / "e.zarr", compute=False)
    with pytest.raises(InputError):
        write_report(TopologyStore.open(empty), tmp_path / "e.html")


def test_a_store_computed_up_to_one_layer_shows_that_layer(tmp_path, dask_client):
    from conftest import make_synthetic_network, write_set_network

    rng = np.random.default_rng(2)
    for k in range(4):
        write_set_network(tmp_path / "nets" / f"net_{k}", make_synthetic_network(rng, [(10, 10), (10, 10), (10, 3)], 0.3), rng)
    store = tmp_path / "s.zarr"
    assert CliRunner().invoke(cli, ["ingest", str(tmp_path / "nets"), "--store", str(store)]).exit_code == 0
    assert CliRunner().invoke(cli, ["compute", "--store", str(store), "--max-layer", "0", "--scheduler", dask_client.scheduler.address, "-q"]).exit_code == 0
    result = CliRunner().invoke(cli, ["report", "--store", str(store), "-o", str(tmp_path / "r.html")])
    assert result.exit_code == 0, result.output
    assert ": 4 networks, 1 layer, " in result.output
    assert "3 layers (1 of 3 computed)" in (tmp_path / "r.html").read_text()


def test_a_sampled_page_says_so(tmp_path):
    store = runs_store(tmp_path / "s.zarr", n_runs=4)
    summary = write_report(TopologyStore.open(store), tmp_path / "r.html", max_networks=5)
    assert summary.sampled and summary.n_shown == 5 and summary.n_networks == 12
    assert "the heatmap and the embedding show 5 of the 12 networks" in (tmp_path / "r.html").read_text()


def report_page(tmp_path: Path) -> Path:
    """The report of the runs store, written to tmp_path/r.html."""
    page = tmp_path / "r.html"
    write_report(TopologyStore.open(runs_store(tmp_path / "s.zarr")), page)
    return page


def _chromium(page: Path, profile: Path, *args: str, view: str = "") -> subprocess.CompletedProcess:
    command = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=20000", "--window-size=1300,1150", *args,
               page.as_uri() + view]
    return subprocess.run(command, capture_output=True, text=True, timeout=180)


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it when run as root)")
def test_chromium_draws_every_plot_without_errors_and_not_blank(tmp_path):
    import matplotlib.image

    page = report_page(tmp_path)
    dump = _chromium(page, tmp_path / "p1", "--enable-logging=stderr", "--v=0", "--dump-dom")
    mark = re.search(r'<div id="nnstd-report-status"[^>]*data-canvases="(\d+)"[^>]*data-errors="([^"]*)"', dump.stdout)
    assert mark, dump.stdout[-2000:]
    assert int(mark.group(1)) >= 4 and mark.group(2) == ""  # heatmap, embedding, evolution, accuracy
    assert 'data-heatmap="NNSTD, layer 0, all networks (9)"' in dump.stdout
    console = [line for line in dump.stderr.splitlines() if "CONSOLE" in line]
    assert console and not [line for line in console if re.search(r"error|uncaught|warn", line, re.I)], console
    shot = tmp_path / "shot.png"
    _chromium(page, tmp_path / "p2", f"--screenshot={shot}")
    pixels = matplotlib.image.imread(shot)[..., :3]
    assert pixels.shape[:2] == (1150, 1300)
    colours = np.unique((pixels.reshape(-1, 3) * 255).round().astype(np.uint8), axis=0)
    assert len(colours) > 200  # a blank or failed page has a handful of colours
    heat = pixels[200:650, 50:500]  # the heatmap's area: the gnuplot colours of distances well above 0
    assert (heat[..., 0] > 0.5).mean() > 0.3


@pytest.mark.slow
def test_a_thousand_networks_stay_under_10_mb(tmp_path):
    """All 499,500 pairs x 4 layers (as the paper's MLPs) of 1000 networks: the page must stay small enough to mail."""
    n, shapes = 1000, [(12, 12), (12, 12), (12, 12), (12, 3)]
    store = open_or_create(tmp_path / "s.zarr", shapes)
    rng = np.random.default_rng(1)
    records = [NetworkRecord(f"w{k // 10}/epoch_{10 * (k % 10):03d}", f"w{k // 10}", 10 * (k % 10), 0.9) for k in range(n)]
    nets = [[sp.csr_matrix(rng.random(s) < 0.3) for s in shapes] for _ in range(n)]
    store.append(list(zip(records, nets)))
    store.init_results(100)
    full = rng.random((4, n, n))
    full = (full + full.transpose(0, 2, 1)) / 2  # stand-in distances: the size does not depend on their values
    k = n_tiles(n, 100)
    for task in make_plan(n, 100, np.zeros((k, k), dtype=np.int64)).tasks:
        (r0, r1), (c0, c1) = task.rows, task.cols
        write_tile(store, task.a, task.b, full[:, r0:r1, c0:c1], done_at=n)
    summary = write_report(TopologyStore.open(tmp_path / "s.zarr"), tmp_path / "r.html")
    assert summary.n_shown == n and not summary.sampled
    print(f"report of {n} networks, 4 layers: {summary.bytes / 1e6:.2f} MB")
    assert summary.bytes < 10e6


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it when run as root)")
def test_the_menus_redraw_the_heatmap_in_the_browser(tmp_path):
    """A link such as report.html#layer=1&networks=epoch=10 sets both menus; the page's own code redraws the heatmap."""
    page = report_page(tmp_path)
    for view, title in [("#layer=1&networks=epoch=10", "NNSTD, layer 1, epoch 10 (3)"), ("#networks=run=w2", "NNSTD, layer 0, run w2 (3)")]:
        dump = _chromium(page, tmp_path / f"p{len(view)}", "--dump-dom", view=view)
        assert f'data-heatmap="{title}"' in dump.stdout and 'data-errors=""' in dump.stdout, dump.stdout[-1500:]


# Test harness only (appended to a copy of the page): a real pointer move over heatmap cell (row 5, column 2),
# then the text of bokeh's tooltip, written where --dump-dom sees it.
_HOVER_PROBE = """<script>
setTimeout(function () {
  function all(root, out) { for (const el of root.querySelectorAll("*")) { out.push(el); if (el.shadowRoot) all(el.shadowRoot, out); } return out; }
  const heat = Bokeh.documents[0].get_model_by_name("heatmap");
  const root = Bokeh.index[Object.keys(Bokeh.index)[0]];
  const view = root.owner.all_views().find(v => v.model === heat);
  const el = view.canvas_view.events_el, box = el.getBoundingClientRect();
  const at = {clientX: box.left + view.frame.x_scale.compute(2.5), clientY: box.top + view.frame.y_scale.compute(5.5),
              bubbles: true, pointerType: "mouse", isPrimary: true, pointerId: 1};
  el.dispatchEvent(new PointerEvent("pointerenter", at));
  el.dispatchEvent(new PointerEvent("pointermove", at));
  setTimeout(function () {
    const out = document.createElement("pre");
    out.id = "hover";
    out.textContent = all(document, []).filter(e => e.classList && [...e.classList].some(c => /tooltip/i.test(c)))
                                       .map(t => t.textContent).join(" || ");
    document.body.appendChild(out);
  }, 500);
}, 3000);
</script>"""


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it when run as root)")
def test_hovering_a_heatmap_cell_names_both_networks_and_their_distance(tmp_path):
    page = report_page(tmp_path)
    head, tail = page.read_text().rsplit("</body>", 1)
    probe = tmp_path / "probe.html"
    probe.write_text(head + _HOVER_PROBE + "</body>" + tail)
    dump = _chromium(probe, tmp_path / "p", "--dump-dom")
    text = re.search(r'<pre id="hover">(.*?)</pre>', dump.stdout, re.S)
    assert text, dump.stdout[-1500:]
    d = TopologyStore.open(tmp_path / "s.zarr").read_distance([0])[0][5, 2]
    assert (f"a: w1/epoch_020  (run w1, epoch 20, accuracy 0.7010) b: w0/epoch_020  (run w0, epoch 20, accuracy 0.7000) "
            f"NNSTD: {d:.4f}") in text.group(1)


def test_the_heatmap_names_its_networks_and_the_evolution_measures_from_the_first(tmp_path):
    """Issue 29, item 8: network names on the heatmap's axes (up to MAX_AXIS_NAMES), the same reference as
    `plot --kind evolution` (each run's first network), epochs ticked at whole numbers."""
    from bokeh.models import BasicTicker, CustomJSTickFormatter, FixedTicker

    from nnstd_dist.views import report_figures as figures
    from nnstd_dist.views.report import _run_curves

    store = TopologyStore.open(runs_store(tmp_path / "s.zarr", epochs=(1, 2, 3)))
    labels = {"name": store.names(), "run": [str(r) for r in store.column("run")], "epoch": store.column("epoch").tolist(),
              "accuracy": store.column("accuracy").tolist()}
    codes = quantise_lower_triangle(store.read_distance())
    heat, layer_menu, _, redraw = figures.heatmap(codes, labels, 2, [("all", "all networks")])
    for axis in (heat.xaxis[0], heat.yaxis[0]):
        assert isinstance(axis.ticker, FixedTicker) and axis.ticker.ticks == [i + 0.5 for i in range(9)]
        assert isinstance(axis.formatter, CustomJSTickFormatter) and "labels.name[i]" in axis.formatter.code
    assert "ticks.ticks = m <= max_names" in redraw.code and redraw.args["max_names"] == figures.MAX_AXIS_NAMES
    many = {key: values * 8 for key, values in labels.items()}  # 72 networks: hover only
    assert figures.heatmap(codes, many, 2, [("all", "all networks")])[0].xaxis[0].ticker.ticks == []
    curves = _run_curves(store, 2)
    assert all(d[:, 0].tolist() == [0.0, 0.0] and (d[0, 1:] > 0).all() for _, _, d, _ in curves)  # 0 at the run's first epoch
    evo = figures.evolution(curves, np.array([1, 2, 3]), np.zeros((2, 3)), layer_menu)
    assert evo.title.text == "NNSTD to the run's first network"
    assert isinstance(evo.xaxis[0].ticker, BasicTicker) and evo.xaxis[0].ticker.min_interval == 1
