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
def dead_pid() -> str:
    """The process id of a process that has ended, as a writer killed outright leaves in the
    names of its temporaries."""
    import subprocess
    return subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()


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


@pytest.fixture
def train_to(monkeypatch):
    """train_to(ds, model, iters, stop=None): train from scratch to `iters`, or stop at `stop`
    (as Ctrl-C does, after the chunk that reaches it) and resume to `iters`; the weights of the
    snapshot at `iters`, {layer: [arrays]}. Log chunks of 5 iterations."""
    import json

    import numpy as np
    from caffe.proto import caffe_pb2

    from pycount import config
    from pycount.training import trainer as train
    monkeypatch.setattr(config, "DISPLAY_INTERVAL", 5)
    step = train._Session.step

    def stop_at(n):
        def stopping(self, k):
            step(self, k)
            if self.solver.iter >= n:
                raise KeyboardInterrupt
        return stopping

    def run(ds, model, iters, stop=None):
        folder = config.run_dir(ds, model)
        if stop is not None:
            monkeypatch.setattr(train._Session, "step", stop_at(stop))
            with pytest.raises(KeyboardInterrupt):
                train.Trainer(ds, model, max_iter=iters).train(resume=False)
            assert json.loads((folder / "snapshots" / "latest.json").read_text())["iter"] == stop
            monkeypatch.setattr(train._Session, "step", step)
        train.Trainer(ds, model, max_iter=iters).train(resume=stop is not None)
        net = caffe_pb2.NetParameter()
        net.ParseFromString((folder / "snapshots" / f"snap_iter_{iters}.caffemodel").read_bytes())
        return {layer.name: [np.array(b.data) for b in layer.blobs]
                for layer in net.layer if layer.blobs}
    return run
