"""`nnstd-dist info --store PATH`: what a topology store holds and how far its distances are computed."""

from __future__ import annotations

import json

import click

from nnstd_dist.budget import byte_size

from nnstd_dist.sources.naming import HINT

from .options import json_option, store_option

_RUNS_SHOWN = 6  # a population can have thousands of runs: the text view lists the first and last few


@click.command(epilog="Example:\n\n\b\n  nnstd-dist info --store topos.zarr\n  nnstd-dist info --store topos.zarr --json")
@store_option
@json_option
def command(store, as_json):
    """Describe a store: networks, layers, mean density per layer, runs, epochs, accuracies, pairs computed, size.

    Each layer is shown as its mask's n_in x n_out, then the parameter it was read from and that
    parameter's shape as stored (a conv weight (out, in, kh, kw) is an (in*kh*kw) x out mask whose
    rows come in blocks of kh*kw per input channel).

    Density is connections / (n_in x n_out), averaged over the networks. A pair counts as computed
    once the tile holding it is marked done. For the fast solver, "uncertified" counts the pairs whose
    matching broke a tie that was not proven harmless: only certified pairs are guaranteed blind to
    neuron numbering (README, "The fast solver"). Files: how many the store directory holds (sites with
    a quota count them), their bytes, and the bytes they take on disk (whole filesystem blocks).
    """
    from nnstd_dist.store.inventory import summarize
    from nnstd_dist.store.topology_store import TopologyStore

    summary = summarize(TopologyStore.open(store))
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    for label, value in _lines(summary):
        click.echo(f"{label + ':' if label else '':<12} {value}")


def _lines(s: dict):
    yield "store", f"{s['store']} (format {s['format_version']})"
    yield "files", f"{s['files']}, {byte_size(s['bytes'])} ({byte_size(s['bytes_on_disk'])} on disk)"
    yield "networks", str(s["networks"])
    for layer in s["layers"]:
        density = "n/a" if layer["density"] is None else f"{100 * layer['density']:.3g}%"
        source = ""
        if "param" in layer:  # stores written before parameter names were kept have none
            source = f", {layer['param']} {tuple(layer['weight_shape'])}" + (f", {layer['block']} rows per input channel" if layer["block"] > 1 else "")
        yield ("layers" if layer["layer"] == 0 else ""), f"{layer['layer']}: {layer['shape'][0]} x {layer['shape'][1]}, density {density}{source}"
    yield "connections", f"{s['connections']}" + (
        f" ({s['mask_bytes_per_connection']:.2f} bytes each on disk)" if s["mask_bytes_per_connection"] else ""
    )
    runs = s["runs"]
    shown = runs if len(runs) <= _RUNS_SHOWN else runs[: _RUNS_SHOWN // 2] + ["..."] + runs[-_RUNS_SHOWN // 2 :]
    yield "runs", f"{len(runs)}" + (f" ({', '.join(shown)})" if runs else "")
    epochs = ", ".join(map(str, s["epochs"])) or "none"
    untagged = f"; {s['networks_without_epoch']} network(s) without an epoch" if s["networks_without_epoch"] else ""
    yield "epochs", epochs + untagged
    if "networks_with_accuracy" in s:
        yield "accuracies", f"{s['networks_with_accuracy']} of {s['networks']} networks"
    if s["networks"] and (not runs or s["networks_without_epoch"]):
        yield "", f"({HINT})"  # where runs and epochs come from, and how to give them
    layers = "" if s.get("max_layer") is None else f", layers 0..{s['max_layer']}"
    tile = f" (tile {s['tile']} x {s['tile']}, {s.get('solver')} solver{layers})" if s["tile"] else " (compute not run yet)"
    yield "pairs", f"{s['pairs_computed']} of {s['pairs_total']} computed{tile}"
    if s.get("pairs_uncertified") is not None:
        yield "uncertified", f"{s['pairs_uncertified']} of the {s['pairs_computed']} pairs computed (fast solver, rule {s['tie_rule']}: a tie it broke was not proven harmless)"

