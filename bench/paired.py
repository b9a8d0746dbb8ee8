"""Paired per-image comparison of evaluated runs against a baseline on the same test images
(issue #26's study), with every run's per-image counts kept in the results file.

A study step is kept only if it helps beyond the noise, and the noise is per image: this reads
predictions.csv of each run, pairs it with the baseline's on the test images they share, and
reports per run its MAE ± std, MRE, the slope of counted on true (least-squares line, as the
study table in docs/density-model.md gives it), the paired difference of absolute errors (variant − baseline, mean ± standard error)
and on how many images the variant is closer. Run folders are lost with their machine, so the
results JSON keeps every run's (image, true, predicted) rows, and a later comparison can take
its baseline from such a file (`--baseline results.json#label`) instead of a folder, or from
the audit record (`docs/audit/results.json#nuclei/fcrn`: `make audit` keeps each run's per-image
counts there).

    .venv/bin/python -m bench.paired --label nuclei-study \\
        --baseline base=/work/study-runs/nuclei/fcrn \\
        sigma5=/work/study-runs/nuclei-sigma5/fcrn crop128=...
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from bench import stages
from bench.split_spread import read_run


def load(spec: str) -> tuple[str, dict]:
    """`label=RUN_DIR`, `RUN_DIR` (label: the folder's dataset/model) or
    `label=results.json#key` (a run kept by an earlier call) -> (label, {"images", "metrics"})."""
    label, _, where = spec.rpartition("=")
    if "#" in where:
        path, key = where.split("#", 1)
        try:
            runs = json.loads(Path(path).read_text())["runs"]
        except (OSError, ValueError, KeyError) as e:
            raise SystemExit(f"paired: {path} is not a results file of bench.paired ({e})")
        if key not in runs:
            raise SystemExit(f"paired: {path} keeps no run {key!r}; it keeps {', '.join(runs)}")
        r = runs[key]
        return label or key, {"images": {i: tuple(tp) for i, tp in r["images"].items()},
                              "metrics": r["metrics"], "source": f"{path}#{key}"}
    folder = Path(where)
    r = read_run(folder)
    if r is None:
        raise SystemExit(f"paired: {folder} has no metrics.json and predictions.csv (evaluate it "
                         f"first: make eval ... with the same settings)")
    r["source"] = str(folder)
    return label or f"{folder.parent.name}/{folder.name}", r


def summary(images: dict[str, tuple[float, float]]) -> dict:
    t = np.array([v[0] for v in images.values()])
    p = np.array([v[1] for v in images.values()])
    err = np.abs(p - t)
    rel = err[t > 0] / t[t > 0]
    return {"images": len(t), "MAE": round(float(err.mean()), 2), "std": round(float(err.std()), 2),
            "MRE": round(float(rel.mean()), 4), "mean error": round(float((p - t).mean()), 2),
            "slope": round(float(np.polyfit(t, p, 1)[0]), 3) if len(set(t)) > 1 else None}


def shared(base: dict, other: dict) -> list[str]:
    """The test images both runs counted."""
    ids = sorted(set(base["images"]) & set(other["images"]))
    if not ids:
        raise SystemExit("paired: the two runs share no test image (different splits?)")
    return ids


def differences(base: dict, other: dict) -> tuple[dict[str, float], list[str]]:
    """Per shared image, |error| of `other` minus |error| of `base` (each against its own true
    count), and the shared images whose true counts differ between the two runs (evaluated by
    pycounts that read the marks otherwise)."""
    ids = shared(base, other)
    d = {i: abs(other["images"][i][1] - other["images"][i][0])
         - abs(base["images"][i][1] - base["images"][i][0]) for i in ids}
    return d, [i for i in ids if abs(other["images"][i][0] - base["images"][i][0]) > 1e-9]


def compare(base: dict, other: dict) -> dict:
    """Paired |error| difference (other − base) on the images both tested; `truths differ`:
    see differences."""
    diffs, apart = differences(base, other)
    d = np.array(list(diffs.values()))
    se = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan")
    return {"shared images": len(d), "paired diff": round(float(d.mean()), 2),
            "s.e.": round(se, 2), "closer on": int((d < 0).sum()), "truths differ": len(apart)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--label", required=True, help="name of the results file")
    ap.add_argument("--baseline", required=True,
                    help="label=RUN_DIR or label=results.json#key")
    ap.add_argument("runs", nargs="*", help="label=RUN_DIR (or label=results.json#key); none: "
                    "the baseline's summary and counts alone, kept for later pairing")
    args = ap.parse_args(argv)
    base_label, base = load(args.baseline)
    loaded = [load(s) for s in args.runs]
    labels = [base_label] + [label for label, _ in loaded]
    twice = sorted({x for x in labels if labels.count(x) > 1})
    if twice:                   # the later run would replace the other's kept counts
        raise SystemExit(f"paired: the label {twice[0]!r} is given twice; name each run once "
                         f"(label=RUN_DIR)")
    rows, kept = [], {base_label: base}
    rows.append({"run": f"{base_label} (baseline)", **summary(base["images"]),
                 "source": base["source"]})
    for label, r in loaded:
        # the run's summary over the images the pairing uses, so that its MAE and its paired
        # difference describe the same images
        both = shared(base, r)
        c = compare(base, r)
        if c["truths differ"]:
            print(f"note: {label}: {c['truths differ']} of the shared images were scored "
                  f"against other true counts than the baseline's (evaluated by another pycount)")
        rows.append({"run": label, **summary({i: r["images"][i] for i in both}), **c,
                     "source": r["source"]})
        kept[label] = r
    kept_runs = {k: {"source": v["source"], "metrics": v["metrics"],
                     "images": {i: list(tp) for i, tp in v["images"].items()}}
                 for k, v in kept.items()}
    md = stages.write_results(
        f"paired-{args.label}", rows, extra={"runs": kept_runs},
        note="\npaired diff: mean over the shared test images of |error| of the run minus "
             "|error| of the baseline (negative: the run is closer), with its standard error; "
             "a run's MAE, std, MRE and slope are over those shared images; truths differ: "
             "shared images scored against other true counts than the baseline's; "
             "slope: of the least-squares line of counted on true. Every run's per-image counts "
             "are in the JSON beside this file (`--baseline label=<it>#<run>` pairs with "
             "them later).\n")
    print(md.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
