"""`make prepare`: a dataset's training images -> patches with exact counts -> train/val LMDBs.

The split is the one in pycount.config; a few training *images* (not patches) are held out, by a
seeded draw, to monitor training. Training patches are rotated in the dataset's rotation step;
validation patches are not (they are what the net sees at test time).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from . import config, datasets, lmdbio, patches
from .progress import Progress

SPLIT_SEED = 2016


def dataset_root(ds: config.DatasetConfig, data_root: str | Path | None = None) -> Path:
    """Where the dataset's files are; the synthetic set is generated there on first use."""
    if ds.name == "synthetic":
        root = config.data_dir() / "synthetic"
        bar = None

        def progress(i, n):          # a bar only when images are actually generated
            nonlocal bar
            bar = bar or Progress(n, "generating synthetic images", "images")
            bar.update(1)
        datasets.generate_synthetic(root, n_images=config.SYNTHETIC_IMAGES,
                                    seed=config.SYNTHETIC_SEED, progress=progress)
        if bar:
            bar.__exit__()
        return root
    return Path(data_root or config.data_dir()) / ds.subdir


def load(ds: config.DatasetConfig, ids, data_root=None) -> list[datasets.Sample]:
    root = dataset_root(ds, data_root)
    if ds.layout == "vgg_cells":
        return datasets.read_vgg_cells(root, ids)
    raise config.ConfigError(f"no reader for layout {ds.layout!r}")


def split(ds: config.DatasetConfig) -> dict[str, list[str]]:
    """train / val / test image ids: val is a seeded draw of n_val training images."""
    rng = np.random.default_rng(SPLIT_SEED)
    val = sorted(rng.choice(list(ds.train_ids), size=ds.n_val, replace=False).tolist())
    return {"train": [i for i in ds.train_ids if i not in val], "val": val,
            "test": list(ds.test_ids)}


def content_hash(samples: list[datasets.Sample]) -> dict[str, str]:
    """Per image, a sha256 of its pixels and annotation: the LMDB's source fingerprint."""
    out = {}
    for s in samples:
        h = hashlib.sha256(np.ascontiguousarray(s.image).tobytes())
        h.update(np.ascontiguousarray(s.centres, np.float64).tobytes())
        out[s.id] = h.hexdigest()[:16]
    return out


def _records(samples, patch, stride, rot_step):
    for s in samples:
        for pixels, count, _, _ in patches.training_patches(s.image, s.centres, patch, stride,
                                                            rot_step):
            yield np.ascontiguousarray(pixels), count


def prepare(ds: config.DatasetConfig, data_root=None, force: bool = False) -> dict[str, dict]:
    """Write (or reuse) data/lmdb/<dataset>/{train,val}_lmdb; returns their manifests."""
    ids = split(ds)
    out = {}
    for part, rot_step in (("train", ds.rot_step), ("val", 0)):
        samples = load(ds, ids[part], data_root)
        settings = {"dataset": ds.name, "part": part, "patch": ds.patch, "stride": ds.stride,
                    "rot_step": rot_step, "images": ids[part], "sources": content_hash(samples),
                    "generator": datasets.GENERATOR_VERSION if ds.name == "synthetic" else None}
        fp = lmdbio.fingerprint(settings)
        dest = config.lmdb_dir(ds) / f"{part}_lmdb"
        if not force and lmdbio.is_current(dest, fp):
            print(f"{dest}: up to date ({lmdbio.read_manifest(dest)['records']} patches), reused")
            out[part] = lmdbio.read_manifest(dest)
            continue
        n_max = sum(patches.count_training_patches(s.image.shape[0], s.image.shape[1], ds.patch,
                                                   ds.stride, rot_step) for s in samples)
        manifest = dict(settings, fingerprint=fp, pycount_version=_version(),
                        split={k: v for k, v in ids.items()})
        out[part] = lmdbio.write_lmdb(dest, _records(samples, ds.patch, ds.stride, rot_step),
                                      n_max=n_max, patch=ds.patch, seed=SPLIT_SEED, manifest=manifest,
                                      label=f"{ds.name} {part} patches")
        measured = np.array(out[part]["mean_bgr"])
        if np.abs(measured - np.array(ds.mean_bgr)).max() > 25:
            print(f"warning: mean BGR of these patches {measured.round(1).tolist()} is far from "
                  f"the nets' fixed mean {list(ds.mean_bgr)} (pycount/config.py)")
    return out


def _version() -> str:
    from . import __version__
    return __version__
