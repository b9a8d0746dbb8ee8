"""pycount.errors: the user errors, how `make ...` fixes are quoted in their messages, and how the
command line ends on them (one line on stderr, exit status 2; at once, for a divergence)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pycount import errors

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("var, value, word", [
    ("DATASET", "cells", "DATASET=cells"),
    ("DATA_ROOT", Path("/data/my cells"), "'DATA_ROOT=/data/my cells'"),
    ("DATASET", "/x/a$b", "'DATASET=/x/a$$b'"),
    ("DATASET", "it's", "'DATASET=it'\"'\"'s'"),
    ("ITERS", 200, "ITERS=200"),
    ("DATASET", "", "DATASET="),
])
def test_make_arg_is_one_shell_word_make_reads_back(var, value, word):
    assert errors.make_arg(var, value) == word


def test_weights_error_keeps_the_message_without_the_alternative():
    e = errors.WeightsError("weights/x.caffemodel is missing", "; or train with SCRATCH=1")
    assert str(e) == "weights/x.caffemodel is missing; or train with SCRATCH=1"
    assert e.bare == "weights/x.caffemodel is missing"
    plain = errors.WeightsError("weights/x.caffemodel is missing")
    assert str(plain) == plain.bare == "weights/x.caffemodel is missing"


def test_user_errors_keep_their_builtin_bases_and_families():
    """The classes' contract (no code path in pycount depends on it today, so only this test
    holds it): code written against the built-in errors (`except ValueError` around a name
    lookup, `except RuntimeError` around a training) still catches them, and a divergence or
    an unusable run folder is a TrainError, as `pytest.raises(TrainError)` and callers of
    Trainer take it."""
    assert issubclass(errors.ConfigError, ValueError)
    for cls in (errors.DownloadError, errors.LmdbError, errors.WeightsError, errors.TrainError):
        assert issubclass(cls, RuntimeError), cls
    assert issubclass(errors.Diverged, errors.TrainError)
    assert issubclass(errors.RunError, errors.TrainError)


def _cli_raising(tmp_path, error: str) -> subprocess.CompletedProcess:
    """`pycount train` whose run raises `error` after a line on (pipe-buffered) stdout; an
    atexit handler says whether the interpreter shut down normally."""
    script = tmp_path / "raise.py"
    script.write_text(
        "import atexit, sys\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "from pycount import cli, errors\n"
        "atexit.register(lambda: sys.stderr.write('atexit ran\\n'))\n"
        "def run(args):\n"
        "    print('iteration 10')\n"
        f"    raise {error}\n"
        "cli.run = run\n"
        "sys.exit(cli.main(['train', '--model', 'alexnet-lite']))\n")
    env = dict(os.environ, PYCOUNT_RUNS=str(tmp_path / "runs"),
               PYCOUNT_DATA=str(tmp_path / "data"))
    env.pop("PYTHONUNBUFFERED", None)              # stdout block-buffered, as into a pipe
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120, env=env)


def test_a_divergence_ends_the_process_at_once_with_status_2(tmp_path):
    """Diverged: the message on stderr, what was printed kept, then no more Python (or Caffe)
    code runs: no atexit handler, no destructor."""
    p = _cli_raising(tmp_path, "errors.Diverged('training diverged: the loss is nan at "
                               "iteration 10; lower LR')")
    assert p.returncode == 2, p.stderr
    assert p.stderr == ("pycount: error: training diverged: the loss is nan at iteration 10; "
                        "lower LR\n")
    assert p.stdout == "iteration 10\n"


@pytest.mark.parametrize("error", ["errors.TrainError('no room')", "errors.RunError('no room')",
                                   "errors.ConfigError('no room')", "errors.LmdbError('no room')"])
def test_a_user_error_is_one_line_and_status_2(tmp_path, error):
    p = _cli_raising(tmp_path, error)
    assert p.returncode == 2, p.stderr
    assert p.stderr == "pycount: error: no room\natexit ran\n"
    assert p.stdout == "iteration 10\n"
