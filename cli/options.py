"""Options shared by several commands, defined once."""

from __future__ import annotations

import functools
import json

import click

from nnstd_dist.cli import GIVEN
from nnstd_dist.sources.discover import ORIENTATIONS


def store_option(command):
    """--store PATH|URL and --storage-options JSON, given to the command as one ``store``: the store's storage."""

    @functools.wraps(command)
    def with_storage(*args, store, storage_options, **kwargs):
        from nnstd_dist.store.storage import open_storage

        if store.lower().startswith("memory://"):
            raise click.BadParameter("memory:// lives inside one process: use it from Python (tests), not the command line",
                                     param_hint="'--store'")
        GIVEN["storage_options"] = storage_options  # the commands a message suggests need them too (main.in_option_terms)
        return command(*args, store=open_storage(store, storage_options), **kwargs)

    with_storage = click.option(
        "--storage-options", "storage_options", default=None, metavar="JSON", callback=_json_object,
        help="Options for a store URL's backend (fsspec's storage options), e.g. '{\"endpoint_url\": \"http://minio:9000\"}' "
        "or '{\"profile\": \"lab\"}'. Credentials are also read where the ecosystem keeps them: for s3://, the AWS_* "
        "environment variables (AWS_ENDPOINT_URL too), profiles, instance roles.",
    )(with_storage)
    return click.option(
        "--store", "store", required=True, metavar="PATH|URL",
        help="The zarr topology store: a folder (topos.zarr), or a URL on an object store (s3://bucket/topos.zarr; "
        "gs://, az://, any fsspec URL zarr opens) for a Dask cluster without a shared filesystem.",
    )(with_storage)


def _json_object(ctx, param, value):
    """--storage-options: a JSON object, or nothing."""
    if value is None:
        return None
    try:
        options = json.loads(value)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON ({exc})") from None
    if not isinstance(options, dict):
        raise click.BadParameter("must be a JSON object, e.g. '{\"endpoint_url\": \"http://localhost:9000\"}'")
    return options


json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON instead of text.")

quiet_option = click.option("--quiet", "-q", is_flag=True, help="No progress bar or summary.")

keep_last_row_option = click.option(
    "--keep-last-row",
    is_flag=True,
    help="Keep the last row of every layer: for files saved without a bias row. By default it is dropped, "
    "since SET files store the bias there.",
)

# The range is checked once, by the library, against the store's layer count.
layer_option = click.option("--layer", type=int, default=0, show_default=True, help="Layer index (0 = first).")

orientation_option = click.option(
    "--orientation",
    type=click.Choice(ORIENTATIONS),
    default="auto",
    show_default=True,
    help="How layers are stored: in-out = n_in x n_out rows (convolutions kh x kw x in x out); out-in = PyTorch's "
    "out x in (convolutions out x in x kh x kw), transposed on reading. auto: out-in for .safetensors, .pt and .pth, "
    "in-out for .npz and SET folders.",
)

last_row_option = click.option(
    "--keep-last-row/--drop-last-row",
    "keep_last_row",
    default=None,
    help="Keep or drop the last row (after --orientation) of every layer of every source. "
    "Default: dropped for SET folders (their bias row), kept for .npz/.safetensors/.pt files.",
)


def param_options(command):
    """--key, --include-param, --exclude-param: which tensors of a file are the layers."""
    command = click.option(
        "--exclude-param", "exclude_params", multiple=True, metavar="GLOB",
        help="Parameters (tensor names) matching GLOB are not layers, e.g. '*downsample*' (repeatable).",
    )(command)
    command = click.option(
        "--include-param", "include_params", multiple=True, metavar="GLOB",
        help="Only parameters matching GLOB are layers (repeatable). Default for .pt/.pth: every tensor of 2+ dimensions "
        "whose name ends in 'weight' (pruned: X.weight_orig + X.weight_mask, the mask); for .npz/.safetensors: every 2-D array.",
    )(command)
    return click.option(
        "--key", default=None, metavar="NAME",
        help="Entry of a .pt/.pth checkpoint dict that holds the state_dict [default: the first of state_dict, "
        "model_state_dict, model_state, model, net, network, module, weights, params that maps names to tensors, "
        "else the file itself].",
    )(command)


def param_filter(key, include_params, exclude_params):
    from nnstd_dist.sources.param_layers import ParamFilter

    return ParamFilter(tuple(include_params), tuple(exclude_params), key)

select_option = click.option(
    "--select", "select", multiple=True, metavar="KEY=VALUE",
    help="Keep networks whose run, epoch or name matches (repeatable; VALUE may be a comma list, run/name may be globs).",
)

solver_option = click.option(
    "--solver",
    type=click.Choice(["exact", "fast"]),
    default=None,
    help="exact: the paper's dense assignment, bit for bit. fast: the same optimum per layer from the neuron pairs "
    "that share inputs, about 10x faster on the paper's networks, and a canonical choice among tied matchings: "
    "symmetric on every pair, and on every pair it certifies (all of the paper's) renumbering hidden neurons changes no "
    "distance; pair, compute's summary, info and exports say which pairs are not certified. Layer 0 equals exact "
    "within 1e-12, deeper layers differ (see the README). Its first run on a machine compiles it (numba, 20-30 s, said in one line). "
    "[default: exact; compute: the store's solver once it has distances]",
)
