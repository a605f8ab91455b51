"""Stop signals acted on where it is safe: SIGINT and SIGTERM are recorded while a run waits on Dask, raised at a check.

Python runs a signal handler in the main thread between two bytecodes. A handler that raises
(``KeyboardInterrupt``, the CLI's ``Terminated``) right after a C call that took a lock, say inside
``threading.Condition.__enter__`` while distributed's ``as_completed`` waits, leaves that lock held
for ever: Dask's event-loop thread then blocks on it, and the cleanup that follows (cancel the
futures, close the client) waits on that thread. Once in CI a run never ended after SIGTERM, which
this explains (it did not recur in 37 runs here).
Inside ``deferred_stop()`` the handlers only record the signal; ``check()``, called where the main
thread holds no lock, hands it to the handler that was installed before, which raises there.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class DeferredStop:
    """The first stop signal received, kept until ``check()`` acts on it; a second one acts at once (a user who insists)."""

    def __init__(self) -> None:
        self.pending: int | None = None
        self.acted = False
        self.previous: dict[int, object] = {}  # signal -> the handler installed before this one

    def record(self, signum: int, frame) -> None:
        if self.pending is None and not self.acted:
            self.pending = signum
        else:
            self._deliver(signum)

    def check(self) -> None:
        """Act on a recorded signal as the earlier handler would have: raise, end the process, or ignore it."""
        signum, self.pending = self.pending, None
        if signum is not None:
            self.acted = True
            self._deliver(signum)

    def _deliver(self, signum: int) -> None:
        handler = self.previous.get(signum, signal.SIG_DFL)
        if callable(handler):
            handler(signum, None)  # e.g. signal.default_int_handler: raises KeyboardInterrupt here
        elif handler == signal.SIG_DFL:
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)  # the default action: the process ends, as it would have without us


_active: DeferredStop | None = None


@contextlib.contextmanager
def deferred_stop() -> Iterator[DeferredStop]:
    """Record SIGINT and SIGTERM for the block; a signal still pending at its normal end is acted on there.

    Nested blocks share the outermost recorder. Off the main thread nothing is installed (Python
    delivers signals to the main thread only) and ``check()`` finds nothing.
    """
    global _active
    if _active is not None or threading.current_thread() is not threading.main_thread():
        yield _active or DeferredStop()
        return
    stop = _active = DeferredStop()
    try:
        for signum in STOP_SIGNALS:
            if signal.getsignal(signum) is not None:  # None: a handler not set from Python, which we could not restore
                stop.previous[signum] = signal.signal(signum, stop.record)
        yield stop
    finally:
        for signum, handler in stop.previous.items():
            signal.signal(signum, handler)
        _active = None
    stop.check()  # reached only without an exception in flight
