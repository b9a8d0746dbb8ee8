"""Stain (HED) augmentation of the density crops: an exact colour round trip, bounded changes of
each stain's amount, reproducible LMDBs, and its own run folder. Stain normalisation (STAIN=):
the target statistics reached, recorded with the run, and applied when counting."""
import dataclasses

import numpy as np
import pytest

from pycount import config
from pycount.data import lmdbio, prepare, stain
from pycount.errors import ConfigError


def _he_like(seed=0, side=48):
    rng = np.random.default_rng(seed)
    amounts = np.stack([rng.uniform(0.05, 0.6, (side, side)), rng.uniform(0.05, 0.4, (side, side)),
                        np.full((side, side), 0.01)], axis=-1)
    return stain.from_stains(amounts)


def test_the_stain_round_trip_is_exact():
    img = _he_like()
    np.testing.assert_array_equal(stain.from_stains(stain.to_stains(img)), img)
    # white (255) is no stain at all
    np.testing.assert_allclose(stain.to_stains(np.full((2, 2, 3), 255, np.uint8)), 0, atol=1e-12)


def test_jitter_moves_each_stain_within_its_bounds():
    img = _he_like(1)
    assert stain.hed_jitter(img, 0.0, np.random.default_rng(0)) is img
    before = stain.to_stains(img).reshape(-1, 3)
    mean = before.mean(axis=0)
    for seed in range(5):
        out = stain.hed_jitter(img, 0.2, np.random.default_rng(seed))
        assert out.shape == img.shape and out.dtype == np.uint8
        after = stain.to_stains(out).reshape(-1, 3)
        # after = before * a + b * mean with a in [0.8, 1.2], b in [-0.2, 0.2]: fit a, b per stain
        for c in range(2):                    # H and E (DAB is ~0 here, lost to rounding)
            a, b = np.polyfit(before[:, c], after[:, c], 1)
            assert 0.78 < a < 1.22 and abs(b) <= 0.22 * mean[c] + 0.01
        assert not np.array_equal(out, img)
    # the same generator state gives the same crop; RGBA keeps its alpha
    rgba = np.dstack([img, np.full(img.shape[:2], 7, np.uint8)])
    a = stain.hed_jitter(rgba, 0.2, np.random.default_rng(3))
    np.testing.assert_array_equal(a[..., :3], stain.hed_jitter(img, 0.2, np.random.default_rng(3)))
    assert (a[..., 3] == 7).all()


def test_black_pixels_and_amounts_past_the_ends_stay_in_range():
    # a 0 is read as a count of 1 (optical density log10(255)), not as an endless density
    black = stain.to_stains(np.zeros((1, 1, 3), np.uint8))
    np.testing.assert_array_equal(black, stain.to_stains(np.ones((1, 1, 3), np.uint8)))
    assert np.isfinite(black).all()
    np.testing.assert_allclose(stain._optical_density(np.zeros((1, 1, 3), np.uint8)),
                               np.log10(255.0))           # so in Macenko's unmixing too
    # negative amounts (a jitter's shift past no stain) are white, too much stain is black:
    # clipped, not wrapped around in uint8
    np.testing.assert_array_equal(stain.from_stains(np.full((1, 2, 3), -0.5)), 255)
    np.testing.assert_array_equal(stain.from_stains(np.full((1, 2, 3), 9.0)), 0)


def test_jitter_scales_each_stain_both_ways_and_shifts_it():
    """The fit of test_jitter_moves_each_stain_within_its_bounds over many draws: the scale
    goes below and above 1, and the shift is not always ~0."""
    img = _he_like(4)
    before = stain.to_stains(img).reshape(-1, 3)
    mean = before.mean(axis=0)
    fits = []
    for seed in range(12):
        after = stain.to_stains(stain.hed_jitter(img, 0.2, np.random.default_rng(seed)))
        fits += [np.polyfit(before[:, c], after.reshape(-1, 3)[:, c], 1) / (1, mean[c])
                 for c in range(2)]
    scales, shifts = np.array(fits).T
    assert scales.min() < 0.9 and scales.max() > 1.1
    assert np.abs(shifts).max() > 0.1


def test_hed_is_a_variant_with_its_own_folders_and_is_checked():
    ds = config.dataset("nuclei")
    jittered = config.with_overrides(ds, hed_jitter=0.2)
    assert ds.variant == "" and jittered.tag == "nuclei-hed0.2"
    assert config.lmdb_dir(jittered) != config.lmdb_dir(ds)
    for bad in (-0.1, 1.0):
        with pytest.raises(ConfigError, match="HED="):
            config.with_overrides(ds, hed_jitter=bad)


def test_prepare_jitters_training_crops_only_and_reproducibly(tiny):
    pytest.importorskip("caffe", reason="run `make setup` to build Caffe")
    ds, _ = tiny
    ds = dataclasses.replace(ds, crop=64, crop_stride=64, rot_step=90)
    fcrn = config.model("fcrn")
    prepare.prepare(ds, model=fcrn)
    jit = config.with_overrides(ds, hed_jitter=0.3)
    prepare.prepare(jit, model=fcrn)

    def crops(d, part):
        return [p for _, p, _ in lmdbio.read_lmdb(config.density_lmdbs(d, part)[0])]
    plain, jittered = crops(ds, "train"), crops(jit, "train")
    assert len(plain) == len(jittered)
    changed = sum(not np.array_equal(a, b) for a, b in zip(plain, jittered))
    assert changed > 0.9 * len(plain)
    # validation crops are the images as they are
    assert all(np.array_equal(a, b) for a, b in zip(crops(ds, "val"), crops(jit, "val")))
    # the same settings write the same LMDB
    prepare.prepare(jit, model=fcrn, force=True)
    assert all(np.array_equal(a, b) for a, b in zip(jittered, crops(jit, "train")))


# --- stain normalisation (STAIN=reinhard) --------------------------------------------------------

def test_reinhard_gives_every_image_the_targets_colour_statistics():
    pale, dark = _he_like(2), stain.from_stains(stain.to_stains(_he_like(3)) * 1.6)
    ref = stain.reinhard_reference([pale, dark])
    np.testing.assert_allclose(ref, (stain.lab_stats(pale) + stain.lab_stats(dark)) / 2)
    for img in (pale, dark):
        out = stain.reinhard(img, ref)
        assert out.shape == img.shape and out.dtype == np.uint8
        # L within 1 of 100, a and b within 1 (8-bit rounding and clipping)
        np.testing.assert_allclose(stain.lab_stats(out), ref, atol=1.0)
    # the two images differed by far more than that before
    assert np.abs(stain.lab_stats(pale) - stain.lab_stats(dark)).max() > 5
    # normalising twice changes nothing beyond rounding; alpha is kept; grey is refused
    once = stain.reinhard(pale, ref)
    assert np.abs(stain.reinhard(once, ref).astype(int) - once).max() <= 2
    rgba = np.dstack([pale, np.full(pale.shape[:2], 9, np.uint8)])
    np.testing.assert_array_equal(stain.reinhard(rgba, ref)[..., :3], once)
    assert (stain.reinhard(rgba, ref)[..., 3] == 9).all()
    with pytest.raises(ValueError, match="RGB"):
        stain.reinhard(pale[..., 0], ref)


def test_lab_stats_are_the_mean_and_population_spread_and_the_target_their_average():
    # one black and one white pixel: L* 0 and 100, so mean 50 and spread 50 (not 70.7, the
    # sample spread); a* and b* 0 for both
    bw = np.array([[[0, 0, 0], [255, 255, 255]]], np.uint8)
    np.testing.assert_allclose(stain.lab_stats(bw), [[50, 0, 0], [50, 0, 0]], atol=0.01)
    # the target is the mean of every image's statistics, whatever their number
    images = [_he_like(2), _he_like(5), stain.from_stains(stain.to_stains(_he_like(3)) * 1.6)]
    np.testing.assert_allclose(stain.reinhard_reference(images),
                               np.mean([stain.lab_stats(im) for im in images], axis=0))
    assert not np.allclose(stain.reinhard_reference(images),
                           np.median([stain.lab_stats(im) for im in images], axis=0))


@pytest.mark.parametrize("method", ["reinhard", "macenko"])
def test_an_unknown_normalisation_is_refused_by_name(method):
    img = _he_like()
    ref = stain.target(method, [img])
    assert stain.normalise(method, img, ref).shape == img.shape
    with pytest.raises(ValueError, match="unknown stain normalisation 'vahadane'"):
        stain.target("vahadane", [img])
    with pytest.raises(ValueError, match="unknown stain normalisation 'vahadane'"):
        stain.normalise("vahadane", img, ref)


@pytest.mark.parametrize("method", ["reinhard", "macenko"])
def test_stain_normalising_two_channels_is_refused_as_not_rgb(method):
    ref = stain.target(method, [_he_like()])
    grey_alpha = np.dstack([np.full((8, 8), 90, np.uint8), np.full((8, 8), 255, np.uint8)])
    with pytest.raises(ValueError, match=r"needs an RGB image, got shape \(8, 8, 2\)"):
        stain.normalise(method, grey_alpha, ref)


@pytest.mark.parametrize("method", ["reinhard", "macenko"])
def test_a_16_bit_image_is_normalised_as_its_8_bit_twin(method):
    img = _he_like(6)
    ref = stain.target(method, [_he_like(7)])
    wide = img.astype(np.uint16) * 257                   # 255 -> 65535: the same colours
    np.testing.assert_array_equal(stain.normalise(method, wide, ref),
                                  stain.normalise(method, img, ref))


def _tissue(stains, h_scale, seed, side=64):
    """Tissue with haematoxylin everywhere (0.2-0.8), eosin 0.05-0.6, and a white band (glass) on
    top, stained with the given unit stain vectors (rows H, E), H's amount scaled."""
    rng = np.random.default_rng(seed)
    amounts = np.stack([rng.uniform(0.2, 0.8, (side, side)) * h_scale,
                        rng.uniform(0.05, 0.6, (side, side))], axis=-1)
    amounts[:side // 4] = 0
    return np.clip(np.rint(255 * 10.0 ** -(amounts @ stains)), 0, 255).astype(np.uint8)


def test_macenko_makes_one_tissue_stained_two_ways_alike_and_keeps_glass_white():
    def unit(v):
        v = np.asarray(v, float)
        return v / np.linalg.norm(v, axis=1, keepdims=True)
    ours = unit([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11]])        # Ruifrok & Johnston's H, E
    theirs = unit([[0.55, 0.75, 0.37], [0.15, 0.95, 0.25]])      # another lab's, and more H
    tissue, restained = _tissue(ours, 1.0, 0), _tissue(theirs, 1.5, 0)
    ref = stain.target("macenko", [tissue, _tissue(ours, 1.0, 1)])
    assert ref.shape == (config.STAIN_METHODS["macenko"],)
    # the haematoxylin colour is found (the eosin one only as the stained pixels' far edge:
    # pixels of little red density are left out, as Macenko et al. do)
    found, _ = stain.macenko_stains(tissue)
    assert found[0] @ ours[0] > 0.99
    a, b = stain.macenko(tissue, ref), stain.macenko(restained, ref)
    before = np.abs(restained.astype(int) - tissue).mean()
    after = np.abs(a.astype(int) - b).mean()
    assert before > 20 and after < 0.25 * before           # measured: 24.9 -> 4.4
    assert np.abs(a.astype(int) - tissue).mean() < 1       # an image like the target stays put
    assert (b[:16] == 255).all()                           # glass stays white
    # too few stained pixels: the image as it is
    glass = np.full((32, 32, 3), 250, np.uint8)
    assert stain.macenko(glass, ref) is glass


def test_reinhard_to_an_images_own_statistics_gives_it_back():
    img = _tissue(np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11]]) / np.linalg.norm(
        [[0.65, 0.70, 0.29], [0.07, 0.99, 0.11]], axis=1, keepdims=True), 1.0, 3)
    out = stain.reinhard(img, stain.lab_stats(img))
    assert np.abs(out.astype(int) - img).max() <= 1
    assert (out[:16] == 255).all()                      # the white band stays white


def test_macenko_needs_enough_pixels_stained_in_every_channel():
    """MACENKO_MIN_PIXELS pixels of optical density above MACENKO_OD_MIN in R, G and B; fewer,
    or pale pixels that only one channel sees, leave an image as it is."""
    ref = stain.target("macenko", [_he_like(8)])
    n = config.MACENKO_MIN_PIXELS
    rng = np.random.default_rng(9)
    img = np.full((20, 20, 3), 255, np.uint8)
    img.reshape(-1, 3)[:n] = stain.from_stains(np.stack(
        [rng.uniform(0.5, 0.9, n), rng.uniform(0.3, 0.6, n), np.zeros(n)], axis=-1))
    assert stain.macenko_stains(img) is not None
    img.reshape(-1, 3)[n - 1] = 255                       # one pixel fewer
    assert stain.macenko_stains(img) is None and stain.macenko(img, ref) is img
    pale = np.full((20, 20, 3), 255, np.uint8)            # pink: only green absorbs (OD 0.3)
    pale[:10] = np.rint(255 * 10.0 ** -np.array([0.05, 0.3, 0.05]))
    pale[:10, :, 1] += np.arange(10, dtype=np.uint8)[:, None]   # not all one colour
    assert stain.macenko_stains(pale) is None and stain.macenko(pale, ref) is pale


def test_a_macenko_target_of_unstained_images_only_is_refused():
    glass = np.full((32, 32, 3), 250, np.uint8)
    with pytest.raises(ValueError, match="no image has enough stained pixels for Macenko"):
        stain.target("macenko", [glass, glass])


def test_the_macenko_target_is_the_unit_mean_colour_and_the_median_high_amount():
    def unit(v):
        v = np.asarray(v, float)
        return v / np.linalg.norm(v, axis=1, keepdims=True)
    images = [_tissue(unit([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11]]), 1.0, 0),
              _tissue(unit([[0.55, 0.75, 0.37], [0.15, 0.95, 0.25]]), 1.5, 1),
              _tissue(unit([[0.75, 0.60, 0.25], [0.30, 0.90, 0.10]]), 3.0, 2),
              np.full((32, 32, 3), 250, np.uint8)]                # glass: left out
    found = [stain.macenko_stains(im) for im in images[:3]]
    mean = np.mean([s for s, _ in found], axis=0)
    assert np.linalg.norm(mean, axis=1).min() < 0.999          # the mean of units is shorter
    highs = np.array([a for _, a in found])
    assert not np.allclose(np.median(highs, axis=0), highs.mean(axis=0))
    ref = stain.target("macenko", images)
    np.testing.assert_allclose(ref[:6], (mean / np.linalg.norm(mean, axis=1, keepdims=True))
                               .ravel())
    np.testing.assert_allclose(ref[6:], np.median(highs, axis=0))


def test_stain_is_a_variant_with_its_own_folders_and_is_checked():
    ds = config.dataset("nuclei")
    normed = config.with_overrides(ds, stain_norm="reinhard")
    assert normed.tag == "nuclei-reinhard" and normed.stain_ref == ()
    assert config.lmdb_dir(normed) != config.lmdb_dir(ds)
    assert config.with_overrides(normed, stain_norm="none").tag == "nuclei"
    assert config.with_overrides(ds, stain_norm="macenko").tag == "nuclei-macenko"
    with pytest.raises(ConfigError, match="STAIN=vahadane"):
        config.with_overrides(ds, stain_norm="vahadane")


def test_a_stain_normalised_run_counts_recoloured_images_alike(tiny, tmp_path):
    """prepare measures the target on the training images and normalises every crop to it, the
    run records it, and counting with the run (moved elsewhere) normalises each image first: an
    image recoloured as another lab's scanner would is counted as the original."""
    pytest.importorskip("caffe", reason="run `make setup` to build Caffe")
    import shutil
    from pycount.errors import RunError
    from pycount.evaluation.evaluate import evaluate
    from pycount.inference.predictors import StainNormalised, make_predictor
    from pycount.training import trainer
    ds, _ = tiny
    ds = config.with_overrides(dataclasses.replace(ds, crop=64, crop_stride=64, rot_step=90),
                               stain_norm="reinhard")
    base = config.model("fcrn")
    solver = dataclasses.replace(base.solver, batch=8, max_iter=30, test_interval=30,
                                 snapshot=30, stepvalues=(), average_after=0)
    fcrn = dataclasses.replace(base, widths=(8, 16, 32, 64), solver=solver)
    manifests = prepare.prepare(ds, model=fcrn)
    ids = prepare.split(ds)
    train_images = [s.image for s in prepare.load(ds, ids["train"])]
    ref = np.round(stain.reinhard_reference(train_images), 4)
    assert manifests["train"]["stain_ref"] == manifests["val"]["stain_ref"] == ref.ravel().tolist()
    # the validation crops carry the target's colours, not the images' own
    val = [p for _, p, _ in lmdbio.read_lmdb(config.density_lmdbs(ds, "val")[0])]
    val_stats = stain.lab_stats(np.concatenate([v.reshape(-1, 1, 3) for v in val]))
    own = stain.lab_stats(np.concatenate([s.image.reshape(-1, 1, 3)
                                          for s in prepare.load(ds, ids["val"])]))
    assert np.abs(val_stats[0] - ref[0]).max() < np.abs(own[0] - ref[0]).max()
    trainer.Trainer(ds, fcrn, max_iter=30).train(resume=False)
    run = config.run_dir(ds, fcrn)
    moved = tmp_path / "moved-run"
    shutil.copytree(run, moved)
    predictor = make_predictor("caffe", moved)
    assert isinstance(predictor, StainNormalised)
    np.testing.assert_allclose(np.asarray(predictor.ref).reshape(2, 3), ref)
    image = prepare.load(ds, ids["test"][:1])[0].image
    # another scanner: brighter, redder, less blue, more contrast
    other = stain.lab_stats(image) + np.array([[6.0, 4.0, -4.0], [0.0, 0.0, 0.0]])
    other[1] *= 1.2
    recoloured = stain.reinhard(image, other)
    inner = predictor.inner
    raw_gap = abs(inner.count_image(recoloured).count - inner.count_image(image).count)
    gap = abs(predictor.count_image(recoloured).count - predictor.count_image(image).count)
    # (measured: 208 cells apart without the normalisation, 0.7 with it, of 139)
    assert gap < 0.1 * raw_gap
    # evaluating the run without STAIN= is refused with the fix
    plain = dataclasses.replace(ds, stain_norm="", stain_ref=())
    with pytest.raises(RunError, match="STAIN=reinhard"):
        evaluate(plain, fcrn, run=run)


def test_stain_normalising_grey_or_unstained_images_is_refused_with_the_fix():
    from pycount.data.readers import Sample
    from pycount.errors import DatasetError
    ds = config.with_overrides(config.dataset("nuclei"), stain_norm="macenko")
    grey = Sample(id="1", image=np.full((32, 32), 90, np.uint8), centres=np.zeros((0, 2)),
                  source="1.png")
    glass = dataclasses.replace(grey, image=np.full((32, 32, 3), 250, np.uint8))
    for sample in (grey, glass):
        with pytest.raises(DatasetError, match="STAIN=macenko cannot normalise .*drop STAIN="):
            prepare.stain_normalised(ds, {"train": [sample], "val": [], "test": []})


def test_an_own_folders_small_images_are_normalised_before_they_are_padded(workdirs, tmp_path):
    """Images smaller than a patch were padded before prepare normalised them, so the padding
    entered the stain target and each small image's statistics, and was recoloured, while
    counting normalises an image and then pads it: the same image read two ways (helper-53).
    The target is the unpadded training images', and make eval counts a small test image as
    `pycount count` does."""
    pytest.importorskip("caffe", reason="run `make setup` to build Caffe")
    import csv

    import cv2
    from pycount import cli
    folder = tmp_path / "he"
    folder.mkdir()
    (folder / "pycount.toml").write_text("patch = 40\nstride = 20\nrot_step = 90\n")

    def write(name, side, seed):
        rgb = _he_like(seed, side)
        cv2.imwrite(str(folder / f"{name}.png"), rgb[..., ::-1])
        marks = np.random.default_rng(seed).uniform(2, side - 2, (side // 6, 2))
        (folder / f"{name}.csv").write_text("x,y\n" + "".join(f"{x:.1f},{y:.1f}\n"
                                                              for x, y in marks))
    names = [f"i{i:02d}" for i in range(12)]
    for i, name in enumerate(names):
        write(name, 96, i)
    ds = config.dataset(str(folder))
    ids = prepare.split(ds)
    small = (ids["train"][0], ids["test"][0])
    for name in small:                       # smaller than the 40 px patch
        write(name, 30, names.index(name))
    args = ["--dataset", str(folder), "--model", "alexnet-lite", "--stain-norm", "reinhard"]
    assert cli.main(["prepare", *args]) == 0
    from pycount.data import owndata
    ds = owndata.resolve(config.with_overrides(config.dataset(str(folder)),
                                               stain_norm="reinhard"), say=lambda _: None)
    manifest = lmdbio.read_manifest(config.lmdb_dir(ds) / "train_lmdb")
    unpadded = [s.image for s in prepare.load(ds, ids["train"])]
    assert min(min(im.shape[:2]) for im in unpadded) == 30
    np.testing.assert_allclose(manifest["stain_ref"],
                               np.round(stain.target("reinhard", unpadded), 4).ravel())
    assert cli.main(["train", *args, "--iters", "2"]) == 0
    assert cli.main(["eval", *args]) == 0
    run = config.run_dir(ds, config.model("alexnet-lite"))
    evaluated = {r["id"]: float(r["predicted"]) for r in csv.DictReader(
        open(run / "predictions.csv"))}
    out = tmp_path / "counted"
    assert cli.main(["count", str(folder / f"{small[1]}.png"), "--run", str(run),
                     "--out", str(out)]) in (0, 1)
    (row,) = csv.DictReader(open(out / "counts.csv"))
    assert float(row["count"]) == pytest.approx(evaluated[small[1]], abs=2e-3)
