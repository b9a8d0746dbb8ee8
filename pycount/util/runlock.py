"""One training at a time in a run folder: RunLock takes an exclusive flock on <run>/.train.lock
for the whole training, released when the process ends however it ends, and writes there the
LMDB folders the training reads; in_training asks whether one holds it now, lmdbs_read what it
reads."""
from __future__ import annotations

from pathlib import Path

from pycount.errors import TrainError

LOCK_FILE = ".train.lock"           # in the run folder, held by RunLock


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


def lmdbs_read(run: Path) -> list[Path] | None:
    """The LMDB folders the training holding `run`'s lock reads, as it wrote them there; None
    when it wrote none (a training of an older pycount: it may read any of its dataset's)."""
    try:
        lines = (Path(run) / LOCK_FILE).read_text().split("\n")
    except (OSError, UnicodeDecodeError):
        return None
    paths = [Path(line) for line in lines if line.strip()]
    return paths or None


class RunLock:
    """One training at a time in a run folder: an exclusive lock on <run>/.train.lock, released
    when the process ends however it ends. A second `make train` on the folder stops at once.
    `reads`: the LMDB folders the training reads, written into the lock file (lmdbs_read) so
    that `make prepare` refuses to rewrite those and only those."""

    def __init__(self, run: Path, reads=()):
        import fcntl
        self.file = open(run / LOCK_FILE, "a+")
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.file.close()
            raise TrainError(f"{run} is being trained by another process (it holds "
                             f"{run / LOCK_FILE}); wait for it to end, or stop it (Ctrl-C "
                             f"snapshots it) and run make train again") from None
        self.file.seek(0)
        self.file.truncate()
        self.file.write("".join(f"{Path(p).resolve()}\n" for p in reads))
        self.file.flush()

    def release(self) -> None:
        self.file.close()
