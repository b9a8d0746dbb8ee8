#!/usr/bin/env python
"""`make bench-train`: training images/s per model and patch size, and the feature cache's gain."""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from pycount import bench  # noqa: E402

ap = argparse.ArgumentParser(description=__doc__)
ap.add_argument("--iters", type=int, default=4, help="timed solver iterations per case")
args = ap.parse_args()
path = bench.write_results("train", bench.bench_train(iters=args.iters))
print(path.read_text())
