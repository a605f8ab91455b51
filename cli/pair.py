"""`nnstd-dist pair A B`: the per-layer NNSTD of two networks, from any source `ingest` accepts."""

from __future__ import annotations

import json

import click

from .options import json_option, last_row_option, orientation_option, param_filter, param_options, solver_option


@click.command(
    epilog="Examples:\n\n\b\n  nnstd-dist pair topo/net_001 topo/net_000\n  nnstd-dist pair topo/net_001 topo/net_000 --json\n"
    "  nnstd-dist pair runs/seed1.pt runs/seed0.pt --exclude-param '*downsample*'\n"
    "  nnstd-dist pair topo/net_001 topo/net_000 --solver sparse",
)
@click.argument("network_a", type=click.Path(path_type=str))
@click.argument("network_b", type=click.Path(path_type=str))
@json_option
@orientation_option
@last_row_option
@param_options
@solver_option
def command(network_a, network_b, as_json, orientation, keep_last_row, key, include_params, exclude_params, solver):
    """Print NNSTD(NETWORK_A, NETWORK_B), one distance per layer.

    Each network is any one source `nnstd-dist ingest` reads: a SET folder of weight_l0.npz,
    weight_l1.npz, ... (bias in the last row, dropped), an .npz or .safetensors file, or a
    PyTorch .pt/.pth checkpoint (see `nnstd-dist ingest --help`). Layer k > 0 is compared after
    B's neurons are matched to A's in layer k-1 (for a convolution, whole channels), so the
    order of A and B matters for k > 0 when the matching has ties.
    """
    from nnstd_dist.sources.discover import discover, read_network
    from nnstd_dist.kernel.distance import nnstd_prepared, prepare

    params = param_filter(key, include_params, exclude_params)
    networks = []
    for given in (network_a, network_b):
        found = discover([given])
        if len(found) != 1:
            raise click.UsageError(f"{given}: holds {len(found)} networks, give one ({found[0].path}, {found[1].path}, ...)")
        record, masks = read_network(found[0], orientation, keep_last_row, params=params)
        networks.append((masks, [spec.block for spec in record.layers] or None))
    (masks_a, blocks_a), (masks_b, blocks_b) = networks
    distances = nnstd_prepared(prepare(masks_a, blocks_a), prepare(masks_b, blocks_b), solver=solver)
    if as_json:
        click.echo(json.dumps({"a": network_a, "b": network_b, "solver": solver, "layers": [float(d) for d in distances]}))
    else:
        for k, d in enumerate(distances):
            click.echo(f"layer {k}: {d:.17g}")
