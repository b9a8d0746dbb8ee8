"""bench.split_spread: the split-to-split spread of one model's test MAE (issue #26)."""
import json

import pytest

from bench import split_spread


def _run(folder, rows, mre=0.1):
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({"mre": mre}))
    (folder / "predictions.csv").write_text(
        "id,true,predicted,tiling,abs_error\n"
        + "".join(f"{i},{t},{p},{p},{abs(p - t)}\n" for i, t, p in rows))


def test_splits_are_found_and_compared(tmp_path):
    # image "a" is hard (error 10 wherever it is tested), "b" and "c" easy (error 2)
    _run(tmp_path / "nuclei" / "fcrn", [("a", 100, 110), ("b", 50, 52)])
    _run(tmp_path / "nuclei-split1" / "fcrn", [("a", 100, 90), ("c", 20, 22)])
    _run(tmp_path / "nuclei-split2" / "fcrn", [("b", 50, 48), ("c", 20, 18)])
    _run(tmp_path / "nuclei-splitx" / "fcrn", [("b", 50, 0)])          # not a RESPLIT=s name
    runs = split_spread.find_runs("nuclei", "fcrn", tmp_path)
    assert list(runs) == ["recorded", "split 1", "split 2"]
    a = split_spread.analyse(runs)
    assert [r["MAE"] for r in a["rows"]] == [6.0, 6.0, 2.0]
    # each split's images rated by their errors in the other splits (its own left out): the
    # recorded split's a (10 in split 1) and b (2 in split 2)
    assert [r["difficulty"] for r in a["rows"]] == [6.0, 6.0, 2.0]
    assert [r["images tested elsewhere"] for r in a["rows"]] == [2, 2, 2]
    assert a["spread"]["mae_mean"] == pytest.approx(4.67, abs=0.01)
    assert a["spread"]["difficulty_vs_mae_corr"] == pytest.approx(1.0)
    assert a["worst"][0] == {"image": "a", "tested in": 2, "mean abs error": 10.0, "true": 100.0}


def test_a_splits_own_errors_do_not_rate_its_images(tmp_path):
    """A split's difficulty included its own errors, so difficulty and MAE correlated by
    construction (helper-54: 0.86 with no image harder than another). Here every image is as
    hard as any other elsewhere, and one split is bad on its own: its difficulty stays."""
    _run(tmp_path / "nuclei" / "fcrn", [("a", 100, 130), ("b", 50, 80)])      # errors 30
    _run(tmp_path / "nuclei-split1" / "fcrn", [("a", 100, 102), ("c", 20, 22)])
    _run(tmp_path / "nuclei-split2" / "fcrn", [("b", 50, 48), ("c", 20, 18)])
    rows = split_spread.analyse(split_spread.find_runs("nuclei", "fcrn", tmp_path))["rows"]
    assert [r["MAE"] for r in rows] == [30.0, 2.0, 2.0]
    assert [r["difficulty"] for r in rows] == [2.0, 16.0, 16.0]


def test_fewer_than_two_runs_is_a_clear_error(tmp_path):
    _run(tmp_path / "nuclei" / "fcrn", [("a", 100, 110)])
    with pytest.raises(SystemExit, match="needs two or more"):
        split_spread.main(["--runs", str(tmp_path)])
