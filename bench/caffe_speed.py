#!/usr/bin/env python3
"""Training images/s of pycaffe (solver.step) beside PyTorch, for issue 22 (batched convolution).

Each net is the committed train_val.prototxt + solver.prototxt with its LMDB Data layers replaced
by Input layers of the same shapes (filled once with random numbers) and the TEST phase dropped;
ResNets are made trainable in every layer (lr_mult 1, BatchNorm on batch statistics). The PyTorch
peer is built here from the same train net (Convolution, Deconvolution, Pooling with Caffe's ceil
rounding, LRN, BatchNorm + Scale, Eltwise, InnerProduct, Dropout, Power, ReLU), with the same
loss (Euclidean), the same solver type (SGD with momentum and weight decay, or Adam), gradient
clipping where the solver clips, and frozen parameters where lr_mult is 0. It needs only caffe,
numpy and (for the peer) torch; it does not import pycount.

  python bench/caffe_speed.py caffe NET [--iters N]     one pycaffe measurement (JSON)
  python bench/caffe_speed.py torch NET [--iters N]     one PyTorch measurement (JSON)
  python bench/caffe_speed.py all NET... --torch-python P --out F.json [--rounds R]
      every configuration of CONFIGS (oneDNN / per-image / chunked convolution, OpenBLAS flavour
      and threads, PyTorch) on every net, each in its own process, interleaved R times; best of R
NET is a folder with train_val.prototxt, solver.prototxt and deploy.prototxt (e.g.
prototxt/bacterial/alexnet). Threads and the convolution path come from the environment
(OPENBLAS_NUM_THREADS, OMP_NUM_THREADS, CAFFE_CONV_ENGINE, CAFFE_CONV_CHUNK_MB, LD_LIBRARY_PATH).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _load(path: Path, kind: str):
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format
    msg = getattr(caffe_pb2, kind)()
    text_format.Merge(path.read_text(), msg)
    return msg


def _in_phase(layer, phase: int) -> bool:
    if any(r.phase != phase for r in layer.include if r.HasField("phase")):
        return False
    return not any(r.phase == phase for r in layer.exclude if r.HasField("phase"))


def train_net(folder: Path, all_layers: bool = True):
    """(NetParameter of the TRAIN net with Input layers for the data, batch, input side, tops of
    the data layers)."""
    from caffe.proto import caffe_pb2
    src = _load(folder / "train_val.prototxt", "NetParameter")
    deploy = (folder / "deploy.prototxt").read_text()
    dims = [int(d) for d in re.findall(r"dim: (\d+)", deploy)[:4]]
    side = dims[2]
    net = caffe_pb2.NetParameter()
    net.name = src.name
    batch = None
    data_tops = []
    for layer in src.layer:
        if not _in_phase(layer, caffe_pb2.TRAIN):
            continue
        if layer.type in ("Data", "ImageData", "HDF5Data"):
            batch = batch or layer.data_param.batch_size
            data_tops += list(layer.top)
            continue
        new = net.layer.add()
        new.CopyFrom(layer)
        del new.include[:]
        if all_layers:
            if new.type == "BatchNorm":
                new.batch_norm_param.use_global_stats = False
            elif new.type not in ("Deconvolution",):   # fcrn's fixed bilinear upsampling stays
                for i, p in enumerate(new.param):
                    if p.lr_mult == 0:
                        p.lr_mult = 1 if i == 0 else 2
    return net, batch, side, data_tops


def _shapes(net, batch, side, data_tops, folder: Path) -> dict:
    """Shapes of the data layer tops: the image, and the target shaped like the loss's other
    bottom (found from a net built with the image alone)."""
    shapes = {data_tops[0]: [batch, 3, side, side]}
    import caffe
    loss = [l for l in net.layer if l.type.endswith("Loss")][0]
    pred = [b for b in loss.bottom if b not in data_tops][0]
    deploy = folder / "deploy.prototxt"
    probe = caffe.Net(str(deploy), caffe.TEST)
    probe.blobs[probe.inputs[0]].reshape(batch, 3, side, side)
    probe.reshape()
    blob = probe.blobs[pred] if pred in probe.blobs else probe.blobs[probe.outputs[0]]
    out = blob.data.shape
    for t in data_tops[1:]:
        shapes[t] = [batch] + list(out[1:])
    return shapes


def input_net(folder: Path):
    """(the TRAIN net with Input layers in place of its data layers, {top: shape}, data tops,
    batch), the net every measurement here runs."""
    from caffe.proto import caffe_pb2
    net, batch, side, data_tops = train_net(folder)
    shapes = _shapes(net, batch, side, data_tops, folder)
    full = caffe_pb2.NetParameter()
    full.name = net.name
    for t, shp in shapes.items():
        inp = full.layer.add()
        inp.name, inp.type = f"input_{t}", "Input"
        inp.top.append(t)
        inp.input_param.shape.add().dim.extend(shp)
    full.layer.extend(net.layer)
    return full, shapes, data_tops, batch


def fill_inputs(net, shapes: dict, data_tops: list) -> None:
    """Random images in [0, 1) and targets in [0, 4), seeded."""
    rng = np.random.default_rng(0)
    for t, shp in shapes.items():
        net.blobs[t].data[...] = rng.random(shp) * (1 if t == data_tops[0] else 4)


def bench_caffe(folder: Path, iters: int) -> dict:
    import caffe
    from google.protobuf import text_format
    caffe.set_mode_cpu()
    full, shapes, data_tops, batch = input_net(folder)
    solver = _load(folder / "solver.prototxt", "SolverParameter")
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "train.prototxt").write_text(text_format.MessageToString(full))
        solver.net = str(Path(tmp) / "train.prototxt")
        solver.ClearField("test_iter")
        solver.test_interval = 10 ** 9
        solver.test_initialization = False
        solver.display = 0
        solver.snapshot = 0
        solver.snapshot_prefix = str(Path(tmp) / "snap")
        solver.max_iter = 10 ** 9
        (Path(tmp) / "solver.prototxt").write_text(text_format.MessageToString(solver))
        s = caffe.get_solver(str(Path(tmp) / "solver.prototxt"))
        fill_inputs(s.net, shapes, data_tops)
        s.step(1)
        t0, c0 = time.perf_counter(), time.process_time()
        s.step(iters)
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    side = shapes[data_tops[0]][2]
    return {"engine": "caffe", "net": str(folder), "batch": batch, "input": side,
            "iters": iters, "seconds": round(dt, 3), "img_s": round(batch * iters / dt, 1),
            "cpu_seconds": round(cpu, 3), "img_per_cpu_s": round(batch * iters / cpu, 1)}


def torch_net(net, shapes, data_tops):
    """A torch module computing the TRAIN net's loss bottoms from its data tops."""
    import torch
    from torch import nn
    channels = {t: s[1] for t, s in shapes.items()}
    mods = nn.ModuleDict()
    plan = []
    frozen = []
    loss = None
    for l in net.layer:
        t = l.type
        b0 = l.bottom[0] if l.bottom else None
        cin = channels.get(b0)
        cout = cin
        if t.endswith("Loss"):
            loss = l
            continue
        if t in ("Convolution", "Deconvolution"):
            c = l.convolution_param
            k, s, p = c.kernel_size[0], (c.stride[0] if c.stride else 1), (c.pad[0] if c.pad else 0)
            d = c.dilation[0] if c.dilation else 1
            cout = c.num_output
            cls = nn.Conv2d if t == "Convolution" else nn.ConvTranspose2d
            mods[l.name] = cls(cin, cout, k, s, p, groups=c.group, bias=c.bias_term, dilation=d)
        elif t == "InnerProduct":
            cout = l.inner_product_param.num_output
            mods[l.name] = nn.LazyLinear(cout, bias=l.inner_product_param.bias_term)
        elif t == "BatchNorm":
            mods[l.name] = nn.BatchNorm2d(cin, eps=l.batch_norm_param.eps, affine=False)
        elif t == "Scale":
            mods[l.name] = _Scale(cin, l.scale_param.bias_term)
        elif t == "LRN":
            q = l.lrn_param
            mods[l.name] = nn.LocalResponseNorm(q.local_size, q.alpha, q.beta, q.k)
        elif t == "Pooling":
            q = l.pooling_param
            if q.global_pooling:
                mods[l.name] = nn.AdaptiveAvgPool2d(1) if q.pool == 1 else nn.AdaptiveMaxPool2d(1)
            else:
                k, s, p = q.kernel_size, q.stride or 1, q.pad
                mods[l.name] = nn.MaxPool2d(k, s, p, ceil_mode=True) if q.pool == 0 else \
                    nn.AvgPool2d(k, s, p, ceil_mode=True, count_include_pad=True)
        elif t not in ("ReLU", "Eltwise", "Dropout", "Power", "Softmax"):
            raise ValueError(f"{l.name}: no PyTorch peer for {t}")
        if l.name in mods and any(p.lr_mult == 0 for p in l.param[:1]):
            frozen.append(l.name)
        for top in l.top:
            channels[top] = cout
        plan.append(l)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = mods

        def forward(self, blobs):
            blobs = dict(blobs)
            for l in plan:
                b = blobs[l.bottom[0]]
                if l.type == "ReLU":
                    y = torch.relu(b)
                elif l.type == "Eltwise":
                    y = b + blobs[l.bottom[1]]
                elif l.type == "Dropout":
                    y = nn.functional.dropout(b, l.dropout_param.dropout_ratio, self.training)
                elif l.type == "Power":
                    q = l.power_param
                    y = q.shift + q.scale * b
                    y = y ** q.power if q.power != 1 else y
                elif l.type == "Softmax":
                    y = torch.softmax(b, 1)
                elif l.type == "InnerProduct":
                    y = self.layers[l.name](b.flatten(1))
                else:
                    y = self.layers[l.name](b)
                blobs[l.top[0]] = y
            return blobs[loss.bottom[0]], blobs[loss.bottom[1]]

    m = Net()
    with torch.no_grad():
        m({k: torch.zeros(v) for k, v in shapes.items()})
    for name in frozen:
        for p in mods[name].parameters():
            p.requires_grad_(False)
    return m


def _Scale(channels, bias):
    import torch
    from torch import nn

    class Scale(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(channels))
            self.bias = nn.Parameter(torch.zeros(channels)) if bias else None

        def forward(self, x):
            y = x * self.weight.view(1, -1, 1, 1)
            return y if self.bias is None else y + self.bias.view(1, -1, 1, 1)
    return Scale()


def bench_torch(folder: Path, iters: int) -> dict:
    import torch
    net, batch, side, data_tops = train_net(folder)
    shapes = _shapes(net, batch, side, data_tops, folder)
    m = torch_net(net, shapes, data_tops).train()
    solver = _load(folder / "solver.prototxt", "SolverParameter")
    params = [p for p in m.parameters() if p.requires_grad]
    if solver.type == "Adam":
        opt = torch.optim.Adam(params, lr=solver.base_lr, weight_decay=solver.weight_decay)
    else:
        opt = torch.optim.SGD(params, lr=solver.base_lr, momentum=solver.momentum,
                              weight_decay=solver.weight_decay)
    g = torch.Generator().manual_seed(0)
    blobs = {t: torch.rand(shp, generator=g) * (1 if t == data_tops[0] else 4)
             for t, shp in shapes.items()}

    def step():
        opt.zero_grad()
        a, b = m(blobs)
        loss = ((a - b) ** 2).sum() / (2 * batch)
        loss.backward()
        if solver.clip_gradients > 0:
            torch.nn.utils.clip_grad_norm_(params, solver.clip_gradients)
        opt.step()
    step()
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(iters):
        step()
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"engine": "torch", "net": str(folder), "batch": batch, "input": side,
            "iters": iters, "seconds": round(dt, 3), "img_s": round(batch * iters / dt, 1),
            "cpu_seconds": round(cpu, 3), "img_per_cpu_s": round(batch * iters / cpu, 1),
            "threads": torch.get_num_threads()}


BLAS = "/usr/lib/x86_64-linux-gnu"
# name: (engine, environment); LD_LIBRARY_PATH picks Debian's OpenBLAS flavour for this process
# only (the same as update-alternatives would for the whole machine)
G = {"CAFFE_CONV_ENGINE": "gemm"}   # 04's im2col + OpenBLAS path (05's oneDNN is the default)
D = {"CAFFE_CONV_ENGINE": "dnnl"}
CONFIGS = {
    "caffe dnnl (2 thr)": ("caffe", D),
    # OPENBLAS_NUM_THREADS alone: 05 also limits oneDNN's OpenMP threads by it
    "caffe dnnl (1 thr)": ("caffe", {**D, "OPENBLAS_NUM_THREADS": "1"}),
    "caffe per-image (pthread, 2 thr)": ("caffe", {**G, "CAFFE_CONV_CHUNK_MB": "0"}),
    "caffe chunked (pthread, 2 thr)": ("caffe", G),
    "caffe chunked (pthread, 1 thr)": ("caffe", {**G, "OPENBLAS_NUM_THREADS": "1"}),
    "caffe chunked (openmp, 2 thr)": ("caffe", {**G, "LD_LIBRARY_PATH": f"{BLAS}/openblas-openmp",
                                                "OMP_NUM_THREADS": "2"}),
    "caffe chunked (openmp, 1 thr)": ("caffe", {**G, "LD_LIBRARY_PATH": f"{BLAS}/openblas-openmp",
                                                "OMP_NUM_THREADS": "1"}),
    "caffe chunked (serial)": ("caffe", {**G, "LD_LIBRARY_PATH": f"{BLAS}/openblas-serial"}),
    "torch (2 thr)": ("torch", {}),
    # OpenMP threads sleep at barriers instead of spinning (libgomp reads it at load)
    "caffe dnnl (2 thr, passive)": ("caffe", {**D, "OMP_WAIT_POLICY": "passive"}),
    "torch (2 thr, passive)": ("torch", {"OMP_WAIT_POLICY": "passive"}),
    # and OpenBLAS's idle pthreads sleep at once (2^4 cycles) instead of spinning 2^28 cycles
    # after each call (OpenBLAS reads it at load), which took a core from oneDNN's threads
    "caffe dnnl (2 thr, passive, BLAS sleeps)": ("caffe", {**D, "OMP_WAIT_POLICY": "passive",
                                                           "OPENBLAS_THREAD_TIMEOUT": "4"}),
    "caffe dnnl (2 thr, passive, BLAS spins)": ("caffe", {**D, "OMP_WAIT_POLICY": "passive",
                                                          "OPENBLAS_THREAD_TIMEOUT": "28"}),
    "caffe per-image (1 thr)": ("caffe", {**G, "CAFFE_CONV_CHUNK_MB": "0",
                                          "OPENBLAS_NUM_THREADS": "1"}),
    "torch (1 thr)": ("torch", {"OMP_NUM_THREADS": "1"}),
}
# The same two pycount settings on another Caffe build (e.g. one without a new patch, to measure
# the patch in the same run): CAFFE_BEFORE=<that build's python/ folder>, which these configs put
# on PYTHONPATH ahead of the venv's own build.
_BEFORE = os.environ.get("CAFFE_BEFORE")
if _BEFORE:
    CONFIGS["caffe dnnl (1 thr, before)"] = ("caffe", {**D, "OPENBLAS_NUM_THREADS": "1",
                                                       "PYTHONPATH": _BEFORE})
    CONFIGS["caffe dnnl (2 thr, passive, BLAS sleeps, before)"] = (
        "caffe", {**D, "OMP_WAIT_POLICY": "passive", "OPENBLAS_THREAD_TIMEOUT": "4",
                  "PYTHONPATH": _BEFORE})


def drive(a) -> None:
    """Every net under every configuration, interleaved, `rounds` times; best images/s of each."""
    import subprocess
    rows = []
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("CAFFE_CONV", "CAFFE_DNNL", "OMP_", "OPENBLAS_NUM",
                                 "OPENBLAS_THREAD", "LD_LIBRARY"))}
    base["GLOG_minloglevel"] = "2"
    configs = {k: v for k, v in CONFIGS.items() if not a.configs or k in a.configs}
    for r in range(a.rounds):
        for net in a.nets:
            for name, (engine, env) in configs.items():
                py = a.caffe_python if engine == "caffe" else a.torch_python
                iters = a.iters if "resnet" not in str(net) else max(2, a.iters // 2)
                cmd = [py, __file__, engine, str(net), "--iters", str(iters)]
                p = subprocess.run(cmd, env={**base, **env}, capture_output=True, text=True)
                if p.returncode != 0:
                    print(f"{net} {name}: failed\n{p.stderr[-2000:]}", file=sys.stderr)
                    continue
                row = json.loads(p.stdout.strip().splitlines()[-1])
                row.update(config=name, round=r, load=round(os.getloadavg()[0], 1))
                rows.append(row)
                print(f"round {r} {net} {name}: {row['img_s']} img/s, "
                      f"{row['img_per_cpu_s']} img per CPU s (load {row['load']})", flush=True)
                a.out.write_text(json.dumps({"rounds": a.rounds, "rows": rows}, indent=1))
    print(f"wrote {a.out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("engine", choices=["caffe", "torch", "all"])
    ap.add_argument("nets", type=Path, nargs="+")
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--configs", nargs="*", default=[])
    ap.add_argument("--caffe-python", default=sys.executable)
    ap.add_argument("--torch-python", default=sys.executable)
    ap.add_argument("--out", type=Path, default=Path("bench-caffe-speed.json"))
    a = ap.parse_args()
    if a.engine == "all":
        return drive(a)
    row = (bench_caffe if a.engine == "caffe" else bench_torch)(a.nets[0], a.iters)
    row["env"] = {k: v for k, v in os.environ.items()
                  if k.startswith(("CAFFE_CONV", "CAFFE_DNNL", "OPENBLAS", "OMP_"))}
    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    sys.exit(main())
