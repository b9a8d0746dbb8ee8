"""`pycount bench load`: what a user can expect when several pycount commands share a machine.

1. Two trainings of the same dataset at once (separate run folders, R and C heads: they read the
   same LMDBs), then one `count` beside them, each timed against running alone.
2. `pycount count` over many images with an unreadable file in the middle: the others are all
   counted, the bad one is named, the exit status is 1.

Everything runs in a scratch folder (PYCOUNT_DATA, PYCOUNT_RUNS) on the synthetic set, with the
demo's model, so it needs no dataset; the trainings use one BLAS thread each.
"""
from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from pycount import config

ROOT = config.ROOT


def _cmd(*args) -> list[str]:
    return [sys.executable, "-m", "pycount", *map(str, args)]


def _start(args, env, log: Path) -> tuple[subprocess.Popen, float]:
    return (subprocess.Popen(_cmd(*args), cwd=ROOT, env=env, stdout=open(log, "w"),
                             stderr=subprocess.STDOUT), time.perf_counter())


def _wait(proc_t0) -> tuple[int, float]:
    proc, t0 = proc_t0
    return proc.wait(), time.perf_counter() - t0


def _images(folder: Path, n: int, bad_at: int, side: int) -> None:
    """n generated-looking images (random blobs) and one corrupt file at position bad_at."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for k in range(n):
        path = folder / f"{k:04d}.png"
        if k == bad_at:
            path.write_bytes(b"\x89PNG\r\n\x1a\n" + rng.bytes(200))     # a truncated PNG
            continue
        img = np.zeros((side, side, 3), np.uint8)
        for x, y in rng.integers(4, side - 4, (int(rng.integers(5, 40)), 2)):
            cv2.circle(img, (int(x), int(y)), 3, (0, 0, 230), -1)
        cv2.imwrite(str(path), img)


def run(iters: int = 300, n_images: int = 1000, side: int = 128) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="pycount-bench-load-") as tmp:
        tmp = Path(tmp)
        env = dict(os.environ, PYCOUNT_DATA=str(tmp / "data"), PYCOUNT_RUNS=str(tmp / "runs"),
                   OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", GLOG_minloglevel="2")
        assert subprocess.call(_cmd("prepare"), cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL) == 0
        train = ("train", "--iters", iters, "--restart")
        rc, alone = _wait(_start(train, env, tmp / "alone.log"))
        rows.append({"case": f"one training alone ({iters} its)", "seconds": round(alone, 1),
                     "status": rc})
        # counting uses a copy of the trained run (the R training below starts its folder over)
        run = tmp / "counting-run"
        shutil.copytree(tmp / "runs" / "synthetic" / config.DEFAULT_MODEL, run)
        images = tmp / "images"
        _images(images, 50, -1, side)
        rc, count_alone = _wait(_start(("count", images, "--run", run, "--out", tmp / "c0"), env,
                                       tmp / "c0.log"))
        rows.append({"case": "count 50 images alone", "seconds": round(count_alone, 1),
                     "status": rc})
        a = _start(train, env, tmp / "a.log")
        b = _start(train + ("--head", "C"), env, tmp / "b.log")
        time.sleep(5)
        c = _start(("count", images, "--run", run, "--out", tmp / "c1"), env, tmp / "c1.log")
        for label, p, ref in (("training R beside another training and a count", a, alone),
                              ("training C beside another training and a count", b, alone),
                              ("count 50 images beside two trainings", c, count_alone)):
            rc, secs = _wait(p)
            rows.append({"case": label, "seconds": round(secs, 1), "status": rc,
                         "slowdown": round(secs / ref, 2)})
        many = tmp / "many"
        _images(many, n_images, n_images // 2, side)
        rc, secs = _wait(_start(("count", many, "--run", run, "--out", tmp / "c2"), env,
                                tmp / "c2.log"))
        result = list(csv.DictReader(open(tmp / "c2" / "counts.csv")))
        failed = [r["file"] for r in result if r["status"] != "ok"]
        rows.append({"case": f"count {n_images} images, one corrupt in the middle",
                     "seconds": round(secs, 1), "status": rc,
                     "counted": len(result) - len(failed),
                     "failed": ", ".join(Path(f).name for f in failed)})
    for r in rows:
        print(r, flush=True)
    return rows
