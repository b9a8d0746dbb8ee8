"""Counting with one of Table 4's classic methods (pycount.classic): the same `count_image` as
the CNN predictors, so evaluation, `pycount count` and the audit treat them alike."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pycount import config
from pycount.errors import RunError
from pycount.inference import density


def estimator_class(model: config.ModelConfig):
    from pycount.classic import LeCount, LeDetect
    return {"lecount": LeCount, "ledetect": LeDetect}[model.family]


class ClassicPredictor:
    """Le.count: its per-pixel density is the heatmap, the count its sum. Le.detect: the count is
    the number of detections, the heatmap one Gaussian of the dataset's sigma per detection."""

    tta = 1

    def __init__(self, weights: Path, model: config.ModelConfig, ds: config.DatasetConfig):
        self.model, self.ds = model, ds
        try:
            self.estimator = estimator_class(model).load(weights)
        except (OSError, ValueError, KeyError) as e:
            raise RunError(f"{weights} cannot be read as a {model.name} model ({e}); train the "
                           f"run again (make train MODEL={model.name} DATASET={ds.name})") from None

    def count_image(self, image: np.ndarray) -> density.ImageCount:
        if self.model.family == "lecount":
            heatmap = np.asarray(self.estimator.density(image), np.float64)
            count = float(heatmap.sum())
        else:
            from pycount.data.density_targets import density_target
            centres = np.asarray(self.estimator.detect(image), np.float64).reshape(-1, 2)
            heatmap = density_target(image.shape[:2], centres, self.ds.sigma)
            count = float(len(centres))
        return density.ImageCount(count=count, tiling_count=count, heatmap=heatmap,
                                  centres=np.zeros((0, 2)), patch_counts=np.zeros(0))
