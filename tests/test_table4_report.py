"""bench/table4_report.py renders bench/results/table4.jsonl: test runs beside the paper's Table 4
figure of their method and set, validation runs apart, every logged run once."""
import json

from bench import table4_report


def _run(method, dataset, which, mae, **overrides):
    return {"method": method, "dataset": dataset, "eval": which, "n_train": 25, "train_ids": "7..51",
            "n_eval": 25, "mae": mae, "std": 1.5, "mre": 0.25, "bias": -3.0, "train_s": 40.2,
            "test_s_per_image": 0.7, "overrides": overrides, "commit": "abc1234"}


def test_runs_are_rendered_in_their_section_with_the_papers_figure(tmp_path):
    rows = [_run("lecount", "nuclei", "test", 81.148, channel="hematoxylin"),
            _run("ledetect", "bacterial", "test", 22.125),
            _run("ledetect", "nuclei", "val", 74.56, learner="logistic", max_tuple=4)]
    jsonl = tmp_path / "t.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows) + "\n")
    md = table4_report.write(jsonl, tmp_path / "t.md").read_text()
    test_part, val_part = md.split("## Validation runs")
    lines = [line for line in test_part.splitlines() if line.startswith("| Le.")]
    assert len(lines) == 2
    # the paper's own figure for Le.count on nuclei and Le.detect on bacterial (Table 4)
    assert "81.15 ± 1.50" in lines[0] and "51.4479 ± 39.8087, MRE 0.2674" in lines[0]
    assert "channel=hematoxylin" in lines[0] and "abc1234" in lines[0]
    assert "22.12 ± 1.50" in lines[1] and "18.1937 ± 13.4393, MRE 0.1083" in lines[1]
    assert "defaults" in lines[1]
    val_lines = [line for line in val_part.splitlines() if line.startswith("| Le.")]
    assert len(val_lines) == 1
    assert "learner=logistic, max_tuple=4" in val_lines[0] and "held-out training images" in val_lines[0]
    assert "Xue" not in val_part   # no paper column for runs that chose settings


def test_the_committed_table_is_the_rendering_of_the_committed_log(tmp_path):
    results = table4_report.RESULTS
    rendered = table4_report.write(results / "table4.jsonl", tmp_path / "table4.md").read_text()
    assert (results / "table4.md").read_text() == rendered, (
        "bench/results/table4.md is not the rendering of table4.jsonl: run python -m bench.table4_report")
