#!/usr/bin/env python
"""`make bench`: every stage beside PyTorch and cv2.dnn, and against the machine's GEMM peak;
writes bench/results/<date>-<host>.{json,md}."""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
os.environ.setdefault("GLOG_minloglevel", "2")
from pycount import bench_peers  # noqa: E402

STAGES = ("gemm", "prepare", "forward", "train", "count", "memory")
ap = argparse.ArgumentParser(description=__doc__)
ap.add_argument("--data-root", default=None)
ap.add_argument("--stages", default=",".join(STAGES), help="comma-separated subset of "
                + ", ".join(STAGES))
args = ap.parse_args()
try:
    import torch  # noqa: F401
except ImportError:
    sys.exit("make bench: PyTorch (the peer) is missing; `make bench` installs it from "
             "bench-requirements.txt")
path = bench_peers.run_all(args.data_root, tuple(args.stages.split(",")))
print(path.read_text())
