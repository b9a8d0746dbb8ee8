"""The error of the paper's counting step by itself (section 2.1): each test image's true patch
counts (the marks inside each sliding window) put through the same density heatmap (scipy's
griddata over the patch centres) and summed, against the marks.

A patch counter that predicted every window exactly would still be off by this much: how much of
a test MAE the heatmap step can explain, as against the net. Beside it, the plain non-overlapping
tiling estimate, which eval reports as a cross-check.

    .venv/bin/python -m bench.interp_floor --dataset nuclei [--dataset bacterial ...]
    (the recorded split's test images; results in bench/results/)
"""
from __future__ import annotations

import argparse

import numpy as np

from bench import stages
from pycount import config
from pycount.data import patches, prepare
from pycount.inference import density


def exact_counts(image_shape: tuple[int, int], centres: np.ndarray, patch: int,
                 stride: int) -> tuple[float, float]:
    """(heatmap integral, tiling estimate) of one image from its windows' true counts."""
    h, w = image_shape
    origins = patches.grid(h, w, patch, stride)
    counts = patches.counts_on_grid(centres, origins, patch).astype(np.float64)
    heat = density.density_map((h, w), patches.patch_centres(origins, patch), counts, patch)
    return float(heat.sum()), density.tiling_estimate((h, w), origins, counts, patch)


def floor(ds: config.DatasetConfig, data_root=None) -> dict:
    """Per-image and summary errors of the exact-count heatmap over the split's test images."""
    test = prepare.load(ds, prepare.split(ds, data_root)["test"], data_root, side=ds.patch)
    images = []
    for s in test:
        heat, tiling = exact_counts(s.image.shape[:2], s.centres, ds.patch, ds.stride)
        images.append({"id": s.id, "true": s.count, "heatmap": round(heat, 3),
                       "tiling": round(tiling, 3)})
    true = np.array([r["true"] for r in images], float)
    err = np.array([r["heatmap"] for r in images]) - true
    tile = np.array([r["tiling"] for r in images]) - true
    return {"row": {"dataset": ds.name, "patch / stride": f"{ds.patch} / {ds.stride}",
                    "test images": len(images),
                    "heatmap MAE ± std": f"{np.abs(err).mean():.2f} ± {np.abs(err).std():.2f}",
                    "heatmap MRE": round(float(np.mean(np.abs(err) / np.maximum(true, 1))), 4),
                    "mean signed": round(float(err.mean()), 2),
                    "tiling MAE": round(float(np.abs(tile).mean()), 2)},
            "images": images}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", action="append", help="a named dataset (repeatable)")
    ap.add_argument("--data-root", default=None)
    args = ap.parse_args(argv)
    results = [floor(config.dataset(name), args.data_root)
               for name in args.dataset or ["nuclei", "bacterial"]]
    md = stages.write_results("interp-floor", [r["row"] for r in results],
                              extra={"images": {r["row"]["dataset"]: r["images"]
                                                for r in results}})
    print(md.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
