"""Files of a whole set's annotations, one entry per image: CVAT XML, COCO JSON, VIA JSON/CSV,
Label Studio JSON and a CSV table of every image's marks."""
from __future__ import annotations

import csv
import functools
import io
import math
import re
from pathlib import Path

import numpy as np

from pycount.data.annotations.common import (CLASS_COLUMNS, brief, check_recorded_size, few,
                                             file_stamp, note, outline_centroid)
from pycount.data.annotations.masks import run_pixels, rle_centroid
from pycount.data.images import IMAGE_SUFFIXES, OTHER_IMAGE_SUFFIXES
from pycount.errors import DatasetError


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
        xy = outline_centroid(np.asarray(shape["all_points_x"], np.float64),
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
                                   f"its shape: {brief(shape, 80)}); draw cells as points, "
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


def _ls_labels_key(region: dict) -> str:
    """The key of a Label Studio region's labels (keypointlabels, rectanglelabels, ...: the one
    that ends in "labels" and holds a list), "" where it has none."""
    return next((k for k, v in region.items() if k.endswith("labels") and isinstance(v, list)), "")


def _label_studio_min(doc) -> list | None:
    """Label Studio's JSON-MIN export (a list of tasks, each its image's path and, under each
    labelling tag's name, the regions drawn: x, y, ... beside the size of the image and the
    labels) in the form of its JSON export (_label_studio_index reads both); None for any other
    document. A region's shape is its labels' key's (keypointlabels, ...) or, for a tag without
    labels, its fields' (points: a polygon, radiusX: an ellipse, height: a rectangle, else a
    keypoint). The document is told by a region that records the image's size or carries labels
    (a labels key: keypointlabels, ...); regions recorded without either (imported through the
    API, of a tag without labels) are then read too, placed on the image's own size."""
    def regions(task) -> dict:
        return {k: v for k, v in task.items() if isinstance(v, list) and v and all(
            isinstance(r, dict) and ("x" in r or "points" in r) for r in v)}

    def told(found) -> bool:
        return any("original_width" in r or _ls_labels_key(r) for r in found)
    if not (isinstance(doc, list) and doc and all(isinstance(t, dict) for t in doc)) or any(
            {"data", "annotations", "completions"} & set(t) for t in doc) or not any(
            told(v) for t in doc for v in regions(t).values()):
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
                labels = _ls_labels_key(r)
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
    return tuple(outline_centroid(xy[:, 0], xy[:, 1]))      # a polygon


def _label_studio_unsized(value: dict, shape: str) -> tuple[tuple, tuple]:
    """A result recorded without the image's size, as the two points A, B whose sum, scaled by
    the image's width and height (w A + h B), is its cell (set_centres): every shape's centre is
    linear in the sides (a polygon's centroid moves with the axes it is scaled along)."""
    if shape == "polygon":
        cx, cy = _label_studio_cell(value, shape, 1.0, 1.0)
        return (cx, 0.0), (0.0, cy)
    return _label_studio_cell(value, shape, 1.0, 0.0), _label_studio_cell(value, shape, 0.0, 1.0)


def _label_studio_index(p: Path, doc: list) -> tuple[dict, dict]:
    """({image file name: [(label, x, y)]}, {name: (width, height)}) of a Label Studio JSON
    export: each task's image by its file name (the upload prefix taken off), the results of its
    first annotation that was not cancelled (several: said in a note), -0.5 px as the other
    tools' continuous coordinates; a marker chooses the results' labels. Results of no shape
    (choices, text areas: of the whole image, with no size recorded) are passed over. A result
    without original_width and original_height (imported through the API and not edited since,
    or exported before Label Studio 1.0) takes its task's other results' size, else the image's
    own: x and y are then (A, B) of _label_studio_unsized, and set_centres places it."""
    out, sizes, several, unsized = {}, {}, [], []
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
        results = kept[0].get("result", []) if kept else []
        recorded = next(((r["original_width"], r["original_height"]) for r in results
                         if isinstance(r, dict) and r.get("original_width") is not None
                         and r.get("original_height") is not None), None)
        for k, r in enumerate(results, 1):
            shape = str(r.get("type", "")).replace("labels", "") if isinstance(r, dict) else ""
            if isinstance(r, dict) and shape not in _LS_SHAPES:
                continue                      # a choice, a text area: whole-image, no cell
            try:
                own = (r.get("original_width"), r.get("original_height"))
                sized = own if None not in own else recorded    # else its task's others'
                if sized is None:             # placed on the image's own size (set_centres)
                    cell = _label_studio_unsized(r["value"], shape)
                else:
                    w, h = (float(v) for v in sized)
                    cell = _label_studio_cell(r["value"], shape, w, h)
                    sizes[name] = (w, h)
            except (KeyError, TypeError, ValueError, AttributeError) as e:
                raise DatasetError(f"{p}: result {k} of task {n} ({name}) cannot be read as a "
                                   f"cell ({e!r}: {brief(r, 80)}); export the project again "
                                   f"(JSON), or as COCO") from None
            value = r["value"]
            key = _ls_labels_key(value)
            labels = value[key] if key else []
            if sized is None:
                marks.append((", ".join(map(str, labels)), *cell))
                if not unsized or unsized[-1] != name:
                    unsized.append(name)
            else:
                marks.append((", ".join(map(str, labels)), cell[0] - 0.5, cell[1] - 0.5))
    if several:
        note(f"{p}: {len(several)} task(s) have more than one annotation ({few(several)}): the "
             f"first of each is read")
    if unsized:
        note(f"{p}: the results of {len(unsized)} task(s) record no image size ({few(unsized)}; "
             f"annotations imported through the API and not edited since, or an export from "
             f"before Label Studio 1.0): their positions, in percent, are taken on the images' "
             f"own sizes")
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
    index = _set_index(str(path), *file_stamp(path)) if path.is_file() else None
    return None if index is None else (index[0], sorted(index[1]))


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
                            outline_centroid(xy[:, 0], xy[:, 1])[None]
                    elif shape.tag == "box":
                        pts = np.array([[(float(shape.get("xtl")) + float(shape.get("xbr"))) / 2,
                                         (float(shape.get("ytl")) + float(shape.get("ybr"))) / 2]])
                    elif shape.tag == "ellipse":
                        pts = np.array([[float(shape.get("cx")), float(shape.get("cy"))]])
                    elif shape.tag == "mask":        # a brush-drawn cell: run lengths over
                        w, h = int(shape.get("width")), int(shape.get("height"))  # its box,
                        runs = [int(v) for v in shape.get("rle").split(",")]      # row by row
                        try:
                            flat = run_pixels(runs, w * h)
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
                    pts = [tuple(outline_centroid(xy[:, 0], xy[:, 1]))]
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


def set_centres(path: Path, kind: str, image: Path, marker: str = "",
                 shape=None) -> np.ndarray:
    """(N, 2) centres that a file of a whole set's annotations gives the image of this file
    name (matched by name, then by stem); `marker`: one label ("" = every one); `shape`: the
    image's, checked against the size the file records for it."""
    _, index, sizes = _set_index(str(path), *file_stamp(path))
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
    if shape is not None:     # Label Studio results that record no size: on this image's
        side = np.array([shape[1], shape[0]], np.float64)
        marks = [(label, *(x[0] * side[0] + y[0] * side[1] - 0.5,
                           x[1] * side[0] + y[1] * side[1] - 0.5))
                 if isinstance(x, tuple) else (label, x, y) for label, x, y in marks]
    return np.array([(x, y) for label, x, y in marks if not marker or label == marker],
                    np.float64).reshape(-1, 2)
