"""The density counters' protocol (Lempitsky & Zisserman 2010; FCRN-A, Count-ception): train on
N images drawn from the training images 001-100 (N = 32 and 50), test on 101-200, repeat for
several draws (SEED), report the MAE's mean ± std over the draws.

Each (N, seed) is an ordinary pycount run (`make prepare train eval TRAIN_N=N SEED=s`), in
runs/<dataset>-n<N>-seed<s>/<model>/; `summarize` reads their metrics.json, and `make audit`
shows the result beside the published numbers.
"""
from __future__ import annotations

import fnmatch
import glob
import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

from pycount.errors import PycountError, RunError, TrainError, make_arg
from pycount.evaluation.metrics import partial
from pycount.util import atomic
from pycount.util import interrupt
from pycount.util.interrupt import sigterm_as_interrupt
from pycount import config
from pycount.nets import builders as nets


def resolve_dataset(name: str) -> config.DatasetConfig:
    """A named dataset, or a folder (DATASET=path/to/folder) with its settings inferred, as
    `pycount prepare` infers them (quietly: prepare prints them in each run's log)."""
    ds = config.dataset(name)
    if ds.own:
        from pycount.data import owndata
        ds = owndata.resolve(ds, say=lambda line: None)
    return ds


def _as_dataset(dataset: str | config.DatasetConfig) -> config.DatasetConfig:
    return dataset if isinstance(dataset, config.DatasetConfig) else resolve_dataset(dataset)


def run_dirs(ds: config.DatasetConfig, model: config.ModelConfig, n: int, seeds) -> list[Path]:
    return [config.run_dir(config.with_overrides(ds, train_n=n, seed=s), model) for s in seeds]


def _as_trained(ds: config.DatasetConfig, model: str) -> config.ModelConfig:
    """The model as a protocol run of `ds` trains it: an own folder's `iters` (pycount.toml)
    stretches its schedule, as `make train` does (owndata.iterations); without it every such
    run read as trained on another schedule, and was trained again from scratch each time."""
    m = config.model(model, ds)
    total = config.schedule(m, ds)
    if total is not None and total != m.solver.max_iter:
        m = replace(m, solver=m.solver.stretched(total))
    return m


def stale(run: Path, dataset: str | config.DatasetConfig, model: str, n: int,
          seed: int) -> list[str]:
    """Which prototxts of the (N, seed) run today's config would write otherwise: [] for a run
    of today's settings (or none written yet), ["solver"] for one trained on another schedule."""
    ds = config.with_overrides(_as_dataset(dataset), train_n=n, seed=seed)
    m = _as_trained(ds, model)
    if m.classic:            # no net: a fitted method is trained again from scratch each time
        return []
    return nets.drift(run, nets.run_plan(ds, m))


def summarize(dataset: str | config.DatasetConfig, model: str,
              runs_dir: Path | None = None, ns=None, seeds=None,
              recorded: dict | None = None) -> list[dict]:
    """Per N: the seeds found, each seed's MAE, their mean and (sample) std, and the seeds whose
    run was trained with other settings than today's (`stale_seeds`; `run` retrains them).
    A seed whose metrics.json is unreadable or holds no numbers is left out of its N, the others
    kept (`make audit` lists the damaged file under its other runs). With `ns` / `seeds`, only
    those (what `make protocol` was asked for; other seeds' runs on the disk stay out).
    `recorded` ({"<dataset>/<run>": metrics}, the audit's record): a seed whose run folder is
    gone counts from its record, named in `recorded_seeds`; its metrics' "stale" (the audit's
    check of the net its record names) puts it among the stale seeds."""
    runs_dir = Path(runs_dir or config.runs_dir())
    ds = _as_dataset(dataset)
    dataset = ds.name
    by_n: dict[int, dict[int, dict]] = {}
    old: dict[int, list[int]] = {}
    kept: dict[int, list[int]] = {}
    found = [(f.parent, _metrics(f)) for f in sorted(runs_dir.glob(
        f"{glob.escape(ds.tag)}-n*-seed*/{glob.escape(model)}/metrics.json"))]
    for key, m in sorted((recorded or {}).items()):
        run = runs_dir / key
        if (fnmatch.fnmatchcase(key, f"{glob.escape(ds.tag)}-n*-seed*/{glob.escape(model)}")
                and not run.exists()):
            found.append((run, _checked(dict(m))))
    for folder, m in found:
        if m is None:
            continue
        n, seed = m["train_n"], m["seed"]
        if (ns is not None and n not in ns) or (seeds is not None and seed not in seeds):
            continue
        try:    # not another draw of the (N, seed) run (RESPLIT=: -split<s>), nor a copy
            if folder.parent.name != config.with_overrides(ds, train_n=n, seed=seed).tag:
                continue
        except PycountError:        # an N this dataset cannot draw: a damaged metrics.json
            continue
        if m.get("dataset") == dataset and n:
            by_n.setdefault(n, {})[seed] = m
            if stale(folder, ds, model, n, seed) if folder.exists() else m.get("stale"):
                old.setdefault(n, []).append(seed)
            elif not folder.exists():
                kept.setdefault(n, []).append(seed)
    out = []
    for n in sorted(by_n):
        # the mean is over the seeds of today's settings; over all, flagged, when none is
        stale_seeds = sorted(old.get(n, []))
        current = [s for s in sorted(by_n[n]) if s not in stale_seeds] or sorted(by_n[n])
        maes = np.array([by_n[n][s]["mae"] for s in current])
        out.append({"dataset": dataset, "model": model, "train_n": n,
                    "seeds": current, "mae_per_seed": maes.round(4).tolist(),
                    "mae_mean": float(maes.mean()),
                    "mae_std": float(maes.std(ddof=1)) if len(maes) > 1 else None,
                    "mre_mean": float(np.mean([by_n[n][s]["mre"] for s in current])),
                    "stale_seeds": stale_seeds,
                    "stale_mae": {str(s): round(by_n[n][s]["mae"], 4) for s in stale_seeds},
                    "recorded_seeds": sorted(s for s in kept.get(n, []) if s in current)})
    return out


def _metrics(path: Path) -> dict | None:
    """A run's metrics.json with its train_n, seed, mae and mre checked (ints and finite floats),
    or None when it is unreadable, not a JSON object or lacks one of them."""
    try:
        m = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return _checked(m)


def _checked(m) -> dict | None:
    """Metrics (a metrics.json's, or a recorded run's) with train_n, seed, mae and mre checked;
    None as _metrics."""
    try:
        m["train_n"], m["seed"] = int(m["train_n"]), int(m["seed"])
        m["mae"], m["mre"] = _number(m["mae"]), _number(m["mre"])
    except (ValueError, KeyError, TypeError, IndexError, OverflowError):
        return None
    # a partial evaluation (TEST_IMAGES=, as a dry run) is no result: measured again
    return None if partial(m) else m


def _number(v) -> float:
    """A metric as a finite float; TypeError/ValueError for anything else (a string, null, a
    boolean, NaN)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
        raise ValueError(f"{v!r} is not a number")
    return float(v)


def pending(dataset: str | config.DatasetConfig, model: str, ns,
            seeds) -> list[tuple[int, int, bool]]:
    """(N, seed, retrain) of every run still to do: not evaluated yet, or trained with other
    settings than today's (retrain: from scratch, not resumed from its snapshots)."""
    ds, m = _as_dataset(dataset), config.model(model)
    todo = []
    for n in ns:
        for s in seeds:
            run = run_dirs(ds, m, n, [s])[0]
            begun = any((run / f).is_file() for f in ("train_val.prototxt", "solver.prototxt",
                                                      "metrics.json"))
            if begun and stale(run, ds, model, n, s):
                # (with or without its metrics: a run stopped before them was resumed under
                # the new schedule, mixing the two)
                todo.append((n, s, True))
            elif not (run / "metrics.json").exists():
                todo.append((n, s, False))
            elif _metrics(run / "metrics.json") is None:
                todo.append((n, s, False))      # damaged: its numbers are measured again
    return todo


def check_sweep(ns, seeds, jobs: int) -> tuple[list[int], list[int]]:
    """NS=, SEEDS= and JOBS= checked before anything runs; the N and seeds with repeats dropped
    (a repeat would train the same run folder twice at once, and its lock fail one of them)."""
    ns, seeds = list(dict.fromkeys(ns)), list(dict.fromkeys(seeds))
    if not ns:
        raise config.ConfigError("NS= names no N: give the numbers of training images to draw, "
                                 "comma-separated (e.g. NS=32,50)")
    if not seeds:
        raise config.ConfigError("SEEDS= names no seed: give the draws to make, comma-separated "
                                 "(e.g. SEEDS=1,2,3,4,5)")
    bad = [n for n in ns if n < 1]
    if bad:
        raise config.ConfigError(f"NS={','.join(map(str, ns))}: N = {', '.join(map(str, bad))} "
                                 f"is not valid; each N must be 1 or more (all the training "
                                 f"images is `make train`, not the protocol)")
    bad = [s for s in seeds if s < 0]
    if bad:
        raise config.ConfigError(f"SEEDS={','.join(map(str, seeds))}: seed "
                                 f"{', '.join(map(str, bad))} is not valid; use whole numbers, "
                                 f"0 or more")
    if jobs < 1:
        raise config.ConfigError(f"JOBS={jobs} is not valid: run 1 or more (N, seed) runs at a "
                                 f"time (default {config.PROTOCOL_JOBS})")
    return ns, seeds


def _trained(run: Path, ds: config.DatasetConfig, model: str) -> bool:
    """The run's training is complete (train.json not interrupted, its iterations at the model's
    schedule, the model kept): only its evaluation is to be done again."""
    from pycount.inference.run import read_train_info
    try:
        info = read_train_info(run / "train.json") or {}
        iters = int(info["iterations"])
    except (RunError, KeyError, TypeError, ValueError):   # none, or damaged: trained on
        return False
    return (not info.get("interrupted")
            and iters >= _as_trained(ds, model).solver.max_iter
            and (run / "model.caffemodel").is_file())


def _check_data(ds: config.DatasetConfig, data_root) -> None:
    """A named release must be under DATA_ROOT before (N, seed) runs are started: otherwise each
    one fails at prepare, with the reason in its log only."""
    if ds.generated or ds.own:
        return
    from pycount.data import prepare
    root = prepare.dataset_root(ds, data_root)
    if not root.is_dir():
        raise config.ConfigError(f"{root} is missing: put the {ds.name} release there "
                                 f"(make data DATASET={ds.name} "
                                 f"{make_arg('DATA_ROOT', root.parent)}) or set DATA_ROOT to "
                                 f"the folder holding it")


class _Children:
    """The runs' processes, so that a protocol stopped by `kill PID` stops them too (Ctrl-C in a
    terminal reaches them itself): each is sent SIGTERM, which a training answers with a
    snapshot, and waited for; no step starts once stopping began."""

    def __init__(self):
        self.live: set[subprocess.Popen] = set()
        self.stopping = False
        self.lock = threading.Lock()

    def call(self, argv: list[str], **kwargs) -> int:
        with self.lock:
            if self.stopping:
                return -signal.SIGTERM
            p = subprocess.Popen(argv, **kwargs)
            self.live.add(p)
        try:
            return p.wait()
        finally:
            with self.lock:
                self.live.discard(p)

    def stop(self) -> None:
        with self.lock:
            self.stopping = True
            live = list(self.live)
        for p in live:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in live:
            p.wait()


def _job(cmd_base: list[str], n: int, seed: int, retrain: bool, threads: int,
         log_dir: Path, steps=("prepare", "train", "eval"), children: _Children | None = None,
         name: str = "") -> tuple:
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    env[interrupt.PARENT_ENV] = str(os.getpid())     # its runs stop when the protocol dies
    # (named after the dataset and model too: another protocol's logs stay)
    log = log_dir / f"{name + '-' if name else ''}n{n}-seed{seed}.log"
    start = time.monotonic()
    children = children or _Children()
    try:
        f = open(log, "w")
    except OSError as e:             # one run's log: the others still go on
        return n, seed, f"cannot write its log {log} ({e.strerror or e})", 0.0
    with f:
        for step in steps:
            extra = ["--restart"] if retrain and step == "train" else []
            rc = children.call([sys.executable, "-m", "pycount", step, *cmd_base,
                                "--train-n", str(n), "--seed", str(seed), *extra], stdout=f,
                               stderr=subprocess.STDOUT, env=env)
            if rc:
                return n, seed, f"{step} failed (exit {rc}); see {log}", time.monotonic() - start
    return n, seed, "ok", time.monotonic() - start


def run(dataset: str, model: str, ns=config.PROTOCOL_NS, seeds=config.PROTOCOL_SEEDS,
        data_root=None, jobs: int = 1) -> list[dict]:
    """Prepare, train and evaluate every (N, seed) not evaluated yet, or trained with other
    settings than today's (those again from scratch), `jobs` at a time (one BLAS thread each when
    jobs > 1: small convolutions scale poorly across threads), then summarize into
    runs/protocol/<dataset>-<model>.{json,md}. `dataset` may be a folder of one's own images."""
    ns, seeds = check_sweep(ns, seeds, jobs)
    base = ["--dataset", dataset, "--model", model]
    if data_root:
        base += ["--data-root", str(data_root)]
    ds = resolve_dataset(dataset)
    n_train = len(ds.train_ids)
    too_many = [n for n in ns if n_train and n >= n_train]
    if too_many:
        raise config.ConfigError(f"{dataset} has {n_train} training images: N = "
                                 f"{', '.join(map(str, too_many))} leaves none to validate on; "
                                 f"choose smaller NS=")
    todo = pending(ds, model, ns, seeds)
    if todo:
        _check_data(ds, data_root)
    out_dir = config.runs_dir() / "protocol"
    try:
        (out_dir / "logs").mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise TrainError(f"{out_dir / 'logs'} cannot be created ({e.strerror or e}); make "
                         f"{config.runs_dir()} writable or set PYCOUNT_RUNS to a folder that "
                         f"is") from None
    threads = config.BLAS_THREADS_SHARED if jobs > 1 \
        else int(os.environ.get("OPENBLAS_NUM_THREADS", "0") or 0) or os.cpu_count() or 1
    print(f"protocol {ds.name}/{model}: {len(todo)} of {len(ns) * len(seeds)} runs to do, "
          f"{jobs} at a time; logs in {out_dir / 'logs'}", flush=True)
    for n, s, _ in filter(lambda t: t[2], todo):
        print(f"  N={n} seed={s}: trained with other settings than today's {model}: "
              f"training it again from scratch", flush=True)
        # its MAE goes with the old weights, which the retraining replaces; without it, an
        # interrupted retraining is resumed by the next `make protocol`
        run = run_dirs(ds, config.model(model), n, [s])[0]
        (run / "metrics.json").unlink(missing_ok=True)
    steps = {}
    for n, s, retrain in todo:
        run = run_dirs(ds, config.model(model), n, [s])[0]
        if not retrain and (run / "metrics.json").exists():
            # damaged metrics.json: evaluated again; trained again only if its training is not
            # complete (then resumed from its snapshot)
            again = ("eval",) if _trained(run, ds, model) else ("prepare", "train", "eval")
            steps[n, s] = again
            print(f"  N={n} seed={s}: {run / 'metrics.json'} holds no result (damaged, or a "
                  f"partial evaluation): "
                  f"{'evaluating it again' if again == ('eval',) else 'finishing its run'}",
                  flush=True)
    failed = []
    children = _Children()
    pool = ThreadPoolExecutor(jobs)
    try:
        with sigterm_as_interrupt():
            for n, s, status, secs in pool.map(
                    lambda a: _job(base, *a, threads, out_dir / "logs",
                                   steps.get(a[:2], ("prepare", "train", "eval")), children,
                                   f"{ds.name}-{model}"),
                    todo):
                print(f"  N={n} seed={s}: {status} ({secs / 60:.1f} min)", flush=True)
                if status != "ok":
                    failed.append(status)
    except KeyboardInterrupt:
        # the runs stop too (a training writes its snapshot): `make protocol` resumes them
        print("\nprotocol interrupted: stopping its runs", file=sys.stderr, flush=True)
        children.stop()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    rows = summarize(ds, model, ns=set(ns), seeds=set(seeds))
    atomic.write_text(out_dir / f"{ds.name}-{model}.json", json.dumps(rows, indent=1))
    atomic.write_text(out_dir / f"{ds.name}-{model}.md", to_markdown(rows))
    print(to_markdown(rows))
    if failed:
        raise TrainError("; ".join(failed))
    return rows


def to_markdown(rows: list[dict]) -> str:
    lines = ["| dataset | model | N | seeds | MAE mean ± std over seeds | MAE per seed | "
             "trained with older settings (not in the mean) |",
             "|---|---|---:|---|---:|---|---|"]
    for r in rows:
        std = "n/a (one seed)" if r["mae_std"] is None else f"{r['mae_std']:.2f}"
        stale_seeds = r.get("stale_seeds") or []
        if stale_seeds and set(stale_seeds) >= set(r["seeds"]):
            older = "all: `make protocol` with these seeds retrains them"
        else:
            older = ", ".join(f"seed {s}: {r['stale_mae'][str(s)]:.2f}" for s in stale_seeds)
        lines.append(f"| {r['dataset']} | {r['model']} | {r['train_n']} | "
                     f"{', '.join(map(str, r['seeds']))} | {r['mae_mean']:.2f} ± {std} | "
                     f"{', '.join(f'{v:.2f}' for v in r['mae_per_seed'])} | {older} |")
    return "\n".join(lines) + "\n"
