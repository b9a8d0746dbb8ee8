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
lies inside its image, and raises DatasetError naming the offending file; marks repeated at the
exact same position are counted once, with a note (drop_repeats). The images are decoded
by pycount.data.images, the annotation files read by pycount.data.annotations, and the folder
layout's files paired by pycount.data.layout (folder_pairs, split_folders, split_parts).
"""
from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import cv2
import numpy as np
import scipy.io

from pycount import config
from pycount.data.annotations import (marker_absent, note, read_annotation, read_centres_csv,
                                      read_object_masks)
from pycount.data.images import IMAGE_SUFFIXES, cv2_read, read_any_image, read_in_range
from pycount.data.layout import (CLASS_FILES, CLASS_FOLDERS, OBJECT_MASKS, class_files,
                                 class_names, folder_pairs, object_masks, refuse_broken_link,
                                 require_dir)
from pycount.errors import DatasetError

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

def natural_key(name: str) -> list:
    """Sort key putting "img2" before "img10": digit runs compare as numbers."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _select(pairs: dict, ids: Optional[Sequence[str]], expected: Callable[[str], Path]) -> list[str]:
    """The requested ids (all of them, naturally sorted, when ids is None), each checked to exist;
    expected(id) is the image path an unknown id would have had, for the message."""
    if ids is None:
        return sorted(pairs, key=natural_key)
    for i in ids:
        if i not in pairs:
            raise DatasetError(f"{expected(i)} not found (id {i!r} was requested); "
                               "check the id list or the DATA_ROOT folder")
    return list(ids)


def check_centres(centres: np.ndarray, shape, path: Path, tolerance: float = 0.0,
                  moved: dict | None = None) -> np.ndarray:
    """Centres inside the image, as the patch code counts them: -0.5 <= x < W-0.5, -0.5 <= y < H-0.5.

    A centre exactly on the right or bottom edge (x = W-0.5: QuPath's x = W, its continuous
    coordinates' edge, as x = 0 is the left one) is moved onto the last pixel. Centres at most
    `tolerance` px beyond an edge (annotation clicks on the border) are moved onto the nearest edge
    pixel (with `moved`, how many is recorded under `path` for say_edges); any other centre
    outside (or not finite) raises DatasetError naming `path`."""
    h, w = shape[:2]
    limit = np.array([w, h], np.float64) - 0.5
    centres = np.where(centres == limit, limit - 0.5, centres)
    outside = ~np.isfinite(centres) | (centres < -0.5) | (centres >= limit)
    if tolerance > 0:
        near = outside & (centres >= -0.5 - tolerance) & (centres < limit + tolerance)
        centres = np.where(near, np.clip(centres, 0, limit - 0.5), centres)
        outside &= ~near
        if moved is not None and near.any():
            moved[Path(path)] = int(near.any(axis=1).sum())
    bad = np.nonzero(outside.any(axis=1))[0]
    if len(bad):
        x, y = centres[bad[0]]
        raise DatasetError(f"{path}: cell centre {bad[0] + 1} at 0-based (x, y) = ({x:g}, {y:g}) lies outside "
                           f"the {w}x{h} image (x must be in [-0.5, {w - 0.5:g}], y in [-0.5, {h - 0.5:g}]); "
                           f"correct or delete that entry ({len(bad)} centre(s) outside in all)")
    return centres


def drop_repeats(centres: np.ndarray) -> np.ndarray:
    """The centres with each exact (x, y) kept once, in their order.

    Two marks at the very same position are one cell clicked twice, not two cells: the
    CRCHistoPhenotypes release repeats 8 marks in 6 images (img29's 1191 marks are 1189 cells,
    the maximum the paper's Table 1 gives)."""
    if len(centres) < 2:
        return centres
    _, first = np.unique(centres, axis=0, return_index=True)
    return centres if len(first) == len(centres) else centres[np.sort(first)]


def _in_files(counts: dict[Path, int], one: str, several: str) -> str:
    """Where and how many marks of a reading's files (counts: file -> marks) something befell:
    "<file>: N <one>" for one file, "<their folder>: N marks in K files (a.csv (2), ...)
    <several>" for more."""
    n = sum(counts.values())
    if len(counts) == 1:
        return f"{next(iter(counts))}: {n} {one}"
    files = [f"{p.name} ({k})" for p, k in counts.items()]
    return (f"{os.path.commonpath([str(p.parent) for p in counts])}: {n} marks in {len(counts)} "
            f"files ({', '.join(files[:6])}{', ...' if len(files) > 6 else ''}) {several}")


def _say_repeats(repeats: dict[Path, int]) -> None:
    """One note for the files of a reading whose repeated marks drop_repeats counted once."""
    if repeats:
        one = "mark repeats" if sum(repeats.values()) == 1 else "marks repeat"
        note(f"{_in_files(repeats, one, 'repeat')} another mark's exact position; each position "
             f"is counted once")


def counted_centres(centres, shape, path: Path, tolerance: float = 0.0,
                    repeats: dict | None = None, moved: dict | None = None) -> np.ndarray:
    """The marks of an annotation file as the readers count them: each exact position once
    (drop_repeats), then checked inside the image (check_centres). With `repeats`, how many were
    dropped is recorded under `path` for _say_repeats; with `moved`, how many the tolerance
    moved onto the edge, for say_edges."""
    centres = np.asarray(centres, np.float64).reshape(-1, 2)
    kept = drop_repeats(centres)                # as written: two marks that the edge tolerance
    if len(kept) < len(centres) and repeats is not None:     # moves onto one pixel stay two
        repeats[Path(path)] = len(centres) - len(kept)
    return check_centres(kept, shape, path, tolerance, moved)


def _sample(i: str, image: np.ndarray, centres: np.ndarray, path: Path, image_path: Path,
            tolerance: float = 0.0, repeats: dict | None = None) -> Sample:
    """A Sample with its marks as counted_centres gives them."""
    return Sample(id=i, image=image, centres=counted_centres(centres, image.shape, path, tolerance,
                                                             repeats),
                  source=str(image_path))


# the files whose marks _counted moved onto their image's edge, since say_edges last said them
_EDGES: dict[Path, int] = {}


def _counted(centres, shape, path: Path, repeats: dict | None) -> np.ndarray:
    """counted_centres of one annotation of the folder layout: marks at most
    config.EDGE_TOLERANCE_PX beyond the image's edge moved onto it, recorded for say_edges."""
    return counted_centres(centres, shape, path, config.EDGE_TOLERANCE_PX, repeats, _EDGES)


def say_edges() -> None:
    """One note for the files whose marks lay a hair beyond their image's edge (_counted), read
    since the last call."""
    if _EDGES:
        beyond = f"up to {config.EDGE_TOLERANCE_PX:g} px beyond"
        said = _in_files(_EDGES, f"mark(s) {beyond} the image's edge",
                         f"{beyond} their images' edges")
        _EDGES.clear()
        note(f"{said}, each counted on the edge pixel next to it")


def read_marks(annotation: Path, kind: str, shape, marker: str = "", image: Path | None = None,
               repeats: dict | None = None) -> np.ndarray:
    """The marks of an image as folder_pairs pairs it with its annotation, as the readers count
    them (counted_centres): one file's (read_annotation), or, for a folder of class folders,
    each class's file read and checked on its own, the classes counted together (a place
    marked in two classes once) or the one `marker` names (a class folder's name)."""
    if kind == OBJECT_MASKS:
        return _counted(read_object_masks(object_masks(annotation), shape), shape, annotation,
                        repeats)
    if not kind.startswith((CLASS_FOLDERS, CLASS_FILES)):
        return _counted(read_annotation(annotation, kind, shape, marker, image), shape,
                        annotation, repeats)
    files = class_files(annotation, image)
    if marker and kind.startswith(CLASS_FOLDERS) and marker not in class_names(annotation):
        raise DatasetError(f"{annotation} has no class folder {marker!r} (its classes: "
                           f"{', '.join(class_names(annotation))}); choose one of them (MARKER=, "
                           f"or marker in pycount.toml), or leave it out to count all")
    if marker and not any(c == marker for c, _, _ in files):
        # (files named by class: an image without that class's file has none of its cells)
        marker_absent(marker, [c for c, _, _ in files])
    read = [(c, _counted(read_annotation(p, k, shape, "", image), shape, p, repeats))
            for c, p, k in files if not marker or c == marker]
    if not marker:
        _say_same_cells(annotation, image, read)
    parts = [marks for _, marks in read]
    # a mark at the very place of one of another class: one cell given two classes, counted once
    return counted_centres(np.concatenate(parts or [np.empty((0, 2))]), shape, annotation,
                           repeats=repeats)


_SAME_SAID: set = set()


def _say_same_cells(annotation: Path, image, read: list[tuple[str, np.ndarray]]) -> None:
    """A note where two classes of an image mark the same cells (most marks of the one lie
    within config.CLASS_SAME_PX of a mark of the other, config.CLASS_SAME_SHARE): copies of one
    annotation, or two annotators' files named by class, which counted together count every
    cell twice. Once per folder and pair of classes."""
    from scipy.spatial import cKDTree
    for i, (a, one) in enumerate(read):
        for b, other in read[i + 1:]:
            few_, many = (one, other) if len(one) <= len(other) else (other, one)
            key = (str(annotation), a, b)
            if len(few_) < config.CLASS_SAME_MIN or key in _SAME_SAID:
                continue
            near = cKDTree(many).query(few_, distance_upper_bound=config.CLASS_SAME_PX)[0]
            share = float(np.mean(np.isfinite(near)))
            if share >= config.CLASS_SAME_SHARE:
                _SAME_SAID.add(key)
                note(f"{annotation}: the classes {a!r} and {b!r} mark the same cells in "
                     f"{Path(image).name} ({share:.0%} of the fewer lie within "
                     f"{config.CLASS_SAME_PX:g} px of the other's): two annotators' files, or "
                     f"one annotation twice? Every class is counted, so each such cell counts "
                     f"twice; MARKER={a} (or {b}) counts one")


# --- vgg_cells ---------------------------------------------------------------------------------------

def _pairs(root: Path) -> dict[str, tuple[Path, Path]]:
    """Map id -> (cell path, dots path), checking that every file has its partner."""
    # (hidden files skipped: `._001cell.png` is the metadata a Mac leaves on a USB or exFAT disk)
    cells = {p.name[: -len("cell.png")]: p for p in root.glob("*cell.png")
             if not p.name.startswith(".")}
    dots = {p.name[: -len("dots.png")]: p for p in root.glob("*dots.png")
            if not p.name.startswith(".")}
    regen = _regen_note(root)

    def fix(missing: str, what: str) -> str:
        """The fix for a partner that is missing: a file of the name in another case is
        renamed (a copy through a case-insensitive disk); else restore or remove."""
        other = next((p for p in root.iterdir() if p.name.lower() == missing.lower()), None)
        if other is not None:
            return f"{other} differs only in case: rename it to {missing}"
        return f"restore it or remove the {what}" + (f" {regen}" if regen else "")
    return _partnered(
        cells, dots,
        lambda i: f"{cells[i]} has no matching dots file {root / (i + 'dots.png')}; "
                  + fix(i + "dots.png", "image"),
        lambda i: f"{dots[i]} has no matching cell image {root / (i + 'cell.png')}; "
                  + fix(i + "cell.png", "dots file"))


def _partnered(first: dict, second: dict, lacks_second, lacks_first) -> dict[str, tuple[Path, Path]]:
    """Map id -> (first, second) where every id has both; else DatasetError with the message the
    caller words for the first id (sorted) that lacks its partner."""
    for i in sorted(first.keys() - second.keys()):
        raise DatasetError(lacks_second(i))
    for i in sorted(second.keys() - first.keys()):
        raise DatasetError(lacks_first(i))
    return {i: (first[i], second[i]) for i in first}


def _regen_note(folder: Path) -> str:
    """The note for a generated set's folder (its stamp file there): deleting it regenerates
    the set; nothing for a public release or a lab's own images."""
    if (Path(folder) / "synthetic.json").is_file():
        return "(a synthetic set regenerates when its folder is deleted)"
    return ""


def _imread_rgb(path: Path) -> np.ndarray:
    # OpenCV answers a broken link or a file it may not read as it does a corrupt one (None):
    # those are named for what they are first (a PermissionError: cli.main words it)
    refuse_broken_link(path)
    with open(path, "rb"):
        pass
    bgr = cv2_read(path, cv2.IMREAD_COLOR)
    if bgr is None:
        raise DatasetError(f"cannot decode {path}: the file is corrupt or not an image; "
                           f"replace it from the original release {_regen_note(path.parent)}"
                           .rstrip())
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def dots_to_centres(dots_rgb: np.ndarray) -> np.ndarray:
    """(N, 2) float64 (x, y) of the red dot pixels: red high, green and blue low."""
    r, g, b = (dots_rgb[..., c].astype(np.int16) for c in range(3))
    ys, xs = np.nonzero((r >= 128) & (g < 128) & (b < 128))
    return np.stack([xs, ys], axis=1).astype(np.float64)


def read_vgg_cells(root, ids: Optional[Sequence[str]] = None) -> list[Sample]:
    """Read the NNNcell.png / NNNdots.png pairs under ``root`` (all of them, sorted by id, or ``ids``).

    Dots are pixels of a same-size image, so their centres are inside by construction."""
    root = require_dir(root)
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
                                   f"CRCHistoPhenotypes release (the recorded split needs every "
                                   f"image; `.venv/bin/python -m pycount data --dataset nuclei "
                                   f"--data-root DIR --verify-only` lists what is missing)")
        if image.is_file():
            key = str(int(match.group(1)))
            if key in pairs:                 # img5 and img05: which one is image 5?
                raise DatasetError(f"{pairs[key][0].parent} and {folder} are both image {key}; "
                                   f"keep the release's own (img{key}) and move the other away")
            pairs[key] = image, mat
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
    1-based MATLAB coordinates to 0-based by subtracting 1; centres at most config.EDGE_TOLERANCE_PX px beyond
    the image edge (5 clicks on the border in the release) are moved onto the edge pixel."""
    root = require_dir(root)
    detection = root / "Detection"
    if not detection.is_dir():
        raise DatasetError(f"{detection} not found; root must be the CRCHistoPhenotypes_2016_04_28 release "
                           "folder, the one holding Detection/imgN/")
    pairs = _crc_pairs(detection)
    if not pairs:
        raise DatasetError(f"no Detection/imgN/imgN.bmp images found under {root}; root must be the "
                           "CRCHistoPhenotypes_2016_04_28 release folder")
    samples, repeats = [], {}
    for i in _select(pairs, ids, lambda i: detection / f"img{i}" / f"img{i}.bmp"):
        image_path, mat_path = pairs[i]
        samples.append(_sample(i, _imread_rgb(image_path), _read_detection_mat(mat_path), mat_path,
                               image_path, config.EDGE_TOLERANCE_PX, repeats))
    _say_repeats(repeats)
    return samples


# --- generic -----------------------------------------------------------------------------------------

def _generic_pairs(root: Path) -> dict[str, tuple[Path, Path]]:
    """Map file stem -> (image, csv), checking that every image has its CSV and vice versa."""
    images, tables = {}, {}
    for path in sorted(root.iterdir()):
        suffix = path.suffix.lower()
        if suffix in IMAGE_SUFFIXES or suffix == ".csv":
            refuse_broken_link(path)
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


def read_generic(root, ids: Optional[Sequence[str]] = None, depth_range: Sequence[float] = ()
                 ) -> list[Sample]:
    """Read a folder of images (.png .jpg .jpeg .tif .tiff, any case) with same-stem .csv centre files
    (see read_centres_csv; images are converted as in read_any_image). Ids are the file stems,
    naturally sorted ("2" before "10") when ``ids`` is None. Other files are ignored."""
    root = require_dir(root)
    pairs = _generic_pairs(root)
    if not pairs:
        raise DatasetError(f"no images with same-stem .csv annotations found in {root}; expected e.g. "
                           "001.png with 001.csv (header x,y)")
    samples, repeats = [], {}
    for i in _select(pairs, ids, lambda i: root / f"{i}.png"):
        image_path, csv_path = pairs[i]
        samples.append(_sample(i, read_any_image(image_path, depth_range), read_centres_csv(csv_path), csv_path,
                               image_path, repeats=repeats))
    _say_repeats(repeats)
    return samples


def read_folder(root, ids: Optional[Sequence[str]] = None, marker: str = "",
                depth_range: Sequence[float] = (), dtypes: Sequence[str] = ()) -> list[Sample]:
    """Read a folder of images with one annotation each, paired by name (folder_pairs); the formats
    may be mixed. Images as in read_any_image (8/16-bit, grey/RGB/RGBA, PNG/JPEG/TIFF). `marker`:
    the Cell Counter type or QuPath class to count ("" = all); depth_range: see to_uint8; with
    `dtypes` (the training images' kinds of values), an image of another kind is warned about as
    `pycount count` flags it."""
    return list(iter_folder(root, ids, marker, depth_range, dtypes))


def iter_folder(root, ids: Optional[Sequence[str]] = None, marker: str = "",
                depth_range: Sequence[float] = (), dtypes: Sequence[str] = ()):
    """read_folder's samples one at a time, each read when it is asked for (a caller that checks
    the images and keeps none holds one at a time); the notes of the whole reading once the last
    is read."""
    root = require_dir(root)
    pairs = folder_pairs(root)
    if not pairs:
        raise DatasetError(f"no annotated images found in {root}; expected images (.png .jpg .tif) "
                           "each with an annotation of the same name: NAME.csv (x,y), NAME.xml (Cell "
                           "Counter), NAME.geojson (QuPath) or NAME_dots.png (one pixel per cell)")
    repeats = {}
    for i in _select(pairs, ids, lambda i: root / f"{i}.png"):
        image_path, annotation, kind = pairs[i]
        image, why = read_in_range(image_path, depth_range, dtypes)
        if why:
            print(f"warning: {image_path}: {why}", file=sys.stderr)
        yield Sample(id=i, image=image, centres=read_marks(
            annotation, kind, image.shape, marker, image_path, repeats), source=str(image_path))
    _say_repeats(repeats)
    say_edges()


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
        return sorted(folder_pairs(root), key=natural_key)
    if layout == "generic":
        return sorted(_generic_pairs(require_dir(root)), key=natural_key)
    return [s.id for s in read(layout, root)]


READERS = {"vgg_cells": read_vgg_cells, "crc_nuclei": read_crc_nuclei, "generic": read_generic,
           "folder": read_folder}


def read(layout: str, root, ids: Optional[Sequence[str]] = None, marker: str = "",
         depth_range: Sequence[float] = (), dtypes: Sequence[str] = ()) -> list[Sample]:
    """Read the dataset at ``root`` with the reader of ``layout`` (one of READERS); ``marker``: the
    folder layout's annotation class to count ("" = all); ``depth_range``: how the folder and
    generic layouts convert deeper images to 8 bits (to_uint8); ``dtypes``: see read_folder."""
    if layout not in READERS:
        raise DatasetError(f"unknown dataset layout {layout!r}; valid layouts: {', '.join(READERS)}")
    if layout == "folder":
        return read_folder(root, ids, marker, depth_range, dtypes)
    if layout == "generic":
        return read_generic(root, ids, depth_range)
    return READERS[layout](root, ids)

# ----------------------------------------------------------------------------------------------------
