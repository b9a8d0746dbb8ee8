"""Annotations as .txt, told by their content: ImageJ's XY coordinates of a point selection
(x<TAB>y rows, no header), YOLO labels (class cx cy w h, or class x1 y1 ... a polygon, as
fractions of the image's size; Ultralytics' and Roboflow's exports, with data.yaml or LabelImg's
classes.txt naming the classes), tables saved as text; any other .txt (a readme) is no
annotation. Also the NeurIPS 2022 cell segmentation set's NAME_label.tiff masks."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from pycount.data import annotations, layout, readers
from pycount.errors import DatasetError


def _img(path, w=40, h=20):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((h, w, 3), 128, np.uint8))
    return path


def _txt(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_imagej_xy_coordinates_are_0_based_pixels(tmp_path):
    _img(tmp_path / "a.png")
    _txt(tmp_path / "a.txt", "3\t4\n10\t19\n39\t0\n")
    s, = readers.read_folder(tmp_path)
    assert s.centres.tolist() == [[3, 4], [10, 19], [39, 0]]
    assert layout.folder_pairs(tmp_path)["a"][2] == annotations.TEXT


def test_yolo_boxes_and_polygons_are_cells_at_their_centres(tmp_path):
    _img(tmp_path / "a.png")                                   # 40 x 20
    _txt(tmp_path / "a.txt", "0 0.25 0.5 0.1 0.2\n"
                             "1 0.5 0.25 0.75 0.25 0.75 0.75 0.5 0.75\n")   # a square polygon
    s, = readers.read_folder(tmp_path)
    np.testing.assert_allclose(s.centres, [[9.5, 9.5], [24.5, 9.5]])


def test_an_empty_label_file_is_an_image_of_no_cell(tmp_path):
    for name in ("a", "b", "c"):
        _img(tmp_path / f"{name}.png")
    _txt(tmp_path / "a.txt", "")
    _txt(tmp_path / "b.txt", "0 0.5 0.5 0.1 0.1\n")
    _txt(tmp_path / "c.txt", "\n")
    assert [len(s.centres) for s in readers.read_folder(tmp_path)] == [0, 1, 0]


def test_a_roboflow_yolo_export_reads_with_its_split_and_class_names(tmp_path):
    """train/ valid/ test/, each images/ + labels/, data.yaml naming the classes, README text
    files beside them: the split is taken, the readmes are no annotations, a marker chooses a
    class by name or number."""
    _txt(tmp_path / "data.yaml", "train: ../train/images\nval: ../valid/images\n\nnc: 2\n"
                                 "names: ['RBC', 'WBC']\n")
    _txt(tmp_path / "README.roboflow.txt", "\nThis dataset was exported via roboflow.com\n")
    for part, k in (("train", 3), ("valid", 1), ("test", 2)):
        for i in range(k):
            stem = f"{part}{i}_jpg.rf.0a1b{i}"
            _img(tmp_path / part / "images" / f"{stem}.jpg")
            _txt(tmp_path / part / "labels" / f"{stem}.txt",
                 "0 0.1 0.1 0.05 0.05\n0 0.3 0.3 0.05 0.05\n1 0.6 0.6 0.2 0.2\n")
    pairs, held, label = layout.folder_layout(tmp_path)
    assert len(pairs) == 6 and label == "test" and len(held) == 2
    got = readers.read_folder(tmp_path)
    assert {len(s.centres) for s in got} == {3}
    assert {len(s.centres) for s in readers.read_folder(tmp_path, marker="WBC")} == {1}
    assert {len(s.centres) for s in readers.read_folder(tmp_path, marker="0")} == {2}
    with pytest.raises(DatasetError, match=r"the marker 'Platelets' is no class number and no "
                                           r"class name of its labels \(RBC, WBC\)"):
        readers.read_folder(tmp_path, marker="Platelets")


@pytest.mark.parametrize("yaml, names", [
    ("names: [a, 'b c']\n", ["a", "b c"]),
    ("nc: 2\nnames:\n  - cell\n  - 'debris'\npath: x\n", ["cell", "debris"]),
    ("names:\n  0: nucleus\n  1: mitosis\n", ["nucleus", "mitosis"]),
    ("names: {1: mitosis, 0: 'nucleus'}\n", ["nucleus", "mitosis"]),
    ("nc: 1\n", [])])
def test_data_yaml_names_in_the_forms_its_writers_use(yaml, names):
    assert annotations.tables._yaml_names(yaml) == names


def test_labelimg_classes_txt_names_the_classes_and_is_no_annotation(tmp_path):
    _img(tmp_path / "images" / "a.png")
    _img(tmp_path / "images" / "b.png")
    _txt(tmp_path / "labels" / "classes.txt", "positive\nnegative\n")
    _txt(tmp_path / "labels" / "a.txt", "1 0.5 0.5 0.1 0.1\n0 0.2 0.2 0.1 0.1\n")
    _txt(tmp_path / "labels" / "b.txt", "1 0.5 0.5 0.1 0.1\n")
    got = {s.id: len(s.centres) for s in readers.read_folder(tmp_path, marker="positive")}
    assert got == {"a": 1, "b": 0}
    assert "negative" in annotations.classes_without("positive")


def test_a_results_table_saved_as_text_is_read_as_a_table(tmp_path):
    _img(tmp_path / "a.png")
    _txt(tmp_path / "a.txt", " \tArea\tMean\tX\tY\n1\t0\t255\t5\t6\n2\t0\t255\t7\t8\n")
    s, = readers.read_folder(tmp_path)
    assert s.centres.tolist() == [[5, 6], [7, 8]]
    assert layout.folder_pairs(tmp_path)["a"][2] == "CSV"


def test_a_readme_beside_the_images_is_not_refused_as_an_annotation(tmp_path):
    for name in ("a", "b"):
        _img(tmp_path / f"{name}.png")
        _txt(tmp_path / f"{name}.csv", "x,y\n1,2\n")
    _txt(tmp_path / "Readme.txt", "Cells counted by hand, 2016.\n1 2 3\n")
    assert sorted(layout.folder_pairs(tmp_path)) == ["a", "b"]


@pytest.mark.parametrize("text, needle", [
    ("1 2 3\n4 5 6\n", r"line 1: 3 numbers, neither x y .* three numbers a row are ImageJ XY"),
    ("1 2\n0 0.5 0.5 0.1 0.1\n", r"line 1: 2 numbers, neither"),
    ("0 0.5 0.5 0.1 1.5\n", r"line 1: 5 numbers, neither"),
    ("1 2\n3 x\n", r"line 2: '3 x' is not a row of numbers"),
    # a YOLO row needs a class number and whole points
    ("0 0.1 0.1 0.2 0.1 0.2 0.2 0.1\n", r"line 1: 8 numbers, neither"),   # half a point more
    ("-1 0.5 0.5 0.1 0.1\n", r"line 1: 5 numbers, neither"),               # no class -1
    ("0.5 0.5 0.5 0.1 0.1\n", r"line 1: 5 numbers, neither")])             # no class 0.5
def test_text_that_is_neither_form_is_refused_naming_the_line(tmp_path, text, needle):
    _img(tmp_path / "a.png")
    _txt(tmp_path / "a.txt", text)
    with pytest.raises(DatasetError, match=needle):
        readers.read_folder(tmp_path)


def test_a_marker_on_xy_rows_is_refused(tmp_path):
    _img(tmp_path / "a.png")
    _txt(tmp_path / "a.txt", "1 2\n")
    with pytest.raises(DatasetError, match=r"a\.txt holds x y rows \(no classes\), but the "
                                           r"marker 'pos' is chosen"):
        readers.read_folder(tmp_path, marker="pos")


def test_neurips_cellseg_label_masks_pair_by_their_name(tmp_path):
    """images/cell_00001.png + labels/cell_00001_label.tiff, 16-bit instance labels."""
    _img(tmp_path / "images" / "cell_00001.png")
    _img(tmp_path / "images" / "cell_00002.png")
    for k, n in ((1, 2), (2, 3)):
        lab = np.zeros((20, 40), np.uint16)
        for j in range(n):
            lab[2:6, 3 + 10 * j: 7 + 10 * j] = 300 + j
        (tmp_path / "labels").mkdir(exist_ok=True)
        cv2.imwrite(str(tmp_path / "labels" / f"cell_0000{k}_label.tiff"), lab)
    got = readers.read_folder(tmp_path)
    assert [len(s.centres) for s in got] == [2, 3]
    np.testing.assert_allclose(got[0].centres, [[4.5, 3.5], [14.5, 3.5]])


def test_yolo_marks_a_pixel_apart_are_two_cells_not_one_marked_twice(tmp_path, workdirs):
    """Centres kept as fractions of the image read back a hair off (0.99999 px apart for dots on
    neighbouring pixels): prepare does not warn of cells marked twice, as it does not for the
    same dots in pixels."""
    from pycount import config
    from pycount.data import owndata
    root = tmp_path / "cells"
    for k in range(3):
        _img(root / f"{k}.png", w=256, h=256)
        rows = [f"0 {(x + 0.5) / 256:.6f} {(y + 0.5) / 256:.6f} 0.03 0.03"
                for x, y in ((2, 40), (3, 40), (100, 100 + k), (150, 30), (151, 31))]
        _txt(root / f"{k}.txt", "\n".join(rows) + "\n")
    said = []
    owndata.resolve(config.dataset(str(root)), say=said.append)
    assert not any("marked twice" in line for line in said)
    _txt(root / "0.txt", "0 0.5 0.5 0.03 0.03\n0 0.501 0.5 0.03 0.03\n0 0.1 0.1 0.03 0.03\n")
    with pytest.raises(DatasetError, match=r"2 of the 13 marks in .* lie within 1 px of "
                                           r"another mark \(0\.txt 2\)"):   # 0.256 px apart
        owndata.resolve(config.dataset(str(root)), say=lambda _: None)


def test_text_files_of_numbers_named_after_no_image_are_passed_over(tmp_path, capsys):
    """pixel_size.txt ("0.325 0.325") beside the images is named after none of them: noted and
    not read, where an annotation of another kind without its image is refused; a column of
    single numbers (counts.txt) is no annotation at all."""
    for name in ("a", "b"):
        _img(tmp_path / f"{name}.png")
        _txt(tmp_path / f"{name}.txt", "1 2\n3 4\n")
    _txt(tmp_path / "pixel_size.txt", "0.325 0.325\n")
    _txt(tmp_path / "counts.txt", "2\n2\n")
    assert sorted(layout.folder_pairs(tmp_path)) == ["a", "b"]
    err = capsys.readouterr().err
    assert "pixel_size.txt is named after no image" in err and "counts.txt" not in err
    assert annotations.annotation_kind(tmp_path / "counts.txt") is None


# --- one case each of the rules above (mutation tests) ---------------------------------------------

@pytest.mark.parametrize("text, kind", [
    ("3,4\n10,19\n", annotations.TEXT),                         # x,y rows: numbers all the same
    ("\ufeff3\t4\n", annotations.TEXT),                          # a byte-order mark (Notepad)
    ('"X"\t"Y"\n5\t6\n', "CSV"),                                  # a quoted header
    ("Image\tCentroid X um\tCentroid Y um\na\t5\t6\n", "CSV"),    # QuPath's measurements
    ("NaN\tNaN\n", None),                                         # not a finite number
    ("inf 3\n", None)])
def test_a_text_file_is_told_by_its_first_line(tmp_path, text, kind):
    path = tmp_path / "a.txt"
    path.write_text(text, encoding="utf-8")
    assert annotations.annotation_kind(path) == kind


def test_xy_coordinates_with_a_byte_order_mark_are_read(tmp_path):
    _img(tmp_path / "a.png")
    (tmp_path / "a.txt").write_text("\ufeff3\t4\n10\t19\n", encoding="utf-8")
    s, = readers.read_folder(tmp_path)
    assert s.centres.tolist() == [[3, 4], [10, 19]]


def test_seg_file_names_in_any_case_are_cellpose_files():
    assert annotations.annotation_kind(Path("a_SEG.npy")) == annotations.CELLPOSE
    assert annotations.annotation_kind(Path("a_seg.NPY")) == annotations.CELLPOSE


def test_a_triangle_and_a_polygon_on_the_image_edges_are_yolo_polygons(tmp_path):
    """7 numbers (a class and three points) are a polygon; fractions 0 and 1 (the image's edges)
    are in range: the whole image's polygon is a cell at its centre."""
    _img(tmp_path / "a.png")                                   # 40 x 20
    _txt(tmp_path / "a.txt", "0 0 0 0.75 0 0 0.75\n"           # centroid (0.25, 0.25)
                             "0 0 0 1 0 1 1 0 1\n")            # centroid (0.5, 0.5)
    s, = readers.read_folder(tmp_path)
    np.testing.assert_allclose(s.centres, [[9.5, 4.5], [19.5, 9.5]])


def test_an_empty_label_file_with_a_marker_is_an_image_of_no_cell(tmp_path):
    for name in ("a", "b"):
        _img(tmp_path / f"{name}.png")
    _txt(tmp_path / "a.txt", "")
    _txt(tmp_path / "b.txt", "0 0.5 0.5 0.1 0.1\n")
    assert [len(s.centres) for s in readers.read_folder(tmp_path, marker="0")] == [0, 1]


def test_yolo_labels_without_the_image_size_are_refused(tmp_path):
    path = _txt(tmp_path / "a.txt", "0 0.5 0.5 0.1 0.1\n")
    with pytest.raises(DatasetError, match=r"a\.txt: YOLO labels need their image's size"):
        annotations.read_text_points(path)


def test_class_names_from_data_yaml_up_to_three_folders_above_or_data_yml(tmp_path):
    """labels/ three folders below data.yaml: its names; four below: none; data.yml beside the
    labels: its names; classes.txt's blank lines name no class."""
    _txt(tmp_path / "data.yaml", "names: [a, b]\n")
    assert annotations.tables._yolo_names(tmp_path / "x" / "y" / "labels" / "1.txt") == ["a", "b"]
    assert annotations.tables._yolo_names(tmp_path / "w" / "x" / "y" / "labels" / "1.txt") == []
    _txt(tmp_path / "p" / "data.yml", "names: [c]\n")
    assert annotations.tables._yolo_names(tmp_path / "p" / "1.txt") == ["c"]
    _txt(tmp_path / "q" / "classes.txt", "positive\n\nnegative\n")
    assert annotations.tables._yolo_names(tmp_path / "q" / "1.txt") == ["positive", "negative"]


@pytest.mark.parametrize("yaml, names", [
    ("# class names:\nnames: [a, b]\n", ["a", "b"]),             # a comment is no key
    ("names: [a, b, ]\n", ["a", "b"]),                           # a trailing comma
    ("names:\n  # id: name\n  0: a\n  1: b\n", ["a", "b"]),      # a comment in the mapping
    ("names:\n  1: b\n  0: a\n", ["a", "b"])])                   # by number, not by line
def test_data_yaml_names_around_comments_and_out_of_order(yaml, names):
    assert annotations.tables._yaml_names(yaml) == names


@pytest.mark.parametrize("yaml", [
    "names:\n  - a\n\n  - b\n",                                  # a blank line in the list
    "names: [a, b]  # class names\n",                            # a comment after the list
    "names:\n  0: a  # background excluded\n  1: b\n"])
def test_data_yaml_names_as_yaml_reads_them(yaml):
    """YAML allows a blank line in a block list and a comment after a value (found by mutation
    testing: the names stopped at the blank line, ["a"], and kept the comment, "b]  # class
    names", "a  # background excluded")."""
    assert annotations.tables._yaml_names(yaml) == ["a", "b"]


def test_a_yolo_polygon_row_longer_than_the_first_read_is_told_by_its_numbers(tmp_path):
    """A polygon of many vertices makes a first row longer than the 4 kB read to tell a .txt,
    here cut where a number's exponent begins (1e-05): still a row of numbers, so still a
    YOLO annotation."""
    row = "0 0.5 0.5" + " 0.5" * 1021 + " 1e-05 0.5" + " 0.25" * 600
    assert row[4094:4096] == "1e"
    _txt(tmp_path / "a.txt", row + "\n")
    assert annotations.annotation_kind(tmp_path / "a.txt") == annotations.TEXT


# --- one table of the whole set's marks ---------------------------------------------------------

def test_a_table_of_the_whole_sets_marks_gives_each_image_its_rows(tmp_path, capsys):
    """annotations.csv with filename, x, y (a path keeps its file name) beside the images; an
    image without a row is an image of no cell, said in a note; a marker chooses by class."""
    for name in ("a", "b", "c"):
        _img(tmp_path / "images" / f"{name}.png")
    _txt(tmp_path / "annotations.csv", "filename,x,y,class\n"
                                       "a.png,3,4,pos\nC:\\\\data\\\\a.png,10,5,neg\n"
                                       "images/b.png,7,8,pos\n")
    pairs = layout.folder_pairs(tmp_path)
    assert {k: v[2] for k, v in pairs.items()} == dict.fromkeys("abc", "CSV table")
    got = {s.id: s.centres.tolist() for s in readers.read_folder(tmp_path)}
    assert got == {"a": [[3, 4], [10, 5]], "b": [[7, 8]], "c": []}
    assert "annotations.csv has no row for 1 of the 3 images" in capsys.readouterr().err
    assert {s.id: s.count for s in readers.read_folder(tmp_path, marker="pos")} == {
        "a": 1, "b": 1, "c": 0}


def test_a_tensorflow_object_detection_csv_counts_a_cell_per_box(tmp_path):
    """Roboflow's and LabelImg's TensorFlow CSV: filename, width, height, class, xmin, ymin,
    xmax, ymax; a cell at each box's centre, the recorded size checked against the image."""
    for name in ("a", "b", "c"):
        _img(tmp_path / f"{name}.jpg")
    rows = ["filename,width,height,class,xmin,ymin,xmax,ymax",
            "a.jpg,40,20,cell,0,0,10,10", "a.jpg,40,20,cell,20,4,30,14",
            "b.jpg,40,20,cell,5,5,9,9", "c.jpg,40,20,debris,1,1,3,3"]
    _txt(tmp_path / "_annotations.csv", "\n".join(rows) + "\n")
    got = {s.id: s.centres.tolist() for s in readers.read_folder(tmp_path)}
    assert got == {"a": [[5, 5], [25, 9]], "b": [[7, 7]], "c": [[2, 2]]}
    rows[1:3] = [r.replace("a.jpg,40,20", "a.jpg,80,40") for r in rows[1:3]]
    _txt(tmp_path / "_annotations.csv", "\n".join(rows) + "\n")
    with pytest.raises(DatasetError, match=r"_annotations\.csv was made on a 80x40 px image "
                                           r"\(its width and height for a\.jpg\)"):
        readers.read_folder(tmp_path)


def test_a_row_of_the_whole_sets_table_that_is_no_mark_is_named(tmp_path):
    for name in ("a", "b", "c"):
        _img(tmp_path / f"{name}.png")
    _txt(tmp_path / "marks.csv", "image,x,y\na.png,1,2\nb.png,three,4\n")
    with pytest.raises(DatasetError, match=r"marks\.csv, line 3: 'b\.png,three,4' is no row of an "
                                           r"image's name and its mark's numbers \(x, y\)"):
        layout.folder_pairs(tmp_path)
