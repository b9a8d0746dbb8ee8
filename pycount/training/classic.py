"""Training one of Table 4's classic methods (pycount.classic) on a dataset's training images:
no LMDB, no solver; the fitted model goes to <run>/model.npz with a train.json like a CNN run's."""
from __future__ import annotations

import json
import time
from pathlib import Path

from pycount import config
from pycount.data import prepare
from pycount.inference.classic import estimator_class
from pycount.training.trainer import clear_run
from pycount.util import atomic, provenance


def train_classic(ds: config.DatasetConfig, model: config.ModelConfig, data_root=None,
                  run: Path | None = None) -> dict:
    """Fit on the training images (with TRAIN_N, exactly the N drawn; else all of them, the
    CNNs' validation images included: these methods choose their settings by cross-validation
    inside the training set); always from scratch, in minutes."""
    run = Path(run or config.run_dir(ds, model))
    ids, parts = prepare.load_split(ds, data_root)
    train = parts["train"] if ds.train_n else parts["train"] + parts["val"]
    settings = config.classic_settings(model, ds)
    print(f"fitting {model.name} on {len(train)} {ds.tag} images"
          + (f" ({settings})" if settings else ""), flush=True)
    clear_run(run)
    run.mkdir(parents=True, exist_ok=True)
    if ds.own:                  # what `pycount count --run` reads of an own folder's settings
        from pycount.data import owndata
        owndata.record_in_run(run, ds)
    start = time.monotonic()
    code = provenance.commit()               # the code that fits, not the tree at the end
    estimator = estimator_class(model).fit([s.image for s in train], [s.centres for s in train],
                                           **settings)
    seconds = time.monotonic() - start
    estimator.save(run / "model.npz")
    summary = {"dataset": ds.name, "model": model.name, "head": "R", "iterations": 0,
               "best_iter": -1, "best_val_patch_mae": None, "seconds": round(seconds, 1),
               "seconds_this_session": round(seconds, 1), "init": "fit",
               "dataset_tag": ds.tag, "patch": ds.patch, "stride": ds.stride, "size": ds.size,
               "rot_step": ds.rot_step, "train_n": ds.train_n, "seed": ds.seed,
               "train_images": sorted(s.id for s in train), "settings": settings,
               "fit": getattr(estimator, "info", {}), "commit": code}
    atomic.write_text(run / "train.json", json.dumps(summary, indent=1, default=str))
    return summary
