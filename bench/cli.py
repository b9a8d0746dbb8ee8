"""`pycount bench ...` (make bench | bench-prepare | bench-train | bench-eval): measurements of
every stage, written to bench/results/. Measurement code, kept out of the product package."""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path

from bench import stages
from bench.peers import STAGES as PEER_STAGES


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="pycount bench", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what")
    p = sub.add_parser("all", help="every stage beside PyTorch and cv2.dnn, and against the "
                       "machine's GEMM peak (bench/results/<date>-<host>.{json,md})")
    p.add_argument("--data-root", default=None)
    p.add_argument("--stages", default=",".join(PEER_STAGES),
                   help="comma-separated subset of " + ", ".join(PEER_STAGES))
    p.add_argument("--max-windows", type=int, default=48,
                   help="count stage: time a per-window net on at most this many windows of an "
                        "image, extrapolate")
    p.add_argument("--max-crops", type=int, default=450,
                   help="count stage: time fcrn on a band of the image of at most this many "
                        "crops (all 8 transforms), extrapolate")
    p.add_argument("--rounds", type=int, default=2,
                   help="count stage: each engine's best of this many runs, taking turns")
    p = sub.add_parser("prepare", help="patches/s and MB/s of prepare per dataset")
    p.add_argument("--datasets", default="synthetic,bacterial,nuclei,ki67-synthetic")
    p.add_argument("--data-root", default=None)
    p.add_argument("--ki67-images", type=int, default=2,
                   help="images of ki67-synthetic to time, one of them for validation "
                        "(all 45: ~50 GB of PNG patches)")
    p = sub.add_parser("train", help="training images/s per model, the feature cache's gain")
    p.add_argument("--iters", type=int, default=4, help="timed solver iterations per case")
    p = sub.add_parser("eval", help="seconds to count one image per model and engine, per "
                       "window and with shared convolutions")
    p.add_argument("--models", default=",".join(stages.EVAL_MODELS), help="comma-separated")
    p.add_argument("--engines", default="cv2,caffe", help="comma-separated: cv2, caffe")
    p.add_argument("--max-windows", type=int, default=128,
                   help="time the per-window pass on at most this many windows, extrapolate")
    p.add_argument("--data-root", default=None)
    p = sub.add_parser("classic", help="time and peak memory of the classic methods' fits on "
                       "large images (bench/classic_fit.py)")
    p.add_argument("--models", default="lecount,ledetect", help="comma-separated")
    p.add_argument("--side", type=int, default=2048, help="image side, px")
    p.add_argument("--images", type=int, default=4, help="training images")
    p = sub.add_parser("load", help="two trainings and a count at once; count over 1,000 images "
                       "with a corrupt one")
    p.add_argument("--iters", type=int, default=300)
    p.add_argument("--images", type=int, default=1000)
    return ap


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    os.environ.setdefault("GLOG_minloglevel", "2")
    what = args.what or "all"
    if what == "all":
        if importlib.util.find_spec("torch") is None:
            sys.exit("pycount bench: PyTorch (the peer) is missing; `make bench` installs it "
                     "from bench-requirements.txt")
        from bench import peers
        stages_ = tuple(getattr(args, "stages", ",".join(PEER_STAGES)).split(","))
        unknown = sorted(set(stages_) - set(PEER_STAGES))
        if unknown:
            sys.exit(f"pycount bench all: unknown stage(s) {', '.join(unknown)}; valid: "
                     f"{', '.join(PEER_STAGES)}")
        path = peers.run_all(getattr(args, "data_root", None), stages_,
                             count_options={k: getattr(args, k) for k in
                                            ("max_windows", "max_crops", "rounds")
                                            if hasattr(args, k)})
    elif what == "prepare":
        rows = stages.bench_prepare(args.datasets.split(","), args.data_root,
                                    max_images={"ki67-synthetic": args.ki67_images})
        path = stages.write_results("prepare", rows)
    elif what == "load":
        from bench import load
        path = stages.write_results("load", load.run(iters=args.iters, n_images=args.images))
    elif what == "classic":
        from bench import classic_fit
        path = stages.write_results("classic-fit", classic_fit.run(
            args.models.split(","), side=args.side, images=args.images))
    elif what == "train":
        path = stages.write_results("train", stages.bench_train(iters=args.iters))
    else:
        saved: list[Path] = []                  # one file, rewritten after every row

        def save(rows):
            saved[:] = [stages.write_results("eval", rows, into=saved[0] if saved else None)]
        rows = stages.bench_eval(args.models.split(","), args.engines.split(","),
                                 max_windows=args.max_windows, data_root=args.data_root,
                                 on_row=save)
        save(rows)
        path = saved[0]
    print(path.read_text())
    return 0
