"""Where Caffe runs: the CPU, or a GPU checked first (caffe.set_mode_gpu() aborts the process
when no usable GPU is there, so it is never called before the check)."""
from __future__ import annotations

from pathlib import Path

from pycount.errors import TrainError


def cuda_devices() -> tuple[bool, int, str]:
    """(this Caffe build has CUDA, number of usable GPUs, why not) — checked without touching
    Caffe's GPU code, since caffe.set_mode_gpu() aborts the process when no GPU is usable."""
    import ctypes
    import subprocess
    import caffe
    so = Path(caffe._caffe.__file__)
    try:
        libs = subprocess.run(["ldd", str(so)], capture_output=True, text=True).stdout
    except OSError as e:        # a stripped container without libc-bin's ldd
        return False, 0, (f"whether this Caffe build has CUDA cannot be told: `ldd` cannot be "
                          f"run ({e.strerror}); install it (Debian's libc-bin), or use GPU=-1")
    if "libcudart" not in libs:
        return False, 0, (f"this Caffe build is CPU-only ({so.parent.parent.parent.parent.name}); "
                          f"build the CUDA variant with `make caffe WITH_CUDA=1`")
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return True, 0, "no NVIDIA driver found (libcuda.so.1); install one, or use GPU=-1"
    count = ctypes.c_int(0)
    if cuda.cuInit(0) != 0 or cuda.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return True, 0, "the NVIDIA driver found no usable GPU; check nvidia-smi, or use GPU=-1"
    return True, count.value, ""


def check_gpu(gpu: int) -> None:
    """GPU `gpu` is usable here (nothing to check for gpu < 0); TrainError says why not."""
    if gpu < 0:
        return
    has_cuda, n, why = cuda_devices()
    if n <= gpu:
        raise TrainError(f"GPU={gpu} asked for, but " + (why or f"only {n} GPU(s) found"))


def set_device(gpu: int):
    """CPU for gpu < 0; else that GPU, after checking it is usable (set_mode_gpu would abort).
    TrainError when pycaffe cannot be imported."""
    try:
        import caffe
    except ImportError as e:
        raise TrainError(f"pycaffe cannot be imported ({e}); build it with `make caffe` (make "
                         f"setup does)") from None
    if gpu < 0:
        caffe.set_mode_cpu()
        return caffe
    check_gpu(gpu)
    caffe.set_device(gpu)
    caffe.set_mode_gpu()
    return caffe
