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
