"""Marks as images: dot masks (one pixel or a small disc per cell), instance-label masks, one
mask file per cell, and COCO's run-length masks."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from pycount import config
from pycount.data.annotations.common import few, note
from pycount.data.images import decode_file
from pycount.errors import DatasetError


def _rle_counts(counts) -> list[int]:
    """The run lengths of a COCO run-length mask: a list as is, or COCO's compressed string
    (each run a variable-length number in characters of 5 bits from "0", a sixth bit saying
    another follows, a fifth-bit sign on the last; from the third run on, the difference to
    the run two before it)."""
    if not isinstance(counts, str):
        return [int(c) for c in counts]
    runs, pos = [], 0
    while pos < len(counts):
        value = shift = 0
        while True:
            c = ord(counts[pos]) - 48
            if not 0 <= c < 64:
                raise ValueError(f"{counts[pos]!r} in a compressed RLE")
            value |= (c & 0x1F) << shift
            pos, shift = pos + 1, shift + 5
            if not c & 0x20:
                if c & 0x10:
                    value -= 1 << shift
                break
            if pos >= len(counts):
                raise ValueError("a compressed RLE cut short")
        runs.append(value + (runs[-2] if len(runs) > 2 else 0))
    return runs


def run_pixels(runs, size: int) -> np.ndarray:
    """The flat indices of the marked pixels of a mask of `size` pixels given as run lengths
    that alternate unmarked and marked pixels, unmarked first. ValueError for runs that do
    not fill the mask."""
    runs = np.asarray(runs, np.int64)
    if (runs < 0).any():
        raise ValueError(f"a negative run length, {runs[runs < 0][0]}")
    if runs.sum() != size:
        raise ValueError(f"run lengths summing to {runs.sum()} for a mask of {size} pixels")
    ends = np.cumsum(runs)
    return np.concatenate([np.arange(0)] + [np.arange(a, b) for a, b in
                                            zip((ends - runs)[1::2], ends[1::2])])


def rle_centroid(segmentation: dict) -> tuple[float, float] | None:
    """x, y (0-based pixel indices) of the centroid of a COCO run-length mask, {"size": [h, w],
    "counts": runs or their compressed string}: runs over the pixels column by column from the
    top left; None where none is marked."""
    h, w = (int(v) for v in segmentation["size"])
    flat = run_pixels(_rle_counts(segmentation["counts"]), h * w)
    return (float((flat // h).mean()), float((flat % h).mean())) if len(flat) else None


def read_dot_mask(path: Path, shape=None) -> np.ndarray:
    """(N, 2) centres of a dot-mask image (any colour, any bit depth; an alpha channel is
    ignored). With `shape`, the mask must be the image's size. Dots of one pixel, as the VGG
    cells and most releases mark them: every non-zero pixel is one cell (neighbouring marks stay
    two). Dots drawn as small discs (the mask's median 8-connected blob is larger than a pixel):
    one cell per blob, at its centroid, and a blob of k touching discs (disc_counts: by its area
    where the discs are of one size, by its shape and depth where they differ) k cells, at the
    centres of k clusters of its pixels (split_blob). A JPEG mask's compression
    noise is dropped: its pixels count from half its maximum. A mask of instance labels (each
    cell a region of a value of its own, as Cellpose, StarDist and segmentation tools save
    them): one cell per label, at its centroid (label_centres)."""
    data, _ = decode_file(Path(path), "the dot mask ")
    if shape is not None and data.shape[:2] != tuple(shape[:2]):
        raise DatasetError(f"the dot mask {path} is {data.shape[1]}x{data.shape[0]} px but its image is "
                           f"{shape[1]}x{shape[0]}; a mask must have its image's size")
    if Path(path).suffix.lower() not in (".jpg", ".jpeg"):   # (no label survives JPEG)
        labelled = label_centres(data)
        if labelled is not None:
            return labelled
    if data.ndim == 3:
        data = data[..., :3] if data.shape[2] >= 3 else data[..., :1]
        data = data.max(axis=2)
    if data.size and data.min() > 0:         # no 0 anywhere: two values are two labels
        values, counts = np.unique(data, return_counts=True)
        if len(values) == 2:                 # (ilastik's Simple Segmentation: 1 and 2)
            marks = values[int(np.argmin(counts))]
            note(f"{path} has no 0 but two values, {values[0]} and {values[1]}: the rarer, "
                 f"{marks}, is read as the marks, the other as background")
            return mask_centres(data == marks, path)
        lossless = Path(path).suffix.lower() not in (".jpg", ".jpeg")
        if lossless and 2 < len(values) <= config.MASK_CLASS_VALUES_MAX:
            raise DatasetError(
                f"{path} has no 0 but {len(values)} values ({few(values.tolist())}), each pixel "
                f"one of a few classes (a pixel classifier's segmentation, as ilastik's Simple "
                f"Segmentation exports it): which value is the cells, and where touching cells "
                f"part, it does not say; export the cells as objects (an object label image, 0 "
                f"background and a value per cell: ilastik's Object Classification), their "
                f"centres (a CSV of x,y), or a segmentation of two labels, cells and background")
    on = data >= max(1, int(data.max()) // 2) if Path(path).suffix.lower() in (".jpg", ".jpeg") \
        else data != 0
    return mask_centres(on, path)


def read_object_masks(paths, shape=None) -> np.ndarray:
    """(N, 2) centres of an image's object masks, one file per cell (DSB 2018's masks/): each
    mask's marked pixels (any non-zero value, any channel but alpha) at their centroid, one cell
    however many pieces it is in; a mask of no marked pixel is none. With `shape`, every mask
    must be the image's size."""
    centres = []
    for path in paths:
        data, _ = decode_file(Path(path), "the object mask ")
        if shape is not None and data.shape[:2] != tuple(shape[:2]):
            raise DatasetError(f"the object mask {path} is {data.shape[1]}x{data.shape[0]} px but "
                               f"its image is {shape[1]}x{shape[0]}; a mask must have its image's "
                               f"size")
        if data.ndim == 3:
            data = (data[..., :3] if data.shape[2] >= 3 else data[..., :1]).max(axis=2)
        ys, xs = np.nonzero(data)
        if len(xs):
            centres.append((xs.mean(), ys.mean()))
    return np.asarray(centres, np.float64).reshape(-1, 2)


def label_centres(data: np.ndarray) -> np.ndarray | None:
    """(N, 2) x, y centroids of the cells of an instance-label mask, or None for a mask that is
    not one. A label mask gives each cell a value of its own (grey, 8 to 32 bits; or a colour
    of its own), so that touching cells stay apart. It is told by its content, not its name:
    two values at least, and each value one 8-connected region (config.MASK_LABEL_SPARE of the
    values may be in two pieces: a cell cut by the image's edge or a brush stroke). A dot mask
    is not so: its one value (or its few, a colour per class) marks many dots, and the
    anti-aliased rims of drawn discs repeat their values from disc to disc."""
    if data.dtype.kind not in "ui":
        return None
    if data.ndim == 3:                        # a colour per cell: the colour as one number
        chans = data[..., :3] if data.shape[2] >= 3 else data[..., :1]
        data = sum(chans[..., c].astype(np.int64) << (16 * c) for c in range(chans.shape[2]))
    on = data != 0
    marked = data[on]
    values = np.unique(marked)
    if len(values) < 2 or len(marked) == on.size:   # one value, or no background (0)
        return None
    lab = np.zeros(data.shape, np.int32)
    lab[on] = np.searchsorted(values, marked) + 1
    from scipy import ndimage
    allowed = len(values) * (1 + config.MASK_LABEL_SPARE)
    pieces = 0
    eight = np.ones((3, 3), bool)
    for i, box in enumerate(ndimage.find_objects(lab), 1):
        if box is not None:
            pieces += ndimage.label(lab[box] == i, structure=eight)[1]
            if pieces > allowed:              # values that mark many places: dots
                return None
    ys, xs = np.nonzero(lab)
    of = lab[ys, xs]                          # each labelled pixel's label
    n = np.bincount(of, minlength=len(values) + 1)[1:]
    cx = np.bincount(of, weights=xs, minlength=len(values) + 1)[1:] / n
    cy = np.bincount(of, weights=ys, minlength=len(values) + 1)[1:] / n
    return np.stack([cx, cy], axis=1)


def mask_centres(on: np.ndarray, source="") -> np.ndarray:
    """(N, 2) x, y of the cells a boolean dot mask marks (read_dot_mask's rule). A mask that is
    mostly marked (solid, inverted) or holds a blob far larger than its dots (a filled region, an
    outline; config.MASK_MAX_*) is no dot mask: DatasetError naming `source`."""
    ys, xs = np.nonzero(on)
    pixels = np.stack([xs, ys], axis=1).astype(np.float64)
    mask = f"the dot mask{f' {source}' if source else ''}"
    fix = ("a dot mask marks each cell with one pixel or a small dot on a black background: mark "
           "the cell centres instead, or give them as a CSV (x,y); a segmentation is read as a "
           "mask of labels, each cell a value of its own (as Cellpose's _cp_masks.png)")
    if len(pixels) > config.MASK_MAX_ON_SHARE * on.size:
        raise DatasetError(f"{mask} marks {len(pixels) / on.size:.0%} of its pixels (is it "
                           f"inverted, or a filled region?); {fix}")
    if len(pixels) < 2:
        return pixels
    n, labels, stats, centroids = cv2.connectedComponentsWithStats(on.astype(np.uint8),
                                                                   connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    big = int(np.argmax(areas))
    limit = max(config.MASK_MAX_BLOB_AREA, config.MASK_MAX_BLOB_DOTS * float(np.median(areas)))
    if areas[big] > limit:
        x, y, w, h = (int(v) for v in stats[1 + big, :4])
        raise DatasetError(f"{mask} has a marked region of {int(areas[big])} px ({w}x{h} px from "
                           f"x={x}, y={y}), far larger than its dots; {fix}")
    typical = float(np.median(areas))
    if typical <= 1:                        # one-pixel dots: every pixel is a mark
        return pixels
    out = centroids[1:].astype(np.float64)
    blob = labels[ys, xs]                   # each marked pixel's blob (1-based)
    cells = disc_counts(on, pixels, blob - 1, out, areas)
    if cells.max() == 1:
        return out
    parts = [out[i:i + 1] if k == 1 else split_blob(pixels[blob == i + 1], int(k))
             for i, k in enumerate(cells)]
    return np.concatenate(parts)


def disc_counts(on: np.ndarray, pixels: np.ndarray, blob: np.ndarray, centroids: np.ndarray,
                areas: np.ndarray) -> np.ndarray:
    """How many discs each blob of a disc mask holds (config.MASK_*): `on` the boolean mask,
    `pixels` (M, 2) x, y of its marked pixels, `blob` each one's 0-based blob, `centroids` (B, 2)
    and `areas` (B,) the blobs'. Discs of one size: a blob of k times the median area is k
    touching discs. Discs of several sizes: a blob that looks like one disc (its spread) is one,
    and one that looks like several is its area over that of the single discs as wide (the
    deepest point of a union of discs is a disc's centre: the distance transform's maximum
    there is one disc's radius, whatever their arrangement), at least 2."""
    areas = np.asarray(areas, np.float64)
    far = np.zeros(len(areas))
    np.maximum.at(far, blob, np.sqrt(((pixels - centroids[blob]) ** 2).sum(axis=1)))
    depth = cv2.distanceTransform(on.astype(np.uint8), cv2.DIST_L2, 5)
    deepest = np.zeros(len(areas))
    xs, ys = pixels[:, 0].astype(int), pixels[:, 1].astype(int)
    np.maximum.at(deepest, blob, depth[ys, xs])
    spread = (far + 0.5) / np.sqrt(areas / np.pi) >= config.MASK_SEVERAL_SPREAD     # a row
    fill = areas / (np.pi * np.maximum(deepest, 1.0) ** 2) >= config.MASK_SEVERAL_FILL  # a heap
    single = ~(spread | fill)         # else may be several discs (or one of an even brush)
    few = np.mean(single) < config.MASK_MIN_SINGLES
    ones = areas[single]
    middle = float(np.median(ones)) if len(ones) else 0.0
    band = config.MASK_ONE_SIZE_BAND
    one_size = not few and np.mean((ones >= middle / band) & (ones <= middle * band)) \
        >= config.MASK_ONE_SIZE_SHARE
    if float(np.median(deepest)) >= config.MASK_REGION_DEPTH and not one_size:
        return np.ones(len(areas), int)   # a segmentation of whole cells: a region each
    if few:                                         # few look single: shapes say little
        return np.maximum(1, np.round(areas / float(np.median(areas)))).astype(int)
    if one_size:
        # (the single discs' area: where touching groups outnumber them, the median blob is a
        # group, and every group read as one cell)
        return np.maximum(1, np.round(areas / middle)).astype(int)
    radius = np.round(deepest, 1)
    single_r = radius[single]
    cells = np.ones(len(areas), int)
    for i in np.nonzero(spread & fill)[0]:   # discs of several sizes: what is surely several
        # the single discs as deep, or the deepest below it within a pixel (three touching
        # discs fill the gap between them: their deepest point lies a little deeper than a
        # disc's centre); none: a pixelated disc of that radius
        below = single_r[(single_r <= radius[i]) & (single_r >= radius[i] - 1)]
        one = float(np.median(ones[single_r == below.max()])) if len(below) else \
            np.pi * max(deepest[i] - 0.3, 0.5) ** 2
        cells[i] = max(2, int(round(areas[i] / one)))
    return cells


def split_blob(pixels: np.ndarray, k: int) -> np.ndarray:
    """(k, 2) distinct centres of a blob of k touching dots, from its (M >= k, 2) pixels: k-means
    from the k pixels farthest apart (deterministic). One position repeated k times would read
    as one cell clicked k times (readers.drop_repeats), and its k cells would sit on one point."""
    pixels = np.asarray(pixels, np.float64)
    start = [int(np.argmax(((pixels - pixels.mean(axis=0)) ** 2).sum(axis=1)))]
    nearest = ((pixels - pixels[start[0]]) ** 2).sum(axis=1)
    for _ in range(k - 1):
        start.append(int(np.argmax(nearest)))
        nearest = np.minimum(nearest, ((pixels - pixels[start[-1]]) ** 2).sum(axis=1))
    centres = pixels[start]
    for _ in range(config.MASK_SPLIT_ROUNDS):
        member = ((pixels[:, None, :] - centres[None]) ** 2).sum(axis=2).argmin(axis=1)
        moved = np.array([pixels[member == j].mean(axis=0) if (member == j).any() else centres[j]
                          for j in range(k)])
        if np.allclose(moved, centres):
            break
        centres = moved
    if len(np.unique(centres, axis=0)) < k:  # a symmetric blob's means met: its distinct pixels
        centres = pixels[start]
    return centres
