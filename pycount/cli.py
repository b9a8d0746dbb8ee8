"""Command line of pycount: `pycount prepare|train|eval|count ...` (or `python -m pycount`);
tools/*.py call it too.

Errors the user can fix (unknown names, missing data, no disk space, untrained model) print one
clear message and exit with status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys

from . import config


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="synthetic", help=f"one of {', '.join(config.DATASETS)}")
    p.add_argument("--data-root", default=None,
                   help="folder holding the dataset releases (e.g. ../shared/datasets)")
    p.add_argument("--patch", type=int, help="patch side in px (default: the paper's)")
    p.add_argument("--stride", type=int, help="sliding-window stride in px")
    p.add_argument("--rot", type=int, help="rotation step in degrees (0: none)")
    p.add_argument("--size", type=int, help="resize patches to this side for the nets (224/227)")
    p.add_argument("--train-n", type=int, default=None,
                   help="train on N images drawn from the training images (the literature's "
                   "protocol: 32 or 50); default: all")
    p.add_argument("--seed", type=int, default=None, help="the draw of --train-n images")
    p.add_argument("--sigma", type=float, default=None,
                   help="density models: Gaussian width of the targets in px (default: the "
                   "dataset's)")


def _model(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="alexnet-lite", help=f"one of {', '.join(config.MODELS)}")
    p.add_argument("--head", default="R", choices=["R", "C"], help="R: regression, C: classes")
    p.add_argument("--gpu", type=int, default=-1, help="GPU id, -1 for the CPU")


SHARED_HELP = ("run the convolutional layers once over each image instead of once per window "
               "(much faster); an image whose 16 sample windows then move by more than 1%% is "
               "counted per window instead, with a warning (see README, Speed)")
TTA_HELP = ("density models: 8 averages the density over every flip and quarter turn of the "
            "image (8x the time), 1 counts the image as it is (default: the model's setting, 8 "
            "for fcrn)")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="pycount", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="write the training and validation LMDBs")
    _common(p)
    p.add_argument("--force", action="store_true", help="rewrite even if up to date")
    p.add_argument("--model", default=None,
                   help="a density model (fcrn) needs its own crop and target LMDBs; other "
                   "models share the patch LMDBs")
    p = sub.add_parser("train", help="train a model with a pycaffe solver")
    _common(p)
    _model(p)
    p.add_argument("--iters", type=int, default=None, help="override the solver's max_iter")
    p.add_argument("--restart", action="store_true", help="ignore snapshots, start from scratch")
    p.add_argument("--finetune", choices=["head", "all"], default=None,
                   help="pretrained nets: train only the new head (the paper's) or all layers")
    p.add_argument("--scratch", action="store_true",
                   help="pretrained nets: start from random weights instead (no weights needed)")
    p = sub.add_parser("eval", help="count the test images and write metrics")
    _common(p)
    _model(p)
    p.add_argument("--backend", choices=["cv2", "caffe"], default=None,
                   help="inference engine (default: cv2 on the CPU, caffe on a GPU)")
    p.add_argument("--shared", action="store_true", help=SHARED_HELP)
    p.add_argument("--tta", type=int, choices=[1, 8], default=None, help=TTA_HELP)
    p = sub.add_parser("count", help="count the cells of any images with a trained run",
                       description="Count the cells of images (PNG/JPEG/TIFF, 8/16-bit, grey, "
                       "RGBA) with a trained run folder; writes OUT/counts.csv and "
                       "OUT/<stem>_heatmap.png. Exit status 1 if any file failed.")
    p.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR",
                   help="image files, or folders whose images (by suffix) are counted")
    p.add_argument("--run", required=True, metavar="RUN_DIR",
                   help="a run folder of `make train` (e.g. runs/synthetic/alexnet-lite)")
    from .backends import BACKENDS, DEFAULT_BACKEND
    p.add_argument("--backend", default=DEFAULT_BACKEND, choices=list(BACKENDS),
                   help=f"cv2: OpenCV DNN, caffe: pycaffe (default: {DEFAULT_BACKEND}, the "
                   f"faster on CPU)")
    p.add_argument("--out", default="pycount-counts", metavar="DIR",
                   help="output folder (default: ./pycount-counts)")
    p.add_argument("--gpu", type=int, default=-1, help="GPU id (caffe backend), -1 for the CPU")
    p.add_argument("--recursive", action="store_true", help="also count images in subfolders")
    p.add_argument("--shared", action="store_true", help=SHARED_HELP)
    p.add_argument("--expected", action="store_true",
                   help="C-head runs: count by the expected class, not the most probable")
    p.add_argument("--tta", type=int, choices=[1, 8], default=None, help=TTA_HELP)
    return ap


def run(args: argparse.Namespace) -> int:
    if args.command == "count":
        from .count import count
        return count(args.inputs, args.run, backend=args.backend, out=args.out, gpu=args.gpu,
                     recursive=args.recursive, expected=args.expected, shared=args.shared,
                     tta=args.tta)
    ds = config.with_overrides(config.dataset(args.dataset), args.patch, args.stride, args.rot,
                               args.size, args.train_n, args.seed, args.sigma)
    if args.command == "prepare":
        from .prepare import prepare
        prepare(ds, args.data_root, force=args.force,
                model=config.model(args.model, ds) if args.model else None)
        return 0
    model = config.model(args.model, ds)
    if args.command == "train":
        from .train import Trainer
        if args.scratch:
            model = dataclasses.replace(model, finetune="scratch")
        elif args.finetune and model.family != "alexnet":
            model = dataclasses.replace(model, finetune=args.finetune)
        summary = Trainer(ds, model, head=args.head, gpu=args.gpu, max_iter=args.iters).train(
            resume=not args.restart)
        kept = (f"the mean weights of the last {summary['averaged_iterations']} iterations"
                if summary["averaged_iterations"] and model.keep == "last"
                else "the last weights" if model.keep == "last"
                else f"the weights of iteration {summary['best_iter']}")
        print(f"trained {summary['iterations']} iterations; best validation patch MAE "
              f"{summary['best_val_patch_mae']:.3f} at iteration {summary['best_iter']}; "
              f"kept {kept}: {config.run_dir(ds, model, args.head) / 'model.caffemodel'}")
        return 0
    if args.command == "eval":
        from .evaluate import evaluate
        from .report import metrics_table
        m = evaluate(ds, model, head=args.head, data_root=args.data_root, gpu=args.gpu,
                     backend=args.backend, shared=args.shared, tta=args.tta)
        print(f"\n{ds.name}: {m['n_images']} test images, {model.name}({args.head})\n")
        print(metrics_table(m))
        print(f"\nwritten: {config.run_dir(ds, model, args.head)}/{{metrics.json,metrics.md,"
              f"predictions.csv,heatmaps/}}")
        return 0
    return 2


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    from .datasets import DatasetError
    from .lmdbio import LmdbError
    from .train import Diverged, TrainError
    try:
        return run(args)
    except Diverged as e:
        print(f"pycount: error: {e}", file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(2)                  # see Diverged: Caffe's heap may be corrupt by now
    except (config.ConfigError, DatasetError, LmdbError, TrainError) as e:
        print(f"pycount: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pycount: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
