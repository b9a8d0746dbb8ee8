"""Synthetic datasets, generated, seeded and deterministic: a SIMCEP-style fluorescence set (the
embedded default, in the VGG-cells layout) and a Ki67-IHC-style stand-in for the paper's private
set (in the generic layout).

The fluorescence generator follows the model of SIMCEP (Lehmussola et al., IEEE TMI 2007), the
simulator that made the real VGG images: jittered round nuclei with multi-octave noise texture,
clustered placement with an overlap limit, depth-dependent blur, uneven illumination,
autofluorescence background and sensor noise. Signal is in the blue channel only; red and green
carry faint noise, as in the real images.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Optional, Sequence

import cv2
import numpy as np
from scipy.spatial import cKDTree

from pycount.util import atomic
from pycount.errors import DatasetError

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


def _stamp(n_images: int, seed: int, count_range, size, **extra) -> dict:
    return {"generator_version": GENERATOR_VERSION, "n_images": int(n_images), "seed": int(seed),
            "count_range": [int(count_range[0]), int(count_range[1])], "size": size, **extra}


def _is_complete(out_dir: Path, stamp: dict, names: list[str]) -> bool:
    """True when out_dir holds all of `names`, generated with exactly these parameters."""
    try:
        if json.loads((out_dir / STAMP_NAME).read_text()) != stamp:
            return False
    except (OSError, ValueError):
        return False
    return all((out_dir / name).is_file() for name in names)


def _write_set(out_dir, stamp: dict, names: list[str], n_images: int, write_image: Callable[[Path, int], None],
               progress: Optional[Callable[[int, int], None]]) -> Path:
    """Generate a stamped set atomically, shared by the generators.

    An out_dir already holding `names` under the same stamp is reused untouched. Otherwise
    write_image(folder, k) writes image k (0-based) into a temporary folder beside out_dir, for
    k < n_images, and progress(done, n_images) is called before the first and after each; the
    folder is stamped and renamed into place, replacing an older stamped set."""
    out_dir = Path(out_dir)
    if _is_complete(out_dir, stamp, names):
        return out_dir
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / STAMP_NAME).is_file():
        raise DatasetError(f"{out_dir} exists and is not a synthetic dataset (no {STAMP_NAME}); "
                           "choose another output folder or empty this one")

    problem = atomic.make_folder(out_dir.parent)
    if problem is not None and problem[0] != "readonly":     # (read-only: the write below says)
        kind, detail = problem
        raise DatasetError(f"cannot make {out_dir.parent} for the generated images ("
                           + (f"{detail} is a file" if kind == "file" else str(detail).lower())
                           + "); move it, or set PYCOUNT_DATA to a folder that can be made")
    # the half-written folders of generations killed outright (their process gone): nothing
    # reuses them, and a ki67-synthetic one holds hundreds of MB
    for old in out_dir.parent.glob(f".{out_dir.name}.tmp-*"):
        pid = old.name[len(f".{out_dir.name}.tmp-"):].split("-")[0]
        if old.is_dir() and pid.isdigit() and not atomic.pid_alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-{os.getpid()}-",
                                dir=out_dir.parent))
    atomic.open_as_mkdir(tmp)       # it becomes the data folder: readable as mkdir makes one
    try:
        if progress is not None:
            progress(0, n_images)              # before the first image: a bar's clock starts here
        for k in range(n_images):
            write_image(tmp, k)
            if progress is not None:
                progress(k + 1, n_images)
        (tmp / STAMP_NAME).write_text(json.dumps(stamp, indent=1) + "\n")
        atomic.replace_dir(tmp, out_dir)   # an older stamped set goes only after the swap
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _image_rng(seed: int, k: int) -> np.random.Generator:
    """Image k's own generator, so that it does not depend on how many images a set has."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(k,)))


def _imwrite_rgb(path: Path, rgb: np.ndarray, params: Sequence[int] = ()) -> None:
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), list(params)):
        raise DatasetError(f"could not write {path}; check disk space and permissions")


def generate_synthetic(out_dir, n_images: int = 200, seed: int = 0, count_range=(74, 317), size: int = 256,
                       progress: Optional[Callable[[int, int], None]] = None) -> Path:
    """Write a synthetic VGG-cells-style set (001cell.png/001dots.png ...) to out_dir and return it.

    Image k uses its own generator, SeedSequence(seed, spawn_key=(k,)), so it does not depend on
    n_images. Files are written into a temporary folder beside out_dir and renamed into place; an
    out_dir already holding the same set (per its synthetic.json stamp) is reused untouched."""
    lo, hi = count_range
    if not 1 <= lo <= hi:
        raise ValueError(f"count_range must satisfy 1 <= low <= high, got {count_range}")
    if hi > size * size:
        raise ValueError(f"count_range high {hi} exceeds the {size}x{size} pixels available for centres")

    def write_image(folder: Path, k: int) -> None:
        rng = _image_rng(seed, k)
        image, centres = synthesize_image(rng, int(rng.integers(lo, hi + 1)), size)
        dots = np.zeros_like(image)
        dots[centres[:, 1].astype(int), centres[:, 0].astype(int)] = (255, 0, 0)
        _imwrite_rgb(folder / f"{k + 1:03d}cell.png", image)
        _imwrite_rgb(folder / f"{k + 1:03d}dots.png", dots)

    names = [f"{i:03d}{kind}.png" for i in range(1, n_images + 1) for kind in ("cell", "dots")]
    return _write_set(out_dir, _stamp(n_images, seed, count_range, int(size)), names, n_images,
                      write_image, progress)


# ----------------------------------------------------------------------------------------------------
# Ki67 stand-in: IHC-like (DAB + hematoxylin) images in the generic layout
# ----------------------------------------------------------------------------------------------------

# Colour follows Beer-Lambert: intensity = illumination * exp(-sum of stain amount * stain OD vector),
# with the RGB optical-density vectors of Ruifrok & Johnston (Anal. Quant. Cytol. Histol. 2001).
KI67_VERSION = 1
OD_HEMATOXYLIN = np.array([0.650, 0.704, 0.286], np.float32)   # blue/purple: Ki67-negative nuclei
OD_DAB = np.array([0.268, 0.570, 0.776], np.float32)           # brown: Ki67-positive nuclei
OD_EOSIN = np.array([0.072, 0.990, 0.105], np.float32)         # pink tint of the background
KI67_RADIUS = (5.0, 10.0)      # nucleus radius range in px (diameter 10-20)
KI67_HALF = 16                 # nucleus canvas is (2*HALF+1)^2 px, room for elongated, lumpy outlines
KI67_MIN_DIST = 9.0            # px between centres: neighbours may touch and overlap a little
KI67_TEMPLATES = 96            # nucleus shapes drawn per image, each reused with its own stain amount
KI67_LOWRES = 16               # smooth fields (tissue, illumination) are made at 1/16 scale
KI67_DENSE = 0.5               # mean nuclear stain amount per px at which the tissue tint saturates


def _nucleus_bank(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, S, S) float32 stain-amount templates of single nuclei centred on their canvas: elliptical,
    lumpy outline (a few random Fourier harmonics of the radius), soft edge, chromatin texture, and a
    slightly darker rim where the nuclear membrane is."""
    half = KI67_HALF
    yy, xx = np.mgrid[-half:half + 1, -half:half + 1].astype(np.float32)
    harmonics = np.arange(2, 5, dtype=np.float32)[:, None, None]
    bank = np.empty((n, 2 * half + 1, 2 * half + 1), np.float32)
    for t in range(n):
        theta, elongation = rng.uniform(0, np.pi), rng.uniform(1.0, 1.4)
        u = xx * np.cos(theta) + yy * np.sin(theta)
        v = yy * np.cos(theta) - xx * np.sin(theta)
        rho = np.hypot(u / np.sqrt(elongation), v * np.sqrt(elongation))  # area-preserving ellipse
        phi = np.arctan2(v, u)
        amp = 0.05 * rng.standard_normal((3, 1, 1)).astype(np.float32)
        phase = rng.uniform(0, 2 * np.pi, (3, 1, 1)).astype(np.float32)
        outline = rng.uniform(*KI67_RADIUS) * (1 + (amp * np.cos(harmonics * phi + phase)).sum(axis=0))
        inside = outline - rho                                   # px inside the outline
        mask = np.clip(inside + 0.5, 0, 1)
        rim = 1 + 0.3 * np.clip(1 - np.abs(inside - 1.2) / 1.2, 0, 1)
        texture = 0.4 + 0.6 * _value_noise(rng, *mask.shape, 3)
        bank[t] = mask * rim * texture
    return bank


def _ki67_centres(rng: np.random.Generator, n: int, h: int, w: int) -> np.ndarray:
    """(n, 2) int64 distinct (x, y) centres at least KI67_MIN_DIST apart: a mix of Gaussian clusters
    (tumour nests) and uniform scatter, by batched dart throwing (candidates too close to an accepted
    centre, or to an earlier candidate of the same batch, are dropped)."""
    n_clusters = int(rng.integers(3, 13))
    cluster_xy = rng.uniform((0, 0), (w, h), (n_clusters, 2))
    cluster_sd = rng.uniform(0.03, 0.10, n_clusters) * np.hypot(h, w)
    p_clustered = rng.uniform(0.4, 0.8)
    accepted = np.empty((0, 2), np.int64)
    while len(accepted) < n:
        m = 2 * (n - len(accepted)) + 16
        j = rng.integers(n_clusters, size=m)
        clustered = cluster_xy[j] + cluster_sd[j, None] * rng.standard_normal((m, 2))
        candidates = np.where(rng.random((m, 1)) < p_clustered, clustered, rng.uniform((0, 0), (w, h), (m, 2)))
        candidates = np.rint(candidates).astype(np.int64)
        candidates = candidates[(candidates >= 0).all(axis=1) & (candidates < (w, h)).all(axis=1)]
        if len(accepted):
            candidates = candidates[cKDTree(accepted).query(candidates)[0] >= KI67_MIN_DIST]
        keep = np.ones(len(candidates), bool)
        pairs = cKDTree(candidates).query_pairs(KI67_MIN_DIST, output_type="ndarray")
        keep[pairs[:, 1]] = False  # pairs are (i, j) with i < j: the later candidate yields
        accepted = np.concatenate([accepted, candidates[keep][: n - len(accepted)]])
    return accepted


def _smooth_field(h: int, w: int, small: np.ndarray, sigma: float) -> np.ndarray:
    """A low-resolution map blurred by sigma (in low-res px) and upsampled to h x w."""
    return cv2.resize(cv2.GaussianBlur(small, (0, 0), sigma), (w, h), interpolation=cv2.INTER_LINEAR)


def synthesize_ki67_image(rng: np.random.Generator, n_cells: int, size=(1920, 2560)) -> tuple[np.ndarray, np.ndarray]:
    """One IHC-like image: (H x W x 3 uint8 RGB, (n_cells, 2) float64 distinct integer (x, y) centres).

    Nuclei are brown (DAB, Ki67-positive, with a little hematoxylin) or blue/purple (hematoxylin only),
    drawn from a per-image bank of templates in one weighted bincount per stain. Cell-dense regions get
    a faint cytoplasm/stroma tint; the background is near-white pinkish grey with faint texture;
    illumination varies smoothly; the image is blurred once and gets sensor noise."""
    h, w = size
    half = KI67_HALF
    centres = _ki67_centres(rng, n_cells, h, w)
    bank = _nucleus_bank(rng, KI67_TEMPLATES)
    positive = rng.random(n_cells) < rng.uniform(0.1, 0.7)  # the image's Ki67 index
    strength = np.where(positive, rng.uniform(1.0, 2.2, n_cells), rng.uniform(0.6, 1.3, n_cells))
    dab = np.where(positive, strength, 0.0).astype(np.float32)
    hema = np.where(positive, 0.25, strength).astype(np.float32)

    # Splat every nucleus canvas into padded stain maps: canvas pixel (dy, dx) of the cell at (x, y)
    # lands on padded pixel (y + dy, x + dx), i.e. image pixel (y + dy - half, x + dx - half).
    wp, hp = w + 2 * half, h + 2 * half
    dy, dx = np.mgrid[0:2 * half + 1, 0:2 * half + 1]
    flat = ((centres[:, 1, None, None] + dy) * wp + centres[:, 0, None, None] + dx).ravel()
    shapes = bank[rng.integers(KI67_TEMPLATES, size=n_cells)]
    crop = (slice(half, half + h), slice(half, half + w))
    maps = [np.bincount(flat, (shapes * a[:, None, None]).ravel(), minlength=hp * wp)
            .reshape(hp, wp)[crop].astype(np.float32) for a in (hema, dab)]

    # Tissue: where cells are dense, cytoplasm and stroma add a faint hematoxylin/eosin tint.
    lh, lw = max(h // KI67_LOWRES, 1), max(w // KI67_LOWRES, 1)
    density = cv2.resize(maps[0] + maps[1], (lw, lh), interpolation=cv2.INTER_AREA)
    tissue = np.minimum(_smooth_field(h, w, density, 2.0) / KI67_DENSE, 1)
    grain = cv2.resize(rng.random((h // 4, w // 4), dtype=np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    texture = 0.6 * _value_noise(rng, h, w, 6) + 0.4 * grain
    background = (0.03 + 0.05 * texture) * (1 + 2.5 * tissue)
    background_od = rng.uniform(0.1, 0.3) * OD_HEMATOXYLIN + 0.6 * OD_EOSIN + 0.5  # pinkish grey

    # Illumination: off-centre quadratic falloff times gentle low-frequency unevenness.
    yy, xx = np.mgrid[0:lh, 0:lw].astype(np.float32)
    cx, cy = rng.uniform(0, lw), rng.uniform(0, lh)
    r2 = (xx - cx) ** 2 + (yy - cy) ** 2
    low = (1 - rng.uniform(0.05, 0.15) * r2 / r2.max()) * (0.97 + 0.03 * rng.random((lh, lw), dtype=np.float32))
    illumination = rng.uniform(0.93, 1.0) * _smooth_field(h, w, low, 4.0)

    # Per pixel, log(intensity) = log(illumination) - sum of stain amount * OD vector: one 3x4 colour
    # transform of the stacked fields (cv2, much faster than numpy broadcasting at this size).
    fields = cv2.merge([maps[0], maps[1], background, np.log(illumination)])
    mix = -np.stack([OD_HEMATOXYLIN, OD_DAB, background_od, -np.ones(3, np.float32)], axis=1)
    rgb = cv2.exp(cv2.transform(fields, mix))
    rgb = cv2.GaussianBlur(rgb, (0, 0), rng.uniform(0.7, 1.2))
    noise = rng.random(rgb.shape, dtype=np.float32)   # uniform sensor noise, sd 0.012 (of 1)
    rgb = cv2.scaleAdd(noise - 0.5, 0.012 * np.sqrt(12), rgb)
    image = np.clip(rgb * 255 + 0.5, 0, 255, out=rgb).astype(np.uint8)
    return image, centres.astype(np.float64)


def generate_ki67_synthetic(out_dir, n_images: int = 55, seed: int = 0, count_range=(70, 4808),
                            size=(1920, 2560), progress: Optional[Callable[[int, int], None]] = None) -> Path:
    """Write a stand-in for the paper's private Ki67 set to out_dir in the generic layout and return it.

    NNN.png (H x W = size, RGB) with NNN.csv (header x,y; integer 0-based centres of every nucleus,
    positive and negative, as the paper counts all tumour cells); counts uniform in count_range. Image k
    is seeded like generate_synthetic's, and the set is written and reused atomically the same way."""
    h, w = (int(v) for v in size)
    lo, hi = count_range
    if not 1 <= lo <= hi:
        raise ValueError(f"count_range must satisfy 1 <= low <= high, got {count_range}")
    if min(h, w) < 2 * KI67_HALF + 1 or hi * KI67_MIN_DIST ** 2 > 0.5 * h * w:
        raise ValueError(f"a {h}x{w} image cannot hold {hi} nuclei {KI67_MIN_DIST:g} px apart; "
                         "lower count_range or enlarge size")

    def write_image(folder: Path, k: int) -> None:
        rng = _image_rng(seed, k)
        image, centres = synthesize_ki67_image(rng, int(rng.integers(lo, hi + 1)), (h, w))
        _imwrite_rgb(folder / f"{k + 1:03d}.png", image, (cv2.IMWRITE_PNG_COMPRESSION, 1))
        np.savetxt(folder / f"{k + 1:03d}.csv", centres, fmt="%d", delimiter=",", header="x,y", comments="")

    names = [f"{i:03d}.{ext}" for i in range(1, n_images + 1) for ext in ("png", "csv")]
    stamp = _stamp(n_images, seed, count_range, [h, w], generator="ki67", generator_version=KI67_VERSION)
    return _write_set(out_dir, stamp, names, n_images, write_image, progress)
