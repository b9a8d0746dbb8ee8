"""Density targets integrate to the exact count, on constructed cases and on real data."""
import numpy as np
import pytest

from conftest import SHARED
from pycount import config
from pycount.data import prepare
from pycount.data.density_targets import (count_training_crops, density_target, pad_around,
                                           training_crops, zoom_factors)


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


def _gauss_share(u, lo, hi, sigma):
    """Share of a unit Gaussian at u (cut at its 4-sigma window around round(u)) that falls on the
    pixels lo..hi-1: the 1-D factor of a crop's target, worked out on its own."""
    r = int(np.ceil(4 * sigma))
    window = np.arange(round(u) - r, round(u) + r + 1)
    g = np.exp(-0.5 * ((window - u) / sigma) ** 2)
    return g[(window >= lo) & (window < hi)].sum() / g.sum()


def test_a_cell_is_a_gaussian_cut_at_four_sigma():
    sigma = 2.0
    d = density_target((41, 41), np.array([[20.0, 20.0]]), sigma)
    # the 4-sigma window is 17 x 17 pixels around the cell, nothing outside it
    assert np.array_equal(np.argwhere(d > 0).min(0), [12, 12])
    assert np.array_equal(np.argwhere(d > 0).max(0), [28, 28])
    row = np.exp(-0.5 * (np.arange(-8, 9) / sigma) ** 2)
    assert d[20, 20] == pytest.approx(1 / row.sum() ** 2, rel=1e-12)


def test_centres_on_the_inclusive_edges_are_accepted():
    # -0.5 is the left/top edge of pixel 0; the readers keep marks there
    d = density_target((10, 12), np.array([[-0.5, -0.5], [11.5, 9.5]]), 1.0)
    assert d.sum() == pytest.approx(2, abs=1e-12)


def test_a_fractional_centre_keeps_its_position():
    d = density_target((41, 41), np.array([[20.4, 12.3]]), 2.0)
    yy, xx = np.mgrid[0:41, 0:41]
    # the 4-sigma cut is not quite symmetric about a fractional centre: within 0.01 px
    assert (d * xx).sum() == pytest.approx(20.4, abs=0.01)
    assert (d * yy).sum() == pytest.approx(12.3, abs=0.01)


def test_without_renormalising_a_crop_keeps_only_the_part_inside():
    # a cell on the crop's left column keeps a bit more than half its mass; one 1.5 px outside
    # the top edge keeps its tail only
    sigma = 2.0
    d = density_target((20, 20), np.array([[0.0, 10.0]]), sigma, renormalise=False)
    assert d.sum() == pytest.approx(_gauss_share(0.0, 0, 20, sigma), abs=1e-12)
    assert 0.55 < d.sum() < 0.65
    d = density_target((20, 20), np.array([[10.0, -2.0]]), sigma, renormalise=False)
    assert d.sum() == pytest.approx(_gauss_share(-2.0, 0, 20, sigma), abs=1e-12)
    assert 0.1 < d.sum() < 0.4


def test_a_general_angle_draws_the_cells_near_the_crop_with_their_tails():
    """A rotation step of 200 degrees gives one general angle; on a 96 px image with 32 px crops
    at stride 32 only the centre window fits it. Cells are placed by inverting the rotation at
    chosen crop positions, some inside, some just outside (their tails reach in), one far."""
    sigma, crop, c = 2.0, 32, 15.5
    t = np.deg2rad(200.0)
    wanted = np.array([(10.0, 10.0), (-1.4, 15.0), (32.3, 10.0), (15.0, 33.2), (15.0, -0.7),
                       (-12.0, 15.0)])
    # inverse of u = c + cos*dx + sin*dy, v = c - sin*dx + cos*dy, about the centre (47.5, 47.5)
    du, dv = wanted[:, 0] - c, wanted[:, 1] - c
    centres = np.stack([47.5 + np.cos(t) * du - np.sin(t) * dv,
                        47.5 + np.sin(t) * du + np.cos(t) * dv], 1)
    crops = list(training_crops(np.zeros((96, 96, 3), np.uint8), centres, crop, 32, 200, sigma))
    assert len(crops) == 2 * (9 + 1)            # image and mirror: 9 windows at 0, 1 at 200 deg
    expected = sum(_gauss_share(u, 0, crop, sigma) * _gauss_share(v, 0, crop, sigma)
                   for u, v in wanted)
    assert 1.5 < expected < 3.5
    assert crops[9][1].sum(dtype=np.float64) == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("rot_step, context", [(90, 0), (30, 0), (30, 16)])
def test_the_target_peak_sits_on_the_cell_in_every_crop(rot_step, context):
    """One 3 x 3 bright block per cell: in every crop (image and mirror image, every angle,
    with or without context) that holds the cell, the target's peak is on a bright pixel."""
    centres = np.array([[100.0, 150.0]])
    image = np.zeros((256, 256, 3), np.uint8)
    image[149:152, 99:102] = 255
    seen = 0
    for pix, dens in training_crops(image, centres, 64, 16, rot_step, 2.0, context=context,
                                    fill=(0, 0, 0)):
        if dens.sum() < 0.99:
            continue
        py, px = np.unravel_index(dens.argmax(), dens.shape)
        assert pix[context + py, context + px, 0] == 255, (py, px)
        seen += 1
    assert seen > 20


def test_pad_around_rounds_the_fill_of_an_integer_image():
    image = np.full((2, 3, 3), 5, np.uint8)
    out = pad_around(image, 2, (10.6, 20.4, 30.7))
    assert out.shape == (6, 7, 3) and (out[2:4, 2:5] == 5).all()
    assert out[0, 0].tolist() == [11, 20, 31] and out[5, 6].tolist() == [11, 20, 31]


def test_zoom_factors_and_a_shrunken_copy_the_size_of_a_crop():
    assert zoom_factors(0) == (1.0,)
    assert zoom_factors(0.25) == (1.0, 0.8, 1.25)
    # 64 px image, 32 px crops at stride 32: 2 x 2 crops, 1 at half size (exactly a crop),
    # 4 x 4 at twice the size; each in 4 quarter turns and mirrored
    assert count_training_crops(64, 64, 32, 32, 90, zoom=1.0) == 8 * (4 + 1 + 16)


def test_counting_crops_with_context_at_a_general_angle():
    """Crops with context at 30-degree steps, counted by the footprint rule worked out per axis:
    the (crop + 2 context) square centred on a window of the padded image, turned, must stay
    inside the padded image."""
    h = w = 256
    crop, stride, m = 64, 20, 24
    side, length = crop + 2 * m, h + 2 * m
    starts = list(range(0, length - side + 1, stride))
    starts += [length - side] if starts[-1] != length - side else []
    expected = 0
    for angle in range(0, 360, 30):
        a = np.deg2rad(angle)
        half = side / 2 * (abs(np.cos(a)) + abs(np.sin(a)))
        n = sum(1 for s in starts if s + (side - 1) / 2 - half >= -0.5 - 1e-6
                and s + (side - 1) / 2 + half <= length - 0.5 + 1e-6)
        expected += n * n
    assert count_training_crops(h, w, crop, stride, 30, context=m) == 2 * expected
