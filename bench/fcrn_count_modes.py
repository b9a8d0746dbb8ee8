"""How far cheaper ways of counting with a trained density run move its counts (issue 22).

For a run folder of a density model: the reference scheme (crops of the training size at half
stride, each with the model's context around it when it was trained with some; pycount.inference.
fullconv) against crops at 3/4 and full stride and one whole-image pass (the default of a model
trained with context, MODEL=fcrn-ctx), each with the run's test-time augmentation (or --tta), on
the dataset's test images. Prints, per scheme, the seconds per image, the per-image count
difference from the reference (mean, max, mean shift) and the test MAE, and writes them to
bench/results/<date>-<host>-fcrn-count-modes.{json,md}.

    .venv/bin/python -m bench.fcrn_count_modes runs/bacterial/fcrn --images 20 --engine caffe
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from bench import stages
from pycount.data import prepare
from pycount.inference.fullconv import DensityPredictor
from pycount.inference.run import load_run

SCHEMES = {"crops at half stride": {}, "crops at 3/4 stride": {"stride": 0.75},
           "crops at full stride": {"stride": 1.0}, "whole image": {"whole": True}}


def measure(run_dir: Path, n_images: int | None = None, data_root=None,
            engine: str = "cv2", tta: int | None = None) -> list[dict]:
    run = load_run(run_dir)
    samples = prepare.load(run.ds, prepare.split(run.ds, data_root)["test"], data_root)
    samples = samples[:n_images] if n_images else samples
    true = np.array([s.count for s in samples], np.float64)
    rows, ref = [], None
    for name, how in SCHEMES.items():
        p = DensityPredictor(run.deploy, run.weights, run.model, run.ds, engine=engine,
                             whole=how.get("whole", False), tta=tta)
        default = "whole" in how if run.model.context else not how    # what `pycount count` does
        if "stride" in how:
            p.stride = max(1, int(round(p.crop * how["stride"])))
        p.count_image(samples[0].image)                      # warm-up
        t0 = time.perf_counter()
        counts = np.array([p.count_image(s.image).count for s in samples])
        secs = (time.perf_counter() - t0) / len(samples)
        ref = counts if ref is None else ref
        rel = np.abs(counts - ref) / np.maximum(np.abs(ref), 1.0)
        rows.append({"scheme": name + (" (default)" if default else ""),
                     "s_per_image": round(secs, 3),
                     "mean_diff_pct": round(100 * rel.mean(), 2),
                     "max_diff_pct": round(100 * rel.max(), 2),
                     "mean_shift": round(float((counts - ref).mean()), 2),
                     "mae": round(float(np.abs(counts - true).mean()), 3),
                     "images": len(samples), "run": str(run_dir), "engine": engine,
                     "tta": p.tta, "context": run.model.context})
        print(rows[-1], flush=True)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--images", type=int, default=None, help="the first N test images")
    ap.add_argument("--data-root", default="../shared/datasets")
    ap.add_argument("--engine", default="cv2")
    ap.add_argument("--tta", type=int, choices=[1, 8], default=None)
    a = ap.parse_args(argv)
    rows = measure(a.run, a.images, a.data_root, a.engine, a.tta)
    print(stages.write_results("fcrn-count-modes", rows).read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
