"""Measure Table 4's classic methods (pycount.classic) on the real datasets.

    .venv/bin/python bench/table4_measure.py lecount bacterial --n 32 --eval test
    .venv/bin/python bench/table4_measure.py ledetect nuclei --eval test --set channel=hematoxylin

Protocols (pycount/splits/*.json):
  bacterial: train on the first N of 001-100; --eval test scores 101-200, --eval val scores the
             rest of 001-100 (N+1..100), the held-out half used to choose settings.
  nuclei:    the recorded 50/50 split; --eval val holds out the last 10 of the 50 training images
             (training then uses the first 40), --eval test trains on all 50 and scores the 50 test.
Prints MAE +- std (population std, as in the paper's tables), MRE, the times, and appends one JSON
line to bench/results/table4.jsonl (with --log), then renders bench/results/table4.md from it.
"""
from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")  # the machine is shared: one thread

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pycount import config  # noqa: E402
from pycount.classic import LeCount, LeDetect  # noqa: E402
from pycount.data.readers import read_crc_nuclei, read_vgg_cells  # noqa: E402
from bench import table4_report  # noqa: E402

DATA = Path(os.environ.get("DATA_ROOT", ROOT.parent / "shared" / "datasets"))


def split(dataset: str, n: int | None, which: str, start: int = 0, val_train: int = 40):
    spec = json.loads((ROOT / "pycount" / "data" / "splits" / f"{'bacterial' if dataset == 'bacterial' else 'nuclei'}.json").read_text())
    train, test = list(spec["train"]), list(spec["test"])
    if dataset == "bacterial":
        n = n or 32
        if start:  # another N-image training subset of 001-100 (L&Z's +- is over such subsets)
            if start + n > len(train):
                raise SystemExit(f"--start {start} + --n {n} exceeds the {len(train)} training images")
            if which == "val":
                raise SystemExit("--start is for --eval test")
            return train[start:start + n], test
        return (train[:n], train[n:]) if which == "val" else (train[:n], test)
    if which == "val":
        return train[:val_train], train[val_train:]
    return (train[:n] if n else train), test


def read(dataset: str, ids):
    if dataset == "bacterial":
        return read_vgg_cells(DATA / "vgg_cells", ids)
    return read_crc_nuclei(DATA / "CRCHistoPhenotypes_2016_04_28", ids)


def parse_value(v: str):
    for conv in (int, float):
        try:
            return conv(v)
        except ValueError:
            pass
    if "," in v:
        return tuple(parse_value(x) for x in v.split(",") if x)
    return v


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("method", choices=("lecount", "ledetect"))
    ap.add_argument("dataset", choices=("bacterial", "nuclei"))
    ap.add_argument("--n", type=int, default=None, help="training images (bacterial: first N of 001-100)")
    ap.add_argument("--eval", choices=("val", "test"), default="val")
    ap.add_argument("--start", type=int, default=0, help="bacterial: train on images start+1..start+N of 001-100")
    ap.add_argument("--val-train", type=int, default=40,
                    help="nuclei --eval val: train on the first this many of the 50 training images, score the rest")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="settings overrides")
    ap.add_argument("--log", action="store_true", help="append the result to bench/results/table4.jsonl")
    ap.add_argument("--save", type=Path, help="save the fitted model here (.npz)")
    a = ap.parse_args(argv)
    # read before anything runs: the code this process imports is the code of this commit, unless
    # the package or the bench had uncommitted changes (then "+dirty")
    git = ["git", "-C", str(ROOT)]
    commit = subprocess.run(git + ["rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    if subprocess.run(git + ["status", "--porcelain", "pycount/classic", "bench/table4_measure.py"],
                      capture_output=True, text=True).stdout.strip():
        commit += "+dirty"
    overrides = dict(kv.split("=", 1) for kv in a.set)
    overrides = {k: parse_value(v) for k, v in overrides.items()}
    # the dataset's settings as pycount trains them (config.CLASSIC_BY_DATASET), then --set
    overrides = {**config.classic_settings(config.model(a.method), config.dataset(a.dataset)),
                 **overrides}
    train_ids, eval_ids = split(a.dataset, a.n, a.eval, a.start, a.val_train)
    train, evals = read(a.dataset, train_ids), read(a.dataset, eval_ids)
    cls = LeCount if a.method == "lecount" else LeDetect
    t0 = time.perf_counter()
    model = cls.fit([s.image for s in train], [s.centres for s in train], **overrides)
    t_train = time.perf_counter() - t0
    if a.save:
        model.save(a.save)
    t0 = time.perf_counter()
    pred = np.array([model.count_image(s.image) for s in evals])
    t_test = time.perf_counter() - t0
    truth = np.array([s.count for s in evals], float)
    err = np.abs(pred - truth)
    mre = float(np.mean(err / np.maximum(truth, 1)))
    res = {"method": a.method, "dataset": a.dataset, "eval": a.eval, "n_train": len(train),
           "train_ids": f"{train_ids[0]}..{train_ids[-1]}",
           "n_eval": len(evals), "mae": float(err.mean()), "std": float(err.std()), "mre": mre,
           "bias": float((pred - truth).mean()), "train_s": round(t_train, 1),
           "test_s_per_image": round(t_test / len(evals), 3), "overrides": overrides,
           "info": {k: v for k, v in model.info.items() if k != "cv_mae"}, "commit": commit}
    print(f"{a.method} {a.dataset} {a.eval}: N={len(train)} -> {len(evals)} images  MAE {res['mae']:.2f} "
          f"+- {res['std']:.2f}  MRE {mre:.4f}  bias {res['bias']:+.2f}  train {t_train:.0f}s  "
          f"test {res['test_s_per_image']}s/image  {overrides}  {res['info']}", flush=True)
    if a.log:
        out = ROOT / "bench" / "results" / "table4.jsonl"
        with out.open("a") as f:
            f.write(json.dumps(res) + "\n")
        print(f"appended to {out}; table: {table4_report.write(out)}")
    return res


if __name__ == "__main__":
    main()
