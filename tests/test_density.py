"""Density heatmaps by griddata, their integral, and the tiling cross-check."""
import numpy as np
import pytest

from scipy.interpolate import griddata

from pycount.inference import density
from pycount.data import patches


def exact_predictor(centres, patch, origins_of):
    """A perfect 'net': returns the true count of each patch, looked up by its pixels' origin."""
    def predict(stack):
        return np.array([patches.count_in_window(centres, *origins_of[i], patch)
                         for i in range(len(stack))], float)
    return predict


@pytest.mark.parametrize("h,w,patch,stride", [(256, 256, 40, 20), (500, 500, 60, 30),
                                              (301, 257, 40, 20)])
def test_uniform_density_integrates_to_the_true_count(h, w, patch, stride):
    # one cell on every pixel of a regular lattice: uniform density 1/9 cells per px^2
    ys, xs = np.mgrid[1:h:3, 1:w:3]
    centres = np.stack([xs.ravel(), ys.ravel()], 1).astype(float)
    origins = patches.grid(h, w, patch, stride)
    result = density.count_image(np.zeros((h, w, 3), np.uint8), patch, stride,
                                 exact_predictor(centres, patch, origins))
    assert result.heatmap.shape == (h, w)
    assert result.heatmap.min() >= 0
    assert result.count == pytest.approx(len(centres), rel=0.01)
    assert result.tiling_count == pytest.approx(len(centres), rel=0.01)


def test_the_tiling_estimate_predicts_the_tiles_the_grid_lacks():
    """A stride that does not divide the patch (40 px patches at stride 15): most tiles of the
    non-overlapping tiling are not sliding windows, and are predicted on their own. A 'net' that
    reads each window's origin from its pixels gives every window's true count, so both
    estimates must come to the image's count."""
    h, w, patch, stride = 301, 257, 40, 15
    ys, xs = np.mgrid[1:h:5, 1:w:5]          # 8 x 8 cells in every 40 px window, at any offset
    centres = np.stack([xs.ravel(), ys.ravel()], 1).astype(float)
    yy, xx = np.mgrid[0:h, 0:w]
    image = np.stack([xx % 256, yy % 256, (xx // 256) * 16 + yy // 256], -1).astype(np.uint8)

    def predict(stack):
        x = stack[:, 0, 0, 0].astype(int) + 256 * (stack[:, 0, 0, 2].astype(int) // 16)
        y = stack[:, 0, 0, 1].astype(int) + 256 * (stack[:, 0, 0, 2].astype(int) % 16)
        return np.array([patches.count_in_window(centres, a, b, patch) for a, b in zip(x, y)],
                        float)
    origins = patches.grid(h, w, patch, stride)
    tiles = {(int(x), int(y)) for y in patches.grid_origins(h, patch, patch)
             for x in patches.grid_origins(w, patch, patch)}
    assert len(tiles - {(int(x), int(y)) for x, y in origins}) > len(tiles) // 2
    result = density.count_image(image, patch, stride, predict)
    assert result.tiling_count == pytest.approx(len(centres), rel=0.01)
    assert result.count == pytest.approx(len(centres), rel=0.01)


def test_constructed_patch_counts_give_the_expected_integral():
    # a 4 x 4 grid of patch centres carrying a linear ramp of counts on a 100 x 100 image
    patch = 40
    origins = patches.grid(100, 100, patch, 20)
    centres = patches.patch_centres(origins, patch)
    counts = 1.0 + centres[:, 0] / 10.0
    heat = density.density_map((100, 100), centres, counts, patch)
    yy, xx = np.mgrid[0:100, 0:100]
    lo, hi = centres.min(), centres.max()                     # hull: [19.5, 79.5] squared
    inside = (xx >= lo) & (xx <= hi) & (yy >= lo) & (yy <= hi)
    # inside the hull linear interpolation of a linear ramp is exact
    assert np.allclose(heat[inside], ((1.0 + xx / 10.0) / patch**2)[inside])
    # outside, each pixel takes the value of its nearest patch centre
    d = (xx[..., None] - centres[:, 0]) ** 2 + (yy[..., None] - centres[:, 1]) ** 2
    nearest = (counts / patch**2)[d.argmin(-1)]
    assert np.allclose(heat[~inside], nearest[~inside])
    assert heat.sum() == pytest.approx(np.where(inside, (1.0 + xx / 10.0) / patch**2,
                                                nearest).sum())


def test_zero_counts_give_an_empty_heatmap():
    origins = patches.grid(80, 80, 40, 20)
    heat = density.density_map((80, 80), patches.patch_centres(origins, 40),
                               np.zeros(len(origins)), 40)
    assert heat.shape == (80, 80) and not heat.any()


def test_tiling_weights_the_overlapping_edge_tile():
    # 100 px with 40 px tiles: tiles at 0, 40, 60; the last adds only 20 new pixels
    starts, weights = density._tile_weights(100, 40)
    assert starts.tolist() == [0, 40, 60] and weights.tolist() == [1.0, 1.0, 0.5]


@pytest.mark.parametrize("shape, patch, stride", [((256, 256), 40, 20), ((250, 333), 40, 20),
                                                  ((500, 500), 60, 30), ((430, 610), 200, 50)])
def test_triangle_fill_equals_scipy_griddata(shape, patch, stride):
    """The default heatmap is griddata's linear interpolation, pixel for pixel."""
    origins = patches.grid(*shape, patch, stride)
    centres = patches.patch_centres(origins, patch)
    counts = np.random.default_rng(len(origins)).uniform(0, 30, len(origins))
    fast = density.density_map(shape, centres, counts, patch)
    ref = density.density_map(shape, centres, counts, patch, use_griddata=True)
    np.testing.assert_allclose(fast, ref, rtol=1e-12, atol=1e-15)


def test_triangle_fill_on_scattered_points_matches_griddata():
    rng = np.random.default_rng(5)
    centres = rng.uniform(0, 99, (40, 2))
    values = rng.uniform(0, 1, 40)
    fast = density._linear_on_triangles((100, 100), centres, values)
    ref = griddata(centres, values, tuple(np.mgrid[0:100, 0:100][::-1].reshape(2, -1)),
                   method="linear").reshape(100, 100)
    assert np.array_equal(np.isnan(fast), np.isnan(ref))      # the same hull
    inside = ~np.isnan(ref)
    np.testing.assert_allclose(fast[inside], ref[inside], rtol=1e-10, atol=1e-12)
