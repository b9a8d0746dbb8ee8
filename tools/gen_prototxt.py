#!/usr/bin/env python
"""`make prototxt`: rewrite the committed prototxt/ tree from pycount.nets (NetSpec)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from pycount import config, nets  # noqa: E402

for path in nets.write_committed():
    print(path.relative_to(config.ROOT))
