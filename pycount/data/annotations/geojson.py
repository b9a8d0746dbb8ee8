"""JSON annotations of one image: QuPath GeoJSON exports (points, detections, cells) and LabelMe
files."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Optional

import numpy as np

from pycount.data.annotations.common import (brief, check_recorded_size, marker_absent, matches,
                                             note, outline_centroid, position, rings_centroid)
from pycount.errors import DatasetError


def _qupath_class(feature: dict):
    props = feature.get("properties")
    c = (props.get("classification") if isinstance(props, dict) else None) \
        or feature.get("classification") or {}
    return c.get("name") if isinstance(c, dict) else c


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
            raise DatasetError(f"{path}: shape {n} is {brief(shape)}, not a LabelMe shape")
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
            out.append(outline_centroid(pts[:, 0], pts[:, 1]))
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
        raise DatasetError(f"{path}: 'features' is {brief(features)}, not a list of GeoJSON "
                           f"Features; {again}")

    def cells(geom, n: int, region: bool) -> Optional[list]:
        """The cells of feature n's geometry; None where it holds nothing to count."""
        feature = f"feature {n} of {len(features)}"
        kind = geom.get("type")
        if kind == "GeometryCollection":
            members = geom.get("geometries")
            if not isinstance(members, list) or not all(isinstance(g, dict) for g in members):
                raise DatasetError(f"{path}: {feature} is a GeometryCollection whose geometries "
                                   f"are {brief(members)}, not a list of geometry objects; "
                                   f"{again}")
            found = [cells(g, n, region) for g in members]
            return None if all(c is None for c in found) else sum((c or [] for c in found), [])
        if not isinstance(kind, str) or kind not in GEOJSON_SHAPES:
            if region:                       # a line or other shape drawn by hand: not a cell
                return None
            raise DatasetError(f"{path}: {feature} has a {brief(kind)} geometry, which marks no "
                               "cell; cells are read from Point and MultiPoint (one per point), "
                               "Polygon and MultiPolygon (one per object, at its centroid) and "
                               f"GeometryCollection geometries; delete that object, or {again} "
                               "without it")
        if region and kind in POLYGONS:
            return None                      # a region drawn around the counted area
        coords = geom.get("coordinates")
        try:
            if kind == "Point":
                return [position(coords)]
            if not isinstance(coords, list):
                raise ValueError(coords)
            if kind == "MultiPoint":
                return [position(p) for p in coords]
            polygons = [coords] if kind == "Polygon" else coords
            if not all(isinstance(q, list) for q in polygons):
                raise ValueError(coords)
            rings = [q[0] for q in polygons if q]  # the exterior rings; an empty polygon has none
            return [rings_centroid(rings)] if rings else []
        except ValueError:
            raise DatasetError(f"{path}: {feature} is a {kind} with the coordinates "
                               f"{brief(coords)}, not {GEOJSON_SHAPES[kind]}; {again}") from None

    centres, classes, regions = [], set(), Counter()
    for n, f in enumerate(features, 1):
        if f is None:                        # a null entry holds nothing to count
            continue
        if not isinstance(f, dict):
            raise DatasetError(f"{path}: feature {n} of {len(features)} is {brief(f)}, not a "
                               "GeoJSON Feature object ({\"type\": \"Feature\", \"geometry\": "
                               f"{{...}}}}); {again}")
        geom = f.get("geometry") or {}
        if not isinstance(geom, dict):
            raise DatasetError(f"{path}: feature {n} of {len(features)} has the geometry "
                               f"{brief(geom)}, not a geometry object such as {{\"type\": "
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
        if matches(marker, cls):
            centres.extend((x - 0.5, y - 0.5) for x, y in found)
    if marker and not any(matches(marker, c) for c in classes):   # an image of none: 0
        marker_absent(marker, classes)
    if not classes and regions:              # regions only: its image has no cell, say why
        held = ", ".join(f"{k} {shape} {kind}{'s' if k > 1 else ''}"
                         for (shape, kind), k in sorted(regions.items()))
        note(f"{path} holds {held} and no point or detected cell, so its image counts 0 cells: "
             f"QuPath's annotations mark regions (the area counted), not cells; mark the cells "
             f"with points, or, if each outline is one cell, make them detections in QuPath "
             f"before exporting")
    return np.array(centres, np.float64).reshape(-1, 2)
