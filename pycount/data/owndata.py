"""A lab's own folder of annotated images (DATASET=path/to/folder): its settings inferred from the
data, each printed once with the rule behind it (the rules' constants: config.OWN_*).

pycount.config.folder_dataset gives what the folder's pycount.toml fixes (the rest zero);
`resolve` measures the images (cached per file in data/own/<name>.json, so a second command does
not decode them again) and fills in the rest. That file also makes the name one folder's: another
folder of the same name is refused (it would share the LMDBs and runs), unless the recorded folder
is gone and the new one holds the same images and dots (moved or copied: it takes the name over).
Settings given on the command line (PATCH=, ...) or in pycount.toml are kept and said so. The
rules use only what any dot-annotated set has: the image sizes, the dots, the pixels; their
constants are the ones that reproduce the settings of the named datasets (numbers in the
comments), not values tuned on any one of them.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from pycount import config
from pycount.data import density_targets, lmdbio, patches, prepare
from pycount.data import readers
from pycount.data.annotations import classes_without, few
from pycount.data.images import decoded_pixels, to_rgb8, depth_percentiles
from pycount.data.layout import (CLASS_FILES, CLASS_FOLDERS, OBJECT_MASKS, annotation_paths,
                                 folder_layout, image_classes, visible_subfolders)
from pycount.errors import DatasetError
from pycount.util import atomic

# the measured images' record (data/own/NAME.json): 4 since marks a pixel apart that read as a
# hair less are not taken for one cell marked twice (3: a dot mask's touching discs are k cells
# at k places; 2: counted as the readers count marks; 1: as written)
CACHE_VERSION = 4


@dataclass
class ImageStats:
    """What the rules need from one image (cached)."""
    id: str
    width: int
    height: int
    count: int
    nn: list          # each dot's distance to its nearest neighbour, px (1 decimal)
    mean_bgr: list    # the image's mean colour (a deeper image: as stretched on its own)
    # an image deeper than 8 bits: its dtype, the DEPTH_PERCENTILES of its raw values (lo, hi)
    # and its raw mean per channel (mean_rgb); {} for an 8-bit image
    depth: dict = field(default_factory=dict)
    # counted marks lying within config.OWN_DUPLICATE_PX of another counted mark (a cell marked
    # twice), from their exact distances; -1: not measured (a record from before)
    twice: int = -1


def _file_key(*paths: Path) -> str:
    h = hashlib.sha256()
    for p in paths:
        st = p.stat()
        h.update(f"{p.name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()[:16]


def _recorded(name: str) -> dict:
    """data/own/<name>.json as _measure wrote it: the folder the name is of, and its images'
    stats ({} when there is none or it is unreadable)."""
    try:
        old = json.loads(config.own_record(name).read_text())
    except (OSError, ValueError):
        return {}
    return old if isinstance(old, dict) else {}


def _name_taken(name: str, root: Path, old: dict) -> Path | None:
    """The folder the name moved from, when its record names another folder that is gone (it
    is taken over only if that folder's images are root's: _check_moved), else None. Raises
    when the record names another folder that is still there: the name's LMDBs and runs are
    that folder's, and sharing them would train or score one folder's model on the other's."""
    then = old.get("folder")
    if not isinstance(then, str) or not then or then == str(root):
        return None
    if not Path(then).is_dir():
        return Path(then)
    raise DatasetError(f"{root} and {then} are both named {name!r}: {_owned(name, then)}; "
                       f"{_fixes(name, root)}")


def _owned(name: str, then) -> str:
    """What a name holds of the folder `then`: its record, LMDBs and runs."""
    return (f"{config.own_record(name)} records {then} under that name, and its LMDBs and runs "
            f"go to {config.data_dir() / 'lmdb' / name} and {config.runs_dir() / name} (and "
            f"their {name}-... variants)")


def _fixes(name: str, root: Path) -> str:
    """The two ways out of a taken name: another name for root, or the old data moved away."""
    alt = f"{root.parent.name}-{name}"          # /b/base: "b-base"
    if not root.parent.name or len(alt) > config.OWN_NAME_MAX \
            or not re.fullmatch(config.OWN_NAME_PATTERN, alt):
        alt = f"{name}-2"
    return (f"give {root} a name of its own with name = \"{alt}\" in {root / config.SPEC_FILE}, "
            f"or move that data away to give the name to {root}")


def _check_moved(name: str, root: Path, then: Path, old: dict,
                 stats: dict[str, ImageStats]) -> None:
    """A folder that takes over the name of one that is gone must hold the same images and dots
    (their sizes, mean colours and dot positions as measured, whatever the files' times): a
    folder moved or copied elsewhere keeps its LMDBs and runs, any other is refused."""
    recorded = old.get("images") if old.get("version") == CACHE_VERSION else None
    then_stats = {i: e.get("stats") for i, e in recorded.items() if isinstance(e, dict)} \
        if isinstance(recorded, dict) else {}
    now = {i: {k: v for k, v in s.__dict__.items()         # a record from before a field was
               if not isinstance(then_stats.get(i), dict) or k in then_stats[i]}   # measured
           for i, s in stats.items()}
    if then_stats == now:
        return
    said = ([f"{i} changed" for i in sorted(then_stats.keys() & now.keys())
             if then_stats[i] != now[i]]
            + [f"{i} added" for i in sorted(now.keys() - then_stats.keys())]
            + [f"{i} removed" for i in sorted(then_stats.keys() - now.keys())])
    more = f" and {len(said) - 3} more" if len(said) > 3 else ""
    raise DatasetError(
        f"{root} is named {name!r}, the name of {then}, which is gone, but its images or dots are "
        f"not those recorded for it ({', '.join(said[:3]) + more}): {_owned(name, then)}; "
        f"{_fixes(name, root)} (if {root} is {then} moved and then edited, removing "
        f"{config.own_record(name)} is enough: prepare rebuilds what changed)")


def _datasets_within(root: Path) -> list[str]:
    """The subfolders of `root` that are each a dataset folder of its own (a release of several
    sets: the CRC release's Detection/ and Classification/), as "name/ (N images)"."""
    found = []
    for d in visible_subfolders(root):
        try:
            n = len(folder_layout(d)[0])
        except (DatasetError, OSError):
            continue
        if n >= config.OWN_MIN_IMAGES:
            found.append(f"{d.name}/ ({n} images)")
    return found


def _measure(root: Path, pairs: dict, marker: str, name: str, old: dict,
             moved: Path | None = None) -> dict[str, ImageStats]:
    """Every annotated image's stats (`pairs`: the folder's, layout.folder_layout), reusing the
    cache (`old`, the name's record) where the files are unchanged; `moved`: the folder the name
    is taken over from (_check_moved)."""
    if len(pairs) < config.OWN_MIN_IMAGES:
        subs = [d.name + "/" for d in visible_subfolders(root)]
        read = (f" (pycount reads the images with their annotations beside them, in two "
                f"subfolders images/ + dots/ (or labels/, annotations/), in train/ + test/ "
                f"subfolders laid out either way, or as images/train/ + annotations/train/ "
                f"(+ test/); its subfolders "
                f"{', '.join(subs[:4])}{', ...' if len(subs) > 4 else ''} are none of these: see "
                f"docs/own-data.md)" if subs and not pairs else "")
        sets = _datasets_within(root) if subs and not pairs else []
        if sets:                              # a release of several sets (Detection/, ...)
            read = (f" itself, but its subfolders {few(sets)} are each a folder of annotated "
                    f"images pycount reads: give one of them as the dataset "
                    f"(DATASET={root / sets[0].split(' ')[0]})")
        raise DatasetError(f"{root}: found {len(pairs)} annotated images{read}; a dataset needs "
                           f"at least {config.OWN_MIN_IMAGES} (training, validation, test)")
    record = config.own_record(name)
    cache = {}
    if old.get("version") == CACHE_VERSION and old.get("folder") == str(root):
        cache = old.get("images", {})
    out, fresh = {}, {}
    for i, (image_path, note, kind) in pairs.items():
        # (with a marker: its count, and the spacing of every mark: ":nn-all")
        key = _file_key(image_path, *annotation_paths(note, kind, image_path)) + (
            f":{marker}:nn-all" if marker else ":")
        hit = cache.get(i)
        if hit and hit.get("key") == key and {"depth", "twice"} <= set(hit.get("stats", {})):
            out[i] = ImageStats(**hit["stats"])
        else:
            raw = decoded_pixels(image_path)
            band = depth_percentiles(raw) if raw.dtype != np.uint8 else ()
            image = to_rgb8(raw, band)             # as stretched on its own (band, or flat)
            def marks(m: str) -> np.ndarray:      # as the readers count them
                return readers.read_marks(note, kind, image.shape, m, image_path)
            centres = marks(marker)
            everyone = marks("") if marker else centres
            # the cell spacing over every marked cell, whatever the marker counted: the windows
            # and sigma follow the cells' size and packing, not how many are of the type counted
            # (Ki67-positive nuclei among the negative ones are as large and packed as they are)
            nn = np.round(prepare.nearest_distances(everyone), 1).tolist()
            # (to 1/100 px: marks on neighbouring pixels kept as fractions of the image, YOLO's,
            # lie 0.99999 px apart, and are two cells, as they are at 1.0)
            twice = int(np.sum(np.round(prepare.nearest_distances(centres), 2)
                               < config.OWN_DUPLICATE_PX))
            depth = {}
            if band:
                lo, hi = band
                chans = raw.reshape(raw.shape[0], raw.shape[1], -1).astype(np.float64)
                depth = {"dtype": str(raw.dtype), "lo": _sig(lo), "hi": _sig(hi),  # 10 digits:
                         "mean_rgb": [_sig(v) for v in np.broadcast_to(        # floats of 1e-5
                             chans.mean(axis=(0, 1)), 3)]}
            out[i] = ImageStats(i, image.shape[1], image.shape[0], len(centres), nn,
                                image.reshape(-1, 3).mean(axis=0)[::-1].round(2).tolist(), depth,
                                twice)
        fresh[i] = {"key": key, "stats": out[i].__dict__}
    readers.say_edges()
    if moved is not None:
        _check_moved(name, root, moved, old, out)
    record.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(record, json.dumps({"version": CACHE_VERSION, "folder": str(root),
                                          "images": fresh}))
    return out


def _window(size: float, multiple: int, bounds, typical: int, per_spacing: float
            ) -> tuple[int, str]:
    """A window side (patch or crop) of `size` px rounded to `multiple` within `bounds`, shrunk
    to the images' median smaller side `typical` when it would not fit; with its reason."""
    side = min(max(_round_to(size, multiple), bounds[0]), bounds[1])
    why = f"{per_spacing:g} x the cell spacing, a multiple of {multiple} in [{bounds[0]}, " \
          f"{bounds[1]}]"
    if side > typical and typical >= bounds[0]:
        side, why = typical // multiple * multiple, f"the images' median smaller side " \
                    f"({typical} px): {why} would not fit"
    return side, why


def _round_to(v: float, m: int) -> int:
    return int(m * round(v / m))


def draw_split(ids: list[str], test: tuple[str, ...] = (), spec: Path | None = None
               ) -> tuple[list[str], list[str]]:
    """(train, test) ids: the test ids given (`spec`, the folder's pycount.toml, or its published
    test/ part), else prepare's seeded draw."""
    if test:
        unknown = sorted(set(test) - set(ids))
        if unknown:
            where = f"{spec} names test images that are not in {spec.parent}" if spec else \
                f"{config.SPEC_FILE} names test images that are not in the folder"
            raise DatasetError(f"{where}: {few(unknown)}; correct the names (the image "
                               f"files' names without their suffix"
                               f"{_near_ids(unknown, ids, test)}) or take them out of test")
        return [i for i in ids if i not in set(test)], [i for i in ids if i in set(test)]
    return prepare.draw_split(ids)


def _near_ids(unknown: list[str], ids: list[str], test: tuple[str, ...]) -> str:
    """Where each unknown test id is one image's name without a part before or after it that is
    no continuation of it ('101' of '101cell', the VGG naming; not '1' of 'slide_12'), and these
    names are distinct and not in `test` already, them for the message: '; perhaps 101cell, ...'."""
    def fits(u, name):
        if name.startswith(u) and len(name) > len(u):
            a, b = u[-1], name[len(u)]
        elif name.endswith(u) and len(name) > len(u):
            a, b = name[-len(u) - 1], u[0]
        else:
            return False
        return not (a.isdigit() and b.isdigit() or a.isalpha() and b.isalpha())
    meant = []
    for u in unknown:
        hits = [i for i in ids if fits(u, i)]
        if len(hits) != 1 or hits[0] in test or hits[0] in meant:
            return ""
        meant.append(hits[0])
    return f"; perhaps {few(meant)}"


def _given(ds: config.DatasetConfig, root: Path, key: str, value, first: bool = True) -> str:
    """Where a setting's value came from, for a message: its pycount.toml line or the option
    (`first`: the message's first words, which name the file before the setting)."""
    raw = config.read_spec(root).get(key) if key in ds.spec else None
    if raw is not None and raw == value:       # as the file writes it: sigma = 8, not 8.0
        return f"{root / config.SPEC_FILE}: {key} = {raw!r}" if first else \
            f"{key} = {raw!r} in {root / config.SPEC_FILE}"
    shown = f"{value:g}" if isinstance(value, float) else value     # SIGMA=8, not 8.0
    return f"{key.upper()}={shown} (--{key.replace('_', '-')})"


def _source(ds: config.DatasetConfig, root: Path, key: str, value) -> str:
    """A window side for the second half of a message: where it was given, or that it was
    inferred."""
    return _given(ds, root, key, value, first=False) if getattr(ds, key) else \
        f"the inferred {key} of {value} px"


def _check_settings(ds: config.DatasetConfig, root: Path) -> None:
    """The settings that must be refused before anything is written: a name that would leave
    data/ (it names the cache file, the LMDBs and the runs) and a validation set of no image."""
    spec_file = root / config.SPEC_FILE
    if "name" in ds.spec:
        name = str(config.read_spec(root).get("name", ds.name))
        if len(name) > config.OWN_NAME_MAX or not re.fullmatch(config.OWN_NAME_PATTERN, name):
            raise DatasetError(
                f"{spec_file}: name = {name!r} is not valid: the name becomes a folder under "
                f"data/ and runs/, so use letters, digits, '-', '_', '.' and spaces only, not "
                f"starting with '.' or a space nor ending with a space (at most "
                f"{config.OWN_NAME_MAX} characters), e.g. name = \"mouse-liver\"")
    if ds.n_val < config.OWN_MIN_N_VAL:
        raise DatasetError(
            f"{spec_file}: n_val = {ds.n_val} is not valid: at least {config.OWN_MIN_N_VAL} "
            f"training image must validate (it picks the weights kept and shows overfitting); "
            f"set n_val to {config.OWN_MIN_N_VAL} or more, or leave it out (default: one per "
            f"{config.OWN_TRAIN_PER_VAL} training images, {config.OWN_MIN_N_VAL} to "
            f"{config.OWN_N_VAL})")


def _check_windows(ds: config.DatasetConfig, root: Path, stats: dict[str, ImageStats]) -> None:
    """A patch or crop side given in pycount.toml or on the command line within
    config.WINDOW_LIMITS and no larger than the folder's largest image side (a larger window
    is padding only; the inferred range's floor stays allowed for folders of tiny images)."""
    largest = max(max(s.width, s.height) for s in stats.values())
    for key, floor in (("patch", config.OWN_PATCH_RANGE[0]), ("crop", config.OWN_CROP_RANGE[0])):
        value = getattr(ds, key)
        lo, hi = config.WINDOW_LIMITS
        top = min(hi, max(largest, floor))
        if value and not lo <= value <= top:
            if value < lo:
                why = f"the nets pool three times: below {lo} px no map is left"
            elif value > largest:
                why = f"a window larger than the largest image, {largest} px, holds only padding"
            else:
                why = f"above {hi} px the nets' weights and batches outgrow the memory"
            raise DatasetError(f"{_given(ds, root, key, value)} is not valid: use a {key} of "
                               f"{lo} to {top} px ({why}), or leave it out to have it inferred")


def resolve(ds: config.DatasetConfig, say=print, checks: bool = True) -> config.DatasetConfig:
    """ds with every zero setting inferred from its folder; `say` gets one line per setting.
    Settings no training can use (see _check_settings, _check_windows, and a split or
    annotations that leave nothing to learn from) raise DatasetError before anything is written
    beyond the images' measurement cache; so does a name another folder holds (_name_taken,
    _check_moved), before even that. prepare, train and eval all come through here. `checks`
    False (_defaults: the folder's own settings, the reference a command line's are tagged
    against) lets windows and widths pass that the command line has just replaced."""
    if not ds.own:
        return ds
    root = Path(ds.subdir)
    _check_settings(ds, root)
    old = _recorded(ds.name)
    moved = _name_taken(ds.name, root, old)
    pairs, published, test_part = folder_layout(root)
    stats = _measure(root, pairs, ds.marker, ds.name, old, moved)
    ids = sorted(pairs, key=readers.natural_key)
    published = () if ds.test_ids else published
    train, test = draw_split(ids, ds.test_ids or published, root / config.SPEC_FILE)
    if len(train) < config.OWN_MIN_TRAIN_IMAGES:
        need = (f"training needs at least {config.OWN_MIN_TRAIN_IMAGES} (one to train on, one "
                f"to validate)")
        if published:                   # the split is the folder's own train/ + test/
            raise DatasetError(
                f"{root / test_part}/ holds {len(test)} of the folder's {len(ids)} annotated "
                f"images, which leaves {len(train)} for training; {need}: move some of its "
                f"images into the training folder, or add annotated images there")
        raise DatasetError(
            f"{root / config.SPEC_FILE}: test names {len(test)} of the folder's {len(ids)} images, "
            f"which leaves {len(train)} for training; {need}: take some out of "
            f"test, or add annotated images")
    kinds = sorted({k for _, _, k in pairs.values()})
    fresh = config.folder_dataset(ds.subdir)     # the folder as its pycount.toml sets it
    chooser = root / config.SPEC_FILE if ds.marker == fresh.marker else "MARKER="
    if ds.marker and set(kinds) <= {"dot mask", OBJECT_MASKS}:
        plural = " and ".join(k if k.endswith("s") else k + "s" for k in kinds)
        raise DatasetError(f"{chooser} chooses the marker {ds.marker!r}, but {root}'s annotations "
                           f"({plural}) have no marker types or classes: every mark counts; "
                           f"leave the marker out")
    tr = [stats[i] for i in train]
    if not sum(s.count for s in tr):
        seen = classes_without(ds.marker) if ds.marker else []
        chosen = (f" of the marker {ds.marker!r} that {chooser} chooses" if ds.marker else "") + (
            f" (the classes its files hold: {', '.join(seen)})" if seen else "")
        raise DatasetError(
            f"{root}: none of the {len(tr)} training images has an annotated cell{chosen}, and a "
            f"counter cannot learn from zero cells; check the annotation files (a CSV of only "
            f"its header x,y, a wrong marker or class), or add annotated images")
    # (a mask's content tells dots from labels when it is read: named as either here)
    shown = [{"dot mask": "dot or label mask"}.get(k, k) for k in kinds]
    lines = [f"{ds.name}: {len(ids)} annotated images ({', '.join(shown)}) in {root}"]
    by_class = sorted({c for image, note_dir, kind in pairs.values()
                       for c in image_classes(note_dir, kind, image)})
    if by_class:
        kept = ("a subfolder each" if any(k.startswith(CLASS_FOLDERS) for k in kinds) else
                "in the files' names")
        lines.append(f"  classes: {', '.join(by_class)} ({kept}); " + (
            f"{chooser} counts {ds.marker!r} alone" if ds.marker else
            "every class counted (MARKER=<class> counts one)"))
    typical = float(np.median([stats[i].count for i in ids]))
    empty = [i for i in ids if stats[i].count == 0]
    if empty and not ds.marker and typical >= config.OWN_EMPTY_AMONG:
        # every mark counted: an image of no cell among crowded ones is more often an export
        # that lost its marks than an empty field (both train as it says: no cells)
        files = [_named(pairs[i], root) for i in empty]
        lines.append(f"  note: {few(files)} mark{'s' if len(empty) == 1 else ''} "
                     f"no cell where the folder's images mark {typical:g} in the median: an "
                     f"empty field, or a file that lost its marks (a CSV of only its header)? "
                     f"{'It trains' if len(empty) == 1 else 'They train'} as "
                     f"{'an image' if len(empty) == 1 else 'images'} of no cells")
    if moved is not None:
        lines.append(f"  moved from {moved}: the same images and dots, so {ds.name}'s LMDBs "
                     f"and runs are kept")

    def from_spec(key):         # a setting as the folder's pycount.toml gives it
        return key in ds.spec and getattr(ds, key) == getattr(fresh, key)

    def note(key, value, rule, unit=""):
        spec_key = {"split": "test", "mean_bgr": "mean_rgb"}.get(key, key)
        src = "pycount.toml" if spec_key in ds.spec else f"{ {'rot_step': 'ROT'}.get(key, key.upper())}= given"
        lines.append(f"  {key:<15} {value!s:>8}{unit}  {rule if not set_[key] else src}")

    set_ = {k: bool(getattr(ds, k)) for k in ("patch", "stride", "sigma", "crop", "crop_stride",
                                               "mean_bgr", "max_patch_count", "scale")}
    set_["split"] = bool(ds.test_ids)
    set_["depth_range"] = "depth_range" in ds.spec
    set_["rot_step"] = "rot_step" in ds.spec or ds.rot_step != config.OWN_ROT_STEP

    # split: as the named sets without a recorded one (seeded, config.SPLIT_SEED)
    n_val = prepare.val_count(ds, len(train))            # as prepare.split draws them
    capped = (f" (n_val = {ds.n_val} asked: at most a quarter of them)"
              if n_val < ds.n_val and "n_val" in ds.spec else "" if "n_val" in ds.spec else
              f" (one per {config.OWN_TRAIN_PER_VAL} training images, {config.OWN_MIN_N_VAL} to "
              f"{config.OWN_N_VAL}; n_val = in {config.SPEC_FILE} sets it)")
    drawn = (f"the images of the folder's {test_part}/ subfolder"
             if published else f"a seeded draw (seed {config.SPLIT_SEED}) of {len(test)} test "
                               f"images")
    if ds.train_n:          # the protocol's draw (prepare.split): N trained, monitors left over
        capped = (f" (TRAIN_N={ds.train_n} of them drawn with seed {ds.seed} are trained on; "
                  f"the {n_val} validate from the rest)")
    note("split", f"{len(train)}/{len(test)}", f"train/test images, {drawn}; {n_val} of the "
         f"training images validate{capped}")

    _check_duplicates(root, stats, pairs, lines)
    nn = prepare.spacings([s.nn for s in tr], config.OWN_DUPLICATE_PX)
    spacing = float(np.median(nn)) if len(nn) else config.OWN_FALLBACK_SPACING
    lines.append(f"  {'cell spacing':<15} {spacing:>8.1f} px  " + (
        f"median distance of a dot to its nearest neighbour ({len(nn)} dots"
        f"{', every marker' if ds.marker else ''} in {len(tr)} training images)" if len(nn)
        else "no training image has two dots: a 10 px default"))

    # scale: images whose cells lie further apart than the settings below were made for are
    # read smaller (readers.rescale); every rule after this one sees the resized images
    scale, why = _scale(ds.scale, spacing, bool(len(nn)))
    note("scale", f"{scale:g}", why)
    if scale != 1:
        stats = {i: _scaled(st, scale) for i, st in stats.items()}
        tr = [stats[i] for i in train]
        spacing *= scale
        lines.append(f"  {'':<15} {spacing:>8.1f} px  the cell spacing in the resized images")
    if checks:
        _check_windows(ds, root, stats)

    sides = np.array([min(s.width, s.height) for s in stats.values()])
    typical = int(np.median(sides))           # most images' smaller side: patches fit them

    # patch (patch models): 4.5 cell spacings, a multiple of 4, at most most images' side
    patch, why = _window(config.OWN_PATCH_PER_SPACING * spacing, 4, config.OWN_PATCH_RANGE,
                         typical, config.OWN_PATCH_PER_SPACING)
    patch = ds.patch or patch
    note("patch", patch, why, " px")
    if ds.stride > patch:            # given: an inferred one is half the patch
        raise DatasetError(f"{_given(ds, root, 'stride', ds.stride)} is larger than "
                           f"{_source(ds, root, 'patch', patch)}: "
                           f"{config.stride_gap(ds.stride, patch)}")
    stride = ds.stride or max(1, patch // 2)
    note("stride", stride, "half the patch (the paper's bacterial and nuclei settings)", " px")
    note("rot_step", ds.rot_step, "the paper's rotation step", " deg")

    lo, hi = config.OWN_SIGMA_RANGE
    sigma = min(max(round(2 * config.OWN_SIGMA_PER_SPACING * spacing) / 2, lo), hi)
    sigma = ds.sigma or sigma
    note("sigma", f"{sigma:g}", f"a sixth of the cell spacing, to 0.5 px, in "
         f"[{lo:g}, {hi:g}]: the width both named sets count best with", " px")

    crop, why = _window(config.OWN_CROP_PER_SPACING * spacing, 8, config.OWN_CROP_RANGE,
                        typical, config.OWN_CROP_PER_SPACING)
    crop = ds.crop or crop
    note("crop", crop, why, " px")
    if checks and sigma > config.sigma_max(crop):  # never both inferred: sigma <= 8, crops >= 48
        said = _given(ds, root, "sigma", ds.sigma) if ds.sigma else \
            f"the inferred sigma of {sigma:g} px"
        raise DatasetError(f"{said} is too wide for {_source(ds, root, 'crop', crop)}: "
                           f"{config.sigma_too_wide(sigma, crop)}")

    if checks and ds.zoom and sigma * (1 + ds.zoom) > config.sigma_max(crop):
        said = _given(ds, root, "sigma", ds.sigma, first=False) if ds.sigma else \
            f"the inferred sigma of {sigma:g} px"
        zoom = config.own_setting(ds, "zoom") if from_spec("zoom") else f"ZOOM={ds.zoom:g}"
        raise DatasetError(config.zoom_too_wide(zoom, said, sigma * (1 + ds.zoom),
                                                _source(ds, root, "crop", crop), crop))
    sizes = Counter((max(x.height, crop), max(x.width, crop)) for x in tr)

    def n_crops(c, s):
        return sum(k * density_targets.count_training_crops(h, w, c, s, ds.rot_step,
                                                                 zoom=ds.zoom)
                   for (h, w), k in sizes.items())
    if ds.crop_stride:
        crop_stride = ds.crop_stride
    else:
        for crop_stride in range(max(8, crop // 16 * 8), 8 * crop + 1, 8):
            if n_crops(crop, crop_stride) <= config.OWN_CROP_BUDGET:
                break
    note("crop_stride", crop_stride, f"the smallest multiple of 8 from half the crop that keeps "
         f"the training crops within {config.OWN_CROP_BUDGET:,} "
         f"(here {n_crops(crop, crop_stride):,}, counting the images kept aside to monitor "
         f"training)", " px")

    if ds.zoom:                         # never inferred: shown where pycount.toml or ZOOM= set it
        lines.append(f"  {'zoom':<15} {ds.zoom:>8g}  "
                     f"{'pycount.toml' if from_spec('zoom') else 'ZOOM= given'}: density models' "
                     f"crops also cut at 1/(1+zoom) and 1+zoom times each image's size")

    # one image much larger than the others: the nets learn mostly from it, which a lab should
    # know (its tissue, stain or cells stand for the folder). By area, which the crops and the
    # patches of any model follow (those that validate included)
    area = {s.id: max(s.height, crop) * max(s.width, crop) for s in tr}
    big = max(area, key=area.get)
    share = area[big] / sum(area.values())
    if len(tr) > 2 and share > config.OWN_ONE_IMAGE_SHARE:
        lines.append(f"  note: {big} ({stats[big].width}x{stats[big].height} px) holds "
                     f"{share:.0%} of the training images' area, the other {len(tr) - 1} the "
                     f"rest: the nets learn mostly from it")
    depth_range = _depth_range(ds, tr, root, note, lines)
    pixels = np.array([s.width * s.height for s in tr], np.float64)
    mean = tuple(float(v) for v in np.round(
        (np.array([_mean_bgr(s, depth_range) for s in tr]) * pixels[:, None]).sum(0)
        / pixels.sum(), 1))
    measured, mean = mean, ds.mean_bgr or mean
    note("mean_bgr", list(mean), "mean colour of the training images' pixels (B, G, R)")
    # the stain jitter, from the colour measured whatever mean_rgb the nets subtract
    hed, why = stain_jitter(ds.hed_jitter, ds.rot_step, measured)
    if ds.hed_jitter >= 0:               # given: pycount.toml's, or HED=
        why = ("pycount.toml" if from_spec("hed_jitter") else "HED= given") + (
            ": H&E stain jitter of the density models' training crops" if hed else ": none")
    lines.append(f"  {'hed_jitter':<15} {hed:>8g}  {why}")
    hed_reference = stain_jitter(fresh.hed_jitter, ds.rot_step, measured)[0]

    # the C head's classes (config.OWN_CLASS_HEADROOM, OWN_CLASS_MARGIN)
    dens = max(s.count / (s.width * s.height) for s in tr)
    mpc = ds.max_patch_count or (int(math.ceil(config.OWN_CLASS_HEADROOM * dens * patch * patch))
                                 + config.OWN_CLASS_MARGIN)
    note("max_patch_count", mpc, f"C head: {config.OWN_CLASS_HEADROOM:g} times the densest training "
         f"image's cells per patch area, plus {config.OWN_CLASS_MARGIN}")
    if ds.max_patch_count and ds.max_patch_count > patch * patch:   # more cells than pixels
        raise DatasetError(f"{_given(ds, root, 'max_patch_count', ds.max_patch_count)} is more "
                           f"cells than a {patch} px patch has pixels ({patch * patch}): the C "
                           f"head would get a class for each; remove it to have it inferred "
                           f"({config.OWN_CLASS_HEADROOM:g} times the densest training image's "
                           f"cells per patch area, plus {config.OWN_CLASS_MARGIN})")

    for what, side in (("patch", patch), ("crop", crop)):
        small = sum(int(min(s.width, s.height) < side) for s in stats.values())
        if small:
            lines.append(f"  {small} image(s) smaller than the {side} px {what} are padded to it "
                         f"(bottom, right) with the mean colour; the padding holds no cell")
    raw = sum(patches.count_training_patches(max(s.height, patch), max(s.width, patch), patch,
                                             stride, ds.rot_step) for s in tr) * patch ** 2 * 3
    encoded = ds.encoded or raw > config.OWN_ENCODE_ABOVE
    if encoded:
        lines.append(f"  patch LMDB stored PNG-encoded: {raw / 2 ** 30:.1f} GB as raw patches")
    out = replace(ds, patch=patch, stride=stride, sigma=float(sigma), crop=crop,
                  crop_stride=crop_stride, mean_bgr=mean, max_patch_count=mpc, encoded=encoded,
                  train_ids=tuple(train), test_ids=tuple(test), depth_range=depth_range,
                  image_dtypes=tuple(sorted({s.depth.get("dtype", "uint8") for s in tr})),
                  scale=scale, hed_jitter=hed)
    # the dataset's own defaults (what PATCH=, STRIDE=, ... are tagged against): the inferred
    # or pycount.toml values, not the command line's
    out = replace(out, defaults=_defaults(ds, out, fresh, hed_reference))
    for line in lines:
        say(line)
    return out


def _named(pair: tuple[Path, Path, str], root: Path) -> str:
    """How a message names an image's marks: its annotation file, or the image where the
    annotation is a folder (of class folders, class files or object masks), by its path within
    the dataset folder `root` (two parts of a split may each hold an im10.mat)."""
    image, annotation, kind = pair
    path = (image if kind.startswith((CLASS_FOLDERS, CLASS_FILES)) or kind == OBJECT_MASKS
            else annotation)
    try:
        return str(path.relative_to(root))
    except ValueError:                       # (a file of the whole set beside a linked folder)
        return path.name


def _check_duplicates(root: Path, stats: dict, pairs: dict, lines: list) -> None:
    """Counted marks within config.OWN_DUPLICATE_PX of another, in every image of the folder:
    named in a warning, or refused above config.OWN_DUPLICATE_REFUSE of all counted marks."""
    twice = {i: s.twice for i, s in sorted(stats.items(), key=lambda t: -t[1].twice)
             if s.twice > 0}
    if not twice:
        return
    n, total = sum(twice.values()), sum(s.count for s in stats.values())
    shown = ", ".join(f"{_named(pairs[i], root)} {k}" for i, k in list(twice.items())[:3])
    more = f" and {len(twice) - 3} more" if len(twice) > 3 else ""
    where = (f"{n} of the {total} marks in {root} lie within {config.OWN_DUPLICATE_PX:g} px of "
             f"another mark ({shown}{more}): one cell marked twice (a double click, or "
             f"annotations exported twice into one file)")
    if n > config.OWN_DUPLICATE_REFUSE * total:
        raise DatasetError(f"{where}; each pair would be learned and counted as two cells. Remove "
                           f"the second mark of each pair from those files")
    lines.append(f"  warning: {where}; each pair counts as two cells: remove the second "
                 f"mark of each from those files")


def _scale(given: float, spacing: float, measured: bool) -> tuple[float, str]:
    """The factor every image is read at, and why: the one given, else 1 unless the cells lie
    further apart than config.OWN_SCALE_ABOVE (a higher magnification than the settings were
    made for), when the images shrink to put them config.OWN_SCALE_TO apart (2 digits); beyond
    config.OWN_SCALE_HINT_ABOVE px the reason proposes that factor."""
    if given:
        return given, ""
    factor = max(config.SCALE_LIMITS[0], float(f"{config.OWN_SCALE_TO / spacing:.2g}")) if (
        spacing > 0) else 1.0
    if not measured or spacing <= config.OWN_SCALE_ABOVE:
        within = (f": cells {spacing:.1f} px apart, within the {config.OWN_SCALE_ABOVE:g} px the "
                  f"settings are made for" if math.isfinite(config.OWN_SCALE_ABOVE) else "")
        if measured and spacing > config.OWN_SCALE_HINT_ABOVE and factor < 1:
            return 1.0, (f"the images as they are; cells {spacing:.1f} px apart: if they are "
                         f"large (not small and sparse), SCALE={factor:g} would read them "
                         f"~{config.OWN_SCALE_TO:g} px apart, {1 / factor ** 2:.1f}x fewer pixels "
                         f"to train and count, at the same error where measured "
                         f"(docs/own-data.md)")
        return 1.0, f"the images as they are{within} (SCALE= reads them resized)"
    return factor, (f"cells {spacing:.1f} px apart, more than {config.OWN_SCALE_ABOVE:g} px: "
                    f"every image read at this size, to put them ~{config.OWN_SCALE_TO:g} px "
                    f"apart (the settings' range; {1 / factor ** 2:.1f}x fewer pixels to train "
                    f"and count)")


def _scaled(st: ImageStats, factor: float) -> ImageStats:
    """An image's stats as readers.rescale reads it: its sides and dot distances scaled."""
    width, height = readers.scaled_size(st.width, st.height, factor)
    return replace(st, width=width, height=height, nn=[v * factor for v in st.nn])


def _sig(v: float) -> float:
    """v to 10 significant digits (a value of 1e-5 keeps its digits, unlike a fixed rounding)."""
    return float(f"{float(v):.10g}")


def _depth_range(ds: config.DatasetConfig, tr: list[ImageStats], root: Path, note, lines
                 ) -> tuple:
    """How the folder's images deeper than 8 bits become 8-bit (images.to_uint8): pycount.toml's
    depth_range, else one range that holds every such training image's DEPTH_PERCENTILES band
    (none is clipped more than by its own stretch, and each keeps its brightness relative to the
    others), else () for each image's own stretch (no such image, or mixed kinds of depth)."""
    deep = [s for s in tr if s.depth]
    if "depth_range" in ds.spec:
        if deep or ds.depth_range:
            note("depth_range", list(ds.depth_range) or "per image", "")
        if deep and ds.depth_range:
            _check_contrast(ds.depth_range, deep, root, lines)
        return tuple(ds.depth_range)
    if not deep:
        return ()
    kinds = sorted({s.depth["dtype"] for s in deep})
    lo, hi = min(s.depth["lo"] for s in deep), max(s.depth["hi"] for s in deep)
    if len(kinds) > 1 or hi <= lo:
        why = f"mixed {' and '.join(kinds)} images" if len(kinds) > 1 else "flat images"
        lines.append(f"  {'depth_range':<15} {'per image':>8}  {why}: each deeper image is "
                     f"stretched on its own (depth_range = [low, high] in "
                     f"{root / config.SPEC_FILE} sets one)")
        return ()
    p0, p1 = config.DEPTH_PERCENTILES
    note("depth_range", [_sig(lo), _sig(hi)], f"the raw values that become 0 and 255 "
         f"in all {kinds[0]} images: the lowest of the {len(deep)} training images' "
         f"{p0:g} % points and the highest of their {p1:g} % points")
    return (lo, hi)


def _check_contrast(depth_range, deep: list[ImageStats], root: Path, lines) -> None:
    """pycount.toml's depth_range against the training images' own bands: DatasetError when it
    leaves all of them without contrast (each band within fewer than 4 of the 256 grey levels:
    blank LMDBs), a line naming them when it leaves some."""
    low, high = depth_range
    flat = [s.id for s in deep
            if (min(s.depth["hi"], high) - max(s.depth["lo"], low)) / (high - low) * 255 < 4]
    if not flat:
        return
    span = f"[{_sig(min(s.depth['lo'] for s in deep))}, {_sig(max(s.depth['hi'] for s in deep))}]"
    if len(flat) == len(deep):
        raise DatasetError(
            f"{root / config.SPEC_FILE}: depth_range = {list(depth_range)} leaves the "
            f"{len(deep)} training images without contrast (their values lie in {span}, which it "
            f"maps to fewer than 4 grey levels): set a range around their values, or remove "
            f"depth_range to have it inferred")
    lines.append(f"  warning: depth_range = {list(depth_range)} leaves {len(flat)} of the "
                 f"{len(deep)} training images without contrast ({', '.join(flat[:5])}"
                 f"{', ...' if len(flat) > 5 else ''}); their values lie in {span}")


def stain_jitter(given: float, rot_step: int, mean_bgr) -> tuple[float, str]:
    """The stain jitter of a folder's density training crops, and why: `given` (pycount.toml's
    or HED=) where it is not config.OWN_INFERRED; else config.OWN_HED_JITTER for stained
    brightfield images (the training images' mean colour, `mean_bgr`, bright and not grey), 0 for
    any other and where the crops are not rotated (rot_step 0: taken as they are)."""
    if given >= 0:
        return given, ""
    bright, spread = float(np.mean(mean_bgr)), float(np.ptp(mean_bgr))
    colour = f"mean colour {bright:.0f} of 255, its channels {spread:.0f} apart"
    if not rot_step:
        return 0.0, "none: the training crops are taken as they are (no rotation)"
    if bright < config.OWN_BRIGHTFIELD_MIN:
        return 0.0, (f"none: dark images ({colour}), not stained brightfield (H&E, IHC) ones "
                     f"(HED= sets it)")
    if spread < config.OWN_STAIN_SPREAD_MIN:
        return 0.0, f"none: grey images ({colour}), not stained ones (HED= sets it)"
    return config.OWN_HED_JITTER, (f"stained brightfield images ({colour}): their H&E and DAB "
                                   f"amounts jittered in the density models' training crops "
                                   f"(HED=0 turns it off)")


def _mean_bgr(s: ImageStats, depth_range: tuple) -> list:
    """An image's mean colour (B, G, R) as the nets see it: a deeper image's raw mean mapped
    through the dataset's depth_range (clipping aside), else as measured."""
    if not (s.depth and len(depth_range) == 2):
        return s.mean_bgr
    lo, hi = depth_range
    return [float(np.clip((v - lo) / (hi - lo), 0, 1) * 255) for v in s.depth["mean_rgb"][::-1]]


# The settings a folder's LMDBs and runs are tagged against where the command line sets them
# otherwise (DatasetConfig.variant): the order of DatasetConfig.defaults
DEFAULT_KEYS = ("patch", "stride", "rot_step", "sigma", "crop", "crop_stride", "scale", "marker",
                "hed_jitter", "zoom")


def _defaults(given: config.DatasetConfig, out: config.DatasetConfig,
              fresh: config.DatasetConfig, hed_reference: float) -> tuple:
    """DEFAULT_KEYS as the folder gets them with nothing set on the command line: inferred, or
    its pycount.toml's (`given`: the dataset as asked, `out`: resolved, `fresh`: the folder as
    its pycount.toml alone sets it). The windows' at the scale asked (SCALE= alone tags a run with
    the scale, not with the patch and crop that follow from it); the scale's without SCALE=; the
    stain jitter's at the rotation asked (`hed_reference`: ROT=0 alone turns an inferred jitter
    off, and tags a run with the rotation only)."""
    mine = tuple(getattr(out, k) for k in DEFAULT_KEYS)
    same = [getattr(given, k) == getattr(fresh, k) for k in DEFAULT_KEYS]
    if all(same):
        return mine
    quiet = lambda _: None  # noqa: E731
    windows = mine[:6] if all(same[:6]) else tuple(
        getattr(resolve(replace(fresh, scale=given.scale), say=quiet, checks=False), k)
        for k in DEFAULT_KEYS[:6])
    scale = out.scale if same[6] else resolve(fresh, say=quiet, checks=False).scale
    return (*windows, scale, fresh.marker, hed_reference, fresh.zoom)


def iterations(ds: config.DatasetConfig, model: config.ModelConfig, say=print) -> int | None:
    """Training iterations for an own dataset: pycount.toml's `iters`, else the model's default
    (config: both named sets count best at it, whatever their number of crops); printed with
    the passes over the training LMDB it makes when that is prepared. None for a classic model."""
    if ds.iters:
        say(f"  {'iterations':<15} {ds.iters:>8}  pycount.toml")
        return ds.iters
    if model.classic:
        return None
    solver = config.model(model.name, ds).solver
    lmdb = config.density_lmdbs(ds, "train", model.context)[0] if model.density else \
        config.lmdb_dir(ds) / "train_lmdb"
    try:
        records = int(lmdbio.read_manifest(lmdb)["records"])
    except (TypeError, KeyError, ValueError):  # no or incomplete LMDB: the trainer names the fix
        records = 0
    passes = (f", {solver.max_iter * solver.batch / records:.1f} passes over the {records:,} "
              f"training {'crops' if model.density else 'patches'} at batch {solver.batch}"
              if records else "")
    say(f"  {'iterations':<15} {solver.max_iter:>8}  {model.name}'s default, as for the named "
        f"datasets{passes} (ITERS= overrides)")
    return solver.max_iter


def record_in_run(run: Path, ds: config.DatasetConfig) -> None:
    """The run folder's dataset.json: the resolved settings, so that `pycount count --run` needs
    neither the folder nor its inference again."""
    run.mkdir(parents=True, exist_ok=True)
    atomic.write_text(run / "dataset.json", config.dataset_to_json(ds))
