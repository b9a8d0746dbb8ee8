"""Multiply-adds of a deploy net's convolutions and deconvolutions at an input size (issue #22's
compute bounds): what one forward costs, independent of the engine that runs it.

    .venv/bin/python -m bench.net_flops prototxt/bacterial/fcrn/deploy.prototxt 256 [64 ...]
"""
from __future__ import annotations

import argparse
import os

os.environ.setdefault("GLOG_minloglevel", "2")


def conv_macs(deploy: str, side: int) -> int:
    """Sum over Convolution and Deconvolution layers of the multiply-adds of one forward of a
    1 x 3 x side x side input (bias additions and the element-wise layers are not counted)."""
    import caffe                      # the venv's pycaffe (make setup)
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format
    net = caffe.Net(deploy, caffe.TEST)
    net.blobs[net.inputs[0]].reshape(1, 3, side, side)
    net.reshape()
    spec = caffe_pb2.NetParameter()
    text_format.Merge(open(deploy).read(), spec)
    total = 0
    for layer in spec.layer:
        if layer.type not in ("Convolution", "Deconvolution"):
            continue
        cp = layer.convolution_param
        kh = cp.kernel_h or cp.kernel_size[0]
        kw = cp.kernel_w or cp.kernel_size[-1]
        top = net.blobs[layer.top[0]].data.shape
        bottom = net.blobs[layer.bottom[0]].data.shape
        group = cp.group or 1
        if layer.type == "Convolution":   # each output value: (C_in / group) x kh x kw products
            total += top[1] * top[2] * top[3] * (bottom[1] // group) * kh * kw
        else:                             # each input value scattered to (C_out / group) x kh x kw
            total += bottom[1] * bottom[2] * bottom[3] * (top[1] // group) * kh * kw
    return total


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("deploy")
    ap.add_argument("sides", nargs="+", type=int)
    args = ap.parse_args(argv)
    for side in args.sides:
        macs = conv_macs(args.deploy, side)
        print(f"{args.deploy} at {side}x{side}: {macs / 1e9:.3f} GMAC = {2 * macs / 1e9:.3f} GFLOP, "
              f"{macs / side / side:.0f} multiply-adds per pixel")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
