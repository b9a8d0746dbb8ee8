"""What a run leaves for people: per-image CSV, metrics JSON/Markdown, tables, heatmap figures."""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np


def _atomic_write(path: Path, text: str) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_predictions(path: Path, rows: list[dict]) -> None:
    """One row per test image: id, true count, the density-integral and tiling estimates."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["id", "true", "predicted", "tiling", "abs_error"])
        writer.writeheader()
        for r in rows:
            writer.writerow({"id": r["id"], "true": r["true"], "predicted": f"{r['predicted']:.3f}",
                             "tiling": f"{r['tiling']:.3f}",
                             "abs_error": f"{abs(r['predicted'] - r['true']):.3f}"})
    os.replace(tmp, path)


def metrics_table(metrics: dict) -> str:
    """The paper's two metrics for the model and for the mean-count baseline, as Markdown."""
    name = f"{metrics.get('model', 'model')}({metrics.get('head', 'R')})"
    lines = ["| estimator | MRE | MAE ± std |", "|---|---:|---:|",
             f"| {name} | {metrics['mre']:.4f} | {metrics['mae']:.2f} ± {metrics['mae_std']:.2f} |"]
    if "tiling_mae" in metrics:
        lines.append(f"| {name}, non-overlapping tiles | {metrics['tiling_mre']:.4f} | "
                     f"{metrics['tiling_mae']:.2f} ± {metrics['tiling_mae_std']:.2f} |")
    lines.append(f"| mean training count ({metrics['train_mean_count']:.1f}) | "
                 f"{metrics['baseline_mre']:.4f} | "
                 f"{metrics['baseline_mae']:.2f} ± {metrics['baseline_mae_std']:.2f} |")
    return "\n".join(lines)


def write_metrics(run: Path, metrics: dict) -> str:
    """metrics.json (read by later tools and audits) and metrics.md; returns the Markdown."""
    run = Path(run)
    _atomic_write(run / "metrics.json", json.dumps(metrics, indent=1, sort_keys=True))
    md = (f"# {metrics['dataset']} / {metrics['model']} ({metrics['head']})\n\n"
          f"{metrics['n_images']} test images; patch {metrics['patch']}, stride "
          f"{metrics['stride']}; count = integral of the griddata density heatmap.\n\n"
          f"{metrics_table(metrics)}\n")
    _atomic_write(run / "metrics.md", md)
    return md


def save_heatmap(path: Path, image: np.ndarray, heatmap: np.ndarray, true: float | None,
                 predicted: float, title: str = "") -> None:
    """The image beside its density heatmap (cells / px^2), with the counts."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
    axes[0].imshow(image)
    axes[0].set_title(title or "image")
    im = axes[1].imshow(heatmap, cmap="jet")
    truth = f"true {true:.0f}, " if true is not None else ""
    axes[1].set_title(f"density: {truth}predicted {predicted:.1f}")
    fig.colorbar(im, ax=axes[1], fraction=0.046, label="cells / px²")
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    os.replace(tmp, path)
