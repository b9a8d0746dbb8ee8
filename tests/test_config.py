"""pycount.config's functions: the settings given over a dataset's (with_overrides) and their
checks, the tags that name LMDB and run folders, a folder's pycount.toml, the schedules and the
names of runs."""
import dataclasses
import json

import pytest

from pycount import config
from pycount.config import ConfigError, with_overrides

NUCLEI = config.dataset("nuclei")


def _own(**changes):
    """An own folder resolved to patch 40, stride 20, ROT 90, sigma 3, crops 64/64, scale 2,
    marker "Type 2", stain jitter 0.05 and no zoom (its defaults)."""
    own = dict(patch=40, stride=20, rot_step=90, sigma=3.0, crop=64, crop_stride=64, scale=2.0,
               marker="Type 2", hed_jitter=0.05, zoom=0.0)
    ds = dataclasses.replace(NUCLEI, name="cells", layout="folder", subdir="/data/cells",
                             defaults=tuple(own.values()), **own)
    return dataclasses.replace(ds, **changes)


def test_every_setting_off_a_named_sets_default_is_in_its_tag():
    ds = with_overrides(NUCLEI, patch=64, stride=32, rot_step=90, size=224, sigma=1.5, crop=128,
                        crop_stride=64, scale=0.5, hed_jitter=0.05, zoom=0.25,
                        stain_norm="macenko", train_n=32, seed=2, resplit=3)
    assert ds.tag == ("nuclei-p64-s32-r90-224px-sigma1.5-crop128-s64-x0.5-hed0.05-zoom0.25-"
                      "macenko-n32-seed2-split3")
    assert NUCLEI.tag == "nuclei" and NUCLEI.variant == ""
    assert with_overrides(NUCLEI, rot_step=0).tag == "nuclei-p60-s30-r0"
    assert with_overrides(NUCLEI, crop_stride=48).tag == "nuclei-crop96-s48"
    # the C head's classes grow with the patch's area
    assert ds.max_patch_count == 69


def test_a_named_set_normalised_by_default_is_tagged_when_its_stain_is_turned_off(monkeypatch):
    monkeypatch.setitem(config.DATASETS, "nuclei",
                        dataclasses.replace(NUCLEI, stain_norm="macenko"))
    assert with_overrides(config.dataset("nuclei"), stain_norm="none").tag == "nuclei-nostain"


def test_an_own_folders_tag_says_each_setting_off_its_own_defaults():
    assert _own().tag == "cells"
    assert _own(scale=1.0, hed_jitter=0.0, zoom=0.25).tag == "cells-x1-hed0-zoom0.25"
    assert _own(marker="").tag == "cells-marker-all"
    assert _own(marker="Type 3/b").tag == "cells-marker-Type_203_2fb"
    assert _own(stain_norm="").tag == "cells"
    # a run of before 2026-12-06 kept 8 defaults: no stain jitter or zoom among them
    old = _own(defaults=_own().defaults[:8])
    assert old.tag == "cells-hed0.05"
    assert _own(defaults=old.defaults, marker="", hed_jitter=0.0).tag == "cells-marker-all"


@pytest.mark.parametrize("ds, given, message", [
    (NUCLEI, dict(crop=0), "CROP=0 is not valid: the density nets pool three times"),
    (NUCLEI, dict(sigma=float("nan")), "SIGMA=nan is not valid: give a finite width"),
    (NUCLEI, dict(hed_jitter=1.0), "HED=1.0 is not valid: use a strength in [0, 1)"),
    (NUCLEI, dict(zoom=0.01), "ZOOM=0.01 is not valid: use a range from 0.05 to 1"),
    (NUCLEI, dict(rot_step=360), "ROT=360 is not valid: use a rotation step in degrees from 1 "
                                 "to 359"),
    (NUCLEI, dict(resplit=-1), "RESPLIT=-1 is not valid: use a whole number, 0 or more"),
    (NUCLEI, dict(stride=0), "STRIDE=0 is not valid: use a positive number of pixels"),
    (NUCLEI, dict(size=1025), "SIZE=1025 is not valid: resize patches to at most 1024 px"),
    (NUCLEI, dict(patch=7, stride=4), "PATCH=7 is not valid: a patch needs at least 8 px"),
    (NUCLEI, dict(stride=61), "STRIDE=61 is larger than nuclei's patch of 60 px"),
    (NUCLEI, dict(sigma=24.5), "SIGMA=24.5 is too wide for nuclei's crop of 96 px"),
    (NUCLEI, dict(sigma=0.6, zoom=0.25), "ZOOM=0.25 narrows the sigma of 0.6 px to 0.48 px"),
    (NUCLEI, dict(train_n=51), "TRAIN_N=51: nuclei has only 50 training images"),
    (NUCLEI, dict(marker="2"), "MARKER=2: nuclei has no marker types to choose from"),
    (config.dataset("ki67"), dict(resplit=1), "RESPLIT=1: ki67 has no recorded split"),
    (dataclasses.replace(NUCLEI, rot_step=0), dict(zoom=0.25),
     "ZOOM=0.25 augments the mirrored and rotated training crops, and with rot_step = 0 in"),
])
def test_settings_out_of_range_are_refused_naming_the_setting_and_the_fix(ds, given, message):
    with pytest.raises(ConfigError) as e:
        with_overrides(ds, **given)
    assert message in str(e.value)


def test_settings_at_the_edges_of_their_ranges_are_taken():
    ds = with_overrides(NUCLEI, scale=config.SCALE_LIMITS[0], sigma=config.SIGMA_MIN, zoom=0,
                        rot_step=359, patch=8, stride=8, train_n=50)
    assert (ds.scale, ds.sigma, ds.zoom, ds.rot_step, ds.patch, ds.stride, ds.train_n) == (
        0.1, 0.5, 0.0, 359, 8, 8, 50)
    assert with_overrides(NUCLEI, sigma=24.0).sigma == 24.0          # a quarter of the crop
    # an own folder's windows are checked once inferred (owndata), not here
    assert with_overrides(_own(), patch=2000).patch == 2000


def test_marker_and_stain_words():
    assert with_overrides(_own(), marker=" ALL ").marker == ""
    assert with_overrides(_own(), marker=" Type 3 ").marker == "Type 3"
    normed = dataclasses.replace(NUCLEI, stain_norm="macenko", stain_ref=(1.0, 2.0))
    assert with_overrides(normed, stain_norm="none").stain_norm == ""
    # another method's reference is measured again, not carried over
    assert with_overrides(normed, stain_norm="reinhard").stain_ref == ()
    assert with_overrides(normed, stain_norm="macenko").stain_ref == (1.0, 2.0)


def test_the_learning_rate_of_each_policy():
    poly = config.SolverConfig(base_lr=1.0, batch=1, max_iter=100, lr_policy="poly", power=2.0)
    assert poly.lr_at(50, 100) == pytest.approx(0.25)
    multi = config.SolverConfig(base_lr=1.0, batch=1, max_iter=100, lr_policy="multistep",
                                stepvalues=(10, 20))
    assert [multi.lr_at(i, 100) for i in (9, 10, 20)] == pytest.approx([1.0, 0.1, 0.01])
    step = config.SolverConfig(base_lr=1.0, batch=1, max_iter=90)     # a step at two thirds
    assert [step.lr_at(i, 90) for i in (30, 59, 60)] == pytest.approx([1.0, 1.0, 0.1])


def test_a_recorded_own_folder_that_is_gone_or_empty(workdirs, tmp_path):
    record = config.own_record("gone")
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({"folder": str(tmp_path / "moved")}))
    with pytest.raises(ConfigError, match=r"'gone' is the own folder .*moved, as .*gone\.json "
                                          r"records, and that folder no longer exists"):
        config.dataset("gone")
    record.write_text(json.dumps({"folder": ""}))
    with pytest.raises(ConfigError, match=r"unknown dataset 'gone'; valid: bacterial"):
        config.dataset("gone")


def test_a_folder_named_as_a_named_set_is_told_apart(tmp_path):
    (tmp_path / "nuclei").mkdir()
    assert config.folder_dataset(tmp_path / "nuclei").name == "nuclei-own"


def test_schedules_run_names_and_folders(workdirs):
    fcrn = config.model("fcrn", NUCLEI)
    assert config.schedule(fcrn, NUCLEI) == 8000
    assert config.schedule(fcrn, dataclasses.replace(NUCLEI, iters=300)) == 300
    assert config.schedule(config.model("lecount"), NUCLEI) is None
    assert config.run_name(fcrn) == "fcrn" and config.run_name("fcrn", "C") == "fcrn-C"
    assert config.run_dir(NUCLEI, fcrn, "C") == workdirs / "runs" / "nuclei" / "fcrn-C"
    assert config.density_lmdbs(NUCLEI, "val", 16) == (
        workdirs / "data" / "lmdb" / "nuclei" / "density-ctx16" / "val_lmdb",
        workdirs / "data" / "lmdb" / "nuclei" / "density-ctx16" / "val_targets_lmdb")
    assert config.density_lmdbs(NUCLEI, "train")[0] == \
        workdirs / "data" / "lmdb" / "nuclei" / "density" / "train_lmdb"
    assert config.check_names("nuclei", "fcrn", "C") is None
    assert config.check_names(head="X") == "make: unknown head 'X'; valid: R, C (set HEAD=...)"


@pytest.mark.parametrize("text, message", [
    ("zoom = 0.25\nrot_step = 0\n", "zoom = 0.25 augments the mirrored and rotated training "
                                    "crops, and rot_step = 0"),
    ("crop = 60\n", "crop = 60 must be a multiple of 8"),
    ("patch = 0\n", "patch = 0 is not valid (patch side, px (patch models)): remove that line"),
    ("sigma = -1.0\n", "sigma = -1.0 is not valid; expected a finite, non-negative float"),
    ("patch = 40\nsigma = 2.0\npatch = 50\n", "patch is set twice (lines 1 and 3); keep one"),
])
def test_a_bad_pycount_toml_is_refused_naming_the_file_and_the_line(tmp_path, text, message):
    (tmp_path / config.SPEC_FILE).write_text(text)
    with pytest.raises(ConfigError) as e:
        config.read_spec(tmp_path)
    assert str(e.value).startswith(f"{tmp_path / config.SPEC_FILE}: {message}")


def test_a_dataset_written_to_json_reads_back_the_same():
    ds = dataclasses.replace(_own(), image_dtypes=("uint16",), depth_range=(0.0, 4.0),
                             stain_ref=(0.5,))
    assert config.dataset_from_json(config.dataset_to_json(ds)) == ds
