#!/usr/bin/env python
"""`make protocol`: the density counters' N = 32 / 50 x 5 seeds protocol (pycount.protocol)."""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from pycount import config, protocol  # noqa: E402

ap = argparse.ArgumentParser(description=__doc__)
ap.add_argument("--dataset", default="bacterial")
ap.add_argument("--model", default="fcrn")
ap.add_argument("--data-root", default=None)
ap.add_argument("--ns", default="32,50", help="comma-separated N (default 32,50)")
ap.add_argument("--seeds", default="1,2,3,4,5", help="comma-separated seeds (default 1-5)")
ap.add_argument("--jobs", type=int, default=2, help="runs at a time (default 2)")
a = ap.parse_args()
try:
    config.dataset(a.dataset), config.model(a.model)
    protocol.run(a.dataset, a.model, [int(v) for v in a.ns.split(",")],
                 [int(v) for v in a.seeds.split(",")], a.data_root, a.jobs)
except (config.ConfigError, RuntimeError) as e:
    sys.exit(f"protocol: error: {e}")
