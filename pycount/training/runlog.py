"""A run's train_log.csv (one row per DISPLAY_INTERVAL iterations: iter, loss, lr, seconds,
val_mae): trimmed back to the snapshot a training resumes from, and drawn as loss.png."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from pycount.errors import TrainError
from pycount.util import atomic


def trim_log(log_path: Path, last_iter: int) -> float:
    """Drop the rows of `log_path` past `last_iter` (atomically); return the seconds column of
    the last row kept."""
    if not log_path.exists():
        return 0.0
    try:
        with open(log_path, newline="") as f:
            rows = list(csv.reader(f))
    except (UnicodeDecodeError, csv.Error) as e:
        raise TrainError(f"{log_path} is damaged ({e.__class__.__name__}); delete it to resume "
                         f"(its curves then start at iteration {last_iter}), or train again "
                         f"with RESUME=0") from None
    if not rows:
        return 0.0
    head = rows[0]
    if head[:1] != ["iter"] or "seconds" not in head:
        raise TrainError(f"{log_path} does not start with pycount's header (iter,loss,lr,"
                         f"seconds,val_mae); delete it to resume (its curves then start at "
                         f"iteration {last_iter}), or train again with RESUME=0")

    def whole(r) -> bool:   # a row cut short by the kill has fewer fields than the header
        if len(r) != len(head) or not r[0].isdigit():
            return False
        try:
            float(r[head.index("seconds")])
        except ValueError:
            return False
        return True
    body = [r for r in rows[1:] if whole(r) and int(r[0]) <= last_iter]
    if len(body) != len(rows) - 1:
        with atomic.replacing(log_path) as tmp, open(tmp, "w", newline="") as f:
            csv.writer(f, lineterminator="\n").writerows([head] + body)
    return float(body[-1][head.index("seconds")]) if body else 0.0


def plot_log(log_path: Path, png: Path) -> None:
    """Loss and validation MAE against iterations, from the CSV log."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = list(csv.DictReader(open(log_path)))
    if not rows:
        return
    rows = [r for r in rows if r["loss"]]
    it = np.array([int(r["iter"]) for r in rows])
    loss = np.array([float(r["loss"]) for r in rows])
    val = [(int(r["iter"]), float(r["val_mae"])) for r in rows if r["val_mae"]]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(it, loss, lw=0.8, label="training loss")
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    if val:
        ax2 = ax.twinx()
        ax2.plot(*zip(*val), "o-", color="C1", label="validation patch MAE")
        ax2.set_ylabel("validation MAE (cells / patch)")
        if min(v for _, v in val) > 0:   # the untrained start is often 100x the end: log shows both
            ax2.set_yscale("log")
        ax2.legend(loc="upper right")
    ax.legend(loc="upper left")
    ax.set_title(f"{png.parent.parent.name} / {png.parent.name}")
    fig.tight_layout()
    atomic.save_figure(fig, png, dpi=100)
