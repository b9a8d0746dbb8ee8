"""Sliding-window patch extraction with rotation augmentation (Xue et al. 2016).

Conventions
-----------
* Images are H x W x C uint8 arrays; 2-D grey images work too.
* Cell centres are an (N, 2) float array of 0-based (x, y) = (column, row).
* Pixel (x, y) covers [x-0.5, x+0.5) x [y-0.5, y+0.5), so a p x p window with
  top-left pixel (x0, y0) contains a centre iff x0-0.5 <= x < x0+p-0.5 (same for y).
* Rotations follow cv2.getRotationMatrix2D: a positive angle turns the image
  counter-clockwise as displayed (y axis pointing down); np.rot90 agrees.
"""
from __future__ import annotations

from typing import Iterator

import cv2
import numpy as np

# Slack for the "footprint inside the image" test, absorbing round-off in
# cos/sin (cos 90deg is 6e-17, not 0) without admitting a real overhang.
_EPS = 1e-6


def grid_origins(length: int, patch: int, stride: int) -> np.ndarray:
    """1-D window starts 0, stride, 2*stride, ..., plus one window flush with the end if needed.

    Every pixel is covered when stride <= patch; a larger stride samples with gaps.
    """
    if patch <= 0 or stride <= 0:
        raise ValueError(f"patch and stride must be positive, got patch={patch}, stride={stride}")
    if patch > length:
        raise ValueError(f"patch size {patch} exceeds image side length {length}")
    starts = np.arange(0, length - patch + 1, stride)
    if starts[-1] != length - patch:  # the last regular window stops short of the end
        starts = np.append(starts, length - patch)
    return starts


def grid(height: int, width: int, patch: int, stride: int) -> np.ndarray:
    """(K, 2) int array of (x0, y0) window corners, row-major (x varies fastest)."""
    xs, ys = np.meshgrid(grid_origins(width, patch, stride), grid_origins(height, patch, stride))
    return np.stack([xs.ravel(), ys.ravel()], axis=1)


def patch_centres(origins: np.ndarray, patch: int) -> np.ndarray:
    """(K, 2) float (x, y) centres of the windows whose corners are `origins`."""
    return np.asarray(origins, dtype=np.float64) + (patch - 1) / 2.0


def _inside(coords: np.ndarray, lo, patch: int) -> np.ndarray:
    """Boolean mask: does each (x, y) in `coords` fall in the p x p window starting at `lo`?"""
    return np.all((coords >= lo - 0.5) & (coords < lo + patch - 0.5), axis=-1)


def count_in_window(centres: np.ndarray, x0: float, y0: float, patch: int) -> int:
    """Number of centres inside the p x p window with top-left pixel (x0, y0)."""
    centres = np.asarray(centres, dtype=np.float64).reshape(-1, 2)
    return int(_inside(centres, np.array([x0, y0], dtype=np.float64), patch).sum())


def counts_on_grid(centres: np.ndarray, origins: np.ndarray, patch: int) -> np.ndarray:
    """(K,) int counts of centres in each window of `origins` (broadcast over K x N)."""
    centres = np.asarray(centres, dtype=np.float64).reshape(-1, 2)
    origins = np.asarray(origins, dtype=np.float64).reshape(-1, 2)
    return _inside(centres[None, :, :], origins[:, None, :], patch).sum(axis=1)


# --------------------------------------------------------------------------- rotation
def _linear(angle_deg: float) -> np.ndarray:
    """2x2 linear part of cv2's rotation matrix (identical for every rotation centre)."""
    return cv2.getRotationMatrix2D((0.0, 0.0), float(angle_deg), 1.0)[:, :2]


def _translations(lin: np.ndarray, centres_xy: np.ndarray, patch: int) -> np.ndarray:
    """Per-patch translation t so that lin @ (cx, cy) + t = ((p-1)/2, (p-1)/2).

    Together with `lin` this is exactly cv2.getRotationMatrix2D((cx, cy), angle, 1)
    followed by a shift of (cx, cy) onto the output centre.
    """
    return (patch - 1) / 2.0 - centres_xy @ lin.T


def _footprint_fits(lin: np.ndarray, centres_xy: np.ndarray, patch: int, height: int, width: int) -> np.ndarray:
    """Does the source footprint of each rotated p x p output lie inside the image?

    The output square spans +-p/2 around its centre; its preimage under a rotation is a
    square whose corners reach p/2 * (|cos| + |sin|) from the centre along each axis.
    """
    half = patch / 2.0 * (abs(lin[0, 0]) + abs(lin[0, 1]))
    lo = centres_xy - half
    hi = centres_xy + half
    return (
        (lo[:, 0] >= -0.5 - _EPS) & (lo[:, 1] >= -0.5 - _EPS)
        & (hi[:, 0] <= width - 0.5 + _EPS) & (hi[:, 1] <= height - 0.5 + _EPS)
    )


def _rotated_counts(centres: np.ndarray, lin: np.ndarray, shifts: np.ndarray, patch: int) -> np.ndarray:
    """(K,) counts of centres that each patch's affine map sends inside the p x p output."""
    mapped = centres @ lin.T  # (N, 2), shared by all patches
    return _inside(mapped[None, :, :] + shifts[:, None, :], np.zeros(2), patch).sum(axis=1)


def _quarter_turns(angle_deg: float) -> int | None:
    """k if angle is k * 90 degrees (mod 360), else None."""
    turns = float(angle_deg) / 90.0
    return int(round(turns)) % 4 if turns == round(turns) else None


def _warp(image: np.ndarray, lin: np.ndarray, shift: np.ndarray, patch: int) -> np.ndarray:
    """Bilinear warp of `image` through [lin | shift] into a p x p patch."""
    matrix = np.hstack([lin, shift.reshape(2, 1)])
    out = cv2.warpAffine(image, matrix, (patch, patch), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)
    return out.reshape((patch, patch) + image.shape[2:])  # cv2 drops a trailing 1-channel axis


def rotated_patch(image: np.ndarray, centres: np.ndarray, cx: float, cy: float,
                  patch: int, angle_deg: float) -> tuple[np.ndarray, int] | None:
    """The p x p patch centred at (cx, cy) after rotating the image by angle_deg about it.

    Returns (patch_image, count), or None when the rotated square would reach outside the
    image (border padding could hide or invent cells). Multiples of 90 degrees on a
    pixel-aligned window are cut exactly with np.rot90 and keep the unrotated count, since
    they contain the very same pixels.
    """
    height, width = image.shape[:2]
    centres = np.asarray(centres, dtype=np.float64).reshape(-1, 2)
    centre = np.array([[cx, cy]], dtype=np.float64)
    lin = _linear(angle_deg)
    if not _footprint_fits(lin, centre, patch, height, width)[0]:
        return None

    k = _quarter_turns(angle_deg)
    x0, y0 = centre[0] - (patch - 1) / 2.0
    if k is not None and x0 == int(x0) and y0 == int(y0):
        x0, y0 = int(x0), int(y0)
        plain = image[y0:y0 + patch, x0:x0 + patch]
        return np.ascontiguousarray(np.rot90(plain, k)), count_in_window(centres, x0, y0, patch)

    shift = _translations(lin, centre, patch)
    count = int(_rotated_counts(centres, lin, shift, patch)[0])
    return _warp(image, lin, shift[0], patch), count


def _angles(rot_step: float) -> np.ndarray:
    """Angles 0, rot_step, ... < 360; a step of 0 or 360 means no rotation."""
    if rot_step < 0:
        raise ValueError(f"rot_step must be >= 0, got {rot_step}")
    if rot_step == 0 or rot_step >= 360:
        return np.zeros(1)
    return np.arange(0.0, 360.0, rot_step)


def training_patches(image: np.ndarray, centres: np.ndarray, patch: int, stride: int,
                     rot_step: float = 30) -> Iterator[tuple[np.ndarray, int, int, float]]:
    """Yield (patch_image, count, grid_index, angle) for every grid window at every angle.

    Windows are visited in grid order, all angles of one window in a row. Pairs that
    rotated_patch would refuse are skipped. Fits and labels are computed for all windows
    of an angle at once; only the pixel warp runs per patch.
    """
    height, width = image.shape[:2]
    centres = np.asarray(centres, dtype=np.float64).reshape(-1, 2)
    origins = grid(height, width, patch, stride)
    pcs = patch_centres(origins, patch)
    angles = _angles(rot_step)

    plain_counts = counts_on_grid(centres, origins, patch)
    plans = []  # per angle: (angle, k or None, linear part, shifts, fits, counts)
    for angle in angles:
        lin = _linear(angle)
        k = _quarter_turns(angle)
        shifts = _translations(lin, pcs, patch)
        fits = _footprint_fits(lin, pcs, patch, height, width)
        counts = plain_counts if k is not None else _rotated_counts(centres, lin, shifts, patch)
        plans.append((float(angle), k, lin, shifts, fits, counts))

    for idx, (x0, y0) in enumerate(origins):
        plain = image[y0:y0 + patch, x0:x0 + patch]
        for angle, k, lin, shifts, fits, counts in plans:
            if not fits[idx]:
                continue
            if k is None:
                pixels = _warp(image, lin, shifts[idx], patch)
            else:
                pixels = np.ascontiguousarray(np.rot90(plain, k)) if k else plain
            yield pixels, int(counts[idx]), idx, angle


def count_training_patches(height: int, width: int, patch: int, stride: int, rot_step: float) -> int:
    """How many items training_patches yields for an image of this size (nothing is rendered)."""
    pcs = patch_centres(grid(height, width, patch, stride), patch)
    return int(sum(_footprint_fits(_linear(a), pcs, patch, height, width).sum() for a in _angles(rot_step)))


def pad_to(image: np.ndarray, side: int, fill) -> np.ndarray:
    """The image padded at the bottom and right to at least side x side with the colour `fill`
    (one value per channel); pixel coordinates, hence cell centres, do not move."""
    h, w = image.shape[:2]
    ph, pw = max(0, side - h), max(0, side - w)
    if not (ph or pw):
        return image
    value = [float(v) for v in fill][:image.shape[2]] if image.ndim == 3 else float(fill[0])
    return cv2.copyMakeBorder(image, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=value)


def resize_patch(pixels: np.ndarray, side: int) -> np.ndarray:
    """A patch as the nets see it: native, or resized to `side` (SIZE=; the count does not
    change)."""
    if pixels.shape[0] != side or pixels.shape[1] != side:
        return cv2.resize(pixels, (side, side), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(pixels)
