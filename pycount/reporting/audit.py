"""`make audit`: our runs beside the numbers Xue et al. (2016) published, with the differences.

The paper's numbers are kept as the strings it prints (precision and spacing included) so they
can be checked against the paper's text; every paper row is reported whether we have a run or not.
"""
from __future__ import annotations

import base64
import csv
import html
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pycount.util import atomic
from pycount import config
from pycount.errors import PycountError
from pycount.evaluation.metrics import partial
from pycount.nets import builders as nets
from pycount.nets import weights

CITATION = ("Xue, Ray, Hugh, Bigras: Cell Counting by Regression Using Convolutional Neural "
            "Network. ECCV 2016 Workshops, Lecture Notes in Computer Science vol. 9913, "
            "pp. 274-290")
# Page numbers are those of the published volume; the text extract we check against has none.
SOURCES = {1: "Table 1", 2: "Table 2, p. 285 of LNCS 9913", 3: "Table 3, p. 285 of LNCS 9913",
           4: "Table 4, p. 287 of LNCS 9913"}
TITLES = {2: "classification (C) vs regression (R) heads",
          3: "ResNet depth (regression head)",
          4: "comparison with other methods (The proposed = ResNet-152(R))"}
PAPER_COLUMNS = ("nuclei", "bacterial", "ki67")


@dataclass(frozen=True)
class PaperRow:
    table: int
    label: str          # the row label as printed
    model: str | None   # the pycount model it maps to; None: another method, not in pycount
    head: str           # "R" or "C"
    mre: tuple          # printed MRE per PAPER_COLUMNS
    mae: tuple          # printed "MAE±std" per PAPER_COLUMNS
    note: str = ""      # what the audit says of a row pycount does not model

    @property
    def source(self) -> str:
        return SOURCES[self.table]

    @property
    def run(self) -> str | None:
        """The run folder name (config.run_name's rule: C runs get "-C")."""
        return None if self.model is None else self.model + ("" if self.head == "R" else "-C")


# The paper's results, as printed. Its "ResNet" in Table 2 is ResNet-50 (section 3.4).
PAPER = (
    PaperRow(2, "AlexNet(C)", "alexnet", "C", ("0.2175", "0.0918", "0.1226"),
             ("20.7636±13.9416", "12.9667±4.5361", "213.5302±65.7220")),
    PaperRow(2, "AlexNet(R)", "alexnet", "R", ("0.2019", "0.0651", "0.0959"),
             ("18.5720±12.6055", "9.2591±3.3142", "151.2059±44.6032")),
    PaperRow(2, "ResNet(C)", "resnet50", "C", ("0.2104", "0.0772", "0.1170"),
             ("19.8742±13.5217", "11.8711±3.8247", "169.5076±50.2124")),
    PaperRow(2, "ResNet(R)", "resnet50", "R", ("0.1925", "0.0539", "0.0775"),
             ("17.1437±11.5073", "8.2064±2.8515", "128.7426±40.5621")),
    PaperRow(3, "ResNet-50(R)", "resnet50", "R", ("0.1925", "0.0539", "0.0775"),
             ("17.1437±11.5073", "8.2064±2.8515", "128.7426±40.5621")),
    PaperRow(3, "ResNet-101(R)", "resnet101", "R", ("0.1845", "0.0507", "0.0697"),
             ("16.3164±10.8762", "7.7542±2.4580", "116.3076±39.0215")),
    PaperRow(3, "ResNet-152(R)", "resnet152", "R", ("0.1666", "0.0450", "0.0641"),
             ("14.9275±10.4368", "7.4741±2.2248", "108.3014±40.4698")),
    PaperRow(4, "DeepFeat [24]", None, "R", ("0.3581", "0.1751", "0.1249"),
             ("71.8046 ± 51.4109", "25.4792 ± 19.1504", "189.3559 ± 53.6329"),
             "not implemented: our copy of the paper lacks its reference list and [24] is not "
             "identified with confidence (most likely Seguí, Pujol & Vitrià, Learning to count "
             "with deep object features, CVPR Workshops 2015)"),
    PaperRow(4, "Le.count [16]", "lecount", "R", ("0.2674", "0.0208", "0.1151"),
             ("51.4479 ± 39.8087", "6.4061 ± 3.5657", "185.9391 ± 60.5042")),
    PaperRow(4, "Le.detect [5]", "ledetect", "R", ("0.3206", "0.1083", "0.1540"),
             ("33.8995 ± 23.9252", "18.1937 ± 13.4393", "259.6736 ± 85.0594")),
    PaperRow(4, "The proposed", "resnet152", "R", ("0.1666", "0.0450", "0.0641"),
             ("14.9275 ± 10.4368", "7.4741 ± 2.2248", "108.3014 ± 40.4698")),
)
# Table 1 as printed: row label, size, Ntr/Nte, AC (average cells), MinC-MaxC.
PAPER_DATASETS = {"nuclei": ("Nuclei [12]", "500× 500", "50/50", "310.22", "1–1189"),
                  "bacterial": ("Bacterial [1]", "256× 256", "100/100", "171.47", "74–317"),
                  "ki67": ("Ki67 cell", "1920×2560", "45/10", "2045.85", "70–4808")}


@dataclass(frozen=True)
class Column:
    folder: str   # runs/<folder>/...
    paper: str    # the paper column it is compared with
    label: str


COLUMNS = (Column("nuclei", "nuclei", "Nuclei"),
           Column("bacterial", "bacterial", "Bacterial"),
           Column("ki67", "ki67", "Ki67"),
           Column("ki67-synthetic", "ki67", "Ki67-synthetic (our stand-in, vs paper Ki67)"))
REQUIRED = ("mae", "mae_std", "mre", "baseline_mae", "n_images")
RECORDED = ("recorded result (docs/audit/results.json): its run folder is not on this machine; "
            "the commit named below retrains it")

# Beyond the paper (issue #7): published density counters on the bacterial (VGG cells) set, tested
# on images 101-200 after training on N images drawn from 001-100; mean ± std over the draws.
PUBLISHED_DENSITY = (
    ("FCRN-A (Xie, Noble & Zisserman 2016)", "bacterial", 32, 2.9, 0.2),
    ("Count-ception (Cohen et al. 2017)", "bacterial", 50, 2.3, 0.4),
)


def split_mae(printed: str) -> tuple[float, float]:
    """"20.7636±13.9416" or "71.8046 ± 51.4109" -> (20.7636, 13.9416)."""
    mae, std = printed.split("±")
    return float(mae), float(std)


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


def _shown(path: Path) -> str:
    """A run's file as the report names it: <dataset>/<run>/<file>."""
    return "/".join(path.parts[-3:])


def _read(path: Path) -> dict:
    """A run's metrics.json; {"error": why} when it cannot be used (not JSON, not an object, a
    value the report needs missing or of the wrong type): that run is reported as unreadable,
    the others as they are."""
    fix = "make eval writes it anew"
    try:
        m = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        return {"error": f"unreadable {_shown(path)} ({e}; {fix})"}
    if not isinstance(m, dict):
        return {"error": f"unreadable {_shown(path)}: a JSON object was expected, not "
                         f"{_json_kind(m)} ({fix})"}
    missing = [k for k in REQUIRED if k not in m]
    if missing:
        return {"error": f"unreadable {_shown(path)}: it lacks {', '.join(missing)} ({fix})"}
    wrong = [f"{k} is {_brief(m[k])}, not a number" for k in REQUIRED
             if not _is_number(m[k])]
    wrong += [f"{k} is {_brief(m[k])}, which no evaluation measures" for k in REQUIRED
              if _is_number(m[k]) and not _is_measure(m[k])]
    wrong += [f"{k} is {json.dumps(m[k])}, not a name" for k in METRIC_NAMES
              if k in m and not isinstance(m[k], str)]
    if wrong:
        return {"error": f"unreadable {_shown(path)}: {'; '.join(wrong)} ({fix})"}
    if partial(m):
        return {"error": f"a partial evaluation: {_shown(path)} counts {m['n_images']:g} of the "
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
    ok = abs(cell["ratio"] - 1) <= config.AUDIT_TOLERANCE
    return f"{'within' if ok else 'outside'} ±{config.AUDIT_TOLERANCE:.0%}"


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
        return {"error": f"unreadable {_shown(path)} ({e}; {fix})"}
    problem = _train_problem(t)
    if problem:
        return {"error": f"unreadable {_shown(path)}: {problem} ({fix})"}
    if t.get("weights_stand_in"):
        return {"error": f"a dry run: {_shown(path)} was trained from stand-in weights (random "
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
            "validation": curve, "planned": _max_iter(run), "stopped": bool(t.get("interrupted"))}


def _iterations(train: dict) -> str:
    """"20000", or "2000 of 2400 (stopped)" for a training stopped before its schedule's end
    and counted with the weights it had kept."""
    it = str(train.get("iterations", "?"))
    if train.get("stopped") and train.get("planned"):
        return f"{it} of {train['planned']} (stopped)"
    return it


def _kept(train: dict) -> str:
    """The weights a cell was counted with: those of the best validation, when there was one."""
    if train.get("best_iter") is None or train["best_iter"] < 0 or train.get("best_val") is None:
        return "the fitted model" if train.get("iterations") == 0 else "?"
    return f"iteration {train['best_iter']} (validation patch MAE {train['best_val']:.3g})"


def _max_iter(run: Path) -> int | None:
    try:
        m = re.search(r"^max_iter:\s*(\d+)", (run / "solver.prototxt").read_text(), re.M)
    except OSError:
        return None
    return int(m.group(1)) if m else None


def _make_args(model: str, head: str, dataset: str) -> str:
    """The make variables that name a cell's run."""
    return f"MODEL={model} DATASET={dataset}" + ("" if head == "R" else f" HEAD={head}")


def _commands(model: str, head: str, dataset: str) -> str:
    """"`make prepare ...`, `make train ...`, then `make eval ...`": what fills a cell trainable
    here (prepare reuses LMDBs that are up to date)."""
    args = _make_args(model, head, dataset)
    return f"`make prepare {args}`, `make train {args}`, then `make eval {args}`"


def _todo(model: str, head: str, dataset: str, run: Path) -> str:
    args = _make_args(model, head, dataset)
    started = _progress(run)
    if started:
        total = _max_iter(run)
        try:
            default = config.model(model, config.dataset(dataset)).solver.max_iter
        except (config.ConfigError, KeyError):
            default = total
        own = f" ITERS={total}" if total is not None and total != default else ""
        try:
            snap = json.loads((run / "snapshots" / "latest.json").read_text())["iter"]
            how = f"resumes it from iteration {snap}"
        except (OSError, ValueError, KeyError, TypeError):
            how = "starts it again (no snapshot yet)"
        return f"{started}; `make train {args}{own}` {how}, then `make eval {args}`"
    return f"missing (run {_commands(model, head, dataset)})"


def why_not(dataset: str, model: str, data_root=None) -> str | None:
    """Why a cell cannot run here (missing weights or dataset), or None."""
    blocked = _blocker(dataset, model, data_root)
    return blocked[1] if blocked else None


def _blocker(dataset: str, model: str, data_root=None,
             stand_in_ok: bool = True) -> tuple[str, str] | None:
    """("weights", why) when a pretrained net's ImageNet caffemodel is not in weights/ (or not
    the released file; with stand_in_ok False, also when it is a dry run's stand-in, which trains
    no result), ("data", why) when the dataset is not under DATA_ROOT; else None."""
    from pycount.data import prepare   # lazily: the report alone needs no image readers
    ds = config.dataset(dataset)
    m = config.model(model, ds)
    if m.weights and m.finetune != "scratch":
        try:
            path = weights.resolve(m)
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


# How a missing cell reads in the tables; the section "Filling the missing cells" says the rest.
NEEDS = {"weights": "missing: needs ImageNet weights", "data": "missing: dataset not here",
         "run": "missing: trainable here", "training": "in training"}


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
        return f"training begun, but its {_shown(log)} is unreadable ({e})"
    if not rows:
        return ""
    last, total = rows[-1], _max_iter(run)
    vals = [r for r in rows if r.get("val_mae")]
    try:
        val = f", validation patch MAE {float(vals[-1]['val_mae']):.3g} at iteration " \
              f"{vals[-1]['iter']}" if vals else ""
        hours = _hours(float(last["seconds"]))
    except (ValueError, KeyError, TypeError) as e:
        return f"training begun, but its {_shown(log)} is damaged ({e!r})"
    of = f" of {total}" if total else ""
    return f"training in progress: iteration {last['iter']}{of} after {hours}{val}"


def read_record(path) -> dict:
    """The recorded runs ({"<dataset>/<run>": entry}, see `record`); {} when there is none.
    A damaged record is an error naming the file, never a silently emptier audit."""
    path = Path(path)
    if not path.exists():
        return {}
    try:
        runs = json.loads(path.read_text())["runs"]
        assert isinstance(runs, dict) and all("metrics" in e for e in runs.values())
    except (OSError, ValueError, KeyError, TypeError, AssertionError):
        raise config.ConfigError(f"{path}: not a pycount audit record; restore it with "
                                 f"`git checkout -- {path.name}` in its folder") from None
    return runs


def read_tried(path) -> dict[str, list[str]]:
    """What was tried for the cells outside the tolerance: {"<dataset>/<run>": [line, ...]} from
    the TOML file at `path` (config.AUDIT_TRIED; {} when there is none). Each entry is a table
    named after its run, holding `tried`, a list of strings. A damaged file is an error naming it
    and what is wrong, never a silently shorter page."""
    import tomllib
    path = Path(path)
    if not path.exists():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
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
    except (OSError, KeyError, ValueError):
        return {}


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
    kept = read_record(record_path) if record_path else {}
    tried = read_tried(tried_path) if tried_path else {}
    tried_file = _shown(Path(tried_path or config.AUDIT_TRIED))
    found = {k: {**e["metrics"], "recorded": True} for k, e in kept.items()}
    trains = {k: e.get("train") or {} for k, e in kept.items()}
    for p in sorted(runs_dir.glob("*/*/metrics.json")):
        key = p.parent.relative_to(runs_dir).as_posix()
        found[key], trains[key] = _read(p), _train_info(p.parent)
        moved = _misplaced(key, found[key])
        if moved:
            found[key] = {"error": moved}
        elif "error" in trains[key]:            # a damaged train.json: the run is unreadable
            found[key], trains[key] = {"error": trains[key]["error"]}, {}
        elif _is_number(found[key].get("iterations")) \
                and _is_number(trains[key].get("iterations")) \
                and found[key]["iterations"] != trains[key]["iterations"]:
            found[key] = {"error": f"stale {_shown(p)}: it counted the weights of iteration "
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
                        said = (m.get("dataset"), m.get("model"), m.get("head"))
                        if said != (col.folder, r.model, r.head):
                            cell["note"] = "metrics.json says {}/{}({})".format(*said)
                        elif "recorded" in m:
                            cell["note"] = RECORDED
                cell["mark"] = _mark(cell, col)
                cells[col.folder] = cell
            rows.append({"label": r.label, "model": r.model, "head": r.head,
                         "source": r.source, "cells": cells})
        tables.append({"table": t, "title": TITLES[t], "source": SOURCES[t], "rows": rows})
    datasets = []
    for col in COLUMNS:
        ok = [m for k, m in found.items() if k.split("/")[0] == col.folder and "error" not in m]
        datasets.append({"folder": col.folder, "label": col.label,
                         "paper": PAPER_DATASETS[col.paper], "runs": len(ok),
                         "n_images": sorted({m["n_images"] for m in ok}),
                         "baseline_mae": sorted({round(m["baseline_mae"], 4) for m in ok})})
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
    its = f"{name}-C" if m.get("head") == "C" else name
    if not isinstance(tag, str) and isinstance(dataset, str):   # older: the name only
        tag = dataset if not (folder == dataset or folder.startswith(dataset + "-")) else folder
    if (isinstance(tag, str) and tag != folder) or (isinstance(name, str) and its != run):
        return (f"misplaced {key}/metrics.json: it is of {tag}/{its}, a run copied or moved "
                f"into {key}; move it back to {tag}/{its} (or evaluate the run in this folder "
                f"again: make eval)")
    return None


def _recorded_stale(key: str, trains: dict) -> bool:
    """A recorded run (no folder here) whose net and settings, as its train.json named them, are
    not what `make train` builds today for its dataset and model (e.g. a changed sigma). A record
    reconstructed from an old page names the model only ("fcrn-ctx"): nothing to compare."""
    from pycount.nets import builders as nets
    dataset, model = key.split("/")
    said = (trains.get(key) or {}).get("settings")
    if not said or " | " not in said or model not in config.MODELS or \
            config.MODELS[model].classic:
        return False
    try:
        ds = config.dataset(dataset)
    except Exception:  # an own folder's or a variant's name: nothing to compare with
        return False
    return said != nets.net_name(nets.run_plan(ds, config.model(model, ds)))


def _density(found: dict, runs_dir: Path, trains: dict | None = None) -> list[dict]:
    """The density models' rows: each run on all training images, the N-image protocol (mean ±
    std over seeds, pycount.protocol), beside the paper's best and the published counters."""
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
        for model in models:
            m = found.get(f"{col.folder}/{model}")
            if m and "error" not in m:
                ds = config.dataset(col.folder)
                old = _recorded_stale(f"{col.folder}/{model}", trains) if "recorded" in m \
                    else nets.drift(runs_dir / col.folder / model,
                                    nets.run_plan(ds, config.model(model, ds)))
                rows.append({"dataset": col.folder, "what": f"pycount {model}", "n": "all",
                             "mae": m["mae"], "std": m["mae_std"], "spread": "per image",
                             "source": f"{col.folder}/{model}" + (
                                 " (recorded)" if "recorded" in m else "") + (
                                 f" (trained with older settings: `make train DATASET="
                                 f"{col.folder} MODEL={model} RESUME=0` retrains it)"
                                 if old else "")})
            split = _over_splits(found, col.folder, model, trains)
            if split:
                rows.append({"dataset": col.folder, "what": f"pycount {model}", "n": "all",
                             **split})
            for p in protocol.summarize(col.folder, model, runs_dir):
                old = p["stale_seeds"]
                rows.append({"dataset": col.folder, "what": f"pycount {model}",
                             "n": p["train_n"], "mae": p["mae_mean"], "std": p["mae_std"],
                             "spread": f"over {len(p['seeds'])} seeds",
                             "source": f"{col.folder}-n{p['train_n']}-seed*/{model}" + (
                                 f" (seeds {', '.join(map(str, old))} trained with older "
                                 f"settings: `make protocol DATASET={col.folder} MODEL={model}` "
                                 f"retrains them)" if old else "")})
    return rows


def _over_splits(found: dict, dataset: str, model: str, trains: dict | None = None) -> dict | None:
    """The split-to-split spread of one model (RESPLIT=s runs, `<dataset>-split<s>/<model>`,
    beside the recorded split's `<dataset>/<model>`): the mean and sample std of their test MAEs,
    or None without a RESPLIT run. Only runs trained with the recorded split's net and settings
    are pooled (a spread of one model, not of two); the others are named as left out."""
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

    def same(k):
        said = (trains.get(k) or {}).get("settings")
        return ref is None or said is None or said == ref
    maes = ([("recorded", base["mae"])] if base else []) + [
        (f"split {s}", v["mae"]) for s, k, v in runs if same(k)]
    left = [f"split {s}" for s, k, _ in runs if not same(k)]
    if len(maes) < 2:
        return None
    values = np.array([v for _, v in maes])
    return {"mae": float(values.mean()), "std": float(values.std(ddof=1)),
            "spread": f"over {len(values)} splits",
            "source": "RESPLIT=s: " + ", ".join(f"{n} {v:.2f}" for n, v in maes) + (
                f"; left out, trained with other settings: {', '.join(left)}" if left else "")}


# ---- rendering: a list of blocks, written out as Markdown and as HTML ------------------------

def _cell_parts(cell: dict, metric: str) -> list[str]:
    """["paper ...", "ours ...", "Δ ..."] for one table cell; metric "mre" or "mae"."""
    paper = cell["paper"][f"{metric}_printed"]
    if cell["ours"] is None:
        return [f"paper {paper}", _short(cell)]
    o, d = cell["ours"], cell["diff"]
    if metric == "mre":
        parts = [f"paper {paper}", f"ours {o['mre']:.4f}", f"Δ {d['mre']:+.4f}"]
    else:
        parts = [f"paper {paper}", f"ours {o['mae']:.4f} ± {o['mae_std']:.4f}",
                 f"Δ {d['mae']:+.4f} ± {d['mae_std']:+.4f}",
                 f"ratio {cell['ratio']:.2f}: {cell['mark']}"]
    return parts + ([_short(cell)] if cell["note"] else [])


def _short(cell: dict) -> str:
    """A cell's note as the tables show it; the long forms (commands, reasons) are said once,
    under "Filling the missing cells" and "The runs behind the cells"."""
    needs = cell.get("needs")
    if needs == "training":
        return "in training: " + cell["note"].split(";")[0].removeprefix(
            "training in progress: ")
    if needs:
        return NEEDS[needs]
    if cell["note"] == RECORDED:
        return "recorded result"
    if cell["run"] is None:
        return "not in pycount (see below)"
    return cell["note"]


def _tally(report: dict) -> tuple[str, str]:
    """How many of the paper's cells have a number and how many agree; then what the others
    wait for (two sentences: the page prints both, `make audit`'s summary the first)."""
    paper = [(c, r["cells"][c.folder]) for t in report["tables"] for r in t["rows"]
             for c in COLUMNS]
    modelled = [(c, x) for c, x in paper if x["run"]]
    own = [x for c, x in modelled if c.folder == c.paper]
    stand = [x for c, x in modelled if c.folder != c.paper]
    filled = [x for x in own if x["ours"]]
    within = [x for x in filled if x["mark"].startswith("within")]
    recorded = [x for x in filled + stand if x["note"] == RECORDED]
    waits = {}
    for x in own + stand:
        if x["ours"] is None and x.get("needs"):
            waits[x["needs"]] = waits.get(x["needs"], 0) + 1
    said = {"weights": ("needs ImageNet weights", "need ImageNet weights"),
            "data": ("needs a dataset that is not here", "need a dataset that is not here"),
            "run": ("can be trained here", "can be trained here"),
            "training": ("is in training", "are in training")}
    rest = ", ".join(f"{n} {said[k][n != 1]}"
                     for k, n in sorted(waits.items(), key=lambda kv: -kv[1]))
    return (f"{len(filled)} of the {len(own)} paper cells that pycount models have our number "
            f"({len(within)} within ±{config.AUDIT_TOLERANCE:.0%} of the paper's MAE), and "
            f"{sum(1 for x in stand if x['ours'])} of {len(stand)} stand-in cells; "
            f"{len(paper) - len(modelled)} cells are methods pycount does not model.",
            f"Of the cells without a number, {rest or 'none'}: see \"Filling the missing "
            f"cells\" below."
            + (f" Recorded results ({len(recorded)}): cells whose run folder is not on this "
               f"machine, filled from docs/audit/results.json; the commit named in the runs "
               f"table retrains each." if recorded else ""))


def _filling(report: dict) -> list[tuple]:
    """What each missing cell needs, said once per run (cells sharing a run are listed
    together): the commands for the cells this machine trains, the weights (file, size,
    sha256, where), the datasets, and the rows pycount does not model."""
    groups: dict[str, dict] = {}
    other = []
    for t in report["tables"]:
        for r in t["rows"]:
            for c in COLUMNS:
                cell = r["cells"][c.folder]
                label = f"Table {t['table']} {r['label']} · {c.label.split(' (')[0]}"
                if cell["run"] is None:
                    if r["label"] not in [o[0] for o in other]:
                        other.append((r["label"], cell["note"]))
                elif cell["ours"] is None and cell.get("needs"):
                    g = groups.setdefault(cell["run"], {"needs": cell["needs"], "cells": [],
                                                        "note": cell["note"],
                                                        "why": cell.get("why", ""),
                                                        "model": r["model"], "head": r["head"],
                                                        "dataset": c.folder})
                    if label not in g["cells"]:
                        g["cells"].append(label)
    b = [("h2", "Filling the missing cells")]
    if not groups and not other:
        return b + [("p", "None is missing.")]
    b.append(("p", "One run folder serves every cell that shares it (Table 2's ResNet(R) is "
                   "Table 3's ResNet-50(R), Table 4's The proposed is ResNet-152(R)), and a "
                   "cell's MRE and MAE come from the same run."))
    here = [(k, g) for k, g in groups.items() if g["needs"] in ("run", "training")]
    if here:
        b += _subsection(
            "Trainable on this machine",
            "Trained from scratch or fitted (AlexNet, Table 4's classic methods): each "
            "command trains and evaluates one run, and `make audit` then fills its "
            "cells. The wall times of the filled cells (the runs table below) say what "
            "to expect on this machine; `make audit-gpu` runs them all on a GPU.",
            ["run", "cells", "state and command"],
            [[[k], g["cells"], [_commands(g["model"], g["head"], g["dataset"])
                                if g["needs"] == "run" else g["note"]]] for k, g in here])
    need_w = [(k, g) for k, g in groups.items() if g["needs"] == "weights"]
    if need_w:
        files: dict[str, list[str]] = {}
        for k, g in need_w:
            m = config.model(g["model"], config.dataset(g["dataset"]))
            files.setdefault(m.weights, []).append(k)
        b += _subsection(
            "Needs He et al.'s ImageNet ResNets",
            "The paper fine-tunes the ImageNet ResNets that He et al. released as Caffe "
            "models (weights/README.md says where they are published); they cannot be "
            "downloaded from this machine. Put each file in `weights/` under its "
            "name; pycount checks its size and sha256 before use. Then, on a machine "
            "with an NVIDIA GPU, `make audit-gpu` (`GPU=n` picks another device) "
            "prepares, trains and evaluates every paper cell not yet evaluated with "
            "today's settings, skips with one line any cell whose weights or dataset "
            "are missing, and writes this page again; in the replication image: "
            "`docker run --gpus all -v <datasets>:/data -v $PWD/weights:/opt/pycount/"
            "weights -v $PWD/runs:/opt/pycount/runs pycount make audit-gpu "
            "DATA_ROOT=/data` (docs/docker.md). The same sweep runs on a CPU without "
            "the files as a dry run, with stand-ins of random parameters, 2 "
            "iterations per cell and 5 test images counted: `.venv/bin/python -m "
            "bench.audit_dry_run` (weights/README.md).",
            ["file (in weights/)", "bytes", "sha256", "runs waiting for it"],
            [[[f], [f"{weights.RELEASED[f][0]:,}"], [weights.RELEASED[f][1]],
              [", ".join(runs)]] for f, runs in files.items()])
    need_d = [(k, g) for k, g in groups.items() if g["needs"] == "data"]
    if need_d:
        b += _subsection(
            "Needs a dataset that is not on this machine",
            "The paper's Ki67 set is private: with a copy in pycount's generic layout "
            "(images plus a CSV of x,y cell centres each; docs/datasets.md) under "
            "DATA_ROOT/ki67, its cells train like the others. Any other dataset named "
            "here: put its public release under DATA_ROOT (docs/datasets.md).",
            ["run", "cells", "why"], [[[k], g["cells"], [g["why"]]] for k, g in need_d])
    if other:
        b += [("h3", "Rows pycount does not model")] + [("p", f"{label}: {note}.")
                                                       for label, note in other]
    return b


def _subsection(title: str, text: str, header: list[str], rows: list) -> list[tuple]:
    """An h3, its paragraph and its table, as "Filling the missing cells" lists them."""
    return [("h3", title), ("p", text), ("table", header, rows)]


def _blocks(report: dict) -> list[tuple]:
    """("h1"|"h2"|"h3"|"p", text), ("ul", [items]), ("table", header, rows of cells as lists of
    lines), ("img", file)."""
    b = [("h1", "Audit: pycount against Xue et al. 2016"),
         ("p", f"Paper: {report['citation']}. Runs: `{report['runs_dir']}`."),
         ("p", "Paper values are as printed; Δ = ours − paper (for MAE ± std: Δ MAE ± Δ std). "
               "The paper's Ki67 set is private: Ki67-synthetic is our generated stand-in, "
               "compared with the paper's Ki67 column, not a reproduction of it. Page numbers "
               "are those of the published volume (the text extract carries none)."),
         ("p", "**{}** {}".format(*_tally(report))),
         ("h2", "Datasets (paper Table 1; ours: test images and mean-count baseline MAE)"),
         ("table", ["dataset", "paper size", "paper Ntr/Nte", "paper AC", "paper MinC–MaxC",
                    "our runs", "our test images", "our baseline MAE"],
          [[[d["label"]], *[[v] for v in d["paper"][1:]], [str(d["runs"])],
            [", ".join(map(str, d["n_images"])) or "no run"],
            [", ".join(f"{v:.4f}" for v in d["baseline_mae"]) or "no run"]]
           for d in report["datasets"]])]
    for t in report["tables"]:
        b += [("h2", f"Table {t['table']}: {t['title']}"), ("p", f"Source: {t['source']}.")]
        for metric, name in (("mre", "MRE"), ("mae", "MAE ± std")):
            b.append(("table", [name] + [c.label for c in COLUMNS],
                      [[[r["label"]]] + [_cell_parts(r["cells"][c.folder], metric)
                                         for c in COLUMNS] for r in t["rows"]]))
        b.append(("img", f"table{t['table']}.png"))
    b += _filling(report)
    runs = [(r["label"], c, r["cells"][c.folder]) for t in report["tables"] for r in t["rows"]
             for c in COLUMNS if r["cells"][c.folder].get("train") is not None]
    b += [("h2", "The runs behind the cells"),
          ("p", f"Each filled cell's run: `make train` and `make eval` with the model and dataset "
                f"regenerate it from the commit named. A cell is reproduced when its MAE is "
                f"within ±{config.AUDIT_TOLERANCE:.0%} of the paper's.")]
    b.append(("table", ["row", "dataset", "run", "iterations", "wall time", "weights counted",
                        "commit", "net / settings"],
              [[[label], [c.label], [cell["run"]], [_iterations(cell["train"])],
                [_hours(cell["train"].get("seconds"))], [_kept(cell["train"])],
                [str(cell["train"].get("commit", "?"))],
                [str(cell["train"].get("settings", ""))]] for label, c, cell in runs])
              if runs else ("p", "No paper cell has a run yet."))
    if _curves(report):
        missing = _curveless(report)
        b += [("p", "Validation curves of the filled cells' trainings (patch MAE on the held-out "
                    "training images' patches, every test interval; the weights counted are "
                    "marked)" + (f"; none is recorded for {', '.join(missing)}, whose record "
                                 f"keeps only the best validation" if missing else "") + ":"),
              ("img", "validation.png")]
    b += _outside(report)
    if report.get("density"):
        b += [("h2", "Beyond the paper: density models (issue #7)"),
              ("p", "Bacterial: trained on N images of 001-100, tested on 101-200. ± is the std "
                    "of the per-image errors for single runs, and of the MAE over the draws for "
                    "the N-image protocol (as FCRN-A and Count-ception report it). A row "
                    "\"over k splits\" is one model on the recorded split and on k − 1 "
                    "redrawn ones (RESPLIT=s, the same sizes): the mean and std of their test "
                    "MAEs, the spread that split luck alone gives.")]
        b.append(("table", ["dataset", "method", "training images", "MAE ± std", "spread",
                            "source"],
                  [[[r["dataset"]], [r["what"]], [str(r["n"])],
                    [f"{r['mae']:.2f} ± {r['std']:.2f}"], [r["spread"]], [r["source"]]]
                   for r in report["density"]]))
    b.append(("h2", "Other runs (no paper row maps to them)"))
    rows = []
    for m in report["other_runs"]:
        if "error" in m:
            rows.append([[m["run"]], [m["error"]]] + [["—"]] * 5)
        else:
            rows.append([[m["run"]], [f"{m.get('model', '?')}({m.get('head', '?')})"],
                         [str(m["n_images"])], [f"{m['mre']:.4f}"],
                         [f"{m['mae']:.4f} ± {m['mae_std']:.4f}"], [f"{m['baseline_mae']:.4f}"],
                         [str(m.get("dataset", "?"))]])
    b.append(("table", ["run", "model(head)", "test images", "MRE", "MAE ± std",
                        "baseline MAE", "dataset"], rows) if rows else ("p", "None."))
    return b


def _outside(report: dict) -> list[tuple]:
    """The cells outside the tolerance, one row per run (a run may fill cells of two tables),
    each with what was tried for it (report["tried"]) or a line saying nothing is recorded."""
    runs: dict[str, dict] = {}
    for t in report["tables"]:
        for r in t["rows"]:
            for c in COLUMNS:
                cell = r["cells"][c.folder]
                if cell["ours"] is None or not cell["mark"].startswith("outside"):
                    continue
                g = runs.setdefault(cell["run"], {"cells": [], "ratio": cell["ratio"]})
                g["cells"].append(f"Table {t['table']} {r['label']} · {c.label}")
    if not runs:
        return []
    tol = f"±{config.AUDIT_TOLERANCE:.0%}"
    tried = report.get("tried", {})
    where = report.get("tried_file", _shown(config.AUDIT_TRIED))
    b = [("h2", f"Cells outside {tol}: what was tried"),
         ("p", f"Each run whose MAE is outside {tol} of the paper's (ratio = ours / paper; below "
               f"1 is fewer errors than the paper), with what was done about it and what each "
               f"step measured; kept in `{where}` beside the measurements it cites.")]
    for k, g in sorted(runs.items()):
        b += [("h3", f"{k}: ratio {g['ratio']:.2f} ({'; '.join(g['cells'])})"),
              ("ul", tried.get(k) or [f"nothing recorded in `{where}` yet"])]
    return b


def _hours(seconds) -> str:
    if seconds is None:
        return "?"
    return f"{seconds / 3600:.2f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def to_markdown(blocks: list[tuple]) -> str:
    out = []
    for kind, *rest in blocks:
        if kind == "h1":
            out.append(f"# {rest[0]}")
        elif kind == "h2":
            out.append(f"## {rest[0]}")
        elif kind == "h3":
            out.append(f"### {rest[0]}")
        elif kind == "p":
            out.append(rest[0])
        elif kind == "img":
            out.append(f"![{rest[0]}]({rest[0]})")
        elif kind == "ul":
            out.append("\n".join(f"- {item}" for item in rest[0]))
        else:
            header, rows = rest
            lines = [" | ".join(header), " | ".join("---" for _ in header)]
            lines += [" | ".join(" · ".join(c).replace("|", "\\|") for c in r) for r in rows]
            out.append("\n".join(f"| {line} |" for line in lines))
    return "\n\n".join(out) + "\n"


def _inline(text: str) -> str:
    """Escaped HTML with `code` spans."""
    return re.sub(r"`([^`]*)`", r"<code>\1</code>", html.escape(text))


CSS = ("body{font-family:sans-serif;max-width:1400px;margin:1em auto;padding:0 1em}"
       "table{border-collapse:collapse;margin:.5em 0 1em}"
       "td,th{border:1px solid #bbb;padding:4px 8px;vertical-align:top;font-size:90%}"
       "th{background:#eee}code{background:#f4f4f4}img{max-width:100%}")


def to_html(blocks: list[tuple], img_dir: Path) -> str:
    """A self-contained page: the PNGs are embedded as data URIs."""
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>{html.escape(blocks[0][1])}</title><style>{CSS}</style></head><body>"]
    for kind, *rest in blocks:
        if kind in ("h1", "h2", "h3", "p"):
            out.append(f"<{kind}>{_inline(rest[0])}</{kind}>")
        elif kind == "img":
            data = base64.b64encode((img_dir / rest[0]).read_bytes()).decode()
            out.append(f'<p><img alt="{rest[0]}" src="data:image/png;base64,{data}"></p>')
        elif kind == "ul":
            out.append("<ul>" + "".join(f"<li>{_inline(item)}</li>" for item in rest[0])
                       + "</ul>")
        else:
            header, rows = rest
            out.append("<table><tr>" + "".join(f"<th>{_inline(h)}</th>" for h in header)
                       + "</tr>")
            out += ["<tr>" + "".join("<td>" + "<br>".join(map(_inline, c)) + "</td>" for c in r)
                    + "</tr>" for r in rows]
            out.append("</table>")
    return "\n".join(out + ["</body></html>"]) + "\n"


def _chart(table: dict, path: Path) -> None:
    """MAE ± std bars, paper vs ours, one panel per dataset (their scales differ 30-fold)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch
    rows = table["rows"]
    fig, axes = plt.subplots(1, len(COLUMNS), figsize=(4.2 * len(COLUMNS), 4.2))
    for ax, col in zip(axes, COLUMNS):
        cells = [r["cells"][col.folder] for r in rows]
        x = range(len(rows))
        ax.bar([i - 0.2 for i in x], [c["paper"]["mae"] for c in cells], 0.4,
               yerr=[c["paper"]["mae_std"] for c in cells], capsize=3, color="#8aa")
        ours = [(i, c["ours"]) for i, c in zip(x, cells) if c["ours"]]
        ax.bar([i + 0.2 for i, _ in ours], [o["mae"] for _, o in ours], 0.4,
               yerr=[o["mae_std"] for _, o in ours], capsize=3, color="#d73")
        for i, c in zip(x, cells):
            if c["ours"] is None and c["run"]:
                ax.text(i + 0.2, 0, "missing", rotation=90, ha="center", va="bottom",
                        fontsize=8, color="#a33")
        ax.set_xlim(-0.6, len(rows) - 0.4)
        ax.set_xticks(list(x))
        ax.set_xticklabels([r["label"] for r in rows], rotation=30, ha="right", fontsize=8)
        ax.set_title(col.label, fontsize=9)
        ax.set_ylabel("MAE ± std (cells per image)")
    axes[0].legend(handles=[Patch(color="#8aa", label="paper"), Patch(color="#d73", label="ours")],
                   fontsize=8, loc="upper right")
    fig.suptitle(f"Table {table['table']}: {table['title']}", fontsize=10)
    fig.tight_layout()
    atomic.save_figure(fig, path)


def _curves(report: dict) -> list[tuple[str, dict]]:
    """(label, train info) of every filled cell whose training logged a validation curve, once
    per run (Table 2's ResNet(R) and Table 3's ResNet-50(R) share theirs)."""
    seen, out = set(), []
    for t in report["tables"]:
        for r in t["rows"]:
            for c in COLUMNS:
                cell = r["cells"][c.folder]
                train = cell.get("train") or {}
                if train.get("validation") and cell["run"] not in seen:
                    seen.add(cell["run"])
                    out.append((f"{r['label']} {c.folder}", train))
    return out


def _curveless(report: dict) -> list[str]:
    """The filled cells trained by a solver (a best validation recorded) whose record holds no
    curve (a record older than the logged curve), named so that the chart's gap is explained."""
    drawn = {label for label, _ in _curves(report)}
    out = []
    for t in report["tables"]:
        for r in t["rows"]:
            for c in COLUMNS:
                train = r["cells"][c.folder].get("train") or {}
                label = f"{r['label']} {c.folder}"
                if (train.get("best_val") is not None and not train.get("validation")
                        and label not in drawn and label not in out):
                    out.append(label)
    return out


def _validation_chart(report: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, train in _curves(report):
        it, val = zip(*train["validation"])
        line, = ax.plot(it, val, marker=".", label=f"{label} ({train.get('iterations')} its)")
        if train.get("best_iter") in it and train.get("best_val") is not None:
            ax.plot([train["best_iter"]], [train["best_val"]], "o", mfc="none", ms=10,
                    color=line.get_color())
    ax.set_xlabel("iteration")
    ax.set_ylabel("validation patch MAE (cells per patch)")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.set_title("Trainings behind the audit's cells", fontsize=10)
    fig.tight_layout()
    atomic.save_figure(fig, path)


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
        _chart(t, paths[f"table{t['table']}"])
    figures = [f"table{t['table']}.png" for t in report["tables"]]
    if _curves(report):
        _validation_chart(report, out / "validation.png")
        figures.append("validation.png")
    blocks = _blocks(report)
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
    return "\n".join(lines + ["", _tally(report)[0], f"Other runs: {other}."])
