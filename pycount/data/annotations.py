"""Annotation files: the per-image formats of the folder layout (CSV/TSV tables, ImageJ .roi/.zip,
Pascal VOC and Cell Counter XML, QuPath GeoJSON, LabelMe JSON, HDF5 and MATLAB point lists,
dot masks), the files of a whole set's annotations (CVAT XML, COCO JSON, VIA JSON/CSV, Label
Studio JSON), and read_annotation, which reads one of them by kind."""
from __future__ import annotations

import csv
import functools
import io
import math
import pickle
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from pycount import config
from pycount.data.images import IMAGE_SUFFIXES, OTHER_IMAGE_SUFFIXES, decode_file
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


def _decimal_comma(path: Path, sep: str, fields: list[str]) -> bool:
    """Whether the file's coordinates write their decimal mark as a comma: always in a
    ;-separated file (a spreadsheet of a locale that writes 12,5), in a tab-separated one when its
    commas can only be decimal marks; a comma inside a comma-separated file's quoted fields, or a
    comma that may as well separate thousands (1,234), is refused as ambiguous."""
    commas = [f for f in fields if "," in f]
    if sep == ";" or not commas:
        return sep == ";"
    why = None
    if sep == ",":
        why = (f"writes a comma inside its quoted coordinates ({commas[0]!r}) in a "
               f"comma-separated file")
    elif any("." in f for f in fields):
        why = f"writes both points and commas in its coordinates ({commas[0]!r})"
    elif all(re.fullmatch(r"-?[1-9]\d{0,2}(,\d{3})+", f) for f in commas):   # 0,500: decimal
        why = (f"writes {commas[0]!r}, which may be a decimal comma or a thousands separator "
               f"({commas[0].replace(',', '.')} or {commas[0].replace(',', '')})")
    if why:
        raise DatasetError(f"{path} {why}: save the coordinates with a point as decimal mark "
                           f"and no thousands separator (or as ;-separated with decimal commas)")
    return True


# A table of boxes instead of points (each box one cell, at its centre): corners (NuCLS, the
# detections of object-detection tools), or ImageJ's bounding rectangles (Results' BX, BY)
BOX_COLUMNS = (("xmin", "ymin", "xmax", "ymax"), ("BX", "BY", "Width", "Height"))


def read_centres_csv(path: Path, marker: str = "") -> np.ndarray:
    """(N, 2) float64 centres from a CSV with columns x and y (or X and Y, as in an ImageJ Results table,
    whose other columns - the unnamed row number, Area, Mean, ... - are ignored; or napari's points
    layer saved as CSV: index, axis-0 = row = y, axis-1 = column = x, then any properties, napari
    placing pixel k's centre at k as pycount does). Both are taken as
    0-based pixel coordinates: x = column, y = row, pixel (x, y) covering [x-0.5, x+0.5). (ImageJ's
    point tool reports exactly these; its centroids measure area-based coordinates, with pixel k spanning
    [k, k+1), so they read up to half a pixel down-right, which stays within the cell.)"""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")  # -sig: tolerate a byte-order mark
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"cannot read {path} ({e}); it must be a UTF-8 text CSV with header x,y") from None
    # the separator: a comma; a semicolon (a spreadsheet saved in a locale whose decimal mark is
    # a comma: "x;y", "12,5;7") or a tab (ImageJ's Results saved as .txt/.xls) where the header
    # line holds one of them and no comma
    if not text.strip():
        raise DatasetError(f"{path} is empty; a CSV of cell centres starts with the header line "
                           f"x,y (an image without cells: that line alone)")
    first = text.split("\n", 1)[0]
    sep = next((c for c in ";\t" if c in first and "," not in first), ",")
    # skipinitialspace: a space after the separator ('"x", "y"', "12, 7") is no part of a field
    rows = csv.reader(io.StringIO(text), delimiter=sep, skipinitialspace=True)
    header = [name.strip() for name in next(rows, [])]
    shift, cols, form = 0.0, [], "point"
    for names in (("x", "y"), ("X", "Y"), ("axis-1", "axis-0"),   # napari: axis-0 is the row
                  ("Centroid X px", "Centroid Y px")):            # QuPath's measurement table
        if set(names) <= set(header):
            cols = [header.index(n) for n in names]
            # QuPath's coordinates are continuous, pixel k spanning [k, k+1): its centre k + 0.5
            shift = 0.5 if names[0].startswith("Centroid") else 0.0
            break
    else:
        box = next((b for b in BOX_COLUMNS if set(b) <= set(header)), None)
        if box is not None:         # a table of boxes: each box one cell, at its centre
            cols = [header.index(n) for n in box]
            # corners in pixels (NuCLS, detection exports), or ImageJ's bounding rectangle in
            # its continuous coordinates (as QuPath's: shifted)
            form, shift = ("corners", 0.0) if box[2] == "xmax" else ("rectangle", 0.5)
    if not cols:
        unit = next((h[len("Centroid X "):] for h in header if h.startswith("Centroid X ")), None)
        if unit is not None:
            raise DatasetError(f"{path} gives QuPath's centroids in {unit}, "
                               f"not pixels; export the measurements with pixel coordinates "
                               f"(Centroid X px, Centroid Y px: an image whose pixel size is not "
                               f"set), or the objects as GeoJSON")
        raise DatasetError(f"{path} has header {sep.join(header)!r} without x and y columns; expected the "
                           "header line 'x,y' (0-based pixel coordinates), an ImageJ Results table with "
                           "X and Y columns (or BX, BY, Width, Height), a napari points layer saved as "
                           "CSV (axis-0, axis-1) or boxes (xmin, ymin, xmax, ymax)")
    ic = next((header.index(c) for c in CLASS_COLUMNS if c in header), None)
    if marker and ic is None:
        raise DatasetError(f"{path} has no class column ({', '.join(CLASS_COLUMNS)}) for the "
                           f"marker {marker!r} to choose its rows by; leave the marker out (every "
                           f"row counts), or export the table with the cells' classes")
    if "axis-2" in header and names[0] == "axis-1":
        raise DatasetError(f"{path} holds the points of a napari layer with more than two axes "
                           f"(header {','.join(header)!r}: a z-stack or a time series); pycount "
                           f"reads 2-D images: save the points of one 2-D image's layer")
    table = [(rows.line_num, row) for row in rows if any(field.strip() for field in row)]
    comma = _decimal_comma(path, sep, [row[i].strip() for _, row in table for i in cols
                                       if i < len(row)])
    lines = [line.rstrip("\r") for line in text.split("\n")]   # as csv counts line_num
    centres = []
    for line_num, row in table:
        try:
            v = [float(row[i].strip().replace(",", ".") if comma else row[i]) for i in cols]
            x, y = ((v[0] + v[2]) / 2, (v[1] + v[3]) / 2) if form == "corners" else \
                (v[0] + v[2] / 2, v[1] + v[3] / 2) if form == "rectangle" else v
            if not (math.isfinite(x) and math.isfinite(y)):
                raise ValueError
        except (ValueError, IndexError):
            raise DatasetError(f"{path}, line {line_num}: {lines[line_num - 1]!r} has no numeric "
                               f"{','.join(header[i] for i in cols)} values; fix or delete that "
                               f"line") from None
        if marker and (row[ic].strip() if ic < len(row) else "") != marker:
            continue
        centres.append((x - shift, y - shift))
    return np.array(centres, np.float64).reshape(-1, 2)


# --- annotation formats of the folder layout ---------------------------------------------------------

def _matches(wanted: str, *names) -> bool:
    """Does a marker type / class (its number or name) match the setting `wanted` ("" = any)?"""
    return not wanted or any(n is not None and str(n).strip().lower() == wanted.strip().lower()
                             for n in names)


# ImageJ's ROI types (ij/io/RoiDecoder): the point ROI, and those with an area, each one cell
ROI_POINT, ROI_AREAS = 10, {0: "polygon", 1: "rectangle", 2: "oval", 7: "freehand", 8: "traced"}


def read_imagej_roi(path: Path, marker: str = "") -> np.ndarray:
    """(N, 2) centres of an ImageJ/Fiji selection saved as NAME.roi, or of an ROI Manager set
    saved as NAME.zip: each point of a point ROI (the multi-point tool; 0-based pixels, as saved),
    and one cell per ROI with an area (a polygon, freehand or traced outline, as a segmentation
    plugin's ROI set holds them, at its area centroid; a rectangle or oval at its centre), in
    ImageJ's continuous coordinates shifted by -0.5 px. `marker` (a number) keeps the points of
    that counter of the multi-point tool. Lines, angles and composite ROIs are refused."""
    import struct
    import zipfile
    path = Path(path)
    try:
        if path.suffix.lower() == ".zip":
            with zipfile.ZipFile(path) as z:
                entries = [(n, z.read(n)) for n in z.namelist() if n.lower().endswith(".roi")]
            if not entries:
                raise DatasetError(f"{path} holds no .roi file: save the ROI Manager's set "
                                   f"(More > Save...) or the selection (File > Save As > "
                                   f"Selection...)")
        else:
            entries = [(path.name, path.read_bytes())]
    except (OSError, zipfile.BadZipFile) as e:
        raise DatasetError(f"cannot read {path} ({e}); save it again from ImageJ") from None
    if marker and not marker.isdigit():
        raise DatasetError(f"{path}: the marker {marker!r} is not a counter number; the ImageJ "
                           f"multi-point tool numbers its counters 0, 1, 2, ...")
    out = []
    for name, b in entries:
        where = f"{path}" + (f" ({name})" if path.suffix.lower() == ".zip" else "")
        try:
            if b[:4] != b"Iout":
                raise ValueError("not an ImageJ ROI")
            version, kind = struct.unpack(">hB", b[4:7])
            top, left, bottom, right, n = struct.unpack(">hhhhH", b[8:18])
            shape_size, = struct.unpack(">i", b[36:40])
            options, = struct.unpack(">h", b[50:52])
            header2, = struct.unpack(">i", b[60:64])
            if kind == 1 and shape_size > 0:
                raise DatasetError(f"{where} is a composite ROI; save its parts as ROIs of "
                                   f"their own (one per cell)")
            if kind in (1, 2):                    # a rectangle or an oval: its centre
                out.append(((left + right) / 2 - 0.5, (top + bottom) / 2 - 0.5))
                continue
            if kind != ROI_POINT and kind not in ROI_AREAS:
                raise DatasetError(f"{where} is an ImageJ ROI of type {kind} (a line, an angle "
                                   f"or an ROI without outline), not a cell: points, polygons, "
                                   f"freehand, traced, rectangles and ovals are read")
            xs = np.array(struct.unpack(f">{n}h", b[64:64 + 2 * n]), np.float64) + left
            ys = np.array(struct.unpack(f">{n}h", b[64 + 2 * n:64 + 4 * n]), np.float64) + top
            if kind != ROI_POINT:
                if options & 128 and version >= 222:   # sub-pixel vertices, absolute
                    at = 64 + 4 * n
                    xs = np.array(struct.unpack(f">{n}f", b[at:at + 4 * n]), np.float64)
                    ys = np.array(struct.unpack(f">{n}f", b[at + 4 * n:at + 8 * n]), np.float64)
                out.append(tuple(_outline_centroid(xs, ys) - 0.5))
                continue
            keep = np.ones(n, bool)
            if marker:
                counters = np.zeros(n, np.int64)
                if header2 > 0 and len(b) >= header2 + 52:
                    at, = struct.unpack(">i", b[header2 + 48:header2 + 52])
                    if at > 0:
                        counters = np.array(struct.unpack(f">{n}i", b[at:at + 4 * n])) & 0xFF
                keep = counters == int(marker)
            out += list(zip(xs[keep], ys[keep]))
        except struct.error:
            raise DatasetError(f"{where} is cut short; save it again from ImageJ") from None
        except ValueError as e:
            raise DatasetError(f"{where} is {e} (no 'Iout' header); save the selection again "
                               f"from ImageJ (File > Save As > Selection...)") from None
    return np.array(out, np.float64).reshape(-1, 2)


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


def _marked(runs, size: int) -> np.ndarray:
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
    flat = _marked(_rle_counts(segmentation["counts"]), h * w)
    return (float((flat // h).mean()), float((flat % h).mean())) if len(flat) else None


def _outline_centroid(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """The area centroid of a closed outline (the vertex mean of one without area)."""
    x1, y1 = np.roll(xs, -1), np.roll(ys, -1)
    cross = xs * y1 - x1 * ys
    area = cross.sum() / 2
    if abs(area) < 1e-9:
        return np.array([xs.mean(), ys.mean()])
    return np.array([((xs + x1) * cross).sum(), ((ys + y1) * cross).sum()]) / (6 * area)


def _voc_centres(root, path: Path, marker: str = "", shape=None, image=None) -> np.ndarray:
    """(N, 2) centres of a Pascal VOC annotation's boxes (LabelImg, CVAT's VOC export; the BCCD
    blood cell set): one cell per <object> at its <bndbox>'s centre, VOC's 1-based pixel
    coordinates made 0-based; none for an <annotation> without <object> (an image without
    cells, as CVAT's VOC export and LabelImg save one). `marker`: one object <name> ("" = every
    object); a file without that name is an image of no such cell (0 cells; marker_absent)."""
    box = root.find("size")
    if box is not None:
        check_recorded_size(path, (box.findtext("width"), box.findtext("height")),
                            "<size> width and height", shape, image)
    out, names = [], set()
    for n, obj in enumerate(root.iter("object"), 1):
        name = (obj.findtext("name") or "").strip()
        names.add(name)
        if marker and name != marker:
            continue
        box = obj.find("bndbox")
        try:
            x0, y0, x1, y1 = (float(box.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
        except (AttributeError, TypeError, ValueError):
            raise DatasetError(f"{path}: object {n} ({name or 'unnamed'}) has no numeric bndbox "
                               f"xmin, ymin, xmax, ymax; fix or delete it") from None
        out.append(((x0 + x1) / 2 - 1, (y0 + y1) / 2 - 1))
    if marker and marker not in names:      # an image of no such cell: 0 (classes_without)
        marker_absent(marker, names)
    return np.array(out, np.float64).reshape(-1, 2)


def read_cellcounter_xml(path: Path, marker: str = "", shape=None, image=None) -> np.ndarray:
    """(N, 2) centres from an ImageJ/Fiji Cell Counter file (File > Save Markers):
    CellCounter_Marker_File / Marker_Data / Marker_Type (Type number, optional Name) / Marker
    (MarkerX, MarkerY, MarkerZ). Cell Counter stores integer 0-based pixel indices, which are this
    package's coordinates as they are. `marker`: one marker type (its number, e.g. "2", or its name);
    "" counts the markers of every type. A Pascal VOC file (root <annotation>) is read by
    _voc_centres, with or without <object>s."""
    import xml.etree.ElementTree as ET
    try:
        root = ET.parse(str(path)).getroot()
    except (ET.ParseError, OSError) as e:
        raise DatasetError(f"cannot read {path} as Cell Counter XML ({e}); save it again with "
                           "Cell Counter's 'Save Markers'") from None
    if root.tag == "annotation":             # Pascal VOC; without <object>: an image of no cell
        return _voc_centres(root, path, marker, shape, image)
    if root.tag == "Annotations":            # Aperio ImageScope
        return _imagescope_centres(root, path, marker)
    data = root.find("Marker_Data")
    if root.tag != "CellCounter_Marker_File" or data is None:
        raise DatasetError(f"{path} is XML but not a Cell Counter marker file (root <{root.tag}>, "
                           "expected <CellCounter_Marker_File> with <Marker_Data>) nor a Pascal VOC "
                           "annotation (<annotation>) nor Aperio ImageScope's (<Annotations>); "
                           "save the markers with Fiji's Cell Counter ('Save Markers')")
    centres, types = [], []
    for mtype in data.iter("Marker_Type"):
        number, name = (mtype.findtext("Type") or "").strip(), (mtype.findtext("Name") or "").strip()
        types.append((number, name))
        if not _matches(marker, number, name or None):
            continue
        for m in mtype.iter("Marker"):
            try:
                centres.append((float(m.findtext("MarkerX")), float(m.findtext("MarkerY"))))
            except (TypeError, ValueError):
                raise DatasetError(f"{path}: a marker of type {number} has no numeric MarkerX, "
                                   "MarkerY; fix or delete it") from None
    if marker and not any(_matches(marker, n, m or None) for n, m in types):
        names = ", ".join(n + (f" ({m})" if m else "") for n, m in types) or "none"
        raise DatasetError(f"{path} has no marker type {marker!r} (its types: {names}); choose one "
                           "of them (MARKER=, or marker in pycount.toml), or leave it out to count "
                           "all")
    return np.array(centres, np.float64).reshape(-1, 2)


def _imagescope_centres(root, path: Path, marker: str = "") -> np.ndarray:
    """(N, 2) centres of an Aperio ImageScope annotation file (<Annotations>, one <Annotation>
    layer each with <Regions>; MoNuSeg's nuclei are written so): each <Region> is a cell, at its
    <Vertices>' area centroid (an outline), their middle (two: an ellipse's or a box's corners)
    or the vertex itself (a point); a region that excludes (NegativeROA="1") is none. Pixel
    coordinates of the image, as stored. `marker`: the layers of that Id, Name or attribute value
    ("" = all); a file without such a layer is an image of no such cell (marker_absent)."""
    centres, layers, chosen = [], [], 0
    for n, layer in enumerate(root.iter("Annotation"), 1):
        said = [v for v in (layer.get("Name"), *(a.get("Value") for a in layer.iter("Attribute")))
                if v]
        layers.append(f"{layer.get('Id', n)}" + (f" ({', '.join(said)})" if said else ""))
        if not _matches(marker, layer.get("Id", str(n)), *said):
            continue
        chosen += 1
        for k, region in enumerate(layer.iter("Region"), 1):
            if region.get("NegativeROA") == "1":
                continue
            try:
                xy = np.array([(float(v.get("X")), float(v.get("Y")))
                               for v in region.iter("Vertex")], np.float64).reshape(-1, 2)
            except (TypeError, ValueError):
                raise DatasetError(f"{path}: region {region.get('Id', k)} of layer "
                                   f"{layer.get('Id', n)} has a <Vertex> without numeric X, Y; "
                                   f"save the annotations again from ImageScope") from None
            if len(xy):           # (one or two vertices: no area, their mean)
                centres.append(_outline_centroid(xy[:, 0], xy[:, 1]))
    if marker and not chosen:                # an image of no such cell: 0 (classes_without)
        marker_absent(marker, layers)
    return np.array(centres, np.float64).reshape(-1, 2)


# The element in which each XML format records the image its marks were made on: Cell Counter
# the image's title (its file name as opened), Pascal VOC the image file (LabelImg, CVAT)
RECORDED_IMAGE = {"CellCounter_Marker_File": "Image_Filename", "annotation": "filename"}


def recorded_image(path: Path) -> tuple[str, str]:
    """(element, image file name) that an XML annotation records: Cell Counter's
    <Image_Filename> or Pascal VOC's <filename>, a path cut to its last part (after / or \\);
    ("", "") where it records none or is no such file. Read only up to that element (both
    formats write it before their marks, and a Cell Counter file of a large image holds
    thousands of markers), and cached per file version: every pairing of the folder asks."""
    path = Path(path)
    return _recorded_image(str(path), *_stamp(path)) if path.is_file() else ("", "")


@functools.lru_cache(maxsize=4096)
def _recorded_image(path: str, mtime_ns: int, size: int) -> tuple[str, str]:
    import xml.etree.ElementTree as ET
    wanted = ""
    try:
        with open(path, "rb") as f:
            for event, el in ET.iterparse(f, events=("start", "end")):
                if not wanted:                           # the root: which format, if either
                    wanted = RECORDED_IMAGE.get(el.tag, "")
                    if not wanted:
                        break
                elif event == "end" and el.tag == wanted:
                    name = re.split(r"[\\/]", (el.text or "").strip())[-1]
                    return (wanted, name) if name else ("", "")
                elif event == "start" and el.tag in ("Marker_Data", "object"):
                    break                                # the marks begin: nothing recorded
    except (ET.ParseError, OSError):
        pass                                             # read_cellcounter_xml names the fault
    return "", ""


def _qupath_class(feature: dict):
    props = feature.get("properties")
    c = (props.get("classification") if isinstance(props, dict) else None) \
        or feature.get("classification") or {}
    return c.get("name") if isinstance(c, dict) else c


def _brief(value, limit: int = 40) -> str:
    """repr(value), cut to `limit` characters for a message."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


# QuPath's objects that are no cell: a region drawn by hand, a tile, a TMA core. QuPath 0.4 names
# the type in properties.objectType, 0.3 in properties.object_type, 0.2 in the feature's id.
QUPATH_REGIONS = ("annotation", "tile", "tma_core", "root")
_QUPATH_0_2_TYPES = {"PathAnnotationObject": "annotation", "PathTileObject": "tile",
                     "TMACoreObject": "tma_core", "PathRootObject": "root",
                     "PathDetectionObject": "detection", "PathCellObject": "cell"}


def _qupath_type(feature: dict) -> str:
    """QuPath's object type of a feature ("annotation", "detection", "cell", ...), "" if none."""
    props = feature.get("properties")
    props = props if isinstance(props, dict) else {}
    kind = props.get("objectType") or props.get("object_type")
    if not kind and isinstance(feature.get("id"), str):
        kind = _QUPATH_0_2_TYPES.get(feature["id"])
    return str(kind or "").lower()


def _position(p) -> tuple[float, float]:
    """One GeoJSON position [x, y] (a z after them is ignored); ValueError unless numbers."""
    if not (isinstance(p, list) and len(p) >= 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in p[:2])):
        raise ValueError(p)
    return float(p[0]), float(p[1])


def _centroid(rings) -> tuple[float, float]:
    """The area centroid of polygons given by their exterior rings (holes ignored), by the
    shoelace formula; where they enclose no area (a ring along a line, one point), the mean of
    their vertices. ValueError unless every ring is a non-empty list of positions."""
    parts, vertices = [], []
    for ring in rings:
        if not isinstance(ring, list) or not ring:
            raise ValueError(ring)
        xy = np.array([_position(p) for p in ring], np.float64)
        if len(xy) > 1 and (xy[0] == xy[-1]).all():
            xy = xy[:-1]                     # GeoJSON closes a ring by repeating its first vertex
        vertices.append(xy)
        x, y = (xy - xy[0]).T                # relative to a vertex: slide coordinates are large
        x1, y1 = np.roll(x, -1), np.roll(y, -1)
        cross = x * y1 - x1 * y
        area = cross.sum() / 2
        if abs(area) > 1e-9:
            parts.append((abs(area), xy[0] + np.array([((x + x1) * cross).sum(),
                                                       ((y + y1) * cross).sum()]) / (6 * area)))
    if not parts:
        return tuple(np.concatenate(vertices).mean(axis=0))
    areas = np.array([a for a, _ in parts])
    return tuple(np.array([c for _, c in parts]).T @ areas / areas.sum())


POLYGONS = ("Polygon", "MultiPolygon")
# GeoJSON geometry types in words, for a note about the regions a file holds
_SHAPE_WORDS = {"Polygon": "polygon", "MultiPolygon": "polygon", "LineString": "line",
                "MultiLineString": "line", "GeometryCollection": "collection"}
GEOJSON_SHAPES = {
    "Point": "[x, y] numbers",
    "MultiPoint": "a list of [x, y] numbers",
    "Polygon": "a list of rings, each a list of [x, y] numbers",
    "MultiPolygon": "a list of polygons, each a list of rings of [x, y] numbers",
}


def _labelme_centres(shapes: list, path: Path, marker: str = "") -> np.ndarray:
    """(N, 2) centres of a LabelMe annotation's shapes: a point is a cell; a polygon one cell at
    its area centroid; a rectangle (two corners) or a circle (centre, then a point on it) one at
    its centre; lines refused. LabelMe's coordinates are continuous, pixel i spanning [i, i+1):
    0.5 is subtracted, as for QuPath. `marker`: one label ("" = every shape)."""
    out = []
    for n, shape in enumerate(shapes, 1):
        if not isinstance(shape, dict):
            raise DatasetError(f"{path}: shape {n} is {_brief(shape)}, not a LabelMe shape")
        if marker and str(shape.get("label", "")) != marker:
            continue
        kind = shape.get("shape_type") or "polygon"
        try:
            pts = np.asarray(shape.get("points"), np.float64).reshape(-1, 2)
            if not len(pts) or not np.isfinite(pts).all():
                raise ValueError
        except (TypeError, ValueError):
            raise DatasetError(f"{path}: shape {n} ({kind}) has no numeric points") from None
        if kind == "point":
            out += list(pts)
        elif kind == "polygon":
            out.append(_outline_centroid(pts[:, 0], pts[:, 1]))
        elif kind in ("rectangle", "circle"):
            out.append(pts.mean(axis=0) if kind == "rectangle" else pts[0])
        else:
            raise DatasetError(f"{path}: shape {n} is a LabelMe {kind}, not a cell: points, "
                               f"polygons, rectangles and circles are read")
    return np.array(out, np.float64).reshape(-1, 2) - 0.5


def read_qupath_geojson(path: Path, marker: str = "", shape=None, image=None) -> np.ndarray:
    """(N, 2) centres from a QuPath GeoJSON export (File > Export objects as GeoJSON: a
    FeatureCollection, or a plain list of Features from older versions). Each Point of a Point or
    MultiPoint is one cell (QuPath's counting tool). Each Polygon or MultiPolygon of a detected
    object (QuPath's cell detection; objectType "detection" or "cell", or none, as other tools
    write them) is one cell at its area centroid, the nucleus's where the feature has a
    nucleusGeometry. Other shapes QuPath users draw (a region around the counted area, a line:
    objectType "annotation") and tiles are ignored, the members of a GeometryCollection read by
    these rules, and features without geometry skipped; any other geometry raises DatasetError.
    A file that holds such regions and nothing else counts 0 cells, and says so in a note (a
    user who outlined each cell as an annotation sees why).
    QuPath's coordinates are continuous with pixel i spanning [i, i+1), so 0.5 is subtracted to
    get this package's pixel-centre coordinates. `marker`: one classification name ("" = every
    cell); a file without it is an image of no such cell (0 cells; marker_absent)."""
    import json
    try:
        doc = json.loads(Path(path).read_bytes())      # UTF-8 (with its mark or not), UTF-16
    except (OSError, ValueError) as e:
        raise DatasetError(f"cannot read {path} as GeoJSON ({e}); export it again from QuPath "
                           "(File > Export objects as GeoJSON)") from None
    if isinstance(doc, dict) and doc.get("type") == "FeatureCollection":
        features = doc.get("features") or []
    elif isinstance(doc, dict) and doc.get("type") == "Feature":
        features = [doc]
    elif isinstance(doc, list):
        features = doc
    elif isinstance(doc, dict) and isinstance(doc.get("shapes"), list):
        check_recorded_size(path, (doc.get("imageWidth"), doc.get("imageHeight")),
                            "imageWidth and imageHeight", shape, image)
        return _labelme_centres(doc["shapes"], path, marker)
    else:
        raise DatasetError(f"{path} is JSON but not GeoJSON features (expected a FeatureCollection, "
                           "as QuPath's 'Export objects as GeoJSON' writes) nor a LabelMe file "
                           "(shapes)")
    again = "export it again from QuPath (File > Export objects as GeoJSON)"
    if not isinstance(features, list):
        raise DatasetError(f"{path}: 'features' is {_brief(features)}, not a list of GeoJSON "
                           f"Features; {again}")

    def cells(geom, n: int, region: bool) -> Optional[list]:
        """The cells of feature n's geometry; None where it holds nothing to count."""
        feature = f"feature {n} of {len(features)}"
        kind = geom.get("type")
        if kind == "GeometryCollection":
            members = geom.get("geometries")
            if not isinstance(members, list) or not all(isinstance(g, dict) for g in members):
                raise DatasetError(f"{path}: {feature} is a GeometryCollection whose geometries "
                                   f"are {_brief(members)}, not a list of geometry objects; "
                                   f"{again}")
            found = [cells(g, n, region) for g in members]
            return None if all(c is None for c in found) else sum((c or [] for c in found), [])
        if not isinstance(kind, str) or kind not in GEOJSON_SHAPES:
            if region:                       # a line or other shape drawn by hand: not a cell
                return None
            raise DatasetError(f"{path}: {feature} has a {_brief(kind)} geometry, which marks no "
                               "cell; cells are read from Point and MultiPoint (one per point), "
                               "Polygon and MultiPolygon (one per object, at its centroid) and "
                               f"GeometryCollection geometries; delete that object, or {again} "
                               "without it")
        if region and kind in POLYGONS:
            return None                      # a region drawn around the counted area
        coords = geom.get("coordinates")
        try:
            if kind == "Point":
                return [_position(coords)]
            if not isinstance(coords, list):
                raise ValueError(coords)
            if kind == "MultiPoint":
                return [_position(p) for p in coords]
            polygons = [coords] if kind == "Polygon" else coords
            if not all(isinstance(q, list) for q in polygons):
                raise ValueError(coords)
            rings = [q[0] for q in polygons if q]  # the exterior rings; an empty polygon has none
            return [_centroid(rings)] if rings else []
        except ValueError:
            raise DatasetError(f"{path}: {feature} is a {kind} with the coordinates "
                               f"{_brief(coords)}, not {GEOJSON_SHAPES[kind]}; {again}") from None

    centres, classes, regions = [], set(), Counter()
    for n, f in enumerate(features, 1):
        if f is None:                        # a null entry holds nothing to count
            continue
        if not isinstance(f, dict):
            raise DatasetError(f"{path}: feature {n} of {len(features)} is {_brief(f)}, not a "
                               "GeoJSON Feature object ({\"type\": \"Feature\", \"geometry\": "
                               f"{{...}}}}); {again}")
        geom = f.get("geometry") or {}
        if not isinstance(geom, dict):
            raise DatasetError(f"{path}: feature {n} of {len(features)} has the geometry "
                               f"{_brief(geom)}, not a geometry object such as {{\"type\": "
                               f"\"Point\", \"coordinates\": [x, y]}}; {again}")
        region = _qupath_type(f) in QUPATH_REGIONS
        nucleus = f.get("nucleusGeometry")   # QuPath's cells: a counter clicks on the nucleus
        if geom and isinstance(nucleus, dict) and nucleus.get("type") in POLYGONS:
            geom = nucleus
        found = cells(geom, n, region) if geom else None
        if found is None:
            if region and geom:              # what a file of no cell holds, for its note
                regions[(_SHAPE_WORDS.get(geom.get("type"), "shape"),
                         _qupath_type(f).replace("_", " ").replace("tma", "TMA"))] += 1
            continue
        cls = _qupath_class(f)
        classes.add(str(cls))
        if _matches(marker, cls):
            centres.extend((x - 0.5, y - 0.5) for x, y in found)
    if marker and not any(_matches(marker, c) for c in classes):   # an image of none: 0
        marker_absent(marker, classes)
    if not classes and regions:              # regions only: its image has no cell, say why
        held = ", ".join(f"{k} {shape} {kind}{'s' if k > 1 else ''}"
                         for (shape, kind), k in sorted(regions.items()))
        note(f"{path} holds {held} and no point or detected cell, so its image counts 0 cells: "
             f"QuPath's annotations mark regions (the area counted), not cells; mark the cells "
             f"with points, or, if each outline is one cell, make them detections in QuPath "
             f"before exporting")
    return np.array(centres, np.float64).reshape(-1, 2)


def read_hdf5_points(path: Path, marker: str = "") -> np.ndarray:
    """(N, 2) centres of an HDF5 file of point lists, such as BCData's (one dataset,
    "coordinates"). Every dataset of N x 2 numbers in it is one list of (x, y) rows, taken as
    0-based pixel coordinates as the CSV reader takes them; an empty dataset is a list of no
    cell. A file of several lists (one per class: "positive", "negative") counts them all, or
    the one `marker` names (by its name or its path in the file); a file without that list is
    an image of no such cell (0 cells; marker_absent)."""
    lists, other = _hdf5_lists(path)
    return _chosen_points(path, lists, other, marker, "dataset",
                          "save the points as an N x 2 dataset, e.g. 'coordinates' as BCData does")


def read_mat_points(path: Path, marker: str = "") -> np.ndarray:
    """(N, 2) centres of a MATLAB file of point lists (NAME.mat): every variable that is an
    N x 2 matrix of numbers is one list of (x, y) rows in MATLAB's 1-based pixel coordinates,
    made 0-based (as the CRCHistoPhenotypes release stores its nuclei); an empty matrix is a
    list of no cell. Several lists count together, or the one `marker` names; a file without
    it is an image of no such cell. Files saved with -v7.3 (HDF5) are read too."""
    import scipy.io
    try:
        mat = scipy.io.loadmat(str(path))
    except NotImplementedError:              # -v7.3: HDF5, each matrix stored transposed
        lists, other = _hdf5_lists(path, matlab=True)
    except Exception as e:  # scipy raises assorted types (MatReadError, ValueError) on bad files
        raise DatasetError(f"cannot read {path} as a MATLAB file ({e}); save it again from "
                           f"MATLAB, or the points as a CSV with header x,y") from None
    else:
        lists, other = {}, []
        for name, value in mat.items():
            if name.startswith("__"):
                continue
            a = np.asarray(value)
            if a.dtype.kind in "iuf" and a.size == 0:
                lists[name] = np.empty((0, 2))
            elif a.dtype.kind in "iuf" and a.ndim == 2 and a.shape[1] == 2:
                lists[name] = a.astype(np.float64)
            else:
                other.append(f"{name} ({' x '.join(map(str, a.shape))} {a.dtype})")
    xy = _chosen_points(path, lists, other, marker, "variable",
                        "save the points as an N x 2 matrix: save(file, 'points')")
    return xy - 1.0


def _hdf5_lists(path: Path, matlab: bool = False) -> tuple[dict[str, np.ndarray], list[str]]:
    """({name: (N, 2) points} of an HDF5 file's N x 2 numeric datasets (empty ones: no point),
    [its other datasets, described]); `matlab`: a MATLAB -v7.3 file, whose matrices are stored
    transposed (2 x N) and whose empty ones are marked by a MATLAB_empty attribute."""
    try:
        import h5py
    except ImportError:
        raise DatasetError(f"{path} is an HDF5 file, which pycount reads with the h5py package, "
                           f"not installed here: install pycount's requirements (make setup, or "
                           f"pip install -r requirements.txt)") from None
    lists: dict[str, np.ndarray] = {}
    other: list[str] = []

    def visit(name: str, obj) -> None:
        if not isinstance(obj, h5py.Dataset) or (matlab and name.startswith("#refs#")):
            return
        shape, numeric = obj.shape, obj.dtype.kind in "iuf"
        if matlab and numeric and obj.attrs.get("MATLAB_empty", 0):
            shape = (0,)
        elif matlab and shape is not None:
            shape = shape[::-1]
        if numeric and (shape is None or 0 in shape) and len(shape or ()) <= 2:
            lists[name] = np.empty((0, 2))           # no cell (an empty or null dataset)
        elif numeric and len(shape) == 2 and shape[1] == 2:
            data = np.asarray(obj[()], np.float64)
            lists[name] = data.T if matlab else data
        else:
            other.append(f"{name} ({' x '.join(map(str, shape or ())) or 'scalar'} "
                         f"{obj.dtype})")
    try:
        with h5py.File(path, "r") as f:
            f.visititems(visit)
    except OSError as e:           # not HDF5, cut short, or unreadable
        raise DatasetError(f"cannot read {path} as an HDF5 file ({e}); save its point list "
                           f"again (or as a CSV with header x,y)") from None
    return lists, other


def _chosen_points(path: Path, lists: dict[str, np.ndarray], other: list[str], marker: str,
                   what: str, fix: str) -> np.ndarray:
    """The points of a file of point lists (HDF5, MATLAB): all lists, or the one `marker` names
    (by name, or the last part of its path); a file without any list, or a point that is not a
    number, refused naming `what` holds it."""
    if not lists:
        raise DatasetError(
            f"{path} holds no list of points (a {what} of N rows of x, y): its {what}s are "
            f"{few(other) or 'none'}" + (" (2 x N: the points as columns; store them as rows)"
                                          if any(" (2 x " in o for o in other) else "")
            + f"; {fix}")
    for name, xy in lists.items():
        bad = np.flatnonzero(~np.isfinite(xy).all(axis=1))
        if len(bad):
            raise DatasetError(f"{path}: row {bad[0] + 1} of its {what} {name!r} is not a "
                               f"number ({xy[bad[0]].tolist()}); correct or delete that point")
    if marker:
        chosen = [xy for name, xy in lists.items() if marker in (name, name.rsplit("/", 1)[-1])]
        if not chosen:                        # an image of no such cell: 0 (classes_without)
            marker_absent(marker, lists)
        return np.concatenate(chosen or [np.empty((0, 2))])
    return np.concatenate(list(lists.values()))


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
        return _text_kind(str(path), *_stamp(path))
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


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _yolo_names(path: Path) -> list[str]:
    """The class names of a YOLO label file: LabelImg's classes.txt beside it (one per line), or
    the `names` of a data.yaml (Ultralytics, Roboflow) beside it or up to three folders above, as
    a list (`[a, b]` or `- a` lines) or a mapping (`0: a` lines, or `{0: a, 1: b}`); [] where
    neither is found."""
    folder = Path(path).parent
    listed = folder / "classes.txt"
    if listed.is_file():
        return [line.strip() for line in listed.read_text(errors="replace").splitlines()
                if line.strip()]
    for d in [folder, *list(folder.parents)[:3]]:
        for name in ("data.yaml", "data.yml"):
            if (d / name).is_file():
                return _yaml_names((d / name).read_text(errors="replace"))
    return []


def _yaml_names(text: str) -> list[str]:
    """The `names:` of a YOLO data.yaml (the forms its writers use), without a YAML library."""
    lines = [_uncommented(line) for line in text.splitlines()]
    at = next((i for i, line in enumerate(lines) if re.match(r"names\s*:", line)), None)
    if at is None:
        return []
    rest = lines[at].split(":", 1)[1].strip()
    unquote = lambda v: v.strip().strip("'\"")                       # noqa: E731
    if rest.startswith("["):
        return [unquote(v) for v in rest.strip("[]").split(",") if v.strip()]
    if rest.startswith("{"):                 # {0: a, 1: b}
        pairs = [v.split(":", 1) for v in rest.strip("{}").split(",") if ":" in v]
        got = {int(k): unquote(v) for k, v in pairs if k.strip().isdigit()}
        return [got[k] for k in sorted(got)]
    names = {}
    for line in lines[at + 1:]:
        if not line.strip():                 # a blank line (or a comment) within the block
            continue
        if not line.startswith((" ", "\t")):
            break
        item = line.strip()
        if item.startswith("-"):
            names[len(names)] = unquote(item[1:])
        elif ":" in item:
            k, v = item.split(":", 1)
            if k.strip().isdigit():
                names[int(k)] = unquote(v)
    return [names[k] for k in sorted(names)]


class _ArraysOnly(pickle.Unpickler):
    """An unpickler of numpy arrays and plain containers only: a Cellpose _seg.npy is a pickled
    dict, and a pickle may call anything, so nothing else it names is loaded."""
    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("builtins", "slice"),
               ("numpy.core.numeric", "_frombuffer"), ("collections", "OrderedDict")}

    def find_class(self, module, name):
        module = module.replace("numpy._core", "numpy.core")     # pickled by numpy 2
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name}")
        return super().find_class(module, name)


def read_cellpose_seg(path: Path, shape=None) -> np.ndarray:
    """(N, 2) centres of the cells of a Cellpose GUI file NAME_seg.npy (a dict saved by
    numpy.save): its `masks`, instance labels (0 background), one cell per label at its
    centroid. Read without running the pickle: only arrays and plain containers are loaded."""
    path = Path(path)
    why = None
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            _, _, dtype = np.lib.format._read_array_header(f, version)
            seg = _ArraysOnly(f).load() if dtype.hasobject else None
    except pickle.UnpicklingError as e:
        why = f"it holds objects other than arrays ({e}), which pycount does not load"
    except (OSError, ValueError, EOFError, TypeError, AttributeError, ImportError) as e:
        why = f"it is not a numpy file that Cellpose wrote ({type(e).__name__}: {e})"
    else:
        seg = seg.item() if isinstance(seg, np.ndarray) and seg.shape == () else seg
        if not isinstance(seg, dict) or not isinstance(seg.get("masks"), np.ndarray):
            why = "it holds no dict with the array 'masks'"
    if why:
        raise DatasetError(f"cannot read {path} as Cellpose's _seg.npy: {why}; save the masks "
                           f"from Cellpose as {path.name[:-len('_seg.npy')]}_cp_masks.png "
                           f"(File > Save masks as PNG) and give that file instead")
    masks = seg["masks"]
    if masks.ndim != 2 or masks.dtype.kind not in "ui":
        raise DatasetError(f"{path}: its masks are {masks.dtype} of shape {masks.shape}, not one "
                           f"2-D image of labels (a 3-D segmentation?); pycount counts 2-D images")
    if shape is not None and masks.shape != tuple(shape[:2]):
        raise DatasetError(f"{path}: its masks are {masks.shape[1]}x{masks.shape[0]} px but its "
                           f"image is {shape[1]}x{shape[0]}; the masks must be of that image")
    ys, xs = np.nonzero(masks)
    if not len(xs):
        return np.empty((0, 2))
    _, label = np.unique(masks[ys, xs], return_inverse=True)
    n = np.bincount(label)
    return np.stack([np.bincount(label, xs) / n, np.bincount(label, ys) / n], axis=1)


def _uncommented(line: str) -> str:
    """A YAML line without its comment: from a # that starts the line or follows a space,
    outside quotes, to the end."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i].rstrip()
    return line


def read_text_points(path: Path, marker: str = "", shape=None) -> np.ndarray:
    """(N, 2) centres of a .txt of numbers (annotation_kind TEXT), told by its rows: two numbers
    a row, x and y (ImageJ's File > Save As > XY Coordinates of a point selection: 0-based
    pixels, as its point tool reports them); or YOLO labels, a class number and then fractions
    of the image's width and height: 5 numbers a box (its centre is the cell), 7 or more a
    polygon (YOLO's segmentation labels: its area centroid), shifted by -0.5 px (continuous
    coordinates). `marker` chooses a YOLO class by number or by name (classes.txt or
    data.yaml's names)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"cannot read {path} ({e}); a text file of x y rows or YOLO labels "
                           f"is expected") from None
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                rows.append((n, [float(v) for v in re.split(r"[\s,;]+", line.strip())]))
            except ValueError:
                raise DatasetError(f"{path}, line {n}: {line.strip()[:60]!r} is not a row of "
                                   f"numbers; a text annotation holds x y rows (ImageJ's XY "
                                   f"coordinates) or YOLO labels (class cx cy w h)") from None
    if not rows:
        return np.empty((0, 2))

    def yolo(values: list[float]) -> bool:
        return ((len(values) == 5 or (len(values) >= 7 and len(values) % 2)) and
                values[0] >= 0 and values[0] == int(values[0]) and
                all(0 <= v <= 1 for v in values[1:]))
    if all(len(v) == 2 for _, v in rows):
        if marker:
            raise DatasetError(f"{path} holds x y rows (no classes), but the marker {marker!r} "
                               f"is chosen; leave the marker out")
        return np.array([v for _, v in rows], np.float64)
    bad = next(((n, v) for n, v in rows if not yolo(v)), None)
    if bad is not None:
        n, v = bad
        raise DatasetError(f"{path}, line {n}: {len(v)} numbers, neither x y (two a row: ImageJ's "
                           f"XY coordinates) nor a YOLO label (a class number, then 4 fractions "
                           f"of the image's size for a box, or 6 or more for a polygon); "
                           f"{'three numbers a row are ImageJ XY coordinates of a whole image with pixel values: save the point selection instead, ' if len(v) == 3 else ''}"
                           f"every row must be one of these")
    if shape is None:
        raise DatasetError(f"{path}: YOLO labels need their image's size")
    h, w = shape[:2]
    names = _yolo_names(path)
    wanted = None
    if marker:
        if marker.isdigit():
            wanted = int(marker)
        elif marker in names:
            wanted = names.index(marker)
        else:
            raise DatasetError(f"{path}: the marker {marker!r} is no class number and no class "
                               f"name of its labels ({', '.join(names) if names else 'no classes.txt or data.yaml names them'}); "
                               f"choose a class by its number (MARKER=0) or by a name that "
                               f"classes.txt or data.yaml gives")
    centres, seen = [], set()
    for _, v in rows:
        seen.add(int(v[0]))
        if wanted is not None and int(v[0]) != wanted:
            continue
        if len(v) == 5:
            cx, cy = v[1], v[2]
        else:
            cx, cy = _centroid([[[x, y] for x, y in zip(v[1::2], v[2::2])]])
        centres.append((cx * w - 0.5, cy * h - 0.5))
    if wanted is not None and wanted not in seen:
        marker_absent(marker, [names[c] if c < len(names) else str(c) for c in sorted(seen)])
    return np.array(centres, np.float64).reshape(-1, 2)


# Files of a whole set's annotations, one entry per image file name (not named after an image)
SET_KINDS = ("CVAT XML", "COCO JSON", "VIA JSON", "VIA CSV", "Label Studio JSON", "CSV table")

# The header of the VGG Image Annotator's (VIA 2) CSV export: one row per region, the shape and
# the attributes as JSON in their cells
VIA_CSV_HEADER = ("filename", "file_size", "file_attributes", "region_count", "region_id",
                  "region_shape_attributes", "region_attributes")


def _via_label(attributes) -> str:
    """A VIA region's class, for a marker to choose: its attribute values that are set (a text
    or a dropdown's value; a checkbox's ticked options), joined by ", " where several are."""
    if not isinstance(attributes, dict):
        return ""
    said = []
    for value in attributes.values():
        if isinstance(value, dict):        # checkboxes: {option: true}
            said += [str(k) for k, on in value.items() if on]
        elif value not in (None, ""):
            said.append(str(value))
    return ", ".join(said)


def _via_points(shape: dict) -> list[tuple[float, float]]:
    """The cell(s) of one VIA region: a point, a circle's or an ellipse's centre, a rectangle's
    centre, a polygon's area centroid; [] for a polyline (no cell). Coordinates as stored."""
    name = shape.get("name")
    if name in ("point", "circle", "ellipse"):
        return [(float(shape["cx"]), float(shape["cy"]))]
    if name == "rect":
        return [(float(shape["x"]) + float(shape["width"]) / 2,
                 float(shape["y"]) + float(shape["height"]) / 2)]
    if name == "polygon":
        xy = _outline_centroid(np.asarray(shape["all_points_x"], np.float64),
                               np.asarray(shape["all_points_y"], np.float64))
        return [(float(xy[0]), float(xy[1]))]
    if name == "polyline":
        return []
    raise ValueError(f"a region of shape {name!r}")


def _via_index(p: Path, entries: list[tuple[str, list]]) -> dict:
    """{image file name: [(label, x, y)]} of VIA entries [(file name, [(shape, attributes)])];
    VIA's continuous coordinates, shifted by -0.5 as CVAT's and COCO's are."""
    out: dict[str, list] = {}
    for name, regions in entries:
        marks = out.setdefault(Path(name).name, [])
        for n, (shape, attributes) in enumerate(regions, 1):
            try:
                pts = _via_points(shape)
            except (KeyError, TypeError, ValueError, AttributeError) as e:
                raise DatasetError(f"{p}: region {n} of {name!r} cannot be read as a cell ({e!r}; "
                                   f"its shape: {_brief(shape, 80)}); draw cells as points, "
                                   f"circles, rectangles or polygons and export again") from None
            label = _via_label(attributes)
            marks += [(label, x - 0.5, y - 0.5) for x, y in pts]
    return out


def _via_json(doc) -> list[tuple[str, list]] | None:
    """[(file name, [(shape, attributes)])] of a VIA 2 JSON export or project file (VIA 1's
    regions, a dict by number, too); None for any other JSON."""
    if isinstance(doc, dict) and isinstance(doc.get("_via_img_metadata"), dict):
        doc = doc["_via_img_metadata"]                 # a VIA 2 project file
    if not (isinstance(doc, dict) and doc and all(
            isinstance(v, dict) and "filename" in v and "regions" in v for v in doc.values())):
        return None
    entries = []
    for v in doc.values():
        regions = v["regions"]
        regions = list(regions.values()) if isinstance(regions, dict) else regions
        if not isinstance(regions, list):
            regions = []
        entries.append((str(v["filename"]), [
            (r.get("shape_attributes"), r.get("region_attributes")) if isinstance(r, dict)
            else (r, None) for r in regions]))
    return entries


def _via3_json(doc) -> list[tuple[str, list]] | None:
    """The entries (_via_json's form) of a VIA 3 project (its "file", "view" and "metadata":
    each region a list, its shape's number first: 1 point, 2 rectangle, 3 circle, 4 ellipse,
    5 line, 6 polyline, 7 polygon, 8 and 9 the extreme rectangle and circle; its attribute
    values under "av", options named by "attribute"); None for any other JSON.
    Regions of a time span (a video's: "z" not empty) and of a whole file (no "xy") are none."""
    if not (isinstance(doc, dict) and all(isinstance(doc.get(k), dict)
                                          for k in ("file", "view", "metadata"))):
        return None
    files = {fid: str(f.get("fname", fid)) for fid, f in doc["file"].items()
             if isinstance(f, dict)}
    views = {vid: files.get(str((v.get("fid_list") or [None])[0]))
             for vid, v in doc["view"].items() if isinstance(v, dict)}
    options = {aid: a.get("options") or {} for aid, a in (doc.get("attribute") or {}).items()
               if isinstance(a, dict)}
    entries: dict[str, list] = {name: [] for name in files.values()}
    for m in doc["metadata"].values():
        if not isinstance(m, dict) or m.get("z") or not m.get("xy"):
            continue
        name = views.get(str(m.get("vid")))
        if name is None:
            continue
        xy = m["xy"]
        # (extreme rectangles and circles, drawn by points on their outline: refused by
        # _via_points with the shapes it reads, as any other it does not know)
        kind = {1: "point", 2: "rect", 3: "circle", 4: "ellipse", 5: "polyline", 6: "polyline",
                7: "polygon", 8: "extreme rectangle", 9: "extreme circle"}.get(xy[0], str(xy[0]))
        if kind in ("point", "circle", "ellipse"):
            shape = {"name": kind, "cx": xy[1], "cy": xy[2]}
        elif kind == "rect":
            shape = {"name": "rect", "x": xy[1], "y": xy[2], "width": xy[3], "height": xy[4]}
        elif kind == "polygon":
            shape = {"name": "polygon", "all_points_x": xy[1::2], "all_points_y": xy[2::2]}
        else:
            shape = {"name": kind}
        av = m.get("av") if isinstance(m.get("av"), dict) else {}
        # an option's id -> its name, where the attribute lists options (a dropdown, radio)
        named = {aid: ", ".join(str(options.get(aid, {}).get(v, v)) for v in str(value).split(","))
                 for aid, value in av.items() if value not in (None, "")}
        entries[name].append((shape, named))
    return list(entries.items())


def _is_label_studio(doc) -> bool:
    """Label Studio's JSON export: a list of tasks, each with its "data" and its "annotations"
    (older versions: "completions")."""
    return isinstance(doc, list) and bool(doc) and all(
        isinstance(t, dict) and isinstance(t.get("data"), dict)
        and isinstance(t.get("annotations", t.get("completions")), list) for t in doc)


def _label_studio_min(doc) -> list | None:
    """Label Studio's JSON-MIN export (a list of tasks, each its image's path and, under each
    labelling tag's name, the regions drawn: x, y, ... beside the size of the image and the
    labels) in the form of its JSON export (_label_studio_index reads both); None for any other
    document. A region's shape is its labels' key's (keypointlabels, ...) or, for a tag without
    labels, its fields' (points: a polygon, radiusX: an ellipse, height: a rectangle, else a
    keypoint)."""
    def regions(task) -> dict:
        return {k: v for k, v in task.items() if isinstance(v, list) and v and all(
            isinstance(r, dict) and ("x" in r or "points" in r) and "original_width" in r
            for r in v)}
    if not (isinstance(doc, list) and doc and all(isinstance(t, dict) for t in doc)) or any(
            {"data", "annotations", "completions"} & set(t) for t in doc) or not any(
            regions(t) for t in doc):
        return None
    tasks = []
    for t in doc:
        image = t.get("image") if isinstance(t.get("image"), str) else next(
            (v for v in t.values() if isinstance(v, str)
             and Path(v.split("?")[0]).suffix.lower() in IMAGE_SUFFIXES + OTHER_IMAGE_SUFFIXES),
            None)
        if image is None:
            return None
        result = []
        for found in regions(t).values():
            for r in found:
                labels = next((k for k, v in r.items() if k.endswith("labels")
                               and isinstance(v, list)), "")
                shape = labels[:-len("labels")] if labels[:-len("labels")] in _LS_SHAPES else (
                    "polygon" if "points" in r else "ellipse" if "radiusX" in r else
                    "rectangle" if "height" in r else "keypoint")
                result.append({"type": shape + "labels", "value": r,
                               "original_width": r.get("original_width"),
                               "original_height": r.get("original_height")})
        tasks.append({"data": {"image": image}, "annotations": [{"result": result}]})
    return tasks


# Label Studio prefixes the name of each file uploaded to it (kept under /data/upload/) with
# 8 hex digits and a hyphen; files in cloud or local storage keep their names
_LS_UPLOAD = re.compile(r"^[0-9a-f]{8}-(.+)$")
_LS_SHAPES = ("keypoint", "ellipse", "rectangle", "polygon")


def _label_studio_cell(value: dict, shape: str, w: float, h: float) -> tuple[float, float]:
    """The cell of one Label Studio result of one of _LS_SHAPES (its value in percent of the
    image's width and height): a keypoint, an ellipse's centre, a rectangle's centre (turned by
    its rotation about its top-left corner), a polygon's area centroid."""
    if shape in ("keypoint", "ellipse"):
        return value["x"] * w / 100, value["y"] * h / 100
    if shape == "rectangle":
        a = math.radians(float(value.get("rotation", 0) or 0))
        dx, dy = value["width"] * w / 200, value["height"] * h / 200
        return (value["x"] * w / 100 + dx * math.cos(a) - dy * math.sin(a),
                value["y"] * h / 100 + dx * math.sin(a) + dy * math.cos(a))
    xy = np.asarray(value["points"], np.float64).reshape(-1, 2) * (w / 100, h / 100)
    return tuple(_outline_centroid(xy[:, 0], xy[:, 1]))      # a polygon


def _label_studio_index(p: Path, doc: list) -> tuple[dict, dict]:
    """({image file name: [(label, x, y)]}, {name: (width, height)}) of a Label Studio JSON
    export: each task's image by its file name (the upload prefix taken off), the results of its
    first annotation that was not cancelled (several: said in a note), -0.5 px as the other
    tools' continuous coordinates; a marker chooses the results' labels. Results of no shape
    (choices, text areas: of the whole image, with no size recorded) are passed over."""
    out, sizes, several = {}, {}, []
    for n, task in enumerate(doc, 1):
        source = next((v for v in task["data"].values() if isinstance(v, str)), "")
        name = Path(source.split("?")[0]).name
        if "/data/upload/" in source:
            name = _LS_UPLOAD.sub(r"\1", name)
        kept = [a for a in task.get("annotations", task.get("completions")) or []
                if isinstance(a, dict) and not a.get("was_cancelled")]
        if len(kept) > 1:
            several.append(name)
        marks = out.setdefault(name, [])
        for k, r in enumerate(kept[0].get("result", []) if kept else [], 1):
            shape = str(r.get("type", "")).replace("labels", "") if isinstance(r, dict) else ""
            if isinstance(r, dict) and shape not in _LS_SHAPES:
                continue                      # a choice, a text area: whole-image, no cell
            try:
                w, h = float(r["original_width"]), float(r["original_height"])
                cell = _label_studio_cell(r["value"], shape, w, h)
            except (KeyError, TypeError, ValueError, AttributeError) as e:
                raise DatasetError(f"{p}: result {k} of task {n} ({name}) cannot be read as a "
                                   f"cell ({e!r}: {_brief(r, 80)}); export the project again "
                                   f"(JSON), or as COCO") from None
            sizes[name] = (w, h)
            value = r["value"]
            labels = next((v for key, v in value.items() if key.endswith("labels")
                           and isinstance(v, list)), [])
            marks.append((", ".join(map(str, labels)), cell[0] - 0.5, cell[1] - 0.5))
    if several:
        note(f"{p}: {len(several)} task(s) have more than one annotation ({few(several)}): the "
             f"first of each is read")
    return out, sizes


# A table of the whole set's marks, a row each, names its image in one of these columns
_IMAGE_COLUMNS = ("filename", "file_name", "file", "image", "image_name", "imagename", "img",
                  "image_path", "path", "name")


def _set_table(p: Path) -> tuple[dict, dict] | None:
    """({image file name: [(label, x, y)]}, {name: (width, height)}) of a CSV of the whole
    set's marks, a row each: a column naming the image (_IMAGE_COLUMNS: a path keeps its file
    name) and the mark as x, y (0-based pixels, as the per-image tables) or a box's corners
    xmin, ymin, xmax, ymax (its centre; TensorFlow's object-detection CSV, as Roboflow and
    LabelImg's converters write it, with width, height and class); a class or label column
    for a marker. None for any other CSV."""
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return None
    first = text.split("\n", 1)[0]
    sep = "\t" if "\t" in first else ";" if ";" in first and "," not in first else ","
    rows = list(csv.reader(io.StringIO(text), delimiter=sep, skipinitialspace=True))
    if not rows:
        return None
    header = [h.strip() for h in rows[0]]
    low = [h.lower() for h in header]
    name_col = next((low.index(c) for c in _IMAGE_COLUMNS if c in low), None)
    if name_col is None:
        return None
    if {"xmin", "ymin", "xmax", "ymax"} <= set(low):
        cols, form = [low.index(c) for c in ("xmin", "ymin", "xmax", "ymax")], "box"
    elif {"x", "y"} <= set(low):
        cols, form = [low.index("x"), low.index("y")], "point"
    else:
        return None
    label_col = next((header.index(c) for c in CLASS_COLUMNS if c in header), None)
    size_cols = [low.index(c) for c in ("width", "height") if c in low]
    out: dict[str, list] = {}
    sizes: dict[str, tuple] = {}
    for n, row in enumerate(rows[1:], 2):
        if not any(v.strip() for v in row):
            continue
        try:
            name = Path(row[name_col].strip().replace("\\", "/")).name
            v = [float(row[c]) for c in cols]
        except (IndexError, ValueError):
            raise DatasetError(f"{p}, line {n}: {sep.join(row)[:80]!r} is no row of an image's "
                               f"name and its mark's numbers ({', '.join(header[c] for c in cols)}); "
                               f"correct or delete the row") from None
        x, y = ((v[0] + v[2]) / 2, (v[1] + v[3]) / 2) if form == "box" else (v[0], v[1])
        label = row[label_col].strip() if label_col is not None and label_col < len(row) else ""
        out.setdefault(name, []).append((label, x, y))
        if len(size_cols) == 2:
            try:
                sizes[name] = (float(row[size_cols[0]]), float(row[size_cols[1]]))
            except (IndexError, ValueError):
                pass
    return out, sizes


def _via_csv(p: Path) -> list[tuple[str, list]] | None:
    """The entries (_via_json) of a VIA 2 CSV export; None for any other CSV."""
    import json
    try:
        with open(p, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    if not rows or tuple(h.strip() for h in rows[0]) != VIA_CSV_HEADER:
        return None
    entries: dict[str, list] = {}
    for n, row in enumerate(rows[1:], 2):
        if not row:
            continue
        try:
            name, shape, attributes = row[0], json.loads(row[5] or "{}"), json.loads(row[6] or "{}")
        except (IndexError, ValueError):
            raise DatasetError(f"{p}: line {n} is not a row of VIA's CSV export (a shape and "
                               f"attributes in JSON); export it again") from None
        regions = entries.setdefault(name, [])
        if shape:                                   # {}: an image without regions
            regions.append((shape, attributes))
    return list(entries.items())


def set_file(path: Path) -> tuple[str, list[str]] | None:
    """(kind, the image file names it annotates) of a file holding a whole set's annotations: a
    CVAT export ("CVAT for images 1.1": <annotations> with an <image name=...> per image), a
    COCO file ("images" and "annotations" lists), a VGG Image Annotator (VIA 2) export or
    project, in JSON or CSV, or a Label Studio JSON export; None for any other file."""
    index = _set_index(str(path), *_stamp(path)) if path.is_file() else None
    return None if index is None else (index[0], sorted(index[1]))


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_mtime_ns, st.st_size


@functools.lru_cache(maxsize=8)
def _set_index(path: str, mtime_ns: int, size: int) -> tuple[str, dict, dict] | None:
    """(kind, {image file name: [(label, x, y), ...]}, {image file name: (width, height) as
    recorded}) of a CVAT XML or COCO JSON file, the
    centres in this package's pixel coordinates (both tools' coordinates are continuous, pixel
    i spanning [i, i+1): 0.5 subtracted); None for another file. Cached by path, time and
    size. A COCO annotation of a category or an image the file does not list is refused: a
    category taken out of the list (a class of no cell, merged or dropped by an editing script)
    would otherwise count as cells, and the marks of an unlisted image belong to no file."""
    p = Path(path)
    if p.suffix.lower() in (".csv", ".tsv"):
        entries = _via_csv(p)
        if entries is not None:
            return "VIA CSV", _via_index(p, entries), {}
        table = _set_table(p)
        return None if table is None else ("CSV table", *table)
    if p.suffix.lower() == ".xml":
        import xml.etree.ElementTree as ET
        try:
            root = ET.parse(path).getroot()
        except ET.ParseError as e:
            if p.stem.lower() == "annotations":     # CVAT's name for a set's file
                raise DatasetError(f"{p}: cannot read it as XML ({e}: a byte of another "
                                   f"encoding than its declared one, or a file cut short); "
                                   f"export the set again") from None
            return None
        except OSError:
            return None
        if root.tag != "annotations" or root.find("image") is None:
            return None
        out, sizes = {}, {}
        for img in root.iter("image"):
            marks = []
            for shape in img:
                label = shape.get("label", "")
                try:
                    if shape.tag in ("points", "polygon"):
                        xy = np.array([[float(v) for v in pt.split(",")]
                                       for pt in shape.get("points", "").split(";") if pt])
                        pts = xy if shape.tag == "points" else \
                            _outline_centroid(xy[:, 0], xy[:, 1])[None]
                    elif shape.tag == "box":
                        pts = np.array([[(float(shape.get("xtl")) + float(shape.get("xbr"))) / 2,
                                         (float(shape.get("ytl")) + float(shape.get("ybr"))) / 2]])
                    elif shape.tag == "ellipse":
                        pts = np.array([[float(shape.get("cx")), float(shape.get("cy"))]])
                    elif shape.tag == "mask":        # a brush-drawn cell: run lengths over
                        w, h = int(shape.get("width")), int(shape.get("height"))  # its box,
                        runs = [int(v) for v in shape.get("rle").split(",")]      # row by row
                        try:
                            flat = _marked(runs, w * h)
                        except ValueError as e:
                            raise DatasetError(
                                f"{p}: a <mask> of image {img.get('name')!r} has runs that do "
                                f"not fill its box ({e}); export it again") from None
                        pts = np.array([[float(shape.get("left")) + (flat % w).mean() + 0.5,
                                         float(shape.get("top")) + (flat // w).mean() + 0.5]]
                                       ) if len(flat) else np.empty((0, 2))
                    else:
                        continue                     # a tag, a polyline: no cell
                except (TypeError, ValueError, IndexError, AttributeError):
                    raise DatasetError(f"{p}: a <{shape.tag}> of image {img.get('name')!r} has "
                                       f"no numeric coordinates; export it again") from None
                marks += [(label, x - 0.5, y - 0.5) for x, y in pts]
            out[Path(img.get("name", "")).name] = marks
            sizes[Path(img.get("name", "")).name] = (img.get("width"), img.get("height"))
        return "CVAT XML", out, sizes
    if p.suffix.lower() == ".json":
        import json
        try:       # bytes: UTF-8 with or without its mark, UTF-16 and UTF-32 (json detects them)
            doc = json.loads(p.read_bytes())
        except UnicodeDecodeError as e:
            raise DatasetError(f"{p}: byte {e.start} is not text in UTF-8 or UTF-16 (a legacy "
                               f"encoding, e.g. Windows-1252); save it as UTF-8") from None
        except (OSError, ValueError):
            return None
        entries = _via_json(doc)
        if entries is None:
            entries = _via3_json(doc)
        if entries is not None:
            return "VIA JSON", _via_index(p, entries), {}
        if _is_label_studio(doc):
            return ("Label Studio JSON", *_label_studio_index(p, doc))
        tasks = _label_studio_min(doc)
        if tasks is not None:
            return ("Label Studio JSON", *_label_studio_index(p, tasks))
        if not (isinstance(doc, dict) and isinstance(doc.get("images"), list)
                and isinstance(doc.get("annotations"), list)):
            return None
        try:
            names = {im["id"]: Path(str(im["file_name"])).name for im in doc["images"]}
            sizes = {Path(str(im["file_name"])).name: (im.get("width"), im.get("height"))
                     for im in doc["images"]}
            cats = {c["id"]: str(c.get("name", c["id"])) for c in doc.get("categories") or []}
            out = {n: [] for n in names.values()}
            blank = unplaced = 0
            for n, a in enumerate(doc["annotations"], 1):
                entry = f"{p}: annotation {n} of {len(doc['annotations'])}" + (
                    f" (id {a['id']})" if isinstance(a, dict) and "id" in a else "")
                cid = a.get("category_id")
                if cats and cid not in cats:         # no list at all: the ids are the labels
                    raise DatasetError(
                        f"{entry} has category_id {cid!r}, which is not among its categories "
                        f"(ids {few(f'{k} ({v})' for k, v in cats.items())}); export the set "
                        f"again, or add that category to categories (or delete the annotation)")
                if a.get("image_id") not in names:
                    raise DatasetError(
                        f"{entry} has image_id {a.get('image_id')!r}, which is not among its "
                        f"images (ids {few(names)}); export the set again, or delete the "
                        f"annotation")
                label = cats.get(cid, str(cid if cid is not None else ""))
                kp = a.get("keypoints")
                if kp:                               # visible keypoints: one cell each
                    pts = [(x, y) for x, y, v in zip(kp[0::3], kp[1::3], kp[2::3]) if v]
                elif a.get("bbox"):
                    x, y, w, h = a["bbox"]
                    pts = [(x + w / 2, y + h / 2)]
                elif isinstance(a.get("segmentation"), list) and a["segmentation"]:
                    xy = np.asarray(a["segmentation"][0], np.float64).reshape(-1, 2)
                    pts = [tuple(_outline_centroid(xy[:, 0], xy[:, 1]))]
                elif isinstance(a.get("segmentation"), dict):  # a run-length mask (CVAT's
                    centre = rle_centroid(a["segmentation"])  # masks, iscrowd 1)
                    pts = [(centre[0] + 0.5, centre[1] + 0.5)] if centre else []
                    blank += centre is None
                else:
                    unplaced += 1
                    continue
                out[names[a["image_id"]]] += [(label, float(x) - 0.5, float(y) - 0.5)
                                              for x, y in pts]
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
            raise DatasetError(f"{p} is a COCO file with an entry pycount cannot read ({e!r}); "
                               f"export it again") from None
        if unplaced or blank:
            note(f"{p}: {unplaced + blank} of its {len(doc['annotations'])} annotations have no "
                 f"position (" + ", ".join(
                     w for w in (f"{unplaced} neither keypoints, bbox nor segmentation"
                                 if unplaced else "", f"{blank} an empty mask" if blank else "")
                     if w) + "): not counted")
        return "COCO JSON", out, sizes
    return None


def _set_centres(path: Path, kind: str, image: Path, marker: str = "",
                 shape=None) -> np.ndarray:
    """(N, 2) centres that a file of a whole set's annotations gives the image of this file
    name (matched by name, then by stem); `marker`: one label ("" = every one); `shape`: the
    image's, checked against the size the file records for it."""
    _, index, sizes = _set_index(str(path), *_stamp(path))
    image_name = Path(image).name
    entry = image_name if image_name in index else next(
        (k for k in index if Path(k).stem == Path(image_name).stem), None)
    marks = index.get(entry, [])
    if entry is not None:
        fields = {"COCO JSON": f"width and height for {entry}",
                  "Label Studio JSON": f"original_width and original_height for {entry}",
                  "CSV table": f"width and height for {entry}"}
        check_recorded_size(path, sizes.get(entry), fields.get(
            kind, f"<image> width and height for {entry}"), shape, image)
    if marker and not any(label == marker for label, _, _ in
                          (m for v in index.values() for m in v)):
        labels = sorted({label for v in index.values() for label, _, _ in v} - {""})
        raise DatasetError(f"{path} has no label {marker!r} (its labels: "
                           f"{', '.join(labels) or 'none'}); choose one of them (MARKER=, or "
                           f"marker in pycount.toml), or leave it out to count all")
    return np.array([(x, y) for label, x, y in marks if not marker or label == marker],
                    np.float64).reshape(-1, 2)


def read_annotation(path: Path, kind: str, shape=None, marker: str = "",
                    image: Path | None = None) -> np.ndarray:
    """The centres of one annotation file of the folder layout (see folder_pairs for the kinds);
    `image`: the image whose entries a file of the whole set's annotations gives (CVAT, COCO)."""
    if kind in SET_KINDS:
        return _set_centres(Path(path), kind, Path(image), marker, shape)
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
