#!/usr/bin/env python3
"""Markdown tables from bench/caffe_speed.py's JSON: per net and configuration the best
wall-clock images/s over the rounds, their mean, the best images per CPU-second, with the load
average seen, and the ratios (best and mean) against PyTorch at the same thread count.

  python bench/caffe_speed_report.py RUN.json [RUN2.json ...] > bench/results/X.md
"""
import json
import sys
from collections import defaultdict


def main() -> None:
    rows = []
    for f in sys.argv[1:]:
        rows += json.load(open(f))["rows"]
    best = defaultdict(dict)
    for r in rows:
        b = best[(r["net"], r["config"])]
        b["n"] = b.get("n", 0) + 1
        b["sum"] = b.get("sum", 0) + r["img_s"]
        if r["img_s"] > b.get("img_s", 0):
            b.update(img_s=r["img_s"], load=r["load"], batch=r["batch"], input=r["input"])
        b["img_per_cpu_s"] = max(b.get("img_per_cpu_s", 0), r["img_per_cpu_s"])
    nets = sorted({n for n, _ in best}, key=lambda n: [r["net"] for r in rows].index(n))
    configs = sorted({c for _, c in best}, key=lambda c: [r["config"] for r in rows].index(c))
    print("| net (batch, input) | configuration | runs | best img/s (wall) | load then "
          "| mean img/s | best img per CPU-s | wall ratio vs torch (same threads): best, mean |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for n in nets:
        for c in configs:
            if (n, c) not in best:
                continue
            b = best[(n, c)]
            threads = "1 thr" if ("1 thr" in c or "serial" in c) else "2 thr"
            # the PyTorch row of the same threads and OpenMP wait policy
            suffix = f"({threads}, passive)" if "passive" in c else f"({threads})"
            t = best.get((n, f"torch {suffix}"))
            mean = b["sum"] / b["n"]
            ratio = (f"{b['img_s'] / t['img_s']:.2f}, {mean / (t['sum'] / t['n']):.2f}"
                     if t and not c.startswith("torch") else "")
            print(f"| {n.split('/')[-1]} ({b['batch']}, {b['input']}) | {c} | {b['n']} | "
                  f"{b['img_s']} | {b['load']} | {mean:.1f} | {b['img_per_cpu_s']} | {ratio} |")


if __name__ == "__main__":
    main()
