"""`make audit`: our runs beside the numbers Xue et al. (2016) published, with the differences.

The paper's numbers are kept as the strings it prints (precision and spacing included) so they
can be checked against the paper's text; every paper row is reported whether we have a run or not.
This module reads the runs and builds the report; reporting.paper holds the paper's tables,
reporting.render writes the report as Markdown and HTML, reporting.charts draws its charts.
"""
from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import numpy as np

from pycount.util import atomic
from pycount import config
from pycount.errors import PycountError, WeightsError
from pycount.evaluation.metrics import partial
from pycount.inference.run import run_max_iter
from pycount.nets import builders as nets
from pycount.nets import weights
from pycount.reporting.charts import chart, validation_chart
from pycount.reporting.paper import (CITATION, PAPER, PAPER_COLUMNS, PAPER_DATASETS,
                                     PUBLISHED_DENSITY, SOURCES, TITLES, split_mae)
from pycount.reporting.render import (COLUMNS, RECORDED, Column, commands, curves, make_args,
                                      shown, tally, to_blocks, to_html, to_markdown, wall_time)

REQUIRED = ("mae", "mae_std", "mre", "baseline_mae", "n_images")

# What the report reads of a run's train.json besides the text it prints as it is: the values it
# computes with or formats as numbers (None: not recorded, as for a fitted classic method)
TRAIN_NUMBERS = ("iterations", "best_iter", "best_val_patch_mae", "seconds")
# metrics.json values the report prints as text; if present, each must be a string
METRIC_NAMES = ("dataset", "model", "head")


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_measure(v) -> bool:
    """An error, count or size as a run can measure it: a finite number, 0 or more (a hand-edited
    metrics.json may hold NaN, an infinity, a negative or a 400-digit integer)."""
    try:
        return _is_number(v) and math.isfinite(float(v)) and v >= 0
    except OverflowError:
        return False


def _json_kind(v) -> str:
    """A parsed JSON value's type as JSON names it."""
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "number",
            float: "number", type(None): "null"}.get(type(v), type(v).__name__)


def _brief(v) -> str:
    """A JSON value as a message shows it, a long one cut."""
    text = json.dumps(v)
    return text if len(text) <= 24 else text[:20] + "..."


def _read(path: Path) -> dict:
    """A run's metrics.json; {"error": why} when it cannot be used (not JSON, not an object, a
    value the report needs missing or of the wrong type): that run is reported as unreadable,
    the others as they are."""
    fix = "make eval writes it anew"
    try:
        m = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        return {"error": f"unreadable {shown(path)} ({e}; {fix})"}
    return _checked(m, shown(path), fix)


def _checked(m, where: str, fix: str) -> dict:
    """Metrics (a metrics.json's, or a recorded run's) as the report needs them; {"error": why}
    when they are not (not an object, a value missing or of the wrong type, a partial count)."""
    if not isinstance(m, dict):
        return {"error": f"unreadable {where}: a JSON object was expected, not "
                         f"{_json_kind(m)} ({fix})"}
    missing = [k for k in REQUIRED if k not in m]
    if missing:
        return {"error": f"unreadable {where}: it lacks {', '.join(missing)} ({fix})"}
    wrong = [f"{k} is {_brief(m[k])}, not a number" for k in REQUIRED
             if not _is_number(m[k])]
    wrong += [f"{k} is {_brief(m[k])}, which no evaluation measures" for k in REQUIRED
              if _is_number(m[k]) and not _is_measure(m[k])]
    wrong += [f"{k} is {json.dumps(m[k])}, not a name" for k in METRIC_NAMES
              if k in m and not isinstance(m[k], str)]
    if wrong:
        return {"error": f"unreadable {where}: {'; '.join(wrong)} ({fix})"}
    if partial(m):
        return {"error": f"a partial evaluation: {where} counts {m['n_images']:g} of the "
                         f"{m['test_images_of']:g} test images (TEST_IMAGES=, as a dry run "
                         f"does), so no result; make eval without TEST_IMAGES counts them all"}
    return m


def _train_problem(t) -> str | None:
    """Why a run's parsed train.json cannot be reported (not an object, a number that is not
    one), or None."""
    if not isinstance(t, dict):
        return f"a JSON object was expected, not {_json_kind(t)}"
    wrong = [f"{k} is {json.dumps(t[k])}, not a number" for k in TRAIN_NUMBERS
             if t.get(k) is not None and not _is_number(t[k])]
    return "; ".join(wrong) or None


def _mark(cell: dict, col: Column) -> str:
    """What a cell shows at a glance: reproduced (MAE within the tolerance of the paper's),
    outside it, missing, or a stand-in dataset's number (never a reproduction)."""
    if col.folder != col.paper:
        return "stand-in" if cell.get("ratio") is not None else "missing (stand-in)"
    if cell.get("ratio") is None:
        return "missing" if cell["run"] else "not in pycount"
    if cell.get("short"):
        return "short: {:,} of {:,} iterations".format(*cell["short"])
    ok = abs(cell["ratio"] - 1) <= config.AUDIT_TOLERANCE
    return f"{'within' if ok else 'outside'} ±{config.AUDIT_TOLERANCE:.0%}"


def _short(model: str, dataset: str, train: dict) -> tuple[int, int] | None:
    """(iterations, schedule) of a net trained fewer iterations than its schedule for that
    dataset (a dry run's ITERS=20, a training stopped early and evaluated): its number is shown
    but marked, never taken for a reproduction; None for a full training, a classic method, or
    a run whose iterations are not recorded."""
    try:
        ds = config.dataset(dataset)
        total = config.schedule(config.model(model, ds), ds)
    except config.ConfigError:
        return None
    it = train.get("iterations")
    if total is None or not _is_number(it) or it >= total:
        return None
    return int(it), int(total)


def _train_info(run: Path) -> dict:
    """What the audit says of the run behind a cell (its train.json and train_log.csv):
    iterations, wall time, commit, the net or settings it was trained with, the weights kept and
    the validation curve ([iteration, patch MAE] pairs; none for the classic methods).
    {} without a train.json; {"error": why} when it is damaged (the run is then unreadable)."""
    path = run / "train.json"
    if not path.exists():
        return {}
    fix = "make train writes it anew"
    try:
        t = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        return {"error": f"unreadable {shown(path)} ({e}; {fix})"}
    problem = _train_problem(t)
    if problem:
        return {"error": f"unreadable {shown(path)}: {problem} ({fix})"}
    if t.get("weights_stand_in"):
        return {"error": f"a dry run: {shown(path)} was trained from stand-in weights (random "
                         f"parameters in place of He et al.'s), so no result; make train "
                         f"RESUME=0 with the released caffemodels in weights/ trains it for real"}
    try:
        with open(run / "train_log.csv", newline="") as f:
            curve = [[int(r["iter"]), float(r["val_mae"])]
                     for r in csv.DictReader(f) if r.get("val_mae")]
    except (OSError, ValueError, KeyError, TypeError, csv.Error):
        curve = []
    return {"iterations": t.get("iterations"), "seconds": t.get("seconds"),
            "commit": t.get("commit", "not recorded"),
            "settings": t.get("net") or json.dumps(t.get("settings") or {}, sort_keys=True),
            "best_iter": t.get("best_iter"), "best_val": t.get("best_val_patch_mae"),
            "validation": curve, "stopped": bool(t.get("interrupted")),
            "model_sha256": t.get("model_sha256")}


def _todo(model: str, head: str, dataset: str, run: Path) -> str:
    args = make_args(model, head, dataset)
    info = run / "train.json"
    if info.is_file() and (run / "model.caffemodel").is_file() and not _interrupted(info):
        return f"trained, not evaluated (its training ended; an evaluation may have been " \
               f"stopped): `make eval {args}`"
    started = _progress(run)
    if started:
        total = run_max_iter(run)
        try:
            ds = config.dataset(dataset)
            default = config.schedule(config.model(model, ds), ds)
        except (config.ConfigError, KeyError):
            default = total
        own = f" ITERS={total}" if total is not None and total != default else ""
        try:
            snap = json.loads((run / "snapshots" / "latest.json").read_text())["iter"]
            how = f"resumes it from iteration {snap}"
        except (OSError, ValueError, KeyError, TypeError):
            how = "starts it again (no snapshot yet)"
        return f"{started}; `make train {args}{own}` {how}, then `make eval {args}`"
    return f"missing (run {commands(model, head, dataset)})"


def why_not(dataset: str, model: str, data_root=None, alternatives: bool = True) -> str | None:
    """Why a cell cannot run here (missing weights or dataset), or None. alternatives=False
    leaves out advice that only `make train` can follow (SCRATCH=1)."""
    blocked = _blocker(dataset, model, data_root, alternatives=alternatives)
    return blocked[1] if blocked else None


def _blocker(dataset: str, model: str, data_root=None, stand_in_ok: bool = True,
             alternatives: bool = True) -> tuple[str, str] | None:
    """("weights", why) when a pretrained net's ImageNet caffemodel is not in weights/ (or not
    the released file; with stand_in_ok False, also when it is a dry run's stand-in, which trains
    no result), ("data", why) when the dataset is not under DATA_ROOT; else None. alternatives:
    as why_not."""
    from pycount.data import prepare   # lazily: the report alone needs no image readers
    ds = config.dataset(dataset)
    m = config.model(model, ds)
    if m.weights and m.finetune != "scratch":
        try:
            path = weights.resolve(m)
        except WeightsError as e:
            return "weights", str(e) if alternatives else e.bare
        except PycountError as e:
            return "weights", str(e)
        if not stand_in_ok and weights.is_stand_in(path):
            return "weights", (f"{path} is a stand-in (random parameters, for a dry run): put "
                               f"the released {path.name} there (weights/README.md)")
    if not ds.generated:
        root = prepare.dataset_root(ds, data_root)
        if not root.is_dir():
            return "data", f"{root} is missing: put the {dataset} release there or set DATA_ROOT"
    return None


def _needs(model: str, dataset: str, run: Path, data_root=None) -> tuple[str, str]:
    """What a missing cell waits for, and why: "weights" or "data" with _blocker's reason,
    "training" (begun, not finished) or "run" (nothing but a training on this machine)."""
    if _progress(run):
        return "training", ""
    return _blocker(dataset, model, data_root, stand_in_ok=False) or ("run", "")


def _interrupted(info: Path) -> bool:
    """Whether train.json says its training was interrupted (or cannot be read: then the
    training's own messages tell)."""
    try:
        return bool(json.loads(info.read_text()).get("interrupted"))
    except (OSError, ValueError, AttributeError):
        return True


def _progress(run: Path) -> str:
    """A training begun but not evaluated (long CPU cells run over several sessions): how far
    it is, from its train_log.csv and solver.prototxt; "" when none was begun."""
    log = run / "train_log.csv"
    try:
        with open(log, newline="") as f:
            rows = list(csv.DictReader(f))
    except FileNotFoundError:
        return ""
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        return f"training begun, but its {shown(log)} is unreadable ({e})"
    if not rows:
        return ""
    last, total = rows[-1], run_max_iter(run)
    vals = [r for r in rows if r.get("val_mae")]
    try:
        val = f", validation patch MAE {float(vals[-1]['val_mae']):.3g} at iteration " \
              f"{vals[-1]['iter']}" if vals else ""
        hours = wall_time(float(last["seconds"]))
    except (ValueError, KeyError, TypeError) as e:
        return f"training begun, but its {shown(log)} is damaged ({e!r})"
    of = f" of {total}" if total else ""
    return f"training in progress: iteration {last['iter']}{of} after {hours}{val}"


def read_record(path) -> dict:
    """The recorded runs ({"<dataset>/<run>": entry}, see `record`); {} when there is none.
    A damaged record is an error naming the file, never a silently emptier audit."""
    path = Path(path)
    if not path.exists():
        return {}
    restore = f"restore it with `git checkout -- {path.name}` in its folder"
    try:
        runs = json.loads(path.read_text())["runs"]
        assert isinstance(runs, dict) and all(isinstance(e, dict) and "metrics" in e
                                              for e in runs.values())
    except (OSError, ValueError, KeyError, TypeError, AssertionError):
        raise config.ConfigError(f"{path}: not a pycount audit record; {restore}") from None
    # each entry as a metrics.json is checked (an entry edited by hand was a traceback in the
    # report, after `record` had written the file again with it)
    for key, entry in runs.items():
        why = _checked(entry["metrics"], f"entry {key}", restore).get("error")
        if why:
            raise config.ConfigError(f"{path}: {why}")
        why = _train_problem(entry.get("train") or {})
        if why:
            raise config.ConfigError(f"{path}: entry {key}'s train is damaged ({why}); {restore}")
        if not _images_ok(entry.get("images", {})):
            raise config.ConfigError(f"{path}: entry {key}'s images are damaged (each image's "
                                     f"[true, predicted] counts, two numbers); {restore}")
    return runs


def _images_ok(images) -> bool:
    """Whether a record's per-image counts are {id: [true, predicted]} of finite numbers."""
    return isinstance(images, dict) and all(
        isinstance(v, list) and len(v) == 2 and all(_is_number(x) and math.isfinite(x) for x in v)
        for v in images.values())


def _parse_tried(text: str) -> dict:
    """The tried file: TOML (tomllib, Python >= 3.11); on 3.10 (Ubuntu 22.04's) its own layout
    read line by line: `["<dataset>/<run>"]` tables, each `tried = [` then one "string," per line
    and `]`. ValueError for anything else."""
    try:
        import tomllib
    except ModuleNotFoundError:
        pass
    else:
        return tomllib.loads(text)
    import ast

    def literal(value: str, n: int):
        try:
            return ast.literal_eval(value)
        except SyntaxError as e:
            raise ValueError(f"line {n}: {e.msg}") from None
    out, table, items = {}, None, None
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if items is not None:                       # inside a table's list
            if line == "]":
                out[table]["tried"], items = items, None
            elif line and not line.startswith("#"):
                items.append(literal(line.removesuffix(","), n))
        elif not line or line.startswith("#"):
            continue
        elif line.startswith("[") and line.endswith("]"):
            name = line[1:-1].strip()
            table = name if re.fullmatch(r"[\w-]+", name) else literal(name, n)   # bare or quoted
            if not isinstance(table, str) or table in out:
                raise ValueError(f"line {n}: a table named twice or not by a string")
            out[table] = {}
        elif table is not None and re.fullmatch(r"tried\s*=.*", line):
            value = line.partition("=")[2].strip()
            if value == "[":
                items = []
            else:
                out[table]["tried"] = literal(value, n)
        else:
            raise ValueError(f"line {n}: expected a [\"<dataset>/<run>\"] table or `tried = [`")
    if items is not None:
        raise ValueError("the last list is not closed by `]`")
    return out


def read_tried(path) -> dict[str, list[str]]:
    """What was tried for the cells outside the tolerance: {"<dataset>/<run>": [line, ...]} from
    the TOML file at `path` (config.AUDIT_TRIED; {} when there is none). Each entry is a table
    named after its run, holding `tried`, a list of strings. A damaged file is an error naming it
    and what is wrong, never a silently shorter page."""
    path = Path(path)
    if not path.exists():
        return {}
    try:
        data = _parse_tried(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:     # TOMLDecodeError is a ValueError
        raise config.ConfigError(f"{path}: not readable as TOML ({e}); fix it or restore it "
                                 f"with `git checkout -- {path.name}` in its folder") from None
    out, wrong = {}, []
    for key, entry in data.items():
        lines = entry.get("tried") if isinstance(entry, dict) else None
        if key.count("/") != 1:
            wrong.append(f"[\"{key}\"] is not a run's name (<dataset>/<run>)")
        elif not (isinstance(lines, list) and lines
                  and all(isinstance(x, str) and x.strip() for x in lines)):
            wrong.append(f"[\"{key}\"] needs tried = [\"...\", ...], a list of lines")
        else:
            out[key] = [" ".join(x.split()) for x in lines]
    if wrong:
        raise config.ConfigError(f"{path}: {'; '.join(wrong)}")
    return out


def _per_image(run: Path) -> dict:
    """{image id: [true, predicted]} of an evaluated run's predictions.csv ({} without one): kept
    in the record so that a later run can be compared image by image with this one after its
    folder is gone (bench/paired.py reads the record as a baseline)."""
    try:
        with open(run / "predictions.csv", newline="") as f:
            return {r["id"]: [float(r["true"]), float(r["predicted"])] for r in csv.DictReader(f)}
    except (OSError, KeyError, ValueError, TypeError, UnicodeDecodeError, csv.Error):
        return {}           # (a row cut short reads None for its missing fields: TypeError)


def _count_range(images: dict) -> tuple[float, int, int]:
    """(mean, least, most) of the true counts of a run's test images, as the paper's Table 1
    gives its sets (AC, MinC-MaxC): which images a split tests on shows there."""
    true = [v[0] for v in images.values()]
    return round(sum(true) / len(true), 2), int(min(true)), int(max(true))


def record(report: dict, path) -> dict:
    """Adds every run that `report` read from its runs folder (metrics.json and train.json) to
    the record at `path`, replacing older entries of the same run and keeping the rest: the
    results outlive the machine that trained them. Returns the record's runs."""
    runs = read_record(path)
    for key, m in report["found"].items():
        if "error" not in m and "recorded" not in m:
            runs[key] = {"metrics": m, "train": report["trains"][key]}
            images = _per_image(Path(report["runs_dir"]) / key)
            if images:
                runs[key]["images"] = images
    atomic.write_text(path, json.dumps({"about": "pycount's audited runs (make audit keeps it); "
                                                 "docs/audit.md is made from it and runs/",
                                        "runs": dict(sorted(runs.items()))}, indent=1) + "\n")
    return runs


def build(runs_dir=None, record_path=None, data_root=None, tried_path=None) -> dict:
    """Every paper row against the matching run, per dataset, plus the runs no row maps to.
    With `record_path`, the recorded runs (see `record`) fill what runs_dir lacks; a run
    folder present wins over its record. `data_root` (DATA_ROOT) is where a missing cell's
    dataset is looked for. With `tried_path` (see `read_tried`), the report says what was tried
    for each cell outside the tolerance."""
    runs_dir = Path(runs_dir or config.runs_dir())
    if runs_dir.exists() and not runs_dir.is_dir():
        raise config.ConfigError(f"{runs_dir} is a file, not a runs folder: name the folder that "
                                 f"holds <dataset>/<run>/ (--runs, PYCOUNT_RUNS)")
    if not runs_dir.exists() and record_path is None:
        # (the project's own runs/ may be absent: its record then fills the report)
        raise config.ConfigError(f"no runs folder {runs_dir}: check the path given to --runs (or "
                                 f"PYCOUNT_RUNS); make train and make eval write runs there")
    if runs_dir.is_dir() and not any(runs_dir.glob("*/*/train.json")):
        for level, holder in (("a run folder", runs_dir.parent.parent),
                              ("one dataset's runs", runs_dir.parent)):
            below = "train.json" if level == "a run folder" else "*/train.json"
            if any(runs_dir.glob(below)):
                raise config.ConfigError(f"{runs_dir} is {level}, not a runs folder: name the "
                                         f"folder that holds <dataset>/<run>/ (--runs, "
                                         f"PYCOUNT_RUNS), here {holder}")
    kept = read_record(record_path) if record_path else {}
    tried = read_tried(tried_path) if tried_path else {}
    tried_file = shown(Path(tried_path or config.AUDIT_TRIED))
    found = {k: {**e["metrics"], "recorded": True} for k, e in kept.items()}
    trains = {k: e.get("train") or {} for k, e in kept.items()}
    sources = {k: e["source"] for k, e in kept.items() if isinstance(e.get("source"), str)}
    for key in kept:
        # a recorded run's folder here without its metrics.json: trained again since the
        # record (make train removes the evaluation), or under way; the record is of an earlier
        # net unless the folder's weights are the ones it counted. The cell says what the folder
        # holds (in training, trained and not evaluated), not the earlier net's number.
        run = runs_dir / key
        if (run / "metrics.json").exists() or not ((run / "train.json").is_file()
                                                   or _progress(run)):
            continue
        sha = found[key].get("model_sha256")
        if not (isinstance(sha, str) and sha == _train_info(run).get("model_sha256")):
            del found[key], trains[key]
    for p in sorted(runs_dir.glob("*/*/metrics.json")):
        key = p.parent.relative_to(runs_dir).as_posix()
        found[key], trains[key] = _read(p), _train_info(p.parent)
        moved = _misplaced(key, found[key])
        if moved:
            found[key] = {"error": moved}
        elif "error" not in found[key] and not (p.parent / "train.json").exists():
            # metrics of a training no one can name
            found[key] = {"error": f"{shown(p)} has no train.json beside it: what was trained, "
                                   f"how long and from which commit is unknown, so it is no "
                                   f"result; copy the run folder whole, or train and evaluate "
                                   f"it again"}
        elif "error" in trains[key]:            # a damaged train.json: the run is unreadable
            found[key], trains[key] = {"error": trains[key]["error"]}, {}
        elif trains[key].get("stopped"):        # (eval refuses such a run; a copy brought it)
            found[key] = {"error": f"{shown(p)} stands beside a training that was interrupted "
                                   f"at iteration {trains[key].get('iterations')}: finish it "
                                   f"(make train resumes it), then make eval"}
        elif isinstance(found[key].get("model_sha256"), str) \
                and isinstance(trains[key].get("model_sha256"), str) \
                and found[key]["model_sha256"] != trains[key]["model_sha256"]:
            found[key] = {"error": f"stale {shown(p)}: it counted other weights than the run's "
                                   f"model.caffemodel (their sha256 differ: the run was trained "
                                   f"again or copied over since); make eval counts with them"}
        elif _is_number(found[key].get("iterations")) \
                and _is_number(trains[key].get("iterations")) \
                and found[key]["iterations"] != trains[key]["iterations"]:
            found[key] = {"error": f"stale {shown(p)}: it counted the weights of iteration "
                                   f"{found[key]['iterations']:g}, and the run has trained to "
                                   f"{trains[key]['iterations']:g} since; make eval counts "
                                   f"with them"}
    mapped, tables = set(), []
    for t in sorted({r.table for r in PAPER}):
        rows = []
        for r in (r for r in PAPER if r.table == t):
            cells = {}
            for col in COLUMNS:
                i = PAPER_COLUMNS.index(col.paper)
                mae, std = split_mae(r.mae[i])
                cell = {"paper": {"mre": float(r.mre[i]), "mae": mae, "mae_std": std,
                                  "mre_printed": r.mre[i], "mae_printed": r.mae[i]},
                        "run": None, "ours": None, "diff": None, "note": ""}
                if r.model is None:
                    cell["note"] = r.note or "other method (not part of pycount)"
                else:
                    key = cell["run"] = f"{col.folder}/{r.run}"
                    mapped.add(key)
                    m = found.get(key)
                    if m is None:
                        cell["note"] = _todo(r.model, r.head, col.folder, runs_dir / key)
                        cell["needs"], why = _needs(r.model, col.folder, runs_dir / key,
                                                    data_root)
                        cell["why"] = why if cell["needs"] == "data" else ""
                    elif "error" in m:
                        cell["note"] = m["error"]
                    else:
                        cell["ours"] = {k: m[k] for k in ("mre", "mae", "mae_std")}
                        cell["diff"] = {k: m[k] - cell["paper"][k] for k in cell["ours"]}
                        cell["ratio"] = m["mae"] / mae
                        cell["train"] = trains[key]
                        cell["short"] = _short(r.model, col.folder, trains[key])
                        said = (m.get("dataset"), m.get("model"), m.get("head"))
                        if said != (col.folder, r.model, r.head):
                            cell["note"] = "metrics.json says {}/{}({})".format(*said)
                        elif "recorded" in m:
                            cell["note"] = RECORDED
                            if key in sources:    # no run folder kept: values copied back
                                cell["source"] = sources[key]
                cell["mark"] = _mark(cell, col)
                cells[col.folder] = cell
            rows.append({"label": r.label, "model": r.model, "head": r.head,
                         "source": r.source, "cells": cells})
        tables.append({"table": t, "title": TITLES[t], "source": SOURCES[t], "rows": rows})
    datasets = []
    for col in COLUMNS:
        keys = [k for k, m in found.items() if k.split("/")[0] == col.folder and "error" not in m]
        ok = [found[k] for k in keys]
        truths = [kept[k].get("images") if "recorded" in found[k] else _per_image(runs_dir / k)
                  for k in keys]
        by_range: dict[tuple, list[str]] = {}
        for k, t in zip(keys, truths):
            if t:
                by_range.setdefault(_count_range(t), []).append(k)
        ranges = sorted(by_range)
        most = max(ranges, key=lambda r: (len(by_range[r]), r)) if ranges else None
        datasets.append({"folder": col.folder, "label": col.label,
                         "paper": PAPER_DATASETS[col.paper], "runs": len(ok),
                         "n_images": sorted({m["n_images"] for m in ok}),
                         "baseline_mae": sorted({round(m["baseline_mae"], 4) for m in ok}),
                         "test_counts": ranges,
                         # the runs behind a figure other than most runs' (another split, or
                         # true counts read otherwise by the pycount that evaluated them)
                         "test_counts_runs": [[] if r == most else sorted(by_range[r])
                                              for r in ranges]})
    other = [{**m, "run": k + (" (recorded)" if "recorded" in m else "")}
             for k, m in found.items() if k not in mapped]
    return {"runs_dir": str(runs_dir), "citation": CITATION, "tables": tables,
            "datasets": datasets, "other_runs": other,
            "density": _density(found, runs_dir, trains),
            "found": found, "trains": trains, "tried": tried, "tried_file": tried_file}


def _misplaced(key: str, m: dict) -> str | None:
    """Why a run folder's metrics.json is not of the run its place names (a run copied or moved
    into another's folder: its numbers would stand for that run), or None. Only what the file
    says is compared (older files lack the dataset's tag)."""
    if "error" in m:
        return None
    folder, run = key.split("/")
    tag, dataset = m.get("dataset_tag"), m.get("dataset")
    name = m.get("model")
    its = config.run_name(name, "C") if m.get("head") == "C" else name
    if not isinstance(tag, str) and isinstance(dataset, str):   # older: the name only
        tag = dataset if not (folder == dataset or folder.startswith(dataset + "-")) else folder
    if (isinstance(tag, str) and tag != folder) or (isinstance(name, str) and its != run):
        return (f"misplaced {key}/metrics.json: it is of {tag}/{its}, a run copied or moved "
                f"into {key}; move it back to {tag}/{its} (or evaluate the run in this folder "
                f"again: make eval)")
    return None


def _recorded_stale(key: str, trains: dict, ds: config.DatasetConfig | None = None) -> bool:
    """A recorded run (no folder here) whose net and settings, as its train.json named them, are
    not what `make train` builds today for its dataset and model (e.g. a changed sigma). A record
    reconstructed from an old page names the model only ("fcrn-ctx"): nothing to compare.
    `ds`: the dataset at the settings the key's folder names, where those are a variant's."""
    from pycount.nets import builders as nets
    dataset, model = key.split("/")
    said = (trains.get(key) or {}).get("settings")
    if not said or " | " not in said or model not in config.MODELS or \
            config.MODELS[model].classic:
        return False
    try:
        ds = ds or config.dataset(dataset)
    except PycountError:  # an own folder's or a variant's name: nothing to compare with
        return False
    return said != nets.net_name(nets.run_plan(ds, config.model(model, ds)))


def _density(found: dict, runs_dir: Path, trains: dict | None = None) -> list[dict]:
    """The density models' rows: each run on all training images, the N-image protocol (mean ±
    std over seeds, pycount.training.protocol), beside the paper's best and the published counters."""
    trains = trains or {}
    from pycount.training import protocol
    models = sorted({m["model"] for m in found.values()
                     if "error" not in m and m.get("density") and m.get("model") in config.MODELS})
    rows = []
    for col in COLUMNS[:3]:
        i = PAPER_COLUMNS.index(col.paper)
        # the paper's own nets (Table 4's other methods are rows of their own)
        best = min(PAPER, key=lambda r: split_mae(r.mae[i])[0]
                   if r.model and not config.MODELS[r.model].classic else 1e9)
        mae, std = split_mae(best.mae[i])
        rows.append({"dataset": col.folder, "what": f"paper's best: {best.label}", "n": "all",
                     "mae": mae, "std": std, "spread": "per image", "source": best.source})
        for name, dataset, n, m, sd in PUBLISHED_DENSITY:
            if dataset == col.folder:
                rows.append({"dataset": dataset, "what": name, "n": n, "mae": m, "std": sd,
                             "spread": "over draws", "source": "published"})
        variants = [({}, "")] + [
            (s, " " + " ".join(f"{config.MAKE_VARS[k]}={v:g}" for k, v in s.items()))
            for s in config.AUDIT_DENSITY_VARIANTS.get(col.folder, ())]
        for model in models:
            for settings, said in variants:
                ds = config.with_overrides(config.dataset(col.folder), **settings)
                rows += _density_rows(found, runs_dir, trains, ds, model, said)
            kept = {}                   # the recorded seeds, each checked as _density_rows does
            for k, m in found.items():
                if "recorded" in m and "error" not in m and k.endswith("/" + model):
                    try:
                        seeded = config.with_overrides(config.dataset(col.folder),
                                                       train_n=int(m["train_n"]),
                                                       seed=int(m["seed"]))
                    except (PycountError, KeyError, TypeError, ValueError):
                        continue
                    kept[k] = {**m, "stale": _recorded_stale(k, trains, seeded)}
            for p in protocol.summarize(col.folder, model, runs_dir, recorded=kept):
                old, rec = p["stale_seeds"], p["recorded_seeds"]
                rows.append({"dataset": col.folder, "what": f"pycount {model}",
                             "n": p["train_n"], "mae": p["mae_mean"], "std": p["mae_std"],
                             "spread": f"over {len(p['seeds'])} seeds "
                                       f"({_numbers(p['seeds'])})",
                             "source": f"{col.folder}-n{p['train_n']}-seed*/{model}" + (
                                 f" (seeds {', '.join(map(str, old))} trained with older "
                                 f"settings: `make protocol DATASET={col.folder} MODEL={model}` "
                                 f"retrains them)" if old else "") + (
                                 f" (seeds {_numbers(rec)} recorded: docs/audit/results.json)"
                                 if rec else "")})
    return rows


def _numbers(values) -> str:
    """Sorted whole numbers, runs of consecutive ones joined: [1, 2, 3, 5, 7, 8] -> '1-3, 5, 7-8'
    (the seeds a protocol row pools: every seed on the disk, not only make protocol's 1-5)."""
    out, values = [], sorted(values)
    for v in values:
        if out and v == out[-1][1] + 1:
            out[-1][1] = v
        else:
            out.append([v, v])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in out)


def _density_rows(found: dict, runs_dir: Path, trains: dict, ds: config.DatasetConfig,
                  model: str, said: str) -> list[dict]:
    """One density model's rows on the recorded split of `ds` (the named dataset, or it at the
    settings `said`, a config.AUDIT_DENSITY_VARIANTS entry): its run, and the spread over
    splits where RESPLIT= runs exist."""
    key, rows = f"{ds.tag}/{model}", []
    what = {"dataset": ds.name, "what": f"pycount {model}{said}", "n": "all"}
    plan = nets.run_plan(ds, config.model(model, ds))        # what make train builds today
    m = found.get(key)
    if m and "error" not in m:
        old = _recorded_stale(key, trains, ds) if "recorded" in m \
            else nets.drift(runs_dir / ds.tag / model, plan)
        rows.append({**what, "mae": m["mae"], "std": m["mae_std"], "spread": "per image",
                     "source": key + (" (recorded)" if "recorded" in m else "") + (
                         f" (trained with older settings: `make train DATASET={ds.name} "
                         f"MODEL={model}{said} RESUME=0` retrains it)" if old else "")})
    split = _over_splits(found, ds.tag, model, trains, today=nets.net_name(plan))
    if split:
        rows.append({**what, **split})
    return rows


def _over_splits(found: dict, dataset: str, model: str, trains: dict | None = None,
                 today: str | None = None) -> dict | None:
    """The split-to-split spread of one model (RESPLIT=s runs, `<dataset>-split<s>/<model>`,
    beside the recorded split's `<dataset>/<model>`): the mean and sample std of their test MAEs,
    or None without a RESPLIT run. Only runs trained with one net and settings are pooled (a
    spread of one model, not of two): the recorded split's run's, or `today`'s (the net `make
    train` builds now, as train.json names it) where that run was trained with others; the
    others are named as left out."""
    trains = trains or {}
    pattern = re.compile(rf"{re.escape(dataset)}-split(\d+)/{re.escape(model)}")
    runs = sorted((int(m.group(1)), k, v) for k, v in found.items()
                  if (m := pattern.fullmatch(k)) and "error" not in v)
    if not runs:
        return None
    key = f"{dataset}/{model}"
    base = found.get(key)
    base = base if base and "error" not in base else None
    ref = (trains.get(key) or {}).get("settings") if base else None
    if today and ref and " | " in ref and ref != today:
        ref, base, stale = today, None, ["recorded"]       # the recorded run is the older net
    else:
        ref, stale = ref or today, []

    def same(k):
        said = (trains.get(k) or {}).get("settings")
        return ref is None or said is None or said == ref
    maes = ([("recorded", base["mae"])] if base else []) + [
        (f"split {s}", v["mae"]) for s, k, v in runs if same(k)]
    left = stale + [f"split {s}" for s, k, _ in runs if not same(k)]
    if len(maes) < 2:
        return None
    values = np.array([v for _, v in maes])
    return {"mae": float(values.mean()), "std": float(values.std(ddof=1)),
            "spread": f"over {len(values)} splits",
            "source": "RESPLIT=s: " + ", ".join(f"{n} {v:.2f}" for n, v in maes) + (
                f"; left out, trained with other settings: {', '.join(left)}" if left else "")}


def write(report: dict, out_dir=None, docs_dir=None) -> dict:
    """audit.md, audit.html and table<N>.png under out_dir (default <runs>/audit); with
    docs_dir, the same Markdown as docs_dir/audit.md (its charts in docs_dir/audit/), the page
    committed with the results it shows. Returns the paths."""
    out = Path(out_dir or Path(report["runs_dir"]) / "audit")
    problem = atomic.make_folder(out)
    if problem is not None:
        kind, detail = problem
        if kind == "file" and detail == out:
            raise config.ConfigError(f"{out} is a file, not a folder: name a folder for the report "
                                     f"(--out; it is made if missing)")
        if kind == "file":
            raise config.ConfigError(f"cannot make the report folder {out}: {detail} is a file; "
                                     f"name a folder for the report (--out)")
        if kind == "readonly":
            raise config.ConfigError(f"the report folder {out} is not writable: name another "
                                     f"(--out)")
        raise config.ConfigError(f"cannot make the report folder {out} ({detail}): name "
                                 f"a folder that can be made and written (--out)")
    paths = {}
    for t in report["tables"]:
        paths[f"table{t['table']}"] = out / f"table{t['table']}.png"
        chart(t, paths[f"table{t['table']}"])
    figures = [f"table{t['table']}.png" for t in report["tables"]]
    if curves(report):
        validation_chart(report, out / "validation.png")
        figures.append("validation.png")
    blocks = to_blocks(report)
    paths["md"], paths["html"] = out / "audit.md", out / "audit.html"
    atomic.write_text(paths["md"], to_markdown(blocks))
    atomic.write_text(paths["html"], to_html(blocks, out))
    if docs_dir is not None:
        docs = Path(docs_dir) / "audit"
        docs.mkdir(parents=True, exist_ok=True)
        for name in figures:
            atomic.write_bytes(docs / name, (out / name).read_bytes())
        relocated = [("img", f"audit/{b[1]}") if b[0] == "img" else b for b in blocks]
        relocated[1] = ("p", relocated[1][1].replace(f"`{report['runs_dir']}`",
                                                     "`runs/` of the commits named below"))
        paths["docs"] = Path(docs_dir) / "audit.md"
        atomic.write_text(paths["docs"], to_markdown(relocated))
    return paths


def summary(report: dict) -> str:
    """A compact Markdown digest: the cells we have a run for, and what is missing."""
    lines = ["| table | row | dataset | MRE paper → ours | MAE paper → ours (Δ) |",
             "|---|---|---|---|---|"]
    for t in report["tables"]:
        for r in t["rows"]:
            for col in COLUMNS:
                c = r["cells"][col.folder]
                if c["ours"]:
                    lines.append(f"| {t['table']} | {r['label']} | {col.folder} | "
                                 f"{c['paper']['mre_printed']} → {c['ours']['mre']:.4f} | "
                                 f"{c['paper']['mae']:.2f} → {c['ours']['mae']:.2f} "
                                 f"({c['diff']['mae']:+.2f}) |")
    other = ", ".join(m["run"] for m in report["other_runs"]) or "none"
    return "\n".join(lines + ["", tally(report)[0], f"Other runs: {other}."])
