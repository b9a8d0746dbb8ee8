"""Training one of Table 4's classic methods (pycount.classic) on a dataset's training images:
no LMDB, no solver; the fitted model goes to <run>/model.npz with a train.json like a CNN run's."""
from __future__ import annotations

import json
import time
from pathlib import Path

from pycount import config
from pycount.data import prepare
from pycount.errors import DatasetError
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
    if ds.own and "channel" not in settings:
        settings["channel"] = own_channel([s.image for s in train])
    print(f"fitting {model.name} on {len(train)} {ds.tag} images"
          + (f" ({settings})" if settings else ""), flush=True)
    clear_run(run)
    start = time.monotonic()
    code = provenance.commit()               # the code that fits, not the tree at the end
    try:
        estimator = estimator_class(model).fit([s.image for s in train],
                                               [s.centres for s in train], **settings)
    except ValueError as e:     # nothing to learn from in the channel it reads (flat images)
        what = str(e).split(";")[0]
        raise DatasetError(f"{model.name} cannot be fitted on {ds.tag}'s training images: {what} "
                           f"(it reads their {settings.get('channel', 'blue')} channel). Images "
                           f"without texture or contrast there leave it nothing to learn from: "
                           f"check the images, or count with a net (MODEL=fcrn)") from None
    seconds = time.monotonic() - start
    run.mkdir(parents=True, exist_ok=True)
    if ds.own:                  # what `pycount count --run` reads of an own folder's settings
        from pycount.data import owndata
        owndata.record_in_run(run, ds)
    estimator.save(run / "model.npz")
    summary = {"dataset": ds.name, "model": model.name, "head": "R", "iterations": 0,
               "best_iter": -1, "best_val_patch_mae": None, "seconds": round(seconds, 1),
               "seconds_this_session": round(seconds, 1), "init": "fit",
               "dataset_tag": ds.tag, "patch": ds.patch, "stride": ds.stride, "size": ds.size,
               "rot_step": ds.rot_step, "train_n": ds.train_n, "seed": ds.seed,
               "train_images": sorted(s.id for s in train), "settings": settings,
               "fit": getattr(estimator, "info", {}), "commit": code,
               "model_sha256": atomic.sha256_of(run / "model.npz")}   # count/eval check it
    atomic.write_text(run / "train.json", json.dumps(summary, indent=1, default=str))
    return summary


def own_channel(images) -> str:
    """The colour channel a classic method reads on an own folder: the one whose values vary most
    over the training images (the stained or fluorescent one; the VGG cells' is blue, the choice
    Lempitsky & Zisserman made by hand); grey images give "gray"."""
    import numpy as np
    spread = np.zeros(3)
    for im in images:
        spread += im.reshape(-1, 3)[::7].astype(np.float64).std(axis=0)
    if np.ptp(spread) <= 1e-6 * max(spread.max(), 1e-12):
        return "gray"
    return ("red", "green", "blue")[int(np.argmax(spread))]
