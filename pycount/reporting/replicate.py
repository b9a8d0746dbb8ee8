"""`make audit-gpu` (`pycount replicate`): every cell of the paper's Tables 2-4 that pycount
models, prepared, trained and evaluated in one go, then the audit regenerated.

Meant for a GPU machine with He et al.'s ImageNet caffemodels in weights/, where the whole sweep
takes about an hour; a cell whose model lacks its weights, or whose dataset is not under
DATA_ROOT, is skipped with one line saying what to provide. Cells already evaluated with today's
settings are kept, so an interrupted sweep goes on where it stopped (training resumes from its
snapshots). ITERS= shortens every training (the schedule follows), for a dry run of the whole
path on a CPU; a cell already trained further than ITERS= is left as it is.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from pycount import config
from pycount.errors import TrainError
from pycount.reporting import audit
from pycount.util.progress import Progress

# The paper's columns and our stand-in for its private Ki67 set (reporting.audit.COLUMNS).
DATASETS = ("bacterial", "nuclei", "ki67", "ki67-synthetic")


def paper_cells(datasets=DATASETS, models=None) -> list[tuple[str, str, str]]:
    """(dataset, model, head) of every paper row pycount models, once each."""
    cells = []
    for row in audit.PAPER:
        if row.model is None or (models and row.model not in models):
            continue
        for d in datasets:
            if (d, row.model, row.head) not in cells:
                cells.append((d, row.model, row.head))
    return cells


def _done(dataset: str, model: str, head: str) -> bool:
    """Evaluated with today's nets and solver (a stale run is trained again)."""
    from pycount.nets import builders as nets
    ds = config.dataset(dataset)
    m = config.model(model, ds)
    run = config.run_dir(ds, m, head)
    if not (run / "metrics.json").exists():
        return False
    return m.classic or not nets.drift(run, nets.run_plan(ds, m, head))


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


def run(gpu: int = 0, iters: int | None = None, datasets=DATASETS, models=None,
        data_root=None) -> list[dict]:
    """Every runnable paper cell not done yet: prepare, train, eval (each a `pycount` process,
    its output in runs/replicate/logs/); returns one row per cell."""
    log_dir = config.runs_dir() / "replicate" / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    rows, cells = [], paper_cells(datasets, models)
    with Progress(len(cells), "paper cells", "cells") as bar:
        for dataset, model, head in cells:
            reason = audit.why_not(dataset, model, data_root)
            if reason:
                status = f"skipped: {reason}"
            elif _done(dataset, model, head) and iters is None:
                status = "done before"
            elif iters is not None and _iterations(dataset, model, head) > iters:
                status = (f"kept: trained {_iterations(dataset, model, head)} iterations already, "
                          f"more than ITERS={iters} (a dry run leaves longer trainings as they "
                          f"are)")
            else:
                status = _cell(dataset, model, head, gpu, iters, data_root, log_dir)
            rows.append({"dataset": dataset, "model": model, "head": head, "status": status})
            print(f"\n  {dataset} {model}({head}): {status}", flush=True)
            bar.update(1)
    failed = [r for r in rows if r["status"].startswith("failed")]
    if failed:
        raise TrainError(f"{len(failed)} cell(s) failed: " + "; ".join(
            f"{r['dataset']} {r['model']}({r['head']}): {r['status']}" for r in failed))
    return rows


def _cell(dataset: str, model: str, head: str, gpu: int, iters: int | None, data_root,
          log_dir: Path) -> str:
    args = ["--dataset", dataset, "--model", model]
    if data_root:
        args += ["--data-root", str(data_root)]
    steps = [("prepare", []),
             ("train", ["--head", head, "--gpu", str(gpu)] + (["--iters", str(iters)] if iters
                                                               else [])),
             ("eval", ["--head", head, "--gpu", str(gpu)])]
    log = log_dir / f"{dataset}-{config.run_name(config.model(model), head)}.log"
    start = time.monotonic()
    with open(log, "w") as f:
        for step, extra in steps:
            rc = subprocess.call([sys.executable, "-m", "pycount", step, *args, *extra],
                                 stdout=f, stderr=subprocess.STDOUT, cwd=config.ROOT,
                                 env=dict(os.environ))
            if rc:
                return f"failed at {step} (exit {rc}); see {log}"
    return f"ok ({(time.monotonic() - start) / 60:.1f} min)"
