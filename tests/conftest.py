import os
import sys
from pathlib import Path

import dataclasses

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GLOG_minloglevel", "2")
SHARED = ROOT.parent / "shared" / "datasets"


@pytest.fixture
def workdirs(tmp_path, monkeypatch):
    """Data and runs under a temporary folder, never the user's data/ and runs/."""
    monkeypatch.setenv("PYCOUNT_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("PYCOUNT_RUNS", str(tmp_path / "runs"))
    return tmp_path


@pytest.fixture
def tiny(workdirs, monkeypatch):
    """12 synthetic images: 8 train (2 of them held out for validation), 4 test."""
    from pycount import config
    monkeypatch.setattr(config, "SYNTHETIC_IMAGES", 12)
    ids = [f"{i:03d}" for i in range(1, 13)]
    ds = dataclasses.replace(config.dataset("synthetic"), train_ids=tuple(ids[:8]),
                             test_ids=tuple(ids[8:]), n_val=2, rot_step=90)
    lite = config.model("alexnet-lite")
    solver = dataclasses.replace(lite.solver, max_iter=60, test_interval=30, snapshot=30)
    model = dataclasses.replace(lite, fc=64, solver=solver)
    return ds, model
