"""`nnstd-dist pair A B`: the per-layer NNSTD of two networks, from any source `ingest` accepts."""

from __future__ import annotations

import json

import click

from .options import json_option, last_row_option, orientation_option, param_filter, param_options, solver_option


@click.command(
    epilog="Examples:\n\n\b\n  nnstd-dist pair topo/net_001 topo/net_000\n  nnstd-dist pair topo/net_001 topo/net_000 --json\n"
    "  nnstd-dist pair runs/seed1.pt runs/seed0.pt --exclude-param '*downsample*'\n"
    "  nnstd-dist pair topo/net_001 topo/net_000 --solver fast",
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

    Each line is a layer's distance, as the shortest decimal that reads back as the same
    float64 (as in --json), and the parameter it was read from (as `nnstd-dist info` shows).
    With --solver fast a last line says whether the pair is certified: every tie the solver
    broke was between provably interchangeable neurons, so the distances do not depend on how
    either network numbers its hidden neurons (README, "The fast solver").
    """
    from nnstd_dist.kernel.distance import nnstd_certified

    solver = solver or "exact"
    if solver == "fast":
        from nnstd_dist.warmup import compile_fast_solver

        compile_fast_solver()  # the first run on a machine: one line on stderr before 20-30 s of compiling
    params = param_filter(key, include_params, exclude_params)
    (record_a, topology_a), (record_b, topology_b) = (_read(given, orientation, keep_last_row, params) for given in (network_a, network_b))
    values, certified = nnstd_certified(topology_a, topology_b, solver=solver)
    distances = [float(d) for d in values]
    names = [_param(a.param, b.param) for a, b in zip(record_a.layers, record_b.layers)]
    if as_json:
        click.echo(json.dumps({"a": network_a, "b": network_b, "solver": solver, "layers": distances, "params": names, "certified": certified}))
        return
    for k, (d, name) in enumerate(zip(distances, names)):
        click.echo(f"layer {k}: {d!r}  ({name})")  # repr: the shortest text that reads back as the same float, as in --json
    if certified is not None:
        click.echo(
            "certified: yes (every tie the fast solver broke was between interchangeable neurons)" if certified else
            "certified: no (a tie the fast solver broke was not proven harmless: renumbering neurons may change layers > 0)"
        )


def _read(given: str, orientation, keep_last_row, params):
    """The record and prepared topology of the one network at ``given``."""
    from nnstd_dist.kernel.distance import prepare
    from nnstd_dist.sources.discover import discover, read_network

    found = discover([given])
    if len(found) != 1:
        raise click.UsageError(f"{given}: holds {len(found)} networks, give one ({found[0].path}, {found[1].path}, ...)")
    record, masks = read_network(found[0], orientation, keep_last_row, params=params)
    return record, prepare(masks, [spec.block for spec in record.layers] or None)


def _param(a: str, b: str) -> str:
    """A layer's parameter name, or both names when A and B call it differently."""
    return a if a == b else f"{a} / {b}"
