"""Training with a pycaffe solver: progress, validation, atomic snapshots, resume, logs.

A run folder (runs/<dataset>/<model>/) holds the prototxts the run used, `snapshots/` with the
solver's caffemodel/solverstate pairs, `snapshots/latest.json` naming the last complete pair (written
after both files, atomically: a pair interrupted half-way is never resumed from), `model.caffemodel`
(the weights with the best validation MAE), `train_log.csv` and `loss.png`.

Beside it: `validation` (the held-out patches or crops and the net's counts of them), `snapshots`
(latest.json and restoring a solver from a checked pair), `runlog` (the CSV log, trimmed on resume,
and its plot), `averaging` (the mean of the last phase's weights); the run folder's lock is
pycount.util.runlock.
"""
from __future__ import annotations

import contextlib
import csv
import dataclasses
import errno
import json
import math
import os
import shutil
import time
from pathlib import Path

import numpy as np

from pycount.util import atomic
from pycount import config
from pycount.data import lmdbio, owndata
from pycount.data.commands import dataset_words
from pycount.data import sources
from pycount.nets import builders as nets
from pycount.util import provenance
from pycount.util.runlock import EVAL_LOCK, ReadersLock, RunLock, in_evaluation
from pycount.util.interrupt import stop_once
from pycount.util.progress import Progress
from pycount.device import set_device
from pycount.inference.run import read_train_info
from pycount.training.averaging import WeightAverage, saved_count, span_check
from pycount.training.runlog import HEADER, plot_log, trim_log
from pycount.training.snapshots import HISTORIES_PER_PARAM, read_latest, restore_solver
from pycount.training.validation import (load_val_crops, load_val_patches, predict_density_sums,
                                         predict_patches)
from pycount.errors import Diverged, RunError, TrainError  # noqa: F401 (re-exported)


def _atomic_json(path: Path, obj) -> None:
    """obj as strict JSON: a best validation MAE not measured yet (inf) is written as null, not as
    the `Infinity` that Python alone reads back."""
    atomic.write_text(path, json.dumps(_finite(obj), indent=1, allow_nan=False))


def _finite(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _weight_bytes(net) -> int:
    return sum(b.data.nbytes for blobs in net.params.values() for b in blobs)


def _save_weights(net, path: Path) -> None:
    """net.save, atomically, after claiming the room (Caffe aborts on a write that fails)."""
    try:
        atomic.reserve(path.parent, [_weight_bytes(net)])
    except OSError as e:
        raise TrainError(atomic.cannot_write(
            str(path), e, path.parent, "move the run folder to a disk with room and set "
            "PYCOUNT_RUNS to the runs folder there: make train resumes it from its last "
            "snapshot")) from None
    with atomic.replacing(path) as tmp:
        net.save(str(tmp))


class Trainer:
    def __init__(self, ds: config.DatasetConfig, model: config.ModelConfig, head: str = "R",
                 gpu: int = -1, run: Path | None = None, max_iter: int | None = None,
                 data_root: str | Path | None = None):
        self.ds, self.model, self.head = ds, model, head
        self.data_root = data_root            # where prepare read the dataset (DATA_ROOT)
        self.run = Path(run or config.run_dir(ds, model, head))
        if max_iter is not None and max_iter < 1:
            raise config.ConfigError(f"ITERS={max_iter} is not valid: train at least 1 iteration")
        self.own_solver = model.solver         # the model's schedule before ITERS= stretches it
        # what a `make train` without ITERS= trains to (an own folder's pycount.toml iters)
        self.schedule = config.schedule(model, ds) or model.solver.max_iter
        self.max_iter = max_iter or model.solver.max_iter
        if self.max_iter != model.solver.max_iter:
            # the solver's schedule (steps, poly decay, weight averaging) follows ITERS=
            model = dataclasses.replace(model, solver=model.solver.stretched(self.max_iter))
            self.model = model
        lmdb_root = config.lmdb_dir(ds)
        self.train_lmdb, self.val_lmdb = lmdb_root / "train_lmdb", lmdb_root / "val_lmdb"
        self.train_targets = self.val_targets = None
        if model.density:
            self.train_lmdb, self.train_targets = config.density_lmdbs(ds, "train", model.context)
            self.val_lmdb, self.val_targets = config.density_lmdbs(ds, "val", model.context)
        paths = [self.train_lmdb, self.val_lmdb, self.train_targets, self.val_targets]
        for path in filter(None, paths):
            if lmdbio.read_manifest(path) is None:
                raise TrainError(f"{path}: no prepared LMDB; run `{_prepare_command(ds, model)}`"
                                 f" first")
            lmdbio.check_whole(path)          # before Caffe: it aborts on a damaged record
        self.gpu = gpu
        self.code = provenance.commit()      # the code that trains (train.json), read at the start
        # what the training LMDB holds (settings + images + marks): each snapshot records it, so
        # that a resume on data `make prepare` has rewritten since is refused, not mixed in
        self.data_fp = (lmdbio.read_manifest(self.train_lmdb) or {}).get("fingerprint")
        # and the validation LMDB's: the best-validation weights kept are compared across
        # validations, which a rewritten validation set would mix
        self.val_fp = (lmdbio.read_manifest(self.val_lmdb) or {}).get("fingerprint")

    def _plan(self) -> nets.NetPlan:
        return nets.run_plan(self.ds, self.model, self.head)

    def _pretrained(self) -> Path | None:
        """The ImageNet weights a pretrained model starts from (checked), None from scratch."""
        if self.model.finetune == "scratch" or not self.model.weights:
            return None
        from pycount.nets import weights
        return weights.resolve(self.model)

    def _check_lmdb_patch(self) -> None:
        side = self._plan().patch
        for path in (self.train_lmdb, self.val_lmdb):
            stored = lmdbio.read_manifest(path).get("stored_patch")
            if stored not in (None, side):
                raise TrainError(f"{path} holds {stored} px patches but {self.model.name} on "
                                 f"{self.ds.tag} expects {side} px; run `make "
                                 f"prepare` with the same DATASET/PATCH/SIZE as `make train`")
        for images, targets in ((self.train_lmdb, self.train_targets),
                                (self.val_lmdb, self.val_targets)):
            if targets and (lmdbio.read_manifest(images).get("fingerprint")
                            != lmdbio.read_manifest(targets).get("fingerprint")):
                raise TrainError(f"{images} and {targets} come from different `make prepare` "
                                 f"runs (an interrupted write?); run "
                                 f"`{_prepare_command(self.ds, self.model)}` again")

    def _check_classes(self) -> None:
        """The C head scores the counts 0..max_patch_count: a training or validation patch that
        holds more cells would make Caffe's softmax loss read past its scores (a crash, or
        training on whatever lies there), so it is refused here, before Caffe sees it."""
        if self.head != "C" or self.model.density:
            return
        classes = config.n_classes(self.ds)
        for path in (self.train_lmdb, self.val_lmdb):
            hist = (lmdbio.read_manifest(path) or {}).get("count_histogram") or {}
            most = max((int(k) for k in hist), default=0)
            if most >= classes:
                where = (f"max_patch_count = {most} or more in {self.ds.subdir}/pycount.toml"
                         if self.ds.own else "its max_patch_count in pycount/config.py")
                raise TrainError(
                    f"{path}: a patch holds {most} cells, but the classification head (HEAD=C) "
                    f"of {self.ds.name} has classes 0..{classes - 1} only (max_patch_count); "
                    f"set {where}, choose a smaller PATCH=, or train the regression head "
                    f"(HEAD=R)")

    def _check_sources(self) -> None:
        """The dataset's images and annotations as `make prepare` found them (the stamp it
        recorded in the training LMDB's manifest; pycount.data.sources)."""
        changed = sources.changes((lmdbio.read_manifest(self.train_lmdb) or {})
                                  .get("source_stamp"))
        if changed and self._same_content():
            print(f"note: {self.ds.name}'s files were touched since `make prepare` ({changed}), "
                  f"but their pixels and marks are the ones its LMDBs were written from: "
                  f"the LMDBs stand", flush=True)
        elif changed:
            raise TrainError(f"{self.train_lmdb} is older than {self.ds.name}'s images or "
                             f"annotations ({changed}); run `{_prepare_command(self.ds, self.model)}"
                             f"` again: it rebuilds the LMDBs if what they hold changed")

    def _same_content(self) -> bool:
        """Whether the dataset's images and marks, read again, give the content fingerprint its
        LMDBs were written with (files copied, checked out or synced again keep their content
        but not their times); their stamps are renewed then. Nothing is written otherwise."""
        from pycount.data import prepare
        from pycount.errors import DatasetError
        try:
            return prepare.prepare(self.ds, self.data_root, model=self.model,
                                   reuse_only=True) is not None
        except DatasetError:                  # a file gone or unreadable: prepare says which
            return False

    def _say_passes(self) -> None:
        """A training LMDB cut to the patches one training reads (DatasetConfig.train_patches):
        say so when this training reads more, i.e. passes over them again."""
        manifest = lmdbio.read_manifest(self.train_lmdb) or {}
        stored, cut = manifest.get("records", 0), manifest.get("patches_cut")
        reads = self.max_iter * self.model.solver.batch
        if cut and stored and reads > stored:
            print(f"note: {self.train_lmdb} keeps {stored} of the {cut} patches cut (train_patches "
                  f"in pycount/config.py); this training reads {reads}, "
                  f"{reads / stored:.1f} passes over them")

    def _check_resumable(self, plan: nets.NetPlan) -> bool:
        """A run's snapshots resume only into the net they were written by; a changed solver (a
        longer max_iter, another schedule) is allowed: True then, for the caller to say."""
        changed = nets.drift(self.run, plan)
        if "train_val" in changed:
            source = ("pycount/config.py and the folder's inferred settings (its images' mean "
                      "colour, the windows) give" if self.ds.own else "pycount/config.py gives")
            raise TrainError(f"{self.run}: its snapshots were written by another net than "
                             f"today's {self.model.name} (its train_val.prototxt differs from "
                             f"what {source} now); {self._again()}")
        return bool(changed)

    def _again(self) -> str:
        return (f"`make train {dataset_words(self.ds)} MODEL={self.model.name}"
                f"{'' if self.head == 'R' else ' HEAD=' + self.head} RESUME=0` trains it again "
                f"from scratch")

    def _say_solver_changed(self) -> None:
        print(f"note: {self.run / 'solver.prototxt'} differs from today's solver (max_iter "
              f"{self.max_iter}); resuming with today's. For a run of today's settings "
              f"alone, {self._again()}", flush=True)

    def _check_average_before_resuming(self, latest: dict, snaps: Path) -> None:
        """The weight average a resume would restore must fit today's schedule (averaging.
        span_check): refused here, before the run's files are rewritten for the new schedule."""
        start = self.model.solver.average_after
        if not start:                       # (the session averages whenever it is set)
            return
        it = latest.get("iter", 0)
        n = saved_count(snaps / Path(latest["average"]).name) if latest.get("average") else 0
        if n is not None and span_check(it, n, start) == "refuse":
            raise self.average_refusal(it, n, start)

    def average_refusal(self, it: int, n: int, start: int) -> TrainError:
        was = (f"its weight average covers iterations {it - n + 1}-{it}" if n
               else "it holds no weight average")
        return TrainError(f"{self.run} has trained {it} iterations and {was}, where a training "
                          f"of {self.max_iter} iterations averages them from iteration "
                          f"{start + 1}: that average cannot be rebuilt. Resume with the ITERS= "
                          f"the run was trained with (or without ITERS= if it had none), ITERS="
                          f"{self.iters_beyond(it)} or more to train it further, or RESUME=0 to "
                          f"train {self.max_iter} from scratch")

    def iters_beyond(self, done: int) -> int:
        """The smallest ITERS= that trains a run of `done` iterations further: above it, and with
        the weight averaging (which moves with ITERS=) beginning no earlier than `done`."""
        s = self.own_solver
        n = done + 1
        while s.average_after and round(s.average_after * n / s.max_iter) < done:
            n += 1
        return n

    def _solver(self, caffe, files: dict, pretrained: Path | None):
        """(solver, validation deploy net sharing its weights, step(k) function).

        Paper mode (a frozen pretrained trunk): the solver trains a head-only net on cached trunk
        features (pycount.training.features); otherwise the plain solver over the LMDB."""
        # the validation net (the deploy net) first: the weights file is checked against it
        # before any Caffe call reads the file (copy_from aborts on a blob of another shape)
        val_net = caffe.Net(str(files["deploy"]), caffe.TEST)
        if pretrained is not None:
            from pycount.nets import weights
            weights.check_fits(val_net, pretrained)
            val_net.copy_from(str(pretrained))
        if self.model.finetune == "head" and pretrained is not None:
            from pycount.training import features
            feats, labels = features.trunk_features(
                files["deploy"], pretrained, self.train_lmdb, self.model, self.ds,
                self.run.parent / ".feature-cache", batch=64,
                rows=(self.max_iter + 1) * self.model.solver.batch)
            head_net = self.run / "head.prototxt"
            head_net.write_text(features.head_net_prototxt(
                files["train_val"], feats.shape[1], self.model.solver.batch))
            solver = caffe.get_solver(str(features.write_solver(
                files["solver"], head_net.resolve(), self.run / "head_solver.prototxt")))

            def step(k):
                # iteration i reads batch i + 1, as the plain solver's Data layer does after
                # the curve's starting point read batch 0 (_continue_data on a resume)
                for _ in range(k):
                    features.feed(solver.net, feats, labels,
                                  (solver.iter + 1) * self.model.solver.batch)
                    solver.step(1)
            features.feed(solver.net, feats, labels, 0)   # so that a forward() sees batch 0
            self.init_mode = "head on cached trunk features"
        else:
            solver = caffe.get_solver(str(files["solver"]))
            if pretrained is not None:
                from pycount.nets import weights
                self.surgery = weights.init_from_pretrained(solver.net, pretrained)
            step = solver.step
            self.init_mode = "plain solver"
        val_net.share_with(solver.net)      # validation sees the weights being trained
        return solver, val_net, step

    def train(self, resume: bool = True) -> dict:
        """Train to max_iter; resume from the run's last snapshot unless resume=False, which
        first removes everything the previous run wrote (RESUME=0)."""
        caffe = set_device(self.gpu)
        # the sources first: an own folder's patch and max_patch_count follow its marks, so
        # marks edited since `make prepare` are named before the checks they would fail
        self._check_sources()
        self._check_lmdb_patch()
        self._check_classes()
        self._say_passes()
        pretrained = self._pretrained()
        plan = self._plan()
        snaps = self.run / "snapshots"
        self._check_writable()
        lock = RunLock(self.run)
        if in_evaluation(self.run):         # (taken first, checked after: one of the two sees it)
            lock.release()
            raise TrainError(f"{self.run} is being evaluated now (a make eval holds "
                             f"{self.run / EVAL_LOCK}): training it would change the weights "
                             f"it counts with; wait for it to end, then train")
        reading = ReadersLock(p for p in (self.train_lmdb, self.val_lmdb, self.train_targets,
                                          self.val_targets) if p is not None)
        try:                        # released whatever stops the training, a refusal included
            return self._train_locked(caffe, plan, pretrained, snaps, resume)
        finally:
            reading.release()
            lock.release()

    def _train_locked(self, caffe, plan: nets.NetPlan, pretrained: Path | None, snaps: Path,
                      resume: bool) -> dict:
        """The training itself, while this process holds the run's lock."""
        resuming = resume and (snaps / "latest.json").exists()
        if resuming:
            solver_changed = self._check_resumable(plan)
            latest = read_latest(snaps / "latest.json")
            if latest.get("data") and self.data_fp and latest["data"] != self.data_fp:
                raise TrainError(f"{self.run}'s snapshots were trained on other data than "
                                 f"{self.train_lmdb} holds now (make prepare rewrote it since: "
                                 f"the images, marks or settings changed), and resuming would mix "
                                 f"the two; RESUME=0 trains it again on the data as it is now")
            if latest.get("val_data") and self.val_fp and latest["val_data"] != self.val_fp:
                raise TrainError(f"{self.run}'s snapshots were validated on other data than "
                                 f"{self.val_lmdb} holds now (make prepare rewrote it since: the "
                                 f"validation images or their marks changed), and the weights it "
                                 f"keeps would be chosen across the two; RESUME=0 trains it again "
                                 f"on the data as it is now")
            done = latest.get("iter", 0)
            if done > self.max_iter and self.max_iter == self.schedule:
                whose = "pycount.toml's iters" if self.ds.iters else "the model's schedule"
                raise TrainError(f"{self.run} has trained {done} iterations, past {whose} of "
                                 f"{self.max_iter}: it is finished; ITERS="
                                 f"{self.iters_beyond(done)} or more trains it further, RESUME=0 "
                                 f"trains {self.max_iter} from scratch")
            if done > self.max_iter:
                raise TrainError(f"{self.run} has trained {done} iterations already, more than "
                                 f"ITERS={self.max_iter}; leave ITERS= out to resume it, or "
                                 f"RESUME=0 to train {self.max_iter} from scratch")
            self._check_average_before_resuming(latest, snaps)
            if solver_changed:
                self._say_solver_changed()
            self._drop_changed_model()
        elif resume and self._finished_without_snapshot():
            raise TrainError(f"{self.run} holds a finished training but no snapshot to resume "
                             f"from ({snaps / 'latest.json'} is missing); RESUME=0 trains it "
                             f"again from scratch, removing its model and results")
        else:
            clear_run(self.run)
        snaps.mkdir(parents=True, exist_ok=True)
        for folder in (self.run, snaps):    # a process killed while writing left its temps
            atomic.remove_stale_temps(folder)
        if self.ds.own:          # only now: a training refused above leaves the run as it was
            owndata.record_in_run(self.run, self.ds)
        files = nets.write_net_files(plan, self.run,
                                     snapshot_prefix=str((snaps / "snap").resolve()))
        if self.model.density:
            val = load_val_crops(self.val_lmdb, self.val_targets)
        else:
            val = load_val_patches(self.val_lmdb)
        solver, val_net, solver_step = self._solver(caffe, files, pretrained)
        session = _Session(self, solver, val_net, solver_step, val)
        session.start(resuming)
        if pretrained is not None and not resuming:
            from pycount.nets import weights
            if weights.is_stand_in(pretrained):
                # kept in every snapshot's latest.json: a run begun on a stand-in stays a dry
                # run when it is resumed with the released file in its place
                session.state["weights_stand_in"] = True
        try:
            with stop_once():       # a second stop must not cut the snapshot short
                try:
                    session.run()
                except KeyboardInterrupt:
                    print("\ninterrupted: writing a snapshot to resume from (make train "
                          "RESUME=1)", flush=True)
                    session.interrupted()
                    self._write_summary(session, plan, pretrained, interrupted=True)
                    raise
        finally:
            session.close()
        summary = self._write_summary(session, plan, pretrained)
        plot_log(session.log_path, self.run / "loss.png")
        return summary

    def _drop_changed_model(self) -> None:
        """A finished run's model.caffemodel that is not the one it kept (its sha256 differs
        from train.json's: truncated, replaced) is removed before resuming, so that the end of
        the training writes the kept weights again or says why it cannot (_Session.run); its
        checksum is never recorded as the run's."""
        kept = self.run / "model.caffemodel"
        try:
            info = read_train_info(self.run / "train.json")
        except RunError:
            return
        want = (info or {}).get("model_sha256")
        if want and kept.is_file() and atomic.sha256_of(kept) != want:
            print(f"note: {kept} is not the model this run kept (its sha256 differs from "
                  f"train.json's): removed, and the weights kept are written again where the "
                  f"last snapshot holds them", flush=True)
            kept.unlink()

    def _check_writable(self) -> None:
        """The run folder must take files (prototxts, snapshots, the model) before Caffe is
        asked to write one: it aborts the process when a snapshot cannot be written."""
        try:
            self.run.mkdir(parents=True, exist_ok=True)
            atomic.probe_writable(self.run)
        except OSError as e:
            raise TrainError(f"{self.run} cannot be written ({e.strerror or e}); make it "
                             f"writable for this user, or set PYCOUNT_RUNS to a folder that "
                             f"is") from None

    def _finished_without_snapshot(self) -> bool:
        """A run folder whose train.json says it finished (or that was evaluated), with no
        snapshot to resume from: a training would silently start over and remove its model."""
        if (self.run / "metrics.json").exists():
            return True
        try:
            info = read_train_info(self.run / "train.json")
        except RunError:                     # damaged: nothing finished to keep
            return False
        return info is not None and not info.get("interrupted") \
            and (self.run / "model.caffemodel").exists()

    def _write_summary(self, session: "_Session", plan: nets.NetPlan, pretrained: Path | None,
                       interrupted: bool = False) -> dict:
        """train.json: what was trained, how long, with which settings."""
        solver, state, session_seconds = session.solver, session.state, session.elapsed()
        manifest = lmdbio.read_manifest(self.train_lmdb) or {}
        summary = {
            "dataset": self.ds.name, "model": self.model.name, "head": self.head,
            "iterations": solver.iter, "best_iter": state["best_iter"],
            "best_val_patch_mae": state["best_val_mae"],
            "seconds": round(session.seconds_before + session_seconds, 1),
            "seconds_this_session": round(session_seconds, 1),
            "iterations_this_session": solver.iter - session.begin_iter,
            "init": self.model.finetune, "weights": str(pretrained) if pretrained else None,
            "solver": self.init_mode, "surgery": getattr(self, "surgery", None),
            "net": nets.net_name(plan), "dataset_tag": self.ds.tag, "patch": self.ds.patch,
            "stride": self.ds.stride, "size": self.ds.size, "rot_step": self.ds.rot_step,
            "train_n": self.ds.train_n, "seed": self.ds.seed, "resplit": self.ds.resplit,
            "scale": self.ds.scale, "keep": self.model.keep,
            "averaged_iterations": session.average.n if session.average is not None else 0,
            "train_images": manifest.get("images"),
            "val_images": (lmdbio.read_manifest(self.val_lmdb) or {}).get("images"),
            "commit": self.code,
        }
        deploy = self.run / "deploy.prototxt"
        if deploy.is_file():        # counting refuses a deploy edited since (inference.run)
            summary["deploy_sha256"] = atomic.sha256_of(deploy)
        kept = self.run / "model.caffemodel"
        if kept.is_file():          # and weights replaced since, as well
            summary["model_sha256"] = atomic.sha256_of(kept)
        if pretrained is not None:
            from pycount.nets import weights
            if weights.is_stand_in(pretrained) or session.state.get("weights_stand_in"):
                summary["weights_stand_in"] = True     # a dry run: the audit never shows it
        if manifest.get("stain_ref"):              # the target counting normalises images to
            summary.update(stain_norm=manifest["stain_norm"], stain_ref=manifest["stain_ref"])
        if interrupted:
            summary["interrupted"] = True          # not finished: `make train` resumes it
        if self.model.density:
            summary.update(sigma=self.ds.sigma, crop=self.ds.crop, crop_stride=self.ds.crop_stride,
                           hed_jitter=self.ds.hed_jitter, context=self.model.context)
            if self.ds.zoom:                       # (absent when 0, as in older runs)
                summary["zoom"] = self.ds.zoom
        _atomic_json(self.run / "train.json", summary)
        return summary


def _prepare_command(ds: config.DatasetConfig, model: config.ModelConfig) -> str:
    """The `make prepare ...` that writes the LMDBs this training reads (a density model's own)."""
    return f"make prepare {dataset_words(ds)}" + (f" MODEL={model.name}" if model.density else "")


# the files `make eval` writes into a run folder: they describe the model kept at that time
EVAL_OUTPUTS = ("metrics.json", "metrics.md", "predictions.csv", "heatmaps")

# What a run folder holds besides its prototxts: all of it goes when a run starts over (RESUME=0),
# before anything else, so that a restart killed early leaves no old model or snapshot behind to
# be resumed or counted with.
RUN_OUTPUTS = ("snapshots", "train_log.csv", "loss.png", "train.json", "model.caffemodel",
               "metrics.json", "metrics.md", "predictions.csv", "heatmaps")


def clear_run(run: Path) -> None:
    for name in RUN_OUTPUTS:
        path = run / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


class _Session:
    """One `make train` call over a solver: the step loop, validation, atomic snapshots, the
    log. Snapshot files are named in snapshots/latest.json relative to that folder, so a run
    folder can be moved and still resumes."""

    def __init__(self, trainer: Trainer, solver, val_net, solver_step, val):
        self.t, self.solver, self.val_net, self.solver_step = trainer, solver, val_net, solver_step
        self.val_x, self.val_y = val
        self.s = trainer.model.solver
        self.snaps = trainer.run / "snapshots"
        self.latest = self.snaps / "latest.json"
        self.log_path = trainer.run / "train_log.csv"
        self.average = WeightAverage(solver.net, self.s.average_after) \
            if self.s.average_after else None
        self.state = {"best_val_mae": math.inf, "best_iter": -1}
        self.log = None
        self.logged_iter = -1

    # ------------------------------------------------------------------ start and resume
    def start(self, resuming: bool) -> None:
        if resuming:
            self.state = read_latest(self.latest)
            self._restore()
            print(f"resuming from iteration {self.solver.iter} "
                  f"({self.snaps / self.state['solverstate']})", flush=True)
            self._continue_data()
        else:
            self.log_path.unlink(missing_ok=True)
        # a killed run (power cut, SIGKILL) logged rows past its last snapshot; they are redone
        # now, so they go, and the seconds column goes on from the kept rows: total training time
        self.seconds_before = trim_log(self.log_path, self.solver.iter)
        new_log = not self.log_path.exists()
        self.log = open(self.log_path, "a", newline="")
        self.writer = csv.writer(self.log, lineterminator="\n")
        if new_log:
            self.writer.writerow(HEADER)
            if self.solver.iter == 0:             # the starting point of the curves
                loss0 = float(self.solver.net.forward()["loss"])
                self.writer.writerow([0, f"{loss0:.6g}", self.s.base_lr, 0,
                                      f"{self.validate():.5g}"])
                self.logged_iter = 0
        self.start_time, self.begin_iter = time.monotonic(), self.solver.iter
        self.last_snapshot = self.start_time

    def _continue_data(self) -> None:
        """Caffe's Data layers read their LMDB in order from its first record, and a restored
        solver starts them there again: a training resumed many times (a long one across
        sessions) would read its first records over and over and never reach the last ones.
        Read past the batches the run has used so far instead, so that a resumed run sees the
        data a run without the break would have: the batches of iterations 1..it, plus the one
        that the starting point of the curves (iteration 0) read. Batches repeat after
        records / gcd(records, batch) of them, since the layers wrap round record by record."""
        net = self.solver.net
        layers = [i for i, layer in enumerate(net.layers) if layer.type == "Data"]
        records = (lmdbio.read_manifest(self.t.train_lmdb) or {}).get("records")
        if not layers or not records:
            return                  # features fed from Python by iteration (a frozen trunk)
        batch = self.s.batch
        skip = (self.solver.iter + 1) % (records // math.gcd(records, batch))
        if skip > 100:
            print(f"reading past the {skip} batches of training data used before the break",
                  flush=True)
        for _ in range(skip):
            for i in layers:
                net._forward(i, i)

    def _restore(self) -> None:
        """Resume from the snapshot latest.json names, found in this run folder wherever it was
        written (older runs recorded absolute paths: only their file names are used)."""
        files = {k: self.snaps / Path(self.state[k]).name for k in ("solverstate", "caffemodel")}
        for path in files.values():
            if not path.is_file():
                raise TrainError(f"{path} is missing (named by {self.latest}); the run folder is "
                                 f"incomplete: train it again with RESUME=0")
        self.state.update({k: p.name for k, p in files.items()})
        restore_solver(self.solver, files["solverstate"], files["caffemodel"],
                       self.state.get("iter"), self.s.stepvalues
                       if self.s.lr_policy == "multistep" else None)
        if self.average is not None and self.state.get("average"):
            self.average.load(self.snaps / Path(self.state["average"]).name)
        if self.average is not None:
            self._check_average_span()

    def _check_average_span(self) -> None:
        """The restored average must be the one today's schedule would hold at this iteration:
        the mean over the iterations after its start, none before. ITERS= moves that start
        (SolverConfig.stretched), so a run resumed with another ITERS= held the old schedule's
        average and went on adding to it: the kept weights then mixed two spans of training
        that neither schedule names. An average not begun yet under today's schedule is dropped,
        and said; one that cannot be rebuilt is refused."""
        average, it = self.average, self.solver.iter
        check = span_check(it, average.n, average.start)
        if check == "drop":
            print(f"note: today's schedule ({self.t.max_iter} iterations) averages the weights "
                  f"from iteration {average.start + 1}, after this run's {it}; its weight average "
                  f"covers iterations {it - average.n + 1}-{it} under the schedule it was trained "
                  f"with, which is dropped", flush=True)
            average.reset()
        elif check == "refuse":      # (refused before resuming, unless the file was unreadable)
            raise self.t.average_refusal(it, average.n, average.start)

    # ------------------------------------------------------------------ the loop
    def step(self, k: int) -> None:
        """k solver iterations; each one past average_after joins the weight average."""
        solver, average = self.solver, self.average
        target = solver.iter + k
        if average is None or target <= average.start:
            return self.solver_step(k)
        if solver.iter < average.start:
            self.solver_step(average.start - solver.iter)
        while solver.iter < target:
            self.solver_step(1)
            average.add()

    def validate(self) -> float:
        t = self.t
        if t.model.density:
            pred = predict_density_sums(self.val_net, self.val_x, t.model, t.ds)
        else:
            pred = predict_patches(self.val_net, self.val_x, t.model, t.ds, t.head)
        return float(np.abs(pred - self.val_y).mean())

    def elapsed(self) -> float:
        return time.monotonic() - self.start_time

    def run(self) -> None:
        t, s, solver = self.t, self.s, self.solver
        if solver.iter < t.max_iter:       # results of the model kept before: no longer its
            for name in EVAL_OUTPUTS:
                path = t.run / name
                shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
        it = solver.iter
        if 0 < it and (it % s.test_interval == 0 or it == t.max_iter) \
                and self.state.get("validated", it) != it:
            # stopped after the steps to a validation but before it (a signal acts only when
            # the solver's steps return): the iteration is validated now, or its weights would
            # never be weighed against the kept ones
            val_mae = self.validate_and_keep()
            print(f"validated iteration {it}, which the interruption skipped: validation patch "
                  f"MAE {val_mae:.4g}", flush=True)
            self.snapshot()                     # its state (best, validated) is the one to resume
        with Progress(t.max_iter, f"training {t.model.name}-{t.head} on {t.ds.tag} "
                      f"({t.init_mode})", "iter", done=solver.iter) as bar:
            while solver.iter < t.max_iter:
                it = solver.iter
                # step to the next log line, validation or snapshot, whichever comes first
                k = min(t.max_iter, *(it + n - it % n for n in (config.DISPLAY_INTERVAL,
                                                                s.test_interval,
                                                                s.snapshot))) - it
                self.step(k)
                it = solver.iter
                val_mae = self.validate_and_keep() \
                    if it % s.test_interval == 0 or it == t.max_iter else None
                loss = self.log_row(val_mae)
                if (it % s.snapshot == 0 or it == t.max_iter
                        or time.monotonic() - self.last_snapshot >= config.SNAPSHOT_SECONDS):
                    self.snapshot()
                bar.update(k, loss=loss, **({} if val_mae is None else {"val_mae": val_mae}))
        if not (t.run / "model.caffemodel").exists():
            # resumed at its last iteration from a snapshot taken before any validation, or
            # from a finished run whose model was deleted or damaged since (_drop_changed_model)
            self.validate_and_keep()
            best = self.state["best_iter"]
            if not (t.run / "model.caffemodel").exists() and best == solver.iter:
                with self._kept_weights():                  # the best: these, averaged as
                    _save_weights(self.val_net, t.run / "model.caffemodel")  # validated
            if not (t.run / "model.caffemodel").exists():
                raise TrainError(
                    f"{t.run / 'model.caffemodel'} is missing or damaged: the weights it kept "
                    f"are those of iteration {best} (the best validation MAE, "
                    f"{self.state['best_val_mae']:.4g}), and the run keeps only its last "
                    f"snapshot (iteration {solver.iter}); RESUME=0 trains it again")
            self.snapshot()

    def _kept_weights(self):
        """The weights validation sees and model.caffemodel keeps: the mean weights once
        averaging has begun (a context), the solver's own before."""
        return self.average.applied() if self.average is not None else contextlib.nullcontext()

    def validate_and_keep(self) -> float:
        """Validation MAE now; model.caffemodel updated as the model's `keep` says. Once
        averaging has begun, validation and the kept weights see the mean weights."""
        t, it = self.t, self.solver.iter
        with self._kept_weights():
            val_mae = self.validate()
            self.state["validated"] = it         # (in the next snapshot's latest.json)
            better = val_mae < self.state["best_val_mae"]
            if t.model.keep == "last" or (better and t.model.keep == "best"):
                _save_weights(self.val_net, t.run / "model.caffemodel")
            # recorded once the file is written: a stop during the write keeps the earlier
            # file (atomic.replacing), and the record that latest.json takes then describes it
            if better:
                self.state.update(best_val_mae=val_mae, best_iter=it)
        return val_mae

    def log_row(self, val_mae: float | None = None) -> float:
        """The log line of the current iteration (once); its loss. A NaN loss ends training."""
        it = self.solver.iter
        loss = float(self.solver.net.blobs["loss"].data)
        if not np.isfinite(loss):
            raise Diverged(f"training diverged: the loss is {loss} at iteration {it}; lower "
                           f"base_lr in pycount/config.py, then make train RESUME=0")
        if it != self.logged_iter:
            self.writer.writerow([it, f"{loss:.6g}", f"{self.s.lr_at(it, self.t.max_iter):.6g}",
                                  f"{self.seconds_before + self.elapsed():.1f}",
                                  "" if val_mae is None else f"{val_mae:.5g}"])
            self.log.flush()
            self.logged_iter = it
        return loss

    def snapshot(self) -> None:
        solver, snaps, state = self.solver, self.snaps, self.state
        self._check_space()
        solver.snapshot()           # writes snap_iter_N.caffemodel + .solverstate
        it = solver.iter
        state.update(iter=it, caffemodel=f"snap_iter_{it}.caffemodel",
                     solverstate=f"snap_iter_{it}.solverstate")
        state.pop("average", None)
        if self.t.data_fp:
            state["data"] = self.t.data_fp
        if self.t.val_fp:
            state["val_data"] = self.t.val_fp
        if self.average is not None and self.average.n:
            state["average"] = f"snap_iter_{it}.average.npz"
            self.average.save(snaps / state["average"])
        _atomic_json(self.latest, state)  # only now is the pair the one to resume from
        self.last_snapshot = time.monotonic()
        for old in snaps.glob("snap_iter_*"):
            if not old.name.startswith(f"snap_iter_{it}."):
                old.unlink()

    def _check_space(self) -> None:
        """Caffe aborts the process when a snapshot does not fit, leaving half a pair behind:
        stop before it with the space needed. A pair holds the weights two or three times (the
        caffemodel, and one history blob per weight in the solverstate, two for Adam); the room
        is claimed file by file (atomic.reserve), so that a file size limit (ulimit -f) or a
        quota stops it here as well as a full disk."""
        weights = _weight_bytes(self.solver.net)
        # the solverstate keeps one history blob per weight (SGD, Nesterov), two for Adam
        per = HISTORIES_PER_PARAM.get(type(self.solver).__name__, 1)
        sizes = [weights, per * weights]
        free = shutil.disk_usage(self.snaps).free
        last = self.state.get("iter")
        then = ("make train resumes " + (f"from iteration {last}" if last else "from the start"))
        try:
            if free < sum(sizes):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            atomic.reserve(self.snaps, sizes)
        except OSError as e:
            if e.errno == errno.ENOSPC:
                raise TrainError(f"{self.snaps}: {free / 2**20:.0f} MB free, a snapshot needs "
                                 f"about {sum(sizes) / 2**20:.0f} MB; free some space, then "
                                 f"{then}") from None
            raise TrainError(atomic.cannot_write(f"a snapshot into {self.snaps}", e, self.snaps,
                                                 then)) from None

    def interrupted(self) -> None:
        """Ctrl-C: the iterations done so far are logged and snapshotted, so nothing is lost."""
        if self.log is not None and self.solver.iter > self.begin_iter:
            self.log_row()
            self.snapshot()

    def close(self) -> None:
        if self.log is not None:
            self.log.close()


