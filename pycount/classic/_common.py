"""Input checks, dot rasterisation and atomic .npz storage shared by the classic estimators.

Self-contained on purpose: nothing here imports the rest of pycount."""
from __future__ import annotations

import dataclasses

import json
import os
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy import ndimage


def check_image(image, what: str = "image") -> np.ndarray:
    """An H x W x 3 uint8 RGB array, or a ValueError that says what was given."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"{what} must be a numpy array (H x W x 3 uint8 RGB), got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"{what} must be H x W x 3 uint8 RGB, got shape {image.shape} dtype {image.dtype}")
    if image.shape[0] < 8 or image.shape[1] < 8:
        raise ValueError(f"{what} is {image.shape[1]}x{image.shape[0]} px; at least 8x8 is needed")
    return image


def check_points(points, shape, what: str = "points") -> np.ndarray:
    """(N, 2) finite float (x, y), 0-based, inside the image up to one pixel (then clipped onto it)."""
    pts = np.asarray(points, dtype=np.float64)
    if pts.size == 0:
        return np.empty((0, 2))
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"{what} must be an (N, 2) array of (x, y), got shape {pts.shape}")
    if not np.all(np.isfinite(pts)):
        raise ValueError(f"{what} holds NaN or infinite coordinates")
    h, w = shape[:2]
    outside = (pts[:, 0] < -1) | (pts[:, 0] > w) | (pts[:, 1] < -1) | (pts[:, 1] > h)
    if outside.any():
        raise ValueError(f"{what}: {int(outside.sum())} of {len(pts)} points lie outside the "
                         f"{w}x{h} image (first {pts[outside][0].tolist()}); points are 0-based (x, y)")
    return np.clip(pts, 0, [w - 1, h - 1])


def check_training_set(images, points) -> tuple[list[np.ndarray], list[np.ndarray]]:
    if isinstance(images, np.ndarray) and images.ndim == 3:
        raise ValueError("images must be a list of H x W x 3 arrays, got a single array")
    images, points = list(images), list(points)
    if not images:
        raise ValueError("fit needs at least one training image")
    if len(images) != len(points):
        raise ValueError(f"{len(images)} images but {len(points)} point arrays; give one (N, 2) array per image")
    images = [check_image(im, f"images[{i}]") for i, im in enumerate(images)]
    points = [check_points(p, im.shape, f"points[{i}]") for i, (im, p) in enumerate(zip(images, points))]
    return images, points


def dot_map(points: np.ndarray, shape) -> np.ndarray:
    """One unit per point at its nearest pixel (float64 H x W)."""
    h, w = shape[:2]
    out = np.zeros((h, w))
    if len(points):
        xs = np.clip(np.rint(points[:, 0]).astype(int), 0, w - 1)
        ys = np.clip(np.rint(points[:, 1]).astype(int), 0, h - 1)
        np.add.at(out, (ys, xs), 1.0)
    return out


def gaussian(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing that keeps the total mass (mode 'reflect' folds the spill back in)."""
    if sigma <= 0:
        return image
    return ndimage.gaussian_filter(image, sigma, mode="reflect")


def save_npz(path, arrays: dict, meta: dict) -> None:
    """All arrays plus a JSON metadata string in one .npz, written to a temporary file beside
    `path` and renamed over it, so a reader never sees a half-written model."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, __meta__=np.array(json.dumps(meta, sort_keys=True)), **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_npz(path, kind: str, required: Sequence[str]) -> tuple[dict, dict]:
    """The arrays and metadata written by save_npz; ValueError if the file is another kind of model."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file")
    with np.load(path, allow_pickle=False) as z:
        if "__meta__" not in z.files:
            raise ValueError(f"{path} is not a pycount.classic model (no __meta__ entry)")
        meta = json.loads(str(z["__meta__"]))
        if meta.get("kind") != kind:
            raise ValueError(f"{path} holds a {meta.get('kind')!r} model, not {kind!r}")
        missing = [k for k in required if k not in z.files]
        if missing:
            raise ValueError(f"{path} lacks the arrays {missing}; re-save the model")
        arrays = {k: z[k] for k in z.files if k != "__meta__"}
    return arrays, meta


def replace_settings(settings, what: str, **kw):
    """A copy of a settings dataclass with `kw` changed; an unknown name is a ValueError naming
    the method (`what`) and the names."""
    unknown = set(kw) - {f.name for f in dataclasses.fields(settings)}
    if unknown:
        raise ValueError(f"unknown {what} settings {sorted(unknown)}")
    return dataclasses.replace(settings, **kw)
