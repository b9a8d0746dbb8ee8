"""Tests for pycount.patches: grid coverage, window counts, rotated-patch labels."""
import cv2
import numpy as np
import pytest

from pycount.data.patches import (count_in_window, count_training_patches, counts_on_grid, grid,
                                  grid_origins, pad_to, patch_centres, resize_patch, rotated_patch,
                                  training_patches)

GRID_CASES = [(256, 256, 40, 20), (500, 500, 60, 30), (257, 301, 40, 20),
              (40, 40, 40, 20), (45, 120, 45, 7), (100, 63, 30, 30)]  # full coverage needs stride <= patch


# --------------------------------------------------------------------------- grid
@pytest.mark.parametrize("height,width,patch,stride", GRID_CASES)
def test_grid_covers_image(height, width, patch, stride):
    origins = grid(height, width, patch, stride)
    covered = np.zeros((height, width), dtype=int)
    for x0, y0 in origins:
        assert 0 <= x0 <= width - patch and 0 <= y0 <= height - patch
        covered[y0:y0 + patch, x0:x0 + patch] += 1
    assert covered.min() >= 1
    # row-major order: y is non-decreasing, x increases within a row
    assert np.all(np.diff(origins[:, 1]) >= 0)
    for length in (height, width):
        starts = grid_origins(length, patch, stride)
        assert starts[0] == 0 and starts[-1] == length - patch
        assert np.all(np.diff(starts) > 0) and np.all(np.diff(starts) <= stride)
    assert len(origins) == len(grid_origins(height, patch, stride)) * len(grid_origins(width, patch, stride))


def test_grid_origins_values_and_errors():
    assert grid_origins(100, 40, 20).tolist() == [0, 20, 40, 60]
    assert grid_origins(101, 40, 20).tolist() == [0, 20, 40, 60, 61]
    assert grid_origins(40, 40, 5).tolist() == [0]
    assert grid_origins(100, 30, 50).tolist() == [0, 50, 70]  # stride > patch: gaps, but both ends reached
    assert grid_origins(45, 40, 1).tolist() == [0, 1, 2, 3, 4, 5]  # no window starts past the end
    with pytest.raises(ValueError, match="exceeds"):
        grid_origins(30, 40, 20)
    with pytest.raises(ValueError, match="positive"):
        grid_origins(100, 40, 0)
    with pytest.raises(ValueError, match="positive"):
        grid_origins(100, 0, 20)


def test_patch_centres():
    assert patch_centres(np.array([[0, 0], [20, 40]]), 40).tolist() == [[19.5, 19.5], [39.5, 59.5]]


# --------------------------------------------------------------------------- counting
def _brute_count(centres, x0, y0, patch):
    n = 0
    for x, y in centres:
        if x0 - 0.5 <= x < x0 + patch - 0.5 and y0 - 0.5 <= y < y0 + patch - 0.5:
            n += 1
    return n


def test_counts_match_brute_force():
    rng = np.random.default_rng(1)
    height, width, patch, stride = 157, 211, 40, 20
    origins = grid(height, width, patch, stride)
    floats = rng.uniform(-0.5, [width - 0.5, height - 0.5], size=(300, 2))
    ints = rng.integers(0, [width, height], size=(300, 2)).astype(float)
    # centres exactly on window borders: both edges of pixel boundaries next to window starts/ends
    xs, ys = grid_origins(width, patch, stride), grid_origins(height, patch, stride)
    border = np.array([(x + d, y + e) for x in xs[:4] for y in ys[:4]
                       for d in (-0.5, 0.0, patch - 1, patch - 0.5) for e in (-0.5, 0.0, patch - 0.5)])
    centres = np.vstack([floats, ints, border])
    counts = counts_on_grid(centres, origins, patch)
    expected = [_brute_count(centres, x0, y0, patch) for x0, y0 in origins]
    assert counts.tolist() == expected
    assert [count_in_window(centres, x0, y0, patch) for x0, y0 in origins] == expected
    assert sum(expected) > 0


def test_border_rule():
    # left/top boundary included, right/bottom boundary excluded
    assert count_in_window(np.array([[-0.5, 3.0]]), 0, 0, 10) == 1
    assert count_in_window(np.array([[9.5, 3.0]]), 0, 0, 10) == 0
    assert count_in_window(np.array([[9.49, 9.49]]), 0, 0, 10) == 1
    assert counts_on_grid(np.empty((0, 2)), np.array([[0, 0]]), 10).tolist() == [0]


# --------------------------------------------------------------------------- rotation labels
def _map_to_patch(points, cx, cy, patch, angle_deg):
    """Independent reference of the rotation convention: counter-clockwise as displayed
    (y axis down), about (cx, cy), patch centre moved to ((p-1)/2, (p-1)/2)."""
    t = np.deg2rad(angle_deg)
    dx, dy = points[:, 0] - cx, points[:, 1] - cy
    c = (patch - 1) / 2.0
    return np.stack([c + np.cos(t) * dx + np.sin(t) * dy, c - np.sin(t) * dx + np.cos(t) * dy], axis=1)


def _render(shape, centres, radius=2):
    """RGB image with each centre drawn as a filled disk (sub-pixel accurate)."""
    image = np.zeros(shape + (3,), np.uint8)
    for x, y in centres:
        cv2.circle(image, (int(round(x * 16)), int(round(y * 16))), radius * 16, (255, 255, 255), -1,
                   lineType=cv2.LINE_8, shift=4)
    return image


def _blobs(patch_image):
    """Number of separate bright blobs in a (rotated) patch."""
    mask = (patch_image[..., 0] >= 128).astype(np.uint8)
    return cv2.connectedComponents(mask, connectivity=8)[0] - 1


def test_rotated_labels_match_visible_cells():
    """For every grid patch and every 30 degree angle, the label equals the number of disks
    visible in the rotated crop. Cells whose rotated centre lies within `margin` of the crop
    boundary (where a disk could be cut) are left out of that patch's image, so every kept
    cell is unambiguously inside or outside."""
    rng = np.random.default_rng(7)
    height, width, patch, stride, margin = 160, 180, 40, 20, 4.0
    lattice = np.array([(x, y) for x in range(6, width - 6, 11) for y in range(6, height - 6, 11)], float)
    cells = lattice + rng.uniform(-1.5, 1.5, lattice.shape)
    tested = nonzero = 0
    for cx, cy in patch_centres(grid(height, width, patch, stride), patch):
        for angle in range(0, 360, 30):
            q = _map_to_patch(cells, cx, cy, patch, angle)
            dist_in = np.min(np.minimum(q + 0.5, patch - 0.5 - q), axis=1)  # > 0 inside, < 0 outside
            keep = cells[np.abs(dist_in) > margin]
            out = rotated_patch(_render((height, width), keep), keep, cx, cy, patch, angle)
            if out is None:
                continue
            pixels, label = out
            assert pixels.shape == (patch, patch, 3)
            assert label == _blobs(pixels), (cx, cy, angle)
            assert label == int(np.sum(dist_in > margin)), (cx, cy, angle)
            tested += 1
            nonzero += label > 0
    assert tested >= 300 and nonzero == tested


def test_rotation_direction_matches_cv2():
    """A general angle equals cv2's own rotation about the centre; one lone cell moves the
    expected way (counter-clockwise as displayed: a cell to the right goes up at 90 deg-ish)."""
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (120, 120, 3), dtype=np.uint8)
    cx = cy = 59.5
    patch = 40
    for angle in (30.0, 45.0, 80.0, 300.0):  # 80: close to a quarter turn, but not one
        m = cv2.getRotationMatrix2D((cx, cy), angle, 1.0)
        m[:, 2] += (patch - 1) / 2.0 - np.array([cx, cy])
        ref = cv2.warpAffine(image, m, (patch, patch), flags=cv2.INTER_LINEAR)
        pixels, _ = rotated_patch(image, np.empty((0, 2)), cx, cy, patch, angle)
        assert np.array_equal(pixels, ref)
    # cell 15 px right of centre: at +60 deg it is up-right, outside a 20 px patch's right half
    cell = np.array([[cx + 15.0, cy]])
    assert rotated_patch(image, cell, cx, cy, 20, 0)[1] == 0
    q = _map_to_patch(cell, cx, cy, 40, 60)[0]
    assert q[1] < 19.5 - 12  # moved up
    assert rotated_patch(image, cell, cx, cy, 40, 60)[1] == 1


def test_rotated_label_keeps_the_border_rule():
    """At a general angle a cell counts iff its rotated position (u, v) in the patch satisfies
    -0.5 <= u < p - 0.5 (same for v), as for unrotated windows. Cells are placed at chosen patch
    positions by inverting the rotation by hand."""
    patch, cx, cy, angle = 40, 99.5, 99.5, 30.0
    image = np.zeros((200, 200, 3), np.uint8)
    t = np.deg2rad(angle)
    c = (patch - 1) / 2.0
    for (u, v), inside in [((-0.4, 10.0), True), ((10.0, -0.4), True), ((39.4, 10.0), True),
                           ((-0.6, 10.0), False), ((10.0, -0.6), False), ((39.6, 10.0), False),
                           ((10.0, 39.6), False)]:
        # inverse of u = c + cos*dx + sin*dy, v = c - sin*dx + cos*dy
        dx = np.cos(t) * (u - c) - np.sin(t) * (v - c)
        dy = np.sin(t) * (u - c) + np.cos(t) * (v - c)
        cell = np.array([[cx + dx, cy + dy]])
        assert rotated_patch(image, cell, cx, cy, patch, angle)[1] == int(inside), (u, v)


# --------------------------------------------------------------------------- rot90 path
def test_rot90_direction_on_tiny_patch():
    image = np.arange(1, 5, dtype=np.uint8).reshape(2, 2, 1)  # [[1, 2], [3, 4]]
    pixels, _ = rotated_patch(image, np.empty((0, 2)), 0.5, 0.5, 2, 90)
    # counter-clockwise as displayed: the top-right value moves to the top-left
    assert pixels[..., 0].tolist() == [[2, 4], [1, 3]]
    assert rotated_patch(image, np.empty((0, 2)), 0.5, 0.5, 2, 270)[0][..., 0].tolist() == [[3, 1], [4, 2]]


@pytest.mark.parametrize("angle,k", [(90, 1), (180, 2), (270, 3), (-90, 3)])
def test_rot90_exact_pixels_and_label(angle, k):
    rng = np.random.default_rng(5)
    height, width, patch = 90, 110, 30
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    centres = rng.uniform(-0.5, [width - 0.5, height - 0.5], (200, 2))
    for x0, y0 in grid(height, width, patch, 20):  # includes patches flush with the borders
        cx, cy = patch_centres(np.array([x0, y0]), patch)
        pixels, label = rotated_patch(image, centres, cx, cy, patch, angle)
        plain = image[y0:y0 + patch, x0:x0 + patch]
        assert np.array_equal(pixels, np.rot90(plain, k))
        assert label == _brute_count(centres, x0, y0, patch)
        # same direction as the affine convention (cv2 at this angle is pixel-exact up to rounding)
        m = cv2.getRotationMatrix2D((cx, cy), angle, 1.0)
        m[:, 2] += (patch - 1) / 2.0 - np.array([cx, cy])
        ref = cv2.warpAffine(image, m, (patch, patch), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        assert np.abs(pixels.astype(int) - ref).max() <= 1


def test_quarter_turn_off_the_pixel_grid_is_warped_not_cut():
    """A quarter turn whose window is half a pixel off the grid in x or y has no exact cut:
    it must be interpolated like any other angle (cv2's own rotation about the centre)."""
    rng = np.random.default_rng(9)
    image = rng.integers(0, 256, (120, 120, 3), dtype=np.uint8)
    patch = 40
    for cx, cy in [(59.5, 60.0), (60.0, 59.5)]:
        m = cv2.getRotationMatrix2D((cx, cy), 90.0, 1.0)
        m[:, 2] += (patch - 1) / 2.0 - np.array([cx, cy])
        ref = cv2.warpAffine(image, m, (patch, patch), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REPLICATE)
        pixels, _ = rotated_patch(image, np.empty((0, 2)), cx, cy, patch, 90)
        assert np.array_equal(pixels, ref), (cx, cy)


def test_quarter_turns_keep_the_count_of_marks_on_window_edges():
    """A mark exactly on a window's left or top edge is inside it (and outside the window
    before it); a quarter turn holds the same pixels, so every turn keeps that count."""
    height = width = 60
    patch = 20
    centres = np.array([[19.5, 5.0], [30.0, 39.5], [-0.5, -0.5], [39.5, 19.5], [50.0, 50.0]])
    image = np.zeros((height, width, 3), np.uint8)
    origins = grid(height, width, patch, patch)
    items = list(training_patches(image, centres, patch, patch, 90))
    assert len(items) == 4 * len(origins)
    for _, count, idx, angle in items:
        x0, y0 = origins[idx]
        assert count == _brute_count(centres, x0, y0, patch), (x0, y0, angle)
    for x0, y0 in origins:
        cx, cy = patch_centres(np.array([x0, y0]), patch)
        for angle in (90, 180, 270):
            assert rotated_patch(image, centres, cx, cy, patch, angle)[1] == \
                _brute_count(centres, x0, y0, patch), (x0, y0, angle)
    # one mark in each of the windows at (20, 0), (20, 40), (0, 0), (40, 20) and (40, 40)
    assert sorted(count for _, count, _, a in items if a == 0.0) == [0, 0, 0, 0, 1, 1, 1, 1, 1]


# --------------------------------------------------------------------------- border and training stream
def test_border_patch_refused_at_30_degrees():
    image = np.zeros((200, 200, 3), np.uint8)
    cx, cy = patch_centres(np.array([0, 0]), 40)
    assert rotated_patch(image, np.empty((0, 2)), cx, cy, 40, 30) is None
    assert rotated_patch(image, np.empty((0, 2)), cx, cy, 40, 0) is not None
    assert rotated_patch(image, np.empty((0, 2)), 99.5, 99.5, 40, 30) is not None
    # smallest inset that fits: half-extent 20 * (cos30 + sin30) = 27.32 => centre >= 26.82
    assert rotated_patch(image, np.empty((0, 2)), 26.5, 100, 40, 30) is None
    assert rotated_patch(image, np.empty((0, 2)), 27.0, 100, 40, 30) is not None
    # and at the right and bottom edges: centre <= 199.5 - 27.32 = 172.18
    assert rotated_patch(image, np.empty((0, 2)), 172.5, 100, 40, 30) is None
    assert rotated_patch(image, np.empty((0, 2)), 172.0, 100, 40, 30) is not None
    assert rotated_patch(image, np.empty((0, 2)), 100, 172.5, 40, 30) is None
    assert rotated_patch(image, np.empty((0, 2)), 100, 172.0, 40, 30) is not None


@pytest.mark.parametrize("height,width,patch,stride,rot_step",
                         [(120, 150, 40, 20, 30), (120, 150, 40, 20, 0), (120, 150, 40, 20, 360),
                          (100, 100, 60, 30, 90), (97, 131, 30, 15, 45), (40, 40, 40, 20, 30)])
def test_training_patches_stream(height, width, patch, stride, rot_step):
    rng = np.random.default_rng(11)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    centres = rng.uniform(-0.5, [width - 0.5, height - 0.5], (150, 2))
    origins = grid(height, width, patch, stride)
    items = list(training_patches(image, centres, patch, stride, rot_step))
    assert len(items) == count_training_patches(height, width, patch, stride, rot_step)
    plain_counts = counts_on_grid(centres, origins, patch)
    for pixels, count, idx, angle in items:
        assert pixels.shape == (patch, patch, 3) and pixels.dtype == np.uint8
        cx, cy = patch_centres(origins[idx], patch)
        ref_pixels, ref_count = rotated_patch(image, centres, cx, cy, patch, angle)
        assert count == ref_count and np.array_equal(pixels, ref_pixels)
        if angle % 90 == 0:
            assert count == plain_counts[idx]
    angles = {a for *_, a in items}
    expected = {0.0} if rot_step in (0, 360) else set(np.arange(0, 360, rot_step).tolist())
    assert angles <= expected and 0.0 in angles
    assert {i for _, _, i, a in items if a == 0.0} == set(range(len(origins)))


def test_training_patches_of_a_grey_image_stay_grey():
    image = np.random.default_rng(2).integers(0, 256, (60, 60), dtype=np.uint8)
    items = list(training_patches(image, np.array([[30.0, 30.0]]), 20, 20, 45))
    assert {a for *_, a in items} == set(np.arange(0, 360, 45).tolist())
    assert all(pixels.shape == (20, 20) for pixels, *_ in items)


# --------------------------------------------------------------------------- padding and resizing
def test_pad_to_pads_bottom_and_right_with_the_fill():
    image = np.full((5, 8, 3), 7, np.uint8)
    out = pad_to(image, 10, (1, 2, 3))
    assert out.shape == (10, 10, 3)
    assert (out[:5, :8] == 7).all()                               # pixels do not move
    assert (out[5:] == (1, 2, 3)).all() and (out[:, 8:] == (1, 2, 3)).all()
    # only the short side grows
    tall = pad_to(np.full((12, 5, 3), 7, np.uint8), 10, (1, 2, 3))
    assert tall.shape == (12, 10, 3) and (tall[:, :5] == 7).all()
    assert (tall[:, 5:] == (1, 2, 3)).all()
    # a grey image takes the first fill value
    grey = pad_to(np.full((5, 8), 7, np.uint8), 10, (9, 2, 3))
    assert grey.shape == (10, 10) and (grey[5:] == 9).all() and (grey[:, 8:] == 9).all()
    # large enough: unchanged
    assert pad_to(image, 5, (1, 2, 3)) is image


def test_resize_patch_is_bilinear():
    pixels = np.array([[0, 100], [0, 100]], np.uint8)
    # pixel centres: output x -> input (x + 0.5) / 2 - 0.5, clamped: 0, 0.25, 0.75, 1
    assert resize_patch(pixels, 4).tolist() == [[0, 25, 75, 100]] * 4
    assert np.array_equal(resize_patch(pixels, 2), pixels)
