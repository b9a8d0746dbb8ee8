"""The CUDA variant of Caffe on a machine without a GPU (what CI is): it was built (`make
cuda-check` builds it and points PYCOUNT_CUDA_BUILD at it), it trains on the CPU, and GPU=0
stops with a message instead of Caffe's abort. The GPU side is bench/gpu_check.py's job, run
where a GPU is (README, "GPU and Docker")."""
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

BUILD = os.environ.get("PYCOUNT_CUDA_BUILD")
pytestmark = pytest.mark.skipif(not BUILD, reason="run through `make cuda-check`, which builds "
                                                  "the CUDA variant and sets PYCOUNT_CUDA_BUILD")
ROOT = Path(__file__).resolve().parent.parent


def run_with_cuda_caffe(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """`code` in a fresh Python whose `caffe` is the CUDA build's pycaffe."""
    script = tmp_path / "with_cuda_caffe.py"
    script.write_text(f"import sys; sys.path.insert(0, {str(ROOT)!r})\n"
                      "import caffe\n"
                      f"assert caffe.__file__.startswith({BUILD!r}), caffe.__file__\n" + code)
    env = dict(os.environ, PYTHONPATH=str(Path(BUILD) / "src" / "python"))
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env,
                          timeout=600)


def test_build_links_cuda_and_has_the_tool():
    libs = subprocess.run(["ldd", str(Path(BUILD) / "src" / "build" / "lib" / "_caffe.so")],
                          capture_output=True, text=True).stdout
    assert "libcudart" in libs and "libcublas" in libs
    assert os.access(Path(BUILD) / "src" / "caffe-tool", os.X_OK)


def test_gpu_request_without_a_gpu_says_why_and_exits(tmp_path):
    p = run_with_cuda_caffe(
        "from pycount import device, errors\n"
        "try:\n    device.set_device(0)\n"
        "except errors.TrainError as e:\n    print('refused:', e); sys.exit(3)\n"
        "print('a GPU was found')\n", tmp_path)
    if "a GPU was found" in p.stdout:
        pytest.skip("this machine has a usable GPU")
    assert p.returncode == 3, p.stdout + p.stderr          # not Caffe's abort (-6)
    assert "refused: GPU=0 asked for" in p.stdout
    assert "driver" in p.stdout or "GPU" in p.stdout


def test_cuda_build_trains_on_the_cpu_without_a_driver(tiny, tmp_path):
    """Caffe's data threads asked the driver for the current device even in CPU mode and
    aborted (patch 03 fixes that): a CUDA build must still train with GPU=-1."""
    from pycount import config
    from pycount.data import prepare
    ds, model = tiny
    prepare.prepare(ds)
    (tmp_path / "plan.pkl").write_bytes(pickle.dumps((ds, model)))
    p = run_with_cuda_caffe(
        "import pickle\n"
        "from pycount.training import trainer as train\n"
        f"ds, model = pickle.loads(open({str(tmp_path / 'plan.pkl')!r}, 'rb').read())\n"
        "r = train.Trainer(ds, model, gpu=-1, max_iter=30).train(resume=False)\n"
        "print('iterations', r['iterations'])\n", tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr[-3000:]
    assert "iterations 30" in p.stdout
    assert (config.run_dir(ds, model) / "model.caffemodel").exists()


def test_gpu_check_script_runs_on_the_cpu_with_the_cuda_tool(tiny, tmp_path):
    """bench/gpu_check.py (the GPU verification) in its CPU self-test mode, with this build's
    `caffe` tool: training, the CPU/GPU comparison plumbing and the report all work."""
    from pycount import config
    from pycount.data import prepare
    ds, _ = tiny
    prepare.prepare(ds)
    out = tmp_path / "gc"
    p = subprocess.run([sys.executable, "-m", "bench.gpu_check",
                        "--caffe", str(Path(BUILD) / "src" / "caffe-tool"),
                        "--lmdb", str(config.lmdb_dir(ds)), "--iters", "40", "--batches", "2",
                        "--gpu", "-1", "--time-iters", "2", "--out", str(out)],
                       capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert p.returncode == 0, p.stdout + p.stderr[-3000:]
    import json
    report = json.loads((out / "gpu_check.json").read_text())
    assert report["forward"]["values"] == 32 and report["forward"]["max_scaled_diff"] == 0
    assert report["train"]["loss_last"] < report["train"]["loss_first"]
