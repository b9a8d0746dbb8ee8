#!/usr/bin/env python
"""`make train`: thin entry point over pycount.cli (train)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from pycount.cli import main  # noqa: E402

sys.exit(main(["train"] + sys.argv[1:]))
