"""`make eval`: count every test image of a dataset with a trained run, then report."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from . import backends, config, density, density_targets, metrics, patches, prepare, report
from .progress import Progress
from .train import TrainError, set_device


def evaluate(ds: config.DatasetConfig, model: config.ModelConfig, head: str = "R",
             data_root=None, gpu: int = -1, run: Path | None = None,
             heatmaps: int = 8, backend: str | None = None, shared: bool = False,
             tta: int | None = None) -> dict:
    """Count the test images, write predictions.csv, metrics.json/.md and heatmaps/.

    backend: "cv2" (OpenCV DNN, the faster on CPU) or "caffe" (pycaffe, the reference; the only
    one that uses a GPU); both run the same files and agree to 1e-4 (tests/test_backends.py)."""
    run = Path(run or config.run_dir(ds, model, head))
    backend = backend or ("caffe" if gpu >= 0 else backends.DEFAULT_BACKEND)
    for f in (run / "deploy.prototxt", run / "model.caffemodel"):
        if not f.exists():
            raise TrainError(f"{f} is missing: train this model first (make train ...)")
    if backend == "caffe":
        set_device(gpu)
    elif gpu >= 0:
        raise TrainError(f"GPU={gpu} needs the caffe backend (BACKEND=caffe)")
    files = (run / "deploy.prototxt", run / "model.caffemodel")
    predict = backends.make_backend(backend, files, model, ds, head, shared=shared, tta=tta)
    # C head: the paper's estimate is the most probable class; the expected count over the
    # classes is reported beside it
    expected = backends.make_backend(backend, files, model, ds, head, expected=True,
                                     shared=shared) \
        if head == "C" else None
    ids = prepare.split(ds, data_root)
    train_counts = [s.count for s in prepare.load(ds, ids["train"] + ids["val"], data_root)]
    test = prepare.load(ds, ids["test"], data_root)

    rows = []
    (run / "heatmaps").mkdir(exist_ok=True)
    with Progress(len(test), f"counting {ds.name} test images", "images") as bar:
        for i, s in enumerate(test):
            if model.density:
                r = predict.count_image(s.image)
            else:
                r = density.count_image(s.image, ds.patch, ds.stride, predict)
            rows.append({"id": s.id, "true": s.count, "predicted": r.count,
                         "tiling": r.tiling_count})
            if expected:
                rows[-1]["expected"] = density.count_image(s.image, ds.patch, ds.stride,
                                                           expected).count
            if i < heatmaps and model.density:
                report.save_density_fig(
                    run / "heatmaps" / f"{s.id}.png", s.image,
                    density_targets.density_target(s.image.shape[:2], s.centres, ds.sigma),
                    r.heatmap, s.count, r.count, title=f"{ds.tag} {s.id}")
            elif i < heatmaps:
                origins = patches.grid(*s.image.shape[:2], ds.patch, ds.stride)
                report.save_fig6(run / "heatmaps" / f"{s.id}.png", s.image,
                                 patches.counts_on_grid(s.centres, origins, ds.patch),
                                 r.patch_counts, r.heatmap, s.count, r.count,
                                 title=f"{ds.tag} {s.id}")
            bar.update(1)
    true = np.array([r["true"] for r in rows], float)
    pred = np.array([r["predicted"] for r in rows])
    tiling = np.array([r["tiling"] for r in rows])
    out = metrics.summarize(true, pred, float(np.mean(train_counts)))
    out.update(dataset=ds.name, model=model.name, head=head, patch=ds.patch, stride=ds.stride,
               density=model.density, dataset_tag=ds.tag, train_n=ds.train_n, seed=ds.seed,
               backend=backend + (" shared" if shared else ""),
               tta=getattr(predict, "tta", 1),
               tiling_mae=metrics.mae(true, tiling), tiling_mae_std=metrics.mae_std(true, tiling),
               tiling_mre=metrics.mre(true, tiling))
    if expected:
        exp = np.array([r["expected"] for r in rows])
        out.update(expected_mae=metrics.mae(true, exp), expected_mae_std=metrics.mae_std(true, exp),
                   expected_mre=metrics.mre(true, exp))
    report.write_predictions(run / "predictions.csv", rows)
    report.write_metrics(run, out)
    write_fig7(run.parent)
    return out


def write_fig7(dataset_runs: Path) -> Path | None:
    """Fig. 7 for a dataset: every evaluated run's estimate per test image, beside the truth."""
    runs = sorted(p.parent for p in Path(dataset_runs).glob("*/predictions.csv"))
    if not runs:
        return None
    cols = {r.name: report.read_predictions(r / "predictions.csv") for r in runs}
    ref = cols[runs[0].name]
    same = {name: c["predicted"] for name, c in cols.items() if c["id"] == ref["id"]}
    path = Path(dataset_runs) / "fig7.png"
    report.save_fig7(path, ref["id"], ref["true"], same,
                     f"{Path(dataset_runs).name}: estimated vs true count per test image")
    return path
