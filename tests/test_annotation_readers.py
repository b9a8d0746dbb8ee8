"""The annotation formats of an own folder (DATASET=path/to/folder), each read from a file written
the way its tool writes it: ImageJ Results CSV, napari points CSV, Fiji Cell Counter XML, QuPath
GeoJSON, dot masks; and the folder layout that pairs images with them by name."""
import csv
import dataclasses
import json
import re
import shutil
import struct

import cv2
import numpy as np
import pytest
import tifffile

from pycount import config
from pycount.data import annotations, layout, readers
from pycount.errors import DatasetError


def cellcounter_xml(types: dict, image: str = "img1.tif") -> str:
    """A marker file as Fiji's Cell Counter (File > Save Markers) writes it: {type: [(x, y)]},
    the markers set on the image titled `image`."""
    body = ""
    for t, points in types.items():
        marks = "".join(f"""
      <Marker>
        <MarkerX>{x}</MarkerX>
        <MarkerY>{y}</MarkerY>
        <MarkerZ>1</MarkerZ>
      </Marker>""" for x, y in points)
        body += f"""
    <Marker_Type>
      <Type>{t}</Type>
      <Name>{'Positive' if t == 2 else f'Type {t}'}</Name>{marks}
    </Marker_Type>"""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<CellCounter_Marker_File>
  <Image_Properties>
    <Image_Filename>{image}</Image_Filename>
  </Image_Properties>
  <Marker_Data>
    <Current_Type>1</Current_Type>{body}
  </Marker_Data>
</CellCounter_Marker_File>
"""


def qupath_geojson(features) -> str:
    """QuPath 0.4's 'Export objects as GeoJSON' (FeatureCollection, pretty-printed)."""
    return json.dumps({"type": "FeatureCollection", "features": features}, indent=2)


def point_feature(kind, coords, cls=None):
    props = {"objectType": "annotation"}
    if cls:
        props["classification"] = {"name": cls, "color": [200, 0, 0]}
    return {"type": "Feature", "id": "f", "geometry": {"type": kind, "coordinates": coords},
            "properties": props}


def detection_feature(coords, kind="Polygon", cls=None, nucleus=None, object_type="detection"):
    """An object of QuPath 0.4's cell detection as 'Export objects as GeoJSON' writes it; a cell
    (object_type "cell") carries its nucleus outline beside its own."""
    feature = {"type": "Feature", "id": "8f1c7f0e-5a4e-4d8b-9a57-2b1f0c3d9e61",
               "geometry": {"type": kind, "coordinates": coords}}
    if nucleus:
        feature["nucleusGeometry"] = {"type": "Polygon", "coordinates": nucleus}
    feature["properties"] = {"objectType": object_type, "isLocked": False,
                             "measurements": {"Nucleus: Area": 12.5}}
    if cls:
        feature["properties"]["classification"] = {"name": cls, "color": [112, 112, 225]}
    return feature


def square(x, y, side):
    """A closed ring as QuPath writes one: its first vertex repeated last."""
    return [[x, y], [x + side, y], [x + side, y + side], [x, y + side], [x, y]]


# --- Cell Counter XML -------------------------------------------------------------------------------

def test_cellcounter_counts_every_type_or_the_one_asked_for(tmp_path):
    p = tmp_path / "CellCounter_img1.xml"
    p.write_text(cellcounter_xml({1: [(10, 12), (30, 5)], 2: [(7, 8)], 3: []}))
    np.testing.assert_array_equal(annotations.read_cellcounter_xml(p),
                                  [[10, 12], [30, 5], [7, 8]])
    np.testing.assert_array_equal(annotations.read_cellcounter_xml(p, "2"), [[7, 8]])
    np.testing.assert_array_equal(annotations.read_cellcounter_xml(p, "positive"), [[7, 8]])
    assert annotations.read_cellcounter_xml(p, "3").shape == (0, 2)
    with pytest.raises(DatasetError, match=r"CellCounter_img1.xml has no marker type '9'.*"
                                           r"1 \(Type 1\), 2 \(Positive\)"):
        annotations.read_cellcounter_xml(p, "9")


def test_cellcounter_rejects_other_xml_by_name(tmp_path):
    p = tmp_path / "a.xml"
    p.write_text("<svg><g/></svg>")
    with pytest.raises(DatasetError, match=f"{p} is XML but not a Cell Counter marker file .* "
                                           f"nor a Pascal VOC annotation"):
        annotations.read_cellcounter_xml(p)
    p.write_text("<annotation><object/></annotation>")         # VOC, its box missing
    with pytest.raises(DatasetError, match=f"{p}: object 1 \\(unnamed\\) has no numeric bndbox"):
        annotations.read_cellcounter_xml(p)
    p.write_text("<CellCounter_Marker_File><Marker_Data>")
    with pytest.raises(DatasetError, match=f"cannot read {p} as Cell Counter XML"):
        annotations.read_cellcounter_xml(p)


# --- QuPath GeoJSON ----------------------------------------------------------------------------------

def test_qupath_points_shift_by_half_a_pixel_and_filter_by_class(tmp_path):
    p = tmp_path / "img.geojson"
    p.write_text(qupath_geojson([
        point_feature("MultiPoint", [[10.5, 20.5], [3.0, 4.0]], "Positive"),
        point_feature("Point", [7.5, 1.5], "Negative"),
        point_feature("Polygon", [[[0, 0], [50, 0], [50, 50], [0, 0]]], "Region"),  # ignored
    ]))
    np.testing.assert_allclose(annotations.read_qupath_geojson(p), [[10, 20], [2.5, 3.5], [7, 1]])
    np.testing.assert_allclose(annotations.read_qupath_geojson(p, "Negative"), [[7, 1]])
    # a field without cells of the class counted (a Ki67 field of no positive nucleus): 0 cells
    assert annotations.read_qupath_geojson(p, "Stroma").shape == (0, 2)
    assert annotations.classes_without("Stroma") == ["Negative", "Positive"]


def test_qupath_older_exports_a_plain_list_of_features(tmp_path):
    p = tmp_path / "img.json"
    p.write_text(json.dumps([point_feature("Point", [0.5, 0.5])]))
    np.testing.assert_allclose(annotations.read_qupath_geojson(p), [[0, 0]])
    p.write_text('{"type": "Topology"}')
    with pytest.raises(DatasetError, match="is JSON but not GeoJSON features"):
        annotations.read_qupath_geojson(p)


AGAIN = "export it again from QuPath (File > Export objects as GeoJSON)"


@pytest.mark.parametrize("doc, problem", [
    ({"type": "FeatureCollection", "features": ["a", 3]},
     "feature 1 of 2 is 'a', not a GeoJSON Feature object "
     '({"type": "Feature", "geometry": {...}})'),
    ([1, 2, 3], 'feature 1 of 3 is 1, not a GeoJSON Feature object '
                '({"type": "Feature", "geometry": {...}})'),
    ({"type": "FeatureCollection", "features": [point_feature("Point", [1, 1]),
                                                {"type": "Feature", "geometry": "Point"}]},
     "feature 2 of 2 has the geometry 'Point', not a geometry object such as "
     '{"type": "Point", "coordinates": [x, y]}'),
    ({"type": "FeatureCollection", "features": "points"},
     "'features' is 'points', not a list of GeoJSON Features"),
])
def test_qupath_features_that_are_not_objects_are_named(tmp_path, doc, problem):
    p = tmp_path / "img.geojson"
    p.write_text(json.dumps(doc))
    with pytest.raises(DatasetError) as err:
        annotations.read_qupath_geojson(p)
    assert str(err.value) == f"{p}: {problem}; {AGAIN}"


def test_qupath_properties_that_are_not_an_object_mean_no_class(tmp_path):
    p = tmp_path / "img.geojson"
    feature = dict(point_feature("Point", [4.5, 2.5]), properties="annotation")
    p.write_text(qupath_geojson([feature, None]))          # and a null entry holds nothing
    np.testing.assert_allclose(annotations.read_qupath_geojson(p), [[4, 2]])


def test_qupath_detections_count_one_cell_each_at_its_centroid(tmp_path):
    p = tmp_path / "img.geojson"
    ell = [[20, 30], [20, 34], [22, 34], [22, 32], [24, 32], [24, 30], [20, 30]]  # clockwise
    p.write_text(qupath_geojson([
        point_feature("Polygon", [square(0, 0, 60)], "Region"),    # the counted area: ignored
        detection_feature([square(10, 20, 4)], cls="Positive"),    # centroid (12, 22)
        detection_feature([ell], cls="Negative"),                   # (21 2/3, 31 2/3), not the
                                                                    # vertex mean (21.6, 32.4)
        detection_feature([square(40, 40, 10)], object_type="cell",
                          nucleus=[square(41, 41, 2)]),             # its nucleus's (42, 42)
        detection_feature([[square(0, 0, 2)], [square(10, 0, 4)]], "MultiPolygon"),  # one:
                                                                    # (4 (1, 1) + 16 (12, 2)) / 20
        detection_feature([[[5, 5], [7, 5], [9, 5], [5, 5]]]),      # no area: vertex mean (7, 5)
    ]))
    np.testing.assert_allclose(annotations.read_qupath_geojson(p), [
        [11.5, 21.5], [20 + 5 / 3 - 0.5, 30 + 5 / 3 - 0.5], [41.5, 41.5], [9.3, 1.3], [6.5, 4.5]])
    np.testing.assert_allclose(annotations.read_qupath_geojson(p, "positive"), [[11.5, 21.5]])
    # a region's class holds no cells: no cell of it here
    assert annotations.read_qupath_geojson(p, "Region").shape == (0, 2)
    assert annotations.classes_without("Region") == ["Negative", "None", "Positive"]


def test_qupath_object_types_of_older_versions_and_other_tools(tmp_path):
    def feature(polygon, **extra):
        return dict({"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [polygon]},
                     "properties": {"isLocked": False}}, **extra)
    p = tmp_path / "img.geojson"
    p.write_text(qupath_geojson([
        feature(square(0, 0, 50), id="PathAnnotationObject"),              # 0.2: a region
        feature(square(2, 2, 2), id="PathCellObject"),                     # 0.2: a cell
        feature(square(0, 0, 50), properties={"object_type": "annotation"}),   # 0.3: a region
        feature(square(6, 6, 2), properties={"object_type": "detection"}),     # 0.3: a detection
        feature(square(0, 0, 50), properties={"objectType": "tile"}),          # 0.4: a tile
        feature(square(10, 10, 2)),                  # no type (another tool's outline): a cell
    ]))
    np.testing.assert_allclose(annotations.read_qupath_geojson(p), [[2.5, 2.5], [6.5, 6.5],
                                                                [10.5, 10.5]])


def test_qupath_geometry_collections_read_by_the_same_rules(tmp_path):
    members = [{"type": "Point", "coordinates": [3.5, 4.5]},
               {"type": "MultiPoint", "coordinates": [[1.5, 1.5], [2.5, 2.5]]},
               {"type": "Polygon", "coordinates": [square(10, 10, 4)]}]
    collection = {"type": "GeometryCollection", "geometries": members}
    p = tmp_path / "img.geojson"
    p.write_text(qupath_geojson([
        dict(detection_feature(None), geometry=collection),     # points and a detected outline
        dict(point_feature("Point", None, "Region"), geometry=collection),  # a region's: ignored
        dict(detection_feature(None), geometry=None),            # no geometry: skipped
    ]))
    np.testing.assert_allclose(annotations.read_qupath_geojson(p), [
        [3, 4], [1, 1], [2, 2], [11.5, 11.5], [3, 4], [1, 1], [2, 2]])


def test_a_multipolygon_is_centred_by_its_parts_areas_whatever_their_winding(tmp_path):
    """Other tools than QuPath do not keep one winding: a part drawn clockwise weighs by its
    area as one drawn anticlockwise."""
    big, small = square(0, 0, 10), square(20, 0, 2)[::-1]      # 100 px at (5, 5), 4 at (21, 1)
    p = tmp_path / "img.geojson"
    p.write_text(qupath_geojson([detection_feature([[big], [small]], kind="MultiPolygon")]))
    np.testing.assert_allclose(annotations.read_qupath_geojson(p),
                               [[(100 * 5 + 4 * 21) / 104 - 0.5, (100 * 5 + 4 * 1) / 104 - 0.5]])


def test_a_polygon_with_a_hole_is_centred_by_its_exterior_ring(tmp_path):
    p = tmp_path / "img.geojson"
    p.write_text(qupath_geojson([detection_feature([square(0, 0, 10), square(6, 6, 2)])]))
    np.testing.assert_allclose(annotations.read_qupath_geojson(p), [[4.5, 4.5]])


def test_a_geometry_type_that_is_not_a_name_is_refused_by_name(tmp_path):
    p = tmp_path / "img.geojson"
    p.write_text(qupath_geojson([detection_feature([1.5, 2.5], kind=["Point"])]))
    with pytest.raises(DatasetError, match=re.escape(
            f"{p}: feature 1 of 1 has a ['Point'] geometry, which marks no cell")):
        annotations.read_qupath_geojson(p)


def test_qupath_a_line_counts_nothing_drawn_and_is_refused_detected(tmp_path):
    p = tmp_path / "img.geojson"
    line = [[1, 1], [9, 9]]
    p.write_text(qupath_geojson([point_feature("Point", [4.5, 2.5]),
                                 point_feature("LineString", line)]))   # a ruler drawn by hand
    np.testing.assert_allclose(annotations.read_qupath_geojson(p), [[4, 2]])
    p.write_text(qupath_geojson([point_feature("Point", [4.5, 2.5]),
                                 detection_feature(line, "LineString")]))
    with pytest.raises(DatasetError) as err:
        annotations.read_qupath_geojson(p)
    assert str(err.value) == (
        f"{p}: feature 2 of 2 has a 'LineString' geometry, which marks no cell; cells are read "
        "from Point and MultiPoint (one per point), Polygon and MultiPolygon (one per object, at "
        f"its centroid) and GeometryCollection geometries; delete that object, or {AGAIN} "
        "without it")


@pytest.mark.parametrize("kind, coords, brief, expected", [
    ("Point", "10,3", "'10,3'", "[x, y] numbers"),       # read as (1, 0) before: its characters
    ("Point", ["10", "3"], "['10', '3']", "[x, y] numbers"),
    ("Point", [True, 3], "[True, 3]", "[x, y] numbers"),
    ("MultiPoint", [[1, 2], "3,4"], "[[1, 2], '3,4']", "a list of [x, y] numbers"),
    ("Polygon", [[[0, 0], [4, "0"], [4, 4], [0, 0]]], "[[[0, 0], [4, '0'], [4, 4], [0, 0]]]",
     "a list of rings, each a list of [x, y] numbers"),
    ("MultiPolygon", [[[0, 0], [4, 0], [4, 4]]], "[[[0, 0], [4, 0], [4, 4]]]",
     "a list of polygons, each a list of rings of [x, y] numbers"),
])
def test_qupath_coordinates_that_are_not_numbers_are_refused(tmp_path, kind, coords, brief,
                                                             expected):
    p = tmp_path / "img.geojson"
    p.write_text(qupath_geojson([point_feature("Point", [1.5, 1.5]),
                                 detection_feature(coords, kind)]))
    with pytest.raises(DatasetError) as err:
        annotations.read_qupath_geojson(p)
    assert str(err.value) == (f"{p}: feature 2 of 2 is a {kind} with the coordinates {brief}, "
                              f"not {expected}; {AGAIN}")


# --- dot masks ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["grey8", "grey16", "red-rgb", "rgba"])
def test_dot_mask_every_nonzero_pixel_is_one_cell(tmp_path, kind):
    dots = [(3, 4), (10, 0), (0, 11)]
    if kind == "grey16":
        mask = np.zeros((12, 15), np.uint16)
        path = tmp_path / "a_dots.tif"
    else:
        mask = np.zeros((12, 15) + ((4,) if kind == "rgba" else (3,) if kind == "red-rgb" else ()),
                        np.uint8)
        path = tmp_path / "a_dots.png"
    for x, y in dots:
        mask[y, x] = 1 if mask.ndim == 2 else (0, 0, 255)[: 3] + ((255,) if kind == "rgba" else ())
    if kind == "rgba":
        mask[..., 3] = 255                # an opaque alpha channel is not a dot
    (tifffile.imwrite if kind == "grey16" else lambda p, m: cv2.imwrite(str(p), m))(path, mask)
    got = annotations.read_dot_mask(path, (12, 15, 3))
    assert sorted(map(tuple, got.astype(int))) == sorted(dots)
    with pytest.raises(DatasetError, match=f"the dot mask {path} is 15x12 px but its image is 16x12"):
        annotations.read_dot_mask(path, (12, 16, 3))


def _disc(mask, x, y, r=2):
    yy, xx = np.ogrid[:mask.shape[0], :mask.shape[1]]
    mask[(xx - x) ** 2 + (yy - y) ** 2 <= r * r] = 255


def _dots_on_black(side: int) -> np.ndarray:
    mask = np.zeros((side, side), np.uint8)
    mask[5::20, 7::20] = 255
    return mask


def test_dot_mask_of_discs_counts_one_cell_per_disc(tmp_path):
    mask = np.zeros((40, 60), np.uint8)
    for x, y in [(5, 5), (30, 8), (50, 30), (12, 30)]:
        _disc(mask, x, y)
    _disc(mask, 40, 20), _disc(mask, 43, 20)            # two touching discs: one blob, two cells
    path = tmp_path / "a_dots.png"
    cv2.imwrite(str(path), mask)
    got = annotations.read_dot_mask(path, (40, 60, 3))
    assert len(got) == 6
    singles = sorted(map(tuple, np.round(got).astype(int)))
    assert {(5, 5), (30, 8), (50, 30), (12, 30)} <= set(singles)
    # one-pixel dots beside each other stay two cells (the median blob is one pixel)
    mask = np.zeros((20, 20), np.uint8)
    mask[5, 5] = mask[5, 6] = mask[12, 3] = mask[15, 15] = 1
    cv2.imwrite(str(path), mask)
    assert len(annotations.read_dot_mask(path)) == 4


def test_touching_discs_are_cells_at_their_own_places_not_repeats(tmp_path):
    """A blob of k touching discs is k cells at k distinct points near the discs' centres, so
    the readers' counting (which keeps each exact position once) keeps all of them."""
    mask = np.zeros((60, 80), np.uint8)
    for x, y in [(5, 5), (70, 8), (10, 50)]:
        _disc(mask, x, y)
    pairs = [(30, 20), (34, 20)]
    row = [(40, 45), (44, 45), (48, 45)]
    for x, y in pairs + row:
        _disc(mask, x, y)
    path = tmp_path / "a_dots.png"
    cv2.imwrite(str(path), mask)
    got = annotations.read_dot_mask(path, (60, 80, 3))
    assert len(got) == 8 and len(np.unique(got, axis=0)) == 8
    kept = readers.counted_centres(got, (60, 80), path)
    assert len(kept) == 8
    for x, y in pairs + row:                       # each disc has a centre within a pixel
        assert np.hypot(*(got - (x, y)).T).min() < 1.0


def test_discs_of_several_sizes_in_one_mask_are_one_cell_each(tmp_path):
    """A mask whose discs differ in size (radius 2, 3 and 4, as drawn by hand or brushes of
    several sizes): a larger disc is one cell, not two of the median size (the area-only rule
    read 30 % too many); touching ones, a pair of each size and a triangle, are as many cells
    as discs. And where touching triples outnumber the single discs, the median blob is a
    triple: each triple is still three cells, not one."""
    rng = np.random.default_rng(3)
    mask = np.zeros((300, 300), np.uint8)
    centres = [(x, y) for y in range(20, 280, 26) for x in range(20, 280, 26)]
    for (x, y), r in zip(centres[:60], rng.choice([2, 3, 4], 60)):
        cv2.circle(mask, (x, y), int(r), 255, -1)
    groups = [[(x, y), (x + 2 * r, y)] for (x, y), r in zip(centres[60:63], (2, 3, 4))]
    groups.append([(centres[63][0], centres[63][1]), (centres[63][0] + 6, centres[63][1]),
                   (centres[63][0] + 3, centres[63][1] + 5)])           # radius 3: a triangle
    for group, r in zip(groups, (2, 3, 4, 3)):
        for x, y in group:
            cv2.circle(mask, (x, y), r, 255, -1)
    path = tmp_path / "a_dots.png"
    cv2.imwrite(str(path), mask)
    assert len(annotations.read_dot_mask(path)) == 60 + 2 + 2 + 2 + 3
    # radius 1: 8 single discs, 12 triangles of touching ones
    mask = np.zeros((200, 200), np.uint8)
    spots = [(x, y) for y in range(10, 190, 18) for x in range(10, 190, 18)]
    for x, y in spots[:8]:
        cv2.circle(mask, (x, y), 1, 255, -1)
    for x, y in spots[8:20]:
        for dx, dy in ((0, 0), (2, 0), (1, 2)):
            cv2.circle(mask, (x + dx, y + dy), 1, 255, -1)
    cv2.imwrite(str(path), mask)
    assert len(annotations.read_dot_mask(path)) == 8 + 3 * 12


def test_even_sided_dots_and_one_cut_by_the_edge_stay_one_cell_each(tmp_path):
    """Dots of an even-sided brush (2x2 squares, 4 px discs around a pixel corner) are shallower
    than round ones of their area: with one dot cut in half by the image's edge beside them they
    were read as 2-3 cells each (a first version of the shape rule); one cell each, as the area
    rule read them."""
    path = tmp_path / "a_dots.png"
    for brush in ("square", "disc4"):
        mask = np.zeros((260, 260), np.uint8)
        for y in range(20, 240, 24):
            for x in range(20, 240, 24):
                if brush == "square":
                    mask[y:y + 2, x:x + 2] = 255
                else:
                    yy, xx = np.mgrid[-2:2, -2:2]
                    inside = (xx + 0.5) ** 2 + (yy + 0.5) ** 2 <= 4
                    mask[y + yy[inside], x + xx[inside]] = 255
        mask[0, 5:7] = 255                                 # one cut by the top edge
        cv2.imwrite(str(path), mask)
        assert len(annotations.read_dot_mask(path)) == 100 + 1, brush


def test_a_dot_mask_of_filled_regions_is_refused(tmp_path):
    path = tmp_path / "a_dots.png"
    for solid in (np.full((160, 160), 255, np.uint8),               # the probe's maskfull
                  255 - _dots_on_black(160)):                     # an inverted mask
        cv2.imwrite(str(path), solid)
        with pytest.raises(DatasetError, match=f"the dot mask {re.escape(str(path))} marks "
                                               f"(100|99)% of its pixels \\(is it inverted"):
            annotations.read_dot_mask(path, (160, 160, 3))
    mask = np.zeros((60, 60), np.uint8)                            # dots and one filled cell
    for x, y in [(5, 5), (50, 8), (8, 50)]:
        _disc(mask, x, y)
    _disc(mask, 30, 30, r=10)                                      # 317 px
    cv2.imwrite(str(path), mask)
    with pytest.raises(DatasetError, match="has a marked region of 317 px \\(21x21 px from x=20, "
                                           "y=20\\), far larger than its dots"):
        annotations.read_dot_mask(path)
    mask[20:41, 20:41] = 0                        # a row of 9 touching dots instead: 9 cells
    for x in range(10, 51, 5):
        _disc(mask, x, 30)
    assert cv2.connectedComponentsWithStats(mask)[2][1:, cv2.CC_STAT_AREA].max() == 117
    cv2.imwrite(str(path), mask)
    assert len(annotations.read_dot_mask(path)) == 3 + 9


def test_touching_discs_of_a_dense_mask_stay_counted(tmp_path):
    """Discs of radius 5 (81 px) touching in fours: blobs of ~320 px, beyond MASK_MAX_BLOB_AREA
    but a few of the mask's own dots, so each counts as its discs."""
    mask = np.zeros((120, 120), np.uint8)
    for x0 in (15, 75):
        for y0 in (15, 75):
            for dx, dy in ((0, 0), (9, 0), (0, 9), (9, 9)):
                _disc(mask, x0 + dx, y0 + dy, r=5)
    for x, y in ((60, 10), (10, 60), (110, 60), (60, 110), (60, 60)):
        _disc(mask, x, y, r=5)
    areas = cv2.connectedComponentsWithStats(mask)[2][1:, cv2.CC_STAT_AREA]
    assert areas.max() > config.MASK_MAX_BLOB_AREA
    path = tmp_path / "b_dots.png"
    cv2.imwrite(str(path), mask)
    assert len(annotations.read_dot_mask(path)) == 4 * 4 + 5


def test_a_jpeg_dot_mask_loses_its_compression_noise(tmp_path):
    mask = np.zeros((64, 64, 3), np.uint8)
    dots = [(10, 10), (40, 12), (20, 50), (50, 45)]
    for x, y in dots:
        mask[y - 1:y + 2, x - 1:x + 2] = (0, 0, 255)     # 3x3 red marks
    path = tmp_path / "a_dots.jpg"
    cv2.imwrite(str(path), mask, [cv2.IMWRITE_JPEG_QUALITY, 75])
    assert (cv2.imread(str(path)).max(axis=2) > 0).sum() > 4 * 9     # noise around the marks
    got = annotations.read_dot_mask(path)
    assert sorted(map(tuple, np.round(got).astype(int))) == sorted(dots)


# --- CSV: ImageJ's Results table ---------------------------------------------------------------------

def test_imagej_results_table(tmp_path):
    p = tmp_path / "a.csv"
    p.write_text(" ,X,Y,Area\n1,12,7,0\n2,3.5,40,0\n")   # Analyze > Measure on a multi-point
    np.testing.assert_allclose(annotations.read_centres_csv(p), [[12, 7], [3.5, 40]])


def test_csv_with_spaces_after_its_commas_and_an_empty_csv(tmp_path):
    """'"x", "y"' with a space after the comma is the header x,y; an empty file is named as
    empty, with the header an image without cells needs."""
    p = tmp_path / "a.csv"
    p.write_text('"x", "y"\n12, 7\n 3.5, 40\n')
    np.testing.assert_allclose(annotations.read_centres_csv(p), [[12, 7], [3.5, 40]])
    p.write_text("")
    with pytest.raises(DatasetError, match=f"{re.escape(str(p))} is empty; .* header line x,y "
                                           r"\(an image without cells: that line alone\)"):
        annotations.read_centres_csv(p)
    p.write_text("x,y\n")                                           # that line alone: 0 cells
    assert annotations.read_centres_csv(p).shape == (0, 2)


def test_csv_of_a_comma_decimal_locale_and_of_tabs(tmp_path):
    """A spreadsheet saved where the decimal mark is a comma separates with semicolons ("x;y",
    "12,5;7"); ImageJ's Results saved as text separate with tabs: both read as the plain CSV."""
    p = tmp_path / "a.csv"
    p.write_bytes("\ufeffX;Y;Area\r\n12,5;7;0\r\n3;40,25;0\r\n".encode("utf-8"))
    np.testing.assert_allclose(annotations.read_centres_csv(p), [[12.5, 7], [3, 40.25]])
    p.write_text(" \tX\tY\tMean\n1\t12\t7\t3.5\n")
    np.testing.assert_allclose(annotations.read_centres_csv(p), [[12, 7]])
    p.write_text("x;y\n1;2;3;4\n")                    # a row of other columns: still x and y
    np.testing.assert_allclose(annotations.read_centres_csv(p), [[1, 2]])
    p.write_text("x\ty\n3,5\t3,0\n12\t7,25\n")          # tabs and decimal commas (was refused)
    np.testing.assert_allclose(annotations.read_centres_csv(p), [[3.5, 3], [12, 7.25]])
    p.write_text("x\ty\n0,500\t12\n-0,125\t3\n")        # a leading 0: no thousands there
    np.testing.assert_allclose(annotations.read_centres_csv(p), [[0.5, 12], [-0.125, 3]])


@pytest.mark.parametrize("text, why", [
    ('x,y\n"3,5","3,0"\n', "writes a comma inside its quoted coordinates ('3,5') in a "
                            "comma-separated file"),
    ("x\ty\n1,5\t2.5\n", "writes both points and commas in its coordinates ('1,5')"),
    ("x\ty\n1,234\t12\n", "writes '1,234', which may be a decimal comma or a thousands "
                            "separator (1.234 or 1234)"),
])
def test_csv_commas_that_could_be_read_two_ways_are_refused(tmp_path, text, why):
    """A comma that is not the separator was read as a decimal mark in ;-separated files only:
    elsewhere the line was refused as not numeric, quoted with its tabs shown as commas. Where
    it can only be a decimal mark it is read; where it may as well separate thousands, refused."""
    p = tmp_path / "a.csv"
    p.write_text(text)
    with pytest.raises(DatasetError) as refused:
        annotations.read_centres_csv(p)
    assert str(refused.value) == (f"{p} {why}: save the coordinates with a point as decimal mark "
                                  f"and no thousands separator (or as ;-separated with decimal "
                                  f"commas)")


def test_a_line_without_numbers_is_quoted_as_written(tmp_path):
    p = tmp_path / "a.csv"
    p.write_text("x\ty\n1\t2\n\n3\tthree\n")
    with pytest.raises(DatasetError) as refused:
        annotations.read_centres_csv(p)
    assert str(refused.value) == (f"{p}, line 4: '3\\tthree' has no numeric x,y values; fix or "
                                  f"delete that line")


def test_csv_commas_that_may_separate_thousands_of_a_three_digit_number_are_refused(tmp_path):
    p = tmp_path / "a.csv"
    p.write_text("x\ty\n123,456\t12\n")
    with pytest.raises(DatasetError, match=re.escape(
            f"{p} writes '123,456', which may be a decimal comma or a thousands separator "
            f"(123.456 or 123456)")):
        annotations.read_centres_csv(p)


def test_a_semicolon_in_a_comma_separated_header_does_not_separate(tmp_path):
    """The header line's commas make it comma-separated, whatever a column's name holds."""
    p = tmp_path / "a.csv"
    p.write_text("x,y,note (cell;nucleus)\n12,7,a\n3.5,40,b\n")
    np.testing.assert_allclose(annotations.read_centres_csv(p), [[12, 7], [3.5, 40]])


@pytest.mark.parametrize("value", ["nan", "inf", "-Infinity"])
def test_csv_coordinates_that_are_not_finite_are_refused_by_line(tmp_path, value):
    p = tmp_path / "a.csv"
    p.write_text(f"x,y\n1,2\n{value},3\n")
    with pytest.raises(DatasetError) as refused:
        annotations.read_centres_csv(p)
    assert str(refused.value) == (f"{p}, line 3: '{value},3' has no numeric x,y values; fix or "
                                  f"delete that line")


def test_a_csv_marker_needs_a_class_column_and_matches_it_without_spaces(tmp_path):
    """A marker chooses a table's rows by their class (spaces around it not counted); a table
    without a class column cannot be chosen from: refused, naming the columns looked for."""
    p = tmp_path / "a.csv"
    p.write_text("x,y,Class\n12,7,Positive \n3,4,Negative\n5,6, Positive\n")
    np.testing.assert_allclose(annotations.read_centres_csv(p, "Positive"), [[12, 7], [5, 6]])
    p.write_text("x,y\n12,7\n")
    with pytest.raises(DatasetError) as refused:
        annotations.read_centres_csv(p, "Positive")
    assert str(refused.value) == (
        f"{p} has no class column (Classification, Class, class, label, main_classification) "
        f"for the marker 'Positive' to choose its rows by; leave the marker out (every row counts), or export "
        f"the table with the cells' classes")


def test_qupath_measurement_table_in_pixels_reads_and_in_microns_is_refused(tmp_path):
    """QuPath's detection measurements exported as a table (tab-separated, .tsv): centroids in
    px are its continuous coordinates (pixel centres at k + 0.5, as in its GeoJSON); in µm they
    need a pixel size pycount does not have: refused, naming the way out."""
    p = tmp_path / "img.tsv"
    p.write_text("Image\tName\tClass\tCentroid X px\tCentroid Y px\n"
                 "img.tif\t\tPositive\t12.5\t7.5\nimg.tif\t\tNegative\t3.0\t40.0\n")
    np.testing.assert_allclose(annotations.read_centres_csv(p), [[12, 7], [2.5, 39.5]])
    _img(tmp_path / "img.tif")
    assert layout.folder_pairs(tmp_path)["img"][1:] == (p, "CSV")
    p.write_text("Image\tCentroid X µm\tCentroid Y µm\nimg.tif\t1.2\t3.4\n")
    with pytest.raises(DatasetError, match="gives QuPath's centroids in µm, not pixels"):
        annotations.read_centres_csv(p)


def _imagej_roi(kind: int, xs, ys, counters=None, floats=None) -> bytes:
    """An ROI as ImageJ's RoiEncoder writes it (version 228): the 64-byte header, the integer
    coordinates relative to the bounds, then (sub-pixel) the absolute float coordinates, then
    header 2 and (multi-point counters) one int per point, counter in the low byte."""
    import struct
    xs, ys = np.asarray(xs, int), np.asarray(ys, int)
    n, left, top = len(xs), int(xs.min()), int(ys.min())
    body = struct.pack(f">{n}h", *(xs - left)) + struct.pack(f">{n}h", *(ys - top))
    options = 0
    if floats is not None:
        options |= 128
        body += struct.pack(f">{n}f", *floats[0]) + struct.pack(f">{n}f", *floats[1])
    header2 = 64 + len(body)
    extra = b""
    if counters is not None:
        h2 = bytearray(64)
        h2[48:52] = struct.pack(">i", header2 + 64)
        extra = bytes(h2) + struct.pack(f">{n}i", *counters)
    else:
        extra = bytes(64)
    head = (b"Iout" + struct.pack(">hBB", 228, kind, 0)
            + struct.pack(">hhhhH", top, left, int(ys.max()) + 1, int(xs.max()) + 1, n)
            + bytes(16) + struct.pack(">hi", 0, 0) + bytes(8) + struct.pack(">hh", 0, options)
            + bytes(8) + struct.pack(">i", header2))
    assert len(head) == 64
    return head + body + extra


def test_imagej_roi_points_counters_and_outlines(tmp_path):
    """ImageJ/Fiji selections: a multi-point ROI (its counters chosen by a marker number), an
    ROI Manager set (.zip) of cell outlines from a segmentation (one cell each, at the area
    centroid, -0.5 px), a rectangle at its centre; a line is refused by name."""
    import zipfile
    p = tmp_path / "img.roi"
    p.write_bytes(_imagej_roi(10, [12, 3, 30], [7, 40, 2], counters=[0, 1, 1]))
    np.testing.assert_array_equal(annotations.read_imagej_roi(p), [[12, 7], [3, 40], [30, 2]])
    np.testing.assert_array_equal(annotations.read_imagej_roi(p, marker="1"), [[3, 40], [30, 2]])
    with pytest.raises(DatasetError, match="'Positive' is not a counter number"):
        annotations.read_imagej_roi(p, marker="Positive")
    square = _imagej_roi(0, [10, 20, 20, 10], [10, 10, 20, 20])          # a 10 px square
    fine = _imagej_roi(7, [30, 34, 34, 30], [5, 5, 9, 9],
                       floats=([30.0, 34.5, 34.5, 30.0], [5.0, 5.0, 9.0, 9.0]))
    rect = _imagej_roi(1, [40, 45], [40, 47])                              # bounds 40..46, 40..48
    with zipfile.ZipFile(tmp_path / "img2.zip", "w") as z:
        for k, roi in enumerate((square, fine, rect)):
            z.writestr(f"000{k}-cell.roi", roi)
    np.testing.assert_allclose(annotations.read_imagej_roi(tmp_path / "img2.zip"),
                               [[14.5, 14.5], [31.75, 6.5], [42.5, 43.5]])
    _img(tmp_path / "img.png", (60, 60, 3))
    _img(tmp_path / "img2.png", (60, 60, 3))
    assert {k: v[2] for k, v in layout.folder_pairs(tmp_path).items()} == {
        "img": "ImageJ ROI", "img2": "ImageJ ROI"}
    assert [s.count for s in readers.read("folder", tmp_path)] == [3, 3]
    p.write_bytes(_imagej_roi(5, [1, 9], [1, 9]))                          # a polyline
    with pytest.raises(DatasetError, match="img.roi is an ImageJ ROI of type 5 .*, not a cell"):
        annotations.read_imagej_roi(p)
    p.write_bytes(b"PK\x03\x04 not a roi")
    with pytest.raises(DatasetError, match="no 'Iout' header"):
        annotations.read_imagej_roi(p)


def test_imagej_roi_sub_pixel_vertices_are_read_from_version_222(tmp_path):
    """ImageJ writes sub-pixel vertices from ROI version 222 on; an older file's flag is not
    read, its integer vertices are."""
    p = tmp_path / "img.roi"
    roi = bytearray(_imagej_roi(7, [30, 34, 34, 30], [5, 5, 9, 9],
                                floats=([30.0, 34.5, 34.5, 30.0], [5.0, 5.0, 9.0, 9.0])))
    roi[4:6] = struct.pack(">h", 222)
    p.write_bytes(bytes(roi))
    np.testing.assert_allclose(annotations.read_imagej_roi(p), [[31.75, 6.5]])
    roi[4:6] = struct.pack(">h", 221)
    p.write_bytes(bytes(roi))
    np.testing.assert_allclose(annotations.read_imagej_roi(p), [[31.5, 6.5]])


def test_imagej_multi_point_counters_of_a_stack_are_chosen_by_their_low_byte(tmp_path):
    """A point set on a stack keeps its slice above the counter's byte (position << 8)."""
    p = tmp_path / "img.roi"
    p.write_bytes(_imagej_roi(10, [12, 3, 30], [7, 40, 2],
                              counters=[(1 << 8) | 0, (2 << 8) | 1, (3 << 8) | 1]))
    np.testing.assert_array_equal(annotations.read_imagej_roi(p, marker="1"), [[3, 40], [30, 2]])
    np.testing.assert_array_equal(annotations.read_imagej_roi(p, marker="0"), [[12, 7]])


def test_an_outline_without_area_is_one_cell_at_its_vertices_mean(tmp_path):
    """A polygon along a line (two clicks, or collinear ones) has no area centroid: the mean
    of its vertices, not NaN."""
    p = tmp_path / "img.json"
    p.write_text(json.dumps({"shapes": [{"label": "c", "points": [[10, 10], [20, 10], [30, 10]],
                                         "shape_type": "polygon"}]}))
    np.testing.assert_allclose(annotations.read_qupath_geojson(p), [[19.5, 9.5]])
    q = tmp_path / "line.roi"
    q.write_bytes(_imagej_roi(0, [10, 20], [4, 4]))
    np.testing.assert_allclose(annotations.read_imagej_roi(q), [[14.5, 3.5]])


def test_a_composite_imagej_roi_is_refused_not_read_at_its_bounds_centre(tmp_path):
    """A composite ROI (shapes combined, type rectangle with a shape array) is no one cell."""
    roi = bytearray(_imagej_roi(1, [40, 45], [40, 47]))
    roi[36:40] = struct.pack(">i", 12)                            # its shape array's length
    p = tmp_path / "img.roi"
    p.write_bytes(bytes(roi))
    with pytest.raises(DatasetError) as err:
        annotations.read_imagej_roi(p)
    assert str(err.value) == (f"{p} is a composite ROI; save its parts as ROIs of their own (one "
                              f"per cell)")


def test_labelme_shapes_beside_their_image(tmp_path):
    """A LabelMe file (NAME.json, shapes): points, a polygon at its area centroid, a rectangle
    and a circle at their centres, -0.5 px (its coordinates are continuous); a label chooses
    shapes as a marker; a line is refused by name."""
    import json
    shapes = [{"label": "pos", "points": [[10.5, 12.5]], "shape_type": "point"},
              {"label": "neg", "points": [[20, 20], [30, 20], [30, 30], [20, 30]],
               "shape_type": "polygon"},
              {"label": "neg", "points": [[40, 40], [50, 44]], "shape_type": "rectangle"},
              {"label": "pos", "points": [[5.5, 50.5], [8.5, 50.5]], "shape_type": "circle"}]
    p = tmp_path / "img.json"
    p.write_text(json.dumps({"version": "5.2.1", "shapes": shapes, "imagePath": "img.png",
                             "imageHeight": 60, "imageWidth": 60}))
    np.testing.assert_allclose(annotations.read_qupath_geojson(p),
                               [[10, 12], [24.5, 24.5], [44.5, 41.5], [5, 50]])
    np.testing.assert_allclose(annotations.read_qupath_geojson(p, "pos"), [[10, 12], [5, 50]])
    _img(tmp_path / "img.png", (60, 60, 3))
    assert [s.count for s in readers.read("folder", tmp_path)] == [4]
    shapes.append({"label": "x", "points": [[1, 1], [9, 9]], "shape_type": "line"})
    p.write_text(json.dumps({"shapes": shapes}))
    with pytest.raises(DatasetError, match="shape 5 is a LabelMe line, not a cell"):
        annotations.read_qupath_geojson(p)


def test_pascal_voc_boxes_count_one_cell_each(tmp_path):
    """A Pascal VOC file (LabelImg, CVAT's VOC export; the BCCD blood cell set) beside its image:
    one cell per object at its box's centre, 1-based made 0-based; a marker chooses objects by
    name, and a name no object has is refused naming those there are."""
    def obj(name, box):
        return (f"<object><name>{name}</name><bndbox><xmin>{box[0]}</xmin><ymin>{box[1]}</ymin>"
                f"<xmax>{box[2]}</xmax><ymax>{box[3]}</ymax></bndbox></object>")
    p = tmp_path / "BloodImage_00001.xml"
    p.write_text("<annotation><folder>JPEGImages</folder><filename>BloodImage_00001.jpg</filename>"
                 "<size><width>60</width><height>50</height><depth>3</depth></size>"
                 + obj("RBC", (11, 21, 21, 31)) + obj("WBC", (31, 5, 51, 25))
                 + obj("RBC", (1, 1, 10, 10)) + "</annotation>")
    np.testing.assert_allclose(annotations.read_cellcounter_xml(p), [[15, 25], [40, 14], [4.5, 4.5]])
    np.testing.assert_allclose(annotations.read_cellcounter_xml(p, "WBC"), [[40, 14]])
    assert annotations.read_cellcounter_xml(p, "Platelets").shape == (0, 2)    # none here
    _img(tmp_path / "BloodImage_00001.jpg", (50, 60, 3))
    assert [s.count for s in readers.read("folder", tmp_path)] == [3]


def test_one_file_of_the_whole_sets_annotations_cvat_and_coco(tmp_path):
    """CVAT's "CVAT for images 1.1" export (annotations.xml: an <image name> per image, points,
    boxes, polygons, ellipses) and a COCO file (keypoints, boxes, polygons by category) beside the
    images: each image gets its own entries, -0.5 px (both tools' coordinates are continuous); a
    marker chooses a label; an image the file does not name has no annotation."""
    import json
    cvat, coco = tmp_path / "cvat", tmp_path / "coco"
    cvat.mkdir()
    coco.mkdir()
    for folder in (cvat, coco):
        for name in ("a.png", "b.png"):
            _img(folder / name, (60, 60, 3))
    (cvat / "annotations.xml").write_text(
        '<?xml version="1.0" encoding="utf-8"?><annotations><version>1.1</version>'
        '<image id="0" name="a.png" width="60" height="60">'
        '<points label="pos" points="10.5,12.5;20.5,22.5"/>'
        '<box label="neg" xtl="30" ytl="30" xbr="40" ybr="36"/></image>'
        '<image id="1" name="sub/b.png" width="60" height="60">'
        '<polygon label="neg" points="0,0;10,0;10,10;0,10"/>'
        '<ellipse label="pos" cx="50.5" cy="5.5" rx="3" ry="3"/>'
        '<polyline label="edge" points="1,1;5,5"/></image>'
        '<image id="2" name="c.png" width="60" height="60"/></annotations>')
    got = {s.id: s.centres.tolist() for s in readers.read("folder", cvat)}
    assert got == {"a": [[10, 12], [20, 22], [34.5, 32.5]], "b": [[4.5, 4.5], [50, 5]]}
    assert {k: v[2] for k, v in layout.folder_pairs(cvat).items()} == {"a": "CVAT XML",
                                                                        "b": "CVAT XML"}
    assert [s.count for s in readers.read("folder", cvat, marker="pos")] == [2, 1]
    with pytest.raises(DatasetError, match="has no label 'Ki67' \\(its labels: neg, pos\\)"):
        readers.read("folder", cvat, marker="Ki67")
    (coco / "instances_default.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.png"}, {"id": 2, "file_name": "b.png"}],
        "categories": [{"id": 1, "name": "cell"}, {"id": 2, "name": "other"}],
        "annotations": [
            {"image_id": 1, "category_id": 1, "keypoints": [10.5, 12.5, 2, 0, 0, 0, 3.5, 4.5, 1]},
            {"image_id": 1, "category_id": 2, "bbox": [30, 30, 10, 6]},
            {"image_id": 2, "category_id": 1, "segmentation": [[0, 0, 10, 0, 10, 10, 0, 10]]}]}))
    got = {s.id: s.centres.tolist() for s in readers.read("folder", coco)}
    assert got == {"a": [[10, 12], [3, 4], [34.5, 32.5]], "b": [[4.5, 4.5]]}
    assert [s.count for s in readers.read("folder", coco, marker="cell")] == [2, 1]
    # UTF-16 (a Windows tool's "Unicode") reads; bytes of a legacy encoding are named, not
    # passed over (the file was then "annotations.json has no image of the same name";
    # helper-46), in the COCO file and in CVAT's annotations.xml
    doc = (coco / "instances_default.json").read_text()
    (coco / "instances_default.json").write_bytes(doc.encode("utf-16"))
    assert {s.id: s.centres.tolist() for s in readers.read("folder", coco)} == got
    (coco / "instances_default.json").write_bytes(
        doc.replace('"other"', '"autre \u00e9pith\u00e9lium"').encode("cp1252"))
    with pytest.raises(DatasetError, match=re.escape(
            f"{coco / 'instances_default.json'}: byte ") + r"\d+ is not text in UTF-8 or UTF-16"):
        layout.folder_pairs(coco)
    (coco / "instances_default.json").write_text(doc)
    text = (cvat / "annotations.xml").read_text()
    (cvat / "annotations.xml").write_bytes(text.replace('label="edge"', 'label="\u00e9"')
                                           .encode("cp1252"))
    with pytest.raises(DatasetError, match=re.escape(
            f"{cvat / 'annotations.xml'}: cannot read it as XML (not well-formed")):
        layout.folder_pairs(cvat)
    (cvat / "annotations.xml").write_text(text)
    _img(coco / "c.png", (60, 60, 3))
    with pytest.raises(DatasetError, match="c.png has no annotation"):
        layout.folder_pairs(coco)
    text = (cvat / "annotations.xml").read_text()
    (cvat / "annotations.xml").write_text(text.replace(
        '<image id="2"', '<image id="3" name="a.png"><mask label="pos" rle="1, 2, 2, 1" left="41" '
        'top="51" width="3" height="2"/></image><image id="2"').replace(
        '<image id="0" name="a.png"', '<image id="0" name="x.png"'))
    # a brush mask, run lengths row by row over its box (CVAT 2's export), is a cell at the
    # centroid of its pixels: this 3x2 box at (41, 51) marks its 2nd, 3rd and 6th pixel
    got = {s.id: s.centres.tolist() for s in readers.read("folder", cvat)}
    assert got["a"] == [[41 + 5 / 3, 51 + 1 / 3]]
    (cvat / "annotations.xml").write_text((cvat / "annotations.xml").read_text().replace(
        'rle="1, 2, 2, 1"', 'rle="1, 2, 2"'))
    with pytest.raises(DatasetError, match=re.escape(
            "has runs that do not fill its box (run lengths summing to 5 for a mask of 6 pixels)")):
        layout.folder_pairs(cvat)
    (cvat / "annotations.xml").write_text(text)
    # CVAT's export with the images: annotations.xml beside images/
    (cvat / "images").mkdir()
    for name in ("a.png", "b.png"):
        (cvat / name).rename(cvat / "images" / name)
    assert {k: v[0].parent.name for k, v in layout.folder_pairs(cvat).items()} == {
        "a": "images", "b": "images"}


def test_marks_made_on_an_image_of_another_size_are_refused(tmp_path):
    """LabelMe, Pascal VOC, CVAT and COCO record the size of the image annotated: an image
    resized or replaced since (every count kept, not one mark in its place), or shown turned by
    its EXIF orientation (the size swapped), is refused naming both files and the fix; a size
    of 0 (not recorded) and the image's own size pass."""
    import json
    shapes = [{"label": "c", "points": [[10.5, 12.5]], "shape_type": "point"}]

    def labelme(folder, w, h, shape, suffix=".png"):
        folder.mkdir()
        _img(folder / f"img{suffix}", shape)
        (folder / "img.json").write_text(json.dumps({"shapes": shapes, "imagePath": "img.png",
                                                     "imageWidth": w, "imageHeight": h}))
        return folder
    ok = labelme(tmp_path / "ok", 80, 60, (60, 80, 3))
    assert [s.count for s in readers.read("folder", ok)] == [1]
    big = labelme(tmp_path / "big", 80, 60, (120, 160, 3))
    with pytest.raises(DatasetError, match=re.escape(
            f"{big / 'img.json'} was made on a 80x60 px image (its imageWidth and imageHeight), "
            f"but {big / 'img.png'} is 160x120 px: it was resized, cropped or replaced after "
            f"annotating")):
        readers.read("folder", big)
    turned = labelme(tmp_path / "turned", 60, 80, (60, 80, 3), ".jpg")
    with pytest.raises(DatasetError, match="showed the image turned \\(a JPEG's EXIF orient"):
        readers.read("folder", turned)
    swapped = labelme(tmp_path / "swapped", 60, 80, (60, 80, 3))   # a PNG has no EXIF turn
    with pytest.raises(DatasetError, match="80x60 px: it was resized, cropped or replaced"):
        readers.read("folder", swapped)
    unknown = labelme(tmp_path / "unknown", 0, 0, (60, 80, 3))
    assert [s.count for s in readers.read("folder", unknown)] == [1]
    decimal = labelme(tmp_path / "decimal", "160.0", "120.0", (60, 80, 3))
    with pytest.raises(DatasetError, match="made on a 160x120 px image"):
        readers.read("folder", decimal)

    voc = tmp_path / "voc"
    voc.mkdir()
    _img(voc / "b.jpg", (50, 60, 3))
    (voc / "b.xml").write_text("<annotation><filename>b.jpg</filename><size><width>120</width>"
                               "<height>100</height></size><object><name>c</name><bndbox>"
                               "<xmin>1</xmin><ymin>1</ymin><xmax>9</xmax><ymax>9</ymax></bndbox>"
                               "</object></annotation>")
    with pytest.raises(DatasetError, match="made on a 120x100 px image \\(its <size> width"):
        readers.read("folder", voc)

    cvat = tmp_path / "cvat"
    cvat.mkdir()
    _img(cvat / "a.png", (60, 60, 3))
    (cvat / "annotations.xml").write_text(
        '<annotations><image id="0" name="a.png" width="30" height="30">'
        '<points label="c" points="10.5,12.5"/></image></annotations>')
    with pytest.raises(DatasetError, match="its <image> width and height for a.png"):
        readers.read("folder", cvat)

    coco = tmp_path / "coco"
    coco.mkdir()
    _img(coco / "a.png", (60, 60, 3))
    doc = {"images": [{"id": 1, "file_name": "a.png", "width": 60, "height": 60}],
           "categories": [{"id": 1, "name": "cell"}],
           "annotations": [{"image_id": 1, "category_id": 1, "bbox": [30, 30, 10, 6]}]}
    (coco / "coco.json").write_text(json.dumps(doc))
    assert [s.count for s in readers.read("folder", coco)] == [1]
    doc["images"][0]["width"] = 600
    (coco / "coco.json").write_text(json.dumps(doc))
    with pytest.raises(DatasetError, match="made on a 600x60 px image \\(its width and height "
                                           "for a.png\\)"):
        readers.read("folder", coco)


def test_a_jpeg_annotated_at_another_size_not_swapped_is_named_resized(tmp_path):
    """Only sides swapped are a JPEG shown turned by its EXIF orientation; a JPEG of other
    sides was resized or replaced."""
    _img(tmp_path / "img.jpg", (120, 160, 3))
    (tmp_path / "img.json").write_text(json.dumps({
        "shapes": [{"label": "c", "points": [[10.5, 12.5]], "shape_type": "point"}],
        "imagePath": "img.jpg", "imageWidth": 80, "imageHeight": 60}))
    with pytest.raises(DatasetError, match=re.escape(
            f"{tmp_path / 'img.jpg'} is 160x120 px: it was resized, cropped or replaced after "
            f"annotating")):
        readers.read("folder", tmp_path)


# --- the folder layout -------------------------------------------------------------------------------

def _img(path, shape=(40, 50, 3), dtype=np.uint8):
    data = (np.arange(np.prod(shape)) % 200).reshape(shape).astype(dtype)
    if path.suffix == ".tif":
        tifffile.imwrite(path, data)
    else:
        cv2.imwrite(str(path), data)


def _napari_points_csv(path, rows_cols, properties=None):
    """A points layer saved the way napari's built-in writer saves it (napari_write_points): the
    header index, axis-0, axis-1 (then the properties' names), every row through one numpy table
    (so the index is written as a float, or every value as numpy's string of it when a property
    is text)."""
    data = np.asarray(rows_cols, float)
    columns = ["index"] + [f"axis-{n}" for n in range(data.shape[1])] + list(properties or {})
    table = np.concatenate([np.arange(len(data))[:, None], data,
                            *[np.asarray(v)[:, None] for v in (properties or {}).values()]], axis=1)
    with open(path, "w", newline="") as f:
        w = csv.writer(f, delimiter=",", quotechar='"', quoting=csv.QUOTE_MINIMAL)
        w.writerow(columns)
        w.writerows(table)


def test_napari_points_csv_reads_axis_1_as_x_and_axis_0_as_y(tmp_path):
    centres = np.array([[3.25, 7.5], [29.0, 19.0], [0.0, 0.0]])          # x, y
    _napari_points_csv(tmp_path / "plain.csv", centres[:, ::-1])         # napari: row, column
    assert (tmp_path / "plain.csv").read_text().splitlines()[1] == "0.0,7.5,3.25"
    np.testing.assert_array_equal(annotations.read_centres_csv(tmp_path / "plain.csv"), centres)
    _napari_points_csv(tmp_path / "typed.csv", centres[:, ::-1],
                       {"label": ["tumour", "stroma", "tumour"], "score": [0.5, 1.0, 2.0]})
    assert (tmp_path / "typed.csv").read_text().splitlines()[:2] == [
        "index,axis-0,axis-1,label,score", "0,7.5,3.25,tumour,0.5"]
    np.testing.assert_array_equal(annotations.read_centres_csv(tmp_path / "typed.csv"), centres)
    # in a folder, beside its image, as any CSV
    assert cv2.imwrite(str(tmp_path / "img.png"), np.zeros((40, 50, 3), np.uint8))
    (tmp_path / "plain.csv").rename(tmp_path / "img.csv")
    (tmp_path / "typed.csv").unlink()
    (s,) = readers.read_generic(tmp_path)
    np.testing.assert_array_equal(s.centres, centres)


def test_napari_points_of_a_stack_are_refused_by_name(tmp_path):
    _napari_points_csv(tmp_path / "stack.csv", [[0, 7.5, 3.25], [2, 19.0, 29.0]])   # z, y, x
    with pytest.raises(DatasetError, match=r"stack\.csv holds the points of a napari layer with "
                                           r"more than two axes.*save the points of one 2-D"):
        annotations.read_centres_csv(tmp_path / "stack.csv")


def test_folder_pairs_each_format_by_name_and_reads_exact_counts(tmp_path):
    _img(tmp_path / "a.png")                                   # CSV
    (tmp_path / "a.csv").write_text("x,y\n1,2\n3,4\n")
    _img(tmp_path / "b.tif", (40, 50), np.uint16)              # 16-bit grey, Cell Counter
    (tmp_path / "CellCounter_b.xml").write_text(cellcounter_xml({1: [(5, 5)], 2: [(6, 6)]}))
    _img(tmp_path / "c.jpg")                                   # QuPath
    (tmp_path / "c.geojson").write_text(qupath_geojson([point_feature(
        "MultiPoint", [[1.5 + k, 1.5] for k in range(4)])]))
    _img(tmp_path / "d.png", (40, 50, 4))                      # RGBA, dot mask
    mask = np.zeros((40, 50), np.uint8)
    mask[[1, 2, 3, 30, 39], [1, 2, 3, 40, 49]] = 255
    cv2.imwrite(str(tmp_path / "d_dots.png"), mask)
    _img(tmp_path / "007cell.png")                             # the VGG naming
    m7 = np.zeros((40, 50, 3), np.uint8)
    m7[5, 6] = (0, 0, 255)
    cv2.imwrite(str(tmp_path / "007dots.png"), m7)
    (tmp_path / "notes.txt").write_text("ignored")

    pairs = layout.folder_pairs(tmp_path)
    assert {k: (v[1].name, v[2]) for k, v in pairs.items()} == {
        "a": ("a.csv", "CSV"), "b": ("CellCounter_b.xml", "XML (Cell Counter, Pascal VOC or ImageScope)"),
        "c": ("c.geojson", "QuPath GeoJSON"), "d": ("d_dots.png", "dot mask"),
        "007cell": ("007dots.png", "dot mask")}
    samples = readers.read("folder", tmp_path)
    assert [(s.id, s.count) for s in samples] == [("007cell", 1), ("a", 2), ("b", 2), ("c", 4),
                                                  ("d", 5)]
    assert all(s.image.shape == (40, 50, 3) and s.image.dtype == np.uint8 for s in samples)
    assert [s.count for s in readers.read("folder", tmp_path, ["b"], marker="2")] == [1]
    assert readers.list_ids("folder", tmp_path) == ["007cell", "a", "b", "c", "d"]


def test_folder_of_images_and_annotations_kept_in_two_subfolders(tmp_path):
    """images/ + dots/ (or labels/, annotations/, ...): the images pair with the annotations of
    the other subfolder by name, a dot mask there also under its image's own name; a pycount.toml
    beside the subfolders does not make the folder flat."""
    (tmp_path / "images").mkdir()
    (tmp_path / "Dot-Masks").mkdir()
    (tmp_path / "pycount.toml").write_text("")
    _img(tmp_path / "images" / "001.png")
    mask = np.zeros((40, 50), np.uint8)
    mask[[1, 20, 39], [1, 25, 49]] = 255
    cv2.imwrite(str(tmp_path / "Dot-Masks" / "001.png"), mask)          # same name: a mask
    _img(tmp_path / "images" / "002.tif")
    (tmp_path / "Dot-Masks" / "002.csv").write_text("x,y\n1,2\n")
    _img(tmp_path / "images" / "003.jpg")
    cv2.imwrite(str(tmp_path / "Dot-Masks" / "003_dots.png"), mask[:, :])
    pairs = layout.folder_pairs(tmp_path)
    assert {k: (v[0].parent.name, v[1].name, v[2]) for k, v in pairs.items()} == {
        "001": ("images", "001.png", "dot mask"), "002": ("images", "002.csv", "CSV"),
        "003": ("images", "003_dots.png", "dot mask")}
    assert [(s.id, s.count) for s in readers.read("folder", tmp_path)] == [
        ("001", 3), ("002", 1), ("003", 3)]
    # the annotations' folder told by its content where its name says nothing
    (tmp_path / "Dot-Masks" / "001.png").unlink()
    (tmp_path / "Dot-Masks" / "003_dots.png").unlink()
    (tmp_path / "Dot-Masks" / "001.csv").write_text("x,y\n1,2\n")
    (tmp_path / "Dot-Masks" / "003.csv").write_text("x,y\n")
    (tmp_path / "Dot-Masks").rename(tmp_path / "exported")
    assert [v[1].parent.name for v in layout.folder_pairs(tmp_path).values()] == ["exported"] * 3
    _img(tmp_path / "images" / "004.png")
    with pytest.raises(DatasetError, match=f"{tmp_path / 'images' / '004.png'} has no annotation; "
                                           f"add one named after it to {tmp_path / 'exported'}"):
        layout.folder_pairs(tmp_path)


def test_public_releases_laid_out_as_they_ship(tmp_path):
    """Two public counting sets as their releases name their files: MBM (NAME_000.png with
    NAME_dots_000.png: "dots" in the middle of the name) and the adipocytes (images/X.jpeg with
    a JPEG centroid mask annotations/X.jpeg of the same name), each read to its exact count."""
    mbm, adi = tmp_path / "MBM_data", tmp_path / "adipocyte_data"
    mbm.mkdir()
    (adi / "images").mkdir(parents=True)
    (adi / "annotations").mkdir()
    rng = np.random.default_rng(0)
    counts = {}
    for n, name in enumerate(("BM_GRAZ_HE_0001_01_000", "BM_GRAZ_HE_0001_01_001", "0-11900_GTEX")):
        mask = np.zeros((150, 150), np.uint8)
        for y in range(8, 150, 17):
            for x in range(8, 150, 17 + n):
                mask[y + rng.integers(-3, 4), x + rng.integers(-3, 4)] = 255
        counts[name] = int((mask > 0).sum())
        if name.startswith("BM"):
            _img(mbm / f"{name}.png", (150, 150, 3))
            cv2.imwrite(str(mbm / f"{name[:-4]}_dots{name[-4:]}.png"), mask)
        else:
            _img(adi / "images" / f"{name}.jpeg", (150, 150, 3))
            cv2.imwrite(str(adi / "annotations" / f"{name}.jpeg"), mask)
    assert {s.id: s.count for s in readers.read("folder", mbm)} == {
        k: v for k, v in counts.items() if k.startswith("BM")}
    assert layout.folder_pairs(mbm)["BM_GRAZ_HE_0001_01_001"][1].name == \
        "BM_GRAZ_HE_0001_01_dots_001.png"
    assert {s.id: s.count for s in readers.read("folder", adi)} == {
        "0-11900_GTEX": counts["0-11900_GTEX"]}


def test_a_folder_whose_one_subfolder_holds_it_all_reads_as_that_subfolder(tmp_path):
    """An archive unpacked into a folder of its own (set/cells/...): the one subfolder that holds
    the images and their annotations is read; an images/ + dots/ pair inside it as well."""
    inner = tmp_path / "set" / "cells"
    inner.mkdir(parents=True)
    _img(inner / "a.png")
    (inner / "a.csv").write_text("x,y\n1,2\n")
    (tmp_path / "set" / "README.txt").write_text("not an image")
    assert layout.folder_pairs(tmp_path / "set")["a"][0] == inner / "a.png"
    (inner / "images").mkdir()
    (inner / "dots").mkdir()
    (inner / "a.png").rename(inner / "images" / "a.png")
    (inner / "a.csv").rename(inner / "dots" / "a.csv")
    assert layout.folder_pairs(tmp_path / "set")["a"][1] == inner / "dots" / "a.csv"


def test_subfolders_that_cannot_be_told_apart_are_named(tmp_path):
    for sub in ("a", "b", "c"):
        (tmp_path / sub).mkdir()
        _img(tmp_path / sub / "001.png")
    with pytest.raises(DatasetError, match=r"holds no images itself but 3 subfolders with images "
                                           r"or annotations \(a, b, c\)"):
        layout.folder_pairs(tmp_path)
    shutil.rmtree(tmp_path / "c")
    with pytest.raises(DatasetError, match=r"cannot tell which of its subfolders a/ and b/ holds "
                                           r"the annotations; rename that one to dots/"):
        layout.folder_pairs(tmp_path)
    (tmp_path / "b").rename(tmp_path / "labels")
    assert layout.folder_pairs(tmp_path)["001"][2] == "dot mask"


def test_an_annotation_named_after_the_images_whole_file_name_pairs(tmp_path):
    """img.tif.geojson, img.png.csv, CellCounter_img.jpg.xml (scripts that append a suffix to
    the image's file name): each pairs with its image; an image of that very stem still wins."""
    _img(tmp_path / "a.tif")
    (tmp_path / "a.tif.geojson").write_text(qupath_geojson([point_feature("Point", [1.5, 1.5])]))
    _img(tmp_path / "b.png")
    (tmp_path / "b.png.csv").write_text("x,y\n1,2\n3,4\n")
    _img(tmp_path / "c.jpg")
    (tmp_path / "CellCounter_c.jpg.xml").write_text(cellcounter_xml({1: [(5, 5)]}))
    pairs = layout.folder_pairs(tmp_path)
    assert {k: v[1].name for k, v in pairs.items()} == {
        "a": "a.tif.geojson", "b": "b.png.csv", "c": "CellCounter_c.jpg.xml"}
    assert [s.count for s in readers.read("folder", tmp_path)] == [1, 2, 1]
    _img(tmp_path / "b.png.tif")                    # an image named b.png: the CSV is its own
    (tmp_path / "b.csv").write_text("x,y\n1,1\n")
    assert layout.folder_pairs(tmp_path)["b.png"][1].name == "b.png.csv"


def test_an_annotation_named_after_an_image_name_in_capitals_pairs(tmp_path):
    """IMG1.PNG.csv: a camera's or Windows tool's capital suffix is the image's suffix too."""
    _img(tmp_path / "img1.PNG")
    (tmp_path / "img1.PNG.csv").write_text("x,y\n1,2\n")
    assert {k: v[1].name for k, v in layout.folder_pairs(tmp_path).items()} == {
        "img1": "img1.PNG.csv"}


def test_images_named_dots_and_cell_are_images_not_a_mask_of_one_another(tmp_path):
    """"dots" alone names no image (nothing is left when it is taken off): dots.png is an
    image with its own annotation, not the dot mask of cell.png (VGG's NNNdots/NNNcell)."""
    _annotated(tmp_path, ["dots", "cell"])
    assert {k: v[1].name for k, v in layout.folder_pairs(tmp_path).items()} == {
        "cell": "cell.csv", "dots": "dots.csv"}


def test_hidden_files_a_mac_leaves_beside_the_images_are_not_read(tmp_path):
    """macOS writes ._NAME (AppleDouble) beside each file on a shared drive: no image, no
    annotation, and no 'image without annotation'."""
    _annotated(tmp_path, ["img"])
    for name in ("._img.png", "._img.csv"):
        (tmp_path / name).write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X" + bytes(40))
    assert {k: (v[0].name, v[1].name) for k, v in layout.folder_pairs(tmp_path).items()} == {
        "img": ("img.png", "img.csv")}


def test_folder_names_the_image_without_annotation(tmp_path):
    _img(tmp_path / "a.png")
    (tmp_path / "a.csv").write_text("x,y\n1,2\n")
    _img(tmp_path / "lonely.png")
    with pytest.raises(DatasetError, match=f"{tmp_path / 'lonely.png'} has no annotation; add one "
                                           "named after it: lonely.csv"):
        layout.folder_pairs(tmp_path)


def test_folder_names_an_orphan_or_a_second_annotation(tmp_path):
    _img(tmp_path / "a.png")
    (tmp_path / "a.csv").write_text("x,y\n1,2\n")
    (tmp_path / "b.xml").write_text(cellcounter_xml({1: []}))
    with pytest.raises(DatasetError, match=f"{tmp_path / 'b.xml'} \\(XML \\(Cell Counter, Pascal "
                                           "VOC or ImageScope\\)\\) has no "
                                           "image of the same name"):
        layout.folder_pairs(tmp_path)
    (tmp_path / "b.xml").rename(tmp_path / "a.xml")
    with pytest.raises(DatasetError, match=f"{tmp_path / 'a.png'} has 2 annotations"):
        layout.folder_pairs(tmp_path)


@pytest.mark.parametrize("broken", ["img9.png", "img9.csv"])
def test_folder_names_a_broken_link(tmp_path, broken):
    for name in ("a.png", "img9.png"):
        _img(tmp_path / name)
    for name in ("a.csv", "img9.csv"):
        (tmp_path / name).write_text("x,y\n1,2\n")
    target = tmp_path / "moved" / broken
    (tmp_path / broken).unlink()
    (tmp_path / broken).symlink_to(target)
    with pytest.raises(DatasetError) as err:
        layout.folder_pairs(tmp_path)
    assert str(err.value) == (f"{tmp_path / broken} is a broken link (to {target}, which does not "
                              "exist); restore the file it points to, or remove the link")


def test_folder_names_an_image_in_an_unsupported_format(tmp_path):
    from PIL import Image
    _img(tmp_path / "a.png")
    (tmp_path / "a.csv").write_text("x,y\n1,2\n")
    Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(tmp_path / "b.gif")
    (tmp_path / "b.csv").write_text("x,y\n1,2\n")
    with pytest.raises(DatasetError) as err:
        layout.folder_pairs(tmp_path)
    assert str(err.value) == (f"{tmp_path / 'b.csv'} (CSV) has no image of the same name in "
                              f"{tmp_path}: b.gif is not in a supported format (PNG, JPEG, TIFF, "
                              "BMP and PGM/PPM); convert it to PNG or TIFF")


def test_folder_names_two_images_of_the_same_name(tmp_path):
    _img(tmp_path / "a.png")
    _img(tmp_path / "a.jpg")
    (tmp_path / "a.csv").write_text("x,y\n1,2\n")
    with pytest.raises(DatasetError) as err:
        layout.folder_pairs(tmp_path)
    assert str(err.value) == (f"{tmp_path / 'a.jpg'} and {tmp_path / 'a.png'} are two images of "
                              "the same name 'a'; keep one of them (or rename the other)")
    (tmp_path / "a.jpg").rename(tmp_path / "b.jpg")
    (tmp_path / "b.csv").write_text("x,y\n1,2\n")
    assert sorted(layout.folder_pairs(tmp_path)) == ["a", "b"]


def test_names_that_differ_in_case_only_are_named(tmp_path):
    """Img00.png beside img00.csv: the message said only "expected e.g. img00.png"."""
    _img(tmp_path / "Img00.png")
    (tmp_path / "img00.csv").write_text("x,y\n1,2\n")
    with pytest.raises(DatasetError, match=re.escape(
            f"{tmp_path / 'img00.csv'} (CSV) has no image of the same name in {tmp_path}, but "
            f"Img00.png differs from it in case only; names are matched as written: rename one "
            f"of the two")):
        layout.folder_pairs(tmp_path)


def test_folder_centre_outside_the_image_names_the_annotation(tmp_path):
    _img(tmp_path / "a.png")
    (tmp_path / "a.geojson").write_text(qupath_geojson([point_feature("Point", [60.5, 3.5])]))
    with pytest.raises(DatasetError, match=f"{tmp_path / 'a.geojson'}: cell centre 1 .* outside "
                                           "the 50x40 image"):
        readers.read_folder(tmp_path)


def test_a_qupath_point_on_the_far_edge_is_the_last_pixel(tmp_path):
    """QuPath's continuous coordinates run from 0 to the width: a point at x = 50 on a 50 px wide
    image is on its right edge, as x = 0 is on its left one; both are read, not refused."""
    _img(tmp_path / "a.png")                                       # 50x40
    (tmp_path / "a.geojson").write_text(qupath_geojson(
        [point_feature("Point", [50.0, 3.0]), point_feature("Point", [0.0, 40.0]),
         point_feature("Point", [20.0, 20.0])]))
    sample, = readers.read_folder(tmp_path)
    np.testing.assert_allclose(sample.centres, [[49, 2.5], [-0.5, 39], [19.5, 19.5]])
    # a point a hair past it: a click on the border, counted on the edge pixel
    (tmp_path / "a.geojson").write_text(qupath_geojson([point_feature("Point", [50.25, 3.0])]))
    assert readers.read_folder(tmp_path)[0].centres.tolist() == [[49, 2.5]]
    (tmp_path / "a.geojson").write_text(qupath_geojson([point_feature("Point", [51.75, 3.0])]))
    with pytest.raises(DatasetError, match=r"outside the 50x40 image \(x must be in \[-0.5, 49.5\]"):
        readers.read_folder(tmp_path)


# --- what a folder holds that is read as it is, and what is refused ------------------------------

def _cvat_xml(images: dict) -> str:
    """CVAT's "CVAT for images 1.1" export: {image name: [(x, y)] of its points}."""
    body = "".join(
        f'\n  <image id="{n}" name="{name}" width="60" height="60">'
        + (f'\n    <points label="cell" source="manual" occluded="0" points="'
           f'{";".join(f"{x:.2f},{y:.2f}" for x, y in pts)}" z_order="0">\n    </points>'
           if pts else "") + "\n  </image>"
        for n, (name, pts) in enumerate(images.items()))
    return (f'<?xml version="1.0" encoding="utf-8"?>\n<annotations>\n  <version>1.1</version>'
            f'{body}\n</annotations>\n')


def _coco_json(images: list, annotations_: list, categories=({"id": 1, "name": "cell"},)) -> str:
    """CVAT's "COCO 1.0" export: images by id, boxes by category (image_id, category_id, bbox)."""
    return json.dumps({
        "licenses": [{"name": "", "id": 0, "url": ""}],
        "info": {"contributor": "", "date_created": "", "description": "", "url": "",
                 "version": "", "year": ""},
        "categories": [dict(c, supercategory="") for c in categories],
        "images": [{"id": i, "width": 60, "height": 60, "file_name": name, "license": 0,
                    "flickr_url": "", "coco_url": "", "date_captured": 0}
                   for i, name in enumerate(images, 1)],
        "annotations": [{"id": n, "image_id": image, "category_id": cat, "segmentation": [],
                         "area": 16.0, "bbox": [x, y, 4.0, 4.0], "iscrowd": 0,
                         "attributes": {"occluded": False}}
                        for n, (image, cat, x, y) in enumerate(annotations_, 1)]})


def test_a_whole_sets_file_naming_images_the_folder_lacks_says_so_once(tmp_path, capsys):
    """An export lists every image of its task, and a folder may hold some of them: the images
    there are read, and one note names the file and the images it lacks (five, then how many
    more), once however often the folder is paired; an image without an entry stays refused."""
    cvat, coco = tmp_path / "cvat", tmp_path / "coco"
    for folder in (cvat, coco):
        folder.mkdir()
        for name in ("a.png", "b.png"):
            _img(folder / name, (60, 60, 3))
    listed = {"a.png": [(10.5, 12.5)], "b.png": [(20.5, 20.5), (30.5, 30.5)],
              **{f"gone{i}.png": [(5.5, 5.5)] for i in range(7)}}
    (cvat / "annotations.xml").write_text(_cvat_xml(listed))
    assert [(s.id, s.count) for s in readers.read("folder", cvat)] == [("a", 1), ("b", 2)]
    assert sorted(layout.folder_pairs(cvat)) == ["a", "b"]          # paired again: said once
    assert capsys.readouterr().err.splitlines() == [
        f"note: {cvat / 'annotations.xml'} annotates 7 image(s) that {cvat} does not hold "
        f"(gone0.png, gone1.png, gone2.png, gone3.png, gone4.png and 2 more): their entries are "
        f"not read; add the images to count them"]
    (coco / "instances_default.json").write_text(_coco_json(
        ["a.png", "b.png", "c.png"], [(1, 1, 10, 10), (2, 1, 20, 20), (3, 1, 30, 30)]))
    assert [(s.id, s.count) for s in readers.read("folder", coco)] == [("a", 1), ("b", 1)]
    assert capsys.readouterr().err == (
        f"note: {coco / 'instances_default.json'} annotates 1 image(s) that {coco} does not "
        f"hold (c.png): their entries are not read; add the images to count them\n")
    _img(coco / "d.png", (60, 60, 3))
    with pytest.raises(DatasetError, match=re.escape(f"{coco / 'd.png'} has no annotation")):
        layout.folder_pairs(coco)


def test_a_whole_sets_entry_of_the_image_in_another_format_is_read_for_it(tmp_path):
    """An image annotated as TIFF and converted to PNG since keeps its stem: the file's
    entry for a.tif gives a.png its marks (not 0 cells)."""
    _img(tmp_path / "a.png", (60, 60, 3))
    (tmp_path / "instances_default.json").write_text(_coco_json(["a.tif"], [(1, 1, 10, 10),
                                                                            (1, 1, 30, 20)]))
    assert {s.id: s.centres.tolist() for s in readers.read("folder", tmp_path)} == {
        "a": [[11.5, 11.5], [31.5, 21.5]]}


def test_few_names_the_rest_only_beyond_those_shown():
    assert annotations.few(["a", "b", "c"], 3) == "a, b, c"
    assert annotations.few(["a", "b", "c", "d"], 3) == "a, b, c and 1 more"
    assert annotations.few([]) == ""


def test_coco_run_length_masks_count_a_cell_each_at_their_centroid(tmp_path, capsys):
    """Masks as COCO run lengths (CVAT writes each brush mask so, with iscrowd 1, and no bbox
    in some converters' files): COCO's compressed string (the two below written by pycocotools
    2.0 for a 40x30 mask: a 6x4 block at x 10-15, y 5-8; and that block with a 3x7 one at x
    30-32, y 20-26) or the plain list of runs; one cell each at the centroid of its pixels. An
    empty mask and an annotation of no position are not counted, said in one note; runs that
    do not fill the mask are refused."""
    import json
    _img(tmp_path / "a.png", (30, 40, 3))
    block = [605, 4, 26, 4, 26, 4, 26, 4, 26, 4, 26, 4, 441]       # x 20-25, y 5-8
    anns = [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 1,
             "segmentation": {"size": [30, 40], "counts": "a94j0000000000[f0"}},
            {"id": 2, "image_id": 1, "category_id": 1, "iscrowd": 1,
             "segmentation": {"size": [30, 40], "counts": "a94j0000000000c=3ZB000n5"}},
            {"id": 3, "image_id": 1, "category_id": 1, "iscrowd": 1,
             "segmentation": {"size": [30, 40], "counts": block}},
            {"id": 4, "image_id": 1, "category_id": 1, "iscrowd": 1,
             "segmentation": {"size": [30, 40], "counts": [1200]}},
            {"id": 5, "image_id": 1, "category_id": 1, "area": 0}]
    p = tmp_path / "instances_default.json"
    doc = {"images": [{"id": 1, "file_name": "a.png", "width": 40, "height": 30}],
           "categories": [{"id": 1, "name": "cell"}], "annotations": anns}
    p.write_text(json.dumps(doc))
    got = readers.read("folder", tmp_path)[0].centres
    np.testing.assert_allclose(got, [[12.5, 6.5], [(24 * 12.5 + 21 * 31) / 45,
                                                   (24 * 6.5 + 21 * 23) / 45], [22.5, 6.5]])
    assert (f"{p}: 2 of its 5 annotations have no position (1 neither keypoints, bbox nor "
            f"segmentation, 1 an empty mask): not counted") in capsys.readouterr().err
    anns[2]["segmentation"]["counts"] = block[:-1]
    p.write_text(json.dumps(doc))
    with pytest.raises(DatasetError, match=re.escape(f"{p} is a COCO file with an entry pycount "
                                                     f"cannot read (ValueError('run lengths "
                                                     f"summing to 759 for a mask of 1200 pixels')")):
        readers.read("folder", tmp_path)


def test_coco_annotations_of_an_unlisted_category_or_image_are_refused(tmp_path):
    """A category_id that the file's categories do not list (a class taken out of the list)
    or an image_id that its images do not: refused naming the file, the entry and the id. A
    file without categories at all labels each mark by its id."""
    _img(tmp_path / "a.png", (60, 60, 3))
    p = tmp_path / "instances_default.json"
    p.write_text(_coco_json(["a.png"], [(1, 1, 10, 10), (1, 3, 20, 20)],
                            [{"id": 1, "name": "cell"}, {"id": 2, "name": "debris"}]))
    with pytest.raises(DatasetError) as err:
        layout.folder_pairs(tmp_path)
    assert str(err.value) == (
        f"{p}: annotation 2 of 2 (id 2) has category_id 3, which is not among its categories "
        f"(ids 1 (cell), 2 (debris)); export the set again, or add that category to categories "
        f"(or delete the annotation)")
    p.write_text(_coco_json(["a.png"], [(1, 1, 10, 10), (5, 1, 20, 20)]))
    with pytest.raises(DatasetError) as err:
        readers.read("folder", tmp_path)
    assert str(err.value) == (
        f"{p}: annotation 2 of 2 (id 2) has image_id 5, which is not among its images (ids 1); "
        f"export the set again, or delete the annotation")
    p.write_text(_coco_json(["a.png"], [(1, 1, 10, 10), (1, 3, 20, 20)], categories=()))
    assert [s.count for s in readers.read("folder", tmp_path)] == [2]
    assert [s.count for s in readers.read("folder", tmp_path, marker="3")] == [1]


def test_a_cellcounter_file_recording_another_image_of_the_folder_is_refused(tmp_path, capsys):
    """Cell Counter records the title of the image its markers were set on: a file named after
    img1.png that records img3.png, another image of the folder, is refused naming both; the
    same stem in another format (annotated as TIFF, converted to PNG) is the image itself; a
    name of no image of the folder (renamed after annotating) is read as the file is named, in
    one note."""
    for i in (1, 2, 3):
        _img(tmp_path / f"img{i}.png")
    (tmp_path / "CellCounter_img1.xml").write_text(cellcounter_xml({1: [(5, 5)]}, "img3.png"))
    (tmp_path / "CellCounter_img2.xml").write_text(cellcounter_xml({1: [(5, 5), (6, 6)]},
                                                                   "IMG2.tif"))
    (tmp_path / "CellCounter_img3.xml").write_text(cellcounter_xml({1: [(7, 7)]}, "img3.png"))
    with pytest.raises(DatasetError) as err:
        readers.read("folder", tmp_path)
    assert str(err.value) == (
        f"{tmp_path / 'CellCounter_img1.xml'} is named after img1.png, but records its marks as "
        f"made on img3.png (<Image_Filename>img3.png</Image_Filename>), another image of "
        f"{tmp_path}: name the file after the image its marks were made on (one file per "
        f"image), or, if they are img1.png's, correct <Image_Filename> to img1.png")
    (tmp_path / "CellCounter_img1.xml").write_text(cellcounter_xml({1: [(5, 5)]},
                                                                   "scan 2024-03-01 #1.tif"))
    assert [(s.id, s.count) for s in readers.read("folder", tmp_path)] == [
        ("img1", 1), ("img2", 2), ("img3", 1)]
    assert capsys.readouterr().err.splitlines() == [
        f"note: 1 annotation file(s) record an image name that {tmp_path} does not hold "
        f"(CellCounter_img1.xml records scan 2024-03-01 #1.tif; renamed or converted images?): "
        f"each is read as the image it is named after"]


def _voc_xml(image: str, boxes=()) -> str:
    """A Pascal VOC file as CVAT's VOC export (Datumaro) writes one: an image without objects
    keeps its <filename>, <source> and <size>."""
    objects = "".join(f"""
  <object>
    <name>cell</name>
    <pose>Unspecified</pose>
    <truncated>0</truncated>
    <difficult>0</difficult>
    <bndbox>
      <xmin>{x0}</xmin>
      <ymin>{y0}</ymin>
      <xmax>{x1}</xmax>
      <ymax>{y1}</ymax>
    </bndbox>
  </object>""" for x0, y0, x1, y1 in boxes)
    return f"""<annotation>
  <folder></folder>
  <filename>{image}</filename>
  <source>
    <database>Unknown</database>
    <annotation>Unknown</annotation>
    <image>Unknown</image>
  </source>
  <size>
    <width>50</width>
    <height>40</height>
    <depth></depth>
  </size>
  <segmented>0</segmented>{objects}
</annotation>
"""


def test_a_pascal_voc_file_without_the_marker_records_the_names_it_has(tmp_path):
    """0 cells of a marker no object has, and its names kept for owndata to name where no
    file of the folder has the marker (classes_without)."""
    p = tmp_path / "img.xml"
    p.write_text(_voc_xml("img.png", [(1, 1, 9, 9)]).replace("<name>cell</name>",
                                                             "<name>RBC</name>"))
    assert annotations.read_cellcounter_xml(p, "Eosinophil").shape == (0, 2)
    assert annotations.classes_without("Eosinophil") == ["RBC"]


def test_a_recorded_image_path_of_windows_is_cut_to_its_file_name(tmp_path):
    """Cell Counter records the title, LabelImg the path it opened, with \\ on Windows: the
    name after the last \\ or / is the image, and another image of the folder is refused."""
    p = tmp_path / "a.xml"
    p.write_text(cellcounter_xml({1: [(5, 5)]}, "C:\\Users\\lab\\scans\\img3.png"))
    assert annotations.recorded_image(p) == ("Image_Filename", "img3.png")
    p.write_text(_voc_xml("/home/lab/voc/JPEGImages/img3.png"))
    assert annotations.recorded_image(p) == ("filename", "img3.png")
    p.unlink()
    for i in (1, 3):
        _img(tmp_path / f"img{i}.png")
    (tmp_path / "img1.xml").write_text(cellcounter_xml({1: [(5, 5)]}, "D:\\data\\img3.png"))
    (tmp_path / "img3.xml").write_text(cellcounter_xml({1: [(7, 7)]}, "img3.png"))
    with pytest.raises(DatasetError, match=re.escape(
            f"{tmp_path / 'img1.xml'} is named after img1.png, but records its marks as made on "
            f"img3.png (<Image_Filename>img3.png</Image_Filename>), another image")):
        layout.folder_pairs(tmp_path)


def test_a_pascal_voc_file_without_objects_is_an_image_of_no_cell(tmp_path):
    """CVAT's VOC export writes an image without boxes as an <annotation> of no <object>: 0
    cells, with a marker too (no names to choose among); its <filename> is checked as Cell
    Counter's <Image_Filename> is."""
    _img(tmp_path / "img0.png")
    _img(tmp_path / "img1.png")
    (tmp_path / "img0.xml").write_text(_voc_xml("img0.png"))
    (tmp_path / "img1.xml").write_text(_voc_xml("img1.png", [(11, 21, 21, 31), (1, 1, 10, 10)]))
    assert annotations.read_cellcounter_xml(tmp_path / "img0.xml").shape == (0, 2)
    assert [(s.id, s.count) for s in readers.read("folder", tmp_path)] == [("img0", 0),
                                                                           ("img1", 2)]
    assert [s.count for s in readers.read("folder", tmp_path, marker="cell")] == [0, 2]
    (tmp_path / "img0.xml").write_text(_voc_xml("img1.png"))
    with pytest.raises(DatasetError, match=re.escape(
            f"{tmp_path / 'img0.xml'} is named after img0.png, but records its marks as made on "
            f"img1.png (<filename>img1.png</filename>)")):
        layout.folder_pairs(tmp_path)


def test_qupath_regions_alone_count_zero_cells_and_say_why(tmp_path, capsys):
    """A GeoJSON of QuPath annotations drawn as regions (polygons, a line) and no point: its
    image counts 0 cells, and a note names the file and what it held, once. Regions beside
    points, an export of no object and a CSV of its header only are read without a word."""
    p = tmp_path / "img.geojson"
    region = point_feature("Polygon", [square(1, 1, 30)])
    p.write_text(qupath_geojson([region, region, point_feature("LineString", [[1, 1], [9, 9]])]))
    assert annotations.read_qupath_geojson(p).shape == (0, 2)
    assert capsys.readouterr().err == (
        f"note: {p} holds 1 line annotation, 2 polygon annotations and no point or detected "
        f"cell, so its image counts 0 cells: QuPath's annotations mark regions (the area "
        f"counted), not cells; mark the cells with points, or, if each outline is one cell, make "
        f"them detections in QuPath before exporting\n")
    _img(tmp_path / "img.png")
    assert [s.count for s in readers.read("folder", tmp_path)] == [0]       # said once
    q = tmp_path / "other.geojson"
    q.write_text(qupath_geojson([region, point_feature("MultiPoint", [[2.5, 2.5], [5.5, 5.5]])]))
    assert len(annotations.read_qupath_geojson(q)) == 2
    q.write_text(qupath_geojson([]))
    assert annotations.read_qupath_geojson(q).shape == (0, 2)
    (tmp_path / "empty.csv").write_text("x,y\n")
    assert annotations.read_centres_csv(tmp_path / "empty.csv").shape == (0, 2)
    assert capsys.readouterr().err == ""


def _annotated(folder, names):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        _img(folder / f"{name}.png")
        (folder / f"{name}.csv").write_text("x,y\n1,2\n3,4\n")


def test_test_images_without_training_images_are_refused(tmp_path, workdirs, capsys):
    """A test/ alone (no train/), or beside an empty train/, would train the counter on its test
    images: refused naming the folders and the fix, by `pycount prepare` too (exit status 2);
    the same split kept inside images/ + labels/ as well."""
    from pycount import cli
    root = tmp_path / "set"
    _annotated(root / "test", ["a", "b", "c", "d"])
    expected = (f"{root} has no train/ subfolder beside test/: pycount would train on the 4 "
                f"images of test/, which are there to score the counter; put the training "
                f"images, each with its annotation, in {root / 'train'}, or move the files of "
                f"test/ up into {root} to have pycount draw the test images from them (if they "
                f"are a whole set named so, give {root / 'test'} itself as the dataset)")
    with pytest.raises(DatasetError) as err:
        layout.folder_layout(root)
    assert str(err.value) == expected
    assert cli.main(["prepare", "--dataset", str(root), "--model", "fcrn"]) == 2
    assert capsys.readouterr().err == f"pycount: error: {expected}\n"
    (root / "train").mkdir()
    with pytest.raises(DatasetError, match=re.escape(
            f"{root / 'train'} holds no annotated image: pycount would train on the 4 images of "
            f"test/, which are there to score the counter; put the training images, each with "
            f"its annotation, in {root / 'train'}, or move")):
        readers.read("folder", root)
    kinds = tmp_path / "kinds"
    (kinds / "images").mkdir(parents=True)
    (kinds / "labels" / "test").mkdir(parents=True)
    (root / "test").rename(kinds / "images" / "test")
    for f in (kinds / "images" / "test").glob("*.csv"):
        f.rename(kinds / "labels" / "test" / f.name)
    with pytest.raises(DatasetError, match=re.escape(
            f"{kinds / 'images'} has no train/ subfolder beside test/: pycount would train on "
            f"the 4 images of test/")):
        layout.folder_layout(kinds)


def test_a_published_split_beside_another_folder_of_images_is_refused_naming_them(tmp_path):
    """train/ + test/ + a third folder of annotated images: not a published split (its third
    folder's images would be trained on unasked), refused naming the subfolders."""
    _annotated(tmp_path / "train", ["a", "b"])
    _annotated(tmp_path / "test", ["c"])
    _annotated(tmp_path / "unsure", ["d"])
    with pytest.raises(DatasetError, match=re.escape(
            f"{tmp_path} holds no images itself but 3 subfolders with images or annotations "
            f"(test, train, unsure); keep the images")):
        layout.folder_layout(tmp_path)


def test_a_hidden_folder_beside_a_published_split_is_not_a_part_of_it(tmp_path):
    """.ipynb_checkpoints/, .thumbnails/ beside train/ + test/: the split is read as it is."""
    _annotated(tmp_path / "train", ["a", "b"])
    _annotated(tmp_path / "test", ["c"])
    _annotated(tmp_path / ".thumbnails", ["a", "c"])
    pairs, test, label = layout.folder_layout(tmp_path)
    assert sorted(pairs) == ["a", "b", "c"] and test == ("c",) and label == "test"


def test_the_published_test_parts_folder_name_is_given_as_written(tmp_path):
    _annotated(tmp_path / "Training", ["a", "b"])
    _annotated(tmp_path / "Testing", ["c", "d"])
    pairs, test, label = layout.folder_layout(tmp_path)
    assert sorted(pairs) == ["a", "b", "c", "d"] and test == ("c", "d") and label == "Testing"


def test_kinds_folders_of_other_subfolders_than_a_split_are_not_read_as_one(tmp_path):
    """images/p1/ + labels/p1/ (a subfolder per patient, not train/ + test/), or the split
    kept inside each kind beside a third folder: no layout pycount reads, named as no
    annotated image found, not a traceback or a part of the folder left out unsaid."""
    patients = tmp_path / "patients"
    kinds = tmp_path / "kinds"
    for root, parts in ((patients, ("p1", "p2")), (kinds, ("train", "test"))):
        for part, name in zip(parts, ("a", "b")):
            (root / "images" / part).mkdir(parents=True)
            _img(root / "images" / part / f"{name}.png")
            (root / "labels" / part).mkdir(parents=True)
            (root / "labels" / part / f"{name}.csv").write_text("x,y\n1,2\n")
    _annotated(kinds / "thumbs", ["c"])
    for root in (patients, kinds):
        assert layout.folder_layout(root) == ({}, (), "")
        with pytest.raises(DatasetError, match=re.escape(f"no annotated images found in {root};")):
            readers.read("folder", root)


def test_a_sets_annotation_file_beside_two_folders_of_images_reads_neither(tmp_path, capsys):
    """annotations.xml beside images/ and more/: which folder it annotates cannot be told, so
    neither is read as its images (not the first, the other left out unsaid), and the refusal
    says so, where it was a note that the folder "holds its annotated images itself" and then
    "no annotated images found"."""
    for folder, name in (("images", "a"), ("more", "b")):
        (tmp_path / folder).mkdir()
        _img(tmp_path / folder / f"{name}.png", (60, 60, 3))
    (tmp_path / "annotations.xml").write_text(_cvat_xml({"a.png": [(10.5, 12.5)],
                                                         "b.png": [(5.5, 5.5)]}))
    with pytest.raises(DatasetError, match=r"holds annotations \(annotations\.xml\) but no "
                       r"image, and images in 2 subfolders \(images/, more/\): which of them"):
        layout.folder_layout(tmp_path)
    with pytest.raises(DatasetError, match="keep only that folder beside them"):
        readers.read("folder", tmp_path)
    assert "holds its annotated images itself" not in capsys.readouterr().err


def test_a_cvat_export_beside_its_images_folder_says_no_folder_is_left_unread(tmp_path, capsys):
    (tmp_path / "images").mkdir()
    _img(tmp_path / "images" / "a.png", (60, 60, 3))
    (tmp_path / "annotations.xml").write_text(_cvat_xml({"a.png": [(10.5, 12.5)]}))
    assert [(s.id, s.count) for s in readers.read("folder", tmp_path)] == [("a", 1)]
    assert capsys.readouterr().err == ""


def test_an_empty_test_folder_is_noted_and_the_test_images_drawn(tmp_path, capsys):
    """train/ beside a test/ of no annotated image: no published test images (the seeded draw
    takes them, as without test/), said in one note naming the empty folder."""
    root = tmp_path / "set"
    _annotated(root / "train", ["a", "b", "c", "d"])
    (root / "test").mkdir()
    (root / "test" / "README.txt").write_text("test images to come")
    pairs, test, label = layout.folder_layout(root)
    assert sorted(pairs) == ["a", "b", "c", "d"] and test == () and label == ""
    assert readers.list_ids("folder", root) == ["a", "b", "c", "d"]
    assert capsys.readouterr().err == (
        f"note: {root / 'test'} holds no annotated image, so {root} has no published test "
        f"images: they are drawn from the others (seeded), as for a folder without test/, unless "
        f"pycount.toml names them; put the test images in test/, or remove it\n")


def test_a_file_given_as_the_dataset_folder_is_named_a_file(tmp_path):
    _annotated(tmp_path, ["img0"])
    with pytest.raises(DatasetError) as err:
        readers.read("folder", tmp_path / "img0.png")
    assert str(err.value) == (f"{tmp_path / 'img0.png'} is a file, not a folder: a dataset is "
                              f"given as the folder that holds the images and their annotations "
                              f"(for this file's, {tmp_path})")


def test_a_marker_some_images_lack_counts_zero_there_and_a_marker_none_has_is_refused(
        tmp_path, workdirs):
    """QuPath exports of Ki67 fields: a field without positive nuclei has no feature of that class.
    Such a file was refused ("has no cells of class"), and with it the whole folder; it counts 0
    now, and a marker that no file of the folder holds (a typo) is refused, naming the classes."""
    from pycount.data import owndata
    rng = np.random.default_rng(3)
    folder = tmp_path / "ki67"
    folder.mkdir()
    for i in range(6):
        _img(folder / f"f{i}.png", (60, 60, 3))
        pts = rng.uniform(5, 55, (8, 2))
        features = [point_feature("Point", list(map(float, pt)), "Negative") for pt in pts]
        if i % 2 == 0:                  # every other field holds positive nuclei
            features.append(point_feature("Point", [30.5, 30.5], "Positive"))
        (folder / f"f{i}.geojson").write_text(qupath_geojson(features))
    ds = owndata.resolve(dataclasses.replace(config.folder_dataset(folder), marker="Positive"),
                         say=lambda line: None)
    assert ds.marker == "Positive"
    assert [s.count for s in readers.read("folder", folder, marker="Positive")] == [1, 0, 1, 0, 1, 0]
    with pytest.raises(DatasetError) as err:
        owndata.resolve(dataclasses.replace(config.folder_dataset(folder), marker="Positiv"),
                        say=lambda line: None)
    assert "none of the" in str(err.value) and "'Positiv'" in str(err.value)
    assert "(the classes its files hold: Negative, Positive)" in str(err.value)


def test_image_subfolders_beside_a_flat_folders_images_are_named_as_unread(tmp_path, capsys):
    """A flat folder (images + CSVs) with a test/ of more images beside them: the subfolder was
    passed over without a word."""
    root = tmp_path / "flat"
    (root / "test").mkdir(parents=True)
    for name, where in (("a", root), ("b", root), ("c", root / "test")):
        _img(where / f"{name}.png")
        (where / f"{name}.csv").write_text("x,y\n5,5\n")
    pairs, published, _ = layout.folder_layout(root)
    assert sorted(pairs) == ["a", "b"] and not published
    err = capsys.readouterr().err
    assert f"note: {root} holds its annotated images itself, so its subfolders test/ are not " \
           "read" in err


def test_an_ome_tiff_pairs_with_the_annotation_of_its_name(tmp_path):
    """img01.ome.tif (Bio-Formats', QuPath's and OMERO's name for an OME-TIFF) beside img01.csv:
    "img01.csv has no image of the same name (expected e.g. img01.png)" (helper-46)."""
    for i in range(3):
        tifffile.imwrite(tmp_path / f"img{i}.ome.tif", np.zeros((30, 40, 3), np.uint8),
                         photometric="rgb")
        (tmp_path / f"img{i}.csv").write_text("x,y\n" + "".join(f"{5 + 3 * k},6\n"
                                                               for k in range(i + 1)))
    pairs = layout.folder_pairs(tmp_path)
    assert {k: v[1].name for k, v in pairs.items()} == {
        f"img{i}.ome": f"img{i}.csv" for i in range(3)}
    assert [s.count for s in readers.read("folder", tmp_path)] == [1, 2, 3]
    # a dot mask named after it, and the name in capitals, as Windows tools write it (helper-48)
    other = tmp_path / "masks"
    other.mkdir()
    for i, name in enumerate(("a.ome.tif", "B.OME.TIF", "c.ome.tif")):
        tifffile.imwrite(other / name, np.zeros((30, 40, 3), np.uint8), photometric="rgb")
        mask = np.zeros((30, 40), np.uint8)
        mask[10, 5:5 + 3 * (i + 1):3] = 255
        cv2.imwrite(str(other / f"{name.split('.')[0]}_dots.png"), mask)
    assert {k: v[1].name for k, v in layout.folder_pairs(other).items()} == {
        "a.ome": "a_dots.png", "B.OME": "B_dots.png", "c.ome": "c_dots.png"}
    assert {s.id: s.count for s in readers.read("folder", other)} == {"a.ome": 1, "B.OME": 2,
                                                                       "c.ome": 3}


def test_an_annotation_in_a_format_not_read_is_named_with_its_way_in(tmp_path):
    """img.tif beside img.txt (a table of no coordinates: ImageJ's measurements without
    centroids) and img.xls (a Results table saved so): the refusal names both and how each is
    read, where it said only "has no annotation"."""
    cv2.imwrite(str(tmp_path / "img.tif"), np.zeros((10, 10), np.uint8))
    (tmp_path / "img.txt").write_text(" \tArea\tMean\n1\t20\t3.5\n")
    (tmp_path / "img.xls").write_text(" \tX\tY\n1\t2\t3\n")
    (tmp_path / "notes.txt").write_text("stained 2026-11-30\n")
    with pytest.raises(DatasetError, match=r"img\.tif has no annotation \(img\.txt, img\.xls "
                                           r"are in no format read here: a table of x,y is read "
                                           r"as img\.csv \(or \.txt, with a header line naming x "
                                           r"and y\), and a segmentation as a label mask "
                                           r"img_masks\.png\); add one"):
        layout.folder_pairs(tmp_path)


IMAGESCOPE = """<?xml version="1.0"?>
<Annotations MicronsPerPixel="0.252100">
<Annotation Id="1" Name="" ReadOnly="0" Type="4" LineColor="65280" Visible="1">
<Attributes><Attribute Name="Description" Id="0" Value="epithelial"/></Attributes>
<Regions>
<RegionAttributeHeaders><AttributeHeader Id="9999" Name="Region" ColumnWidth="-1"/>
</RegionAttributeHeaders>
<Region Id="1" Type="0" NegativeROA="0" Text=""><Attributes/><Vertices>
<Vertex X="10" Y="10" Z="0"/><Vertex X="20" Y="10" Z="0"/><Vertex X="20" Y="16" Z="0"/>
<Vertex X="10" Y="16" Z="0"/></Vertices></Region>
<Region Id="2" Type="2" NegativeROA="0"><Attributes/><Vertices>
<Vertex X="30" Y="40" Z="0"/><Vertex X="36" Y="44" Z="0"/></Vertices></Region>
<Region Id="3" Type="0" NegativeROA="1"><Attributes/><Vertices>
<Vertex X="0" Y="0" Z="0"/><Vertex X="50" Y="0" Z="0"/><Vertex X="50" Y="50" Z="0"/>
</Vertices></Region>
</Regions><Plots/></Annotation>
<Annotation Id="2" Name="lymphocyte" Type="4"><Attributes/><Regions>
<Region Id="1" Type="5"><Vertices><Vertex X="44.5" Y="7.25" Z="0"/></Vertices></Region>
</Regions></Annotation>
</Annotations>
"""


def test_imagescope_regions_are_cells_at_their_centroids_by_layer(tmp_path):
    """Aperio ImageScope's XML (MoNuSeg writes its nuclei so): an outline at its area centroid,
    a two-vertex ellipse at its middle, a point as it is, an excluding region none; a marker
    picks layers by Id, Name or attribute value, and a file without that layer counts 0."""
    _img(tmp_path / "TCGA-1.tif", (60, 60, 3))
    (tmp_path / "TCGA-1.xml").write_text(IMAGESCOPE)
    assert {k: v[2] for k, v in layout.folder_pairs(tmp_path).items()} == {
        "TCGA-1": "XML (Cell Counter, Pascal VOC or ImageScope)"}
    got = readers.read("folder", tmp_path)[0].centres.tolist()
    assert got == [[15, 13], [33, 42], [44.5, 7.25]]
    path = tmp_path / "TCGA-1.xml"
    assert annotations.read_cellcounter_xml(path, "epithelial").tolist() == [[15, 13], [33, 42]]
    assert annotations.read_cellcounter_xml(path, "2").tolist() == [[44.5, 7.25]]
    assert annotations.read_cellcounter_xml(path, "Lymphocyte").tolist() == [[44.5, 7.25]]
    assert annotations.classes_without("Lymphocyte") == []     # found: not noted as absent
    assert annotations.read_cellcounter_xml(path, "mitosis").shape == (0, 2)
    assert "2 (lymphocyte)" in annotations.classes_without("mitosis")
    path.write_text(IMAGESCOPE.replace('<Vertex X="36"', '<Vertex X="far"'))
    with pytest.raises(DatasetError, match=r"TCGA-1\.xml: region 2 of layer 1 has a <Vertex> "
                                           r"without numeric X, Y"):
        annotations.read_cellcounter_xml(path)


def test_a_table_of_boxes_counts_one_cell_per_box_at_its_centre(tmp_path):
    """Corners (NuCLS's tables, object detectors' exports: xmin, ymin, xmax, ymax) and ImageJ's
    bounding rectangles (Results' BX, BY, Width, Height: continuous, -0.5); a marker chooses
    NuCLS's rows by main_classification; X, Y win over a bounding rectangle."""
    nucls = tmp_path / "fov1.csv"
    nucls.write_text("raw_classification,main_classification,super_classification,type,"
                     "xmin,ymin,xmax,ymax,coords_x,coords_y\n"
                     'tumor,tumor_nonMitotic,tumor_any,rectangle,10,20,20,26,"10,20","20,26"\n'
                     'lymphocyte,nonTILnonMQ_stromal,sTIL,rectangle,30,5,35,9,"30,35","5,9"\n')
    assert annotations.read_centres_csv(nucls).tolist() == [[15, 23], [32.5, 7]]
    assert annotations.read_centres_csv(nucls, "tumor_nonMitotic").tolist() == [[15, 23]]
    imagej = tmp_path / "r.csv"
    imagej.write_text(" ,Area,BX,BY,Width,Height\n1,24,10,20,6,4\n2,9,0,0,3,3\n")
    assert annotations.read_centres_csv(imagej).tolist() == [[12.5, 21.5], [1, 1]]
    imagej.write_text(" ,X,Y,BX,BY,Width,Height\n1,13,22,10,20,6,4\n")
    assert annotations.read_centres_csv(imagej).tolist() == [[13, 22]]
    imagej.write_text(" ,BX,BY,Width,Height\n1,10,twenty,6,4\n")
    with pytest.raises(DatasetError, match=r"r\.csv, line 2: .* has no numeric BX,BY,Width,Height"):
        annotations.read_centres_csv(imagej)


# --- mutation tests (helper-73): COCO run lengths and CVAT brush masks at their edges --------------

def _coco_rle(tmp_path, *counts):
    """A 40x30 a.png and a COCO file of one run-length mask annotation per `counts`."""
    _img(tmp_path / "a.png", (30, 40, 3))
    p = tmp_path / "instances_default.json"
    p.write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.png", "width": 40, "height": 30}],
        "categories": [{"id": 1, "name": "cell"}],
        "annotations": [{"id": k, "image_id": 1, "category_id": 1, "iscrowd": 1,
                         "segmentation": {"size": [30, 40], "counts": c}}
                        for k, c in enumerate(counts, 1)]}))
    return p


def test_coco_empty_masks_alone_are_said_in_the_note(tmp_path, capsys):
    """An empty run-length mask and no annotation of no position: the note says the empty mask
    alone (it was said only beside an annotation of no position)."""
    block = [605, 4, 26, 4, 26, 4, 26, 4, 26, 4, 26, 4, 441]       # x 20-25, y 5-8
    p = _coco_rle(tmp_path, block, [1200])
    assert readers.read("folder", tmp_path)[0].centres.tolist() == [[22.5, 6.5]]
    assert (f"{p}: 1 of its 2 annotations have no position (1 an empty mask): not counted"
            in capsys.readouterr().err)


@pytest.mark.parametrize("counts, error", [
    ("a94j~", "ValueError(\"'~' in a compressed RLE\")"),
    ("a94j0000000000[", "ValueError('a compressed RLE cut short')"),
    ([-5, 1205], "ValueError('a negative run length, -5')")])
def test_coco_run_lengths_that_are_no_mask_are_refused(tmp_path, counts, error):
    """A compressed string with a character out of COCO's 64 ('~'), or cut within a run (its
    last character saying another follows); a negative run in a list (whose sum may still be
    the mask's size): refused, the file named, not read as some other mask."""
    p = _coco_rle(tmp_path, counts)
    with pytest.raises(DatasetError, match=re.escape(
            f"{p} is a COCO file with an entry pycount cannot read ({error}")):
        readers.read("folder", tmp_path)


def test_an_empty_cvat_brush_mask_is_no_cell(tmp_path):
    """A CVAT <mask> of no marked pixel (its runs one unmarked run over the box) is no cell; a
    point beside it is."""
    _img(tmp_path / "a.png", (60, 60, 3))
    (tmp_path / "annotations.xml").write_text(
        '<?xml version="1.0" encoding="utf-8"?><annotations><version>1.1</version>'
        '<image id="0" name="a.png" width="60" height="60">'
        '<mask label="pos" rle="6" left="41" top="51" width="3" height="2"/>'
        '<points label="pos" points="10.5,12.5"/></image></annotations>')
    assert readers.read("folder", tmp_path)[0].centres.tolist() == [[10, 12]]

