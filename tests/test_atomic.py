"""All-or-nothing writes: a failure half-way leaves the previous file untouched, no temp files."""
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
