import os
import sys
from pathlib import Path

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
