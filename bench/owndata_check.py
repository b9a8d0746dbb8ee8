"""The own-data path measured on folders that are none of pycount's named datasets (issue #25).

Each variant is written from a public set in `../shared/datasets` in a layout and format that labs
produce, then trained and evaluated exactly as a user would (`pycount prepare|train|eval
--dataset <folder>`, default settings: everything inferred). One table row per variant: the
inferred settings, training time, test MAE / MRE and the mean-count baseline, beside the MRE of the
same model on the named dataset the images came from (docs/audit/results.json), since MRE does not
depend on the image size.

    .venv/bin/python -m bench.owndata_check --variants vgg-2x2-csv nuclei-cellcounter --model fcrn
    (folders under data/owncheck/, runs under runs/<variant>/, results in bench/results/)

Variants:
  vgg-2x2-csv          VGG cells, four 256 px images tiled into one 512 px image (50 images),
                       dots as `NAME.csv` (x,y)
  nuclei-cellcounter   CRCHistoPhenotypes H&E as PNG, dots as Fiji Cell Counter XML
                       (`CellCounter_NAME.xml`, integer 0-based pixels as Cell Counter saves them)
  vgg-small-grey16     VGG cells cut to 150x150 px, 16-bit grey TIFF, dots as `NAME_dots.png` masks
                       (smaller than the default patch of bigger images: the adapt-or-pad rule)
  vgg-geojson          VGG cells as they are (256 px), dots as QuPath GeoJSON (one annotation of
                       the counting tool's points, a MultiPoint, as QuPath exports it)
  vgg-up2-geojson      the same images enlarged 2x (512 px, bicubic): cells twice as large and
                       apart, as at a higher magnification; same names, so the same test draw as
                       vgg-geojson (the pair measures what the cells' size alone does)
  nuclei-mbm-names     CRCHistoPhenotypes H&E named as the MBM release (countception's MBM_data)
                       names its files: NAME_000.png with the dot mask NAME_dots_000.png
  vgg-adi-layout       VGG cells cut to 150x150 px laid out as the adipocyte release
                       (countception's adipocyte_data): images/X.jpeg and a JPEG centroid mask of
                       the same name in annotations/
  vgg-mixed-sizes      each VGG image cut to a seeded window of its own size (sides 48-256 px,
                       any aspect: 4 to 205 cells, 33 images smaller than the crop), dots as
                       `NAME.csv`: a folder whose images differ in size and density, as a lab's
                       fields of view cropped by hand do
  nuclei-mixed-sizes   the same with the CRCHistoPhenotypes H&E images (sides 72-500 px)
  nuclei-bcdata        CRCHistoPhenotypes H&E laid out as BCData (the public Ki67 set) ships:
                       images/{train,validation,test}/N.png (60/10/30 seeded, numbering restarted
                       in each part) and annotations/<part>/<class>/N.h5, an HDF5 dataset
                       `coordinates` per class: the release's four classes (epithelial,
                       fibroblast, inflammatory, others) and `unclassified` for the detected
                       nuclei without a class, so that all classes together are the detection
                       marks of the named set (MARKER=inflammatory counts that class alone)
  vgg-cellpose-masks   VGG cells with a segmentation as Cellpose exports it, NAME_cp_masks.png:
                       16-bit instance labels, each cell the pixels within 4 px of its dot nearer
                       to it than to another (touching cells meet between their dots)
  nuclei-release-folders  the CRCHistoPhenotypes release's Detection folder as downloaded: one
                       folder per image, imgN/imgN.bmp + imgN_detection.mat (1-based MATLAB rows;
                       "detection" read as the one class in the files' names)
  vgg-roboflow-yolo    VGG cells as a Roboflow export in YOLO format: train/ valid/ test/ (70/20/10,
                       seeded), each images/NAME_png.rf.<hash>.jpg (JPEG, quality 95) +
                       labels/NAME_png.rf.<hash>.txt, one 8 px box per cell (class 0, centre and
                       size as fractions of the image), data.yaml and a README.roboflow.txt
  vgg-dsb-masks        VGG cells laid out as DSB 2018 (the Data Science Bowl nuclei) ships:
                       <id>/images/<id>.png + <id>/masks/<n>.png, one binary mask per cell (the
                       cells of vgg-cellpose-masks, each a file of its own)
  vgg-ctc-layout       VGG cells laid out as a Cell Tracking Challenge training set: two
                       "sequences" 01/ and 02/ of 16-bit grey frames t000.tif ... (images 001-100
                       and 101-200), each frame's cells as tracking markers in
                       01_GT/TRA/man_track000.tif (uint16 labels, the cells of
                       vgg-cellpose-masks), the lineage file man_track.txt beside them; 02/ tests
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from bench import stages
from pycount import config
from pycount.data import readers
from pycount.data.layout import folder_pairs
from pycount.reporting import audit

SHARED = config.ROOT.parent / "shared" / "datasets"
NAMED = {"vgg-2x2-csv": "bacterial", "nuclei-cellcounter": "nuclei",
         "vgg-small-grey16": "bacterial", "vgg-geojson": "bacterial",
         "vgg-up2-geojson": "bacterial", "nuclei-mbm-names": "nuclei",
         "vgg-adi-layout": "bacterial", "vgg-mixed-sizes": "bacterial",
         "nuclei-mixed-sizes": "nuclei", "nuclei-bcdata": "nuclei",
         "vgg-cellpose-masks": "bacterial", "nuclei-release-folders": "nuclei",
         "vgg-dsb-masks": "bacterial", "vgg-roboflow-yolo": "bacterial",
         "vgg-ctc-layout": "bacterial"}


def _csv(path: Path, centres: np.ndarray) -> None:
    path.write_text("x,y\n" + "".join(f"{x:.2f},{y:.2f}\n" for x, y in centres))


def _cellcounter(path: Path, image_name: str, centres: np.ndarray) -> None:
    marks = "".join(f"<Marker><MarkerX>{int(round(x))}</MarkerX><MarkerY>{int(round(y))}"
                    f"</MarkerY><MarkerZ>1</MarkerZ></Marker>" for x, y in centres)
    path.write_text('<?xml version="1.0" encoding="UTF-8"?>\n<CellCounter_Marker_File>'
                    f"<Image_Properties><Image_Filename>{image_name}</Image_Filename>"
                    "</Image_Properties><Marker_Data><Current_Type>1</Current_Type>"
                    f"<Marker_Type><Type>1</Type><Name>nucleus</Name>{marks}</Marker_Type>"
                    "</Marker_Data></CellCounter_Marker_File>\n")


def _qupath_points(path: Path, centres: np.ndarray) -> None:
    """QuPath's counting-tool export: pixel (i, j)'s centre is at (i + 0.5, j + 0.5)."""
    feature = {"type": "Feature", "id": "points-1",
               "geometry": {"type": "MultiPoint",
                            "coordinates": [[round(float(x) + 0.5, 3), round(float(y) + 0.5, 3)]
                                            for x, y in centres]},
               "properties": {"objectType": "annotation",
                              "classification": {"name": "Cell", "color": [255, 0, 0]}}}
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))


def make_vgg_geojson(out: Path, factor: int = 1) -> None:
    for s in readers.read_vgg_cells(SHARED / "vgg_cells"):
        img = s.image
        if factor > 1:
            h, w = img.shape[:2]
            img = cv2.resize(img, (w * factor, h * factor), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(out / f"{s.id}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        # a pixel centre x maps to factor * x + (factor - 1) / 2 under cv2.resize
        _qupath_points(out / f"{s.id}.geojson", s.centres * factor + (factor - 1) / 2)


def make_vgg_2x2_csv(out: Path) -> None:
    s = readers.read_vgg_cells(SHARED / "vgg_cells")
    for k in range(0, len(s) - 3, 4):
        q = s[k:k + 4]
        h, w = q[0].image.shape[:2]
        img = np.vstack([np.hstack([q[0].image, q[1].image]), np.hstack([q[2].image, q[3].image])])
        centres = np.vstack([q[0].centres, q[1].centres + (w, 0), q[2].centres + (0, h),
                             q[3].centres + (w, h)])
        name = f"tile{k // 4 + 1:03d}"
        cv2.imwrite(str(out / f"{name}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        _csv(out / f"{name}.csv", centres)


def make_nuclei_cellcounter(out: Path) -> None:
    for s in readers.read_crc_nuclei(SHARED / "CRCHistoPhenotypes_2016_04_28"):
        cv2.imwrite(str(out / f"{s.id}.png"), cv2.cvtColor(s.image, cv2.COLOR_RGB2BGR))
        h, w = s.image.shape[:2]
        _cellcounter(out / f"CellCounter_{s.id}.xml", f"{s.id}.png",
                     np.clip(s.centres, 0, [w - 1, h - 1]))


def make_vgg_small_grey16(out: Path, side: int = 150) -> None:
    for s in readers.read_vgg_cells(SHARED / "vgg_cells"):
        grey = cv2.cvtColor(s.image[:side, :side], cv2.COLOR_RGB2GRAY).astype(np.uint16) * 257
        cv2.imwrite(str(out / f"{s.id}.tif"), grey)
        dots = np.zeros((side, side), np.uint8)
        for x, y in np.round(s.centres).astype(int):
            if x < side and y < side:
                dots[y, x] = 255
        cv2.imwrite(str(out / f"{s.id}_dots.png"), dots)


def _dot_mask(shape, centres: np.ndarray) -> np.ndarray:
    h, w = shape[:2]
    mask = np.zeros((h, w), np.uint8)
    xy = np.clip(np.round(centres).astype(int), 0, [w - 1, h - 1])
    mask[xy[:, 1], xy[:, 0]] = 255
    return mask


def label_mask(shape, centres: np.ndarray, radius: float) -> np.ndarray:
    """A mask of instance labels as a segmentation tool saves one: each cell (a dot's pixel)
    the pixels within `radius` of it that lie nearer to it than to any other dot, labelled
    1, 2, ... (uint16); touching cells meet at the line between their dots."""
    h, w = shape[:2]
    xy = np.unique(np.clip(np.round(centres).astype(int), 0, [w - 1, h - 1]), axis=0)
    seeds = np.full((h, w), 255, np.uint8)
    seeds[xy[:, 1], xy[:, 0]] = 0
    dist, nearest = cv2.distanceTransformWithLabels(seeds, cv2.DIST_L2, 5,
                                                    labelType=cv2.DIST_LABEL_PIXEL)
    ids = np.zeros(nearest.max() + 1, np.uint16)      # the transform's label -> the dot's
    ids[nearest[xy[:, 1], xy[:, 0]]] = np.arange(1, len(xy) + 1)
    return np.where(dist <= radius, ids[nearest], 0).astype(np.uint16)


def make_vgg_cellpose_masks(out: Path) -> None:
    for s in readers.read_vgg_cells(SHARED / "vgg_cells"):
        cv2.imwrite(str(out / f"{s.id}.png"), cv2.cvtColor(s.image, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(out / f"{s.id}_cp_masks.png"), label_mask(s.image.shape, s.centres, 4))


def make_vgg_dsb_masks(out: Path) -> None:
    for s in readers.read_vgg_cells(SHARED / "vgg_cells"):
        (out / s.id / "images").mkdir(parents=True)
        (out / s.id / "masks").mkdir()
        cv2.imwrite(str(out / s.id / "images" / f"{s.id}.png"),
                    cv2.cvtColor(s.image, cv2.COLOR_RGB2BGR))
        labels = label_mask(s.image.shape, s.centres, 4)
        for k in range(1, int(labels.max()) + 1):
            cv2.imwrite(str(out / s.id / "masks" / f"{s.id}-{k:04d}.png"),
                        np.where(labels == k, 255, 0).astype(np.uint8))


def make_vgg_ctc_layout(out: Path) -> None:
    samples = readers.read_vgg_cells(SHARED / "vgg_cells")
    for seq, part in (("01", samples[:100]), ("02", samples[100:])):
        (out / seq).mkdir()
        (out / f"{seq}_GT" / "TRA").mkdir(parents=True)
        for t, s in enumerate(part):
            grey = cv2.cvtColor(s.image, cv2.COLOR_RGB2GRAY).astype(np.uint16) * 257
            cv2.imwrite(str(out / seq / f"t{t:03d}.tif"), grey)
            cv2.imwrite(str(out / f"{seq}_GT" / "TRA" / f"man_track{t:03d}.tif"),
                        label_mask(s.image.shape, s.centres, 4))
        (out / f"{seq}_GT" / "TRA" / "man_track.txt").write_text(
            "".join(f"{k} 0 {len(part) - 1} 0\n" for k in range(1, 11)))


def make_vgg_roboflow_yolo(out: Path) -> None:
    import hashlib
    samples = readers.read_vgg_cells(SHARED / "vgg_cells")
    order = np.random.default_rng(2016).permutation(len(samples))
    cut = [int(0.7 * len(samples)), int(0.9 * len(samples))]
    (out / "data.yaml").write_text("train: ../train/images\nval: ../valid/images\n"
                                   "test: ../test/images\n\nnc: 1\nnames: ['cell']\n")
    (out / "README.roboflow.txt").write_text("\nCells - v1\n\nThis dataset was exported in "
                                             "YOLO format.\n")
    for part, picks in zip(("train", "valid", "test"), np.split(order, cut)):
        for pick in picks:
            s = samples[pick]
            stem = f"{s.id}_png.rf.{hashlib.sha1(s.id.encode()).hexdigest()[:20]}"
            for d in ("images", "labels"):
                (out / part / d).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(out / part / "images" / f"{stem}.jpg"),
                        cv2.cvtColor(s.image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
            h, w = s.image.shape[:2]
            rows = [f"0 {(x + 0.5) / w:.6f} {(y + 0.5) / h:.6f} {8 / w:.6f} {8 / h:.6f}"
                    for x, y in s.centres]
            (out / part / "labels" / f"{stem}.txt").write_text("\n".join(rows) + "\n")


def make_nuclei_release_folders(out: Path) -> None:
    detection = SHARED / "CRCHistoPhenotypes_2016_04_28" / "Detection"
    for d in sorted(p for p in detection.iterdir() if p.is_dir()):
        shutil.copytree(d, out / d.name)


def make_nuclei_mbm_names(out: Path) -> None:
    for s in readers.read_crc_nuclei(SHARED / "CRCHistoPhenotypes_2016_04_28"):
        cv2.imwrite(str(out / f"{s.id}_000.png"), cv2.cvtColor(s.image, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(out / f"{s.id}_dots_000.png"), _dot_mask(s.image.shape, s.centres))


def make_vgg_adi_layout(out: Path, side: int = 150) -> None:
    (out / "images").mkdir(exist_ok=True)
    (out / "annotations").mkdir(exist_ok=True)
    for s in readers.read_vgg_cells(SHARED / "vgg_cells"):
        keep = (s.centres[:, 0] < side - 0.5) & (s.centres[:, 1] < side - 0.5)
        cv2.imwrite(str(out / "images" / f"{s.id}.jpeg"),
                    cv2.cvtColor(np.ascontiguousarray(s.image[:side, :side]), cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(out / "annotations" / f"{s.id}.jpeg"),
                    _dot_mask((side, side), s.centres[keep]))


def _windows(samples, low: int, seed: int):
    """(id, window image, centres inside it in the window's pixels) of each sample: a window of
    seeded sides in [low, the image's side], at a seeded place."""
    rng = np.random.default_rng(seed)
    for s in samples:
        h, w = s.image.shape[:2]
        ww, wh = int(rng.integers(low, w + 1)), int(rng.integers(low, h + 1))
        x0, y0 = int(rng.integers(0, w - ww + 1)), int(rng.integers(0, h - wh + 1))
        c = s.centres - (x0, y0)
        keep = (c[:, 0] >= -0.5) & (c[:, 0] < ww - 0.5) & (c[:, 1] >= -0.5) & (c[:, 1] < wh - 0.5)
        yield s.id, np.ascontiguousarray(s.image[y0:y0 + wh, x0:x0 + ww]), c[keep]


def make_mixed_sizes(out: Path, samples, low: int) -> None:
    for name, img, centres in _windows(samples, low, seed=25):
        cv2.imwrite(str(out / f"{name}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        h, w = img.shape[:2]
        _csv(out / f"{name}.csv", np.clip(centres, 0, [w - 1, h - 1]))


CRC_CLASSES = ("epithelial", "fibroblast", "inflammatory", "others")


def make_nuclei_bcdata(out: Path) -> None:
    import h5py
    import scipy.io
    release = SHARED / "CRCHistoPhenotypes_2016_04_28"
    samples = readers.read_crc_nuclei(release)
    order = np.random.default_rng(25).permutation(len(samples))
    parts = {"train": order[:60], "validation": order[60:70], "test": order[70:]}
    for part, picks in parts.items():
        (out / "images" / part).mkdir(parents=True)
        for k, pick in enumerate(sorted(picks)):
            s = samples[pick]
            cv2.imwrite(str(out / "images" / part / f"{k}.png"),
                        cv2.cvtColor(s.image, cv2.COLOR_RGB2BGR))
            left = np.ones(len(s.centres), bool)     # detected nuclei not yet given a class
            lists = {}
            for cls in CRC_CLASSES:
                m = scipy.io.loadmat(str(release / "Classification" / f"img{s.id}" /
                                         f"img{s.id}_{cls}.mat"))["detection"]
                m = np.asarray(m, np.float64).reshape(-1, 2) - 1.0
                # a class's nuclei are detection marks (the same coordinates): keep the reader's
                # copies of them (moved onto the edge where beyond it), so that all classes
                # together are the detection marks as the named set counts them
                at = [int(np.argmin(np.abs(s.centres - p).sum(axis=1))) for p in m]
                lists[cls] = s.centres[at]
                left[at] = False
            lists["unclassified"] = s.centres[left]
            for cls, xy in lists.items():
                d = out / "annotations" / part / cls
                d.mkdir(parents=True, exist_ok=True)
                with h5py.File(d / f"{k}.h5", "w") as f:
                    f["coordinates"] = xy


MAKERS = {"vgg-2x2-csv": make_vgg_2x2_csv, "nuclei-cellcounter": make_nuclei_cellcounter,
          "vgg-small-grey16": make_vgg_small_grey16, "vgg-geojson": make_vgg_geojson,
          "vgg-up2-geojson": lambda out: make_vgg_geojson(out, factor=2),
          "nuclei-mbm-names": make_nuclei_mbm_names, "vgg-adi-layout": make_vgg_adi_layout,
          "vgg-mixed-sizes": lambda out: make_mixed_sizes(
              out, readers.read_vgg_cells(SHARED / "vgg_cells"), low=48),
          "nuclei-mixed-sizes": lambda out: make_mixed_sizes(
              out, readers.read_crc_nuclei(SHARED / "CRCHistoPhenotypes_2016_04_28"), low=72),
          "nuclei-bcdata": make_nuclei_bcdata, "vgg-cellpose-masks": make_vgg_cellpose_masks,
          "nuclei-release-folders": make_nuclei_release_folders,
          "vgg-dsb-masks": make_vgg_dsb_masks, "vgg-roboflow-yolo": make_vgg_roboflow_yolo,
          "vgg-ctc-layout": make_vgg_ctc_layout}


def build(variant: str, root: Path) -> Path:
    """The variant's folder (written once; a finished folder carries a .complete mark)."""
    out = root / variant
    if not (out / ".complete").exists():
        out.mkdir(parents=True, exist_ok=True)
        MAKERS[variant](out)
        (out / ".complete").write_text("")
    return out


def _named_mre(variant: str, model: str):
    runs = audit.read_record(config.AUDIT_RECORD)
    m = runs.get(f"{NAMED[variant]}/{model}", {}).get("metrics")
    return round(m["mre"], 4) if m else "no record"


def run(variant: str, model: str, root: Path, extra: list[str]) -> dict:
    folder = build(variant, root)
    py = [sys.executable, "-m", "pycount"]
    seconds = {}
    for step in ("prepare", "train", "eval"):
        t = time.time()
        subprocess.run(py + [step, "--dataset", str(folder), "--model", model] + extra,
                       check=True, cwd=config.ROOT)
        seconds[step] = round(time.time() - t)
    # the run just evaluated: runs/<variant>/<model>, or the tagged folder beside it that the
    # extra settings name (MARKER=x: <variant>-marker-x)
    run_dir = max(config.runs_dir().glob(f"{variant}*/{model}/metrics.json"),
                  key=lambda p: p.stat().st_mtime).parent
    m = json.loads((run_dir / "metrics.json").read_text())
    ds = json.loads((run_dir / "dataset.json").read_text())
    trained = json.loads((run_dir / "train.json").read_text())   # the training's own time:
    # a second call finds the run trained and only re-evaluates it
    keys = ("scale", "patch", "stride", "sigma", "crop", "crop_stride")
    return {"variant": run_dir.parent.name, "model": model, "images": len(folder_pairs(folder)),
            "settings": ", ".join(f"{k} {ds[k]:g}" if isinstance(ds[k], float) else f"{k} {ds[k]}"
                                  for k in keys if k in ds and (k != "scale" or ds[k] != 1)),
            "train s": round(trained["seconds"]), "iterations": trained["iterations"],
            "prepare s": seconds["prepare"], "test images": m["n_images"],
            "MAE": round(m["mae"], 2), "std": round(m["mae_std"], 2), "MRE": round(m["mre"], 4),
            "baseline MAE": round(m["baseline_mae"], 2),
            f"MRE on {NAMED[variant]}": _named_mre(variant, model)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variants", nargs="+", default=list(MAKERS), choices=list(MAKERS))
    ap.add_argument("--model", default="fcrn")
    ap.add_argument("--root", type=Path, default=config.ROOT / "data" / "owncheck")
    ap.add_argument("extra", nargs=argparse.REMAINDER, help="after --: passed to every step")
    a = ap.parse_args(argv)
    extra = a.extra[1:] if a.extra[:1] == ["--"] else a.extra
    rows, into = [], None
    for v in a.variants:
        try:
            rows.append(run(v, a.model, a.root, extra))
        except subprocess.CalledProcessError as e:   # the step said why on stderr above
            step = e.cmd[3] if len(e.cmd) > 3 else e.cmd
            kept = f"; the rows before it are in {into}" if into else ""
            print(f"owndata-check: `pycount {step}` on {v} exited {e.returncode}{kept}; run the "
                  f"same command again to go on (trainings resume from their snapshots)",
                  file=sys.stderr)
            return e.returncode if e.returncode > 0 else 1
        into = stages.write_results("owndata-check", rows, into=into)
        print(f"{v}: {rows[-1]}  -> {into}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
