"""bench.ensembles: MAE of averaged counts over every subset of runs (issue #26's bound on what
ensembling can reach)."""
import json

import pytest

from bench import ensembles, stages


def _run(images):
    return {"images": {i: tuple(tp) for i, tp in images.items()}, "source": "x"}


def test_every_subset_is_scored_on_the_shared_images():
    # a over-counts by 10, b under-counts by 10, c by 4 (image z only in a: left out)
    runs = {"a": _run({"x": (100, 110), "y": (50, 60), "z": (9, 0)}),
            "b": _run({"x": (100, 90), "y": (50, 40)}),
            "c": _run({"x": (100, 96), "y": (50, 46)})}
    rows = ensembles.ensembles(runs)
    assert [r["runs averaged"] for r in rows] == [1, 2, 3] and rows[0]["images"] == 2
    assert (rows[0]["best MAE"], rows[0]["worst MAE"], rows[0]["best subset"]) == (4, 10, "c")
    # pairs: a+b cancel to 0, a+c 3, b+c 7
    assert (rows[1]["best MAE"], rows[1]["mean MAE"], rows[1]["best subset"]) == (0, 3.33, "a, b")
    assert rows[2]["best MAE"] == pytest.approx(4 / 3, abs=0.01)


def test_refusals(tmp_path, monkeypatch):
    with pytest.raises(SystemExit, match="share no test image"):
        ensembles.ensembles({"a": _run({"x": (1, 1)}), "b": _run({"y": (1, 1)})})
    with pytest.raises(SystemExit, match="disagree on the true counts"):
        ensembles.ensembles({"a": _run({"x": (1, 1)}), "b": _run({"x": (2, 1)})})
    monkeypatch.setattr(stages, "RESULTS", tmp_path / "results")
    (tmp_path / "r.json").write_text(json.dumps({"runs": {
        "a": {"images": {"x": [1, 2]}, "metrics": {}}}}))
    with pytest.raises(SystemExit, match="at least two runs"):
        ensembles.main(["--label", "t", f"{tmp_path}/r.json#a"])


def test_the_results_file_names_each_runs_source(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(stages, "RESULTS", tmp_path / "results")
    (tmp_path / "r.json").write_text(json.dumps({"runs": {
        "a": {"images": {"x": [10, 12], "y": [5, 5]}, "metrics": {}},
        "b": {"images": {"x": [10, 8], "y": [5, 7]}, "metrics": {}}}}))
    assert ensembles.main(["--label", "t", f"{tmp_path}/r.json#a", f"{tmp_path}/r.json#b"]) == 0
    kept = json.loads(next((tmp_path / "results").glob("*ensembles-t.json")).read_text())
    assert kept["sources"] == {"a": f"{tmp_path}/r.json#a", "b": f"{tmp_path}/r.json#b"}
    assert [r["best MAE"] for r in kept["rows"]] == [1.0, 0.5]   # a or b alone; a+b: 0 and 1
