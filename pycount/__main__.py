import sys

from pycount.cli import main

sys.exit(main())
