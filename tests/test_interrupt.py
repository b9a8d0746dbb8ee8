"""`kill PID` handled as Ctrl-C (pycount.util.interrupt): the handlers raise KeyboardInterrupt
naming the signal, a stop that must write something ignores the stops after the first, and the
handlers before are restored on the way out."""
import os
import signal
import subprocess
import sys
import threading

import pytest

from pycount.util import interrupt


@pytest.fixture
def handlers():
    """SIGINT and SIGTERM as a test found them, restored after it."""
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for s, h in before.items():
        signal.signal(s, h)


def _mine(signum, frame):
    raise AssertionError("the handler from before was called")


def test_sigterm_raises_keyboard_interrupt_within_the_block_and_the_handler_comes_back(
        handlers):
    signal.signal(signal.SIGTERM, _mine)
    with pytest.raises(KeyboardInterrupt) as stop:
        with interrupt.sigterm_as_interrupt():
            os.kill(os.getpid(), signal.SIGTERM)
    assert interrupt.by_sigterm(stop.value)
    assert signal.getsignal(signal.SIGTERM) is _mine


def test_a_ctrl_c_or_another_signal_is_not_taken_for_sigterm():
    assert not interrupt.by_sigterm(KeyboardInterrupt())
    assert not interrupt.by_sigterm(KeyboardInterrupt(f"signal {int(signal.SIGINT)}"))
    assert interrupt.by_sigterm(KeyboardInterrupt(f"signal {int(signal.SIGTERM)}"))


def test_a_stop_answered_once_ignores_the_next_until_the_block_is_left(handlers):
    """The first SIGTERM stops the block; a second SIGTERM or a Ctrl-C while the snapshot is
    written does nothing; after the block both handlers are those from before."""
    signal.signal(signal.SIGTERM, _mine)
    signal.signal(signal.SIGINT, _mine)
    wrote = []
    with pytest.raises(KeyboardInterrupt) as stop:
        with interrupt.stop_once():
            try:
                os.kill(os.getpid(), signal.SIGTERM)
            finally:
                os.kill(os.getpid(), signal.SIGTERM)
                os.kill(os.getpid(), signal.SIGINT)
                wrote.append("snapshot")
    assert interrupt.by_sigterm(stop.value) and wrote == ["snapshot"]
    assert signal.getsignal(signal.SIGTERM) is _mine
    assert signal.getsignal(signal.SIGINT) is _mine


def test_a_first_ctrl_c_stops_once_too(handlers):
    # Python's own Ctrl-C handler, as in a foreground process (pytest run as a background job,
    # `pytest &`, starts with SIGINT ignored, which stop_once rightly leaves alone)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    with pytest.raises(KeyboardInterrupt) as stop:
        with interrupt.stop_once():
            try:
                os.kill(os.getpid(), signal.SIGINT)
            finally:
                os.kill(os.getpid(), signal.SIGTERM)
    assert str(stop.value) == f"signal {int(signal.SIGINT)}"
    assert not interrupt.by_sigterm(stop.value)


def test_a_ctrl_c_ignored_from_the_start_stays_ignored(handlers):
    """A background job (`make train &`) begins with SIGINT ignored: stop_once leaves it so."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with interrupt.stop_once():
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        os.kill(os.getpid(), signal.SIGINT)                 # nothing
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN


def test_outside_the_main_thread_nothing_changes(handlers):
    signal.signal(signal.SIGTERM, _mine)
    seen = []

    def work():
        with interrupt.sigterm_as_interrupt():
            seen.append(signal.getsignal(signal.SIGTERM))
        with interrupt.stop_once():
            seen.append(signal.getsignal(signal.SIGTERM))
    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert seen == [_mine, _mine]


@pytest.mark.parametrize("parent, code", [("", 0), ("12ab", 0), ("mine", 0), ("1", -15)])
def test_a_child_whose_parent_is_gone_already_stops_at_once(parent, code):
    """PYCOUNT_PARENT_PID unset or not a number: nothing; the process's own parent: nothing yet;
    another process (the parent died before the child asked): SIGTERM at once."""
    env = dict(os.environ, **{interrupt.PARENT_ENV: str(os.getpid()) if parent == "mine"
                              else parent})
    done = subprocess.run([sys.executable, "-c", "from pycount.util.interrupt import "
                           "follow_parent; follow_parent(); print('went on')"],
                          env=env, capture_output=True, text=True,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert done.returncode == code
    assert (done.stdout == "went on\n") == (code == 0)
