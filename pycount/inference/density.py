"""From patch counts to an image count: the paper's section 2.1 (DESIGN.md section 5).

A test image is cut into overlapping patches on the training grid; the net predicts each patch's
count c; the density at the patch centre is c / p^2 cells per px^2; scipy's griddata interpolates
those values linearly over every pixel (pixels outside the centres' convex hull take the nearest
value); the image count is the heatmap's sum. Beside it, a plain estimate from a non-overlapping
tiling (the same predictions, tiles at stride p) is reported as a cross-check.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.interpolate import griddata
from scipy.spatial import Delaunay

from pycount import config
from pycount.data import patches
from pycount.util import progress

# predict(rgb_patches N x p x p x 3 uint8) -> N predicted counts
Predictor = Callable[[np.ndarray], np.ndarray]


@dataclass
class ImageCount:
    count: float               # integral of the density heatmap (the paper's estimate)
    tiling_count: float        # sum over non-overlapping tiles (cross-check)
    heatmap: np.ndarray        # H x W float, cells per px^2
    centres: np.ndarray        # (K, 2) patch centres (x, y)
    patch_counts: np.ndarray   # (K,) predicted count of each patch


def window_stack(image: np.ndarray, origins: np.ndarray, patch: int) -> np.ndarray:
    """The patches at `origins` ((x0, y0) corners) as one N x p x p x C array."""
    return np.stack([image[y:y + patch, x:x + patch] for x, y in origins])


def predict_windows(image: np.ndarray, origins: np.ndarray, patch: int,
                    predict: Predictor) -> np.ndarray:
    """`predict` of the windows at `origins`, cut and predicted config.COUNT_WINDOW_CHUNK at a
    time (a large image's whole stack would hold every window at once), each chunk its share of
    the progress shown."""
    origins = np.asarray(origins)
    step = config.COUNT_WINDOW_CHUNK
    parts = []
    for i in range(0, len(origins), step):
        with progress.span(i / len(origins), min(i + step, len(origins)) / len(origins)):
            parts.append(np.asarray(predict(window_stack(image, origins[i:i + step], patch)),
                                    np.float64))
    return np.concatenate(parts) if parts else np.zeros(0)


def _linear_on_triangles(shape: tuple[int, int], centres: np.ndarray,
                         values: np.ndarray) -> np.ndarray:
    """What griddata(method="linear") computes, pixel for pixel, without its per-pixel point
    location: the same Delaunay triangulation (scipy.spatial's Qhull, which griddata uses), each
    triangle filled with the plane through its corners over the pixels inside it. Pixels outside
    the hull stay NaN. On a 1920x2560 image (1,764 windows) it took 0.9 s against griddata's
    1.9 s on an idle 2-core machine, and 1.2 s against 7 s of CPU time on a busy one;
    tests/test_density.py compares it with griddata itself.
    """
    h, w = shape
    tri = Delaunay(centres)
    heat = np.full((h, w), np.nan)
    pts = tri.points
    eps = 1e-9
    for simplex, (t, r) in zip(tri.simplices, zip(tri.transform[:, :2], tri.transform[:, 2])):
        corners = pts[simplex]
        x0, y0 = np.floor(corners.min(axis=0)).astype(int)
        x1, y1 = np.ceil(corners.max(axis=0)).astype(int)
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w - 1), min(y1, h - 1)
        if x1 < x0 or y1 < y0:
            continue
        yy, xx = np.mgrid[y0:y1 + 1, x0:x1 + 1]
        d = np.stack([xx - r[0], yy - r[1]], axis=-1)
        b01 = d @ t.T                                   # barycentric coordinates 0 and 1
        b2 = 1.0 - b01.sum(axis=-1)
        inside = (b01 >= -eps).all(axis=-1) & (b2 >= -eps)
        v = b01[..., 0] * values[simplex[0]] + b01[..., 1] * values[simplex[1]] \
            + b2 * values[simplex[2]]
        block = heat[y0:y1 + 1, x0:x1 + 1]
        block[inside] = v[inside]
    return heat


def density_map(shape: tuple[int, int], centres: np.ndarray, counts: np.ndarray,
                patch: int, use_griddata: bool = False) -> np.ndarray:
    """Heatmap (cells / px^2) interpolated linearly from per-patch counts at patch centres.

    The paper's scipy griddata(method="linear"), pixels outside the centres' hull taking the
    nearest value. use_griddata=False (the default) fills the same triangulation triangle by
    triangle (_linear_on_triangles): the same numbers, 2-6x faster on large images."""
    h, w = shape
    centres = np.asarray(centres, np.float64)
    values = np.asarray(counts, np.float64) / float(patch * patch)
    if len(np.unique(centres[:, 0])) < 2 or len(np.unique(centres[:, 1])) < 2:
        # one row or column of patches: no 2-D hull, nearest is all there is
        yy, xx = np.mgrid[0:h, 0:w]
        return griddata(centres, values, (xx, yy), method="nearest")
    if use_griddata:
        yy, xx = np.mgrid[0:h, 0:w]
        heat = griddata(centres, values, (xx, yy), method="linear")
    else:
        heat = _linear_on_triangles((h, w), centres, values)
    oy, ox = np.nonzero(np.isnan(heat))      # outside the hull: only these pixels' coordinates
    if len(oy):
        heat[oy, ox] = griddata(centres, values, (ox, oy), method="nearest")
    return heat


def _tile_weights(length: int, patch: int) -> tuple[np.ndarray, np.ndarray]:
    """1-D non-overlapping tiles (stride p, last one flush with the end) and, for each, the
    fraction of its pixels not already covered by the tiles before it."""
    starts = patches.grid_origins(length, patch, patch)
    covered_to = np.concatenate([[0], starts[:-1] + patch])
    return starts, (starts + patch - np.maximum(starts, covered_to)) / patch


def tiling_estimate(shape: tuple[int, int], origins: np.ndarray, counts: np.ndarray, patch: int,
                    image: np.ndarray | None = None, predict: Predictor | None = None) -> float:
    """Sum of the predicted counts of non-overlapping tiles, the edge tiles weighted by their
    share of new pixels. Tiles are looked up among the sliding-window predictions; any that are
    missing (stride not dividing patch) are predicted with `predict`."""
    h, w = shape
    xs, wx = _tile_weights(w, patch)
    ys, wy = _tile_weights(h, patch)
    known = {(int(x), int(y)): c for (x, y), c in zip(origins, counts)}
    tiles = [(int(x), int(y)) for y in ys for x in xs]
    missing = [t for t in tiles if t not in known]
    if missing:
        if predict is None or image is None:
            raise ValueError("tiles missing from the sliding-window grid and no predictor given")
        known.update(zip(missing, predict_windows(image, np.array(missing), patch, predict)))
    weights = np.outer(wy, wx).ravel()
    return float(sum(known[t] * wt for t, wt in zip(tiles, weights)))


def count_image(image: np.ndarray, patch: int, stride: int, predict: Predictor) -> ImageCount:
    """Count the cells of one image: sliding-window prediction, density heatmap, integral."""
    h, w = image.shape[:2]
    origins = patches.grid(h, w, patch, stride)
    with progress.span(0.0, config.PROGRESS_WINDOWS_SHARE):     # (the rest: missing tiles)
        if hasattr(predict, "predict_windows"):    # shared.SharedPredictor: trunk run once
            counts = np.asarray(predict.predict_windows(image, origins, patch), np.float64)
        else:
            counts = predict_windows(image, origins, patch, predict)
    centres = patches.patch_centres(origins, patch)
    heat = density_map((h, w), centres, counts, patch)
    with progress.span(config.PROGRESS_WINDOWS_SHARE, 1.0):
        tiling = tiling_estimate((h, w), origins, counts, patch, image, predict)
    return ImageCount(count=float(heat.sum()), tiling_count=tiling, heatmap=heat,
                      centres=centres, patch_counts=counts)
