"""How closely a trained run counts its own training images (issue #26): the images it learned
from, counted as eval counts test images, against their marks.

A test MAE above the training images' MAE is the generalisation gap; the training images' MAE
itself is how far the net fits the marks it was given at all (its capacity and schedule, and the
marks' own consistency). On nuclei it says whether the paper's test MAE is within what a net
reaches even on the images it saw.

    .venv/bin/python -m bench.train_fit --run runs/nuclei/fcrn [--run ...] [--tta 8]
    (the run's training and monitor images; its test MAE from its metrics.json; results in
    bench/results/)
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from bench import stages
from pycount.data import prepare
from pycount.inference.predictors import make_predictor
from pycount.inference.run import load_run


def summary(errors: np.ndarray, true: np.ndarray) -> dict:
    """MAE ± std, MRE and the mean signed error of per-image errors (counted − marked)."""
    return {"MAE": round(float(np.abs(errors).mean()), 2),
            "std": round(float(np.abs(errors).std()), 2),
            "MRE": round(float(np.mean(np.abs(errors) / np.maximum(true, 1))), 4),
            "mean signed": round(float(errors.mean()), 2)}


def fit(run: Path, tta: int | None, backend: str, data_root=None) -> dict:
    r = load_run(run)
    predict = make_predictor(backend, run, tta=tta)
    ids = prepare.split(r.ds, data_root)
    out = {"run": str(run), "images": {}}
    for part in ("train", "val"):
        samples = prepare.load(r.ds, ids[part], data_root, side=None)
        rows = [(s.id, s.count, float(predict.count_image(s.image).count)) for s in samples]
        out["images"][part] = [{"id": i, "true": t, "predicted": round(p, 2)} for i, t, p in rows]
        true = np.array([t for _, t, _ in rows], float)
        out[part] = summary(np.array([p for _, _, p in rows]) - true, true)
    try:
        out["test"] = {"MAE": round(json.loads((run / "metrics.json").read_text())["mae"], 2)}
    except (OSError, ValueError, KeyError):
        out["test"] = {"MAE": None}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", action="append", type=Path, required=True)
    ap.add_argument("--tta", type=int, default=None, help="density models (default: the model's)")
    ap.add_argument("--backend", default="caffe")
    ap.add_argument("--data-root", default=None)
    args = ap.parse_args(argv)
    results = [fit(run, args.tta, args.backend, args.data_root) for run in args.run]
    rows = [{"run": r["run"], "training images": len(r["images"]["train"]),
             "train MAE ± std": f"{r['train']['MAE']} ± {r['train']['std']}",
             "train MRE": r["train"]["MRE"], "train mean signed": r["train"]["mean signed"],
             "monitor MAE": r["val"]["MAE"], "test MAE (metrics.json)": r["test"]["MAE"]}
            for r in results]
    md = stages.write_results("train-fit", rows, extra={"runs": results})
    print(md.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
