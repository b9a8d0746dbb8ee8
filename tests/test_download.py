"""pycount.download against a tiny fake release (no internet) and the real shared copies."""
import hashlib
import os
import shutil
import tarfile
import zipfile
from pathlib import Path

import pytest

from pycount import cli
from pycount.data import download

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
FILES = {"001cell.png": b"cell one", "001dots.png": b"dots one", "sub/notes.txt": b"hello"}


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """A fake dataset 'toy' (folder `toy_cells`), its manifest and a zip wrapping it in `cells/`."""
    mdir = tmp_path / "manifests"
    mdir.mkdir()
    (mdir / "toy.sha256").write_text("".join(
        f"{hashlib.sha256(data).hexdigest()}  {rel}\n" for rel, data in sorted(FILES.items())))
    monkeypatch.setattr(download, "MANIFEST_DIR", mdir)
    monkeypatch.setitem(download.SOURCES, "toy", download.Source(
        url="http://127.0.0.1:9/toy.zip", page="http://127.0.0.1:9/", archive="toy.zip",
        folder="toy_cells", example="001cell.png"))

    def make_zip(name="toy.zip", files=FILES, top="cells/"):
        path = tmp_path / name
        with zipfile.ZipFile(path, "w") as z:
            for rel, data in files.items():
                z.writestr(f"{top}{rel}", data)
        return path

    root = tmp_path / "data"
    return make_zip, root


def leftovers(root: Path):
    """Temporary downloads or unpack folders left in data_root."""
    return [p.name for p in root.iterdir() if p.name.startswith(".")] if root.exists() else []


def test_fetch_file_url_unpacks_and_verifies(toy):
    make_zip, root = toy
    dest = download.fetch("toy", root, url=make_zip().as_uri(), progress=True)
    assert dest == root / "toy_cells"
    assert (dest / "001cell.png").read_bytes() == b"cell one"
    assert (dest / "sub" / "notes.txt").is_file()
    assert download.verify("toy", dest) == []
    assert leftovers(root) == []


def test_a_data_root_that_is_the_release_itself_is_reused_and_verified(toy, monkeypatch,
                                                                          capsys):
    """DATA_ROOT=.../toy_cells (the release folder, as prepare reads it too): fetch reuses it
    instead of nesting a second copy inside, and --verify-only checks it, from inside too."""
    make_zip, root = toy
    dest = download.fetch("toy", root, url=make_zip().as_uri(), progress=False)
    assert download.fetch("toy", dest, url="http://127.0.0.1:9/none.zip") == dest
    assert not (dest / "toy_cells").exists() and leftovers(dest) == []
    assert cli.main(["data", "--dataset", "toy", "--verify-only", "--data-root", str(dest)]) == 0
    monkeypatch.chdir(dest)
    assert cli.main(["data", "--dataset", "toy", "--verify-only", "--data-root", "."]) == 0
    assert capsys.readouterr().out.count("all 3 files verify") == 2


def test_fetch_local_archive_without_top_folder(toy):
    """An archive without a top folder unpacks straight into the temporary folder, which is then
    renamed into place: it gets the mode mkdir gives under the umask (mkdtemp's is 0700), as a
    wrapped release's folder does."""
    make_zip, root = toy
    mask = os.umask(0o022)
    try:
        dest = download.fetch("toy", root, archive=make_zip(top=""))
        wrapped = download.fetch("toy", root / "w", archive=make_zip())
    finally:
        os.umask(mask)
    assert download.verify("toy", dest) == []
    assert (dest.stat().st_mode & 0o777) == 0o755 == (wrapped.stat().st_mode & 0o777)


def test_fetch_tar_archive(toy, tmp_path):
    make_zip, root = toy
    src = tmp_path / "unzipped"
    zipfile.ZipFile(make_zip()).extractall(src)
    with tarfile.open(tmp_path / "toy.tar.gz", "w:gz") as t:
        t.add(src / "cells", arcname="release-2010")
    dest = download.fetch("toy", root, archive=tmp_path / "toy.tar.gz")
    assert download.verify("toy", dest) == [] and leftovers(root) == []


@pytest.mark.parametrize("has_filter", [True, False])
def test_a_tar_member_escaping_the_folder_is_refused(toy, tmp_path, monkeypatch, has_filter):
    """Debian 12's Python 3.11.2 has no tarfile "data" filter: the members are checked by hand
    there (an image built on it failed test_fetch_tar_archive before)."""
    make_zip, root = toy
    if not has_filter:
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
        test_fetch_tar_archive(toy, tmp_path)             # a good archive still unpacks
        shutil.rmtree(root / "toy_cells")
    evil = tmp_path / "evil.tar"
    payload = tmp_path / "payload.txt"
    payload.write_text("x")
    with tarfile.open(evil, "w") as t:
        t.add(payload, arcname="../../escaped.txt")
    with pytest.raises(download.DownloadError):
        download.fetch("toy", root, archive=evil)
    assert not (root.parent / "escaped.txt").exists() and leftovers(root) == []


def test_corrupted_member_is_named_and_nothing_installed(toy):
    make_zip, root = toy
    bad = make_zip("bad.zip", dict(FILES, **{"001dots.png": b"dots 0ne"}))
    with pytest.raises(download.DownloadError, match="checksum mismatch: 001dots.png"):
        download.fetch("toy", root, url=bad.as_uri())
    assert not (root / "toy_cells").exists()
    assert leftovers(root) == []


def test_missing_member_is_named(toy):
    make_zip, root = toy
    short = make_zip("short.zip", {k: v for k, v in FILES.items() if k != "sub/notes.txt"})
    with pytest.raises(download.DownloadError, match="missing: sub/notes.txt"):
        download.fetch("toy", root, archive=short)
    assert not (root / "toy_cells").exists()


@pytest.mark.parametrize("url", ["missing", "http://127.0.0.1:9/toy.zip"])
def test_unreachable_url_gives_manual_instructions(toy, tmp_path, url):
    _, root = toy
    if url == "missing":
        url = (tmp_path / "nowhere.zip").as_uri()
    with pytest.raises(download.DownloadError) as err:
        download.fetch("toy", root, url=url)
    msg = str(err.value)
    assert "could not download" in msg and "toy.zip" in msg and "--archive" in msg
    assert str(root / "toy_cells" / "001cell.png") in msg
    assert leftovers(root) == []


def test_not_an_archive(toy, tmp_path):
    _, root = toy
    page = tmp_path / "login.html"
    page.write_text("<html>please log in</html>")
    with pytest.raises(download.DownloadError, match="neither a zip nor a tar"):
        download.fetch("toy", root, url=page.as_uri())
    assert leftovers(root) == [] and not (root / "toy_cells").exists()


def test_verified_folder_is_reused_without_download(toy, monkeypatch):
    make_zip, root = toy
    download.fetch("toy", root, archive=make_zip())
    monkeypatch.setattr(download, "_download", lambda *a, **k: pytest.fail("downloaded again"))
    assert download.fetch("toy", root) == root / "toy_cells"


def test_broken_existing_folder_is_left_untouched(toy):
    make_zip, root = toy
    dest = download.fetch("toy", root, archive=make_zip())
    (dest / "001cell.png").write_bytes(b"edited")
    with pytest.raises(download.DownloadError, match="left untouched"):
        download.fetch("toy", root, archive=make_zip())
    assert (dest / "001cell.png").read_bytes() == b"edited"


@pytest.mark.parametrize("dataset", ["bacterial", "nuclei"])
def test_real_manifests_verify_shared_copies(dataset):
    folder = SHARED / download.SOURCES[dataset].folder
    if not folder.is_dir():
        pytest.skip(f"{folder} not present")
    assert download.verify(dataset, folder) == []


# --- failure paths: DATA_ROOT, archives, damaged folders ---------------------------------------

def test_data_root_that_is_a_file_is_named(toy, tmp_path):
    make_zip, _ = toy
    plain = tmp_path / "plain"
    plain.write_text("")
    for root in (plain, plain / "sub"):
        with pytest.raises(download.DownloadError, match=f"DATA_ROOT {root} .*set DATA_ROOT"):
            download.fetch("toy", root, archive=make_zip())
    assert plain.read_text() == ""


def test_unwritable_data_root_fails_before_downloading(toy, monkeypatch):
    """Read-only or no permission: one line naming DATA_ROOT, no traceback, nothing fetched."""
    _, root = toy
    root.mkdir()

    def refuse(*a, **k):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(download.tempfile, "mkstemp", refuse)
    monkeypatch.setattr(download, "_download", lambda *a, **k: pytest.fail("downloaded"))
    with pytest.raises(download.DownloadError,
                       match=f"DATA_ROOT {root} cannot be written \\(Permission denied\\): make "
                             f"it a writable folder"):
        download.fetch("toy", root)
    assert leftovers(root) == []


def test_a_full_disk_while_downloading_is_not_called_a_network_error(toy, monkeypatch):
    make_zip, root = toy

    class Full:
        def __init__(self, *a, **k):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

        def write(self, data):
            raise OSError(28, "No space left on device")
    real_open = open
    monkeypatch.setattr("builtins.open", lambda f, mode="r", *a, **k: Full() if mode == "wb"
                        else real_open(f, mode, *a, **k))
    with pytest.raises(download.DownloadError, match="No space left.*free some space in "
                                                     "DATA_ROOT") as err:
        download.fetch("toy", root, url=make_zip().as_uri(), progress=False)
    assert "could not download" not in str(err.value)
    monkeypatch.undo()
    assert not root.exists()             # the DATA_ROOT it made for the download is gone too


def test_a_failed_fetch_removes_the_data_root_it_created(toy, tmp_path):
    _, _ = toy
    root = tmp_path / "new" / "parents" / "data"
    with pytest.raises(download.DownloadError, match="could not download"):
        download.fetch("toy", root, url=(tmp_path / "nowhere.zip").as_uri())
    assert not (tmp_path / "new").exists()


def test_manual_instructions_give_commands_that_exist(toy):
    _, root = toy
    text = download.manual_instructions("toy", root)
    assert "tools/data.py" not in text
    assert f"make data DATASET=toy DATA_ROOT={root} ARCHIVE=/path/to/toy.zip" in text
    assert f"--data-root {root} --verify-only" in text


def test_an_archive_that_is_a_folder_or_missing_is_named(toy, tmp_path):
    _, root = toy
    with pytest.raises(download.DownloadError, match="is a folder, not the toy.zip file"):
        download.fetch("toy", root, archive=tmp_path)
    with pytest.raises(download.DownloadError, match="nope.zip does not exist"):
        download.fetch("toy", root, archive=tmp_path / "nope.zip")
    assert not root.exists()


def test_a_truncated_archive_is_refused_with_instructions(toy):
    make_zip, root = toy
    good = make_zip()
    cut = good.with_name("cut.zip")
    cut.write_bytes(good.read_bytes()[:40])
    with pytest.raises(download.DownloadError, match="could not unpack .*cut.zip"):
        download.fetch("toy", root, archive=cut)
    assert leftovers(root) == [] and not (root / "toy_cells").exists()


@pytest.mark.parametrize("damage", ["altered", "truncated", "missing", "a file"])
def test_a_damaged_release_folder_is_named_and_kept(toy, damage):
    make_zip, root = toy
    dest = download.fetch("toy", root, archive=make_zip())
    target = dest / "001cell.png"
    if damage == "altered":
        target.write_bytes(b"cell 0ne")
    elif damage == "truncated":
        target.write_bytes(b"cell")
    elif damage == "missing":
        target.unlink()
    else:
        shutil.rmtree(dest)
        dest.write_text("not a folder")
    expected = {"altered": "checksum mismatch: 001cell.png",
                "truncated": "checksum mismatch: 001cell.png",
                "missing": "missing: 001cell.png", "a file": "is a file, not a folder"}[damage]
    with pytest.raises(download.DownloadError, match=r"\(1 problem\):") as err:
        download.fetch("toy", root, archive=make_zip())
    assert expected in str(err.value) and "left untouched" in str(err.value)
    assert download.verify("toy", dest) != []


def _unreadable(monkeypatch, name):
    """The release file `name` cannot be read (its checksum raises EACCES); the others can."""
    real = download._sha256

    def sha(path):
        if path.name == name:
            raise PermissionError(13, "Permission denied")
        return real(path)
    monkeypatch.setattr(download, "_sha256", sha)


def test_an_unreadable_file_is_named_and_the_rest_checked(toy, monkeypatch):
    make_zip, root = toy
    dest = download.fetch("toy", root, archive=make_zip())
    _unreadable(monkeypatch, "001dots.png")
    assert download.verify("toy", dest) == ["unreadable: 001dots.png (Permission denied)"]


def test_extra_files_are_named_but_keep_a_folder_valid(toy, capsys):
    make_zip, root = toy
    dest = download.fetch("toy", root, archive=make_zip())
    (dest / "README.md").write_text("notes")
    assert download.verify("toy", dest) == []
    assert download.extras("toy", dest) == ["README.md"]
    assert download.fetch("toy", root) == dest
    assert "also holds 1 file(s) the release does not (README.md)" in capsys.readouterr().err


def test_a_concurrent_install_is_used_not_a_traceback(toy, monkeypatch):
    """Two `make data` at once: the second's rename finds the first one's folder."""
    make_zip, root = toy
    real_rename = download.os.rename
    raced = []

    def race(src, dst):
        if not raced:                    # the other process installs its copy first
            raced.append(dst)
            monkeypatch.setattr(download.os, "rename", real_rename)
            download.fetch("toy", root, archive=make_zip("other.zip"))
        real_rename(src, dst)
    monkeypatch.setattr(download.os, "rename", race)
    assert download.fetch("toy", root, archive=make_zip()) == root / "toy_cells"
    assert download.verify("toy", root / "toy_cells") == [] and leftovers(root) == []


def test_verify_only_names_the_fix(tmp_path, capsys):
    from pycount import cli
    name = sorted(download.SOURCES)[0]
    (tmp_path / download.SOURCES[name].folder).mkdir()        # an empty copy of the release
    assert cli.main(["data", "--dataset", name, "--data-root", str(tmp_path),
                     "--verify-only"]) == 1
    err = capsys.readouterr().err
    assert "does not verify" in err and f"make data DATASET={name} DATA_ROOT={tmp_path}" in err


@pytest.mark.parametrize("verify", [True, False])
def test_a_data_root_that_is_a_file_is_named(tmp_path, capsys, verify):
    """--verify-only said "<file>/vgg_cells is missing ... move the folder aside"."""
    from pycount import cli
    root = tmp_path / "afile"
    root.write_text("not a folder")
    argv = ["data", "--dataset", "bacterial", "--data-root", str(root / "sub")]
    assert cli.main(argv + (["--verify-only"] if verify else [])) == 2
    err = capsys.readouterr().err
    assert f"DATA_ROOT={root / 'sub'}: {root} is a file, not a folder" in err
    assert root.read_text() == "not a folder"


def test_a_release_folder_that_is_a_broken_link_is_named_before_fetching(toy):
    """A link to a disk not mounted: exists() is False, the whole release was unpacked, and
    the rename onto the link ended in a NotADirectoryError traceback."""
    make_zip, root = toy
    root.mkdir()
    (root / "toy_cells").symlink_to("/mnt/not-mounted/toy_cells")
    with pytest.raises(download.DownloadError, match=r"toy_cells is a link to "
                                                     r"/mnt/not-mounted/toy_cells, which does not"):
        download.fetch("toy", root, archive=make_zip())
    assert leftovers(root) == []


def test_the_temporaries_of_a_fetch_killed_outright_are_removed(toy, dead_pid):
    make_zip, root = toy
    root.mkdir()
    dead = dead_pid
    old = [root / f".toy-{dead}-abc.download", root / f".toy-{dead}-def.unpack",
           root / f".toy-{os.getpid()}-new.download"]
    old[0].write_bytes(b"part of an archive")
    (old[1] / "cells").mkdir(parents=True)
    old[2].write_bytes(b"a fetch running now")
    download.fetch("toy", root, archive=make_zip())
    assert leftovers(root) == [old[2].name]                 # its writer lives: kept


def test_an_archive_cut_short_is_called_so(toy, tmp_path):
    make_zip, root = toy
    whole = make_zip().read_bytes()
    cut = tmp_path / "cut.zip"
    cut.write_bytes(whole[:len(whole) // 2])
    with pytest.raises(download.DownloadError, match="the archive is cut short"):
        download.fetch("toy", root, archive=cut)
    with pytest.raises(download.DownloadError, match="archive /dev/null is not a file"):
        download.fetch("toy", root, archive="/dev/null")
    assert leftovers(root) == []


def test_a_release_file_changed_since_unpacking_is_refused_before_use(toy, monkeypatch):
    """check_release: a listed file of an image that differs from the release stops prepare and
    eval; one missing or unreadable is left to the readers, which name it."""
    from pycount.errors import DatasetError
    make_zip, root = toy
    monkeypatch.setitem(download.RELEASE_FILES, "toy", ("{id}cell.png", "{id}dots.png"))
    dest = download.fetch("toy", root, archive=make_zip())
    download.check_release("toy", dest, ["001"])                  # as released: fine
    (dest / "001dots.png").write_bytes(b"dots 0ne")               # saved again, changed
    with pytest.raises(DatasetError, match="001dots.png differs from the published toy release"):
        download.check_release("toy", dest, ["001"])
    (dest / "001dots.png").unlink()
    download.check_release("toy", dest, ["001"])                  # missing: the readers' to say
    _unreadable(monkeypatch, "001cell.png")
    download.check_release("toy", dest, ["001"])                  # unreadable: likewise


def test_a_manifest_in_binary_mode_with_blank_lines_is_read(toy):
    """`sha256sum -b` marks each path with '*'; a blank line is no entry."""
    make_zip, root = toy
    (download.MANIFEST_DIR / "toy.sha256").write_text("\n".join(
        f"{hashlib.sha256(data).hexdigest()} *{rel}\n" for rel, data in sorted(FILES.items())))
    assert sorted(download.manifest("toy")) == ["001cell.png", "001dots.png", "sub/notes.txt"]
    dest = download.fetch("toy", root, archive=make_zip())
    assert download.verify("toy", dest) == []


@pytest.mark.parametrize("has_filter", [True, False])
def test_a_tar_holding_a_link_is_refused(toy, tmp_path, monkeypatch, has_filter):
    make_zip, root = toy
    if not has_filter:
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    evil = tmp_path / "links.tar"
    with tarfile.open(evil, "w") as t:
        for rel, data in FILES.items():
            (tmp_path / "f").write_bytes(data)
            t.add(tmp_path / "f", arcname=f"cells/{rel}")
        link = tarfile.TarInfo("cells/passwd")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        t.addfile(link)
    with pytest.raises(download.DownloadError):
        download.fetch("toy", root, archive=evil)
    assert not (root / "toy_cells").exists() and leftovers(root) == []


def test_a_zip_with_a_damaged_member_is_refused_with_instructions(toy):
    make_zip, root = toy
    good = make_zip()
    bad = good.with_name("crc.zip")
    data = good.read_bytes()
    assert data.count(b"cell one") == 1                     # stored, not compressed
    bad.write_bytes(data.replace(b"cell one", b"cell 0ne"))   # its CRC no longer matches
    with pytest.raises(download.DownloadError, match="could not unpack .*crc.zip"):
        download.fetch("toy", root, archive=bad)
    assert leftovers(root) == [] and not (root / "toy_cells").exists()


def test_a_malformed_url_gives_manual_instructions(toy):
    _, root = toy
    with pytest.raises(download.DownloadError, match="could not download toy.zip"):
        download.fetch("toy", root, url="toy.zip")              # no scheme
    assert not root.exists()


def test_a_download_cut_short_is_called_so(toy, monkeypatch):
    import io
    make_zip, root = toy
    whole = make_zip().read_bytes()

    class Short(io.BytesIO):                # the connection closes half-way
        headers = {"Content-Length": str(len(whole))}
    monkeypatch.setattr(download.urllib.request, "urlopen",
                        lambda url, timeout: Short(whole[:len(whole) // 2]))
    with pytest.raises(download.DownloadError, match=f"could not download .*: connection closed "
                                                     f"after {len(whole) // 2} of {len(whole)}"):
        download.fetch("toy", root, progress=False)
    assert not root.exists()


def test_a_deeper_copy_of_a_release_file_does_not_hide_the_release(toy):
    make_zip, root = toy
    files = dict(FILES, **{"old/001cell.png": b"cell one"})
    dest = download.fetch("toy", root, archive=make_zip("nested.zip", files))
    assert dest == root / "toy_cells" and (dest / "001dots.png").is_file()


def test_only_temporaries_of_a_dead_fetch_are_removed(toy, dead_pid):
    make_zip, root = toy
    root.mkdir()
    mine = root / f".toy-{dead_pid}-notes.txt"               # a user's file, not a fetch's
    mine.write_text("keep")
    download.fetch("toy", root, archive=make_zip())
    assert mine.read_text() == "keep"


def test_a_data_root_that_cannot_be_made_leaves_no_parents(toy, tmp_path, monkeypatch):
    make_zip, _ = toy
    root = tmp_path / "new" / "parents" / "data"
    real = os.mkdir

    def mkdir(path, *a, **k):               # no permission for the last folder, once its
        if Path(path) == root and root.parent.is_dir():         # parents are made
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, *a, **k)
    monkeypatch.setattr(os, "mkdir", mkdir)
    with pytest.raises(download.DownloadError, match=f"DATA_ROOT {root} cannot be written"):
        download.fetch("toy", root, archive=make_zip())
    assert not (tmp_path / "new").exists()
