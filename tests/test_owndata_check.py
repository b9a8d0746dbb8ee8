"""bench/owndata_check.py writes the public sets in the layouts labs produce; the own-data readers
must get every cell of the source back from each of them. And the settings a lab gives on the
command line or in its folder's pycount.toml that no training can use (nan, inf, a sigma wider
than the crop, a window larger than the memory, a stride that skips pixels, a 0 that silently
meant "infer", a mean colour off the 8-bit scale) are refused in one line naming the option or
the file, before anything is written or allocated."""
import json
import shutil

import cv2
import numpy as np
import pytest

from conftest import SHARED
from bench import owndata_check as check
from pycount import cli, config
from pycount.data import layout, owndata, readers
from pycount.errors import ConfigError, DatasetError

needs_shared = pytest.mark.skipif(not (SHARED / "vgg_cells").is_dir(),
                                  reason="no shared datasets")


@needs_shared
def test_tiled_csv_variant_keeps_every_dot(tmp_path):
    folder = check.build("vgg-2x2-csv", tmp_path)
    got = readers.read_folder(folder)
    src = readers.read_vgg_cells(SHARED / "vgg_cells")
    assert len(got) == 50 and got[0].image.shape == (512, 512, 3)
    assert [s.count for s in got] == [sum(s.count for s in src[k:k + 4]) for k in range(0, 200, 4)]
    # the second tile's dots sit 256 px to the right of their source image's
    first = got[0].centres[src[0].count:src[0].count + src[1].count]
    np.testing.assert_allclose(first, src[1].centres + (256, 0), atol=0.01)


@needs_shared
def test_cellcounter_variant_reads_back_within_rounding(tmp_path):
    folder = check.build("nuclei-cellcounter", tmp_path)
    assert len(list(folder.glob("CellCounter_*.xml"))) == 100
    got = {s.id: s for s in readers.read_folder(folder)}
    src = readers.read_crc_nuclei(SHARED / "CRCHistoPhenotypes_2016_04_28")
    for s in src[:10]:
        assert np.abs(got[s.id].centres - s.centres).max() <= 0.5 + 1e-9
    # the release's 8 repeated marks counted once, and img58's two marks 0.68 px apart fall on
    # one pixel in the Cell Counter file's whole-pixel positions
    assert sum(s.count for s in got.values()) == 29748 - 1


@needs_shared
def test_small_16bit_variant_is_grey_and_counts_its_crop(tmp_path):
    import cv2
    folder = check.build("vgg-small-grey16", tmp_path)
    raw = cv2.imread(str(folder / "001.tif"), cv2.IMREAD_UNCHANGED)
    assert raw.dtype == np.uint16 and raw.shape == (150, 150)
    src = readers.read_vgg_cells(SHARED / "vgg_cells", ids=["001"])[0]
    inside = ((np.round(src.centres) < 150).all(axis=1)).sum()
    got = readers.read_folder(folder, ids=["001"])[0]
    assert got.count == inside and got.image.shape == (150, 150, 3)
    assert (folder / ".complete").exists()


@needs_shared
def test_a_failed_step_ends_in_one_line_and_its_status(tmp_path, monkeypatch, capsys):
    """A step that fails (or is stopped: a training interrupted) is named in one line with the
    way on; no traceback of the harness."""
    import subprocess
    monkeypatch.setattr(check, "build", lambda variant, root: tmp_path / variant)

    def stopped(cmd, **kw):
        raise subprocess.CalledProcessError(130, cmd)
    monkeypatch.setattr(check.subprocess, "run", stopped)
    assert check.main(["--variants", "vgg-2x2-csv", "--root", str(tmp_path)]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [next(line for line in err if "exited" in line)]
    assert "`pycount prepare` on vgg-2x2-csv exited 130" in err[0] and "again" in err[0]


@needs_shared
def test_geojson_variants_read_back_at_both_scales(tmp_path):
    """QuPath's MultiPoint export reads back every dot; the 2x pair keeps the names (the same test
    draw) and puts each dot on its cell's enlarged pixels."""
    src = readers.read_vgg_cells(SHARED / "vgg_cells", ids=["001", "002"])
    one = readers.read_folder(check.build("vgg-geojson", tmp_path), ids=["001", "002"])
    two = readers.read_folder(check.build("vgg-up2-geojson", tmp_path), ids=["001", "002"])
    for s, a, b in zip(src, one, two):
        assert a.image.shape == (256, 256, 3) and b.image.shape == (512, 512, 3)
        np.testing.assert_allclose(a.centres, s.centres, atol=1e-3)
        np.testing.assert_allclose(b.centres, 2 * s.centres + 0.5, atol=1e-3)
        # the enlarged image's pixel under a dot is the source's pixel under it, interpolated
        xs, ys = np.round(s.centres).astype(int).T
        ok = (xs < 255) & (ys < 255)
        big = b.image[2 * ys[ok], 2 * xs[ok]].astype(float)
        assert np.abs(big - s.image[ys[ok], xs[ok]]).mean() < 6
    names = {p.name for p in (tmp_path / "vgg-up2-geojson").iterdir()}
    assert {"001.png", "001.geojson"} <= names and len(names) == 401   # + .complete


@needs_shared
def test_release_layout_variants_read_back_every_cell(tmp_path):
    """The MBM release's names (NAME_dots_000.png beside NAME_000.png) and the adipocyte
    release's images/ + annotations/ JPEG masks: every cell of the source comes back, but for
    the few nuclei marked twice within one pixel, which a dot mask cannot tell apart."""
    src = readers.read_crc_nuclei(SHARED / "CRCHistoPhenotypes_2016_04_28")
    got = {s.id: s for s in readers.read_folder(check.build("nuclei-mbm-names", tmp_path))}
    assert set(got) == {f"{s.id}_000" for s in src}
    for s in src:
        pixels = {tuple(p) for p in np.clip(np.round(s.centres).astype(int), 0, 499)}
        assert got[f"{s.id}_000"].count == len(pixels)
    adi = check.build("vgg-adi-layout", tmp_path)
    assert sorted(p.name for p in adi.iterdir()) == [".complete", "annotations", "images"]
    got = {s.id: s for s in readers.read_folder(adi)}
    for s in readers.read_vgg_cells(SHARED / "vgg_cells"):
        inside = ((s.centres < 149.5).all(axis=1)).sum()
        assert got[s.id].count == inside and got[s.id].image.shape == (150, 150, 3)


@needs_shared
def test_bcdata_variant_keeps_every_nucleus_and_its_class(tmp_path):
    """The CRC images in BCData's layout: 60/10/30 images in train/, validation/ and test/, the
    five class folders together count exactly the detection marks of each image, and one class
    alone the release's own list of it."""
    import scipy.io
    release = SHARED / "CRCHistoPhenotypes_2016_04_28"
    src = {s.image.tobytes(): s for s in readers.read_crc_nuclei(release)}
    root = check.build("nuclei-bcdata", tmp_path)
    pairs, test, label = layout.folder_layout(root)
    assert (len(pairs), len(test), label) == (100, 30, "test")
    assert len([i for i in pairs if i.startswith("validation_")]) == 10
    every = readers.read_folder(root)
    inflamed = {s.id: s.count for s in readers.read_folder(root, marker="inflammatory")}
    assert {s.id for s in every} == set(pairs)
    for s in every:
        original = src.pop(s.image.tobytes())          # each image once, as it was
        assert s.count == original.count
        assert sorted(map(tuple, s.centres)) == sorted(map(tuple, original.centres))
        mat = scipy.io.loadmat(str(release / "Classification" / f"img{original.id}" /
                                   f"img{original.id}_inflammatory.mat"))["detection"]
        assert inflamed[s.id] == len(np.unique(np.asarray(mat).reshape(-1, 2), axis=0))
    assert not src


@needs_shared
@pytest.mark.parametrize("variant, low, read, source", [
    ("vgg-mixed-sizes", 48, readers.read_vgg_cells, "vgg_cells"),
    ("nuclei-mixed-sizes", 72, readers.read_crc_nuclei, "CRCHistoPhenotypes_2016_04_28")])
def test_mixed_size_variants_keep_the_cells_of_each_window(tmp_path, variant, low, read, source):
    """Each image is a window of its source at a seeded place and size: the cells read back are
    the source's cells inside that window, moved by its corner, and the sizes differ."""
    src = {s.id: s for s in read(SHARED / source)}
    got = readers.read_folder(check.build(variant, tmp_path))
    assert {s.id for s in got} == set(src)
    sizes = {s.image.shape[:2] for s in got}
    assert len(sizes) > len(got) // 2
    for s in got:
        full = src[s.id].image
        h, w = s.image.shape[:2]
        assert low <= h <= full.shape[0] and low <= w <= full.shape[1]
        # find the window's corner by matching its pixels in the source
        hit = cv2.matchTemplate(full, s.image, cv2.TM_SQDIFF)
        y0, x0 = np.unravel_index(np.argmin(hit), hit.shape)
        assert np.array_equal(full[y0:y0 + h, x0:x0 + w], s.image)
        c = src[s.id].centres - (x0, y0)
        inside = (c[:, 0] >= -0.5) & (c[:, 0] < w - 0.5) & (c[:, 1] >= -0.5) & (c[:, 1] < h - 0.5)
        assert s.count == inside.sum()
        np.testing.assert_allclose(np.sort(s.centres, axis=0),
                                   np.sort(np.clip(c[inside], 0, [w - 1, h - 1]), axis=0),
                                   atol=0.006)

# --- settings no training can use: refused, named, before anything is written -------------------

def own_folder(root, n=6, side=120, spacing=10, spec=""):
    """n grey PNG images of side px with dots `spacing` px apart in x,y CSVs (inferred there:
    patch 44, crop 72, sigma 1.5), and a pycount.toml of `spec` when given."""
    root.mkdir(parents=True, exist_ok=True)
    g = np.arange(3, side - 1, spacing, dtype=np.float64)
    dots = "".join(f"{x},{y}\n" for y in g for x in g)
    for i in range(n):
        cv2.imwrite(str(root / f"i{i:02d}.png"), np.full((side, side, 3), 90 + i, np.uint8))
        (root / f"i{i:02d}.csv").write_text("x,y\n" + dots)
    if spec:
        (root / "pycount.toml").write_bytes(spec.encode() if isinstance(spec, str) else spec)
    return root


def refused(capsys, *argv) -> str:
    """`pycount prepare ARGV`'s one-line message (exit status 2, no traceback)."""
    assert cli.main(["prepare", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pycount: error: ") and err.count("\n") == 1 and "Traceback" not in err
    return err


def resolved(folder, **overrides):
    return owndata.resolve(config.with_overrides(config.dataset(str(folder)), **overrides),
                           say=lambda _: None)


@pytest.mark.parametrize("value, needle", [
    ("nan", "SIGMA=nan is not valid: give a finite width in pixels"),      # was a ValueError
    ("inf", "SIGMA=inf is not valid: give a finite width in pixels"),      # an OverflowError
    ("1e9", "is too wide for"),                                              # 59.6 GiB asked for
    ("0.1", "SIGMA=0.1 is not valid: use a width of at least 0.5 px"),
])
@pytest.mark.parametrize("where", ["own", "synthetic"])
def test_a_sigma_that_is_no_usable_width_is_refused_on_the_command_line(tmp_path, workdirs, capsys,
                                                                         value, needle, where):
    dataset = str(own_folder(tmp_path / "f")) if where == "own" else "synthetic"
    err = refused(capsys, "--dataset", dataset, "--model", "fcrn", "--sigma", value)
    assert needle in err
    if value == "1e9":
        assert ("SIGMA=1e+09 (--sigma) is too wide for the inferred crop of 72 px"
                if where == "own" else "SIGMA=1e+09 is too wide for synthetic's crop of 64 px") \
            in err and "at most a quarter of the crop side" in err
    assert not (workdirs / "data" / "lmdb").exists()


def test_the_sigma_bound_is_a_quarter_of_the_crop_and_admits_it(tmp_path, workdirs):
    syn = config.dataset("synthetic")                       # crops of 64 px
    assert config.with_overrides(syn, sigma=16).sigma == 16
    assert config.with_overrides(syn, sigma=0.5).sigma == 0.5
    assert config.with_overrides(syn, sigma=20, crop=80).sigma == 20   # the crop given with it
    with pytest.raises(ConfigError, match="SIGMA=16.5 is too wide for synthetic's crop of 64 px: "
                                          ".* 16 px .* or a crop of at least 72 px"):
        config.with_overrides(syn, sigma=16.5)
    # a crop given alone is checked against the dataset's own sigma (ki67's 4 px)
    with pytest.raises(ConfigError, match="ki67's sigma of 4 px is too wide for CROP=8"):
        config.with_overrides(config.dataset("ki67"), crop=8)
    folder = own_folder(tmp_path / "f")
    assert resolved(folder, sigma=18).sigma == 18               # a quarter of the inferred 72
    with pytest.raises(DatasetError, match=r"SIGMA=18.5 \(--sigma\) is too wide for the inferred "
                                           r"crop of 72 px"):
        resolved(folder, sigma=18.5)
    # an inferred sigma (5 px at cells 30 px apart) is held to a crop given as well
    wide = own_folder(tmp_path / "wide", spacing=30)
    with pytest.raises(DatasetError, match=r"the inferred sigma of 5 px is too wide for CROP=8 "
                                           r"\(--crop\): .* or a crop of at least 24 px"):
        resolved(wide, crop=8)
    assert resolved(wide, crop=24).sigma == 5


@pytest.mark.parametrize("option, value, needle", [
    ("hed_jitter", float("nan"), "HED=nan is not valid: give a finite strength"),
    ("hed_jitter", float("inf"), "HED=inf is not valid: give a finite strength"),
    ("scale", float("nan"), "SCALE=nan is not valid: give a finite factor"),
    ("scale", float("inf"), "SCALE=inf is not valid: give a finite factor"),
    ("sigma", float("-inf"), "SIGMA=-inf is not valid: give a finite width"),
])
def test_every_float_option_must_be_finite(option, value, needle):
    with pytest.raises(ConfigError) as err:
        config.with_overrides(config.dataset("synthetic"), **{option: value})
    assert str(err.value).startswith(needle)


@pytest.mark.parametrize("spec, needle", [
    ("sigma = nan\n", "sigma = nan is not valid; expected a finite, non-negative float"),  # looped
    ("sigma = inf\n", "sigma = inf is not valid; expected a finite, non-negative float"),
    ("scale = -inf\n", "scale = -inf is not valid; expected a finite, non-negative float"),
    ("sigma = 1e9\n", "sigma = 1000000000.0 is too wide for the inferred crop of 72 px"),
    ("sigma = 30\ncrop = 64\n", "sigma = 30 is too wide for crop = 64 in "),
    ("sigma = 0.25\n", "sigma = 0.25 is not valid: use a width of at least 0.5 px"),
    ("rot_step = 400\n", "rot_step = 400 is not valid: use a rotation step in degrees from 1 to 359"),
])
def test_a_spec_sigma_or_float_that_is_no_usable_value_is_named(tmp_path, workdirs, capsys, spec,
                                                                needle):
    folder = own_folder(tmp_path / "f", spec=spec)
    err = refused(capsys, "--dataset", str(folder), "--model", "fcrn")
    assert err.startswith(f"pycount: error: {folder / 'pycount.toml'}: ") and needle in err
    assert not (workdirs / "data" / "lmdb").exists()


@pytest.mark.parametrize("key", config.SPEC_NOT_ZERO)
def test_a_zero_in_the_spec_file_is_refused_not_taken_for_infer(tmp_path, workdirs, key):
    """patch = 0 (and the others) silently meant "infer it"; the command line refuses 0."""
    folder = own_folder(tmp_path / "f", spec=f"{key} = 0\n")
    with pytest.raises(ConfigError) as err:
        config.dataset(str(folder))
    assert str(err.value).startswith(f"{folder / 'pycount.toml'}: {key} = 0 is not valid (")
    assert "remove that line to " in str(err.value)
    (folder / "pycount.toml").write_text(f"{key} = {8 if 'stride' in key else 48}\n")
    assert getattr(config.dataset(str(folder)), key) == (8 if "stride" in key else 48)


@pytest.mark.parametrize("mean", ["[300, -5, 1e9]", "[nan, 1, 2]", "[1, 2]", "[true, 1, 2]",
                                  "[1, 2, inf]"])
def test_a_mean_colour_off_the_8_bit_scale_is_refused(tmp_path, workdirs, mean):
    """[nan, 1, 2] prepared, then its training "diverged" with the wrong advice."""
    folder = own_folder(tmp_path / "f", spec=f"mean_rgb = {mean}\n")
    with pytest.raises(ConfigError, match="mean_rgb = .* is not valid: give three numbers "
                                          r"\[r, g, b\] from 0 to 255"):
        config.dataset(str(folder))


def test_a_mean_colour_within_the_scale_is_used(tmp_path, workdirs):
    folder = own_folder(tmp_path / "f", spec="mean_rgb = [0, 128.5, 255]\n")
    assert resolved(folder).mean_bgr == (255.0, 128.5, 0.0)


def test_a_spec_file_with_a_byte_order_mark_is_read(tmp_path, workdirs):
    """Windows editors write UTF-8 with a BOM: it was "Invalid statement (at line 1, column 1)"."""
    folder = own_folder(tmp_path / "f", spec=b"\xef\xbb\xbfpatch = 40\nsigma = 2.5\n")
    ds = resolved(folder)
    assert (ds.patch, ds.sigma) == (40, 2.5)


def test_a_spec_file_in_utf16_is_read_and_one_in_a_legacy_encoding_named(tmp_path, workdirs,
                                                                         capsys):
    """Windows Notepad's "Unicode" (UTF-16 with its mark) and a Windows-1252 accent in a comment
    were a UnicodeDecodeError traceback (helper-46)."""
    text = "# r\u00e9glages\npatch = 40\nsigma = 2.5\n"
    folder = own_folder(tmp_path / "f", spec=text.encode("utf-16"))
    ds = resolved(folder)
    assert (ds.patch, ds.sigma) == (40, 2.5)
    other = own_folder(tmp_path / "g", spec=text.encode("cp1252"))
    err = refused(capsys, "--dataset", str(other))
    assert f"{other / config.SPEC_FILE}: byte 3 is not UTF-8 text (b'\\xe9'" in err
    assert err.rstrip().endswith("save it as UTF-8") and "Traceback" not in err


def test_a_spec_file_in_utf16_without_its_mark_is_named(tmp_path, workdirs, capsys):
    """UTF-16 without the byte-order mark (some tools write it so) decoded as UTF-8 with a NUL
    after every letter, and tomllib's complaint named no encoding."""
    folder = own_folder(tmp_path / "f", spec="patch = 40\n".encode("utf-16-le"))
    err = refused(capsys, "--dataset", str(folder))
    assert (f"{folder / config.SPEC_FILE}: byte 1 is a NUL: UTF-16 text without its byte-order "
            f"mark, or no text at all; save it as UTF-8") in err and "Traceback" not in err


def test_a_patch_resize_beyond_the_window_limit_is_refused(workdirs, capsys):
    """SIZE=99999 asked cv2 for 30 GB to resize the first patch; PATCH= and CROP= of a named set
    take the own folders' ceiling too."""
    hi = config.WINDOW_LIMITS[1]
    err = refused(capsys, "--dataset", "synthetic", "--size", "99999")
    assert f"SIZE=99999 is not valid: resize patches to at most {hi} px" in err
    assert config.with_overrides(config.dataset("synthetic"), size=hi).size == hi
    for option, value in (("patch", hi + 4), ("crop", hi + 8)):
        with pytest.raises(ConfigError, match=f"{option.upper()}={value} is not valid: use a "
                                              f"{option} of at most {hi} px"):
            config.with_overrides(config.dataset("synthetic"), **{option: value})
    assert not (workdirs / "data" / "lmdb").exists()


def test_a_stride_larger_than_the_patch_is_refused(tmp_path, workdirs, capsys):
    """STRIDE=9999 prepared windows with gaps: pixels no training saw and no count covered."""
    syn = config.dataset("synthetic")                               # patch 40, stride 20
    err = refused(capsys, "--dataset", "synthetic", "--stride", "9999")
    assert "STRIDE=9999 is larger than synthetic's patch of 40 px: the windows would skip" in err
    assert config.with_overrides(syn, stride=40).stride == 40
    with pytest.raises(ConfigError, match="synthetic's stride of 20 px is larger than PATCH=16"):
        config.with_overrides(syn, patch=16)
    folder = own_folder(tmp_path / "f")                             # patch 44 inferred
    assert resolved(folder, stride=44).stride == 44
    with pytest.raises(DatasetError, match=r"STRIDE=45 \(--stride\) is larger than the inferred "
                                           r"patch of 44 px"):
        resolved(folder, stride=45)
    (folder / "pycount.toml").write_text("patch = 40\nstride = 50\n")
    with pytest.raises(DatasetError) as e:
        resolved(folder)
    assert str(e.value).startswith(f"{folder / 'pycount.toml'}: stride = 50 is larger than "
                                   f"patch = 40 in {folder / 'pycount.toml'}")
    # a crop stride beyond the crop is deliberate: ki67's 384 over 192 px crops, and an own
    # folder's inferred one grows to 8 crops to keep within OWN_CROP_BUDGET
    assert config.with_overrides(syn, crop_stride=128).crop_stride == 128
    assert config.dataset("ki67").crop_stride > config.dataset("ki67").crop


def test_a_name_whose_folder_was_deleted_names_the_folder(tmp_path, workdirs, capsys):
    """eval --dataset gone said "unknown dataset 'gone'" though data/own/gone.json records it."""
    folder = own_folder(tmp_path / "gone")
    resolved(folder)
    assert config.dataset("gone").subdir == str(folder)             # the name finds the folder
    (folder / "pycount.toml").write_text("patchh = 3\n")            # its own error, not "unknown"
    with pytest.raises(ConfigError, match="unknown setting 'patchh'"):
        config.dataset("gone")
    shutil.rmtree(folder)
    assert cli.main(["eval", "--dataset", "gone", "--model", "fcrn"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"pycount: error: 'gone' is the own folder {folder}, as "
                          f"{config.own_record('gone')} records, and that folder no longer exists")
    assert "unknown dataset" not in err and "Traceback" not in err
    # a record that is no record of ours is no name
    config.own_record("junk").write_text(json.dumps(["not", "a", "record"]))
    with pytest.raises(ConfigError, match="unknown dataset 'junk'"):
        config.dataset("junk")


def test_a_folder_named_without_a_slash_is_pointed_at(tmp_path, workdirs, monkeypatch):
    """DATASET=my_cells for the folder my_cells here said only "unknown dataset"."""
    (tmp_path / "my_cells").mkdir()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as refused:
        config.dataset("my_cells")
    assert str(refused.value).endswith("; the folder my_cells here is given as "
                                       "DATASET=./my_cells (a value with a / is a folder)")
    with pytest.raises(ConfigError) as refused:
        config.dataset("elsewhere")
    assert "the folder" not in str(refused.value)


def test_a_class_count_beyond_the_patch_pixels_is_refused(tmp_path, workdirs):
    """max_patch_count in pycount.toml had no bound: a C head of a billion classes."""
    folder = own_folder(tmp_path / "f", spec="patch = 40\nmax_patch_count = 1000000000\n")
    with pytest.raises(DatasetError) as err:
        resolved(folder)
    assert str(err.value).startswith(f"{folder / 'pycount.toml'}: max_patch_count = 1000000000 "
                                     f"is more cells than a 40 px patch has pixels (1600)")
    (folder / "pycount.toml").write_text("patch = 40\nmax_patch_count = 1600\n")
    assert resolved(folder).max_patch_count == 1600
    # one class more than the patch has pixels: refused, the whole message
    (folder / "pycount.toml").write_text("patch = 40\nmax_patch_count = 1601\n")
    with pytest.raises(DatasetError) as err:
        resolved(folder)
    assert str(err.value) == (f"{folder / 'pycount.toml'}: max_patch_count = 1601 is more cells "
                              f"than a 40 px patch has pixels (1600): the C head would get a "
                              f"class for each; remove it to have it inferred (2 times the "
                              f"densest training image's cells per patch area, plus 10)")


def test_zoom_widening_sigma_beyond_an_own_folders_crop_is_refused(tmp_path, workdirs, capsys):
    """The named sets' check (with_overrides) was skipped for own folders, whose sigma and crop
    are known only once inferred: SIGMA=10 ZOOM=1 wrote 20 px Gaussians into 48 px crops."""
    folder = own_folder(tmp_path / "f")
    err = refused(capsys, "--dataset", str(folder), "--model", "fcrn", "--zoom", "1",
                  "--sigma", "10", "--crop", "48")
    assert "ZOOM=1 widens SIGMA=10 (--sigma) to 20 px in its enlarged crops" in err
    assert "too wide for CROP=48 (--crop)" in err
    resolved(folder, zoom=1.0, sigma=5.0, crop=48)          # 10 px: a quarter of 48 fits 12


@needs_shared
def test_cellpose_mask_variant_counts_each_dot_as_one_labelled_cell(tmp_path):
    """Each VGG image's label mask holds one label per distinct dot pixel, each one region
    around its dot, and the folder reads back exactly that many cells, each within 3 px of
    its dot (a cell cut by a neighbour or the image's edge has its centroid off the dot)."""
    folder = check.build("vgg-cellpose-masks", tmp_path)
    src = {s.id: s for s in readers.read_vgg_cells(SHARED / "vgg_cells")}
    got = {s.id: s for s in readers.read_folder(folder)}
    assert set(got) == set(src)
    for i, s in src.items():
        pixels = np.unique(np.clip(np.round(s.centres).astype(int), 0, 255), axis=0)
        assert got[i].count == len(pixels)
        d = np.sqrt(((got[i].centres[:, None] - pixels[None]) ** 2).sum(axis=2)).min(axis=1)
        assert d.max() <= 3


@needs_shared
def test_dsb_variant_is_one_mask_file_per_labelled_cell(tmp_path):
    """Each VGG image becomes <id>/images/<id>.png + <id>/masks/, one file per cell of the
    Cellpose variant's labels, and reads back those cells at the labels' centroids."""
    folder = check.build("vgg-dsb-masks", tmp_path)
    labelled = {s.id: s for s in readers.read_folder(check.build("vgg-cellpose-masks", tmp_path))}
    got = {s.id: s for s in readers.read_folder(folder)}
    assert set(got) == set(labelled)
    assert sorted(p.name for p in (folder / "001").iterdir()) == ["images", "masks"]
    for i, s in got.items():
        assert len(list((folder / i / "masks").iterdir())) == s.count == labelled[i].count
        np.testing.assert_allclose(np.sort(s.centres, axis=0), np.sort(labelled[i].centres, axis=0))


@needs_shared
def test_release_folders_variant_reads_as_the_named_nuclei_set(tmp_path):
    """The Detection folder read as a lab's own folder gives the named set's images and marks
    (its marks a hair beyond the edge counted on it, as the named reader does)."""
    got = {s.id: s for s in readers.read_folder(check.build("nuclei-release-folders", tmp_path))}
    named = readers.read_crc_nuclei(SHARED / "CRCHistoPhenotypes_2016_04_28")
    assert set(got) == {f"img{s.id}" for s in named}
    for s in named:
        np.testing.assert_array_equal(got[f"img{s.id}"].centres, s.centres)


@needs_shared
def test_roboflow_yolo_variant_reads_back_every_dot_with_its_split(tmp_path):
    """Train/valid/test as Roboflow writes them: the test part is the published test set, and
    each image's YOLO boxes read back at its dots (within the 6 decimals the labels keep)."""
    folder = check.build("vgg-roboflow-yolo", tmp_path)
    pairs, held, label = layout.folder_layout(folder)
    assert len(pairs) == 200 and len(held) == 20 and label == "test"
    src = {s.id: s for s in readers.read_vgg_cells(SHARED / "vgg_cells")}
    for s in readers.read_folder(folder):
        want = src[s.id.split("_png")[0]].centres
        np.testing.assert_allclose(s.centres, want, atol=1e-3)


@needs_shared
def test_ctc_variant_tests_on_its_second_sequence_with_the_labels_cells(tmp_path):
    """Two sequences of 100 frames: 02/'s frames are the test part, and every frame reads back
    the cells of the Cellpose variant's labels of its VGG image (frame t of 01/ is image t + 1,
    of 02/ image t + 101)."""
    folder = check.build("vgg-ctc-layout", tmp_path)
    pairs, held, label = layout.folder_layout(folder)
    assert len(pairs) == 200 and label == "02"
    assert held == tuple(f"02_t{t:03d}" for t in range(100))
    labelled = {s.id: s for s in readers.read_folder(check.build("vgg-cellpose-masks", tmp_path))}
    for s in readers.read_folder(folder):
        seq, t = s.id.split("_t")
        src = labelled[f"{int(t) + 1 + (100 if seq == '02' else 0):03d}"]
        assert s.image.shape[:2] == src.image.shape[:2]
        np.testing.assert_allclose(np.sort(s.centres, axis=0), np.sort(src.centres, axis=0))
