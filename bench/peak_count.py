"""Counting a density run's maps by their peaks instead of their sum (issue #26): is the nuclei
count's slope below 1 the sum measuring stained area (large nuclei weigh more, crowded small
ones less), which a count of local maxima would not do?

Each image's density (the run's own flips and turns) is computed once; its local maxima (the
highest pixel within `--window` px) are kept with their heights, so that any threshold can be
scored afterwards. The threshold is chosen on the run's training and monitor images (the MAE of
their peak counts against their marks) and then applied to the test images; the threshold best on
the test images themselves is shown too, as an optimistic bound, not a result. Rows beside the
sum (pycount's count).

    .venv/bin/python -m bench.peak_count runs/nuclei-zoom0.1/fcrn-ctx --label nuclei-zoom01
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from bench import paired, stages
from pycount import config
from pycount.data import prepare
from pycount.inference.fullconv import DensityPredictor
from pycount.inference.run import load_run


def peaks(density: np.ndarray, window: int) -> np.ndarray:
    """Heights of the density's local maxima (each the highest pixel within `window` px and above
    zero), sorted high to low."""
    top = ndimage.maximum_filter(density, size=window, mode="constant", cval=-np.inf)
    return np.sort(density[(density == top) & (density > 0)])[::-1]


def peak_counts(heights: list[np.ndarray], threshold: float) -> np.ndarray:
    return np.array([int(np.sum(h >= threshold)) for h in heights], np.float64)


def best_threshold(heights: list[np.ndarray], true: np.ndarray, grid: np.ndarray) -> float:
    """The threshold of `grid` whose peak counts come closest to `true` (MAE); of ties, the first."""
    maes = [np.abs(peak_counts(heights, t) - true).mean() for t in grid]
    return float(grid[int(np.argmin(maes))])


def measure(run_dir: Path, window: int, data_root=None, engine: str = "caffe") -> tuple:
    run = load_run(run_dir)
    if not run.model.density:
        raise config.ConfigError(f"{run_dir}: {run.model.name} is not a density model")
    p = DensityPredictor(run.deploy, run.weights, run.model, run.ds, engine=engine)
    ids = prepare.split(run.ds, data_root)
    parts = {}
    t0 = time.perf_counter()
    for part, names in (("fit", ids["train"] + ids["val"]), ("test", ids["test"])):
        samples = prepare.load(run.ds, names, data_root)
        maps = [p.density(s.image) for s in samples]
        parts[part] = {"ids": [s.id for s in samples],
                       "true": np.array([s.count for s in samples], np.float64),
                       "sum": np.array([m.sum() for m in maps]),
                       "heights": [peaks(m, window) for m in maps]}
        print(f"{part}: {len(samples)} images, {time.perf_counter() - t0:.0f} s", flush=True)
    # thresholds in units of one cell's peak height: a Gaussian of sigma holds 1/(2 pi sigma^2)
    unit = 1.0 / (2 * np.pi * run.ds.sigma ** 2)
    grid = unit * np.linspace(0.02, 1.5, 149)
    fit, test = parts["fit"], parts["test"]
    chosen = best_threshold(fit["heights"], fit["true"], grid)
    oracle = best_threshold(test["heights"], test["true"], grid)
    rows = []
    for name, est_fit, est_test in (
            ("sum of the density (pycount's count)", fit["sum"], test["sum"]),
            (f"peaks >= {chosen / unit:.2f} cell peak (chosen on the training images)",
             peak_counts(fit["heights"], chosen), peak_counts(test["heights"], chosen)),
            (f"peaks >= {oracle / unit:.2f} cell peak (best on the test images: a bound)",
             peak_counts(fit["heights"], oracle), peak_counts(test["heights"], oracle))):
        s = paired.summary(dict(zip(test["ids"], zip(test["true"], est_test))))
        rows.append({"count": name, "training images MAE": paired.summary(dict(zip(
            fit["ids"], zip(fit["true"], est_fit))))["MAE"], "test MAE": s["MAE"],
            **{k: s[k] for k in ("std", "MRE", "mean error", "slope")},
            "window": window, "run": str(run_dir)})
    kept = {part: {"ids": v["ids"], "true": v["true"].tolist(), "sum": v["sum"].tolist(),
                   "heights": [h[h >= grid[0]].round(6).tolist() for h in v["heights"]]}
            for part, v in parts.items()}
    kept.update(unit=unit, chosen=chosen, oracle=oracle)
    return rows, kept


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--window", type=int, default=5, help="local maxima within this many px")
    ap.add_argument("--data-root", default="../shared/datasets")
    ap.add_argument("--engine", default="caffe")
    ap.add_argument("--label", default="", help="suffix of the results file")
    a = ap.parse_args(argv)
    rows, kept = measure(a.run, a.window, a.data_root, a.engine)
    note = ("Thresholds in units of one cell's peak height, 1/(2 pi sigma^2) of the run's sigma; "
            "the training images are the run's training and monitor images. Slope: of the "
            "least-squares line of counted on true over the test images.")
    kind = "peak-count" + (f"-{a.label}" if a.label else "")
    print(stages.write_results(kind, rows, note=note, extra={"per_image": kept}).read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
