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
