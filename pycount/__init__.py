"""pycount: cell counting by CNN regression (Xue, Ray, Hugh, Bigras, ECCV-W 2016) on Caffe."""
import os

__version__ = "0.1.0"

# Caffe logs every layer of every net it builds to stderr; keep warnings and errors only, unless
# the user asked for more by setting GLOG_minloglevel themselves.
os.environ.setdefault("GLOG_minloglevel", "2")
