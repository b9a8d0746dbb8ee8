"""Locks of a training, released when its process ends however it ends.

- RunLock: one training at a time in a run folder (an exclusive flock on <run>/.train.lock);
  in_training asks whether one holds it now.
- ReadersLock: the LMDBs a training reads, each held by a shared flock on a file beside it
  (`.NAME.readers`, outside the folder that `make prepare` replaces); in_use asks whether any
  process holds one, whatever runs folder it trains into. RunLock marks its lock file
  (MARK) to say that its training takes these; a training of an older pycount leaves the file
  unmarked and may read any LMDB of its dataset (reads_unknown).
- OutLock: one `pycount count` at a time writing into an output folder (<out>/.count.lock).
- EvalLock: one `make eval` at a time in a run folder (<run>/.eval.lock); in_evaluation asks
  whether one holds it (a training then waits for it to end).
"""
from __future__ import annotations

from pathlib import Path

from pycount.errors import RunError, TrainError

LOCK_FILE = ".train.lock"           # in the run folder, held by RunLock
COUNT_LOCK = ".count.lock"          # in a count's output folder, held by OutLock
EVAL_LOCK = ".eval.lock"            # in the run folder, held by EvalLock
MARK = "lmdbs held by ReadersLock\n"


def _held(path: Path, shared: bool) -> bool:
    """Whether a process holds a flock on the file at `path` that a `shared` (else exclusive)
    one would wait for (no file: none)."""
    import fcntl
    try:
        f = open(path, "r")
    except OSError:                 # no such file: never locked, or not readable
        return False
    with f:
        try:
            fcntl.flock(f, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except OSError:
            return True
        return False


def _lock_now(path: Path):
    """The file at `path` (made if missing) held by an exclusive flock taken without waiting, or
    None where another process holds it."""
    import fcntl
    f = open(path, "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        return None
    return f


def in_training(run: Path) -> bool:
    """Whether a training holds `run` now (its model.caffemodel and train.json are then the last
    session's and about to change, and the LMDBs it reads must stay as they are)."""
    return _held(Path(run) / LOCK_FILE, shared=True)


def reads_unknown(run: Path) -> bool:
    """Whether `run`'s training (in_training) is of an older pycount, which holds no ReadersLock:
    its lock file is not marked."""
    try:
        return (Path(run) / LOCK_FILE).read_text() != MARK
    except (OSError, UnicodeDecodeError):
        return True


def readers_file(lmdb: Path) -> Path:
    lmdb = Path(lmdb)
    return lmdb.parent / f".{lmdb.name}.readers"


def in_use(lmdb: Path) -> bool:
    """Whether a training reads the LMDB folder `lmdb` now (holds its ReadersLock)."""
    return _held(readers_file(lmdb), shared=False)


class ReadersLock:
    """Shared flocks on the readers files of the LMDB folders a training reads, for as long as
    it trains: `make prepare` does not rewrite them meanwhile (in_use). A folder where the file
    cannot be made (this user cannot write there) is skipped: Caffe could not read it either."""

    def __init__(self, lmdbs):
        import fcntl
        self.files = []
        for lmdb in lmdbs:
            try:
                f = open(readers_file(lmdb), "a+")
            except OSError:
                continue
            fcntl.flock(f, fcntl.LOCK_SH)       # waits only while a flock test of in_use runs
            self.files.append(f)

    def release(self) -> None:
        for f in self.files:
            f.close()
        self.files = []


class RunLock:
    """One training at a time in a run folder: an exclusive lock on <run>/.train.lock, released
    when the process ends however it ends. A second `make train` on the folder stops at once.
    The file is marked (MARK) while held: its training holds a ReadersLock on what it reads."""

    def __init__(self, run: Path):
        self.file = _lock_now(run / LOCK_FILE)
        if self.file is None:
            raise TrainError(f"{run} is being trained by another process (it holds "
                             f"{run / LOCK_FILE}); wait for it to end, or stop it (Ctrl-C "
                             f"snapshots it) and run make train again")
        self.file.seek(0)
        self.file.truncate()
        self.file.write(MARK)
        self.file.flush()

    def release(self) -> None:
        try:
            self.file.seek(0)
            self.file.truncate()            # unmarked again: no training holds it
        except OSError:
            pass
        self.file.close()


class _Exclusive:
    """An exclusive lock on a file, taken without waiting (RunError `busy` where another process
    holds it) and released when the process ends however it ends."""

    def __init__(self, path: Path, busy: str):
        self.file = _lock_now(path)
        if self.file is None:
            raise RunError(busy)

    def release(self) -> None:
        self.file.close()


class OutLock(_Exclusive):
    """One `pycount count` at a time writing into an output folder: an exclusive lock on
    <out>/.count.lock. Two counts into one folder overwrote each other's counts.csv and
    heatmaps, each saying it had written them."""

    def __init__(self, out: Path):
        super().__init__(Path(out) / COUNT_LOCK,
                         f"another pycount count is writing into {out} now (it holds "
                         f"{Path(out) / COUNT_LOCK}); wait for it to end, or give --out "
                         f"(OUT=) another folder")


def in_evaluation(run: Path) -> bool:
    """Whether a `make eval` is counting with `run`'s weights now."""
    return _held(Path(run) / EVAL_LOCK, shared=True)


class EvalLock(_Exclusive):
    """One evaluation at a time in a run folder: an exclusive lock on <run>/.eval.lock. Two
    evaluations at once left the last to end in place (a TEST_IMAGES= one over the full one),
    and a training begun during one left its metrics beside newer weights (helper-55); a
    training refuses while one holds it."""

    def __init__(self, run: Path):
        super().__init__(Path(run) / EVAL_LOCK,
                         f"{run} is being evaluated now (a make eval holds "
                         f"{Path(run) / EVAL_LOCK}); wait for it to end")
