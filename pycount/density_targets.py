"""Per-pixel density targets from dot annotations (the density-map models of issue #7).

Each annotated centre becomes a Gaussian of width sigma, cut off at 4 sigma and at the image
border, and normalised over the pixels it actually covers, so every cell contributes exactly 1:
the map of an image integrates to its count, also for cells at the edge (where a plainly
truncated Gaussian would lose mass).
"""
from __future__ import annotations

import math

import numpy as np


def density_target(shape: tuple[int, int], centres: np.ndarray, sigma: float) -> np.ndarray:
    """H x W float64 map, one unit of mass per centre ((x, y), 0-based pixel coordinates)."""
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    h, w = shape
    out = np.zeros((h, w), np.float64)
    r = int(math.ceil(4 * sigma))
    for x, y in np.asarray(centres, np.float64).reshape(-1, 2):
        if not (-0.5 <= x <= w - 0.5 and -0.5 <= y <= h - 0.5):
            raise ValueError(f"centre ({x:.1f}, {y:.1f}) lies outside the {w}x{h} image")
        cx, cy = int(round(x)), int(round(y))
        x0, x1 = max(cx - r, 0), min(cx + r + 1, w)
        y0, y1 = max(cy - r, 0), min(cy + r + 1, h)
        gx = np.exp(-0.5 * ((np.arange(x0, x1) - x) / sigma) ** 2)
        gy = np.exp(-0.5 * ((np.arange(y0, y1) - y) / sigma) ** 2)
        g = np.outer(gy, gx)
        out[y0:y1, x0:x1] += g / g.sum()
    return out
