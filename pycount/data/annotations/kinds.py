"""What kind of annotation a file is, and read_annotation, which reads one by its kind."""
from __future__ import annotations

import functools
import math
import re
from pathlib import Path

import numpy as np

from pycount.data.annotations.arrays import read_cellpose_seg, read_hdf5_points, read_mat_points
from pycount.data.annotations.common import file_stamp
from pycount.data.annotations.geojson import read_qupath_geojson
from pycount.data.annotations.imagej import read_imagej_roi
from pycount.data.annotations.masks import read_dot_mask
from pycount.data.annotations.setfiles import SET_KINDS, set_centres
from pycount.data.annotations.tables import read_centres_csv, read_text_points
from pycount.data.annotations.xmlfiles import read_cellcounter_xml


ANNOTATION_KINDS = {".csv": "CSV", ".tsv": "CSV",
                    ".xml": "XML (Cell Counter, Pascal VOC or ImageScope)",
                    ".geojson": "QuPath GeoJSON", ".json": "JSON (QuPath GeoJSON or LabelMe)",
                    ".roi": "ImageJ ROI", ".zip": "ImageJ ROI", ".h5": "HDF5", ".hdf5": "HDF5",
                    ".mat": "MATLAB"}


# A .txt beside an image is an annotation where its content says so (annotation_kind): numbers
# only (ImageJ's XY coordinates, YOLO labels) or a table whose header names its coordinates;
# any other .txt (a readme, YOLO's classes.txt) is no annotation, and is not refused as one
TEXT = "text (XY or YOLO)"


_TABLE_HEADS = {"x", "y", "axis-0", "axis-1", "xmin", "bx", "centroid x px", "centroid x µm",
                "centroid x um"}


CELLPOSE = "Cellpose _seg.npy"


def annotation_kind(path: Path) -> str | None:
    """The kind of annotation a file is by its suffix (ANNOTATION_KINDS), or, for a .txt, by its
    content: TEXT (rows of numbers; an empty file too: YOLO's label file of an image of no
    object), CSV (a table whose header names x, y or like columns: an ImageJ Results table or
    QuPath measurements saved as text), None (a readme, a list of class names); a .npy: CELLPOSE
    where it is named NAME_seg.npy."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".npy":                     # Cellpose's NAME_seg.npy; any other array is none
        return CELLPOSE if path.name.lower().endswith("_seg.npy") else None
    if suffix != ".txt":
        return ANNOTATION_KINDS.get(suffix)
    try:
        return _text_kind(str(path), *file_stamp(path))
    except OSError:
        return None


@functools.lru_cache(maxsize=4096)
def _text_kind(path: str, mtime_ns: int, size: int) -> str | None:
    with open(path, "rb") as f:
        raw = f.read(4096)
    lines = raw.decode("utf-8-sig", errors="replace").splitlines()
    first = next((line for line in lines if line.strip()), None)
    if first is None:
        return TEXT
    fields = re.split(r"[\s,;]+", first.strip())
    if len(raw) == 4096 and first is lines[-1] and len(fields) > 2:
        fields = fields[:-1]                 # a long row (a YOLO polygon) cut in a number
    if all(_is_number(v) for v in fields):
        return TEXT if len(fields) >= 2 else None      # (a list of numbers: counts, sizes)
    names = {v.strip().strip('"').lower() for v in re.split(r"[\t,;]", first)}
    return "CSV" if names & _TABLE_HEADS else None


def read_annotation(path: Path, kind: str, shape=None, marker: str = "",
                    image: Path | None = None) -> np.ndarray:
    """The centres of one annotation file of the folder layout (see folder_pairs for the kinds);
    `image`: the image whose entries a file of the whole set's annotations gives (CVAT, COCO)."""
    if kind in SET_KINDS:
        return set_centres(Path(path), kind, Path(image), marker, shape)
    if kind == "CSV":
        return read_centres_csv(path, marker)
    if kind.startswith(("Cell Counter XML", "XML")):
        return read_cellcounter_xml(path, marker, shape, image)
    if kind.startswith(("QuPath GeoJSON", "JSON")):
        return read_qupath_geojson(path, marker, shape, image)
    if kind == "ImageJ ROI":
        return read_imagej_roi(path, marker)
    if kind == "HDF5":
        return read_hdf5_points(path, marker)
    if kind == "MATLAB":
        return read_mat_points(path, marker)
    if kind == TEXT:
        return read_text_points(path, marker, shape)
    if kind == CELLPOSE:
        return read_cellpose_seg(path, shape)
    return read_dot_mask(path, shape)


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False
