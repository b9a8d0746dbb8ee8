"""Arrays of marks: HDF5 and MATLAB point lists, and Cellpose's NAME_seg.npy (read without running
its pickle)."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from pycount.data.annotations.common import few, marker_absent
from pycount.errors import DatasetError


def read_hdf5_points(path: Path, marker: str = "") -> np.ndarray:
    """(N, 2) centres of an HDF5 file of point lists, such as BCData's (one dataset,
    "coordinates"). Every dataset of N x 2 numbers in it is one list of (x, y) rows, taken as
    0-based pixel coordinates as the CSV reader takes them; an empty dataset is a list of no
    cell. A file of several lists (one per class: "positive", "negative") counts them all, or
    the one `marker` names (by its name or its path in the file); a file without that list is
    an image of no such cell (0 cells; marker_absent)."""
    lists, other = _hdf5_lists(path)
    return _chosen_points(path, lists, other, marker, "dataset",
                          "save the points as an N x 2 dataset, e.g. 'coordinates' as BCData does")


def read_mat_points(path: Path, marker: str = "") -> np.ndarray:
    """(N, 2) centres of a MATLAB file of point lists (NAME.mat): every variable that is an
    N x 2 matrix of numbers is one list of (x, y) rows in MATLAB's 1-based pixel coordinates,
    made 0-based (as the CRCHistoPhenotypes release stores its nuclei); an empty matrix is a
    list of no cell. Several lists count together, or the one `marker` names; a file without
    it is an image of no such cell. Files saved with -v7.3 (HDF5) are read too."""
    import scipy.io
    try:
        mat = scipy.io.loadmat(str(path))
    except NotImplementedError:              # -v7.3: HDF5, each matrix stored transposed
        lists, other = _hdf5_lists(path, matlab=True)
    except Exception as e:  # scipy raises assorted types (MatReadError, ValueError) on bad files
        raise DatasetError(f"cannot read {path} as a MATLAB file ({e}); save it again from "
                           f"MATLAB, or the points as a CSV with header x,y") from None
    else:
        lists, other = {}, []
        for name, value in mat.items():
            if name.startswith("__"):
                continue
            a = np.asarray(value)
            if a.dtype.kind in "iuf" and a.size == 0:
                lists[name] = np.empty((0, 2))
            elif a.dtype.kind in "iuf" and a.ndim == 2 and a.shape[1] == 2:
                lists[name] = a.astype(np.float64)
            else:
                other.append(f"{name} ({' x '.join(map(str, a.shape))} {a.dtype})")
    xy = _chosen_points(path, lists, other, marker, "variable",
                        "save the points as an N x 2 matrix: save(file, 'points')")
    return xy - 1.0


def _hdf5_lists(path: Path, matlab: bool = False) -> tuple[dict[str, np.ndarray], list[str]]:
    """({name: (N, 2) points} of an HDF5 file's N x 2 numeric datasets (empty ones: no point),
    [its other datasets, described]); `matlab`: a MATLAB -v7.3 file, whose matrices are stored
    transposed (2 x N) and whose empty ones are marked by a MATLAB_empty attribute."""
    try:
        import h5py
    except ImportError:
        raise DatasetError(f"{path} is an HDF5 file, which pycount reads with the h5py package, "
                           f"not installed here: install pycount's requirements (make setup, or "
                           f"pip install -r requirements.txt)") from None
    lists: dict[str, np.ndarray] = {}
    other: list[str] = []

    def visit(name: str, obj) -> None:
        if not isinstance(obj, h5py.Dataset) or (matlab and name.startswith("#refs#")):
            return
        shape, numeric = obj.shape, obj.dtype.kind in "iuf"
        if matlab and numeric and obj.attrs.get("MATLAB_empty", 0):
            shape = (0,)
        elif matlab and shape is not None:
            shape = shape[::-1]
        if numeric and (shape is None or 0 in shape) and len(shape or ()) <= 2:
            lists[name] = np.empty((0, 2))           # no cell (an empty or null dataset)
        elif numeric and len(shape) == 2 and shape[1] == 2:
            data = np.asarray(obj[()], np.float64)
            lists[name] = data.T if matlab else data
        else:
            other.append(f"{name} ({' x '.join(map(str, shape or ())) or 'scalar'} "
                         f"{obj.dtype})")
    try:
        with h5py.File(path, "r") as f:
            f.visititems(visit)
    except OSError as e:           # not HDF5, cut short, or unreadable
        raise DatasetError(f"cannot read {path} as an HDF5 file ({e}); save its point list "
                           f"again (or as a CSV with header x,y)") from None
    return lists, other


def _chosen_points(path: Path, lists: dict[str, np.ndarray], other: list[str], marker: str,
                   what: str, fix: str) -> np.ndarray:
    """The points of a file of point lists (HDF5, MATLAB): all lists, or the one `marker` names
    (by name, or the last part of its path); a file without any list, or a point that is not a
    number, refused naming `what` holds it."""
    if not lists:
        raise DatasetError(
            f"{path} holds no list of points (a {what} of N rows of x, y): its {what}s are "
            f"{few(other) or 'none'}" + (" (2 x N: the points as columns; store them as rows)"
                                          if any(" (2 x " in o for o in other) else "")
            + f"; {fix}")
    for name, xy in lists.items():
        bad = np.flatnonzero(~np.isfinite(xy).all(axis=1))
        if len(bad):
            raise DatasetError(f"{path}: row {bad[0] + 1} of its {what} {name!r} is not a "
                               f"number ({xy[bad[0]].tolist()}); correct or delete that point")
    if marker:
        chosen = [xy for name, xy in lists.items() if marker in (name, name.rsplit("/", 1)[-1])]
        if not chosen:                        # an image of no such cell: 0 (classes_without)
            marker_absent(marker, lists)
        return np.concatenate(chosen or [np.empty((0, 2))])
    return np.concatenate(list(lists.values()))


class _ArraysOnly(pickle.Unpickler):
    """An unpickler of numpy arrays and plain containers only: a Cellpose _seg.npy is a pickled
    dict, and a pickle may call anything, so nothing else it names is loaded."""
    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("builtins", "slice"),
               ("numpy.core.numeric", "_frombuffer"), ("collections", "OrderedDict")}

    def find_class(self, module, name):
        module = module.replace("numpy._core", "numpy.core")     # pickled by numpy 2
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name}")
        return super().find_class(module, name)


def read_cellpose_seg(path: Path, shape=None) -> np.ndarray:
    """(N, 2) centres of the cells of a Cellpose GUI file NAME_seg.npy (a dict saved by
    numpy.save): its `masks`, instance labels (0 background), one cell per label at its
    centroid. Read without running the pickle: only arrays and plain containers are loaded."""
    path = Path(path)
    why = None
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            _, _, dtype = np.lib.format._read_array_header(f, version)
            seg = _ArraysOnly(f).load() if dtype.hasobject else None
    except pickle.UnpicklingError as e:
        why = f"it holds objects other than arrays ({e}), which pycount does not load"
    except (OSError, ValueError, EOFError, TypeError, AttributeError, ImportError) as e:
        why = f"it is not a numpy file that Cellpose wrote ({type(e).__name__}: {e})"
    else:
        seg = seg.item() if isinstance(seg, np.ndarray) and seg.shape == () else seg
        if not isinstance(seg, dict) or not isinstance(seg.get("masks"), np.ndarray):
            why = "it holds no dict with the array 'masks'"
    if why:
        raise DatasetError(f"cannot read {path} as Cellpose's _seg.npy: {why}; save the masks "
                           f"from Cellpose as {path.name[:-len('_seg.npy')]}_cp_masks.png "
                           f"(File > Save masks as PNG) and give that file instead")
    masks = seg["masks"]
    if masks.ndim != 2 or masks.dtype.kind not in "ui":
        raise DatasetError(f"{path}: its masks are {masks.dtype} of shape {masks.shape}, not one "
                           f"2-D image of labels (a 3-D segmentation?); pycount counts 2-D images")
    if shape is not None and masks.shape != tuple(shape[:2]):
        raise DatasetError(f"{path}: its masks are {masks.shape[1]}x{masks.shape[0]} px but its "
                           f"image is {shape[1]}x{shape[0]}; the masks must be of that image")
    ys, xs = np.nonzero(masks)
    if not len(xs):
        return np.empty((0, 2))
    _, label = np.unique(masks[ys, xs], return_inverse=True)
    n = np.bincount(label)
    return np.stack([np.bincount(label, xs) / n, np.bincount(label, ys) / n], axis=1)
