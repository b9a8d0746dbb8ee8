"""A trained run folder as counting sees it: the deploy net, the weights, and the settings the
run was trained with (train.json), so `pycount count --run DIR` needs nothing else."""
from __future__ import annotations

import dataclasses
import glob
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from pycount import config
from pycount.data.images import opencv_can_open, shown
from pycount.errors import PycountError, RunError
from pycount.nets.check import input_dims
from pycount.util.atomic import sha256_of


@dataclass(frozen=True)
class Run:
    """What counting needs from a run folder."""
    path: Path
    deploy: Path                  # deploy.prototxt (a classic model: its model.npz, as weights)
    weights: Path
    model: config.ModelConfig
    ds: config.DatasetConfig      # with the run's patch, stride and SIZE
    head: str
    # iterations trained, against those of the model's own schedule (None: not recorded, or a
    # classic method): a far shorter training (ITERS=) counts poorly
    iterations: int | None = None
    schedule: int | None = None

    def short_note(self) -> str:
        """"; trained 60 of fcrn's 8,000 iterations (ITERS=)" where the run was trained for less
        than config.SHORT_TRAINING of its model's schedule, else ""."""
        if self.iterations is None or not self.schedule or \
                self.iterations >= config.SHORT_TRAINING * self.schedule:
            return ""
        return (f"; {self.path.name} was trained {self.iterations:,} of {self.model.name}'s "
                f"{self.schedule:,} iterations (ITERS=): a short training counts poorly")


def read_train_info(info_file: Path) -> dict | None:
    """A run's train.json as a dict; None when there is none; RunError when it is damaged."""
    if not info_file.exists():
        return None
    try:
        info = json.loads(info_file.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise RunError(f"{info_file} is unreadable or corrupt ({e}); re-run make train for this "
                       f"run (RESUME=0 trains it again from scratch)") from None
    if not isinstance(info, dict):
        raise RunError(f"{info_file} is not a training summary (a JSON object was expected, not "
                       f"{type(info).__name__}); re-run make train for this run (RESUME=0 trains "
                       f"it again from scratch)")
    return info


def load_run(path) -> Run:
    """Read a run folder written by `make train`: train.json, and deploy.prototxt +
    model.caffemodel (a CNN) or model.npz (a classic method)."""
    path = Path(path)
    info_file = path / "train.json"
    if not path.is_dir():
        # runs/<dataset>/<model> as the README writes it, where PYCOUNT_RUNS puts runs elsewhere
        there = config.runs_dir() / Path(*path.parts[1:]) \
            if len(path.parts) > 1 and path.parts[0] == "runs" else None
        raise RunError(f"no run folder {path}: "
                       + (f"the runs are in {config.runs_dir()} (PYCOUNT_RUNS): RUN={there}"
                          if there is not None and there.is_dir() else
                          "check the path, or train a model first (make train DATASET=... "
                          "MODEL=...)"))
    if not opencv_can_open(str(path.absolute())):      # Caffe and cv2 take the files by name
        raise RunError(f"the run folder {shown(path.absolute())} has a path that is "
                       f"not valid UTF-8, which Caffe and OpenCV cannot open (OpenCV 4.10 "
                       f"crashes): rename the folder, or the one above it that has the odd name")
    info = read_train_info(info_file)
    if info is None:
        raise _missing(info_file, path)
    try:
        dataset, model, head = info["dataset"], info["model"], info.get("head", "R")
        if head not in config.HEADS:
            raise ValueError(f"head {head!r} is neither R nor C")
    except (ValueError, KeyError, TypeError) as e:
        raise RunError(f"{info_file} is incomplete or corrupt ({e!r}); re-run make train") from None
    # Runs written before train.json recorded the patch settings used the dataset's defaults.
    # (an own folder's settings: the run's dataset.json, so the folder need not exist any more)
    try:
        recorded = config.run_dataset(path, dataset)
    except config.ConfigError as e:          # an own folder's dataset.json: named by the error
        raise RunError(str(e)) from None
    try:
        ds = with_run_stain(config.with_overrides(recorded,
                                                  **{k: info.get(k) for k in config.OVERRIDES}),
                            info, info_file)
        m = config.model(model, ds)
    except RunError:
        raise
    except (PycountError, ValueError, TypeError) as e:
        raise RunError(f"{info_file} records settings pycount cannot use ({e}): the run folder is "
                       f"damaged or from another pycount; copy it again, or re-run make train"
                       ) from None
    files = finished_files(path, m, info)
    if not m.classic:
        _check_deploy_is_the_model(files[0], m, head, info_file, ds)
    done = info.get("iterations")
    return Run(path, files[0], files[-1], m, ds, head,
               done if isinstance(done, int) and not isinstance(done, bool) else None,
               config.schedule(m, ds))


# the name pycount.nets gives a deploy net: "<model>-<head>-p<patch> | ..." (patch models) or
# "<model>-density-c<crop> | ..." (density models)
_NET_NAME = re.compile(r'^name:\s*"([\w.-]+?)-(?:(R|C)-p(\d+)|density-c\d+)\b')


def _check_deploy_is_the_model(deploy: Path, m: config.ModelConfig, head: str,
                               info_file: Path, ds: config.DatasetConfig) -> None:
    """RunError when the deploy net is named as another model's or head's than train.json
    says, or a patch model's net takes another patch or input size than train.json's (a
    train.json edited, or copied from another run): counting would build the engine for the
    wrong net, and Caffe aborts on the mismatch (an InnerProduct's input size). A deploy named
    otherwise (not by pycount.nets) is not judged here."""
    try:
        with open(deploy, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return                          # (the engines' own check names an unreadable file)
    first = text.split("\n", 1)[0]
    found = _NET_NAME.match(first)
    if not found:
        return
    net_model, net_head = found.group(1), found.group(2)          # (no head: a density net)
    want_head = None if m.density else head
    if (net_model, net_head) != (m.name, want_head):
        said = net_model + (f" ({net_head} head)" if net_head else "")
        says = m.name + (f" ({head} head)" if want_head else "")
        raise RunError(f"{deploy} is the net of {said}, but {info_file} says {says}: the run "
                       f"folder's files come from different trainings; copy the run folder "
                       f"again whole, or train it again")
    if found.group(3) is None:          # a density net takes any image size
        return
    side = input_dims(text)[2:4]
    if int(found.group(3)) != ds.patch or (side and side != [ds.input_size] * 2):
        raise RunError(f"{deploy} is the net of {found.group(3)} px patches"
                       + (f" read at {side[0]}x{side[1]} px" if side else "")
                       + f", but {info_file} says {ds.patch} px patches read at {ds.input_size} "
                       f"px: the run folder's files come from different trainings (or "
                       f"train.json was edited); copy the run folder again whole, or train it "
                       f"again")


def with_run_stain(ds: config.DatasetConfig, info: dict | None, source: Path
                   ) -> config.DatasetConfig:
    """ds with the stain normalisation its run was trained with (train.json's stain_norm and
    the target its images were normalised to): counting must see the same colours."""
    info = info or {}
    method = info.get("stain_norm") or ""
    if method != ds.stain_norm:
        raise RunError(f"{source} was trained with stain normalisation {method or 'none'!r}, "
                       f"not {ds.stain_norm or 'none'!r}; count with STAIN={method or 'none'}")
    if not method:
        return ds
    ref = info.get("stain_ref")
    if not isinstance(ref, list) or len(ref) != config.STAIN_METHODS.get(method):
        raise RunError(f"{source} has no valid stain_ref for its stain normalisation "
                       f"{method!r}; re-run make train")
    return dataclasses.replace(ds, stain_ref=tuple(float(v) for v in ref))


def with_run_reading(ds: config.DatasetConfig, run: Path) -> config.DatasetConfig:
    """An own folder's ds reading its images as the run's training images were read: the mean
    colour and depth_range in the run's dataset.json, whatever the folder's pycount.toml or images
    give today (a run from before depth ranges has none: each image stretched on its own, as it
    was trained). Each setting that differs from today's is said on stderr. A named set, or a
    run without dataset.json: ds as it is."""
    recorded_file = Path(run) / "dataset.json"
    if not ds.own or not recorded_file.is_file():
        return ds
    recorded = config.run_dataset(run, ds.name)   # no depth_range recorded reads as ()
    theirs = {"mean_bgr": tuple(recorded.mean_bgr) or ds.mean_bgr,
              "depth_range": tuple(recorded.depth_range)}
    changed = {k: v for k, v in theirs.items() if tuple(getattr(ds, k)) != tuple(v)}
    for k, v in changed.items():
        print(f"note: {run} was trained with {k} {list(v) or 'per image'}; {ds.name}'s folder "
              f"gives {list(getattr(ds, k)) or 'per image'} today: its images are read as the "
              f"run was trained (train it again to use today's)", file=sys.stderr)
    return dataclasses.replace(ds, **changed) if changed else ds


def _as_recorded(value, like):
    """A train.json value as the type of the dataset's field `like` (a float field may read as a
    whole number); None where it is absent or of another kind."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(like, float) and isinstance(value, (int, float)):
        return float(value)
    return value if type(value) is type(like) else None


def run_max_iter(path: Path) -> int | None:
    """The iterations a run is trained to: the max_iter of its solver.prototxt (ITERS= or the
    model's schedule); None where it has none."""
    try:
        m = re.search(r"^max_iter:\s*(\d+)", (Path(path) / "solver.prototxt").read_text(), re.M)
    except (OSError, UnicodeDecodeError):
        return None
    return int(m.group(1)) if m else None


def resume_command(path: Path, info: dict) -> str:
    """The `make train ...` that resumes the run at `path`, from its train.json `info`: its
    dataset with the settings it was trained with (data.commands.dataset_words: an own folder by
    the path and settings its dataset.json records; a named set with each setting off its default,
    a protocol or redrawn-split run's TRAIN_N/SEED/RESPLIT), model, head and ITERS= where its
    solver.prototxt trains to another count than the model's schedule; a plain `make train` where
    train.json names no dataset or model. Settings that no longer give back the dataset tag the
    run recorded (a train.json edited by hand) are not offered as its command."""
    from pycount.data.commands import dataset_words
    from pycount.errors import make_arg
    dataset, model = info.get("dataset"), info.get("model")
    if not isinstance(dataset, str) or not isinstance(model, str):
        return "make train"
    ds = None
    if dataset in config.DATASETS:
        base = config.DATASETS[dataset]
        recorded = {k: _as_recorded(info.get(k), getattr(base, k)) for k in config.MAKE_VARS}
        ds = dataclasses.replace(base, **{k: v for k, v in recorded.items() if v is not None})
    else:
        try:
            ds = config.run_dataset(path, dataset)
        except PycountError:        # no readable dataset.json: the name is all there is
            pass
    tag = info.get("dataset_tag")
    if ds is not None and isinstance(tag, str) and tag and ds.tag != tag:
        return (f"the make train that trained it, with the settings of {tag} (its train.json "
                f"no longer gives them all back)")
    words = dataset_words(ds) if ds is not None else make_arg("DATASET", dataset)
    words += f" MODEL={model}" + (" HEAD=C" if info.get("head") == "C" else "")
    total = run_max_iter(path)
    try:
        schedule = config.schedule(config.model(model, ds), ds) if ds is not None else None
    except PycountError:
        schedule = None
    if total is not None and schedule is not None and total != schedule:
        words += f" ITERS={total}"
    return f"make train {words}"


def finished_files(path: Path, model: config.ModelConfig, info: dict | None = None) -> list[Path]:
    """The files counting needs from a run folder whose training finished (config.run_files);
    RunError names what is missing, or says the training was interrupted (train.json `info`)."""
    if info and info.get("interrupted"):
        raise RunError(f"{path}: its training was interrupted at iteration {info.get('iterations')}"
                       f"; finish it first ({resume_command(Path(path), info)} resumes it)")
    files = [Path(path) / f for f in config.run_files(model)]
    for f in files:
        if not f.is_file():
            raise _missing(f, Path(path))
    train_json = Path(path) / "train.json"
    for f, key, what, why in (
            # an edit that keeps the shapes (a pooling's kind, a stride, a layer's order) is run
            # without complaint by both engines and counts something else than was trained
            (files[0], "deploy_sha256", "the net this run was trained as",
             "it was edited or copied from another run; put back the deploy.prototxt its "
             "training wrote"),
            # another run's weights of the same net load without complaint and count something
            # else than this run's train.json, metrics and name say
            (files[-1], "model_sha256", "the model this run trained",
             "it was replaced or damaged since; put back the file its training wrote")):
        recorded = (info or {}).get(key)
        if key == "deploy_sha256" and model.classic:
            continue
        if isinstance(recorded, str) and sha256_of(f) != recorded:
            raise RunError(f"{f} is not {what} (its sha256 differs from {key} in {train_json}): "
                           f"{why} (a copy of the run folder has it), or train it again")
    return files


def _runs_of_folder(folder: Path) -> tuple[str, list[Path]]:
    """(the dataset name, the run folders trained on it) when `folder` is read as an own dataset's
    folder: runs_dir()/<name>*/<model>/ whose train.json names that dataset (its tag adds the
    settings that differ); ("", []) when it reads as none."""
    try:
        name = config.folder_dataset(str(folder)).name
    except PycountError:
        return "", []
    runs = []
    for info in sorted(config.runs_dir().glob(f"{glob.escape(name)}*/*/train.json")):
        try:
            if json.loads(info.read_text()).get("dataset") == name:
                runs.append(info.parent)
        except (OSError, ValueError, AttributeError):
            continue
    return name, runs


def _missing(f: Path, run: Path) -> RunError:
    from pycount.util.runlock import in_training
    if in_training(run):
        return RunError(f"{run} is being trained now and has no finished model yet ({f.name} is "
                        f"written when the training ends): count when it has ended")
    below = sorted(d for d in run.glob("*/train.json")) + sorted(run.glob("*/*/train.json"))
    if below:                   # runs/<dataset> or runs/ given for runs/<dataset>/<model>
        names = ", ".join(str(b.parent) for b in below[:4]) + (", ..." if len(below) > 4 else "")
        return RunError(f"{run} is not a run folder but holds {len(below)}: {names}; give one "
                        f"of them (RUN=)")
    latest = run / "snapshots" / "latest.json"
    try:
        info = read_train_info(run / "train.json") if f.name == "model.caffemodel" else None
    except RunError:
        info = None
    if info is not None and not info.get("interrupted") and latest.is_file():
        return RunError(f"{f} is missing from a finished run (deleted or moved since it was "
                        f"trained); `make train` with the run's settings writes it again where "
                        f"the last snapshot holds the weights it kept, else says so (RESUME=0 "
                        f"trains it again)")
    if latest.is_file():            # a training killed outright (SIGKILL, a machine lost)
        return RunError(f"{f} is missing: the training in {run} stopped before it finished "
                        f"(killed outright: its last snapshot is named in {latest}); finish it "
                        f"first (make train resumes it from that snapshot)")
    name, runs = _runs_of_folder(run)           # an own dataset's folder given for its run
    if runs:
        names = ", ".join(str(r) for r in runs[:4]) + (", ..." if len(runs) > 4 else "")
        return RunError(f"{run} is not a run folder (it has no {f.name}); the runs trained on "
                        f"its images ({name}) are {names}: give one of them (RUN=)")
    pattern = f"{glob.escape(run.parent.name)}-*/{glob.escape(run.name)}/train.json"
    others = sorted(str(d.parent) for d in run.parent.parent.glob(pattern))
    if others:                  # the same model trained under other settings (ZOOM=, SIGMA=, ...)
        names = ", ".join(others[:4]) + (", ..." if len(others) > 4 else "")
        return RunError(f"{f} is missing: {run} is not a trained run folder, but {run.name} was "
                        f"trained on {run.parent.name} with other settings: {names}; give the "
                        f"settings it was trained with again (its train.json names them) or the "
                        f"folder (RUN=)")
    return RunError(f"{f} is missing: {run} is not a trained run folder; train a model first "
                    f"(make train DATASET=... MODEL=...)")
