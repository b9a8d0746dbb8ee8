"""The audit's charts (matplotlib, drawn headless): per paper table, MAE ± std bars of the paper
beside ours, one panel per dataset; and the validation curves of the trainings behind the cells.
"""
from __future__ import annotations

from pathlib import Path

from pycount.reporting.render import COLUMNS, curves
from pycount.util import atomic


def chart(table: dict, path: Path) -> None:
    """MAE ± std bars, paper vs ours, one panel per dataset (their scales differ 30-fold)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch
    rows = table["rows"]
    fig, axes = plt.subplots(1, len(COLUMNS), figsize=(4.2 * len(COLUMNS), 4.2))
    for ax, col in zip(axes, COLUMNS):
        cells = [r["cells"][col.folder] for r in rows]
        x = range(len(rows))
        ax.bar([i - 0.2 for i in x], [c["paper"]["mae"] for c in cells], 0.4,
               yerr=[c["paper"]["mae_std"] for c in cells], capsize=3, color="#8aa")
        ours = [(i, c["ours"]) for i, c in zip(x, cells) if c["ours"]]
        ax.bar([i + 0.2 for i, _ in ours], [o["mae"] for _, o in ours], 0.4,
               yerr=[o["mae_std"] for _, o in ours], capsize=3, color="#d73")
        for i, c in zip(x, cells):
            if c["ours"] is None and c["run"]:
                ax.text(i + 0.2, 0, "missing", rotation=90, ha="center", va="bottom",
                        fontsize=8, color="#a33")
        ax.set_xlim(-0.6, len(rows) - 0.4)
        ax.set_xticks(list(x))
        ax.set_xticklabels([r["label"] for r in rows], rotation=30, ha="right", fontsize=8)
        ax.set_title(col.label, fontsize=9)
        ax.set_ylabel("MAE ± std (cells per image)")
    axes[0].legend(handles=[Patch(color="#8aa", label="paper"), Patch(color="#d73", label="ours")],
                   fontsize=8, loc="upper right")
    fig.suptitle(f"Table {table['table']}: {table['title']}", fontsize=10)
    fig.tight_layout()
    atomic.save_figure(fig, path)


def validation_chart(report: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, train in curves(report):
        it, val = zip(*train["validation"])
        line, = ax.plot(it, val, marker=".", label=f"{label} ({train.get('iterations')} its)")
        if train.get("best_iter") in it and train.get("best_val") is not None:
            ax.plot([train["best_iter"]], [train["best_val"]], "o", mfc="none", ms=10,
                    color=line.get_color())
    ax.set_xlabel("iteration")
    ax.set_ylabel("validation patch MAE (cells per patch)")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.set_title("Trainings behind the audit's cells", fontsize=10)
    fig.tight_layout()
    atomic.save_figure(fig, path)
