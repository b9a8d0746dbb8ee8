"""The stamp of a dataset folder that an LMDB records, and what changed in the folder since
(pycount.data.sources): which files it covers and how a change is said."""
import os

from pycount.data import sources


def _folder(tmp_path):
    root = tmp_path / "cells"
    (root / "train").mkdir(parents=True)
    (root / ".git").mkdir()
    (root / "train" / "001.png").write_bytes(b"png-1")
    (root / "train" / "001.csv").write_text("x,y\n1,2\n")
    (root / "train" / "002.TIF").write_bytes(b"tif")
    (root / "labels.mat").write_bytes(b"mat")
    (root / "pycount.toml").write_text("sigma = 3\n")
    (root / "README.txt").write_text("notes")              # not an image or annotation
    (root / ".hidden.png").write_bytes(b"h")
    (root / ".git" / "x.png").write_bytes(b"g")
    return root


def test_a_stamp_covers_the_images_and_annotations_by_relative_path_size_and_time(tmp_path):
    root = _folder(tmp_path)
    got = sources.stamp(root)
    assert got["root"] == str(root.resolve())
    assert sorted(got["files"]) == ["labels.mat", "pycount.toml", "train/001.csv",
                                    "train/001.png", "train/002.TIF"]
    st = (root / "train" / "001.png").stat()
    assert got["files"]["train/001.png"] == [5, st.st_mtime_ns]


def test_an_unchanged_folder_or_no_stamp_or_no_folder_says_nothing(tmp_path):
    root = _folder(tmp_path)
    recorded = sources.stamp(root)
    assert sources.changes(recorded) is None
    assert sources.changes(None) is None
    assert sources.changes({"root": str(root)}) is None                 # an older pycount's
    assert sources.changes({"root": "", "files": {}}) is None
    assert sources.changes({"root": str(tmp_path / "gone"), "files": recorded["files"]}) is None
    (root / "README.txt").write_text("other notes")
    assert sources.changes(recorded) is None


def test_changes_name_each_file_changed_added_or_removed_up_to_the_limit(tmp_path):
    root = _folder(tmp_path)
    recorded = sources.stamp(root)
    png = root / "train" / "001.png"
    st = png.stat()
    os.utime(png, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))        # same size, touched
    (root / "train" / "003.jpg").write_bytes(b"jpg")
    (root / "labels.mat").unlink()
    assert sources.changes(recorded) == (f"in {root.resolve()}: train/001.png changed, "
                                         f"train/003.jpg added, labels.mat removed")
    (root / "train" / "001.csv").write_text("x,y\n1,3\n")               # same size, edited
    (root / "pycount.toml").write_text("sigma = 4.5\n")                 # grown
    assert sources.changes(recorded) == (f"in {root.resolve()}: pycount.toml changed, "
                                         f"train/001.csv changed, train/001.png changed "
                                         f"and 2 more")
    assert sources.changes(recorded, limit=5).endswith("labels.mat removed")
