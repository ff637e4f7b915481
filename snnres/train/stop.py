"""Ctrl-C and SIGTERM during training: finish the current step, save, stop.

Stopping in the middle of a step (or of a checkpoint write) would save a state that is neither
before nor after that step. Inside :func:`stop_requests` the first SIGINT or SIGTERM only sets a
flag that the training loop reads between steps (and between evaluation batches); the loop then
saves ``last.pt`` at that exact position and raises :class:`Stopped`. A second signal stops at
once (``KeyboardInterrupt``), leaving the files of the last save. Outside it, SIGTERM raises
``KeyboardInterrupt`` like Ctrl-C.
"""

from __future__ import annotations

import signal
from contextlib import contextmanager


class Stopped(KeyboardInterrupt):
    """Training stopped on request after saving its state; ``message`` says where and how to go on."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class StopFlag:
    def __init__(self) -> None:
        self.requested = False
        self.signal_name = ""

    def __bool__(self) -> bool:
        return self.requested


@contextmanager
def sigterm_as_interrupt():
    """SIGTERM raises ``KeyboardInterrupt`` (as Ctrl-C does) while the block runs."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    with _handlers(interrupt):
        yield


@contextmanager
def stop_requests():
    """Yields a :class:`StopFlag` that the first SIGINT/SIGTERM sets; the second interrupts."""
    flag = StopFlag()

    def request(signum, frame):
        if flag.requested:
            raise KeyboardInterrupt
        flag.requested = True
        flag.signal_name = signal.Signals(signum).name

    with _handlers(request, (signal.SIGINT, signal.SIGTERM)):
        yield flag


@contextmanager
def _handlers(handler, signals=(signal.SIGTERM,)):
    previous = {}
    try:
        for sig in signals:
            previous[sig] = signal.signal(sig, handler)
    except ValueError:  # not the main thread: leave the signals alone
        for sig, old in previous.items():
            signal.signal(sig, old)
        previous = {}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
