"""Command line of pycount: `pycount data|prepare|train|eval|count|protocol|audit|prototxt|bench`
(or `python -m pycount ...`); the Makefile's targets are thin calls of it.

Errors the user can fix (unknown names, missing data, no disk space, untrained model, missing
weights) are PycountErrors: `main` prints one clear message and exits with status 2, never a
traceback.
"""
from __future__ import annotations

import argparse
import dataclasses
import errno
import os
import sys
from pathlib import Path

from pycount import config
from pycount.errors import Diverged, PycountError, make_arg
from pycount.util.atomic import NO_ROOM


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default=config.DEFAULT_DATASET,
                   help=f"one of {', '.join(config.DATASETS)}, or a folder of your own "
                   "annotated images (a path with a /; see docs/own-data.md)")
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
    p.add_argument("--resplit", type=int, default=None,
                   help="draw the train/test images again with this seed (same sizes; 0: the "
                   "recorded split): the split-to-split spread")
    p.add_argument("--crop", type=int, default=None,
                   help="density models: training crop side in px, a multiple of 8 (default: the "
                   "dataset's, or inferred for a folder)")
    p.add_argument("--crop-stride", type=int, default=None,
                   help="density models: the training crops' stride in px")
    p.add_argument("--hed-jitter", type=float, default=None,
                   help="density models: stain (HED) augmentation strength of the training "
                   "crops, e.g. 0.05 (default: the dataset's)")
    p.add_argument("--zoom", type=float, default=None,
                   help="density models: scale augmentation, crops also cut from each training "
                   "image at 1/(1+z) and 1+z times its size, e.g. 0.25 (default: none)")
    p.add_argument("--scale", type=float, default=None,
                   help="read every image resized by this factor, in preparing, evaluating and "
                   "counting alike (0.5: half the side; default: 1, the images as they are)")
    p.add_argument("--marker", default=None,
                   help="an own folder's Cell Counter marker type (number or name) or QuPath "
                   "class to count (all: every one); default: its pycount.toml's, or all")
    p.add_argument("--stain-norm", default=None, choices=list(config.STAIN_METHODS) + ["none"],
                   help="stain normalisation of every image before it is cut or counted "
                   "(macenko: the training images' H&E stain colours and amounts; reinhard: their "
                   "average L*a*b* colour statistics)")


def _model(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=config.DEFAULT_MODEL,
                   help=f"one of {', '.join(config.MODELS)}")
    p.add_argument("--head", default=config.DEFAULT_HEAD, choices=list(config.HEADS),
                   help="R: regression, C: classes")
    p.add_argument("--gpu", type=_gpu, default=-1, help="GPU id, -1 for the CPU")


SHARED_HELP = ("run the convolutional layers once over each image instead of once per window "
               "(much faster); an image whose 16 sample windows then move by more than 1%% is "
               "counted per window instead, with a warning (see README, Speed)")
TTA_HELP = ("density models: 8 averages the density over every flip and quarter turn of the "
            "image (8x the time), 4 over four of them (config.TTA_TRANSFORMS), 1 counts the "
            "image as it is (default: the model's setting)")


class _Parser(argparse.ArgumentParser):
    """A usage error is one line naming the option and the fix, then where the options are
    listed (argparse's usage block first buried it under every option of the command); its
    subcommands' parsers are of this class too."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}; `{self.prog} --help` lists the "
                     f"options\n")


def parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="pycount", description=__doc__.splitlines()[0])
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
    p.add_argument("--iters", type=_iterations, default=None,
                   help="override the solver's max_iter")
    p.add_argument("--restart", action="store_true", help="ignore snapshots, start from scratch")
    p.add_argument("--finetune", choices=["head", "all"], default=None,
                   help="pretrained nets: train only the new head (the paper's) or all layers")
    p.add_argument("--scratch", action="store_true",
                   help="pretrained nets: start from random weights instead (no weights needed)")
    p = sub.add_parser("eval", help="count the test images and write metrics")
    _common(p)
    _model(p)
    from pycount.inference.engines import CHOICES
    p.add_argument("--backend", choices=list(CHOICES), default=None,
                   help="inference engine (default auto: the model's faster one on the CPU, "
                   "caffe on a GPU)")
    p.add_argument("--shared", action="store_true", help=SHARED_HELP)
    p.add_argument("--tta", type=int, choices=sorted(config.TTA_TRANSFORMS), default=None,
                   help=TTA_HELP)
    p.add_argument("--test-images", type=_at_least_one, default=None, metavar="K",
                   help="count only the first K test images (a quick look; the audit takes it "
                   "for no result)")
    p = sub.add_parser("count", help="count the cells of any images with a trained run",
                       description="Count the cells of images (PNG/JPEG/TIFF/BMP, 8/16-bit, grey, "
                       "RGBA) with a trained run folder; writes OUT/counts.csv and "
                       "OUT/<stem>_heatmap.png. Exit status 1 if any file failed.")
    p.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR",
                   help="image files, or folders whose images (by suffix) are counted")
    p.add_argument("--run", default=None, metavar="RUN_DIR",
                   help="a run folder of `make train` (default: the demo's, "
                   "runs/synthetic/alexnet-lite)")
    from pycount.inference.engines import CHOICES, DEFAULT_BACKEND
    p.add_argument("--backend", default=DEFAULT_BACKEND, choices=list(CHOICES),
                   help=f"cv2: OpenCV DNN, caffe: pycaffe (default: {DEFAULT_BACKEND}, the "
                   f"model's faster engine on the CPU, caffe on a GPU)")
    p.add_argument("--out", default=config.DEFAULT_COUNT_OUT, metavar="DIR",
                   help=f"output folder (default: ./{config.DEFAULT_COUNT_OUT})")
    p.add_argument("--gpu", type=_gpu, default=-1, help="GPU id (caffe backend), -1 for the CPU")
    p.add_argument("--recursive", action="store_true", help="also count images in subfolders")
    p.add_argument("--shared", action="store_true", help=SHARED_HELP)
    p.add_argument("--expected", action="store_true",
                   help="C-head runs: count by the expected class, not the most probable")
    p.add_argument("--tta", type=int, choices=sorted(config.TTA_TRANSFORMS), default=None,
                   help=TTA_HELP)
    _more_commands(sub)
    return ap


def _at_least(text: str, fix: str) -> int:
    """A whole number of at least 1 from the command line; else argparse's error with `fix`."""
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not valid: {fix}")
    return n


def _gpu(text: str) -> int:
    """--gpu: a device number (0, 1, ...) or -1 for the CPU (-2 was taken for the CPU too)."""
    try:
        n = int(text)
    except ValueError:
        n = -2
    if n < -1:
        raise argparse.ArgumentTypeError(f"{text!r} is not valid: give a GPU's number (0, 1, "
                                         f"...) or -1 for the CPU")
    return n


def _iterations(text: str) -> int:
    """--iters: a whole number of iterations, at least 1 (Caffe aborts on fewer)."""
    return _at_least(text, "train at least 1 iteration (leave ITERS= out for the model's "
                           "schedule)")


def _names(text: str) -> list[str]:
    """A comma-separated list of names; empty ones (a trailing comma) are dropped."""
    return [v.strip() for v in text.split(",") if v.strip()]


def _at_least_one(text: str) -> int:
    """--test-images: a whole number, at least 1."""
    return _at_least(text, "give a whole number of at least 1 (leave it out to count every "
                           "test image)")


def _ints(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not valid: give whole numbers separated "
                                         f"by commas, e.g. 32,50") from None


def _more_commands(sub) -> None:
    """The commands around the three stages: data, protocol, audit, prototxt, bench."""
    from pycount.data.download import SOURCES
    p = sub.add_parser("data", help="download, verify and unpack a public dataset release")
    p.add_argument("--dataset", required=True, choices=sorted(SOURCES))
    p.add_argument("--data-root", default=None,
                   help="folder that will hold the dataset folder (default: pycount's data dir)")
    p.add_argument("--url", help="download from here instead of the official release")
    p.add_argument("--archive", help="an already-downloaded release archive (zip or tar)")
    p.add_argument("--verify-only", action="store_true",
                   help="only check DATA_ROOT/<folder> against the manifest")
    p = sub.add_parser("protocol", help="the density counters' protocol: N training images x "
                       "seeds, each prepared, trained and evaluated")
    p.add_argument("--dataset", default=config.PROTOCOL_DATASET,
                   help="default %(default)s (the set the protocol's published figures are for)")
    p.add_argument("--model", default=config.PROTOCOL_MODEL, help="default %(default)s")
    p.add_argument("--data-root", default=None)
    p.add_argument("--ns", type=_ints, default=list(config.PROTOCOL_NS),
                   help="comma-separated N (default %(default)s)")
    p.add_argument("--seeds", type=_ints, default=list(config.PROTOCOL_SEEDS),
                   help="comma-separated seeds (default %(default)s)")
    p.add_argument("--jobs", type=int, default=config.PROTOCOL_JOBS,
                   help="runs at a time (default %(default)s)")
    p = sub.add_parser("audit", help="the paper's Tables 2-4 beside every run present "
                       "(runs/audit/)")
    p.add_argument("--runs", help="runs folder (default: PYCOUNT_RUNS or runs/)")
    p.add_argument("--out", help="report folder (default: <runs>/audit)")
    p.add_argument("--data-root", help="where a missing cell's dataset is looked for "
                   "(default: data/)")
    sub.add_parser("prototxt", help="rewrite the committed prototxt/ tree from the NetSpec "
                   "builders")
    p = sub.add_parser("replicate", help="prepare, train and evaluate every paper cell pycount "
                       "models (a GPU machine with the ImageNet weights: make audit-gpu), then "
                       "the audit")
    p.add_argument("--gpu", type=_gpu, default=0, help="GPU id, -1 for the CPU (a dry run)")
    p.add_argument("--iters", type=_iterations, default=None,
                   help="train every cell this many iterations (a dry run of the path)")
    p.add_argument("--test-images", type=_at_least_one, default=None, metavar="K",
                   help="with --iters: evaluate every cell on its first K test images only")
    p.add_argument("--datasets", type=_names, default=None,
                   help="comma-separated subset of the paper's datasets")
    p.add_argument("--models", type=_names, default=None,
                   help="comma-separated subset of the models")
    p.add_argument("--data-root", default=None)
    p = sub.add_parser("bench", help="measurements of every stage (bench/, in the source "
                       "checkout) -> bench/results/", add_help=False)
    p.add_argument("bench_args", nargs=argparse.REMAINDER)


def _data(args) -> int:
    from pycount.data import download
    root = args.data_root or config.data_dir()
    from pycount.util.atomic import file_in_the_way
    above = file_in_the_way(root)
    if above is not None:
        raise config.ConfigError(f"DATA_ROOT={root}: {above} is a file, not a folder; set "
                                 f"DATA_ROOT to the folder that holds (or is to hold) the "
                                 f"releases")
    if args.verify_only:
        folder = download.release_folder(root, download.SOURCES[args.dataset].folder)
        problems = download.verify(args.dataset, folder)
        if problems:
            print(f"{folder} does not verify ({download._problems(len(problems))}):",
                  file=sys.stderr)
            print("\n".join(f"  {p}" for p in problems), file=sys.stderr)
            print(f"Replace the files named from the release, or move the folder aside and run "
                  f"`make data DATASET={args.dataset} {make_arg('DATA_ROOT', folder.parent)}` "
                  f"to fetch it again", file=sys.stderr)
            return 1
        print(f"{folder}: all {len(download.manifest(args.dataset))} files verify")
        return 0
    from pycount.util.interrupt import sigterm_as_interrupt
    with sigterm_as_interrupt():    # kill PID as Ctrl-C: fetch removes its temporaries
        print(download.fetch(args.dataset, root, url=args.url, archive=args.archive))
    return 0


def _audit(args) -> int:
    from pycount.reporting import audit
    # the project's own runs also refresh docs/audit.md, the page committed with its results,
    # and the record of every audited run (config.AUDIT_RECORD) that keeps them beyond runs/
    own = not (args.runs or args.out or os.environ.get("PYCOUNT_RUNS"))
    report = audit.build(args.runs or config.runs_dir(),
                         record_path=config.AUDIT_RECORD if own else None,
                         data_root=args.data_root,
                         tried_path=config.AUDIT_TRIED if own else None)
    docs = config.ROOT / "docs" if own else None
    if own and not all(os.access(p, os.W_OK) for p in (docs, config.AUDIT_RECORD.parent)):
        # e.g. the replication image, whose tree is read-only for the user it runs as
        print(f"note: {docs} is not writable here, so docs/audit.md and its record stay as they "
              f"are; the report below is written to the runs folder only", file=sys.stderr)
        docs = None
    if docs is not None:
        audit.record(report, config.AUDIT_RECORD)
    paths = audit.write(report, args.out, docs_dir=docs)
    print(audit.summary(report))
    print(f"\nreport: {paths['md']}\n        {paths['html']} (opens in a browser)"
          + (f"\n        {paths['docs']} (commit it with the runs' results)" if docs else ""))
    return 0


def _bench(args) -> int:
    try:
        from bench import cli as bench_cli
    except ModuleNotFoundError:
        raise config.ConfigError("pycount bench runs the measurement code in bench/ of the "
                                 "source checkout: run it from there (make bench)") from None
    return bench_cli.main(args.bench_args)


def run(args: argparse.Namespace) -> int:
    if args.command == "data":
        return _data(args)
    if args.command == "audit":
        return _audit(args)
    if args.command == "bench":
        return _bench(args)
    if args.command == "replicate":
        from pycount.reporting import replicate
        rows = replicate.run(args.gpu, args.iters,
                             replicate.DATASETS if args.datasets is None else args.datasets,
                             args.models, args.data_root, test_images=args.test_images)
        done = sum(r["status"].startswith(("ok", "done")) for r in rows)
        short = (f" (ITERS={args.iters}: a dry run, whose short trainings the audit marks as "
                 f"short, not as results)" if args.iters else "")
        print(f"\n{done} of {len(rows)} paper cells trained and evaluated{short}; the audit "
              f"follows")
        return _audit(argparse.Namespace(runs=None, out=None, data_root=args.data_root))
    if args.command == "prototxt":
        from pycount.nets import builders
        for path in builders.write_committed():
            print(path.relative_to(config.ROOT))
        return 0
    if args.command == "protocol":
        from pycount.training import protocol
        config.dataset(args.dataset), config.model(args.model)
        protocol.run(args.dataset, args.model, args.ns, args.seeds, args.data_root, args.jobs)
        return 0
    if args.command == "count":
        from pycount.inference.count import count
        run_dir = args.run or config.run_dir(config.dataset(config.DEFAULT_DATASET),
                                             config.model(config.DEFAULT_MODEL))
        return count(args.inputs, run_dir, backend=args.backend, out=args.out, gpu=args.gpu,
                     recursive=args.recursive, expected=args.expected, shared=args.shared,
                     tta=args.tta)
    if args.command in ("prepare", "train", "eval"):
        # options the model would ignore, once and before the values themselves are checked
        # against the dataset (a patch model's crop settings refused as such); it needs only
        # the model's kind, not its per-dataset solver
        _check_applies(args, config.model(args.model) if args.model else None)
    ds = dataset_of(args)
    if args.command == "prepare":
        from pycount.data import prepare
        model = config.model(args.model, ds) if args.model else None
        _check_stain(ds, model)
        if model is not None and model.classic:
            prepare.load_split(ds, args.data_root, keep=())  # every image read and checked
            print(f"{model.name} reads the images themselves: no LMDB to prepare")
            return 0
        from pycount.util.interrupt import sigterm_as_interrupt
        with sigterm_as_interrupt():    # `kill PID` as Ctrl-C: the half-written LMDB goes at once
            prepare.prepare(ds, args.data_root, force=args.force, model=model)
        return 0
    model = config.model(args.model, ds)
    _check_stain(ds, model)
    _check_classic(args, model)
    if args.command == "train" and ds.own and args.iters is None:
        from pycount.data import owndata
        args.iters = owndata.iterations(ds, model)
    if args.command == "train" and model.classic:
        from pycount.training.classic import train_classic
        summary = train_classic(ds, model, args.data_root)
        print(f"fitted {model.name} on {len(summary['train_images'])} images in "
              f"{summary['seconds']:.0f} s: {config.run_dir(ds, model) / 'model.npz'}")
        return 0
    if args.command == "train":
        from pycount.training.trainer import Trainer
        if args.scratch:
            model = dataclasses.replace(model, finetune="scratch")
        elif args.finetune and model.family != "alexnet":
            model = dataclasses.replace(model, finetune=args.finetune)
        summary = Trainer(ds, model, head=args.head, gpu=args.gpu, max_iter=args.iters,
                          data_root=args.data_root).train(
            resume=not args.restart)
        kept = (f"the mean weights of the last {summary['averaged_iterations']} iterations"
                if summary["averaged_iterations"] and model.keep == "last"
                else "the last weights" if model.keep == "last"
                else f"the weights of iteration {summary['best_iter']}")
        best = summary["best_val_patch_mae"]
        print(f"trained {summary['iterations']} iterations; best validation patch MAE "
              + (f"{best:.3f} at iteration {summary['best_iter']}" if best is not None
                 else "not measured")
              + f"; kept {kept}: {config.run_dir(ds, model, args.head) / 'model.caffemodel'}")
        return 0
    if args.command == "eval":
        from pycount.evaluation.evaluate import evaluate
        from pycount.evaluation.figures import images, metrics_table
        from pycount.util.interrupt import sigterm_as_interrupt
        with sigterm_as_interrupt():    # `kill PID` as Ctrl-C: "interrupted", no metrics written
            m = evaluate(ds, model, head=args.head, data_root=args.data_root, gpu=args.gpu,
                         backend=args.backend, shared=args.shared, tta=args.tta,
                         test_images=args.test_images)
        print(f"\n{ds.name}: {images(m)}, {model.name}({args.head})\n")
        print(metrics_table(m))
        print(f"\nwritten: {config.run_dir(ds, model, args.head)}/{{metrics.json,metrics.md,"
              f"predictions.csv,heatmaps/}}")
        return 0
    return 2


def _check_stain(ds: config.DatasetConfig, model: config.ModelConfig | None) -> None:
    if ds.stain_norm and model is not None and model.classic:
        raise config.ConfigError(f"STAIN={ds.stain_norm} is for the nets; {model.name} reads the "
                                 f"images as they are (drop STAIN=)")


# The density models' crop options (Make variable, argument): a patch model or a classic method
# would only file the same data under another tag with them
_DENSITY_OPTIONS = (("SIGMA", "sigma"), ("CROP", "crop"), ("CROP_STRIDE", "crop_stride"),
                    ("HED", "hed_jitter"), ("ZOOM", "zoom"))


def _setting(var: str, value) -> str:
    """`VAR=value` as a refusal names what was given: SIGMA=4, not the parsed 4.0."""
    return f"{var}={value:g}" if isinstance(value, float) else f"{var}={value}"


def _check_applies(args, model: config.ModelConfig | None) -> None:
    """Options that the model would ignore, refused by name: a patch regressor's LMDB holds
    patches and counts, so the density targets' width, crops and their stain jitter would only
    file the same patches under another tag; only the ResNets load pretrained weights, so
    FINETUNE= and SCRATCH=1 change nothing for the nets trained from scratch."""
    density_only = [_setting(var, getattr(args, dest)) for var, dest in _DENSITY_OPTIONS
                    if getattr(args, dest, None) is not None]
    if model is None and density_only:              # prepare without MODEL=: patch LMDBs
        raise config.ConfigError(f"{', '.join(density_only)}: settings of the density models' "
                                 f"crops; give MODEL=fcrn (or fcrn-ctx) with "
                                 f"{'them' if len(density_only) > 1 else 'it'} (without MODEL= "
                                 f"prepare writes the patch models' LMDBs, which "
                                 f"{'they change' if len(density_only) > 1 else 'it changes'} "
                                 f"nothing in but the name)")
    if model is None or model.classic:              # (classic: _check_classic)
        return
    if not model.density:
        given = density_only
        if given:
            raise config.ConfigError(f"{', '.join(given)}: for the density models (fcrn, "
                                     f"fcrn-ctx) only; {model.name} learns from patches labelled "
                                     f"with their counts: drop {'them' if len(given) > 1 else 'it'}")
    if model.family != "resnet":
        given = [g for g, on in (("FINETUNE=" + str(getattr(args, "finetune", None)),
                                  getattr(args, "finetune", None)),
                                 ("SCRATCH=1", getattr(args, "scratch", False))) if on]
        if given:
            raise config.ConfigError(f"{', '.join(given)}: for the ImageNet-pretrained ResNets "
                                     f"only; {model.name} is always trained from scratch, every "
                                     f"layer: drop {'them' if len(given) > 1 else 'it'}")


def _check_classic(args, model: config.ModelConfig) -> None:
    """The nets' options given to a classic method, which would ignore them (the patch and crop
    settings would only file the same fit under another tag): refused, named."""
    if not model.classic:
        return
    given = [_setting(name, value) for name, value, unset in (
        ("GPU", getattr(args, "gpu", -1), -1), ("HEAD", getattr(args, "head", "R"), "R"),
        ("ITERS", getattr(args, "iters", None), None),
        ("FINETUNE", getattr(args, "finetune", None), None),
        ("SCRATCH", 1 if getattr(args, "scratch", False) else None, None),
        ("BACKEND", getattr(args, "backend", None), None),
        *((var, getattr(args, dest, None), None) for var, dest in (
            ("PATCH", "patch"), ("STRIDE", "stride"), ("ROT", "rot"), ("SIZE", "size"),
            *_DENSITY_OPTIONS))) if value != unset]
    given = [g for g in given if g != "BACKEND=auto"]
    if given:
        raise config.ConfigError(f"{model.name} is fitted and counted on the CPU by its own "
                                 f"numpy code (one regression count, no iterations): drop "
                                 f"{', '.join(given)}")


def dataset_of(args, say=None) -> config.DatasetConfig:
    """The dataset that prepare, train and eval's options name: the named set or own folder with
    the settings given over its own; an own folder's open settings inferred (said by `say`, the
    standard output by default)."""
    ds = config.with_overrides(
        config.dataset(args.dataset), patch=args.patch, stride=args.stride, rot_step=args.rot,
        size=args.size, train_n=args.train_n, seed=args.seed, sigma=args.sigma,
        hed_jitter=args.hed_jitter, resplit=args.resplit, crop=args.crop,
        crop_stride=args.crop_stride, stain_norm=args.stain_norm, scale=args.scale,
        marker=args.marker, zoom=args.zoom)
    if args.model and config.model(args.model).density:
        config.check_augmented_rotation(ds)      # a pycount.toml's zoom beside ROT=0
    if ds.own:                       # a folder: the settings it leaves open, from its images
        from pycount.data import owndata
        ds = owndata.resolve(ds) if say is None else owndata.resolve(ds, say=say)
    return ds


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    from pycount.util.interrupt import follow_parent
    follow_parent()                 # a protocol's run: it stops when the protocol dies
    try:
        return run(args)
    except Diverged as e:
        print(f"pycount: error: {e}", file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(2)                  # see Diverged: Caffe's heap may be corrupt by now
    except PycountError as e:       # the one place user errors become messages (errors.py)
        print(f"pycount: error: {e}", file=sys.stderr)
        return 2
    except PermissionError as e:    # a file or folder this user may not read or write
        where = e.filename or f"a file ({e})"
        print(f"pycount: error: permission denied on {where}: give this user access to it "
              f"(e.g. chmod -R u+rwX on its folder), or work on a copy it may use",
              file=sys.stderr)
        return 2
    except OSError as e:
        if e.errno not in _UNWRITABLE:
            raise
        print(f"pycount: error: {_unwritable(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pycount: interrupted", file=sys.stderr)
        return 130


# A write that no command's own handler caught (a cache, a generated set): a read-only or full
# disk, or a file where a folder belongs, is one line naming the path and the fix
_UNWRITABLE = (errno.EROFS, errno.ENOTDIR, errno.EISDIR) + NO_ROOM


def _unwritable(e: OSError) -> str:
    from pycount.util import atomic
    path = Path(e.filename or "")
    where = next((f"set {var} to a folder that is" for var, root in (
        ("PYCOUNT_DATA", config.data_dir()), ("PYCOUNT_RUNS", config.runs_dir()))
        if path == root or root in path.parents), "write somewhere else")
    if e.errno in (errno.ENOTDIR, errno.EISDIR):
        return (f"cannot write {path} ({e.strerror}): a file stands where a folder belongs on "
                f"its path, or a folder where a file does; move it, or {where}")
    return atomic.cannot_write(str(path), e, path.parent, where)


if __name__ == "__main__":
    sys.exit(main())
