"""All-or-nothing writes: a failure half-way leaves the previous file untouched, no temp files."""
import os
import shutil
from pathlib import Path

import pytest

from pycount.util import atomic


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "metrics.json"
    target.write_text("good")
    with pytest.raises(RuntimeError):
        with atomic.replacing(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("disk full")
    assert target.read_text() == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_write_text_replaces_and_keeps_the_suffix_for_format_detection(tmp_path):
    target = tmp_path / "a.png"
    with atomic.replacing(target) as tmp:
        assert tmp.suffix == ".png" and tmp.parent == tmp_path
        tmp.write_bytes(b"x")
    atomic.write_text(tmp_path / "b.md", "hello")
    assert target.read_bytes() == b"x" and (tmp_path / "b.md").read_text() == "hello"


def test_replace_dir_swaps_in_the_new_folder_and_drops_the_old(tmp_path):
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / "old.txt").write_text("old")
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "data").write_text("new")
    atomic.replace_dir(tmp_path / "new", tmp_path / "db")
    assert sorted(p.name for p in (tmp_path / "db").iterdir()) == ["data"]
    assert [p.name for p in tmp_path.iterdir()] == ["db"]          # nothing left beside it


def test_replace_dir_of_two_writers_at_once_keeps_one_whole_folder(tmp_path, monkeypatch):
    """Two prepares finishing one LMDB at the same instant: the other's copy put in between
    moving the old folder aside and moving ours in (ENOTEMPTY), or the old folder moved away by
    the other first (FileNotFoundError), was a traceback. The last writer's whole folder stays."""
    real = os.replace
    for race in ("put in between", "moved away first"):
        for p in tmp_path.iterdir():
            shutil.rmtree(p)
        (tmp_path / "db").mkdir()
        (tmp_path / "db" / "old.txt").write_text("old")
        (tmp_path / "new").mkdir()
        (tmp_path / "new" / "mine").write_text("mine")
        done = []

        def racing(src, dst):
            if not done and Path(src) == tmp_path / "db":
                done.append(1)
                if race == "moved away first":
                    real(src, tmp_path / "elsewhere")
                    shutil.rmtree(tmp_path / "elsewhere")
                    raise FileNotFoundError(src)
                real(src, dst)
                (tmp_path / "db").mkdir()
                (tmp_path / "db" / "theirs").write_text("theirs")
                return
            real(src, dst)
        monkeypatch.setattr(atomic.os, "replace", racing)
        atomic.replace_dir(tmp_path / "new", tmp_path / "db")
        monkeypatch.setattr(atomic.os, "replace", real)
        assert done and sorted(p.name for p in (tmp_path / "db").iterdir()) == ["mine"], race
        assert [p.name for p in tmp_path.iterdir()] == ["db"], race   # nothing left beside it


def test_two_processes_writing_one_file_both_finish_whole(tmp_path):
    """Two evals of one run wrote the same heatmaps: with one temporary name per file, one
    process renamed the other's file away and died of FileNotFoundError (54 in 3,000 writes)."""
    import subprocess
    import sys
    target = tmp_path / "m.json"
    code = ("import sys; from pycount.util import atomic\n"
            "for i in range(1500):\n"
            f"    atomic.write_text({str(target)!r}, sys.argv[1] * 1000)\n")
    procs = [subprocess.Popen([sys.executable, "-c", code, c], stderr=subprocess.PIPE, text=True)
             for c in "ab"]
    errs = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs
    assert target.read_text() in ("a" * 1000, "b" * 1000)
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_reserve_raises_for_lack_of_room_only(tmp_path, monkeypatch):
    """A filesystem that cannot claim room (NFSv3, some FUSE mounts: EOPNOTSUPP, EINVAL) is no
    reason to stop a training: the write itself will tell. A full disk or a limit is."""
    import errno
    for code, raises in ((errno.EOPNOTSUPP, False), (errno.EINVAL, False),
                         (errno.ENOSPC, True), (errno.EFBIG, True)):
        def refuse(fd, offset, length, code=code):
            raise OSError(code, os.strerror(code))
        monkeypatch.setattr(atomic.os, "posix_fallocate", refuse)
        if raises:
            with pytest.raises(OSError):
                atomic.reserve(tmp_path, [10, 20])
        else:
            atomic.reserve(tmp_path, [10, 20])
        assert not list(tmp_path.iterdir())


def test_stale_temporaries_go_and_a_live_writers_stay(tmp_path, dead_pid):
    dead = dead_pid
    names = [f".metrics.tmp-{dead}.json", f".metrics.tmp-{os.getpid()}.json",
             f".reserve-{dead}-0", "metrics.json"]
    for n in names:
        (tmp_path / n).write_text("x")
    gone = atomic.remove_stale_temps(tmp_path)
    assert sorted(p.name for p in gone) == sorted(names[0::2][:2])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names[1::2])


def test_reserve_checks_every_size_after_an_empty_one(tmp_path, monkeypatch):
    """An empty file is claimed as 1 byte: a 0-byte claim is EINVAL on Linux, which reserve takes
    for a filesystem that cannot claim room and stops, leaving the larger sizes unchecked."""
    import errno

    def fallocate(fd, offset, length):          # as Linux: 0 is invalid; here 100 bytes fit
        if length == 0:
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        if length > 100:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(atomic.os, "posix_fallocate", fallocate)
    with pytest.raises(OSError) as err:
        atomic.reserve(tmp_path, [0, 1000])
    assert err.value.errno == errno.ENOSPC and not list(tmp_path.iterdir())


def test_reserve_raises_for_a_spent_quota(tmp_path, monkeypatch):
    import errno

    def refuse(fd, offset, length):
        raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))
    monkeypatch.setattr(atomic.os, "posix_fallocate", refuse)
    with pytest.raises(OSError):
        atomic.reserve(tmp_path, [10])
    assert not list(tmp_path.iterdir())


def test_a_temporary_of_another_users_live_writer_stays(tmp_path, monkeypatch):
    """os.kill of another user's process is PermissionError: that process lives."""
    def kill(pid, sig):
        raise PermissionError(1, "Operation not permitted")
    monkeypatch.setattr(atomic.os, "kill", kill)
    (tmp_path / ".metrics.tmp-4242.json").write_text("x")
    (tmp_path / ".reserve-4242-0").write_text("")
    assert atomic.remove_stale_temps(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == [".metrics.tmp-4242.json",
                                                          ".reserve-4242-0"]


def test_stale_temporaries_leave_folders_to_remove_stale_dirs(tmp_path, dead_pid):
    """A dead writer's `.NAME.tmp-PID` folder also matches the files' pattern: it is not a file,
    so remove_stale_temps leaves it (no IsADirectoryError)."""
    (tmp_path / f".db.tmp-{dead_pid}").mkdir()
    (tmp_path / f".db.tmp-{dead_pid}" / "data.mdb").write_text("x")
    assert atomic.remove_stale_temps(tmp_path) == []
    assert (tmp_path / f".db.tmp-{dead_pid}" / "data.mdb").is_file()


def test_stale_folders_of_dead_writers_go_and_a_live_writers_stay(tmp_path, dead_pid):
    dead, live = dead_pid, os.getpid()
    gone = [f".db.tmp-{dead}", f".db.old-{dead}-k3x9q2", ".db.old-k3x9q2"]   # last: no PID in it
    kept = [f".db.tmp-{live}", f".db.old-{live}-a1b2c3", ".db.new-1", "db", f".other.tmp-{dead}"]
    for n in gone + kept:
        (tmp_path / n).mkdir()
        (tmp_path / n / "data.mdb").write_text("x")
    removed = atomic.remove_stale_dirs(tmp_path, "db")
    assert sorted(p.name for p in removed) == sorted(gone)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(kept)


def test_sha256_of_a_file_longer_than_one_block(tmp_path):
    import hashlib
    data = b"a" * (8 << 20) + b"tail"           # one 8 MiB block and 4 bytes more
    (tmp_path / "big").write_bytes(data)
    assert atomic.sha256_of(tmp_path / "big") == hashlib.sha256(data).hexdigest()


def test_write_bytes_leaves_the_old_file_whole_for_a_reader_that_opened_it(tmp_path):
    target = tmp_path / "model.caffemodel"
    target.write_bytes(b"old weights")
    with open(target, "rb") as reader:
        atomic.write_bytes(target, b"new weights!")
        assert reader.read() == b"old weights"
    assert target.read_bytes() == b"new weights!"
    assert [p.name for p in tmp_path.iterdir()] == ["model.caffemodel"]


def test_probe_writable_leaves_nothing_and_raises_where_it_cannot_write(tmp_path):
    atomic.probe_writable(tmp_path)
    assert not list(tmp_path.iterdir())
    with pytest.raises(OSError):
        atomic.probe_writable(tmp_path / "missing")


def test_a_file_in_the_way_of_a_folder_is_named(tmp_path):
    (tmp_path / "plain").write_text("")
    assert atomic.file_in_the_way(tmp_path / "plain") == tmp_path / "plain"
    assert atomic.file_in_the_way(tmp_path / "plain" / "a" / "b") == tmp_path / "plain"
    assert atomic.file_in_the_way(tmp_path) is None
    assert atomic.file_in_the_way(tmp_path / "new" / "sub") is None
    assert atomic.make_folder(tmp_path / "plain" / "sub") == ("file", tmp_path / "plain")
    assert atomic.make_folder(tmp_path / "new" / "sub") is None
    assert (tmp_path / "new" / "sub").is_dir()


def test_open_as_mkdir_gives_the_mode_of_mkdir_under_the_umask(tmp_path):
    import tempfile
    folder = Path(tempfile.mkdtemp(dir=tmp_path))           # 0700
    mask = os.umask(0o022)
    try:
        atomic.open_as_mkdir(folder)
    finally:
        os.umask(mask)
    assert folder.stat().st_mode & 0o777 == 0o755
