"""What the annotation readers share: the notes they print once, the classes seen where a marker
was absent, the check of the image size a file records, and the centroids of outlines."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from pycount.errors import DatasetError


# A table's column of each row's class (QuPath's measurement tables: "Class" up to 0.3,
# "Classification" since; a napari points layer's property; NuCLS's nucleus classes): what a
# marker chooses rows by
CLASS_COLUMNS = ("Classification", "Class", "class", "label", "main_classification")


# The notes said so far: one command pairs a folder and reads its files more than once (owndata
# measures them, then the reader reads them), and each pass would say the same note again
_SAID: set[str] = set()


def note(text: str) -> None:
    """Print `text` as one "note: ..." line on stderr, once per process (_SAID): for input that
    is read as it is but may not be what its user meant."""
    if text not in _SAID:
        _SAID.add(text)
        print(f"note: {text}", file=sys.stderr)


# The classes seen in files that hold none of the marker asked for (per marker): such a file is
# an image with no cell of that class (a Ki67 field without positive nuclei) and counts 0; where
# no file of a folder holds the marker at all, pycount.data.owndata names these classes
_ABSENT: dict[str, set[str]] = {}


def marker_absent(marker: str, classes) -> None:
    """Record that a file held none of `marker`, only `classes` (classes_without)."""
    _ABSENT.setdefault(marker, set()).update(str(c) for c in classes)


def classes_without(marker: str) -> list[str]:
    """The classes seen in files that held none of `marker` (marker_absent), sorted."""
    return sorted(_ABSENT.get(marker, ()))


def few(names, shown: int = 5) -> str:
    """The first `shown` of `names`, comma-separated, then "and N more" for the rest."""
    names = list(names)
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(str(n) for n in names[:shown]) + more


def check_recorded_size(path: Path, size, fields: str, shape, image=None) -> None:
    """Refuse marks made on an image of another size than the one they are paired with: LabelMe,
    COCO, CVAT and Pascal VOC record the (width, height) of the image annotated (`size`, in the
    file's `fields`). An image resized, cropped or replaced after annotating keeps every count
    but not one mark in its place (marks outside the image are refused by the readers; an
    enlarged image only moves them), and a tool that shows a JPEG turned by its EXIF orientation
    (LabelMe, a browser's) records the turned size. A size of 0 or none: not recorded."""
    if shape is None or size is None:
        return
    try:
        w, h = (int(float(v)) for v in size)
    except (TypeError, ValueError, OverflowError):
        return
    height, width = (int(v) for v in shape[:2])
    if w <= 0 or h <= 0 or (w, h) == (width, height):
        return
    # sides swapped: a JPEG shown turned by its EXIF orientation (the other formats carry none
    # that the tools apply)
    turned = (w, h) == (height, width) and Path(str(image or "")).suffix.lower() in (
        ".jpg", ".jpeg", ".jpe")
    raise DatasetError(
        f"{path} was made on a {w}x{h} px image (its {fields}), but "
        f"{image or 'its image'} is {width}x{height} px: "
        + ("the annotation tool showed the image turned (a JPEG's EXIF orientation: LabelMe and "
           "browsers apply it, pycount reads the pixels as stored); save the image turned as it "
           "was shown (e.g. `exiftran -ai`, or re-save it from the tool) and keep the marks"
           if turned else
           "it was resized, cropped or replaced after annotating, so the marks are not where its "
           "cells are; annotate this image, or put back the one that was annotated")
        + f" (if the marks do fit this image, correct the {fields} in the file)")


def matches(wanted: str, *names) -> bool:
    """Does a marker type / class (its number or name) match the setting `wanted` ("" = any)?"""
    return not wanted or any(n is not None and str(n).strip().lower() == wanted.strip().lower()
                             for n in names)


def _shoelace(xy: np.ndarray) -> tuple[float, np.ndarray]:
    """(|area|, area centroid) of the closed outline through the (N, 2) vertices `xy`, by the
    shoelace formula taken relative to the first vertex (slide coordinates are large); area 0
    for an outline that encloses none."""
    x, y = (xy - xy[0]).T
    x1, y1 = np.roll(x, -1), np.roll(y, -1)
    cross = x * y1 - x1 * y
    area = cross.sum() / 2
    if abs(area) < 1e-9:
        return 0.0, xy.mean(axis=0)
    return abs(area), xy[0] + np.array([((x + x1) * cross).sum(),
                                        ((y + y1) * cross).sum()]) / (6 * area)


def outline_centroid(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """The area centroid of a closed outline (the vertex mean of one without area)."""
    xy = np.stack([np.asarray(xs, np.float64), np.asarray(ys, np.float64)], axis=1)
    return _shoelace(xy)[1]


def brief(value, limit: int = 40) -> str:
    """repr(value), cut to `limit` characters for a message."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def position(p) -> tuple[float, float]:
    """One GeoJSON position [x, y] (a z after them is ignored); ValueError unless numbers."""
    if not (isinstance(p, list) and len(p) >= 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in p[:2])):
        raise ValueError(p)
    return float(p[0]), float(p[1])


def rings_centroid(rings) -> tuple[float, float]:
    """The area centroid of polygons given by their exterior rings (holes ignored), by the
    shoelace formula; where they enclose no area (a ring along a line, one point), the mean of
    their vertices. ValueError unless every ring is a non-empty list of positions."""
    parts, vertices = [], []
    for ring in rings:
        if not isinstance(ring, list) or not ring:
            raise ValueError(ring)
        xy = np.array([position(p) for p in ring], np.float64)
        if len(xy) > 1 and (xy[0] == xy[-1]).all():
            xy = xy[:-1]                     # GeoJSON closes a ring by repeating its first vertex
        vertices.append(xy)
        area, centre = _shoelace(xy)
        if area:
            parts.append((area, centre))
    if not parts:
        return tuple(np.concatenate(vertices).mean(axis=0))
    areas = np.array([a for a, _ in parts])
    return tuple(np.array([c for _, c in parts]).T @ areas / areas.sum())


def file_stamp(path: Path) -> tuple[int, int]:
    """(modification time in ns, size) of a file: the key of the caches of what a file holds."""
    st = path.stat()
    return st.st_mtime_ns, st.st_size
