#!/usr/bin/env python
"""`make eval`: thin entry point over pycount.cli (eval)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from pycount.cli import main  # noqa: E402

sys.exit(main(["eval"] + sys.argv[1:]))
