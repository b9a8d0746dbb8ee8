"""One study step's paired differences pooled over several splits, with standard errors that do
not take the same image, tested in more than one split, for independent evidence.

Each argument names a bench.paired results file and two of the runs it keeps, baseline and
variant: `results.json#baseline:variant`. Per split: the paired difference of absolute errors
(variant − baseline, negative: the variant is closer) over the images both counted. Pooled:
the mean over every (split, image) pair, and three standard errors of it:

- naive: as if every pair were an independent image (what the study quoted until 2026-12-06);
- by image: the pairs grouped by image id (a cluster-robust standard error; an image tested in
  several splits is one unit, its differences in those splits correlated);
- by split: the mean and standard error of the splits' means, with k − 1 degrees of freedom.

    .venv/bin/python -m bench.pooled --label nuclei-zoom01-four-splits \\
        bench/results/2026-12-06-vm-paired-nuclei-zoom01.json#ctx-sigma2:zoom0.1 ...
"""
from __future__ import annotations

import argparse

import numpy as np

from bench import paired, stages


def differences(spec: str) -> tuple[str, dict[str, float]]:
    """`file.json#base:variant` -> (the spec, {image id: |err variant| − |err base|}), the two
    runs read and paired as bench.paired reads and pairs them; a note where their true counts
    differ."""
    path, _, pair = spec.partition("#")
    base, _, variant = pair.partition(":")
    diffs, apart = paired.differences(paired.load(f"{path}#{base}")[1],
                                      paired.load(f"{path}#{variant}")[1])
    if apart:
        print(f"note: {spec}: the true counts of {len(apart)} image(s) differ between the two "
              f"runs ({', '.join(apart[:3])}): the runs were evaluated by different pycounts")
    return spec, diffs


def pool(splits: list[dict[str, float]]) -> dict:
    """The pooled mean and its naive, by-image and by-split standard errors."""
    pairs = [(i, d) for split in splits for i, d in split.items()]
    d = np.array([x for _, x in pairs])
    n, mean = len(d), float(d.mean())
    naive = float(d.std(ddof=1) / np.sqrt(n))
    groups: dict[str, float] = {}
    for i, x in pairs:                       # each image's summed deviation from the mean
        groups[i] = groups.get(i, 0.0) + (x - mean)
    g = len(groups)
    by_image = float(np.sqrt(g / (g - 1) * sum(s * s for s in groups.values())) / n) \
        if g > 1 else float("nan")
    means = np.array([np.mean(list(s.values())) for s in splits])
    by_split = float(means.std(ddof=1) / np.sqrt(len(means))) if len(means) > 1 else float("nan")
    return {"pairs": n, "images": g, "paired diff": round(mean, 2),
            "s.e. naive": round(naive, 2), "s.e. by image": round(by_image, 2),
            "split means": round(float(means.mean()), 2), "s.e. by split": round(by_split, 2),
            "df by split": len(means) - 1, "closer on": int((d < 0).sum()),
            "lower on splits": f"{int((means < 0).sum())} of {len(means)}"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--label", required=True, help="name of the results file")
    ap.add_argument("pairs", nargs="+", help="results.json#baseline:variant, one per split")
    args = ap.parse_args(argv)
    found = [differences(s) for s in args.pairs]
    labels = [s for s, _ in found]
    if len(set(labels)) != len(labels):
        raise SystemExit("pooled: a pair is named twice")
    rows = []
    for spec, diffs in found:
        d = np.array(list(diffs.values()))
        rows.append({"split": spec, "images": len(d), "paired diff": round(float(d.mean()), 2),
                     "s.e.": round(float(d.std(ddof=1) / np.sqrt(len(d))), 2),
                     "closer on": int((d < 0).sum())})
    rows.append({"split": "pooled", **pool([d for _, d in found])})
    md = stages.write_results(
        f"pooled-{args.label}", rows,
        note="\npaired diff: |error| of the variant minus the baseline's (negative: closer). "
             "s.e. naive treats every (split, image) pair as independent; s.e. by image groups "
             "the pairs by image id (an image tested in several splits counts once); s.e. by "
             "split is that of the splits' means (df = splits − 1).\n")
    print(md.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
