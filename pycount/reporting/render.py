"""The audit's page: the report that reporting.audit builds, as blocks written out as Markdown
and as a self-contained HTML page; with the report's columns and the few helpers that building
the report shares with its rendering (a run's file as the report names it, a cell's commands).
"""
from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass
from pathlib import Path

from pycount import config
from pycount.nets import weights


# ---- the report's columns, and what building the report shares with its rendering --------

@dataclass(frozen=True)
class Column:
    folder: str   # runs/<folder>/...
    paper: str    # the paper column it is compared with
    label: str


COLUMNS = (Column("nuclei", "nuclei", "Nuclei"),
           Column("bacterial", "bacterial", "Bacterial"),
           Column("ki67", "ki67", "Ki67"),
           Column("ki67-synthetic", "ki67", "Ki67-synthetic (our stand-in, vs paper Ki67)"))
RECORDED = ("recorded result (docs/audit/results.json): its run folder is not on this machine; "
            "the commit named below retrains it")


# How a missing cell reads in the tables; the section "Filling the missing cells" says the rest.
NEEDS = {"weights": "missing: needs ImageNet weights", "data": "missing: dataset not here",
         "run": "missing: trainable here", "training": "in training"}


def shown(path: Path) -> str:
    """A run's file as the report names it: <dataset>/<run>/<file>."""
    return "/".join(path.parts[-3:])


def _iterations(train: dict) -> str:
    """"20000": the iterations trained (a training stopped before its end is no result: the
    audit marks its run, audit.build)."""
    return str(train.get("iterations", "?"))


def _kept(train: dict) -> str:
    """The weights a cell was counted with: those of the best validation, when there was one."""
    if train.get("best_iter") is None or train["best_iter"] < 0 or train.get("best_val") is None:
        return "the fitted model" if train.get("iterations") == 0 else "?"
    return f"iteration {train['best_iter']} (validation patch MAE {train['best_val']:.3g})"


def make_args(model: str, head: str, dataset: str) -> str:
    """The make variables that name a cell's run."""
    return f"MODEL={model} DATASET={dataset}" + ("" if head == "R" else f" HEAD={head}")


def commands(model: str, head: str, dataset: str) -> str:
    """"`make prepare ...`, `make train ...`, then `make eval ...`": what fills a cell trainable
    here (prepare reuses LMDBs that are up to date)."""
    args = make_args(model, head, dataset)
    return f"`make prepare {args}`, `make train {args}`, then `make eval {args}`"


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
        return "recorded result" + (" (reconstructed, see below)" if cell.get("source") else "")
    if cell["run"] is None:
        return "not in pycount (see below)"
    return cell["note"]


def _test_counts(d: dict) -> str:
    """A dataset's test AC, MinC–MaxC over its runs: one figure, or each with the runs behind it
    (the most runs' as "the other N runs")."""
    ranges = d.get("test_counts") or []
    runs = d.get("test_counts_runs") or [[] for _ in ranges]
    named = sum(len(r) for r in runs)
    return "; ".join(
        f"{a:.2f}, {lo}–{hi}" + (f" ({', '.join(r)})" if r else
                                 f" (the other {d['runs'] - named} runs)" if len(ranges) > 1 else "")
        for (a, lo, hi), r in zip(ranges, runs))


def tally(report: dict) -> tuple[str, str]:
    """How many of the paper's cells have a number and how many agree; then what the others
    wait for (two sentences: the page prints both, `make audit`'s summary the first)."""
    paper = [(c, r["cells"][c.folder]) for t in report["tables"] for r in t["rows"]
             for c in COLUMNS]
    modelled = [(c, x) for c, x in paper if x["run"]]
    own = [x for c, x in modelled if c.folder == c.paper]
    stand = [x for c, x in modelled if c.folder != c.paper]
    filled = [x for x in own if x["ours"]]
    within = [x for x in filled if x["mark"].startswith("within")]
    short = [x for x in filled if x["mark"].startswith("short")]
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
            f"({len(within)} within ±{config.AUDIT_TOLERANCE:.0%} of the paper's MAE"
            + (f"; {len(short)} from a training shorter than its schedule, marked short"
               if short else "") + "), and "
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
            [[[k], g["cells"], [commands(g["model"], g["head"], g["dataset"])
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


def to_blocks(report: dict) -> list[tuple]:
    """("h1"|"h2"|"h3"|"p", text), ("ul", [items]), ("table", header, rows of cells as lists of
    lines), ("img", file)."""
    b = [("h1", "Audit: pycount against Xue et al. 2016"),
         ("p", f"Paper: {report['citation']}. Runs: `{report['runs_dir']}`."),
         ("p", "Paper values are as printed; Δ = ours − paper (for MAE ± std: Δ MAE ± Δ std). "
               "The paper's Ki67 set is private: Ki67-synthetic is our generated stand-in, "
               "compared with the paper's Ki67 column, not a reproduction of it. Page numbers "
               "are those of the published volume (the text extract carries none)."),
         ("p", "**{}** {}".format(*tally(report))),
         ("h2", "Datasets (paper Table 1; ours: test images, their AC and MinC–MaxC, and "
                "mean-count baseline MAE)"),
         ("p", "The paper's bacterial AC and MinC–MaxC, 171.47 and 74–317, are exactly those "
               "of images 101–200, the set's usual test images; ours are of the test images the "
               "runs counted, so the columns show where a split differs from the paper's. A "
               "second figure names the runs behind it: scored on other test images, or against "
               "other true counts (marks read otherwise by the pycount that evaluated them: "
               "repeated marks counted once since 2026-12-06, img12 170 where it was 171)."),
         ("table", ["dataset", "paper size", "paper Ntr/Nte", "paper AC", "paper MinC–MaxC",
                    "our runs", "our test images", "our test AC, MinC–MaxC", "our baseline MAE"],
          [[[d["label"]], *[[v] for v in d["paper"][1:]], [str(d["runs"])],
            [", ".join(map(str, d["n_images"])) or "no run"],
            [_test_counts(d) or "no run"],
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
                [wall_time(cell["train"].get("seconds"))], [_kept(cell["train"])],
                [str(cell["train"].get("commit", "?"))],
                [str(cell["train"].get("settings", ""))]] for label, c, cell in runs])
              if runs else ("p", "No paper cell has a run yet."))
    rebuilt = [(label, c, cell) for label, c, cell in runs if cell.get("source")]
    if rebuilt:
        b.append(("p", "Reconstructed records, whose per-image counts and weights were not kept "
                       "(their numbers cannot be recomputed from the record; `make train` and "
                       "`make eval` at the commit named regenerate them): " + "; ".join(
                           f"{label} · {c.label} ({cell['run']}): {cell['source']}"
                           for label, c, cell in rebuilt) + "."))
    if curves(report):
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
                    "the N-image protocol (as FCRN-A and Count-ception report it), over every "
                    "seed's run on the disk (the seeds named). A row "
                    "\"over k splits\" is one model, as `make train` builds it today, on the "
                    "recorded split and on redrawn ones (RESPLIT=s, the same sizes): the mean "
                    "and std of their test MAEs, the spread that split luck alone gives; a run "
                    "trained with another net or settings is left out and named (the recorded "
                    "split's too, where it is the older one). A method with settings after its "
                    "name (ZOOM=0.1) is a setting a study kept that is not the default.")]
        b.append(("table", ["dataset", "method", "training images", "MAE ± std", "spread",
                            "source"],
                  [[[r["dataset"]], [r["what"]], [str(r["n"])],
                    [f"{r['mae']:.2f} ± " + ("n/a" if r["std"] is None else f"{r['std']:.2f}")],
                    [r["spread"]], [r["source"]]]
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
    where = report.get("tried_file", shown(config.AUDIT_TRIED))
    b = [("h2", f"Cells outside {tol}: what was tried"),
         ("p", f"Each run whose MAE is outside {tol} of the paper's (ratio = ours / paper; below "
               f"1 is fewer errors than the paper), with what was done about it and what each "
               f"step measured; kept in `{where}` beside the measurements it cites.")]
    for k, g in sorted(runs.items()):
        b += [("h3", f"{k}: ratio {g['ratio']:.2f} ({'; '.join(g['cells'])})"),
              ("ul", tried.get(k) or [f"nothing recorded in `{where}` yet"])]
    return b


def wall_time(seconds) -> str:
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


def curves(report: dict) -> list[tuple[str, dict]]:
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
    drawn = {label for label, _ in curves(report)}
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
