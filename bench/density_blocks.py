"""Where a density run loses or gains cells (issue #26): its test images cut into square blocks,
each block's predicted count (the density's sum there) against its marks, grouped by how many
marks the block holds.

A net that saturates on crowded nuclei under-counts the densest blocks most; a net that learned
the average of inconsistent marks over-counts the blocks with few marks and under-counts the
middle (regression to the mean). The table tells the two apart.

    .venv/bin/python -m bench.density_blocks --run RUN_DIR --dataset nuclei [--block 100] [--tta 1]
    (the run's test images are those of its predictions.csv; results in bench/results/)
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from bench import stages
from pycount import config
from pycount.data import prepare
from pycount.inference.fullconv import DensityPredictor

BINS = (0, 5, 10, 20, 30, 45, 10**9)     # marks per block (for 100 px blocks of nuclei)


def blocks(density: np.ndarray, centres: np.ndarray, side: int) -> list[tuple[int, float]]:
    """(marks, predicted count) of each whole side x side block of the image, row by row."""
    out = []
    h, w = density.shape
    for y in range(0, h - side + 1, side):
        for x in range(0, w - side + 1, side):
            inside = ((centres[:, 0] >= x) & (centres[:, 0] < x + side)
                      & (centres[:, 1] >= y) & (centres[:, 1] < y + side))
            out.append((int(inside.sum()), float(density[y:y + side, x:x + side].sum())))
    return out


def table(pairs: list[tuple[int, float]], bins=BINS) -> list[dict]:
    t = np.array([p[0] for p in pairs], float)
    pr = np.array([p[1] for p in pairs], float)
    rows = []
    for lo, hi in zip(bins[:-1], bins[1:]):
        k = (t >= lo) & (t < hi)
        if not k.any():
            continue
        rows.append({"marks per block": f"{lo}-{hi - 1}" if hi < 10**9 else f"{lo}+",
                     "blocks": int(k.sum()), "mean marks": round(float(t[k].mean()), 2),
                     "mean predicted": round(float(pr[k].mean()), 2),
                     "predicted / marks": round(float(pr[k].sum() / max(t[k].sum(), 1)), 3)})
    slope = float(np.polyfit(t, pr, 1)[0]) if len(set(t)) > 1 else float("nan")
    rows.append({"marks per block": "all", "blocks": len(t), "mean marks": round(float(t.mean()), 2),
                 "mean predicted": round(float(pr.mean()), 2),
                 "predicted / marks": round(float(pr.sum() / max(t.sum(), 1)), 3),
                 "slope": round(slope, 3)})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, type=Path, help="an evaluated density run folder")
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--data-root", default="../shared/datasets")
    ap.add_argument("--block", type=int, default=100, help="block side, px")
    ap.add_argument("--tta", type=int, default=1, help="1 (fast) or 8 (as make eval)")
    args = ap.parse_args(argv)
    ds = config.dataset(args.dataset)
    model = config.model(args.run.name, ds)         # runs/<dataset>/<model>
    ids = [r["id"] for r in csv.DictReader(open(args.run / "predictions.csv"))]
    predictor = DensityPredictor(args.run / "deploy.prototxt", args.run / "model.caffemodel",
                                 model, ds, tta=args.tta)
    pairs = []
    for s in prepare.load(ds, ids, args.data_root):
        pairs += blocks(predictor.density(s.image), s.centres, args.block)
    rows = table(pairs)
    md = stages.write_results(
        f"density-blocks-{ds.tag}", rows,
        note=f"\nRun: {args.run}; {len(ids)} test images of {ds.tag} cut into {args.block} px "
             f"blocks; density with TTA {args.tta}; slope: of the least-squares line of the "
             f"blocks' predicted counts on their marks.\n")
    print(md.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
