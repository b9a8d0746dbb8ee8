"""ImageJ/Fiji selections: a NAME.roi file, or an ROI Manager set saved as NAME.zip."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pycount.data.annotations.common import outline_centroid
from pycount.errors import DatasetError


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
                out.append(tuple(outline_centroid(xs, ys) - 0.5))
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
