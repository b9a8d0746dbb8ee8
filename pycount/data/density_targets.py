"""Per-pixel density targets from dot annotations, and the augmented training crops of the
density models (issue #7).

Each annotated centre becomes a Gaussian of width sigma, cut off at 4 sigma and at the image
border, and normalised over the pixels it actually covers, so every cell contributes exactly 1:
the map of an image integrates to its count, also for cells at the edge (where a plainly
truncated Gaussian would lose mass).

Training crops are cut on a grid, from the image and from its mirror image, at every rotation
step. Crops at multiples of 90 degrees are exact slices of the image's map, turned with np.rot90
like their pixels. Other angles rotate the pixels bilinearly (as patches.training_patches does),
but never the map: its Gaussians are drawn afresh around the rotated dot positions, each one of
unit mass over its whole 4-sigma window, so no label is interpolated.
"""
from __future__ import annotations

import math
from typing import Iterator

import numpy as np

from pycount.data import patches, readers


def density_target(shape: tuple[int, int], centres: np.ndarray, sigma: float,
                   renormalise: bool = True) -> np.ndarray:
    """H x W float64 map, one unit of mass per centre ((x, y), 0-based pixel coordinates).

    renormalise=False (crops): each Gaussian has unit mass over its whole 4-sigma window and the
    map keeps only the part inside; centres may then lie outside, their tails reaching in."""
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    h, w = shape
    out = np.zeros((h, w), np.float64)
    r = int(math.ceil(4 * sigma))
    for x, y in np.asarray(centres, np.float64).reshape(-1, 2):
        if renormalise and not (-0.5 <= x <= w - 0.5 and -0.5 <= y <= h - 0.5):
            raise ValueError(f"centre ({x:.1f}, {y:.1f}) lies outside the {w}x{h} image")
        cx, cy = int(round(x)), int(round(y))
        gx = np.exp(-0.5 * ((np.arange(cx - r, cx + r + 1) - x) / sigma) ** 2)
        gy = np.exp(-0.5 * ((np.arange(cy - r, cy + r + 1) - y) / sigma) ** 2)
        x0, x1 = max(cx - r, 0), min(cx + r + 1, w)
        y0, y1 = max(cy - r, 0), min(cy + r + 1, h)
        if x1 <= x0 or y1 <= y0:
            continue
        g = np.outer(gy[y0 - cy + r:y1 - cy + r], gx[x0 - cx + r:x1 - cx + r])
        out[y0:y1, x0:x1] += g / (g.sum() if renormalise else gx.sum() * gy.sum())
    return out


def _variants(image: np.ndarray, centres: np.ndarray):
    """The image and its mirror image (x -> w-1-x), with their centres."""
    centres = np.asarray(centres, np.float64).reshape(-1, 2)
    yield image, centres
    mirrored = centres.copy()
    mirrored[:, 0] = image.shape[1] - 1 - mirrored[:, 0]
    yield np.ascontiguousarray(image[:, ::-1]), mirrored


def pad_around(image: np.ndarray, context: int, fill) -> np.ndarray:
    """The image with `context` px of the colour `fill` (one value per channel) on every side."""
    h, w = image.shape[:2]
    out = np.empty((h + 2 * context, w + 2 * context) + image.shape[2:], image.dtype)
    out[...] = np.asarray(fill, dtype=np.float64).round().astype(image.dtype) \
        if np.issubdtype(image.dtype, np.integer) else np.asarray(fill, image.dtype)
    out[context:context + h, context:context + w] = image
    return out


def training_crops(image: np.ndarray, centres: np.ndarray, crop: int, stride: int,
                   rot_step: float, sigma: float, context: int = 0, fill=None
                   ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (crop x crop x C pixels, crop x crop float32 density) for every grid window, mirror
    and rotation whose rotated square stays inside the image (patches' footprint rule).

    context > 0: the pixels are (crop + 2 context) square, cut from the image padded by `context`
    px of `fill` on every side, and the density is that of their central crop x crop (the same
    grid of supervised windows as without context; the map is the image's, zero outside it)."""
    m = int(context)
    if m < 0:
        raise ValueError(f"context must be >= 0, got {context}")
    side = crop + 2 * m
    h, w = image.shape[0] + 2 * m, image.shape[1] + 2 * m
    origins = patches.grid(h, w, side, stride)
    pcs = patches.patch_centres(origins, side)
    r = 4 * sigma + 1
    for img, cen in _variants(image, centres):
        full = density_target(img.shape[:2], cen, sigma)
        if m:
            img, full, cen = pad_around(img, m, fill), np.pad(full, m), cen + m
        for angle in patches._angles(rot_step):
            lin = patches._linear(angle)
            k = patches._quarter_turns(angle)
            shifts = patches._translations(lin, pcs, side)
            fits = patches._footprint_fits(lin, pcs, side, h, w)
            mapped = cen @ lin.T
            for idx in np.flatnonzero(fits):
                x0, y0 = origins[idx]
                if k is not None:
                    pix = np.rot90(img[y0:y0 + side, x0:x0 + side], k)
                    dens = np.rot90(full[y0 + m:y0 + m + crop, x0 + m:x0 + m + crop], k)
                else:
                    pix = patches._warp(img, lin, shifts[idx], side)
                    dots = mapped + shifts[idx] - m
                    near = np.all((dots > -r) & (dots < crop - 1 + r), axis=1)
                    dens = density_target((crop, crop), dots[near], sigma, renormalise=False)
                yield np.ascontiguousarray(pix), np.ascontiguousarray(dens, np.float32)


def zoom_factors(zoom: float) -> tuple[float, ...]:
    """The sizes training crops are cut at for DatasetConfig.zoom = z: 1, 1 / (1 + z), 1 + z."""
    return (1.0,) if not zoom else (1.0, 1.0 / (1.0 + zoom), 1.0 + zoom)


def zoomed_crops(image: np.ndarray, centres: np.ndarray, crop: int, stride: int,
                 rot_step: float, sigma: float, zoom: float = 0.0, context: int = 0, fill=None
                 ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """training_crops of the image at each of zoom_factors(zoom) at which it holds a crop:
    resized (readers.rescale_image), its dots moved with the pixels and sigma scaled by the same
    factor, so the density is the same map at another size and each cell still one unit of mass."""
    for f in _fitting(image.shape[0], image.shape[1], crop, zoom):
        img, cen = image, centres
        if f != 1.0:
            z = readers.rescale(readers.Sample("", image, centres, ""), f)
            img, cen = z.image, z.centres
        yield from training_crops(img, cen, crop, stride, rot_step, sigma * f, context, fill)


def _fitting(height: int, width: int, crop: int, zoom: float) -> list[float]:
    """zoom_factors at which the image still holds one crop: a shrunken copy smaller than the crop
    (an own folder's small image, padded to the crop) gives none."""
    return [f for f in zoom_factors(zoom)
            if f == 1.0 or min(readers.scaled_size(width, height, f)) >= crop]


def count_training_crops(height: int, width: int, crop: int, stride: int, rot_step: float,
                         context: int = 0, zoom: float = 0.0) -> int:
    """How many crops zoomed_crops yields for an image of this size (mirror included)."""
    pad = 2 * context                    # the context on both sides of every side
    total = 0
    for f in _fitting(height, width, crop, zoom):
        w, h = readers.scaled_size(width, height, f)
        total += 2 * patches.count_training_patches(h + pad, w + pad, crop + pad, stride, rot_step)
    return total
