"""A lab's own folder (DATASET=path/to/folder): config.dataset's folder branch, the settings
pycount.data.owndata infers from constructed data (known spacing, colour, sizes), overrides by the
command line and pycount.toml, padding of small images, the iterations rule, and the whole path
prepare -> train -> eval -> count through the command line, counting without the folder."""
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import time
import weakref

import cv2
import numpy as np
import pytest

from pycount import cli, config
from pycount.data import density_targets, lmdbio, owndata, prepare, readers
from pycount.data.commands import dataset_words
from pycount.errors import ConfigError, DatasetError

COLOUR = (10, 20, 30)   # RGB of every constructed image


def lattice(side: int, spacing: int, offset: int = 3) -> np.ndarray:
    """Dots on a square lattice: every dot's nearest neighbour is exactly `spacing` px away."""
    g = np.arange(offset, side - 1, spacing, dtype=np.float64)
    xs, ys = np.meshgrid(g, g)
    return np.stack([xs.ravel(), ys.ravel()], axis=1)


def make_folder(root, n=8, side=120, spacing=10, small=(), colour=COLOUR):
    """n constant-colour PNG images (RGB `colour`) with x,y CSVs; the ids in `small` are 30x30 px."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        s = 30 if f"i{i:02d}" in small else side
        img = np.zeros((s, s, 3), np.uint8) + np.array(colour[::-1], np.uint8)   # BGR on disk
        cv2.imwrite(str(root / f"i{i:02d}.png"), img)
        c = lattice(s, spacing)
        (root / f"i{i:02d}.csv").write_text("x,y\n" + "".join(f"{x},{y}\n" for x, y in c))
    return root


def resolved(folder, **overrides):
    return owndata.resolve(config.with_overrides(config.dataset(str(folder)), **overrides),
                           say=lambda _: None)


# --- config: the folder branch ---------------------------------------------------------------------

def test_config_reads_a_folder_with_the_standard_library_only(tmp_path):
    folder = make_folder(tmp_path / "my cells", n=3)
    (folder / "pycount.toml").write_text('patch = 52\nmarker = 2\n')
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from pycount import config; "
            "ds = config.dataset(sys.argv[2]); "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('numpy', 'cv2', 'scipy')]; "
            "print(ds.name, ds.layout, ds.patch, ds.marker, ds.spec, bad)")
    out = subprocess.run([sys.executable, "-c", code, str(config.ROOT), str(folder)],
                         capture_output=True, text=True, check=True).stdout
    assert out.split("(")[0].split() == ["my", "cells", "folder", "52", "2"]
    assert out.strip().endswith("('marker', 'patch') []")


def test_folder_names_and_missing_folders(tmp_path):
    assert config.dataset(str(make_folder(tmp_path / "mice", n=3))).name == "mice"
    assert config.dataset(str(make_folder(tmp_path / "nuclei", n=3))).name == "nuclei-own"
    (tmp_path / "mice" / "pycount.toml").write_text('name = "mouse-liver"\n')
    assert config.dataset(str(tmp_path / "mice")).name == "mouse-liver"
    with pytest.raises(ConfigError, match="dataset folder .*nope/x does not exist"):
        config.dataset(str(tmp_path / "nope" / "x"))
    assert "does not exist" in config.check_names(str(tmp_path / "nope" / "x"))
    image = next((tmp_path / "mice").glob("*.png"))      # an image given for its folder
    with pytest.raises(ConfigError) as err:
        config.dataset(str(image))
    assert str(err.value) == (f"{image} is a file, not a folder: DATASET names the folder that "
                              f"holds the images and their annotations (for this file's, "
                              f"{tmp_path / 'mice'})")


@pytest.mark.parametrize("text, needle", [
    ("patchh = 3\n", "unknown setting 'patchh' \\(did you mean patch\\?\\); valid: "),
    ("Sigma = 3\n", "unknown setting 'Sigma' \\(did you mean sigma\\?\\)"),
    ("sigma = 2\n# wider\nsigma = 3\n", "sigma is set twice \\(lines 1 and 3\\); keep one"),
    ("sigma = 2\n[extra]\nsigma = 3\n", "unknown setting 'extra'"),   # a table's own key
    ("patch = -4\n", "patch = -4 is not valid"),
    ('sigma = "wide"\n', "sigma = 'wide' is not valid"),
    ("crop = 50\n", "crop = 50 must be a multiple of 8"),
    ("patch = \n", "cannot parse it"),
])
def test_a_bad_spec_file_is_named(tmp_path, text, needle):
    folder = make_folder(tmp_path / "f", n=3)
    (folder / "pycount.toml").write_text(text)
    with pytest.raises(ConfigError, match=f"{folder / 'pycount.toml'}: .*{needle}"):
        config.dataset(str(folder))


def test_the_python_3_10_spec_parser_reads_what_tomllib_reads():
    import tomllib
    text = ('name = "a # b"  # a comment\npatch = 52\nsigma = 2.5\ntest = ["i00", "i05"]\n'
            "mean_rgb = [1, 2.5, 3]\n# a line of comment\n\nmarker = 'Positive'\n")
    assert config._parse_simple(text) == tomllib.loads(text)
    with pytest.raises(ValueError):
        config._parse_simple("patch 52\n")


# --- inferred settings -----------------------------------------------------------------------------

def test_settings_inferred_from_the_spacing_the_colour_and_the_split(tmp_path, workdirs):
    folder = make_folder(tmp_path / "f", n=11, side=120, spacing=10)
    lines = []
    ds = owndata.resolve(config.dataset(str(folder)), say=lines.append)
    # d = 10: patch 4.5 d = 45 -> 44 (multiple of 4), sigma d/6 = 1.67 -> 1.5, crop 7.5 d = 75 -> 72
    assert (ds.patch, ds.stride, ds.sigma, ds.crop, ds.rot_step) == (44, 22, 1.5, 72, 30)
    assert ds.mean_bgr == (30.0, 20.0, 10.0)
    # 12 x 12 dots per 120 px image: twice that density over a 44 px patch, + 10
    assert ds.max_patch_count == int(np.ceil(2 * 144 / 120 ** 2 * 44 ** 2)) + 10
    # the stride: half the crop gives the fewest crops within the budget here
    assert ds.crop_stride == 32
    # split: prepare's seeded draw, 2 of 11 test images
    assert (list(ds.train_ids), list(ds.test_ids)) == prepare.draw_split(
        [f"i{i:02d}" for i in range(11)])
    assert len(ds.test_ids) == 2 and not ds.variant and ds.tag == "f"
    text = "\n".join(lines)
    assert "cell spacing" in text and "10.0 px" in text and "4.5 x the cell spacing" in text
    assert "mean colour of the training images" in text


def test_the_spacing_is_the_median_dots_and_the_classes_the_densest_images(tmp_path, workdirs):
    """Four training images of cells 10 px apart (576 dots) and three of cells 40 px apart (27
    dots): the spacing is the median dot's, 10 px (their mean, 11.3 px, gave patch 52, sigma 2
    and crop 88), and the C head's classes follow the densest image: 2 x 144 / 120^2 x 44^2 =
    38.7 -> 39, + 10 (the sparsest image's 9 dots gave 3 + 10)."""
    folder = make_folder(tmp_path / "f", n=9)
    for i in (6, 7, 8):
        (folder / f"i{i:02d}.csv").write_text(
            "x,y\n" + "".join(f"{x},{y}\n" for x, y in lattice(120, 40)))
    (folder / "pycount.toml").write_text('test = ["i00", "i01"]\n')
    lines = []
    ds = owndata.resolve(config.dataset(str(folder)), say=lines.append)
    assert (ds.patch, ds.stride, ds.sigma, ds.crop, ds.max_patch_count) == (44, 22, 1.5, 72, 49)
    assert ("  cell spacing        10.0 px  median distance of a dot to its nearest neighbour "
            "(603 dots in 7 training images)") in lines, lines


def test_the_mean_colour_weighs_each_training_image_by_its_pixels(tmp_path, workdirs):
    """Four 120 px training images of RGB (10, 20, 30) and one 240 px image of (50, 60, 70): as
    many pixels each way, so the mean is halfway, (30, 40, 50), given as B, G, R (the mean of
    the five images' means gave (38, 28, 18))."""
    folder = make_folder(tmp_path / "f", n=7)
    cv2.imwrite(str(folder / "i06.png"), np.full((240, 240, 3), (70, 60, 50), np.uint8))  # BGR
    (folder / "i06.csv").write_text("x,y\n" + "".join(f"{x},{y}\n" for x, y in lattice(240, 10)))
    (folder / "pycount.toml").write_text('test = ["i00", "i01"]\n')
    assert resolved(folder).mean_bgr == (50.0, 40.0, 30.0)


def _mark_twice(folder, name, k, shift=0.3):
    """The first k marks of `name`'s CSV marked a second time, `shift` px off (a double click)."""
    csv_file = folder / f"{name}.csv"
    rows = csv_file.read_text().splitlines()
    again = [f"{float(x) + shift:g},{y}" for x, y in (r.split(",") for r in rows[1:1 + k])]
    csv_file.write_text("\n".join(rows + again) + "\n")


def test_a_folder_marked_twice_over_is_refused_by_file(tmp_path, workdirs):
    """Every cell marked twice (annotations exported twice into one file) measured a cell spacing
    of 0 px (patch 24, sigma 1 where 10 px cells get 44 and 1.5), and each cell would have been
    learned and counted twice, with nothing said."""
    folder = make_folder(tmp_path / "f", n=6)
    once = resolved(folder)
    for i in range(6):                                 # at the very same positions: each
        _mark_twice(folder, f"i{i:02d}", 144, shift=0)  # position counts once, nothing refused
    assert [s.count for s in readers.read_folder(folder)] == [144] * 6
    again = resolved(folder)
    assert (again.patch, again.sigma, again.crop) == (once.patch, once.sigma, once.crop)
    for i in range(6):                                 # 0.3 px off: double clicks
        _mark_twice(folder, f"i{i:02d}", 144)
    with pytest.raises(DatasetError) as refused:
        resolved(folder)
    message = str(refused.value)
    assert message.startswith(f"1728 of the 1728 marks in {folder} lie within 1 px of another "
                              f"mark (i00.csv 288, i01.csv 288, i02.csv 288 and 3 more): one cell "
                              f"marked twice"), message
    assert message.endswith("Remove the second mark of each pair from those files"), message


def test_marks_twice_over_of_a_class_not_counted_are_no_duplicates_of_the_count(tmp_path,
                                                                                workdirs):
    """With MARKER= the duplicates are those of the counted marks: another class marked twice
    is neither counted nor learned (it was refused as 'counted as two cells')."""
    folder = make_folder(tmp_path / "f", n=6)
    for i in range(6):
        csv_file = folder / f"i{i:02d}.csv"
        rows = csv_file.read_text().splitlines()[1:]
        # the lattice as class "a"; its first 50 marks again as class "b", twice each (the
        # second 0.3 px off: a double click)
        again = rows[:50] + [f"{float(x) + 0.3:g},{y}" for x, y in (r.split(",")
                                                                   for r in rows[:50])]
        csv_file.write_text("x,y,class\n" + "".join(f"{r},a\n" for r in rows)
                            + "".join(f"{r},b\n" for r in again))
    ds = resolved(folder, marker="a")
    assert (ds.patch, ds.sigma) == (44, 1.5)
    with pytest.raises(DatasetError, match=r"600 of the 600 marks in .* lie within 1 px"):
        resolved(folder, marker="b")


def test_a_few_double_clicks_are_named_and_leave_the_spacing_as_it_is(tmp_path, workdirs):
    folder = make_folder(tmp_path / "f", n=11)
    _mark_twice(folder, "i03", 3)
    lines = []
    ds = owndata.resolve(config.dataset(str(folder)), say=lines.append)
    assert (ds.patch, ds.sigma, ds.crop) == (44, 1.5, 72)        # as without them (d = 10 px)
    text = "\n".join(lines)
    assert ("warning: 6 of the 1587 marks in " in text and "lie within 1 px of another mark "
            "(i03.csv 6)" in text and "each pair counts as two cells: remove the second mark of "
            "each from those files" in text), text


def test_double_clicks_up_to_5_percent_of_the_marks_are_named_and_more_refused(tmp_path,
                                                                               workdirs):
    """Six 130 px images of 169 marks each: 26 double clicks make 52 of the 1040 marks, 5.0 %
    exactly, named in a warning; one more makes 54 of 1041, over 5 %, refused."""
    folder = make_folder(tmp_path / "f", n=6, side=130)
    _mark_twice(folder, "i00", 26)
    lines = []
    owndata.resolve(config.dataset(str(folder)), say=lines.append)
    assert any(line.startswith(f"  warning: 52 of the 1040 marks in {folder} lie within 1 px of "
                               f"another mark (i00.csv 52)") for line in lines), lines
    _mark_twice(folder, "i01", 1)
    with pytest.raises(DatasetError) as refused:
        resolved(folder)
    assert str(refused.value).startswith(f"54 of the 1041 marks in {folder} lie within 1 px of "
                                         f"another mark (i00.csv 52, i01.csv 2): one cell "
                                         f"marked twice"), str(refused.value)


def test_one_large_image_among_small_ones_is_named(tmp_path, workdirs):
    """Six 120 px images and one of 600 px: over 80 % of the training crops came from the large
    one, and nothing said so. (Said by area, which the crops and patches of any model follow.)"""
    folder = make_folder(tmp_path / "f", n=7)
    img = np.zeros((600, 600, 3), np.uint8) + np.array(COLOUR[::-1], np.uint8)
    cv2.imwrite(str(folder / "i02.png"), img)
    (folder / "i02.csv").write_text("x,y\n" + "".join(f"{x},{y}\n" for x, y in lattice(600, 10)))
    lines = []
    ds = owndata.resolve(config.dataset(str(folder)), say=lines.append)
    assert "i02" in ds.train_ids
    note = [line for line in lines if "of the training images' area, the other" in line]
    assert len(note) == 1 and note[0].startswith("  note: i02 (600x600 px) holds "), lines
    assert int(note[0].split("holds ")[1].split("%")[0]) == round(100 * 600 ** 2 / (600 ** 2 + (len(ds.train_ids) - 1) * 120 ** 2))
    cv2.imwrite(str(folder / "i02.png"), img[:120, :120])
    (folder / "i02.csv").write_text("x,y\n" + "".join(f"{x},{y}\n" for x, y in lattice(120, 10)))
    lines.clear()
    owndata.resolve(config.dataset(str(folder)), say=lines.append)
    assert not any("of the training images' area" in line for line in lines)


def test_a_command_line_window_over_the_spec_files_is_tagged(tmp_path, workdirs):
    """PATCH= over a pycount.toml's patch names other LMDBs and runs: the folder's defaults are
    its pycount.toml's (they were the command line's, so a patch-60 run took the name of the
    folder's patch-52 one and its snapshots refused the next default training)."""
    folder = make_folder(tmp_path / "f", n=6)
    (folder / "pycount.toml").write_text("patch = 52\n")
    ds = resolved(folder, patch=60)
    assert (ds.patch, ds.stride, ds.defaults[:2], ds.tag) == (60, 30, (52, 26), "f-p60-s30-r30")
    assert resolved(folder, patch=52).tag == resolved(folder).tag == "f"
    assert resolved(folder, scale=0.5).tag == "f-x0.5"        # the windows follow the scale


def test_marker_chooses_the_type_counted_and_names_its_own_runs(tmp_path, workdirs):
    """MARKER= (the Ki67 case: positive and negative nuclei in one Cell Counter file, one
    counter each): the cells of that type only, its own LMDBs and runs beside the folder's;
    refused for annotations without types and for the named datasets."""
    folder = make_folder(tmp_path / "ki", n=6, side=64, spacing=8)
    for csv in folder.glob("*.csv"):
        xy = [tuple(map(float, r.split(","))) for r in csv.read_text().split()[1:]]
        types = {1: xy[::2], 2: xy[1::2]}
        (folder / f"{csv.stem}.xml").write_text(
            "<CellCounter_Marker_File><Marker_Data>" + "".join(
                f"<Marker_Type><Type>{t}</Type>" + "".join(
                    f"<Marker><MarkerX>{int(x)}</MarkerX><MarkerY>{int(y)}</MarkerY></Marker>"
                    for x, y in pts) + "</Marker_Type>" for t, pts in types.items())
            + "</Marker_Data></CellCounter_Marker_File>")
        csv.unlink()
    every, second = resolved(folder), resolved(folder, marker="2")
    assert (every.tag, second.tag, resolved(folder, marker="all").tag) == (
        "ki", "ki-marker-2", "ki")
    # the windows follow the spacing of every mark (the cells' size), not the sparser type's
    assert (second.patch, second.sigma, second.crop) == (every.patch, every.sigma, every.crop)
    assert second.marker == "2" and every.marker == ""
    args = ["--dataset", str(folder), "--model", "fcrn"]
    assert cli.main(["prepare", *args, "--marker", "2"]) == 0
    n = len(lattice(64, 8))
    kept = lmdbio.read_manifest(config.density_lmdbs(second, "val")[0])
    assert kept["dataset"] == "ki" and (workdirs / "data" / "lmdb" / "ki-marker-2").is_dir()
    counts = {s.id: s.count for s in prepare.load_split(second)[1]["test"]}
    assert list(counts.values()) == [n // 2]
    from pycount.errors import TrainError
    from pycount.training import trainer
    with pytest.raises(TrainError, match=f"make prepare DATASET={folder} MARKER=1 MODEL=fcrn`"):
        trainer.Trainer(resolved(folder, marker="1"), config.model("fcrn"))
    with pytest.raises(ConfigError, match="MARKER=2: nuclei has no marker types"):
        config.with_overrides(config.dataset("nuclei"), marker="2")
    plain = make_folder(tmp_path / "plain", n=6)
    with pytest.raises(DatasetError, match=r"i00.csv has no class column .* for the marker '2'"):
        resolved(plain, marker="2")
    # a table with a class column (QuPath's measurements): the marker chooses its rows
    for csv in plain.glob("*.csv"):
        rows = csv.read_text().split()[1:]
        csv.write_text("x,y,Class\n" + "".join(
            f"{r},{'Positive' if k % 3 == 0 else 'Negative'}\n" for k, r in enumerate(rows)))
    positive = resolved(plain, marker="Positive")
    got = {s.id: s.count for s in prepare.load_split(positive)[1]["test"]}
    n = len(lattice(120, 10))
    assert positive.tag == "plain-marker-Positive" and list(got.values()) == [(n + 2) // 3]
    for mask in ("i00", "i01", "i02", "i03", "i04", "i05"):       # dot masks: no classes
        (plain / f"{mask}.csv").unlink()
        cv2.imwrite(str(plain / f"{mask}_dots.png"), np.pad(np.eye(4, dtype=np.uint8) * 255,
                                                            ((0, 116), (0, 116))))
    with pytest.raises(DatasetError, match=r"MARKER= chooses the marker '2', but .*plain's "
                                           r"annotations \(dot masks\) have no marker types"):
        resolved(plain, marker="2")


def test_the_command_line_and_the_spec_file_win_and_say_so(tmp_path, workdirs):
    folder = make_folder(tmp_path / "f", n=6)
    lines = []
    ds = owndata.resolve(config.with_overrides(config.dataset(str(folder)), patch=60, sigma=2.5),
                         say=lines.append)
    assert (ds.patch, ds.stride, ds.sigma, ds.crop) == (60, 30, 2.5, 72)
    assert ds.defaults == (44, 22, 30, 1.5, 72, 32, 1.0, "", 0.0, 0.0)
    assert ds.tag == "f-p60-s30-r30-sigma2.5"
    assert any("PATCH= given" in l for l in lines) and any("SIGMA= given" in l for l in lines)
    # CROP= as well: its stride follows it, and both name the LMDBs and runs
    lines = []
    ds = owndata.resolve(config.with_overrides(config.dataset(str(folder)), crop=48),
                         say=lines.append)
    assert (ds.crop, ds.crop_stride, ds.tag) == (48, 24, "f-crop48-s24")
    assert any("CROP= given" in l for l in lines)
    assert config.with_overrides(config.dataset("nuclei"), crop=128).tag == "nuclei-crop128-s96"
    for bad in (100, 0, -8):
        with pytest.raises(ConfigError, match=f"CROP={bad} is not valid"):
            config.with_overrides(config.dataset("nuclei"), crop=bad)
    with pytest.raises(ConfigError, match="CROP_STRIDE=0 is not valid: use a positive number"):
        config.with_overrides(config.dataset("nuclei"), crop_stride=0)
    (folder / "pycount.toml").write_text(
        'patch = 52  # cells are larger than they look\nsigma = 3.0\ntest = ["i00", "i05"]\n'
        'mean_rgb = [1, 2, 3]\n')
    lines = []
    ds = owndata.resolve(config.dataset(str(folder)), say=lines.append)
    assert (ds.patch, ds.stride, ds.sigma, ds.test_ids, ds.mean_bgr) == (
        52, 26, 3.0, ("i00", "i05"), (3.0, 2.0, 1.0))
    assert ds.tag == "f" and sum("pycount.toml" in l for l in lines) == 4
    (folder / "pycount.toml").write_text('test = ["i99"]\n')
    with pytest.raises(DatasetError) as err:
        resolved(folder)
    assert str(err.value).startswith(f"{folder / 'pycount.toml'} names test images that are not "
                                     f"in {folder}: i99; correct the names")
    assert "suffix)" in str(err.value)          # no image's name holds "i99": no names offered
    # ids written without the part every name shares (VGG's 101cell.png as "101"): the names meant
    (folder / "pycount.toml").write_text('test = ["03", "05"]\n')
    with pytest.raises(DatasetError, match=r"not in .*: 03, 05; correct the names \(the image "
                                           r"files' names without their suffix; perhaps i03, "
                                           r"i05\)"):
        resolved(folder)
    # no guess where a name only continues the id ("3" of i03, "i0" of i00...i07) or the name
    # is in the test list already
    for test in ('["3"]', '["i0"]', '["03", "i03"]'):
        (folder / "pycount.toml").write_text(f"test = {test}\n")
        with pytest.raises(DatasetError) as err:
            resolved(folder)
        assert "perhaps" not in str(err.value), test


def test_patch_and_crop_adapt_to_small_images(tmp_path, workdirs):
    # d = 40 asks for 180 px patches and 192 px crops; the 100 px images cap both
    ds = resolved(make_folder(tmp_path / "f", n=5, side=100, spacing=40))
    assert (ds.patch, ds.crop) == (100, 96)


def test_tiny_images_get_the_smallest_windows_and_sigma_the_rules_allow(tmp_path, workdirs):
    """20 px images of cells 4 px apart: 4.5 x 4 = 18 -> 16 px patches, 7.5 x 4 = 30 -> 32 px
    crops and 4 / 6 -> 0.5 px sigma, each below its floor (24, 48 and 1 px): the floors, the
    images padded to them, not windows cut to the 20 px the images hold. Images of the patch
    floor's 24 px still cut a larger patch to them (6 px apart: 27 -> 28 px, cut to 24)."""
    ds = resolved(make_folder(tmp_path / "f", n=8, side=20, spacing=4))
    assert (ds.patch, ds.stride, ds.crop, ds.sigma) == (24, 12, 48, 1.0)
    ds = resolved(make_folder(tmp_path / "g", n=8, side=24, spacing=6))
    assert (ds.patch, ds.crop) == (24, 48)


def test_images_smaller_than_the_patch_are_padded_with_the_mean_colour(tmp_path, workdirs, capsys):
    ds = resolved(make_folder(tmp_path / "f", n=8, side=120, small=("i01", "i02")))
    samples = prepare.load(ds, ["i00", "i01"], side=ds.patch)
    assert samples[0].image.shape == (120, 120, 3) and samples[1].image.shape == (44, 44, 3)
    assert (samples[1].image == COLOUR).all()           # the padding is the mean colour
    assert samples[1].count == len(lattice(30, 10))      # and holds no cell
    assert "1 image(s) smaller than 44 px padded with the mean colour" in capsys.readouterr().out
    # prepare names the part each note is of (it notes each part once)
    prepare.load(ds, ["i01", "i02"], side=ds.patch, part="val")
    assert "2 validation image(s) smaller than 44 px padded" in capsys.readouterr().out


def test_prepare_checks_the_test_images_one_at_a_time_and_keeps_none(tmp_path, workdirs,
                                                                     monkeypatch, capsys):
    """An own folder's images are read lazily (iter_folder: one decoded per sample asked for);
    prepare reads the test images so, checking each (a broken one refused by name, a small one
    said to be padded), and keeps none of them."""
    folder = make_folder(tmp_path / "f", n=8, side=120, small=("i07",))
    (folder / "pycount.toml").write_text('test = ["i06", "i07"]\n')
    ds = resolved(folder)
    decoded = []
    real = readers.read_in_range
    monkeypatch.setattr(readers, "read_in_range",
                        lambda path, *a: decoded.append(path) or real(path, *a))
    stream = readers.iter_folder(folder, ["i00", "i01", "i02"])
    assert next(stream).id == "i00" and decoded == [folder / "i00.png"]
    decoded.clear()
    ids, loaded = prepare.load_split(ds, side=ds.crop, keep=("train", "val"))
    assert loaded["test"] == [] and ids["test"] == ["i06", "i07"]
    assert len(loaded["train"]) + len(loaded["val"]) == 6 and len(decoded) == 8
    assert "1 test image(s) smaller than 72 px padded" in capsys.readouterr().out
    # (eval's mean-count baseline takes the training images' counts so)
    assert prepare.check(ds, ["i00", "i07"]) == [s.count for s in prepare.load(ds, ["i00", "i07"])]
    (folder / "i06.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match=re.escape(f"cannot decode {folder / 'i06.png'}")):
        prepare.load_split(ds, side=ds.crop, keep=("train", "val"))


def test_eval_holds_one_test_image_at_a_time(tmp_path, workdirs, monkeypatch, capsys):
    """eval reads and checks every test image first, then reads each again as it counts it:
    never more than the image counted and the one read after it are held (it held all of
    them, 6 here), and the counts are those of the images as they are."""
    folder = make_folder(tmp_path / "cells", n=10, side=64, spacing=8, small=("i09",))
    test = [f"i{i:02d}" for i in range(4, 10)]
    (folder / "pycount.toml").write_text("test = [" + ", ".join(f'"{i}"' for i in test) + "]\n")
    args = ["--dataset", str(folder), "--model", "fcrn"]
    assert cli.main(["prepare", *args]) == 0
    assert cli.main(["train", *args, "--iters", "2"]) == 0
    capsys.readouterr()
    held, most = [], []
    real = readers.read_in_range

    def reading(path, *a):
        image, why = real(path, *a)
        most.append(sum(r() is not None for r in held))       # images alive as this one is read
        held.append(weakref.ref(image))
        return image, why
    monkeypatch.setattr(readers, "read_in_range", reading)
    assert cli.main(["eval", *args, "--tta", "1"]) == 0
    out = capsys.readouterr().out
    assert "cells: 6 test images, fcrn(R)" in out
    assert len(held) == 4 + 2 * 6          # the training images' counts, then the test images twice
    assert max(most) <= 1, most
    rows = (workdirs / "runs" / "cells" / "fcrn" / "predictions.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == test
    assert [float(r.split(",")[1]) for r in rows[1:]] == [
        len(lattice(30 if i == "i09" else 64, 8)) for i in test]


def test_the_crop_stride_is_the_smallest_multiple_of_8_within_the_crop_budget(tmp_path, workdirs,
                                                                             monkeypatch):
    folder = make_folder(tmp_path / "f", n=11, side=120, spacing=10)       # crop 72
    ds = owndata.resolve(config.dataset(str(folder)), say=lambda _: None)
    train = [i for i in ds.train_ids]

    def crops(stride):
        return 9 * density_targets.count_training_crops(120, 120, 72, stride, 30)
    assert len(train) == 9 and crops(32) > crops(40) > crops(64) > 0
    monkeypatch.setattr(config, "OWN_CROP_BUDGET", crops(40) - 1)         # 40 just too many
    ds = owndata.resolve(config.dataset(str(folder)), say=lambda _: None)
    assert ds.crop_stride > 40 and ds.crop_stride % 8 == 0
    assert crops(ds.crop_stride) <= config.OWN_CROP_BUDGET < crops(ds.crop_stride - 8)


def test_iterations_are_the_models_default_whatever_the_number_of_crops(tmp_path, workdirs,
                                                                       monkeypatch):
    ds = resolved(make_folder(tmp_path / "f", n=4))
    fcrn = config.model("fcrn")                          # batch 16, 8,000 iterations
    for records, passes in ((10_000, "12.8 passes"), (100_000, "1.3 passes")):
        monkeypatch.setattr(lmdbio, "read_manifest", lambda p, r=records: {"records": r})
        said = []
        assert owndata.iterations(ds, fcrn, say=said.append) == 8000
        assert passes in said[0] and f"{records:,} training crops" in said[0]
    lite = config.model("alexnet-lite")
    assert owndata.iterations(ds, lite, say=lambda _: None) == lite.solver.max_iter
    monkeypatch.setattr(lmdbio, "read_manifest", lambda p: {})     # not prepared yet
    assert owndata.iterations(ds, fcrn, say=lambda _: None) == 8000
    toml = dataclasses.replace(ds, iters=1234)                       # pycount.toml's iters
    assert owndata.iterations(toml, fcrn, say=lambda _: None) == 1234
    assert owndata.iterations(ds, config.model("lecount"), say=lambda _: None) is None


def test_a_run_records_the_settings_and_the_name_finds_the_folder(tmp_path, workdirs):
    ds = resolved(make_folder(tmp_path / "f", n=4))
    owndata.record_in_run(tmp_path / "run", ds)
    assert config.run_dataset(tmp_path / "run", ds.name) == ds
    # after a command on the folder, its name alone finds it (make train DATASET=f)
    assert config.dataset("f").subdir == ds.subdir


# --- settings and data no training can use: refused, naming the file or option -------------------

def test_a_test_list_of_every_image_leaves_none_to_train_on(tmp_path, workdirs):
    folder = make_folder(tmp_path / "f", n=4)
    toml = folder / "pycount.toml"
    for test, left in ((["i00", "i01", "i02", "i03"], 0), (["i00", "i01", "i02"], 1)):
        toml.write_text(f"test = {json.dumps(test)}\n")
        with pytest.raises(DatasetError) as err:
            resolved(folder)
        assert str(err.value) == (
            f"{toml}: test names {len(test)} of the folder's 4 images, which leaves {left} for "
            f"training; training needs at least {config.OWN_MIN_TRAIN_IMAGES} (one to train on, "
            "one to validate): take some out of test, or add annotated images")
    toml.write_text('test = ["i00", "i01"]\n')
    assert resolved(folder).train_ids == ("i02", "i03")


def test_a_published_test_folder_leaving_one_training_image_names_that_folder(tmp_path,
                                                                               workdirs):
    """train/ with 1 image and test/ with 4, no pycount.toml: the message named a pycount.toml
    that does not exist."""
    folder = tmp_path / "f"
    train = make_folder(folder / "train", n=5)
    (folder / "test").mkdir()
    for f in sorted(train.iterdir()):
        if not f.stem.endswith("00"):
            f.rename(folder / "test" / f.name)
    with pytest.raises(DatasetError) as err:
        resolved(folder)
    assert str(err.value).startswith(f"{folder / 'test'}/ holds 4 of the folder's 5 annotated "
                                     f"images, which leaves 1 for training")
    assert "move some of its images into the training folder" in str(err.value)
    assert not (folder / "pycount.toml").exists()


def test_n_val_0_is_refused(tmp_path, workdirs):
    folder = make_folder(tmp_path / "f", n=4)
    toml = folder / "pycount.toml"
    toml.write_text("n_val = 0\n")
    with pytest.raises(DatasetError) as err:
        resolved(folder)
    assert str(err.value) == (
        f"{toml}: n_val = 0 is not valid: at least 1 training image must validate (it picks the "
        f"weights kept and shows overfitting); set n_val to 1 or more, or leave it out (default: "
        f"one per 20 training images, 1 to 5)")
    assert not (workdirs / "data" / "own").exists()            # refused before the cache
    toml.write_text("n_val = 1\n")
    ds = resolved(folder)
    assert ds.n_val == 1 and len(prepare.split(ds)["val"]) == 1


@pytest.mark.parametrize("n, held", [(12, 1), (50, 2), (160, 5)])
def test_an_own_folder_holds_out_one_training_image_per_twenty(tmp_path, workdirs, n, held):
    """Without n_val in pycount.toml: 1 to 5 monitor images, one per 20 training images (a small
    folder trains on all but one; the named sets keep their own n_val)."""
    folder = make_folder(tmp_path / "f", n=n, side=24, spacing=6)
    said = []
    ds = owndata.resolve(config.dataset(str(folder)), say=said.append)
    parts = prepare.split(ds)
    assert len(parts["val"]) == held and len(parts["train"]) == len(ds.train_ids) - held
    split = next(line for line in "\n".join(said).splitlines() if "split" in line)
    assert split.endswith(f"; {held} of the training images validate (one per 20 training "
                          f"images, 1 to 5; n_val = in pycount.toml sets it)")
    assert len(prepare.split(config.dataset("nuclei"))["val"]) == 5     # as before


def test_an_n_val_beyond_a_quarter_of_the_training_images_says_it_is_capped(tmp_path, workdirs):
    folder = make_folder(tmp_path / "f", n=10)
    (folder / "pycount.toml").write_text("n_val = 100\n")
    said = []
    ds = owndata.resolve(config.dataset(str(folder)), say=said.append)
    split = next(line for line in "\n".join(said).splitlines() if "split" in line)
    train = len(ds.train_ids)
    assert split.endswith(f"; {train // 4} of the training images validate (n_val = 100 asked: "
                          f"at most a quarter of them)")
    assert len(prepare.split(ds)["val"]) == train // 4


@pytest.mark.parametrize("setting, value, source, reason", [
    ("patch", 1, "toml", "the nets pool three times: below 8 px no map is left"),
    ("patch", 100000, "toml", "a window larger than the largest image, 120 px, holds only padding"),
    ("patch", 4, "option", "the nets pool three times: below 8 px no map is left"),
    ("patch", 121, "option", "a window larger than the largest image, 120 px, holds only padding"),
    ("crop", 4096, "toml", "a window larger than the largest image, 120 px, holds only padding"),
    ("crop", 128, "option", "a window larger than the largest image, 120 px, holds only padding"),
])
def test_a_patch_or_crop_out_of_limits_is_refused_naming_its_source(tmp_path, workdirs, setting,
                                                                     value, source, reason):
    folder = make_folder(tmp_path / "f", n=4, side=120)
    if source == "toml":
        (folder / "pycount.toml").write_text(f"{setting} = {value}\n")
        where = f"{folder / 'pycount.toml'}: {setting} = {value}"
    else:
        where = f"{setting.upper()}={value} (--{setting})"
    with pytest.raises(DatasetError) as err:
        resolved(folder, **({} if source == "toml" else {setting: value}))
    assert str(err.value) == (f"{where} is not valid: use a {setting} of 8 to 120 px ({reason}), "
                              "or leave it out to have it inferred")


def test_patch_and_crop_limits_admit_their_bounds(tmp_path, workdirs, monkeypatch):
    folder = make_folder(tmp_path / "f", n=4, side=120)
    assert resolved(folder, patch=8).patch == 8 and resolved(folder, patch=120).patch == 120
    assert resolved(folder, crop=8).crop == 8 and resolved(folder, crop=120).crop == 120
    # the absolute ceiling holds for large images too
    monkeypatch.setattr(config, "WINDOW_LIMITS", (8, 100))
    with pytest.raises(DatasetError, match="PATCH=104 \\(--patch\\) is not valid: use a patch of "
                                           "8 to 100 px \\(above 100 px the nets' weights"):
        resolved(folder, patch=104)
    # a folder of images smaller than the inferred floor still takes the floor: they are padded
    tiny = make_folder(tmp_path / "tiny", n=4, side=20, spacing=5)
    assert resolved(tiny, patch=config.OWN_PATCH_RANGE[0]).patch == config.OWN_PATCH_RANGE[0]
    with pytest.raises(DatasetError, match="use a patch of 8 to 24 px"):
        resolved(tiny, patch=28)


def test_the_window_limit_is_the_longer_side_of_the_largest_image(tmp_path, workdirs):
    """Images 200 px wide and 100 px high: a patch up to 200 px still holds image in each row of
    windows; a larger one only padding."""
    folder = tmp_path / "wide"
    folder.mkdir()
    dots = [(x, y) for y in range(3, 99, 10) for x in range(3, 199, 10)]
    for i in range(4):
        cv2.imwrite(str(folder / f"i{i:02d}.png"), np.full((100, 200, 3), 90, np.uint8))
        (folder / f"i{i:02d}.csv").write_text("x,y\n" + "".join(f"{x},{y}\n" for x, y in dots))
    assert resolved(folder, patch=150).patch == 150 and resolved(folder, patch=200).patch == 200
    with pytest.raises(DatasetError) as err:
        resolved(folder, patch=201)
    assert str(err.value) == ("PATCH=201 (--patch) is not valid: use a patch of 8 to 200 px (a "
                              "window larger than the largest image, 200 px, holds only "
                              "padding), or leave it out to have it inferred")


def test_a_bad_patch_on_the_command_line_exits_2_with_one_line(tmp_path, workdirs, capsys):
    folder = make_folder(tmp_path / "f", n=4, side=120)
    assert cli.main(["prepare", "--dataset", str(folder), "--model", "fcrn", "--patch", "1"]) == 2
    err = capsys.readouterr().err
    assert err == ("pycount: error: PATCH=1 (--patch) is not valid: use a patch of 8 to 120 px "
                   "(the nets pool three times: below 8 px no map is left), or leave it out to "
                   "have it inferred\n")
    assert not (workdirs / "data" / "lmdb").exists()


@pytest.mark.parametrize("name", ["../../etc", "a/b", ".hidden", " lead", "trail ", "x" * 101,
                                  ""])
def test_a_dataset_name_that_is_no_plain_file_name_is_refused(tmp_path, workdirs, name):
    folder = make_folder(tmp_path / "f", n=4)
    toml = folder / "pycount.toml"
    toml.write_text(f"name = {json.dumps(name)}\n")
    with pytest.raises(DatasetError) as err:
        resolved(folder)
    assert str(err.value) == (
        f"{toml}: name = {name!r} is not valid: the name becomes a folder under data/ and runs/, "
        f"so use letters, digits, '-', '_', '.' and spaces only, not starting with '.' or a "
        f"space nor ending with a space (at most {config.OWN_NAME_MAX} characters), e.g. name = "
        f"\"mouse-liver\"")
    assert sorted(p.name for p in workdirs.iterdir()) == ["f"]      # nothing written anywhere


def test_a_plain_dataset_name_is_taken(tmp_path, workdirs):
    folder = make_folder(tmp_path / "f", n=4)
    (folder / "pycount.toml").write_text('name = "mouse-liver_2.v1"\n')
    assert resolved(folder).name == "mouse-liver_2.v1"
    assert (workdirs / "data" / "own" / "mouse-liver_2.v1.json").is_file()
    # spaces inside, as a folder's own name may hold them (helper-44: refused in the file,
    # taken from the folder)
    (folder / "pycount.toml").write_text('name = "mouse liver 2"\n')
    assert resolved(folder).name == "mouse liver 2"
    assert (workdirs / "data" / "own" / "mouse liver 2.json").is_file()


def test_a_second_folder_of_the_same_name_is_refused_naming_both(tmp_path, workdirs, capsys):
    """/x/base and /y/base would share data/lmdb/base and runs/base: once /x/base holds the name,
    prepare, train and eval of /y/base stop before anything is read or written, naming both
    folders and the fixes; `name =` in /y/base's pycount.toml is one."""
    x = make_folder(tmp_path / "x" / "base", n=4, side=64, spacing=8)
    y = make_folder(tmp_path / "y" / "base", n=5, side=64, spacing=8)
    assert cli.main(["prepare", "--dataset", str(x), "--model", "fcrn"]) == 0
    record = workdirs / "data" / "own" / "base.json"
    lmdb = workdirs / "data" / "lmdb" / "base" / "density" / "train_lmdb"
    before = (record.read_text(), lmdbio.read_manifest(lmdb))
    assert before[1] and json.loads(before[0])["folder"] == str(x)
    capsys.readouterr()
    for command in (["prepare"], ["train", "--iters", "2"], ["eval", "--tta", "1"]):
        assert cli.main([*command, "--dataset", str(y), "--model", "fcrn"]) == 2
        assert capsys.readouterr().err == (
            f"pycount: error: {y} and {x} are both named 'base': {record} records {x} under that "
            f"name, and its LMDBs and runs go to {workdirs / 'data' / 'lmdb' / 'base'} and "
            f"{workdirs / 'runs' / 'base'} (and their base-... variants); give {y} a name of its "
            f"own with name = \"y-base\" in {y / 'pycount.toml'}, or move that data away to give "
            f"the name to {y}\n")
    assert (record.read_text(), lmdbio.read_manifest(lmdb)) == before
    assert not (workdirs / "runs").exists()
    # the fix: a name of its own; the first folder's data stays as it was
    (y / "pycount.toml").write_text('name = "y-base"\n')
    assert cli.main(["prepare", "--dataset", str(y), "--model", "fcrn"]) == 0
    assert lmdbio.read_manifest(workdirs / "data" / "lmdb" / "y-base" / "density" / "train_lmdb")
    assert (record.read_text(), lmdbio.read_manifest(lmdb)) == before
    # the same folder again, by path or by name: its own data
    assert cli.main(["prepare", "--dataset", str(x), "--model", "fcrn"]) == 0
    assert "up to date (" in capsys.readouterr().out
    assert config.dataset("base").subdir == str(x) and resolved(x).name == "base"
    assert lmdbio.read_manifest(lmdb) == before[1]


def test_a_moved_folder_keeps_its_name_and_a_changed_one_is_refused(tmp_path, workdirs):
    """The recorded folder gone: a folder of its name with the same images and dots (measured,
    whatever the files' times) is it moved, and takes the name over; one with other images or
    dots is refused, naming what differs."""
    old = make_folder(tmp_path / "old" / "base", n=4)
    ds = resolved(old)
    new = tmp_path / "new" / "base"
    shutil.copytree(old, new, copy_function=shutil.copy)       # new modification times
    assert (new / "i00.csv").stat().st_mtime_ns != (old / "i00.csv").stat().st_mtime_ns
    with pytest.raises(DatasetError, match=f"{new} and {old} are both named 'base'"):
        resolved(new)                                           # both there: two folders
    shutil.rmtree(old)
    lines = []
    moved = owndata.resolve(config.dataset(str(new)), say=lines.append)
    assert lines[1] == (f"  moved from {old}: the same images and dots, so base's LMDBs and "
                        "runs are kept")
    assert dataclasses.replace(moved, subdir=ds.subdir, description=ds.description) == ds
    assert config.dataset("base").subdir == str(new)           # the record follows it
    lines = []
    owndata.resolve(config.dataset(str(new)), say=lines.append)
    assert not any(line.startswith("  moved from") for line in lines)
    # moved again, and a dot taken out of one image: another dataset for all pycount can tell
    third = tmp_path / "third" / "base"
    shutil.move(str(new), str(third))
    csv = third / "i01.csv"
    csv.write_text("".join(csv.read_text().splitlines(keepends=True)[:-1]))
    record = workdirs / "data" / "own" / "base.json"
    with pytest.raises(DatasetError) as err:
        resolved(third)
    assert str(err.value).startswith(
        f"{third} is named 'base', the name of {new}, which is gone, but its images or dots are "
        f"not those recorded for it (i01 changed): {record} records {new} under that name")
    assert str(err.value).endswith(
        f"give {third} a name of its own with name = \"third-base\" in {third / 'pycount.toml'}, "
        f"or move that data away to give the name to {third} (if {third} is {new} moved and then "
        f"edited, removing {record} is enough: prepare rebuilds what changed)")
    assert json.loads(record.read_text())["folder"] == str(new)
    record.unlink()                                              # the fix it names
    assert resolved(third).subdir == str(third)


def test_an_image_marking_no_cell_among_crowded_ones_is_noted(tmp_path, workdirs):
    """One CSV of only its header among images of ~144 cells each: prepare says which file
    marks no cell (it trains as an empty field, which it may be); not with a marker chosen,
    where an image of none of that type is common, nor among sparse images."""
    folder = make_folder(tmp_path / "f", n=8)
    (folder / "i03.csv").write_text("x,y\n")
    lines = []
    owndata.resolve(config.with_overrides(config.dataset(str(folder))), say=lines.append)
    said = "\n".join(lines)
    assert ("note: i03.csv marks no cell where the folder's images mark 144 in the median: an "
            "empty field, or a file that lost its marks (a CSV of only its header)? It trains "
            "as an image of no cells") in said
    sparse = make_folder(tmp_path / "g", n=8, spacing=40)          # 9 cells an image
    (sparse / "i03.csv").write_text("x,y\n")
    lines = []
    owndata.resolve(config.with_overrides(config.dataset(str(sparse))), say=lines.append)
    assert "marks no cell" not in "\n".join(lines)


def test_training_images_without_a_single_cell_are_refused(tmp_path, workdirs):
    folder = make_folder(tmp_path / "f", n=5)
    for csv in folder.glob("*.csv"):
        csv.write_text("x,y\n")                                   # header only: no cell
    with pytest.raises(DatasetError) as err:
        resolved(folder)
    assert str(err.value) == (
        f"{folder}: none of the 4 training images has an annotated cell, and a counter cannot "
        "learn from zero cells; check the annotation files (a CSV of only its header x,y, a "
        "wrong marker or class), or add annotated images")
    # a marker that none of the training images' markers are of: named
    for csv in folder.glob("*.csv"):
        csv.unlink()
        (folder / f"{csv.stem}.xml").write_text(
            "<CellCounter_Marker_File><Marker_Data><Marker_Type><Type>1</Type><Marker><MarkerX>5"
            "</MarkerX><MarkerY>5</MarkerY></Marker></Marker_Type><Marker_Type><Type>2</Type>"
            "</Marker_Type></Marker_Data></CellCounter_Marker_File>")
    (folder / "pycount.toml").write_text("marker = 2\n")
    with pytest.raises(DatasetError, match="has an annotated cell of the marker '2' that "
                                           f"{folder / 'pycount.toml'} chooses, and a counter"):
        resolved(folder)
    (folder / "pycount.toml").write_text("marker = 1\n")
    assert resolved(folder).max_patch_count > 0
    # one cell in one training image is enough to go on
    for xml in folder.glob("*.xml"):
        xml.unlink()
        (folder / f"{xml.stem}.csv").write_text("x,y\n" + ("3,3\n" if xml.stem == "i01" else ""))
    (folder / "pycount.toml").unlink()
    assert "i01" in resolved(folder).train_ids


# --- scale: images read at another size -----------------------------------------------------------

def test_rescale_moves_each_dot_with_its_pixels():
    """A bright 4x4 block per dot: after halving, the dot sits on its block's 2x2 pixels; the
    count is kept, and a dot on the edge stays within the image."""
    from pycount.data import readers
    img = np.zeros((40, 60, 3), np.uint8)
    dots = np.array([[9.5, 9.5], [41.5, 21.5], [0.0, 39.0]])
    for x, y in dots[:2]:
        img[int(y) - 1:int(y) + 3, int(x) - 1:int(x) + 3] = 200
    small = readers.rescale(readers.Sample("a", img, dots), 0.5)
    assert small.image.shape == (20, 30, 3) and small.count == 3
    np.testing.assert_allclose(small.centres[:2], [[4.5, 4.5], [20.5, 10.5]])
    for x, y in small.centres[:2]:                    # the block's four pixels around the dot
        assert (small.image[int(y):int(y) + 2, int(x):int(x) + 2] == 200).all()
    # (0 + 0.5) / 2 - 0.5 = -0.25 and (39 + 0.5) / 2 - 0.5 = 19.25: kept within 0..19
    assert small.centres[2].tolist() == [0.0, 19.0]
    big = readers.rescale(readers.Sample("a", img, dots), 2.0)
    assert big.image.shape == (80, 120, 3)
    np.testing.assert_allclose(big.centres[0], [19.5, 19.5])
    assert readers.rescale_image(img, 1) is img and readers.rescale_image(img, 0) is img


def test_far_apart_cells_are_read_smaller_and_the_settings_follow(tmp_path, workdirs,
                                                                   monkeypatch):
    """Cells 40 px apart, beyond OWN_SCALE_ABOVE: every image read at 13.4 / 40 -> 0.34, and the
    patch, crop and sigma are those of cells 13.6 px apart; within it, the images as they are."""
    folder = make_folder(tmp_path / "far", n=6, side=400, spacing=40)
    lines = []
    ds = owndata.resolve(config.dataset(str(folder)), say=lines.append)
    assert ds.scale == 1.0 and (ds.patch, ds.sigma) == (180, 6.5)      # OWN_SCALE_ABOVE: inf
    # beyond OWN_SCALE_HINT_ABOVE (20 px) the factor is proposed, not taken
    assert any("as they are; cells 40.0 px apart: if they are large (not small and sparse), "
               "SCALE=0.34 would read them ~13.4 px apart, 8.7x fewer pixels" in line
               for line in lines), lines
    near = make_folder(tmp_path / "near", n=6, side=200, spacing=16)
    lines = []
    assert owndata.resolve(config.dataset(str(near)), say=lines.append).scale == 1.0
    assert any("as they are (SCALE= reads them resized)" in line for line in lines), lines
    monkeypatch.setattr(config, "OWN_SCALE_ABOVE", 20.0)
    lines = []
    ds = owndata.resolve(config.dataset(str(folder)), say=lines.append)
    assert ds.scale == 0.34 and not ds.variant
    # d = 40 x 0.34 = 13.6: patch 4.5 d = 61.2 -> 60, sigma d / 6 = 2.27 -> 2.5, crop 102 -> 104
    assert (ds.patch, ds.sigma, ds.crop) == (60, 2.5, 104)
    text = "\n".join(lines)
    assert "scale" in text and "0.34" in text and "13.6 px" in text
    s = prepare.load(ds, ["i00"])[0]
    assert s.image.shape == (136, 136, 3) and s.count == len(lattice(400, 40))


def test_scale_given_on_the_command_line_or_in_the_spec_file(tmp_path, workdirs):
    folder = make_folder(tmp_path / "f", n=6, side=120, spacing=10)
    lines = []
    ds = owndata.resolve(config.with_overrides(config.dataset(str(folder)), scale=2.0),
                         say=lines.append)
    # d = 20 in the enlarged images: patch 90 -> 88, crop 150 -> 152; tagged, as PATCH= is
    assert (ds.scale, ds.patch, ds.crop) == (2.0, 88, 152) and ds.tag.endswith("-x2")
    assert any("SCALE= given" in line for line in lines)
    assert config.with_overrides(config.dataset("nuclei"), scale=0.5).tag == "nuclei-x0.5"
    for bad in (0, 0.05, 5):
        with pytest.raises(ConfigError, match=f"SCALE={bad} is not valid"):
            config.with_overrides(config.dataset("nuclei"), scale=bad)
    (folder / "pycount.toml").write_text("scale = 0.5\n")
    ds = resolved(folder)
    assert (ds.scale, ds.tag) == (0.5, "f")
    (folder / "pycount.toml").write_text("scale = 9\n")
    with pytest.raises(ConfigError, match="scale = 9 must be a factor from 0.1 to 4"):
        resolved(folder)


def test_a_scale_that_puts_the_cells_too_close_is_warned_about(tmp_path, workdirs, capsys):
    # cells 10 px apart on a lattice: 0.3 puts them 3 px apart (merged), 0.5 at 5 px (apart)
    folder = make_folder(tmp_path / "f", n=6, side=120, spacing=10)
    for scale, warned in ((0.3, True), (0.5, False), (1.0, False)):
        prepare.load_split(resolved(folder, scale=scale))
        out = capsys.readouterr().out
        assert ("warning: at SCALE=0.3 the cells of f's training images lie 3.0 px apart" in out
                and "SCALE=0.4 or more keeps them apart" in out) == warned, out
        assert ("warning" in out) == warned, out
    # cells 9 px apart read at 0.1: 0.9 px, under the 1 px of a mark made twice, yet warned
    # (that filter is of the original pixels); the factor named is rounded up, not down
    prepare.load_split(resolved(make_folder(tmp_path / "g", n=6, spacing=9), scale=0.1))
    out = capsys.readouterr().out
    assert "lie 0.9 px apart" in out and "SCALE=0.45 or more keeps them apart" in out, out


def test_a_resume_after_the_folders_mean_colour_moved_names_the_folder(tmp_path, workdirs,
                                                                        capsys):
    """A training image replaced moves the inferred mean colour, which is in the net: the resume
    was refused as differing from "what pycount/config.py gives now", which it did not."""
    folder = make_folder(tmp_path / "cells", n=7, side=64, spacing=8)
    args = ["--dataset", str(folder), "--model", "fcrn"]
    assert cli.main(["prepare", *args]) == 0
    assert cli.main(["train", *args, "--iters", "4"]) == 0
    ds = owndata.resolve(config.dataset(str(folder)), say=lambda _: None)
    cv2.imwrite(str(folder / f"{ds.train_ids[0]}.png"), np.full((64, 64, 3), 200, np.uint8))
    assert cli.main(["prepare", *args]) == 0
    capsys.readouterr()
    assert cli.main(["train", *args, "--iters", "8"]) == 2
    err = capsys.readouterr().err
    assert ("differs from what pycount/config.py and the folder's inferred settings (its images' "
            "mean colour, the windows) give now" in err), err


def test_a_run_at_another_scale_counts_new_images_at_it(tmp_path, workdirs, capsys):
    """SCALE=2 end to end: train.json and dataset.json keep it, eval and count read at it
    (counts.csv gives the file's own size), and a run asked for at another scale is refused."""
    folder = make_folder(tmp_path / "cells", n=7, side=64, spacing=8)
    args = ["--dataset", str(folder), "--model", "fcrn", "--scale", "2"]
    assert cli.main(["prepare", *args]) == 0
    assert cli.main(["train", *args, "--iters", "2"]) == 0
    run = workdirs / "runs" / "cells-x2" / "fcrn"
    assert json.loads((run / "train.json").read_text())["scale"] == 2.0
    assert json.loads((run / "dataset.json").read_text())["scale"] == 2.0
    assert cli.main(["eval", *args, "--tta", "1"]) == 0
    preds = (run / "predictions.csv").read_text().splitlines()
    assert len(preds) == 2 and f",{len(lattice(64, 8))}," in preds[1] + ","  # the dots, all kept
    heatmap = cv2.imread(str(next((run / "heatmaps").glob("*.png"))))
    assert heatmap is not None
    from csv import DictReader
    (evaluated,) = DictReader(open(run / "predictions.csv"))
    test_id, predicted = evaluated["id"], evaluated["predicted"]
    shutil.copy(folder / f"{test_id}.png", tmp_path / "new.png")   # eval's test image, counted
    assert cli.main(["count", str(tmp_path / "new.png"), "--run", str(run), "--out",
                     str(tmp_path / "out"), "--tta", "1"]) == 0
    row = (tmp_path / "out" / "counts.csv").read_text().splitlines()[1].split(",")
    assert row[3:5] == ["64", "64"]                    # width, height of the file
    assert float(row[1]) == pytest.approx(float(predicted), abs=2e-3)   # read at scale 2 too
    capsys.readouterr()
    shutil.copytree(run, workdirs / "runs" / "cells" / "fcrn")     # moved to scale 1's place
    assert cli.main(["eval", "--dataset", str(folder), "--model", "fcrn", "--tta", "1"]) != 0
    assert "scale 2.0, not 1.0" in capsys.readouterr().err


# --- the whole path --------------------------------------------------------------------------------

def test_a_folder_of_subfolders_pycount_does_not_read_says_which_layouts_it_does(tmp_path,
                                                                                 workdirs):
    """images/batch1/ + annotations/batch1/ (folders of batches, no split): nothing is read, and
    the message names the subfolders and the layouts that are read instead of only "found 0"."""
    root = tmp_path / "nested"
    make_folder(root / "images" / "batch1", n=3)
    (root / "annotations" / "batch1").mkdir(parents=True)
    for f in (root / "images" / "batch1").glob("*.csv"):
        f.rename(root / "annotations" / "batch1" / f.name)
    with pytest.raises(DatasetError, match=r"found 0 annotated images \(pycount reads the images "
                                           r"with their annotations beside them, .* its subfolders "
                                           r"annotations/, images/ are none of these"):
        resolved(root)


def test_a_split_kept_inside_each_kind_is_the_split(tmp_path, workdirs):
    """images/train/ + images/test/ beside annotations/train/ + annotations/test/: the test
    images are images/test/'s; a part without its annotations' folder is named."""
    root = tmp_path / "kinds"
    for part, n in (("train", 6), ("test", 2)):
        src = make_folder(tmp_path / f"src-{part}", n=n, side=64, spacing=8)
        (root / "images" / part).mkdir(parents=True)
        (root / "labels" / part).mkdir(parents=True)
        for f in src.iterdir():
            shutil.copy(f, root / ("images" if f.suffix == ".png" else "labels") / part / f.name)
    ds = resolved(root)
    assert ds.test_ids == ("test_i00", "test_i01") and len(ds.train_ids) == 6
    shutil.rmtree(root / "labels" / "test")
    with pytest.raises(DatasetError, match=r"images/test has no annotations' folder of its own"):
        resolved(root)


def test_a_published_split_in_train_and_test_subfolders_is_the_split(tmp_path, workdirs, capsys):
    """trainval/ + test/ (each flat, or images/ + labels/): the test images are test/'s, not a
    draw; numbering restarted in each part prefixes every id with its subfolder; test = [...] in
    pycount.toml still decides."""
    root = tmp_path / "pub"
    make_folder(root / "trainval", n=6, side=64, spacing=8)
    test = make_folder(tmp_path / "t", n=2, side=64, spacing=8)       # i00, i01 again
    (root / "test" / "images").mkdir(parents=True)
    (root / "test" / "dots").mkdir()
    for f in test.iterdir():
        shutil.copy(f, root / "test" / ("images" if f.suffix == ".png" else "dots") / f.name)
    ds = resolved(root)
    assert ds.test_ids == ("test_i00", "test_i01")
    assert ds.train_ids == tuple(f"trainval_i{i:02d}" for i in range(6))
    assert cli.main(["prepare", "--dataset", str(root), "--model", "fcrn"]) == 0
    assert ("split                6/2  train/test images, the images of the folder's test/ "
            "subfolder" in capsys.readouterr().out)
    (root / "test" / "images" / "i01.png").rename(root / "test" / "images" / "j01.png")
    (root / "test" / "dots" / "i01.csv").rename(root / "test" / "dots" / "j01.csv")
    (root / "test" / "images" / "i00.png").rename(root / "test" / "images" / "j00.png")
    (root / "test" / "dots" / "i00.csv").rename(root / "test" / "dots" / "j00.csv")
    assert resolved(root).test_ids == ("j00", "j01")              # no clash: the stems
    (root / "pycount.toml").write_text('test = ["i00", "j00"]\n')
    assert resolved(root).test_ids == ("i00", "j00")
    shutil.move(root / "test", root / "val")           # no test/: one pool, the seeded draw
    (root / "pycount.toml").unlink()
    ds = resolved(root)
    assert len(ds.test_ids) == 1 and set(ds.train_ids) | set(ds.test_ids) == {
        *(f"i{i:02d}" for i in range(6)), "j00", "j01"}


def test_a_folder_of_images_and_labels_subfolders_prepares_trains_and_evaluates(tmp_path,
                                                                              workdirs, capsys):
    """images/ + labels/ (the layout many public sets ship) through the CLI: the inferred
    settings, the test draw and the counts are the flat folder's own."""
    flat = make_folder(tmp_path / "flat" / "cells", n=7, side=64, spacing=8)
    split = tmp_path / "split" / "cells"
    (split / "images").mkdir(parents=True)
    (split / "labels").mkdir()
    for f in flat.iterdir():
        shutil.copy(f, split / ("images" if f.suffix == ".png" else "labels") / f.name)
    said = []
    for folder in (flat, split):
        args = ["--dataset", str(folder), "--model", "fcrn"]
        assert cli.main(["prepare", *args]) == 0
        said.append(capsys.readouterr().out.replace(str(folder), "<folder>"))
        shutil.rmtree(workdirs / "data" / "lmdb")
        (workdirs / "data" / "own" / "cells.json").unlink()       # the name, free again
    assert said[0] == said[1] and "cell spacing         8.0 px" in said[1]
    args = ["--dataset", str(split), "--model", "fcrn"]
    assert cli.main(["prepare", *args]) == 0
    assert cli.main(["train", *args, "--iters", "2"]) == 0
    assert cli.main(["eval", *args, "--tta", "1"]) == 0
    assert "cells: 1 test images, fcrn(R)" in capsys.readouterr().out


@pytest.mark.parametrize("model", ["fcrn", "fcrn-ctx"])
def test_prepare_train_eval_count_through_the_cli(tmp_path, workdirs, capsys, model):
    """A density model on 7 images of 64 px, 2 iterations: the folder path end to end (fcrn-ctx:
    crops with their context, counted in one pass); counting with the run after the folder is
    gone."""
    folder = make_folder(tmp_path / "cells", n=7, side=64, spacing=8)
    args = ["--dataset", str(folder), "--model", model]
    assert cli.main(["prepare", *args]) == 0
    assert cli.main(["train", *args, "--iters", "2"]) == 0
    run = workdirs / "runs" / "cells" / model
    assert json.loads((run / "dataset.json").read_text())["layout"] == "folder"
    assert cli.main(["eval", *args, "--tta", "1"]) == 0
    out = capsys.readouterr().out
    assert f"cells: 1 test images, {model}(R)" in out and "mean training count" in out
    assert list((run / "heatmaps").glob("*.png"))
    shutil.copy(folder / "i00.png", tmp_path / "new.png")
    shutil.rmtree(folder)
    assert cli.main(["count", str(tmp_path / "new.png"), "--run", str(run), "--out",
                     str(tmp_path / "out"), "--tta", "1"]) == 0
    assert "new.png" in (tmp_path / "out" / "counts.csv").read_text()


def test_the_protocol_takes_a_folder(tmp_path, workdirs):
    from pycount.training import protocol
    folder = make_folder(tmp_path / "cells", n=12)
    ds = protocol.resolve_dataset(str(folder))
    assert ds.name == "cells" and len(ds.train_ids) == 10
    # N at or above the training images: refused before anything runs, naming the count
    with pytest.raises(ConfigError, match="has 10 training images: N = 10, 32"):
        protocol.run(str(folder), "fcrn", ns=(4, 10, 32), seeds=(1,))
    assert protocol.pending(ds, "fcrn", [4], [1, 2]) == [(4, 1, False), (4, 2, False)]
    # the runs are found under the folder's name, and the summary is written under it too
    run = protocol.run_dirs(ds, config.model("fcrn", ds), 4, [1])[0]
    assert run.parent.name == "cells-n4-seed1"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({"dataset": "cells", "train_n": 4, "seed": 1,
                                                  "mae": 2.5, "mre": 0.1}))
    rows = protocol.summarize(ds, "fcrn")
    assert rows[0]["train_n"] == 4 and rows[0]["seeds"] == [1] and rows[0]["mae_mean"] == 2.5
    # evaluated, but without the prototxts of today's settings: trained again from scratch
    assert protocol.pending(ds, "fcrn", [4], [1]) == [(4, 1, True)]


def test_the_printed_split_of_a_protocol_draw_is_the_one_prepare_draws(tmp_path, workdirs):
    """TRAIN_N on an own folder: the settings' table said "1 of the training images validate"
    (one per 20) where prepare.split drew n_val of the images left over (helper-47)."""
    folder = make_folder(tmp_path / "cells", n=12)
    said = []
    ds = owndata.resolve(config.with_overrides(config.dataset(str(folder)), train_n=4, seed=2),
                         say=said.append)
    split = prepare.split(ds)
    assert len(split["train"]) == 4 and not set(split["val"]) & set(split["train"])
    line = next(x for x in "\n".join(said).splitlines() if x.strip().startswith("split"))
    assert f"; {len(split['val'])} of the training images validate (TRAIN_N=4 of them drawn " \
           f"with seed 2 are trained on" in line, line
    plain = owndata.resolve(config.dataset(str(folder)), say=lambda _: None)
    assert len(prepare.split(plain)["val"]) == prepare.val_count(plain, 10) == 1


def test_eval_refuses_test_images_the_run_trained_on_and_takes_images_without_cells(
        tmp_path, workdirs, capsys):
    """Images added to a folder after training move its seeded split: eval refuses to score the
    run on images it trained on, naming them. A test image without cells (a negative control)
    is counted in the MAE and left out of the MRE, which says over how many; a test set without
    any cell is refused."""
    folder = make_folder(tmp_path / "cells", n=10, side=64, spacing=8)
    args = ["--dataset", str(folder), "--model", "fcrn"]
    assert cli.main(["prepare", *args]) == 0
    assert cli.main(["train", *args, "--iters", "2"]) == 0
    run = workdirs / "runs" / "cells" / "fcrn"
    info = json.loads((run / "train.json").read_text())
    trained = set(info["train_images"]) | set(info["val_images"])
    assert len(trained) == len(resolved(folder).train_ids)
    make_folder(tmp_path / "more", n=16, side=64, spacing=8)
    for f in (tmp_path / "more").glob("i1[0-5].*"):
        shutil.copy(f, folder / f.name)
    moved = set(resolved(folder).test_ids) & trained
    assert moved, "the seeded draw of 16 images tests some of the 10's training images"
    capsys.readouterr()
    assert cli.main(["eval", *args, "--tta", "1"]) == 2
    err = capsys.readouterr().err
    assert f"{run / 'train.json'}: cells's test images today include {sorted(moved)[0]}" in err
    assert "which this run was trained on" in err and "RESUME=0" in err
    assert not (run / "metrics.json").exists()

    for f in (tmp_path / "more").glob("i1[0-5].*"):
        (folder / f.name).unlink()
    test = sorted(resolved(folder).test_ids)
    assert len(test) >= 2
    (folder / f"{test[0]}.csv").write_text("x,y\n")               # a negative control
    assert cli.main(["eval", *args, "--tta", "1"]) == 0
    m = json.loads((run / "metrics.json").read_text())
    assert m["n_images"] == len(test) and m["mre_images"] == len(test) - 1
    assert f"MRE over the {len(test) - 1} of {len(test)} test images" in capsys.readouterr().out
    for i in test:
        (folder / f"{i}.csv").write_text("x,y\n")
    assert cli.main(["eval", *args, "--tta", "1"]) == 2
    assert f"none of cells's {len(test)} test images holds a cell" in capsys.readouterr().err


def test_the_prepare_hint_of_an_own_folder_names_the_settings_given(tmp_path, workdirs):
    """`make train` before `make prepare` says which prepare to run: with the folder's STRIDE= or
    CROP_STRIDE= given, the same ones (without them it would write other LMDBs)."""
    from pycount.errors import TrainError
    from pycount.training import trainer
    folder = make_folder(tmp_path / "f", n=6)
    for overrides, model, hint in (
            ({}, "alexnet-lite", f"make prepare DATASET={folder}`"),
            ({"stride": 4}, "alexnet-lite", f"make prepare DATASET={folder} STRIDE=4`"),
            ({"crop_stride": 8, "sigma": 2.5}, "fcrn",
             f"make prepare DATASET={folder} SIGMA=2.5 CROP_STRIDE=8 MODEL=fcrn`")):
        with pytest.raises(TrainError, match="no prepared LMDB") as err:
            trainer.Trainer(resolved(folder, **overrides), config.model(model))
        assert hint in str(err.value)
    # a folder named with a space: the hint is one shell word that can be pasted as it is
    spaced = make_folder(tmp_path / "my cells", n=6)
    with pytest.raises(TrainError, match="no prepared LMDB") as err:
        trainer.Trainer(resolved(spaced), config.model("alexnet-lite"))
    assert f"make prepare 'DATASET={spaced}'`" in str(err.value)


def test_a_refused_training_leaves_the_runs_settings_as_they_were(tmp_path, workdirs, capsys):
    """The run's dataset.json (what `count` reads: the mean colour, the windows) is written when
    a training starts, not before its checks: a `make train` refused because the folder changed
    since `make prepare` leaves a finished run counting as before."""
    folder = make_folder(tmp_path / "cells", n=7, side=64, spacing=8)
    args = ["--dataset", str(folder), "--model", "fcrn"]
    assert cli.main(["prepare", *args]) == 0
    assert cli.main(["train", *args, "--iters", "2"]) == 0
    run = workdirs / "runs" / "cells" / "fcrn"
    before = (run / "dataset.json").read_text()
    bright = np.zeros((64, 64, 3), np.uint8) + 200                  # another mean colour
    cv2.imwrite(str(folder / "i07.png"), bright)
    shutil.copy(folder / "i00.csv", folder / "i07.csv")
    capsys.readouterr()
    assert cli.main(["train", *args, "--iters", "4"]) == 2
    assert "is older than cells's images or annotations" in capsys.readouterr().err
    assert (run / "dataset.json").read_text() == before


def test_marks_edited_since_prepare_are_named_not_the_patch_settings(tmp_path, workdirs, capsys):
    """An own folder's patch follows its cell spacing: marks edited after `make prepare` changed
    the inferred patch, and `make train` said the LMDB holds other patches than PATCH=/SIZE= ask
    for, settings the user never gave (helper-46). The changed files are named first."""
    folder = make_folder(tmp_path / "cells", n=6, side=96, spacing=10)
    args = ["--dataset", str(folder), "--model", "alexnet-lite"]
    assert cli.main(["prepare", *args]) == 0
    before = resolved(folder).patch
    for i in range(6):
        (folder / f"i{i:02d}.csv").write_text("x,y\n" + "".join(
            f"{x},{y}\n" for x, y in lattice(96, 16)))
    assert resolved(folder).patch != before
    capsys.readouterr()
    assert cli.main(["train", *args, "--iters", "2"]) == 2
    err = capsys.readouterr().err
    assert "is older than cells's images or annotations" in err and "px patches" not in err


def test_files_touched_but_unchanged_since_prepare_do_not_stop_a_training(tmp_path, workdirs,
                                                                           capsys):
    """A folder copied, checked out or synced again has new file times and the same content:
    `make train` reads the images and marks again, finds the fingerprint its LMDBs were written
    from, renews their stamp and trains (the next training says nothing); an image whose pixels
    changed is still refused (the test above)."""
    folder = make_folder(tmp_path / "cells", n=7, side=64, spacing=8)
    args = ["--dataset", str(folder), "--model", "fcrn"]
    assert cli.main(["prepare", *args]) == 0
    later = time.time() + 3600
    for f in folder.iterdir():
        os.utime(f, (later, later))
    capsys.readouterr()
    assert cli.main(["train", *args, "--iters", "2"]) == 0
    out = capsys.readouterr().out
    assert "files were touched since `make prepare`" in out and "i00.csv changed" in out
    assert cli.main(["train", *args, "--iters", "4"]) == 0
    assert "were touched since" not in capsys.readouterr().out



@pytest.mark.parametrize("model", ["fcrn", "alexnet-lite"])
def test_marks_of_a_monitor_image_edited_since_prepare_stop_every_training(tmp_path, workdirs,
                                                                          capsys, model):
    """A training checking its LMDBs renewed the training LMDB's stamp before it found the
    validation one stale: the first `make train` was refused, the second trained on the old
    marks of the monitor images (helper-53). Both are refused until `make prepare`."""
    folder = make_folder(tmp_path / "cells", n=7, side=64, spacing=8)
    args = ["--dataset", str(folder), "--model", model]
    assert cli.main(["prepare", *args]) == 0
    ds = resolved(folder)
    val = (config.density_lmdbs(ds, "val")[0] if model == "fcrn"
           else config.lmdb_dir(ds) / "val_lmdb")
    marks = folder / f"{lmdbio.read_manifest(val)['images'][0]}.csv"
    lines = marks.read_text().splitlines()
    marks.write_text("\n".join(lines[:len(lines) // 2]) + "\n")
    for _ in range(2):
        capsys.readouterr()
        assert cli.main(["train", *args, "--iters", "2"]) == 2
        assert "is older than cells's images or annotations" in capsys.readouterr().err
    assert cli.main(["prepare", *args]) == 0
    assert cli.main(["train", *args, "--iters", "2"]) == 0


def test_zoom_on_a_folder_with_images_smaller_than_a_crop(tmp_path, workdirs):
    """ZOOM= shrinks each training image by 1/(1+z): a 30 px image (padded to the 72 px crop)
    shrunk to 48 px was a ValueError from the window grid. A size at which an image holds no crop
    gives none; the LMDB holds the crops of every other size."""
    folder = make_folder(tmp_path / "zoomed", n=8, side=120, spacing=10, small=("i02",))
    assert cli.main(["prepare", "--dataset", str(folder), "--model", "fcrn", "--zoom", "0.5"]) == 0
    ds = resolved(folder, zoom=0.5)
    assert ds.crop == 72
    manifest = lmdbio.read_manifest(config.density_lmdbs(ds, "train")[0])
    assert "i02" in manifest["images"]           # (the seeded split trains on it)

    def crops(side):
        return density_targets.count_training_crops(side, side, 72, ds.crop_stride, ds.rot_step)
    # 120 px images at 120, 80 and 180 px; the 30 px one (72 px padded) at 72 and 108 px only
    want = sum(crops(72) + crops(108) if i == "i02" else crops(120) + crops(80) + crops(180)
               for i in manifest["images"])
    assert manifest["records"] == want


def test_zoom_and_stain_jitter_in_the_spec_file(tmp_path, workdirs):
    """pycount.toml's zoom and hed_jitter are the folder's own settings: its LMDBs and runs carry
    no tag for them, ZOOM= / HED= over them do, and the crops are cut at the zoomed sizes; bad
    values and ROT=0 beside them are refused naming the file."""
    folder = make_folder(tmp_path / "f", n=8, side=120, spacing=10)
    toml = folder / "pycount.toml"
    toml.write_text("zoom = 0.5\nhed_jitter = 0.05\n")
    lines = []
    ds = owndata.resolve(config.with_overrides(config.dataset(str(folder))), say=lines.append)
    assert (ds.zoom, ds.hed_jitter, ds.tag) == (0.5, 0.05, "f")
    assert [line.split()[:3] for line in lines if line.split()[0] in ("zoom", "hed_jitter")] == [
        ["zoom", "0.5", "pycount.toml:"], ["hed_jitter", "0.05", "pycount.toml:"]]
    assert resolved(folder, zoom=0.5, hed_jitter=0.05).tag == "f"
    assert resolved(folder, zoom=0.25).tag == "f-zoom0.25"
    assert resolved(folder, zoom=0.0, hed_jitter=0.0).tag == "f-hed0-zoom0"
    assert dataset_words(resolved(folder)) == f"DATASET={folder}"
    assert dataset_words(resolved(folder, zoom=0.0)) == f"DATASET={folder} ZOOM=0"

    assert cli.main(["prepare", "--dataset", str(folder), "--model", "fcrn"]) == 0
    manifest = lmdbio.read_manifest(config.density_lmdbs(ds, "train")[0])
    crops = [density_targets.count_training_crops(side, side, ds.crop, ds.crop_stride, 30)
             for side in (120, 80, 180)]          # each image at 1/1.5, 1 and 1.5 times its side
    assert manifest["records"] == len(manifest["images"]) * sum(crops)

    for text, needle in [("zoom = 0.01\n", "zoom = 0.01 must be a range from 0.05 to 1"),
                         ("hed_jitter = 1.5\n", "hed_jitter = 1.5 must be a strength below 1"),
                         ("zoom = 0.2\nrot_step = 0\n", "zoom = 0.2 augments the mirrored")]:
        toml.write_text(text)
        with pytest.raises(ConfigError, match=f"{toml}: {needle}"):
            config.dataset(str(folder))
    toml.write_text("zoom = 0.5\nsigma = 0.6\n")
    with pytest.raises(ConfigError, match=f"{toml}: zoom = 0.5 narrows sigma = 0.6 to 0.4 px in "
                                          f"the shrunken crops, below 0.5 px"):
        config.dataset(str(folder))


def test_stained_brightfield_folders_get_the_stain_jitter(tmp_path, workdirs, capsys):
    """hed_jitter left out of pycount.toml is inferred from the training images' mean colour:
    OWN_HED_JITTER for bright, coloured images (the nuclei release's mean colour), none for dark
    (the VGG cells' fluorescence blue) or grey ones, nor without rotations; said with the reason.
    It is the folder's own default (no tag); HED=0 turns it off and tags the run, as does a
    pycount.toml's 0 without a tag; ROT=0 alone is not refused for it and tags the rotation only;
    the density LMDB's crops are jittered."""
    he = make_folder(tmp_path / "he", n=6, colour=(212, 179, 218))
    lines = []
    ds = owndata.resolve(config.with_overrides(config.dataset(str(he))), say=lines.append)
    assert (ds.hed_jitter, ds.tag) == (config.OWN_HED_JITTER, "he") == (0.2, "he")
    [said] = [line for line in lines if line.split()[0] == "hed_jitter"]
    assert said.split(None, 2)[:2] == ["hed_jitter", "0.2"]
    assert "stained brightfield images (mean colour 203 of 255, its channels 39 apart)" in said
    assert "(HED=0 turns it off)" in said
    assert resolved(he, hed_jitter=0.2).tag == "he"
    assert resolved(he, hed_jitter=0.0).tag == "he-hed0"
    assert dataset_words(resolved(he, hed_jitter=0.0)) == f"DATASET={he} HED=0"
    assert dataset_words(ds) == f"DATASET={he}"
    unrotated = config.with_overrides(config.dataset(str(he)), rot_step=0)
    config.check_augmented_rotation(unrotated)                # nothing set: nothing refused
    rot0 = owndata.resolve(unrotated, say=lines.append)
    assert (rot0.hed_jitter, rot0.variant) == (0.0, "p44-s22-r0")
    assert any("none: the training crops are taken as they are (no rotation)" in line
               for line in lines)

    assert cli.main(["prepare", "--dataset", str(he), "--model", "fcrn"]) == 0
    capsys.readouterr()
    jittered = lmdbio.read_manifest(config.density_lmdbs(ds, "train")[0])["fingerprint"]
    plain = prepare.prepare(resolved(he, hed_jitter=0.0), model=config.model("fcrn"))
    assert plain["train"]["fingerprint"] != jittered

    (he / "pycount.toml").write_text("hed_jitter = 0\n")
    mine = resolved(he)
    assert (mine.hed_jitter, mine.tag) == (0.0, "he")
    assert resolved(he, hed_jitter=0.2).tag == "he-hed0.2"

    for name, colour, why in (("dark", (0, 0, 90), "none: dark images (mean colour 30 of 255"),
                              ("grey", (200, 203, 200), "none: grey images (mean colour 201 of "
                                                        "255, its channels 3 apart)")):
        lines.clear()
        other = owndata.resolve(config.dataset(str(make_folder(tmp_path / name, n=6,
                                                                colour=colour))),
                                say=lines.append)
        assert (other.hed_jitter, other.tag) == (0.0, name)
        assert any(line.split(None, 2)[:2] == ["hed_jitter", "0"] and why in line
                   for line in lines), lines
        assert resolved(tmp_path / name, hed_jitter=0.2).tag == f"{name}-hed0.2"


def test_a_spec_files_zoom_beside_rot_0_or_a_window_given(tmp_path, workdirs, capsys):
    """ROT=0 over a pycount.toml's zoom is refused for the density models only (a patch model's
    LMDB never zooms: it was refused, and the fix it named, ZOOM=0, was refused as a density
    option); a width or window given over a pycount.toml whose own are refused is tagged against
    them, not refused for them (the reference settings were resolved with the checks)."""
    folder = make_folder(tmp_path / "f", n=8, side=120, spacing=10)
    toml = folder / "pycount.toml"
    toml.write_text("zoom = 0.2\n")
    ds = config.with_overrides(config.dataset(str(folder)), rot_step=0)
    with pytest.raises(ConfigError) as err:
        config.check_augmented_rotation(ds)
    assert str(err.value) == (f"{toml}'s zoom = 0.2 augments the mirrored and rotated training "
                              f"crops, and with ROT=0 training takes the crops as they are: set "
                              f"ZOOM=0 or give a rotation step (ROT=30, the paper's)")
    assert cli.main(["prepare", "--dataset", str(folder), "--model", "fcrn", "--rot", "0"]) == 2
    assert "zoom = 0.2 augments" in capsys.readouterr().err
    assert cli.main(["prepare", "--dataset", str(folder), "--model", "alexnet-lite",
                     "--rot", "0"]) == 0
    config.check_augmented_rotation(config.with_overrides(config.dataset(str(folder)),
                                                          rot_step=0, zoom=0.0))
    toml.write_text("rot_step = 0\n")         # the rotation the file's, the zoom given
    with pytest.raises(ConfigError, match=f"ZOOM=0.2 augments .* and with rot_step = 0 in "
                                          f"{toml} training takes"):
        config.with_overrides(config.dataset(str(folder)), zoom=0.2)

    toml.write_text("zoom = 1\nsigma = 8\ncrop = 48\n")   # 16 px in 48 px crops: too wide
    with pytest.raises(DatasetError, match=f"{toml}'s zoom = 1 widens sigma = 8 in {toml} to "
                                           f"16 px in its enlarged crops"):
        resolved(folder)
    for given, tag in ((dict(crop=64), "f-crop64-s"), (dict(zoom=0.0), "f-zoom0"),
                       (dict(zoom=0.0, sigma=6.0), "f-sigma6-zoom0")):
        assert resolved(folder, **given).tag.startswith(tag)


def test_the_test_images_never_set_the_training_settings(tmp_path, workdirs):
    """The cell spacing behind patch, sigma and crop is the training images' own: six 120 px
    images at spacing 10 to train on, two 600 px images at spacing 6 held out for the test
    (measuring over all eight gave 28 px patches and sigma 1.0; helper-58). The same folder
    without the dense pair gives the same settings."""
    folder = make_folder(tmp_path / "cells", n=6, side=120, spacing=10)
    dense = make_folder(tmp_path / "dense", n=2, side=600, spacing=6)
    for f in sorted(dense.iterdir()):
        f.rename(folder / f.name.replace("i00", "i06").replace("i01", "i07"))
    (folder / "pycount.toml").write_text('test = ["i06", "i07"]\n')
    ds = resolved(folder)
    alone = make_folder(tmp_path / "alone", n=6, side=120, spacing=10)
    (alone / "pycount.toml").write_text('test = ["i04", "i05"]\n')
    ref = resolved(alone)
    assert (ds.patch, ds.sigma, ds.crop) == (ref.patch, ref.sigma, ref.crop) == (44, 1.5, 72)


def test_widely_spaced_cells_get_the_largest_windows_not_more(tmp_path, workdirs):
    """Cells 60 px apart on 600 px images: the spacing rule asks for windows beyond the largest
    pycount cuts, so patch, crop and sigma stop at their bounds (dropping either clamp gave
    272 px patches, 448 px crops and sigma 10; helper-58)."""
    ds = resolved(make_folder(tmp_path / "sparse", n=8, side=600, spacing=60))
    assert (ds.patch, ds.crop, ds.sigma, ds.stride) == (256, 192, 8.0, 128)


def test_a_stain_jitter_edited_in_the_spec_writes_the_crops_again(tmp_path, workdirs):
    """hed_jitter in pycount.toml is the folder's own default, so editing it changes no folder
    name: only the LMDB fingerprint tells the jittered crops of 0.1 from those of 0.2."""
    folder = make_folder(tmp_path / "he", n=6)
    model = config.model("fcrn")
    fingerprints = []
    for hed in (0.1, 0.2):
        (folder / "pycount.toml").write_text(f"hed_jitter = {hed}\n")
        ds = resolved(folder)
        assert ds.hed_jitter == hed and ds.variant == ""
        fingerprints.append(prepare.prepare(ds, model=model)["train"]["fingerprint"])
    assert fingerprints[0] != fingerprints[1]


def test_prepare_warns_of_a_test_image_of_another_bit_depth_it_does_not_keep(tmp_path, workdirs,
                                                                             capsys):
    """load_split reads the test part it does not keep (check) as it reads one it keeps: a test
    image of another bit depth than the training images' is warned about, by name, as `pycount
    count` flags it; a training image is compared with nothing."""
    folder = make_folder(tmp_path / "f", n=8, side=120)
    (folder / "pycount.toml").write_text('test = ["i06", "i07"]\n')
    cv2.imwrite(str(folder / "i07.png"), np.full((120, 120), 3000, np.uint16))
    ds = resolved(folder)
    assert ds.image_dtypes == ("uint8",)
    ids, loaded = prepare.load_split(ds, side=ds.crop, keep=("train", "val"))
    assert loaded["test"] == [] and ids["test"] == ["i06", "i07"]
    err = capsys.readouterr().err
    assert f"warning: {folder / 'i07.png'}: " in err and "16-bit" in err, err
    assert "i06.png" not in err


def test_prepare_reads_an_own_folder_one_image_when_asked_for(tmp_path, workdirs, monkeypatch):
    """prepare._read gives an own folder's samples lazily (readers.iter_folder): no image
    decoded until one is asked for, then that one alone; not the part read whole first."""
    ds = resolved(make_folder(tmp_path / "f", n=8, side=120))
    decoded = []
    real = readers.read_in_range
    monkeypatch.setattr(readers, "read_in_range",
                        lambda path, *a: decoded.append(path.name) or real(path, *a))
    stream = prepare._read(ds, ["i00", "i01", "i02"])
    assert decoded == []
    first = next(stream)
    assert first.id == "i00" and decoded == ["i00.png"]
    assert first.source == str(tmp_path / "f" / "i00.png")        # the image, not its marks
    assert [s.id for s in stream] == ["i01", "i02"] and len(decoded) == 3


def test_load_split_leaves_an_own_folders_small_training_image_for_padded(tmp_path, workdirs,
                                                                          capsys):
    """load_split keeps an own folder's training image smaller than the crop as it is (padded
    pads it, after any stain normalisation: helper-53), and says nothing of padding until
    then."""
    folder = make_folder(tmp_path / "f", n=8, side=120, small=("i01",))
    (folder / "pycount.toml").write_text('test = ["i06", "i07"]\n')
    ds = resolved(folder)
    ids, loaded = prepare.load_split(ds, side=ds.crop)
    small = [s for part in ("train", "val") for s in loaded[part] if s.id == "i01"]
    assert len(small) == 1 and small[0].image.shape == (30, 30, 3)
    assert "padded" not in capsys.readouterr().out
    out = prepare.padded(ds, loaded, ds.crop)
    assert [s.image.shape for part in ("train", "val") for s in out[part] if s.id == "i01"] \
        == [(ds.crop, ds.crop, 3)]
    assert f"image(s) smaller than {ds.crop} px padded" in capsys.readouterr().out
