"""`kill PID` (SIGTERM) handled as Ctrl-C: long work (a training, a count) stops the same way
either way, keeping what it finished. A job started in the background (`make train &`, nohup)
begins with SIGINT ignored, so SIGTERM is how a scheduler or a user stops it."""
from __future__ import annotations

import contextlib
import signal
import threading


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
