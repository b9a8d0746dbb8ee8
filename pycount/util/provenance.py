"""Where a result came from: the git commit of the code that made it (written into train.json,
shown by the audit), so anyone can regenerate a number from the commit it names."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[2]


def commit() -> str:
    """The checkout's commit ("<sha>", "<sha>+changes" with uncommitted edits to tracked
    files). Outside a git checkout: $PYCOUNT_COMMIT, which the replication image sets to the
    commit it was built from (tools/docker.sh), else "unknown"."""
    fallback = os.environ.get("PYCOUNT_COMMIT") or "unknown"
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=_ROOT,
                             capture_output=True, text=True, timeout=10)
        if sha.returncode != 0:
            return fallback
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=_ROOT, capture_output=True, text=True, timeout=10).stdout
        return sha.stdout.strip() + ("+changes" if dirty.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return fallback
