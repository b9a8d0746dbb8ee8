"""Instance-label masks (Cellpose's NAME_cp_masks.png, a training folder's NAME_masks.png,
StarDist's masks/NAME.tif; Cellpose's own NAME_seg.npy): one cell per label at its centroid,
touching cells apart; masks of dots keep the dot rules."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from pycount.data import annotations, layout, readers
from pycount.errors import DatasetError

SQUARE = 6      # side of each labelled cell


def tiled_labels(rows=3, cols=4, side=SQUARE, gap=0, dtype=np.uint16, offset=(5, 7)):
    """rows x cols square cells of `side` px, `gap` px apart (0: touching), labelled 1, 2, ...
    row by row; their exact centroids."""
    h = offset[1] + rows * (side + gap) + 5
    w = offset[0] + cols * (side + gap) + 5
    out = np.zeros((h, w), dtype)
    centres = []
    for r in range(rows):
        for c in range(cols):
            x0, y0 = offset[0] + c * (side + gap), offset[1] + r * (side + gap)
            out[y0:y0 + side, x0:x0 + side] = r * cols + c + 1
            centres.append((x0 + (side - 1) / 2, y0 + (side - 1) / 2))
    return out, np.array(centres)


def test_touching_cells_of_a_label_mask_are_one_each_at_their_centroids(tmp_path):
    labels, centres = tiled_labels()
    path = tmp_path / "a_cp_masks.png"
    cv2.imwrite(str(path), labels)
    got = annotations.read_dot_mask(path, labels.shape)
    assert got.tolist() == centres.tolist()


def test_labels_beyond_255_in_16_bits_and_gaps_in_the_numbering(tmp_path):
    labels, centres = tiled_labels(rows=20, cols=20, side=3, gap=1)
    labels[labels > 0] = labels[labels > 0] * 3 + 100        # 103 ... 1300, not consecutive
    path = tmp_path / "b_masks.tif"
    cv2.imwrite(str(path), labels)
    got = annotations.read_dot_mask(path)
    assert len(got) == 400 and got.tolist() == centres.tolist()


def test_a_colour_per_cell_is_a_label_each(tmp_path):
    labels, centres = tiled_labels(rows=2, cols=3)
    colours = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0],
                        [0, 255, 255], [255, 0, 255]], np.uint8)      # 0: background
    path = tmp_path / "c_mask.png"
    cv2.imwrite(str(path), colours[labels])
    assert sorted(annotations.read_dot_mask(path).tolist()) == sorted(centres.tolist())


def test_a_few_labels_in_two_pieces_are_still_labels_one_cell_each(tmp_path):
    labels, _ = tiled_labels(rows=5, cols=8, gap=2)
    labels[labels == 40] = 0
    labels[0:2, 0:2] = 39                 # label 39 in two pieces: 1 of 39 labels (< 5 %)
    got = annotations.read_dot_mask(_write(tmp_path / "d_masks.png", labels))
    assert len(got) == 39


def _write(path, data):
    cv2.imwrite(str(path), data)
    return path


def test_masks_of_dots_keep_the_dot_rules(tmp_path):
    """Dots of two colours (a class each): every dot a cell, not two labels; anti-aliased discs
    (their rims' values repeat from disc to disc): one cell per disc, not one per value."""
    dots = np.zeros((40, 60, 3), np.uint8)
    dots[5:35:6, 4:56:8] = (0, 0, 255)                        # 5 x 7 red dots
    dots[8:38:6, 7:57:8] = (0, 255, 0)                        # 5 x 7 green dots
    assert len(annotations.read_dot_mask(_write(tmp_path / "e_dots.png", dots))) == 70
    discs = np.zeros((80, 80), np.uint8)
    for y in range(10, 80, 20):
        for x in range(10, 80, 20):
            cv2.circle(discs, (x, y), 3, 255, -1, lineType=cv2.LINE_AA)
    assert len(np.unique(discs)) > 3                          # many values, all repeated
    assert len(annotations.read_dot_mask(_write(tmp_path / "f_dots.png", discs))) == 16
    one = np.zeros((20, 20), np.uint16)
    one[3, 4] = one[10, 12] = 1                               # one value: dots, two cells
    assert annotations.read_dot_mask(_write(tmp_path / "g.png", one)).tolist() == [
        [4, 3], [12, 10]]


def test_label_masks_pair_with_their_images_by_the_tools_names(tmp_path):
    labels, centres = tiled_labels()
    h, w = labels.shape
    for name, mask in (("a", "a_cp_masks.png"), ("b", "b_masks.tif"), ("c", "c-mask.png")):
        cv2.imwrite(str(tmp_path / f"{name}.png"), np.zeros((h, w, 3), np.uint8))
        cv2.imwrite(str(tmp_path / mask), labels)
    pairs = layout.folder_pairs(tmp_path)
    assert {k: (v[1].name, v[2]) for k, v in pairs.items()} == {
        "a": ("a_cp_masks.png", "dot mask"), "b": ("b_masks.tif", "dot mask"),
        "c": ("c-mask.png", "dot mask")}
    for s in readers.read_folder(tmp_path):
        assert s.centres.tolist() == centres.tolist()


def test_a_stardist_layout_reads_label_tiffs_named_as_their_images(tmp_path):
    labels, centres = tiled_labels(rows=4, cols=4)
    for d in ("images", "masks"):
        (tmp_path / d).mkdir()
    for k in range(3):
        cv2.imwrite(str(tmp_path / "images" / f"{k}.tif"), np.zeros(labels.shape, np.uint8))
        cv2.imwrite(str(tmp_path / "masks" / f"{k}.tif"), labels)
    got = readers.read_folder(tmp_path)
    assert [len(s.centres) for s in got] == [16, 16, 16]


def test_a_float_mask_or_one_without_background_is_no_label_mask():
    labels, _ = tiled_labels(dtype=np.float32)
    assert annotations.label_centres(labels) is None
    labels, _ = tiled_labels()
    assert annotations.label_centres(labels + 1) is None     # no 0: nothing is background


def test_signed_and_16_bit_colour_labels_are_labels():
    """32-bit signed labels (a segmentation saved as int32) and a colour per cell in 16 bits a
    channel, whose colours (256, 0, 0) and (0, 1, 0) differ (not one number)."""
    labels, centres = tiled_labels()
    assert annotations.label_centres(labels.astype(np.int32)).tolist() == centres.tolist()
    two = np.zeros((10, 12, 3), np.uint16)
    two[2:6, 2:6] = (256, 0, 0)
    two[2:6, 6:10] = (0, 1, 0)                               # touching the first
    assert annotations.label_centres(two).tolist() == [[3.5, 3.5], [7.5, 3.5]]


def test_labels_in_pieces_up_to_the_spare_share_and_diagonal_pixels_are_one_piece(tmp_path):
    labels, _ = tiled_labels(rows=4, cols=5, gap=2)
    labels[0:2, 0:2] = 20                 # 21 pieces of 20 labels: exactly the 5 % spare
    assert len(annotations.read_dot_mask(_write(tmp_path / "h_masks.png", labels))) == 20
    diagonal = np.zeros((20, 20), np.uint8)
    for k, (x, y) in enumerate(((2, 2), (10, 2), (2, 10), (10, 10)), 1):
        diagonal[[y, y + 1, y + 2], [x, x + 1, x + 2]] = k   # 8-connected: one region each
    assert annotations.label_centres(diagonal).tolist() == [[3, 3], [11, 3], [3, 11], [11, 11]]


def test_a_jpeg_dot_mask_is_never_read_as_labels(tmp_path):
    """JPEG noise gives a dot's rim values of their own: still one dot, one cell."""
    mask = np.zeros((32, 32), np.uint8)
    mask[16, 16] = 255
    path = tmp_path / "i_dots.jpg"
    cv2.imwrite(str(path), mask, [cv2.IMWRITE_JPEG_QUALITY, 100])
    assert annotations.read_dot_mask(path).tolist() == [[16, 16]]


# --- Cellpose's own file, NAME_seg.npy -----------------------------------------------------------

def _seg(path, masks, **more):
    """A _seg.npy as Cellpose's GUI saves one: numpy.save of a dict."""
    flows = [np.zeros(masks.shape + (3,), np.uint8), np.zeros((2,) + masks.shape, np.float32)]
    np.save(path, {"outlines": np.zeros_like(masks), "masks": masks, "chan_choose": [0, 0],
                   "ismanual": np.zeros(int(masks.max()), bool), "filename": str(path),
                   "flows": flows, "est_diam": np.float64(17.0), **more}, allow_pickle=True)
    return path


def test_a_cellpose_seg_file_counts_each_label_at_its_centroid(tmp_path):
    cv2.imwrite(str(tmp_path / "img.png"), np.zeros((20, 30, 3), np.uint8))
    masks = np.zeros((20, 30), np.uint16)
    masks[2:5, 2:5] = 1
    masks[10:14, 20:24] = 7
    masks[10:14, 24:26] = 3                     # touching 7: its own cell
    _seg(tmp_path / "img_seg.npy", masks)
    assert layout.folder_pairs(tmp_path)["img"][2] == annotations.CELLPOSE
    s, = readers.read_folder(tmp_path)
    np.testing.assert_allclose(s.centres, [[3, 3], [24.5, 11.5], [21.5, 11.5]])


def test_a_seg_file_that_would_run_code_is_not_loaded(tmp_path):
    """A pickle may call any function on loading; only arrays and plain containers are let in,
    so this file's os.system is refused, not run."""
    import os
    import pickle

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'ran'}",))
    path = tmp_path / "a_seg.npy"
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "|O", "fortran_order": False,
                                                 "shape": ()})
        pickle.dump(np.array({"masks": Evil()}, dtype=object), f)
    with pytest.raises(DatasetError, match=r"cannot read .*a_seg\.npy as Cellpose's _seg\.npy: "
                                           r"it holds objects other than arrays \(posix\.system|"
                                           r"os\.system"):
        annotations.read_cellpose_seg(path)
    assert not (tmp_path / "ran").exists()


def test_seg_files_of_the_wrong_size_or_depth_or_no_masks_are_named(tmp_path):
    path = _seg(tmp_path / "b_seg.npy", np.zeros((20, 30), np.uint16))
    with pytest.raises(DatasetError, match=r"b_seg\.npy: its masks are 30x20 px but its image "
                                           r"is 40x20"):
        annotations.read_cellpose_seg(path, (20, 40, 3))
    assert annotations.read_cellpose_seg(path, (20, 30, 3)).shape == (0, 2)
    _seg(path, np.zeros((3, 20, 30), np.uint16))
    with pytest.raises(DatasetError, match=r"not one 2-D image of labels"):
        annotations.read_cellpose_seg(path)
    np.save(path, {"outlines": np.zeros((2, 2))}, allow_pickle=True)
    with pytest.raises(DatasetError, match=r"holds no dict with the array 'masks'.*b_cp_masks\.png"):
        annotations.read_cellpose_seg(path)
    path.write_bytes(b"not numpy")
    with pytest.raises(DatasetError, match=r"is not a numpy file that Cellpose wrote"):
        annotations.read_cellpose_seg(path)


def test_another_npy_beside_the_images_is_no_annotation(tmp_path):
    for name in ("a", "b"):
        cv2.imwrite(str(tmp_path / f"{name}.png"), np.zeros((10, 10, 3), np.uint8))
        (tmp_path / f"{name}.csv").write_text("x,y\n1,2\n")
    np.save(tmp_path / "features.npy", np.zeros(3))
    assert sorted(layout.folder_pairs(tmp_path)) == ["a", "b"]


def test_prepare_names_a_folder_of_masks_as_dot_or_label_masks(tmp_path, workdirs):
    """A mask is told dots or labels when it is read, so prepare's summary does not call a
    folder of Cellpose label masks "dot mask"."""
    from pycount import config
    from pycount.data import owndata
    labels, _ = tiled_labels()
    root = tmp_path / "cells"
    root.mkdir()
    for name in ("a", "b", "c"):
        cv2.imwrite(str(root / f"{name}.png"), np.zeros(labels.shape + (3,), np.uint8))
        cv2.imwrite(str(root / f"{name}_cp_masks.png"), labels)
    said = []
    owndata.resolve(config.dataset(str(root)), say=said.append)
    assert said[0] == f"cells: 3 annotated images (dot or label mask) in {root}"


# --- binary segmentations of whole cells --------------------------------------------------------

def _ellipses(rng, n=40, lo=9, hi=16, side=600):
    """A binary mask of n separate filled ellipses (semi-axes lo-hi px, aspect 0.55-1, any
    angle): nuclei as a threshold or a segmentation tool leaves them."""
    mask, placed = np.zeros((side, side), np.uint8), []
    while len(placed) < n:
        c, r = rng.integers(25, side - 25, 2), int(rng.integers(lo, hi))
        if all(np.hypot(*(c - p)) > r + q + 3 for p, q in placed):
            placed.append((c, r))
            cv2.ellipse(mask, (int(c[0]), int(c[1])), (r, int(r * rng.uniform(0.55, 1.0))),
                        float(rng.uniform(0, 180)), 0, 360, 255, -1)
    return mask


def test_a_binary_segmentation_of_large_cells_is_a_cell_per_region(tmp_path):
    """Cells 18-32 px across, elongated and of many sizes: each region one cell (the disc rules
    read 51 of these 40, splitting the elongated ones); discs of one large brush, some touching
    in pairs, still count two a pair."""
    path = tmp_path / "seg_mask.png"
    cv2.imwrite(str(path), _ellipses(np.random.default_rng(1)))
    assert len(annotations.read_dot_mask(path)) == 40
    discs = np.zeros((600, 600), np.uint8)
    drawn = 0
    for k in range(30):
        x, y = 50 + 100 * (k % 6), 50 + 110 * (k // 6)
        cv2.circle(discs, (x, y), 8, 255, -1)
        drawn += 1
        if k % 3 == 0:
            cv2.circle(discs, (x + 15, y), 8, 255, -1)
            drawn += 1
    cv2.imwrite(str(path), discs)
    assert drawn == 40 and len(annotations.read_dot_mask(path)) == 40


def test_label_masks_named_with_a_hyphen_pair_too(tmp_path):
    """NAME-label.tiff as NAME_label.tiff: the label mask of NAME."""
    labels, centres = tiled_labels()
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros(labels.shape + (3,), np.uint8))
    cv2.imwrite(str(tmp_path / "a-label.tiff"), labels)
    assert layout.folder_pairs(tmp_path)["a"][1:] == (tmp_path / "a-label.tiff", "dot mask")
    s, = readers.read_folder(tmp_path)
    assert s.centres.tolist() == centres.tolist()


def test_a_seg_file_that_would_eval_code_is_not_loaded(tmp_path):
    """builtins.eval is no array: refused like os.system, nothing run."""
    import pickle

    class Evil:
        def __reduce__(self):
            return (eval, (f"open({str(tmp_path / 'ran')!r}, 'w').close()",))
    path = tmp_path / "a_seg.npy"
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "|O", "fortran_order": False,
                                                 "shape": ()})
        pickle.dump(np.array({"masks": Evil()}, dtype=object), f)
    with pytest.raises(DatasetError, match=r"it holds objects other than arrays \(builtins\.eval\)"):
        annotations.read_cellpose_seg(path)
    assert not (tmp_path / "ran").exists()


def test_a_seg_file_saved_by_numpy_2_is_read(tmp_path):
    """numpy 2 pickles its arrays as numpy._core.multiarray._reconstruct: the same arrays."""
    masks = np.zeros((20, 30), np.uint16)
    masks[2:5, 2:5] = 1
    path = _seg(tmp_path / "img_seg.npy", masks)
    data = path.read_bytes()
    if b"numpy._core." not in data:
        path.write_bytes(data.replace(b"numpy.core.", b"numpy._core."))
    assert b"numpy._core.multiarray" in path.read_bytes()
    assert annotations.read_cellpose_seg(path).tolist() == [[3, 3]]


def test_seg_masks_of_floats_are_no_labels(tmp_path):
    path = _seg(tmp_path / "f_seg.npy", np.ones((20, 30), np.float32))
    with pytest.raises(DatasetError, match=r"f_seg\.npy: its masks are float32 of shape \(20, 30\), "
                                           r"not one 2-D image of labels"):
        annotations.read_cellpose_seg(path)


def test_a_mask_of_two_values_without_0_reads_the_rarer_as_marks(tmp_path, capsys):
    """ilastik's Simple Segmentation labels each pixel 1 or 2 (no 0): the rarer value is the
    marks (it was refused as 'mostly marked'); a mask of three such values (three classes) is
    refused naming its values and what to export instead (it read 'marks 100% of its pixels (is
    it inverted...)')."""
    mask = np.full((40, 60), 2, np.uint8)
    for x, y in ((10, 10), (30, 20), (50, 30)):
        mask[y - 1:y + 2, x - 1:x + 2] = 1
    path = tmp_path / "a_mask.png"
    cv2.imwrite(str(path), mask)
    assert annotations.read_dot_mask(path).tolist() == [[10, 10], [30, 20], [50, 30]]
    assert "two values, 1 and 2: the rarer, 1, is read as the marks" in capsys.readouterr().err
    mask[0, 0] = 3
    cv2.imwrite(str(path), mask)
    with pytest.raises(DatasetError, match=r"a_mask\.png has no 0 but 3 values \(1, 2, 3\), each "
                                           r"pixel one of a few classes .* ilastik's Simple "
                                           r"Segmentation .*an object label image"):
        annotations.read_dot_mask(path)
    # many values without 0 (no classifier's classes): the rules of a dot mask, as before
    mask[:] = np.arange(60, dtype=np.uint8)[None] + 1
    cv2.imwrite(str(path), mask)
    with pytest.raises(DatasetError, match="marks 100% of its pixels"):
        annotations.read_dot_mask(path)
