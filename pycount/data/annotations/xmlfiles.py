"""XML annotations of one image: ImageJ/Fiji Cell Counter markers, Pascal VOC boxes (LabelImg,
CVAT) and Aperio ImageScope regions, and the image file name a file records."""
from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np

from pycount.data.annotations.common import (check_recorded_size, file_stamp, marker_absent,
                                             matches, outline_centroid)
from pycount.errors import DatasetError


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
        if not matches(marker, number, name or None):
            continue
        for m in mtype.iter("Marker"):
            try:
                centres.append((float(m.findtext("MarkerX")), float(m.findtext("MarkerY"))))
            except (TypeError, ValueError):
                raise DatasetError(f"{path}: a marker of type {number} has no numeric MarkerX, "
                                   "MarkerY; fix or delete it") from None
    if marker and not any(matches(marker, n, m or None) for n, m in types):
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
        if not matches(marker, layer.get("Id", str(n)), *said):
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
                centres.append(outline_centroid(xy[:, 0], xy[:, 1]))
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
    return _recorded_image(str(path), *file_stamp(path)) if path.is_file() else ("", "")


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
