"""How much of a test MAE is the split (issue #26): one model evaluated on several 50/50 splits.

The paper's nuclei split is unknown, so a difference between two settings measured on one split
can be split luck. `RESPLIT=s` pools the recorded split's images and draws train/test again with
seed s; this reads the evaluated runs of one model on the recorded split and on RESPLIT=1, 2, ...
and reports:

- per split: its test MAE ± std, MRE, and the mean true count of its test images;
- the spread over splits (mean ± sample std of the MAE);
- how hard each split's test images are by themselves: a split's "difficulty" is the mean, over
  its test images tested in other splits too, of their absolute errors in those other splits
  (its own errors left out: with them, difficulty and MAE correlate by construction, about
  0.86 under a model where no image is harder than another); the correlation of difficulty and
  MAE says whether splits differ by which images they test rather than by what they trained on;
- the images with the largest mean error (the ones that decide a split's MAE).

    .venv/bin/python -m bench.split_spread --dataset nuclei --model fcrn
    (runs/<dataset>/<model> and runs/<dataset>-split<s>/<model>; results in bench/results/)
"""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

from bench import stages
from pycount import config


def read_run(run: Path) -> dict | None:
    """metrics.json and the per-image rows of an evaluated run; None when it is not evaluated."""
    try:
        m = json.loads((run / "metrics.json").read_text())
        rows = list(csv.DictReader(open(run / "predictions.csv")))
    except (OSError, ValueError):
        return None
    return {"metrics": m, "images": {r["id"]: (float(r["true"]), float(r["predicted"]))
                                     for r in rows}}


def find_runs(dataset: str, model: str, runs_dir: Path) -> dict[str, dict]:
    """{"recorded": run, "split 1": run, ...} of the evaluated runs found."""
    out = {}
    base = read_run(runs_dir / dataset / model)
    if base:
        out["recorded"] = base
    splits = sorted((int(p.parent.name.rsplit("-split", 1)[1]), p.parent)
                    for p in runs_dir.glob(f"{dataset}-split*/{model}")
                    if p.parent.name.rsplit("-split", 1)[1].isdigit())
    for s, folder in splits:
        r = read_run(folder / model)
        if r:
            out[f"split {s}"] = r
    return out


def analyse(runs: dict[str, dict]) -> dict:
    """The per-split rows, the spread, the per-image errors and the difficulty correlation."""
    per_image: dict[str, dict[str, float]] = {}        # image -> split -> its |error| there
    for name, r in runs.items():
        for i, (t, p) in r["images"].items():
            per_image.setdefault(i, {})[name] = abs(p - t)
    mean_err = {i: float(np.mean(list(e.values()))) for i, e in per_image.items()}
    rows = []
    for name, r in runs.items():
        ids = list(r["images"])
        errs = [abs(p - t) for t, p in r["images"].values()]
        elsewhere = [float(np.mean([e for s, e in per_image[i].items() if s != name]))
                     for i in ids if len(per_image[i]) > 1]
        rows.append({"split": name, "test images": len(ids),
                     "MAE": round(float(np.mean(errs)), 2), "std": round(float(np.std(errs)), 2),
                     "MRE": round(float(r["metrics"]["mre"]), 4),
                     "mean true count": round(float(np.mean([t for t, _ in
                                                            r["images"].values()])), 1),
                     "difficulty": round(float(np.mean(elsewhere)), 2) if elsewhere else None,
                     "images tested elsewhere": len(elsewhere)})
    rated = [r for r in rows if r["difficulty"] is not None]
    maes = np.array([r["MAE"] for r in rows])
    corr = (float(np.corrcoef([r["MAE"] for r in rated], [r["difficulty"] for r in rated])[0, 1])
            if len(rated) > 2 else None)
    worst = sorted(mean_err, key=lambda i: -mean_err[i])[:10]
    return {"rows": rows,
            "spread": {"splits": len(rows), "mae_mean": round(float(maes.mean()), 2),
                       "mae_std": round(float(maes.std(ddof=1)), 2) if len(rows) > 1 else 0.0,
                       "difficulty_vs_mae_corr": None if corr is None else round(corr, 3)},
            "worst": [{"image": i, "tested in": len(per_image[i]),
                       "mean abs error": round(mean_err[i], 1),
                       "true": next(r["images"][i][0] for r in runs.values()
                                    if i in r["images"])} for i in worst]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="nuclei")
    ap.add_argument("--model", default="fcrn")
    ap.add_argument("--runs", type=Path, default=None, help="runs folder (default: runs/)")
    args = ap.parse_args(argv)
    runs = find_runs(args.dataset, args.model, args.runs or config.runs_dir())
    if len(runs) < 2:
        raise SystemExit(f"split_spread: {len(runs)} evaluated run(s) of {args.model} on "
                         f"{args.dataset} and its RESPLIT=s variants; it needs two or more "
                         f"(make train|eval DATASET={args.dataset} MODEL={args.model} RESPLIT=1)")
    a = analyse(runs)
    rows = a["rows"] + [{"split": f"mean ± std over {a['spread']['splits']} splits",
                         "MAE": f"{a['spread']['mae_mean']} ± {a['spread']['mae_std']}",
                         "difficulty": f"corr with MAE {a['spread']['difficulty_vs_mae_corr']}"}]
    worst = "".join(f"| {w['image']} | {w['tested in']} | {w['true']:.0f} | "
                    f"{w['mean abs error']} |\n" for w in a["worst"])
    md = stages.write_results(
        f"split-spread-{args.dataset}-{args.model}", rows,
        note="\nImages with the largest mean absolute error over the splits that test them:\n\n"
             "| image | tested in | true count | mean abs error |\n|---|---|---|---|\n" + worst)
    print(md.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
