"""Tests for the dataset readers (real CRC nuclei and VGG cells, generic folders), their validation,
the layout dispatcher, and the Ki67-like synthetic generator."""
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io
import tifffile

from pycount.data import annotations
from pycount.data import images
from pycount.data import readers as datasets
from pycount.data import patches
from pycount.data import synthetic
from pycount.data.readers import read, read_generic
from pycount.errors import DatasetError
from pycount.data.synthetic import generate_ki67_synthetic

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
CRC_ROOT = SHARED / "CRCHistoPhenotypes_2016_04_28"
VGG_ROOT = SHARED / "vgg_cells"
KI67_SMALL = dict(size=(200, 240), count_range=(30, 80))  # small images keep most generator tests fast


def require(root):
    if not root.is_dir():
        pytest.skip(f"real dataset not present at {root}")


@pytest.fixture(scope="module")
def crc():
    require(CRC_ROOT)
    return read("crc_nuclei", CRC_ROOT)


@pytest.fixture(scope="module")
def vgg():
    require(VGG_ROOT)
    return read("vgg_cells", VGG_ROOT)


def write_rgb(path, rgb):
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def write_xy(path, centres):
    np.savetxt(path, centres, fmt="%.10g", delimiter=",", header="x,y", comments="")


# --- real CRC nuclei ---------------------------------------------------------------------------------

def test_crc_counts_and_ids(crc):
    counts = [s.count for s in crc]
    assert [s.id for s in crc] == [str(n) for n in range(1, 101)]
    # 29,756 marks, 8 of them repeated at the same position (counted once): img29's 1,191 marks
    # are 1,189 cells, the largest count of the paper's Table 1
    assert sum(counts) == 29748 and min(counts) == 1 and max(counts) == 1189
    assert all(s.image.shape == (500, 500, 3) and s.image.dtype == np.uint8 for s in crc)
    assert [s.id for s in read("crc_nuclei", CRC_ROOT, ids=["10", "2"])] == ["10", "2"]


def test_crc_one_based_to_zero_based(crc):
    for s in crc:
        assert ((s.centres >= -0.5) & (s.centres < 499.5)).all(), s.id
    raw = scipy.io.loadmat(str(CRC_ROOT / "Detection/img1/img1_detection.mat"))["detection"]
    np.testing.assert_array_equal(crc[0].centres, raw - 1)
    assert crc[0].centres[0, 0] == raw[0, 0] - 1 and crc[0].centres[0, 1] == raw[0, 1] - 1
    # Image 8 has a border click at 1-based y = 0.15: 1.15 px outside after the shift, moved onto row 0.
    raw8 = scipy.io.loadmat(str(CRC_ROOT / "Detection/img8/img8_detection.mat"))["detection"] - 1
    row = np.argmin(raw8[:, 1])
    assert raw8[row, 1] < -0.5 and crc[7].centres[row, 1] == 0 and crc[7].centres[row, 0] == raw8[row, 0]


def test_crc_centre_far_outside(tmp_path):
    folder = tmp_path / "Detection" / "img1"
    folder.mkdir(parents=True)
    write_rgb(folder / "img1.bmp", np.zeros((20, 30, 3), np.uint8))
    scipy.io.savemat(folder / "img1_detection.mat", {"detection": np.array([[5.0, 5.0], [33.0, 4.0]])})
    with pytest.raises(DatasetError, match="img1_detection.mat") as err:
        datasets.read_crc_nuclei(tmp_path)
    assert "(32, 3)" in str(err.value) and "30x20" in str(err.value)
    scipy.io.savemat(folder / "img1_detection.mat", {"detection": np.zeros((0, 0))})  # empty is fine
    assert datasets.read_crc_nuclei(tmp_path)[0].count == 0
    (folder / "img1_detection.mat").unlink()
    with pytest.raises(DatasetError, match="img1_detection.mat"):
        datasets.read_crc_nuclei(tmp_path)


# --- exact counts on real images ---------------------------------------------------------------------

@pytest.mark.parametrize("name, patch", [("crc", 100), ("vgg", 32)])
def test_tiling_counts_sum_to_image_count(name, patch, request):
    for s in request.getfixturevalue(name):
        h, w = s.image.shape[:2]
        assert h % patch == 0 and w % patch == 0
        origins = patches.grid(h, w, patch, patch)
        assert len(origins) == (h // patch) * (w // patch)  # the tiles partition the image
        assert patches.counts_on_grid(s.centres, origins, patch).sum() == s.count, s.id


def rotated_count(centres, cx, cy, patch, angle):
    """Centres inside the p x p output after rotating about (cx, cy) by angle (degrees, positive =
    counter-clockwise on screen, y down: cv2.getRotationMatrix2D's convention), (cx, cy) -> centre."""
    a = np.deg2rad(angle)
    dx, dy = centres[:, 0] - cx, centres[:, 1] - cy
    u = np.cos(a) * dx + np.sin(a) * dy + (patch - 1) / 2
    v = -np.sin(a) * dx + np.cos(a) * dy + (patch - 1) / 2
    return int(((u >= -0.5) & (u < patch - 0.5) & (v >= -0.5) & (v < patch - 0.5)).sum())


def test_rotation_convention_matches_cv2():
    m = cv2.getRotationMatrix2D((0.0, 0.0), 30.0, 1.0)
    a = np.deg2rad(30)
    np.testing.assert_allclose(m[:, :2], [[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])


def test_rotated_patch_counts_on_real_nuclei(crc):
    rng = np.random.default_rng(0)
    patch, checked, total = 100, 0, 0
    for s in crc[:5]:
        for angle in (17.0, 45.0, 90.0, 133.5, -60.0, 270.0):
            reach = patch / 2 * (abs(np.cos(np.deg2rad(angle))) + abs(np.sin(np.deg2rad(angle))))
            cx, cy = rng.uniform(reach, 500 - reach - 1, 2)
            result = patches.rotated_patch(s.image, s.centres, cx, cy, patch, angle)
            assert result is not None
            pixels, count = result
            assert pixels.shape == (patch, patch, 3)
            assert count == rotated_count(s.centres, cx, cy, patch, angle), (s.id, angle, cx, cy)
            checked, total = checked + 1, total + count
    assert checked == 30 and total > 0


# --- generic folders ---------------------------------------------------------------------------------

def test_generic_formats_roundtrip(tmp_path):
    rng = np.random.default_rng(1)
    centres = np.array([[0.0, 0.0], [3.25, 7.5], [29.0, 19.0], [12.0, 4.75]])
    rgb = rng.integers(0, 256, (100, 120, 3), dtype=np.uint8)
    write_rgb(tmp_path / "a_rgb.png", rgb)
    rgba = np.concatenate([rgb, np.full((100, 120, 1), 128, np.uint8)], axis=2)
    assert cv2.imwrite(str(tmp_path / "b_rgba.PNG"), cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
    grey16 = np.linspace(1000, 5000, 12000).reshape(100, 120).astype(np.uint16)
    grey16[0, 0] = 65535  # one hot pixel must not darken the rest
    tifffile.imwrite(tmp_path / "c_grey16.tif", grey16)
    smooth = np.zeros((100, 120, 3), np.uint8)  # JPEG keeps smooth content: red ramp, green 60, blue 200
    smooth[..., 0], smooth[..., 1], smooth[..., 2] = np.linspace(0, 255, 120).astype(np.uint8), 60, 200
    write_rgb(tmp_path / "d_photo.jpg", smooth)
    write_rgb(tmp_path / "e_scan.BMP", rgb[::-1])        # as the CRC nuclei release ships them
    for stem in ("a_rgb", "b_rgba", "c_grey16", "e_scan"):
        write_xy(tmp_path / f"{stem}.csv", centres)
    # ImageJ Results table: unnamed row-number column, extra columns, X and Y.
    rows = [f"{k + 1},{10 + k},{100.5 + k},{x!r},{y!r}" for k, (x, y) in enumerate(centres)]
    (tmp_path / "d_photo.csv").write_text(" ,Area,Mean,X,Y\n" + "\n".join(rows) + "\n")
    (tmp_path / "notes.txt").write_text("ignored")

    samples = read("generic", tmp_path)
    assert [s.id for s in samples] == ["a_rgb", "b_rgba", "c_grey16", "d_photo", "e_scan"]
    for s in samples:
        assert s.image.shape == (100, 120, 3) and s.image.dtype == np.uint8
        np.testing.assert_array_equal(s.centres, centres)
    np.testing.assert_array_equal(samples[0].image, rgb)
    np.testing.assert_array_equal(samples[1].image, rgb)  # alpha dropped, channel order kept
    grey = samples[2].image
    assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 0] == grey[..., 2]).all()
    assert grey[..., 0].min() == 0 and grey[..., 0].max() == 255
    assert 100 < grey[50, 60, 0] < 155  # mid-range stays mid-range despite the hot pixel
    assert (np.diff(grey[1:, :, 0].ravel().astype(int)) >= 0).all()  # monotonic mapping
    assert np.abs(samples[3].image.astype(int) - smooth).mean() < 4  # lossy, but RGB order kept
    np.testing.assert_array_equal(samples[4].image, rgb[::-1])       # BMP: lossless, RGB order


def test_generic_16bit_rgb_png(tmp_path):
    rgb16 = np.zeros((10, 12, 3), np.uint16)
    rgb16[..., 0] = 4000  # red plane bright, others dark
    assert cv2.imwrite(str(tmp_path / "x.png"), cv2.cvtColor(rgb16, cv2.COLOR_RGB2BGR))
    write_xy(tmp_path / "x.csv", np.empty((0, 2)))
    (s,) = read_generic(tmp_path)
    assert s.count == 0 and (s.image[..., 0] == 255).all() and (s.image[..., 1:] == 0).all()


@pytest.fixture
def generic_set(tmp_path):
    """Two valid 10x12 images with one centre each in tmp_path/data."""
    root = tmp_path / "data"
    root.mkdir()
    for stem in ("001", "002"):
        write_rgb(root / f"{stem}.png", np.zeros((10, 12, 3), np.uint8))
        write_xy(root / f"{stem}.csv", [[1.0, 2.0]])
    return root


def test_generic_missing_annotation(generic_set):
    (generic_set / "002.csv").unlink()
    with pytest.raises(DatasetError, match="002.png") as err:
        read_generic(generic_set)
    assert "002.csv" in str(err.value)


def test_generic_annotation_without_image(generic_set):
    (generic_set / "001.png").unlink()
    with pytest.raises(DatasetError, match="001.csv"):
        read_generic(generic_set)


def test_generic_corrupt_image(generic_set):
    (generic_set / "002.png").write_bytes(b"\x89PNG not really an image")
    with pytest.raises(DatasetError, match="002.png"):
        read_generic(generic_set)
    (generic_set / "002.png").unlink()
    (generic_set / "002.tif").write_bytes(b"II*\x00 broken tiff")
    with pytest.raises(DatasetError, match="002.tif"):
        read_generic(generic_set)


def _textured(h=60, w=80):
    """An RGB image with detail everywhere, so that its JPEG has a long scan to cut."""
    rng = np.random.default_rng(3)
    return cv2.GaussianBlur((rng.random((h, w, 3)) * 255).astype(np.uint8), (5, 5), 1.5)


@pytest.mark.parametrize("options", [[], [cv2.IMWRITE_JPEG_PROGRESSIVE, 1],
                                     [cv2.IMWRITE_JPEG_RST_INTERVAL, 2]])
def test_a_jpeg_cut_short_is_refused_not_filled_with_grey(generic_set, options):
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(_textured(), cv2.COLOR_RGB2BGR), options)
    data = buf.tobytes()
    (generic_set / "002.png").unlink()
    path = generic_set / "002.jpg"
    path.write_bytes(data + b"\x00" * 64)      # padding after the end marker is harmless
    whole = read_generic(generic_set)[1].image
    path.write_bytes(data)
    np.testing.assert_array_equal(images.read_any_image(path), whole)
    for cut in (len(data) // 3, len(data) - 2):   # a third (the probe's); all but the end marker
        path.write_bytes(data[:cut])
        if not options:                                   # cv2 alone decodes it, grey-filled
            assert cv2.imread(str(path)) is not None
        message = (f"cannot decode {path}: the JPEG file ends before its end-of-image marker (it "
                   "was cut short, e.g. by an interrupted copy or download); replace or remove it")
        with pytest.raises(DatasetError) as err:
            read_generic(generic_set)
        assert str(err.value) == message
        with pytest.raises(DatasetError) as err:             # the reader `pycount count` uses
            images.read_any_image(path)
        assert str(err.value) == message


@pytest.mark.parametrize("app1", [b"\xff\xe1", b"\xff\xff\xe1"], ids=["plain", "fill-byte"])
def test_a_jpeg_thumbnail_end_marker_does_not_hide_a_cut(app1, tmp_path):
    """An EXIF thumbnail (a JPEG inside the APP1 segment) ends with FF D9 too: still refused.
    With a fill byte before the marker (FF FF E1), walked as one, the thumbnail's FF D9 inside
    that segment is skipped with it and the cut is still found."""
    thumb = cv2.imencode(".jpg", _textured(8, 8))[1].tobytes()
    body = cv2.imencode(".jpg", _textured())[1].tobytes()
    exif = b"Exif\x00\x00" + thumb
    data = body[:2] + app1 + (len(exif) + 2).to_bytes(2, "big") + exif + body[2:]
    path = tmp_path / "x.jpg"
    path.write_bytes(data)
    assert images.read_any_image(path).shape == (60, 80, 3)
    path.write_bytes(data[:len(data) - len(body) // 2])
    with pytest.raises(DatasetError, match="ends before its end-of-image marker"):
        images.read_any_image(path)


@pytest.mark.parametrize("cut", [12, "half"])
def test_a_png_cut_short_is_refused_by_name_and_quietly(tmp_path, capfd, cut):
    """Said as for a JPEG, and without libpng's own "libpng error: Read Error" on stderr."""
    path = tmp_path / "x.png"
    write_rgb(path, _textured())
    data = path.read_bytes()
    path.write_bytes(data + b"appended by a tool")           # data after IEND: still read
    assert images.read_any_image(path).shape == (60, 80, 3)
    path.write_bytes(data[:-12] if cut == 12 else data[:len(data) // 2])
    with pytest.raises(DatasetError) as err:
        images.read_any_image(path)
    assert str(err.value) == (f"cannot decode {path}: the PNG file ends before its IEND chunk (it "
                              "was cut short, e.g. by an interrupted copy or download); replace "
                              "or remove it")
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize("decoder", ["cv2", "tifffile"])
def test_a_multi_page_tiff_is_refused_not_read_as_its_first_page(tmp_path, monkeypatch, decoder):
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, np.zeros((5, 10, 12), np.uint8))   # 5 pages, as the probe's stack
    assert cv2.imread(str(path), cv2.IMREAD_UNCHANGED).shape == (10, 12)   # page 1 only
    assert cv2.imcount(str(path)) == 5
    if decoder == "tifffile":                    # a TIFF cv2 cannot decode goes to tifffile
        monkeypatch.setattr(images.cv2, "imread", lambda *a: None)
    message = (f"cannot decode {path}: it is a TIFF of 5 pages (a stack, time series or channels), "
               "and one image per file is read; save each page as an image of its own (Fiji: "
               "Image > Stacks > Stack to Images) or the channels as one RGB image, or remove it")
    with pytest.raises(DatasetError) as err:
        images.read_any_image(path)
    assert str(err.value) == message
    with pytest.raises(DatasetError) as err:                 # a dot mask as well
        annotations.read_dot_mask(path)
    assert str(err.value) == message.replace("decode ", "decode the dot mask ")
    tifffile.imwrite(path, np.zeros((10, 12), np.uint8))       # one page reads
    assert images.read_any_image(path).shape == (10, 12, 3)


def test_a_float_tiff_with_nan_or_inf_is_refused(tmp_path):
    import warnings
    data = np.linspace(0, 1, 120, dtype=np.float32).reshape(10, 12)
    path = tmp_path / "f.tif"
    tifffile.imwrite(path, data)
    assert images.read_any_image(path)[..., 0].max() == 255        # finite floats read
    data[3, 4], data[5, 6] = np.nan, np.inf
    tifffile.imwrite(path, data)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                           # and no RuntimeWarning leaks
        with pytest.raises(DatasetError) as err:
            images.read_any_image(path)
    assert str(err.value) == (f"cannot decode {path}: 2 of its 120 pixel values are NaN or "
                              "infinite; replace them (Fiji: Process > Math > Remove NaNs) and "
                              "save it again, or remove it")


def test_a_complex_tiff_is_refused_by_name(tmp_path):
    """A complex-valued TIFF (an FFT saved as it is): one message, not numpy's TypeError from
    the depth percentiles."""
    path = tmp_path / "fft.tif"
    tifffile.imwrite(path, (np.ones((10, 12)) + 1j).astype(np.complex64))
    with pytest.raises(DatasetError) as err:
        images.read_any_image(path)
    assert str(err.value).startswith(f"cannot decode {path}: its pixels are complex64 values, "
                                     "not intensities")


def test_grey_plus_alpha_tiffs_read_as_grey_at_full_depth(tmp_path):
    from PIL import Image
    grey = np.linspace(100, 4000, 120).reshape(10, 12).astype(np.uint16)   # 12-bit camera data
    tifffile.imwrite(tmp_path / "grey.tif", grey)
    expected = images.read_any_image(tmp_path / "grey.tif")
    assert expected[..., 0].max() == 255
    path, opaque = tmp_path / "x.tif", np.full_like(grey, 65535)
    for planar, axis in (("contig", -1), ("separate", 0)):          # cv2 cut contig to 8 bits
        tifffile.imwrite(path, np.stack([grey, opaque], axis), photometric="minisblack",
                         planarconfig=planar, extrasamples=["unassalpha"])
        np.testing.assert_array_equal(images.read_any_image(path), expected)
    grey8 = (grey // 16).astype(np.uint8)                 # 8-bit LZW, as GIMP or Pillow save it
    Image.fromarray(np.stack([grey8, grey8 * 0 + 255], -1), "LA").save(path, compression="tiff_lzw")
    np.testing.assert_array_equal(images.read_any_image(path), np.repeat(grey8[..., None], 3, 2))


def test_a_tiff_of_two_channels_that_are_not_grey_plus_alpha_is_refused(tmp_path):
    path = tmp_path / "x.tif"
    dapi, ki67 = np.zeros((10, 12), np.uint8), np.full((10, 12), 200, np.uint8)
    for planar, axis in (("contig", -1), ("separate", 0)):          # cv2 read the first only
        tifffile.imwrite(path, np.stack([dapi, ki67], axis), photometric="minisblack",
                         planarconfig=planar)
        with pytest.raises(DatasetError) as err:
            images.read_any_image(path)
        assert str(err.value) == (
            f"cannot decode {path}: it has two channels and the second is not marked as alpha "
            "(two stains or fluorescence channels?), and one grey, RGB or RGBA image is read; "
            "merge the channels into one RGB image (Fiji: Image > Color > Merge Channels) or "
            "save the channel to count as a grey image, or remove it")


def test_an_opaque_alpha_does_not_darken_a_16bit_image(tmp_path):
    rgb = np.repeat(np.linspace(0, 4095, 120).reshape(10, 12, 1), 3, 2).astype(np.uint16)
    rgba = np.concatenate([rgb, np.full((10, 12, 1), 65535, np.uint16)], axis=2)
    assert cv2.imwrite(str(tmp_path / "rgb.png"), rgb)
    assert cv2.imwrite(str(tmp_path / "rgba.png"), rgba)
    expected = images.read_any_image(tmp_path / "rgb.png")
    assert expected.max() == 255                              # stretched, not 4095 / 257 = 16
    np.testing.assert_array_equal(images.read_any_image(tmp_path / "rgba.png"), expected)


def _rgb_with_a_square():
    rgb = np.zeros((32, 40, 3), np.uint8)
    rgb[...] = (100, 150, 200)
    rgb[5:10, 5:10] = 30
    return rgb


def test_an_rgba_tiff_is_read_with_its_colours_not_darkened_by_its_alpha(tmp_path):
    """cv2 (libtiff's RGBA reader) multiplies an 8-bit TIFF's colours by an unassociated alpha
    (tifffile's own way of writing RGBA): alpha 128 read (100, 150, 200) as (50, 75, 100), alpha
    0 as black, where the same pixels as PNG read as they are (helper-46)."""
    from PIL import Image
    rgb = _rgb_with_a_square()
    for alpha in (0, 128, 255):
        rgba = np.concatenate([rgb, np.full((32, 40, 1), alpha, np.uint8)], axis=2)
        for compression in (None, "zlib"):
            tifffile.imwrite(tmp_path / "a.tif", rgba, photometric="rgb",
                             extrasamples=["unassalpha"], compression=compression)
            np.testing.assert_array_equal(images.decoded_pixels(tmp_path / "a.tif"), rgb)
        # LZW, which tifffile cannot decode here: cv2's reading, right where the alpha is opaque
        Image.fromarray(rgba, "RGBA").save(tmp_path / "lzw.tif", compression="tiff_lzw")
        if alpha == 255:
            np.testing.assert_array_equal(images.decoded_pixels(tmp_path / "lzw.tif"), rgb)
            continue
        with pytest.raises(DatasetError) as err:
            images.decoded_pixels(tmp_path / "lzw.tif")
        assert str(err.value) == (
            f"cannot decode {tmp_path / 'lzw.tif'}: its alpha channel is not opaque everywhere, "
            f"and the only reader here of its LZW compression darkens the colours by it; save "
            f"it without the alpha channel (Fiji: Image > Type > RGB Color) or uncompressed, or "
            f"remove it")


def _without_a_codec(monkeypatch):
    """tifffile as it reads a compression it has no codec for without imagecodecs (LZW here):
    every page raises as it does then (simulated on ZIP files, which the tests can write)."""
    def no_codec(page, *a, **k):
        raise KeyError("<COMPRESSION.LZW: 5> requires the 'imagecodecs' package")
    monkeypatch.setattr(tifffile.TiffPage, "asarray", no_codec)


def test_a_planar_tiff_in_a_compression_tifffile_lacks_is_read_by_libtiff(tmp_path,
                                                                          monkeypatch):
    """A planar 8-bit RGB TIFF in LZW (Bio-Formats' and OME exports) was "corrupt or not an
    image": cv2 is kept off planar files and tifffile has no LZW codec without imagecodecs.
    libtiff (cv2) reads 8-bit planar strips right; tiles, or deeper samples, are refused by
    their compression (a missing codec simulated on a ZIP file)."""
    rgb = _rgb_with_a_square()
    path = tmp_path / "planar.tif"
    for tile in (None, (16, 16)):
        tifffile.imwrite(path, np.moveaxis(rgb, -1, 0), photometric="rgb",
                         planarconfig="separate", compression="zlib", tile=tile)
        _without_a_codec(monkeypatch)
        if tile is None:
            np.testing.assert_array_equal(images.decoded_pixels(path), rgb)
        else:
            with pytest.raises(DatasetError) as err:
                images.decoded_pixels(path)
            assert str(err.value) == (
                f"cannot decode {path}: its ADOBE_DEFLATE compression is not read here for a "
                f"TIFF laid out as this one (channels in separate planes, in tiles, 8-bit); save it "
                f"uncompressed or with ZIP (Deflate) compression, or remove it")
        monkeypatch.undo()                     # tifffile's own codec reads it
        np.testing.assert_array_equal(images.decoded_pixels(path), rgb)


def test_rgba_tiffs_that_libtiff_reads_right_stay_read_where_tifffile_lacks_the_codec(
        tmp_path, monkeypatch):
    """libtiff multiplies colours by an unassociated alpha at 8 bits only: 16-bit RGBA in LZW,
    and 8-bit RGBA in tiles with an opaque alpha, read right through cv2 and were refused by the
    first version of the alpha rule (helper-48; a missing codec simulated on ZIP files)."""
    rng = np.random.default_rng(5)
    deep = rng.integers(0, 65535, (32, 48, 4), dtype=np.uint16)
    deep[..., 3] = 30000
    tifffile.imwrite(tmp_path / "deep.tif", deep, photometric="rgb", extrasamples=["unassalpha"],
                     compression="zlib")
    opaque = np.concatenate([_rgb_with_a_square(), np.full((32, 40, 1), 255, np.uint8)], axis=2)
    tifffile.imwrite(tmp_path / "tiles.tif", opaque, photometric="rgb",
                     extrasamples=["unassalpha"], compression="zlib", tile=(16, 16))
    want = {"deep.tif": images.decoded_pixels(tmp_path / "deep.tif"),
            "tiles.tif": _rgb_with_a_square()}
    _without_a_codec(monkeypatch)
    for name, pixels in want.items():
        np.testing.assert_array_equal(images.decoded_pixels(tmp_path / name), pixels)


def test_grey_plus_alpha_in_planes_is_not_read_darkened_where_tifffile_lacks_the_codec(
        tmp_path, monkeypatch):
    """8-bit grey + unassociated alpha in separate planes, in a compression tifffile lacks: cv2
    returned the grey alone, multiplied by the alpha (235 read as 52; helper-49). Named (a
    missing codec simulated on a ZIP file)."""
    grey = np.full((20, 24), 235, np.uint8)
    path = tmp_path / "ga.tif"
    tifffile.imwrite(path, np.stack([grey, np.full_like(grey, 57)]), photometric="minisblack",
                     planarconfig="separate", extrasamples=["unassalpha"], compression="zlib")

    _without_a_codec(monkeypatch)
    with pytest.raises(DatasetError) as err:
        images.decoded_pixels(path)
    assert str(err.value) == (
        f"cannot decode {path}: it holds grey and an alpha channel in separate planes, and the "
        f"only reader here of its ADOBE_DEFLATE compression darkens the grey by the alpha; save "
        f"it without the alpha channel (Fiji: Image > Type > 8-bit) or uncompressed, or remove "
        f"it")


def test_a_16bit_grey_plus_alpha_tiff_is_not_read_cut_to_8_bits(tmp_path, monkeypatch):
    """Where tifffile lacks the codec (LZW), cv2 read a 16-bit grey + alpha TIFF at 8 bits: a
    pixel of 5200 came back as 20 (helper-46). Named instead (a missing codec simulated)."""
    grey = np.linspace(100, 4000, 120).reshape(10, 12).astype(np.uint16)
    path = tmp_path / "x.tif"
    tifffile.imwrite(path, np.stack([grey, np.full_like(grey, 65535)], -1),
                     photometric="minisblack", extrasamples=["unassalpha"], compression="zlib")

    _without_a_codec(monkeypatch)
    with pytest.raises(DatasetError) as err:
        images.decoded_pixels(path)
    assert str(err.value) == (
        f"cannot decode {path}: its ADOBE_DEFLATE compression is not read here for a TIFF laid "
        f"out as this one (grey + alpha, 16-bit); save it uncompressed or with ZIP (Deflate) "
        f"compression, or remove it")


def test_a_tiff_with_a_thumbnail_reads_its_image(tmp_path):
    """A reduced-resolution page (a thumbnail or preview) after the image was "a TIFF of 2 pages
    (a stack...)"; one before it stays refused (a reader would take it for the image)."""
    rgb = _rgb_with_a_square()
    with tifffile.TiffWriter(tmp_path / "t.tif") as w:
        w.write(rgb, photometric="rgb")
        w.write(rgb[::4, ::4], photometric="rgb", subfiletype=1)
    np.testing.assert_array_equal(images.decoded_pixels(tmp_path / "t.tif"), rgb)
    with tifffile.TiffWriter(tmp_path / "first.tif") as w:
        w.write(rgb[::4, ::4], photometric="rgb", subfiletype=1)
        w.write(rgb, photometric="rgb")
    with pytest.raises(DatasetError, match="it is a TIFF of 2 pages"):
        images.decoded_pixels(tmp_path / "first.tif")


@pytest.mark.parametrize("planar", ["contig", "separate"])
@pytest.mark.parametrize("n", [3, 4])
def test_a_tiff_of_several_grey_channels_is_refused(tmp_path, planar, n):
    """Three or four channels stored as grey (photometric min-is-black), not RGB: cv2 read the
    first as grey (88.2 cells against 24.4 as RGB) or three of four as RGB (helper-46)."""
    rng = np.random.default_rng(3)
    data = rng.integers(0, 255, (n, 20, 24) if planar == "separate" else (20, 24, n), np.uint8)
    path = tmp_path / "c.tif"
    tifffile.imwrite(path, data, photometric="minisblack", planarconfig=planar)
    with pytest.raises(DatasetError) as err:
        images.decoded_pixels(path)
    assert str(err.value).startswith(f"cannot decode {path}: it has {n} channels stored as grey "
                                     f"values, not as RGB (stains or fluorescence channels?)")


def test_a_gif_is_named_as_an_unsupported_format(tmp_path):
    from PIL import Image
    path = tmp_path / "x.gif"
    Image.fromarray(np.zeros((10, 12, 3), np.uint8)).save(path)
    with pytest.raises(DatasetError) as err:
        images.read_any_image(path)                    # `pycount count x.gif` reads it so
    assert str(err.value) == (f"cannot decode {path}: GIF is not a supported format (PNG, JPEG, "
                              "TIFF, BMP and PGM/PPM are); convert it to PNG or TIFF")


def test_a_broken_link_is_named_as_one(generic_set):
    target = generic_set / "moved" / "003.png"
    (generic_set / "003.png").symlink_to(target)
    write_xy(generic_set / "003.csv", [[1.0, 2.0]])
    message = (f"{generic_set / '003.png'} is a broken link (to {target}, which does not exist); "
               "restore the file it points to, or remove the link")
    with pytest.raises(DatasetError) as err:
        read_generic(generic_set)
    assert str(err.value) == message
    with pytest.raises(DatasetError) as err:              # the reader `pycount count` uses
        images.read_any_image(generic_set / "003.png")
    assert str(err.value) == f"cannot decode {message.replace(' is a ', ': it is a ', 1)}"


def test_a_jpeg_with_stray_bytes_between_its_segments_reads(tmp_path):
    """libjpeg skips bytes between segments (with a warning): the file is whole, not cut."""
    body = cv2.imencode(".jpg", _textured())[1].tobytes()
    at = 4 + int.from_bytes(body[4:6], "big")                 # after SOI and APP0
    path = tmp_path / "x.jpg"
    path.write_bytes(body[:at] + b"\x00\x00" + body[at:])
    np.testing.assert_array_equal(images.read_any_image(path),
                                  cv2.cvtColor(cv2.imdecode(np.frombuffer(body, np.uint8),
                                                            cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB))


def test_grey_plus_associated_alpha_reads_as_grey(tmp_path):
    grey = np.linspace(0, 255, 120).reshape(10, 12).astype(np.uint8)
    path = tmp_path / "x.tif"
    tifffile.imwrite(path, np.stack([grey, np.full_like(grey, 255)], -1),
                     photometric="minisblack", extrasamples=["assocalpha"])
    np.testing.assert_array_equal(images.read_any_image(path), np.repeat(grey[..., None], 3, 2))


@pytest.mark.parametrize("photometric, extra, n", [
    ("minisblack", ["unassalpha", "unspecified"], 2), ("miniswhite", [], 3)])
def test_grey_channels_beside_an_alpha_or_stored_white_on_black_are_refused(tmp_path, photometric,
                                                                           extra, n):
    """Two grey channels and an alpha; three stored min-is-white: not one grey image either."""
    grey = np.linspace(0, 255, 120).reshape(10, 12).astype(np.uint8)
    path = tmp_path / "x.tif"
    tifffile.imwrite(path, np.stack([grey, np.full_like(grey, 255), grey], -1),
                     photometric=photometric, planarconfig="contig", extrasamples=extra or None)
    with pytest.raises(DatasetError) as err:
        images.decoded_pixels(path)
    assert str(err.value).startswith(f"cannot decode {path}: it has {n} channels stored as grey "
                                     f"values, not as RGB")


def test_a_one_bit_grey_plus_alpha_tiff_reads_as_a_mask_of_its_own_kind(tmp_path):
    """tifffile gives 1-bit planes as booleans: intensities (0, 255), of the kind "bool"."""
    mask = np.eye(10, 12, dtype=bool)
    path = tmp_path / "m.tif"
    tifffile.imwrite(path, np.stack([mask, np.ones_like(mask)]), photometric="minisblack",
                     planarconfig="separate", extrasamples=["unassalpha"])
    image, why = images.read_in_range(path, (), ("uint8",))
    np.testing.assert_array_equal(image, np.repeat(mask[..., None] * np.uint8(255), 3, 2))
    assert why.startswith("a 1-bit image, where the run's training images were 8-bit: it holds "
                          "only 2 levels")


def _png(bits: int, colour: int, palette: bytes = b"") -> bytes:
    """A 12 x 10 PNG of `bits` per sample of colour type `colour` (0 grey, 3 palette)."""
    def chunk(tag, body):
        return (struct.pack(">I", len(body)) + tag + body
                + struct.pack(">I", zlib.crc32(tag + body)))
    rows = b"".join(b"\x00" + bytes([0x12] * (12 * bits // 8)) for _ in range(10))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 12, 10, bits, colour,
                                                               0, 0, 0))
            + (chunk(b"PLTE", palette) if palette else b"") + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


def test_a_palette_png_of_4_bits_is_read_as_8_bit_colour_and_a_grey_one_as_4_bits(tmp_path):
    """A palette's bits index its colours: its image is of 8-bit values as any RGB's."""
    (tmp_path / "pal.png").write_bytes(_png(4, 3, bytes(range(48))))
    (tmp_path / "grey.png").write_bytes(_png(4, 0))
    assert images.stored_bits(tmp_path / "pal.png") == 0
    assert images.read_in_range(tmp_path / "pal.png", (), ("uint8",))[1] == ""
    assert images.stored_bits(tmp_path / "grey.png") == 4


def test_an_image_linked_to_its_file_is_read_as_it(generic_set):
    """A symbolic link to an image (a set shared between folders): no broken link."""
    (generic_set.parent / "store").mkdir()
    write_rgb(generic_set.parent / "store" / "002.png", _textured(10, 12))
    (generic_set / "002.png").unlink()
    (generic_set / "002.png").symlink_to(generic_set.parent / "store" / "002.png")
    samples = read_generic(generic_set)
    np.testing.assert_array_equal(samples[1].image, _textured(10, 12))
    assert images.dead_link(generic_set / "002.png") is None


@pytest.mark.parametrize("x, y", [(12.0, 3.0), (-0.6, 3.0), (4.0, 9.51), (float("nan"), 1.0)])
def test_generic_centre_outside(generic_set, x, y):
    write_xy(generic_set / "002.csv", [[1.0, 1.0], [x, y]])
    if np.isnan(x):
        (generic_set / "002.csv").write_text("x,y\n1,1\nnan,1\n")
    with pytest.raises(DatasetError, match="002.csv") as err:
        read_generic(generic_set)
    assert "12x10" in str(err.value) or "nan" in str(err.value)
    write_xy(generic_set / "002.csv", [[-0.5, -0.5], [11.49, 9.49]])  # the inclusive edges are inside
    assert read_generic(generic_set)[1].count == 2
    write_xy(generic_set / "002.csv", [[1.0, 1.0], [4.0, 9.5]])   # on the far edge: the last row
    np.testing.assert_allclose(read_generic(generic_set)[1].centres, [[1, 1], [4, 9]])


@pytest.mark.parametrize("text, expected", [("a,b\n1,2\n", "x,y"), ("", "x,y"), ("x,y\n1,two\n", "line 2"),
                                            ("x,y\n1\n", "line 2")])
def test_generic_bad_csv(generic_set, text, expected):
    (generic_set / "001.csv").write_text(text)
    with pytest.raises(DatasetError, match="001.csv") as err:
        read_generic(generic_set)
    assert expected in str(err.value)


def test_repeated_marks_count_once_with_a_note(generic_set, capsys):
    # a mark clicked twice at the same spot is one cell; a mark 0.01 px away is another
    write_xy(generic_set / "002.csv", [[3.0, 4.0], [5.0, 6.0], [3.0, 4.0], [3.01, 4.0], [3.0, 4.0]])
    got = read_generic(generic_set, ids=["002"])[0]
    assert got.count == 3
    np.testing.assert_array_equal(got.centres, [[3.0, 4.0], [5.0, 6.0], [3.01, 4.0]])
    err = capsys.readouterr().err
    assert err.count("note:") == 1 and "002.csv: 2 marks repeat another mark's exact" in err
    write_xy(generic_set / "001.csv", [[1.0, 1.0], [1.0, 1.0]])     # two files: one note
    assert [s.count for s in read_generic(generic_set)] == [1, 3]
    err = capsys.readouterr().err
    assert err.count("note:") == 1 and f"{generic_set}: 3 marks in 2 files (001.csv (1), 002.csv (2))" in err
    # marks just beyond the edge, moved onto it by a reader's tolerance, are not repeats
    centres = np.array([[9.6, 5.0], [10.4, 5.0], [9.0, 5.0], [9.0, 5.0]])
    kept = datasets._sample("x", np.zeros((10, 10, 3), np.uint8), centres, Path("x.csv"),
                           Path("x.png"), tolerance=1.0, repeats={}).centres
    assert len(kept) == 3


def test_generic_ids_and_unknown_layout(generic_set):
    assert [s.id for s in read_generic(generic_set, ids=["002"])] == ["002"]
    with pytest.raises(DatasetError, match="003.png"):
        read_generic(generic_set, ids=["003"])
    with pytest.raises(DatasetError, match="vgg_cells, crc_nuclei, generic"):
        read("ki67", generic_set)


def test_vgg_reader_validation_still_applies(tmp_path):
    write_rgb(tmp_path / "001cell.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(DatasetError, match="001dots.png"):
        read("vgg_cells", tmp_path)


# --- Ki67-like synthetic set -------------------------------------------------------------------------

def test_ki67_roundtrip_and_determinism(tmp_path):
    out = generate_ki67_synthetic(tmp_path / "a", n_images=2, seed=3, **KI67_SMALL)
    assert sorted(p.name for p in out.iterdir()) == ["001.csv", "001.png", "002.csv", "002.png", "synthetic.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"], "no temporary folders left behind"
    samples = read_generic(out)
    for k, s in enumerate(samples):
        rng = synthetic._image_rng(3, k)
        n = int(rng.integers(30, 81))
        image, centres = synthetic.synthesize_ki67_image(rng, n, (200, 240))
        assert s.count == n and s.image.shape == (200, 240, 3)
        np.testing.assert_array_equal(s.centres, centres)
        np.testing.assert_array_equal(s.image, image)
        assert len(np.unique(s.centres, axis=0)) == n and np.array_equal(s.centres, np.rint(s.centres))
    again = read_generic(generate_ki67_synthetic(tmp_path / "b", n_images=1, seed=3, **KI67_SMALL))
    np.testing.assert_array_equal(again[0].image, samples[0].image)  # image k independent of n_images
    other = read_generic(generate_ki67_synthetic(tmp_path / "c", n_images=1, seed=4, **KI67_SMALL))
    assert not np.array_equal(other[0].image, samples[0].image)


def test_ki67_reuse(tmp_path):
    out, calls = tmp_path / "k", []
    generate_ki67_synthetic(out, n_images=2, progress=lambda i, n: calls.append(i), **KI67_SMALL)
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    generate_ki67_synthetic(out, n_images=2, progress=lambda i, n: calls.append(i), **KI67_SMALL)
    assert calls == [0, 1, 2] and {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == mtimes
    with pytest.raises(ValueError, match="cannot hold"):
        generate_ki67_synthetic(tmp_path / "dense", size=(100, 100), count_range=(10, 1000))


def test_ki67_looks_like_ihc():
    image, centres = synthetic.synthesize_ki67_image(np.random.default_rng(5), 200, (400, 500))
    xy = centres.astype(int)
    at_cells = image[xy[:, 1], xy[:, 0]].astype(float)
    background = np.median(image.reshape(-1, 3), axis=0)
    assert (background > 190).all()                          # light background
    assert (at_cells.mean(axis=1) < background.mean() - 40).mean() > 0.9  # nuclei are darker
    brown = at_cells[:, 0] > at_cells[:, 2] + 10             # DAB: red above blue
    blue = at_cells[:, 2] > at_cells[:, 0] + 10              # hematoxylin: blue above red
    assert brown.sum() > 10 and blue.sum() > 10 and (brown | blue).mean() > 0.9


def test_ki67_centres_lie_in_the_image_and_keep_their_distance():
    for seed in range(3):
        _, centres = synthetic.synthesize_ki67_image(np.random.default_rng(seed), 200, (150, 170))
        assert len(centres) == 200
        assert centres.min() >= 0 and (centres.max(axis=0) < (170, 150)).all()
        d = np.hypot(*(centres[:, None] - centres[None]).transpose(2, 0, 1))
        assert d[np.triu_indices(200, 1)].min() >= synthetic.KI67_MIN_DIST


def test_ki67_full_size(tmp_path):
    # the paper's densest Ki67 image at full size (how long it takes is not a test's business)
    out = generate_ki67_synthetic(tmp_path / "full", n_images=1, seed=0, count_range=(4808, 4808))
    (s,) = read_generic(out)
    assert s.image.shape == (1920, 2560, 3) and s.count == 4808


def test_a_nuclei_image_without_its_marks_asks_for_the_release_file_not_a_deletion(tmp_path):
    """The advice was to delete the image's folder, after which the recorded split failed on
    the image it needs."""
    folder = tmp_path / "Detection" / "img5"
    folder.mkdir(parents=True)
    (folder / "img5.bmp").write_bytes(b"BM")
    with pytest.raises(DatasetError, match=r"img5_detection.mat; restore it from the "
                                           r"CRCHistoPhenotypes release \(the recorded split"):
        read("crc_nuclei", tmp_path)


def test_an_image_larger_than_opencv_reads_is_named_not_a_traceback(tmp_path):
    """A header of over 2^30 pixels (a whole slide, or a damaged header) made cv2.imread raise
    cv2.error, a traceback that stopped `pycount count` before the next image and `prepare`
    (helper-55). It is a DatasetError naming the file and the fix, as any undecodable image."""
    import struct
    import zlib

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 2,
                                                              0, 0, 0))
           + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))
    path = tmp_path / "slide.png"
    path.write_bytes(png)
    with pytest.raises(DatasetError, match=r"cannot decode .*slide\.png: its header gives more "
                                           r"pixels than OpenCV reads .* cut it into tiles"):
        images.decode_file(path)


# --- marks at the edges, dot images, ids, sizes -------------------------------------------------------

def test_crc_border_clicks_within_a_pixel_are_moved_onto_the_edge(tmp_path):
    folder = tmp_path / "Detection" / "img1"
    folder.mkdir(parents=True)
    write_rgb(folder / "img1.bmp", np.zeros((20, 30, 3), np.uint8))
    # 1-based (31.3, 6) and (5, -0.4) are 0-based (30.3, 5) and (4, -1.4): 0.8 and 0.9 px beyond
    # the right and top edges (x < 29.5, y >= -0.5), moved onto the last column and the first row
    mat = folder / "img1_detection.mat"
    scipy.io.savemat(mat, {"detection": np.array([[31.3, 6.0], [5.0, -0.4]])})
    np.testing.assert_array_equal(datasets.read_crc_nuclei(tmp_path)[0].centres,
                                  [[29.0, 5.0], [4.0, 0.0]])
    # 1.1 px beyond the right edge is no border click
    scipy.io.savemat(mat, {"detection": np.array([[31.6, 6.0]])})
    with pytest.raises(DatasetError, match="img1_detection.mat"):
        datasets.read_crc_nuclei(tmp_path)
    # a detection of three columns is not K x 2 (x, y)
    scipy.io.savemat(mat, {"detection": np.array([[5.0, 6.0, 7.0], [1.0, 2.0, 3.0]])})
    with pytest.raises(DatasetError, match="expected K x 2"):
        datasets.read_crc_nuclei(tmp_path)


def test_crc_ids_are_image_numbers_and_each_number_is_one_image(tmp_path):
    for name in ("img05", "img12"):
        folder = tmp_path / "Detection" / name
        folder.mkdir(parents=True)
        write_rgb(folder / f"{name}.bmp", np.zeros((10, 10, 3), np.uint8))
        scipy.io.savemat(folder / f"{name}_detection.mat", {"detection": np.array([[3.0, 3.0]])})
    assert [s.id for s in datasets.read_crc_nuclei(tmp_path)] == ["5", "12"]
    folder = tmp_path / "Detection" / "img5"          # img5 beside img05: which one is image 5?
    folder.mkdir()
    write_rgb(folder / "img5.bmp", np.zeros((10, 10, 3), np.uint8))
    scipy.io.savemat(folder / "img5_detection.mat", {"detection": np.array([[4.0, 4.0]])})
    with pytest.raises(DatasetError, match="both image 5"):
        datasets.read_crc_nuclei(tmp_path)


def test_dots_are_red_pixels_at_or_above_half_intensity():
    dots = np.zeros((4, 6, 3), np.uint8)
    dots[0, 1] = (128, 0, 0)        # red at half intensity: a dot
    dots[1, 5] = (255, 127, 127)    # pinkish red: a dot
    dots[2, 0] = (127, 0, 0)        # too dark
    dots[3, 2] = (255, 128, 0)      # orange: not a dot
    dots[3, 4] = (255, 0, 128)      # magenta: not a dot
    dots[2, 3] = (255, 255, 255)    # white: not a dot
    np.testing.assert_array_equal(datasets.dots_to_centres(dots), [[1, 0], [5, 1]])


def test_vgg_reader_skips_the_metadata_files_a_mac_leaves(tmp_path):
    write_rgb(tmp_path / "001cell.png", np.zeros((8, 8, 3), np.uint8))
    dots = np.zeros((8, 8, 3), np.uint8)
    dots[2, 5] = (255, 0, 0)
    write_rgb(tmp_path / "001dots.png", dots)
    (tmp_path / "._001cell.png").write_bytes(b"\x00\x05\x16\x07 not an image")
    (s,) = read("vgg_cells", tmp_path)
    assert s.id == "001" and s.centres.tolist() == [[5.0, 2.0]]


def test_scaled_size_rounds_each_side_and_keeps_at_least_a_pixel():
    assert datasets.scaled_size(70, 41, 0.34) == (24, 14)      # 23.8 and 13.94, rounded
    assert datasets.scaled_size(40, 30, 0.01) == (1, 1)        # 0.4 and 0.3: at least a pixel
    assert datasets.scaled_size(40, 30, 0) == (40, 30) == datasets.scaled_size(40, 30, 1)


def test_rescale_moves_dots_by_each_side_own_factor():
    # 41 x 60 halved: 20 rows (20.5 rounded to even) and 30 columns, so y scales by 20/41, x by 1/2
    img = np.zeros((41, 60, 3), np.uint8)
    small = datasets.rescale(datasets.Sample("a", img, np.array([[50.5, 30.5]])), 0.5)
    assert small.image.shape == (20, 30, 3)
    np.testing.assert_allclose(small.centres, [[51 * 0.5 - 0.5, 31 * 20 / 41 - 0.5]])
