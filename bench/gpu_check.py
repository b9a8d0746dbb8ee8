#!/usr/bin/env python3
"""GPU check of a CUDA build of Caffe, with nothing but the `caffe` tool and the standard library
(so it runs in the Docker image, on a cloud node, or beside a copied build):

  1. `caffe device_query` on the GPU,
  2. `caffe train` of a committed net for ITERS iterations on the GPU (the loss must fall),
  3. the trained net's forward pass over validation batches on the CPU and on the GPU with the
     same weights; every output must agree to TOL (|gpu - cpu| <= TOL * max(1, |cpu|)),
  4. `caffe time` forward/backward on CPU and GPU.

  python3 tools/gpu_check.py --caffe PATH/TO/caffe --dataset synthetic --model alexnet-lite
  make gpu-check DATASET=synthetic MODEL=alexnet-lite ITERS=300

Writes gpu_check.json (and the logs) into --out. Exit status 0 only when every check passed.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from pycount import config

LOSS_RE = re.compile(r"Iteration (\d+) \(.*\), loss = ([-+0-9.eE]+|nan|inf)")
BATCH_RE = re.compile(r"Batch (\d+), (\S+) = ([-+0-9.eE]+|nan|-?inf)")
TIME_RE = re.compile(r"Average Forward-Backward: ([0-9.]+) ms")


def run(cmd: list[str], log: Path, env: dict | None = None) -> str:
    print("$", " ".join(cmd), flush=True)
    t0 = time.time()
    # the results are read from Caffe's INFO log, whatever the caller's GLOG settings
    env = dict(env or os.environ, GLOG_minloglevel="0", GLOG_logtostderr="1")
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    text = p.stdout + p.stderr
    log.write_text(text)
    print(f"  ({time.time() - t0:.1f} s, log {log})", flush=True)
    if p.returncode != 0:
        sys.exit(f"gpu-check: {cmd[1]} failed with status {p.returncode}; last lines of {log}:\n"
                 + "\n".join(text.splitlines()[-15:]))
    return text


def data_layer(train_val: str, source: str, batch: int) -> str:
    """The TEST-phase Data layer of train_val, pointed at `source` with batch `batch`."""
    m = re.search(r"layer \{\n  name: \"val_data\".*?\n\}\n", train_val, re.S)
    if not m:
        sys.exit("gpu-check: no val_data layer in the train_val prototxt")
    layer = m.group(0)
    layer = re.sub(r"  include \{\n    phase: TEST\n  \}\n", "", layer)
    layer = re.sub(r'source: ".*?"', f'source: "{source}"', layer)
    return re.sub(r"batch_size: \d+", f"batch_size: {batch}", layer)


def _default_caffe_tool() -> Path:
    import caffe
    return Path(caffe.__file__).parents[2] / "caffe-tool"


def _write_nets(dataset: str, model: str, out: Path) -> Path:
    """The dataset's nets as pycount writes them, with the LMDB paths the committed ones use."""
    from pycount.nets import builders
    plan = builders.default_plan(dataset, model)
    builders.write_net_files(plan, out, snapshot_prefix=str(out / "snap"))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--caffe", help="the caffe tool of a CUDA build (default: the one beside "
                    "the venv's pycaffe)")
    ap.add_argument("--dataset", default=config.DEFAULT_DATASET)
    ap.add_argument("--model", default=config.DEFAULT_MODEL)
    ap.add_argument("--proto", help="folder of train_val/deploy/solver prototxts "
                                    "(default: written by pycount's builders for DATASET/MODEL)")
    ap.add_argument("--lmdb", help="folder holding train_lmdb and val_lmdb "
                                   "(default: the dataset's, as `make prepare` writes it)")
    ap.add_argument("--iters", type=int, default=300,
                    help="training iterations on the GPU; 0 = compare the seeded initial weights")
    ap.add_argument("--batches", type=int, default=8, help="validation batches compared")
    ap.add_argument("--gpu", type=int, default=0,
                    help="GPU id; -1 runs every step on the CPU (a self-test of this script)")
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--time-iters", type=int, default=20, help="iterations of `caffe time`")
    ap.add_argument("--out", default="runs/gpu-check")
    a = ap.parse_args(argv)

    caffe = str(Path(a.caffe or _default_caffe_tool()).resolve())
    if not os.access(caffe, os.X_OK):
        sys.exit(f"gpu-check: {caffe} is not an executable caffe tool; build one with "
                 f"`make caffe WITH_CUDA=1` (it is <build>/src/caffe-tool)")
    out = Path(a.out).resolve()
    proto = Path(a.proto) if a.proto else _write_nets(a.dataset, a.model, out / "proto")
    if not (proto / "solver.prototxt").is_file():
        sys.exit(f"gpu-check: no solver.prototxt in {proto}")
    lmdb = Path(a.lmdb or config.lmdb_dir(config.dataset(a.dataset))).resolve()
    for name in ("train_lmdb", "val_lmdb"):
        if not (lmdb / name / "data.mdb").is_file():
            sys.exit(f"gpu-check: {lmdb / name} is missing; run `make prepare DATASET={a.dataset}`"
                     " or pass --lmdb")
    (out / "snap").mkdir(parents=True, exist_ok=True)
    report: dict = {"caffe": caffe, "dataset": a.dataset, "model": a.model, "iters": a.iters,
                    "tol": a.tol, "checks": {}}

    gpu_flag = [f"-gpu={a.gpu}"] if a.gpu >= 0 else []

    # 1. the device
    report["device"] = "CPU (self-test)"
    if gpu_flag:
        text = run([caffe, "device_query", *gpu_flag], out / "device_query.log")
        m = re.search(r"Name:\s+(.*)", text)
        report["device"] = m.group(1).strip() if m else "?"

    # 2. training on the GPU
    train_val = (proto / "train_val.prototxt").read_text()
    train_val = train_val.replace(f'source: "data/lmdb/{a.dataset}/train_lmdb"',
                                  f'source: "{lmdb}/train_lmdb"')
    train_val = train_val.replace(f'source: "data/lmdb/{a.dataset}/val_lmdb"',
                                  f'source: "{lmdb}/val_lmdb"')
    (out / "train_val.prototxt").write_text(train_val)
    solver = (proto / "solver.prototxt").read_text()
    repl = {"net": f'"{out}/train_val.prototxt"', "max_iter": str(a.iters),
            "display": str(max(1, a.iters // 15)) if a.iters else "0", "snapshot": "0",
            "snapshot_prefix": f'"{out}/snap/gpu"', "solver_mode": "GPU" if gpu_flag else "CPU",
            "test_interval": str(a.iters + 1)}
    for key, value in repl.items():
        solver = re.sub(rf"^{key}: .*$", f"{key}: {value}", solver, flags=re.M)
    (out / "solver.prototxt").write_text(solver)
    t0 = time.time()
    text = run([caffe, "train", f"-solver={out}/solver.prototxt", *gpu_flag], out / "train.log")
    train_s = time.time() - t0
    losses = [(int(i), float(v)) for i, v in LOSS_RE.findall(text)]
    weights = out / "snap" / f"gpu_iter_{a.iters}.caffemodel"
    if not weights.is_file():
        sys.exit(f"gpu-check: training wrote no {weights}; see {out / 'train.log'}")
    k = max(1, len(losses) // 5)
    first = sum(v for _, v in losses[:k]) / k if losses else float("nan")
    last = sum(v for _, v in losses[-k:]) / k if losses else float("nan")
    report["train"] = {"seconds": round(train_s, 1), "losses": losses,
                       "loss_first": first, "loss_last": last}
    if a.iters:
        report["checks"]["loss falls on the GPU"] = bool(losses) and last < first

    # 3. CPU and GPU forward of the same weights over the same batches
    deploy = (proto / "deploy.prototxt").read_text()
    body = deploy.split("\nlayer {", 2)        # [name line, Input layer, rest]
    if len(body) < 3 or 'type: "Input"' not in body[1]:
        sys.exit(f"gpu-check: {proto}/deploy.prototxt does not start with an Input layer")
    batch = 16
    net = (body[0] + "\n" + data_layer(train_val, f"{lmdb}/val_lmdb", batch) + "layer {" + body[2]
           + '\nlayer {\n  name: "silence_label"\n  type: "Silence"\n  bottom: "label"\n}\n')
    # BatchNorm with the batch's own statistics: an untrained ResNet's stored statistics are zero
    net = net.replace("use_global_stats: true", "use_global_stats: false")
    (out / "check_net.prototxt").write_text(net)
    outputs = {}
    for mode, flag in (("cpu", []), ("gpu", gpu_flag)):
        text = run([caffe, "test", f"-model={out}/check_net.prototxt", f"-weights={weights}",
                    f"-iterations={a.batches}", *flag], out / f"forward_{mode}.log")
        outputs[mode] = [float(v) for _, _, v in BATCH_RE.findall(text)]
    cpu, gpu = outputs["cpu"], outputs["gpu"]
    n_ok = len(cpu) == len(gpu) == a.batches * batch
    diffs = [abs(g - c) / max(1.0, abs(c)) for c, g in zip(cpu, gpu)]
    report["forward"] = {"values": len(cpu), "max_scaled_diff": max(diffs) if diffs else None,
                         "max_abs_diff": max((abs(g - c) for c, g in zip(cpu, gpu)), default=None),
                         "cpu_first": cpu[:5], "gpu_first": gpu[:5]}
    report["checks"][f"CPU and GPU forward agree to {a.tol:g}"] = n_ok and max(diffs) <= a.tol

    # 4. speed
    timing = {}
    for mode, flag in (("cpu", []), ("gpu", gpu_flag))[:2 if gpu_flag else 1]:
        text = run([caffe, "time", f"-model={out}/train_val.prototxt",
                    f"-iterations={a.time_iters}", *flag],
                   out / f"time_{mode}.log")
        m = TIME_RE.search(text)
        timing[mode + "_ms_per_batch"] = float(m.group(1)) if m else None
    report["time_forward_backward"] = timing

    (out / "gpu_check.json").write_text(json.dumps(report, indent=1))
    print(f"\ndevice: {report['device']}")
    print(f"train {a.iters} iterations: {train_s:.1f} s, loss {first:.3f} -> {last:.3f}")
    fw = report["forward"]
    print(f"forward, {fw['values']} outputs: max |gpu-cpu| = {fw['max_abs_diff']}, "
          f"scaled {fw['max_scaled_diff']}")
    print(f"forward-backward ms/batch: CPU {timing['cpu_ms_per_batch']}, "
          f"GPU {timing.get('gpu_ms_per_batch', '-')}")
    for name, ok in report["checks"].items():
        print(f"  [{'ok' if ok else 'FAILED'}] {name}")
    print(f"report: {out / 'gpu_check.json'}")
    return 0 if all(report["checks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
