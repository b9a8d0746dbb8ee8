"""Cell-image datasets: readers for three layouts.

Layouts (``read(layout, root)`` dispatches on the name):

* ``vgg_cells``: the VGG "cells" set of Lempitsky & Zisserman, which Xue et al. 2016 use: a folder of
  ``NNNcell.png`` (RGB fluorescence image) and ``NNNdots.png`` (black image, one red pixel per cell centre).
* ``crc_nuclei``: the CRCHistoPhenotypes release (Sirinukunwattana et al. 2016, the paper's "Nuclei"):
  ``Detection/imgN/imgN.bmp`` with ``Detection/imgN/imgN_detection.mat`` (1-based MATLAB x, y).
* ``generic``: any folder of images with a same-stem ``.csv`` of 0-based x, y centres (also ImageJ
  Results tables); the layout of the private Ki67 set's stand-in (pycount.data.synthetic).

Every reader checks that images and annotations pair up, that images decode and that every centre
lies inside its image, and raises DatasetError naming the offending file.
"""
from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import cv2
import numpy as np
import scipy.io
import tifffile

import json
import shutil
import tempfile
from scipy.spatial import cKDTree
from pycount.util import atomic
from pycount.errors import DatasetError  # noqa: F401 (re-exported)

@dataclass(frozen=True, eq=False)  # eq=False: numpy arrays have no scalar equality
class Sample:
    id: str               # e.g. "001"
    image: np.ndarray     # H x W x 3 uint8, RGB
    centres: np.ndarray   # (N, 2) float64, 0-based (x, y) pixel coordinates of cell centres
    source: str = ""      # the image file, for messages about it

    @property
    def count(self) -> int:
        return len(self.centres)




# ----------------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------------

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")  # generic layout, matched in any case
CRC_EDGE_TOLERANCE = 1.0  # px; the CRC release has 5 centres up to 0.35 px beyond the image edge


def _require_dir(root) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder {root} does not exist; set DATA_ROOT to the folder holding "
                           "the release folders (e.g. DATA_ROOT=../shared/datasets)")
    return root


def _natural_key(name: str) -> list:
    """Sort key putting "img2" before "img10": digit runs compare as numbers."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _select(pairs: dict, ids: Optional[Sequence[str]], expected: Callable[[str], Path]) -> list[str]:
    """The requested ids (all of them, naturally sorted, when ids is None), each checked to exist;
    expected(id) is the image path an unknown id would have had, for the message."""
    if ids is None:
        return sorted(pairs, key=_natural_key)
    for i in ids:
        if i not in pairs:
            raise DatasetError(f"{expected(i)} not found (id {i!r} was requested); "
                               "check the id list or the DATA_ROOT folder")
    return list(ids)


def _check_centres(centres: np.ndarray, shape, path: Path, tolerance: float = 0.0) -> np.ndarray:
    """Centres inside the image, as the patch code counts them: -0.5 <= x < W-0.5, -0.5 <= y < H-0.5.

    Centres at most `tolerance` px beyond an edge (annotation clicks on the border) are moved onto the
    nearest edge pixel; any other centre outside (or not finite) raises DatasetError naming `path`."""
    h, w = shape[:2]
    limit = np.array([w, h], np.float64) - 0.5
    outside = ~np.isfinite(centres) | (centres < -0.5) | (centres >= limit)
    if tolerance > 0:
        near = outside & (centres >= -0.5 - tolerance) & (centres < limit + tolerance)
        centres = np.where(near, np.clip(centres, 0, limit - 0.5), centres)
        outside &= ~near
    bad = np.nonzero(outside.any(axis=1))[0]
    if len(bad):
        x, y = centres[bad[0]]
        raise DatasetError(f"{path}: cell centre {bad[0] + 1} at 0-based (x, y) = ({x:g}, {y:g}) lies outside "
                           f"the {w}x{h} image (x must be in [-0.5, {w - 0.5:g}), y in [-0.5, {h - 0.5:g})); "
                           f"correct or delete that entry ({len(bad)} centre(s) outside in all)")
    return centres


def _sample(i: str, image: np.ndarray, centres: np.ndarray, path: Path, image_path: Path,
            tolerance: float = 0.0) -> Sample:
    centres = np.asarray(centres, np.float64).reshape(-1, 2)
    return Sample(id=i, image=image, centres=_check_centres(centres, image.shape, path, tolerance),
                  source=str(image_path))


# --- vgg_cells ---------------------------------------------------------------------------------------

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
    """Read the NNNcell.png / NNNdots.png pairs under ``root`` (all of them, sorted by id, or ``ids``).

    Dots are pixels of a same-size image, so their centres are inside by construction."""
    root = _require_dir(root)
    pairs = _pairs(root)
    if not pairs:
        raise DatasetError(f"no NNNcell.png/NNNdots.png pairs found in {root}; set DATA_ROOT to the "
                           "folder holding the release (e.g. DATA_ROOT=../shared/datasets)")
    samples = []
    for i in _select(pairs, ids, lambda i: root / (i + "cell.png")):
        cell_path, dots_path = pairs[i]
        image, dots = _imread_rgb(cell_path), _imread_rgb(dots_path)
        if image.shape[:2] != dots.shape[:2]:
            raise DatasetError(f"{dots_path} is {dots.shape[1]}x{dots.shape[0]} but {cell_path} is "
                               f"{image.shape[1]}x{image.shape[0]}; the pair must have the same size "
                               "(replace the files from the original release)")
        samples.append(Sample(id=i, image=image, centres=dots_to_centres(dots),
                              source=str(cell_path)))
    return samples


# --- crc_nuclei --------------------------------------------------------------------------------------

def _crc_pairs(detection: Path) -> dict[str, tuple[Path, Path]]:
    """Map id "N" -> (imgN.bmp, imgN_detection.mat) over the Detection/imgN folders."""
    pairs = {}
    for folder in detection.iterdir():
        match = re.fullmatch(r"img(\d+)", folder.name)
        if not (folder.is_dir() and match):
            continue
        image, mat = folder / f"{folder.name}.bmp", folder / f"{folder.name}_detection.mat"
        for present, absent in ((image, mat), (mat, image)):
            if present.is_file() and not absent.is_file():
                raise DatasetError(f"{present} has no partner {absent}; restore it from the "
                                   f"CRCHistoPhenotypes release or delete the folder {folder}")
        if image.is_file():
            pairs[str(int(match.group(1)))] = image, mat
    return pairs


def _read_detection_mat(path: Path) -> np.ndarray:
    """The `detection` variable: K x 2 (x, y) in 1-based MATLAB pixel coordinates, returned 0-based."""
    try:
        mat = scipy.io.loadmat(str(path))
    except NotImplementedError:  # scipy's answer to MATLAB v7.3 (HDF5) files
        raise DatasetError(f"{path} is a MATLAB v7.3 (HDF5) file, which scipy cannot read; re-save it in "
                           "MATLAB with save(file, 'detection', '-v7')") from None
    except Exception as e:  # scipy raises assorted types (MatReadError, ValueError, TypeError) on bad files
        raise DatasetError(f"cannot read {path} ({e}); replace it from the CRCHistoPhenotypes release") from None
    if "detection" not in mat:
        found = sorted(k for k in mat if not k.startswith("__"))
        raise DatasetError(f"{path} has no variable 'detection' (it holds {found}); "
                           "replace it from the CRCHistoPhenotypes release")
    detection = np.asarray(mat["detection"])
    if detection.size == 0:  # an image without nuclei may be saved as a 0x0 array
        return np.empty((0, 2))
    if detection.ndim != 2 or detection.shape[1] != 2 or not np.issubdtype(detection.dtype, np.number):
        raise DatasetError(f"{path}: 'detection' is a {detection.shape} {detection.dtype} array, expected "
                           "K x 2 numbers (x, y); replace it from the CRCHistoPhenotypes release")
    return detection.astype(np.float64) - 1.0


def read_crc_nuclei(root, ids: Optional[Sequence[str]] = None) -> list[Sample]:
    """Read the CRCHistoPhenotypes detection set; ``root`` is the release folder (holding Detection/).

    Ids are the image numbers as strings, "1" .. "100", sorted numerically. Centres are converted from
    1-based MATLAB coordinates to 0-based by subtracting 1; centres at most CRC_EDGE_TOLERANCE px beyond
    the image edge (5 clicks on the border in the release) are moved onto the edge pixel."""
    root = _require_dir(root)
    detection = root / "Detection"
    if not detection.is_dir():
        raise DatasetError(f"{detection} not found; root must be the CRCHistoPhenotypes_2016_04_28 release "
                           "folder, the one holding Detection/imgN/")
    pairs = _crc_pairs(detection)
    if not pairs:
        raise DatasetError(f"no Detection/imgN/imgN.bmp images found under {root}; root must be the "
                           "CRCHistoPhenotypes_2016_04_28 release folder")
    samples = []
    for i in _select(pairs, ids, lambda i: detection / f"img{i}" / f"img{i}.bmp"):
        image_path, mat_path = pairs[i]
        samples.append(_sample(i, _imread_rgb(image_path), _read_detection_mat(mat_path), mat_path,
                               image_path, CRC_EDGE_TOLERANCE))
    return samples


# --- generic -----------------------------------------------------------------------------------------

def _generic_pairs(root: Path) -> dict[str, tuple[Path, Path]]:
    """Map file stem -> (image, csv), checking that every image has its CSV and vice versa."""
    images, tables = {}, {}
    for path in sorted(root.iterdir()):
        suffix = path.suffix.lower()
        kind = images if suffix in IMAGE_SUFFIXES else tables if suffix == ".csv" else None
        if kind is None or not path.is_file():
            continue
        if path.stem in kind:
            raise DatasetError(f"{kind[path.stem]} and {path} share the id {path.stem!r}; keep one of them")
        kind[path.stem] = path
    for i in sorted(images.keys() - tables.keys()):
        raise DatasetError(f"{images[i]} has no annotation {root / (i + '.csv')}; add the CSV of its cell "
                           "centres (header x,y) or remove the image")
    for i in sorted(tables.keys() - images.keys()):
        raise DatasetError(f"{tables[i]} has no matching image {i}{{{','.join(IMAGE_SUFFIXES)}}} in {root}; "
                           "add the image or remove the CSV")
    return {i: (images[i], tables[i]) for i in images}


def _to_uint8(data: np.ndarray) -> np.ndarray:
    """8-bit data as is; deeper data (16-bit, float) by a robust per-image contrast stretch: the 0.1st and
    99.9th percentiles over all channels map to 0 and 255, clipped. Unlike dividing by the maximum, a few
    hot pixels or a 12-bit camera in a 16-bit container do not leave the image dark."""
    if data.dtype == np.uint8:
        return data
    data = data.astype(np.float64)
    lo, hi = np.percentile(data, [0.1, 99.9])
    if hi <= lo:  # (nearly) flat image: fall back to the full range, or black
        lo, hi = data.min(), max(data.max(), data.min() + 1)
    return np.rint(np.clip((data - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)


def _read_any_image(path: Path) -> np.ndarray:
    """Decode an 8/16-bit grey, RGB or RGBA image into H x W x 3 uint8 RGB: grey is replicated to three
    channels, alpha is dropped, depth is converted by _to_uint8. TIFFs cv2 cannot decode go to tifffile."""
    data, bgr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED), True
    if data is None and path.suffix.lower() in (".tif", ".tiff"):
        try:
            data, bgr = tifffile.imread(path), False  # tifffile keeps the file's RGB order
        except Exception:  # tifffile raises many types on broken files; all mean "cannot decode"
            data = None
    if data is None:
        raise DatasetError(f"cannot decode {path}: the file is corrupt or not an image; replace or remove it")
    if data.ndim == 3 and data.shape[2] == 1:
        data = data[..., 0]
    if not (data.ndim == 2 or (data.ndim == 3 and data.shape[2] in (3, 4))):
        raise DatasetError(f"{path} has shape {data.shape}; expected one grey, RGB or RGBA image "
                           "(save multi-page or multi-channel stacks as one image per file)")
    data = _to_uint8(data)
    if data.ndim == 2:
        return np.repeat(data[..., None], 3, axis=2)
    rgb = data[..., 2::-1] if bgr else data[..., :3]
    return np.ascontiguousarray(rgb)


def read_centres_csv(path: Path) -> np.ndarray:
    """(N, 2) float64 centres from a CSV with columns x and y (or X and Y, as in an ImageJ Results table,
    whose other columns - the unnamed row number, Area, Mean, ... - are ignored). Both are taken as
    0-based pixel coordinates: x = column, y = row, pixel (x, y) covering [x-0.5, x+0.5). (ImageJ's
    point tool reports exactly these; its centroids measure area-based coordinates, with pixel k spanning
    [k, k+1), so they read up to half a pixel down-right, which stays within the cell.)"""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")  # -sig: tolerate a byte-order mark
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"cannot read {path} ({e}); it must be a UTF-8 text CSV with header x,y") from None
    rows = csv.reader(io.StringIO(text))
    header = [name.strip() for name in next(rows, [])]
    for names in (("x", "y"), ("X", "Y")):
        if set(names) <= set(header):
            ix, iy = (header.index(n) for n in names)
            break
    else:
        raise DatasetError(f"{path} has header {','.join(header)!r} without x and y columns; expected the "
                           "header line 'x,y' (0-based pixel coordinates) or an ImageJ Results table with "
                           "X and Y columns")
    centres = []
    for row in rows:
        if not any(field.strip() for field in row):
            continue
        try:
            x, y = float(row[ix]), float(row[iy])
            if not (math.isfinite(x) and math.isfinite(y)):
                raise ValueError
        except (ValueError, IndexError):
            raise DatasetError(f"{path}, line {rows.line_num}: {','.join(row)!r} has no numeric "
                               f"{header[ix]},{header[iy]} values; fix or delete that line") from None
        centres.append((x, y))
    return np.array(centres, np.float64).reshape(-1, 2)


def read_generic(root, ids: Optional[Sequence[str]] = None) -> list[Sample]:
    """Read a folder of images (.png .jpg .jpeg .tif .tiff, any case) with same-stem .csv centre files
    (see read_centres_csv; images are converted as in _read_any_image). Ids are the file stems,
    naturally sorted ("2" before "10") when ``ids`` is None. Other files are ignored."""
    root = _require_dir(root)
    pairs = _generic_pairs(root)
    if not pairs:
        raise DatasetError(f"no images with same-stem .csv annotations found in {root}; expected e.g. "
                           "001.png with 001.csv (header x,y)")
    samples = []
    for i in _select(pairs, ids, lambda i: root / f"{i}.png"):
        image_path, csv_path = pairs[i]
        samples.append(_sample(i, _read_any_image(image_path), read_centres_csv(csv_path), csv_path,
                               image_path))
    return samples


READERS = {"vgg_cells": read_vgg_cells, "crc_nuclei": read_crc_nuclei, "generic": read_generic}


def read(layout: str, root, ids: Optional[Sequence[str]] = None) -> list[Sample]:
    """Read the dataset at ``root`` with the reader of ``layout`` (one of READERS)."""
    if layout not in READERS:
        raise DatasetError(f"unknown dataset layout {layout!r}; valid layouts: {', '.join(READERS)}")
    return READERS[layout](root, ids)


# ----------------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------------
# Synthetic generators
# --------------------------------------------------------------------------------------------------

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
    k < n_images; the folder is stamped and renamed into place, replacing an older stamped set."""
    out_dir = Path(out_dir)
    if _is_complete(out_dir, stamp, names):
        return out_dir
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / STAMP_NAME).is_file():
        raise DatasetError(f"{out_dir} exists and is not a synthetic dataset (no {STAMP_NAME}); "
                           "choose another output folder or empty this one")

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
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
