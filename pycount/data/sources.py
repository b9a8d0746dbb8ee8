"""Has a dataset changed since its LMDBs were prepared?

`make prepare` fingerprints the pixels and marks it reads, so it rebuilds an LMDB whose images
or annotations changed; `make train` does not read the images, and trained on an LMDB built from
the old marks. So prepare also records a stamp of the dataset folder (each image or annotation
file's size and modification time, cheap to take again) in the LMDB's manifest, and training
compares it with the folder as it is now: a file changed, added or removed since means running
`make prepare` again, which rebuilds the LMDB if the content changed and otherwise renews the
stamp. A folder that is not where prepare read it (the data moved, the LMDB was copied to
another machine) is not checked.
"""
from __future__ import annotations

import os
from pathlib import Path

from pycount.data.annotations import ANNOTATION_KINDS
from pycount.data.images import IMAGE_SUFFIXES

# What a dataset's images and annotations can be: the files a stamp covers (any other file in
# the folder, a README or a lab's notes, can change without making an LMDB stale)
STAMPED_SUFFIXES = frozenset(IMAGE_SUFFIXES) | frozenset(ANNOTATION_KINDS) \
    | {".mat", ".toml"}


def stamp(root: Path) -> dict:
    """{"root": the folder, "files": {relative path: [bytes, mtime in ns]}} over its images and
    annotations (hidden files and folders left out)."""
    root = Path(root).resolve()
    files = {}
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if name.startswith(".") or Path(name).suffix.lower() not in STAMPED_SUFFIXES:
                continue
            path = Path(folder) / name
            try:
                st = path.stat()
            except OSError:
                continue
            files[path.relative_to(root).as_posix()] = [st.st_size, st.st_mtime_ns]
    return {"root": str(root), "files": files}


def changes(recorded: dict | None, limit: int = 3) -> str | None:
    """What changed in the folder a recorded stamp describes, in words ("img3.csv changed,
    img9.png added"), or None: unchanged, no stamp recorded (an LMDB of an older pycount), or the
    folder not there any more."""
    if not isinstance(recorded, dict) or not isinstance(recorded.get("files"), dict):
        return None
    root = Path(str(recorded.get("root", "")))
    if not recorded.get("root") or not root.is_dir():
        return None
    then, now = recorded["files"], stamp(root)["files"]
    said = ([f"{p} changed" for p in sorted(then.keys() & now.keys())
             if list(then[p]) != list(now[p])]
            + [f"{p} added" for p in sorted(now.keys() - then.keys())]
            + [f"{p} removed" for p in sorted(then.keys() - now.keys())])
    if not said:
        return None
    more = f" and {len(said) - limit} more" if len(said) > limit else ""
    return f"in {root}: " + ", ".join(said[:limit]) + more
