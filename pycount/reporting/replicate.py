"""`make audit-gpu` (`pycount replicate`): every cell of the paper's Tables 2-4 that pycount
models, prepared, trained and evaluated in one go, then the audit regenerated.

Meant for a GPU machine with He et al.'s ImageNet caffemodels in weights/, where the whole sweep
takes about an hour; a cell whose model lacks its weights, or whose dataset is not under
DATA_ROOT, is skipped with one line saying what to provide. Cells already evaluated with today's
settings are kept, so an interrupted sweep goes on where it stopped (training resumes from its
snapshots). ITERS= shortens every training (the schedule follows), for a dry run of the whole
path on a CPU; a cell already trained further than ITERS= is left as it is. TEST_IMAGES=K (with
ITERS=) evaluates each cell on its first K test images: counting is most of a dry run's time on a
CPU (the paper's 12 rotations of every patch), and a dry run's numbers are no results anyway.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from pycount import config
from pycount.errors import TrainError
from pycount.reporting import audit, paper
from pycount.util import atomic
from pycount.util.progress import Progress

# The paper's columns and our stand-in for its private Ki67 set (reporting.render.COLUMNS).
DATASETS = ("bacterial", "nuclei", "ki67", "ki67-synthetic")


def paper_cells(datasets=DATASETS, models=None) -> list[tuple[str, str, str]]:
    """(dataset, model, head) of every paper row pycount models, once each."""
    cells = []
    for row in paper.PAPER:
        if row.model is None or (models and row.model not in models):
            continue
        for d in datasets:
            if (d, row.model, row.head) not in cells:
                cells.append((d, row.model, row.head))
    return cells


def check_cells(datasets, models) -> None:
    """DATASETS= and MODELS= checked before anything runs: each a paper column, each a model of
    a paper row (anything else would train cells the audit never shows, or none)."""
    rows = sorted({row.model for row in paper.PAPER if row.model})
    bad = [d for d in datasets if d not in DATASETS]
    if not datasets or bad:
        raise config.ConfigError(f"DATASETS={','.join(datasets)}: "
                                 + (f"{', '.join(map(repr, bad))} is not a column"
                                    if bad else "names no column")
                                 + f" of the paper's tables; choose from {', '.join(DATASETS)}")
    bad = [m for m in (models or ()) if m not in rows]
    if models is not None and (not models or bad):
        raise config.ConfigError(f"MODELS={','.join(models)}: "
                                 + (f"{', '.join(map(repr, bad))} is not a model"
                                    if bad else "names no model")
                                 + f" of the paper's rows; choose from {', '.join(rows)}")


def check_gpu(gpu: int) -> None:
    """GPU=N is usable here, asked once before the first cell trains (else every cell would
    fail at its training, the reason in its log only)."""
    from pycount import device
    try:
        device.check_gpu(gpu)
    except ImportError:
        raise TrainError("pycaffe cannot be imported: run `make setup` first") from None
    except TrainError as e:
        raise TrainError(f"{e}; GPU=-1 runs the cells on the CPU (with ITERS= for a dry "
                         f"run)") from None


def _done(dataset: str, model: str, head: str) -> bool:
    """Evaluated with today's nets and solver (a stale run is trained again)."""
    from pycount.nets import builders as nets
    ds = config.dataset(dataset)
    m = config.model(model, ds)
    run = config.run_dir(ds, m, head)
    if not (run / "metrics.json").exists() or _partial(run / "metrics.json"):
        return False
    return m.classic or not nets.drift(run, nets.run_plan(ds, m, head))


def _partial(path: Path) -> bool:
    """metrics.json of a partial evaluation (TEST_IMAGES=), which a full sweep counts again;
    an unreadable one is left to the audit to name."""
    import json
    from pycount.evaluation.metrics import partial
    try:
        m = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(m, dict) and partial(m)


def _iterations(dataset: str, model: str, head: str) -> int:
    """The iterations a cell's run has trained (its train.json; 0 for none, or a damaged one,
    which its training then names)."""
    from pycount.errors import RunError
    from pycount.inference.run import read_train_info
    ds = config.dataset(dataset)
    try:
        info = read_train_info(config.run_dir(ds, config.model(model, ds), head) / "train.json")
    except RunError:
        return 0
    n = (info or {}).get("iterations")
    return n if isinstance(n, int) and not isinstance(n, bool) else 0


def _evaluated_at(dataset: str, model: str, head: str, iters: int, trained: int) -> bool:
    """A dry run's cell done before: evaluated, and trained (`trained`, its _iterations) exactly
    ITERS iterations (a classic method, which ITERS= does not shorten, fitted), so that an
    interrupted dry run goes on where it stopped, as a full sweep does."""
    ds = config.dataset(dataset)
    m = config.model(model, ds)
    return (config.run_dir(ds, m, head) / "metrics.json").exists() and (
        m.classic or trained == iters)


def run(gpu: int = 0, iters: int | None = None, datasets=DATASETS, models=None,
        data_root=None, test_images: int | None = None) -> list[dict]:
    """Every runnable paper cell not done yet: prepare, train, eval (each a `pycount` process,
    its output in runs/replicate/logs/); returns one row per cell."""
    if test_images is not None and iters is None:
        raise config.ConfigError(f"TEST_IMAGES={test_images} is for a dry run (with ITERS=): a "
                                 f"sweep for the audit's results counts every test image")
    datasets = list(datasets)
    models = list(models) if models is not None else None
    check_cells(datasets, models)
    log_dir = config.runs_dir() / "replicate" / "logs"
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise TrainError(f"{log_dir} cannot be created: a file stands on its path; move it "
                         f"aside or set PYCOUNT_RUNS to another folder") from None
    except OSError as e:             # read-only, no permission
        raise TrainError(f"{log_dir} cannot be created ({e.strerror or e}); make "
                         f"{config.runs_dir()} writable or set PYCOUNT_RUNS to a folder that "
                         f"is") from None
    try:                             # present but read-only: say so once, not once per cell
        atomic.probe_writable(log_dir)
    except OSError as e:
        raise TrainError(f"{log_dir} cannot be written ({e.strerror or e}); make it writable "
                         f"or set PYCOUNT_RUNS to a folder that is") from None
    rows, cells = [], paper_cells(datasets, models)
    gpu_checked = False
    with Progress(len(cells), "paper cells", "cells") as bar:
        for dataset, model, head in cells:
            reason = audit.why_not(dataset, model, data_root)
            trained = _iterations(dataset, model, head) if iters is not None else 0
            if reason:
                status = f"skipped: {reason}"
            elif _done(dataset, model, head) and iters is None:
                status = "done before"
            elif iters is not None and _evaluated_at(dataset, model, head, iters, trained):
                status = f"done before (ITERS={iters})"
            elif iters is not None and trained > iters:
                status = (f"kept: trained {trained} iterations already, more than ITERS={iters} "
                          f"(a dry run leaves longer trainings as they are)")
            else:
                if not gpu_checked:
                    check_gpu(gpu)
                    gpu_checked = True
                status = _cell(dataset, model, head, gpu, iters, data_root, log_dir,
                               test_images)
            rows.append({"dataset": dataset, "model": model, "head": head, "status": status})
            print(f"\n  {dataset} {model}({head}): {status}", flush=True)
            bar.update(1)
    if rows and all(r["status"].startswith("skipped") for r in rows):
        reasons = list(dict.fromkeys(r["status"][len("skipped: "):] for r in rows))
        raise TrainError(f"none of the {len(rows)} paper cells can run here: "
                         + "; ".join(reasons[:3]) + ("; ..." if len(reasons) > 3 else ""))
    failed = [r for r in rows if r["status"].startswith("failed")]
    if failed:
        raise TrainError(f"{len(failed)} cell(s) failed: " + "; ".join(
            f"{r['dataset']} {r['model']}({r['head']}): {r['status']}" for r in failed))
    return rows


def _cell(dataset: str, model: str, head: str, gpu: int, iters: int | None, data_root,
          log_dir: Path, test_images: int | None = None) -> str:
    args = ["--dataset", dataset, "--model", model]
    if data_root:
        args += ["--data-root", str(data_root)]
    if config.model(model).classic:      # fitted once on the CPU: no head, GPU or iterations
        net, fit = [], []
    else:
        net = ["--head", head, "--gpu", str(gpu)]
        fit = net + (["--iters", str(iters)] if iters else [])
    steps = [("prepare", []), ("train", fit),
             ("eval", net + (["--test-images", str(test_images)] if test_images else []))]
    log = log_dir / f"{dataset}-{config.run_name(config.model(model), head)}.log"
    start = time.monotonic()
    try:
        f = open(log, "w")
    except OSError as e:             # this cell's log only: the other cells still run
        return (f"failed: cannot write its log {log} ({e.strerror or e}); make {log_dir} "
                f"writable")
    with f:
        for step, extra in steps:
            rc = subprocess.call([sys.executable, "-m", "pycount", step, *args, *extra],
                                 stdout=f, stderr=subprocess.STDOUT, cwd=config.ROOT,
                                 env=dict(os.environ))
            if rc:
                return f"failed at {step} (exit {rc}); see {log}"
    return f"ok ({(time.monotonic() - start) / 60:.1f} min)"
