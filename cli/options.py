"""Options shared by several commands, defined once."""

from __future__ import annotations

import click

store_option = click.option(
    "--store",
    "store",
    required=True,
    type=click.Path(file_okay=True, dir_okay=True, path_type=str),
    help="Path of the zarr topology store (a directory, e.g. topos.zarr).",
)

json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON instead of text.")

quiet_option = click.option("--quiet", "-q", is_flag=True, help="No progress bar or summary.")

keep_last_row_option = click.option(
    "--keep-last-row",
    is_flag=True,
    help="Keep the last row of every layer: for files saved without a bias row. By default it is dropped, "
    "since SET files store the bias there.",
)

layer_option = click.option("--layer", type=click.IntRange(min=0), default=0, show_default=True, help="Layer index (0 = first).")
