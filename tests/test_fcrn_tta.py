"""bench.fcrn_tta: which of the 8 flips / quarter turns a density count needs (issue 22)."""
import numpy as np
import pytest

from bench import fcrn_tta
from pycount import config


class Ramp:
    """A stand-in predictor whose density weighs each pixel by its column: the count of an image
    then depends on how the image is turned, as a trained net's does a little."""

    def _density(self, img):
        return img[..., 0].astype(np.float64) * np.arange(1, img.shape[1] + 1)


def test_each_transform_is_counted_once_as_pycount_turns_the_image():
    img = np.zeros((3, 4, 3), np.uint8)
    img[0, 0] = 1                                   # one lit pixel, top left
    counts = fcrn_tta.per_transform_counts(Ramp(), img)
    assert set(counts) == set(config.TTA_TRANSFORMS[8]) == set(fcrn_tta.ALL)
    assert counts[(False, 0)] == 1                  # column 1 as it is
    assert counts[(True, 0)] == 4                   # mirrored: the last of 4 columns
    assert counts[(False, 1)] == 1                  # a quarter turn left: it goes to bottom left
    assert counts[(False, 2)] == 4                  # half turn: bottom right


def test_a_subset_is_scored_against_the_reference_per_image():
    counts = [{t: 100.0 for t in fcrn_tta.ALL}, {t: 200.0 for t in fcrn_tta.ALL}]
    counts[1][(False, 1)] = 208.0                  # one transform of image 2 counts 8 more
    ref = np.array([100.0, 201.0])                  # the mean of all 8
    true = np.array([90.0, 200.0])
    row = fcrn_tta.score(counts, ref, true, fcrn_tta.SUBSETS["4 quarter turns"])
    assert row["max_diff_pct"] == pytest.approx(100 * 1 / 201, abs=1e-3)    # 202 against 201
    assert row["mean_shift"] == pytest.approx(0.5)
    assert row["mae"] == pytest.approx((10 + 2) / 2)
    whole = fcrn_tta.score(counts, ref, true, fcrn_tta.SUBSETS["all 8 (reference)"])
    assert whole["max_diff_pct"] == 0 and whole["mae"] == pytest.approx((10 + 1) / 2)


def test_the_configured_subgroup_of_four_is_one_of_the_scored_subsets():
    assert config.TTA_TRANSFORMS[4] in fcrn_tta.SUBSETS.values()
