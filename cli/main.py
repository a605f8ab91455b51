"""The `nnstd-dist` command group; each subcommand lives in its own module and loads on demand."""

from __future__ import annotations

import ast
import errno
import importlib
import json
import re
import shlex
import sys

import click

from nnstd_dist import __version__
from nnstd_dist.cli import _LOADING, EXIT_INTERRUPTED, GIVEN, loading
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
    "upgrade": "upgrade",
}


# One rule for every command's exit code (the README's "Exit codes"): 0 ok; 1 problems found (verify); 2 bad input
# or store, one `Error:` line; 130 Ctrl-C. SIGTERM keeps its default action, so the process ends by the signal
# (143 as a shell reports it) and a write is never unwound from inside zarr; compute alone handles it (143, in
# order, between tiles: engine/interrupts.py). Every write survives being killed at any point (docs/store.md).
EXIT_OK, EXIT_PROBLEMS, EXIT_BAD_INPUT = 0, 1, 2


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
            with loading():  # numpy, zarr, dask: seconds on a loaded machine
                module = importlib.import_module(f"{__package__}.{COMMANDS[name]}")
        except ModuleNotFoundError as exc:
            if exc.name == f"{__package__}.{COMMANDS[name]}":
                return None  # command not built yet
            raise
        return module.command

    def make_context(self, info_name, args, parent=None, **extra):
        # Ctrl-C while the arguments are parsed: click would print "Aborted!" and exit 1.
        try:
            return super().make_context(info_name, args, parent, **extra)
        except KeyboardInterrupt:
            _interrupted()

    def invoke(self, ctx):
        # The library raises NNSTDError for anything the user can fix: one line, exit 2.
        try:
            return super().invoke(ctx)
        except NNSTDError as exc:
            command = self._load(ctx.invoked_subcommand) if ctx.invoked_subcommand else None
            click.echo(f"Error: {in_option_terms(str(exc), command)}", err=True)
            ctx.exit(EXIT_BAD_INPUT)
        except OSError as exc:  # a path the library did not check: unwritable, a full disk
            if exc.errno == errno.EPIPE:
                raise  # stdout closed early (`| head`): click ends quietly
            click.echo(f"Error: {exc.filename or ''}{': ' if exc.filename else ''}{exc.strerror or exc}", err=True)
            ctx.exit(EXIT_BAD_INPUT)
        except Exception as exc:  # an object store's library failing mid-command (botocore's errors are no OSError)
            if type(exc).__module__.split(".")[0] not in ("botocore", "aiobotocore", "aiohttp"):
                raise
            from nnstd_dist.store.storage.objects import describe_failure

            click.echo(f"Error: {describe_failure(exc)}", err=True)
            ctx.exit(EXIT_BAD_INPUT)
        except KeyboardInterrupt:  # click's own handling would print "Aborted!" and exit 1
            _interrupted()


def _interrupted():
    """Ctrl-C at any moment: one line, exit 130 (SystemExit passes through click untouched)."""
    sys.stderr.write("\nInterrupted.\n")
    raise SystemExit(EXIT_INTERRUPTED)


# A library message names another step as its library call, e.g. `compute('s.zarr', max_layer=2, recompute=True)`:
# the function -> the command that runs it. The call's first argument is the store.
STEPS = {"compute": "compute", "verify": "verify", "add_networks": "ingest", "upgrade": "upgrade"}
_CALL = re.compile(r"`(\w+)\(([^`]*)\)`")


def in_option_terms(message: str, command: click.Command | None) -> str:
    """A library message with each step it names shown as a command line, and each `parameter` as the option of ``command`` that sets it."""
    message = _CALL.sub(_command_line, message)
    if command is None:
        return message
    flags = {p.name: "/".join(p.opts + p.secondary_opts) for p in command.params if isinstance(p, click.Option)}
    return re.sub(r"`([a-z_]+)`", lambda m: flags.get(m[1], m[0]), message)


def _command_line(call: re.Match) -> str:
    """`compute('s.zarr', max_layer=2, recompute=True)` -> `nnstd-dist compute --store s.zarr --max-layer 2 --recompute`."""
    name = STEPS.get(call[1])
    command = LazyGroup._load(name) if name else None
    try:
        parsed = ast.parse(call[0][1:-1], mode="eval").body
        values = [ast.literal_eval(a) for a in parsed.args[:1]]
        keywords = {"store": values[0]} if values else {}
        keywords.update({k.arg: ast.literal_eval(k.value) for k in parsed.keywords})
    except (SyntaxError, ValueError):
        return call[0]
    if command is None:
        return call[0]
    options = {p.name: p for p in command.params if isinstance(p, click.Option)}
    words = ["nnstd-dist", name]
    words += [p.human_readable_name for p in command.params if isinstance(p, click.Argument) and p.required]
    for key, value in keywords.items():
        if key not in options:
            return call[0]
        flag = max(options[key].opts, key=len)
        words += [flag] if value is True and options[key].is_flag else [flag, shlex.quote(str(value))]
    given = GIVEN.get("storage_options")
    if given and "storage_options" in options and "storage_options" not in keywords:  # the store is only reached with them
        words += ["--storage-options", shlex.quote(json.dumps(given))]
    return f"`{' '.join(words)}`"


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
    """The program's entry point: a Ctrl-C that escapes click (while a command's modules load, or as it ends) is exit 130 too."""
    try:
        cli.main(args=argv, prog_name="nnstd-dist")
    except KeyboardInterrupt:
        _interrupted()


_LOADING.__exit__(None, None, None)  # loaded: a Ctrl-C is a KeyboardInterrupt again, caught where it lands (see main)

if __name__ == "__main__":
    sys.exit(main())
