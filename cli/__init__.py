"""Thin click commands: parse, call the library, report; installed as `nnstd_dist.cli`.

The first code of ours the program runs: Ctrl-C while click and a command's modules load is the one
line and exit code of any other moment, not a traceback. While modules load nothing is written yet,
and a KeyboardInterrupt raised inside the import machinery may be printed and dropped ("Exception
ignored"), so the process ends at once instead; main.py puts the previous handler back once loaded,
and again after each command module is imported (``loading``).
"""

import contextlib as _contextlib
import os as _os
import signal as _signal

EXIT_INTERRUPTED = 130
GIVEN: dict = {}  # what this process's command was given that a command it suggests must repeat: its storage options


def _exit_while_loading(signum, frame):
    _os.write(2, b"\nInterrupted.\n")
    _os._exit(EXIT_INTERRUPTED)


@_contextlib.contextmanager
def loading():
    """Ctrl-C ends the process at once (exit 130, one line) while the block imports modules; the handler before is kept otherwise."""
    previous = _signal.getsignal(_signal.SIGINT)
    if previous is not _signal.default_int_handler:  # an embedding program's (a test runner's, a notebook's) own: left alone
        yield
        return
    _signal.signal(_signal.SIGINT, _exit_while_loading)
    try:
        yield
    finally:
        _signal.signal(_signal.SIGINT, previous)


_LOADING = loading()
_LOADING.__enter__()  # left by main.py once click and the command group are loaded
