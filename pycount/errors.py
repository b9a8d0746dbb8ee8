"""Every error a user can fix, in one family: `pycount.cli` turns a PycountError into one line on
stderr ("pycount: error: ...") and exit status 2, never a traceback.

The rule behind them: each message names the file or setting at fault and the fix, and input is
checked in Python before it reaches Caffe, whose glog CHECKs abort the process instead of raising.
"""
from __future__ import annotations

import shlex


def make_arg(var: str, value) -> str:
    """`VAR=value` as one shell word for a `make ...` fix in a message: quoted where the value
    holds a space or another character the shell would split or expand (a folder "my cells"),
    and a `$` doubled, since Make expands the values given on its command line."""
    return shlex.quote(f"{var}={str(value).replace('$', '$$')}")


class PycountError(Exception):
    """A problem the user can fix; the message says what and how."""


class ConfigError(PycountError, ValueError):
    """An unknown dataset, model or setting; the message lists the valid choices."""


class DatasetError(PycountError):
    """A dataset folder is missing, incomplete or corrupt; the message names the file and the fix."""


class DownloadError(PycountError, RuntimeError):
    """A dataset could not be fetched or verified; the message says what to do."""


class LmdbError(PycountError, RuntimeError):
    """A database cannot be written or read; the message names the path and the fix."""


class WeightsError(PycountError, RuntimeError):
    """A pretrained caffemodel is missing, not the released file, or does not fit the net.
    `alternative`, appended to the message, is advice only `make train` can follow (SCRATCH=1);
    `bare` is the message without it, for a caller that has no such setting (the audit sweep)."""

    def __init__(self, message: str, alternative: str = ""):
        super().__init__(message + alternative)
        self.bare = message


class TrainError(PycountError, RuntimeError):
    """Training cannot start or go on; the message says why and what to do."""


class Diverged(TrainError):
    """The loss became NaN or infinite. Caffe's max pooling then writes outside its buffers (a NaN
    never wins a comparison, so its argmax index stays -1), so the process must end without
    running any more Caffe code, destructors included."""


class RunError(TrainError):
    """A run folder cannot be used to count: a file is missing or incomplete."""
