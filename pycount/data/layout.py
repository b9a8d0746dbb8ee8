"""Folder layout discovery (the folder layout, DATASET=path/to/folder): which image of a dataset
folder pairs with which annotation (by name, dot masks too; folder_pairs, folder_layout), images
and annotations kept in two subfolders (split_folders), published train/ + test/ splits
(split_parts), and the checks of the folder and its files."""
from __future__ import annotations

import functools
import os
from pathlib import Path

from pycount.data.annotations import (ANNOTATION_KINDS, TEXT, annotation_kind, few, note,
                                      recorded_image, set_file)
from pycount.data.images import FORMATS, IMAGE_SUFFIXES, OTHER_IMAGE_SUFFIXES, dead_link
from pycount.errors import DatasetError

# the suffixes of the files that may be annotations (a .txt: as its content says)
ANNOTATION_SUFFIXES = frozenset(ANNOTATION_KINDS) | {".txt", ".npy"}

# --- checks of the folder and its files ------------------------------------------------------------

def require_dir(root) -> Path:
    root = Path(root)
    if root.is_file():                       # an image or annotation given for its folder
        raise DatasetError(f"{root} is a file, not a folder: a dataset is given as the folder "
                           f"that holds the images and their annotations (for this file's, "
                           f"{root.parent})")
    if not root.is_dir():
        raise DatasetError(f"dataset folder {root} does not exist; set DATA_ROOT to the folder holding "
                           "the release folders (e.g. DATA_ROOT=../shared/datasets)")
    os.listdir(root)        # a folder this user may not list: PermissionError (cli.main), where a
    return root             # glob found nothing and said "no images"


def refuse_broken_link(path: Path) -> None:
    """DatasetError for a symbolic link to nothing: it is no file, so a listing would skip it
    and report its partner as unpaired."""
    link = dead_link(path)
    if link:
        raise DatasetError(f"{path} is {link[0]}; {link[1]}")


# --- pairing: any images, each with an annotation of its stem ----------------------------------------

# NAME_dots.png, NAME-dots.png, NAMEdots.png: dot masks; NAME_cp_masks.png (Cellpose's export),
# NAME_masks.png (its training folders' name), NAME_mask.png, NAME_label.tiff: label masks, read
# as dot masks are
MASK_TAILS = ("_dots", "-dots", "dots", "_cp_masks", "_masks", "-masks", "_mask", "-mask",
              "_label", "-label",     # NAME_label.tiff: the NeurIPS 2022 cell segmentation set's
              "_seg")                 # Cellpose's NAME_seg.npy (and a NAME_seg.png mask)


def _annotation_keys(stem: str) -> list[str]:
    """The image stems an annotation or mask stem may belong to."""
    keys = [stem]
    if stem.startswith("CellCounter_"):   # Cell Counter's default file name: CellCounter_<image>.xml
        keys.append(stem[len("CellCounter_"):])
    # named after the image's whole file name (img.tif.geojson, img.png.csv: what export scripts
    # that append a suffix to the image's name write)
    keys += [k[:-len(sfx)] for k in list(keys) for sfx in IMAGE_SUFFIXES
             if k.lower().endswith(sfx) and len(k) > len(sfx)]
    return _with_ome(keys) + mask_bases(stem)


def _with_ome(keys: list[str]) -> list[str]:
    """The stems and those of OME-TIFFs named after them (img01.ome.tif: Bio-Formats, QuPath,
    OMERO), whose annotation is img01.csv as well as img01.ome.csv."""
    return keys + [k + ome for k in keys for ome in (".ome", ".OME")
                   if not k.lower().endswith(".ome")]


def mask_bases(stem: str) -> list[str]:
    """The image stems a dot mask's stem may name: "dots" taken off its end (NAME_dots,
    NAME-dots, NAMEdots; the VGG's NNNdots for NNNcell; a label mask's "_masks", "_cp_masks",
    "_mask") or out of its middle (the MBM release's NAME_dots_000 for NAME_000); [] for a stem
    without it."""
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
    return _with_ome(keys)


# The names a subfolder of annotations goes by where a folder keeps its images and their marks
# apart (images/ + dots/, img/ + labels/, ...): compared in lower case, "_" and "-" alike
ANNOTATION_FOLDERS = frozenset({"annotations", "annotation", "labels", "label", "dots", "dot",
                                "points", "point", "gt", "groundtruth", "ground_truth",
                                "groundtruths", "markers",
                                "marks", "counts", "csv", "xml", "geojson", "masks", "dotmasks",
                                "dot_masks"})


def _visible_files(folder: Path) -> list[Path]:
    """A folder's files, hidden ones left out; a broken link to an image or annotation refused."""
    listed = [p for p in sorted(folder.iterdir()) if not p.name.startswith(".")]
    for p in listed:
        if p.suffix.lower() in IMAGE_SUFFIXES or p.suffix.lower() in ANNOTATION_SUFFIXES:
            refuse_broken_link(p)
    return [p for p in listed if p.is_file()]


def _entries(folder: Path) -> list[Path]:
    """A folder's images and annotations (_visible_files)."""
    return [p for p in _visible_files(folder)
            if p.suffix.lower() in IMAGE_SUFFIXES or annotation_kind(p)]


def visible_subfolders(folder: Path) -> list[Path]:
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


def _unwrapped(folder: Path) -> Path:
    """The folder a wrapper folder leads to: one of no file of its own and a single subfolder
    named as images or annotations are kept (FNC's all_images/images/, all_masks/masks/),
    followed down two levels at most. (A subfolder of another name, images/batch1/, is a part
    of the set, not its images.)"""
    for _ in range(2):
        inner = visible_subfolders(folder)
        if _entries(folder) or len(inner) != 1 or not (
                _folder_key(inner[0].name) in ANNOTATION_FOLDERS | IMAGE_FOLDERS):
            break
        folder = inner[0]
    return folder


def split_folders(root: Path) -> tuple[Path, Path] | None:
    """(images folder, annotations folder) of a folder that holds no image or annotation itself
    but keeps them in two subfolders (images/ + dots/, as many public sets and lab exports do):
    the annotations folder is the one named like it (ANNOTATION_FOLDERS) or the one without
    images; None where root holds its files itself. Any other arrangement of subfolders is a
    DatasetError that names them and the layouts read. Also the export of an annotation tool
    that writes one file of the whole set's annotations beside a folder of the images (CVAT:
    annotations.xml + images/): (that folder, root). The annotations folder may also keep one
    subfolder per class (class_folders), where it is named like one."""
    entries = _entries(root)
    if entries:
        if any(p.suffix.lower() in IMAGE_SUFFIXES for p in entries) \
                or not all(set_file(p) for p in entries):
            return None
        holding = [d for d in visible_subfolders(root) if _has_images(d)]
        return (holding[0], root) if len(holding) == 1 else None
    subs = [d for d in map(_unwrapped, visible_subfolders(root)) if _entries(d)]
    if len(subs) == 1 and _has_images(subs[0]):  # images/ beside annotations/<class>/, or
        by_class = [d for d in visible_subfolders(root) if d != subs[0]    # ground_truths/<format>/
                    and (class_folders(d) or format_folders(d))
                    and _folder_key(d.name) in ANNOTATION_FOLDERS]
        if len(by_class) == 1:
            return subs[0], by_class[0]
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


# The names a folder of the images goes by, where a wrapper folder holds it (_unwrapped)
IMAGE_FOLDERS = frozenset({"images", "image", "imgs", "img"})

# Subfolders that hold a published split: their images train (val/ among them: pycount draws
# its own validation images from the training ones) or test. Compared as ANNOTATION_FOLDERS.
SPLIT_FOLDERS = {"train": "train", "training": "train", "trainval": "train", "train_val": "train",
                 "val": "train", "valid": "train", "validation": "train", "test": "test",
                 "testing": "test"}


def _folder_key(name: str) -> str:
    low = name.lower().replace("-", "_")
    return low if low in SPLIT_FOLDERS or low in ANNOTATION_FOLDERS else low.replace("_", "")


def split_part(name: str) -> str | None:
    """The part, "train" or "test", that a subfolder's name says it holds: a name of
    SPLIT_FOLDERS, or one of them followed by more of its own after a word boundary
    (trainPhasecontrast/ + testPhasecontrast/, as Arteta et al.'s HeLa set ships; train_images/,
    val2017/); None for any other name (tests/, trainee/)."""
    key = _folder_key(name)
    if key in SPLIT_FOLDERS:
        return SPLIT_FOLDERS[key]
    for word in sorted((w for w in SPLIT_FOLDERS if "_" not in w), key=len, reverse=True):
        head, rest = name[:len(word)], name[len(word):]
        if head.lower() == word and rest and (
                not rest[0].isalpha() or rest[0].isupper() and not head.isupper()):
            return SPLIT_FOLDERS[word]
    return None


def _holds_files(folder: Path) -> bool:
    """Whether a folder holds a visible file, itself or in a subfolder."""
    return any(not p.name.startswith(".") and p.is_file() for p in folder.rglob("*"))


def split_parts(root: Path) -> list[tuple[str, Path]] | None:
    """[(part, folder)] of a folder whose subfolders hold a published split (train/ + test/,
    trainval/ + test/, train/ + val/ + test/; each of them laid out as folder_pairs reads a
    folder), part "train" or "test"; without a test/ (train/ + val/) its images are one pool
    that the seeded draw splits. None where root is not so laid out. A test/ alone is such a
    split too, so that _check_split refuses it rather than train on the test images."""
    if _entries(root):
        return None
    named = [(split_part(d.name), d) for d in visible_subfolders(root)]
    parts = [(p, d) for p, d in named if p or _holds_files(d)]   # (an empty out/ beside: none)
    if not parts or any(p is None for p, _ in parts):
        return None
    return parts


def _kind_first(root: Path) -> list[tuple[str, str, Path, Path]] | None:
    """[(part, its folder's name, images folder, annotations folder)] of a folder that keeps the
    split inside each kind: images/train/ + images/test/ beside annotations/train/ +
    annotations/test/ (the annotations' folder told by its name); None otherwise."""
    if _entries(root):
        return None
    subs = visible_subfolders(root)
    notes = [d for d in subs if _folder_key(d.name) in ANNOTATION_FOLDERS]
    if len(subs) != 2 or len(notes) != 1:
        return None
    images = next(d for d in subs if d != notes[0])

    def parts(folder: Path) -> dict[str, Path]:
        return {_folder_key(d.name): d for d in visible_subfolders(folder)}
    have, marks = parts(images), parts(notes[0])
    if not have or any(k not in SPLIT_FOLDERS for k in have):
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
    label: the part's folder name. A split's parts checked by _check_split."""
    sequences = ctc_sequences(root)
    if sequences:
        return _check_split(root, _ctc_units(root, sequences))
    parts = split_parts(root)
    if parts is not None:
        return _check_split(root, [(p, d.name, d, folder_pairs_in(d)) for p, d in parts])
    nested = _kind_first(root)
    if nested is not None:
        return _check_split(root, [(p, label, images, _pairs_apart(images, notes))
                                   for p, label, images, notes in nested])
    pairs = folder_pairs_in(root)
    if _entries(root) and split_folders(root) is None:     # the folder's own files are the set
        aside = [d for d in visible_subfolders(root) if _has_images(d)]
        if aside and not _has_images(root):   # annotations here, their images in 2+ folders
            raise DatasetError(
                f"{root} holds annotations ({few(p.name for p in _entries(root))}) but no "
                f"image, and images in {len(aside)} subfolders "
                f"({few(d.name + '/' for d in aside)}): which of them the annotations are of "
                f"cannot be told; keep only that folder beside them (as images/), or move its "
                f"images up beside them")
        if aside:                       # e.g. a test/ beside the images: not read, say so
            note(f"{root} holds its annotated images itself, so its subfolders "
                 f"{few(d.name + '/' for d in aside)} are not read (their images are neither "
                 f"trained on nor tested); to use a published split, keep the images in train/ "
                 f"and test/ only")
    return [("", "", pairs)]


def _check_split(root: Path, units: list[tuple[str, str, Path, dict]]
                 ) -> list[tuple[str, str, dict]]:
    """_units' parts of a published split, given as [(part, label, its images' folder, pairs)]
    and returned without the folders, once checked. Refused: test images and no training image
    (a test/ alone, or beside an empty train/): read as they are, the counter would train on
    the images meant to score it. A test/ of no annotated image is said in a note: the folder
    then has no published test images, so they are drawn as for a folder without test/."""
    train = [(d, pairs) for part, _, d, pairs in units if part == "train"]
    test = [(d, pairs) for part, _, d, pairs in units if part == "test"]
    held = sum(len(pairs) for _, pairs in test)
    if held and not any(pairs for _, pairs in train):
        tests, above = few(d.name + "/" for d, _ in test), test[0][0].parent
        where = (f"{few(str(d) for d, _ in train)} hold{'s' if len(train) == 1 else ''} no "
                 f"annotated image" if train else
                 f"{above} has no train/ subfolder beside {tests}")
        raise DatasetError(
            f"{where}: pycount would train on the {held} images of {tests}, which are there to "
            f"score the counter; put the training images, each with its annotation, in "
            f"{train[0][0] if train else above / 'train'}, or move the files of {tests} up into "
            f"{above} to have pycount draw the test images from them"
            + (f" (if they are a whole set named so, give {test[0][0]} itself as the dataset)"
               if above == root and len(test) == 1 else ""))
    for d, pairs in test:
        if not pairs and held == 0:
            note(f"{d} holds no annotated image, so {root} has no published test images: they "
                 f"are drawn from the others (seeded), as for a folder without {d.name}/, unless "
                 f"pycount.toml names them; put the test images in {d.name}/, or remove it")
    return [(part, label, pairs) for part, label, _, pairs in units]


def folder_layout(root) -> tuple[dict[str, tuple[Path, Path, str]], tuple[str, ...], str]:
    """(pairs by id, the published test part's ids, its folder's name: () and "" without one) of
    a dataset folder: the ids are the image stems, or, where one stem is in two parts (numbering
    restarted in each), every id prefixed with its part's folder name ("test_001")."""
    units = _units(require_dir(root))
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


# --- the Cell Tracking Challenge's layout: 01/t000.tif + 01_GT/TRA/man_track000.tif ------------------

# Where a sequence NN/ of the challenge's training download keeps its frames' marks, in the order
# read: the gold truth's tracking markers (NN_GT/TRA/: every cell of every frame, a label each),
# the silver truth's segmentation (NN_ST/SEG/: every frame, computed), the gold truth's
# segmentation (NN_GT/SEG/: some frames, some of their cells outlined); (folder tail, subfolder,
# the mask files' name before the frame's number)
CTC_MARKS = (("_GT", "TRA", "man_track"), ("_ST", "SEG", "man_seg"), ("_GT", "SEG", "man_seg"))
# the tails of the folders a sequence NN/ has beside it: its marks' and a tracker's results (NN_RES/)
CTC_TAILS = ("_GT", "_ST", "_RES")


def _numbered(folder: Path, prefix: str) -> dict[str, Path]:
    """{the number: the image} of the images of `folder` named prefix + digits (t000, man_track000)."""
    return {p.stem[len(prefix):]: p for p in _entries(folder)
            if p.suffix.lower() in IMAGE_SUFFIXES and p.stem.startswith(prefix)
            and p.stem[len(prefix):].isdigit()}


def ctc_marks(sequence: Path) -> tuple[Path, str] | None:
    """(the folder, the files' name before the number) of the marks of a sequence folder of the
    Cell Tracking Challenge (CTC_MARKS: the first of them beside it that holds any), or None."""
    for tail, sub, prefix in CTC_MARKS:
        folder = sequence.parent / (sequence.name + tail) / sub
        if folder.is_dir() and _numbered(folder, prefix):
            return folder, prefix
    return None


def ctc_sequences(root: Path) -> list[tuple[Path, tuple[Path, str] | None]]:
    """[(sequence folder, its marks: ctc_marks)] of a folder laid out as the Cell Tracking
    Challenge ships its training sets (Fluo-N2DH-GOWT1/: 01/ and 02/ of frames t000.tif ...,
    01_GT/TRA/man_track000.tif ... beside them, 01_ST/SEG/ in later editions): every subfolder a
    sequence of numbered frames (a name of digits) or one of their marks' folders (the
    sequence's name + _GT, _ST, _RES), and one sequence at least with marks; [] for any other
    folder."""
    if _entries(root):
        return []
    subs = visible_subfolders(root)
    sequences = [d for d in subs if d.name.isdigit()]
    tails = {f"{d.name}{t}" for d in sequences for t in CTC_TAILS}
    if not sequences or any(d.name not in tails and d not in sequences for d in subs) \
            or not all(_numbered(d, "t") for d in sequences):
        return []
    found = [(d, ctc_marks(d)) for d in sequences]
    return found if any(m for _, m in found) else []


def ctc_frame(mark: Path) -> Path | None:
    """The frame a mask file of a Cell Tracking Challenge marks' folder marks (01_GT/TRA/man_track
    000.tif: 01/t000.tif), where it is one; None for any other file."""
    mark = Path(mark)
    for tail, sub, prefix in CTC_MARKS:
        seq, number = mark.parent.parent.name, mark.stem[len(prefix):]
        if mark.parent.name == sub and seq.endswith(tail) and mark.stem.startswith(prefix) \
                and number.isdigit():            # (a look per suffix, not a listing per mask)
            frames = mark.parent.parent.parent / seq[:-len(tail)]
            for sfx in IMAGE_SUFFIXES:
                for frame in (frames / f"t{number}{sfx}", frames / f"t{number}{sfx.upper()}"):
                    if frame.is_file():
                        return frame
    return None


def _refuse_ctc_part(folder: Path) -> None:
    """DatasetError where `folder` is a part of a Cell Tracking Challenge set given as the dataset:
    a sequence (01/, its marks beside it in 01_GT/) or one of its marks' folders (01_GT/TRA/, or
    01_GT/ itself), whose images would be read as images without marks, or marks as images."""
    sets = [folder.parent] if folder.name.isdigit() and ctc_marks(folder) else [
        up.parent for up in (folder, folder.parent) if any(
            up.name.endswith(t) and up.name[:-len(t)].isdigit() for t in CTC_TAILS)]
    if sets and ctc_sequences(sets[0]):
        raise DatasetError(f"{folder} is a part of a Cell Tracking Challenge set, whose frames "
                           f"and marks lie in folders beside each other: give the set's folder, "
                           f"{sets[0]}, as the dataset (its sequences' frames are paired with "
                           f"their marks)")


def _ctc_units(root: Path, sequences: list[tuple[Path, tuple[Path, str] | None]]
               ) -> list[tuple[str, str, Path, dict]]:
    """_units' parts of a Cell Tracking Challenge folder (ctc_sequences): each frame with its
    marks' label mask (one cell per label), kind "dot mask" (read_dot_mask tells labels by
    content). The frames of a sequence are near copies of one another, so no frame is tested
    beside its neighbours: the last sequence tests and the others train, or, of a single
    sequence, its last frames (config.TEST_SHARE of them) test."""
    from pycount import config
    units, lines = [], []
    for seq, marks in sequences:
        if marks is None:
            lines.append(f"{seq.name}/ has no marks (no {seq.name}_GT/TRA/ or {seq.name}_ST/SEG/): "
                         f"its frames are not read")
            continue
        folder, prefix = marks
        frames, masks = _numbered(seq, "t"), _numbered(folder, prefix)
        order = sorted(frames, key=int)
        pairs = {frames[n].stem: (frames[n], masks[n], "dot mask") for n in order if n in masks}
        unmarked = [frames[n].name for n in order if n not in masks]
        line = f"{seq.name}/: {len(pairs)} frames marked by {folder.relative_to(root)}/"
        if unmarked:
            line += (f" ({len(unmarked)} frame{'s' if len(unmarked) > 1 else ''} without a "
                     f"mask there not read: {few(unmarked)})")
        lines.append(line)
        units.append((seq.name, seq, pairs))
    units = [u for u in units if u[2]]
    if not units:
        raise DatasetError(f"{root} is laid out as the Cell Tracking Challenge's sets, but no frame "
                           f"of its sequences has a mask of the same number: "
                           + "; ".join(lines))
    if len(units) > 1:
        parts = [("train", name, d, pairs) for name, d, pairs in units[:-1]]
        parts.append(("test", *units[-1]))
        how = f"the frames of {units[-1][0]}/ are the test images, the others' train"
    else:
        name, d, pairs = units[0]
        ids = list(pairs)
        n_test = max(1, round(len(ids) * config.TEST_SHARE))
        parts = [("train", name, d, {i: pairs[i] for i in ids[:-n_test]}),
                 ("test", name, d, {i: pairs[i] for i in ids[-n_test:]})]
        how = (f"its last {n_test} frames are the test images" if n_test > 1 else
               "its last frame is the test image") + ", the ones before train"
    note(f"{root}: the Cell Tracking Challenge's layout; " + "; ".join(lines) + f"; {how} (a "
         f"sequence's frames are near copies of each other, so none is tested beside its "
         f"neighbours; `test` in {config.SPEC_FILE} chooses others)")
    return parts


# --- annotations kept by class: annotations/positive/NAME.h5 + annotations/negative/NAME.h5 ------------

CLASS_FOLDERS = "class folders"     # the kind (its start) of an image's annotation kept so


def class_folders(folder: Path) -> list[Path]:
    """The class subfolders of an annotations' folder that keeps each class's marks in a
    subfolder of its own, one file per image in each (BCData: annotations/train/positive/ and
    negative/): a folder of no image or annotation itself whose subfolders hold annotations (or
    dot masks; empty ones say which images lack a file) and no further subfolder, named as no
    split part is; [] for any other folder."""
    if _entries(folder):
        return []
    subs = visible_subfolders(folder)
    if not subs or any(visible_subfolders(d) or split_part(d.name)
                       for d in subs) or format_folders(folder):
        return []
    return subs


# Subfolders of an annotations' folder that hold its annotations once per format (FNC v2's
# ground_truths/{masks,rle,pascal_voc,COCO}/), told by their names (as _folder_key gives them)
FORMAT_FOLDERS = ANNOTATION_FOLDERS | {"rle", "pascalvoc", "voc", "coco", "json", "yolo", "txt",
                                       "mat", "h5", "hdf5", "roi", "instances", "semantic"}
_POINT_FOLDERS = ("dots", "dot", "points", "point", "markers", "marks", "csv")


def format_folders(folder: Path) -> list[Path]:
    """The subfolders of an annotations' folder of no file of its own whose subfolders are all
    named as formats are (FORMAT_FOLDERS), in the order _pairs_apart tries them: marks first
    (dots/, points/, csv/), then masks, then the rest by name; [] for any other folder."""
    if _entries(folder):
        return []
    subs = visible_subfolders(folder)
    if not subs or not all(_folder_key(d.name) in FORMAT_FOLDERS for d in subs):
        return []

    def rank(d: Path) -> tuple:
        key = _folder_key(d.name)
        return (0 if key in _POINT_FOLDERS else 1 if key.startswith("mask") else 2, key)
    return sorted(subs, key=rank)


def _pairs_by_class(image_dir: Path, note_dir: Path, classes: list[Path]
                    ) -> dict[str, tuple[Path, Path, str]]:
    """The images of image_dir paired with the class folders of note_dir: each image's
    annotation is note_dir itself, of kind "class folders of <formats>" (class_files finds the
    files). Each class folder's files are paired as a folder's are (a file without its image or
    two files for one image refused, naming them); an image needs a file in one class folder at
    least, and one missing from a class folder has no cell of that class (said in a note)."""
    images = _images_by_stem(_entries(image_dir))
    files = _visible_files(image_dir)
    held: dict[str, list[str]] = {}
    kinds = set()
    for d in classes:
        notes = [(p, annotation_kind(p) or "dot mask") for p in _entries(d)]
        for stem, (_, _, kind) in _paired(images, notes, image_dir, files, d,
                                          every=False).items():
            held.setdefault(stem, []).append(d.name)
            kinds.add(kind)
    names = ", ".join(d.name + "/" for d in classes)
    for stem, image in images.items():
        if stem not in held:
            raise DatasetError(f"{image} has no annotation in any of the class folders of "
                               f"{note_dir} ({names}); add one named after it ({stem}.csv, "
                               f"{stem}.h5, ...) to the folder of its cells' class, or remove "
                               f"the image")
    for d in classes:
        lacking = [stem for stem in images if d.name not in held[stem]]
        if lacking:
            note(f"{d} holds no file for {len(lacking)} of the {len(images)} images of "
                 f"{image_dir} ({few(lacking)}): each is counted as having no {d.name} cell")
    kind = f"{CLASS_FOLDERS} of {', '.join(sorted(kinds))}"
    return {stem: (images[stem], note_dir, kind) for stem in images}


def _subfolder_times(folder: Path) -> tuple:
    return tuple(sorted((e.name, e.stat().st_mtime_ns) for e in os.scandir(folder)
                        if e.is_dir()))


@functools.lru_cache(maxsize=16)
def _class_index(folder: str, times: tuple) -> dict[str, list[tuple[str, Path, str]]]:
    """{image stem: [(class, file, kind)]} of a folder of class folders; `times`: its
    subfolders' modification times, so that a file added, removed or renamed is seen."""
    index: dict[str, list[tuple[str, Path, str]]] = {}
    for d in class_folders(Path(folder)):
        for p in _entries(d):
            kind = annotation_kind(p) or "dot mask"
            for key in dict.fromkeys(_annotation_keys(p.stem)):
                index.setdefault(key, []).append((d.name, p, kind))
    return index


def class_names(folder: Path) -> list[str]:
    """The classes (subfolder names) of a folder of class folders."""
    return [d.name for d in class_folders(Path(folder))]


def class_files(folder: Path, image: Path) -> list[tuple[str, Path, str]]:
    """[(class, file, kind)] of the image's annotation files in a folder of class folders (as
    _pairs_by_class paired them: at most one per class), or named after it by class in the
    folder (img1_positive.csv, as _paired paired them)."""
    folder, image = Path(folder), Path(image)
    if class_folders(folder):
        return _class_index(str(folder), _subfolder_times(folder)).get(image.stem, [])
    times = (folder.stat().st_mtime_ns, image.parent.stat().st_mtime_ns)
    return _class_file_index(str(folder), str(image.parent), times).get(image.stem, [])


def annotation_paths(annotation: Path, kind: str, image: Path) -> list[Path]:
    """The files an image's annotation (as folder_pairs pairs it) is read from: the one file,
    the image's files in a folder of class folders or named by class, or its object masks."""
    if kind.startswith((CLASS_FOLDERS, CLASS_FILES)):
        return [p for _, p, _ in class_files(annotation, image)]
    if kind == OBJECT_MASKS:
        return object_masks(annotation)
    return [Path(annotation)]


# --- classes in file names: img1.png beside img1_positive.csv and img1_negative.csv ------------------

CLASS_FILES = "class files"         # the kind (its start) of an image's annotation kept so


def _class_of(stem: str, images) -> tuple[str, str] | None:
    """(image stem, class) of an annotation stem made of an image's stem, "_" or "-" and a
    class (img1_positive for img1; the CRC release's img1_epithelial.mat, its
    img1_detection.mat): the longest image stem that fits; None where none does."""
    cuts = [i for i, ch in enumerate(stem) if ch in "_-" and 0 < i < len(stem) - 1
            and stem[:i] in images]
    return (stem[:cuts[-1]], stem[cuts[-1] + 1:]) if cuts else None


def _check_class_files(image: Path, files: list[tuple[str, Path, str]],
                       own: list[tuple[Path, str]]) -> None:
    """An image's class files (_paired), refused where they are not one file per class, or
    where the image also has an annotation of its own name: which of them holds its cells cannot
    be told."""
    names = few(p.name for _, p, _ in files)
    if own:
        raise DatasetError(f"{image} has an annotation of its own name ({own[0][0].name}) and "
                           f"files named after it by class ({names}); keep the one, or the "
                           f"class files only (img_<class>.csv: one per class, every class "
                           f"counted unless MARKER= names one)")
    seen: dict[str, Path] = {}
    for c, p, _ in files:
        if c in seen:
            raise DatasetError(f"{seen[c]} and {p} are two files of the class {c!r} of {image}; "
                               f"keep one of them")
        seen[c] = p


@functools.lru_cache(maxsize=16)
def _class_file_index(folder: str, image_dir: str, times: tuple
                      ) -> dict[str, list[tuple[str, Path, str]]]:
    """{image stem: [(class, file, kind)]} of the class files (_class_of) in `folder` of the
    images in `image_dir`; `times`: both folders' modification times, so that a file added,
    removed or renamed is seen."""
    stems = _images_by_stem(_entries(Path(image_dir)))
    index: dict[str, list[tuple[str, Path, str]]] = {}
    for p in _entries(Path(folder)):
        kind = annotation_kind(p)
        if kind is None or any(k in stems for k in _annotation_keys(p.stem)):
            continue                         # an image, or the annotation of another image
        fits = _class_of(p.stem, stems)
        if fits:
            index.setdefault(fits[0], []).append((fits[1], p, kind))
    return index


def image_classes(annotation: Path, kind: str, image: Path) -> list[str]:
    """The classes of an image's annotation: a folder of class folders' (every class folder), or
    the classes of the files named after the image by class; [] for any other annotation."""
    if kind.startswith(CLASS_FOLDERS):
        return class_names(annotation)
    if kind.startswith(CLASS_FILES):
        return [c for c, _, _ in class_files(annotation, image)]
    return []


def _pairs_apart(image_dir: Path, note_dir: Path) -> dict[str, tuple[Path, Path, str]]:
    """The images of one folder paired with the annotations of another (dot masks of any name),
    with its class folders (_pairs_by_class), or, for one image, with a folder of its object
    masks (_object_masks_of)."""
    classes = class_folders(note_dir)
    if classes:
        return _pairs_by_class(image_dir, note_dir, classes)
    formats = format_folders(note_dir)
    if formats:                              # the first format whose files pair with the images
        refused = []
        for d in formats:
            try:
                pairs = _pairs_apart(image_dir, d)
            except DatasetError as e:
                refused.append(e)
                continue
            if pairs:
                if len(formats) > 1:
                    note(f"{note_dir} holds its annotations in {len(formats)} formats "
                         f"({', '.join(f.name + '/' for f in formats)}): {d.name}/ is read")
                return pairs
        if refused:
            raise refused[0]
        return {}
    images = _images_by_stem(_entries(image_dir))
    if _object_masks_of(images, note_dir):
        (stem, image), = images.items()
        return {stem: (image, note_dir, OBJECT_MASKS)}
    notes = [(p, annotation_kind(p) or "dot mask") for p in _entries(note_dir)]
    return _paired(images, notes, image_dir, _visible_files(image_dir), note_dir)


# --- one image a folder: img1/img1.bmp + img1/img1_detection.mat; <id>/images/ + <id>/masks/ ------------

OBJECT_MASKS = "object masks"       # the kind of an annotation that is a folder of one mask per cell


def object_masks(folder: Path) -> list[Path]:
    """The mask files of a folder of object masks (one image file per cell), in name order."""
    return [p for p in _entries(Path(folder)) if p.suffix.lower() in IMAGE_SUFFIXES]


def _object_masks_of(images: dict[str, Path], note_dir: Path) -> bool:
    """Whether note_dir holds the object masks of the one image of `images`: one image file per
    cell (DSB 2018's <id>/masks/, as segmentation sets ship their instances), none of them named
    after the image (its dot mask), and nothing else; two masks at least, or a folder named
    masks/ (an image of one cell)."""
    files = _entries(note_dir)
    if len(images) != 1 or not files or any(p.suffix.lower() not in IMAGE_SUFFIXES
                                            for p in files):
        return False
    stem = next(iter(images))
    if any(stem in _annotation_keys(p.stem) for p in files):
        return False
    return len(files) >= 2 or _folder_key(note_dir.name) in ("masks", "mask")


def object_masks_owner(image_dir: Path, folder: Path) -> Path | None:
    """The image whose object masks `folder` holds, the annotations' folder beside `image_dir`
    (split_folders: DSB 2018's <id>/masks/ beside <id>/images/<id>.png, as _pairs_apart pairs
    them); None where it holds none."""
    try:
        images = _images_by_stem(_entries(Path(image_dir)))
    except (DatasetError, OSError):
        return None
    return next(iter(images.values())) if _object_masks_of(images, Path(folder)) else None


def _holds_images(folder: Path) -> bool:
    """Whether a folder holds images, itself or in a subfolder (<id>/images/)."""
    return _has_images(folder) or any(_has_images(d) for d in visible_subfolders(folder))


def image_folders(root: Path) -> list[Path]:
    """The subfolders of a folder kept one folder per image (the CRC release's
    Detection/img1/img1.bmp + img1_detection.mat; DSB 2018's <id>/images/<id>.png +
    <id>/masks/) or per group of images (a slide's, a patient's): a folder of no image or
    annotation itself, whose subfolders (two at least, none named as annotations' folders are)
    each hold images, each laid out as a dataset folder is (folder_pairs_in), and most of them
    annotations (both of two: else one may be the other's dot masks; one folder lacking its
    annotation is named by folder_pairs_in); [] for any other folder."""
    if _entries(root):
        return []
    every = visible_subfolders(root)
    subs = [d for d in every if _holds_images(d) or _entries(d)]
    if len(subs) < 2 or any(_folder_key(d.name) in ANNOTATION_FOLDERS
                            or split_part(d.name) for d in every) \
            or not all(_holds_images(d) for d in subs):
        return []

    def annotated(d: Path) -> bool:          # annotations beside its images, or kept apart
        inner = visible_subfolders(d)        # in an annotations' folder (<id>/masks/)
        return any(annotation_kind(p) for p in _entries(d)) or (
            len(inner) == 2 and any(_folder_key(e.name) in ANNOTATION_FOLDERS for e in inner))
    held = sum(annotated(d) for d in subs)
    if held * 2 <= len(subs) or (len(subs) == 2 and held < 2):
        return []                            # folders of images alone: none of this layout
    return subs


def _pairs_of_folders(folders: list[Path]) -> dict[str, tuple[Path, Path, str]]:
    """The pairs of each image folder (image_folders), pooled; where a stem is in two of them,
    every id carries its folder's name (slide1_001)."""
    units = [(d.name, folder_pairs_in(d)) for d in folders]
    for d, (_, pairs) in zip(folders, units):
        if not pairs:                        # its images, and no annotation read with them
            shown = few(str(p.relative_to(d)) for p in sorted(d.rglob("*"))
                        if p.suffix.lower() in IMAGE_SUFFIXES)
            raise DatasetError(f"{d} holds {shown} but no annotation that pycount reads (an "
                               f"empty masks/ folder, a file of another format?): each image "
                               f"needs its annotation; add it, or remove the folder")
    stems = [i for _, pairs in units for i in pairs]
    prefix = len(set(stems)) < len(stems)
    return {(f"{name}_{i}" if prefix else i): v for name, pairs in units for i, v in pairs.items()}


def folder_pairs_in(root) -> dict[str, tuple[Path, Path, str]]:
    """Map image stem -> (image, annotation, kind) for the folder layout: every image
    (.png .jpg .jpeg .tif .tiff .bmp) pairs with one annotation named after it: STEM.csv, STEM.xml or
    CellCounter_STEM.xml (Cell Counter), STEM.geojson or STEM.json (QuPath), or a dot mask
    STEM_dots.png / STEM-dots.png / STEMdots.png (any image suffix). Either all in the folder
    itself, or the images in one subfolder and the annotations in another (split_folders), where
    a dot mask may also carry its image's own name (images/001.png, dots/001.png). Every image
    needs exactly one annotation and every annotation its image, else DatasetError names the
    file."""
    root = require_dir(root)
    _refuse_ctc_part(root)
    folders = image_folders(root)
    if folders:
        return _pairs_of_folders(folders)
    split = split_folders(root)
    if split:
        return _pairs_apart(*split)
    if not _entries(root):                   # one subfolder holding it all (a zip's top folder)
        holding = visible_subfolders(root)
        if len(holding) == 1:
            return folder_pairs(holding[0])
    files = _visible_files(root)
    images = _images_by_stem(files)
    notes = [(p, kind) for p in files if (kind := annotation_kind(p))]
    # a dot mask is an image file whose stem, "dots" taken off (mask_bases), names another image
    for stem, p in list(images.items()):
        owners = [k for k in mask_bases(stem) if k in images and k != stem]
        if owners:
            notes.append((p, "dot mask"))
            del images[stem]
    return _paired(images, notes, root, files)


def _paired(images: dict[str, Path], notes: list[tuple[Path, str]], root: Path,
            files: list[Path], note_dir: Path | None = None,
            every: bool = True) -> dict[str, tuple[Path, Path, str]]:
    """folder_pairs' pairing of the images (by stem) with their annotations (path, kind); `root`
    and `files`: the images' folder and its files, `note_dir` the annotations' where they are
    kept apart, for the messages. A file of the whole set's annotations may name images the
    folder lacks: said in a note, not refused as an annotation without its image is. That one
    is a file of its own, there for that image only (a renamed or missing image; deleting it
    is the fix); an export lists every image of its task, of which a folder often holds a
    part (images left out on purpose), and its entries cannot be taken out without editing
    the tool's file. An image without an entry is refused all the same (`every`; else left
    out of the pairs: a class folder holds the files of its class's images)."""
    found: dict[str, list[tuple[Path, str]]] = {}
    classed: dict[str, list[tuple[str, Path, str]]] = {}
    tables: list[Path] = []                  # CSV tables of the whole set's marks
    for p, kind in notes:
        owners = [k for k in _annotation_keys(p.stem) if k in images]
        fits = None if owners or kind == "dot mask" or not every else _class_of(p.stem, images)
        if fits:                             # img1_positive.csv: img1's positive cells
            classed.setdefault(fits[0], []).append((fits[1], p, kind))
            continue
        whole = None if owners or kind == "dot mask" else set_file(p)
        if whole is not None:                # one file of the whole set's annotations
            if whole[0] == "CSV table":
                tables.append(p)
            for name in whole[1]:
                if Path(name).stem in images:
                    found.setdefault(Path(name).stem, []).append((p, whole[0]))
            missing = [name for name in whole[1] if Path(name).stem not in images]
            if missing:
                note(f"{p} annotates {len(missing)} image(s) that {root} does not hold "
                     f"({few(missing)}): their entries are not read; add the images to count "
                     f"them")
            continue
        if not owners and kind == TEXT:      # a .txt of numbers named after no image (a
            note(f"{p} is named after no image of {root}: not read as an annotation")
            continue                         # pixel size, a log): not taken for one
        unread = [q for q in files if q.suffix.lower() in OTHER_IMAGE_SUFFIXES
                  and q.stem in _annotation_keys(p.stem)] if not owners else []
        if unread:                           # its name is right, its format not
            raise DatasetError(f"{p} ({kind}) has no image of the same name in {root}: "
                               f"{unread[0].name} is not in a supported format ({FORMATS}); "
                               "convert it to PNG or TIFF")
        if not owners:
            keys = {k.lower() for k in _annotation_keys(p.stem)}
            cased = [images[s].name for s in images if s.lower() in keys]
            if cased:                        # the names differ in case only
                raise DatasetError(f"{p} ({kind}) has no image of the same name in {root}, but "
                                   f"{cased[0]} differs from it in case only; names are matched "
                                   f"as written: rename one of the two")
            raise DatasetError(f"{p} ({kind}) has no image of the same name in {root} (expected e.g. "
                               f"{(mask_bases(p.stem) or [p.stem])[0] if kind == 'dot mask' else p.stem}.png); add the "
                               "image or remove the annotation")
        found.setdefault(owners[0], []).append((p, kind))
    if len(tables) == 1:                     # a table lists marks: an image of no cell has no row
        unlisted = [stem for stem in images if stem not in found and stem not in classed]
        for stem in unlisted:
            found[stem] = [(tables[0], "CSV table")]
        if unlisted:
            note(f"{tables[0]} has no row for {len(unlisted)} of the {len(images)} images of "
                 f"{root} ({few(unlisted)}): each is read as an image of no cell")
    for stem, files in classed.items():
        _check_class_files(images[stem], files, found.get(stem, []))
        found[stem] = [(note_dir or root,
                        f"{CLASS_FILES} of {', '.join(sorted({k for _, _, k in files}))}")]
    for stem, image in images.items():
        if stem not in found and not every:
            continue
        if stem not in found:
            where = f" to {note_dir}" if note_dir else ""
            # a file of its name in a format not read (a .txt table of no coordinates, a
            # Results table saved as .xls): named, with its way in
            unread = sorted(q.name for q in _visible_files(note_dir or root)
                            if q.stem == stem and q != image
                            and q.suffix.lower() not in IMAGE_SUFFIXES)
            hint = (f" ({', '.join(unread)} {'is' if len(unread) == 1 else 'are'} in no format "
                    f"read here: a table of x,y is read as {stem}.csv (or .txt, with a header line "
                    f"naming x and y), and a segmentation as a label mask {stem}_masks.png)") if unread else ""
            raise DatasetError(f"{image} has no annotation{hint}; add one named after it{where}: "
                               f"{stem}.csv (x,y), {stem}.xml (Cell Counter), {stem}.geojson "
                               f"(QuPath) or a dot mask {stem}_dots.png, or remove the image")
        if len(found[stem]) > 1:
            raise DatasetError(f"{image} has {len(found[stem])} annotations "
                               f"({', '.join(str(p) for p, _ in found[stem])}); keep one of them")
    pairs = {stem: (images[stem], *found[stem][0]) for stem in images if stem in found}
    _check_recorded(pairs, images, root)
    return pairs


def _check_recorded(pairs: dict[str, tuple[Path, Path, str]], images: dict[str, Path],
                    root: Path) -> None:
    """The image name a Cell Counter or Pascal VOC file records (recorded_image) against the
    image its file name pairs it with. Another image of the folder: DatasetError naming both,
    since the marks were set on that image, and read as this one's they would train the counter
    on the wrong cells (a file saved or renamed under the wrong name). A name of no image here
    (images renamed or converted after annotating; a title such as "img1.czi - Series 0"): one
    note for the folder, the files read as named. Names compare case-blind, by stem too (a
    TIFF annotated, then converted to PNG, keeps its stem)."""
    stems = {stem.lower(): image for stem, image in images.items()}
    strays = []
    for stem, (image, marks, kind) in pairs.items():
        if not kind.startswith("XML"):
            continue
        element, name = recorded_image(marks)
        if not name or name.lower() in (image.name.lower(), stem.lower()) \
                or Path(name).stem.lower() == stem.lower():
            continue
        other = stems.get(name.lower()) or stems.get(Path(name).stem.lower())
        if other is not None:
            raise DatasetError(
                f"{marks} is named after {image.name}, but records its marks as made on "
                f"{other.name} (<{element}>{name}</{element}>), another image of {root}: name "
                f"the file after the image its marks were made on (one file per image), or, if "
                f"they are {image.name}'s, correct <{element}> to {image.name}")
        strays.append(f"{marks.name} records {name}")
    if strays:
        note(f"{len(strays)} annotation file(s) record an image name that {root} does not "
             f"hold ({few(strays, 3)}; renamed or converted images?): each is read as the "
             f"image it is named after")
