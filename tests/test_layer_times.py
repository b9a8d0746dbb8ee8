"""bench.layer_times: a training step split by layer type."""
from pathlib import Path

import pytest

pytest.importorskip("caffe")
from bench.layer_times import layer_times  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def test_a_step_is_split_over_the_layer_types_of_the_net():
    r = layer_times(ROOT / "prototxt" / "bacterial" / "alexnet-lite", iters=1)
    kinds = [k for k, *_ in r["layers"]]
    assert {"Convolution", "ReLU", "Pooling", "InnerProduct", "EuclideanLoss"} <= set(kinds)
    assert "Data" not in kinds and "Input" in kinds
    # sorted by their share of the step, the shares adding up to the whole step (which layer
    # leads is a timing, for the benchmark to report: on a loaded machine one step's
    # InnerProduct outran the convolutions)
    shares = [share for *_, share in r["layers"]]
    assert shares == sorted(shares, reverse=True)
    assert sum(shares) == pytest.approx(1.0, abs=0.05)
    assert r["batch"] == 16 and r["step_s"] > 0
    assert r["img_s"] == pytest.approx(r["batch"] / r["step_s"])


def test_a_folder_without_the_nets_is_one_clear_error(tmp_path):
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-m", "bench.layer_times", str(tmp_path)], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"{tmp_path} has no train_val.prototxt or deploy.prototxt" in r.stderr
