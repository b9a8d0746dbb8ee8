"""Cell-image datasets in the VGG-cells layout: reading, and a SIMCEP-style synthetic generator.

Layout (as in the VGG "cells" set of Lempitsky & Zisserman, which Xue et al. 2016 use): a folder of
``NNNcell.png`` (RGB fluorescence image) and ``NNNdots.png`` (black image, one red pixel per cell centre).

The generator follows the model of SIMCEP (Lehmussola et al., IEEE TMI 2007), the simulator that made the
real VGG images: jittered round nuclei with multi-octave noise texture, clustered placement with an
overlap limit, depth-dependent blur, uneven illumination, autofluorescence background and sensor noise.
Signal is in the blue channel only; red and green carry faint noise, as in the real images.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import cv2
import numpy as np

# Bump when the generator's output changes, so stale cached synthetic sets are regenerated.
GENERATOR_VERSION = 1
STAMP_NAME = "synthetic.json"

# --- SIMCEP-like model constants (tuned against /work/shared/datasets/vgg_cells) --------------------
RADIUS_MEAN, RADIUS_SD = 5.0, 0.4      # nucleus radius in px (real half-max blob radius ~4.75)
SHAPE_POINTS, SHAPE_JITTER = 11, 0.1    # outline: jittered points on a circle
TEXTURE_OCTAVES, TEXTURE_PERSISTENCE, TEXTURE_BASE = 3, 0.5, 0.2
# Depth of focus, binned into a few blur levels; most real nuclei are moderately blurred, few very much.
BLUR_SIGMAS = np.array([0.5, 1.0, 1.5, 2.0, 3.0, 5.0])
BLUR_PROBS = np.array([0.05, 0.25, 0.35, 0.25, 0.07, 0.03])
CELL_GAIN = 1.5                          # cell brightness relative to [0, 1] (bright nuclei clip, as in real)
NOISE_SD = 0.01                          # additive Gaussian noise, variance 1e-4 on a [0, 1] scale


@dataclass(frozen=True, eq=False)  # eq=False: numpy arrays have no scalar equality
class Sample:
    id: str               # e.g. "001"
    image: np.ndarray     # H x W x 3 uint8, RGB
    centres: np.ndarray   # (N, 2) float64, 0-based (x, y) pixel coordinates of cell centres

    @property
    def count(self) -> int:
        return len(self.centres)


class DatasetError(Exception):
    """A dataset folder is missing, incomplete or corrupt; the message names the file and the fix."""


# ----------------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------------

def _pairs(root: Path) -> dict[str, tuple[Path, Path]]:
    """Map id -> (cell path, dots path), checking that every file has its partner."""
    cells = {p.name[: -len("cell.png")]: p for p in root.glob("*cell.png")}
    dots = {p.name[: -len("dots.png")]: p for p in root.glob("*dots.png")}
    for i in sorted(cells.keys() - dots.keys()):
        raise DatasetError(f"{cells[i]} has no matching dots file {root / (i + 'dots.png')}; "
                           "restore it or remove the image (a synthetic set regenerates when its folder is deleted)")
    for i in sorted(dots.keys() - cells.keys()):
        raise DatasetError(f"{dots[i]} has no matching cell image {root / (i + 'cell.png')}; "
                           "restore it or remove the dots file (a synthetic set regenerates when its folder is deleted)")
    return {i: (cells[i], dots[i]) for i in cells}


def _imread_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DatasetError(f"cannot decode {path}: the file is corrupt or not an image; "
                           "replace it from the original release (a synthetic set regenerates when its folder is deleted)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def dots_to_centres(dots_rgb: np.ndarray) -> np.ndarray:
    """(N, 2) float64 (x, y) of the red dot pixels: red high, green and blue low."""
    r, g, b = (dots_rgb[..., c].astype(np.int16) for c in range(3))
    ys, xs = np.nonzero((r >= 128) & (g < 128) & (b < 128))
    return np.stack([xs, ys], axis=1).astype(np.float64)


def read_vgg_cells(root, ids: Optional[Sequence[str]] = None) -> list[Sample]:
    """Read the NNNcell.png / NNNdots.png pairs under ``root`` (all of them, sorted by id, or ``ids``)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder {root} does not exist; set DATA_ROOT to the folder holding "
                           "the release folders (e.g. DATA_ROOT=../shared/datasets)")
    pairs = _pairs(root)
    if not pairs:
        raise DatasetError(f"no NNNcell.png/NNNdots.png pairs found in {root}; set DATA_ROOT to the "
                           "folder holding the release (e.g. DATA_ROOT=../shared/datasets)")
    if ids is None:
        ids = sorted(pairs)
    samples = []
    for i in ids:
        if i not in pairs:
            raise DatasetError(f"{root / (i + 'cell.png')} not found (id {i!r} was requested); "
                               "check the id list or the DATA_ROOT folder")
        cell_path, dots_path = pairs[i]
        image, dots = _imread_rgb(cell_path), _imread_rgb(dots_path)
        if image.shape[:2] != dots.shape[:2]:
            raise DatasetError(f"{dots_path} is {dots.shape[1]}x{dots.shape[0]} but {cell_path} is "
                               f"{image.shape[1]}x{image.shape[0]}; the pair must have the same size "
                               "(replace the files from the original release)")
        samples.append(Sample(id=i, image=image, centres=dots_to_centres(dots)))
    return samples


# ----------------------------------------------------------------------------------------------------
# Synthetic generator
# ----------------------------------------------------------------------------------------------------

def _value_noise(rng: np.random.Generator, h: int, w: int, octaves: int) -> np.ndarray:
    """Multi-octave value noise in [0, 1]: octave k is a random (2^(k+1)+1)^2 grid, bicubically
    upsampled to h x w and weighted TEXTURE_PERSISTENCE^k."""
    total = np.zeros((h, w), np.float32)
    for k in range(octaves):
        n = 2 ** (k + 1) + 1
        grid = rng.random((n, n), dtype=np.float32)
        total += TEXTURE_PERSISTENCE ** k * cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
    lo, hi = total.min(), total.max()
    return (total - lo) / max(hi - lo, 1e-6)


def _cell_mask(rng: np.random.Generator, radius: float) -> np.ndarray:
    """Soft (anti-aliased) mask of one nucleus on a small square canvas centred on the cell centre.

    The outline is a closed curve through SHAPE_POINTS points on a circle whose angles and radii are
    jittered by SHAPE_JITTER; between points the radius is interpolated linearly in angle."""
    k = SHAPE_POINTS
    angles = 2 * np.pi * (np.arange(k) / k + SHAPE_JITTER * rng.uniform(-0.5, 0.5, k))
    radii = radius * (1 + SHAPE_JITTER * rng.standard_normal(k))
    half = int(np.ceil(radii.max())) + 1
    yy, xx = np.mgrid[-half:half + 1, -half:half + 1]
    outline = np.interp(np.arctan2(yy, xx) % (2 * np.pi), angles % (2 * np.pi), radii, period=2 * np.pi)
    return np.clip(outline - np.hypot(xx, yy) + 0.5, 0, 1).astype(np.float32)


def _paste_window(size: int, x: int, y: int, half: int):
    """Slices of the image and of a (2*half+1)^2 local canvas centred at (x, y), clipped to the image."""
    x0, y0, x1, y1 = x - half, y - half, x + half + 1, y + half + 1
    img = (slice(max(y0, 0), min(y1, size)), slice(max(x0, 0), min(x1, size)))
    loc = (slice(max(y0, 0) - y0, min(y1, size) - y0), slice(max(x0, 0) - x0, min(x1, size) - x0))
    return img, loc


def synthesize_image(rng: np.random.Generator, n_cells: int, size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """One SIMCEP-style fluorescence image: (size x size x 3 uint8 RGB, (n_cells, 2) float64 centres).

    Centres are distinct integer pixel coordinates (x, y), so one dot pixel encodes each exactly."""
    levels = len(BLUR_SIGMAS)
    level_sum = np.zeros((levels, size, size), np.float32)  # summed cell intensity per blur level
    coverage = np.zeros((size, size), np.float32)           # how many cells cover each pixel
    taken = np.zeros((size, size), bool)                    # centre pixels already used

    # Placement model: a few Gaussian clusters plus a uniform share; overlap limit per image.
    n_clusters = int(rng.integers(1, 6))
    cluster_xy = rng.uniform(0, size, (n_clusters, 2))
    cluster_sd = rng.uniform(0.06, 0.15, n_clusters) * size
    p_clustered = rng.uniform(0.3, 0.8)
    overlap_limit = rng.uniform(0.6, 0.95)

    centres = np.empty((n_cells, 2))
    for c in range(n_cells):
        mask = _cell_mask(rng, max(RADIUS_MEAN + RADIUS_SD * rng.standard_normal(), 2.5))
        half = mask.shape[0] // 2
        area = mask.sum()
        attempt = 0
        while True:
            attempt += 1
            if attempt <= 50 and rng.random() < p_clustered:
                j = rng.integers(n_clusters)
                x, y = np.rint(cluster_xy[j] + cluster_sd[j] * rng.standard_normal(2)).astype(int)
            else:  # uniform, and the fallback when a cluster is too crowded
                x, y = rng.integers(0, size, 2)
            if not (0 <= x < size and 0 <= y < size) or taken[y, x]:
                continue
            img, loc = _paste_window(size, x, y, half)
            overlap = (mask[loc] * (coverage[img] > 0.5)).sum() / area
            if overlap <= overlap_limit or attempt > 500:  # after many tries accept any free centre
                break
        # Texture b + (1 - b) * noise, scaled by the cell's brightness; a random depth picks the blur.
        texture = TEXTURE_BASE + (1 - TEXTURE_BASE) * _value_noise(rng, *mask.shape, TEXTURE_OCTAVES)
        level = rng.choice(levels, p=BLUR_PROBS)
        level_sum[level][img] += rng.uniform(0.75, 1.0) * texture[loc] * mask[loc]
        coverage[img] += mask[loc]
        taken[y, x] = True
        centres[c] = x, y

    # Overlapping cells are averaged: sum_k (S_k / C) is the averaged composite, each term blurred
    # with its own depth-of-focus sigma.
    denom = np.maximum(coverage, 1.0)
    cells = sum(cv2.GaussianBlur(level_sum[k] / denom, (0, 0), BLUR_SIGMAS[k]) for k in range(levels))

    # Faint textured autofluorescence, off-centre quadratic illumination falloff, sensor noise.
    background = rng.uniform(0.15, 0.35) * (0.5 + 0.5 * _value_noise(rng, size, size, 5))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    cx, cy = rng.uniform(0, size, 2)
    r2 = (xx - cx) ** 2 + (yy - cy) ** 2
    illumination = 1 - rng.uniform(0.3, 0.7) * r2 / r2.max()
    blue = illumination * (background + CELL_GAIN * cells) + NOISE_SD * rng.standard_normal((size, size))
    blue = np.clip(blue, 0, 1)

    # Red and green: faint noise slightly correlated with the blue signal (real images: values 0..9).
    rg = 1.2 * rng.standard_normal((2, size, size)) - 0.15 + blue
    image = np.empty((size, size, 3), np.uint8)
    image[..., 0:2] = np.clip(np.rint(rg), 0, 255).astype(np.uint8).transpose(1, 2, 0)
    image[..., 2] = np.rint(blue * 255).astype(np.uint8)
    return image, centres


def _stamp(n_images: int, seed: int, count_range, size: int) -> dict:
    return {"generator_version": GENERATOR_VERSION, "n_images": int(n_images), "seed": int(seed),
            "count_range": [int(count_range[0]), int(count_range[1])], "size": int(size)}


def _is_complete(out_dir: Path, stamp: dict) -> bool:
    """True when out_dir holds the full set generated with exactly these parameters."""
    try:
        if json.loads((out_dir / STAMP_NAME).read_text()) != stamp:
            return False
    except (OSError, ValueError):
        return False
    return all((out_dir / f"{i:03d}{kind}.png").is_file()
               for i in range(1, stamp["n_images"] + 1) for kind in ("cell", "dots"))


def generate_synthetic(out_dir, n_images: int = 200, seed: int = 0, count_range=(74, 317), size: int = 256,
                       progress: Optional[Callable[[int, int], None]] = None) -> Path:
    """Write a synthetic VGG-cells-style set (001cell.png/001dots.png ...) to out_dir and return it.

    Image k uses its own generator, SeedSequence(seed, spawn_key=(k,)), so it does not depend on
    n_images. Files are written into a temporary folder beside out_dir and renamed into place; an
    out_dir already holding the same set (per its synthetic.json stamp) is reused untouched."""
    out_dir = Path(out_dir)
    lo, hi = count_range
    if not 1 <= lo <= hi:
        raise ValueError(f"count_range must satisfy 1 <= low <= high, got {count_range}")
    if hi > size * size:
        raise ValueError(f"count_range high {hi} exceeds the {size}x{size} pixels available for centres")
    stamp = _stamp(n_images, seed, count_range, size)
    if _is_complete(out_dir, stamp):
        return out_dir
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / STAMP_NAME).is_file():
        raise DatasetError(f"{out_dir} exists and is not a synthetic dataset (no {STAMP_NAME}); "
                           "choose another output folder or empty this one")

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        for k in range(n_images):
            rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(k,)))
            image, centres = synthesize_image(rng, int(rng.integers(lo, hi + 1)), size)
            dots = np.zeros_like(image)
            dots[centres[:, 1].astype(int), centres[:, 0].astype(int)] = (255, 0, 0)
            for kind, rgb in (("cell", image), ("dots", dots)):
                if not cv2.imwrite(str(tmp / f"{k + 1:03d}{kind}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
                    raise DatasetError(f"could not write {tmp / f'{k + 1:03d}{kind}.png'}; check disk space "
                                       "and permissions")
            if progress is not None:
                progress(k + 1, n_images)
        (tmp / STAMP_NAME).write_text(json.dumps(stamp, indent=1) + "\n")
        # Swap in the new set; an old (stamped, different-parameter) set is moved aside, then deleted.
        old = None
        if out_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
            os.replace(out_dir, old / "set")
        os.replace(tmp, out_dir)
        if old is not None:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir
