"""Density targets integrate to the exact count, on constructed cases and on real data."""
import numpy as np
import pytest

from conftest import SHARED
from pycount import config
from pycount.data import prepare
from pycount.data.density_targets import density_target


@pytest.mark.parametrize("sigma", [1.0, 2.0, 5.0])
def test_edge_and_corner_cells_keep_their_whole_mass(sigma):
    centres = np.array([[0, 0], [31, 0], [0, 23], [31, 23], [15.5, 11.2], [15.5, 11.2]])
    d = density_target((24, 32), centres, sigma)
    assert d.shape == (24, 32) and d.min() >= 0
    assert d.sum() == pytest.approx(6, abs=1e-12)
    # the corner cell's mass stays in its corner: more than a quarter of a free Gaussian's peak
    assert d[0, 0] > 0.25 / (2 * np.pi * sigma ** 2)


def test_the_mass_sits_where_the_cell_is():
    d = density_target((41, 41), np.array([[20.0, 12.0]]), 2.0)
    yy, xx = np.mgrid[0:41, 0:41]
    assert (d * xx).sum() == pytest.approx(20.0, abs=1e-9)
    assert (d * yy).sum() == pytest.approx(12.0, abs=1e-9)


def test_centres_outside_the_image_are_refused():
    with pytest.raises(ValueError, match="outside"):
        density_target((10, 10), np.array([[12.0, 3.0]]), 2.0)
    with pytest.raises(ValueError, match="sigma"):
        density_target((10, 10), np.array([[1.0, 3.0]]), 0)


@pytest.mark.parametrize("name, sigma", [("bacterial", 2.0), ("nuclei", 3.0)])
def test_every_training_image_integrates_to_its_count(name, sigma):
    ds = config.dataset(name)
    if not (SHARED / ds.subdir).is_dir():
        pytest.skip(f"needs ../shared/datasets/{ds.subdir}")
    ids = prepare.split(ds, SHARED)
    for s in prepare.load(ds, ids["train"] + ids["val"], SHARED):
        d = density_target(s.image.shape[:2], s.centres, sigma)
        assert d.sum() == pytest.approx(s.count, abs=1e-9), s.id
