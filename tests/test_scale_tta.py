"""bench.scale_tta: a density run's test images counted at several sizes (issue #26)."""
import numpy as np
import pytest

from bench import scale_tta


class Area:
    """A stand-in predictor whose density is 1 per lit pixel: its count grows with the image's
    area, as a net that measures stain rather than counting nuclei would."""

    def density(self, img):
        return (img[..., 0] > 100).astype(np.float64)      # (half the square's level)


def test_each_size_is_the_image_resized_and_counted():
    img = np.zeros((40, 40, 3), np.uint8)
    img[10:30, 10:30] = 200                                 # a 20 x 20 px square
    c = scale_tta.counts_at_sizes(Area(), img, [1.0, 0.5, 2.0])
    assert c[1.0] == 400
    assert c[0.5] == pytest.approx(100, abs=12) and c[2.0] == pytest.approx(1600, abs=90)


def test_rows_pair_each_size_and_the_mean_with_the_image_as_it_is():
    true = np.array([100.0, 50.0])
    counts = {1.0: [110.0, 45.0], 0.9: [100.0, 40.0], 1.1: [120.0, 50.0]}
    rows = {r["count"]: r for r in scale_tta.score(counts, true)}
    assert rows["x1"]["MAE"] == 7.5 and rows["x1"]["paired vs x1"] == 0
    assert rows["x0.9"]["MAE"] == 5.0 and rows["x0.9"]["closer on"] == 1      # 0 and 10
    assert rows["x0.9"]["paired vs x1"] == pytest.approx(-2.5)
    mean = rows["mean of x1, x0.9, x1.1"]                 # 110 and 45: as x1
    assert (mean["MAE"], mean["mean error"], mean["paired vs x1"]) == (7.5, 2.5, 0.0)
