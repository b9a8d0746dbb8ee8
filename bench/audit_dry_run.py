"""`make audit-gpu` end to end on a CPU, without He et al.'s caffemodels: a dry run of the path.

The ResNet cells need the released ImageNet caffemodels, which cannot be downloaded here. This
builds stand-ins (the same nets, He et al.'s layer names and shapes, random parameters), lists them
in a stand-in.json beside them (pycount.nets.weights accepts a listed stand-in and marks what it
trains), and runs `pycount replicate --gpu -1 --iters N` with PYCOUNT_WEIGHTS and PYCOUNT_RUNS in a
scratch folder: every paper cell of the chosen datasets is prepared, trained N iterations and
evaluated on its first K test images (--test-images; counting every one takes hours on a CPU
core at the paper's 12 rotations per patch), then the audit is written (in the scratch folder;
docs/ is left alone). Its results are no results: the point is that every step runs and the audit reads every cell.

    .venv/bin/python -m bench.audit_dry_run --datasets bacterial --iters 2 --test-images 5

writes bench/results/<date>-<host>-audit-dry-run.{json,md}: per cell its status and minutes, and
what the audit shows for it.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from pycount import config

DEPTHS = (50, 101, 152)


def stand_in(depth: int, path: Path, seed: int = 0) -> None:
    """A caffemodel shaped as He et al.'s ResNet-`depth` (the trunk pycount's nets copy, fc1000
    on top) with random parameters and plausible BatchNorm statistics."""
    import caffe
    from pycount.nets import builders as nets
    caffe.set_mode_cpu()
    n = caffe.NetSpec()
    n.data = caffe.layers.Input(shape=dict(dim=[1, 3, 40, 40]))
    top, fc = nets._resnet_trunk(n, n.data, nets.default_plan("bacterial", f"resnet{depth}"),
                                 False)
    n.fc1000 = fc(top, 1000)
    proto = path.with_suffix(".prototxt")
    proto.write_text(str(n.to_proto()))
    net = caffe.Net(str(proto), caffe.TEST)
    randomize(net, np.random.default_rng(seed))
    net.save(str(path))
    proto.unlink()


def randomize(net, rng) -> None:
    """Random parameters as a trained ResNet's look: He-initialised convolutions and fc,
    BatchNorm statistics near what its input gives (the variance ~60^2 after conv1 on raw
    pixels), Scale near its learnt range. (tests/test_resnet.py's pretrained net too.)"""
    for name, layer in zip(net._layer_names, net.layers):
        blobs = net.params.get(name, [])
        if layer.type == "BatchNorm":        # mean, variance, factor 1
            var = rng.uniform(0.5, 2.0, blobs[1].data.shape) * (3600 if name == "bn_conv1" else 1)
            blobs[0].data[...] = rng.normal(0, 0.1, blobs[0].data.shape)
            blobs[1].data[...] = var
            blobs[2].data[...] = 1.0
        elif layer.type == "Scale":
            blobs[0].data[...] = rng.uniform(0.2, 0.5, blobs[0].data.shape)
            blobs[1].data[...] = rng.normal(0, 0.1, blobs[1].data.shape)
        else:
            for b in blobs:
                fan_in = np.prod(b.data.shape[1:]) if b.data.ndim > 1 else 1
                b.data[...] = rng.normal(0, np.sqrt(2.0 / fan_in), b.data.shape)


def build_stand_ins(folder: Path) -> dict:
    """The three stand-ins in `folder` and their stand-in.json; returns that list."""
    from pycount.nets import weights
    folder.mkdir(parents=True, exist_ok=True)
    try:                             # a dry run going on in the same scratch folder: the same ones
        listed = json.loads((folder / weights.STAND_IN_LIST).read_text())
        if all((folder / name).is_file() and (folder / name).stat().st_size == size
               for name, (size, _) in listed.items()) and len(listed) == len(DEPTHS):
            return listed
    except (OSError, ValueError, TypeError):
        pass
    listed = {}
    for depth in DEPTHS:
        name = config.model(f"resnet{depth}").weights
        path = folder / name
        stand_in(depth, path, seed=depth)
        listed[name] = [path.stat().st_size, hashlib.sha256(path.read_bytes()).hexdigest()]
        print(f"stand-in {path} ({path.stat().st_size / 1e6:.0f} MB)", flush=True)
    (folder / weights.STAND_IN_LIST).write_text(json.dumps(listed, indent=1))
    return listed


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.audit_dry_run", description=__doc__
                                 .splitlines()[0])
    ap.add_argument("--datasets", default="bacterial",
                    help="comma-separated paper columns (bacterial, nuclei, ki67-synthetic)")
    ap.add_argument("--iters", type=int, default=2, help="training iterations per cell")
    ap.add_argument("--test-images", type=int, default=5,
                    help="test images each cell counts (0: all of them)")
    ap.add_argument("--data-root", default=str(config.ROOT.parent / "shared" / "datasets"))
    ap.add_argument("--scratch", default=None,
                    help="folder for the stand-ins and the runs (default: a new temporary one)")
    args = ap.parse_args(argv)
    scratch = Path(args.scratch or tempfile.mkdtemp(prefix="audit-dry-run-"))
    weights_dir, runs = scratch / "weights", scratch / "runs"
    start = time.monotonic()
    build_stand_ins(weights_dir)
    env = dict(os.environ, PYCOUNT_WEIGHTS=str(weights_dir), PYCOUNT_RUNS=str(runs))
    cmd = [sys.executable, "-m", "pycount", "replicate", "--gpu", "-1", "--iters",
           str(args.iters), "--datasets", args.datasets, "--data-root", args.data_root]
    if args.test_images > 0:
        cmd += ["--test-images", str(args.test_images)]
    print("$ PYCOUNT_WEIGHTS=... PYCOUNT_RUNS=... " + " ".join(cmd[1:]), flush=True)
    sweep = time.monotonic()
    proc = subprocess.run(cmd, env=env, cwd=config.ROOT, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    sweep = time.monotonic() - sweep
    out = proc.stdout
    sys.stdout.write(out[-4000:])
    cells = re.findall(r"^  (\S+) (\S+)\((\w)\): (.+)$", out, re.M)
    report = runs / "audit" / "audit.md"
    audit_md = report.read_text() if report.exists() else ""
    rows = []
    for dataset, model, head, status in cells:
        name = config.run_name(config.model(model), head)
        run = runs / dataset / name
        train = {}
        try:
            train = json.loads((run / "train.json").read_text())
        except (OSError, ValueError):
            pass
        rows.append({"cell": f"{dataset} {model}({head})", "status": status,
                     "iterations": train.get("iterations"),
                     "stand_in_weights": bool(train.get("weights_stand_in")),
                     "evaluated": (run / "metrics.json").exists(),
                     "in_audit": f"{dataset}/{name}" in audit_md})
    from bench import stages
    path = stages.write_results(
        "audit-dry-run", rows,
        extra={"command": " ".join(cmd[1:]), "exit": proc.returncode,
               "sweep_seconds": round(sweep, 1),
               "seconds_with_stand_ins": round(time.monotonic() - start, 1),
               "scratch": str(scratch), "output_tail": out[-6000:]},
        note=f"`{' '.join(cmd[1:])}` with PYCOUNT_WEIGHTS holding random-parameter stand-ins "
             f"of He et al.'s caffemodels (listed in stand-in.json) and PYCOUNT_RUNS a scratch "
             f"folder: exit {proc.returncode}, {sweep / 60:.1f} min for the sweep and its audit. "
             f"`in_audit`: the audit written at the end names the cell's run (the ResNet cells "
             f"as dry runs, never as results). Made by `python -m bench.audit_dry_run`.")
    print(f"\nwritten: {path}")
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
