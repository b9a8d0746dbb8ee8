"""HDF5 point lists and annotations kept in one folder per class, as BCData ships them
(images/<part>/N.png, annotations/<part>/{positive,negative}/N.h5 with an N x 2 dataset
"coordinates"), read with h5py files written here the way that release writes them."""
from __future__ import annotations

import os
import sys

import cv2
import h5py
import numpy as np
import pytest

from pycount import cli, config
from pycount.data import annotations, layout, lmdbio, owndata, prepare, readers
from pycount.errors import DatasetError


def h5(path, **lists):
    """An HDF5 file of point lists, each keyword a dataset (None: a null dataspace)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        for name, xy in lists.items():
            if xy is None:
                f.create_dataset(name, data=h5py.Empty("f8"))
            else:
                f[name] = xy
    return path


# --- the reader -----------------------------------------------------------------------------------

def test_bcdata_coordinates_are_x_y_rows_in_pixels(tmp_path):
    xy = np.array([[5, 7], [630, 12], [0, 639]], np.int64)
    got = annotations.read_annotation(h5(tmp_path / "0.h5", coordinates=xy), "HDF5")
    assert got.dtype == np.float64 and got.tolist() == xy.tolist()
    assert annotations.ANNOTATION_KINDS[".hdf5"] == "HDF5"


@pytest.mark.parametrize("empty", [np.zeros((0,)), np.zeros((0, 2)), None])
def test_an_empty_list_is_an_image_of_no_cell(tmp_path, empty):
    got = annotations.read_hdf5_points(h5(tmp_path / "e.h5", coordinates=empty))
    assert got.shape == (0, 2)


def test_several_lists_count_together_or_the_one_the_marker_names(tmp_path):
    path = tmp_path / "m.h5"
    h5(path, positive=[[1.5, 2.0]], negative=[[3, 4], [5, 6]])
    with h5py.File(path, "a") as f:
        f.create_group("more")["lymphocyte"] = [[7, 8], [9, 10], [11, 12]]
        f["size"] = [640, 640]                      # a 1-D dataset: no list of points
    assert len(annotations.read_hdf5_points(path)) == 6
    assert annotations.read_hdf5_points(path, "positive").tolist() == [[1.5, 2.0]]
    assert len(annotations.read_hdf5_points(path, "more/lymphocyte")) == 3
    assert len(annotations.read_hdf5_points(path, "lymphocyte")) == 3
    # a file without the marker's list: no such cell, its lists recorded for the message
    assert annotations.read_hdf5_points(path, "mitosis").shape == (0, 2)
    assert "more/lymphocyte" in annotations.classes_without("mitosis")


def test_points_stored_as_columns_are_refused_saying_so(tmp_path):
    path = h5(tmp_path / "t.h5", coordinates=np.arange(10).reshape(2, 5))
    with pytest.raises(DatasetError, match=r"t\.h5 holds no list of points .*coordinates "
                                           r"\(2 x 5 int64\) \(2 x N: the points as columns"):
        annotations.read_hdf5_points(path)


def test_a_point_that_is_not_a_number_is_named_by_its_row(tmp_path):
    path = h5(tmp_path / "n.h5", coordinates=[[1, 2], [3, 4], [np.nan, 5]])
    with pytest.raises(DatasetError, match=r"n\.h5: row 3 of its dataset 'coordinates' is not"):
        annotations.read_hdf5_points(path)


def test_a_file_that_is_not_hdf5_is_named(tmp_path):
    path = tmp_path / "x.h5"
    path.write_text("x,y\n1,2\n")
    with pytest.raises(DatasetError, match=r"cannot read .*x\.h5 as an HDF5 file"):
        annotations.read_hdf5_points(path)


def test_without_h5py_the_file_and_the_fix_are_named(tmp_path, monkeypatch):
    path = h5(tmp_path / "0.h5", coordinates=[[1, 2]])
    monkeypatch.setitem(sys.modules, "h5py", None)     # import h5py raises ImportError
    with pytest.raises(DatasetError, match=r"0\.h5 is an HDF5 file, .*h5py package, not "
                                           r"installed here: install pycount's requirements"):
        annotations.read_hdf5_points(path)


def test_only_numeric_n_x_2_or_empty_datasets_are_point_lists(tmp_path):
    """Texts in N x 2 are no points; an empty 2-D dataset of any width is a list of no cell,
    an empty 3-D stack no list at all; an infinite coordinate is refused as a NaN is."""
    path = h5(tmp_path / "s.h5", coordinates=[[1, 2], [3, 4]],
              names=np.array([[b"a", b"b"], [b"c", b"d"]]))
    assert annotations.read_hdf5_points(path).tolist() == [[1, 2], [3, 4]]
    assert annotations.read_hdf5_points(h5(tmp_path / "e.h5", none=np.zeros((0, 3)))).shape \
        == (0, 2)
    with pytest.raises(DatasetError, match=r"z\.h5 holds no list of points .*its datasets are "
                                           r"stack \(0 x 3 x 3 float64\)"):
        annotations.read_hdf5_points(h5(tmp_path / "z.h5", stack=np.zeros((0, 3, 3))))
    path = h5(tmp_path / "i.h5", coordinates=[[1, 2], [np.inf, 5]])
    with pytest.raises(DatasetError, match=r"i\.h5: row 2 of its dataset 'coordinates' is not "
                                           r"a number \(\[inf, 5\.0\]\)"):
        annotations.read_hdf5_points(path)


def test_a_marker_takes_every_list_of_its_name_in_any_group(tmp_path):
    path = h5(tmp_path / "g.h5")
    with h5py.File(path, "a") as f:
        f.create_group("tile1")["positive"] = [[1, 1]]
        f.create_group("tile2")["positive"] = [[2, 2], [3, 3]]
        f["tile2"]["negative"] = [[4, 4]]
    assert annotations.read_hdf5_points(path, "positive").tolist() == [[1, 1], [2, 2], [3, 3]]


# --- class folders -------------------------------------------------------------------------------

def bcdata(root, parts=(("train", 6), ("validation", 2), ("test", 3)), side=64, drop=()):
    """A folder laid out as BCData: per part, images named 0.png, 1.png, ... (numbering
    restarted in each part) and one HDF5 file per class; image k of a part has k + 1 positive
    and 2k + 1 negative cells. `drop`: (part, class, k) files not written."""
    rng = np.random.default_rng(0)
    for part, n in parts:
        for k in range(n):
            img = root / "images" / part / f"{k}.png"
            img.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(img), rng.integers(0, 256, (side, side, 3), np.uint8))
            for cls, count in (("positive", k + 1), ("negative", 2 * k + 1)):
                if (part, cls, k) not in drop:
                    xy = rng.choice(side * side, count, replace=False)
                    h5(root / "annotations" / part / cls / f"{k}.h5",
                       coordinates=np.stack([xy % side, xy // side], axis=1))
    return root


def test_bcdata_pairs_each_image_with_its_class_files_and_keeps_its_test_part(tmp_path):
    root = bcdata(tmp_path / "BCData")
    pairs, test, label = layout.folder_layout(root)
    assert (sorted(test), label) == (["test_0", "test_1", "test_2"], "test")
    assert sorted(pairs) == sorted([f"train_{k}" for k in range(6)] + ["validation_0",
                                    "validation_1"] + list(test))
    image, note, kind = pairs["train_4"]
    assert (image, note, kind) == (root / "images/train/4.png", root / "annotations/train",
                                   "class folders of HDF5")
    assert layout.annotation_paths(note, kind, image) == [
        root / "annotations/train/negative/4.h5", root / "annotations/train/positive/4.h5"]
    every = {s.id: len(s.centres) for s in readers.read_folder(root)}
    positive = {s.id: len(s.centres) for s in readers.read_folder(root, marker="positive")}
    assert every["train_4"] == 5 + 9 and every["test_2"] == 3 + 5
    assert positive["train_4"] == 5 and positive["validation_1"] == 2
    with pytest.raises(DatasetError, match=r"annotations/test has no class folder 'Positive' "
                                           r"\(its classes: negative, positive\)"):
        readers.read_folder(root, marker="Positive")


def test_images_beside_one_folder_of_class_folders(tmp_path):
    """images/ + labels/{a,b}/ (no split), the classes in other formats: CSVs and dot masks."""
    root = tmp_path / "lab"
    for d in ("images", "labels/a", "labels/b"):
        (root / d).mkdir(parents=True)
    for k in range(3):
        cv2.imwrite(str(root / "images" / f"s{k}.png"), np.zeros((20, 30, 3), np.uint8))
        (root / "labels" / "a" / f"s{k}.csv").write_text("x,y\n" + "".join(
            f"{2 * j},{j}\n" for j in range(k + 1)))
        mask = np.zeros((20, 30), np.uint8)
        mask[10, 3:3 + 2 * (k + 2):2] = 255          # k + 2 one-pixel dots
        cv2.imwrite(str(root / "labels" / "b" / f"s{k}_dots.png"), mask)
    pairs = layout.folder_pairs(root)
    assert {v[2] for v in pairs.values()} == {"class folders of CSV, dot mask"}
    got = {s.id: len(s.centres) for s in readers.read_folder(root)}
    assert got == {"s0": 1 + 2, "s1": 2 + 3, "s2": 3 + 4}
    assert {s.id: len(s.centres) for s in readers.read_folder(root, marker="b")} == {
        "s0": 2, "s1": 3, "s2": 4}


def test_an_image_missing_from_one_class_folder_has_none_of_that_class(tmp_path, capsys):
    root = bcdata(tmp_path / "B", parts=(("train", 4), ("test", 2)),
                  drop={("train", "negative", 2), ("train", "negative", 3)})
    got = {s.id: len(s.centres) for s in readers.read_folder(root)}
    assert (got["train_2"], got["train_3"], got["train_1"]) == (3, 4, 2 + 3)
    err = capsys.readouterr().err
    assert "annotations/train/negative holds no file for 2 of the 4 images" in err
    assert "(2, 3): each is counted as having no negative cell" in err


def test_an_image_in_no_class_folder_or_a_file_without_its_image_is_named(tmp_path):
    root = bcdata(tmp_path / "B", parts=(("train", 3), ("test", 2)),
                  drop={("test", "negative", 1), ("test", "positive", 1)})
    with pytest.raises(DatasetError, match=r"images/test/1\.png has no annotation in any of the "
                                           r"class folders of .*annotations/test \(negative/, "
                                           r"positive/\)"):
        layout.folder_layout(root)
    h5(root / "annotations/test/positive/1.h5", coordinates=[[1, 1]])
    assert len(layout.folder_layout(root)[0]) == 5
    h5(root / "annotations/test/positive/7.h5", coordinates=[[1, 1]])
    with pytest.raises(DatasetError, match=r"positive/7\.h5 \(HDF5\) has no image of the same "
                                           r"name in .*images/test"):
        layout.folder_layout(root)


def test_a_class_file_added_later_is_read(tmp_path):
    """The index of a folder of class folders follows files added to a class folder."""
    root = bcdata(tmp_path / "B", parts=(("train", 3), ("test", 2)),
                  drop={("train", "negative", 0)})
    image, note, kind = layout.folder_layout(root)[0]["train_0"]
    assert len(readers.read_marks(note, kind, (64, 64, 3), "", image)) == 1
    h5(root / "annotations/train/negative/0.h5", coordinates=[[1, 1], [2, 2], [3, 3]])
    assert len(readers.read_marks(note, kind, (64, 64, 3), "", image)) == 4


def test_a_bcdata_folder_prepares_with_the_marker_as_its_class(tmp_path, workdirs):
    """Through the own-data path: settings inferred, the published test part kept, the
    positive class alone counted under its own name; editing a class file is seen."""
    root = bcdata(tmp_path / "BCData", parts=(("train", 8), ("validation", 2), ("test", 3)))
    ds = owndata.resolve(config.with_overrides(config.dataset(str(root)), marker="positive"),
                         say=lambda _: None)
    assert ds.tag == "BCData-marker-positive"
    assert sorted(ds.test_ids) == ["test_0", "test_1", "test_2"]
    assert cli.main(["prepare", "--dataset", str(root), "--model", "fcrn", "--marker",
                     "positive"]) == 0
    counts = {s.id: s.count for s in prepare.load_split(ds)[1]["test"]}
    assert counts == {"test_0": 1, "test_1": 2, "test_2": 3}
    assert lmdbio.read_manifest(config.density_lmdbs(ds, "val")[0])["dataset"] == "BCData"
    everyone = owndata.resolve(config.dataset(str(root)), say=lambda _: None)
    assert {s.id: s.count for s in prepare.load_split(everyone)[1]["test"]} == {
        "test_0": 2, "test_1": 5, "test_2": 8}
    # one class file rewritten: the measured stats follow it (not the cached ones)
    h5(root / "annotations/test/positive/2.h5", coordinates=np.zeros((0, 2)))
    again = owndata.resolve(config.with_overrides(config.dataset(str(root)), marker="positive"),
                            say=lambda _: None)
    assert {s.id: s.count for s in prepare.load_split(again)[1]["test"]}["test_2"] == 0


def test_a_place_marked_in_two_classes_is_one_cell_of_each(tmp_path, capsys):
    """One nucleus given two classes (the same coordinates in positive/ and negative/, as the
    CRC release's classification has a few): counted once over all classes, once in each."""
    root = bcdata(tmp_path / "B", parts=(("train", 3), ("test", 2)))
    h5(root / "annotations/test/positive/1.h5", coordinates=[[4, 5], [9, 9]])
    h5(root / "annotations/test/negative/1.h5", coordinates=[[4, 5], [20, 21], [30, 1]])
    got = {m: {s.id: s.count for s in readers.read_folder(root, marker=m)}["test_1"]
           for m in ("", "positive", "negative")}
    assert got == {"": 4, "positive": 2, "negative": 3}
    assert "annotations/test: 1 mark repeats another mark's exact position" in \
        capsys.readouterr().err


def test_each_class_file_is_checked_and_a_class_without_its_file_counts_0(tmp_path, capsys):
    """A marker whose class folder lacks an image's file: 0 cells; a mark repeated within one
    class file and a mark outside the image are named by that class file."""
    root = bcdata(tmp_path / "B", parts=(("train", 3), ("test", 2)),
                  drop={("train", "negative", 2)})
    got = {s.id: len(s.centres) for s in readers.read_folder(root, marker="negative")}
    assert (got["train_2"], got["train_1"]) == (0, 3)
    h5(root / "annotations/test/positive/1.h5", coordinates=[[4, 5], [4, 5], [9, 9]])
    assert {s.id: s.count for s in readers.read_folder(root)}["test_1"] == 2 + 3
    assert "annotations/test/positive/1.h5: 1 mark repeats another mark's exact position" in \
        capsys.readouterr().err
    h5(root / "annotations/test/negative/1.h5", coordinates=[[70, 5]])
    with pytest.raises(DatasetError, match=r"annotations/test/negative/1\.h5: cell centre 1 at "
                                           r"0-based \(x, y\) = \(70, 5\) lies outside"):
        readers.read_folder(root)


# --- MATLAB point lists -------------------------------------------------------------------------

def mat73(path, **lists):
    """A MATLAB -v7.3 file as MATLAB writes one: HDF5 behind a 512-byte MAT header, each
    matrix stored transposed, an empty one as [0 0] marked MATLAB_empty."""
    with h5py.File(path, "w", userblock_size=512) as f:
        for name, xy in lists.items():
            xy = np.asarray(xy, np.float64).reshape(-1, 2)
            if len(xy):
                f[name] = xy.T
                f[name].attrs["MATLAB_class"] = np.bytes_("double")
            else:
                f[name] = np.zeros(2, np.uint64)
                f[name].attrs["MATLAB_empty"] = np.uint8(1)
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, HDF5 schema 1.00 .".ljust(116)
    with open(path, "r+b") as f:
        f.write(header + bytes(8) + b"\x00\x02" + b"IM")
    return path


@pytest.mark.parametrize("version", ["5", "7.3"])
def test_matlab_point_lists_are_1_based_and_a_marker_picks_one(tmp_path, version):
    import scipy.io
    lists = {"positive": [[1, 1], [10.5, 20]], "negative": [[5, 6]], "mitosis": np.zeros((0, 2))}
    path = tmp_path / "img1.mat"
    if version == "5":
        scipy.io.savemat(path, {**lists, "note": "marked by AB"})
    else:
        mat73(path, **lists)
    assert annotations.ANNOTATION_KINDS[".mat"] == "MATLAB"
    got = annotations.read_annotation(path, "MATLAB")
    assert sorted(got.tolist()) == [[0, 0], [4, 5], [9.5, 19]]
    assert annotations.read_annotation(path, "MATLAB", marker="positive").tolist() == [
        [0, 0], [9.5, 19]]
    assert annotations.read_annotation(path, "MATLAB", marker="mitosis").shape == (0, 2)
    cv2.imwrite(str(tmp_path / "img1.png"), np.zeros((30, 30, 3), np.uint8))
    assert layout.folder_pairs(tmp_path) == {"img1": (tmp_path / "img1.png", path, "MATLAB")}


def test_a_matlab_file_without_a_point_list_names_its_variables(tmp_path):
    import scipy.io
    path = tmp_path / "a.mat"
    scipy.io.savemat(path, {"xs": np.arange(5.0), "image": np.zeros((4, 4, 3))})
    with pytest.raises(DatasetError, match=r"a\.mat holds no list of points \(a variable of N "
                                           r"rows of x, y\): its variables are .*image "
                                           r"\(4 x 4 x 3 float64\).*save\(file, 'points'\)"):
        annotations.read_mat_points(path)
    path.write_bytes(b"not a MATLAB file at all" * 10)
    with pytest.raises(DatasetError, match=r"cannot read .*a\.mat as a MATLAB file"):
        annotations.read_mat_points(path)


def test_class_folders_without_files_or_two_folders_of_them_are_named(tmp_path):
    """images/ + labels/{a,b}/ with nothing in a/ and b/ yet: each image is named as having no
    file in any class folder; beside a second such folder (masks/{x}/), which of the two holds
    the annotations cannot be told: no image is read as annotated."""
    for d in ("images", "labels/a", "labels/b"):
        (tmp_path / d).mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "images" / "s1.png"), np.zeros((20, 20, 3), np.uint8))
    with pytest.raises(DatasetError, match=r"s1\.png has no annotation in any of the class "
                                           r"folders of .*labels \(a/, b/\)"):
        layout.folder_pairs(tmp_path)
    (tmp_path / "labels" / "a" / "s1.csv").write_text("x,y\n3,4\n")
    assert len(layout.folder_pairs(tmp_path)) == 1
    (tmp_path / "masks" / "x").mkdir(parents=True)
    (tmp_path / "masks" / "x" / "s1.csv").write_text("x,y\n3,4\n")
    assert layout.folder_pairs(tmp_path) == {}


def test_a_matlab_file_of_no_list_or_of_other_arrays(tmp_path):
    """An empty text or a 3-D array is no point list; MATLAB -v7.3's empty matrix is a list
    of no cell, and its #refs# (the contents of cell arrays) holds none."""
    import scipy.io
    path = tmp_path / "n.mat"
    scipy.io.savemat(path, {"note": ""})
    with pytest.raises(DatasetError, match=r"n\.mat holds no list of points"):
        annotations.read_mat_points(path)
    scipy.io.savemat(path, {"points": [[1, 2]], "stack": np.zeros((2, 3, 2))})
    assert annotations.read_mat_points(path).tolist() == [[0, 1]]
    assert annotations.read_mat_points(mat73(tmp_path / "e.mat", mitosis=[])).shape == (0, 2)
    path = mat73(tmp_path / "r.mat", positive=[[1, 1]])
    with h5py.File(path, "a") as f:
        refs = f.create_group("#refs#")
        refs["a"] = np.zeros(2, np.uint64)
        refs["a"].attrs["MATLAB_empty"] = np.uint8(1)
        refs["b"] = np.array([[5.0], [6.0]])                # a 1 x 2 matrix inside a cell
    assert annotations.read_mat_points(path).tolist() == [[0, 0]]


def test_prepare_names_the_classes_and_an_empty_image_by_its_own_name(tmp_path, workdirs):
    """The summary lists the class folders and what is counted; an image of no mark among
    crowded ones is named by its image (its annotation is the folder of class folders), by its
    path in the dataset folder."""
    root = bcdata(tmp_path / "BCData", parts=(("train", 8), ("test", 3)))
    grid = np.stack(np.meshgrid(np.arange(2, 62, 6), np.arange(2, 62, 6)), axis=-1)
    for part, n in (("train", 8), ("test", 3)):      # 50 cells of each class per image
        for k in range(n):
            for cls, xy in (("positive", grid[::2]), ("negative", grid[1::2])):
                h5(root / "annotations" / part / cls / f"{k}.h5",
                   coordinates=xy.reshape(-1, 2) if (part, k) != ("train", 5) else np.zeros(0))
    said = []
    owndata.resolve(config.dataset(str(root)), say=said.append)
    text = "\n".join(said)
    assert "  classes: negative, positive (a subfolder each); every class counted " \
           "(MARKER=<class> counts one)" in text
    assert f"  note: images{os.sep}train{os.sep}5.png marks no cell where the folder's images " \
           f"mark" in text
    h5(root / "annotations/train/positive/3.h5",           # a mark clicked twice, 0.5 px apart
       coordinates=np.concatenate([grid[::2].reshape(-1, 2), [[2.5, 2]]]))
    said.clear()
    owndata.resolve(config.dataset(str(root)), say=said.append)
    assert f"within 1 px of another mark (images{os.sep}train{os.sep}3.png 2)" in "\n".join(said)
    said.clear()
    owndata.resolve(config.with_overrides(config.dataset(str(root)), marker="negative"),
                    say=said.append)
    assert "; MARKER= counts 'negative' alone" in "\n".join(said)
