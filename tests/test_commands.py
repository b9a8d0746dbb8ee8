"""The Make words that name a dataset again in a hint (pycount.data.commands.dataset_words)."""
import dataclasses

from pycount import config
from pycount.data.commands import dataset_words


def test_a_named_set_is_named_with_each_setting_off_its_default_and_the_subset_last():
    nuclei = config.dataset("nuclei")
    assert dataset_words(nuclei) == "DATASET=nuclei"
    ds = dataclasses.replace(nuclei, resplit=3, seed=2, train_n=32, sigma=4.0, hed_jitter=0.05,
                             stain_norm="macenko", rot_step=0, crop=nuclei.crop)
    assert dataset_words(ds) == ("DATASET=nuclei ROT=0 SIGMA=4 HED=0.05 STAIN=macenko "
                                 "TRAIN_N=32 SEED=2 RESPLIT=3")
    assert dataset_words(dataclasses.replace(nuclei, train_n=50)) == \
        "DATASET=nuclei TRAIN_N=50 SEED=0"
    # a set this pycount no longer names (a run of an older one): its name alone
    assert dataset_words(dataclasses.replace(ds, name="retired")) == \
        "DATASET=retired TRAIN_N=32 SEED=2 RESPLIT=3"


def test_an_own_folder_is_named_by_its_path_with_each_setting_given_beside_its_own():
    keys = ("patch", "stride", "rot_step", "sigma", "crop", "crop_stride", "scale", "marker",
            "hed_jitter", "zoom")
    own = dict(patch=40, stride=20, rot_step=90, sigma=3.0, crop=64, crop_stride=64, scale=1.0,
               marker="Type 2", hed_jitter=0.0, zoom=None)
    base = dataclasses.replace(config.dataset("nuclei"), name="cells", layout="folder",
                               subdir="/data/my cells", stain_norm="", size=0,
                               defaults=tuple(own[k] for k in keys),
                               **{k: v for k, v in own.items() if v is not None})
    assert dataset_words(base) == "'DATASET=/data/my cells'"
    ds = dataclasses.replace(base, marker="", sigma=2.5, zoom=0.25, stain_norm="macenko",
                             size=224, train_n=8, seed=1)
    # the marker turned off is MARKER=all; a zoom beside no default of the folder is no word
    assert dataset_words(ds) == ("'DATASET=/data/my cells' SIGMA=2.5 MARKER=all SIZE=224 "
                                 "STAIN=macenko TRAIN_N=8 SEED=1")
    # a run of before 2026-12-06 kept 8 defaults: a zoom or stain jitter set is said
    old = dataclasses.replace(ds, defaults=ds.defaults[:8], marker="Type 2", sigma=3.0,
                              hed_jitter=0.05, stain_norm="")
    assert dataset_words(old) == ("'DATASET=/data/my cells' SIZE=224 HED=0.05 ZOOM=0.25 "
                                  "TRAIN_N=8 SEED=1")
