"""Polyak averaging of a net's weights over the last phase of training."""
from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np

from pycount.errors import TrainError
from pycount.util import atomic


def span_check(it: int, n: int, start: int) -> str | None:
    """Whether an average of n iterations restored at iteration `it` is the one a schedule that
    averages after `start` holds there (the mean over start+1..it): None when it is; "drop" when
    that schedule has not begun averaging yet (it <= start: the iterations it holds belong to
    another schedule and are left out); "refuse" when it cannot be rebuilt."""
    if n == max(0, it - start):
        return None
    return "drop" if it <= start else "refuse"


def saved_count(path: Path) -> int | None:
    """The count of averaged iterations in a snapshot's .average.npz; None when it cannot be read
    (WeightAverage.load names what is wrong)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            n = z["n"]
            return int(n) if _a_count(n) else None
    except Exception:
        return None


def _a_count(n: np.ndarray) -> bool:
    """Whether a saved count of averaged iterations is one: a whole number of at least 1."""
    return n.shape == () and n.dtype.kind in "iu" and n >= 1


class WeightAverage:
    """The running mean of a net's parameters over the iterations after `start` (Polyak
    averaging). A density net's count is the sum over every pixel, so a small random step of the
    last weights (the output bias moves every pixel at once) moves each image's count: on the
    bacterial set, two runs of one draw whose batches came in an order shifted by one ended with
    biases 2.6 cells per image apart (test MAE 6.37 and 4.73). The mean over the last phase of
    training averages that walk out."""

    def __init__(self, net, start: int):
        self.start, self.n = start, 0
        self.blobs = [b for k in net.params for b in net.params[k]]
        self.sums = [np.zeros(b.data.shape, np.float64) for b in self.blobs]

    def reset(self) -> None:
        """No iteration averaged yet."""
        self.sums = [np.zeros_like(total) for total in self.sums]
        self.n = 0

    def add(self) -> None:
        for total, b in zip(self.sums, self.blobs):
            total += b.data
        self.n += 1

    def mean(self) -> list[np.ndarray]:
        return [total / self.n for total in self.sums]

    @contextlib.contextmanager
    def applied(self):
        """The net holds the mean weights inside the block, its own ones again after it."""
        if not self.n:
            yield
            return
        own = [b.data.copy() for b in self.blobs]
        for b, m in zip(self.blobs, self.mean()):
            b.data[...] = m
        try:
            yield
        finally:
            for b, w in zip(self.blobs, own):
                b.data[...] = w

    def save(self, path: Path) -> None:
        with atomic.replacing(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, *self.sums, n=self.n)

    def load(self, path: Path) -> None:
        """The sums and count that a snapshot saved beside its solverstate, checked against this
        net before any of it is used.

        A missing or damaged file is refused, not the average started again at the break: the
        weights a density run keeps (model.caffemodel, what eval and count use) are the mean
        over the whole last phase, and a restarted one would average only the iterations after
        the break, so the run would keep another model than its settings say, with part of the
        per-run bias that averaging removes back in; a note about it would scroll past in a long
        training and leave the results looking like any other run's."""
        again = "train again with RESUME=0"
        if not path.is_file():
            raise TrainError(f"{path} is missing (named by {path.parent / 'latest.json'}): the "
                             f"weight average of that snapshot is lost and cannot be rebuilt "
                             f"from it; {again}")
        try:
            z = np.load(path, allow_pickle=False)
            if not isinstance(z, np.lib.npyio.NpzFile):
                raise ValueError("one .npy array, not an .npz archive")
            with z:
                arrays = {name: z[name] for name in z.files}
        except Exception as e:   # BadZipFile (cut short, a bad CRC), EOFError (empty), ValueError
            #                      (pickled or not numpy's), and more from a garbled zip header
            raise TrainError(f"{path} is damaged ({e.__class__.__name__}: {e}); the weight "
                             f"average of its snapshot cannot be resumed: {again}") from None
        want = [f"arr_{i}" for i in range(len(self.sums))]
        if sorted(arrays) != sorted(want + ["n"]):
            held = sum(name.startswith("arr_") for name in arrays)
            raise TrainError(f"{path} holds {held} parameter sums"
                             f"{'' if 'n' in arrays else ' and no count of iterations'}, where "
                             f"this net's weight average has {len(want)} and a count: written by "
                             f"another net, or damaged; {again}")
        sums, n = [arrays[name] for name in want], arrays["n"]
        wrong = [(i, a.shape, b.shape) for i, (a, b) in enumerate(zip(sums, self.sums))
                 if a.shape != b.shape]
        if wrong:
            i, have, need = wrong[0]
            raise TrainError(f"{path} does not match this net's parameters (array {i} is "
                             f"{have}, the net's blob {need}): written by another net; {again}")
        if not _a_count(n):
            raise TrainError(f"{path} is damaged (its count of averaged iterations is "
                             f"{n.tolist()!r}); the weight average of its snapshot cannot be "
                             f"resumed: {again}")
        if not all(a.dtype.kind == "f" and np.isfinite(a).all() for a in sums):
            raise TrainError(f"{path} is damaged (a sum is not finite numbers); the weight "
                             f"average of its snapshot cannot be resumed: {again}")
        self.sums, self.n = [a.astype(np.float64, copy=False) for a in sums], int(n)
