"""`nnstd-dist ingest SOURCE... --store PATH`: add networks to a topology store, all or nothing."""

from __future__ import annotations

import click

from .options import last_row_option, orientation_option, param_filter, param_options, quiet_option, store_option
from .text import count


@click.command(
    epilog="Example:\n\n\b\n  nnstd-dist ingest topo/ --store topos.zarr\n"
    "  nnstd-dist ingest checkpoints/*.safetensors --store models.zarr\n"
    "  nnstd-dist ingest runs/ --store cnns.zarr --exclude-param '*downsample*'\n"
    "  nnstd-dist ingest ckpt/*.pt --store cnns.zarr --key ema_state_dict\n"
    "  nnstd-dist ingest runs/ --store topos.zarr --exclude 'optimizer_*.npz' --exclude scratch\n"
    "  nnstd-dist ingest tickets/ --store tickets.zarr --layout '{run}/round{epoch}.pt'  # tickets/seed0/round3.pt: run seed0, epoch 3\n"
    "  nnstd-dist ingest tickets/ --store tickets.zarr --metadata tickets.csv             # name,run,epoch,accuracy",
)
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=str))
@store_option
@orientation_option
@last_row_option
@param_options
@click.option(
    "--exclude", "exclude", multiple=True, metavar="GLOB",
    help="Skip files and folders whose name, or path relative to SOURCE, matches GLOB (repeatable), e.g. 'optimizer_*.npz'.",
)
@click.option(
    "--layout", default=None, metavar="PATTERN",
    help="Runs and epochs from your own file naming: a path under each SOURCE with {run} (one or more folders or a name "
    "part), {epoch} (a whole number) and * (anything within a part), e.g. '{run}/round{epoch}.pt' or '*_seed{run}_ep{epoch}.npz'. "
    "Every network must match. [default: an epoch_NNN part is the epoch, the parts above it the run]",
)
@click.option(
    "--metadata", type=click.Path(dir_okay=False, path_type=str), default=None, metavar="FILE.csv",
    help="A CSV table with a header: a column name (as ingest names the networks) or path (relative to the table's "
    "folder), and any of run, epoch, accuracy; an empty cell gives nothing. It wins over --layout and epoch_NNN.",
)
@click.option("--replace", is_flag=True, help="Overwrite networks whose name is in the store with other connections (their distances are reset).")
@quiet_option
def command(sources, store, orientation, keep_last_row, key, include_params, exclude_params, exclude, layout, metadata, replace, quiet):
    """Add the networks found in SOURCE... to the store (created if missing).

    \b
    What counts as a network:
      - a folder holding weight_l0.npz ... weight_lK.npz (SET layout, scipy.sparse.save_npz,
        bias in the last row), found recursively; named by its path relative to SOURCE
        (e5_s0_w0/epoch_000), or by its own folder name if SOURCE is that folder;
      - any other .npz (dense arrays) or .safetensors file: its 2-D arrays are the layers in
        natural order of their keys (fc2 before fc10, arr_9 before arr_10); 0-D and 1-D arrays
        (biases, counters) are skipped; named by its path relative to SOURCE without the
        suffix. An .npz saved by scipy.sparse.save_npz is a one-layer network. Arrays of
        3+ dimensions are convolutions, (kh, kw, in, out) or with out-in (out, in, kh, kw);
      - a .pt/.pth PyTorch checkpoint (torch.save; read without torch, no pickled code run):
        its state_dict's tensors of 2+ dimensions named *weight, in file order; a pruned
        X.weight_orig + X.weight_mask is the mask. A conv weight (out, in, kh, kw) is a layer
        whose neurons are its output channels.

    \b
    Metadata: an epoch_NNN path part is the epoch and the parts above it the run;
    testacc.txt in the run folder gives the accuracy at epoch e on line e+1: its one
    number, or the middle of three (SET's metrics: train loss, test accuracy, test loss).
    Named otherwise (runs/seed0/round3.pt), say how with --layout, or list them in a
    table with --metadata; `nnstd-dist info` shows the runs and epochs found.

    Hidden files and folders, zarr stores and the distance matrices that `nnstd-dist export`
    writes (an exported distances.npz) are skipped, the latter with a note; --exclude skips more.

    Non-zero means connected; only the connections are stored. Networks are added in natural
    order of name. A network already stored with the same name and connections is left as it
    is; the same name with other connections is an error unless --replace. With --layout or
    --metadata, networks already stored take the runs, epochs and accuracies they give. Every source is
    read and checked before the store is touched: on any error the store is left unchanged.
    """
    from nnstd_dist.sources.naming import Naming
    from nnstd_dist.store.topology_store import add_networks

    naming = Naming.load(layout, metadata)
    networks = _read(sources, exclude, orientation, keep_last_row, param_filter(key, include_params, exclude_params), naming, quiet)
    report, created = add_networks(store, networks, replace=replace, command=f"nnstd-dist ingest --store {store}", relabel=naming.given)
    if not quiet:
        click.echo(_summary(store, report, created))


def _read(sources, exclude, orientation, keep_last_row, params, naming, quiet: bool):
    """Every network found under ``sources`` read and checked (a progress bar on stderr for two or more)."""
    import sys

    from nnstd_dist.sources.discover import find_networks, read_networks

    discovery = find_networks(sources, exclude)
    for path in discovery.exports:
        click.echo(f"Note: skipped {path}: a distance matrix written by `nnstd-dist export`, not a network", err=True)
    found = discovery.networks
    if quiet or len(found) < 2:
        return read_networks(found, orientation, keep_last_row, params, naming)
    with click.progressbar(found, label=f"Reading {len(found)} networks", file=sys.stderr) as bar:
        return read_networks(bar, orientation, keep_last_row, params, naming)


def _summary(store: str, report, created: bool) -> str:
    """One line: what was added, left unchanged and replaced, and how many networks the store holds now."""
    from nnstd_dist.store.topology_store import TopologyStore

    total = TopologyStore.open(store).n_networks
    relabelled = f"; {count(len(report.relabelled), 'network')} relabelled (new run, epoch or accuracy)" if report.relabelled else ""
    if not created and not report.added and not report.replaced:
        return f"nothing to add: all {count(len(report.unchanged), 'network')} found are already in {store} ({count(total, 'network')}){relabelled}"
    verb = "created" if created else "updated"
    return (
        f"added {len(report.added)}, unchanged {len(report.unchanged)}, replaced {len(report.replaced)}: "
        f"{verb} {store} ({count(total, 'network')}){relabelled}"
    )
