"""`pycount count`: count the cells of any images with a trained run folder.

Each image is read as RGB uint8 (PNG/JPEG/TIFF/BMP, 8/16-bit, grey, grey + alpha, RGB or RGBA),
counted as in `make eval` (sliding window at the run's patch and stride, density heatmap,
integral; inference.density), and leaves a row in <out>/counts.csv and a figure <out>/<stem>_heatmap.png. A file that cannot be read
or counted is reported by name and skipped, an image counted more than a cell below zero is marked
"suspect"; the exit status is then 1.
"""
from __future__ import annotations

import csv
import hashlib
import sys
from collections import Counter
import time
from pathlib import Path

import numpy as np

from pycount import config
from pycount.data import readers as datasets
from pycount.data.annotations import few
from pycount.data.images import IMAGE_SUFFIXES, cv2_read, read_in_range, shown
from pycount.data.layout import (ctc_frame, mask_bases, object_masks_owner, refuse_broken_link,
                                 split_folders)
from pycount.device import set_device
from pycount.errors import DatasetError, RunError
from pycount.inference.engines import DEFAULT_BACKEND, resolve
from pycount.inference.predictors import make_predictor
from pycount.inference.run import Run, load_run
from pycount.util import atomic
from pycount.util.interrupt import sigterm_as_interrupt
from pycount.util.progress import Progress
from pycount.util.runlock import OutLock, in_training

# heatmap: the row's heatmap file in the output folder (two images of one name get name-2, ...)
FIELDS = ["file", "count", "tiling_count", "width", "height", "seconds", "status", "error",
          "heatmap"]
# the headers of a table count wrote: today's, and the one before the heatmap column
_HEADERS = (FIELDS, FIELDS[:-1])


def is_count_output(folder: Path) -> bool:
    """Whether `folder` holds an earlier `pycount count`'s output (counts.csv or
    counts.partial.csv beginning with its header, or the header before the heatmap column):
    its heatmaps are no cell images."""
    for name in ("counts.csv", "counts.partial.csv"):
        try:
            with open(folder / name, encoding="utf-8") as f:
                if f.readline().strip().split(",") in _HEADERS:
                    return True
        except (OSError, UnicodeDecodeError):
            continue
    return False


def _earlier_heatmaps(out: Path) -> set[str]:
    """The heatmap files an earlier count's table in `out` lists (counts.csv and
    counts.partial.csv): the files a new count may remove."""
    names = set()
    for table in ("counts.csv", "counts.partial.csv"):
        try:
            with open(out / table, encoding="utf-8", newline="") as f:
                rows = csv.DictReader(f)
                if rows.fieldnames not in _HEADERS:     # not a table pycount wrote (a user's)
                    continue
                names |= {r.get("heatmap") or "" for r in rows}
        except (OSError, UnicodeDecodeError, csv.Error):
            continue
    # (only heatmap names: a hand-edited table naming report.docx or .count.lock names no
    # file of a count's to remove)
    return {n for n in names if n and Path(n).name == n and n.endswith("_heatmap.png")
            and len(n.encode()) <= 255}


def dot_masks(files: list[Path]) -> list[tuple[Path, Path]]:
    """The files among `files` that are dot masks of another of them (by the folder layout's
    mask names: NAME_dots.png beside NAME.png, the VGG's NNNdots beside NNNcell; or NAME.png in
    the dots/ folder beside the images/ one that holds NAME.png, a recursive count of such a
    set; or any file of the masks/ folder beside the images/ folder of one image, DSB 2018's
    object masks; or a Cell Tracking Challenge frame's marks, 01_GT/TRA/man_track000.tif of
    01/t000.tif) and mostly black: an annotated folder's marks, not images to count; each as
    (mask, its image)."""
    stems = {(f.parent, f.stem): f for f in files}
    listed = set(files)
    apart: dict[Path, Path | None] = {}
    owners: dict[Path, Path | None] = {}

    def images_of(folder: Path) -> Path | None:
        """The images folder beside `folder` where the two are a dataset's images/ + dots/."""
        if folder not in apart:
            try:
                pair = split_folders(folder.parent)
            except (DatasetError, OSError):
                pair = None
            apart[folder] = pair[0] if pair and pair[1] == folder else None
        return apart[folder]
    out = []
    for f in files:
        image = next((stems[(f.parent, b)] for b in mask_bases(f.stem)
                      if (f.parent, b) in stems and stems[(f.parent, b)] != f), None)
        beside = images_of(f.parent) if image is None else None
        if beside is not None:              # in the annotations folder of images/ + dots/
            image = next((stems[(beside, b)] for b in [f.stem, *mask_bases(f.stem)]
                          if (beside, b) in stems), None)
            if image is None:               # one of an image's object masks (<id>/masks/)
                if f.parent not in owners:
                    owners[f.parent] = object_masks_owner(beside, f.parent)
                image = owners[f.parent]
        if image is None:                   # a Cell Tracking Challenge frame's marks
            frame = ctc_frame(f)                # (01_GT/TRA/man_track000.tif of 01/t000.tif)
            image = frame if frame in listed else None
        if image is not None and _looks_like_a_mask(f):
            out.append((f, image))
    return out


def _looks_like_a_mask(path: Path) -> bool:
    """Mostly black, as a dot mask is (at most config.MASK_MAX_ON_SHARE of its pixels marked):
    not a photo that merely has a mask's name (well_dots.png beside well.png)."""
    import cv2
    try:
        data = cv2_read(path, cv2.IMREAD_GRAYSCALE)
    except (cv2.error, OSError):
        return False
    return data is not None and np.count_nonzero(data) <= config.MASK_MAX_ON_SHARE * data.size


def find_images(inputs, recursive: bool = False, exclude: Path | None = None,
                note: bool = True) -> list[Path]:
    """Files as given (any name), plus the images (by suffix, any case) in given folders, in
    natural order; hidden files and anything under `exclude` (the output folder) are skipped, and
    with `recursive` any subfolder holding an earlier count's output (is_count_output). `note`:
    say which dot masks beside their images are left out."""
    found, skip = [], exclude.resolve() if exclude else None
    for item in map(Path, inputs):
        if not item.is_dir():
            found.append(item)                      # a missing file fails later, by name
            continue
        files = item.rglob("*") if recursive else item.iterdir()
        outputs: dict[Path, bool] = {}

        def earlier_output(f: Path) -> bool:
            if not recursive or f.parent == item:
                return False
            if f.parent not in outputs:
                outputs[f.parent] = is_count_output(f.parent)
            return outputs[f.parent]
        # a broken link is kept, to fail by name
        images = sorted((f for f in files if (f.is_file() or (f.is_symlink() and not f.exists()))
                         and not f.name.startswith(".")
                         and f.suffix.lower() in IMAGE_SUFFIXES
                         and not (skip and skip in _resolved(f).parents)
                         and not earlier_output(f)),
                        key=lambda f: datasets.natural_key(str(f)))
        masks = dot_masks(images)
        if masks and note:
            print(f"note: {len(masks)} dot mask{'s' if len(masks) > 1 else ''} of the images "
                  f"beside {'them' if len(masks) > 1 else 'it'} left out of {item} "
                  f"({masks[0][0].name} marks {masks[0][1].name}"
                  f"{', ...' if len(masks) > 1 else ''}); name a file itself to count it",
                  file=sys.stderr)
        left_out = {mask for mask, _ in masks}
        found += [f for f in images if f not in left_out]
    return list(dict.fromkeys(found))               # a file named twice is counted once


def _resolved(path: Path) -> Path:
    """The path with its links followed; a link that leads back to itself (a loop: resolve raises
    RuntimeError or OSError) as it is, to fail by name when it is read."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return path.absolute()


def _by_folder(paths: list[Path]) -> str:
    """"3 in a/b, 1 in a/c": how many of `paths` each folder holds, the first three folders."""
    where = Counter(str(p.parent) for p in paths)
    return (", ".join(f"{n} in {d}" for d, n in list(where.items())[:3])
            + (", ..." if len(where) > 3 else ""))


def _check_out(out: Path, inputs, names: list[str]) -> None:
    """RunError before counting when the output folder is a file, holds a folder where counts.csv
    or a heatmap is to go, or is (or holds) a folder being counted."""
    if out.exists() and not out.is_dir():
        raise RunError(f"{out} is a file: give --out (OUT=) a folder for counts.csv and the "
                       f"heatmaps")
    taken = [out / n for n in ["counts.csv", "counts.partial.csv", *names] if (out / n).is_dir()]
    if taken:
        raise RunError(f"{taken[0]} is a folder, where pycount count writes a file"
                       + (f" (and {len(taken) - 1} more)" if len(taken) > 1 else "")
                       + "; move it away or give --out (OUT=) another folder")
    where = out.resolve()
    for item in map(Path, inputs):
        if item.is_dir() and (item.resolve() == where or where in item.resolve().parents):
            raise RunError(f"the output folder {out} is, or holds, the folder being counted "
                           f"({item}): its heatmaps would be taken for cell images; give --out "
                           f"(OUT=) a folder outside it")


def _heatmap_names(paths: list[Path]) -> list[str]:
    """<stem>_heatmap.png, made unique when two inputs share a stem; a stem too long for a file
    name with that ending (and the temporary's around it) is cut, with 8 hex digits of its hash
    so that two long names that begin alike stay apart."""
    names, used = [], set()
    room = config.HEATMAP_NAME_MAX_BYTES - len("_heatmap.png")
    for p in paths:
        base = shown(p.stem or p.name)     # the name written in counts.csv, as on disk
        if len(base.encode()) > room:
            digest = hashlib.sha256(base.encode()).hexdigest()[:8]
            base = base.encode()[:room - 9].decode("utf-8", "ignore") + "-" + digest
        name, k = base, 1
        while name in used:
            k += 1
            name = f"{base}-{k}"
        used.add(name)
        names.append(f"{name}_heatmap.png")
    return names


def save_overlay(path: Path, image: np.ndarray, heatmap: np.ndarray, title: str) -> None:
    """The image with its density heatmap alpha-blended over it, written atomically."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import warnings
    import cv2
    h, w = heatmap.shape
    scale = config.OVERLAY_MAX_PX / max(h, w)
    if scale < 1:           # area averages: the density keeps its cells / px^2 of the image
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        image = cv2.resize(np.ascontiguousarray(image), size, interpolation=cv2.INTER_AREA)
        heatmap = cv2.resize(heatmap.astype(np.float32), size, interpolation=cv2.INTER_AREA)
    with warnings.catch_warnings():
        # a file name in a script the font lacks (CJK, ...) is drawn as boxes: said once per
        # image on stderr, twice, between the progress lines
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from")
        fig, ax = plt.subplots(figsize=(7, min(max(2.5, 6 * h / w),
                                               config.OVERLAY_MAX_HEIGHT_IN)))
        ax.imshow(image)
        im = ax.imshow(heatmap, cmap="jet", alpha=0.45)
        fig.colorbar(im, ax=ax, fraction=0.046, label="cells / px²")
        ax.set_title(title)
        ax.axis("off")
        fig.tight_layout()
        atomic.save_figure(fig, path, dpi=100)


def _greyish(chroma: float, brightness: float) -> bool:
    """Channels that differ by (|R-G| + |G-B|) `chroma` at most config.GREY_TOLERANCE of the
    mean `brightness` (a black image is grey)."""
    return chroma <= config.GREY_TOLERANCE * max(brightness, 1e-6)


def is_grey(image: np.ndarray) -> bool:
    """An RGB image whose three channels are one (a grey file read as colour, a JPEG's chroma
    noise within the tolerance), judged against its brightness: sparse coloured nuclei on a black
    field are colour."""
    rgb = np.asarray(image)
    if rgb.ndim < 3 or rgb.shape[2] < 3:
        return True
    step = max(1, int(np.sqrt(rgb.shape[0] * rgb.shape[1] / 250_000)))   # ~250,000 pixels
    sub = rgb[::step, ::step, :3].astype(np.int16)
    chroma = float(np.abs(sub[..., 0] - sub[..., 1]).mean() + np.abs(sub[..., 1] - sub[..., 2]).mean())
    return _greyish(chroma, float(sub.mean()))


def trained_grey(ds: config.DatasetConfig) -> bool | None:
    """Whether an own folder's run was trained on grey images, from the mean colour its nets
    subtract (its training pixels' mean: a colour set's channels average apart); None for a
    named set's run (a reference run, its set's fixed mean) or where no mean is recorded."""
    mean = tuple(ds.mean_bgr or ())
    if not ds.own or len(mean) != 3:
        return None
    b, g, r = mean
    return _greyish(abs(r - g) + abs(g - b), (b + g + r) / 3)


def count_file(path: Path, run: Run, predict, heatmap: Path | None = None) -> dict:
    """One CSV row: the predictor's count_image. Raises DatasetError
    (unreadable file) or ValueError (image smaller than a patch)."""
    start = time.monotonic()
    refuse_broken_link(path)                       # named as the readers name it
    with open(path, "rb"):                          # a clear OSError for missing / unreadable
        pass
    image, outside = read_in_range(path, run.ds.depth_range,   # as its training images
                                   run.ds.image_dtypes)
    h0, w0 = image.shape[:2]                        # the file's size, for the CSV
    image = datasets.rescale_image(image, run.ds.scale)   # at the scale it was trained at
    h, w = image.shape[:2]
    r = predict.count_image(image)
    seconds = time.monotonic() - start
    if not np.isfinite(r.count):        # NaN weights: no count (a FAILED row, exit status 1)
        raise ValueError(f"the count is not a number ({r.count}): {run.weights} holds weights "
                         f"that are not numbers (a training that diverged, or a damaged file); "
                         f"train the run again")
    hh, hw = r.heatmap.shape                        # larger when a small image was padded
    padded = (hh, hw) != (h, w)                     # (a patch model's engine, to one patch)
    if padded:
        print(f"\nnote: {path} ({w}x{h} px) is smaller than {run.path.name}'s {run.ds.patch} px "
              f"patches: counted padded to {hw}x{hh} px with the mean colour, as its training "
              f"images were", file=sys.stderr)
    if heatmap is not None:
        drawn = np.pad(image, ((0, hh - h), (0, hw - w), (0, 0))) if padded else image
        save_overlay(heatmap, drawn, r.heatmap, f"{shown(path.name)}: {r.count:.1f} cells "
                     f"({run.model.name}-{run.head}, {run.ds.tag})")
    row = {"file": shown(path), "count": r.count, "tiling_count": r.tiling_count, "width": w0,
           "height": h0, "seconds": seconds, "status": "ok", "error": ""}
    if r.count < config.SUSPECT_BELOW:  # fewer than no cells, beyond an empty field's noise
        row.update(status="suspect", error=(
            f"a negative count ({r.count:.1f}): the image is unlike the ones {run.path.name} was "
            f"trained on (stain, colour or grey, bit depth, magnification); check it against "
            f"them, or train a run on images like it{run.short_note()}"))
    p = run.ds.patch
    most = config.SUSPECT_DENSITY * run.ds.max_patch_count / p ** 2 * max(h, p) * max(w, p) \
        if run.ds.max_patch_count and p else 0
    if most and r.count > most:         # far more cells to the pixel than training showed
        row.update(status="suspect", error=(
            f"{r.count:.1f} cells: more than {config.SUSPECT_DENSITY:g} times as many to the "
            f"pixel as {run.path.name}'s training images hold (at most {most:.0f} in {w}x{h} px): "
            f"the image is unlike them (stain, colour or grey, bit depth, magnification); check "
            f"it against them, or train a run on images like it{run.short_note()}"))
    kind = {True: "grey", False: "colour"}
    trained = trained_grey(run.ds)
    if trained is not None and is_grey(image) != trained:
        row.update(status="suspect", error=(
            f"a {kind[not trained]} image, where {run.path.name} was trained on "
            f"{kind[trained]} ones (count {r.count:.1f}): a net counts what its training images "
            f"showed; count images like them, or train a run on images like this one"
            f"{run.short_note()}"))
    if outside:                         # first: the likely cause of any odd count
        row.update(status="suspect", error=f"{outside} (count {r.count:.1f})")
    return row


def write_csv(path: Path, rows: list[dict]) -> None:
    with atomic.replacing(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS, lineterminator="\n")
        writer.writeheader()
        for r in rows:
            writer.writerow({**r, **{k: f"{r[k]:.10g}" for k in ("count", "tiling_count")
                                     if r[k] != ""},
                             "seconds": f"{r['seconds']:.3f}"})


def _write_counts(out: Path, rows: list[dict], done: bool, total: int,
                  stopped: BaseException | None = None) -> None:
    """counts.csv once every image is counted (or failed by name); a run interrupted (or stopped
    by an error, `stopped`) keeps what it counted in counts.partial.csv instead, and an earlier
    counts.csv, which the new heatmaps no longer match, is removed."""
    final, partial = out / "counts.csv", out / "counts.partial.csv"
    if done:
        write_csv(final, rows)
        partial.unlink(missing_ok=True)
        return
    final.unlink(missing_ok=True)
    write_csv(partial, rows)
    how = ("interrupted" if stopped is None or isinstance(stopped, KeyboardInterrupt) else
           f"stopped by an error ({type(stopped).__name__})")
    print(f"\n{how}: {len(rows)} of {total} images counted, kept in {partial} (counts.csv "
          f"is written only when every image is done)", file=sys.stderr)


def summary_table(rows: list[dict]) -> str:
    width = max([len(r["file"]) for r in rows] + [4])
    lines = [f"{'file':<{width}}  {'count':>10}  {'tiling':>10}"]
    for r in rows:
        if r["status"] == "failed":
            lines.append(f"{r['file']:<{width}}  FAILED: {r['error']}")
        else:
            lines.append(f"{r['file']:<{width}}  {r['count']:>10.1f}  {r['tiling_count']:>10.1f}"
                         + (f"  SUSPECT: {r['error']}" if r["status"] == "suspect" else ""))
    return "\n".join(lines)


def _make_out(out: Path) -> None:
    """The output folder, made (with its parents) and writable, or a RunError naming it."""
    problem = atomic.make_folder(out)
    if problem is None:
        return
    kind, detail = problem
    if kind == "readonly":
        raise RunError(f"the output folder {out} is not writable: give --out (OUT=) another")
    why = f"{detail} is a file" if kind == "file" else str(detail).lower()
    raise RunError(f"cannot make the output folder {out} ({why}): give --out (OUT=) a "
                   f"folder that can be made and written")


def count(inputs, run, backend: str = DEFAULT_BACKEND, out=config.DEFAULT_COUNT_OUT,
          gpu: int = -1, recursive: bool = False, expected: bool = False,
          batch: int | None = None, shared: bool = False, tta: int | None = None) -> int:
    """The `pycount count` command; returns the exit status (0: all counted, 1: some failed)."""
    run = load_run(run)
    if in_training(run.path):       # (eval refuses such a run; a count may go on, but says so)
        print(f"note: {run.path} is being trained further now: these counts use the weights "
              f"of its last finished training, which change when this one ends", flush=True)
    if expected and run.head != "C":
        raise config.ConfigError(f"--expected reads the classification head's expected count; "
                                 f"{run.path} is a run of the {run.head} head (drop --expected)")
    backend = resolve(backend, run.model, gpu)
    if backend == "caffe":
        set_device(gpu)
    out = Path(out)
    _check_out(out, inputs, [])
    missing = [str(i) for i in inputs if not Path(i).exists() and not Path(i).is_symlink()]
    if missing and len(missing) == len(inputs):      # a typo, not one lost file among others
        raise RunError(f"{', '.join(missing)}: no such file or folder; name the images or the "
                       f"folder holding them (IMAGES=)")
    paths = find_images(inputs, recursive, exclude=out)
    # images below a given folder that this count leaves out: named, never passed over unsaid
    counted = set(paths)
    deeper = [] if recursive else [p for p in find_images(inputs, True, exclude=out, note=False)
                                   if p not in counted]
    if not paths:
        hint = (f"; its subfolders hold {len(deeper)} ({_by_folder(deeper)}): name the folder "
                f"to count, or --recursive (RECURSIVE=1) counts them all" if deeper else "")
        raise RunError(f"no images (*{', *'.join(IMAGE_SUFFIXES)}) in "
                       f"{', '.join(map(str, inputs))}{hint}")
    if deeper:
        print(f"note: {len(deeper)} image(s) in subfolders are not counted ({_by_folder(deeper)})"
              f"; --recursive (RECURSIVE=1) counts them too", file=sys.stderr)
    _check_out(out, inputs, _heatmap_names(paths))
    _make_out(out)
    lock = OutLock(out)                 # two counts into one folder: the second stops here
    try:
        atomic.remove_stale_temps(out)  # half-written heatmaps of a count killed outright
        return _count_into(out, paths, run, backend, batch, expected, shared, tta)
    finally:
        lock.release()


def _count_into(out: Path, paths: list[Path], run, backend: str, batch, expected: bool,
                shared: bool, tta) -> int:
    """count()'s work once its output folder is made and held: counts.csv and the heatmaps."""
    # an earlier count's table goes before the first new heatmap: a count killed outright
    # (SIGKILL, a machine lost) then leaves no counts.csv that the new heatmaps contradict
    earlier = _earlier_heatmaps(out)
    predict = make_predictor(backend, (run.deploy, run.weights), run.model, run.ds, run.head,
                             batch=batch, expected=expected, shared=shared, tta=tta)
    (out / "counts.csv").unlink(missing_ok=True)   # (after the net loads: a failed load keeps it)
    # and an interrupted count's table: its rows name heatmaps that this count overwrites
    (out / "counts.partial.csv").unlink(missing_ok=True)
    rows, names = [], _heatmap_names(paths)
    done, stopped = False, None
    try:
        with sigterm_as_interrupt(), \
                Progress(len(paths), f"counting with {run.path} ({backend})", "images") as bar:
            for path, name in zip(paths, names):
                start = time.monotonic()
                try:
                    with bar.item(path.name):
                        rows.append({**count_file(path, run, predict, out / name),
                                     "heatmap": name})
                except (DatasetError, OSError, ValueError, MemoryError) as e:
                    if atomic.no_room(e):                  # not the image's fault
                        raise RunError(atomic.cannot_write(
                            str(out / name), e, out,
                            "give --out (OUT=) a folder on another disk")) from None
                    (out / name).unlink(missing_ok=True)     # not an earlier count's heatmap
                    error = (f"no such file: {path}; check the path" if
                             isinstance(e, FileNotFoundError) else
                             f"not enough memory to count it ({e}): count it on a machine "
                             f"with more, or cut it into tiles" if isinstance(e, MemoryError)
                             else str(e))
                    rows.append({"file": shown(path), "count": "", "tiling_count": "", "width": "",
                                 "height": "", "seconds": time.monotonic() - start,
                                 "status": "failed", "error": shown(error), "heatmap": ""})
                bar.update(1)
        done = True
    except BaseException as e:          # what stopped it, for the partial table's line
        stopped = e
        raise
    finally:
        # an earlier count's heatmaps that no row of this one has (images not reached, or not
        # in this count: 27 of 30 stayed beside a table of 3); files it did not list stay, and
        # so does a file being counted now (a heatmap given as an image)
        # (names compared in any case: on a case-insensitive disk, macOS's or a USB stick's,
        # Well1_heatmap.png of the earlier count is this count's well1_heatmap.png)
        counted = {_resolved(p) for p in paths}
        mine = {n.lower() for n in names[:len(rows)]}
        gone = []
        for name in sorted(n for n in earlier if n.lower() not in mine):
            try:
                if (out / name).is_file() and _resolved(out / name) not in counted:
                    (out / name).unlink()
                    gone.append(name)
            except OSError:
                pass
        if gone:
            print(f"note: removed {len(gone)} heatmap(s) of an earlier count from {out} "
                  f"({few(gone)}): not of these images", file=sys.stderr)
        try:
            _write_counts(out, rows, done, len(paths), stopped)
        except OSError as e:            # (a full disk): say so without hiding why the count stopped
            print(f"\ncould not write the counts into {out} ({e.strerror or e}); "
                  f"{len(rows)} images were counted", file=sys.stderr)
            if done:
                raise RunError(atomic.cannot_write(str(out / "counts.csv"), e, out,
                                                   "give --out (OUT=) another folder")) from None
    failed = [r for r in rows if r["status"] == "failed"]
    suspect = [r for r in rows if r["status"] == "suspect"]
    print(f"\n{summary_table(rows)}\n")
    print(f"{len(rows) - len(failed)} counted ({len(suspect)} suspect), {len(failed)} failed; "
          f"written: {out / 'counts.csv'} and {len(rows) - len(failed)} heatmaps in {out}")
    return 1 if failed or suspect else 0
