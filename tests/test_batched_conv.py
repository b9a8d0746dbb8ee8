"""tools/caffe-patches/04-batched-conv.patch and 05-dnnl-conv.patch: the chunked CPU convolution
and the oneDNN one compute what Caffe's per-image path computes, on every committed net.

Each committed deploy prototxt under prototxt/ (any .prototxt with an Input layer; the train_val
nets differ only by their LMDB data and loss layers) is built with a small batch (3 images) and
seeded random weights, and runs a forward and a backward pass (force_backward, a fixed random
top diff) under each setting of CAFFE_CONV_ENGINE / CAFFE_CONV_CHUNK_MB / CAFFE_CONV_CHUNK_IMAGES,
in one worker process (the patches read them at every pass). The outputs, the input diff and
every parameter diff must agree with the per-image path (CAFFE_CONV_ENGINE=gemm
CAFFE_CONV_CHUNK_MB=0) to 1e-5, relative to each
array's largest magnitude where that is above 1. Nets that differ only in input size or class
count are tested once, at their smallest input. Needs only caffe and numpy.

ReLU becomes TanH and max pooling average pooling here: the convolutions are what the patch
changes, and a kink (a ReLU input or two pooled values within float rounding of each other)
turns the last-bit differences of a differently blocked GEMM into O(1) differences of single
gradient entries, which deep ResNets then spread; smooth layers keep the comparison to rounding.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
BATCH = 3
TOL = 1e-5
# name: environment; "per-image" is the reference
GEMM = {"CAFFE_CONV_ENGINE": "gemm"}
SETTINGS = {
    "per-image": {**GEMM, "CAFFE_CONV_CHUNK_MB": "0"},
    "gemm-default": GEMM,                             # about 2048 GEMM columns per chunk
    "one-image-chunks": {**GEMM, "CAFFE_CONV_CHUNK_IMAGES": "1"},   # the chunked code, n = 1
    "chunks-2+1": {**GEMM, "CAFFE_CONV_CHUNK_IMAGES": "2"},
    "dnnl": {"CAFFE_CONV_ENGINE": "dnnl"},            # 05-dnnl-conv: oneDNN's primitives
    "default": {},                                    # the build's default engine
}
ENV_PREFIXES = ("CAFFE_CONV_CHUNK_", "CAFFE_CONV_ENGINE")


def _dims(text: str) -> list[int]:
    m = re.search(r'type: "Input".*?shape \{(.*?)\}', text, re.S)
    return [int(d) for d in re.findall(r"dim: (\d+)", m.group(1))] if m else []


def committed_nets() -> dict[str, Path]:
    """One deploy prototxt per architecture (input size and class count aside), the smallest
    input of each, named by its path."""
    best: dict[str, tuple[int, Path]] = {}
    for path in sorted(ROOT.glob("prototxt/**/*.prototxt")):
        text = path.read_text()
        dims = _dims(text)
        if len(dims) != 4:      # solvers, and train nets that read LMDBs
            continue
        body = re.sub(r"^name:.*$", "", text, count=1, flags=re.M)
        body = re.sub(r"dim: \d+", "", body)
        body = re.sub(r'(type: "InnerProduct".*?num_output:) \d+', r"\1", body, flags=re.S)
        key = hashlib.sha256(body.encode()).hexdigest()
        side = dims[2] * dims[3]
        if key not in best or side < best[key][0]:
            best[key] = (side, path)
    return {_name(p): p for _, p in best.values()}


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT / "prototxt").with_suffix(""))


def _set_env(env: dict) -> None:
    for k in [k for k in os.environ if k.startswith(ENV_PREFIXES)]:
        del os.environ[k]
    os.environ.update(env)


def _pass(net, data: str, top: str, top_diff) -> dict:
    """Forward + backward with the setting in force: the arrays to compare."""
    for blobs in net.params.values():
        for b in blobs:
            b.diff[...] = 0
    net.forward()
    out = {"out": net.blobs[top].data.copy()}
    net.blobs[top].diff[...] = top_diff
    net.backward()
    out["data_diff"] = net.blobs[data].diff.copy()
    for lname, blobs in net.params.items():
        for i, b in enumerate(blobs):
            out[f"{lname}[{i}]_diff"] = b.diff.copy()
    return out


def _run_nets(nets: dict[str, Path], out: Path) -> None:
    """Worker (a fresh process): each net is built once, with seeded random weights, and run
    forward + backward under every setting in turn (the patch reads CAFFE_CONV_CHUNK_* at every
    Forward/Backward); writes the largest difference from the per-image pass of each array,
    relative to max(1, the array's largest magnitude), as JSON to out."""
    import caffe
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format
    caffe.set_mode_cpu()
    report = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in nets.items():
            param = caffe_pb2.NetParameter()
            text_format.Merge(path.read_text(), param)
            param.force_backward = True
            for layer in param.layer:
                if layer.type == "Input":
                    layer.input_param.shape[0].dim[0] = BATCH
                elif layer.type == "ReLU":      # smooth: see the module's docstring
                    layer.type = "TanH"
                elif layer.type == "Pooling" and layer.pooling_param.pool == 0:
                    layer.pooling_param.pool = 1    # MAX -> AVE
            proto = Path(tmp) / "net.prototxt"
            proto.write_text(text_format.MessageToString(param))
            net = caffe.Net(str(proto), caffe.TEST)
            rng = np.random.default_rng(int(hashlib.sha256(name.encode()).hexdigest()[:8], 16))
            names = list(net._layer_names)
            for lname, blobs in net.params.items():
                kind = net.layers[names.index(lname)].type
                for i, b in enumerate(blobs):
                    shape = b.data.shape
                    if kind == "BatchNorm":
                        v = [0.1 * rng.standard_normal(shape, np.float32),
                             1 + rng.random(shape, np.float32), np.ones(shape, np.float32)][i]
                    elif kind == "Scale":
                        v = (1.0 if i == 0 else 0.0) + 0.1 * rng.standard_normal(shape, np.float32)
                    elif b.data.ndim >= 2:      # variance 1 / fan-in keeps deep nets tame
                        v = rng.standard_normal(shape, np.float32) / np.sqrt(np.prod(shape[1:]))
                    else:
                        v = 0.1 * rng.standard_normal(shape, np.float32)
                    b.data[...] = v
            data, top = net.inputs[0], net.outputs[0]
            net.blobs[data].data[...] = rng.standard_normal(net.blobs[data].data.shape, np.float32)
            top_diff = rng.standard_normal(net.blobs[top].diff.shape, np.float32)
            ref = None
            for setting, env in SETTINGS.items():
                _set_env(env)
                got = _pass(net, data, top, top_diff)
                if ref is None:
                    ref = got
                    continue
                errs = {}
                for key, a in ref.items():
                    scale = max(1.0, float(np.abs(a).max(initial=0)))
                    errs[key] = float(np.abs(a.astype(np.float64) - got[key]).max(initial=0)) / scale
                report.setdefault(setting, {})[name] = errs
            _set_env({})
    out.write_text(json.dumps(report))


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    caffe = pytest.importorskip("caffe")
    nets = committed_nets()
    assert nets, "no deploy prototxt under prototxt/"
    out = tmp_path_factory.mktemp("batched-conv") / "report.json"
    e = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIXES)}
    e.update(GLOG_minloglevel="2")
    r = subprocess.run([sys.executable, __file__, str(out)] + [str(p) for p in nets.values()],
                       env=e, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    return caffe, nets, json.loads(out.read_text())


def test_build_has_the_patch(results):
    """Without the patch the settings change nothing and the comparison would prove nothing."""
    caffe = results[0]
    lib = Path(caffe.__file__).resolve().parents[2] / "build" / "lib"
    libs = sorted(lib.glob("libcaffe.so*"))
    assert libs, f"no libcaffe in {lib}"
    data = libs[0].read_bytes()
    assert b"CAFFE_CONV_CHUNK_MB" in data, \
        "this Caffe build lacks tools/caffe-patches/04-batched-conv.patch: run make caffe"
    assert b"CAFFE_CONV_ENGINE" in data, \
        "this Caffe build lacks tools/caffe-patches/05-dnnl-conv.patch: run make caffe"


@pytest.mark.parametrize("setting", [s for s in SETTINGS if s != "per-image"])
def test_chunked_agrees_with_per_image(results, setting):
    _, nets, report = results
    assert set(report[setting]) == set(nets)
    bad = [f"{net} {key}: {err:.3g}" for net, errs in report[setting].items()
           for key, err in errs.items() if not err <= TOL]
    assert not bad, f"{setting} differs from the per-image path (relative):\n" + "\n".join(bad[:20])


def test_every_committed_net_is_covered():
    names = " ".join(committed_nets())
    for arch in ("alexnet", "alexnet-lite", "fcrn", "resnet50", "resnet101", "resnet152"):
        assert re.search(rf"(^|[/_ -]){arch}([/_ .-]|$)", names), \
            f"{arch}: no deploy prototxt (one with an Input layer) under prototxt/"


if __name__ == "__main__":
    paths = [Path(p).resolve() for p in sys.argv[2:]]
    _run_nets({_name(p): p for p in paths}, Path(sys.argv[1]))
