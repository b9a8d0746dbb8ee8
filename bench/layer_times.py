#!/usr/bin/env python3
"""Where a Caffe training step goes: seconds per step by layer type, forward and backward, for
the same net bench/caffe_speed.py times (the committed TRAIN net with Input layers, ResNets
trainable in every layer). Each layer runs alone through pycaffe's _forward/_backward, so the
sum is the step without the solver's update.

  python -m bench.layer_times prototxt/bacterial/resnet50 [--iters 4]

Threads come from the environment (OPENBLAS_NUM_THREADS, OMP_NUM_THREADS), the Caffe build
from the venv (or PYTHONPATH=<another build's python/ folder>). Used for patch 06
(docs/caffe-speed.md, bench/results/2026-12-03-vm-cpu-layers.md).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.caffe_speed import fill_inputs, input_net


def layer_times(folder: Path, iters: int) -> dict:
    """{"step_s", "img_s", "batch", "layers": [(type, forward s, backward s, share)]}, per step,
    the layer types by falling share."""
    import caffe
    from google.protobuf import text_format
    caffe.set_mode_cpu()
    full, shapes, data_tops, batch = input_net(folder)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "train.prototxt"
        path.write_text(text_format.MessageToString(full))
        net = caffe.Net(str(path), caffe.TRAIN)
    fill_inputs(net, shapes, data_tops)
    kinds = [layer.type for layer in net.layers]
    forward, backward = Counter(), Counter()
    net.forward()
    net.backward()
    start = time.perf_counter()
    for _ in range(iters):
        for i, kind in enumerate(kinds):
            t = time.perf_counter()
            net._forward(i, i)
            forward[kind] += time.perf_counter() - t
        for i in reversed(range(len(kinds))):
            t = time.perf_counter()
            net._backward(i, i)
            backward[kinds[i]] += time.perf_counter() - t
    total = time.perf_counter() - start
    rows = sorted(((k, forward[k] / iters, backward[k] / iters,
                    (forward[k] + backward[k]) / total) for k in set(kinds)),
                  key=lambda r: -r[3])
    return {"step_s": total / iters, "img_s": batch * iters / total, "batch": batch,
            "layers": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("net", type=Path, help="folder with train_val, solver and deploy prototxt")
    ap.add_argument("--iters", type=int, default=4)
    a = ap.parse_args()
    missing = [f for f in ("train_val.prototxt", "deploy.prototxt") if not (a.net / f).is_file()]
    if missing:
        ap.error(f"{a.net} has no {' or '.join(missing)}: give a prototxt/<dataset>/<model> "
                 f"folder or a run folder (runs/<dataset>/<model>)")
    r = layer_times(a.net, a.iters)
    print(f"{a.net}: {r['step_s']:.3f} s per step of {r['batch']}, {r['img_s']:.1f} img/s")
    print("| layer type | forward s | backward s | share of the step |")
    print("| --- | ---: | ---: | ---: |")
    for kind, f, b, share in r["layers"]:
        print(f"| {kind} | {f:.4f} | {b:.4f} | {100 * share:.1f} % |")


if __name__ == "__main__":
    main()
