"""bench.nuclei_marks: the stain-only estimate of unmarked nuclei (issue #26, labels)."""
import numpy as np
import pytest

from bench import nuclei_marks


def _disc(h, cx, cy, r, value):
    yy, xx = np.mgrid[:h.shape[0], :h.shape[1]]
    h[(xx - cx) ** 2 + (yy - cy) ** 2 <= r * r] = value


def test_unmarked_stain_is_the_area_share_of_blobs_without_a_mark():
    h = np.zeros((60, 60))
    _disc(h, 15, 15, 5, 1.0)          # marked
    _disc(h, 45, 45, 5, 1.0)          # marked by a click 2 px off its edge
    _disc(h, 15, 45, 5, 1.0)          # unmarked
    _disc(h, 45, 12, 1, 1.0)          # a speck below MIN_AREA: not a blob
    centres = np.array([[15.0, 15.0], [45.0, 52.0], [30.0, 30.0]])   # (x, y); the last on no stain
    r = nuclei_marks.image_marks(h, centres, threshold=0.5)
    assert r["marks"] == 3
    assert r["unmarked stain"] == pytest.approx(1 / 3, abs=1e-3)
    assert r["marks on stain"] == pytest.approx(1 / 3, abs=1e-3)     # only the first sits on a blob


def test_quartiles_split_the_test_images_by_unmarked_stain():
    per_image = {str(i): {"unmarked stain": i / 10} for i in range(8)}
    counts = {str(i): (100.0, 100.0 + (10 if i >= 4 else -2)) for i in range(8)}
    counts["extra"] = (5.0, 5.0)      # not among the images measured: left out
    rows, corr = nuclei_marks.quartile_rows(per_image, counts)
    assert [r["images"] for r in rows] == [2, 2, 2, 2, 8]
    assert [r["MAE"] for r in rows[:4]] == [2.0, 2.0, 10.0, 10.0]
    assert rows[-1]["mean signed error"] == 4.0
    assert corr["signed error"] > 0.8
