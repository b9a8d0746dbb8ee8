"""pycount.training.trainer's refusals, notes and bookkeeping, each pinned by what a user sees: the
message, the files left, the iterations logged, validated and kept. Each case trains the tiny
synthetic set for a few iterations at most (tests/conftest.py: tiny)."""
import csv
import dataclasses
import json
import shutil
from collections import namedtuple
from pathlib import Path

import pytest

pytest.importorskip("caffe", reason="run `make setup` to build Caffe")
from pycount import config  # noqa: E402
from pycount.data import lmdbio, prepare
from pycount.errors import TrainError
from pycount.training import trainer as train


def _edit_manifest(lmdb: Path, **changes) -> None:
    lmdbio.write_manifest(lmdb, {**lmdbio.read_manifest(lmdb), **changes})


def _log_iters(run: Path) -> list[int]:
    return [int(r["iter"]) for r in csv.DictReader(open(run / "train_log.csv"))]


def _short(model, **solver):
    """The tiny model with validations and snapshots every 5 iterations (or as given)."""
    s = dict(test_interval=5, snapshot=5, max_iter=10)
    s.update(solver)
    return dataclasses.replace(model, solver=dataclasses.replace(model.solver, **s))


# ------------------------------------------------------------------ checks before Caffe

def test_a_validation_lmdb_of_another_patch_size_is_refused(tiny):
    """The patch size is checked in the validation LMDB as well as the training one."""
    ds, model = tiny
    prepare.prepare(ds)
    val = config.lmdb_dir(ds) / "val_lmdb"
    _edit_manifest(val, stored_patch=60)
    with pytest.raises(TrainError, match=rf"^{val} holds 60 px patches but alexnet-lite on "
                                         rf"{ds.tag} expects 40 px"):
        train.Trainer(ds, model, max_iter=5).train(resume=False)
    assert not config.run_dir(ds, model).exists()


def test_a_validation_patch_beyond_the_classification_heads_classes_is_refused(tiny):
    """The C head's classes must hold the counts of the validation patches too."""
    ds, model = tiny
    prepare.prepare(ds)
    classes = config.n_classes(ds)
    val = config.lmdb_dir(ds) / "val_lmdb"
    _edit_manifest(val, count_histogram={"0": 5, str(classes): 1})
    with pytest.raises(TrainError, match=rf"^{val}: a patch holds {classes} cells, but the "
                                         rf"classification head \(HEAD=C\) of synthetic has "
                                         rf"classes 0\.\.{classes - 1} only"):
        train.Trainer(ds, model, head="C", max_iter=5).train(resume=False)
    assert not config.run_dir(ds, model, "C").exists()


def test_the_note_on_passes_over_a_cut_lmdb_counts_them(tiny, capsys):
    """train_patches=320, batch 16: 20 iterations read each patch once (no note), 30 read them
    1.5 times."""
    ds, model = tiny
    cut = dataclasses.replace(ds, train_patches=320)
    prepare.prepare(cut)
    capsys.readouterr()
    train.Trainer(cut, model, max_iter=20)._say_passes()
    assert capsys.readouterr().out == ""
    train.Trainer(cut, model, max_iter=30)._say_passes()
    out = capsys.readouterr().out
    assert "keeps 320 of the" in out and "this training reads 480, 1.5 passes over them" in out


def test_a_run_folder_that_cannot_be_written_is_refused_before_caffe(tiny, monkeypatch):
    from pycount.util import atomic
    ds, model = tiny
    prepare.prepare(ds)
    run = config.run_dir(ds, model)

    def read_only(folder):
        if Path(folder) == run:
            raise PermissionError(13, "Permission denied", str(Path(folder) / ".write-test"))
    monkeypatch.setattr(atomic, "probe_writable", read_only)
    with pytest.raises(TrainError, match=rf"^{run} cannot be written \(Permission denied\); make "
                                         rf"it writable for this user, or set PYCOUNT_RUNS"):
        train.Trainer(ds, model, max_iter=5).train(resume=False)
    assert not (run / "snapshots").exists() and not (run / "train_val.prototxt").exists()


def test_a_source_image_that_no_longer_reads_is_refused_not_called_unchanged(tiny, capsys):
    """An image rewritten since `make prepare` that cannot be read again: its content cannot be
    the one the LMDBs were written from, so the training is refused with the prepare command."""
    ds, model = tiny
    prepare.prepare(ds)
    image = prepare.dataset_root(ds) / f"{ds.train_ids[0]}cell.png"
    image.write_bytes(b"not a png any more")
    capsys.readouterr()
    with pytest.raises(TrainError, match=rf"is older than synthetic's images or annotations "
                                         rf"\(in .*: {image.name} changed\); run `make prepare "
                                         rf"DATASET=synthetic"):
        train.Trainer(ds, model, max_iter=5).train(resume=False)
    assert "the LMDBs stand" not in capsys.readouterr().out
    assert not config.run_dir(ds, model).exists()


def test_the_again_hint_names_the_head_only_when_it_is_not_r(tiny):
    ds, model = tiny
    prepare.prepare(ds)
    words = train.dataset_words(ds)
    assert train.Trainer(ds, model)._again() == (
        f"`make train {words} MODEL=alexnet-lite RESUME=0` trains it again from scratch")
    assert train.Trainer(ds, model, head="C")._again() == (
        f"`make train {words} MODEL=alexnet-lite HEAD=C RESUME=0` trains it again from scratch")


# ------------------------------------------------------------------ resuming

def test_a_resume_with_another_solver_says_so_and_goes_on(tiny, capsys):
    ds, model = tiny
    prepare.prepare(ds)
    train.Trainer(ds, model, max_iter=10).train(resume=False)
    run = config.run_dir(ds, model)
    capsys.readouterr()
    summary = train.Trainer(ds, model, max_iter=15).train(resume=True)
    out = capsys.readouterr().out
    assert (f"note: {run / 'solver.prototxt'} differs from today's solver (max_iter 15); "
            f"resuming with today's. For a run of today's settings alone, `make train "
            f"{train.dataset_words(ds)} MODEL=alexnet-lite RESUME=0` trains it again from "
            f"scratch") in out, out
    assert summary["iterations"] == 15 and summary["iterations_this_session"] == 5
    capsys.readouterr()
    train.Trainer(ds, model, max_iter=15).train(resume=True)        # the same solver: no note
    assert "differs from today's solver" not in capsys.readouterr().out


def test_a_snapshot_file_named_but_missing_is_refused_by_name(tiny):
    ds, model = tiny
    prepare.prepare(ds)
    train.Trainer(ds, model, max_iter=10).train(resume=False)
    snaps = config.run_dir(ds, model) / "snapshots"
    (snaps / "snap_iter_10.solverstate").unlink()
    with pytest.raises(TrainError, match=rf"^{snaps / 'snap_iter_10.solverstate'} is missing "
                                         rf"\(named by {snaps / 'latest.json'}\); the run folder "
                                         rf"is incomplete: train it again with RESUME=0$"):
        train.Trainer(ds, model, max_iter=20).train(resume=True)


@pytest.mark.parametrize("case", ["evaluated, model lost", "interrupted", "finished, model lost",
                                  "train.json damaged"])
def test_a_run_without_snapshots_is_refused_only_when_it_finished(tiny, case):
    """No snapshots/: a run that was evaluated, or whose train.json says it finished beside its
    model, is refused (training would remove them); any other starts again from scratch."""
    ds, model = tiny
    prepare.prepare(ds)
    train.Trainer(ds, model, max_iter=5).train(resume=False)
    run = config.run_dir(ds, model)
    shutil.rmtree(run / "snapshots")
    info = json.loads((run / "train.json").read_text())
    if case == "evaluated, model lost":
        (run / "metrics.json").write_text("{}")
        (run / "model.caffemodel").unlink()
    elif case == "interrupted":
        (run / "train.json").write_text(json.dumps({**info, "interrupted": True}))
    elif case == "finished, model lost":
        (run / "model.caffemodel").unlink()
    else:
        (run / "train.json").write_text("{garbage")
    if case == "evaluated, model lost":
        with pytest.raises(TrainError, match="holds a finished training but no snapshot"):
            train.Trainer(ds, model, max_iter=5).train(resume=True)
        assert (run / "metrics.json").exists()
        return
    again = train.Trainer(ds, model, max_iter=5).train(resume=True)
    assert again["iterations_this_session"] == 5 and "interrupted" not in again
    assert _log_iters(run) == [0, 5]


def test_a_finished_run_resumed_at_its_end_keeps_its_evaluation(tiny, capsys):
    """Nothing is trained: the model, and the results of `make eval` describing it, stand; a
    latest.json of an older pycount (no `validated`) is not validated again."""
    ds, model = tiny
    prepare.prepare(ds)
    train.Trainer(ds, model, max_iter=10).train(resume=False)
    run = config.run_dir(ds, model)
    (run / "metrics.json").write_text('{"mae": 1.0}')
    latest = run / "snapshots" / "latest.json"
    state = json.loads(latest.read_text())
    assert state["validated"] == 10
    del state["validated"]
    latest.write_text(json.dumps(state))
    model_bytes = (run / "model.caffemodel").read_bytes()
    capsys.readouterr()
    summary = train.Trainer(ds, model, max_iter=10).train(resume=True)
    assert "which the interruption skipped" not in capsys.readouterr().out
    assert summary["iterations_this_session"] == 0
    assert (run / "metrics.json").read_text() == '{"mae": 1.0}'
    assert (run / "model.caffemodel").read_bytes() == model_bytes


def test_a_resume_without_its_log_starts_a_new_one_at_the_snapshot(tiny):
    """No row 0 is made up for a log begun again mid-run: the first row is the resumed one."""
    ds, model = tiny
    prepare.prepare(ds)
    train.Trainer(ds, model, max_iter=10).train(resume=False)
    run = config.run_dir(ds, model)
    (run / "train_log.csv").unlink()
    train.Trainer(ds, model, max_iter=15).train(resume=True)
    assert _log_iters(run) == [15]


def test_a_resume_between_intervals_logs_validates_and_snapshots_on_them(tiny, monkeypatch):
    """Stopped at iteration 3, resumed to 40 (validations every 30, log lines every 5): the
    steps go back to the intervals, and the last iteration, off the interval, is validated and
    snapshotted."""
    ds, model = tiny
    prepare.prepare(ds)
    monkeypatch.setattr(config, "DISPLAY_INTERVAL", 5)
    step, keep = train._Session.step, train._Session.validate_and_keep
    validated = []

    def three_then_stop(self, k):
        step(self, 3)
        raise KeyboardInterrupt

    def spy(self):
        validated.append(self.solver.iter)
        return keep(self)
    monkeypatch.setattr(train._Session, "step", three_then_stop)
    with pytest.raises(KeyboardInterrupt):
        train.Trainer(ds, model, max_iter=40).train(resume=False)
    run = config.run_dir(ds, model)
    assert json.loads((run / "snapshots" / "latest.json").read_text())["iter"] == 3
    monkeypatch.setattr(train._Session, "step", step)
    monkeypatch.setattr(train._Session, "validate_and_keep", spy)
    summary = train.Trainer(ds, model, max_iter=40).train(resume=True)
    assert validated == [30, 40]
    assert _log_iters(run) == [0, 3, 5, 10, 15, 20, 25, 30, 35, 40]
    rows = list(csv.DictReader(open(run / "train_log.csv")))
    assert [r["iter"] for r in rows if r["val_mae"]] == ["0", "30", "40"]
    assert json.loads((run / "snapshots" / "latest.json").read_text())["iter"] == 40
    assert summary["iterations"] == 40 and summary["iterations_this_session"] == 37
    ids = prepare.split(ds)
    assert summary["train_images"] == ids["train"] and summary["val_images"] == ids["val"]


def test_a_stop_before_the_first_step_writes_no_snapshot(tiny, monkeypatch):
    """Ctrl-C before any iteration of the session: nothing new to keep, so no snapshot."""
    ds, model = tiny
    prepare.prepare(ds)

    def stop(self, k):
        raise KeyboardInterrupt
    monkeypatch.setattr(train._Session, "step", stop)
    with pytest.raises(KeyboardInterrupt):
        train.Trainer(ds, model, max_iter=10).train(resume=False)
    run = config.run_dir(ds, model)
    assert not list((run / "snapshots").iterdir())
    info = json.loads((run / "train.json").read_text())
    assert info["interrupted"] is True and info["iterations"] == 0
    assert _log_iters(run) == [0]


def test_a_stop_during_a_snapshot_logs_its_iteration_once(tiny, monkeypatch):
    """Ctrl-C while the snapshot after a logged iteration is written: the interruption's
    snapshot is taken, and the iteration is not logged a second time."""
    ds, model = tiny
    prepare.prepare(ds)
    model = _short(model)
    real, calls = train._Session.snapshot, []

    def stop_first(self):
        calls.append(self.solver.iter)
        if len(calls) == 1:
            raise KeyboardInterrupt
        real(self)
    monkeypatch.setattr(train._Session, "snapshot", stop_first)
    with pytest.raises(KeyboardInterrupt):
        train.Trainer(ds, model).train(resume=False)
    run = config.run_dir(ds, model)
    assert calls == [5, 5] and _log_iters(run) == [0, 5]
    assert json.loads((run / "snapshots" / "latest.json").read_text())["iter"] == 5


def test_a_training_refused_during_an_evaluation_leaves_the_run_unlocked(tiny):
    """The refusal's traceback kept alive (a notebook's last exception) must not hold the lock."""
    from pycount.util.runlock import EvalLock, in_training
    ds, model = tiny
    prepare.prepare(ds)
    run = config.run_dir(ds, model)
    run.mkdir(parents=True)
    held = EvalLock(run)
    try:
        with pytest.raises(TrainError, match="is being evaluated now") as refused:
            train.Trainer(ds, model, max_iter=5).train(resume=False)
        assert refused.value is not None and not in_training(run)
    finally:
        held.release()

# ------------------------------------------------------------------ the weights kept

@pytest.mark.parametrize("keep", ["best", "last"])
def test_the_weights_kept_follow_keep_and_a_tie_is_no_better(tiny, monkeypatch, keep):
    """Validations at 5 and 10 score the same: `best` keeps iteration 5's weights (written
    once), `last` writes them at each validation; the best recorded is iteration 5's either
    way."""
    ds, model = tiny
    prepare.prepare(ds)
    model = dataclasses.replace(_short(model), keep=keep)
    monkeypatch.setattr(train._Session, "validate",
                        lambda self: {5: 2.0, 10: 2.0}.get(self.solver.iter, 9.0))
    real, saved = train._save_weights, []

    def spy(net, path):
        saved.append(path.name)
        real(net, path)
    monkeypatch.setattr(train, "_save_weights", spy)
    summary = train.Trainer(ds, model).train(resume=False)
    assert saved == ["model.caffemodel"] * (1 if keep == "best" else 2)
    assert (summary["best_iter"], summary["best_val_patch_mae"]) == (5, 2.0)
    run = config.run_dir(ds, model)
    latest = json.loads((run / "snapshots" / "latest.json").read_text())
    assert (latest["best_iter"], latest["best_val_mae"], latest["validated"]) == (5, 2.0, 10)


# ------------------------------------------------------------------ disk space

FakeUsage = namedtuple("FakeUsage", "total used free")


@pytest.mark.parametrize("resumed", [False, True])
def test_a_snapshot_that_does_not_fit_is_refused_with_the_room_it_needs(tiny, monkeypatch,
                                                                       resumed):
    """Weights of 10 MiB: a pair of caffemodel and SGD solverstate needs 20 MiB, and 15 MiB free
    is not enough; the message says where `make train` would resume from."""
    ds, model = tiny
    prepare.prepare(ds)
    if resumed:
        train.Trainer(ds, model, max_iter=10).train(resume=False)
    snaps = config.run_dir(ds, model) / "snapshots"
    real = shutil.disk_usage
    monkeypatch.setattr(train, "_weight_bytes", lambda net: 10 * 2**20)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: FakeUsage(0, 0, 15 * 2**20)
                        if Path(p) == snaps else real(p))
    then = "from iteration 10" if resumed else "from the start"
    with pytest.raises(TrainError, match=rf"^{snaps}: 15 MB free, a snapshot needs about 20 MB; "
                                         rf"free some space, then make train resumes {then}$"):
        train.Trainer(ds, model, max_iter=20).train(resume=resumed)
    if resumed:
        assert json.loads((snaps / "latest.json").read_text())["iter"] == 10


# ------------------------------------------------------------------ the weight average

def test_a_snapshot_before_the_averaging_begins_holds_no_average_and_resumes(tiny, monkeypatch):
    """A narrow fcrn averaging after iteration 10 of 20, stopped at 5: the snapshot names no
    average file (there is none to keep yet), and the resumed run averages 11..20."""
    ds, _ = tiny
    ds = dataclasses.replace(ds, crop=64, crop_stride=64, rot_step=90)
    base = config.model("fcrn")
    solver = dataclasses.replace(base.solver, batch=8, max_iter=20, test_interval=10,
                                 snapshot=5, stepvalues=(), average_after=10)
    model = dataclasses.replace(base, widths=(8, 16, 32, 64), solver=solver)
    prepare.prepare(ds, model=model)
    monkeypatch.setattr(config, "DISPLAY_INTERVAL", 5)
    step = train._Session.step

    def stop_at_5(self, k):
        step(self, k)
        if self.solver.iter >= 5:
            raise KeyboardInterrupt
    monkeypatch.setattr(train._Session, "step", stop_at_5)
    with pytest.raises(KeyboardInterrupt):
        train.Trainer(ds, model).train(resume=False)
    snaps = config.run_dir(ds, model) / "snapshots"
    latest = json.loads((snaps / "latest.json").read_text())
    assert latest["iter"] == 5 and "average" not in latest
    assert not list(snaps.glob("*.average.npz"))
    monkeypatch.setattr(train._Session, "step", step)
    summary = train.Trainer(ds, model).train(resume=True)
    assert summary["iterations"] == 20 and summary["averaged_iterations"] == 10


def test_a_lost_best_model_written_again_at_the_end_is_the_averaged_one(tiny):
    """A run that averages its weights and keeps its best, resumed at its end after its
    model.caffemodel was lost, with the best at the last iteration: the file written again holds
    the mean weights its validation saw, not the solver's own (they were until 2026-12-07)."""
    import caffe
    import numpy as np
    ds, _ = tiny
    ds = dataclasses.replace(ds, crop=64, crop_stride=64, rot_step=90)
    base = config.model("fcrn")
    solver = dataclasses.replace(base.solver, batch=8, max_iter=40, test_interval=20,
                                 snapshot=20, stepvalues=(), average_after=30)
    model = dataclasses.replace(base, widths=(8, 16, 32, 64), solver=solver, keep="best")
    prepare.prepare(ds, model=model)
    train.Trainer(ds, model).train(resume=False)
    run = config.run_dir(ds, model)
    snaps = run / "snapshots"
    latest = json.loads((snaps / "latest.json").read_text())
    assert latest["iter"] == 40 and latest.get("average")
    latest.update(best_iter=40, best_val_mae=-1.0)     # the best is the last iteration's
    (snaps / "latest.json").write_text(json.dumps(latest))
    (run / "model.caffemodel").unlink()
    train.Trainer(ds, model).train(resume=True)
    kept = caffe.Net(str(run / "deploy.prototxt"), str(run / "model.caffemodel"), caffe.TEST)
    own = caffe.Net(str(run / "deploy.prototxt"), str(snaps / latest["caffemodel"]), caffe.TEST)
    with np.load(snaps / latest["average"]) as z:
        mean = z["arr_0"] / int(z["n"])
    k = kept.params["conv1"][0].data
    assert not np.allclose(k, own.params["conv1"][0].data)
    np.testing.assert_allclose(k, mean, rtol=1e-5, atol=1e-7)
