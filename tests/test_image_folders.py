"""Folders kept one folder per image, as public sets ship them: the CRC release's
Detection/imgN/imgN.bmp + imgN_detection.mat (and Classification/imgN/imgN_<class>.mat: classes
in the files' names), DSB 2018's <id>/images/<id>.png + <id>/masks/*.png (one mask per nucleus);
and marks a hair beyond the image's edge. Files written here the way those releases write them."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import scipy.io

from pycount import cli, config
from pycount.data import layout, owndata, readers
from pycount.errors import DatasetError


def _img(path, w=40, h=30, colour=(90, 60, 200)):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((h, w, 3), colour, np.uint8))
    return path


def _mat(path, **variables):
    """A MATLAB v5 file, as the CRC release's (1-based x, y rows)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(str(path), {k: np.asarray(v, np.float64) for k, v in variables.items()})
    return path


def _csv(path, xy):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("x,y\n" + "".join(f"{x},{y}\n" for x, y in xy))
    return path


def crc_detection(root, n=4):
    """imgK/imgK.bmp + imgK/imgK_detection.mat, K = 1..n; image K has K + 1 nuclei."""
    for k in range(1, n + 1):
        _img(root / f"img{k}" / f"img{k}.bmp")
        _mat(root / f"img{k}" / f"img{k}_detection.mat",
             detection=[[3 + 4 * j, 5 + k] for j in range(k + 1)])
    return root


def _disc(path, centre, w=40, h=30, r=3):
    path.parent.mkdir(parents=True, exist_ok=True)
    mask = np.zeros((h, w), np.uint8)
    cv2.circle(mask, centre, r, 255, -1)
    cv2.imwrite(str(path), mask)
    return path


def dsb(root, cells):
    """<id>/images/<id>.png + <id>/masks/<n>.png, one disc mask per cell; cells: {id: [(x, y)]}."""
    for i, centres in cells.items():
        _img(root / i / "images" / f"{i}.png")
        (root / i / "masks").mkdir(parents=True, exist_ok=True)
        for n, c in enumerate(centres):
            _disc(root / i / "masks" / f"{i[:4]}{n:03d}.png", c)
    return root


# --- the CRC release's Detection folder -------------------------------------------------------------

def test_crc_detection_folders_read_as_released(tmp_path):
    root = crc_detection(tmp_path / "Detection")
    pairs = layout.folder_pairs(root)
    assert sorted(pairs) == ["img1", "img2", "img3", "img4"]
    image, note, kind = pairs["img3"]
    assert image == root / "img3" / "img3.bmp" and kind == "class files of MATLAB"
    samples = readers.read_folder(root)
    assert [len(s.centres) for s in samples] == [2, 3, 4, 5]
    # 1-based MATLAB rows made 0-based
    assert samples[0].centres.tolist() == [[2, 5], [6, 5]]
    assert layout.annotation_paths(note, kind, image) == [root / "img3" / "img3_detection.mat"]


def test_an_image_folder_without_annotation_is_named(tmp_path):
    root = crc_detection(tmp_path / "Detection")
    (root / "img2" / "img2_detection.mat").unlink()
    with pytest.raises(DatasetError, match=r"img2/img2\.bmp has no annotation"):
        layout.folder_pairs(root)


def test_stems_that_repeat_across_image_folders_carry_their_folder_name(tmp_path):
    """Folders per slide, each numbering its images from 1: ids slideA_1, slideB_1."""
    for slide in ("slideA", "slideB"):
        for k in (1, 2):
            _img(tmp_path / slide / f"{k}.png")
            _csv(tmp_path / slide / f"{k}.csv", [(5, 5 + k)])
    assert sorted(layout.folder_pairs(tmp_path)) == ["slideA_1", "slideA_2", "slideB_1",
                                                     "slideB_2"]


def test_two_subfolders_of_images_alone_are_still_refused(tmp_path):
    """Two folders of images, neither with an annotation: which holds the dot masks cannot be
    told (as before); only folders that each hold their own annotations are image folders."""
    _img(tmp_path / "a" / "1.png")
    _img(tmp_path / "b" / "1.png")
    with pytest.raises(DatasetError, match="cannot tell which of its subfolders"):
        layout.folder_pairs(tmp_path)


def test_images_beside_a_labels_folder_and_a_third_are_not_image_folders(tmp_path):
    _img(tmp_path / "images" / "1.png")
    _csv(tmp_path / "labels" / "1.csv", [(3, 4)])
    _img(tmp_path / "extra" / "2.png")
    with pytest.raises(DatasetError, match="holds no images itself but 3 subfolders"):
        layout.folder_pairs(tmp_path)


def test_a_published_split_of_image_folders(tmp_path):
    crc_detection(tmp_path / "train", 3)
    test = tmp_path / "test"
    _img(test / "img9" / "img9.bmp")
    _mat(test / "img9" / "img9_detection.mat", detection=[[4, 4]])
    pairs, held, label = layout.folder_layout(tmp_path)
    assert sorted(pairs) == ["img1", "img2", "img3", "img9"] and held == ("img9",)


# --- classes in the files' names -------------------------------------------------------------------

def crc_classification(root):
    """imgK/imgK.bmp + imgK_{epithelial,inflammatory}.mat (img3 has no inflammatory file)."""
    for k in (1, 2, 3):
        _img(root / f"img{k}" / f"img{k}.bmp")
        _mat(root / f"img{k}" / f"img{k}_epithelial.mat", detection=[[3, 3], [9, 9]][:k])
        if k != 3:
            _mat(root / f"img{k}" / f"img{k}_inflammatory.mat",
                 detection=[[20, 20], [25, 20], [30, 20]][:k + 1])
    return root


def test_classes_in_file_names_count_together_or_the_marker_alone(tmp_path):
    root = crc_classification(tmp_path / "Classification")
    assert [len(s.centres) for s in readers.read_folder(root)] == [3, 5, 2]
    assert [len(s.centres) for s in readers.read_folder(root, marker="inflammatory")] == [2, 3, 0]
    assert [len(s.centres) for s in readers.read_folder(root, marker="epithelial")] == [1, 2, 2]
    image, note, kind = layout.folder_pairs(root)["img1"]
    assert layout.image_classes(note, kind, image) == ["epithelial", "inflammatory"]


def test_class_files_beside_images_in_one_folder(tmp_path):
    """img1.png with img1_positive.csv and img1_negative.csv; img1_2.png is an image of its own
    whose annotation img1_2.csv is not a class "2" of img1."""
    _img(tmp_path / "img1.png")
    _csv(tmp_path / "img1_positive.csv", [(1, 1), (2, 2)])
    _csv(tmp_path / "img1_negative.csv", [(5, 5)])
    _img(tmp_path / "img1_2.png")
    _csv(tmp_path / "img1_2.csv", [(7, 7)])
    _img(tmp_path / "img1_3.png")
    _csv(tmp_path / "img1_3-positive.csv", [(8, 8), (9, 9), (10, 10)])
    pairs = layout.folder_pairs(tmp_path)
    assert {i: k for i, (_, _, k) in pairs.items()} == {
        "img1": "class files of CSV", "img1_2": "CSV", "img1_3": "class files of CSV"}
    assert {s.id: len(s.centres) for s in readers.read_folder(tmp_path)} == {
        "img1": 3, "img1_2": 1, "img1_3": 3}
    assert [c for c, _, _ in layout.class_files(tmp_path, tmp_path / "img1.png")] == [
        "negative", "positive"]
    assert [c for c, _, _ in layout.class_files(tmp_path, tmp_path / "img1_3.png")] == [
        "positive"]


def test_a_file_of_its_own_name_beside_class_files_is_refused(tmp_path):
    _img(tmp_path / "a.png")
    _csv(tmp_path / "a.csv", [(1, 1)])
    _csv(tmp_path / "a_positive.csv", [(2, 2)])
    with pytest.raises(DatasetError, match=r"a\.png has an annotation of its own name \(a\.csv\) "
                                           r"and files named after it by class \(a_positive\.csv\)"):
        layout.folder_pairs(tmp_path)


def test_two_files_of_one_class_are_refused(tmp_path):
    _img(tmp_path / "a.png")
    _csv(tmp_path / "a_positive.csv", [(1, 1)])
    _mat(tmp_path / "a-positive.mat", points=[[2, 2]])
    with pytest.raises(DatasetError, match=r"two files of the class 'positive' of .*a\.png"):
        layout.folder_pairs(tmp_path)


def test_prepare_names_the_classes_of_file_names_and_a_marker_of_none(tmp_path, workdirs):
    root = crc_classification(tmp_path / "cls")
    said = []
    owndata.resolve(config.dataset(str(root)), say=said.append)
    assert any("classes: epithelial, inflammatory (in the files' names); every class counted"
               in line for line in said)
    with pytest.raises(DatasetError, match=r"none of the 2 training images has an annotated "
                                           r"cell of the marker 'mitosis'.*epithelial"):
        owndata.resolve(config.with_overrides(config.dataset(str(root)), marker="mitosis"),
                        say=lambda _: None)


# --- DSB 2018: one mask file per nucleus ---------------------------------------------------------

CELLS = {"a1b2c3": [(5, 5), (20, 10), (30, 25)], "d4e5f6": [(10, 10), (25, 12)],
         "0f9e8d": [(6, 20), (18, 6), (33, 8), (15, 22)]}


def test_dsb_folders_count_one_cell_per_mask_at_its_centroid(tmp_path):
    root = dsb(tmp_path / "stage1_train", CELLS)
    pairs = layout.folder_pairs(root)
    assert {i: k for i, (_, _, k) in pairs.items()} == {i: "object masks" for i in CELLS}
    for s in readers.read_folder(root):
        assert sorted(map(tuple, s.centres.tolist())) == sorted(CELLS[s.id])
    image, note, kind = pairs["d4e5f6"]
    assert layout.annotation_paths(note, kind, image) == sorted((note).glob("*.png"))


def test_an_object_mask_of_another_size_and_an_empty_one(tmp_path):
    root = dsb(tmp_path / "d", CELLS)
    cv2.imwrite(str(root / "d4e5f6" / "masks" / "zz.png"), np.zeros((30, 40), np.uint8))
    s = {s.id: s for s in readers.read_folder(root)}
    assert len(s["d4e5f6"].centres) == 2                     # an empty mask is no cell
    cv2.imwrite(str(root / "d4e5f6" / "masks" / "zz.png"), np.zeros((31, 40), np.uint8))
    with pytest.raises(DatasetError, match=r"object mask .*zz\.png is 40x31 px but its image is "
                                           r"40x30"):
        readers.read_folder(root)


def test_a_dsb_folder_trains_through_prepare(tmp_path, workdirs):
    root = dsb(tmp_path / "nuc", CELLS)
    said = []
    ds = owndata.resolve(config.dataset(str(root)), say=said.append)
    assert "(object masks)" in said[0] and len(ds.train_ids) + len(ds.test_ids) == 3
    with pytest.raises(DatasetError, match=r"object masks\) have no marker types"):
        owndata.resolve(config.with_overrides(config.dataset(str(root)), marker="x"),
                        say=lambda _: None)
    assert cli.main(["prepare", "--dataset", str(root), "--model", "fcrn"]) == 0


# --- marks a hair beyond the edge ---------------------------------------------------------------------

def test_a_mark_up_to_a_pixel_beyond_the_edge_counts_on_it(tmp_path, capsys):
    _img(tmp_path / "a.png")                                    # 40x30
    _csv(tmp_path / "a.csv", [(-1.2, 3), (40.4, 29.5), (10, 10)])
    s, = readers.read_folder(tmp_path)
    assert s.centres.tolist() == [[0, 3], [39, 29], [10, 10]]
    assert "a.csv: 2 mark(s) up to 1 px beyond the image's edge" in capsys.readouterr().err
    _csv(tmp_path / "a.csv", [(41.1, 3)])
    with pytest.raises(DatasetError, match=r"a\.csv: cell centre 1 .* lies outside the 40x30"):
        readers.read_folder(tmp_path)
