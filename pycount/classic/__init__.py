"""Classic (pre-CNN) counting methods of the paper's Table 4, as self-contained estimators.

  LeCount  - Lempitsky & Zisserman, "Learning To Count Objects in Images", NIPS 2010 (density)
  LeDetect - Arteta, Lempitsky, Noble & Zisserman, "Learning to Detect Cells Using Non-overlapping
             Extremal Regions", MICCAI 2012 (detection; count = detections)

Nothing here imports the rest of pycount: numpy, scipy and scikit-image only.
"""
from .lecount import LeCount, LeCountSettings

__all__ = ["LeCount", "LeCountSettings"]
try:  # Le.detect is added in its own commit
    from .ledetect import LeDetect, LeDetectSettings  # noqa: F401
    __all__ += ["LeDetect", "LeDetectSettings"]
except ImportError:
    LeDetect = None
