"""Writes that are all or nothing: into a temporary file beside the target, renamed when complete,
so an interrupted run never leaves a half-written file where a good one is expected."""
from __future__ import annotations

import errno
import glob
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path


# replace_dir: how many times a folder put in by another process between moving the old one
# aside and moving the new one in is moved aside again before giving up
REPLACE_DIR_TRIES = 5


@contextmanager
def replacing(path):
    """`with replacing(p) as tmp:` write tmp; on success it replaces p, on failure it is removed.
    The temporary name keeps p's suffix (matplotlib and Caffe choose formats by it) and holds
    the process id: two processes writing the same file (two evals of one run) each rename their
    own whole file, the last one wins; with one shared name, one renamed the other's away."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def probe_writable(folder) -> None:
    """Write and remove an empty file in `folder`: OSError when it takes no files (read-only,
    no permission), found before a long job needs to write there."""
    probe = Path(folder) / f".write-test-{os.getpid()}"
    probe.write_bytes(b"")
    probe.unlink()


def file_in_the_way(path) -> Path | None:
    """The path itself, or its nearest existing ancestor, when that is a file rather than a folder
    (a folder cannot be made there); None when the path is or can become a folder."""
    found = next((p for p in [Path(path), *Path(path).parents] if p.exists()), None)
    return found if found is not None and not found.is_dir() else None


# errnos of a write that failed for lack of room: the disk full, a file size limit (ulimit -f),
# a quota spent. The fix is room, not permissions.
NO_ROOM = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


def no_room(e: BaseException) -> bool:
    return isinstance(e, OSError) and e.errno in NO_ROOM


def cannot_write(what: str, e: OSError, folder, elsewhere: str) -> str:
    """One wording for a failed write, whichever command met it: what could not be written, the
    system's words (and the file, when `what` does not name it), the fix for that cause (room on
    the disk holding `folder`, or `folder` made writable) and where else to write instead."""
    where = f"{e.filename}: " if e.filename and str(e.filename) not in what else ""
    if e.errno == errno.EFBIG:
        fix = "lift the file size limit of this shell (ulimit -f)"
    elif no_room(e):
        fix = f"free space on the disk holding {folder} (it is full or its quota spent)"
    else:
        fix = f"make {folder} writable"
    return f"cannot write {what} ({where}{e.strerror or e}): {fix}, or {elsewhere}"


def reserve(folder, sizes) -> None:
    """Claim room for files of these sizes in `folder` (all at once, as they will stand side by
    side), then give it back: OSError (ENOSPC, EFBIG, EDQUOT) when the disk, a file size limit
    (ulimit -f) or a quota would stop them. For writers that cannot fail cleanly: Caffe aborts
    the process when a caffemodel or solverstate does not fit, leaving half a file behind."""
    claims = []
    try:
        for i, size in enumerate(sizes):
            path = Path(folder) / f".reserve-{os.getpid()}-{i}"
            claims.append(path)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.posix_fallocate(fd, 0, max(int(size), 1))
            except OSError as e:
                if not no_room(e):      # a filesystem that cannot claim room (EOPNOTSUPP,
                    return              # EINVAL, ENOSYS): the write itself will tell
                raise
            finally:
                os.close(fd)
    finally:
        for path in claims:
            path.unlink(missing_ok=True)


def pid_alive(pid: int) -> bool:
    """Whether process `pid` runs (a temporary name holding it belongs to a live writer)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:                 # someone else's live process
        return True
    return True


def writer_gone(pid: str) -> bool:
    """Whether the writer a temporary name holds (its process id as text; "" for a name from
    before ids were in it) is gone."""
    return not (pid.isdigit() and pid_alive(int(pid)))


def remove_stale_temps(folder) -> list[Path]:
    """Remove the temporary files (replacing's `.NAME.tmp-PID.SUFFIX`, reserve's) that processes
    killed outright left in `folder` (their process gone). Returns what was removed."""
    gone = []
    for pattern, pid_at in ((".*.tmp-*", lambda n: n.rsplit(".tmp-", 1)[1].split(".")[0]),
                            (".reserve-*", lambda n: n.split("-")[1])):
        for path in Path(folder).glob(pattern):
            # a live writer's stays: an eval of the run may be writing its metrics beside
            if path.is_file() and writer_gone(pid_at(path.name)):
                path.unlink(missing_ok=True)
                gone.append(path)
    return gone


def remove_stale_dirs(folder, name: str) -> list[Path]:
    """Remove the folders that processes killed outright left beside `folder / name`: their
    `.NAME.tmp-PID` (what they were writing) and replace_dir's `.NAME.old-PID-*` (the one they
    were replacing), their process gone; an `.old-` folder of before the PID was in its name,
    whatever its age. Returns what was removed."""
    gone = []
    for path in Path(folder).glob(f".{glob.escape(name)}.*"):
        rest = path.name[len(name) + 2:]
        if rest.startswith("tmp-"):
            pid = rest[4:]
        elif rest.startswith("old-"):
            pid = rest[4:].split("-", 1)[0] if "-" in rest[4:] else ""
        else:
            continue
        if path.is_dir() and writer_gone(pid):
            shutil.rmtree(path, ignore_errors=True)
            gone.append(path)
    return gone


def sha256_of(path) -> str:
    """sha256 of a file, read in 8 MiB blocks (4.2 s for a 1 GB LMDB on a busy 2-core machine);
    the one hash of whole files: LMDBs, caffemodels, release files, deploy nets."""
    import hashlib
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(8 << 20), b""):
            h.update(block)
    return h.hexdigest()


def make_folder(path) -> tuple[str, object] | None:
    """Make a folder (with its parents). None when it is a folder this process can write to; else
    why not, for the caller's own message: ("file", the file in the way), ("readonly", None) or
    ("oserror", the system's words)."""
    path = Path(path)
    blocker = file_in_the_way(path)
    if blocker is not None:
        return "file", blocker
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:            # no permission, a full disk, a name too long, ...
        return "oserror", e.strerror or str(e)
    if not os.access(path, os.W_OK | os.X_OK):
        return "readonly", None
    return None


def write_text(path, text: str) -> None:
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_bytes(path, data: bytes) -> None:
    with replacing(path) as tmp:
        Path(tmp).write_bytes(data)


def save_figure(fig, path, dpi: int = 80) -> None:
    """Save a matplotlib figure atomically and close it."""
    import matplotlib.pyplot as plt
    try:
        with replacing(path) as tmp:
            fig.savefig(tmp, dpi=dpi)
    finally:
        plt.close(fig)


def replace_dir(tmp, dest) -> None:
    """Move a finished folder `tmp` to `dest` (same filesystem); an existing `dest` is moved
    aside first and deleted only once the new folder is in place. Two processes finishing the
    same folder at once (two prepares of one dataset) each put in their own whole copy, the last
    one wins: a `dest` another moved away or put in between the two steps is taken as it is."""
    tmp, dest = Path(tmp), Path(dest)
    old = None
    for _ in range(REPLACE_DIR_TRIES):
        if dest.exists():           # (named with this process: remove_stale_dirs knows it)
            old = old or Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-{os.getpid()}-",
                                               dir=dest.parent))
            try:
                os.replace(dest, old / f"{dest.name}-{len(os.listdir(old))}")
            except FileNotFoundError:       # another writer moved it aside first
                pass
        try:
            os.replace(tmp, dest)
            break
        except OSError as e:        # another writer's copy came in between: move it aside too
            if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
    else:
        raise OSError(errno.EBUSY, f"{dest} kept being replaced by other processes", str(dest))
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def open_as_mkdir(folder: Path) -> None:
    """A folder made by tempfile.mkdtemp (mode 0700) given the mode mkdir gives one under the
    process's umask: one that is renamed into place as data others read (the synthetic set was
    left readable by its owner only; helper-55)."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(folder, 0o777 & ~mask)
