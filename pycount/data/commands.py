"""The Make words that name a dataset again, with its settings, in a hint: `make prepare ...`
when training finds no LMDB, `make train ...` when counting meets an interrupted run. One rule
for training and inference (both import data)."""

from __future__ import annotations

from pycount import config
from pycount.data import owndata
from pycount.errors import make_arg


# what a setting that is off ("") is called on the command line, where an empty value is no
# setting at all (Make passes nothing, and the dataset's own applies)
OFF_WORDS = {"marker": "all", "stain_norm": "none"}


def _word(key: str, value) -> str:
    var = config.MAKE_VARS[key]
    if value == "" and key in OFF_WORDS:
        value = OFF_WORDS[key]
    return make_arg(var, f"{value:g}" if isinstance(value, float) else value)


def dataset_words(ds: config.DatasetConfig) -> str:
    """"DATASET=nuclei SIGMA=3 ...": an own folder by its path with each setting given beside its
    own (ds.defaults: inferred or from its pycount.toml), a named set with each setting off its
    default; a subset's TRAIN_N and SEED (and a redrawn split's RESPLIT) last."""
    if ds.own:
        keys = owndata.DEFAULT_KEYS[:len(ds.defaults)]   # (runs before 2026-12-06 kept 8)
        given = [k for k, d in zip(keys, ds.defaults) if d is not None and getattr(ds, k) != d]
        given += [k for k in ("size", "hed_jitter", "zoom", "stain_norm")
                  if k not in keys and getattr(ds, k)]
        words = [make_arg("DATASET", ds.subdir)]
    else:
        base = config.DATASETS.get(ds.name)
        given = [] if base is None else [
            k for k in config.MAKE_VARS if k not in ("train_n", "seed", "resplit")
            and getattr(ds, k) != getattr(base, k)]
        words = [f"DATASET={ds.name}"]
    words += [_word(k, getattr(ds, k)) for k in given]
    if ds.train_n:
        words.append(f"TRAIN_N={ds.train_n} SEED={ds.seed}")
    if ds.resplit:
        words.append(f"RESPLIT={ds.resplit}")
    return " ".join(words)
