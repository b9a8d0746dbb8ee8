"""Annotations as .txt, told by their content: ImageJ's XY coordinates of a point selection
(x<TAB>y rows, no header), YOLO labels (class cx cy w h, or class x1 y1 ... a polygon, as
fractions of the image's size; Ultralytics' and Roboflow's exports, with data.yaml or LabelImg's
classes.txt naming the classes), tables saved as text; any other .txt (a readme) is no
annotation. Also the NeurIPS 2022 cell segmentation set's NAME_label.tiff masks."""
from __future__ import annotations

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
    ("nc: 1\n", [])])
def test_data_yaml_names_in_the_forms_its_writers_use(yaml, names):
    assert annotations._yaml_names(yaml) == names


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
    ("1 2\n3 x\n", r"line 2: '3 x' is not a row of numbers")])
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
