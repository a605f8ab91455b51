"""The `nnstd-dist` command group; each subcommand lives in its own module and loads on demand."""

from __future__ import annotations

import importlib
import re
import sys

import click

from nnstd_dist import __version__
from nnstd_dist.errors import NNSTDError

# name -> module in this package that defines a click command called `command`.
# Imported lazily so that `nnstd-dist pair` or `--help` never pays for dask or zarr.
COMMANDS = {
    "pair": "pair",
    "generate": "generate",
    "ingest": "ingest",
    "info": "info",
    "compute": "compute",
    "export": "export",
    "plot": "plot",
    "report": "report",
    "verify": "verify",
}


class LazyGroup(click.Group):
    """A group whose commands are imported only when listed or invoked."""

    def list_commands(self, ctx):
        return [name for name in COMMANDS if self._load(name) is not None]

    def get_command(self, ctx, name):
        return self._load(name)

    @staticmethod
    def _load(name):
        if name not in COMMANDS:
            return None
        try:
            module = importlib.import_module(f"{__package__}.{COMMANDS[name]}")
        except ModuleNotFoundError as exc:
            if exc.name == f"{__package__}.{COMMANDS[name]}":
                return None  # command not built yet
            raise
        return module.command

    def invoke(self, ctx):
        # The library raises NNSTDError for anything the user can fix: one line, exit 2.
        try:
            return super().invoke(ctx)
        except NNSTDError as exc:
            command = self._load(ctx.invoked_subcommand) if ctx.invoked_subcommand else None
            click.echo(f"Error: {in_option_terms(str(exc), command)}", err=True)
            ctx.exit(2)


def in_option_terms(message: str, command: click.Command | None) -> str:
    """A library message with each `parameter` it names shown as the option of ``command`` that sets it."""
    if command is None:
        return message
    flags = {p.name: "/".join(p.opts + p.secondary_opts) for p in command.params if isinstance(p, click.Option)}
    return re.sub(r"`([a-z_]+)`", lambda m: flags.get(m[1], m[0]), message)


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="Example:\n\n\b\n  nnstd-dist ingest topo/ --store topos.zarr\n  nnstd-dist compute --store topos.zarr\n  nnstd-dist plot --store topos.zarr -o distances.png",
)
@click.version_option(__version__, prog_name="nnstd-dist")
def cli():
    """Neural Network Sparse Topology Distance (NNSTD) for populations of sparse networks.

    Ingest topologies into a zarr store, compute all pairwise distances on local cores or a
    Dask cluster, then export or plot the distance matrix.
    """


def main(argv: list[str] | None = None) -> None:
    cli.main(args=argv, prog_name="nnstd-dist")


if __name__ == "__main__":
    sys.exit(main())
