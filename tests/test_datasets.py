"""Tests for pycount.datasets: synthetic generation, reading the VGG-cells layout, error reporting."""
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from pycount import config
from pycount.data import prepare, synthetic
from pycount.data.readers import Sample, read_vgg_cells
from pycount.errors import DatasetError
from pycount.data.synthetic import generate_ki67_synthetic, generate_synthetic, synthesize_image

REAL_ROOT = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "vgg_cells"
SMALL = dict(count_range=(20, 60), size=128)  # small images keep the generator tests fast


def expected_image(seed, k, count_range, size):
    """What generate_synthetic documents for image k (0-based): its own SeedSequence child."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(k,)))
    n = int(rng.integers(count_range[0], count_range[1] + 1))
    return synthesize_image(rng, n, size)


def sorted_rows(a):
    return a[np.lexsort((a[:, 1], a[:, 0]))]


def file_bytes(folder):
    return {p.name: p.read_bytes() for p in sorted(Path(folder).iterdir())}


def write_rgb(path, rgb):
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


# --- synthetic generator ----------------------------------------------------------------------------

def test_layout_and_roundtrip(tmp_path):
    out = generate_synthetic(tmp_path / "syn", n_images=3, seed=7, **SMALL)
    names = sorted(p.name for p in out.iterdir())
    assert names == ["001cell.png", "001dots.png", "002cell.png", "002dots.png",
                     "003cell.png", "003dots.png", "synthetic.json"]
    samples = read_vgg_cells(out)
    assert [s.id for s in samples] == ["001", "002", "003"]
    for k, s in enumerate(samples):
        image, centres = expected_image(7, k, SMALL["count_range"], SMALL["size"])
        assert s.count == len(centres)
        assert 20 <= s.count <= 60
        assert s.centres.dtype == np.float64
        np.testing.assert_array_equal(sorted_rows(s.centres), sorted_rows(centres))
        np.testing.assert_array_equal(s.image, image)
    # The dots file holds exactly one pure red pixel per cell on black.
    dots = cv2.imread(str(out / "001dots.png"))[..., ::-1].reshape(-1, 3)
    colours, counts = np.unique(dots, axis=0, return_counts=True)
    assert colours.tolist() == [[0, 0, 0], [255, 0, 0]] and counts[1] == samples[0].count


def test_synthesize_image_properties():
    image, centres = synthesize_image(np.random.default_rng(3), 300, size=256)
    assert image.shape == (256, 256, 3) and image.dtype == np.uint8
    assert centres.shape == (300, 2)
    assert np.array_equal(centres, np.rint(centres)), "centres must be integer pixels"
    assert len(np.unique(centres, axis=0)) == 300, "centres must be distinct"
    assert centres.min() >= 0 and centres.max() <= 255
    # Signal is in blue, as in the real images; red and green are faint noise.
    means = image.reshape(-1, 3).mean(axis=0)
    assert means[2] > 40 and means[0] < 3 and means[1] < 3
    # Cells sit brighter than the background around them.
    blue = image[..., 2].astype(float)
    xy = centres.astype(int)
    assert blue[xy[:, 1], xy[:, 0]].mean() > blue.mean() + 40


def test_deterministic_and_seed_dependent(tmp_path):
    a = file_bytes(generate_synthetic(tmp_path / "a", n_images=3, seed=0, **SMALL))
    b = file_bytes(generate_synthetic(tmp_path / "b", n_images=3, seed=0, **SMALL))
    c = file_bytes(generate_synthetic(tmp_path / "c", n_images=3, seed=1, **SMALL))
    assert a == b
    assert all(a[f"00{i}cell.png"] != c[f"00{i}cell.png"] for i in (1, 2, 3))
    # Image k does not depend on how many images are generated.
    d = file_bytes(generate_synthetic(tmp_path / "d", n_images=2, seed=0, **SMALL))
    assert all(d[name] == a[name] for name in d if name.endswith(".png"))


def test_reuse_and_regenerate(tmp_path, dead_pid):
    out = tmp_path / "syn"
    calls = []
    generate_synthetic(out, n_images=2, seed=0, progress=lambda i, n: calls.append((i, n)), **SMALL)
    assert calls == [(0, 2), (1, 2), (2, 2)]   # its start, then each image
    assert sorted(p.name for p in tmp_path.iterdir()) == ["syn"], "no temporary folders left behind"
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    first = file_bytes(out)

    # Same parameters: nothing is rewritten and no progress is reported.
    calls.clear()
    generate_synthetic(out, n_images=2, seed=0, progress=lambda i, n: calls.append((i, n)), **SMALL)
    assert calls == []
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == mtimes

    # An incomplete set (a file deleted) is regenerated.
    (out / "002dots.png").unlink()
    generate_synthetic(out, n_images=2, seed=0, **SMALL)
    assert file_bytes(out) == first

    # Different parameters: the set is replaced and the stamp records the new ones.
    generate_synthetic(out, n_images=2, seed=5, **SMALL)
    assert json.loads((out / "synthetic.json").read_text())["seed"] == 5
    assert file_bytes(out)["001cell.png"] != first["001cell.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["syn"]

    # the half-written folder of a generation killed outright goes with the next generation;
    # that of one still running (this process's id) stays
    dead = dead_pid
    (tmp_path / f".syn.tmp-{dead}-abc").mkdir()
    (tmp_path / f".syn.tmp-{dead}-abc" / "001cell.png").write_bytes(b"half")
    import os
    (tmp_path / f".syn.tmp-{os.getpid()}-xyz").mkdir()
    generate_synthetic(out, n_images=2, seed=6, **SMALL)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".syn.tmp-{os.getpid()}-xyz", "syn"]


def test_refuses_to_overwrite_foreign_folder(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(DatasetError, match="synthetic.json"):
        generate_synthetic(out, n_images=1, **SMALL)
    assert (out / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize("generate,size", [(generate_synthetic, 16),
                                           (generate_ki67_synthetic, (200, 240))])
@pytest.mark.parametrize("count_range", [(0, 5), (6, 5)])
def test_a_count_range_that_is_not_one_or_more_low_to_high_is_refused(tmp_path, generate, size,
                                                                     count_range):
    with pytest.raises(ValueError, match=r"count_range must satisfy 1 <= low <= high, got "
                       + re.escape(str(count_range))):
        generate(tmp_path / "s", n_images=1, count_range=count_range, size=size)
    assert not (tmp_path / "s").exists()


def test_more_cells_than_pixels_or_a_ki67_image_narrower_than_a_nucleus_is_refused(tmp_path):
    with pytest.raises(ValueError, match="count_range high 17 exceeds the 4x4 pixels"):
        generate_synthetic(tmp_path / "s", n_images=1, count_range=(1, 17), size=4)
    with pytest.raises(ValueError, match="a 32x400 image cannot hold 1 nuclei"):
        generate_ki67_synthetic(tmp_path / "k", n_images=1, count_range=(1, 1), size=(32, 400))
    # 62 nuclei of 9 px apart want 62 x 81 px, more than half of 100 x 100 (61 would fit)
    with pytest.raises(ValueError, match="a 100x100 image cannot hold 62 nuclei 9 px apart; "
                       "lower count_range or enlarge size"):
        generate_ki67_synthetic(tmp_path / "k", n_images=1, count_range=(1, 62), size=(100, 100))
    assert sorted(tmp_path.iterdir()) == []


def test_an_empty_folder_is_generated_into(tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    generate_synthetic(out, n_images=1, **SMALL)
    assert sorted(p.name for p in out.iterdir()) == ["001cell.png", "001dots.png",
                                                     "synthetic.json"]


def test_an_image_that_cannot_be_written_is_named_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(synthetic.cv2, "imwrite", lambda *a: False)
    with pytest.raises(DatasetError, match=r"could not write .*001cell\.png; check disk space"):
        generate_synthetic(tmp_path / "s", n_images=2, **SMALL)
    assert sorted(tmp_path.iterdir()) == []           # no half-written temporary folder


def test_every_cell_gets_its_own_centre_pixel_even_when_crowded():
    for n in (200, 256):                          # 256: every pixel of a 16 x 16 image
        _, centres = synthetic.synthesize_image(np.random.default_rng(n), n, size=16)
        assert len(np.unique(centres, axis=0)) == n


def test_saturated_nuclei_clip_at_full_brightness(monkeypatch):
    monkeypatch.setattr(synthetic, "CELL_GAIN", 50.0)
    image, centres = synthetic.synthesize_image(np.random.default_rng(0), 30, size=64)
    xy = centres.astype(int)
    assert (image[xy[:, 1], xy[:, 0], 2] == 255).all()


def test_texture_noise_spans_zero_to_one_and_a_nucleus_fits_its_canvas():
    rng = np.random.default_rng(0)
    for _ in range(20):
        noise = synthetic._value_noise(rng, 23, 31, 3)
        assert noise.shape == (23, 31) and noise.min() == 0 and noise.max() == pytest.approx(1)
        mask = synthetic._cell_mask(rng, 6.0)
        assert mask.max() == 1
        assert (mask[[0, -1]] == 0).all() and (mask[:, [0, -1]] == 0).all()   # not cut square


# --- reading ----------------------------------------------------------------------------------------

def test_real_dataset():
    if not REAL_ROOT.is_dir():
        pytest.skip(f"real VGG cells dataset not present at {REAL_ROOT}")
    samples = read_vgg_cells(REAL_ROOT)
    counts = [s.count for s in samples]
    assert len(samples) == 200
    assert sum(counts) == 35192 and min(counts) == 74 and max(counts) == 317
    assert all(s.image.shape == (256, 256, 3) and s.image.dtype == np.uint8 for s in samples)
    subset = read_vgg_cells(REAL_ROOT, ids=["002", "001"])
    assert [s.id for s in subset] == ["002", "001"]
    np.testing.assert_array_equal(subset[1].centres, samples[0].centres)


def test_dot_colour_tolerance(tmp_path):
    image = np.zeros((8, 10, 3), np.uint8)
    dots = np.zeros_like(image)
    dots[1, 2] = (255, 0, 0)    # pure red
    dots[5, 7] = (240, 10, 12)  # slightly off red still counts
    dots[3, 3] = (0, 0, 255)    # blue is not a dot
    dots[4, 4] = (255, 255, 255)  # neither is white
    write_rgb(tmp_path / "001cell.png", image)
    write_rgb(tmp_path / "001dots.png", dots)
    (s,) = read_vgg_cells(tmp_path)
    assert isinstance(s, Sample) and s.count == 2
    assert sorted(map(tuple, s.centres.tolist())) == [(2.0, 1.0), (7.0, 5.0)]


@pytest.fixture
def tiny_set(tmp_path):
    """Two valid 8x8 pairs in tmp_path/data."""
    root = tmp_path / "data"
    root.mkdir()
    for i in ("001", "002"):
        write_rgb(root / f"{i}cell.png", np.zeros((8, 8, 3), np.uint8))
        write_rgb(root / f"{i}dots.png", np.zeros((8, 8, 3), np.uint8))
    return root


def test_missing_root(tmp_path):
    with pytest.raises(DatasetError, match="DATA_ROOT") as err:
        read_vgg_cells(tmp_path / "nowhere")
    assert "nowhere" in str(err.value) and "DATA_ROOT" in str(err.value)


def test_empty_root(tmp_path):
    with pytest.raises(DatasetError, match="no NNNcell.png"):
        read_vgg_cells(tmp_path)


def test_cell_without_dots(tiny_set):
    (tiny_set / "002dots.png").unlink()
    with pytest.raises(DatasetError, match="002cell.png"):
        read_vgg_cells(tiny_set)


def test_dots_without_cell(tiny_set):
    (tiny_set / "001cell.png").unlink()
    with pytest.raises(DatasetError, match="001dots.png"):
        read_vgg_cells(tiny_set)


def test_corrupt_png(tiny_set):
    (tiny_set / "002cell.png").write_bytes(b"\x89PNG not really an image")
    with pytest.raises(DatasetError, match="002cell.png"):
        read_vgg_cells(tiny_set)


def test_size_mismatch(tiny_set):
    write_rgb(tiny_set / "001dots.png", np.zeros((8, 9, 3), np.uint8))
    with pytest.raises(DatasetError, match="001dots.png"):
        read_vgg_cells(tiny_set)


def test_unknown_id(tiny_set):
    assert [s.id for s in read_vgg_cells(tiny_set, ids=["002"])] == ["002"]
    with pytest.raises(DatasetError, match="003cell.png"):
        read_vgg_cells(tiny_set, ids=["003"])


def test_generation_bar_rate_is_of_the_images_it_made(tmp_path, monkeypatch, capsys):
    """The bar starts before the first image: its first line's rate is that image's, not one
    image over the microsecond since a bar made after it (a rate of 118,441 images/s)."""
    from pycount import config
    from pycount.data import prepare, synthetic
    now = [0.0]                           # the clock moves 2 s per image made, and only then
    monkeypatch.setattr("pycount.util.progress.time.monotonic", lambda: now[0])
    make_image = synthetic.synthesize_image

    def slow_image(*a, **kw):
        now[0] += 2.0
        return make_image(*a, **kw)
    monkeypatch.setattr(synthetic, "synthesize_image", slow_image)
    monkeypatch.setattr(config, "data_dir", lambda: tmp_path)
    monkeypatch.setattr(config, "SYNTHETIC_IMAGES", 2)
    real = synthetic.generate_synthetic
    monkeypatch.setattr(synthetic, "generate_synthetic",
                        lambda root, **kw: real(root, **{**kw, **SMALL}))
    prepare.dataset_root(config.DATASETS["synthetic"])
    rates = [float(line.split(" images/s")[0].rsplit(" ", 1)[1])
             for line in capsys.readouterr().err.splitlines() if "images/s" in line]
    assert rates and max(rates) <= 0.5


@pytest.mark.skipif(not REAL_ROOT.is_dir(), reason="the VGG cells release is not here")
@pytest.mark.parametrize("damage", ["grey", "jpeg"])
def test_a_release_file_changed_since_unpacking_is_refused_not_read_as_few_cells(
        tmp_path, damage, workdirs):
    """A dots image saved again as grey (or as JPEG under its name) read as 0 or 1 cells, and
    prepare trained on it: the named releases' files are checked against their manifest."""
    import shutil
    from pycount import config
    copy = tmp_path / "root" / "vgg_cells"
    copy.mkdir(parents=True)
    for i in ("010", "011"):
        for kind in ("cell", "dots"):
            shutil.copy(REAL_ROOT / f"{i}{kind}.png", copy / f"{i}{kind}.png")
    ds = config.dataset("bacterial")
    assert [s.count for s in prepare.load(ds, ["010", "011"], copy.parent)] == \
        [s.count for s in read_vgg_cells(REAL_ROOT, ids=["010", "011"])]     # as released: read
    dots = copy / "010dots.png"
    img = cv2.imread(str(dots))
    if damage == "grey":
        cv2.imwrite(str(dots), cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))
    else:
        ok, buf = cv2.imencode(".jpg", img)
        dots.write_bytes(buf.tobytes())
    with pytest.raises(DatasetError, match=rf"{dots} differs from the published bacterial "
                                           rf"release .* --verify-only"):
        prepare.load(ds, ["010", "011"], copy.parent)
    # every image of the folder (ids None, as bench.nuclei_marks reads them): checked alike (it
    # raised a TypeError iterating None)
    with pytest.raises(DatasetError, match=rf"{dots} differs from the published bacterial"):
        prepare.load(ds, None, copy.parent)
    assert prepare.load(ds, ["011"], copy.parent)[0].count > 0     # the others still read


def test_a_partner_renamed_in_another_case_is_named_with_the_fix(tmp_path):
    for name in ("001cell.png", "001dots.PNG"):
        cv2.imwrite(str(tmp_path / "x.png"), np.zeros((8, 8, 3), np.uint8))
        (tmp_path / "x.png").rename(tmp_path / name)
    with pytest.raises(DatasetError, match=r"001dots.PNG differs only in case: rename it to "
                                           r"001dots.png"):
        read_vgg_cells(tmp_path)


def test_the_regeneration_note_is_for_generated_sets_only(tmp_path):
    """A public release's or a lab's messages said '(a synthetic set regenerates when its folder
    is deleted)', which deleting their folder does not do."""
    cv2.imwrite(str(tmp_path / "001cell.png"), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(DatasetError) as e:
        read_vgg_cells(tmp_path)
    assert "regenerates" not in str(e.value) and str(e.value).endswith("remove the image")
    (tmp_path / "synthetic.json").write_text("{}")
    with pytest.raises(DatasetError, match="a synthetic set regenerates when its folder"):
        read_vgg_cells(tmp_path)


def test_a_data_root_that_is_the_release_folder_itself_is_read(tmp_path):
    # DATA_ROOT=../shared/datasets/vgg_cells: the release, not the folder holding it
    ds = config.dataset("bacterial")
    release = tmp_path / ds.subdir
    release.mkdir()
    assert prepare.dataset_root(ds, tmp_path) == release
    assert prepare.dataset_root(ds, release) == release
    # the holding folder wins where both exist; another name is not guessed at
    (release / ds.subdir).mkdir()
    assert prepare.dataset_root(ds, release) == release / ds.subdir
    other = tmp_path / "cells"
    other.mkdir()
    assert prepare.dataset_root(ds, other) == other / ds.subdir


def test_a_generated_set_is_readable_as_a_folder_mkdir_makes(tmp_path):
    """The set is written into a tempfile.mkdtemp folder (mode 0700) and renamed into place: it
    stayed readable by its owner only (helper-55); it gets the mode mkdir gives under the umask."""
    import os
    import stat
    from pycount.data import synthetic
    mask = os.umask(0o022)
    try:
        out = synthetic.generate_synthetic(tmp_path / "synthetic", n_images=2, size=64)
    finally:
        os.umask(mask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
