#!/usr/bin/env python
"""`make bench-prepare`: patches/s and MB/s of `prepare` per dataset at the paper's settings."""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from pycount import bench  # noqa: E402

ap = argparse.ArgumentParser(description=__doc__)
ap.add_argument("--datasets", default="synthetic,bacterial,nuclei,ki67-synthetic")
ap.add_argument("--data-root", default=None)
ap.add_argument("--ki67-images", type=int, default=2,
                help="images of ki67-synthetic to time, one of them for validation "
                     "(all 45: ~50 GB of PNG patches)")
args = ap.parse_args()
rows = bench.bench_prepare(args.datasets.split(","), args.data_root,
                           max_images={"ki67-synthetic": args.ki67_images})
path = bench.write_results("prepare", rows)
print(path.read_text())
