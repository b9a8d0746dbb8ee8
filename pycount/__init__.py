"""pycount: cell counting by CNN regression (Xue, Ray, Hugh, Bigras, ECCV-W 2016) on Caffe."""
import os

__version__ = "0.1.0"

# Caffe logs every layer of every net it builds to stderr; keep warnings and errors only, unless
# the user asked for more by setting GLOG_minloglevel themselves.
os.environ.setdefault("GLOG_minloglevel", "2")

# Caffe's convolutions run on oneDNN's OpenMP threads (tools/caffe-patches/05-dnnl-conv.patch).
# libgomp's default makes a waiting thread spin at every barrier, which on a machine shared with
# other busy processes stalls each parallel region until the descheduled partner runs again
# (measured 8x slower training at 2 threads, docs/caffe-speed.md); waiting threads sleep instead.
# Read once, when libgomp loads with caffe: so here, before any caffe import. Set it yourself
# (OMP_WAIT_POLICY=active) on a machine with idle cores to keep the spinning.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")

# OpenBLAS (Caffe's BLAS for what oneDNN does not run: inner products, deconvolutions, the
# solver's updates) keeps its idle worker threads spinning on sched_yield for 2^28 cycles after
# each call: at two threads one of them took 0.2 of a core from oneDNN's threads all through a
# density training (perf, 2026-12-03). 4 (the least OpenBLAS takes) lets them sleep at once.
# bench/caffe_speed.py, two threads, best of 2 (bench/results/2026-12-03-vm-blas-spin.md): images
# per CPU-second +38 % alexnet-lite, +6 % AlexNet, +18 % fcrn, +1 % ResNet-50; wall images/s +12 %,
# +6 %, +1 %; ResNet-50 over 3 longer rounds 16.0 against 14.5 img/s (+31 % per CPU-second).
# Read when OpenBLAS loads (with caffe), so here; a value set by the user wins.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

# OpenCV logs its own decoder's complaints to stderr ("imread_(...): can't read header") for
# files pycount then reads with tifffile, or refuses with one message naming the file and the
# fix (pycount.data.images): keep only its fatal messages, unless the user set the level.
os.environ.setdefault("OPENCV_LOG_LEVEL", "FATAL")
