"""bench.paired: per-image paired comparison of runs against a baseline, and the baseline taken
back from the results file of an earlier comparison (issue #26's study)."""
import json

import pytest

from bench import paired, stages


def _run(folder, rows, mre=0.1):
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({"mre": mre}))
    (folder / "predictions.csv").write_text(
        "id,true,predicted,tiling,abs_error\n"
        + "".join(f"{i},{t},{p},{p},{abs(p - t)}\n" for i, t, p in rows))
    return folder


def test_paired_difference_and_summary(tmp_path):
    base = _run(tmp_path / "base", [("a", 100, 110), ("b", 50, 40), ("c", 20, 20)])
    var = _run(tmp_path / "var", [("a", 100, 104), ("b", 50, 45), ("c", 20, 23), ("d", 9, 9)])
    _, b = paired.load(f"base={base}")
    label, v = paired.load(str(var))
    assert label == f"{tmp_path.name}/var"
    s = paired.summary(b["images"])
    assert (s["MAE"], s["MRE"], s["mean error"]) == (6.67, pytest.approx(0.1), 0.0)
    assert s["slope"] == pytest.approx(1.153, abs=1e-3)   # least-squares line of the 3 points
    c = paired.compare(b, v)       # |err| differences on a, b, c: 4-10, 5-10, 3-0
    assert c["shared images"] == 3 and c["closer on"] == 2
    assert c["paired diff"] == pytest.approx((-6 - 5 + 3) / 3, abs=0.01)


def test_results_keep_the_counts_and_serve_as_a_baseline(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(stages, "RESULTS", tmp_path / "results")
    base = _run(tmp_path / "base", [("a", 100, 110), ("b", 50, 40)])
    var = _run(tmp_path / "var", [("a", 100, 101), ("b", 50, 49)])
    assert paired.main(["--label", "t", "--baseline", f"base={base}", f"v={var}"]) == 0
    js = next((tmp_path / "results").glob("*paired-t.json"))
    kept = json.loads(js.read_text())["runs"]
    assert kept["base"]["images"] == {"a": [100.0, 110.0], "b": [50.0, 40.0]}
    # the run folders are gone: the same comparison from the file alone
    for f in (base, var):
        for p in f.iterdir():
            p.unlink()
        f.rmdir()
    _, b = paired.load(f"old={js}#base")
    _, v = paired.load(f"{js}#v")
    assert paired.compare(b, v)["paired diff"] == pytest.approx(-9.0)


def test_unusable_inputs_are_named(tmp_path):
    with pytest.raises(SystemExit, match="no metrics.json"):
        paired.load(f"x={tmp_path}")
    (tmp_path / "r.json").write_text(json.dumps({"runs": {"a": {}}}))
    with pytest.raises(SystemExit, match="keeps no run 'b'"):
        paired.load(f"{tmp_path}/r.json#b")
    a = {"images": {"x": (1.0, 2.0)}}
    with pytest.raises(SystemExit, match="share no test image"):
        paired.compare(a, {"images": {"y": (1.0, 1.0)}})


def test_a_run_is_summarised_on_the_shared_images_and_truths_that_differ_are_counted(
        tmp_path, monkeypatch, capsys):
    """A run's MAE covered all its images while its paired difference covered only those it
    shares with the baseline; two runs scored against other true counts (an earlier pycount
    read img12 as 171 marks, 170 since) were paired without a word; and a label given twice
    replaced the other run's kept counts (helper-54)."""
    monkeypatch.setattr(stages, "RESULTS", tmp_path / "results")
    base = _run(tmp_path / "base", [("a", 100, 110), ("b", 50, 40)])
    var = _run(tmp_path / "var", [("a", 101, 104), ("b", 50, 45), ("z", 9, 209)])
    assert paired.main(["--label", "t", "--baseline", f"base={base}", f"v={var}"]) == 0
    row = json.loads(next((tmp_path / "results").glob("*paired-t.json")).read_text())["rows"][1]
    assert (row["images"], row["MAE"], row["shared images"]) == (2, 4.0, 2)
    assert row["truths differ"] == 1
    assert "1 of the shared images were scored against other true counts" in \
        capsys.readouterr().out
    with pytest.raises(SystemExit, match="the label 'base' is given twice"):
        paired.main(["--label", "t2", "--baseline", f"base={base}", f"base={var}"])


def test_pooling_over_splits_counts_an_image_tested_twice_once(tmp_path, monkeypatch):
    """bench.pooled: the pairs of several splits pooled, with the standard error grouped by
    image (an image in two splits is one unit) beside the naive one and the splits' means'."""
    from bench import pooled
    monkeypatch.setattr(stages, "RESULTS", tmp_path / "results")
    specs = []
    for k, rows in enumerate(([("a", 10, 14, 11), ("b", 20, 25, 20)],
                              [("a", 10, 15, 12), ("c", 30, 30, 33)])):
        base = _run(tmp_path / f"b{k}", [(i, t, p) for i, t, p, _ in rows])
        var = _run(tmp_path / f"v{k}", [(i, t, q) for i, t, _, q in rows])
        assert paired.main(["--label", f"s{k}", "--baseline", f"base={base}", f"var={var}"]) == 0
        specs.append(f"{next((tmp_path / 'results').glob(f'*paired-s{k}.json'))}#base:var")
    found = [pooled.differences(s)[1] for s in specs]
    assert found == [{"a": -3.0, "b": -5.0}, {"a": -3.0, "c": 3.0}]
    p = pooled.pool(found)
    assert (p["pairs"], p["images"], p["paired diff"], p["closer on"]) == (4, 3, -2.0, 3)
    # by image: a's two deviations (-1, -1) summed, b's -3, c's +5
    assert p["s.e. by image"] == round((3 / 2 * (4 + 9 + 25)) ** 0.5 / 4, 2)
    assert (p["split means"], p["s.e. by split"], p["df by split"]) == (-2.0, 2.0, 1)
