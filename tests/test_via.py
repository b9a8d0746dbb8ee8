"""The VGG Image Annotator (VIA 2): its JSON export, its project file and its CSV export, one
file for the whole set beside the images, written here the way VIA writes them."""
from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest

from pycount.data import annotations, layout, readers
from pycount.errors import DatasetError

# a.png: two points (one positive, one negative), a rectangle and a polygon; b.png: a circle,
# an ellipse and a polyline (no cell); c.png: no region
REGIONS = {
    "a.png": [({"name": "point", "cx": 10, "cy": 12}, {"type": "positive"}),
              ({"name": "point", "cx": 20, "cy": 22}, {"type": "negative"}),
              ({"name": "rect", "x": 30, "y": 30, "width": 10, "height": 6},
               {"type": "negative"}),
              ({"name": "polygon", "all_points_x": [0, 10, 10, 0],
                "all_points_y": [0, 0, 10, 10]}, {"type": "positive"})],
    "b.png": [({"name": "circle", "cx": 50, "cy": 5, "r": 3}, {"type": "positive"}),
              ({"name": "ellipse", "cx": 40, "cy": 45, "rx": 3, "ry": 2, "theta": 0.3},
               {"type": ""}),
              ({"name": "polyline", "all_points_x": [1, 5], "all_points_y": [1, 5]}, {})],
    "c.png": []}
# each region's cell, -0.5 px (VIA's coordinates are continuous)
WANT = {"a": [[9.5, 11.5], [19.5, 21.5], [34.5, 32.5], [4.5, 4.5]],
        "b": [[49.5, 4.5], [39.5, 44.5]], "c": []}


def images(folder):
    folder.mkdir(parents=True, exist_ok=True)
    for name in REGIONS:
        cv2.imwrite(str(folder / name), np.zeros((60, 60, 3), np.uint8))
    return folder


def via_json(regions_as_dict=False) -> dict:
    """VIA 2's "Export Annotations (as json)": entries keyed by file name and size (VIA 1: the
    regions a dict by number)."""
    doc = {}
    for name, regions in REGIONS.items():
        listed = [{"shape_attributes": s, "region_attributes": a} for s, a in regions]
        doc[f"{name}1234"] = {"filename": name, "size": 1234, "file_attributes": {},
                              "regions": {str(k): r for k, r in enumerate(listed)}
                              if regions_as_dict else listed}
    return doc


def got(folder, marker=""):
    return {s.id: s.centres.tolist() for s in readers.read_folder(folder, marker=marker)}


@pytest.mark.parametrize("form", ["export", "project", "via1"])
def test_a_via_json_gives_each_image_its_regions(tmp_path, form):
    folder = images(tmp_path / "set")
    doc = via_json(regions_as_dict=form == "via1")
    if form == "project":
        doc = {"_via_settings": {}, "_via_img_metadata": doc, "_via_attributes": {}}
    (folder / "via_region_data.json").write_text(json.dumps(doc))
    assert {k: v[2] for k, v in layout.folder_pairs(folder).items()} == dict.fromkeys(
        "abc", "VIA JSON")
    assert got(folder) == WANT
    assert {k: len(v) for k, v in got(folder, "positive").items()} == {"a": 2, "b": 1, "c": 0}
    with pytest.raises(DatasetError, match=r"has no label 'Ki67' \(its labels: negative, "
                                           r"positive\)"):
        got(folder, "Ki67")


def test_the_via_csv_export_reads_as_its_json(tmp_path):
    folder = images(tmp_path / "set")
    with open(folder / "cells_csv.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["filename", "file_size", "file_attributes", "region_count", "region_id",
                    "region_shape_attributes", "region_attributes"])
        for name, regions in REGIONS.items():
            for k, (shape, attributes) in enumerate(regions):
                w.writerow([name, 1234, "{}", len(regions), k, json.dumps(shape),
                            json.dumps(attributes)])
            if not regions:                            # VIA writes an image without regions so
                w.writerow([name, 1234, "{}", 0, 0, "{}", "{}"])
    assert {k: v[2] for k, v in layout.folder_pairs(folder).items()} == dict.fromkeys(
        "abc", "VIA CSV")
    assert got(folder) == WANT
    assert {k: len(v) for k, v in got(folder, "negative").items()} == {"a": 2, "b": 0, "c": 0}


def test_checkbox_attributes_are_the_options_ticked(tmp_path):
    folder = images(tmp_path / "set")
    doc = via_json()
    doc["a.png1234"]["regions"][0]["region_attributes"] = {"type": {"mitosis": True,
                                                                    "other": False}}
    (folder / "via.json").write_text(json.dumps(doc))
    assert got(folder, "mitosis") == {"a": [[9.5, 11.5]], "b": [], "c": []}


@pytest.mark.parametrize("shape, why", [
    ({"name": "point", "cx": "near"}, r".*draw cells as points"),
    ({"name": "line", "x1": 1, "y1": 2}, r" \(ValueError\(\"a region of shape 'line'\"\)")])
def test_a_region_that_is_no_cell_shape_is_named(tmp_path, shape, why):
    """A point without numbers, a shape of no cell (a line): refused, naming the region."""
    folder = images(tmp_path / "set")
    doc = via_json()
    doc["b.png1234"]["regions"][0]["shape_attributes"] = shape
    (folder / "via.json").write_text(json.dumps(doc))
    with pytest.raises(DatasetError, match=r"via\.json: region 1 of 'b\.png' cannot be read as "
                                           r"a cell" + why):
        got(folder)


def test_an_image_the_via_file_does_not_list_has_no_annotation(tmp_path):
    folder = images(tmp_path / "set")
    doc = via_json()
    del doc["c.png1234"]
    (folder / "via.json").write_text(json.dumps(doc))
    with pytest.raises(DatasetError, match=r"c\.png has no annotation"):
        layout.folder_pairs(folder)


# --- Label Studio ---------------------------------------------------------------------------------

def ls_result(kind, value, w=60, h=60):
    return {"original_width": w, "original_height": h, "image_rotation": 0, "value": value,
            "id": "r", "from_name": "tag", "to_name": "image", "type": kind}


def label_studio() -> list:
    """Label Studio's JSON export of three tasks (percent coordinates, upload prefixes)."""
    a = [ls_result("keypointlabels", {"x": 50, "y": 25, "width": 1,
                                      "keypointlabels": ["positive"]}),
         ls_result("rectanglelabels", {"x": 10, "y": 20, "width": 20, "height": 10,
                                       "rotation": 0, "rectanglelabels": ["negative"]}),
         ls_result("polygonlabels", {"points": [[0, 0], [50, 0], [50, 50], [0, 50]],
                                     "polygonlabels": ["positive"]}),
         ls_result("choices", {"choices": ["good image"]})]
    b = [ls_result("ellipselabels", {"x": 10, "y": 90, "radiusX": 2, "radiusY": 2,
                                     "rotation": 0, "ellipselabels": ["positive"]}),
         ls_result("rectanglelabels", {"x": 50, "y": 50, "width": 10, "height": 20,
                                       "rotation": 90, "rectanglelabels": ["negative"]})]
    return [{"id": 1, "data": {"image": "/data/upload/3/1a2b3c4d-a.png"},
             "annotations": [{"id": 1, "result": a, "was_cancelled": False}]},
            {"id": 2, "data": {"image": "s3://bucket/b.png?X-Amz=1"},
             "annotations": [{"id": 2, "result": [], "was_cancelled": True},
                             {"id": 3, "result": b, "was_cancelled": False}]},
            {"id": 3, "data": {"image": "/data/upload/3/99aa00ff-c.png"}, "annotations": []}]


# a: (30, 15), the box's centre (12, 15), the square's centroid (15, 15); b: (6, 54) and a
# 6 x 12 px box turned by 90 degrees about its corner (30, 30): centre (24, 33); -0.5 each
WANT_LS = {"a": [[29.5, 14.5], [11.5, 14.5], [14.5, 14.5]], "b": [[5.5, 53.5], [23.5, 32.5]],
           "c": []}


def test_label_studio_json_in_percent_of_the_image(tmp_path):
    folder = images(tmp_path / "set")
    (folder / "project-3-at-2026.json").write_text(json.dumps(label_studio()))
    assert {k: v[2] for k, v in layout.folder_pairs(folder).items()} == dict.fromkeys(
        "abc", "Label Studio JSON")
    assert got(folder) == WANT_LS
    assert {k: len(v) for k, v in got(folder, "positive").items()} == {"a": 2, "b": 1, "c": 0}


def test_label_studio_size_and_several_annotations_are_said(tmp_path, capsys):
    folder = images(tmp_path / "set")
    tasks = label_studio()
    tasks[1]["annotations"][0]["was_cancelled"] = False     # two annotations of b: the first
    (folder / "ls.json").write_text(json.dumps(tasks))
    assert got(folder)["b"] == []
    assert "1 task(s) have more than one annotation (b.png): the first" in capsys.readouterr().err
    for r in tasks[0]["annotations"][0]["result"]:
        r["original_width"] = 120                       # annotated on a wider copy of a.png
    (folder / "ls.json").write_text(json.dumps(tasks))
    with pytest.raises(DatasetError, match=r"ls\.json was made on a 120x60 px image \(its "
                                           r"original_width and original_height for a\.png\)"):
        got(folder)


def test_label_studio_results_without_the_image_size_are_placed_on_the_image(tmp_path, capsys):
    """Results without original_width and original_height (imported through the API, or from
    before Label Studio 1.0) are placed on the image's own size, said once: on the 60 px
    images the same cells as with it; on a 120 x 40 px image a keypoint, a polygon and a box
    turned by 90 degrees scale along each side (refused before: KeyError('original_width')).
    A task with one sized result takes that size for the others, and is checked against it."""
    folder = images(tmp_path / "set")
    tasks = label_studio()
    for task in tasks:
        for r in (task["annotations"] or [{}])[-1].get("result", []):
            del r["original_width"], r["original_height"]
    (folder / "ls.json").write_text(json.dumps(tasks))
    assert got(folder) == WANT_LS
    assert ("ls.json: the results of 2 task(s) record no image size (a.png, b.png; annotations "
            "imported through the API") in capsys.readouterr().err

    cv2.imwrite(str(folder / "b.png"), np.zeros((40, 120, 3), np.uint8))
    tasks[1]["annotations"][1]["result"] = [
        {"type": "keypointlabels", "value": {"x": 50, "y": 25, "keypointlabels": ["p"]}},
        {"type": "polygonlabels", "value": {"points": [[0, 0], [50, 0], [50, 50], [0, 50]],
                                            "polygonlabels": ["p"]}},
        {"type": "rectanglelabels", "value": {"x": 50, "y": 50, "width": 10, "height": 20,
                                              "rotation": 90, "rectanglelabels": ["n"]}}]
    (folder / "ls.json").write_text(json.dumps(tasks))
    # (60, 10); the centroid (30, 10); a 12 x 8 px box turned about its corner (60, 20):
    # centre (60 - 4, 20 + 6)
    assert got(folder)["b"] == [[59.5, 9.5], [29.5, 9.5], [55.5, 25.5]]
    tasks[1]["annotations"][1]["result"][2].update(original_width=60, original_height=60)
    (folder / "ls.json").write_text(json.dumps(tasks))
    with pytest.raises(DatasetError, match=r"ls\.json was made on a 60x60 px image \(its "
                                           r"original_width and original_height for b\.png\)"):
        got(folder)


def test_region_attributes_missing_empty_or_several_and_an_uneven_polygon(tmp_path):
    """A region without attributes has no class; several set values are one class, joined by
    ", " (an empty one left out); a 20 x 10 polygon's centroid is (10, 5)."""
    folder = images(tmp_path / "set")
    doc = via_json()
    regions = doc["a.png1234"]["regions"]
    del regions[0]["region_attributes"]
    regions[1]["region_attributes"] = {"type": "negative", "stain": "Ki67", "note": ""}
    regions[3]["shape_attributes"] = {"name": "polygon", "all_points_x": [0, 20, 20, 0],
                                      "all_points_y": [0, 0, 10, 10]}
    (folder / "via.json").write_text(json.dumps(doc))
    assert got(folder)["a"] == [[9.5, 11.5], [19.5, 21.5], [34.5, 32.5], [9.5, 4.5]]
    assert got(folder, "negative, Ki67") == {"a": [[19.5, 21.5]], "b": [], "c": []}


def test_regions_given_as_null_are_no_regions(tmp_path):
    folder = images(tmp_path / "set")
    doc = via_json()
    doc["c.png1234"]["regions"] = None
    (folder / "via.json").write_text(json.dumps(doc))
    assert got(folder) == WANT


def test_a_via_file_name_given_as_an_address_is_its_file_name(tmp_path):
    folder = images(tmp_path / "set")
    doc = via_json()
    doc["a.png1234"]["filename"] = "https://lab.example.org/slides/a.png"
    (folder / "via.json").write_text(json.dumps(doc))
    assert annotations.set_file(folder / "via.json") == ("VIA JSON", ["a.png", "b.png", "c.png"])
    assert got(folder) == WANT


def test_json_and_csv_files_of_other_shapes_are_no_set_files(tmp_path):
    for k, doc in enumerate(({}, [], {"k": {"filename": "a.png"}}, [{"annotations": []}])):
        (tmp_path / f"{k}.json").write_text(json.dumps(doc))
        assert annotations.set_file(tmp_path / f"{k}.json") is None, doc
    (tmp_path / "empty.csv").write_text("")
    assert annotations.set_file(tmp_path / "empty.csv") is None


def test_a_via_csv_as_a_spreadsheet_saves_it(tmp_path):
    """A header with a space after each comma, a blank line, an image's empty shape cells; a
    row whose shape is no JSON is named by its line."""
    folder = images(tmp_path / "set")
    lines = [", ".join(annotations.VIA_CSV_HEADER)]
    for name, regions in REGIONS.items():
        for k, (shape, attributes) in enumerate(regions):
            lines.append(",".join([name, "1234", '"{}"', str(len(regions)), str(k),
                                   '"' + json.dumps(shape).replace('"', '""') + '"',
                                   '"' + json.dumps(attributes).replace('"', '""') + '"']))
    lines += ["", "c.png,1234,,0,0,,"]
    (folder / "via.csv").write_text("\n".join(lines) + "\n")
    assert got(folder) == WANT
    for bad in ('a.png,1234,"{}",4,1,"{not json",""', "a.png,1234,{}"):  # no JSON; cut short
        lines[2] = bad
        (folder / "via.csv").write_text("\n".join(lines) + "\n")
        with pytest.raises(DatasetError, match=r"via\.csv: line 3 is not a row of VIA's CSV "
                                               r"export"):
            got(folder)


def test_label_studio_on_an_image_wider_than_high(tmp_path):
    """Percent of the width for x, of the height for y (an 80 x 40 px image); a rectangle
    without a rotation is not turned; the image's address need not be the task's first data
    field, and a file name holding 8 hex digits and a hyphen is no upload prefix there."""
    folder = tmp_path / "set"
    folder.mkdir()
    cv2.imwrite(str(folder / "slide_2026abcd-w.png"), np.zeros((40, 80, 3), np.uint8))
    result = [ls_result("keypointlabels", {"x": 50, "y": 50, "width": 1,
                                           "keypointlabels": ["positive"]}, 80, 40),
              ls_result("rectanglelabels", {"x": 10, "y": 10, "width": 20, "height": 20,
                                            "rectanglelabels": ["negative"]}, 80, 40),
              ls_result("polygonlabels", {"points": [[0, 0], [50, 0], [50, 50], [0, 50]],
                                          "polygonlabels": ["positive"]}, 80, 40)]
    tasks = [{"id": 1, "data": {"n": 3, "image": "s3://bucket/cells/slide_2026abcd-w.png"},
              "annotations": [{"id": 1, "result": result, "was_cancelled": False}]}]
    (folder / "ls.json").write_text(json.dumps(tasks))
    # (40, 20); a 16 x 8 px box from (8, 4): (16, 8); a 40 x 20 px square: (20, 10); -0.5 each
    assert got(folder) == {"slide_2026abcd-w": [[39.5, 19.5], [15.5, 7.5], [19.5, 9.5]]}


def test_label_studio_completions_of_older_versions_and_a_result_without_x(tmp_path):
    folder = images(tmp_path / "set")
    tasks = label_studio()
    for t in tasks:
        t["completions"] = t.pop("annotations")
    (folder / "ls.json").write_text(json.dumps(tasks))
    assert got(folder) == WANT_LS
    del tasks[0]["completions"][0]["result"][1]["value"]["x"]
    (folder / "ls.json").write_text(json.dumps(tasks))
    with pytest.raises(DatasetError, match=r"ls\.json: result 2 of task 1 \(a\.png\) cannot be "
                                           r"read as a cell \(KeyError\('x'\)"):
        got(folder)


def test_label_studio_prefixes_only_uploads_and_passes_over_whole_image_results(tmp_path):
    """A stored file whose name starts as an upload prefix does (a date: 20261207-) keeps its
    name; a Choices result of the whole image (no size recorded) is no cell and no error."""
    folder = tmp_path / "set"
    folder.mkdir()
    for name in ("20261207-a.png", "b.png"):
        cv2.imwrite(str(folder / name), np.zeros((60, 60, 3), np.uint8))
    tasks = label_studio()[:2]
    tasks[0]["data"]["image"] = "s3://bucket/slides/20261207-a.png"
    tasks[1]["data"]["image"] = "/data/upload/3/0badcafe-b.png"
    tasks[0]["annotations"][0]["result"][3] = {
        "value": {"choices": ["good image"]}, "id": "c", "from_name": "quality",
        "to_name": "image", "type": "choices"}
    (folder / "ls.json").write_text(json.dumps(tasks))
    assert annotations.set_file(folder / "ls.json") == ("Label Studio JSON",
                                                        ["20261207-a.png", "b.png"])
    assert got(folder) == {"20261207-a": WANT_LS["a"], "b": WANT_LS["b"]}


def label_studio_min() -> list:
    """The same three tasks as Label Studio's JSON-MIN export writes them: the image's path and,
    under each tag's name, its regions (the value's fields beside the image's size)."""
    def region(value, w=60, h=60):
        return {**value, "original_width": w, "original_height": h}
    return [{"image": "/data/upload/3/1a2b3c4d-a.png", "id": 1, "annotator": 1,
             "kp": [region({"x": 50, "y": 25, "width": 1, "keypointlabels": ["positive"]})],
             "box": [region({"x": 10, "y": 20, "width": 20, "height": 10, "rotation": 0,
                             "rectanglelabels": ["negative"]})],
             "outline": [region({"points": [[0, 0], [50, 0], [50, 50], [0, 50]],
                                 "polygonlabels": ["positive"]})],
             "quality": "good image", "lead_time": 12.5},
            {"image": "s3://bucket/b.png?X-Amz=1", "id": 2,
             "blob": [region({"x": 10, "y": 90, "radiusX": 2, "radiusY": 2, "rotation": 0})],
             "box": [region({"x": 50, "y": 50, "width": 10, "height": 20, "rotation": 90,
                             "rectanglelabels": ["negative"]})]},
            {"image": "/data/upload/3/99aa00ff-c.png", "id": 3}]


def test_label_studio_json_min_reads_as_its_json_export(tmp_path):
    """JSON-MIN gives the JSON export's cells (an ellipse without labels told by its radius),
    and a marker chooses labels as there."""
    folder = images(tmp_path / "set")
    (folder / "project-3-min.json").write_text(json.dumps(label_studio_min()))
    assert {k: v[2] for k, v in layout.folder_pairs(folder).items()} == dict.fromkeys(
        "abc", "Label Studio JSON")
    assert got(folder) == WANT_LS
    assert {k: len(v) for k, v in got(folder, "negative").items()} == {"a": 1, "b": 1, "c": 0}
    # a list of plain records (no regions anywhere) is no Label Studio file
    assert annotations.setfiles._label_studio_min([{"image": "a.png", "id": 1}]) is None


def test_label_studio_json_min_without_the_image_size(tmp_path, capsys):
    """JSON-MIN of annotations imported through the API records no image size: told by its
    labels, its regions are placed on the images' own sizes (the ellipse of a tag without labels
    too), with the note; it was no Label Studio file before. Regions with neither a size nor
    labels anywhere are no Label Studio file still."""
    folder = images(tmp_path / "set")
    tasks = label_studio_min()
    for task in tasks:
        for v in task.values():
            for r in v if isinstance(v, list) else []:
                del r["original_width"], r["original_height"]
    (folder / "project-3-min.json").write_text(json.dumps(tasks))
    assert got(folder) == WANT_LS
    assert "the results of 2 task(s) record no image size (a.png, b.png;" in (
        capsys.readouterr().err)
    bare = [{"image": "a.png", "id": 1, "kp": [{"x": 50, "y": 25, "width": 1}]}]
    assert annotations.setfiles._label_studio_min(bare) is None


# --- VIA 3 ------------------------------------------------------------------------------------------

def via3_project() -> dict:
    """The regions of REGIONS as VIA 3 saves a project: files, one view each, a radio attribute
    "type" whose options are ids, each region a list led by its shape's number."""
    xy = {"point": lambda r: [1, r["cx"], r["cy"]],
          "rect": lambda r: [2, r["x"], r["y"], r["width"], r["height"]],
          "circle": lambda r: [3, r["cx"], r["cy"], r["r"]],
          "ellipse": lambda r: [4, r["cx"], r["cy"], r["rx"], r["ry"]],
          "polyline": lambda r: [6] + [v for p in zip(r["all_points_x"], r["all_points_y"])
                                       for v in p],
          "polygon": lambda r: [7] + [v for p in zip(r["all_points_x"], r["all_points_y"])
                                      for v in p]}
    option = {"positive": "0", "negative": "1"}
    doc = {"project": {"pid": "__VIA_PROJECT_ID__", "pname": "cells"}, "config": {},
           "attribute": {"1": {"aname": "type", "anchor_id": "FILE1_Z0_XY1", "type": 3,
                               "options": {"0": "positive", "1": "negative"}}},
           "file": {}, "view": {}, "metadata": {}}
    for k, (name, regions) in enumerate(REGIONS.items(), 1):
        doc["file"][str(k)] = {"fid": str(k), "fname": name, "type": 2, "loc": 1, "src": ""}
        doc["view"][str(k)] = {"fid_list": [str(k)]}
        doc["metadata"][f"{k}_file"] = {"vid": str(k), "flg": 0, "z": [], "xy": [],
                                        "av": {"1": "0"}}     # of the whole file: no cell
        for n, (shape, attributes) in enumerate(regions):
            kind = attributes.get("type") if attributes else ""
            doc["metadata"][f"{k}_{n}"] = {"vid": str(k), "flg": 0, "z": [],
                                           "xy": xy[shape["name"]](shape),
                                           "av": {"1": option[kind]} if kind else {}}
    doc["metadata"]["1_clip"] = {"vid": "1", "flg": 0, "z": [1.5, 2.0], "xy": [1, 3, 3],
                                 "av": {}}                    # a time span: no cell
    return doc


def test_a_via3_project_reads_as_via2_does(tmp_path):
    folder = images(tmp_path / "set")
    (folder / "cells_via3.json").write_text(json.dumps(via3_project()))
    assert {k: v[2] for k, v in layout.folder_pairs(folder).items()} == dict.fromkeys(
        "abc", "VIA JSON")
    assert got(folder) == WANT
    assert {k: len(v) for k, v in got(folder, "positive").items()} == {"a": 2, "b": 1, "c": 0}
    doc = via3_project()
    doc["metadata"]["1_0"]["xy"] = [8, 1, 5, 9, 2, 16, 5, 9, 8]
    (folder / "cells_via3.json").write_text(json.dumps(doc))
    with pytest.raises(DatasetError, match=r"region 1 of 'a\.png' cannot be read as a cell .*"
                                           r"extreme rectangle"):
        got(folder)
