"""Classic (pre-CNN) counting methods of the paper's Table 4, as self-contained estimators.

  LeCount  - Lempitsky & Zisserman, "Learning To Count Objects in Images", NIPS 2010 (density)
  LeDetect - Arteta, Lempitsky, Noble & Zisserman, "Learning to Detect Cells Using Non-overlapping
             Extremal Regions", MICCAI 2012 (detection; count = detections)

Of the rest of pycount only the progress bar (pycount.util.progress) is imported; numpy and scipy.
"""
from .lecount import LeCount, LeCountSettings
from .ledetect import LeDetect, LeDetectSettings

__all__ = ["LeCount", "LeCountSettings", "LeDetect", "LeDetectSettings"]
