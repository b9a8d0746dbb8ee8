"""Counting a density run's test images at several sizes and averaging (issue #26): does a net
trained with ZOOM= (crops also cut at 1/(1+z) and 1+z times each image's size) count more
closely when the test image is also read at those sizes?

Each test image is resized by each factor (readers.rescale_image, as ZOOM= resizes the training
images) and counted with the run's own test-time augmentation; a cell is one unit of the density
at any size, so the counts are comparable as they are. Rows: each size alone and the mean over
all of them, scored against the true counts (MAE, paired against the image as it is). The
per-image counts are kept in the JSON.

    .venv/bin/python -m bench.scale_tta runs/nuclei-zoom0.1/fcrn-ctx --factors 0.909,1,1.1
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from bench import paired, stages
from pycount import config
from pycount.data import prepare, readers
from pycount.inference.fullconv import DensityPredictor
from pycount.inference.run import load_run


def counts_at_sizes(predictor, image: np.ndarray, factors: list[float]) -> dict[float, float]:
    """{factor: the count of the image resized by it} (`predictor.density`: the run's own TTA)."""
    return {f: float(predictor.density(image if f == 1.0 else
                                       readers.rescale_image(image, f)).sum()) for f in factors}


def score(counts: dict[float, list[float]], true: np.ndarray, run: str = "") -> list[dict]:
    """Rows: each size alone and the mean over all sizes, against the true counts and paired
    per image against the count of the image as it is (counts[1.0]; bench.paired's measures)."""
    def images(est):
        return {"images": {str(i): (float(t), float(e)) for i, (t, e) in enumerate(zip(true, est))}}
    base = images(counts[1.0])
    factors = list(counts)
    rows = []
    for name, est in [*((f"x{f:g}", counts[f]) for f in factors),
                      (f"mean of x{', x'.join(f'{f:g}' for f in factors)}",
                       np.mean([counts[f] for f in factors], axis=0))]:
        r = images(est)
        s, c = paired.summary(r["images"]), paired.compare(base, r)
        rows.append({"count": name, "images": s["images"], "MAE": s["MAE"], "std": s["std"],
                     "mean error": s["mean error"], "paired vs x1": c["paired diff"],
                     "s.e.": c["s.e."] if len(true) > 1 else None,
                     "closer on": c["closer on"], "run": run})
    return rows


def measure(run_dir: Path, factors: list[float], data_root=None, n_images: int | None = None,
            engine: str = "caffe") -> tuple[list[dict], dict]:
    run = load_run(run_dir)
    if not run.model.density:
        raise config.ConfigError(f"{run_dir}: {run.model.name} is not a density model")
    factors = [1.0, *(f for f in factors if f != 1.0)]
    samples = prepare.load(run.ds, prepare.split(run.ds, data_root)["test"], data_root)
    samples = samples[:n_images] if n_images else samples
    true = np.array([s.count for s in samples], np.float64)
    p = DensityPredictor(run.deploy, run.weights, run.model, run.ds, engine=engine)
    counts = {f: [] for f in factors}
    t0 = time.perf_counter()
    for i, s in enumerate(samples):
        for f, c in counts_at_sizes(p, s.image, factors).items():
            counts[f].append(c)
        print(f"{s.id}: true {true[i]:.0f}, " + ", ".join(
            f"x{f:g} {counts[f][-1]:.1f}" for f in factors), flush=True)
    kept = {"run": str(run_dir), "ids": [s.id for s in samples], "true": true.tolist(),
            "counts": {f"{f:g}": c for f, c in counts.items()},
            "seconds": round(time.perf_counter() - t0, 1), "tta": p.tta, "engine": engine}
    return score(counts, true, str(run_dir)), kept


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--factors", default="0.909,1,1.1",
                    help="comma-separated sizes to count each test image at (1: as it is)")
    ap.add_argument("--images", type=int, default=None, help="the first N test images")
    ap.add_argument("--data-root", default="../shared/datasets")
    ap.add_argument("--engine", default="caffe")
    ap.add_argument("--label", default="", help="suffix of the results file")
    a = ap.parse_args(argv)
    factors = [float(x) for x in a.factors.split(",")]
    if any(not 0.1 <= f <= 4 for f in factors):
        raise SystemExit("scale_tta: give factors from 0.1 to 4")
    rows, kept = measure(a.run, factors, a.data_root, a.images, a.engine)
    note = ("Each image counted at each size with the run's own flips and turns; paired vs x1: "
            "mean over the images of |error| minus |error| of the image as it is (negative: "
            "closer), with its standard error.")
    kind = "scale-tta" + (f"-{a.label}" if a.label else "")
    print(stages.write_results(kind, rows, note=note, extra={"per_image": kept}).read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
