"""The validation that picks a training's kept weights: the held-out images' patches (patch
regressors) or crops and their true counts (density models) read from their LMDBs, and the counts
a loaded pycaffe deploy net predicts for them."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pycount import config
from pycount.data import lmdbio
from pycount.errors import TrainError
from pycount.inference.engines import CaffeBackend
from pycount.nets import builders as nets


def load_val_patches(path: Path, limit: int = config.VAL_PATCH_LIMIT) -> tuple[np.ndarray, np.ndarray]:
    """The validation LMDB as arrays (RGB patches N x p x p x 3, counts N), at most `limit`."""
    images, labels = [], []
    for _, rgb, label in lmdbio.read_lmdb(path, limit=limit):
        images.append(rgb)
        labels.append(label)
    if not images:
        raise TrainError(f"{path}: the validation LMDB is empty; re-run `make prepare`")
    return np.stack(images), np.asarray(labels, np.float64)


def load_val_crops(images: Path, targets: Path, limit: int = config.VAL_CROP_LIMIT) -> tuple[np.ndarray, np.ndarray]:
    """A density model's validation crops (RGB, N x c x c x 3) and their true counts (the sums of
    their targets), at most `limit`."""
    rgb = [p for _, p, _ in lmdbio.read_lmdb(images, limit=limit)]
    sums = [float(d.sum()) for _, d in lmdbio.read_lmdb(targets, limit=limit,
                                                        decode=lmdbio.decode_float_datum)]
    if not rgb or len(rgb) != len(sums):
        raise TrainError(f"{images}: the validation crops are missing or do not match "
                         f"{targets}; re-run `make prepare`")
    return np.stack(rgb), np.asarray(sums, np.float64)


def predict_density_sums(net, rgb: np.ndarray, model: config.ModelConfig,
                         ds: config.DatasetConfig, batch: int = 32) -> np.ndarray:
    """The sums of the density a loaded pycaffe deploy net predicts for RGB crops (over their
    central part when the model sees context around what it is trained on)."""
    forward = CaffeBackend.from_net(net, model, ds, "R", batch)._forward
    m = model.context
    sums = []
    for i in range(0, len(rgb), batch):
        out = np.asarray(forward(nets.preprocess(rgb[i:i + batch], model, ds)))
        if m:
            out = out[..., m:out.shape[-2] - m, m:out.shape[-1] - m]
        sums.append(out.reshape(len(out), -1).sum(axis=1))
    return np.concatenate(sums).astype(np.float64)


def predict_patches(net, rgb: np.ndarray, model: config.ModelConfig, ds: config.DatasetConfig,
                    head: str, batch: int = 256) -> np.ndarray:
    """Counts predicted by a loaded pycaffe deploy net for RGB patches (N x s x s x 3)."""
    return CaffeBackend.from_net(net, model, ds, head, batch)(rgb)
