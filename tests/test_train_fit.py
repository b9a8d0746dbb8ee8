"""bench.train_fit: a run counting the images it learned from."""
import numpy as np
import pytest

from bench import train_fit
from pycount import config
from pycount.data import prepare
from pycount.training import trainer as train


def test_summary_of_per_image_errors():
    s = train_fit.summary(np.array([-2.0, 4.0, 0.0]), np.array([10.0, 20.0, 0.0]))
    assert s == {"MAE": 2.0, "std": pytest.approx(round(float(np.std([2, 4, 0])), 2)),
                 "MRE": pytest.approx(round((0.2 + 0.2 + 0.0) / 3, 4)), "mean signed": 0.67}


def test_a_run_counts_its_own_training_and_monitor_images(tiny, monkeypatch):
    ds, model = tiny
    monkeypatch.setitem(config.DATASETS, "synthetic", ds)
    prepare.prepare(ds)
    train.Trainer(ds, model, max_iter=20).train(resume=False)
    run = config.run_dir(ds, model)
    out = train_fit.fit(run, None, "cv2")
    ids = prepare.split(ds)
    assert [r["id"] for r in out["images"]["train"]] == ids["train"]
    assert [r["id"] for r in out["images"]["val"]] == ids["val"]
    for part in ("train", "val"):
        rows = out["images"][part]
        err = np.array([r["predicted"] - r["true"] for r in rows])
        assert out[part]["MAE"] == pytest.approx(np.abs(err).mean(), abs=0.01)
        assert all(r["true"] == len(s.centres) for r, s in
                   zip(rows, prepare.load(ds, ids[part], side=None)))
    assert out["test"] == {"MAE": None}                 # not evaluated yet
