"""Stain (HED) augmentation of the density crops: an exact colour round trip, bounded changes of
each stain's amount, reproducible LMDBs, and its own run folder."""
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
