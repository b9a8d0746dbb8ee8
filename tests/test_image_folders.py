"""Folders kept one folder per image, as public sets ship them: the CRC release's
Detection/imgN/imgN.bmp + imgN_detection.mat (and Classification/imgN/imgN_<class>.mat: classes
in the files' names), DSB 2018's <id>/images/<id>.png + <id>/masks/*.png (one mask per nucleus);
and marks a hair beyond the image's edge. Files written here the way those releases write them."""
from __future__ import annotations

import os
import re

import cv2
import numpy as np
import pytest
import scipy.io

from pycount import cli, config
from pycount.data import annotations, layout, owndata, readers
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
    # several files: one note for them all
    _img(tmp_path / "b.png")
    _csv(tmp_path / "b.csv", [(40.2, 3)])
    readers.read_folder(tmp_path)
    err = capsys.readouterr().err
    assert f"{tmp_path}: 3 marks in 2 files (a.csv (2), b.csv (1)) up to 1 px beyond their " \
           f"images' edges, each counted on the edge pixel next to it" in err
    assert err.count("beyond") == 1
    (tmp_path / "b.png").unlink()
    (tmp_path / "b.csv").unlink()
    _csv(tmp_path / "a.csv", [(41.1, 3)])
    with pytest.raises(DatasetError, match=r"a\.csv: cell centre 1 .* lies outside the 40x30"):
        readers.read_folder(tmp_path)


# --- the rules of the layouts, one case each (mutation tests) ---------------------------------------

def test_root_files_of_its_own_keep_its_subfolders_out_of_the_pairs(tmp_path):
    """A folder with images and annotations of its own is no folder of image folders: its own
    pairs are read, the subfolders' are not."""
    _img(tmp_path / "a.png")
    _csv(tmp_path / "a.csv", [(1, 1)])
    for s in ("x", "y"):
        _img(tmp_path / s / f"{s}.png")
        _csv(tmp_path / s / f"{s}.csv", [(2, 2)])
    assert sorted(layout.folder_pairs(tmp_path)) == ["a"]


@pytest.mark.parametrize("third", ["dots", "notes"])
def test_a_subfolder_named_as_annotations_or_of_no_image_is_no_image_folder(tmp_path, third):
    """a/ and b/ each hold an image and its CSV; a third subfolder named as annotations' folders
    are (dots/, though it holds an image and a CSV too) or one of annotations alone (notes/) keeps
    the folder from being read as image folders: refused, naming the three."""
    for s in ("a", "b"):
        _img(tmp_path / s / f"{s}.png")
        _csv(tmp_path / s / f"{s}.csv", [(2, 2)])
    if third == "dots":
        _img(tmp_path / "dots" / "c.png")
    _csv(tmp_path / third / "c.csv", [(3, 3)])
    with pytest.raises(DatasetError, match=rf"holds no images itself but 3 subfolders with images "
                                           rf"or annotations \(a, b, {third}\)"):
        layout.folder_pairs(tmp_path)


def test_image_folders_need_more_than_half_of_them_annotated(tmp_path):
    """Four folders of images, two of them with annotations: half is not most, so they are not
    image folders (the refusal names the four), not read as two pairs and two unannotated."""
    for s in ("a", "b"):
        _img(tmp_path / s / f"{s}.png")
        _csv(tmp_path / s / f"{s}.csv", [(2, 2)])
    for s in ("c", "e"):
        _img(tmp_path / s / f"{s}.png")
    with pytest.raises(DatasetError, match=r"holds no images itself but 4 subfolders with images "
                                           r"or annotations \(a, b, c, e\)"):
        layout.folder_pairs(tmp_path)


def test_object_masks_are_told_from_dot_masks_by_name_and_number(tmp_path):
    """One image, labels/ of two masks not named after it: its object masks, a cell each; masks/
    of one mask: one cell; masks/ holding a mask named after the image: that image's label mask
    (two labels: two cells), not one object; dots/ of one mask of another name: no object mask
    but a dot mask without its image."""
    _img(tmp_path / "two" / "images" / "a.png")
    _disc(tmp_path / "two" / "labels" / "1.png", (5, 5))
    _disc(tmp_path / "two" / "labels" / "2.png", (20, 9))
    assert layout.folder_pairs(tmp_path / "two")["a"][1:] == (tmp_path / "two" / "labels",
                                                              "object masks")
    assert readers.read_folder(tmp_path / "two")[0].centres.tolist() == [[5, 5], [20, 9]]
    _img(tmp_path / "one" / "images" / "a.png")
    _disc(tmp_path / "one" / "masks" / "1.png", (5, 5))
    assert readers.read_folder(tmp_path / "one")[0].centres.tolist() == [[5, 5]]
    _img(tmp_path / "own" / "images" / "a.png")
    lab = np.zeros((30, 40), np.uint16)
    lab[2:6, 2:6], lab[10:14, 20:24] = 1, 2
    (tmp_path / "own" / "masks").mkdir()
    cv2.imwrite(str(tmp_path / "own" / "masks" / "a.png"), lab)
    assert layout.folder_pairs(tmp_path / "own")["a"][2] == "dot mask"
    assert readers.read_folder(tmp_path / "own")[0].centres.tolist() == [[3.5, 3.5], [21.5, 11.5]]
    _img(tmp_path / "dot" / "images" / "a.png")
    _disc(tmp_path / "dot" / "dots" / "x.png", (5, 5))
    with pytest.raises(DatasetError, match=r"dots/x\.png \(dot mask\) has no image of the same name"):
        layout.folder_pairs(tmp_path / "dot")


@pytest.mark.parametrize("case", ["two images", "a csv among the masks"])
def test_masks_beside_two_images_or_other_files_are_no_object_masks(tmp_path, case):
    """Object masks are one image's: beside two images, or with a CSV among them, the masks are
    dot masks that name no image, refused as such."""
    _img(tmp_path / "images" / "a.png")
    if case == "two images":
        _img(tmp_path / "images" / "b.png")
    else:
        _csv(tmp_path / "masks" / "notes.csv", [(1, 1)])
    _disc(tmp_path / "masks" / "1.png", (5, 5))
    _disc(tmp_path / "masks" / "2.png", (9, 9))
    with pytest.raises(DatasetError, match=r"masks/1\.png \(dot mask\) has no image of the same "
                                           r"name"):
        layout.folder_pairs(tmp_path)


def test_class_files_kept_apart_from_their_images(tmp_path):
    """images/a.png + labels/a_pos.csv + labels/a_neg.csv: the classes of a in labels/, read from
    there; an image added to images/ later (a_pos.png) takes a_pos.csv as its own, and a's class
    files no longer count it."""
    _img(tmp_path / "images" / "a.png")
    _csv(tmp_path / "labels" / "a_pos.csv", [(2, 2), (3, 3)])
    _csv(tmp_path / "labels" / "a_neg.csv", [(9, 9)])
    _img(tmp_path / "images" / "b.png")
    _csv(tmp_path / "labels" / "b_pos.csv", [(2, 2)])
    pairs = layout.folder_pairs(tmp_path)
    assert pairs["a"][1:] == (tmp_path / "labels", "class files of CSV")
    assert {s.id: len(s.centres) for s in readers.read_folder(tmp_path)} == {"a": 3, "b": 1}
    image = tmp_path / "images" / "a.png"
    assert [c for c, _, _ in layout.class_files(tmp_path / "labels", image)] == ["neg", "pos"]
    before = (tmp_path / "images").stat().st_mtime_ns
    _img(tmp_path / "images" / "a_pos.png")
    os.utime(tmp_path / "images", ns=(before + 10**9, before + 10**9))   # as a later edit moves it
    assert [c for c, _, _ in layout.class_files(tmp_path / "labels", image)] == ["neg"]


def test_only_annotations_named_by_class_are_class_files(tmp_path):
    """img1_notes.txt (a note, no annotation) beside img1's class files is no class of it; a_.csv
    (nothing after the "_") is no class file of a but an annotation without its image."""
    _img(tmp_path / "img1.png")
    _csv(tmp_path / "img1_positive.csv", [(1, 1)])
    _csv(tmp_path / "img1_negative.csv", [(5, 5)])
    (tmp_path / "img1_notes.txt").write_text("Counted by A. in 2016.\n")
    assert [c for c, _, _ in layout.class_files(tmp_path, tmp_path / "img1.png")] == [
        "negative", "positive"]
    assert [len(s.centres) for s in readers.read_folder(tmp_path)] == [2]
    _img(tmp_path / "a.png")
    _csv(tmp_path / "a_.csv", [(1, 1)])
    with pytest.raises(DatasetError, match=r"a_\.csv \(CSV\) has no image of the same name"):
        layout.folder_pairs(tmp_path)


def test_files_named_by_class_in_a_class_folder_or_dot_masks_are_no_class_files(tmp_path):
    """Within a class folder (positive/img1_x.csv) and for dot masks (dots/img1_x.png) a name of
    image, "_" and more is no class file: each is refused as an annotation without its image."""
    _img(tmp_path / "cf" / "images" / "img1.png")
    _csv(tmp_path / "cf" / "annotations" / "positive" / "img1_x.csv", [(2, 2)])
    _csv(tmp_path / "cf" / "annotations" / "negative" / "img1.csv", [(3, 3)])
    with pytest.raises(DatasetError, match=r"positive/img1_x\.csv \(CSV\) has no image of the "
                                           r"same name"):
        layout.folder_pairs(tmp_path / "cf")
    _img(tmp_path / "dm" / "images" / "img1.png")
    _disc(tmp_path / "dm" / "dots" / "img1_x.png", (5, 5))
    with pytest.raises(DatasetError, match=r"dots/img1_x\.png \(dot mask\) has no image of the "
                                           r"same name"):
        layout.folder_pairs(tmp_path / "dm")


def test_the_classes_of_an_image_in_class_folders_are_every_class_folder(tmp_path):
    """image_classes of a folder of class folders: every class folder, also one that holds no
    file of this image."""
    _img(tmp_path / "images" / "a.png")
    _img(tmp_path / "images" / "b.png")
    _csv(tmp_path / "annotations" / "positive" / "a.csv", [(2, 2)])
    _csv(tmp_path / "annotations" / "positive" / "b.csv", [(2, 2)])
    _csv(tmp_path / "annotations" / "negative" / "b.csv", [(4, 4)])
    image, note, kind = layout.folder_pairs(tmp_path)["a"]
    assert layout.image_classes(note, kind, image) == ["negative", "positive"]


@pytest.mark.parametrize("name", ["a.txt", "a_seg.npy"])
def test_a_broken_link_to_a_text_or_seg_annotation_is_refused(tmp_path, name):
    _img(tmp_path / "a.png")
    (tmp_path / name).symlink_to(tmp_path / "gone" / name)
    with pytest.raises(DatasetError, match=rf"{name.replace('.', r'[.]')} is "):
        layout.folder_pairs(tmp_path)


def test_a_mark_on_the_edge_or_inside_is_not_said_to_be_beyond_it(tmp_path, capsys):
    """x = -0.5 and x = W - 0.5 (continuous coordinates' edges), and x between H and W of a wide
    image, are in the image: no note of marks beyond its edge."""
    _img(tmp_path / "a.png")                                    # 40x30
    _csv(tmp_path / "a.csv", [(-0.5, 3), (-0.3, 4), (39.5, 29.5), (35, 10)])
    s, = readers.read_folder(tmp_path)
    assert s.centres.tolist() == [[-0.5, 3], [-0.3, 4], [39, 29], [35, 10]]
    assert "beyond the image's edge" not in capsys.readouterr().err


def test_object_masks_in_colour_count_any_channel_but_alpha(tmp_path):
    """A mask marked in green only (not its first channel) is a cell; an opaque alpha channel
    marks nothing: the cell is at its disc's centre, not the image's."""
    green = np.zeros((30, 40, 3), np.uint8)
    cv2.circle(green, (8, 6), 3, (0, 255, 0), -1)
    rgba = np.zeros((30, 40, 4), np.uint8)
    rgba[..., 3] = 255
    cv2.circle(rgba, (30, 20), 3, (255, 255, 255, 255), -1)
    paths = [tmp_path / "g.png", tmp_path / "rgba.png"]
    cv2.imwrite(str(paths[0]), green)
    cv2.imwrite(str(paths[1]), rgba)
    assert annotations.read_object_masks(paths, (30, 40, 3)).tolist() == [[8, 6], [30, 20]]


def test_prepare_names_an_image_of_no_cell_by_the_image_where_its_marks_are_many_files(
        tmp_path, workdirs):
    """Among crowded images, one of no cell is named in prepare's note: by its image's name where
    its marks are files by class or object masks (no one file to name)."""
    grid = [(3 + 7 * i, 3 + 5 * j) for i in range(5) for j in range(5)]       # 25 cells
    for k in (1, 2):
        _img(tmp_path / "cls" / f"i{k}.png")
        _csv(tmp_path / "cls" / f"i{k}_pos.csv", grid)
    _img(tmp_path / "cls" / "i3.png")
    _csv(tmp_path / "cls" / "i3_pos.csv", [])
    said = []
    owndata.resolve(config.dataset(str(tmp_path / "cls")), say=said.append)
    assert any("note: i3.png marks no cell" in line for line in said), said
    root = dsb(tmp_path / "nuc", {"aaaa": grid, "bbbb": grid[1:] + [(36, 26)]})
    _img(root / "cccc" / "images" / "cccc.png")
    for n in range(2):
        cv2.imwrite(str(_img(root / "cccc" / "masks" / f"{n}.png")), np.zeros((30, 40), np.uint8))
    said = []
    owndata.resolve(config.dataset(str(root)), say=said.append)
    assert any("note: cccc/images/cccc.png marks no cell" in line for line in said), said


def test_an_image_folder_of_an_empty_masks_folder_is_not_left_out_unsaid(tmp_path):
    """DSB folders where two images' masks/ are empty (found by mutation testing: they were
    left out of the pairs without a word, the set read as its third image alone): refused,
    naming the folder and its image."""
    root = dsb(tmp_path / "d", {"c": [(5, 5)]})
    for i in ("a", "b"):
        _img(root / i / "images" / f"{i}.png")
        (root / i / "masks").mkdir()
    with pytest.raises(DatasetError, match=r"d/a holds images/a\.png but no annotation that "
                                           r"pycount reads \(an empty masks/ folder"):
        layout.folder_pairs(root)


def test_two_classes_marking_the_same_cells_are_said(tmp_path, capsys):
    """img1_anna.csv and img1_ben.csv, two annotators' clicks on the same cells (1-2 px apart):
    every class counts, so each cell counts twice, and a note says so, naming both; classes of
    different cells (a cell apart) say nothing, nor does a marker that counts one."""
    _img(tmp_path / "img1.png")
    cells = [(5 + 6 * k, 5 + 4 * (k % 3)) for k in range(6)]
    _csv(tmp_path / "img1_anna.csv", cells)
    _csv(tmp_path / "img1_ben.csv", [(x + 1, y + 1) for x, y in cells])
    s, = readers.read_folder(tmp_path)
    assert len(s.centres) == 12
    err = capsys.readouterr().err
    assert ("the classes 'anna' and 'ben' mark the same cells in img1.png (100% of the fewer lie "
            "within 3 px of the other's)") in err
    readers.read_folder(tmp_path, marker="anna")
    _csv(tmp_path / "img1_ben.csv", [(x + 3, y + 3) for x, y in cells])   # 4.2 px: other cells
    other = tmp_path / "other"
    other.mkdir()
    for name in ("img1.png", "img1_anna.csv", "img1_ben.csv"):
        (other / name).write_bytes((tmp_path / name).read_bytes())
    readers.read_folder(other)
    assert "mark the same cells" not in capsys.readouterr().err


# --- the Fluorescent Neuronal Cells release's layouts ----------------------------------------------

def _neurons(path, centres, shape=(120, 160)):
    """A binary mask (0/255) of whole cells, discs of radius 9-11 around the centres, as the
    FNC release's ground-truth masks draw its neurons."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mask = np.zeros(shape, np.uint8)
    for k, (x, y) in enumerate(centres):
        cv2.circle(mask, (x, y), 9 + k % 3, 255, -1)
    cv2.imwrite(str(path), mask)


NEURONS = {"Mar1": [(20, 20), (60, 30), (100, 80)], "Mar2": [(30, 90), (130, 30)],
           "Mar3": [(20, 20), (60, 60), (100, 100), (140, 25)]}


def test_fnc_v1_wrapper_folders_pair_images_and_masks(tmp_path):
    """all_images/images/NAME.png beside all_masks/masks/NAME.png: each of the two folders the
    one subfolder of a wrapper; the binary masks of whole cells count one per region."""
    for name, centres in NEURONS.items():
        _img(tmp_path / "all_images" / "images" / f"{name}.png", w=160, h=120)
        _neurons(tmp_path / "all_masks" / "masks" / f"{name}.png", centres)
    pairs = layout.folder_pairs(tmp_path)
    assert {i: v[1].parent.name for i, v in pairs.items()} == dict.fromkeys(NEURONS, "masks")
    got = {s.id: sorted(map(tuple, s.centres.round().astype(int).tolist()))
           for s in readers.read_folder(tmp_path)}
    assert got == {k: sorted(v) for k, v in NEURONS.items()}


def test_fnc_v2_reads_one_format_of_its_ground_truths(tmp_path, capsys):
    """trainval/ and test/, each images/ beside ground_truths/{masks,rle,pascal_voc,COCO}/ (the
    same objects in four formats): the split is taken, the masks are read (rle/ holds pickles
    pycount does not read), and a note says which format."""
    for part, names in (("trainval", ["Mar1", "Mar2"]), ("test", ["Mar3"])):
        for name in names:
            _img(tmp_path / part / "images" / f"{name}.png", w=160, h=120)
            _neurons(tmp_path / part / "ground_truths" / "masks" / f"{name}.png", NEURONS[name])
            (tmp_path / part / "ground_truths" / "rle").mkdir(exist_ok=True)
            (tmp_path / part / "ground_truths" / "rle" / f"{name}.pickle").write_bytes(b"\x80")
            voc = tmp_path / part / "ground_truths" / "pascal_voc" / f"{name}.xml"
            voc.parent.mkdir(exist_ok=True)
            voc.write_text("<annotation><filename>x</filename></annotation>")
    pairs, held, label = layout.folder_layout(tmp_path)
    assert sorted(pairs) == ["Mar1", "Mar2", "Mar3"] and held == ("Mar3",) and label == "test"
    assert {v[1].parent.name for v in pairs.values()} == {"masks"}
    assert "ground_truths holds its annotations in 3 formats (masks/, pascal_voc/, rle/): masks/ " \
           "is read" in capsys.readouterr().err
    assert [s.count for s in readers.read_folder(tmp_path)] == [3, 2, 4]
    assert layout.class_folders(tmp_path / "trainval" / "ground_truths") == []


def test_a_release_of_several_sets_names_the_sets_to_give(tmp_path, workdirs):
    """The CRC release's own root (Detection/, Classification/ and a Readme.txt): no set of its
    own, and the refusal names the two subfolders that are, with the command's value."""
    root = tmp_path / "CRCHistoPhenotypes_2016_04_28"
    crc_detection(root / "Detection", 3)
    crc_classification(root / "Classification")
    (root / "Readme.txt").write_text("The dataset consists of 100 H&E stained images.\n")
    with pytest.raises(DatasetError, match=r"found 0 annotated images itself, but its subfolders "
                                           r"Classification/ \(3 images\), Detection/ \(3 images\) "
                                           r"are each a folder of annotated images pycount reads: "
                                           r"give one of them as the dataset \(DATASET=.*"
                                           r"CRCHistoPhenotypes_2016_04_28/Classification\)"):
        owndata.resolve(config.dataset(str(root)), say=lambda _: None)


# --- the Cell Tracking Challenge's layout ------------------------------------------------------------

def ctc(root, frames={"01": 4, "02": 3}, marks=("_GT", "TRA", "man_track"), skip=()):
    """NN/tTTT.tif (16-bit grey) + NN<tail>/<sub>/<prefix>TTT.tif (uint16 labels): frame t of a
    sequence holds t + 2 cells, labelled 1..t+2 (a label each, 4x4 px); frames in `skip` have no
    mask; the lineage file man_track.txt beside the masks."""
    import tifffile
    tail, sub, prefix = marks
    for seq, n in frames.items():
        (root / seq).mkdir(parents=True)
        (root / f"{seq}{tail}" / sub).mkdir(parents=True)
        (root / f"{seq}{tail}" / sub / "man_track.txt").write_text("1 0 3 0\n2 1 3 0\n")
        for t in range(n):
            tifffile.imwrite(root / seq / f"t{t:03d}.tif",
                             np.full((50, 40), 1000 * (t + 1), np.uint16))
            if t in skip:
                continue
            labels = np.zeros((50, 40), np.uint16)
            for k in range(t + 2):
                labels[2 + 6 * k: 6 + 6 * k, 10:14] = 7 * k + 3     # any label values
            tifffile.imwrite(root / f"{seq}{tail}" / sub / f"{prefix}{t:03d}.tif", labels)
    return root


def test_ctc_sequences_pair_frames_with_their_markers_and_the_last_one_tests(tmp_path, capsys):
    root = ctc(tmp_path / "Fluo-N2DH-X")
    # the gold truth's partial segmentation beside the markers is not read
    import tifffile
    (root / "01_GT" / "SEG").mkdir()
    tifffile.imwrite(root / "01_GT" / "SEG" / "man_seg002.tif", np.ones((50, 40), np.uint16))
    pairs, held, label = layout.folder_layout(root)
    assert sorted(pairs) == [f"01_t00{t}" for t in range(4)] + [f"02_t00{t}" for t in range(3)]
    assert held == ("02_t000", "02_t001", "02_t002") and label == "02"
    assert pairs["01_t002"][:2] == (root / "01" / "t002.tif",
                                    root / "01_GT" / "TRA" / "man_track002.tif")
    counts = {s.id: s.count for s in readers.read_folder(root)}
    assert counts == {f"{q}_t00{t}": t + 2 for q, n in (("01", 4), ("02", 3)) for t in range(n)}
    err = capsys.readouterr().err
    assert "Cell Tracking Challenge's layout" in err and "the frames of 02/ are the test" in err


def test_one_ctc_sequence_tests_on_its_last_frames(tmp_path):
    root = ctc(tmp_path / "seq", frames={"01": 11})
    pairs, held, label = layout.folder_layout(root)
    assert sorted(pairs) == [f"t{t:03d}" for t in range(11)]
    assert held == ("t009", "t010") and label == "01"    # round(11 x 10 / 55) = 2
    train, test = owndata.draw_split(sorted(pairs), held)
    assert train == [f"t{t:03d}" for t in range(9)] and test == ["t009", "t010"]


def test_ctc_silver_truth_and_frames_without_a_mask(tmp_path, capsys):
    root = ctc(tmp_path / "st", frames={"01": 5, "02": 4}, marks=("_ST", "SEG", "man_seg"),
               skip=(1,))
    pairs, held, _ = layout.folder_layout(root)
    assert sorted(pairs) == ["01_t000", "01_t002", "01_t003", "01_t004",
                             "02_t000", "02_t002", "02_t003"]
    assert pairs["02_t003"][1] == root / "02_ST" / "SEG" / "man_seg003.tif"
    err = capsys.readouterr().err
    assert "01/: 4 frames marked by 01_ST/SEG/ (1 frame without a mask there not read: " \
           "t001.tif)" in err


def test_a_ctc_sequence_without_marks_is_said_and_left_out(tmp_path, capsys):
    root = ctc(tmp_path / "half", frames={"01": 3})
    (root / "02").mkdir()
    cv2.imwrite(str(root / "02" / "t000.tif"), np.zeros((50, 40), np.uint8))
    pairs, held, _ = layout.folder_layout(root)
    assert sorted(pairs) == ["t000", "t001", "t002"] and held == ("t002",)
    assert "02/ has no marks (no 02_GT/TRA/ or 02_ST/SEG/): its frames are not read" \
        in capsys.readouterr().err


def test_ctc_masks_of_no_frame_number_are_refused_naming_the_sequences(tmp_path):
    root = ctc(tmp_path / "off", frames={"01": 2})
    for t in range(2):
        (root / "01" / f"t{t:03d}.tif").rename(root / "01" / f"t{t + 5:03d}.tif")
    with pytest.raises(DatasetError, match=r"no frame of its sequences has a mask of the same "
                                           r"number: 01/: 0 frames marked by 01_GT/TRA/ \(2 "
                                           r"frames without a mask there not read"):
        layout.folder_layout(root)


def test_a_folder_of_numbered_folders_and_others_is_no_ctc_layout(tmp_path):
    root = ctc(tmp_path / "mixed", frames={"01": 2})
    _img(root / "extra" / "a.png")
    assert layout.ctc_sequences(root) == []
    assert layout.ctc_sequences(ctc(tmp_path / "ok", frames={"01": 2})) != []
    assert layout.ctc_frame(tmp_path / "ok" / "01_GT" / "TRA" / "man_track001.tif") \
        == tmp_path / "ok" / "01" / "t001.tif"
    assert layout.ctc_frame(tmp_path / "ok" / "01_GT" / "TRA" / "man_track009.tif") is None


def test_a_ctc_folder_trains_through_prepare(tmp_path, workdirs):
    root = ctc(tmp_path / "Fluo-N2DH-Y", frames={"01": 4, "02": 2})
    said = []
    ds = owndata.resolve(config.dataset(str(root)), say=said.append)
    assert ds.test_ids == ("02_t000", "02_t001") and len(ds.train_ids) == 4
    assert "the images of the folder's 02/ subfolder" in "\n".join(said)
    assert cli.main(["prepare", "--dataset", str(root), "--model", "fcrn"]) == 0


# --- Arteta et al.'s HeLa set: trainPhasecontrast/ + testPhasecontrast/, imNN.pgm + imNN.mat -----------

def test_hela_phasecontrast_release_reads_as_its_split(tmp_path):
    """CellDetect_v1.0's phasecontrast/: trainPhasecontrast/ and testPhasecontrast/, each of
    grey PGM images imNN.pgm beside MATLAB files imNN.mat of a gt matrix (1-based x, y rows);
    an empty outPhasecontrast/ beside them (the detector's output folder) is no part."""
    root = tmp_path / "phasecontrast"
    for part, n in (("trainPhasecontrast", 3), ("testPhasecontrast", 2)):
        for k in range(1, n + 1):
            (root / part).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / part / f"im{k:02d}.pgm"), np.full((30, 40), 90, np.uint8))
            _mat(root / part / f"im{k:02d}.mat", gt=[[5 + 3 * j, 7] for j in range(k)])
    (root / "outPhasecontrast").mkdir()
    pairs, held, label = layout.folder_layout(root)
    assert held == ("testPhasecontrast_im01", "testPhasecontrast_im02")
    assert label == "testPhasecontrast" and len(pairs) == 5
    samples = {s.id: s for s in readers.read_folder(root)}
    assert samples["trainPhasecontrast_im03"].centres.tolist() == [[4, 6], [7, 6], [10, 6]]
    assert samples["testPhasecontrast_im01"].image.shape == (30, 40, 3)


@pytest.mark.parametrize("name, part", [
    ("train", "train"), ("trainPhasecontrast", "train"), ("TrainingSet", "train"),
    ("train_images", "train"), ("val2017", "train"), ("test-set", "test"),
    ("testPhasecontrast", "test"), ("Test", "test"), ("validation", "train"),
    ("tests", None), ("trainee", None), ("TRAINSET", None), ("contest", None),
    ("images", None)])
def test_split_part_names(name, part):
    assert layout.split_part(name) == part


def test_marks_twice_in_one_part_of_a_split_name_the_file_by_its_part(tmp_path, workdirs):
    """train/im01.csv and test/im01.csv: the warning of a cell marked twice names the file with
    its part's folder, not an im01.csv that both parts hold."""
    grid = [(3 + 7 * i, 3 + 5 * j) for i in range(5) for j in range(5)]
    for part in ("train", "test"):
        for k in (1, 2):
            _img(tmp_path / "set" / part / f"im0{k}.png")
            _csv(tmp_path / "set" / part / f"im0{k}.csv",
                 grid + [(3.4, 3.2)] if (part, k) == ("train", 1) else grid)
    said = []
    owndata.resolve(config.dataset(str(tmp_path / "set")), say=said.append)
    line = next(line for line in said if "lie within" in line)
    assert f"(train{os.sep}im01.csv 2)" in line, line


@pytest.mark.parametrize("part", ["01", "01_GT", "01_GT/TRA", "02_ST/SEG"])
def test_a_part_of_a_ctc_set_given_as_the_dataset_names_the_set(tmp_path, part):
    root = ctc(tmp_path / "Fluo-N2DH-Z", frames={"01": 2, "02": 2})
    if part.startswith("02_ST"):
        ctc(tmp_path / "st", frames={"01": 2, "02": 2}, marks=("_ST", "SEG", "man_seg"))
        root = tmp_path / "st"
    with pytest.raises(DatasetError, match=re.escape(
            f"{root / part} is a part of a Cell Tracking Challenge set, whose frames and marks "
            f"lie in folders beside each other: give the set's folder, {root}, as the dataset")):
        layout.folder_pairs(root / part)


# --- more releases as downloaded: DCC, PSU -------------------------------------------------------------

def test_dcc_release_reads_as_its_split_with_jpeg_dot_masks(tmp_path):
    """The Dublin Cell Counting release: trainval/ and test/, each images/NNN.jpg beside GT/NNN.jpg,
    a JPEG of red dots on black named as its image; the dots read back one cell each despite
    the JPEG's blur, and test/ is the published test part."""
    root = tmp_path / "DCCData"
    for part, n in (("trainval", 3), ("test", 2)):
        for k in range(n):
            _img(root / part / "images" / f"{k:03d}.jpg", w=100, h=80)
            mask = np.zeros((80, 100, 3), np.uint8)
            for j in range(k + 3):
                mask[10 + 12 * j, 20 + 9 * j] = (0, 0, 255)
            (root / part / "GT").mkdir(exist_ok=True)
            cv2.imwrite(str(root / part / "GT" / f"{k:03d}.jpg"), mask)
    pairs, held, label = layout.folder_layout(root)
    assert held == ("test_000", "test_001") and label == "test"
    counts = {s.id: s.count for s in readers.read_folder(root)}
    assert counts == {"trainval_000": 3, "trainval_001": 4, "trainval_002": 5,
                      "test_000": 3, "test_001": 4}


def test_psu_release_folders_of_jpeg_images_read_as_the_crc_release(tmp_path):
    """The PSU nuclei release keeps the CRC release's layout with JPEG images:
    imgN/imgN.jpg + imgN/imgN_detection.mat (1-based rows)."""
    for k in (1, 2, 3):
        _img(tmp_path / "PSU_dataset" / f"img{k}" / f"img{k}.jpg")
        _mat(tmp_path / "PSU_dataset" / f"img{k}" / f"img{k}_detection.mat",
             detection=[[3 + 4 * j, 6] for j in range(k)])
    samples = readers.read_folder(tmp_path / "PSU_dataset")
    assert [s.id for s in samples] == ["img1", "img2", "img3"]
    assert samples[2].centres.tolist() == [[2, 5], [6, 5], [10, 5]]


# --- mutation tests (helper-73): the split's folders of no file, the CTC layout's edges ----------------

def test_a_folder_beside_the_split_is_left_out_only_where_it_holds_no_visible_file(tmp_path):
    """split_parts: an out/ beside train/ + test/ that holds only a hidden file and empty
    subfolders is no part (the split is read); one that holds a file, if only in a subfolder of
    its own, is a folder of another kind beside them, and the folder is no split."""
    root = tmp_path / "set"
    for part in ("train", "test"):
        _img(root / part / "a.png")
        _csv(root / part / "a.csv", [(5, 5)])
    (root / "out" / "run" / "logs").mkdir(parents=True)
    (root / "out" / ".DS_Store").write_text("finder")
    assert layout.split_parts(root) == [("test", root / "test"), ("train", root / "train")]
    (root / "out" / "run" / "log.txt").write_text("epoch 1")
    assert layout.split_parts(root) is None
    (tmp_path / "empty" / "out").mkdir(parents=True)            # no part at all: no split
    assert layout.split_parts(tmp_path / "empty") is None


def test_ctc_marks_read_in_their_order_and_only_a_folder_that_holds_marks(tmp_path, capsys):
    """Both the gold truth's markers (01_GT/TRA/) and the silver truth's segmentation
    (01_ST/SEG/): the markers are read; a 02_GT/TRA/ of no mask (man_track.txt alone) is passed
    over for 02_ST/SEG/; a participant's results (01_RES/) beside them are no other folder."""
    root = ctc(tmp_path / "both", frames={"01": 2, "02": 2}, marks=("_ST", "SEG", "man_seg"))
    ctc(tmp_path / "gt", frames={"01": 2}, marks=("_GT", "TRA", "man_track"))
    (tmp_path / "gt" / "01_GT").rename(root / "01_GT")
    (root / "02_GT" / "TRA").mkdir(parents=True)
    (root / "02_GT" / "TRA" / "man_track.txt").write_text("1 0 1 0\n")
    (root / "01_RES").mkdir()
    (root / "01_RES" / "mask000.tif").write_bytes((root / "01_ST" / "SEG" / "man_seg000.tif")
                                                  .read_bytes())
    assert [(d.name, m and (m[0].relative_to(root).as_posix(), m[1]))
            for d, m in layout.ctc_sequences(root)] == [("01", ("01_GT/TRA", "man_track")),
                                                          ("02", ("02_ST/SEG", "man_seg"))]
    pairs, held, _ = layout.folder_layout(root)
    assert pairs["01_t001"][1] == root / "01_GT" / "TRA" / "man_track001.tif"
    assert pairs["02_t001"][1] == root / "02_ST" / "SEG" / "man_seg001.tif"
    assert "01/: 2 frames marked by 01_GT/TRA/; 02/: 2 frames marked by 02_ST/SEG/;" \
        in capsys.readouterr().err


def test_ctc_files_not_named_as_frames_are_not_frames(tmp_path, capsys):
    """A sequence's folder may hold other files: an image whose name starts with t but has no
    number (thumbnail.png) and a numbered file that is no image (t002.csv) are neither frames
    nor frames without a mask."""
    root = ctc(tmp_path / "set", frames={"01": 2, "02": 2})
    _img(root / "01" / "thumbnail.png")
    _csv(root / "01" / "t002.csv", [(5, 5)])
    pairs, held, _ = layout.folder_layout(root)
    assert sorted(pairs) == ["01_t000", "01_t001", "02_t000", "02_t001"]
    assert "01/: 2 frames marked by 01_GT/TRA/; 02/: 2 frames marked by 02_GT/TRA/;" \
        in capsys.readouterr().err


def test_a_folder_of_no_ctc_set_is_read_whatever_its_parts_names(tmp_path):
    """Not a CTC layout: an image at the top beside the sequences (a readme is no matter), a
    numbered folder of no frames, or numbered frames of no marks; and a folder named as a marks folder (07_GT/) whose parent is no CTC set is a
    folder of annotated images like any other, not refused as a part of one."""
    root = ctc(tmp_path / "set", frames={"01": 2})
    (root / "03").mkdir()
    (root / "03" / "notes.txt").write_text("not imaged")
    assert layout.ctc_sequences(root) == []
    (root / "03" / "notes.txt").unlink()
    (root / "03").rmdir()
    assert [d.name for d, _ in layout.ctc_sequences(root)] == ["01"]
    (root / "readme.txt").write_text("Fluo-N2DH-X")           # (no image: still the layout)
    assert [d.name for d, _ in layout.ctc_sequences(root)] == ["01"]
    _img(root / "overview.png")
    assert layout.ctc_sequences(root) == []
    frames = tmp_path / "frames"                    # numbered frames, and no marks beside them
    _img(frames / "01" / "t000.tif")
    assert layout.ctc_sequences(frames) == []
    _img(tmp_path / "07_GT" / "a.png")
    _csv(tmp_path / "07_GT" / "a.csv", [(5, 5), (9, 9)])
    assert {k: v[1].name for k, v in layout.folder_pairs(tmp_path / "07_GT").items()} == \
        {"a": "a.csv"}


def test_a_ctc_sequence_of_no_marks_given_alone_is_no_part_refused(tmp_path):
    """A numbered folder of frames with no marks beside it (02/ where only 01/ has 01_GT/), given
    as the dataset, is a folder of images without annotations, not a part of the set that the
    set's folder would read: it is not refused as one."""
    root = ctc(tmp_path / "half", frames={"01": 2})
    _img(root / "02" / "t000.tif")
    with pytest.raises(DatasetError) as refused:
        layout.folder_pairs(root / "02")
    assert "is a part of a Cell Tracking Challenge set" not in str(refused.value)


def test_ctc_frame_of_a_marks_file_only(tmp_path):
    """ctc_frame: the frame of a mask of NN_GT/TRA/, NN_ST/SEG/ or NN_GT/SEG/ of the same
    number, its suffix in either case (t001.TIF); none for a mask of another folder's tail
    (01_XX/TRA/) or subfolder (01_GT/XYZ/), or of no number (man_track_old.tif)."""
    root = ctc(tmp_path / "set", frames={"01": 2})
    (root / "01" / "t001.tif").rename(root / "01" / "t001.TIF")
    _img(root / "01" / "t_old.tif")
    tra = root / "01_GT" / "TRA"
    assert layout.ctc_frame(tra / "man_track000.tif") == root / "01" / "t000.tif"
    assert layout.ctc_frame(tra / "man_track001.tif") == root / "01" / "t001.TIF"
    assert layout.ctc_frame(root / "01_ST" / "SEG" / "man_seg000.tif") == root / "01" / "t000.tif"
    for mark in ("01_XX/TRA/man_track000.tif", "01_GT/XYZ/man_track000.tif",
                 "01_GT/TRA/man_track_old.tif", "01_GT/TRA/man_seg000.tif"):
        assert layout.ctc_frame(root / mark) is None, mark


def test_ctc_masks_are_left_out_of_a_count_only_beside_their_frames(tmp_path):
    """count's dot_masks: a CTC mask is its frame's marks where the frame is counted too (a
    recursive count of the set); the marks folder counted alone is counted as it is."""
    from pycount.inference import count
    root = ctc(tmp_path / "set", frames={"01": 2})
    tra = root / "01_GT" / "TRA"
    masks = [tra / "man_track000.tif", tra / "man_track001.tif"]
    assert count.dot_masks(masks) == []
    assert count.dot_masks([root / "01" / "t000.tif", *masks]) == [
        (tra / "man_track000.tif", root / "01" / "t000.tif")]


@pytest.mark.parametrize("n, test, how", [
    (5, 1, "its last frame is the test image"), (11, 2, "its last 2 frames are the test images"),
    (14, 3, "its last 3 frames are the test images")])
def test_one_ctc_sequence_tests_its_rounded_share_of_frames(tmp_path, capsys, n, test, how):
    """A single sequence's last round(n x 10 / 55) frames test, at least one: 5 -> 1 (0.91),
    11 -> 2, 14 -> 3 (2.55), said in the note."""
    root = ctc(tmp_path / "seq", frames={"01": n})
    pairs, held, _ = layout.folder_layout(root)
    assert held == tuple(f"t{t:03d}" for t in range(n - test, n))
    assert f"{how}, the ones before train" in capsys.readouterr().err


def test_a_message_names_marks_kept_in_a_folder_by_their_image(tmp_path):
    """owndata._named: an image whose marks are a folder (class folders, class files, DSB's
    object masks) is named by its image, others by their annotation file; by the path within
    the dataset folder, or the bare name of a file outside it."""
    root = tmp_path / "set"
    image = root / "p1" / "images" / "p1.png"
    for kind, annotation, named in (
            (layout.OBJECT_MASKS, root / "p1" / "masks", f"p1{os.sep}images{os.sep}p1.png"),
            (layout.CLASS_FILES + " (positive, negative)", root / "p1",
             f"p1{os.sep}images{os.sep}p1.png"),
            (layout.CLASS_FOLDERS, root / "annotations", f"p1{os.sep}images{os.sep}p1.png"),
            ("CSV", root / "p1" / "images" / "p1.csv", f"p1{os.sep}images{os.sep}p1.csv"),
            ("COCO JSON", tmp_path / "coco.json", "coco.json")):
        assert owndata._named((image, annotation, kind), root) == named, kind
