"""MRE and MAE±std against values worked out by hand."""
import json

import numpy as np
import pytest

from pycount import config
from pycount.evaluation import figures, metrics

TRUE = [100, 200, 50, 10]
PRED = [110, 190, 55, 10]          # absolute errors 10, 10, 5, 0


def test_mae_and_std_by_hand():
    assert metrics.mae(TRUE, PRED) == pytest.approx(6.25)
    # population std of (10, 10, 5, 0): mean 6.25, squares of deviations 14.0625*2 + 1.5625
    # + 39.0625 = 68.75, / 4 = 17.1875
    assert metrics.mae_std(TRUE, PRED) == pytest.approx(17.1875 ** 0.5)


def test_mre_by_hand():
    # 10/100 + 10/200 + 5/50 + 0/10 = 0.1 + 0.05 + 0.1 + 0 = 0.25, / 4
    assert metrics.mre(TRUE, PRED) == pytest.approx(0.0625)



def test_summary_holds_the_mean_count_baseline():
    s = metrics.summarize(TRUE, PRED, train_mean=90.0)
    # baseline errors |100-90|, |200-90|, |50-90|, |10-90| = 10, 110, 40, 80 -> mean 60
    assert s["baseline_mae"] == pytest.approx(60.0)
    assert s["n_images"] == 4 and s["mae"] == pytest.approx(6.25)
    # every headline key is the run's, not the baseline's (helper-58: swapping them passed)
    assert s["mre"] == pytest.approx(0.0625) and s["mae_std"] == pytest.approx(17.1875 ** 0.5)
    # baseline |errors| 10, 110, 40, 80: deviations from 60 squared 2500, 2500, 400, 400 -> 1450
    assert s["baseline_mae_std"] == pytest.approx(1450 ** 0.5)
    # 10/100 + 110/200 + 40/50 + 80/10 = 0.1 + 0.55 + 0.8 + 8 = 9.45, / 4
    assert s["baseline_mre"] == pytest.approx(9.45 / 4) and s["train_mean_count"] == 90.0


def test_mre_is_over_the_images_that_hold_cells():
    assert metrics.mre([0, 10, 20], [3, 12, 16]) == pytest.approx((0.2 + 0.2) / 2)
    m = metrics.summarize([0, 10, 20], [3, 12, 16], train_mean=10)
    assert m["mre_images"] == 2 and m["mae"] == pytest.approx(3.0)
    assert m["baseline_mre"] == pytest.approx((0 + 0.5) / 2)
    assert "mre_images" not in metrics.summarize([5, 10], [5, 10], train_mean=7)
    with pytest.raises(ValueError, match="no image holds a cell"):
        metrics.mre([0, 0], [1, 2])


def test_metrics_md_names_the_runs_variant(tmp_path):
    """metrics.md's title is the run's folder name (the dataset's tag): two runs of one dataset
    at other settings (ZOOM=0.1, MARKER=) no longer share a title."""
    from pycount.evaluation import figures
    m = dict(dataset="nuclei", dataset_tag="nuclei-zoom0.1", model="fcrn-ctx", head="R",
             density=True, mre=0.14, mae=30.65, mae_std=25.56, baseline_mae=150.0,
             baseline_mre=0.9, baseline_mae_std=90.0, train_mean_count=297.5, n_images=50)
    assert figures.write_metrics(tmp_path, m).startswith("# nuclei-zoom0.1 / fcrn-ctx (R)\n")
    del m["dataset_tag"]                   # an evaluation from before the tag was kept
    assert figures.write_metrics(tmp_path, m).startswith("# nuclei / fcrn-ctx (R)\n")


def test_metrics_md_says_how_a_classic_method_counts(tmp_path):
    """Table 4's methods count with their own density or detections: metrics.md described them
    as patch counters (griddata of patch counts) with a "non-overlapping tiles" row that only
    repeated the count (helper-50)."""
    from pycount.evaluation import figures
    m = dict(dataset="nuclei", model="lecount", family="lecount", head="R", density=False,
             patch=60, stride=30, mre=0.68, mae=76.94, mae_std=76.54, tiling_mre=0.68,
             tiling_mae=76.94, tiling_mae_std=76.54, baseline_mae=159.7, baseline_mre=7.4,
             baseline_mae_std=167.2, train_mean_count=284.7, n_images=50)
    md = figures.write_metrics(tmp_path, m)
    assert "sum of the per-pixel density" in md and "griddata" not in md and "tiles" not in md
    del m["family"]                        # an evaluation from before the family was kept
    assert "sum of the per-pixel density" in figures.write_metrics(tmp_path, m)
    md = figures.write_metrics(tmp_path, dict(m, model="ledetect", family="ledetect"))
    assert "number of the regions the detector selects" in md and "tiles" not in md
    md = figures.write_metrics(tmp_path, dict(m, model="alexnet", family="alexnet"))
    assert "integral of the griddata density heatmap" in md and "non-overlapping tiles" in md
    # the density models: fcrn by crops, fcrn-ctx (trained with context) whole images at once
    # (its metrics.md said crops at half stride; helper-52)
    dense = dict(m, family="fcrn", density=True)
    assert "crops at half stride" in figures.write_metrics(tmp_path, dict(dense, model="fcrn"))
    for said in ({"context": 32}, {}):       # recorded, or (older evaluations) the model's
        md = figures.write_metrics(tmp_path, dict(dense, model="fcrn-ctx", **said))
        assert "whole image in one pass" in md and "half stride" not in md


def test_predictions_csv_holds_each_images_counts_and_reads_back(tmp_path):
    """One row per image at 3 decimals, the absolute error (an overcount and an undercount alike)
    and, for a C head, the expected class's estimate; read back as the columns Fig. 7 draws."""
    f = tmp_path / "predictions.csv"
    figures.write_predictions(f, [
        {"id": "001", "true": 10, "predicted": 12.3456, "tiling": 11.0, "expected": 9.5},
        {"id": "002", "true": 20, "predicted": 17.5, "tiling": 18.25, "expected": 21.0}])
    assert f.read_text().splitlines() == [
        "id,true,predicted,tiling,expected,abs_error",
        "001,10,12.346,11.000,9.500,2.346", "002,20,17.500,18.250,21.000,2.500"]
    back = figures.read_predictions(f)
    assert back["id"] == ["001", "002"]
    assert back["true"].tolist() == [10.0, 20.0] and back["predicted"].tolist() == [12.346, 17.5]
    figures.write_predictions(f, [{"id": "001", "true": 3, "predicted": 3.0, "tiling": 2.0}])
    assert f.read_text().splitlines() == ["id,true,predicted,tiling,abs_error",
                                          "001,3,3.000,2.000,0.000"]


METRICS = dict(dataset="bacterial", model="alexnet", head="C", density=False, patch=32,
               stride=8, mre=0.0712, mae=9.876, mae_std=3.21, tiling_mre=0.08, tiling_mae=10.5,
               tiling_mae_std=3.5, expected_mre=0.09, expected_mae=11.25, expected_mae_std=4.0,
               baseline_mre=0.3, baseline_mae=40.5, baseline_mae_std=20.25,
               train_mean_count=171.44, n_images=100)


def test_the_metrics_table_has_a_row_per_estimate():
    assert figures.metrics_table(METRICS).splitlines() == [
        "| estimator | MRE | MAE ± std |", "|---|---:|---:|",
        "| alexnet(C) | 0.0712 | 9.88 ± 3.21 |",
        "| alexnet(C), non-overlapping tiles | 0.0800 | 10.50 ± 3.50 |",
        "| alexnet(C), expected class | 0.0900 | 11.25 ± 4.00 |",
        "| mean training count (171.4) | 0.3000 | 40.50 ± 20.25 |"]
    # a density model's count is its map's sum: no tiling row; an MRE over fewer images is said
    lines = figures.metrics_table(dict(METRICS, model="fcrn", head="R", density=True,
                                       mre_images=98)).splitlines()
    assert not any("tiles" in line for line in lines)
    assert lines[-1] == ("MRE over the 98 of 100 test images that hold cells (a relative error "
                         "needs one); MAE over all.")


def test_metrics_md_and_json_are_written_and_a_partial_evaluation_is_said(tmp_path):
    m = dict(METRICS, n_images=5, test_images_of=100)
    md = figures.write_metrics(tmp_path, m)
    assert md.startswith("# bacterial / alexnet (C)\n\n5 of the 100 test images (a partial "
                         "evaluation: no result); patch 32, stride 8; count = integral of the "
                         "griddata density heatmap.\n\n")
    assert (tmp_path / "metrics.md").read_text() == md
    assert json.loads((tmp_path / "metrics.json").read_text()) == m
    assert figures.images(METRICS) == "100 test images"


def test_metrics_md_reads_a_density_models_context_as_recorded():
    """A context recorded as a whole number is the run's; anything else (none, a damaged value) is
    the model's of today; an unknown model has none."""
    assert figures._context({"model": "fcrn", "context": 32}) == 32
    assert figures._context({"model": "fcrn-ctx", "context": "32"}) == \
        config.model("fcrn-ctx").context
    assert figures._context({"model": "fcrn"}) == config.model("fcrn").context == 0
    assert figures._context({"model": "no-such-model"}) == 0


def test_a_classic_method_is_known_by_its_recorded_family_first():
    """The family a metrics.json records decides (a kept variant's name need not be its
    family's); the model's name only where none is recorded."""
    assert figures._classic({"model": "lecount-k64", "family": "lecount"}) == "lecount"
    assert figures._classic({"model": "lecount", "family": "alexnet"}) == ""
    assert figures._classic({"model": "ledetect"}) == "ledetect"


def test_fig7_draws_the_images_sorted_by_true_count_and_the_density_maps_on_one_scale(
        monkeypatch, tmp_path):
    drawn = []
    monkeypatch.setattr(figures.atomic, "save_figure", lambda fig, path, **k: drawn.append(fig))
    figures.save_fig7(tmp_path / "fig7.png", ["a", "b", "c"], np.array([30.0, 10.0, 20.0]),
                      {"fcrn": np.array([31.0, 12.0, 19.0])}, "bacterial")
    truth, est = drawn[0].axes[0].lines
    assert truth.get_ydata().tolist() == [10.0, 20.0, 30.0]
    assert est.get_ydata().tolist() == [12.0, 19.0, 31.0]
    # the target and the predicted density share the colour scale, up to the larger peak
    figures.save_density_fig(tmp_path / "d.png", np.zeros((4, 4, 3), np.uint8),
                             np.full((4, 4), 0.25), np.full((4, 4), 0.5), 4.0, 8.0)
    assert [ax.images[0].get_clim() for ax in drawn[1].axes[1:3]] == [(0, 0.5), (0, 0.5)]
