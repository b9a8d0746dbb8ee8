"""Cell-image datasets: readers for four layouts.

Layouts (``read(layout, root)`` dispatches on the name):

* ``vgg_cells``: the VGG "cells" set of Lempitsky & Zisserman, which Xue et al. 2016 use: a folder of
  ``NNNcell.png`` (RGB fluorescence image) and ``NNNdots.png`` (black image, one red pixel per cell centre).
* ``crc_nuclei``: the CRCHistoPhenotypes release (Sirinukunwattana et al. 2016, the paper's "Nuclei"):
  ``Detection/imgN/imgN.bmp`` with ``Detection/imgN/imgN_detection.mat`` (1-based MATLAB x, y).
* ``generic``: any folder of images with a same-stem ``.csv`` of 0-based x, y centres (also ImageJ
  Results tables); the layout of the private Ki67 set's stand-in (pycount.data.synthetic).
* ``folder``: a lab's own folder (DATASET=path/to/folder): images each paired by name with a CSV, an
  ImageJ/Fiji Cell Counter XML, a QuPath GeoJSON export or a dot-mask image (see folder_pairs),
  beside them or in a subfolder of their own (split_folders), optionally in train/ + test/
  subfolders of a published split (split_parts).

Every reader checks that images and annotations pair up, that images decode and that every centre
lies inside its image, and raises DatasetError naming the offending file.
"""
from __future__ import annotations

import csv
import functools
import io
import math
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import cv2
import numpy as np
import scipy.io
import tifffile

from pycount import config
from pycount.errors import DatasetError  # noqa: F401 (re-exported)

@dataclass(frozen=True, eq=False)  # eq=False: numpy arrays have no scalar equality
class Sample:
    id: str               # e.g. "001"
    image: np.ndarray     # H x W x 3 uint8, RGB
    centres: np.ndarray   # (N, 2) float64, 0-based (x, y) pixel coordinates of cell centres
    source: str = ""      # the image file, for messages about it

    @property
    def count(self) -> int:
        return len(self.centres)




# ----------------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------------

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")  # generic layout, any case
FORMATS = "PNG, JPEG, TIFF and BMP"     # what IMAGE_SUFFIXES name, for messages
OTHER_IMAGE_SUFFIXES = (".gif", ".webp", ".jp2", ".heic", ".czi", ".nd2", ".lif")  # not read
CRC_EDGE_TOLERANCE = 1.0  # px; the CRC release has 5 centres up to 0.35 px beyond the image edge


def _require_dir(root) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder {root} does not exist; set DATA_ROOT to the folder holding "
                           "the release folders (e.g. DATA_ROOT=../shared/datasets)")
    return root


def _natural_key(name: str) -> list:
    """Sort key putting "img2" before "img10": digit runs compare as numbers."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _select(pairs: dict, ids: Optional[Sequence[str]], expected: Callable[[str], Path]) -> list[str]:
    """The requested ids (all of them, naturally sorted, when ids is None), each checked to exist;
    expected(id) is the image path an unknown id would have had, for the message."""
    if ids is None:
        return sorted(pairs, key=_natural_key)
    for i in ids:
        if i not in pairs:
            raise DatasetError(f"{expected(i)} not found (id {i!r} was requested); "
                               "check the id list or the DATA_ROOT folder")
    return list(ids)


def _check_centres(centres: np.ndarray, shape, path: Path, tolerance: float = 0.0) -> np.ndarray:
    """Centres inside the image, as the patch code counts them: -0.5 <= x < W-0.5, -0.5 <= y < H-0.5.

    Centres at most `tolerance` px beyond an edge (annotation clicks on the border) are moved onto the
    nearest edge pixel; any other centre outside (or not finite) raises DatasetError naming `path`."""
    h, w = shape[:2]
    limit = np.array([w, h], np.float64) - 0.5
    outside = ~np.isfinite(centres) | (centres < -0.5) | (centres >= limit)
    if tolerance > 0:
        near = outside & (centres >= -0.5 - tolerance) & (centres < limit + tolerance)
        centres = np.where(near, np.clip(centres, 0, limit - 0.5), centres)
        outside &= ~near
    bad = np.nonzero(outside.any(axis=1))[0]
    if len(bad):
        x, y = centres[bad[0]]
        raise DatasetError(f"{path}: cell centre {bad[0] + 1} at 0-based (x, y) = ({x:g}, {y:g}) lies outside "
                           f"the {w}x{h} image (x must be in [-0.5, {w - 0.5:g}), y in [-0.5, {h - 0.5:g})); "
                           f"correct or delete that entry ({len(bad)} centre(s) outside in all)")
    return centres


def _sample(i: str, image: np.ndarray, centres: np.ndarray, path: Path, image_path: Path,
            tolerance: float = 0.0) -> Sample:
    centres = np.asarray(centres, np.float64).reshape(-1, 2)
    return Sample(id=i, image=image, centres=_check_centres(centres, image.shape, path, tolerance),
                  source=str(image_path))


# --- vgg_cells ---------------------------------------------------------------------------------------

def _pairs(root: Path) -> dict[str, tuple[Path, Path]]:
    """Map id -> (cell path, dots path), checking that every file has its partner."""
    cells = {p.name[: -len("cell.png")]: p for p in root.glob("*cell.png")}
    dots = {p.name[: -len("dots.png")]: p for p in root.glob("*dots.png")}
    regen = "(a synthetic set regenerates when its folder is deleted)"
    return _partnered(
        cells, dots,
        lambda i: f"{cells[i]} has no matching dots file {root / (i + 'dots.png')}; "
                  f"restore it or remove the image {regen}",
        lambda i: f"{dots[i]} has no matching cell image {root / (i + 'cell.png')}; "
                  f"restore it or remove the dots file {regen}")


def _partnered(first: dict, second: dict, lacks_second, lacks_first) -> dict[str, tuple[Path, Path]]:
    """Map id -> (first, second) where every id has both; else DatasetError with the message the
    caller words for the first id (sorted) that lacks its partner."""
    for i in sorted(first.keys() - second.keys()):
        raise DatasetError(lacks_second(i))
    for i in sorted(second.keys() - first.keys()):
        raise DatasetError(lacks_first(i))
    return {i: (first[i], second[i]) for i in first}


def _imread_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DatasetError(f"cannot decode {path}: the file is corrupt or not an image; "
                           "replace it from the original release (a synthetic set regenerates when its folder is deleted)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def dots_to_centres(dots_rgb: np.ndarray) -> np.ndarray:
    """(N, 2) float64 (x, y) of the red dot pixels: red high, green and blue low."""
    r, g, b = (dots_rgb[..., c].astype(np.int16) for c in range(3))
    ys, xs = np.nonzero((r >= 128) & (g < 128) & (b < 128))
    return np.stack([xs, ys], axis=1).astype(np.float64)


def read_vgg_cells(root, ids: Optional[Sequence[str]] = None) -> list[Sample]:
    """Read the NNNcell.png / NNNdots.png pairs under ``root`` (all of them, sorted by id, or ``ids``).

    Dots are pixels of a same-size image, so their centres are inside by construction."""
    root = _require_dir(root)
    pairs = _pairs(root)
    if not pairs:
        raise DatasetError(f"no NNNcell.png/NNNdots.png pairs found in {root}; set DATA_ROOT to the "
                           "folder holding the release (e.g. DATA_ROOT=../shared/datasets)")
    samples = []
    for i in _select(pairs, ids, lambda i: root / (i + "cell.png")):
        cell_path, dots_path = pairs[i]
        image, dots = _imread_rgb(cell_path), _imread_rgb(dots_path)
        if image.shape[:2] != dots.shape[:2]:
            raise DatasetError(f"{dots_path} is {dots.shape[1]}x{dots.shape[0]} but {cell_path} is "
                               f"{image.shape[1]}x{image.shape[0]}; the pair must have the same size "
                               "(replace the files from the original release)")
        samples.append(Sample(id=i, image=image, centres=dots_to_centres(dots),
                              source=str(cell_path)))
    return samples


# --- crc_nuclei --------------------------------------------------------------------------------------

def _crc_pairs(detection: Path) -> dict[str, tuple[Path, Path]]:
    """Map id "N" -> (imgN.bmp, imgN_detection.mat) over the Detection/imgN folders."""
    pairs = {}
    for folder in detection.iterdir():
        match = re.fullmatch(r"img(\d+)", folder.name)
        if not (folder.is_dir() and match):
            continue
        image, mat = folder / f"{folder.name}.bmp", folder / f"{folder.name}_detection.mat"
        for present, absent in ((image, mat), (mat, image)):
            if present.is_file() and not absent.is_file():
                raise DatasetError(f"{present} has no partner {absent}; restore it from the "
                                   f"CRCHistoPhenotypes release or delete the folder {folder}")
        if image.is_file():
            pairs[str(int(match.group(1)))] = image, mat
    return pairs


def _read_detection_mat(path: Path) -> np.ndarray:
    """The `detection` variable: K x 2 (x, y) in 1-based MATLAB pixel coordinates, returned 0-based."""
    try:
        mat = scipy.io.loadmat(str(path))
    except NotImplementedError:  # scipy's answer to MATLAB v7.3 (HDF5) files
        raise DatasetError(f"{path} is a MATLAB v7.3 (HDF5) file, which scipy cannot read; re-save it in "
                           "MATLAB with save(file, 'detection', '-v7')") from None
    except Exception as e:  # scipy raises assorted types (MatReadError, ValueError, TypeError) on bad files
        raise DatasetError(f"cannot read {path} ({e}); replace it from the CRCHistoPhenotypes release") from None
    if "detection" not in mat:
        found = sorted(k for k in mat if not k.startswith("__"))
        raise DatasetError(f"{path} has no variable 'detection' (it holds {found}); "
                           "replace it from the CRCHistoPhenotypes release")
    detection = np.asarray(mat["detection"])
    if detection.size == 0:  # an image without nuclei may be saved as a 0x0 array
        return np.empty((0, 2))
    if detection.ndim != 2 or detection.shape[1] != 2 or not np.issubdtype(detection.dtype, np.number):
        raise DatasetError(f"{path}: 'detection' is a {detection.shape} {detection.dtype} array, expected "
                           "K x 2 numbers (x, y); replace it from the CRCHistoPhenotypes release")
    return detection.astype(np.float64) - 1.0


def read_crc_nuclei(root, ids: Optional[Sequence[str]] = None) -> list[Sample]:
    """Read the CRCHistoPhenotypes detection set; ``root`` is the release folder (holding Detection/).

    Ids are the image numbers as strings, "1" .. "100", sorted numerically. Centres are converted from
    1-based MATLAB coordinates to 0-based by subtracting 1; centres at most CRC_EDGE_TOLERANCE px beyond
    the image edge (5 clicks on the border in the release) are moved onto the edge pixel."""
    root = _require_dir(root)
    detection = root / "Detection"
    if not detection.is_dir():
        raise DatasetError(f"{detection} not found; root must be the CRCHistoPhenotypes_2016_04_28 release "
                           "folder, the one holding Detection/imgN/")
    pairs = _crc_pairs(detection)
    if not pairs:
        raise DatasetError(f"no Detection/imgN/imgN.bmp images found under {root}; root must be the "
                           "CRCHistoPhenotypes_2016_04_28 release folder")
    samples = []
    for i in _select(pairs, ids, lambda i: detection / f"img{i}" / f"img{i}.bmp"):
        image_path, mat_path = pairs[i]
        samples.append(_sample(i, _imread_rgb(image_path), _read_detection_mat(mat_path), mat_path,
                               image_path, CRC_EDGE_TOLERANCE))
    return samples


# --- generic -----------------------------------------------------------------------------------------

def _refuse_broken_link(path: Path) -> None:
    """DatasetError for a symbolic link to nothing: it is no file, so a listing would skip it
    and report its partner as unpaired."""
    if path.is_symlink() and not path.exists():
        raise DatasetError(f"{path} is a broken link (to {os.readlink(path)}, which does not "
                           "exist); restore the file it points to, or remove the link")


def _generic_pairs(root: Path) -> dict[str, tuple[Path, Path]]:
    """Map file stem -> (image, csv), checking that every image has its CSV and vice versa."""
    images, tables = {}, {}
    for path in sorted(root.iterdir()):
        suffix = path.suffix.lower()
        if suffix in IMAGE_SUFFIXES or suffix == ".csv":
            _refuse_broken_link(path)
        kind = images if suffix in IMAGE_SUFFIXES else tables if suffix == ".csv" else None
        if kind is None or not path.is_file():
            continue
        if path.stem in kind:
            raise DatasetError(f"{kind[path.stem]} and {path} share the id {path.stem!r}; keep one of them")
        kind[path.stem] = path
    return _partnered(
        images, tables,
        lambda i: f"{images[i]} has no annotation {root / (i + '.csv')}; add the CSV of its cell "
                  "centres (header x,y) or remove the image",
        lambda i: f"{tables[i]} has no matching image {i}{{{','.join(IMAGE_SUFFIXES)}}} in {root}; "
                  "add the image or remove the CSV")


def _to_uint8(data: np.ndarray, depth_range: Sequence[float] = ()) -> np.ndarray:
    """8-bit data as is. Deeper data (16-bit, float): with depth_range (lo, hi), the values lo..hi
    map to 0..255, clipped: one mapping for every image of a dataset (an own folder's, inferred
    from its training images by owndata and kept in its runs), so that an image's brightness
    keeps its meaning. Without it, a robust per-image contrast stretch: the 0.1st and 99.9th
    percentiles over all channels map to 0 and 255 (a few hot pixels or a 12-bit camera in a
    16-bit container do not leave the image dark, but an empty field is stretched to noise)."""
    if data.dtype == np.uint8:
        return data
    data = data.astype(np.float64)
    if len(depth_range) == 2 and depth_range[1] > depth_range[0]:
        lo, hi = float(depth_range[0]), float(depth_range[1])
    else:
        lo, hi = depth_percentiles(data)
        if hi <= lo:  # (nearly) flat image: fall back to the full range, or black
            lo, hi = data.min(), max(data.max(), data.min() + 1)
    return np.rint(np.clip((data - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)


def outside_range(data: np.ndarray, depth_range: Sequence[float] = ()) -> str:
    """"" when a deeper image's raw values lie mostly within depth_range (or there is none, or the
    image is 8-bit); else what is wrong, in words (config.DEPTH_OUTSIDE_WARN)."""
    if data.dtype == np.uint8 or len(depth_range) != 2:
        return ""
    lo, hi = depth_range
    below, above = float(np.mean(data < lo)), float(np.mean(data > hi))
    if below + above <= config.DEPTH_OUTSIDE_WARN:
        return ""
    side = (f"{below:.0%} below {lo:g}" if below >= above else f"{above:.0%} above {hi:g}")
    return (f"{side} of its {data.dtype} values lie outside the range [{lo:g}, {hi:g}] its "
            f"dataset's training images span (depth_range), so it reads as mostly "
            f"{'black' if below >= above else 'white'}: an image of another camera, bit depth or "
            f"exposure; save it like the training images")


def depth_percentiles(data: np.ndarray) -> tuple[float, float]:
    """The 0.1st and 99.9th percentiles of an image's values over all channels."""
    lo, hi = np.percentile(data, config.DEPTH_PERCENTILES)
    return float(lo), float(hi)


# a marker inside a JPEG scan's entropy-coded data: 0xFF not followed by a stuffed 0x00, a restart
# marker (0xD0-0xD7) or another 0xFF (fill)
_JPEG_SCAN_END = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF


def _jpeg_complete(data: bytes) -> bool:
    """Does a JPEG file reach its end-of-image marker (FF D9)? libjpeg decodes a file cut short
    with a grey fill and only a warning on stderr. The segments are walked from the start, each
    skipped by its length (so the EOI of an EXIF thumbnail inside APP1 is never mistaken for the
    end), each scan's entropy-coded data up to its next marker; bytes after the EOI (padding, a
    camera's trailer) do not matter."""
    i, n = 2, len(data)
    while i + 1 < n:
        if data[i] != 0xFF:                  # stray bytes between segments: libjpeg skips them
            i = data.find(b"\xff", i)
            if i < 0:
                return False
            continue
        marker = data[i + 1]
        if marker == 0xD9:
            return True
        if marker == 0xFF:                   # fill byte before a marker
            i += 1
        elif marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:   # markers without a length
            i += 2
        else:
            if i + 3 >= n:
                return False
            i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
            if marker == 0xDA:               # start of scan: its coded data runs to the next marker
                found = _JPEG_SCAN_END.search(data, i)
                if found is None:
                    return False
                i = found.start()
    return False


def _decode(path: Path, what: str = "") -> tuple[np.ndarray, bool]:
    """(pixels, bgr) of one image file as stored (any depth and channels; bgr: cv2's channel
    order, else tifffile's RGB). DatasetError "cannot decode <what><path>: ..." when the file is
    not an image, a broken link, a GIF, a JPEG cut short, a TIFF of several pages (cv2 would read
    the first only) or of two channels the second of which is not alpha, or a float image with
    NaN or infinite values."""
    def fail(why, fix="replace or remove it"):
        return DatasetError(f"cannot decode {what}{path}: {why}; {fix}")
    try:
        with open(path, "rb") as f:
            head = f.read(4)
            if head[:3] == b"\xff\xd8\xff" and not _jpeg_complete(head + f.read()):
                raise fail("the JPEG file ends before its end-of-image marker (it was cut short, "
                           "e.g. by an interrupted copy or download)")
    except OSError as e:
        if path.is_symlink() and not path.exists():
            raise fail(f"it is a broken link (to {os.readlink(path)}, which does not exist)",
                       "restore the file it points to, or remove the link") from None
        raise fail(f"the file cannot be read ({e.strerror or e})") from None
    if head == b"GIF8":                      # GIF87a, GIF89a: no suffix of IMAGE_SUFFIXES
        raise fail(f"GIF is not a supported format ({FORMATS} are)", "convert it to PNG or TIFF")
    channels, bits, alpha, planar = (_tiff_channels(path) if head in _TIFF_MAGIC
                                     else (0, 0, False, False))
    if channels == 2 and not alpha:          # cv2 would read the first channel only
        raise fail("it has two channels and the second is not marked as alpha (two stains or "
                   "fluorescence channels?), and one grey, RGB or RGBA image is read",
                   "merge the channels into one RGB image (Fiji: Image > Color > Merge Channels) "
                   "or save the channel to count as a grey image, or remove it")
    # channels stored as separate planes: cv2 (4.10) decodes them into pixels that change from
    # one read to the next (16-bit, float) or are wrong (tiled): tifffile reads those
    data, bgr, pages = (None if planar else cv2.imread(str(path), cv2.IMREAD_UNCHANGED)), True, 1
    if data is not None and head in _TIFF_MAGIC:
        try:
            pages = cv2.imcount(str(path))
        except cv2.error:                    # it decoded, so it has one page at least
            pages = 1
    deep = data is not None and channels == 2 and bits > 8   # cv2 cuts grey + alpha to 8 bits
    if (data is None or deep) and (head in _TIFF_MAGIC or path.suffix.lower() in (".tif", ".tiff")):
        try:
            with tifffile.TiffFile(path) as tif:   # tifffile keeps the file's RGB order
                series = tif.series[0]
                data, bgr, pages = series.asarray(), False, len(series.pages)
                if "S" in series.axes:             # planar channels: last, as cv2 gives them
                    data = np.moveaxis(data, series.axes.index("S"), -1)
        except Exception:  # tifffile raises many types on broken files; all mean "cannot decode"
            data = data if deep else None    # (deep: a codec tifffile lacks; cv2's 8 bits remain)
        if data is not None and data.size == 0:    # a TIFF cut short: its pages are lost
            data = None
    if data is None:
        raise fail("the file is corrupt or not an image")
    if pages > 1:
        raise fail(f"it is a TIFF of {pages} pages (a stack, time series or channels), and one "
                   "image per file is read", "save each page as an image of its own (Fiji: Image "
                   "> Stacks > Stack to Images) or the channels as one RGB image, or remove it")
    if data.dtype.kind == "f" and not np.isfinite(data).all():
        bad = int(data.size - np.isfinite(data).sum())
        raise fail(f"{bad} of its {data.size} pixel values are NaN or infinite", "replace them "
                   "(Fiji: Process > Math > Remove NaNs) and save it again, or remove it")
    return data, bgr


def _tiff_channels(path: Path) -> tuple[int, int, bool, bool]:
    """(channels per pixel, bits per channel, whether the second channel is alpha, whether the
    channels are stored as separate planes) of a TIFF's first page, from its header; (0, 0,
    False, False) where tifffile cannot parse it."""
    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            # ExtraSamples 1: associated alpha, 2: unassociated alpha, 0: unspecified
            return (page.samplesperpixel, page.bitspersample, page.extrasamples[:1] in ((1,), (2,)),
                    page.samplesperpixel > 1 and int(page.planarconfig) == 2)
    except Exception:  # as in _decode: a broken file
        return 0, 0, False, False


def _decoded(path: Path) -> np.ndarray:
    """An image file's pixels at their own depth: H x W grey or H x W x 3 RGB, alpha dropped
    (before any depth conversion, so an opaque alpha cannot darken the rest). TIFFs cv2 cannot
    decode go to tifffile; what _decode refuses (a cut JPEG, a multi-page TIFF, two channels that
    are not grey + alpha, NaN pixels) raises DatasetError."""
    data, bgr = _decode(Path(path))
    if data.ndim == 3 and data.shape[2] in (1, 2):     # grey, grey + alpha (_decode checked it)
        data = data[..., 0]
    if not (data.ndim == 2 or (data.ndim == 3 and data.shape[2] in (3, 4))):
        raise DatasetError(f"{path} has shape {data.shape}; expected one grey, RGB or RGBA image "
                           "(save multi-page or multi-channel stacks as one image per file)")
    if data.ndim == 3:
        data = data[..., 2::-1] if bgr else data[..., :3]
    return data


def _to_rgb8(data: np.ndarray, depth_range: Sequence[float] = ()) -> np.ndarray:
    """_decoded's pixels as H x W x 3 uint8 RGB (grey replicated; depth as _to_uint8)."""
    data = _to_uint8(data, depth_range)
    if data.ndim == 2:
        return np.repeat(data[..., None], 3, axis=2)
    return np.ascontiguousarray(data)


def _read_any_image(path: Path, depth_range: Sequence[float] = ()) -> np.ndarray:
    """Decode an 8/16-bit (or float) grey, grey + alpha, RGB or RGBA image into H x W x 3 uint8
    RGB (_decoded, then _to_rgb8; depth_range: see _to_uint8)."""
    return _to_rgb8(_decoded(path), depth_range)


def read_in_range(path: Path, depth_range: Sequence[float] = ()) -> tuple[np.ndarray, str]:
    """(_read_any_image's RGB, outside_range's words on its raw values): an image read through
    its dataset's depth_range, and whether that range suits it."""
    raw = _decoded(path)
    return _to_rgb8(raw, depth_range), outside_range(raw, depth_range)


# A table's column of each row's class (QuPath's measurement tables: "Class" up to 0.3,
# "Classification" since; a napari points layer's property): what a marker chooses rows by
CLASS_COLUMNS = ("Classification", "Class", "class", "label")


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
    first = text.split("\n", 1)[0]
    sep = next((c for c in ";\t" if c in first and "," not in first), ",")
    rows = csv.reader(io.StringIO(text), delimiter=sep)
    header = [name.strip() for name in next(rows, [])]
    shift = 0.0
    for names in (("x", "y"), ("X", "Y"), ("axis-1", "axis-0"),   # napari: axis-0 is the row
                  ("Centroid X px", "Centroid Y px")):            # QuPath's measurement table
        if set(names) <= set(header):
            ix, iy = (header.index(n) for n in names)
            # QuPath's coordinates are continuous, pixel k spanning [k, k+1): its centre k + 0.5
            shift = 0.5 if names[0].startswith("Centroid") else 0.0
            break
    else:
        unit = next((h[len("Centroid X "):] for h in header if h.startswith("Centroid X ")), None)
        if unit is not None:
            raise DatasetError(f"{path} gives QuPath's centroids in {unit}, "
                               f"not pixels; export the measurements with pixel coordinates "
                               f"(Centroid X px, Centroid Y px: an image whose pixel size is not "
                               f"set), or the objects as GeoJSON")
        raise DatasetError(f"{path} has header {sep.join(header)!r} without x and y columns; expected the "
                           "header line 'x,y' (0-based pixel coordinates), an ImageJ Results table with "
                           "X and Y columns or a napari points layer saved as CSV (axis-0, axis-1)")
    ic = next((header.index(c) for c in CLASS_COLUMNS if c in header), None)
    if marker and ic is None:
        raise DatasetError(f"{path} has no class column ({', '.join(CLASS_COLUMNS)}) for the "
                           f"marker {marker!r} to choose its rows by; leave the marker out (every "
                           f"row counts), or export the table with the cells' classes")
    if "axis-2" in header and names[0] == "axis-1":
        raise DatasetError(f"{path} holds the points of a napari layer with more than two axes "
                           f"(header {','.join(header)!r}: a z-stack or a time series); pycount "
                           f"reads 2-D images: save the points of one 2-D image's layer")
    centres = []
    for row in rows:
        if not any(field.strip() for field in row):
            continue
        try:
            x, y = (float(row[i].strip().replace(",", ".") if sep == ";" else row[i])
                    for i in (ix, iy))
            if not (math.isfinite(x) and math.isfinite(y)):
                raise ValueError
        except (ValueError, IndexError):
            raise DatasetError(f"{path}, line {rows.line_num}: {','.join(row)!r} has no numeric "
                               f"{header[ix]},{header[iy]} values; fix or delete that line") from None
        if marker and (row[ic].strip() if ic < len(row) else "") != marker:
            continue
        centres.append((x - shift, y - shift))
    return np.array(centres, np.float64).reshape(-1, 2)


def read_generic(root, ids: Optional[Sequence[str]] = None, depth_range: Sequence[float] = ()
                 ) -> list[Sample]:
    """Read a folder of images (.png .jpg .jpeg .tif .tiff, any case) with same-stem .csv centre files
    (see read_centres_csv; images are converted as in _read_any_image). Ids are the file stems,
    naturally sorted ("2" before "10") when ``ids`` is None. Other files are ignored."""
    root = _require_dir(root)
    pairs = _generic_pairs(root)
    if not pairs:
        raise DatasetError(f"no images with same-stem .csv annotations found in {root}; expected e.g. "
                           "001.png with 001.csv (header x,y)")
    samples = []
    for i in _select(pairs, ids, lambda i: root / f"{i}.png"):
        image_path, csv_path = pairs[i]
        samples.append(_sample(i, _read_any_image(image_path, depth_range), read_centres_csv(csv_path), csv_path,
                               image_path))
    return samples



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


def _outline_centroid(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """The area centroid of a closed outline (the vertex mean of one without area)."""
    x1, y1 = np.roll(xs, -1), np.roll(ys, -1)
    cross = xs * y1 - x1 * ys
    area = cross.sum() / 2
    if abs(area) < 1e-9:
        return np.array([xs.mean(), ys.mean()])
    return np.array([((xs + x1) * cross).sum(), ((ys + y1) * cross).sum()]) / (6 * area)


def _voc_centres(root, path: Path, marker: str = "") -> np.ndarray:
    """(N, 2) centres of a Pascal VOC annotation's boxes (LabelImg, CVAT's VOC export; the BCCD
    blood cell set): one cell per <object> at its <bndbox>'s centre, VOC's 1-based pixel
    coordinates made 0-based. `marker`: one object <name> ("" = every object)."""
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
    if marker and marker not in names:
        raise DatasetError(f"{path} has no object named {marker!r} (its names: "
                           f"{', '.join(sorted(names))}); choose one of them, or leave the marker "
                           f"out to count all")
    return np.array(out, np.float64).reshape(-1, 2)


def read_cellcounter_xml(path: Path, marker: str = "") -> np.ndarray:
    """(N, 2) centres from an ImageJ/Fiji Cell Counter file (File > Save Markers):
    CellCounter_Marker_File / Marker_Data / Marker_Type (Type number, optional Name) / Marker
    (MarkerX, MarkerY, MarkerZ). Cell Counter stores integer 0-based pixel indices, which are this
    package's coordinates as they are. `marker`: one marker type (its number, e.g. "2", or its name);
    "" counts the markers of every type."""
    import xml.etree.ElementTree as ET
    try:
        root = ET.parse(str(path)).getroot()
    except (ET.ParseError, OSError) as e:
        raise DatasetError(f"cannot read {path} as Cell Counter XML ({e}); save it again with "
                           "Cell Counter's 'Save Markers'") from None
    if root.tag == "annotation" and root.find("object") is not None:
        return _voc_centres(root, path, marker)
    data = root.find("Marker_Data")
    if root.tag != "CellCounter_Marker_File" or data is None:
        raise DatasetError(f"{path} is XML but not a Cell Counter marker file (root <{root.tag}>, "
                           "expected <CellCounter_Marker_File> with <Marker_Data>) nor a Pascal VOC "
                           "annotation (<annotation> with <object>s); save the markers with Fiji's "
                           "Cell Counter ('Save Markers')")
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


def read_qupath_geojson(path: Path, marker: str = "") -> np.ndarray:
    """(N, 2) centres from a QuPath GeoJSON export (File > Export objects as GeoJSON: a
    FeatureCollection, or a plain list of Features from older versions). Each Point of a Point or
    MultiPoint is one cell (QuPath's counting tool). Each Polygon or MultiPolygon of a detected
    object (QuPath's cell detection; objectType "detection" or "cell", or none, as other tools
    write them) is one cell at its area centroid, the nucleus's where the feature has a
    nucleusGeometry. Other shapes QuPath users draw (a region around the counted area, a line:
    objectType "annotation") and tiles are ignored, the members of a GeometryCollection read by
    these rules, and features without geometry skipped; any other geometry raises DatasetError.
    QuPath's coordinates are continuous with pixel i spanning [i, i+1), so 0.5 is subtracted to
    get this package's pixel-centre coordinates. `marker`: one classification name ("" = every
    cell)."""
    import json
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise DatasetError(f"cannot read {path} as GeoJSON ({e}); export it again from QuPath "
                           "(File > Export objects as GeoJSON)") from None
    if isinstance(doc, dict) and doc.get("type") == "FeatureCollection":
        features = doc.get("features") or []
    elif isinstance(doc, dict) and doc.get("type") == "Feature":
        features = [doc]
    elif isinstance(doc, list):
        features = doc
    elif isinstance(doc, dict) and isinstance(doc.get("shapes"), list):
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

    centres, classes = [], set()
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
            continue
        cls = _qupath_class(f)
        classes.add(str(cls))
        if _matches(marker, cls):
            centres.extend((x - 0.5, y - 0.5) for x, y in found)
    if marker and not any(_matches(marker, c) for c in classes):
        raise DatasetError(f"{path} has no cells of class {marker!r} (classes found: "
                           f"{', '.join(sorted(classes)) or 'none'}); choose one of them (MARKER=, or "
                           "marker in pycount.toml), or leave it out to count all")
    return np.array(centres, np.float64).reshape(-1, 2)


def read_dot_mask(path: Path, shape=None) -> np.ndarray:
    """(N, 2) centres of a dot-mask image (any colour, any bit depth; an alpha channel is
    ignored). With `shape`, the mask must be the image's size. Dots of one pixel, as the VGG
    cells and most releases mark them: every non-zero pixel is one cell (neighbouring marks stay
    two). Dots drawn as small discs (the mask's median 8-connected blob is larger than a pixel):
    one cell per blob, at its centroid, and a blob of k times the median area (touching discs) k
    cells. A JPEG mask's compression noise is dropped: its pixels count from half its maximum."""
    data, _ = _decode(Path(path), "the dot mask ")
    if data.ndim == 3:
        data = data[..., :3] if data.shape[2] >= 3 else data[..., :1]
        data = data.max(axis=2)
    if shape is not None and data.shape[:2] != tuple(shape[:2]):
        raise DatasetError(f"the dot mask {path} is {data.shape[1]}x{data.shape[0]} px but its image is "
                           f"{shape[1]}x{shape[0]}; a mask must have its image's size")
    on = data >= max(1, int(data.max()) // 2) if Path(path).suffix.lower() in (".jpg", ".jpeg") \
        else data != 0
    return mask_centres(on, path)


def mask_centres(on: np.ndarray, source="") -> np.ndarray:
    """(N, 2) x, y of the cells a boolean dot mask marks (read_dot_mask's rule). A mask that is
    mostly marked (solid, inverted) or holds a blob far larger than its dots (a filled region, an
    outline; config.MASK_MAX_*) is no dot mask: DatasetError naming `source`."""
    ys, xs = np.nonzero(on)
    pixels = np.stack([xs, ys], axis=1).astype(np.float64)
    mask = f"the dot mask{f' {source}' if source else ''}"
    fix = ("a dot mask marks each cell with one pixel or a small dot on a black background: mark "
           "the cell centres instead, or give them as a CSV (x,y)")
    if len(pixels) > config.MASK_MAX_ON_SHARE * on.size:
        raise DatasetError(f"{mask} marks {len(pixels) / on.size:.0%} of its pixels (is it "
                           f"inverted, or a filled region?); {fix}")
    if len(pixels) < 2:
        return pixels
    n, _, stats, centroids = cv2.connectedComponentsWithStats(on.astype(np.uint8), connectivity=8)
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
    cells = np.maximum(1, np.round(areas / typical)).astype(int)
    return np.repeat(centroids[1:], cells, axis=0).astype(np.float64)


# --- folder: any images, each with an annotation of its stem -----------------------------------------

ANNOTATION_KINDS = {".csv": "CSV", ".tsv": "CSV", ".xml": "XML (Cell Counter or Pascal VOC)",
                    ".geojson": "QuPath GeoJSON", ".json": "JSON (QuPath GeoJSON or LabelMe)",
                    ".roi": "ImageJ ROI", ".zip": "ImageJ ROI"}
MASK_TAILS = ("_dots", "-dots", "dots")  # NAME_dots.png, NAME-dots.png, NAMEdots.png: dot masks
SPEC_FILE = "pycount.toml"


def _annotation_keys(stem: str) -> list[str]:
    """The image stems an annotation or mask stem may belong to."""
    keys = [stem]
    if stem.startswith("CellCounter_"):   # Cell Counter's default file name: CellCounter_<image>.xml
        keys.append(stem[len("CellCounter_"):])
    # named after the image's whole file name (img.tif.geojson, img.png.csv: what export scripts
    # that append a suffix to the image's name write)
    keys += [k[:-len(sfx)] for k in list(keys) for sfx in IMAGE_SUFFIXES
             if k.lower().endswith(sfx) and len(k) > len(sfx)]
    return keys + _mask_bases(stem)


def _mask_bases(stem: str) -> list[str]:
    """The image stems a dot mask's stem may name: "dots" taken off its end (NAME_dots,
    NAME-dots, NAMEdots; the VGG's NNNdots for NNNcell) or out of its middle (the MBM release's
    NAME_dots_000 for NAME_000); [] for a stem without it."""
    low, keys = stem.lower(), []
    for tail in MASK_TAILS:
        if low.endswith(tail) and len(stem) > len(tail):
            base = stem[:-len(tail)]
            keys += [base, base + "cell", base + "_cell", base + "-cell"]  # VGG: NNNcell / NNNdots
            break
    for sep in "_-":
        at = low.find(f"{sep}dots{sep}")
        if at > 0:
            keys.append(stem[:at] + stem[at + len(sep) + 4:])
    return keys


# The names a subfolder of annotations goes by where a folder keeps its images and their marks
# apart (images/ + dots/, img/ + labels/, ...): compared in lower case, "_" and "-" alike
ANNOTATION_FOLDERS = frozenset({"annotations", "annotation", "labels", "label", "dots", "dot",
                                "points", "point", "gt", "groundtruth", "ground_truth", "markers",
                                "marks", "counts", "csv", "xml", "geojson", "masks", "dotmasks",
                                "dot_masks"})


def _visible_files(folder: Path) -> list[Path]:
    """A folder's files, hidden ones left out; a broken link to an image or annotation refused."""
    listed = [p for p in sorted(folder.iterdir()) if not p.name.startswith(".")]
    for p in listed:
        if p.suffix.lower() in IMAGE_SUFFIXES or p.suffix.lower() in ANNOTATION_KINDS:
            _refuse_broken_link(p)
    return [p for p in listed if p.is_file()]


def _entries(folder: Path) -> list[Path]:
    """A folder's images and annotations (_visible_files)."""
    return [p for p in _visible_files(folder)
            if p.suffix.lower() in IMAGE_SUFFIXES or p.suffix.lower() in ANNOTATION_KINDS]


def _subfolders(folder: Path) -> list[Path]:
    """A folder's subfolders, hidden ones left out, in name order."""
    return [d for d in sorted(folder.iterdir()) if d.is_dir() and not d.name.startswith(".")]


def _has_images(folder: Path) -> bool:
    return any(p.suffix.lower() in IMAGE_SUFFIXES for p in _entries(folder))


def _images_by_stem(files: list[Path]) -> dict[str, Path]:
    images: dict[str, Path] = {}
    for p in files:
        if p.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if p.stem in images:                 # one id, two files: either could be the image meant
            raise DatasetError(f"{images[p.stem]} and {p} are two images of the same name "
                               f"{p.stem!r}; keep one of them (or rename the other)")
        images[p.stem] = p
    return images


def split_folders(root: Path) -> tuple[Path, Path] | None:
    """(images folder, annotations folder) of a folder that holds no image or annotation itself
    but keeps them in two subfolders (images/ + dots/, as many public sets and lab exports do):
    the annotations folder is the one named like it (ANNOTATION_FOLDERS) or the one without
    images; None where root holds its files itself. Any other arrangement of subfolders is a
    DatasetError that names them and the layouts read. Also the export of an annotation tool
    that writes one file of the whole set's annotations beside a folder of the images (CVAT:
    annotations.xml + images/): (that folder, root)."""
    entries = _entries(root)
    if entries:
        if any(p.suffix.lower() in IMAGE_SUFFIXES for p in entries) \
                or not all(_set_file(p) for p in entries):
            return None
        holding = [d for d in _subfolders(root) if _has_images(d)]
        return (holding[0], root) if len(holding) == 1 else None
    subs = [d for d in _subfolders(root) if _entries(d)]
    if not subs:
        return None
    together = f"keep the images and their annotations together in {root}"
    layouts = (f"{together}, or in two subfolders of it: the images in one, the annotations "
               f"(named after the images, dot masks too) in one called e.g. dots/, labels/ or "
               f"annotations/")
    if len(subs) == 1:                       # everything in one subfolder: read as the folder
        return None
    if len(subs) != 2:
        raise DatasetError(f"{root} holds no images itself but {len(subs)} subfolders with images "
                           f"or annotations ({', '.join(d.name for d in subs)}); {layouts}")
    named = [d for d in subs if _folder_key(d.name) in ANNOTATION_FOLDERS]
    imageless = [d for d in subs if not _has_images(d)]
    notes = named if len(named) == 1 else imageless if len(imageless) == 1 else []
    if not notes:
        raise DatasetError(f"{root}: cannot tell which of its subfolders {subs[0].name}/ and "
                           f"{subs[1].name}/ holds the annotations; rename that one to dots/, "
                           f"labels/ or annotations/ (or {together})")
    return next(d for d in subs if d != notes[0]), notes[0]


# Subfolders that hold a published split: their images train (val/ among them: pycount draws
# its own validation images from the training ones) or test. Compared as ANNOTATION_FOLDERS.
SPLIT_FOLDERS = {"train": "train", "training": "train", "trainval": "train", "train_val": "train",
                 "val": "train", "valid": "train", "validation": "train", "test": "test",
                 "testing": "test"}


def _folder_key(name: str) -> str:
    low = name.lower().replace("-", "_")
    return low if low in SPLIT_FOLDERS or low in ANNOTATION_FOLDERS else low.replace("_", "")


def split_parts(root: Path) -> list[tuple[str, Path]] | None:
    """[(part, folder)] of a folder whose subfolders hold a published split (train/ + test/,
    trainval/ + test/, train/ + val/ + test/; each of them laid out as folder_pairs reads a
    folder), part "train" or "test"; without a test/ (train/ + val/) its images are one pool
    that the seeded draw splits. None where root is not so laid out."""
    if _entries(root):
        return None
    parts = [(SPLIT_FOLDERS.get(_folder_key(d.name)), d) for d in _subfolders(root)]
    if any(p is None for p, _ in parts) or "train" not in {p for p, _ in parts}:
        return None
    return parts


def _kind_first(root: Path) -> list[tuple[str, str, Path, Path]] | None:
    """[(part, its folder's name, images folder, annotations folder)] of a folder that keeps the
    split inside each kind: images/train/ + images/test/ beside annotations/train/ +
    annotations/test/ (the annotations' folder told by its name); None otherwise."""
    if _entries(root):
        return None
    subs = _subfolders(root)
    notes = [d for d in subs if _folder_key(d.name) in ANNOTATION_FOLDERS]
    if len(subs) != 2 or len(notes) != 1:
        return None
    images = next(d for d in subs if d != notes[0])

    def parts(folder: Path) -> dict[str, Path]:
        return {_folder_key(d.name): d for d in _subfolders(folder)}
    have, marks = parts(images), parts(notes[0])
    if not have or any(k not in SPLIT_FOLDERS for k in have) \
            or "train" not in {SPLIT_FOLDERS[k] for k in have}:
        return None
    for k, d in have.items():
        if k not in marks:
            raise DatasetError(f"{d} has no annotations' folder of its own: {root} keeps the "
                               f"split inside each kind, so {notes[0] / d.name} should hold its "
                               f"images' annotations")
    return [(SPLIT_FOLDERS[k], d.name, d, marks[k]) for k, d in have.items()]


def _units(root: Path) -> list[tuple[str, str, dict]]:
    """[(part, label, {stem: (image, annotation, kind)})] of each folder of a dataset folder's
    layout: the folder itself (part "", label ""), each part of a published split
    (split_parts), or each part kept inside the images' and annotations' folders (_kind_first);
    label: the part's folder name."""
    parts = split_parts(root)
    if parts is not None:
        return [(p, d.name, folder_pairs_in(d)) for p, d in parts]
    nested = _kind_first(root)
    if nested is not None:
        return [(p, label, _pairs_apart(images, notes)) for p, label, images, notes in nested]
    return [("", "", folder_pairs_in(root))]


def folder_layout(root) -> tuple[dict[str, tuple[Path, Path, str]], tuple[str, ...], str]:
    """(pairs by id, the published test part's ids, its folder's name: () and "" without one) of
    a dataset folder: the ids are the image stems, or, where one stem is in two parts (numbering
    restarted in each), every id prefixed with its part's folder name ("test_001")."""
    units = _units(_require_dir(root))
    stems = [i for _, _, pairs in units for i in pairs]
    prefix = len(set(stems)) < len(stems)
    pairs, test, label = {}, [], ""
    for part, name, found in units:
        for i, v in found.items():
            key = f"{name}_{i}" if prefix else i
            pairs[key] = v
            if part == "test":
                test.append(key)
                label = name
    return pairs, tuple(test), label


def folder_pairs(root) -> dict[str, tuple[Path, Path, str]]:
    """Map id -> (image, annotation, kind) of a dataset folder (_units, folder_layout): the images
    and their annotations as folder_pairs_in reads a folder, in the folder itself or in each part
    of a published split."""
    return folder_layout(root)[0]


def _pairs_apart(image_dir: Path, note_dir: Path) -> dict[str, tuple[Path, Path, str]]:
    """The images of one folder paired with the annotations of another (dot masks of any name)."""
    images = _images_by_stem(_entries(image_dir))
    notes = [(p, ANNOTATION_KINDS.get(p.suffix.lower(), "dot mask")) for p in _entries(note_dir)]
    return _paired(images, notes, image_dir, _visible_files(image_dir), note_dir)


def folder_pairs_in(root) -> dict[str, tuple[Path, Path, str]]:
    """Map image stem -> (image, annotation, kind) for the folder layout: every image
    (.png .jpg .jpeg .tif .tiff .bmp) pairs with one annotation named after it: STEM.csv, STEM.xml or
    CellCounter_STEM.xml (Cell Counter), STEM.geojson or STEM.json (QuPath), or a dot mask
    STEM_dots.png / STEM-dots.png / STEMdots.png (any image suffix). Either all in the folder
    itself, or the images in one subfolder and the annotations in another (split_folders), where
    a dot mask may also carry its image's own name (images/001.png, dots/001.png). Every image
    needs exactly one annotation and every annotation its image, else DatasetError names the
    file."""
    root = _require_dir(root)
    split = split_folders(root)
    if split:
        return _pairs_apart(*split)
    if not _entries(root):                   # one subfolder holding it all (a zip's top folder)
        holding = _subfolders(root)
        if len(holding) == 1:
            return folder_pairs(holding[0])
    files = _visible_files(root)
    images = _images_by_stem(files)
    notes = [(p, ANNOTATION_KINDS[p.suffix.lower()]) for p in files
             if p.suffix.lower() in ANNOTATION_KINDS]
    # a dot mask is an image file whose stem, "dots" taken off (_mask_bases), names another image
    for stem, p in list(images.items()):
        owners = [k for k in _mask_bases(stem) if k in images and k != stem]
        if owners:
            notes.append((p, "dot mask"))
            del images[stem]
    return _paired(images, notes, root, files)


# Files of a whole set's annotations, one entry per image file name (not named after an image)
SET_KINDS = ("CVAT XML", "COCO JSON")


def _set_file(path: Path) -> tuple[str, list[str]] | None:
    """(kind, the image file names it annotates) of a file holding a whole set's annotations: a
    CVAT export ("CVAT for images 1.1": <annotations> with an <image name=...> per image) or a
    COCO file ("images" and "annotations" lists); None for any other file."""
    index = _set_index(str(path), *_stamp(path)) if path.is_file() else None
    return None if index is None else (index[0], sorted(index[1]))


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_mtime_ns, st.st_size


@functools.lru_cache(maxsize=8)
def _set_index(path: str, mtime_ns: int, size: int) -> tuple[str, dict] | None:
    """(kind, {image file name: [(label, x, y), ...]}) of a CVAT XML or COCO JSON file, the
    centres in this package's pixel coordinates (both tools' coordinates are continuous, pixel
    i spanning [i, i+1): 0.5 subtracted); None for another file. Cached by path, time and
    size."""
    p = Path(path)
    if p.suffix.lower() == ".xml":
        import xml.etree.ElementTree as ET
        try:
            root = ET.parse(path).getroot()
        except (ET.ParseError, OSError):
            return None
        if root.tag != "annotations" or root.find("image") is None:
            return None
        out = {}
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
                    elif shape.tag == "mask":
                        raise DatasetError(f"{p}: image {img.get('name')!r} has a <mask> (a "
                                           f"brush-drawn shape); export the set with polygons "
                                           f"or points (draw cells as points, boxes or "
                                           f"polygons), or as COCO")
                    else:
                        continue                     # a tag, a polyline: no cell
                except (TypeError, ValueError, IndexError):
                    raise DatasetError(f"{p}: a <{shape.tag}> of image {img.get('name')!r} has "
                                       f"no numeric coordinates; export it again") from None
                marks += [(label, x - 0.5, y - 0.5) for x, y in pts]
            out[Path(img.get("name", "")).name] = marks
        return "CVAT XML", out
    if p.suffix.lower() == ".json":
        import json
        try:
            doc = json.loads(p.read_text(encoding="utf-8-sig"))
        except (OSError, UnicodeDecodeError, ValueError):
            return None
        if not (isinstance(doc, dict) and isinstance(doc.get("images"), list)
                and isinstance(doc.get("annotations"), list)):
            return None
        try:
            names = {im["id"]: Path(str(im["file_name"])).name for im in doc["images"]}
            cats = {c["id"]: str(c.get("name", c["id"])) for c in doc.get("categories") or []}
            out = {n: [] for n in names.values()}
            for a in doc["annotations"]:
                label = cats.get(a.get("category_id"), str(a.get("category_id", "")))
                kp = a.get("keypoints")
                if kp:                               # visible keypoints: one cell each
                    pts = [(x, y) for x, y, v in zip(kp[0::3], kp[1::3], kp[2::3]) if v]
                elif a.get("bbox"):
                    x, y, w, h = a["bbox"]
                    pts = [(x + w / 2, y + h / 2)]
                elif isinstance(a.get("segmentation"), list) and a["segmentation"]:
                    xy = np.asarray(a["segmentation"][0], np.float64).reshape(-1, 2)
                    pts = [tuple(_outline_centroid(xy[:, 0], xy[:, 1]))]
                else:
                    continue
                out[names[a["image_id"]]] += [(label, float(x) - 0.5, float(y) - 0.5)
                                              for x, y in pts]
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise DatasetError(f"{p} is a COCO file with an entry pycount cannot read ({e!r}); "
                               f"export it again") from None
        return "COCO JSON", out
    return None


def _set_centres(path: Path, kind: str, image_name: str, marker: str = "") -> np.ndarray:
    """(N, 2) centres that a file of a whole set's annotations gives the image of this file
    name (matched by name, then by stem); `marker`: one label ("" = every one)."""
    _, index = _set_index(str(path), *_stamp(path))
    marks = index.get(image_name)
    if marks is None:
        marks = next((v for k, v in index.items() if Path(k).stem == Path(image_name).stem), [])
    if marker and not any(label == marker for label, _, _ in
                          (m for v in index.values() for m in v)):
        labels = sorted({label for v in index.values() for label, _, _ in v})
        raise DatasetError(f"{path} has no label {marker!r} (its labels: "
                           f"{', '.join(labels) or 'none'}); choose one of them (MARKER=, or "
                           f"marker in pycount.toml), or leave it out to count all")
    return np.array([(x, y) for label, x, y in marks if not marker or label == marker],
                    np.float64).reshape(-1, 2)


def _paired(images: dict[str, Path], notes: list[tuple[Path, str]], root: Path,
            files: list[Path], note_dir: Path | None = None) -> dict[str, tuple[Path, Path, str]]:
    """folder_pairs' pairing of the images (by stem) with their annotations (path, kind); `root`
    and `files`: the images' folder and its files, `note_dir` the annotations' where they are
    kept apart, for the messages."""
    found: dict[str, list[tuple[Path, str]]] = {}
    for p, kind in notes:
        owners = [k for k in _annotation_keys(p.stem) if k in images]
        whole = None if owners or kind == "dot mask" else _set_file(p)
        if whole is not None:                # one file of the whole set's annotations
            for name in whole[1]:
                if Path(name).stem in images:
                    found.setdefault(Path(name).stem, []).append((p, whole[0]))
            continue
        unread = [q for q in files if q.suffix.lower() in OTHER_IMAGE_SUFFIXES
                  and q.stem in _annotation_keys(p.stem)] if not owners else []
        if unread:                           # its name is right, its format not
            raise DatasetError(f"{p} ({kind}) has no image of the same name in {root}: "
                               f"{unread[0].name} is not in a supported format ({FORMATS}); "
                               "convert it to PNG or TIFF")
        if not owners:
            raise DatasetError(f"{p} ({kind}) has no image of the same name in {root} (expected e.g. "
                               f"{_annotation_keys(p.stem)[-1 if kind == 'dot mask' else 0]}.png); add the "
                               "image or remove the annotation")
        found.setdefault(owners[0], []).append((p, kind))
    for stem, image in images.items():
        if stem not in found:
            where = f" to {note_dir}" if note_dir else ""
            raise DatasetError(f"{image} has no annotation; add one named after it{where}: "
                               f"{stem}.csv (x,y), {stem}.xml (Cell Counter), {stem}.geojson "
                               f"(QuPath) or a dot mask {stem}_dots.png, or remove the image")
        if len(found[stem]) > 1:
            raise DatasetError(f"{image} has {len(found[stem])} annotations "
                               f"({', '.join(str(p) for p, _ in found[stem])}); keep one of them")
    return {stem: (images[stem], *found[stem][0]) for stem in images}


def read_annotation(path: Path, kind: str, shape=None, marker: str = "",
                    image: Path | None = None) -> np.ndarray:
    """The centres of one annotation file of the folder layout (see folder_pairs for the kinds);
    `image`: the image whose entries a file of the whole set's annotations gives (CVAT, COCO)."""
    if kind in SET_KINDS:
        return _set_centres(Path(path), kind, Path(image).name, marker)
    if kind == "CSV":
        return read_centres_csv(path, marker)
    if kind.startswith(("Cell Counter XML", "XML")):
        return read_cellcounter_xml(path, marker)
    if kind.startswith(("QuPath GeoJSON", "JSON")):
        return read_qupath_geojson(path, marker)
    if kind == "ImageJ ROI":
        return read_imagej_roi(path, marker)
    return read_dot_mask(path, shape)


def read_folder(root, ids: Optional[Sequence[str]] = None, marker: str = "",
                depth_range: Sequence[float] = ()) -> list[Sample]:
    """Read a folder of images with one annotation each, paired by name (folder_pairs); the formats
    may be mixed. Images as in _read_any_image (8/16-bit, grey/RGB/RGBA, PNG/JPEG/TIFF). `marker`:
    the Cell Counter type or QuPath class to count ("" = all); depth_range: see _to_uint8."""
    root = _require_dir(root)
    pairs = folder_pairs(root)
    if not pairs:
        raise DatasetError(f"no annotated images found in {root}; expected images (.png .jpg .tif) "
                           "each with an annotation of the same name: NAME.csv (x,y), NAME.xml (Cell "
                           "Counter), NAME.geojson (QuPath) or NAME_dots.png (one pixel per cell)")
    samples = []
    for i in _select(pairs, ids, lambda i: root / f"{i}.png"):
        image_path, note, kind = pairs[i]
        image, why = read_in_range(image_path, depth_range)
        if why:
            print(f"warning: {image_path}: {why}", file=sys.stderr)
        samples.append(_sample(i, image, read_annotation(note, kind, image.shape, marker,
                                                         image_path), note,
                               image_path))
    return samples


def scaled_size(width: int, height: int, factor: float) -> tuple[int, int]:
    """(width, height) of an image read at `factor` (rescale_image): each side rounded, at least
    1 px; 0 or 1: as it is."""
    if factor in (0, 1):
        return width, height
    return max(1, round(width * factor)), max(1, round(height * factor))


def rescale_image(image: np.ndarray, factor: float) -> np.ndarray:
    """The image resized by `factor` (DatasetConfig.scale; 0 or 1: as it is) to scaled_size:
    pixel areas averaged when it shrinks (no aliasing of small nuclei), bicubic when it grows."""
    if factor in (0, 1):
        return image
    h, w = image.shape[:2]
    return cv2.resize(image, scaled_size(w, h, factor),
                      interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC)


def rescale(sample: Sample, factor: float) -> Sample:
    """The sample's image resized by `factor` (rescale_image) and its dots moved with the pixels:
    the centre of pixel x goes to the centre of the pixels it became, (x + 0.5) * w'/w - 0.5,
    kept within the image. The count is unchanged."""
    if factor in (0, 1):
        return sample
    image = rescale_image(sample.image, factor)
    (h, w), (h2, w2) = sample.image.shape[:2], image.shape[:2]
    centres = (np.asarray(sample.centres, np.float64).reshape(-1, 2) + 0.5) * (w2 / w, h2 / h) - 0.5
    centres = np.clip(centres, 0, (w2 - 1, h2 - 1))
    return Sample(sample.id, image, centres, sample.source)


def list_ids(layout: str, root) -> list[str]:
    """The ids of a dataset's annotated images without decoding any (for drawing a split)."""
    if layout == "folder":
        return sorted(folder_pairs(root), key=_natural_key)
    if layout == "generic":
        return sorted(_generic_pairs(_require_dir(root)), key=_natural_key)
    return [s.id for s in read(layout, root)]


READERS = {"vgg_cells": read_vgg_cells, "crc_nuclei": read_crc_nuclei, "generic": read_generic,
           "folder": read_folder}


def read(layout: str, root, ids: Optional[Sequence[str]] = None, marker: str = "",
         depth_range: Sequence[float] = ()) -> list[Sample]:
    """Read the dataset at ``root`` with the reader of ``layout`` (one of READERS); ``marker``: the
    folder layout's annotation class to count ("" = all); ``depth_range``: how the folder and
    generic layouts convert deeper images to 8 bits (_to_uint8)."""
    if layout not in READERS:
        raise DatasetError(f"unknown dataset layout {layout!r}; valid layouts: {', '.join(READERS)}")
    if layout == "folder":
        return read_folder(root, ids, marker, depth_range)
    if layout == "generic":
        return read_generic(root, ids, depth_range)
    return READERS[layout](root, ids)


# ----------------------------------------------------------------------------------------------------
