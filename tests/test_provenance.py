"""pycount.util.provenance.commit(): the commit train.json and the audit name, read from a git
checkout made in a temporary folder (pointed at through provenance._ROOT)."""
import shutil
import subprocess
from pathlib import Path

import pytest

from pycount.util import provenance

ROOT = Path(__file__).resolve().parent.parent
needs_git = pytest.mark.skipif(shutil.which("git") is None,
                               reason="no git here (the Docker image has none)")


def _git(repo: Path, *args) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.email=a@b", "-c", "user.name=a",
                           *args], check=True, capture_output=True, text=True).stdout.strip()


def _repo(repo: Path, name: str, text: str) -> Path:
    """A new git repository at `repo` whose one commit holds the file `name`."""
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / name).write_text(text)
    _git(repo, "add", name)
    _git(repo, "commit", "-q", "-m", "one")
    return repo


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    """A git checkout with one committed file, taken for pycount's own; its short commit."""
    if shutil.which("git") is None:
        pytest.skip("no git here (the Docker image has none)")
    repo = _repo(tmp_path / "pycount", "tracked.py", "x = 1\n")
    monkeypatch.setattr(provenance, "_ROOT", repo)
    monkeypatch.setenv("PYCOUNT_COMMIT", "fallback0000")
    sha = _git(repo, "rev-parse", "HEAD")
    assert len(sha) == 40
    return repo, sha[:12]


def test_the_checkout_is_the_folder_above_the_package():
    assert provenance._ROOT == ROOT
    assert (provenance._ROOT / "pycount" / "util" / "provenance.py").exists()


def test_a_clean_checkout_gives_the_12_digit_commit(checkout):
    repo, short = checkout
    assert provenance.commit() == short


def test_an_edit_to_a_tracked_file_is_marked(checkout):
    repo, short = checkout
    (repo / "tracked.py").write_text("x = 2\n")
    assert provenance.commit() == short + "+changes"
    _git(repo, "add", "tracked.py")                        # staged: still not the commit
    assert provenance.commit() == short + "+changes"


def test_untracked_files_are_not_changes(checkout):
    repo, short = checkout
    (repo / "notes.txt").write_text("scratch\n")
    (repo / "runs").mkdir()
    (repo / "runs" / "train.json").write_text("{}")
    assert provenance.commit() == short


def test_the_dirty_check_reads_the_checkout_not_the_working_folder(checkout, tmp_path,
                                                                    monkeypatch):
    """commit() is called from wherever pycount runs: a clean folder elsewhere is not asked."""
    repo, short = checkout
    monkeypatch.chdir(_repo(tmp_path / "elsewhere", "a", "1"))
    assert provenance.commit() == short
    (repo / "tracked.py").write_text("x = 3\n")
    assert provenance.commit() == short + "+changes"


@needs_git
def test_a_repository_without_commits_has_no_commit(tmp_path, monkeypatch):
    """`git rev-parse HEAD` fails there (it still prints the folder, and "HEAD")."""
    _git(tmp_path, "init", "-q")
    monkeypatch.setattr(provenance, "_ROOT", tmp_path)
    monkeypatch.setenv("PYCOUNT_COMMIT", "fallback0000")
    assert provenance.commit() == "fallback0000"
    monkeypatch.delenv("PYCOUNT_COMMIT")
    assert provenance.commit() == "unknown"


def test_an_empty_pycount_commit_is_unknown(tmp_path, monkeypatch):
    monkeypatch.setattr(provenance, "_ROOT", tmp_path)                # not a checkout
    monkeypatch.setenv("PYCOUNT_COMMIT", "")
    assert provenance.commit() == "unknown"


def test_without_git_the_fallback_is_given(checkout, tmp_path, monkeypatch):
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))                            # no `git` to run
    assert provenance.commit() == "fallback0000"


def test_a_git_that_hangs_gives_the_fallback(checkout, monkeypatch):
    def hang(cmd, *a, timeout=None, **k):
        assert timeout == 10
        raise subprocess.TimeoutExpired(cmd, timeout)
    monkeypatch.setattr(subprocess, "run", hang)
    assert provenance.commit() == "fallback0000"
