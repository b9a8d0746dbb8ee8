"""pycount.device: a GPU request is checked (the Caffe build links CUDA, a driver loads, it sees
enough GPUs) before caffe.set_mode_gpu(), which aborts the process when none is usable; these
tests put stand-ins for pycaffe, `ldd` and libcuda in place, so they run without a GPU."""
import ctypes
import os
import subprocess
import sys
import types

import pytest

from conftest import ROOT
from pycount import device, errors

BUILD = "/cache/caffe-cuda-0123abcd"
SO = f"{BUILD}/src/python/caffe/_caffe.so"


class FakeCaffe(types.ModuleType):
    """pycaffe as device.py uses it: the extension's path, and the mode calls it records."""

    def __init__(self):
        super().__init__("caffe")
        self._caffe = types.SimpleNamespace(__file__=SO)
        self.calls = []
        self.set_mode_cpu = lambda: self.calls.append("cpu")
        self.set_mode_gpu = lambda: self.calls.append("gpu")
        self.set_device = lambda n: self.calls.append(("device", n))


class FakeCuda:
    """libcuda.so.1: cuInit's and cuDeviceGetCount's return codes, and the count it reports."""

    def __init__(self, init=0, get=0, count=0):
        self.init, self.get, self.count = init, get, count

    def cuInit(self, flags):
        assert flags == 0
        return self.init

    def cuDeviceGetCount(self, ref):
        ref._obj.value = self.count
        return self.get


@pytest.fixture
def fake(monkeypatch):
    """Sets the stand-ins: fake(ldd_output, cuda) with cuda a FakeCuda or None (no driver)."""
    caffe = FakeCaffe()
    monkeypatch.setitem(sys.modules, "caffe", caffe)
    real_run = subprocess.run
    asked = []

    def setup(ldd: str, cuda):
        def run(cmd, *a, **k):
            if cmd[0] != "ldd":
                return real_run(cmd, *a, **k)
            asked.append(cmd)
            return subprocess.CompletedProcess(cmd, 0, stdout=ldd, stderr="")

        def cdll(name, *a, **k):
            assert name == "libcuda.so.1"
            if cuda is None:
                raise OSError("libcuda.so.1: cannot open shared object file")
            return cuda
        monkeypatch.setattr(subprocess, "run", run)
        monkeypatch.setattr(ctypes, "CDLL", cdll)
        return caffe, asked
    return setup


CUDA_LDD = "\tlibcudart.so.12 => /usr/local/cuda/lib64/libcudart.so.12 (0x7f)\n"
CPU_LDD = "\tlibopenblas.so.0 => /usr/lib/libopenblas.so.0 (0x7f)\n"


def test_a_cpu_only_build_is_named_with_the_build_to_make(fake):
    _, asked = fake(CPU_LDD, FakeCuda(count=4))
    assert device.cuda_devices() == (
        False, 0, "this Caffe build is CPU-only (caffe-cuda-0123abcd); build the CUDA variant "
                  "with `make caffe WITH_CUDA=1`")
    assert asked == [["ldd", SO]]


def test_a_cuda_build_without_a_driver_says_so(fake):
    fake(CUDA_LDD, None)
    assert device.cuda_devices() == (
        True, 0, "no NVIDIA driver found (libcuda.so.1); install one, or use GPU=-1")


@pytest.mark.parametrize("init, get", [(100, 0), (0, 100)], ids=["cuInit", "cuDeviceGetCount"])
def test_a_driver_that_fails_finds_no_gpu(fake, init, get):
    fake(CUDA_LDD, FakeCuda(init=init, get=get, count=3))
    assert device.cuda_devices() == (
        True, 0, "the NVIDIA driver found no usable GPU; check nvidia-smi, or use GPU=-1")


def test_a_working_driver_gives_its_count_of_gpus(fake):
    fake(CUDA_LDD, FakeCuda(count=3))
    assert device.cuda_devices() == (True, 3, "")


def test_the_cpu_is_not_checked(monkeypatch):
    monkeypatch.setattr(device, "cuda_devices", lambda: pytest.fail("GPU checked for GPU=-1"))
    assert device.check_gpu(-1) is None
    assert device.check_gpu(-7) is None


def test_gpu_numbers_are_checked_against_the_count(monkeypatch):
    monkeypatch.setattr(device, "cuda_devices", lambda: (True, 2, ""))
    device.check_gpu(0)
    device.check_gpu(1)
    with pytest.raises(errors.TrainError) as e:
        device.check_gpu(2)
    assert str(e.value) == "GPU=2 asked for, but only 2 GPU(s) found"
    with pytest.raises(errors.TrainError) as e:
        device.check_gpu(5)
    assert str(e.value) == "GPU=5 asked for, but only 2 GPU(s) found"


def test_a_gpu_refusal_gives_the_reason(monkeypatch):
    monkeypatch.setattr(device, "cuda_devices", lambda: (True, 0, "no driver"))
    with pytest.raises(errors.TrainError) as e:
        device.check_gpu(1)
    assert str(e.value) == "GPU=1 asked for, but no driver"


def test_set_device_on_the_cpu_touches_no_gpu(fake, monkeypatch):
    caffe, _ = fake(CUDA_LDD, FakeCuda(count=1))
    monkeypatch.setattr(device, "cuda_devices", lambda: pytest.fail("GPU checked for GPU=-1"))
    assert device.set_device(-1) is caffe
    assert caffe.calls == ["cpu"]


@pytest.mark.parametrize("gpu", [0, 1])
def test_set_device_selects_the_gpu_asked_for(fake, gpu):
    caffe, _ = fake(CUDA_LDD, FakeCuda(count=2))
    assert device.set_device(gpu) is caffe
    assert caffe.calls == [("device", gpu), "gpu"]


def test_set_device_refuses_before_any_caffe_gpu_call(fake):
    caffe, _ = fake(CUDA_LDD, None)
    with pytest.raises(errors.TrainError, match=r"^GPU=0 asked for, but no NVIDIA driver found"):
        device.set_device(0)
    assert caffe.calls == []


class _Broken:
    """A finder whose `caffe` fails to load as a build with a missing library does (a plain
    ImportError, not ModuleNotFoundError)."""

    def find_spec(self, name, path=None, target=None):
        if name == "caffe":
            raise ImportError("libcudart.so.12: cannot open shared object file")
        return None


@pytest.mark.parametrize("gpu", [-1, 0])
def test_a_pycaffe_that_fails_to_load_is_a_train_error(monkeypatch, gpu):
    monkeypatch.delitem(sys.modules, "caffe", raising=False)
    monkeypatch.setattr(sys, "meta_path", [_Broken(), *sys.meta_path])
    with pytest.raises(errors.TrainError) as e:
        device.set_device(gpu)
    assert str(e.value) == ("pycaffe cannot be imported (libcudart.so.12: cannot open shared "
                            "object file); build it with `make caffe` (make setup does)")


def test_a_gpu_asked_for_where_ldd_cannot_run_is_a_train_error_naming_it(tmp_path):
    """A stripped container without `ldd`: GPU=0 is refused by a TrainError naming ldd and its
    package (a FileNotFoundError until 2026-12-07, which the CLI printed as a traceback). The
    real pycaffe, in a subprocess whose PATH holds no ldd."""
    pytest.importorskip("caffe", reason="run `make setup` to build Caffe")
    code = ("from pycount import device\n"
            "from pycount.errors import TrainError\n"
            "try:\n    device.check_gpu(0)\n"
            "except TrainError as e:\n    print(e)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                       env={**os.environ, "PATH": str(tmp_path)})
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert r.stdout.startswith("GPU=0 asked for, but whether this Caffe build has CUDA cannot "
                               "be told: `ldd` cannot be run (")
    assert r.stdout.rstrip().endswith("install it (Debian's libc-bin), or use GPU=-1")
