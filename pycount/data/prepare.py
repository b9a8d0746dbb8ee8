"""`make prepare`: a dataset's training images -> patches with exact counts -> train/val LMDBs.

The split is the one in pycount.config; a few training *images* (not patches) are held out, by a
seeded draw, to monitor training. Training patches are rotated in the dataset's rotation step;
validation patches are not (they are what the net sees at test time).
"""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
import math
import zlib
from pathlib import Path

import numpy as np

from pycount import config
from pycount.data import readers as datasets
from pycount.data import synthetic
from pycount.data import density_targets
from pycount.data import lmdbio
from pycount.data import patches
from pycount.data import sources
from pycount.data import stain
from pycount.util.progress import Progress
from pycount.errors import DatasetError


def dataset_root(ds: config.DatasetConfig, data_root: str | Path | None = None) -> Path:
    """Where the dataset's files are; a generated set is generated there on first use."""
    if not ds.generated:
        from pycount.data import download
        return download.release_folder(data_root or config.data_dir(), ds.subdir)
    root = config.data_dir() / ds.subdir
    bar = None

    def progress(i, n):              # a bar only when images are actually generated
        nonlocal bar
        bar = bar or Progress(n, f"generating {ds.name} images", "images")
        if i:                        # i = 0: the generation starts (the bar's clock with it)
            bar.update(1)
    if ds.generated == "synthetic":
        synthetic.generate_synthetic(root, n_images=config.SYNTHETIC_IMAGES,
                                    seed=config.SYNTHETIC_SEED, progress=progress)
    else:
        synthetic.generate_ki67_synthetic(root, n_images=config.KI67_SYNTHETIC_IMAGES,
                                         seed=config.SYNTHETIC_SEED, progress=progress)
    if bar:
        bar.__exit__()
    return root


def _read(ds: config.DatasetConfig, ids, data_root=None, test: bool = False,
          verify: bool = True):
    """The samples `ids` as the dataset's reader gives them, each at SCALE= (as counting reads
    them), one at a time where the reader reads so (an own folder's, readers.iter_folder). Test
    images (`test`) of another bit depth than the training images' are warned about, as
    `pycount count` flags them. A named public release's files are checked against its
    manifest (`verify`: False for a second reading of files checked once)."""
    root = dataset_root(ds, data_root)
    dtypes = ds.image_dtypes if test else ()
    if ds.layout == "folder":
        samples = datasets.iter_folder(root, ids, marker=ds.marker, depth_range=ds.depth_range,
                                       dtypes=dtypes)
    else:
        samples = datasets.read(ds.layout, root, ids, marker=ds.marker,
                                depth_range=ds.depth_range, dtypes=dtypes)
        from pycount.data import download
        if verify and not ds.generated and not ds.own and ds.name in download.RELEASE_FILES:
            # a named public release (not the private ki67 set): as published
            download.check_release(ds.name, root, [s.id for s in samples])
    return (datasets.rescale(s, ds.scale) for s in samples)


def load(ds: config.DatasetConfig, ids, data_root=None, side: int | None = None,
         test: bool = False, part: str = "") -> list[datasets.Sample]:
    """The images `ids` with their centres; with `side`, each checked to be at least that many
    pixels on both sides (a patch or crop), or a DatasetError names the first that is not (an
    own folder's: padded, pad_small). Test images: see _read."""
    samples = list(_read(ds, ids, data_root, test))
    if side and ds.pad:
        return pad_small(samples, side, ds, part)
    if side:
        check_sizes(samples, side, ds)
    return samples


def stream(ds: config.DatasetConfig, ids, data_root=None):
    """The samples `ids` one at a time where the reader reads so (_read), unchecked and without
    _read's warnings or its release check: the second reading of images that `check` has read
    and checked (eval counts its test images so, holding one at a time)."""
    return _read(ds, ids, data_root, verify=False)


def check(ds: config.DatasetConfig, ids, data_root=None, side: int | None = None,
          test: bool = False, part: str = "") -> list[int]:
    """The cell counts of the images `ids`, each read and checked as `load` does (its marks, and
    with `side` its size: refused, or for an own folder, said to be padded), none kept: one
    image is held at a time where the reader reads so (_read)."""
    small, counts = [], []
    for s in _read(ds, ids, data_root, test):
        counts.append(s.count)
        if side and not ds.pad:
            check_sizes([s], side, ds)
        elif side and min(s.image.shape[:2]) < side:
            small.append(_size_label(s))
    _say_padded(small, side, part)
    return counts


def padded(ds: config.DatasetConfig, loaded: dict[str, list], side: int) -> dict[str, list]:
    """load_split's parts with an own folder's images smaller than `side` padded (pad_small),
    after stain normalisation: normalising a padded image counted the padding into its stain
    statistics and recoloured it, unlike counting, which normalises the image and then pads it
    (helper-53)."""
    if not ds.pad:
        return loaded
    return {part: pad_small(samples, side, ds, part) for part, samples in loaded.items()}


def pad_small(samples, side: int, ds: config.DatasetConfig, part: str = ""
              ) -> list[datasets.Sample]:
    """An own folder's images smaller than `side` (a patch or crop), padded at the bottom and
    right with the dataset's mean colour: the centres keep their coordinates, and the padding
    holds no cell (so it teaches the nets that the mean colour is background)."""
    _say_padded([_size_label(s) for s in samples if min(s.image.shape[:2]) < side], side, part)
    return [pad_sample(s, side, ds) for s in samples]


def _size_label(s: datasets.Sample) -> str:
    """"id (WxH)": an image as the padding note names it."""
    h, w = s.image.shape[:2]
    return f"{s.id} ({w}x{h})"


def _say_padded(labels: list[str], side: int, part: str = "") -> None:
    """The one line that names the images (their _size_label) padded to `side`; none if none."""
    if labels:
        print(f"{len(labels)} {PART_NAMES.get(part, part) + ' ' if part else ''}image(s) "
              f"smaller than {side} px padded with the mean colour to "
              f"{side} px (bottom, right): {', '.join(labels[:5])}"
              + (", ..." if len(labels) > 5 else ""))


def pad_sample(s: datasets.Sample, side: int, ds: config.DatasetConfig) -> datasets.Sample:
    """The sample, its image padded to `side` at the bottom and right with the dataset's mean
    colour where it is smaller (pad_small's rule, unsaid); as it is otherwise."""
    h, w = s.image.shape[:2]
    if h >= side and w >= side:
        return s
    fill = tuple(float(v) for v in ds.mean_bgr[::-1]) if ds.mean_bgr else (0.0, 0.0, 0.0)
    return dataclasses.replace(s, image=patches.pad_to(s.image, side, fill))


def check_sizes(samples, side: int, ds: config.DatasetConfig) -> None:
    """DatasetError naming the first image smaller than `side`: the patch (a patch regressor)
    or, where side is ds.crop and differs from the patch, the crop (a density model)."""
    crop = side == ds.crop and side != ds.patch
    what, fix = (("training crops", "CROP= (and CROP_STRIDE=)") if crop
                 else ("patches", "PATCH= (and STRIDE=)"))
    for s in samples:
        h, w = s.image.shape[:2]
        if h < side or w < side:
            raise DatasetError(
                f"{s.source or s.id}: the image is {w}x{h} px, smaller than {ds.name}'s {side} px "
                f"{what}; use {fix} no larger than its smaller side, or remove the image from "
                f"the dataset")


def load_split(ds: config.DatasetConfig, data_root=None, side: int | None = None,
               keep: tuple[str, ...] = ("train", "val", "test")
               ) -> tuple[dict[str, list[str]], dict[str, list]]:
    """The split's ids and every part's images, all read and checked before anything is written
    (a bad test image stops `prepare` now, not `eval` after a long training). With `side`, an
    image smaller than that is refused, or (an own folder) left as it is for `padded`, which
    pads it once any stain normalisation is done, the order counting follows. The parts not in
    `keep` are read and checked all the same, an image at a time (check), and come back empty:
    prepare writes no test image, and held them all beside the training images for nothing
    (the second half of a Cell Tracking Challenge set)."""
    ids = split(ds, data_root)
    loaded = {}
    for part in ("train", "val", "test"):
        if part in keep:
            loaded[part] = load(ds, ids[part], data_root, None if ds.pad else side,
                                test=part == "test", part=part)
        else:
            check(ds, ids[part], data_root, side, test=part == "test", part=part)
            loaded[part] = []
    if 0 < ds.scale < 1:
        warn_close_cells(ds, loaded["train"])
    return ids, loaded


def nearest_distances(points) -> np.ndarray:
    """Each point's distance to its nearest other point, px (none for fewer than two points)."""
    points = np.asarray(points, np.float64).reshape(-1, 2)
    if len(points) < 2:
        return np.zeros(0)
    from scipy.spatial import cKDTree
    return cKDTree(points).query(points, k=2)[0][:, 1]


def spacings(per_image, floor: float) -> np.ndarray:
    """The nearest-neighbour distances of every image (`per_image`: one array or list each), at
    least `floor` px: closer marks are one cell marked twice, not a spacing."""
    nn = np.concatenate([np.asarray(d, np.float64) for d in per_image] + [np.zeros(0)])
    return nn[nn >= floor]


def cell_spacing(samples, scale: float = 1.0) -> float | None:
    """The median distance from a dot to its nearest neighbour over `samples` (read at `scale`),
    px; marks closer than config.OWN_DUPLICATE_PX of the original pixels are left out (a cell
    marked twice), as pycount.data.owndata measures an own folder; None where no image has
    two dots."""
    nn = spacings([nearest_distances(s.centres) for s in samples],
                  config.OWN_DUPLICATE_PX * scale)
    return float(np.median(nn)) if len(nn) else None


def warn_close_cells(ds: config.DatasetConfig, train) -> None:
    """A warning where SCALE= shrinks the images until their cells lie closer than
    config.SCALE_MIN_SPACING px: their marks then merge in the density targets and the image."""
    spacing = cell_spacing(train, ds.scale)
    if spacing is None or spacing >= config.SCALE_MIN_SPACING:
        return
    need = ds.scale * config.SCALE_MIN_SPACING / spacing
    step = 10 ** (math.floor(math.log10(need)) - 1)            # two significant digits, up
    least = min(math.ceil(need / step - 1e-9) * step, config.SCALE_LIMITS[1])
    print(f"warning: at SCALE={ds.scale:g} the cells of {ds.name}'s training images lie "
          f"{spacing:.1f} px apart (median nearest neighbour): closer than "
          f"{config.SCALE_MIN_SPACING:g} px, neighbouring cells merge in the images and in the "
          f"density targets. SCALE={float(f'{least:.2g}'):g} or more keeps them apart")


def stain_normalised(ds: config.DatasetConfig, loaded: dict[str, list]
                     ) -> tuple[dict[str, list], dict]:
    """With STAIN= set, the training and validation images normalised to the target measured on
    the training images (pycount.data.stain; the test images are normalised when counted), and
    {"stain_norm", "stain_ref"} for the LMDB settings (which the run's train.json takes over);
    else the images as they are and {}."""
    if not ds.stain_norm:
        return loaded, {}
    try:
        # rounded as recorded: counting with the run normalises with exactly this target
        ref = np.round(stain.target(ds.stain_norm, [s.image for s in loaded["train"]]), 4)
        normed = {part: [dataclasses.replace(s, image=stain.normalise(ds.stain_norm, s.image,
                                                                       ref))
                         for s in samples]
                  if part != "test" else samples for part, samples in loaded.items()}
    except ValueError as e:          # grey images, or no stained pixels to measure
        raise DatasetError(f"STAIN={ds.stain_norm} cannot normalise {ds.name}'s images "
                                    f"({e}); drop STAIN= for them") from None
    return normed, {"stain_norm": ds.stain_norm, "stain_ref": ref.tolist()}


PART_NAMES = {"train": "training", "val": "validation", "test": "test"}


def split(ds: config.DatasetConfig, data_root=None) -> dict[str, list[str]]:
    """train / val / test image ids. The recorded split of pycount/data/splits/ where there is one;
    for a user's own data (ki67), a seeded draw of 10 in 55 test images over the images found.
    Validation: a seeded draw of n_val training images."""
    train, test = list(ds.train_ids), list(ds.test_ids)
    if not train:
        if ds.own:
            stems = datasets.list_ids(ds.layout, dataset_root(ds, data_root))
        else:
            stems = sorted(p.stem for p in dataset_root(ds, data_root).glob("*.csv"))
        if len(stems) < config.OWN_MIN_IMAGES:
            raise DatasetError(
                f"{dataset_root(ds, data_root)}: found {len(stems)} annotated images (image + "
                f"same-name annotation); put the dataset there or set DATA_ROOT")
        train, test = draw_split(stems)
    if ds.resplit:
        train, test = redraw(train, test, ds.resplit)
    rng = np.random.default_rng(config.SPLIT_SEED)
    if ds.train_n:
        # the literature's protocol: N training images drawn with SEED; the validation images
        # (for monitoring) from the training images left out, so that all N are trained on
        if ds.train_n >= len(train):
            raise DatasetError(f"TRAIN_N={ds.train_n} leaves no image for validation: "
                                        f"{ds.name} has {len(train)} training images")
        picked = np.random.default_rng(ds.seed).choice(train, size=ds.train_n, replace=False)
        rest = [i for i in train if i not in set(picked)]
        val = sorted(rng.choice(rest, size=val_count(ds, len(train)), replace=False).tolist())
        return {"train": sorted(picked.tolist()), "val": val, "test": test}
    val = sorted(rng.choice(train, size=val_count(ds, len(train)), replace=False).tolist())
    return {"train": [i for i in train if i not in val], "val": val, "test": test}


def val_count(ds: config.DatasetConfig, n_train: int) -> int:
    """How many of `n_train` training images are held out to monitor training: the dataset's
    n_val, at most a quarter of them; for an own folder whose pycount.toml does not set n_val,
    one per config.OWN_TRAIN_PER_VAL, from config.OWN_MIN_N_VAL to config.OWN_N_VAL. With TRAIN_N
    (the protocol's N drawn images), the dataset's n_val of the training images left over: they
    cost the N nothing."""
    if ds.train_n:
        return max(0, min(ds.n_val, n_train - ds.train_n))
    if ds.own and "n_val" not in ds.spec:
        return min(config.OWN_N_VAL, max(config.OWN_MIN_N_VAL,
                                          n_train // config.OWN_TRAIN_PER_VAL))
    return min(ds.n_val, max(1, n_train // 4))


def redraw(train: list[str], test: list[str], seed: int) -> tuple[list[str], list[str]]:
    """RESPLIT=seed: (train, test) drawn again from their pool with `seed`, at the same sizes."""
    pool = sorted(train + test)
    order = np.random.default_rng(seed).permutation(len(pool))
    return (sorted(pool[i] for i in order[:len(train)]),
            sorted(pool[i] for i in order[len(train):]))


def draw_split(stems: list[str]) -> tuple[list[str], list[str]]:
    """(train, test): a seeded draw (config.SPLIT_SEED) of config.TEST_SHARE of the images (10 in
    55, as the paper's Ki67 split) as test images; sorted by name."""
    stems = sorted(stems)
    order = np.random.default_rng(config.SPLIT_SEED).permutation(len(stems))
    n_test = max(1, round(len(stems) * config.TEST_SHARE))
    return sorted(stems[i] for i in order[n_test:]), sorted(stems[i] for i in order[:n_test])


def content_hash(samples: list[datasets.Sample]) -> dict[str, str]:
    """Per image, a sha256 of its pixels and annotation: the LMDB's source fingerprint."""
    out = {}
    for s in samples:
        h = hashlib.sha256(np.ascontiguousarray(s.image).tobytes())
        h.update(np.ascontiguousarray(s.centres, np.float64).tobytes())
        out[s.id] = h.hexdigest()[:16]
    return out


def _records(samples, ds: config.DatasetConfig, rot_step: int):
    for s in samples:
        for pixels, count, _, _ in patches.training_patches(s.image, s.centres, ds.patch,
                                                            ds.stride, rot_step):
            yield patches.resize_patch(pixels, ds.input_size), count


def _context_fill(ds: config.DatasetConfig, model: config.ModelConfig) -> tuple:
    """The RGB colour beyond an image's edge in crops with context: the mean the net subtracts."""
    return tuple((model.mean_bgr or ds.mean_bgr)[::-1])


def _density_records(samples, ds: config.DatasetConfig, rot_step: int,
                     model: config.ModelConfig):
    for s in samples:
        # each image's own seeded stream: the LMDB does not depend on the images' order
        rng = np.random.default_rng([config.SPLIT_SEED, zlib.crc32(s.id.encode())])
        for pixels, dens in density_targets.zoomed_crops(
                s.image, s.centres, ds.crop, ds.crop_stride, rot_step, ds.sigma,
                zoom=ds.zoom, context=model.context, fill=_context_fill(ds, model)):
            if ds.hed_jitter:
                pixels = stain.hed_jitter(pixels, ds.hed_jitter, rng)
            yield pixels, int(round(float(dens.sum()))), dens


def prepare_density(ds: config.DatasetConfig, data_root=None, force: bool = False,
                    model: config.ModelConfig | None = None,
                    reuse_only: bool = False) -> dict | None:
    """The density models' LMDB pairs: data/lmdb/<tag>/density/{train,val}_{lmdb,targets_lmdb}
    (density-ctx<m>/ for a model trained with m px of context around each crop).
    With reuse_only, None instead of writing where they are not current (see prepare).

    Training crops: a grid of ds.crop px at ds.crop_stride, mirrored and rotated in the
    dataset's rotation step (pycount.density_targets); validation crops unrotated, unmirrored."""
    model = model or config.MODELS["fcrn"]
    m = model.context
    stamp = sources.stamp(dataset_root(ds, data_root))   # before reading: a later edit shows
    ids, loaded = load_split(ds, data_root, side=ds.crop, keep=("train", "val"))
    loaded, normalised = stain_normalised(ds, loaded)
    loaded = padded(ds, loaded, ds.crop)
    out, current = {}, {}
    for part, rot_step in (("train", ds.rot_step), ("val", 0)):
        samples = loaded[part]
        settings = {"dataset": ds.name, "variant": ds.variant, "part": part, "crop": ds.crop,
                    "crop_stride": ds.crop_stride, "rot_step": rot_step, "sigma": ds.sigma,
                    "mirror": rot_step != 0, "images": ids[part],
                    "sources": content_hash(samples), "generated": ds.generated, **normalised}
        if ds.hed_jitter and rot_step:          # (absent when 0: older LMDBs stay current)
            settings["hed_jitter"] = ds.hed_jitter
        if ds.zoom and rot_step:
            settings["zoom"] = ds.zoom
        if m:                                   # (likewise)
            settings.update(context=m, fill=list(_context_fill(ds, model)))
        fp = lmdbio.fingerprint(_formatted(settings))
        dest, targets = config.density_lmdbs(ds, part, m)
        for d in (dest, targets):
            lmdbio.remove_stale_partials(d)
        whole = not reuse_only
        if not force and lmdbio.is_current(dest, fp, whole) and lmdbio.is_current(targets, fp,
                                                                                 whole):
            if not reuse_only:
                print(f"{dest}: up to date ({lmdbio.read_manifest(dest)['records']} crops), "
                      f"reused")
            current[part] = dest
            continue
        if reuse_only:
            return None
        _check_not_read(ds, dest)
        if rot_step:
            n_max = sum(density_targets.count_training_crops(*s.image.shape[:2], ds.crop,
                                                             ds.crop_stride, rot_step, m,
                                                             ds.zoom)
                        for s in samples)
            records = _density_records(samples, ds, rot_step, model)
        else:
            n_max = sum(len(patches.grid(*s.image.shape[:2], ds.crop, ds.crop_stride))
                        for s in samples)
            records = _plain_crops(samples, ds, model)
        manifest = dict(settings, fingerprint=fp, pycount_version=_version(),
                        split={k: v for k, v in ids.items()}, source_stamp=stamp)
        out[part] = lmdbio.write_lmdb(dest, records, n_max=n_max, patch=ds.crop + 2 * m,
                                      seed=config.SPLIT_SEED, manifest=manifest, targets=targets,
                                      label=f"{ds.tag} {part} crops + density targets",
                                      before_swap=lambda dest=dest: _check_not_read(ds, dest))
    return _restamped(out, current, stamp)


def _check_not_read(ds: config.DatasetConfig, dest: Path) -> None:
    """A DatasetError while a training reads the LMDB folder `dest` (it holds its ReadersLock,
    whatever runs folder it trains into), or while a training of the dataset by an older pycount
    runs (it names nothing it reads): a rewrite would change its data under it. A training of
    another model, or from another data folder (PYCOUNT_DATA), is no reason to wait."""
    from pycount.util.runlock import in_training, in_use, reads_unknown, readers_file
    older = sorted(r for r in (config.runs_dir() / ds.tag).glob("*")
                   if in_training(r) and reads_unknown(r))
    if in_use(dest):
        why = f"is read by a training now (it holds {readers_file(dest)})"
    elif older:
        why = (f"may be read by a training now ({', '.join(map(str, older))}: of an older "
               f"pycount, which does not say what it reads)")
    else:
        return
    raise DatasetError(f"{dest} {why}; rewriting it would change that training's data under "
                       f"it: wait for it to end, or stop it (Ctrl-C or kill PID snapshots it), "
                       f"then run make prepare again")


def _plain_crops(samples, ds: config.DatasetConfig, model: config.ModelConfig):
    """Validation crops: the grid windows of each image (with the model's context around them)
    and the slices of its density map."""
    m, c = model.context, ds.crop
    for s in samples:
        full = density_targets.density_target(s.image.shape[:2], s.centres, ds.sigma)
        img = density_targets.pad_around(s.image, m, _context_fill(ds, model)) if m else s.image
        for x0, y0 in patches.grid(*s.image.shape[:2], c, ds.crop_stride):
            dens = full[y0:y0 + c, x0:x0 + c].astype(np.float32)
            yield (np.ascontiguousarray(img[y0:y0 + c + 2 * m, x0:x0 + c + 2 * m]),
                   int(round(float(dens.sum()))), dens)


def prepare(ds: config.DatasetConfig, data_root=None, force: bool = False,
            model: config.ModelConfig | None = None,
            reuse_only: bool = False) -> dict[str, dict] | None:
    """Write (or reuse) data/lmdb/<dataset>[-variant]/{train,val}_lmdb; returns their manifests.
    For a density model (MODEL=fcrn), its crop and target LMDBs instead (prepare_density).

    reuse_only: write nothing; None unless every LMDB is current (the same settings, pixels and
    marks), in which case their source stamps are renewed (what training does when only the
    dataset files' times changed since prepare). Their data files are not hashed again then:
    the trainer, the only caller, has just checked each whole (lmdbio.check_whole, ~4 s per GB)."""
    if model is not None and model.density:
        return prepare_density(ds, data_root, force, model, reuse_only)
    stamp = sources.stamp(dataset_root(ds, data_root))   # before reading: a later edit shows
    ids, loaded = load_split(ds, data_root, side=ds.patch, keep=("train", "val"))
    loaded, normalised = stain_normalised(ds, loaded)
    loaded = padded(ds, loaded, ds.patch)
    out, current = {}, {}
    for part, rot_step in (("train", ds.rot_step), ("val", 0)):
        samples = loaded[part]
        settings = {"dataset": ds.name, "variant": ds.variant, "part": part, "patch": ds.patch,
                    "stride": ds.stride, "rot_step": rot_step, "size": ds.input_size,
                    "encoded": ds.encoded, "images": ids[part], "sources": content_hash(samples),
                    "generated": ds.generated, **normalised}
        keep = ds.train_patches if part == "train" else 0
        if keep:                                # (only then: other fingerprints stay as they were)
            settings["train_patches"] = keep
        fp = lmdbio.fingerprint(_formatted(settings))
        dest = config.lmdb_dir(ds) / f"{part}_lmdb"
        lmdbio.remove_stale_partials(dest)
        if not force and lmdbio.is_current(dest, fp, whole=not reuse_only):
            if not reuse_only:
                print(f"{dest}: up to date ({lmdbio.read_manifest(dest)['records']} patches), "
                      f"reused")
            current[part] = dest
            continue
        if reuse_only:
            return None
        _check_not_read(ds, dest)
        n_max = sum(patches.count_training_patches(s.image.shape[0], s.image.shape[1], ds.patch,
                                                   ds.stride, rot_step) for s in samples)
        first = (p for p, _ in _records(samples[:1], ds, rot_step))
        per_record = lmdbio.record_bytes(itertools.islice(first, 32), ds.encoded)
        manifest = dict(settings, fingerprint=fp, pycount_version=_version(),
                        split={k: v for k, v in ids.items()}, source_stamp=stamp)
        out[part] = lmdbio.write_lmdb(dest, _records(samples, ds, rot_step), n_max=n_max,
                                      patch=ds.input_size, seed=config.SPLIT_SEED, manifest=manifest,
                                      label=f"{ds.tag} {part} patches", encoded=ds.encoded,
                                      bytes_per_record=per_record, keep=keep,
                                      before_swap=lambda dest=dest: _check_not_read(ds, dest))
        measured = np.array(out[part]["mean_bgr"])
        if np.abs(measured - np.array(ds.mean_bgr)).max() > config.MEAN_BGR_WARN:
            where = ("the mean of the training images' pixels, or mean_rgb in its "
                     "pycount.toml" if ds.own else "pycount/config.py")
            print(f"warning: mean BGR of these patches {measured.round(1).tolist()} is far from "
                  f"the nets' mean {list(ds.mean_bgr)} ({where})")
    return _restamped(out, current, stamp)


def _formatted(settings: dict) -> dict:
    """An LMDB's settings with the format of what prepare writes (config.LMDB_FORMAT), from 2 on:
    a change to how patches, crops or targets are cut makes the earlier LMDBs out of date."""
    return dict(settings, format=config.LMDB_FORMAT) if config.LMDB_FORMAT > 1 else settings


def _restamped(out: dict, current: dict, stamp: dict) -> dict:
    """`out` with the reused LMDBs' manifests (`current`: part -> folder), their stamps renewed
    only now, once every part was found current or written: with reuse_only, a training LMDB
    restamped before the validation one was found stale (None returned) made the next `make
    train` take the stale validation LMDB for current (helper-53)."""
    for part, dest in current.items():
        out[part] = _restamp(dest, stamp)
    return {part: out[part] for part in ("train", "val") if part in out}


def _restamp(dest: Path, stamp: dict) -> dict:
    """A reused LMDB's manifest, its source stamp renewed: its images and marks were just found
    unchanged (their content fingerprint), whatever their files' times say now."""
    manifest = lmdbio.read_manifest(dest)
    if manifest.get("source_stamp") != stamp:
        manifest["source_stamp"] = stamp
        lmdbio.write_manifest(dest, manifest)
    return manifest


def _version() -> str:
    from pycount import __version__
    return __version__
