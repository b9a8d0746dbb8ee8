"""Images deeper than 8 bits (16-bit, float) in a lab's own folder: one mapping to 8 bits for the
whole dataset, inferred from its training images (owndata), kept in its runs and used by eval and
count; each image's own stretch only where asked for (pycount.toml `depth_range = []`)."""
import csv
import json

import cv2
import numpy as np
import pytest

from pycount import cli, config
from pycount.data import images, owndata, prepare, readers
from pycount.errors import ConfigError, DatasetError
from pycount.inference.run import with_run_reading


def field16(rng, side, cells, bright):
    """A 16-bit fluorescence-like field: background ~1000 with noise, a blob per cell."""
    img = 1000 + rng.normal(0, 30, (side, side))
    yy, xx = np.mgrid[:side, :side]
    for x, y in cells:
        img += bright * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 2.0 ** 2))
    return np.clip(img, 0, 65535).astype(np.uint16)


def make_folder16(root, n=8, side=64, seed=0):
    """n grey 16-bit PNGs with 9-16 cells each, of brightness 2000-8000 over the background."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        cells = rng.uniform(6, side - 6, (int(rng.integers(9, 17)), 2))
        cv2.imwrite(str(root / f"f{i:02d}.png"), field16(rng, side, cells, 2000 + 6000 * i / n))
        (root / f"f{i:02d}.csv").write_text("x,y\n" + "".join(f"{x:.1f},{y:.1f}\n" for x, y in cells))
    return root


def resolved(folder, say=lambda _: None):
    return owndata.resolve(config.dataset(str(folder)), say=say)


def test_a_range_maps_raw_values_and_without_one_each_image_is_stretched():
    data = np.array([[0, 1000], [2000, 3000]], np.uint16)
    np.testing.assert_array_equal(images.to_uint8(data, (1000, 3000)), [[0, 0], [128, 255]])
    lo, hi = np.percentile(data.astype(np.float64), [0.1, 99.9])
    np.testing.assert_array_equal(images.to_uint8(data),
                                  np.rint(np.clip((data - lo) / (hi - lo), 0, 1) * 255))
    eight = np.array([[3, 200]], np.uint8)
    assert images.to_uint8(eight, (1000, 3000)) is eight          # 8-bit: as it is


def test_a_16_bit_folder_gets_one_range_from_its_training_images(tmp_path, workdirs):
    folder = make_folder16(tmp_path / "fluo")
    said = []
    ds = resolved(folder, said.append)
    bands = [images.depth_percentiles(images.decoded_pixels(folder / f"{i}.png")) for i in ds.train_ids]
    assert ds.depth_range == pytest.approx((min(b[0] for b in bands), max(b[1] for b in bands)),
                                           abs=1e-3)
    assert any(line.split()[0] == "depth_range" and "uint16" in line for line in said), said
    # the mean colour is the training images' as the nets see them: through that range
    seen = np.concatenate([images.read_any_image(folder / f"{i}.png", ds.depth_range)
                           .reshape(-1, 3) for i in ds.train_ids])
    assert ds.mean_bgr == pytest.approx(tuple(seen.mean(0)[::-1]), abs=1.0)
    # the brightest and the faintest images keep their difference (a per-image stretch levels it)
    faint, bright = (images.read_any_image(folder / f"{i}.png", ds.depth_range).max()
                     for i in ("f00", "f07"))
    assert bright > faint + 60


def test_an_empty_field_stays_dark_where_a_per_image_stretch_made_it_noise(tmp_path, workdirs):
    """The case that made the range: an empty 16-bit field stretched on its own became near-white
    noise (1,233 cells counted by a bacterial fcrn); through the folder's range it is background."""
    folder = make_folder16(tmp_path / "fluo")
    ds = resolved(folder)
    empty = tmp_path / "empty.png"
    cv2.imwrite(str(empty), field16(np.random.default_rng(5), 64, [], 0))
    assert images.read_any_image(empty, ds.depth_range).mean() < 40
    assert images.read_any_image(empty).mean() > 100


def test_the_spec_file_sets_the_range_or_asks_for_each_images_own(tmp_path, workdirs):
    folder = make_folder16(tmp_path / "fluo")
    (folder / "pycount.toml").write_text("depth_range = [0, 65535]\n")
    said = []
    assert resolved(folder, said.append).depth_range == (0.0, 65535.0)
    assert any(line.split()[0] == "depth_range" and "pycount.toml" in line for line in said)
    (folder / "pycount.toml").write_text("depth_range = []\n")
    assert resolved(folder).depth_range == ()
    for bad in ("[5, 1]", "[1, 2, 3]", "['a', 'b']", "[1, true]"):
        (folder / "pycount.toml").write_text(f"depth_range = {bad}\n")
        with pytest.raises(ConfigError, match="depth_range must be two numbers"):
            config.dataset(str(folder))


def test_flat_16_bit_images_are_each_stretched_on_their_own(tmp_path, workdirs):
    """Training images of one raw value (1000 everywhere: lo = hi) give no range to map them
    through (it would divide by zero): each is stretched on its own, black, and a line says
    why."""
    folder = tmp_path / "flat"
    folder.mkdir()
    for i in range(4):
        cv2.imwrite(str(folder / f"f{i:02d}.png"), np.full((64, 64), 1000, np.uint16))
        (folder / f"f{i:02d}.csv").write_text("x,y\n10,10\n30,30\n")
    said = []
    ds = resolved(folder, said.append)
    assert (ds.depth_range, ds.mean_bgr) == ((), (0.0, 0.0, 0.0))
    assert (f"  depth_range     per image  flat images: each deeper image is stretched on its own "
            f"(depth_range = [low, high] in {folder / 'pycount.toml'} sets one)") in said, said


def test_8_bit_images_are_untouched_and_mixed_depths_stretch_each_image(tmp_path, workdirs):
    folder = make_folder16(tmp_path / "fluo")
    said = []
    rgb = np.zeros((64, 64, 3), np.uint8) + 40
    for i in range(8):                    # 8-bit images beside the 16-bit ones: no range for them
        cv2.imwrite(str(tmp_path / "fluo" / f"e{i:02d}.png"), rgb)
        (folder / f"e{i:02d}.csv").write_text("x,y\n10,10\n")
    ds = resolved(folder, said.append)
    assert len(ds.depth_range) == 2
    assert images.read_any_image(folder / "e00.png", ds.depth_range).max() == 40
    first = ds.train_ids[0]                   # one training image saved as float instead
    as_float = cv2.imread(str(folder / f"{first}.png"), -1).astype(np.float32)
    (folder / f"{first}.png").unlink()
    cv2.imwrite(str(folder / f"{first}.tif"), as_float)
    said.clear()
    assert resolved(folder, said.append).depth_range == ()
    assert any("mixed float32 and uint16" in line and "per image" in line for line in said), said


def test_a_test_image_of_another_depth_is_named_by_prepare_and_eval(tmp_path, workdirs, capsys):
    """8-bit training images and a 16-bit test image: reading the test images (prepare before
    training, eval after) warns about it as `pycount count` flags it; training images do not."""
    folder = tmp_path / "mixed"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(11):
        cells = rng.uniform(6, 58, (10, 2))
        img = (field16(rng, 64, cells, 4000) >> 8).astype(np.uint8)
        cv2.imwrite(str(folder / f"m{i:02d}.png"), img)
        (folder / f"m{i:02d}.csv").write_text("x,y\n" + "".join(f"{x:.1f},{y:.1f}\n"
                                                                for x, y in cells))
    first = resolved(folder)
    odd = first.test_ids[0]
    cv2.imwrite(str(folder / f"{odd}.png"), field16(rng, 64, rng.uniform(6, 58, (10, 2)), 4000))
    (folder / f"{odd}.csv").write_text("x,y\n10,10\n")
    ds = resolved(folder)
    assert ds.image_dtypes == ("uint8",) and odd in ds.test_ids
    capsys.readouterr()
    prepare.load(ds, list(ds.train_ids))
    assert "warning" not in capsys.readouterr().err
    prepare.load(ds, list(ds.test_ids), test=True)
    err = capsys.readouterr().err
    assert err.count("warning: ") == 1, err
    assert f"{folder / odd}.png: a 16-bit image, where the run's training images were 8-bit" in err


def test_a_record_from_before_depth_is_measured_again(tmp_path, workdirs):
    folder = make_folder16(tmp_path / "fluo")
    first = resolved(folder)
    record = config.own_record(first.name)
    old = json.loads(record.read_text())
    for entry in old["images"].values():
        del entry["stats"]["depth"]
    record.write_text(json.dumps(old))
    assert resolved(folder).depth_range == first.depth_range
    assert all("depth" in e["stats"] for e in json.loads(record.read_text())["images"].values())


def test_eval_and_count_read_as_the_run_was_trained(tmp_path, workdirs, monkeypatch, capsys):
    """The run's dataset.json keeps the range; count uses it without the folder, and eval of a run
    from before ranges (dataset.json without one) reads each image stretched on its own."""
    folder = make_folder16(tmp_path / "fluo", n=7)
    args = ["--dataset", str(folder), "--model", "fcrn"]
    assert cli.main(["prepare", *args]) == 0
    assert cli.main(["train", *args, "--iters", "2"]) == 0
    run = workdirs / "runs" / "fluo" / "fcrn"
    recorded = json.loads((run / "dataset.json").read_text())["depth_range"]
    assert len(recorded) == 2 and recorded[1] > recorded[0]
    seen = []
    real = images.to_uint8
    monkeypatch.setattr(images, "to_uint8", lambda d, r=(): seen.append(tuple(r)) or real(d, r))
    assert cli.main(["count", str(folder / "f00.png"), "--run", str(run), "--out",
                     str(tmp_path / "out"), "--tta", "1"]) == 0
    assert seen == [tuple(recorded)]
    # images of another kind or exposure, which the range clips to black or white: suspect
    raw = cv2.imread(str(folder / "f00.png"), -1)
    odd = tmp_path / "odd"
    odd.mkdir()
    cv2.imwrite(str(odd / "float01.tif"), (raw / 65535.0).astype(np.float32))
    cv2.imwrite(str(odd / "times16.png"), (raw.astype(np.uint32) * 16).clip(0, 65535).astype(np.uint16))
    cv2.imwrite(str(odd / "eight.png"), (raw >> 8).astype(np.uint8))     # saved as 8-bit
    assert cli.main(["count", str(odd), "--run", str(run), "--out", str(tmp_path / "odd-out"),
                     "--tta", "1"]) == 1
    rows = {r["file"].rsplit("/", 1)[1]: r for r in csv.DictReader(open(tmp_path / "odd-out" / "counts.csv"))}
    assert rows["times16.png"]["status"] == "suspect" and "above" in rows["times16.png"]["error"]
    # another kind of values than the training images' (recorded in the run's dataset.json)
    assert json.loads((run / "dataset.json").read_text())["image_dtypes"] == ["uint16"]
    for name, kind, how in (("float01.tif", "32-bit float", "its values go through the training "
                             f"images' {recorded} (depth_range)"),
                            ("eight.png", "8-bit", "its values are read as they are, where the "
                             f"training images' went through {recorded} (depth_range) to 8 bits")):
        assert rows[name]["status"] == "suspect", rows[name]
        assert rows[name]["error"].startswith(
            f"a {kind} image, where the run's training images were 16-bit: {how}, so it reads "
            f"otherwise than they did; save it as they were saved"), rows[name]["error"]
    ds = resolved(folder)
    assert with_run_reading(ds, run) == ds
    # the folder's settings edited after training: eval reads as the run was trained, and says so
    (folder / "pycount.toml").write_text("depth_range = [0, 65535]\n")
    edited = resolved(folder)
    assert edited.depth_range == (0.0, 65535.0) and edited.mean_bgr != ds.mean_bgr
    capsys.readouterr()
    back = with_run_reading(edited, run)
    assert back.depth_range == tuple(recorded) and back.mean_bgr == ds.mean_bgr
    err = capsys.readouterr().err
    assert "was trained with depth_range" in err and "was trained with mean_bgr" in err
    (folder / "pycount.toml").unlink()
    old = json.loads((run / "dataset.json").read_text())
    del old["depth_range"], old["image_dtypes"]
    (run / "dataset.json").write_text(json.dumps(old))
    assert with_run_reading(ds, run).depth_range == ()
    # a run from before either was recorded: each image stretched on its own, no kind checked
    assert cli.main(["count", str(odd / "eight.png"), "--run", str(run), "--out",
                     str(tmp_path / "old-out"), "--tta", "1"]) == 0
    assert with_run_reading(config.dataset("bacterial"), run) == config.dataset("bacterial")


@pytest.mark.parametrize("dtype, tiled", [(np.uint16, False), (np.float32, False),
                                          (np.uint8, True), (np.uint16, True)])
def test_tiffs_with_their_channels_in_separate_planes_read_as_stored(tmp_path, dtype, tiled):
    """cv2 decoded planar 16-bit / float RGB TIFFs into pixels that changed from read to read
    (counts of 38.9 / -53.1 / -55.1 for one file), or wrongly (tiled), and a planar float file
    was refused for NaNs it does not hold: tifffile reads them."""
    import tifffile
    rng = np.random.default_rng(9)
    rgb = (rng.random((48, 64, 3)) * (1 if dtype == np.float32 else 250)).astype(dtype)
    path = tmp_path / "planar.tif"
    tifffile.imwrite(path, np.moveaxis(rgb, -1, 0), photometric="rgb", planarconfig="separate",
                     compression="zlib", tile=(16, 16) if tiled else None)
    first, second = images.decoded_pixels(path), images.decoded_pixels(path)
    np.testing.assert_array_equal(first, rgb)
    np.testing.assert_array_equal(second, rgb)


def test_prepare_names_an_image_outside_the_folders_range(tmp_path, workdirs, capsys):
    folder = make_folder16(tmp_path / "fluo")
    ds = resolved(folder)
    test = ds.test_ids[0]
    raw = cv2.imread(str(folder / f"{test}.png"), -1)
    (folder / f"{test}.png").unlink()
    cv2.imwrite(str(folder / f"{test}.tif"), (raw / 65535.0).astype(np.float32))
    capsys.readouterr()
    readers.read_folder(folder, [test], depth_range=ds.depth_range)
    err = capsys.readouterr().err
    assert f"warning: {folder / (test + '.tif')}: 100% below" in err, err
    readers.read_folder(folder, list(ds.train_ids), depth_range=ds.depth_range)
    assert "warning" not in capsys.readouterr().err       # its own training images: none


def test_a_spec_range_that_leaves_the_training_images_blank_is_refused(tmp_path, workdirs):
    folder = make_folder16(tmp_path / "fluo")            # values ~900..12,000
    (folder / "pycount.toml").write_text("depth_range = [20000, 65535]\n")
    with pytest.raises(DatasetError, match=r"leaves the 7 training images without contrast"):
        resolved(folder)
    (folder / "pycount.toml").write_text("depth_range = [-1e308, 1e308]\n")
    with pytest.raises(ConfigError, match="depth_range must be two numbers"):
        config.dataset(str(folder))
    (folder / "pycount.toml").write_text("depth_range = [0, 65535]\n")   # dim, but not blank
    assert resolved(folder).depth_range == (0.0, 65535.0)


def test_a_spec_range_that_leaves_some_training_images_blank_names_them(tmp_path, workdirs):
    """depth_range = [0, 255] over images of raw values 100 and 104 keeps their 4 grey levels;
    images of 100 and 103 get 3, fewer than 4: named in a warning, not refused while others
    keep their contrast."""
    folder = tmp_path / "dim"
    folder.mkdir()
    for name, top in (("c00", 104), ("c01", 104), ("c02", 104), ("d00", 103), ("d01", 103)):
        img = np.full((64, 64), 100, np.uint16)
        img[:, 32:] = top
        cv2.imwrite(str(folder / f"{name}.png"), img)
        (folder / f"{name}.csv").write_text("x,y\n10,10\n30,30\n")
    (folder / "pycount.toml").write_text('depth_range = [0, 255]\ntest = ["c02"]\n')
    said = []
    assert resolved(folder, said.append).depth_range == (0.0, 255.0)
    assert ("  warning: depth_range = [0.0, 255.0] leaves 2 of the 4 training images without "
            "contrast (d00, d01); their values lie in [100.0, 104.0]") in said, said


def test_float_images_of_tiny_values_keep_their_range(tmp_path, workdirs):
    """The measured percentiles were rounded to 4 decimals: float images of values ~1e-5 read as
    flat, and fell back to a per-image stretch."""
    folder = make_folder16(tmp_path / "fluo")
    for p in sorted(folder.glob("*.png")):
        cv2.imwrite(str(p.with_suffix(".tif")), (cv2.imread(str(p), -1) * 1e-9).astype(np.float32))
        p.unlink()
    ds = resolved(folder)
    assert len(ds.depth_range) == 2 and 0 < ds.depth_range[0] < ds.depth_range[1] < 1e-4


def test_a_range_of_no_width_or_a_near_flat_image_stretches_each_image_on_its_own():
    """A depth_range whose ends meet maps nothing: the image's own stretch instead. An image
    whose percentiles meet (a flat field, two odd pixels) spans its minimum to its maximum."""
    data = np.full((100, 100), 1000, np.uint16)
    data[0, 0], data[0, 1] = 0, 5000
    expected = np.full((100, 100), 51, np.uint8)                # 1000 of 0..5000
    expected[0, 0], expected[0, 1] = 0, 255
    np.testing.assert_array_equal(images.to_uint8(data), expected)
    np.testing.assert_array_equal(images.to_uint8(data, (1000, 1000)), expected)


def test_values_on_the_ends_of_the_range_lie_within_it_and_a_quarter_outside_is_no_warning():
    rng = np.array([[0, 0, 0, 4095]], np.uint16)
    assert images.outside_range(rng, (0, 4095)) == ""
    quarter = np.array([[50, 500, 600, 700]], np.uint16)      # config.DEPTH_OUTSIDE_WARN
    assert images.outside_range(quarter, (100, 1000)) == ""
    half = np.array([[50, 60, 600, 700]], np.uint16)
    assert images.outside_range(half, (100, 1000)).startswith(
        "50% below 100 of its uint16 values lie outside the range [100, 1000] its dataset's "
        "training images span (depth_range), so it reads as mostly black")
    # 8-bit values are read as they are, whatever the range: nothing to say
    assert images.outside_range(np.full((2, 2), 255, np.uint8), (0, 100)) == ""


def test_an_image_of_fewer_bits_than_the_training_images_names_its_levels():
    data = np.zeros((2, 2), np.uint8)
    assert images.outside_range(data, (), ("uint8",), "uint4") == (
        "a 4-bit image, where the run's training images were 8-bit: it holds only 16 levels of "
        "intensity (a mask or a thresholded image?), where the training images held the shades "
        "of a micrograph, so it reads otherwise than they did; save it as they were saved")
    assert "it holds only 2 levels" in images.outside_range(data, (), ("uint16",), "bool")
