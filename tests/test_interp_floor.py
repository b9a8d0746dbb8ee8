"""bench.interp_floor: the paper's heatmap step fed with each window's true count."""
import numpy as np
import pytest

from bench import interp_floor


def test_marks_spread_evenly_come_back_exactly():
    """Every 60 px window of a 120 px image holds 36 of the 144 lattice marks: the heatmap is
    flat at 36 / 60^2 and integrates to 144; the four tiles hold 36 each."""
    xs = np.arange(5, 120, 10.0)
    centres = np.array([(x, y) for y in xs for x in xs])
    heat, tiling = interp_floor.exact_counts((120, 120), centres, 60, 30)
    assert len(centres) == 144
    assert heat == pytest.approx(144.0) and tiling == pytest.approx(144.0)


def test_one_mark_is_smeared_by_the_interpolation_but_not_by_the_tiling():
    heat, tiling = interp_floor.exact_counts((120, 120), np.array([[60.0, 60.0]]), 60, 30)
    assert tiling == pytest.approx(1.0)
    assert abs(heat - 1.0) > 0.05          # the step's own error: what the bench measures
