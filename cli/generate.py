"""`nnstd-dist generate OUT`: write a synthetic population of sparse networks in the SET layout."""

from __future__ import annotations

import sys
import time

import click

from nnstd_dist.sources.generate import MODES, write_networks

from .options import quiet_option
from .text import duration


class LayerSizes(click.ParamType):
    """A comma-separated list of integers, e.g. 784,784,10."""

    name = "N,N,..."

    def convert(self, value, param, ctx):
        if isinstance(value, (list, tuple)):
            return tuple(value)
        try:
            return tuple(int(part) for part in value.split(","))
        except ValueError:
            self.fail(f"{value!r} is not a comma-separated list of integers, e.g. 784,784,10", param, ctx)


@click.command(
    epilog=(
        "Example (the seed experiment, as bundled in topo/):\n\n\b\n"
        "  nnstd-dist generate topo --layers 784,784,784,784,10 --density 0.006 --networks 10 --rewire 0.01 --seed 0\n"
        "  nnstd-dist pair topo/net_001 topo/net_000"
    ),
)
@click.argument("out", type=click.Path(file_okay=False, path_type=str))
@click.option("--layers", type=LayerSizes(), default="784,784,784,784,10", show_default=True,
              help="Neuron counts, input first: 784,784,10 means layers 784 x 784 and 784 x 10.")
@click.option("--density", type=float, default=0.006, show_default=True,
              help="Fraction of connections present in every layer but the last (which is dense).")
@click.option("--networks", "n_networks", type=int, default=10, show_default=True, help="Number of networks to write.")
@click.option("--rewire", type=float, default=0.01, show_default=True,
              help="Fraction of a layer's connections moved from one network to the next.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed; same seed, same networks.")
@click.option("--mode", type=click.Choice(MODES), default="chain", show_default=True,
              help="chain: each network rewires the previous one; independent: each drawn afresh (a baseline).")
@click.option("--overwrite", is_flag=True, help="Replace the networks a previous `generate` wrote in OUT.")
@quiet_option
def command(out, layers, density, n_networks, rewire, seed, mode, overwrite, quiet):
    """Write a synthetic population of sparse networks to OUT/net_000, OUT/net_001, ...

    Reproduces the seed experiment of Liu et al. (2020): "We initialize one sparse network with
    a density level of 0.6%. Then, we generate 9 networks by iteratively changing 1% of the
    connections from the previous generation step." The first network's sparse layers (all but
    the last) are Erdos-Renyi masks with exactly round(density * n_in * n_out) connections; each
    next network moves exactly round(rewire * connections) of them to positions that were empty,
    so density stays exact and NNSTD to the first network grows step by step.

    Each network is a directory of weight_l0.npz, weight_l1.npz, ... in the SET layout
    (scipy sparse, weights 1.0, plus a full bias row that readers drop), ready for `pair` and
    `ingest`. No accuracies are written: these networks were never trained.
    """
    started = time.perf_counter()
    written = write_networks(out, layers, density, n_networks, rewire, seed, mode, overwrite)  # checks first
    n_bytes = 0
    stderr = sys.stderr  # looked up per call, so CliRunner can capture it
    # Off a terminal click would print the bare label once: noise in logs, so no bar at all there.
    with click.progressbar(written, length=n_networks, label="generating", file=stderr,
                           hidden=quiet or not stderr.isatty()) as bar:
        for _name, size in bar:
            n_bytes += size
    if not quiet:
        seconds = time.perf_counter() - started
        click.echo(f"wrote {n_networks} networks ({n_bytes / 1e6:.1f} MB) to {out} in {duration(seconds)}")
