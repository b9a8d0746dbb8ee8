"""MRE and MAE±std against values worked out by hand."""
import pytest

from pycount.evaluation import metrics

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
