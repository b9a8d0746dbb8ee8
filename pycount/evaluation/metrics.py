"""The paper's metrics (section 3.3): mean relative error and mean absolute error with its std."""
from __future__ import annotations

import numpy as np


def mae(true, pred) -> float:
    """MAE = (1/N) sum |t_i - p_i|."""
    return float(np.mean(np.abs(np.asarray(true, float) - np.asarray(pred, float))))


def mae_std(true, pred) -> float:
    """The '±std' of the paper's tables: the (population) std of the absolute errors."""
    return float(np.std(np.abs(np.asarray(true, float) - np.asarray(pred, float))))


def mre(true, pred) -> float:
    """MRE = (1/N) sum |t_i - p_i| / t_i over the N images that hold cells: a relative error is
    undefined for an image without any (a lab's negative control), which the MAE still counts.
    A ValueError when no image holds a cell."""
    t = np.asarray(true, float)
    some = t > 0
    if not some.any():
        raise ValueError("MRE is undefined: no image holds a cell")
    return float(np.mean(np.abs(t[some] - np.asarray(pred, float)[some]) / t[some]))


def summarize(true, pred, train_mean: float) -> dict:
    """Every number a run reports; `baseline_*` are those of always predicting the mean
    training count, the bar any model must clear. `mre_images`, only where some image holds no
    cell: how many images the MREs are over."""
    true = np.asarray(true, float)
    base = np.full_like(true, train_mean)
    out = {"n_images": int(len(true)), "mae": mae(true, pred), "mae_std": mae_std(true, pred),
           "mre": mre(true, pred), "baseline_mae": mae(true, base),
           "baseline_mae_std": mae_std(true, base), "baseline_mre": mre(true, base),
           "train_mean_count": float(train_mean)}
    if (true <= 0).any():
        out["mre_images"] = int((true > 0).sum())
    return out


def partial(m: dict) -> bool:
    """Whether metrics (a metrics.json's object) are of a partial evaluation (TEST_IMAGES=):
    fewer test images counted than the split holds. Such metrics are no result."""
    n, of = m.get("n_images"), m.get("test_images_of")
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (n, of)) \
        and of > n
