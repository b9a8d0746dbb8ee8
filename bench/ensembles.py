"""How far averaging runs' counts can go (issue #26): every subset of the given runs, each image's
count the mean of the subset's counts, scored on the test images all of them share.

The best subset of each size is chosen on the same test images it is scored on, so its MAE is an
optimistic bound on what an ensemble of that many of these runs reaches, not a result: it says
whether ensembling could close a gap at all. The mean over all subsets of a size is what a
choice made blind would expect.

    .venv/bin/python -m bench.ensembles --label nuclei \\
        a=bench/results/2026-12-06-vm-paired-nuclei-zoom01.json#zoom0.1 b=runs/nuclei/fcrn ...
"""
from __future__ import annotations

import argparse
import itertools

import numpy as np

from bench import stages
from bench.paired import load

MAX_SUBSETS = 20_000      # per size: beyond it, a seeded sample of the subsets


def ensembles(runs: dict[str, dict]) -> list[dict]:
    """Per subset size k (1..n): the best subset's MAE (chosen on these images), the mean and
    the worst over all subsets (sampled beyond MAX_SUBSETS), and the best subset's names."""
    ids = sorted(set.intersection(*(set(r["images"]) for r in runs.values())))
    if not ids:
        raise SystemExit("ensembles: the runs share no test image (different splits?)")
    names = sorted(runs)
    true = np.array([runs[names[0]]["images"][i][0] for i in ids])
    for n in names[1:]:
        other = np.array([runs[n]["images"][i][0] for i in ids])
        if not np.allclose(other, true):
            raise SystemExit(f"ensembles: {n} and {names[0]} disagree on the true counts of "
                             f"their shared images (another dataset or annotation)")
    counts = np.array([[runs[n]["images"][i][1] for i in ids] for n in names])
    rng = np.random.default_rng(0)
    rows = []
    for k in range(1, len(names) + 1):
        subsets = list(itertools.combinations(range(len(names)), k))
        if len(subsets) > MAX_SUBSETS:
            subsets = [subsets[j] for j in rng.choice(len(subsets), MAX_SUBSETS, replace=False)]
        maes = np.array([np.abs(counts[list(s)].mean(0) - true).mean() for s in subsets])
        best = subsets[int(maes.argmin())]
        rows.append({"runs averaged": k, "subsets": len(subsets), "images": len(ids),
                     "best MAE": round(float(maes.min()), 2),
                     "mean MAE": round(float(maes.mean()), 2),
                     "worst MAE": round(float(maes.max()), 2),
                     "best subset": ", ".join(names[j] for j in best)})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--label", required=True, help="name of the results file")
    ap.add_argument("runs", nargs="+", help="label=RUN_DIR or label=results.json#key "
                                            "(bench.paired's forms)")
    args = ap.parse_args(argv)
    runs = dict(load(s) for s in args.runs)
    if len(runs) < 2:
        raise SystemExit("ensembles: give at least two runs (distinct labels)")
    rows = ensembles(runs)
    md = stages.write_results(
        f"ensembles-{args.label}", rows,
        extra={"sources": {k: v["source"] for k, v in runs.items()}},
        note="\nbest MAE: the subset of that size whose averaged counts come closest on these "
             "test images, chosen on them (an optimistic bound, not a result); mean MAE: the "
             "expectation of a subset chosen blind.\n")
    print(md.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
