"""Tables of marks: CSV/TSV (x,y; ImageJ Results; napari points; QuPath measurements; boxes) and
.txt files of numbers (ImageJ XY coordinates, YOLO labels with their class names)."""
from __future__ import annotations

import csv
import io
import math
import re
from pathlib import Path

import numpy as np

from pycount.data.annotations.common import CLASS_COLUMNS, marker_absent, rings_centroid
from pycount.errors import DatasetError


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
            cx, cy = rings_centroid([[[x, y] for x, y in zip(v[1::2], v[2::2])]])
        centres.append((cx * w - 0.5, cy * h - 0.5))
    if wanted is not None and wanted not in seen:
        marker_absent(marker, [names[c] if c < len(names) else str(c) for c in sorted(seen)])
    return np.array(centres, np.float64).reshape(-1, 2)
