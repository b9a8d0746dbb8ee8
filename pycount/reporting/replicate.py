"""`make audit-gpu` (`pycount replicate`): every cell of the paper's Tables 2-4 that pycount
models, prepared, trained and evaluated in one go, then the audit regenerated.

Meant for a GPU machine with He et al.'s ImageNet caffemodels in weights/, where the whole sweep
takes about an hour; a cell whose model lacks its weights, or whose dataset is not under
DATA_ROOT, is skipped with one line saying what to provide. Cells already evaluated with today's
settings are kept, so an interrupted sweep goes on where it stopped (training resumes from its
snapshots). ITERS= shortens every training (the schedule follows), for a dry run of the whole
path on a CPU; a cell already trained further than ITERS= is evaluated as it is, not trained again.
TEST_IMAGES=K (with ITERS=) evaluates each cell on its first K test images: counting is most of a
dry run's time on a CPU (the paper's 12 rotations of every patch), and a dry run's numbers are no
results anyway.

Ctrl-C or `kill PID` stops the step running (a training writes its snapshot first) and the sweep
with it; the same command again goes on where it stopped. A sweep killed outright (kill -9) still
stops its step: each one asks the kernel for SIGTERM when the sweep dies (PYCOUNT_PARENT_PID).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from pycount import config
from pycount.errors import TrainError, make_arg
from pycount.reporting import audit, paper
from pycount.util import atomic, interrupt
from pycount.util.interrupt import sigterm_as_interrupt
from pycount.util.progress import Progress

# The paper's columns and our stand-in for its private Ki67 set (reporting.render.COLUMNS).
DATASETS = ("bacterial", "nuclei", "ki67", "ki67-synthetic")

# A cell's steps, each a `pycount` command of its own
STEPS = ("prepare", "train", "eval")

# The signals that stop the sweep, and that it passes on to its running step (_call)
_STOPS = {signal.SIGINT, signal.SIGTERM}

def paper_cells(datasets=DATASETS, models=None) -> list[tuple[str, str, str]]:
    """(dataset, model, head) of every paper row pycount models, once each."""
    cells = []
    for row in paper.PAPER:
        if row.model is None or (models and row.model not in models):
            continue
        for d in datasets:
            if (d, row.model, row.head) not in cells:
                cells.append((d, row.model, row.head))
    return cells


def check_cells(datasets, models) -> None:
    """DATASETS= and MODELS= checked before anything runs: each a paper column, each a model of
    a paper row (anything else would train cells the audit never shows, or none)."""
    rows = sorted({row.model for row in paper.PAPER if row.model})
    bad = [d for d in datasets if d not in DATASETS]
    if not datasets or bad:
        raise config.ConfigError(f"DATASETS={','.join(datasets)}: "
                                 + (f"{', '.join(map(repr, bad))} is not a column"
                                    if bad else "names no column")
                                 + f" of the paper's tables; choose from {', '.join(DATASETS)}")
    bad = [m for m in (models or ()) if m not in rows]
    if models is not None and (not models or bad):
        raise config.ConfigError(f"MODELS={','.join(models)}: "
                                 + (f"{', '.join(map(repr, bad))} is not a model"
                                    if bad else "names no model")
                                 + f" of the paper's rows; choose from {', '.join(rows)}")


def check_gpu(gpu: int) -> None:
    """GPU=N is usable here, asked once before the first cell trains (else every cell would
    fail at its training, the reason in its log only)."""
    from pycount import device
    try:
        device.check_gpu(gpu)
    except ImportError:
        raise TrainError("pycaffe cannot be imported: run `make setup` first") from None
    except TrainError as e:
        raise TrainError(f"{e}; GPU=-1 runs the cells on the CPU (with ITERS= for a dry "
                         f"run)") from None


def _done(dataset: str, model: str, head: str) -> bool:
    """Evaluated with today's nets and solver (a stale run is trained again)."""
    from pycount.nets import builders as nets
    ds = config.dataset(dataset)
    m = config.model(model, ds)
    run = config.run_dir(ds, m, head)
    if not (run / "metrics.json").exists() or _partial(run / "metrics.json"):
        return False
    return m.classic or not nets.drift(run, nets.run_plan(ds, m, head))


def _partial(path: Path) -> bool:
    """metrics.json of a partial evaluation (TEST_IMAGES=), which a full sweep counts again;
    an unreadable one is left to the audit to name."""
    import json
    from pycount.evaluation.metrics import partial
    try:
        m = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(m, dict) and partial(m)


def _iterations(dataset: str, model: str, head: str) -> int:
    """The iterations a cell's run has trained (its train.json; 0 for none, or a damaged one,
    which its training then names)."""
    from pycount.errors import RunError
    from pycount.inference.run import read_train_info
    ds = config.dataset(dataset)
    try:
        info = read_train_info(config.run_dir(ds, config.model(model, ds), head) / "train.json")
    except RunError:
        return 0
    n = (info or {}).get("iterations")
    return n if isinstance(n, int) and not isinstance(n, bool) else 0


def _evaluated_at(dataset: str, model: str, head: str, iters: int, trained: int) -> bool:
    """A dry run's cell done before: evaluated, and trained (`trained`, its _iterations) exactly
    ITERS iterations (a classic method, which ITERS= does not shorten, fitted), so that an
    interrupted dry run goes on where it stopped, as a full sweep does."""
    ds = config.dataset(dataset)
    m = config.model(model, ds)
    return (config.run_dir(ds, m, head) / "metrics.json").exists() and (
        m.classic or trained == iters)


def _dry_run(dataset: str, model: str, head: str, iters: int) -> tuple[str | None, tuple]:
    """What a dry run (ITERS=) does with a runnable cell: (its status, no steps) when it is done
    before; (None, every step) when it is to be trained to ITERS and evaluated; or (a note, the
    eval only) for a net trained further than ITERS already, which its trainer would refuse to
    shorten and which a dry run does not throw away: it is evaluated as it is, unless its
    metrics.json is newer than its training (then it is done)."""
    trained = _iterations(dataset, model, head)
    if _evaluated_at(dataset, model, head, iters, trained):
        return f"done before (ITERS={iters})", ()
    ds = config.dataset(dataset)
    m = config.model(model, ds)
    if m.classic or trained <= iters:
        return None, STEPS
    longer = (f"trained {trained} iterations already, more than ITERS={iters} (a dry run leaves "
              f"longer trainings as they are)")
    run = config.run_dir(ds, m, head)
    try:
        evaluated = (run / "metrics.json").stat().st_mtime >= (run / "train.json").stat().st_mtime
    except OSError:                  # no metrics.json: never evaluated
        evaluated = False
    return (f"done before: {longer}", ()) if evaluated else (f"evaluated only: {longer}",
                                                              ("eval",))


def run(gpu: int = 0, iters: int | None = None, datasets=DATASETS, models=None,
        data_root=None, test_images: int | None = None) -> list[dict]:
    """Every runnable paper cell not done yet: prepare, train, eval (each a `pycount` process,
    its output in runs/replicate/logs/); returns one row per cell. Stopped (Ctrl-C, SIGTERM),
    it raises KeyboardInterrupt once the running step has finished (`pycount` exits 130)."""
    if test_images is not None and iters is None:
        raise config.ConfigError(f"TEST_IMAGES={test_images} is for a dry run (with ITERS=): a "
                                 f"sweep for the audit's results counts every test image")
    # an empty name (`DATASETS=bacterial,`: the comma-separated lists are split as given) is none
    datasets = [d for d in datasets if d]
    models = [m for m in models if m] if models is not None else None
    # the steps run in config.home(): a relative DATA_ROOT is this folder's
    data_root = str(Path(data_root).absolute()) if data_root else data_root
    check_cells(datasets, models)
    log_dir = config.runs_dir() / "replicate" / "logs"
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise TrainError(f"{log_dir} cannot be created: a file stands on its path; move it "
                         f"aside or set PYCOUNT_RUNS to another folder") from None
    except OSError as e:             # read-only, no permission
        raise TrainError(f"{log_dir} cannot be created ({e.strerror or e}); make "
                         f"{config.runs_dir()} writable or set PYCOUNT_RUNS to a folder that "
                         f"is") from None
    try:                             # present but read-only: say so once, not once per cell
        atomic.probe_writable(log_dir)
    except OSError as e:
        raise TrainError(f"{log_dir} cannot be written ({e.strerror or e}); make it writable "
                         f"or set PYCOUNT_RUNS to a folder that is") from None
    rows, cells = [], paper_cells(datasets, models)
    gpu_checked = False
    try:
        # `kill PID` stops the sweep as Ctrl-C does, its running step first (_call)
        with sigterm_as_interrupt(), Progress(len(cells), "paper cells", "cells") as bar:
            for dataset, model, head in cells:
                # without `make train`'s SCRATCH=1 advice: the sweep's cells are the paper's,
                # fine-tuned from the released weights
                reason = audit.why_not(dataset, model, data_root, alternatives=False)
                note, steps = None, STEPS
                if reason:
                    note, steps = f"skipped: {reason}", ()
                elif iters is None:
                    if _done(dataset, model, head):
                        note, steps = "done before", ()
                else:
                    note, steps = _dry_run(dataset, model, head, iters)
                status = note
                if steps:
                    if not gpu_checked:
                        check_gpu(gpu)
                        gpu_checked = True
                    status = _cell(dataset, model, head, gpu, iters, data_root, log_dir,
                                   test_images, steps)
                    if note and status.startswith("ok"):
                        status = f"{status}, {note}"
                rows.append({"dataset": dataset, "model": model, "head": head, "status": status})
                print(f"\n  {dataset} {model}({head}): {status}", flush=True)
                bar.update(1)
                if status.startswith("interrupted"):
                    raise KeyboardInterrupt
    except KeyboardInterrupt:
        print("\nsweep interrupted: the same command again goes on where it stopped (the cells "
              "evaluated are kept; an interrupted training resumes from its snapshot)",
              file=sys.stderr, flush=True)
        raise
    if rows and all(r["status"].startswith("skipped") for r in rows):
        reasons = list(dict.fromkeys(r["status"][len("skipped: "):] for r in rows))
        raise TrainError(f"none of the {len(rows)} paper cells can run here: "
                         + "; ".join(reasons[:3]) + ("; ..." if len(reasons) > 3 else ""))
    failed = [r for r in rows if r["status"].startswith("failed")]
    if failed:
        raise TrainError(f"{len(failed)} cell(s) failed: " + "; ".join(
            f"{r['dataset']} {r['model']}({r['head']}): {r['status']}" for r in failed))
    return rows


def _cell(dataset: str, model: str, head: str, gpu: int, iters: int | None, data_root,
          log_dir: Path, test_images: int | None = None, steps=STEPS) -> str:
    """The cell's steps, in order, each a `pycount` process writing to the cell's log: "ok
    (minutes)", "failed at <step> ...", or "interrupted at <step> ..." when the sweep was stopped
    (or the step itself: exit 130), which stops the sweep."""
    args = ["--dataset", dataset, "--model", model]
    if data_root:
        args += ["--data-root", str(data_root)]
    if config.model(model).classic:      # fitted once on the CPU: no head, GPU or iterations
        net, fit = [], []
    else:
        net = ["--head", head, "--gpu", str(gpu)]
        fit = net + (["--iters", str(iters)] if iters else [])
    extra = {"prepare": [], "train": fit,
             "eval": net + (["--test-images", str(test_images)] if test_images else [])}
    log = log_dir / f"{dataset}-{config.run_name(config.model(model), head)}.log"
    env = dict(os.environ)
    env[interrupt.PARENT_ENV] = str(os.getpid())     # its steps stop when the sweep dies
    start = time.monotonic()
    try:
        f = open(log, "w")
    except OSError as e:             # this cell's log only: the other cells still run
        return (f"failed: cannot write its log {log} ({e.strerror or e}); make {log_dir} "
                f"writable")
    step = steps[0]
    with f:
        try:
            for step in steps:
                rc = _call([sys.executable, "-m", "pycount", step, *args, *extra[step]], f, env)
                if rc == 130:        # the step alone was stopped: the sweep stops with it
                    return f"interrupted at {step}; see {log}"
                if rc:
                    f.flush()
                    return _failed(step, rc, log, _retrain(dataset, model, head, gpu, iters,
                                                           data_root))
        except KeyboardInterrupt:
            return f"interrupted at {step}; see {log}"
    return f"ok ({(time.monotonic() - start) / 60:.1f} min)"


def _call(argv: list[str], log, env: dict) -> int:
    """A step's process, run to its end: its exit status.

    It runs in a session of its own, so the terminal's Ctrl-C reaches the sweep alone, as `kill
    PID` does, and the sweep passes the signal on: exactly once, since a training answers the
    first by writing its snapshot and a second would cut that short. The sweep then waits for
    the process to finish (subprocess.call killed it after 0.25 s, before its snapshot) and
    raises the KeyboardInterrupt again."""
    child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                             cwd=config.home(), env=env, start_new_session=True)
    try:
        return child.wait()
    except KeyboardInterrupt as stop:
        # the same signal: SIGTERM as sigterm_as_interrupt words it, else SIGINT (a sweep started
        # in the background ignores SIGINT, and so does its step: it gets the SIGTERM it was sent)
        sig = signal.SIGTERM if interrupt.by_sigterm(stop) else signal.SIGINT
        # held back until the wait below: a second Ctrl-C before it (the step can answer the
        # first before the sweep gets there) escaped, and the sweep ended with its step running
        signal.pthread_sigmask(signal.SIG_BLOCK, _STOPS)
        if child.poll() is None:
            print(f"\nstopping the running step (process {child.pid}): a training writes its "
                  f"snapshot first", file=sys.stderr, flush=True)
            child.send_signal(sig)
        while True:
            try:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOPS)
                child.wait()
                break
            except KeyboardInterrupt:        # asked again: the first request still stands
                signal.pthread_sigmask(signal.SIG_BLOCK, _STOPS)
                print(f"still waiting for process {child.pid} to finish; `kill -9 "
                      f"{child.pid}` stops it at once (without its snapshot)", file=sys.stderr,
                      flush=True)
        raise


def _failed(step: str, rc: int, log: Path, retrain: str) -> str:
    """A failed step's status: its error (the last `pycount: error:` line of its log) and the
    log. An error that asks for RESUME=0, which `make audit-gpu` has not, gets the cell's own
    `make train` with it."""
    status = f"failed at {step} (exit {rc})"
    error = _last_error(log)
    if error:
        status += f": {error}"
    status += f"; see {log}"
    if error and "RESUME=0" in error:
        status += (f"; the sweep has no RESUME=0: train this cell again from scratch with "
                   f"`{retrain}`, then run the sweep again")
    return status


def _last_error(log: Path) -> str | None:
    """The message of the last `pycount: error:` line in a step's log (the tail of it: Caffe's
    output before can be long), or None (a crash, a traceback: the log says)."""
    prefix = "pycount: error: "
    try:
        with open(log, "rb") as f:
            f.seek(max(f.seek(0, os.SEEK_END) - (1 << 16), 0))
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return None
    found = [line[len(prefix):].strip() for line in lines if line.startswith(prefix)]
    return found[-1] if found else None


def _retrain(dataset: str, model: str, head: str, gpu: int, iters: int | None, data_root) -> str:
    """The `make train` that trains the cell again from scratch as the sweep trains it (its
    head, GPU, DATA_ROOT and ITERS), one shell word per setting."""
    words = [("DATASET", dataset), ("MODEL", model)]
    classic = config.model(model).classic      # its ITERS, HEAD and GPU are refused
    if not classic:
        words += [("HEAD", head), ("GPU", gpu)]
    if data_root:
        words.append(("DATA_ROOT", data_root))
    words.append(("RESUME", 0))
    if iters and not classic:
        words.append(("ITERS", iters))
    return "make train " + " ".join(make_arg(var, value) for var, value in words)
