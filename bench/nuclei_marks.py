"""What incomplete marks cost on the nuclei set (issue #26, "Labels"): a run's error on the
images whose marks look complete against its error on the others.

The CRCHistoPhenotypes release marks every nucleus on some images and leaves many unmarked on
others. Which images are which is not recorded, so this estimates it from the stain alone,
without any net: the haematoxylin amount of each pixel (`pycount.data.stain.to_stains`, smoothed
with a 1 px Gaussian) above one threshold for the whole set (the median of the images' Otsu
thresholds) makes nucleus-like blobs of at least MIN_AREA px; a blob is marked when a mark lies
within MARK_RADIUS px of it. Per image:

- unmarked stain: the share of the blobs' area in blobs without a mark (high: nuclei left
  unmarked, or stained matter that is not a nucleus);
- marks on stain: the share of marks that sit on a blob (low: the threshold misses that image's
  nuclei, so its unmarked share means little).

The run's test images are then split into quartiles of unmarked stain, and per quartile the MAE,
MRE and mean signed error are reported, with the correlation of the signed and of the relative
error with unmarked stain. The estimate is crude (touching nuclei are one blob; pale nuclei are
missed), so it answers only the coarse question: is the MAE on the images whose marks look
complete much lower than on the rest?

    .venv/bin/python -m bench.nuclei_marks --run docs/audit/results.json#nuclei/fcrn
    (or --run RUN_DIR of an evaluated nuclei run; results in bench/results/)
"""
from __future__ import annotations

import argparse

import numpy as np
from scipy import ndimage as ndi
from skimage.filters import threshold_otsu

from bench import stages
from bench.paired import load
from pycount import config
from pycount.data import prepare
from pycount.data.stain import to_stains

MIN_AREA = 15      # px: smaller haematoxylin specks are not counted as blobs
MARK_RADIUS = 3    # px: a mark this close to a blob marks it


def haematoxylin(image: np.ndarray) -> np.ndarray:
    return ndi.gaussian_filter(to_stains(image)[..., 0], 1.0)


def image_marks(h: np.ndarray, centres: np.ndarray, threshold: float) -> dict:
    """Unmarked stain and marks on stain of one image (see the module's text)."""
    lab, n = ndi.label(ndi.binary_opening(h > threshold))
    areas = np.bincount(lab.ravel(), minlength=n + 1)
    blob = areas >= MIN_AREA
    blob[0] = False
    xy = np.clip(np.rint(centres).astype(int), 0, [h.shape[1] - 1, h.shape[0] - 1])
    near = np.zeros(h.shape, bool)
    near[xy[:, 1], xy[:, 0]] = True
    near = ndi.binary_dilation(near, iterations=MARK_RADIUS)
    marked = np.zeros(n + 1, bool)
    marked[np.unique(lab[near])] = True
    area = int(areas[blob].sum())
    return {"marks": len(xy), "stain px": area,
            "unmarked stain": round(float(areas[blob & ~marked].sum() / max(area, 1)), 4),
            "marks on stain": round(float(blob[lab[xy[:, 1], xy[:, 0]]].mean()), 4) if len(xy) else None}


def quartile_rows(per_image: dict, counts: dict) -> tuple[list[dict], dict]:
    ids = sorted((i for i in counts if i in per_image), key=lambda i: per_image[i]["unmarked stain"])
    t = np.array([counts[i][0] for i in ids])
    e = np.array([counts[i][1] - counts[i][0] for i in ids])
    u = np.array([per_image[i]["unmarked stain"] for i in ids])
    rows = []
    for q, part in enumerate(np.array_split(np.arange(len(ids)), 4), 1):
        rows.append({"quartile of unmarked stain": q, "images": len(part),
                     "unmarked stain": f"{u[part].min():.3f}-{u[part].max():.3f}",
                     "MAE": round(float(np.abs(e[part]).mean()), 2),
                     "MRE": round(float((np.abs(e[part]) / t[part]).mean()), 4),
                     "mean signed error": round(float(e[part].mean()), 2),
                     "mean true count": round(float(t[part].mean()), 1)})
    rows.append({"quartile of unmarked stain": "all", "images": len(ids),
                 "MAE": round(float(np.abs(e).mean()), 2),
                 "MRE": round(float((np.abs(e) / t).mean()), 4),
                 "mean signed error": round(float(e.mean()), 2),
                 "mean true count": round(float(t.mean()), 1)})
    corr = {"signed error": round(float(np.corrcoef(u, e)[0, 1]), 3),
            "relative error": round(float(np.corrcoef(u, e / t)[0, 1]), 3)}
    return rows, corr


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, help="RUN_DIR or results.json#key of a nuclei run")
    ap.add_argument("--data-root", default="../shared/datasets",
                    help="folder holding CRCHistoPhenotypes_2016_04_28/")
    args = ap.parse_args(argv)
    label, run = load(args.run)
    ds = config.dataset("nuclei")
    samples = prepare.load(ds, None, args.data_root)
    hs = {s.id: haematoxylin(s.image) for s in samples}
    threshold = float(np.median([threshold_otsu(h) for h in hs.values()]))
    per_image = {s.id: image_marks(hs[s.id], s.centres, threshold) for s in samples}
    rows, corr = quartile_rows(per_image, run["images"])
    md = stages.write_results(
        "nuclei-marks", rows,
        extra={"run": run["source"], "threshold": threshold, "correlation": corr,
               "images": per_image},
        note=f"\nRun: {run['source']} ({label}). Haematoxylin threshold {threshold:.4f} (median "
             f"of the 100 images' Otsu thresholds). Correlation with unmarked stain over the "
             f"run's test images: signed error {corr['signed error']}, relative error "
             f"{corr['relative error']}. Per-image shares of all 100 images in the JSON.\n")
    print(md.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
