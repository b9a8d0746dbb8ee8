"""The run folder's locks (pycount.util.runlock): one training of a run at a time, marked so
that another pycount can tell it; LMDB readers sharing their lock beside the database; one
evaluation and one count output at a time. No Caffe needed."""
import pytest

from pycount.errors import TrainError


def test_a_run_lock_is_taken_once_marked_and_released_unmarked(tmp_path):
    """Locks of one process conflict as those of two do: each open file holds its own flock."""
    from pycount.util import runlock
    run = tmp_path / "run"
    run.mkdir()
    (run / ".train.lock").write_text("left by an older pycount\n")
    assert not runlock.in_training(run)
    lock = runlock.RunLock(run)
    assert runlock.in_training(run) and not runlock.in_evaluation(run)
    assert (run / ".train.lock").read_text() == "lmdbs held by ReadersLock\n"   # marked, alone
    assert not runlock.reads_unknown(run)
    with pytest.raises(TrainError, match="is being trained by another process"):
        runlock.RunLock(run)
    lock.release()
    assert not runlock.in_training(run) and (run / ".train.lock").read_text() == ""
    runlock.RunLock(run).release()                  # free again


def test_a_run_without_a_lock_file_or_an_unmarked_one_is_read_as_unknown(tmp_path):
    from pycount.util import runlock
    assert not runlock.in_training(tmp_path) and not runlock.in_evaluation(tmp_path)
    assert runlock.reads_unknown(tmp_path)                        # no lock file
    for text in (b"", b"\xff\xfe"):                                # unmarked, not text
        (tmp_path / ".train.lock").write_bytes(text)
        assert runlock.reads_unknown(tmp_path)


def test_readers_locks_are_shared_beside_the_lmdb_and_released(tmp_path):
    from pycount.util import runlock
    lmdb = tmp_path / "train_lmdb"
    lmdb.mkdir()
    assert not runlock.in_use(lmdb)
    first = runlock.ReadersLock([lmdb, tmp_path / "missing" / "val_lmdb"])  # (no folder: skipped)
    second = runlock.ReadersLock([lmdb])            # two trainings read one LMDB at once
    assert (tmp_path / ".train_lmdb.readers").is_file() and not list(lmdb.iterdir())
    assert runlock.in_use(lmdb) and len(first.files) == 1
    first.release()
    assert runlock.in_use(lmdb)
    second.release()
    assert not runlock.in_use(lmdb)


def test_an_evaluation_lock_and_a_count_lock_refuse_a_second_holder_until_released(tmp_path):
    from pycount.errors import RunError
    from pycount.util import runlock
    for take, name in ((runlock.EvalLock, ".eval.lock"), (runlock.OutLock, ".count.lock")):
        held = take(tmp_path)
        assert (tmp_path / name).exists()
        assert runlock.in_evaluation(tmp_path) == (name == ".eval.lock")
        assert not runlock.in_training(tmp_path)
        with pytest.raises(RunError) as busy:
            take(tmp_path)
        assert str(tmp_path / name) in str(busy.value)
        held.release()
        assert not runlock.in_evaluation(tmp_path)
        take(tmp_path).release()                    # free again
