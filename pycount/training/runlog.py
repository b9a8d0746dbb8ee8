"""A run's train_log.csv (one row per DISPLAY_INTERVAL iterations: iter, loss, lr, seconds,
val_mae): trimmed back to the snapshot a training resumes from, and drawn as loss.png."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from pycount.errors import TrainError
from pycount.util import atomic


# the columns in the order the trainer appends them: a log with any other header would take
# rows its columns do not describe
HEADER = ["iter", "loss", "lr", "seconds", "val_mae"]


def trim_log(log_path: Path, last_iter: int) -> float:
    """Drop the rows of `log_path` past `last_iter` (atomically), and the rows that are not
    whole; return the seconds column of the last row kept. Called before a resumed training
    appends to the log, so that a log it could not go on with stops it before it starts."""
    redo = (f"delete it to resume (its curves then start at iteration {last_iter}), or train "
            f"again with RESUME=0")
    if log_path.is_dir():
        raise TrainError(f"{log_path} is a folder, where the training log should be a file; "
                         f"move it away or {redo}")
    if not log_path.exists():
        return 0.0
    try:
        with open(log_path, newline="") as f:
            rows = list(csv.reader(f))
    except (UnicodeDecodeError, csv.Error) as e:
        raise TrainError(f"{log_path} is damaged ({e.__class__.__name__}); {redo}") from None
    except OSError as e:
        raise TrainError(f"{log_path} cannot be read ({e.strerror or e}); make it readable for "
                         f"this user, or {redo}") from None
    if not rows:
        return 0.0
    head = rows[0]
    if head != HEADER:
        raise TrainError(f"{log_path} does not start with pycount's header ({','.join(HEADER)})"
                         f"; {redo}")
    body = [r for r in rows[1:] if _whole(r) and int(r[0]) <= last_iter]
    if len(body) != len(rows) - 1:
        with atomic.replacing(log_path) as tmp, open(tmp, "w", newline="") as f:
            csv.writer(f, lineterminator="\n").writerows([head] + body)
    return float(body[-1][HEADER.index("seconds")]) if body else 0.0


def _whole(row: list[str]) -> bool:
    """A row as the trainer writes it: a row cut short by a kill has fewer fields than the
    header, and one edited by hand or garbled has a cell that is not a number (val_mae is empty
    between validations); either would stop the plot at the end of the training."""
    if len(row) != len(HEADER) or not row[0].isdigit():
        return False
    *numbers, val_mae = row[1:]
    try:
        for cell in numbers + ([val_mae] if val_mae else []):
            float(cell)
    except ValueError:
        return False
    return True


def plot_log(log_path: Path, png: Path) -> None:
    """Loss and validation MAE against iterations, from the CSV log. Drawn once a training has
    finished: a log or a figure that fails then (a row edited meanwhile, no room on the disk)
    costs the figure, with a note, never the training, whose log and snapshots are written."""
    try:
        _plot(log_path, png)
    except Exception as e:   # whatever csv, matplotlib or the disk raise: the figure is an extra
        print(f"note: {png} was not drawn ({e.__class__.__name__}: {e}); the training is "
              f"complete, and {log_path} holds its curves", flush=True)


def _plot(log_path: Path, png: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    with open(log_path, newline="") as f:
        rows = list(csv.reader(f))
    if rows[:1] != [HEADER]:
        raise ValueError(f"it does not start with pycount's header ({','.join(HEADER)})")
    rows = [dict(zip(HEADER, r)) for r in rows[1:] if _whole(r)]
    if not rows:
        return
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
