"""Annotation files: where a folder's marks come from, one module per family of formats.

- kinds: what kind of annotation a file is (by suffix, a .txt by its content) and
  read_annotation, which reads one by its kind; the entry point of the rest of pycount.
- tables: CSV/TSV tables (x,y; ImageJ Results; napari points; QuPath measurements; boxes) and
  .txt files of numbers (ImageJ XY coordinates, YOLO labels).
- xmlfiles: ImageJ/Fiji Cell Counter, Pascal VOC and Aperio ImageScope XML.
- geojson: QuPath GeoJSON exports and LabelMe JSON.
- imagej: ImageJ selections (.roi) and ROI Manager sets (.zip).
- arrays: HDF5 and MATLAB point lists, Cellpose's _seg.npy.
- masks: dot masks, instance-label masks, one mask file per cell, COCO run lengths.
- setfiles: files of a whole set's annotations (CVAT XML, COCO JSON, VIA, Label Studio, one CSV
  table of every image).
- common: what the readers share (notes, marker bookkeeping, the recorded-size check,
  centroids of outlines).

Each reader returns the (N, 2) x, y cell centres of one image in 0-based pixel coordinates
(pixel k covering [k - 0.5, k + 0.5)) and raises DatasetError naming the file and the fix."""
from pycount.data.annotations import (arrays, common, geojson, imagej, kinds, masks, setfiles,
                                      tables, xmlfiles)
from pycount.data.annotations.arrays import read_cellpose_seg, read_hdf5_points, read_mat_points
from pycount.data.annotations.common import (CLASS_COLUMNS, check_recorded_size, classes_without,
                                             few, marker_absent, note)
from pycount.data.annotations.geojson import read_qupath_geojson
from pycount.data.annotations.imagej import read_imagej_roi
from pycount.data.annotations.kinds import (ANNOTATION_KINDS, CELLPOSE, TEXT, annotation_kind,
                                            read_annotation)
from pycount.data.annotations.masks import (disc_counts, label_centres, mask_centres,
                                            read_dot_mask, read_object_masks, rle_centroid,
                                            split_blob)
from pycount.data.annotations.setfiles import SET_KINDS, VIA_CSV_HEADER, set_file
from pycount.data.annotations.tables import read_centres_csv, read_text_points
from pycount.data.annotations.xmlfiles import read_cellcounter_xml, recorded_image

__all__ = [
    "arrays", "common", "geojson", "imagej", "kinds", "masks", "setfiles", "tables", "xmlfiles",
    "ANNOTATION_KINDS", "CELLPOSE", "CLASS_COLUMNS", "SET_KINDS", "TEXT", "VIA_CSV_HEADER",
    "annotation_kind", "check_recorded_size", "classes_without", "disc_counts", "few",
    "label_centres", "marker_absent", "mask_centres", "note", "read_annotation",
    "read_cellcounter_xml", "read_cellpose_seg", "read_centres_csv", "read_dot_mask",
    "read_hdf5_points", "read_imagej_roi", "read_mat_points", "read_object_masks",
    "read_qupath_geojson", "read_text_points", "recorded_image", "rle_centroid", "set_file",
    "split_blob",
]
