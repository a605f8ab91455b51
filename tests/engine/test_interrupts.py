"""Stop signals inside `deferred_stop()`: recorded, acted on at `check()` as the earlier handler would, handlers restored."""

from __future__ import annotations

import signal
import threading

import pytest

from nnstd_dist.engine.interrupts import deferred_stop


class Raised(BaseException):
    pass


@pytest.fixture(autouse=True)
def python_ctrl_c():
    """Python's own SIGINT handler (importing dask_jobqueue elsewhere in the session replaces it)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture
def sigterm_raises():
    """SIGTERM handled as the CLI does: by raising."""
    def handler(signum, frame):
        raise Raised(signum)

    previous = signal.signal(signal.SIGTERM, handler)
    yield handler
    signal.signal(signal.SIGTERM, previous)


@pytest.mark.parametrize("signum, raised", [(signal.SIGINT, KeyboardInterrupt), (signal.SIGTERM, Raised)], ids=["sigint", "sigterm"])
def test_a_signal_waits_for_the_check_and_raises_there(sigterm_raises, signum, raised):
    reached = []
    with pytest.raises(raised):
        with deferred_stop() as stop:
            signal.raise_signal(signum)  # the handler runs now, in this thread
            reached.append("after the signal")  # not interrupted
            stop.check()
            reached.append("after the check")
    assert reached == ["after the signal"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert signal.getsignal(signal.SIGTERM) is sigterm_raises


def test_a_signal_still_pending_at_the_end_is_raised_there():
    with pytest.raises(KeyboardInterrupt):
        with deferred_stop():
            signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_no_signal_means_no_effect():
    with deferred_stop() as stop:
        stop.check()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_second_signal_acts_at_once():
    with pytest.raises(KeyboardInterrupt):
        with deferred_stop():
            signal.raise_signal(signal.SIGINT)
            signal.raise_signal(signal.SIGINT)  # a user who presses Ctrl-C again does not wait for a check
            pytest.fail("the second signal should have raised")


def test_after_acting_a_later_signal_acts_at_once():
    with deferred_stop() as stop:
        signal.raise_signal(signal.SIGINT)
        with pytest.raises(KeyboardInterrupt):
            stop.check()
        # cleanup after the first signal, e.g. closing the cluster: a second Ctrl-C interrupts it
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)


def test_an_ignored_signal_stays_ignored():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with deferred_stop() as stop:
            signal.raise_signal(signal.SIGINT)
            stop.check()
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_nested_blocks_share_the_outer_recorder():
    with pytest.raises(KeyboardInterrupt):
        with deferred_stop() as outer:
            with deferred_stop() as inner:
                assert inner is outer
                signal.raise_signal(signal.SIGINT)
            # leaving the inner block neither restores the handlers nor acts
            assert signal.getsignal(signal.SIGINT) == outer.record
            outer.check()


def test_off_the_main_thread_nothing_is_installed():
    seen = []

    def body():
        with deferred_stop() as stop:
            seen.append(signal.getsignal(signal.SIGINT))
            stop.check()

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    assert seen == [signal.default_int_handler]
