"""Thin click commands: parse, call the library, report; installed as `nnstd_dist.cli`.

The first code of ours the program runs: Ctrl-C while click and the commands' modules load (before
main() can catch it) is the one line and exit code of any other moment, not a traceback.
main.py puts the previous handler back once it is loaded.
"""

import signal as _signal
import sys as _sys


def _interrupted_while_loading(signum, frame):
    _sys.stderr.write("\nInterrupted.\n")
    raise SystemExit(130)


PREVIOUS_SIGINT = _signal.getsignal(_signal.SIGINT)
if PREVIOUS_SIGINT is _signal.default_int_handler:  # not where an embedding program (a test runner, a notebook) set its own
    _signal.signal(_signal.SIGINT, _interrupted_while_loading)
