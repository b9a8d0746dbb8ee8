"""What a run leaves for people: per-image CSV, metrics JSON/Markdown, tables, heatmap figures."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from pycount import config
from pycount.errors import RunError
from pycount.evaluation.metrics import partial
from pycount.util import atomic


def write_predictions(path: Path, rows: list[dict]) -> None:
    """One row per test image: id, true count, the density-integral and tiling estimates (and,
    for a C head, the estimate from the expected class)."""
    extra = ["expected"] if rows and "expected" in rows[0] else []
    with atomic.replacing(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["id", "true", "predicted", "tiling", *extra,
                                               "abs_error"])
        writer.writeheader()
        for r in rows:
            writer.writerow({"id": r["id"], "true": r["true"], "predicted": f"{r['predicted']:.3f}",
                             "tiling": f"{r['tiling']:.3f}",
                             **{k: f"{r[k]:.3f}" for k in extra},
                             "abs_error": f"{abs(r['predicted'] - r['true']):.3f}"})


def metrics_table(metrics: dict) -> str:
    """The paper's two metrics for the model and for the mean-count baseline, as Markdown."""
    name = f"{metrics.get('model', 'model')}({metrics.get('head', 'R')})"
    lines = ["| estimator | MRE | MAE ± std |", "|---|---:|---:|",
             f"| {name} | {metrics['mre']:.4f} | {metrics['mae']:.2f} ± {metrics['mae_std']:.2f} |"]
    if "tiling_mae" in metrics and not metrics.get("density") and not _classic(metrics):
        lines.append(f"| {name}, non-overlapping tiles | {metrics['tiling_mre']:.4f} | "
                     f"{metrics['tiling_mae']:.2f} ± {metrics['tiling_mae_std']:.2f} |")
    if "expected_mae" in metrics:
        lines.append(f"| {name}, expected class | {metrics['expected_mre']:.4f} | "
                     f"{metrics['expected_mae']:.2f} ± {metrics['expected_mae_std']:.2f} |")
    lines.append(f"| mean training count ({metrics['train_mean_count']:.1f}) | "
                 f"{metrics['baseline_mre']:.4f} | "
                 f"{metrics['baseline_mae']:.2f} ± {metrics['baseline_mae_std']:.2f} |")
    if "mre_images" in metrics:
        lines += ["", f"MRE over the {metrics['mre_images']} of {metrics['n_images']} test images "
                      f"that hold cells (a relative error needs one); MAE over all."]
    return "\n".join(lines)


# how each of Table 4's methods counts an image (pycount.inference.classic)
CLASSIC_COUNT = {"lecount": "count = sum of the per-pixel density, a linear map of the image's "
                            "quantised dense descriptors",
                 "ledetect": "count = number of the regions the detector selects"}


def _classic(metrics: dict) -> str:
    """The classic family a metrics.json's model is ("" for a net): its family where recorded,
    else its model name (the classic models are named after their families)."""
    family = metrics.get("family") or metrics.get("model")
    return family if family in config.CLASSIC_FAMILIES else ""


def _context(metrics: dict) -> int:
    """The px of context a density model was trained with (its whole-image regime): as its
    metrics.json records it, else its model's today (evaluations from before it was kept)."""
    if isinstance(metrics.get("context"), int):
        return metrics["context"]
    model = config.MODELS.get(metrics.get("model"))
    return model.context if model else 0


def write_metrics(run: Path, metrics: dict) -> str:
    """metrics.json (read by later tools and audits) and metrics.md; returns the Markdown."""
    run = Path(run)
    how = (CLASSIC_COUNT[_classic(metrics)] if _classic(metrics) else
           f"patch {metrics['patch']}, stride {metrics['stride']}; count = integral of the "
           f"griddata density heatmap" if not metrics.get("density") else
           f"count = sum of the predicted density map of the whole image in one pass, padded "
           f"by the context the net was trained with (side-by-side tiles with that context for "
           f"images above {config.DENSITY_WHOLE_MAX_PX:,} px)" if _context(metrics) else
           "count = sum of the predicted density map (crops at half stride, averaged where "
           "they overlap)")
    # the run's folder name: a variant's settings (nuclei-zoom0.1, a MARKER= tag) show
    md = (f"# {metrics.get('dataset_tag') or metrics['dataset']} / {metrics['model']} "
          f"({metrics['head']})\n\n"
          f"{images(metrics)}; {how}.\n\n"
          f"{metrics_table(metrics)}\n")
    atomic.write_text(run / "metrics.md", md)
    # last: its presence says the evaluation beside it is whole (evaluate)
    atomic.write_text(run / "metrics.json", json.dumps(metrics, indent=1, sort_keys=True))
    return md


def images(metrics: dict) -> str:
    """"100 test images", or "5 of the 100 test images (a partial evaluation: no result)"."""
    if partial(metrics):
        return (f"{metrics['n_images']} of the {metrics['test_images_of']} test images (a partial "
                f"evaluation: no result)")
    return f"{metrics['n_images']} test images"


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_fig6(path: Path, image: np.ndarray, true_patches: np.ndarray, pred_patches: np.ndarray,
              heatmap: np.ndarray, true: float, predicted: float, title: str = "") -> None:
    """The paper's Fig. 6 for one test image: the image; predicted and true counts of its
    patches along the patch index; the density heatmap with the true and predicted totals."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2), gridspec_kw={"width_ratios": [1, 1.6, 1.2]})
    axes[0].imshow(image)
    axes[0].set_title(title or "image")
    axes[0].axis("off")
    k = np.arange(len(true_patches))
    axes[1].plot(k, true_patches, lw=1, label="true")
    axes[1].plot(k, pred_patches, lw=1, label="predicted")
    axes[1].set_xlabel("patch index")
    axes[1].set_ylabel("cells in patch")
    axes[1].set_title("patch-level prediction")
    axes[1].legend()
    im = axes[2].imshow(heatmap, cmap="jet")
    axes[2].set_title(f"density: true {true:.0f}, predicted {predicted:.1f}")
    axes[2].axis("off")
    fig.colorbar(im, ax=axes[2], fraction=0.046, label="cells / px²")
    fig.tight_layout()
    atomic.save_figure(fig, path)


def save_density_fig(path: Path, image: np.ndarray, true_map: np.ndarray, pred_map: np.ndarray,
                     true: float, predicted: float, title: str = "") -> None:
    """A density model's counterpart of Fig. 6: the image, the target density made from its dots
    and the predicted density, on one colour scale, with their sums."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.4))
    axes[0].imshow(image)
    axes[0].set_title(title or "image")
    top = max(float(true_map.max()), float(pred_map.max()), 1e-9)
    for ax, m, what in ((axes[1], true_map, f"target density: sum {true:.0f}"),
                        (axes[2], pred_map, f"predicted density: sum {predicted:.1f}")):
        im = ax.imshow(m, cmap="jet", vmin=0, vmax=top)
        ax.set_title(what)
    for ax in axes:
        ax.axis("off")
    fig.colorbar(im, ax=axes[2], fraction=0.046, label="cells / px²")
    fig.tight_layout()
    atomic.save_figure(fig, path)


def save_fig7(path: Path, ids: list[str], true: np.ndarray, estimates: dict[str, np.ndarray],
              title: str) -> None:
    """The paper's Fig. 7: per test image (sorted by true count), the true count and each
    model's estimate."""
    plt = _pyplot()
    order = np.argsort(true, kind="stable")
    fig, ax = plt.subplots(figsize=(10, 4.5))
    ax.plot(np.asarray(true)[order], "k-", lw=2, label="ground truth")
    for name, est in estimates.items():
        ax.plot(np.asarray(est)[order], ".-", lw=0.8, ms=4, label=name)
    ax.set_xlabel(f"test image (sorted by true count, {len(ids)} images)")
    ax.set_ylabel("cells")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    atomic.save_figure(fig, path, dpi=90)


def read_predictions(path: Path) -> dict[str, np.ndarray | list]:
    """A predictions.csv back as columns; RunError naming the file when it is damaged (a count
    that is no number, a column or every row missing)."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        if not rows:
            raise ValueError("no rows")
        return {"id": [r["id"] for r in rows],
                "true": np.array([float(r["true"]) for r in rows]),
                "predicted": np.array([float(r["predicted"]) for r in rows])}
    except (OSError, UnicodeDecodeError, csv.Error, ValueError, KeyError, TypeError) as e:
        raise RunError(f"{path} is unreadable or damaged ({e!r}); evaluate its run again "
                       f"(make eval) to write it anew") from None
