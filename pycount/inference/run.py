"""A trained run folder as counting sees it: the deploy net, the weights, and the settings the
run was trained with (train.json), so `pycount count --run DIR` needs nothing else."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pycount import config
from pycount.errors import RunError


@dataclass(frozen=True)
class Run:
    """What counting needs from a run folder."""
    path: Path
    deploy: Path
    weights: Path
    model: config.ModelConfig
    ds: config.DatasetConfig      # with the run's patch, stride and SIZE
    head: str


def load_run(path) -> Run:
    """Read a run folder written by `make train` (train.json, deploy.prototxt, model.caffemodel)."""
    path = Path(path)
    info_file, deploy = path / "train.json", path / "deploy.prototxt"
    weights = path / "model.caffemodel"
    for f in (info_file, deploy, weights):
        if not f.is_file():
            raise RunError(f"{f} is missing: {path} is not a trained run folder; train a model "
                           f"first (make train DATASET=... MODEL=...)")
    try:
        info = json.loads(info_file.read_text())
        dataset, model, head = info["dataset"], info["model"], info.get("head", "R")
    except (ValueError, KeyError, TypeError) as e:
        raise RunError(f"{info_file} is incomplete or corrupt ({e!r}); re-run make train") from None
    # Runs written before train.json recorded the patch settings used the dataset's defaults.
    ds = config.with_overrides(config.dataset(dataset), info.get("patch"), info.get("stride"),
                               info.get("rot_step"), info.get("size"), info.get("train_n"),
                               info.get("seed"), info.get("sigma"))
    return Run(path, deploy, weights, config.model(model, ds), ds, head)
