#!/usr/bin/env python
"""`make data`: download, verify and unpack a public dataset under DATA_ROOT (pycount.download)."""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from pycount import config, download  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dataset", required=True, choices=sorted(download.SOURCES))
    ap.add_argument("--data-root", default=None,
                    help="folder that will hold the dataset folder (default: pycount's data dir)")
    ap.add_argument("--url", help="download from here instead of the official release")
    ap.add_argument("--archive", help="an already-downloaded release archive (zip or tar)")
    ap.add_argument("--verify-only", action="store_true",
                    help="only check DATA_ROOT/<folder> against the manifest")
    args = ap.parse_args(argv)
    root = args.data_root or config.data_dir()
    try:
        if args.verify_only:
            folder = os.path.join(root, download.SOURCES[args.dataset].folder)
            problems = download.verify(args.dataset, folder)
            if problems:
                print(f"{folder} does not verify ({len(problems)} problems):", file=sys.stderr)
                print("\n".join(f"  {p}" for p in problems), file=sys.stderr)
                return 1
            print(f"{folder}: all {len(download.manifest(args.dataset))} files verify")
            return 0
        print(download.fetch(args.dataset, root, url=args.url, archive=args.archive))
        return 0
    except download.DownloadError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
