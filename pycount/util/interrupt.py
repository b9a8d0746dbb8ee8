"""`kill PID` (SIGTERM) handled as Ctrl-C: long work (a training, a count) stops the same way
either way, keeping what it finished. A job started in the background (`make train &`, nohup)
begins with SIGINT ignored, so SIGTERM is how a scheduler or a user stops it."""
from __future__ import annotations

import contextlib
import os
import signal
import threading

# Set by a parent that starts pycount commands as its children (the protocol's trainings) to its
# own process id: the child asks the kernel for SIGTERM when that parent dies (follow_parent)
PARENT_ENV = "PYCOUNT_PARENT_PID"


@contextlib.contextmanager
def sigterm_as_interrupt():
    """Within the block, SIGTERM raises KeyboardInterrupt in the main thread; the previous
    handler is restored after. Only the main thread can own a signal handler: elsewhere (a
    worker thread) nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def stop_once():
    """As sigterm_as_interrupt, for a stop that must write something before it ends (a
    training's snapshot): the first SIGINT or SIGTERM raises KeyboardInterrupt and turns both
    to ignored until the block is left, so that the work done on the way out is not cut short.
    A stop often comes twice: Ctrl-C reaches a protocol's runs itself and the protocol then
    sends each SIGTERM, or a user presses Ctrl-C again; the second killed a training mid-
    snapshot. A SIGINT ignored from the start (a background job) stays ignored. Main thread
    only, as signal handlers; elsewhere nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    stops = [signal.SIGTERM] + ([signal.SIGINT]
                                if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN else [])

    def stop(signum, frame):
        for s in stops:
            signal.signal(s, _ignore)
        raise KeyboardInterrupt(f"signal {signum}")
    previous = [signal.signal(s, stop) for s in stops]
    try:
        yield
    finally:
        for s, h in zip(stops, previous):
            signal.signal(s, h)


def _ignore(signum, frame) -> None:
    """A stop that came while the first one is being answered."""


def by_sigterm(stop: KeyboardInterrupt) -> bool:
    """Whether a KeyboardInterrupt was raised for SIGTERM by the handlers above (their message
    names the signal), rather than by Ctrl-C."""
    return str(stop) == f"signal {int(signal.SIGTERM)}"


def follow_parent() -> None:
    """In a child started with PARENT_ENV set: SIGTERM to this process when its parent dies,
    however it dies (a parent killed with SIGKILL cannot stop its children itself; they ran
    on, holding their run folders' locks). Linux's PR_SET_PDEATHSIG; elsewhere nothing. A
    parent already gone by now: the same SIGTERM at once."""
    parent = os.environ.get(PARENT_ENV, "")
    if not parent.isdigit():
        return
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM), 0, 0, 0)          # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):                       # not Linux: no such call
        return
    if os.getppid() != int(parent):
        os.kill(os.getpid(), signal.SIGTERM)
