"""Figures, inspected as matplotlib objects (colours, panels, labels, lines, points), and the `plot` command."""

from __future__ import annotations

import shlex

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from click.testing import CliRunner  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402
from matplotlib.image import AxesImage  # noqa: E402

from _populations import chain, make_store, runs_population  # noqa: E402
from nnstd_dist.views import embedding, plot, reduce  # noqa: E402
from nnstd_dist.cli.main import cli  # noqa: E402

EPOCHS = [0, 10, 30, 50]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    networks, records = runs_population(3, EPOCHS, seed=11)
    return make_store(tmp_path_factory.mktemp("plot") / "s.zarr", networks, records, tile=5)


@pytest.fixture(scope="module")
def partial_store(tmp_path_factory):
    networks, records = runs_population(3, EPOCHS, seed=11)
    return make_store(tmp_path_factory.mktemp("partial") / "s.zarr", networks, records, tile=5, compute={(0, 0), (2, 2)})


def image_of(ax) -> AxesImage:
    (image,) = [c for c in ax.get_children() if isinstance(c, AxesImage)]
    return image


def colours(image) -> np.ndarray:
    return image.to_rgba(image.get_array())


def tick_texts(labels) -> list[str]:
    return [t.get_text() for t in labels]


def random_matrix(n: int, seed: int = 0) -> reduce.LabelledMatrix:
    upper = np.triu(np.random.default_rng(seed).random((n, n)), 1)
    names = [f"run{i}/epoch_000" for i in range(n)]
    meta = {"run": np.array([f"run{i}" for i in range(n)], dtype=object), "epoch": np.zeros(n, dtype=np.int64), "accuracy": np.full(n, np.nan)}
    return reduce.LabelledMatrix(upper + upper.T, names, meta)


# ---- heatmaps ---------------------------------------------------------------------------------


def test_heatmap_in_the_papers_style(store):
    m = reduce.labelled_matrix(store, selection={"epoch": ["50"]})
    fig = plot.heatmap(m)
    ax, bar = fig.axes
    image = image_of(ax)
    assert image.get_cmap().name.startswith("gnuplot") and image.get_clim() == (0.0, 1.0)
    assert image.get_interpolation() == "nearest"
    rgba = colours(image)
    cmap = image.get_cmap()
    for i in range(m.size):
        np.testing.assert_allclose(rgba[i, i], cmap(0.0))  # NNSTD(x, x) = 0: the colour of 0
    np.testing.assert_allclose(rgba[0, 1], cmap(m.values[0, 1]))
    assert tick_texts(ax.get_xticklabels()) == ["r0", "r1", "r2"]
    assert tick_texts(ax.get_yticklabels()) == ["r0", "r1", "r2"]
    assert "layer 0" in ax.get_title() and "epoch=50" in ax.get_title()
    assert bar.get_ylabel() == "NNSTD"


def test_missing_cells_get_the_bad_colour(partial_store):
    m = reduce.labelled_matrix(partial_store)
    assert m.n_missing > 0
    fig = plot.heatmap(m)
    ax = fig.axes[0]
    rgba = colours(image_of(ax))
    missing = np.isnan(m.values)
    assert missing.any() and not missing.all()
    np.testing.assert_allclose(rgba[missing], np.tile(to_rgba(plot.MISSING_COLOUR), (missing.sum(), 1)))
    assert not np.isclose(rgba[~missing], to_rgba(plot.MISSING_COLOUR)).all(axis=1).any()
    assert f"{m.n_missing} pairs not computed yet" in ax.get_title()


def test_facets_share_one_colour_bar(store):
    panels = reduce.facet(store, "epoch", ["0", "10", "50"])
    fig = plot.heatmaps(panels, "epoch")
    assert len(fig.axes) == 3 + 1
    images = [image_of(ax) for ax in fig.axes[:3]]
    assert [ax.get_title() for ax in fig.axes[:3]] == ["epoch 0", "epoch 10", "epoch 50"]
    assert all(im.get_clim() == (0.0, 1.0) for im in images)
    assert fig.axes[3].get_ylabel() == "NNSTD"
    assert "by epoch" in fig.get_suptitle()


@pytest.mark.parametrize("n_panels", [1, 4, 5, 6, 7], ids=lambda n: f"{n}-panels")
def test_facet_grid_has_no_empty_frames(n_panels):
    fig = plot.heatmaps([random_matrix(4, seed) for seed in range(n_panels)], "epoch")
    assert len(fig.axes) == n_panels + 1


def test_many_networks_draw_without_tick_labels():
    m = random_matrix(plot.MAX_LABELS + 10)
    ax = plot.heatmap(m).axes[0]
    assert ax.get_xticks().size == 0 and ax.get_yticks().size == 0
    assert ax.get_xlabel() == f"{m.size} networks"
    small = random_matrix(plot.MAX_LABELS)
    assert len(plot.heatmap(small).axes[0].get_xticklabels()) == plot.MAX_LABELS


def test_cluster_order_groups_planted_clusters_on_the_axes(tmp_path):
    from nnstd_dist.records import NetworkRecord

    a, b = chain(seed=1, length=5, fraction=0.05), chain(seed=2, length=5, fraction=0.05)
    networks = [n for pair in zip(a, b) for n in pair]  # interleaved: a0 b0 a1 b1 ...
    records = [NetworkRecord(f"{'ab'[i % 2]}{i // 2}", run="ab"[i % 2]) for i in range(10)]
    st = make_store(tmp_path / "s.zarr", networks, records, tile=4)
    m = reduce.labelled_matrix(st)
    ordered = m.reordered(embedding.cluster_order(m.values))
    labels = tick_texts(plot.heatmap(ordered).axes[0].get_xticklabels())
    assert {label[0] for label in labels[:5]} in ({"a"}, {"b"}) and {label[0] for label in labels[5:]} in ({"a"}, {"b"})


# ---- other kinds --------------------------------------------------------------------------------


@pytest.mark.parametrize("to_final", [False, True], ids=["to-first", "to-first-and-final"])
def test_evolution_has_one_line_per_run_and_accuracy_on_a_twin_axis(store, to_final):
    runs = reduce.facet(store, "run")
    fig = plot.evolution(runs, to_final)
    n_panels = 2 if to_final else 1
    assert len(fig.axes) == 2 * n_panels  # each panel and its accuracy twin
    mains, twins = fig.axes[:n_panels], fig.axes[n_panels:]
    for ax in mains:
        assert len(ax.get_lines()) == 3
        assert all(line.get_xdata().tolist() == EPOCHS for line in ax.get_lines())
    first = mains[0].get_lines()[0].get_ydata()
    assert first[0] == 0 and (np.diff(first) > 0).all()  # a run drifts away from its start
    fig.canvas.draw()
    assert all(float(t).is_integer() for ax in mains for t in ax.get_xticks())  # epochs: no tick at 1.5, 2.5, ...
    if to_final:
        assert mains[1].get_lines()[0].get_ydata()[-1] == 0
    for twin in twins:
        assert len(twin.get_lines()) == 3 and twin.get_ylabel().startswith("accuracy")
        np.testing.assert_allclose(twin.get_lines()[0].get_ydata(), runs[0].metadata["accuracy"])
    assert [t.get_text() for t in mains[0].get_legend().get_texts()] == ["r0", "r1", "r2"]


@pytest.mark.parametrize("color_by", ["epoch", "run"])
def test_embedding_has_one_point_per_network(store, color_by):
    m = reduce.labelled_matrix(store)
    fig = plot.embedding(m, color_by)
    ax = fig.axes[0]
    (points,) = ax.collections
    assert points.get_offsets().shape == (m.size, 2)
    assert len(ax.texts) == m.size  # labelled, as there are few
    assert "stress-1" in ax.get_title()
    if color_by == "epoch":
        assert fig.axes[1].get_ylabel() == "epoch"
    else:
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["r0", "r1", "r2"]


def test_dendrogram_leaves_carry_all_labels(store):
    m = reduce.labelled_matrix(store, selection={"epoch": ["0", "50"]})
    ax = plot.dendrogram(m).axes[0]
    assert sorted(tick_texts(ax.get_xticklabels())) == sorted(m.labels)
    assert len(m.labels) == 6


# ---- the command ------------------------------------------------------------------------------

MAGIC = {".png": b"\x89PNG", ".pdf": b"%PDF", ".svg": b"<?xml"}


def run(*args):
    return CliRunner().invoke(cli, ["plot", *map(str, args)])


@pytest.mark.parametrize("suffix", sorted(MAGIC))
def test_cli_writes_png_pdf_svg(store, tmp_path, suffix):
    out = tmp_path / f"figure{suffix}"
    result = run("--store", store.path, "--facet", "epoch", "--facet-values", "0,10,30,50", "-o", out)
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(MAGIC[suffix])
    assert "heatmap, 12 networks" in result.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["--kind", "evolution", "--to-final"],
        ["--kind", "embedding", "--color-by", "run", "--select", "run=r0,r1"],
        ["--kind", "dendrogram", "--layer", "1", "--cumulative"],
        ["--order", "cluster", "--select", "epoch=50"],
    ],
    ids=["evolution", "embedding", "dendrogram", "clustered-heatmap"],
)
def test_cli_kinds(store, tmp_path, args):
    out = tmp_path / "k.png"
    result = run("--store", store.path, *args, "-o", out)
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(MAGIC[".png"])


@pytest.mark.parametrize(
    "args, message",
    [
        (["-o", "{tmp}/f.jpg"], "unknown image type '.jpg'"),
        (["-o", "{tmp}/f"], "unknown image type '(none)'"),
        (["--select", "colour=red", "-o", "{tmp}/f.png"], "unknown key 'colour'"),
        (["--select", "epoch=20", "-o", "{tmp}/f.png"], "matches no network"),
        (["--layer", "2", "-o", "{tmp}/f.png"], "--layer 2 out of range"),
        (["--layer", "-1", "-o", "{tmp}/f.png"], "--layer -1 out of range"),
        (["--facet", "epoch", "--facet-values", "0,20", "-o", "{tmp}/f.png"], "no network with epoch=20"),
        (["-o", "{tmp}/no/such/dir/f.png"], "cannot write"),
        (["--kind", "embedding", "--facet", "epoch", "-o", "{tmp}/f.png"], "--facet draws heatmap panels"),
        (["--facet-values", "0", "-o", "{tmp}/f.png"], "--facet-values needs --facet"),
    ],
    ids=["jpg", "no-extension", "unknown-key", "no-match", "layer", "negative-layer", "facet-value", "unwritable", "facet-kind", "values-alone"],
)
def test_cli_errors_exit_2_with_one_line(store, tmp_path, args, message):
    result = run("--store", store.path, *[a.format(tmp=tmp_path) for a in args])
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_cli_store_without_results(tmp_path):
    from nnstd_dist.store.topology_store import TopologyStore

    TopologyStore.create(tmp_path / "bare.zarr", [(60, 60), (60, 5)])
    result = run("--store", tmp_path / "bare.zarr", "-o", tmp_path / "f.png")
    assert result.exit_code == 2 and "no distances yet" in result.stderr and len(result.stderr.splitlines()) == 1


def test_cli_warns_about_partial_results(partial_store, tmp_path):
    result = run("--store", partial_store.path, "-o", tmp_path / "f.png")
    assert result.exit_code == 0
    m = reduce.labelled_matrix(partial_store)
    assert f"Warning: {m.n_missing} of 66 pairs drawn are not computed yet" in result.stderr
    cluster = run("--store", partial_store.path, "--order", "cluster", "-o", tmp_path / "g.png")
    assert cluster.exit_code == 2 and "clustering needs every pair" in cluster.stderr


def test_the_help_ends_with_a_figure_4_example_that_works(tmp_path):
    """The last line of `plot --help` is run as written, on a store of two runs at the epochs it names."""
    result = CliRunner().invoke(cli, ["plot", "--help"])
    assert result.exit_code == 0
    example = shlex.split(result.output.rstrip().splitlines()[-1])
    assert example[:2] == ["nnstd-dist", "plot"] and example[example.index("--facet") + 1] == "epoch"
    epochs = [int(e) for e in example[example.index("--facet-values") + 1].split(",")]
    networks, records = runs_population(2, epochs, seed=4)
    store = example[example.index("--store") + 1]
    make_store(tmp_path / store, networks, records)
    args = [str(tmp_path / a) if a in (store, example[example.index("-o") + 1]) else a for a in example[2:]]
    ran = CliRunner().invoke(cli, ["plot", *args])
    assert ran.exit_code == 0, ran.output
    figure = tmp_path / example[example.index("-o") + 1]
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"heatmap, {2 * len(epochs)} networks, layer 0" in ran.output


def test_clustered_order_is_named_in_the_title(store):
    m = reduce.labelled_matrix(store, selection={"epoch": ["50"]})
    ordered = m.reordered(embedding.cluster_order(m.values), "clustered")
    assert plot.heatmap(ordered).axes[0].get_title().endswith("clustered")
    assert plot.heatmaps([ordered], "epoch").axes[0].get_title() == "epoch 50, clustered"
