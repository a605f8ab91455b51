"""What the panels of the paper's Figure_4.png show: their colours read back as distances, beside nnstd-dist's.

The figure draws each 10 x 10 layer-0 matrix with matplotlib's ``gnuplot`` colormap on 0..1, whose red
channel is sqrt(x): x = (red / 255)^2 at each cell's centre. Each panel is compared with the distances
of the networks it may show: the paper's epoch folders, and the seed experiment (one Erdos-Renyi network
at 0.6 %, nine that each change 1 % of the previous one's connections; this project's topo/ is one).

    git clone --depth 1 https://github.com/Shiweiliuiiiiiii/Sparse_Topology_Distance ../paper
    nnstd-dist ingest ../paper/topo --store paper.zarr && nnstd-dist compute --store paper.zarr --max-layer 0
    nnstd-dist ingest topo --store topos.zarr && nnstd-dist compute --store topos.zarr --max-layer 0
    .venv/bin/python benchmarks/figure4_panels.py --figure ../paper/Figure_4.png --paper paper.zarr --seeds topos.zarr
"""

from __future__ import annotations

import argparse

import numpy as np
from PIL import Image

from nnstd_dist.store.topology_store import TopologyStore
from nnstd_dist.views.reduce import labelled_matrix

PANELS = {"a": 0, "b": 10, "c": 30, "d": 50, "e": 100, "f": 190}  # the captions: (a) Epoch 0 ... (f) Epoch 190
# the figure's 2 x 3 grid: rough pixel boxes holding each panel's heatmap (its colourbar lies outside them)
BOXES = {"a": (30, 280, 30, 280), "b": (30, 280, 360, 610), "c": (30, 280, 690, 945),
         "d": (450, 700, 30, 280), "e": (450, 700, 360, 610), "f": (450, 700, 690, 945)}


def read_panel(image: np.ndarray, box) -> np.ndarray:
    """The 10 x 10 values of one heatmap: its extent is where rows and columns are mostly coloured (or black)."""
    y0, y1, x0, x1 = box
    rgb = image[y0:y1, x0:x1]
    coloured = (rgb.max(axis=2) != rgb.min(axis=2)) | (rgb.max(axis=2) == 0)
    rows, cols = np.flatnonzero(coloured.sum(axis=1) > 150), np.flatnonzero(coloured.sum(axis=0) > 150)
    centres_y = y0 + rows[0] + (np.arange(10) + 0.5) * (rows[-1] - rows[0] + 1) / 10
    centres_x = x0 + cols[0] + (np.arange(10) + 0.5) * (cols[-1] - cols[0] + 1) / 10
    red = [[np.median(image[int(y) - 3 : int(y) + 4, int(x) - 3 : int(x) + 4, 0]) for x in centres_x] for y in centres_y]
    return (np.array(red) / 255.0) ** 2


def matrix(store: str, epoch: int | None) -> np.ndarray:
    """Layer 0 of 10 networks: one epoch's runs w0..w9 in order, or all networks of a store without epochs."""
    selection = {"epoch": [str(epoch)]} if epoch is not None else None
    m = labelled_matrix(TopologyStore.open(store), layer=0, selection=selection)
    if m.values.shape != (10, 10):
        raise SystemExit(f"{store}: expected 10 networks{f' at epoch {epoch}' if epoch is not None else ''}, got {m.values.shape[0]}")
    return m.values


def compare(figure: np.ndarray, ours: np.ndarray) -> str:
    off = ~np.eye(10, dtype=bool)
    diff = figure[off] - ours[off]
    return f"{ours[off].min():.3f}-{ours[off].max():.3f}, |figure - it| <= {np.abs(diff).max():.3f}, mean {diff.mean():+.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--figure", required=True, help="Figure_4.png of the paper's repository")
    parser.add_argument("--paper", required=True, help="a store of the paper's topo/, layer 0 computed")
    parser.add_argument("--seeds", required=True, help="a store of a seed experiment (e.g. the bundled topo/), layer 0 computed")
    args = parser.parse_args()
    image = np.asarray(Image.open(args.figure).convert("RGB")).astype(int)
    seeds = matrix(args.seeds, None)
    for panel, epoch in PANELS.items():
        values = read_panel(image, BOXES[panel])
        off = values[~np.eye(10, dtype=bool)]
        print(f"panel ({panel}) 'Epoch {epoch}': figure {off.min():.3f}-{off.max():.3f}")
        print(f"    the paper's epoch_{epoch:03d}: {compare(values, matrix(args.paper, epoch))}")
        if epoch == 0:
            print(f"    the seed experiment:  {compare(values, seeds)}")


if __name__ == "__main__":
    main()
