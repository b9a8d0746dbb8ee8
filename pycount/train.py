"""Training with a pycaffe solver: progress, validation, atomic snapshots, resume, logs.

A run folder (runs/<dataset>/<model>/) holds the prototxts the run used, `snapshots/` with the
solver's caffemodel/solverstate pairs, `snapshots/latest.json` naming the last complete pair (written
after both files, atomically: a pair interrupted half-way is never resumed from), `model.caffemodel`
(the weights with the best validation MAE), `train_log.csv` and `loss.png`.
"""
from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import math
import time
from pathlib import Path

import numpy as np

from . import atomic, config, lmdbio, nets
from .progress import Progress


class TrainError(RuntimeError):
    """Training cannot start or go on; the message says why and what to do."""


class Diverged(TrainError):
    """The loss became NaN or infinite. Caffe's max pooling then writes outside its buffers (a NaN
    never wins a comparison, so its argmax index stays -1), so the process must end without
    running any more Caffe code, destructors included."""


def _atomic_json(path: Path, obj) -> None:
    atomic.write_text(path, json.dumps(obj, indent=1))


def _save_weights(net, path: Path) -> None:
    with atomic.replacing(path) as tmp:
        net.save(str(tmp))


def cuda_devices() -> tuple[bool, int, str]:
    """(this Caffe build has CUDA, number of usable GPUs, why not) — checked without touching
    Caffe's GPU code, since caffe.set_mode_gpu() aborts the process when no GPU is usable."""
    import ctypes
    import subprocess
    import caffe
    so = Path(caffe._caffe.__file__)
    libs = subprocess.run(["ldd", str(so)], capture_output=True, text=True).stdout
    if "libcudart" not in libs:
        return False, 0, (f"this Caffe build is CPU-only ({so.parent.parent.parent.parent.name}); "
                          f"build the CUDA variant with `make caffe WITH_CUDA=1`")
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return True, 0, "no NVIDIA driver found (libcuda.so.1); install one, or use GPU=-1"
    count = ctypes.c_int(0)
    if cuda.cuInit(0) != 0 or cuda.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return True, 0, "the NVIDIA driver found no usable GPU; check nvidia-smi, or use GPU=-1"
    return True, count.value, ""


def set_device(gpu: int):
    """CPU for gpu < 0; else that GPU, after checking it is usable (set_mode_gpu would abort)."""
    import caffe
    if gpu < 0:
        caffe.set_mode_cpu()
        return caffe
    has_cuda, n, why = cuda_devices()
    if n <= gpu:
        raise TrainError(f"GPU={gpu} asked for, but " + (why or f"only {n} GPU(s) found"))
    caffe.set_device(gpu)
    caffe.set_mode_gpu()
    return caffe


def load_val_patches(path: Path, limit: int = 20000) -> tuple[np.ndarray, np.ndarray]:
    """The validation LMDB as arrays (RGB patches N x p x p x 3, counts N), at most `limit`."""
    images, labels = [], []
    for _, rgb, label in lmdbio.read_lmdb(path, limit=limit):
        images.append(rgb)
        labels.append(label)
    if not images:
        raise TrainError(f"{path}: the validation LMDB is empty; re-run `make prepare`")
    return np.stack(images), np.asarray(labels, np.float64)


def load_val_crops(images: Path, targets: Path, limit: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    """A density model's validation crops (RGB, N x c x c x 3) and their true counts (the sums of
    their targets), at most `limit`."""
    rgb = [p for _, p, _ in lmdbio.read_lmdb(images, limit=limit)]
    sums = [float(d.sum()) for _, d in lmdbio.read_lmdb(targets, limit=limit,
                                                        decode=lmdbio.decode_float_datum)]
    if not rgb or len(rgb) != len(sums):
        raise TrainError(f"{images}: the validation crops are missing or do not match "
                         f"{targets}; re-run `make prepare`")
    return np.stack(rgb), np.asarray(sums, np.float64)


def predict_density_sums(net, rgb: np.ndarray, model: config.ModelConfig,
                         ds: config.DatasetConfig, batch: int = 32) -> np.ndarray:
    """The sums of the density a loaded pycaffe deploy net predicts for RGB crops."""
    from .backends import CaffeBackend
    forward = CaffeBackend.from_net(net, model, ds, "R", batch)._forward
    return np.concatenate([forward(nets.preprocess(rgb[i:i + batch], model, ds))
                           .reshape(len(rgb[i:i + batch]), -1).sum(axis=1)
                           for i in range(0, len(rgb), batch)]).astype(np.float64)


class WeightAverage:
    """The running mean of a net's parameters over the iterations after `start` (Polyak
    averaging). A density net's count is the sum over every pixel, so a small random step of the
    last weights (the output bias moves every pixel at once) moves each image's count: on the
    bacterial set, two runs of one draw whose batches came in an order shifted by one ended with
    biases 2.6 cells per image apart (test MAE 6.37 and 4.73). The mean over the last phase of
    training averages that walk out."""

    def __init__(self, net, start: int):
        self.start, self.n = start, 0
        self.blobs = [b for k in net.params for b in net.params[k]]
        self.sums = [np.zeros(b.data.shape, np.float64) for b in self.blobs]

    def add(self) -> None:
        for total, b in zip(self.sums, self.blobs):
            total += b.data
        self.n += 1

    def mean(self) -> list[np.ndarray]:
        return [total / self.n for total in self.sums]

    @contextlib.contextmanager
    def applied(self):
        """The net holds the mean weights inside the block, its own ones again after it."""
        if not self.n:
            yield
            return
        own = [b.data.copy() for b in self.blobs]
        for b, m in zip(self.blobs, self.mean()):
            b.data[...] = m
        try:
            yield
        finally:
            for b, w in zip(self.blobs, own):
                b.data[...] = w

    def save(self, path: Path) -> None:
        with atomic.replacing(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, *self.sums, n=self.n)

    def load(self, path: Path) -> None:
        with np.load(path) as z:
            sums = [z[f"arr_{i}"] for i in range(len(self.sums))]
            if [a.shape for a in sums] != [a.shape for a in self.sums]:
                raise TrainError(f"{path} does not match this net's parameters; train again "
                                 f"with RESUME=0")
            self.sums, self.n = sums, int(z["n"])


def predict_patches(net, rgb: np.ndarray, model: config.ModelConfig, ds: config.DatasetConfig,
                    head: str, batch: int = 256) -> np.ndarray:
    """Counts predicted by a loaded pycaffe deploy net for RGB patches (N x s x s x 3)."""
    from .backends import CaffeBackend
    return CaffeBackend.from_net(net, model, ds, head, batch)(rgb)


class Trainer:
    def __init__(self, ds: config.DatasetConfig, model: config.ModelConfig, head: str = "R",
                 gpu: int = -1, run: Path | None = None, max_iter: int | None = None):
        self.ds, self.model, self.head = ds, model, head
        self.run = Path(run or config.run_dir(ds, model, head))
        self.max_iter = max_iter or model.solver.max_iter
        if self.max_iter != model.solver.max_iter:
            # the solver's schedule (steps, poly decay, weight averaging) follows ITERS=
            model = dataclasses.replace(model, solver=model.solver.stretched(self.max_iter))
            self.model = model
        lmdb_root = config.lmdb_dir(ds)
        self.train_lmdb, self.val_lmdb = lmdb_root / "train_lmdb", lmdb_root / "val_lmdb"
        self.train_targets = self.val_targets = None
        if model.density:
            self.train_lmdb, self.train_targets = config.density_lmdbs(ds, "train")
            self.val_lmdb, self.val_targets = config.density_lmdbs(ds, "val")
        paths = [self.train_lmdb, self.val_lmdb, self.train_targets, self.val_targets]
        for path in filter(None, paths):
            if lmdbio.read_manifest(path) is None:
                extra = f" MODEL={model.name}" if model.density else ""
                subset = f" TRAIN_N={ds.train_n} SEED={ds.seed}" if ds.train_n else ""
                raise TrainError(f"{path}: no prepared LMDB; run `make prepare DATASET={ds.name}"
                                 f"{extra}{subset}` first")
        self.gpu = gpu

    def _plan(self) -> nets.NetPlan:
        return nets.run_plan(self.ds, self.model, self.head)

    def _pretrained(self) -> Path | None:
        """The ImageNet weights a pretrained model starts from (checked), None from scratch."""
        if self.model.finetune == "scratch" or not self.model.weights:
            return None
        from . import weights
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
                                 f"runs (an interrupted write?); run `make prepare "
                                 f"DATASET={self.ds.name} MODEL={self.model.name}` again")

    def _check_resumable(self, plan: nets.NetPlan) -> None:
        """A run's snapshots resume only into the net they were written by; a changed solver (a
        longer max_iter, another schedule) is allowed, and said."""
        changed = nets.drift(self.run, plan)
        subset = f" TRAIN_N={self.ds.train_n} SEED={self.ds.seed}" if self.ds.train_n else ""
        again = (f"`make train DATASET={self.ds.name} MODEL={self.model.name}{subset}"
                 f"{'' if self.head == 'R' else ' HEAD=' + self.head} RESUME=0` trains it again "
                 f"from scratch")
        if "train_val" in changed:
            raise TrainError(f"{self.run}: its snapshots were written by another net than "
                             f"today's {self.model.name} (its train_val.prototxt differs from "
                             f"what pycount/config.py gives now); {again}")
        if changed:
            print(f"note: {self.run / 'solver.prototxt'} differs from today's solver (max_iter "
                  f"{self.max_iter}); resuming with today's. For a run of today's settings "
                  f"alone, {again}", flush=True)

    def _solver(self, caffe, files: dict, pretrained: Path | None):
        """(solver, validation deploy net sharing its weights, step(k) function).

        Paper mode (a frozen pretrained trunk): the solver trains a head-only net on cached trunk
        features (pycount.features); otherwise the plain solver over the LMDB."""
        if self.model.finetune == "head" and pretrained is not None:
            from . import features
            feats, labels = features.trunk_features(
                files["deploy"], pretrained, self.train_lmdb, self.model, self.ds,
                self.run.parent / ".feature-cache", batch=64)
            head_net = self.run / "head.prototxt"
            head_net.write_text(features.head_net_prototxt(
                files["train_val"], feats.shape[1], self.model.solver.batch))
            solver = caffe.get_solver(str(features.write_solver(
                files["solver"], head_net.resolve(), self.run / "head_solver.prototxt")))

            def step(k):
                for _ in range(k):
                    features.feed(solver.net, feats, labels, solver.iter * self.model.solver.batch)
                    solver.step(1)
            features.feed(solver.net, feats, labels, 0)   # so that a forward() sees batch 0
            self.init_mode = "head on cached trunk features"
        else:
            solver = caffe.get_solver(str(files["solver"]))
            if pretrained is not None:
                from . import weights
                self.surgery = weights.init_from_pretrained(solver.net, pretrained)
            step = solver.step
            self.init_mode = "plain solver"
        val_net = caffe.Net(str(files["deploy"]), caffe.TEST,
                            **({"weights": str(pretrained)} if pretrained else {}))
        val_net.share_with(solver.net)      # validation sees the weights being trained
        return solver, val_net, step

    def train(self, resume: bool = True) -> dict:
        caffe = set_device(self.gpu)
        self._check_lmdb_patch()
        pretrained = self._pretrained()
        snaps = self.run / "snapshots"
        snaps.mkdir(parents=True, exist_ok=True)
        plan = self._plan()
        latest = snaps / "latest.json"
        if resume and latest.exists():
            self._check_resumable(plan)
        files = nets.write_net_files(plan, self.run, snapshot_prefix=str((snaps / "snap").resolve()))
        if self.model.density:
            val_x, val_y = load_val_crops(self.val_lmdb, self.val_targets)
        else:
            val_x, val_y = load_val_patches(self.val_lmdb)
        solver, val_net, solver_step = self._solver(caffe, files, pretrained)
        s = self.model.solver
        average = WeightAverage(solver.net, s.average_after) if s.average_after else None

        def step(k):
            """k solver iterations; each one past average_after joins the weight average."""
            target = solver.iter + k
            if average is None or target <= average.start:
                return solver_step(k)
            if solver.iter < average.start:
                solver_step(average.start - solver.iter)
            while solver.iter < target:
                solver_step(1)
                average.add()

        log_path = self.run / "train_log.csv"
        state = {"best_val_mae": math.inf, "best_iter": -1}
        if resume and latest.exists():
            state = json.loads(latest.read_text())
            solver.restore(state["solverstate"])
            if average is not None and state.get("average"):
                average.load(Path(state["average"]))
            print(f"resuming from iteration {solver.iter} ({state['solverstate']})", flush=True)
        else:
            log_path.unlink(missing_ok=True)
        # a killed run (power cut, SIGKILL) logged rows past its last snapshot; they are redone now,
        # so they go, and the seconds column goes on from the kept rows: it is total training time
        seconds_before = _trim_log(log_path, solver.iter)
        new_log = not log_path.exists()
        log = open(log_path, "a", newline="")
        writer = csv.writer(log, lineterminator="\n")
        averaged = average.applied if average is not None else contextlib.nullcontext

        def validate() -> float:
            if self.model.density:
                pred = predict_density_sums(val_net, val_x, self.model, self.ds)
            else:
                pred = predict_patches(val_net, val_x, self.model, self.ds, self.head)
            return float(np.abs(pred - val_y).mean())

        if new_log:
            writer.writerow(["iter", "loss", "lr", "seconds", "val_mae"])
            if solver.iter == 0:             # the starting point of the curves
                loss0 = float(solver.net.forward()["loss"])
                writer.writerow([0, f"{loss0:.6g}", s.base_lr, 0, f"{validate():.5g}"])
        display = 20
        start, begin_iter = time.monotonic(), solver.iter

        def snapshot():
            solver.snapshot()           # writes snap_iter_N.caffemodel + .solverstate
            it = solver.iter
            state.update(iter=it, caffemodel=str(snaps / f"snap_iter_{it}.caffemodel"),
                         solverstate=str(snaps / f"snap_iter_{it}.solverstate"))
            state.pop("average", None)
            if average is not None and average.n:
                state["average"] = str(snaps / f"snap_iter_{it}.average.npz")
                average.save(Path(state["average"]))
            _atomic_json(latest, state)  # only now is the pair the one to resume from
            for old in snaps.glob("snap_iter_*"):
                if not old.name.startswith(f"snap_iter_{it}."):
                    old.unlink()

        try:
            with Progress(self.max_iter, f"training {self.model.name}-{self.head} on "
                          f"{self.ds.tag} ({self.init_mode})", "iter", done=solver.iter) as bar:
                while solver.iter < self.max_iter:
                    it = solver.iter
                    # step to the next log line, validation or snapshot, whichever comes first
                    k = min(self.max_iter, *(it + n - it % n for n in (display, s.test_interval,
                                                                          s.snapshot))) - it
                    step(k)
                    loss = float(solver.net.blobs["loss"].data)
                    it = solver.iter
                    if not np.isfinite(loss):
                        raise Diverged(f"training diverged: the loss is {loss} at iteration "
                                       f"{it}; lower base_lr in pycount/config.py, then "
                                       f"make train RESUME=0")
                    lr = s.lr_at(it, self.max_iter)
                    val_mae = ""
                    if it % s.test_interval == 0 or it == self.max_iter:
                        # once averaging has begun, validation and the kept weights see the mean
                        with averaged():
                            val_mae = validate()
                            if val_mae < state["best_val_mae"]:
                                state.update(best_val_mae=val_mae, best_iter=it)
                                if self.model.keep == "best":
                                    _save_weights(val_net, self.run / "model.caffemodel")
                            if self.model.keep == "last":
                                _save_weights(val_net, self.run / "model.caffemodel")
                    writer.writerow([it, f"{loss:.6g}", f"{lr:.6g}",
                                     f"{seconds_before + time.monotonic() - start:.1f}",
                                     f"{val_mae:.5g}" if val_mae != "" else ""])
                    log.flush()
                    if it % s.snapshot == 0 or it == self.max_iter:
                        snapshot()
                    info = {"loss": loss}
                    if val_mae != "":
                        info["val_mae"] = val_mae
                    bar.update(k, **info)
        except KeyboardInterrupt:
            print("\ninterrupted: writing a snapshot to resume from (make train RESUME=1)",
                  flush=True)
            snapshot()
            raise
        finally:
            log.close()
        session_seconds = time.monotonic() - start
        summary = {
            "dataset": self.ds.name, "model": self.model.name, "head": self.head,
            "iterations": solver.iter, "best_iter": state["best_iter"],
            "best_val_patch_mae": state["best_val_mae"],
            "seconds": round(seconds_before + session_seconds, 1),
            "seconds_this_session": round(session_seconds, 1),
            "iterations_this_session": solver.iter - begin_iter,
            "init": self.model.finetune, "weights": str(pretrained) if pretrained else None,
            "solver": self.init_mode, "surgery": getattr(self, "surgery", None),
            "net": nets.net_name(plan), "dataset_tag": self.ds.tag, "patch": self.ds.patch,
            "stride": self.ds.stride, "size": self.ds.size, "rot_step": self.ds.rot_step,
            "train_n": self.ds.train_n, "seed": self.ds.seed, "keep": self.model.keep,
            "averaged_iterations": average.n if average is not None else 0,
            "train_images": lmdbio.read_manifest(self.train_lmdb).get("images"),
        }
        if self.model.density:
            summary.update(sigma=self.ds.sigma, crop=self.ds.crop, crop_stride=self.ds.crop_stride)
        _atomic_json(self.run / "train.json", summary)
        plot_log(log_path, self.run / "loss.png")
        return summary


def _trim_log(log_path: Path, last_iter: int) -> float:
    """Drop the rows of `log_path` past `last_iter` (atomically); return the seconds column of
    the last row kept."""
    if not log_path.exists():
        return 0.0
    with open(log_path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return 0.0
    head = rows[0]
    # a row cut short by the kill has fewer fields than the header
    body = [r for r in rows[1:]
            if len(r) == len(head) and r[0].isdigit() and int(r[0]) <= last_iter]
    if len(body) != len(rows) - 1:
        with atomic.replacing(log_path) as tmp, open(tmp, "w", newline="") as f:
            csv.writer(f, lineterminator="\n").writerows([head] + body)
    return float(body[-1][head.index("seconds")]) if body else 0.0


def plot_log(log_path: Path, png: Path) -> None:
    """Loss and validation MAE against iterations, from the CSV log."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = list(csv.DictReader(open(log_path)))
    if not rows:
        return
    rows = [r for r in rows if r["loss"]]
    it = np.array([int(r["iter"]) for r in rows])
    loss = np.array([float(r["loss"]) for r in rows])
    val = [(int(r["iter"]), float(r["val_mae"])) for r in rows if r["val_mae"]]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(it, loss, lw=0.8, label="training loss")
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    if val:
        ax2 = ax.twinx()
        ax2.plot(*zip(*val), "o-", color="C1", label="validation patch MAE")
        ax2.set_ylabel("validation MAE (cells / patch)")
        if min(v for _, v in val) > 0:   # the untrained start is often 100x the end: log shows both
            ax2.set_yscale("log")
        ax2.legend(loc="upper right")
    ax.legend(loc="upper left")
    ax.set_title(f"{png.parent.parent.name} / {png.parent.name}")
    fig.tight_layout()
    atomic.save_figure(fig, png, dpi=100)
