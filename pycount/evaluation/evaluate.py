"""`make eval`: count every test image of a dataset with a trained run, then report."""
from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import numpy as np

from pycount import config
from pycount.data import density_targets, patches, prepare
from pycount.device import set_device
from pycount.errors import PycountError, RunError
from pycount.evaluation import metrics
from pycount.inference.engines import resolve
from pycount.inference.predictors import make_predictor
from pycount.inference.run import finished_files, read_train_info, with_run_reading, with_run_stain
from pycount.util.runlock import LOCK_FILE, EvalLock, in_training
from pycount.evaluation import figures as report
from pycount.util import atomic
from pycount.util.progress import Progress


def evaluate(ds: config.DatasetConfig, model: config.ModelConfig, head: str = "R",
             data_root=None, gpu: int = -1, run: Path | None = None, **kwargs) -> dict:
    """_evaluate (below) holding the run's EvalLock: one evaluation at a time, and no training
    of the run while it counts."""
    run = Path(run or config.run_dir(ds, model, head))
    try:
        lock = EvalLock(run) if run.is_dir() else None    # (a missing run: _evaluate names it)
    except OSError:                 # a folder it cannot write into: _evaluate names that too
        lock = None
    try:
        return _evaluate(ds, model, head, data_root, gpu, run, **kwargs)
    finally:
        if lock is not None:
            lock.release()


def _evaluate(ds: config.DatasetConfig, model: config.ModelConfig, head: str = "R",
              data_root=None, gpu: int = -1, run: Path | None = None,
              heatmaps: int = config.EVAL_HEATMAPS, backend: str | None = None,
              shared: bool = False, tta: int | None = None,
              test_images: int | None = None) -> dict:
    """Count the test images, write predictions.csv, metrics.json/.md and heatmaps/.

    test_images: count only the first that many test images (a quick look, or a dry run of
    the audit's path); metrics.json records how many of how many, and the audit takes such a
    partial evaluation for no result.

    backend: "cv2" (OpenCV DNN) or "caffe" (pycaffe, the reference; the only one that uses a
    GPU); both run the same files and agree to 1e-4 (tests/test_backends.py). None or "auto":
    the model's faster engine on the CPU (config.count_engine), caffe on a GPU."""
    run = Path(run or config.run_dir(ds, model, head))
    backend = resolve(backend, model, gpu)
    # the run is checked whole before any engine is built or anything written: a finished
    # training (train.json, not interrupted) of the dataset, model, head and settings asked for
    info_file = run / "train.json"
    if in_training(run):
        raise RunError(f"{run} is being trained now (a make train holds {run / LOCK_FILE}): "
                       f"its weights and train.json are the last session's and change when it "
                       f"ends; evaluate it then")
    info = read_train_info(info_file)
    files = tuple(finished_files(run, model, info))
    if info is None:
        raise RunError(f"{info_file} is missing: the training in {run} has not finished "
                       f"(train.json is written when it ends); finish it first (make train "
                       f"resumes it from its last snapshot), or copy the run folder whole")
    _check_run_matches(info, info_file, ds, model, head)
    ds = with_run_reading(with_run_stain(ds, info, info_file), run)
    if backend == "caffe":
        set_device(gpu)
    predict = make_predictor(backend, files, model, ds, head, shared=shared, tta=tta)
    # C head: the paper's estimate is the most probable class; the expected count over the
    # classes is reported beside it
    expected = make_predictor(backend, files, model, ds, head, expected=True, shared=shared) \
        if head == "C" else None
    ids = prepare.split(ds, data_root)
    n_test = len(ids["test"])
    if test_images is not None:
        if test_images < 1:
            raise config.ConfigError(f"TEST_IMAGES={test_images}: count at least 1 test image "
                                     f"(leave it out to count all {n_test})")
        ids["test"] = ids["test"][:test_images]
    _check_unseen(info, info_file, ds, ids["test"])
    if test_images is not None and test_images < n_test:
        _keep_full_result(run, info_file, test_images, n_test)
    train_counts = prepare.check(ds, ids["train"] + ids["val"], data_root)   # (one at a time)
    # every test image read and checked before any is counted, then read again as it is
    # counted: an evaluation holds one test image at a time, however many there are
    # (an own folder's image smaller than a patch is counted as `pycount count` counts it: a
    # patch net's predictor normalises its stain, then pads it, and Fig. 6 draws it padded, as
    # check says; the classic methods read it as it is, as in their fitting)
    patch_net = not (model.density or model.classic)
    side = None if model.density or (ds.pad and not patch_net) else ds.patch
    true_counts = prepare.check(ds, ids["test"], data_root, side=side, test=True, part="test")
    if not any(c > 0 for c in true_counts):
        shown = ", ".join(ids["test"][:5]) + (", ..." if len(ids["test"]) > 5 else "")
        raise config.ConfigError(
            f"none of {ds.name}'s {len(ids['test'])} test images holds a cell ({shown}), so "
            f"there is no error to measure a counter by; put test images with cells in its test "
            f"set (`test = [...]` in pycount.toml beside an own folder's images, "
            f"docs/own-data.md)")

    rows = []
    # this evaluation's heatmaps are drawn into a folder of its own and put in place with its
    # metrics: one stopped halfway left new heatmaps beside the previous evaluation's metrics
    heat = run / f".heatmaps.tmp-{os.getpid()}"
    try:
        with _writing(run):
            for folder in (run, run.parent):                       # (Fig. 7 goes to run.parent)
                folder.mkdir(exist_ok=True)
                atomic.probe_writable(folder)
            # what evaluations killed outright left: heatmap folders, files being replaced
            atomic.remove_stale_dirs(run, "heatmaps")
            for folder in (run, run.parent):
                atomic.remove_stale_temps(folder)
            heat.mkdir()
            with Progress(len(ids["test"]), f"counting {ds.name} test images", "images") as bar:
                for i, s in enumerate(prepare.stream(ds, ids["test"], data_root)):
                    with bar.item(s.id):
                        r = predict.count_image(s.image)
                    rows.append({"id": s.id, "true": s.count, "predicted": r.count,
                                 "tiling": r.tiling_count})
                    if expected:
                        rows[-1]["expected"] = expected.count_image(s.image).count
                    if i < heatmaps and np.isfinite(r.count):
                        drawn = prepare.pad_sample(s, ds.patch, ds) if ds.pad and patch_net \
                            else s
                        _save_heatmap(heat / f"{s.id}.png", drawn, r, model, ds)
                    bar.update(1)
        lost = [r["id"] for r in rows if not np.isfinite(r["predicted"])]
        if lost:                        # NaN weights: a metrics.json of nan is no result
            raise RunError(f"{files[-1]} counts {len(lost)} of the "
                           f"{len(rows)} test images as NaN or infinite ({', '.join(lost[:3])}"
                           f"{', ...' if len(lost) > 3 else ''}): its weights hold values that are "
                           f"not numbers (a training that diverged, or a damaged file); train it "
                           f"again (make train ... RESUME=0)")
        out = _summarize(rows, float(np.mean(train_counts)))
        out.update(dataset=ds.name, model=model.name, family=model.family, context=model.context,
                   head=head, patch=ds.patch, stride=ds.stride,
                   density=model.density, dataset_tag=ds.tag, train_n=ds.train_n, seed=ds.seed,
                   backend=backend + (" shared" if shared else ""), tta=getattr(predict, "tta", 1),
                   test_images_of=n_test, iterations=info.get("iterations"))
        if info.get("model_sha256"):     # the weights counted (finished_files checked them)
            out["model_sha256"] = info["model_sha256"]
        below = [r["id"] for r in rows if r["predicted"] < config.SUSPECT_BELOW]
        if below:                       # kept in the MAE as counted, but not left unsaid
            print(f"note: {len(below)} test image(s) counted below zero ({', '.join(below[:5])}"
                  f"{', ...' if len(below) > 5 else ''}): unlike the images the run learned from "
                  f"(predictions.csv has their counts)", flush=True)
        with _writing(run):
            # metrics.json says a whole evaluation is there: it goes first and comes back last,
            # so that one stopped among these writes leaves none, never one evaluation's metrics
            # beside another's counts and heatmaps
            for name in ("metrics.json", "metrics.md"):
                (run / name).unlink(missing_ok=True)
            report.write_predictions(run / "predictions.csv", rows)
            atomic.replace_dir(heat, run / "heatmaps")
            report.write_metrics(run, out)
            write_fig7(run.parent)
        return out
    finally:
        shutil.rmtree(heat, ignore_errors=True)


def _keep_full_result(run: Path, info_file: Path, k: int, n_test: int) -> None:
    """A partial evaluation (TEST_IMAGES=k) is refused where it would replace the full
    evaluation of the same training (a metrics.json counting every test image, written after
    train.json): the audit takes a partial one for no result, so the result would be lost."""
    import json
    path = run / "metrics.json"
    try:
        m = json.loads(path.read_text())
        current = path.stat().st_mtime >= info_file.stat().st_mtime
    except (OSError, ValueError):
        return                      # none, or unreadable: nothing to keep
    if not isinstance(m, dict) or metrics.partial(m) or not current:
        return
    mae = m.get("mae")
    shown = f" (MAE {mae:.2f})" if isinstance(mae, (int, float)) else ""
    raise config.ConfigError(
        f"{path} holds the full evaluation of this training{shown}; TEST_IMAGES={k} would "
        f"replace it with one of {k} of the {n_test} test images, which is no result: leave "
        f"TEST_IMAGES out, or evaluate a copy of the run (PYCOUNT_RUNS=that/runs make eval ...)")


@contextlib.contextmanager
def _writing(run: Path):
    """An OSError writing the evaluation's files (a full disk, a read-only run folder) as one
    RunError naming the file and the fix; metrics.json is written last, so none is left."""
    try:
        yield
    except OSError as e:
        if isinstance(e, FileNotFoundError) and not str(e.filename or "").startswith(str(run)):
            raise                   # (an input gone: not this one's to word)
        raise RunError(atomic.cannot_write(
            f"the evaluation into {run}", e, "the run folder",
            "evaluate a copy of it elsewhere (PYCOUNT_RUNS=that/runs make eval ...)")) from None


# What eval compares between a run's train.json and what it was asked to evaluate, beyond the
# dataset, model and head: the settings that shape the patches a patch counter's net sees
# (its input size) and how an image is tiled. A density model's or a classic method's counting
# uses none of them.
MATCHED_PATCH_SETTINGS = ("patch", "stride", "size")


def _check_run_matches(info: dict, info_file: Path, ds: config.DatasetConfig,
                       model: config.ModelConfig, head: str) -> None:
    """RunError, naming what differs, when train.json records another training than the one
    asked for (a run folder copied or moved into this one's place): its net would not fit the
    engine (a C head has no "count" output, another patch size another input), or it would
    count with other settings than it was trained with. Settings train.json does not record
    (older runs) are not compared."""
    asked = {"dataset": ds.name, "model": model.name, "head": head, "scale": ds.scale}
    if not (model.density or model.classic):
        asked.update({k: getattr(ds, k) for k in MATCHED_PATCH_SETTINGS})
    recorded = dict(info, head=info.get("head", "R"))
    damaged = [f"{k} is missing" for k in ("dataset", "model") if k not in recorded] + [
        f"{k} = {recorded[k]!r} is not {'text' if isinstance(v, str) else 'a number'}"
        for k, v in asked.items() if k in recorded and (
            isinstance(v, str) != isinstance(recorded[k], str)
            or isinstance(recorded[k], bool) or recorded[k] is None)]
    if damaged:                     # (edited by hand, or written by something else)
        raise RunError(f"{info_file} is damaged ({'; '.join(damaged)}: not as make train writes "
                       f"it); copy the run folder again whole, or train it again (make train "
                       f"... RESUME=0)")
    diffs = [(k, recorded[k], v) for k, v in asked.items() if k in recorded and recorded[k] != v]
    if not diffs:
        return
    said = "; ".join(f"{k} {theirs}, not {ours}" for k, theirs, ours in diffs)
    variables = " ".join(f"{config.MAKE_VARS.get(k, k.upper())}={theirs}"
                         for k, theirs, _ in diffs)
    tag, name, its_head = info.get("dataset_tag"), info.get("model"), recorded["head"]
    home = (config.runs_dir() / tag / config.run_name(name, its_head)
            if all(isinstance(v, str) and v for v in (tag, name, its_head)) else None)
    if home is not None and home.resolve() == info_file.parent.resolve() \
            and all(k in MATCHED_PATCH_SETTINGS + ("scale",) for k, _, _ in diffs):
        # in its own place: what changed is the dataset's settings (an own folder inferred
        # again from edited images or marks), not where the run is
        raise RunError(f"{info_file} records another training than the one asked for ({said}): "
                       f"the run was trained with {variables}, and {ds.name}'s settings have "
                       f"changed since (an own folder's are inferred again from its images and "
                       f"marks). Evaluate it with {variables}, or train it again (make train "
                       f"... RESUME=0)")
    raise RunError(f"{info_file} records another training than the one asked for ({said}): "
                   f"the run in {info_file.parent} was trained with {variables}. Move it"
                   f"{f' to {home}' if home else ''}, where its settings put it, and evaluate "
                   f"it with them; or train this run again (make train ... RESUME=0)")


def _check_unseen(info: dict, info_file: Path, ds: config.DatasetConfig, test: list) -> None:
    """RunError when the test images drawn from the dataset today include images the run was
    trained or validated on (train.json's lists): images were added to an own folder or removed
    from it since, and its seeded split moved. Scores on them would flatter the run."""
    seen = set()
    for key in ("train_images", "val_images"):
        ids = info.get(key)
        if isinstance(ids, list):
            seen |= {i for i in ids if isinstance(i, str)}
    again = sorted(set(test) & seen)
    if again:
        shown = ", ".join(again[:5]) + (f" and {len(again) - 5} more" if len(again) > 5 else "")
        raise RunError(f"{info_file}: {ds.name}'s test images today include {shown}, which this "
                       f"run was trained on: images were added to or removed from the dataset "
                       f"since the training, and its seeded split moved. Put the folder back as "
                       f"it was, name the test images (`test = [...]` in pycount.toml, "
                       f"docs/own-data.md), or train again on the folder as it is (make train "
                       f"... RESUME=0)")


def _save_heatmap(path: Path, s, r, model: config.ModelConfig, ds: config.DatasetConfig) -> None:
    """Fig. 6 for a patch counter (true and predicted patch counts, heatmap); for a density
    model, its true and predicted density maps."""
    if model.density or model.classic:
        truth = density_targets.density_target(s.image.shape[:2], s.centres, ds.sigma)
        report.save_density_fig(path, s.image, truth, r.heatmap, s.count, r.count,
                                title=f"{ds.tag} {s.id}")
    else:
        origins = patches.grid(*s.image.shape[:2], ds.patch, ds.stride)
        report.save_fig6(path, s.image, patches.counts_on_grid(s.centres, origins, ds.patch),
                         r.patch_counts, r.heatmap, s.count, r.count, title=f"{ds.tag} {s.id}")


def _summarize(rows: list[dict], train_mean: float) -> dict:
    """MRE, MAE +- std and the mean-count baseline of the predictions, the tiling estimate's,
    and (C head) the expected class's."""
    true = np.array([r["true"] for r in rows], float)
    out = metrics.summarize(true, np.array([r["predicted"] for r in rows]), train_mean)
    for key in ["tiling"] + (["expected"] if rows and "expected" in rows[0] else []):
        est = np.array([r[key] for r in rows])
        out.update({f"{key}_mae": metrics.mae(true, est), f"{key}_mae_std": metrics.mae_std(true, est),
                    f"{key}_mre": metrics.mre(true, est)})
    return out


def write_fig7(dataset_runs: Path) -> Path | None:
    """Fig. 7 for a dataset: every evaluated run's estimate per test image, beside the truth
    (a run whose predictions.csv has no whole evaluation's metrics.json beside it: left out).
    The truth drawn is the latest evaluation's; a run evaluated on other images, or against
    other true counts (an earlier pycount read the marks otherwise), is left out and named."""
    import json
    cols, when = {}, {}
    for f in sorted(Path(dataset_runs).glob("*/predictions.csv")):
        try:
            m = json.loads((f.parent / "metrics.json").read_text())
            whole = isinstance(m, dict) and not metrics.partial(m)
        except (OSError, ValueError):
            whole = False
        if not whole:                 # an evaluation stopped part-way, or a partial one
            continue
        try:
            cols[f.parent.name] = report.read_predictions(f)
            when[f.parent.name] = (f.parent / "metrics.json").stat().st_mtime
        except PycountError as e:     # another run's damaged file: that run is left out
            print(f"note: Fig. 7 leaves out {f.parent.name}: {e}", flush=True)
    if not cols:
        return None
    latest = max(cols, key=lambda name: (when[name], name))
    ref = cols[latest]
    same = {}
    for name, c in cols.items():
        if c["id"] == ref["id"] and np.array_equal(c["true"], ref["true"]):
            same[name] = c["predicted"]
        else:
            print(f"note: Fig. 7 leaves out {name}: its test images or their true counts differ "
                  f"from {latest}'s (the latest evaluation); make eval for {name} counts it "
                  f"against today's", flush=True)
    path = Path(dataset_runs) / "fig7.png"
    report.save_fig7(path, ref["id"], ref["true"], same,
                     f"{Path(dataset_runs).name}: estimated vs true count per test image")
    return path
