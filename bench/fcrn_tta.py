"""Which test-time augmentations a density run's count needs (issue 22): subsets of the 8 flips
and quarter turns against all 8.

A density model's count by default averages the image's density under its 8 flips and quarter
turns (config.ModelConfig.tta = 8); each transform costs one full counting pass. This counts every
test image once under each transform (the count of a transform is the sum of its density, which
turning the map back does not change), then scores each subset of transforms that pycount could
use as if it were the default: per-image difference of its mean count from the mean of all 8
(mean and max, in %), mean shift, test MAE, and the seconds per image it would take (the measured
seconds of one transform's pass times the subset's size); with --strides, also for crops at
other strides than pycount's half crop. Writes
bench/results/<date>-<host>-fcrn-tta.{json,md}.

    .venv/bin/python -m bench.fcrn_tta runs/bacterial/fcrn --engine caffe --strides 0.5,0.75,1
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from bench import stages
from pycount import config
from pycount.data import prepare
from pycount.inference.fullconv import DensityPredictor, turned
from pycount.inference.run import load_run

ALL = config.TTA_TRANSFORMS[8]
# (mirror, quarter turns) of each subset scored; mirror is a left-right flip before the turns
SUBSETS = {
    "all 8 (reference)": ALL,
    "4 quarter turns": ((False, 0), (False, 1), (False, 2), (False, 3)),
    "4 flips: none, left-right, up-down, both": ((False, 0), (True, 0), (True, 2), (False, 2)),
    "4: none, half turn, 2 diagonal flips": ((False, 0), (False, 2), (True, 1), (True, 3)),
    "2: none, half turn": ((False, 0), (False, 2)),
    "2: none, left-right": ((False, 0), (True, 0)),
    "1: the image as it is": ((False, 0),),
}


def per_transform_counts(p: DensityPredictor, image: np.ndarray) -> dict:
    """{(mirror, k): the count of the image under that transform} (one counting pass each)."""
    return {(mirror, k): float(p._density(turned(image, mirror, k)).sum()) for mirror, k in ALL}


def score(counts: list[dict], ref: np.ndarray, true: np.ndarray, subset) -> dict:
    """A subset's per-image counts (the mean of its transforms' counts) against the reference
    counts `ref`: their difference in % of the reference (mean, max), mean shift, and MAE
    against the true counts."""
    est = np.array([np.mean([c[t] for t in subset]) for c in counts])
    rel = np.abs(est - ref) / np.maximum(np.abs(ref), 1.0)
    return {"mean_diff_pct": round(100 * rel.mean(), 3), "max_diff_pct": round(100 * rel.max(), 3),
            "mean_shift": round(float((est - ref).mean()), 3),
            "mae": round(float(np.abs(est - true).mean()), 3)}


def measure(run_dir: Path, n_images: int | None = None, data_root=None,
            engine: str = "caffe", strides=(0.5,)) -> tuple[list[dict], dict]:
    """Rows per crop stride (a fraction of the crop; 0.5 is pycount's) and subset, each against
    all 8 transforms at half stride."""
    run = load_run(run_dir)
    if not run.model.density:
        raise config.ConfigError(f"{run_dir}: {run.model.name} is not a density model")
    samples = prepare.load(run.ds, prepare.split(run.ds, data_root)["test"], data_root)
    samples = samples[:n_images] if n_images else samples
    true = np.array([s.count for s in samples], np.float64)
    rows, kept, ref = [], {"run": str(run_dir), "true": true.tolist(),
                           "transforms": [list(t) for t in ALL], "counts": {}}, None
    if run.model.context:            # counted in one pass per transform: no crop stride
        strides = (0.5,)
    for stride in sorted(set(strides) | {0.5}):
        p = DensityPredictor(run.deploy, run.weights, run.model, run.ds, engine=engine, tta=1)
        p.stride = max(1, int(round(p.crop * stride)))
        p._density(samples[0].image)                         # warm-up
        t0 = time.perf_counter()
        counts = [per_transform_counts(p, s.image) for s in samples]
        one = (time.perf_counter() - t0) / (len(samples) * len(ALL))
        kept["counts"][str(stride)] = [[c[t] for t in ALL] for c in counts]
        if ref is None:                                      # stride 0.5 comes first
            ref = np.array([np.mean([c[t] for t in ALL]) for c in counts])
        for name, subset in SUBSETS.items():
            rows.append({"crop stride": "one pass (context model)" if p.whole
                         else f"{stride:g} ({p.stride} px)", "transforms": name,
                         "n": len(subset), "s_per_image": round(one * len(subset), 3),
                         **score(counts, ref, true, subset),
                         "images": len(samples), "run": str(run_dir), "engine": engine,
                         "context": run.model.context})
            print(rows[-1], flush=True)
    return rows, kept


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--images", type=int, default=None, help="the first N test images")
    ap.add_argument("--data-root", default="../shared/datasets")
    ap.add_argument("--engine", default="caffe")
    ap.add_argument("--strides", default="0.5",
                    help="comma-separated crop strides as fractions of the crop (0.5: pycount's)")
    a = ap.parse_args(argv)
    rows, kept = measure(a.run, a.images, a.data_root, a.engine,
                         [float(x) for x in a.strides.split(",")])
    note = ("Each subset's count is the mean of its transforms' counts; the reference is the "
            "mean of all 8 at half stride (what `pycount count` does by default). s_per_image: "
            "one transform's measured pass times the subset's size, at the threads this process "
            "was given. The per-image, per-transform counts are kept in the JSON (`per_image`).")
    print(stages.write_results("fcrn-tta", rows, note=note,
                               extra={"per_image": kept}).read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
