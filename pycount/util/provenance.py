"""Where a result came from: the git commit of the code that made it (written into train.json,
shown by the audit), so anyone can regenerate a number from the commit it names."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[2]


def commit() -> str:
    """The checkout's commit ("<sha>", "<sha>+changes" with uncommitted edits to tracked
    files). Outside a git checkout of pycount itself: $PYCOUNT_COMMIT, which the replication
    image sets to the commit it was built from (tools/docker.sh), else "unknown" (a copy
    installed into site-packages inside a lab's own git repository gave that repository's
    commit)."""
    fallback = os.environ.get("PYCOUNT_COMMIT") or "unknown"
    try:
        sha = subprocess.run(["git", "rev-parse", "--show-toplevel", "--short=12", "HEAD"],
                             cwd=_ROOT, capture_output=True, text=True, timeout=10)
        lines = sha.stdout.split("\n")
        if sha.returncode != 0 or len(lines) < 2 or Path(lines[0]).resolve() != _ROOT.resolve():
            return fallback
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=_ROOT, capture_output=True, text=True, timeout=10).stdout
        return lines[1].strip() + ("+changes" if dirty.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return fallback
