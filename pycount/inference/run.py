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
    deploy: Path                  # deploy.prototxt (a classic model: its model.npz, as weights)
    weights: Path
    model: config.ModelConfig
    ds: config.DatasetConfig      # with the run's patch, stride and SIZE
    head: str


def load_run(path) -> Run:
    """Read a run folder written by `make train`: train.json, and deploy.prototxt +
    model.caffemodel (a CNN) or model.npz (a classic method)."""
    path = Path(path)
    info_file = path / "train.json"
    if not info_file.is_file():
        raise _missing(info_file, path)
    try:
        info = json.loads(info_file.read_text())
        dataset, model, head = info["dataset"], info["model"], info.get("head", "R")
    except (ValueError, KeyError, TypeError) as e:
        raise RunError(f"{info_file} is incomplete or corrupt ({e!r}); re-run make train") from None
    # Runs written before train.json recorded the patch settings used the dataset's defaults.
    # (an own folder's settings: the run's dataset.json, so the folder need not exist any more)
    ds = config.with_overrides(config.run_dataset(path, dataset),
                               **{k: info.get(k) for k in config.OVERRIDES})
    m = config.model(model, ds)
    files = finished_files(path, m, info)
    return Run(path, files[0], files[-1], m, ds, head)


def finished_files(path: Path, model: config.ModelConfig, info: dict | None = None) -> list[Path]:
    """The files counting needs from a run folder whose training finished (config.run_files);
    RunError names what is missing, or says the training was interrupted (train.json `info`)."""
    if info and info.get("interrupted"):
        raise RunError(f"{path}: its training was interrupted at iteration {info.get('iterations')}"
                       f"; finish it first (make train resumes it)")
    files = [Path(path) / f for f in config.run_files(model)]
    for f in files:
        if not f.is_file():
            raise _missing(f, Path(path))
    return files


def _missing(f: Path, run: Path) -> RunError:
    return RunError(f"{f} is missing: {run} is not a trained run folder; train a model first "
                    f"(make train DATASET=... MODEL=...)")
