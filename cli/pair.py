"""`nnstd-dist pair A B`: the per-layer NNSTD of two network directories."""

from __future__ import annotations

import json

import click

from nnstd_dist import load_set_network, nnstd

from .options import json_option, keep_last_row_option


@click.command(
    epilog="Example:\n\n\b\n  nnstd-dist pair topo/net_001 topo/net_000\n  nnstd-dist pair topo/net_001 topo/net_000 --json",
)
@click.argument("network_a", type=click.Path(path_type=str))
@click.argument("network_b", type=click.Path(path_type=str))
@json_option
@keep_last_row_option
def command(network_a, network_b, as_json, keep_last_row):
    """Print NNSTD(NETWORK_A, NETWORK_B), one distance per layer.

    Each network is a directory of weight_l0.npz, weight_l1.npz, ... (SET layout, bias in the
    last row). Layer k > 0 is compared after B's neurons are matched to A's in layer k-1, so
    the order of A and B matters for k > 0 when the matching has ties.
    """
    distances = nnstd(load_set_network(network_a, keep_last_row), load_set_network(network_b, keep_last_row))
    if as_json:
        click.echo(json.dumps({"a": network_a, "b": network_b, "layers": [float(d) for d in distances]}))
    else:
        for k, d in enumerate(distances):
            click.echo(f"layer {k}: {d:.17g}")
