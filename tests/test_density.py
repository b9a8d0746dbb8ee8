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


def test_windows_are_predicted_in_chunks_without_losing_any(monkeypatch):
    # 7 windows in chunks of 3: every window predicted once, in order
    from pycount import config
    monkeypatch.setattr(config, "COUNT_WINDOW_CHUNK", 3)
    image = np.arange(10, dtype=np.uint8).reshape(1, 10, 1).repeat(4, 0)   # pixel value = x
    origins = np.array([[x, 0] for x in range(7)])
    got = density.predict_windows(image, origins, 4, lambda stack: stack[:, 0, 0, 0] * 10.0)
    assert got.tolist() == [0, 10, 20, 30, 40, 50, 60]
    assert density.predict_windows(image, origins[:0], 4, lambda s: s[:, 0, 0, 0]).shape == (0,)


def test_one_column_of_patches_takes_the_nearest_value():
    # an image as wide as the patch: the centres lie on one vertical line, no 2-D hull
    patch = 40
    origins = patches.grid(100, 40, patch, 20)                   # y0 = 0, 20, 40, 60 at x0 = 0
    centres = patches.patch_centres(origins, patch)
    counts = np.array([1.0, 2.0, 4.0, 8.0])
    heat = density.density_map((100, 40), centres, counts, patch)
    # rows 0-29 nearest to y = 19.5, 30-49 to 39.5, 50-69 to 59.5, 70-99 to 79.5
    rows = np.repeat([1.0, 2.0, 4.0, 8.0], [30, 20, 20, 30]) / patch**2
    assert np.allclose(heat, rows[:, None] * np.ones((1, 40)))
    assert heat.sum() == pytest.approx((30 * 1 + 20 * 2 + 20 * 4 + 30 * 8) * 40 / patch**2)


def test_tiling_weights_each_tile_by_its_own_place():
    # 100 x 60 image, 40 px tiles: x0 = 0, 20 (weights 1, 0.5); y0 = 0, 40, 60 (1, 1, 0.5)
    origins = np.array([[0, 0], [20, 0], [0, 40], [20, 40], [0, 60], [20, 60]])
    counts = np.array([1.0, 2.0, 4.0, 8.0, 16.0, 32.0])
    # 1*1 + 2*0.5 + 4*1 + 8*0.5 + 16*0.5 + 32*0.25
    assert density.tiling_estimate((100, 60), origins, counts, 40) == pytest.approx(26.0)
    # a tile the grid lacks cannot be guessed without a predictor
    with pytest.raises(ValueError, match="no predictor"):
        density.tiling_estimate((100, 60), origins[1:], counts[1:], 40,
                                image=np.zeros((100, 60, 3), np.uint8))


def test_patch_counts_sit_at_the_patch_centres():
    """A 'net' whose count grows with the window's x0 (read from its first pixel): inside the
    centres' hull the heatmap is the linear ramp through the values at x0 + (p - 1) / 2."""
    h, w, patch, stride = 100, 120, 40, 20
    image = np.zeros((h, w, 3), np.uint8)
    image[..., 0] = np.arange(w, dtype=np.uint8)
    result = density.count_image(image, patch, stride, lambda s: 1.0 + s[:, 0, 0, 0] / 10.0)
    yy, xx = np.mgrid[0:h, 0:w]
    c = (patch - 1) / 2.0
    inside = (xx >= c) & (xx <= w - 1 - c) & (yy >= c) & (yy <= h - 1 - c)
    ramp = (1.0 + (xx - c) / 10.0) / patch**2
    np.testing.assert_allclose(result.heatmap[inside], ramp[inside], rtol=1e-9)
