"""Whether a `make train` holds a run folder now: trainer._RunLock takes an exclusive flock on
<run>/.train.lock for the whole training, released when the process ends however it ends."""
from __future__ import annotations

from pathlib import Path

LOCK_FILE = ".train.lock"           # in the run folder, held by trainer._RunLock


def in_training(run: Path) -> bool:
    """Whether a training holds `run` now (its model.caffemodel and train.json are then the last
    session's and about to change, and the LMDBs it reads must stay as they are)."""
    import fcntl
    try:
        f = open(Path(run) / LOCK_FILE, "r")
    except OSError:                 # no lock file: never trained here, or not readable
        return False
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return True
        return False
