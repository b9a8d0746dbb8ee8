#!/usr/bin/env python
"""`make bench-eval`: seconds to count one 256x256, 500x500 and 1920x2560 image at the paper's
settings, per model and engine, per window and with shared convolutions (count difference too)."""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from pycount import bench  # noqa: E402

ap = argparse.ArgumentParser(description=__doc__)
ap.add_argument("--models", default=",".join(bench.EVAL_MODELS), help="comma-separated")
ap.add_argument("--engines", default="cv2,caffe", help="comma-separated: cv2, caffe")
ap.add_argument("--max-windows", type=int, default=128,
                help="time the per-window pass on at most this many windows, extrapolate")
ap.add_argument("--data-root", default=None)
args = ap.parse_args()
os.environ.setdefault("GLOG_minloglevel", "2")
rows = bench.bench_eval(args.models.split(","), args.engines.split(","),
                        max_windows=args.max_windows, data_root=args.data_root,
                        on_row=lambda rows: bench.write_results("eval", rows))
path = bench.write_results("eval", rows)
print(path.read_text())
