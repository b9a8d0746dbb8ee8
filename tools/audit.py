#!/usr/bin/env python
"""`make audit`: our runs against the paper's Tables 2-4, written under runs/audit/."""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from pycount import audit, config  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--runs", help="runs folder (default: PYCOUNT_RUNS or runs/)")
    p.add_argument("--out", help="report folder (default: <runs>/audit)")
    args = p.parse_args(argv)
    report = audit.build(args.runs or config.runs_dir())
    paths = audit.write(report, args.out)
    print(audit.summary(report))
    print(f"\nreport: {paths['md']}\n        {paths['html']} (opens in a browser)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
