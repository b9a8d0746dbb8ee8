"""Download, verify and unpack the public datasets (`make data DATASET=bacterial|nuclei`).

The official archives publish no checksums, so verification is per extracted file: every entry of
`manifests/<dataset>.sha256` (sha256sum format, paths relative to the dataset folder) must be
present with the listed hash.  A release is unpacked into a temporary folder inside DATA_ROOT and
only renamed to `DATA_ROOT/<folder>` once it verifies, so a half-written folder never sits where the
readers look.  Offline, the error says which file to fetch by hand and where to put it.
"""
from __future__ import annotations

import errno
import http.client
import os
import shlex
import shutil
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from pycount import config
from pycount.errors import DownloadError, make_arg  # noqa: F401 (re-exported)
from pycount.util.atomic import open_as_mkdir

MANIFEST_DIR = Path(__file__).resolve().parent / "manifests"
MAX_LISTED = 10          # problems named in one error message
CHUNK = 1 << 16


@dataclass(frozen=True)
class Source:
    url: str             # direct link to the official archive
    page: str            # human-readable page that links to it
    archive: str         # the archive's file name, as a browser saves it
    folder: str          # folder under DATA_ROOT that pycount's readers expect
    example: str         # one file inside `folder`, for the manual instructions


SOURCES = {
    "bacterial": Source(
        url="https://www.robots.ox.ac.uk/~vgg/research/counting/cells.zip",
        page="https://www.robots.ox.ac.uk/~vgg/research/counting/",
        archive="cells.zip", folder=config.DATASETS["bacterial"].subdir, example="001cell.png"),
    "nuclei": Source(
        url="https://warwick.ac.uk/fac/cross_fac/tia/data/crchistolabelednucleihe/"
            "crchistophenotypes_2016_04_28.zip",
        page="https://warwick.ac.uk/fac/cross_fac/tia/data/crchistolabelednucleihe/",
        archive="crchistophenotypes_2016_04_28.zip", folder=config.DATASETS["nuclei"].subdir,
        example="Detection/img1/img1.bmp"),
}




def _source(dataset: str) -> Source:
    if dataset not in SOURCES:
        raise DownloadError(f"unknown dataset {dataset!r}; choose one of {', '.join(SOURCES)}")
    return SOURCES[dataset]


def manifest(dataset: str) -> dict[str, str]:
    """{relative path: sha256} for the dataset, read from MANIFEST_DIR."""
    entries = {}
    for line in (Path(MANIFEST_DIR) / f"{dataset}.sha256").read_text().splitlines():
        if line.strip():
            digest, rel = line.split(None, 1)
            entries[rel.lstrip("*")] = digest   # sha256sum marks binary mode with '*'
    return entries


def _sha256(path: Path) -> str:
    from pycount.util.atomic import sha256_of     # (hashlib.file_digest: Python 3.11 only)
    return sha256_of(path)


def verify(dataset: str, folder) -> list[str]:
    """Problems with `folder` as a copy of `dataset` (missing, unreadable or mismatching files);
    [] when fine.  Files the manifest does not list are no problem (see `extras`)."""
    folder = Path(folder)
    if not folder.is_dir():
        return [f"{folder} is " + ("a file, not a folder" if folder.exists() else "missing")]
    problems = []
    for rel, digest in manifest(dataset).items():
        path = folder / rel
        if not path.is_file():
            problems.append(f"missing: {rel}")
            continue
        try:
            same = _sha256(path) == digest
        except OSError as e:             # e.g. no read permission: name it, check the rest
            problems.append(f"unreadable: {rel} ({e.strerror or e})")
            continue
        if not same:
            problems.append(f"checksum mismatch: {rel}")
    return problems


# The files each image of a release is read from, as its manifest names them: what prepare and
# eval check (check_release) before an image of a named public set is used.
RELEASE_FILES = {"bacterial": ("{id}cell.png", "{id}dots.png"),
                 "nuclei": ("Detection/img{id}/img{id}.bmp",
                            "Detection/img{id}/img{id}_detection.mat")}


def check_release(dataset: str, folder, ids) -> None:
    """DatasetError when a file the images `ids` are read from differs from the release (its
    sha256 against the manifest). A dots image saved again as grey, as JPEG or with its channels
    swapped still reads, as an image of 0 or 1 cells, and a net would be trained on that; a file
    the manifest does not list, or that is missing or unreadable, is left to the readers."""
    from pycount.errors import DatasetError
    folder, listed = Path(folder), manifest(dataset)
    changed = []
    for i in ids:
        for pattern in RELEASE_FILES.get(dataset, ()):
            rel = pattern.format(id=i)
            if rel not in listed or not (folder / rel).is_file():
                continue
            try:
                if _sha256(folder / rel) != listed[rel]:
                    changed.append(rel)
            except OSError:
                continue
    if changed:
        more = f" (and {len(changed) - 1} more)" if len(changed) > 1 else ""
        raise DatasetError(
            f"{folder / changed[0]}{more} differs from the published {dataset} release (its "
            f"sha256 is not the one in pycount/data/manifests/{dataset}.sha256): it was changed "
            f"or damaged since it was unpacked; restore it from the release (`.venv/bin/python "
            f"-m pycount data --dataset {dataset} --data-root {shlex.quote(str(folder.parent))} "
            f"--verify-only` lists every file that differs). Marks of your own on these images "
            f"are an own folder: docs/own-data.md")


def extras(dataset: str, folder) -> list[str]:
    """Files under `folder` that the release does not hold (notes, a published split, ...),
    relative and sorted.  They are kept: the readers open only the files they expect by name."""
    folder, listed = Path(folder), set(manifest(dataset))
    if not folder.is_dir():
        return []
    return sorted(rel for p in folder.rglob("*") if p.is_file()
                  and (rel := p.relative_to(folder).as_posix()) not in listed)


def _problems(n: int) -> str:
    return f"{n} problem{'s' if n != 1 else ''}"


def _summary(problems: list[str]) -> str:
    listed = "\n".join(f"  {p}" for p in problems[:MAX_LISTED])
    more = len(problems) - MAX_LISTED
    return listed + (f"\n  ... and {more} more" if more > 0 else "")


def manual_instructions(dataset: str, data_root) -> str:
    """How to install `dataset` by hand under `data_root`."""
    src, root = _source(dataset), Path(data_root)
    cmd = f"make data DATASET={dataset} {make_arg('DATA_ROOT', root)}"
    return (f"To install the {dataset} dataset by hand:\n"
            f"  1. open {src.page} in a browser and save {src.archive}\n"
            f"     (direct link: {src.url});\n"
            f"  2. either let pycount unpack and verify it:\n"
            f"       {cmd} ARCHIVE=/path/to/{src.archive}\n"
            f"     (or: python -m pycount data --dataset {dataset} --data-root {root} "
            f"--archive /path/to/{src.archive})\n"
            f"     or unpack it yourself so that the files lie directly in {root / src.folder}/,\n"
            f"     e.g. {root / src.folder / src.example}, then check it with\n"
            f"       python -m pycount data --dataset {dataset} --data-root {root} --verify-only")


class _ByteBar:
    """Download progress on stderr: bytes received / total and rate.  Redraws in place on a
    terminal (at most 5 times a second); elsewhere prints a line every 10 % to keep logs short."""

    def __init__(self, total: int | None, stream=None):
        self.total, self.n, self.stream = total, 0, stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = self.last = time.monotonic()
        self.step, self.shown = -1, -1

    def update(self, k: int, final: bool = False):
        self.n += k
        now = time.monotonic()
        if final and not self.tty and self.shown == self.n:
            return                                   # the 100 % line is already out
        if self.tty:
            if not final and now - self.last < 0.2:
                return
        else:
            step = int(10 * self.n / self.total) if self.total else int(self.n / (10 << 20))
            if not final and step == self.step:
                return
            self.step = step
        self.last, self.shown = now, self.n
        rate = self.n / max(now - self.start, 1e-9) / 1e6
        total = f"{self.total / 1e6:.1f}" if self.total else "?"
        pct = f" ({100 * self.n / self.total:3.0f}%)" if self.total else ""
        line = f"downloading: {self.n / 1e6:.1f}/{total} MB{pct} {rate:.2f} MB/s"
        self.stream.write(("\r" + line + ("\n" if final else "")) if self.tty else line + "\n")
        self.stream.flush()


def _download(url: str, dest: Path, progress: bool, timeout: float = 60):
    """Stream `url` into `dest`; raises OSError-family or http.client errors on failure."""
    with urllib.request.urlopen(url, timeout=timeout) as resp, open(dest, "wb") as out:
        length = resp.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        bar = _ByteBar(total) if progress else None
        received = 0
        while chunk := resp.read(CHUNK):
            try:
                out.write(chunk)
            except OSError as e:     # a full or failing disk, not the network: say so
                raise _NoRoom(dest, e) from None
            received += len(chunk)
            if bar:
                bar.update(len(chunk))
        if bar:
            bar.update(0, final=True)
        if total is not None and received < total:
            raise OSError(f"connection closed after {received} of {total} bytes")


class _NoRoom(Exception):
    """Writing into DATA_ROOT failed (disk full, quota, I/O error) during a download."""

    def __init__(self, path: Path, err: OSError):
        super().__init__(f"cannot write {path} ({err.strerror or err})")


def _root_error(root: Path, e: OSError) -> DownloadError:
    """DATA_ROOT cannot take the release: one line naming it and the fix."""
    why = e.strerror or str(e)
    if e.errno == errno.ENOSPC:
        fix = "free some space there or set DATA_ROOT to a folder with room"
    else:
        fix = "make it a writable folder or set DATA_ROOT to one"
    return DownloadError(f"DATA_ROOT {root} cannot be written ({why}): {fix}")


def _make_root(root: Path) -> list[Path]:
    """Create DATA_ROOT (and missing parents); return the folders created, outermost first, so
    that a failed fetch can remove them again."""
    if root.exists() and not root.is_dir():
        raise DownloadError(f"DATA_ROOT {root} is a file, not a folder: set DATA_ROOT to the "
                            f"folder that holds (or will hold) the dataset releases")
    made = [p for p in (root, *root.parents) if not p.exists()][::-1]
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:             # a file on the way, read-only, no permission
        for p in reversed(made):
            try:
                p.rmdir()
            except OSError:
                pass
        if isinstance(e, (FileExistsError, NotADirectoryError)):
            raise DownloadError(f"DATA_ROOT {root} cannot be created: a file stands on its "
                                f"path; set DATA_ROOT to a folder") from None
        raise _root_error(root, e) from None
    return made


def _extract(archive: Path, into: Path):
    """Unpack a zip or tar archive; both guard against members escaping `into`."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            z.extractall(into)        # zipfile drops '..' and absolute prefixes
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as t:
            if hasattr(tarfile, "data_filter"):          # Python 3.11.4+, 3.10.12+
                t.extractall(into, filter="data")
            else:                                         # Debian 12's 3.11.2: checked by hand
                t.extractall(into, members=_safe_members(t, into))
    else:
        with open(archive, "rb") as f:
            head = f.read(4)
        if head.startswith(b"PK") or head.startswith(b"\x1f\x8b"):   # zip or gzip, no end
            raise DownloadError("the archive is cut short (a download that stopped early); "
                                "download it again")
        raise DownloadError("neither a zip nor a tar archive")


def _safe_members(t: tarfile.TarFile, into: Path):
    """The members of a tar archive, refused if one would land outside `into` or is a link, a
    device or another special file (what the "data" filter refuses, for Pythons without it)."""
    root = Path(into).resolve()
    for m in t.getmembers():
        target = (root / m.name).resolve()
        if not target.is_relative_to(root) or not (m.isfile() or m.isdir()):
            raise DownloadError(f"the archive member {m.name!r} would be written outside the "
                                f"dataset folder or is not a plain file; refusing the archive")
        yield m


def _locate(dataset: str, extracted: Path) -> Path:
    """The folder inside `extracted` that plays the role of the dataset folder, whatever top-level
    folder the archive wraps it in: the shallowest one holding the manifest's first entry."""
    anchor = next(iter(manifest(dataset)))
    hits = sorted((p for p in extracted.rglob(Path(anchor).name) if p.is_file()),
                  key=lambda p: len(p.parts))
    for hit in hits:
        root = hit.parents[len(Path(anchor).parts) - 1]
        if root.is_relative_to(extracted) and (root / anchor).is_file():
            return root
    raise DownloadError(f"the archive holds no {anchor}; is it the {dataset} release "
                        f"({SOURCES[dataset].archive} from {SOURCES[dataset].page})?")


def release_folder(data_root, folder: str) -> Path:
    """Where release `folder` lies for DATA_ROOT `data_root`: inside it, or DATA_ROOT itself where
    that is the release folder (by its release name, with no folder of that name inside)."""
    base = Path(data_root)
    inside = base / folder
    if not inside.exists() and not inside.is_symlink() and base.is_dir() \
            and base.resolve().name == folder:
        return base
    return inside


def fetch(dataset: str, data_root, url: str | None = None, archive=None,
          progress: bool = True) -> Path:
    """Make `data_root/<folder>` a verified copy of `dataset` and return that path.

    Reuses a folder that already verifies; otherwise unpacks `archive` (a local file) or downloads
    `url` (default: the official release; file:// works too) into a temp file in data_root,
    verifies every manifest entry and renames the result into place.  An existing folder that fails
    verification is left untouched and reported.  Raises DownloadError with instructions; on any
    failure nothing is left in data_root, not even the folders this call created for it.
    """
    src = _source(dataset)
    dest = release_folder(data_root, src.folder)
    root = dest.parent          # DATA_ROOT, or the folder holding it where it is the release
    if dest.is_symlink() and not dest.exists():     # (exists() follows the link: False)
        raise DownloadError(f"{dest} is a link to {os.readlink(dest)}, which does not exist (a "
                            f"disk not mounted, or a link to itself): mount it, or remove the "
                            f"link to fetch the release into {root}")
    if dest.exists():
        return _existing(dataset, dest)
    _remove_stale(dataset, root)
    if archive is not None and Path(archive).is_dir():
        raise DownloadError(f"ARCHIVE={archive} is a folder, not the {src.archive} file; give "
                            f"the archive itself, or move the unpacked files to {dest}/ and check "
                            f"them with --verify-only")
    if archive is not None and not Path(archive).is_file():
        raise DownloadError(f"archive {archive} " + ("is not a file" if Path(archive).exists()
                                                       else "does not exist") + "\n"
                            f"{manual_instructions(dataset, root)}")
    made = _make_root(root)
    tmp_archive = work = None
    done = False
    try:
        try:
            if archive is None:
                fd, name = tempfile.mkstemp(prefix=f".{dataset}-{os.getpid()}-",
                                            suffix=".download", dir=root)
                os.close(fd)
                tmp_archive = Path(name)
            work = Path(tempfile.mkdtemp(prefix=f".{dataset}-{os.getpid()}-", suffix=".unpack",
                                         dir=root))
        except OSError as e:         # read-only, no permission, full: before any download
            raise _root_error(root, e) from None
        if archive is None:
            url = url or src.url
            print(f"{dataset}: downloading {url}", file=sys.stderr)
            try:
                _download(url, tmp_archive, progress)
            except _NoRoom as e:
                raise DownloadError(f"{e}: free some space in DATA_ROOT {root} or set DATA_ROOT "
                                    f"to a folder with room") from None
            except (OSError, http.client.HTTPException, ValueError) as e:
                # URLError/HTTPError/timeouts are OSErrors; ValueError: a malformed URL
                raise DownloadError(f"could not download {url}: {e}\n"
                                    f"{manual_instructions(dataset, root)}") from None
            archive = tmp_archive
        archive = Path(archive)
        named = archive if tmp_archive is None else url
        try:
            _extract(archive, work)
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES):
                raise _root_error(root, e) from None
            raise DownloadError(f"could not unpack {named}: {e}\n"
                                f"{manual_instructions(dataset, root)}") from None
        except (DownloadError, zipfile.BadZipFile, tarfile.TarError, EOFError) as e:
            # e.g. a login or error page saved instead of the archive
            raise DownloadError(f"could not unpack {named}: "
                                f"{e}\n{manual_instructions(dataset, root)}") from None
        found = _locate(dataset, work)
        problems = verify(dataset, found)
        if problems:
            raise DownloadError(f"{named} does not match the {dataset} manifest "
                                f"({_problems(len(problems))}):\n{_summary(problems)}\n"
                                f"Download it again, or fetch it by hand:\n"
                                f"{manual_instructions(dataset, root)}")
        if found == work:            # unpacked at the archive's top level: mkdtemp's 0700
            open_as_mkdir(found)
        try:
            os.rename(found, dest)   # same filesystem (work is inside root): atomic
        except OSError:
            if dest.exists():        # another `make data` got there first: use its copy
                done = True
                return _existing(dataset, dest)
            raise
        done = True
        print(f"{dataset}: verified {len(manifest(dataset))} files into {dest}", file=sys.stderr)
        return dest
    finally:
        if tmp_archive is not None:
            tmp_archive.unlink(missing_ok=True)
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
        if not done:                 # leave no empty DATA_ROOT behind that we made
            for p in reversed(made):
                try:
                    p.rmdir()
                except OSError:
                    break


def _remove_stale(dataset: str, root: Path) -> None:
    """The temporary download and unpack of a fetch killed outright (SIGKILL, a machine lost):
    nothing reuses them, and a release's unpack is as large as the release. Their names hold
    the fetch's process id; those of a fetch still running stay."""
    from pycount.util.atomic import pid_alive
    if not root.is_dir():
        return
    for path in root.glob(f".{dataset}-*"):
        pid = path.name[len(f".{dataset}-"):].split("-")[0]
        if path.suffix not in (".download", ".unpack") or not pid.isdigit() \
                or pid_alive(int(pid)):
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _existing(dataset: str, dest: Path) -> Path:
    """`dest` when it verifies (naming the files it holds beyond the release), else
    DownloadError: it is never overwritten."""
    problems = verify(dataset, dest)
    if problems:
        fix = ("move it aside or delete it, then run again to fetch the release"
               if dest.is_dir() else "move or delete that file, then run again")
        raise DownloadError(f"{dest} exists but does not verify ({_problems(len(problems))}):\n"
                            f"{_summary(problems)}\nIt was left untouched; {fix}.")
    more = extras(dataset, dest)
    if more:
        print(f"{dataset}: note: {dest} also holds {len(more)} file(s) the release does not "
              f"({', '.join(more[:3])}{', ...' if len(more) > 3 else ''}); left as they are",
              file=sys.stderr)
    print(f"{dataset}: {dest} is already present and verified", file=sys.stderr)
    return dest
