"""The audit: the paper's numbers as printed, and the report built from fake runs."""
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from pycount import config
from pycount.reporting import audit, paper, render

# the checkout's ../shared, as conftest.SHARED: CI clones beside it
PAPER_TXT = (Path(__file__).resolve().parents[2] / "shared" / "paper"
             / "xue2016-cell-counting-by-regression.txt")
VALUE = r"\d+\.\d+(?:\s*±\s*\d+\.\d+)?"


def parse_paper(text: str) -> dict:
    """{(table, block, row label): [3 printed values]} from the text's Tables 2-4, where block
    is "MRE" or "MAE" (the paper prints each table as an MRE block then a MAE±std block)."""
    out, table, block = {}, None, None
    for line in text.splitlines():
        line = line.strip()
        m = re.match(r"Table (\d)\.", line)
        if m:
            table, block = int(m.group(1)), None
        elif line.startswith("MRE Nuclei-dataset"):
            block = "MRE"
        elif line.startswith("MAE±std Nuclei-dataset"):
            block = "MAE"
        elif block and table in (2, 3, 4):
            m = re.fullmatch(rf"(.+?) ({VALUE}) ({VALUE}) ({VALUE})", line)
            if m:
                out[(table, block, m.group(1))] = list(m.groups()[1:])
    return out


def test_literal_entries():
    rows = {(r.table, r.label): r for r in paper.PAPER}
    assert rows[(2, "AlexNet(C)")].mae[0] == "20.7636±13.9416"
    assert rows[(3, "ResNet-152(R)")].mre[2] == "0.0641"
    assert rows[(4, "Le.count [16]")].mae[1] == "6.4061 ± 3.5657"
    assert rows[(2, "ResNet(R)")].model == "resnet50"
    assert rows[(4, "The proposed")].run == "resnet152"
    assert rows[(2, "AlexNet(C)")].run == "alexnet-C"
    assert paper.split_mae("71.8046 ± 51.4109") == (71.8046, 51.4109)
    assert paper.PAPER_DATASETS["ki67"][2] == "45/10"


@pytest.mark.skipif(not PAPER_TXT.exists(), reason="paper text not available")
def test_every_number_matches_the_paper_text():
    text = PAPER_TXT.read_text()
    parsed = parse_paper(text)
    ours = {}
    for r in paper.PAPER:
        ours[(r.table, "MRE", r.label)] = list(r.mre)
        ours[(r.table, "MAE", r.label)] = list(r.mae)
    assert len(parsed) == 22 and parsed == ours
    for name, row in paper.PAPER_DATASETS.items():   # Table 1, line by line
        assert " ".join(row) in text, name


def _fake_run(runs: Path, run: str, **metrics):
    d = runs / run
    d.mkdir(parents=True)
    ds, model = run.split("/")
    head = "C" if model.endswith("-C") else "R"
    m = dict(dataset=ds, model=model.removesuffix("-C"), head=head, n_images=100,
             baseline_mae=40.5, baseline_mre=0.3, mae_std=3.0, mre=0.07, mae=10.0)
    m.update(metrics)
    (d / "metrics.json").write_text(json.dumps(m))
    # the training behind it, as make train writes it (iterations: none recorded, so no schedule
    # is compared; a metrics.json without any train.json is no result)
    (d / "train.json").write_text(json.dumps({"dataset": ds, "model": m["model"], "head": head}))


def test_report_from_fake_runs(tmp_path, monkeypatch):
    from pycount.nets import weights
    monkeypatch.setattr(weights, "WEIGHTS_DIR", tmp_path / "weights")    # no ResNet weights
    data = tmp_path / "data"                                # nuclei's release only
    (data / config.dataset("nuclei").subdir).mkdir(parents=True)
    runs = tmp_path / "runs"
    _fake_run(runs, "bacterial/alexnet")
    _fake_run(runs, "nuclei/resnet152", mae=15.0, mae_std=10.0, mre=0.17, n_images=50)
    _fake_run(runs, "bacterial/alexnet-lite", mae=12.0)
    report = audit.build(runs, data_root=data)
    paths = audit.write(report)
    assert paths["md"].parent == runs / "audit"

    t2 = {r["label"]: r for r in report["tables"][0]["rows"]}
    cell = t2["AlexNet(R)"]["cells"]["bacterial"]
    assert cell["diff"]["mae"] == pytest.approx(10.0 - 9.2591)
    assert cell["diff"]["mre"] == pytest.approx(0.07 - 0.0651)
    assert t2["AlexNet(R)"]["cells"]["nuclei"]["ours"] is None
    # what each missing cell waits for: a training here, its dataset, or ImageNet weights
    assert t2["AlexNet(C)"]["cells"]["nuclei"]["needs"] == "run"
    assert t2["AlexNet(C)"]["cells"]["bacterial"]["needs"] == "data"
    assert t2["ResNet(C)"]["cells"]["nuclei"]["needs"] == "weights"
    assert [m["run"] for m in report["other_runs"]] == ["bacterial/alexnet-lite"]
    bact = next(d for d in report["datasets"] if d["folder"] == "bacterial")
    assert bact["n_images"] == [100] and bact["baseline_mae"] == [40.5]

    md, page = paths["md"].read_text(), paths["html"].read_text()
    assert page.startswith("<!DOCTYPE html>") and "<table>" in page and "</html>" in page
    assert "data:image/png;base64," in page
    assert 'src="http' not in page and 'href="http' not in page   # no external resources
    for text in (md, page):
        for r in paper.PAPER:
            assert r.label in text
        assert "ours 10.0000 ± 3.0000" in text and "Δ +0.7409" in text     # bacterial/alexnet
        assert "ours 0.1700" in text and "Δ +0.0034" in text               # nuclei/resnet152
        assert "3 of the 30 paper cells that pycount models have our number" in text
        assert "missing: trainable here" in text and "missing: needs ImageNet weights" in text
        # the commands, reasons and weights are said once, under "Filling the missing cells"
        fill = text[text.index("Filling the missing cells"):]
        assert fill.count("make train MODEL=alexnet DATASET=nuclei HEAD=C") == 1
        assert (fill.index("make prepare MODEL=alexnet DATASET=nuclei HEAD=C")
                < fill.index("make train MODEL=alexnet DATASET=nuclei HEAD=C"))
        assert str(data / config.dataset("bacterial").subdir) in fill
        for name, (size, sha) in weights.RELEASED.items():
            assert name in fill and sha in fill and f"{size:,}" in fill
        assert "make audit-gpu" in fill and "DeepFeat [24]: not implemented" in fill
        assert "bacterial/alexnet-lite" in text and "Ki67-synthetic" in text
    for t in (2, 3, 4):
        png = paths[f"table{t}"]
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000
    assert not list((runs / "audit").glob(".*tmp"))   # atomic writes leave no temp files
    # bacterial/alexnet fills one cell, nuclei/resnet152 two (Table 3 and Table 4)
    assert "3 of the 30 paper cells that pycount models have our number" in audit.summary(report)


def test_unreadable_and_empty(tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    (runs / "ki67" / "resnet50").mkdir(parents=True)
    (runs / "ki67" / "resnet50" / "metrics.json").write_text("{not json")
    monkeypatch.setenv("PYCOUNT_RUNS", str(runs))
    report = audit.build()
    t3 = {r["label"]: r for r in report["tables"][1]["rows"]}
    assert "unreadable" in t3["ResNet-50(R)"]["cells"]["ki67"]["note"]
    out = audit.write(report, tmp_path / "elsewhere")
    assert out["html"].exists() and "None." in out["md"].read_text()


def test_cli(tmp_path, capsys):
    from pycount import cli
    _fake_run(tmp_path / "r", "ki67-synthetic/resnet152", mae=150.0, mae_std=50.0, mre=0.08)
    assert cli.main(["audit", "--runs", str(tmp_path / "r"), "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "ki67-synthetic" in out and "+41.70" in out and str(tmp_path / "o") in out


def test_the_html_page_renders_its_tables_in_a_real_browser(tmp_path, monkeypatch):
    """audit.html opened in headless Chromium (Debian's; `make test` installs it): every table
    is there with its cells, the marks and the charts load."""
    import shutil
    import subprocess
    chromium = shutil.which("chromium")
    assert chromium, "make test installs Debian's chromium (tools/setup_browser.sh)"
    runs = tmp_path / "runs"
    _fake_run(runs, "bacterial/alexnet", mae=9.5)
    (runs / "bacterial" / "alexnet" / "train.json").write_text(json.dumps(
        {"iterations": 20000, "seconds": 7200, "commit": "abc123", "net": "alexnet-R-p40"}))
    _fake_run(runs, "nuclei/lecount", mae=80.0)
    from pycount.nets import weights
    monkeypatch.setattr(weights, "WEIGHTS_DIR", tmp_path / "weights")    # no ResNet weights
    paths = audit.write(audit.build(runs, data_root=tmp_path / "data"))   # and no datasets
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-dev-shm-usage",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([chromium, *flags, "--dump-dom", paths["html"].as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    # datasets, 3 tables x (MRE, MAE), missing cells (trainable here, weights, datasets), runs,
    # density models
    assert dom.count("<table") == 1 + 2 * 3 + 3 + 2
    assert "<h3>Needs He et al.'s ImageNet ResNets</h3>" in dom
    assert "ratio 1.03: within ±15%" in dom             # AlexNet(R) bacterial: 9.5 vs 9.2591
    assert "ratio 1.55: outside ±15%" in dom            # Le.count nuclei: 80 vs 51.4479
    assert "2.00 h" in dom and "abc123" in dom          # the run behind the cell
    shot = tmp_path / "page.png"
    subprocess.run([chromium, *flags, f"--screenshot={shot}", "--window-size=1400,2000",
                    paths["html"].as_uri()], capture_output=True, timeout=120)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    images = re.findall(r'<img[^>]+src="([^"]+)"', dom)
    assert len(images) == 3 and all(src.startswith("data:image/png;base64,") for src in images)


def test_a_cell_in_training_shows_how_far_it_is(tmp_path):
    runs = tmp_path / "runs"
    run = runs / "nuclei" / "alexnet"
    (run / "snapshots").mkdir(parents=True)
    full = config.model("alexnet", config.dataset("nuclei")).solver.max_iter   # today's schedule
    (run / "solver.prototxt").write_text(f'net: "x"\nmax_iter: {full}\nbase_lr: 0.001\n')
    (run / "train_log.csv").write_text("iter,loss,lr,seconds,val_mae\n0,9.1,0.001,0,4.5\n"
                                       "1000,1.2,0.001,3600,1.25\n1020,1.1,0.001,3672,\n")
    cell = lambda: {r["label"]: r for r in audit.build(runs)["tables"][0]["rows"]}[
        "AlexNet(R)"]["cells"]["nuclei"]
    note = cell()["note"]
    assert f"iteration 1020 of {full} after 1.02 h" in note and "MAE 1.25 at iteration 1000" in note
    assert "starts it again (no snapshot yet)" in note and cell()["mark"] == "missing"
    (run / "snapshots" / "latest.json").write_text(json.dumps({"iter": 1000}))
    assert "`make train MODEL=alexnet DATASET=nuclei` resumes it from iteration 1000" in cell()["note"]
    # a run on a shorter schedule than the model's (ITERS=) is resumed on its own
    (run / "solver.prototxt").write_text('net: "x"\nmax_iter: 2400\nbase_lr: 0.001\n')
    assert "iteration 1020 of 2400" in cell()["note"]
    assert "`make train MODEL=alexnet DATASET=nuclei ITERS=2400` resumes it" in cell()["note"]
    # its training ended (train.json, the kept weights) and its evaluation was stopped: it was
    # still "in training", with a make train that had nothing left to do
    (run / "model.caffemodel").write_bytes(b"weights")
    (run / "train.json").write_text(json.dumps({"iterations": 2400, "interrupted": False}))
    assert cell()["note"] == ("trained, not evaluated (its training ended; an evaluation may "
                              "have been stopped): `make eval MODEL=alexnet DATASET=nuclei`")
    (run / "train.json").write_text(json.dumps({"iterations": 1020, "interrupted": True}))
    assert "resumes it" in cell()["note"]


def test_a_trained_cell_without_a_curve_is_named_beside_the_chart(tmp_path):
    """validation.png draws the cells whose training logged a curve; one trained by a solver
    whose record kept only the best validation is named beside it, not silently left out (the
    classic methods, which have no validation, are not named)."""
    runs = tmp_path / "runs"
    for key, log in (("nuclei/alexnet", True), ("bacterial/alexnet", False)):
        _fake_run(runs, key, mae=8.0)
        (runs / key / "train.json").write_text(json.dumps(
            {"iterations": 2000, "best_iter": 2000, "best_val_patch_mae": 0.7}))
        if log:
            (runs / key / "train_log.csv").write_text(
                "iter,loss,lr,seconds,val_mae\n1000,1.1,0.001,900,0.8\n2000,0.9,0.001,1800,0.7\n")
    _fake_run(runs, "nuclei/lecount", mae=60.0)
    (runs / "nuclei" / "lecount" / "train.json").write_text(json.dumps(
        {"iterations": 0, "best_iter": -1, "best_val_patch_mae": None}))
    md = render.to_markdown(render.to_blocks(audit.build(runs)))
    assert "none is recorded for AlexNet(R) bacterial, whose record keeps only" in md
    assert "Le.count" not in md.split("none is recorded for")[1].split("\n")[0]
    (runs / "bacterial" / "alexnet" / "train_log.csv").write_text(
        "iter,loss,lr,seconds,val_mae\n2000,0.9,0.001,1800,0.7\n")
    assert "none is recorded" not in render.to_markdown(render.to_blocks(audit.build(runs)))


def test_the_record_keeps_a_cell_whose_run_folder_is_gone(tmp_path):
    """A cell that cost CPU hours outlives its run folder: `record` keeps each evaluated run's
    metrics and training facts, `build` fills the cell from it when runs/ lacks the folder, a run
    folder present wins over its record, and a damaged record is a named error."""
    import shutil
    runs, rec = tmp_path / "runs", tmp_path / "docs" / "results.json"
    _fake_run(runs, "bacterial/alexnet", mae=8.0, mae_std=6.0, mre=0.04)
    (runs / "bacterial" / "alexnet" / "train.json").write_text(json.dumps(
        {"iterations": 6000, "seconds": 7200.0, "commit": "abc123", "net": "alexnet-R-p40",
         "best_iter": 2000, "best_val_patch_mae": 0.7}))
    (runs / "bacterial" / "alexnet" / "train_log.csv").write_text(
        "iter,loss,lr,seconds,val_mae\n0,6.6,0.001,0,4.9\n20,2.7,0.001,40,\n1000,1.1,0.001,900,"
        "0.8\n2000,0.9,0.0001,1800,0.7\n")
    rec.parent.mkdir()
    report = audit.build(runs, record_path=rec)
    audit.record(report, rec)
    assert (audit.write(report, tmp_path / "first")["md"].parent / "validation.png").exists()
    shutil.rmtree(runs / "bacterial")                      # the machine is gone

    bare = audit.build(runs)                                 # without the record: missing
    assert bare["tables"][0]["rows"][1]["cells"]["bacterial"]["ours"] is None
    report = audit.build(runs, record_path=rec)
    cell = {r["label"]: r for r in report["tables"][0]["rows"]}["AlexNet(R)"]["cells"]["bacterial"]
    assert cell["ours"] == {"mre": 0.04, "mae": 8.0, "mae_std": 6.0}
    assert cell["train"]["iterations"] == 6000 and cell["train"]["commit"] == "abc123"
    assert cell["train"]["validation"] == [[0, 4.9], [1000, 0.8], [2000, 0.7]]
    assert cell["note"] == render.RECORDED
    md = render.to_markdown(render.to_blocks(report))
    assert "ours 8.0000 ± 6.0000" in md and "abc123" in md and "2.00 h" in md
    assert "iteration 2000 (validation patch MAE 0.7)" in md and "validation.png" in md

    _fake_run(runs, "bacterial/alexnet", mae=7.0)           # retrained: the folder wins
    report = audit.build(runs, record_path=rec)
    assert report["tables"][0]["rows"][1]["cells"]["bacterial"]["ours"]["mae"] == 7.0
    kept = audit.record(report, rec)                        # and replaces the entry
    assert kept["bacterial/alexnet"]["metrics"]["mae"] == 7.0 and len(kept) == 1
    assert json.loads(rec.read_text())["runs"]["bacterial/alexnet"]["metrics"]["mae"] == 7.0

    # metrics beside a training that was interrupted (eval refuses such a run: a copy brought
    # them) are no result; it was shown as "2000 of 2400 (stopped)"
    (runs / "bacterial" / "alexnet" / "train.json").write_text(json.dumps(
        {"iterations": 2000, "interrupted": True, "best_iter": 2000, "best_val_patch_mae": 0.6}))
    cell = audit.build(runs, record_path=rec)["tables"][0]["rows"][1]["cells"]["bacterial"]
    assert cell["ours"] is None and cell["note"] == (
        "bacterial/alexnet/metrics.json stands beside a training that was interrupted at "
        "iteration 2000: finish it (make train resumes it), then make eval")
    # metrics of other weights than the run's (trained again, or copied over, since)
    (runs / "bacterial" / "alexnet" / "train.json").write_text(json.dumps(
        {"iterations": 2000, "model_sha256": "a" * 64}))
    metrics_file = runs / "bacterial" / "alexnet" / "metrics.json"
    kept_metrics = metrics_file.read_text()
    metrics_file.write_text(json.dumps({**json.loads(kept_metrics), "iterations": 2000,
                                        "model_sha256": "b" * 64}))
    cell = audit.build(runs, record_path=rec)["tables"][0]["rows"][1]["cells"]["bacterial"]
    assert cell["ours"] is None and cell["note"].startswith(
        "stale bacterial/alexnet/metrics.json: it counted other weights than the run's "
        "model.caffemodel"), cell["note"]
    metrics_file.write_text(json.dumps({**json.loads(kept_metrics), "iterations": 2000,
                                        "model_sha256": "a" * 64}))
    cell = audit.build(runs, record_path=rec)["tables"][0]["rows"][1]["cells"]["bacterial"]
    assert cell["ours"]["mae"] == json.loads(kept_metrics)["mae"]

    rec.write_text("{half written")
    with pytest.raises(config.ConfigError, match="results.json"):
        audit.build(runs, record_path=rec)


def test_a_recorded_cell_whose_folder_is_trained_again_shows_the_training(tmp_path):
    """make train (RESUME=0, or a resumed training) removes the run's metrics.json: until make
    eval ends, the folder holds another net than the record counted, and the cell showed the
    record's number as "its run folder is not on this machine" (helper-50). The record stands
    only where the folder's weights are the ones it counted; a record rebuilt without its run
    folder says where it came from."""
    runs, rec = tmp_path / "runs", tmp_path / "results.json"
    _fake_run(runs, "bacterial/alexnet", mae=8.0, model_sha256="a" * 64)
    run = runs / "bacterial" / "alexnet"
    (run / "train.json").write_text(json.dumps({"iterations": 6000, "model_sha256": "a" * 64}))
    audit.record(audit.build(runs, record_path=rec), rec)

    def cell():
        report = audit.build(runs, record_path=rec)
        return {r["label"]: r for r in report["tables"][0]["rows"]}["AlexNet(R)"]["cells"][
            "bacterial"]
    (run / "metrics.json").unlink()                  # the same weights, evaluation removed
    assert cell()["ours"]["mae"] == 8.0 and cell()["note"] == render.RECORDED
    (run / "train.json").unlink()                    # trained again: under way
    (run / "train_log.csv").write_text("iter,loss,lr,seconds,val_mae\n0,6.6,0.001,0,4.9\n"
                                       "40,2.7,0.001,80,\n")
    assert cell()["ours"] is None and cell()["note"].startswith(
        "training in progress: iteration 40"), cell()["note"]
    (run / "train.json").write_text(json.dumps({"iterations": 6000, "model_sha256": "c" * 64}))
    (run / "model.caffemodel").write_bytes(b"weights")
    assert cell()["ours"] is None and cell()["note"].startswith("trained, not evaluated")

    import shutil
    shutil.rmtree(run)                               # gone; a record copied back by hand
    doc = json.loads(rec.read_text())
    doc["runs"]["bacterial/alexnet"]["source"] = "reconstructed from an earlier audit page"
    rec.write_text(json.dumps(doc))
    assert cell()["ours"]["mae"] == 8.0
    md = render.to_markdown(render.to_blocks(audit.build(runs, record_path=rec)))
    assert "recorded result (reconstructed, see below)" in md
    assert ("AlexNet(R) · Bacterial (bacterial/alexnet): reconstructed from an earlier audit "
            "page.") in md


WHOLE = {"mre": 0.1, "mae": 12.0, "mae_std": 1.0, "baseline_mae": 40.0, "n_images": 10}


@pytest.mark.parametrize("metrics, why", [
    ({**WHOLE, "mae": "12.3"}, 'mae is "12.3", not a number'),
    ([1, 2], "a JSON object was expected, not array"),
    ({k: v for k, v in WHOLE.items() if k != "mae"}, "it lacks mae"),
])
def test_a_hand_edited_record_is_refused_before_anything_is_written(tmp_path, metrics, why):
    """An entry of docs/audit/results.json edited by hand was a traceback in the report (a
    format code on a string, a list taken for a mapping, a KeyError), after `record` had written
    the file again with it."""
    rec = tmp_path / "results.json"
    rec.write_text(json.dumps({"about": "", "runs": {"bacterial/alexnet": {
        "metrics": metrics, "train": {"iterations": 10}}}}))
    before = rec.read_bytes()
    runs = tmp_path / "runs"
    runs.mkdir()
    for call in (lambda: audit.build(runs, record_path=rec),
                 lambda: audit.record({"found": {}, "trains": {}, "runs_dir": runs}, rec)):
        with pytest.raises(config.ConfigError) as refused:
            call()
        message = str(refused.value)
        assert message.startswith(f"{rec}: unreadable entry bacterial/alexnet: ") \
            and why in message, message
        assert message.endswith("restore it with `git checkout -- results.json` in its folder)")
    assert rec.read_bytes() == before


def test_the_record_keeps_per_image_counts_for_later_pairing(tmp_path):
    """The record keeps each run's (true, predicted) per test image, and bench.paired pairs a
    new run with a recorded one after the recorded run's folder is gone."""
    import shutil
    from bench import paired
    runs, rec = tmp_path / "runs", tmp_path / "results.json"
    _fake_run(runs, "nuclei/fcrn", mae=10.0)
    (runs / "nuclei" / "fcrn" / "predictions.csv").write_text(
        "id,true,predicted,tiling,abs_error\nimg1,100,90,90,10\nimg2,50,60,60,10\n")
    _fake_run(runs, "bacterial/fcrn", mae=3.0)                 # evaluated before the change
    kept = audit.record(audit.build(runs, record_path=rec), rec)
    assert kept["nuclei/fcrn"]["images"] == {"img1": [100.0, 90.0], "img2": [50.0, 60.0]}
    assert "images" not in kept["bacterial/fcrn"]
    shutil.rmtree(runs / "nuclei")
    new = tmp_path / "new"
    new.mkdir()
    (new / "metrics.json").write_text(json.dumps({"mre": 0.05}))
    (new / "predictions.csv").write_text("id,true,predicted\nimg1,100,97\nimg2,50,58\n")
    _, base = paired.load(f"{rec}#nuclei/fcrn")
    _, var = paired.load(f"v={new}")
    assert paired.compare(base, var) == {"shared images": 2, "paired diff": -4.5, "s.e.": 2.5,
                                         "closer on": 2, "truths differ": 0}


def test_a_predictions_file_cut_short_is_kept_out_of_the_record(tmp_path):
    """A predictions.csv ending inside a row (its last fields missing): make audit died of
    TypeError (float(None)); the run's metrics are recorded, its per-image counts are not."""
    runs, rec = tmp_path / "runs", tmp_path / "results.json"
    _fake_run(runs, "nuclei/fcrn", mae=10.0)
    (runs / "nuclei" / "fcrn" / "predictions.csv").write_text(
        "id,true,predicted,tiling,abs_error\nimg1,100,90,90,10\nimg2,50")
    kept = audit.record(audit.build(runs, record_path=rec), rec)
    assert kept["nuclei/fcrn"]["metrics"]["mae"] == 10.0 and "images" not in kept["nuclei/fcrn"]


def test_the_committed_record_is_readable_and_names_real_runs():
    runs = audit.read_record(config.AUDIT_RECORD)
    assert runs, "docs/audit/results.json holds the audited runs"
    for key, entry in runs.items():
        ds, run = key.split("/")
        m = entry["metrics"]
        # the folder is the dataset's tag: its name, or name-variant (RESPLIT=s: nuclei-split1;
        # TRAIN_N=n SEED=s of the protocol: bacterial-n50-seed1)
        assert m.get("dataset_tag", m["dataset"]) == ds
        assert ds == m["dataset"] or ds.startswith(m["dataset"] + "-")
        assert m["model"] + ("-C" if m["head"] == "C" else "") == run
        assert all(k in m for k in audit.REQUIRED)


def test_the_split_to_split_spread_is_a_density_row(tmp_path):
    """RESPLIT=s runs of a model (issue #26) give one row: the mean and sample std of the test
    MAEs over the recorded split and the redrawn ones, each split's MAE named."""
    def entry(ds, mae):
        return {"metrics": dict(dataset=ds, model="fcrn", head="R", density=True, mae=mae,
                                mae_std=1.0, mre=0.1, baseline_mae=150.0, n_images=50),
                "train": {}}
    record = tmp_path / "results.json"
    record.write_text(json.dumps({"runs": {"nuclei/fcrn": entry("nuclei", 38.0),
                                           "nuclei-split1/fcrn": entry("nuclei", 30.0),
                                           "nuclei-split2/fcrn": entry("nuclei", 34.0)}}))
    (tmp_path / "runs").mkdir()
    report = audit.build(tmp_path / "runs", record_path=record)
    rows = [r for r in report["density"] if r["spread"] == "over 3 splits"]
    assert len(rows) == 1 and rows[0]["dataset"] == "nuclei"
    assert rows[0]["mae"] == pytest.approx(34.0) and rows[0]["std"] == pytest.approx(4.0)
    assert rows[0]["source"] == "RESPLIT=s: recorded 38.00, split 1 30.00, split 2 34.00"
    assert not [r for r in report["density"] if r["dataset"] == "bacterial"
                and "splits" in r["spread"]]


def test_a_lone_resplit_run_gives_no_spread(tmp_path):
    """A spread needs two splits: one RESPLIT run and no run on the recorded split gives no row
    (a sample std of one MAE is no number)."""
    record = tmp_path / "results.json"
    record.write_text(json.dumps({"runs": {"nuclei-split1/fcrn": {
        "metrics": dict(dataset="nuclei", model="fcrn", head="R", density=True, mae=30.0,
                        mae_std=1.0, mre=0.1, baseline_mae=150.0, n_images=50),
        "train": {}}}}))
    (tmp_path / "runs").mkdir()
    rows = audit.build(tmp_path / "runs", record_path=record)["density"]
    assert [r for r in rows if r["what"].startswith("pycount")] == []


def test_the_split_spread_pools_only_runs_with_the_same_settings(tmp_path):
    """A split run trained with other settings (e.g. before nuclei's sigma changed) is left out
    of the spread and named; a recorded run whose settings are not today's says it is stale."""
    from pycount.nets import builders as nets
    ds = config.dataset("nuclei")
    today = nets.net_name(nets.run_plan(ds, config.model("fcrn", ds)))
    older = today.replace(f"sigma {ds.sigma:g}", f"sigma {ds.sigma + 1:g}")
    assert older != today

    def entry(mae, settings):
        return {"metrics": dict(dataset="nuclei", model="fcrn", head="R", density=True, mae=mae,
                                mae_std=1.0, mre=0.1, baseline_mae=150.0, n_images=50),
                "train": {"settings": settings}}
    record = tmp_path / "results.json"
    record.write_text(json.dumps({"runs": {"nuclei/fcrn": entry(36.0, today),
                                           "nuclei-split1/fcrn": entry(40.0, today),
                                           "nuclei-split2/fcrn": entry(50.0, older)}}))
    (tmp_path / "runs").mkdir()
    rows = audit.build(tmp_path / "runs", record_path=record)["density"]
    split = [r for r in rows if "splits" in r["spread"]]
    assert len(split) == 1 and split[0]["spread"] == "over 2 splits"
    assert split[0]["mae"] == pytest.approx(38.0)
    assert split[0]["source"] == ("RESPLIT=s: recorded 36.00, split 1 40.00; left out, trained "
                                  "with other settings: split 2")
    own = [r for r in rows if r.get("source", "").startswith("nuclei/fcrn")]
    assert len(own) == 1 and "older settings" not in own[0]["source"]

    record.write_text(json.dumps({"runs": {"nuclei/fcrn": entry(36.0, older)}}))
    rows = audit.build(tmp_path / "runs", record_path=record)["density"]
    own = [r for r in rows if r.get("source", "").startswith("nuclei/fcrn")]
    assert len(own) == 1 and "trained with older settings" in own[0]["source"]
    # a record rebuilt from an old page names only the model: not judged
    record.write_text(json.dumps({"runs": {"nuclei/fcrn": entry(36.0, "fcrn")}}))
    rows = audit.build(tmp_path / "runs", record_path=record)["density"]
    own = [r for r in rows if r.get("source", "").startswith("nuclei/fcrn")]
    assert len(own) == 1 and "older settings" not in own[0]["source"]
    # the recorded split's run is the older net: the splits trained as today are pooled
    record.write_text(json.dumps({"runs": {"nuclei/fcrn": entry(36.0, older),
                                           "nuclei-split1/fcrn": entry(40.0, today),
                                           "nuclei-split2/fcrn": entry(50.0, today)}}))
    rows = audit.build(tmp_path / "runs", record_path=record)["density"]
    split = [r for r in rows if "splits" in r["spread"]]
    assert len(split) == 1 and split[0]["mae"] == pytest.approx(45.0)
    assert split[0]["source"] == ("RESPLIT=s: split 1 40.00, split 2 50.00; left out, trained "
                                  "with other settings: recorded")


def test_a_kept_variant_of_a_density_model_has_rows_of_its_own(tmp_path, monkeypatch):
    """config.AUDIT_DENSITY_VARIANTS (nuclei: ZOOM=0.1): the runs at those settings, on the
    recorded split and redrawn ones, are density rows named by their settings."""
    monkeypatch.setattr(config, "AUDIT_DENSITY_VARIANTS", {"nuclei": ({"zoom": 0.1},)})

    def entry(ds, mae):
        return {"metrics": dict(dataset=ds, model="fcrn-ctx", head="R", density=True, mae=mae,
                                mae_std=1.0, mre=0.1, baseline_mae=150.0, n_images=50),
                "train": {}}
    record = tmp_path / "results.json"
    record.write_text(json.dumps({"runs": {
        "nuclei/fcrn-ctx": entry("nuclei", 34.0), "nuclei-zoom0.1/fcrn-ctx": entry("nuclei", 31.0),
        "nuclei-zoom0.1-split3/fcrn-ctx": entry("nuclei", 33.0),
        "nuclei-zoom0.25/fcrn-ctx": entry("nuclei", 20.0)}}))       # not a kept variant
    (tmp_path / "runs").mkdir()
    rows = [r for r in audit.build(tmp_path / "runs", record_path=record)["density"]
            if r["what"].startswith("pycount")]
    assert [(r["what"], r["mae"], r["spread"]) for r in rows] == [
        ("pycount fcrn-ctx", 34.0, "per image"),
        ("pycount fcrn-ctx ZOOM=0.1", 31.0, "per image"),
        ("pycount fcrn-ctx ZOOM=0.1", 32.0, "over 2 splits")]
    assert rows[1]["source"] == "nuclei-zoom0.1/fcrn-ctx (recorded)"
    assert rows[2]["source"] == "RESPLIT=s: recorded 31.00, split 3 33.00"


def test_cli_leaves_a_read_only_docs_folder_alone(tmp_path, monkeypatch, capsys):
    """In the replication image the tree is read-only for the user: `make audit` still writes
    runs/audit/ (and reads the committed record), without touching docs/."""
    import os
    from pycount import cli, config
    root = tmp_path / "tree"
    record = root / "docs" / "audit" / "results.json"
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({"runs": {}}))
    (root / "docs" / "audit.md").write_text("committed page\n")
    (root / "Makefile").write_text("# a checkout: its runs/ beside it\n")
    monkeypatch.setattr(config, "ROOT", root)
    monkeypatch.setattr(config, "AUDIT_RECORD", record)
    monkeypatch.delenv("PYCOUNT_RUNS", raising=False)
    _fake_run(root / "runs", "nuclei/lecount", mae=80.0)
    docs = str(root / "docs")
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p).startswith(docs) else real(p, mode))
    assert cli.main(["audit"]) == 0
    assert (root / "docs" / "audit.md").read_text() == "committed page\n"
    assert json.loads(record.read_text()) == {"runs": {}}
    assert (root / "runs" / "audit" / "audit.md").exists()
    assert f"note: {docs} is not writable here" in capsys.readouterr().err
    monkeypatch.setattr(os, "access", real)                # writable: the page and record refresh
    assert cli.main(["audit"]) == 0
    assert (root / "docs" / "audit.md").read_text() != "committed page\n"
    assert "nuclei/lecount" in json.loads(record.read_text())["runs"]


@pytest.mark.parametrize("metrics, why", [
    ("5", "a JSON object was expected, not number"),
    ("null", "a JSON object was expected, not null"),
    ('["mae"]', "a JSON object was expected, not array"),
    ({"mae": "abc"}, 'mae is "abc", not a number'),
    ({"mae": None}, "mae is null, not a number"),
    ({"baseline_mae": None}, "baseline_mae is null, not a number"),
    ({"n_images": "x"}, 'n_images is "x", not a number'),
    ({"mae_std": True}, "mae_std is true, not a number"),
    ({"model": 7}, "model is 7, not a name"),
    ({"mae": float("nan")}, "mae is NaN, which no evaluation measures"),
    ({"mae_std": float("inf")}, "mae_std is Infinity, which no evaluation measures"),
    ({"mae": -5}, "mae is -5, which no evaluation measures"),
    ({"mre": 10 ** 400}, "mre is 10000000000000000000..., which no evaluation measures"),
])
def test_a_metrics_json_of_the_wrong_type_marks_only_its_run_unreadable(metrics, why, tmp_path,
                                                                         capsys):
    """Valid JSON of the wrong type in one run's metrics.json ended the audit in a traceback
    (F20): that run is reported unreadable, by file, and the rest of the report is built."""
    from pycount import cli
    runs = tmp_path / "runs"
    _fake_run(runs, "bacterial/alexnet", mae=8.0)                 # a good paper cell
    _fake_run(runs, "bacterial/alexnet-lite", mae=9.0)            # a good other run
    _fake_run(runs, "nuclei/alexnet")                             # the damaged paper cell
    _fake_run(runs, "synthetic/alexnet-lite")                     # the damaged other run
    for run in ("nuclei/alexnet", "synthetic/alexnet-lite"):
        f = runs / run / "metrics.json"
        f.write_text(metrics if isinstance(metrics, str)
                     else json.dumps({**json.loads(f.read_text()), **metrics}))
    assert cli.main(["audit", "--runs", str(runs), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "| 2 | AlexNet(R) | bacterial |" in out and "bacterial/alexnet-lite" in out
    report = audit.build(runs)
    cell = {r["label"]: r for r in report["tables"][0]["rows"]}["AlexNet(R)"]["cells"]
    assert cell["bacterial"]["ours"]["mae"] == 8.0
    assert cell["nuclei"]["ours"] is None
    assert cell["nuclei"]["note"] == (f"unreadable nuclei/alexnet/metrics.json: {why} "
                                      f"(make eval writes it anew)")
    other = {m["run"]: m for m in report["other_runs"]}
    assert other["synthetic/alexnet-lite"] == {
        "run": "synthetic/alexnet-lite",
        "error": f"unreadable synthetic/alexnet-lite/metrics.json: {why} (make eval writes it "
                 f"anew)"}
    assert other["bacterial/alexnet-lite"]["mae"] == 9.0
    md = (tmp_path / "out" / "audit.md").read_text()
    assert f"unreadable synthetic/alexnet-lite/metrics.json: {why}" in md
    assert "ours 8.0000 ± 3.0000" in md


def test_the_dataset_table_shows_the_test_images_counts_and_a_damaged_record_of_them_is_named(
        tmp_path):
    """Our test images' AC and MinC-MaxC beside the paper's Table 1, from the runs' per-image
    counts (a run folder's predictions.csv or the record); hand-edited counts in the record were
    an IndexError in the report."""
    runs, rec = tmp_path / "runs", tmp_path / "results.json"
    _fake_run(runs, "bacterial/alexnet", n_images=3)
    (runs / "bacterial" / "alexnet" / "predictions.csv").write_text(
        "id,true,predicted,tiling,abs_error\n1,74,70,70,4\n2,317,300,300,17\n3,123.41,120,120,3.41\n")
    report = audit.build(runs, record_path=rec)
    row = {d["folder"]: d for d in report["datasets"]}["bacterial"]
    assert row["test_counts"] == [(171.47, 74, 317)]
    assert "| 171.47, 74–317 |" in render.to_markdown(render.to_blocks(report))
    # runs scored against other true counts (an earlier pycount's reading of the marks): each
    # figure names its runs, the most runs' as the others (helper-50: "282.30; 282.32" unsaid)
    for run, third in (("bacterial/alexnet-C", "123.41"), ("bacterial/fcrn", "126.41")):
        _fake_run(runs, run, n_images=3)
        (runs / run / "predictions.csv").write_text(
            f"id,true,predicted,tiling,abs_error\n1,74,70,70,4\n2,317,300,300,17\n"
            f"3,{third},120,120,3\n")
    md = render.to_markdown(render.to_blocks(audit.build(runs, record_path=rec)))
    assert "| 171.47, 74–317 (the other 2 runs); 172.47, 74–317 (bacterial/fcrn) |" in md
    audit.record(report, rec)
    recorded = json.loads(rec.read_text())
    assert recorded["runs"]["bacterial/alexnet"]["images"]["2"] == [317.0, 300.0]
    for bad in ({"1": []}, {"1": ["74", 70]}, {"1": [74, float("nan")]}, ["1", "2"], None):
        recorded["runs"]["bacterial/alexnet"]["images"] = bad
        rec.write_text(json.dumps(recorded))
        with pytest.raises(config.ConfigError, match="entry bacterial/alexnet's images are "
                                                     "damaged"):
            audit.build(tmp_path / "none", record_path=rec)


@pytest.mark.parametrize("train, why", [
    ("[1, 2]", "a JSON object was expected, not array"),
    ('"s"', "a JSON object was expected, not string"),
    ("garb{", "(Expecting value: line 1 column 1 (char 0); make train writes it anew)"),
    ({"best_val_patch_mae": "0.5"}, 'best_val_patch_mae is "0.5", not a number'),
    ({"best_iter": "2000"}, 'best_iter is "2000", not a number'),
    ({"seconds": "7200"}, 'seconds is "7200", not a number'),
    ({"iterations": [6000]}, "iterations is [6000], not a number"),
])
def test_a_damaged_train_json_marks_only_its_run_unreadable(train, why, tmp_path, capsys):
    from pycount import cli
    runs = tmp_path / "runs"
    good = {"iterations": 6000, "seconds": 7200.0, "commit": "abc123", "net": "alexnet-R-p40",
            "best_iter": 2000, "best_val_patch_mae": 0.7}
    for run in ("bacterial/alexnet", "nuclei/alexnet"):
        _fake_run(runs, run, mae=8.0)
        (runs / run / "train.json").write_text(json.dumps(good))
    (runs / "nuclei" / "alexnet" / "train.json").write_text(
        train if isinstance(train, str) else json.dumps({**good, **train}))
    assert cli.main(["audit", "--runs", str(runs), "--out", str(tmp_path / "out")]) == 0
    capsys.readouterr()
    report = audit.build(runs)
    cell = {r["label"]: r for r in report["tables"][0]["rows"]}["AlexNet(R)"]["cells"]
    assert cell["bacterial"]["ours"]["mae"] == 8.0 and cell["bacterial"]["train"]["seconds"] == 7200
    assert cell["nuclei"]["ours"] is None
    assert cell["nuclei"]["note"].startswith("unreadable nuclei/alexnet/train.json")
    assert why in cell["nuclei"]["note"] and "make train writes it anew" in cell["nuclei"]["note"]
    assert "nuclei/alexnet" not in audit.record(report, tmp_path / "record.json")
    md = (tmp_path / "out" / "audit.md").read_text()
    assert "unreadable nuclei/alexnet/train.json" in md and "2.00 h" in md


def test_a_damaged_train_log_of_a_cell_in_training_is_named_not_fatal(tmp_path):
    runs = tmp_path / "runs"
    run = runs / "nuclei" / "alexnet"
    run.mkdir(parents=True)
    (run / "train_log.csv").write_text("iter,loss,lr,seconds,val_mae\n0,9.1,0.001,abc,4.5\n")
    note = {r["label"]: r for r in audit.build(runs)["tables"][0]["rows"]}[
        "AlexNet(R)"]["cells"]["nuclei"]["note"]
    assert note.startswith("training begun, but its nuclei/alexnet/train_log.csv is damaged")
    assert "`make train MODEL=alexnet DATASET=nuclei` starts it again" in note


@pytest.mark.parametrize("where", ["missing", "file"])
def test_audit_runs_that_is_no_folder_is_a_named_error(where, tmp_path, capsys):
    """--runs naming a missing folder or a file gave an empty report and exit 0 (F21)."""
    from pycount import cli
    runs = tmp_path / "runs"
    if where == "file":
        runs.write_text("not a folder\n")
    assert cli.main(["audit", "--runs", str(runs), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("pycount: error: " + (
        f"no runs folder {runs}: check the path given to --runs (or PYCOUNT_RUNS); make train "
        f"and make eval write runs there" if where == "missing" else
        f"{runs} is a file, not a runs folder: name the folder that holds <dataset>/<run>/ "
        f"(--runs, PYCOUNT_RUNS)"))
    assert not (tmp_path / "out").exists()


def test_the_projects_own_runs_folder_may_be_missing_when_the_record_fills_the_report(tmp_path):
    rec = tmp_path / "results.json"
    rec.write_text(json.dumps({"runs": {}}))
    assert audit.build(tmp_path / "no-runs-yet", record_path=rec)["other_runs"] == []


@pytest.mark.parametrize("where", ["file", "below a file"])
def test_audit_out_that_cannot_be_a_folder_is_a_named_error(where, tmp_path, capsys):
    """--out naming a file, or a path below one, ended in FileExistsError / NotADirectoryError
    tracebacks (F21)."""
    from pycount import cli
    _fake_run(tmp_path / "runs", "bacterial/alexnet")
    blocker = tmp_path / "afile"
    blocker.write_text("keep me\n")
    out = blocker if where == "file" else blocker / "sub" / "report"
    assert cli.main(["audit", "--runs", str(tmp_path / "runs"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("pycount: error: " + (
        f"{out} is a file, not a folder: name a folder for the report (--out; it is made if "
        f"missing)" if where == "file" else
        f"cannot make the report folder {out}: {blocker} is a file; name a folder for the "
        f"report (--out)"))
    assert blocker.read_text() == "keep me\n"


def test_a_damaged_density_run_leaves_the_density_rows_of_the_others(tmp_path):
    """A seed run's metrics.json with a MAE that is no number ended the audit in a numpy
    traceback, and a density run of a model pycount does not know in a ConfigError."""
    runs = tmp_path / "runs"
    _fake_run(runs, "bacterial/fcrn", mae=3.5, density=True)
    _fake_run(runs, "bacterial/mine", density=True)                  # no such model here
    _fake_run(runs, "bacterial-n32-seed1/fcrn", dataset="bacterial", train_n=32, seed=1,
              mae="abc", density=True)
    report = audit.build(runs)
    ours = [(r["what"], r["n"], r["mae"]) for r in report["density"]
            if r["what"].startswith("pycount")]
    assert ours == [("pycount fcrn", "all", 3.5)]
    errors = {m["run"]: m.get("error") for m in report["other_runs"]}
    assert errors["bacterial-n32-seed1/fcrn"] == (
        'unreadable bacterial-n32-seed1/fcrn/metrics.json: mae is "abc", not a number (make eval '
        'writes it anew)')
    assert errors["bacterial/mine"] is None
    assert "pycount fcrn" in render.to_markdown(render.to_blocks(report))


def test_a_protocol_row_names_the_seeds_it_pools(tmp_path):
    """The audit pools every seed's run on the disk (make protocol's 1-5 and any other one
    trained since): its row says which, and the mean and std are theirs."""
    runs = tmp_path / "runs"
    for seed, mae in ((1, 2.0), (2, 2.4), (3, 2.2), (7, 3.0)):
        _fake_run(runs, f"bacterial-n32-seed{seed}/fcrn", dataset="bacterial", train_n=32,
                  seed=seed, mae=mae, density=True)
    rows = [r for r in audit.build(runs)["density"] if r["what"] == "pycount fcrn"]
    assert [(r["n"], r["spread"], round(r["mae"], 3), round(r["std"], 3)) for r in rows] == [
        (32, "over 4 seeds (1-3, 7)", 2.4, round(float(np.std([2.0, 2.4, 2.2, 3.0], ddof=1)), 3))]


def test_a_protocol_row_pools_the_recorded_seeds_whose_folders_are_gone(tmp_path):
    """The record keeps every seed's run of the N = 50 protocol, but the protocol row read only
    the folders on the disk, so with them gone the audit showed no row of ours beside the
    published N = 50 figures (helper-50). Recorded seeds pool with the folders', named."""
    import shutil
    runs, rec = tmp_path / "runs", tmp_path / "results.json"
    for seed, mae in ((1, 2.0), (2, 2.4), (3, 2.2)):
        _fake_run(runs, f"bacterial-n50-seed{seed}/fcrn", dataset="bacterial", train_n=50,
                  seed=seed, mae=mae, density=True)
    audit.record(audit.build(runs, record_path=rec), rec)
    shutil.rmtree(runs / "bacterial-n50-seed1")
    rows = [r for r in audit.build(runs, record_path=rec)["density"]
            if r["what"] == "pycount fcrn"]
    # (the folders' fake runs name no settings, so they count as trained with older ones)
    assert [(r["n"], r["spread"], round(r["mae"], 3)) for r in rows] == [
        (50, "over 1 seeds (1)", 2.0)]
    assert rows[0]["source"].endswith("(seeds 1 recorded: docs/audit/results.json)")
    for seed in (2, 3):
        shutil.rmtree(runs / f"bacterial-n50-seed{seed}")
    rows = [r for r in audit.build(runs, record_path=rec)["density"]
            if r["what"] == "pycount fcrn"]
    assert [(r["n"], r["spread"], round(r["mae"], 3)) for r in rows] == [
        (50, "over 3 seeds (1-3)", 2.2)]
    assert rows[0]["source"].endswith("(seeds 1-3 recorded: docs/audit/results.json)")
    assert not [r for r in audit.build(runs)["density"] if r["what"] == "pycount fcrn"]
    doc = json.loads(rec.read_text())           # one recorded with a net unlike today's
    doc["runs"]["bacterial-n50-seed3/fcrn"]["train"]["settings"] = "fcrn-old | sigma 9"
    rec.write_text(json.dumps(doc))
    rows = [r for r in audit.build(runs, record_path=rec)["density"]
            if r["what"] == "pycount fcrn"]
    assert (rows[0]["spread"], round(rows[0]["mae"], 3)) == ("over 2 seeds (1-2)", 2.2)
    assert "(seeds 3 trained with older settings" in rows[0]["source"]


def test_cells_outside_the_tolerance_say_what_was_tried(tmp_path):
    """Each run whose cell is outside ±15 % gets its lines from the tried file, or a line saying
    none is recorded; a run within the tolerance is not listed even when the file has lines."""
    runs, tried = tmp_path / "runs", tmp_path / "docs" / "audit" / "tried.toml"
    tried.parent.mkdir(parents=True)
    _fake_run(runs, "bacterial/alexnet", mae=20.0)                   # 2.16 x the paper's
    _fake_run(runs, "bacterial/lecount", mae=3.0)                    # 0.47 x, no lines
    _fake_run(runs, "nuclei/resnet152", mae=15.0, n_images=50)       # within: Tables 3 and 4
    tried.write_text('["bacterial/alexnet"]\ntried = ["more iterations:   19.0",\n'
                     '  "a wider net | 18.5"]\n["nuclei/resnet152"]\ntried = ["never shown"]\n')
    report = audit.build(runs, tried_path=tried)
    assert report["tried"]["bacterial/alexnet"] == ["more iterations: 19.0", "a wider net | 18.5"]
    blocks = render.to_blocks(report)
    md = render.to_markdown(blocks)
    section = md[md.index("## Cells outside ±15%: what was tried"):]
    assert ("### bacterial/alexnet: ratio 2.16 (Table 2 AlexNet(R) · Bacterial)\n\n"
            "- more iterations: 19.0\n- a wider net | 18.5\n") in section
    assert ("### bacterial/lecount: ratio 0.47 (Table 4 Le.count [16] · Bacterial)\n\n"
            "- nothing recorded in `docs/audit/tried.toml` yet") in section
    assert "never shown" not in md and "nuclei/resnet152:" not in section
    page = audit.write(report, tmp_path / "out")["html"].read_text()
    assert "<ul><li>more iterations: 19.0</li><li>a wider net | 18.5</li></ul>" in page
    # no cell outside: no section
    assert "what was tried" not in render.to_markdown(render.to_blocks(
        audit.build(tmp_path / "none", record_path=tmp_path / "absent.json", tried_path=tried)))


@pytest.mark.parametrize("text, why", [
    ('["nuclei/alexnet"\ntried = ["x"]\n', "not readable as TOML"),
    ('["nuclei/alexnet"]\ntried = "one line"\n', r'\["nuclei/alexnet"\] needs tried'),
    ('["nuclei/alexnet"]\ntried = []\n', r'\["nuclei/alexnet"\] needs tried'),
    ('["nuclei/alexnet"]\ntried = ["ok", 3]\n', r'\["nuclei/alexnet"\] needs tried'),
    ('[alexnet]\ntried = ["x"]\n', r'\["alexnet"\] is not a run'),
])
@pytest.mark.parametrize("python", ["3.11", "3.10"])
def test_a_damaged_tried_file_is_a_named_error(text, why, python, tmp_path, monkeypatch):
    if python == "3.10":                       # no tomllib: the audit's own reader
        monkeypatch.setitem(sys.modules, "tomllib", None)
    tried = tmp_path / "tried.toml"
    tried.write_text(text)
    with pytest.raises(config.ConfigError, match=f"tried.toml: .*{why}"):
        audit.build(tmp_path, tried_path=tried)


def test_the_committed_tried_file_reads_alike_without_tomllib(monkeypatch):
    """Python 3.10 (Ubuntu 22.04's, which the README names) has no tomllib: make audit stopped
    there with a ModuleNotFoundError traceback (helper-52). Its own reader of the file's layout
    gives what tomllib gives."""
    import tomllib
    path = config.AUDIT_TRIED
    want = tomllib.loads(path.read_text(encoding="utf-8"))
    monkeypatch.setitem(sys.modules, "tomllib", None)
    assert audit._parse_tried(path.read_text(encoding="utf-8")) == want and len(want) >= 5
    assert audit.read_tried(path) == {k: v["tried"] for k, v in want.items()}


def test_the_committed_tried_file_covers_every_recorded_cell_outside_the_tolerance(tmp_path):
    """docs/audit/tried.toml names recorded runs only, and says something for every recorded
    run whose cell is outside the tolerance (a run trained since must bring its lines)."""
    recorded = audit.read_record(config.AUDIT_RECORD)
    tried = audit.read_tried(config.AUDIT_TRIED)
    assert set(tried) <= set(recorded), set(tried) - set(recorded)
    report = audit.build(tmp_path / "no-runs", record_path=config.AUDIT_RECORD,
                         tried_path=config.AUDIT_TRIED)
    outside = {c["run"] for t in report["tables"] for r in t["rows"] for c in r["cells"].values()
               if c["ours"] and c["mark"].startswith("outside")}
    assert outside and outside <= set(tried), outside - set(tried)


def test_a_metrics_json_older_than_its_training_is_no_result(tmp_path):
    """eval records the iterations it counted the weights of; a run trained on since (a resumed
    training after the evaluation) shows as stale, not with the old weights' MAE."""
    runs = tmp_path / "runs"
    _fake_run(runs, "bacterial/alexnet", mae=8.0, iterations=400)
    (runs / "bacterial" / "alexnet" / "train.json").write_text(json.dumps({"iterations": 400}))
    cell = lambda r: {x["label"]: x for x in r["tables"][0]["rows"]}["AlexNet(R)"]["cells"]
    assert cell(audit.build(runs))["bacterial"]["ours"]["mae"] == 8.0
    (runs / "bacterial" / "alexnet" / "train.json").write_text(json.dumps({"iterations": 1000}))
    stale = cell(audit.build(runs))["bacterial"]
    assert stale["ours"] is None and stale["note"] == (
        "stale bacterial/alexnet/metrics.json: it counted the weights of iteration 400, and the "
        "run has trained to 1000 since; make eval counts with them")


def test_a_run_copied_into_another_runs_folder_is_no_result_there(tmp_path):
    """A run moved into another run's place stood for it: an own folder's fcrn in
    bacterial/fcrn filled the bacterial density row, a TRAIN_N=32 run in bacterial/alexnet the
    paper's AlexNet(R) cell."""
    runs = tmp_path / "runs"
    _fake_run(runs, "bacterial/alexnet", mae=98.7, dataset="bacterial",
              dataset_tag="bacterial-n32-seed1")
    _fake_run(runs, "bacterial/fcrn", mae=179.5, dataset="own", model="fcrn")
    _fake_run(runs, "nuclei/alexnet-C", mae=70.0, model="alexnet", head="R")
    report = audit.build(runs)
    cells = {r["label"]: r for r in report["tables"][0]["rows"]}
    assert cells["AlexNet(R)"]["cells"]["bacterial"]["ours"] is None
    assert cells["AlexNet(R)"]["cells"]["bacterial"]["note"] == (
        "misplaced bacterial/alexnet/metrics.json: it is of bacterial-n32-seed1/alexnet, a run "
        "copied or moved into bacterial/alexnet; move it back to bacterial-n32-seed1/alexnet (or "
        "evaluate the run in this folder again: make eval)")
    assert "it is of nuclei/alexnet, a run" in cells["AlexNet(C)"]["cells"]["nuclei"]["note"]
    assert not any(r["dataset"] == "bacterial" and "fcrn" in r["what"]
                   for r in report["density"])
    other = {m["run"]: m for m in report["other_runs"]}
    assert other["bacterial/fcrn"]["error"].startswith("misplaced bacterial/fcrn/metrics.json: "
                                                       "it is of own/fcrn")


def test_a_run_trained_short_of_its_schedule_is_marked_not_taken_for_a_reproduction(tmp_path):
    """A 20-iteration AlexNet (a dry run, a training stopped early and evaluated) filled its
    paper cell like a finished one; a metrics.json with no train.json at all did too."""
    runs = tmp_path / "runs"
    _fake_run(runs, "bacterial/alexnet", mae=9.3)                   # within ±15% of 9.26
    info = runs / "bacterial" / "alexnet" / "train.json"
    schedule = config.model("alexnet", config.dataset("bacterial")).solver.max_iter
    for its, mark in ((20, f"short: 20 of {schedule:,} iterations"), (schedule, "within ±15%")):
        info.write_text(json.dumps({"dataset": "bacterial", "model": "alexnet", "head": "R",
                                    "iterations": its}))
        report = audit.build(runs)
        cell = {r["label"]: r for r in report["tables"][0]["rows"]}["AlexNet(R)"]["cells"]
        assert cell["bacterial"]["mark"] == mark
    info.write_text(json.dumps({"dataset": "bacterial", "model": "alexnet", "head": "R",
                                "iterations": 20}))
    assert "1 from a training shorter than its schedule, marked short" in \
        render.tally(audit.build(runs))[0]
    info.unlink()
    cell = {r["label"]: r for r in audit.build(runs)["tables"][0]["rows"]}["AlexNet(R)"]["cells"]
    assert cell["bacterial"]["ours"] is None and "has no train.json beside it" in \
        cell["bacterial"]["note"]


def test_a_perfect_run_is_a_number_and_a_stand_in_cell_says_so(tmp_path, monkeypatch):
    """A run of MAE 0 has ratio 0: a number outside the tolerance, not a missing cell. A cell of
    Ki67-synthetic (our stand-in for the paper's private Ki67) is marked stand-in, never within
    or outside the paper's number, and missing (stand-in) without a run."""
    from pycount.nets import weights
    monkeypatch.setattr(weights, "WEIGHTS_DIR", tmp_path / "weights")
    runs = tmp_path / "runs"
    _fake_run(runs, "bacterial/alexnet", mae=0.0, mae_std=0.0, mre=0.0)
    _fake_run(runs, "ki67-synthetic/alexnet", mae=0.0, mae_std=0.0, mre=0.0)
    report = audit.build(runs, data_root=tmp_path / "data")
    rows = {r["label"]: r for r in report["tables"][0]["rows"]}
    cells = rows["AlexNet(R)"]["cells"]
    assert (cells["bacterial"]["ratio"], cells["bacterial"]["mark"]) == (0.0, "outside ±15%")
    assert (cells["ki67-synthetic"]["ratio"], cells["ki67-synthetic"]["mark"]) == (0.0, "stand-in")
    assert rows["AlexNet(C)"]["cells"]["ki67-synthetic"]["mark"] == "missing (stand-in)"
    md = audit.write(report)["md"].read_text()
    assert "ratio 0.00: outside ±15%" in md and "ratio 0.00: stand-in" in md


@pytest.mark.parametrize("level", ["dataset", "run"])
def test_runs_named_one_level_too_deep_are_refused_not_reported_empty(tmp_path, level):
    """`pycount audit --runs runs/synthetic` wrote an empty report and exited 0."""
    runs = tmp_path / "runs"
    _fake_run(runs, "bacterial/alexnet", mae=9.0)
    given = runs / "bacterial" if level == "dataset" else runs / "bacterial" / "alexnet"
    with pytest.raises(config.ConfigError, match=f"not a runs folder: .*here {runs}$"):
        audit.build(given)


@pytest.mark.parametrize("mae,mark", [(10.0, "within ±15%"), (11.0, "outside ±15%"),
                                      (7.5, "outside ±15%")])
def test_a_cell_is_within_the_tolerance_only_inside_15_percent(tmp_path, monkeypatch, mae, mark):
    """The paper's AlexNet(R) bacterial MAE is 9.2591: 10.0 is 1.080 of it, 11.0 is 1.188 and 7.5
    is 0.810 (a doubled tolerance passed every test; helper-58)."""
    from pycount.nets import weights
    monkeypatch.setattr(weights, "WEIGHTS_DIR", tmp_path / "weights")
    runs = tmp_path / "runs"
    _fake_run(runs, "bacterial/alexnet", mae=mae)
    report = audit.build(runs, data_root=tmp_path / "data")
    cell = {r["label"]: r for r in report["tables"][0]["rows"]}["AlexNet(R)"]["cells"]["bacterial"]
    assert cell["ratio"] == pytest.approx(mae / 9.2591)
    md = audit.write(report)["md"].read_text()
    assert f"ratio {mae / 9.2591:.2f}: {mark}" in md


def test_the_runs_table_names_the_weights_counted_and_the_wall_time():
    """A best validation at iteration 0 is a kept iteration (not "?"); a fitted classic method
    (0 iterations, no validation) is "the fitted model"; no best validation otherwise is "?".
    A wall time of an hour or more is in hours, a shorter one (0 s too) in minutes."""
    assert render._kept({"iterations": 20, "best_iter": 0, "best_val": 1.25}) == \
        "iteration 0 (validation patch MAE 1.25)"
    assert render._kept({"iterations": 20, "best_iter": 10, "best_val": 0.123456}) == \
        "iteration 10 (validation patch MAE 0.123)"
    assert render._kept({"iterations": 0, "best_iter": -1, "best_val": None}) == \
        "the fitted model"
    assert render._kept({"iterations": 1}) == "?"
    assert render._kept({"iterations": 20, "best_iter": -1, "best_val": 1.0}) == "?"
    assert [render.wall_time(s) for s in (None, 0, 90, 3599, 3600, 9000)] == \
        ["?", "0.0 min", "1.5 min", "60.0 min", "1.00 h", "2.50 h"]


def test_the_tally_counts_the_cells_within_and_what_the_others_wait_for(tmp_path, monkeypatch):
    """Only the cells within ±15% are counted as within; the cells without a number are counted
    per need, the most first, "needs" for one and "need" for more."""
    from pycount.nets import weights
    monkeypatch.setattr(weights, "WEIGHTS_DIR", tmp_path / "weights")    # no ResNet weights
    data = tmp_path / "data"                                # nuclei's release only
    (data / config.dataset("nuclei").subdir).mkdir(parents=True)
    runs, rec = tmp_path / "runs", tmp_path / "absent.json"
    _fake_run(runs, "bacterial/alexnet", mae=20.0)                   # 2.16 x the paper's
    first, second = render.tally(audit.build(runs, data_root=data, record_path=rec))
    assert first.startswith("1 of the 30 paper cells that pycount models have our number "
                            "(0 within ±15% of the paper's MAE), and ")
    assert second == ("Of the cells without a number, 24 need ImageNet weights, 8 can be trained "
                      "here, 7 need a dataset that is not here: see \"Filling the missing "
                      "cells\" below.")
    _fake_run(runs, "bacterial/lecount", mae=6.5)                    # 1.01 x
    first, _ = render.tally(audit.build(runs, data_root=data, record_path=rec))
    assert first.startswith("2 of the 30 paper cells that pycount models have our number "
                            "(1 within ±15% of the paper's MAE), and ")


def test_a_row_pycount_does_not_model_is_listed_once_even_with_every_cell_filled():
    """Table 4's DeepFeat fills no column: it is said once under "Filling the missing cells",
    and is said there even when no modelled cell is missing."""
    cells = {c.folder: {"run": None, "ours": None, "note": "not implemented: why"}
             for c in render.COLUMNS}
    report = {"tables": [{"table": 4, "rows": [{"label": "DeepFeat [24]", "model": None,
                                                "head": "R", "cells": cells}]}]}
    md = render.to_markdown(render._filling(report))
    assert md.count("DeepFeat [24]: not implemented: why.") == 1
    assert "### Rows pycount does not model" in md and "None is missing." not in md


def test_a_cell_in_training_is_listed_as_trainable_here_with_its_state(tmp_path):
    runs = tmp_path / "runs"
    run = runs / "nuclei" / "alexnet"
    (run / "snapshots").mkdir(parents=True)
    full = config.model("alexnet", config.dataset("nuclei")).solver.max_iter
    (run / "solver.prototxt").write_text(f'net: "x"\nmax_iter: {full}\nbase_lr: 0.001\n')
    (run / "train_log.csv").write_text("iter,loss,lr,seconds,val_mae\n0,9.1,0.001,0,4.5\n")
    report = audit.build(runs, record_path=tmp_path / "absent.json")
    note = {r["label"]: r for r in report["tables"][0]["rows"]}["AlexNet(R)"]["cells"][
        "nuclei"]["note"]
    md = render.to_markdown(render.to_blocks(report))
    here = md[md.index("### Trainable on this machine"):]
    here = here[:here.index("\n\n###")]
    assert f"| nuclei/alexnet | Table 2 AlexNet(R) · Nuclei | {note} |" in here


def test_the_runs_outside_the_tolerance_are_listed_in_the_order_of_their_names(tmp_path):
    runs = tmp_path / "runs"
    _fake_run(runs, "nuclei/alexnet", mae=40.0, n_images=50)        # Table 2, 2.15 x
    _fake_run(runs, "bacterial/lecount", mae=3.0)                    # Table 4, 0.47 x
    md = render.to_markdown(render.to_blocks(audit.build(
        runs, record_path=tmp_path / "absent.json")))
    assert md.index("### bacterial/lecount: ratio") < md.index("### nuclei/alexnet: ratio")


def test_markdown_and_html_escape_what_a_cell_or_line_holds(tmp_path):
    """A "|" in a table cell would split the Markdown row; "<" and "&" in a note are text in the
    HTML page, and `code` is a code span in it."""
    blocks = [("h1", "A <title>"), ("p", "run `make eval` & see <b>x</b>"),
              ("table", ["what"], [[["a | b", "c"]]])]
    md = render.to_markdown(blocks)
    assert "| a \\| b · c |" in md.splitlines()
    page = render.to_html(blocks, tmp_path)
    assert "<title>A &lt;title&gt;</title>" in page
    assert "<p>run <code>make eval</code> &amp; see &lt;b&gt;x&lt;/b&gt;</p>" in page
    assert "<td>a | b<br>c</td>" in page


def test_a_run_shared_by_two_tables_has_one_validation_curve(tmp_path):
    """Table 2's ResNet(R) and Table 3's ResNet-50(R) are one run: validation.png draws its curve
    once."""
    runs = tmp_path / "runs"
    _fake_run(runs, "nuclei/resnet50", mae=17.0, n_images=50)
    (runs / "nuclei" / "resnet50" / "train.json").write_text(json.dumps(
        {"iterations": 2000, "best_iter": 2000, "best_val_patch_mae": 0.7}))
    (runs / "nuclei" / "resnet50" / "train_log.csv").write_text(
        "iter,loss,lr,seconds,val_mae\n1000,1.1,0.001,900,0.8\n2000,0.9,0.001,1800,0.7\n")
    report = audit.build(runs, record_path=tmp_path / "absent.json")
    assert [label for label, _ in render.curves(report)] == ["ResNet(R) nuclei"]


def test_the_published_density_counters_and_the_rows_without_a_run():
    """FCRN-A is reported at N = 32 training images, Count-ception at N = 50 (mean ± std over the
    draws); a row pycount does not model has no run folder."""
    assert paper.PUBLISHED_DENSITY == (
        ("FCRN-A (Xie, Noble & Zisserman 2016)", "bacterial", 32, 2.9, 0.2),
        ("Count-ception (Cohen et al. 2017)", "bacterial", 50, 2.3, 0.4))
    rows = {(r.table, r.label): r for r in paper.PAPER}
    assert rows[(4, "DeepFeat [24]")].run is None and rows[(4, "Le.detect [5]")].run == "ledetect"
