"""A resumed training meets a damaged file of its run folder: the weight average beside a density
model's snapshot, train_log.csv, or a solverstate that does not belong to the net. Each is one
TrainError naming the file and the fix before Caffe reads anything, never a traceback or a Caffe
abort, and never a training that goes on with what it cannot use; a figure that cannot be drawn
costs only the figure."""
import csv
import dataclasses
import json
import os
import pickle
import re
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("caffe", reason="run `make setup` to build Caffe")
from pycount import config  # noqa: E402
from pycount.data import prepare
from pycount.errors import TrainError
from pycount.training import trainer as train
from pycount.training.runlog import plot_log, trim_log


# ---------------------------------------------------------------------------- the weight average

@pytest.fixture
def averaged(tiny):
    """A narrow fcrn on the tiny set trained 40 iterations, the last 10 averaged: (dataset, the
    same model to 60 iterations, the snapshot's average file, its arrays and count)."""
    ds, _ = tiny
    ds = dataclasses.replace(ds, crop=64, crop_stride=64, rot_step=90)
    base = config.model("fcrn")
    solver = dataclasses.replace(base.solver, batch=8, max_iter=40, test_interval=20, snapshot=20,
                                 stepvalues=(), average_after=30)
    model = dataclasses.replace(base, widths=(8, 16, 32, 64), solver=solver)
    prepare.prepare(ds, model=model)
    assert train.Trainer(ds, model).train(resume=False)["averaged_iterations"] == 10
    snaps = config.run_dir(ds, model) / "snapshots"
    path = snaps / json.loads((snaps / "latest.json").read_text())["average"]
    with np.load(path) as z:
        sums = [z[f"arr_{i}"] for i in range(len(z.files) - 1)]
        n = int(z["n"])
    longer = dataclasses.replace(model, solver=dataclasses.replace(solver, max_iter=60))
    return ds, longer, path, sums, n


def _damage_average(path, how, sums, n):
    raw = path.read_bytes()
    if how == "deleted":
        path.unlink()
    elif how == "cut short":
        path.write_bytes(raw[:len(raw) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "garbled":               # bytes overwritten inside the arrays, size unchanged
        middle = len(raw) // 2
        path.write_bytes(raw[:middle] + b"\x7f" * 64 + raw[middle + 64:])
    elif how == "pickled":
        path.write_bytes(pickle.dumps(sums))
    elif how == "a lone array":
        with open(path, "wb") as f:
            np.save(f, sums[0])
    else:
        arrays, count = list(sums), {"n": n}
        if how == "without its count":
            count = {}
        elif how == "an array short":
            arrays.pop()
        elif how == "an array more":
            arrays.append(np.zeros(3))
        elif how == "a count of zero":
            count = {"n": 0}
        elif how == "a sum not finite":
            arrays[0] = arrays[0].copy()
            arrays[0].flat[0] = np.nan
        with open(path, "wb") as f:
            np.savez(f, *arrays, **count)


@pytest.mark.parametrize("how,needle", [
    ("deleted", "is missing"),
    ("cut short", r"is damaged \(BadZipFile"),
    ("empty", r"is damaged \(EOFError"),
    ("garbled", r"is damaged \(BadZipFile"),
    ("pickled", r"is damaged \(ValueError"),
    ("a lone array", r"is damaged \(ValueError: one .npy array"),
    ("without its count", "parameter sums and no count of iterations"),
    ("an array short", "holds {short} parameter sums, where this net's weight average has {k}"),
    ("an array more", "holds {more} parameter sums, where this net's weight average has {k}"),
    ("a count of zero", "its count of averaged iterations is 0"),
    ("a sum not finite", "a sum is not finite"),
])
def test_a_damaged_weight_average_is_named_when_resuming(averaged, how, needle):
    """Resuming a density run read snap_iter_N.average.npz as it came: a missing, cut or garbled
    file, or one of pickled data or without its count, was a traceback (FileNotFoundError,
    BadZipFile, EOFError, ValueError, KeyError); one array more than the net's blobs, a count
    of 0 or a NaN sum were taken in and trained on."""
    ds, longer, path, sums, n = averaged
    _damage_average(path, how, sums, n)
    needle = needle.format(k=len(sums), short=len(sums) - 1, more=len(sums) + 1)
    with pytest.raises(TrainError) as refused:
        train.Trainer(ds, longer).train(resume=True)
    message = str(refused.value)
    assert message.startswith(str(path)) and re.search(needle, message), message
    assert message.endswith("train again with RESUME=0"), message


def test_a_whole_weight_average_still_resumes(averaged):
    """The checks take the file a snapshot wrote: the average goes on from its 10 iterations."""
    ds, longer, *_ = averaged
    assert train.Trainer(ds, longer).train(resume=True)["averaged_iterations"] == 30


def _as_trained(longer):
    """The fixture's model as its run was trained: 40 iterations, averaged after 30."""
    return dataclasses.replace(longer, solver=dataclasses.replace(longer.solver, max_iter=40))


def test_iters_that_move_the_average_past_the_snapshot_start_it_afresh(averaged, capsys):
    """ITERS=80 averages from iteration 61 (the schedule stretched): the 10 iterations the
    snapshot averaged under the 40-iteration schedule (31-40) are dropped, and said; they were
    kept and added to, so the model mixed two spans that neither schedule names."""
    ds, longer, *_ = averaged
    result = train.Trainer(ds, _as_trained(longer), max_iter=80).train(resume=True)
    assert result["averaged_iterations"] == 20
    out = capsys.readouterr().out
    assert ("averages the weights from iteration 61, after this run's 40; its weight average "
            "covers iterations 31-40 under the schedule it was trained with, which is dropped"
            in out), out


def test_iters_that_move_the_average_before_the_snapshot_are_refused(averaged):
    """ITERS=44 averages from iteration 34 (30 x 1.1), but the run at 40 holds the mean of 31-40:
    the mean of 34-40 cannot be rebuilt from it."""
    ds, longer, path, *_ = averaged
    run = path.parent.parent
    before = {f: f.read_bytes() for f in run.rglob("*") if f.is_file()}
    with pytest.raises(TrainError) as refused:
        train.Trainer(ds, _as_trained(longer), max_iter=44).train(resume=True)
    message = str(refused.value)
    assert ("has trained 40 iterations and its weight average covers iterations 31-40, where a "
            "training of 44 iterations averages them from iteration 34: that average cannot be "
            "rebuilt" in message), message
    # 53 x 30 / 40 = 39.75: averaging from iteration 41 again
    assert message.endswith("ITERS=53 or more to train it further, or RESUME=0 to train 44 from "
                            "scratch"), message
    # the run is left as it was: its solver.prototxt was rewritten for the refused schedule
    assert {f: f.read_bytes() for f in run.rglob("*") if f.is_file()} == before
    result = train.Trainer(ds, _as_trained(longer), max_iter=53).train(resume=True)
    assert result["averaged_iterations"] == 13                    # 41..53, none of 31..40


# ---------------------------------------------------------------------------- train_log.csv

@pytest.fixture
def logged(tiny):
    """The tiny set's alexnet-lite trained 30 iterations: (dataset, model, run folder); its
    log has rows at iterations 0 (validated), 20 and 30 (validated)."""
    ds, model = tiny
    prepare.prepare(ds)
    train.Trainer(ds, model, max_iter=30).train(resume=False)
    run = config.run_dir(ds, model)
    rows = list(csv.reader(open(run / "train_log.csv")))
    assert [r[0] for r in rows] == ["iter", "0", "20", "30"] and rows[1][4] and rows[3][4]
    return ds, model, run


def _edit_cell(log, iteration: str, column: str, value: str) -> None:
    rows = list(csv.reader(open(log)))
    for r in rows[1:]:
        if r[0] == iteration:
            r[rows[0].index(column)] = value
    with open(log, "w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)


@pytest.mark.parametrize("iteration,column,value", [("20", "loss", "abc"),
                                                    ("0", "val_mae", "xyz"),
                                                    ("20", "lr", "")])
def test_a_log_row_whose_numbers_do_not_parse_is_dropped_and_the_training_ends_well(
        logged, capsys, iteration, column, value):
    """A loss of 'abc' or a validation MAE of 'xyz' was kept by trim_log and failed the plot, a
    ValueError at the end of an otherwise finished training."""
    ds, model, run = logged
    log = run / "train_log.csv"
    _edit_cell(log, iteration, column, value)
    assert train.Trainer(ds, model, max_iter=40).train(resume=True)["iterations"] == 40
    rows = list(csv.DictReader(open(log)))
    assert [r["iter"] for r in rows] == [i for i in ("0", "20", "30", "40") if i != iteration]
    assert all(float(r["loss"]) > 0 for r in rows)
    assert "not drawn" not in capsys.readouterr().out
    assert (run / "loss.png").stat().st_mtime >= log.stat().st_mtime


@pytest.mark.parametrize("damage,needle", [
    ("header without loss", "does not start with pycount's header"),
    ("columns in another order", "does not start with pycount's header"),
    ("a folder", "is a folder, where the training log should be a file"),
])
def test_a_log_the_training_cannot_go_on_with_is_named_before_it_trains(logged, damage, needle):
    """A header of `iter,seconds` dropped every row, the training then ran and failed at the end
    (KeyError 'loss' in the plot); columns in another order took rows in the trainer's order; a
    folder in the log's place was an IsADirectoryError."""
    ds, model, run = logged
    log = run / "train_log.csv"
    text = log.read_text()
    if damage == "header without loss":
        log.write_text("iter,seconds\n" + text.split("\n", 1)[1])
    elif damage == "columns in another order":
        log.write_text(text.replace("iter,loss,lr,seconds,val_mae", "iter,lr,loss,seconds,val_mae"))
    else:
        log.unlink()
        log.mkdir()
    before = log.read_text() if log.is_file() else None
    with pytest.raises(TrainError, match=re.escape(str(log)) + " " + needle):
        train.Trainer(ds, model, max_iter=40).train(resume=True)
    assert json.loads((run / "snapshots" / "latest.json").read_text())["iter"] == 30
    assert (log.read_text() if log.is_file() else None) == before      # nothing trained


def test_a_figure_that_cannot_be_written_does_not_fail_a_finished_training(logged, capsys):
    """loss.png is drawn last; a folder in its place (or a full disk) was a traceback after the
    training had finished and written its snapshots."""
    ds, model, run = logged
    (run / "loss.png").unlink()
    (run / "loss.png").mkdir()
    (run / "loss.png" / "keep").write_text("")
    summary = train.Trainer(ds, model, max_iter=40).train(resume=True)
    assert summary["iterations"] == 40
    assert json.loads((run / "train.json").read_text())["iterations"] == 40
    assert f"note: {run / 'loss.png'} was not drawn" in capsys.readouterr().out


def test_the_plot_draws_the_rows_that_parse_and_notes_a_log_it_cannot_read(tmp_path, capsys):
    """A log edited during a training reaches the plot untrimmed: its whole rows are drawn, and
    a log without pycount's columns is a note, not a KeyError."""
    log, png = tmp_path / "run" / "train_log.csv", tmp_path / "run" / "loss.png"
    log.parent.mkdir()
    log.write_text("iter,loss,lr,seconds,val_mae\n0,2.0,0.01,0.0,3.0\n20,abc,0.01,1.0,\n"
                   "30,1.0,0.01,2.0,xyz\n40,0.5,0.01\n50,0.4,0.01,3.0,1.5\n")
    plot_log(log, png)
    assert png.stat().st_size > 0 and "not drawn" not in capsys.readouterr().out
    png.unlink()
    log.write_text("iter,seconds\n0,0.0\n20,1.0\n")
    plot_log(log, png)
    assert not png.exists()
    assert f"note: {png} was not drawn" in capsys.readouterr().out


def test_trim_log_keeps_the_whole_rows_up_to_the_snapshot_and_returns_their_time(tmp_path):
    """The rows past the snapshot go, and so do rows not as the trainer writes them (an
    iteration that is not a count, a field too many); the seconds of the last row kept are
    where the resumed training's clock goes on."""
    log = tmp_path / "train_log.csv"
    assert trim_log(log, 30) == 0.0 and not log.exists()        # a first training: no time yet
    head = "iter,loss,lr,seconds,val_mae\n"
    kept = "0,2.0,0.01,1.5,3.0\n20,1.0,0.01,4.5,\n30,0.8,0.001,6.25,2.0\n"
    log.write_text(head + "0,2.0,0.01,1.5,3.0\n-5,1.1,0.01,2.0,\n20,1.0,0.01,4.5,\n"
                   "25,0.9,0.01,5.0,1.0,7\n30,0.8,0.001,6.25,2.0\n40,0.5,0.001,9.0,1.0\n")
    assert trim_log(log, 30) == 6.25
    assert log.read_text() == head + kept
    assert trim_log(log, 30) == 6.25 and log.read_text() == head + kept
    log.write_text(head + "x1,0.7,0.01,7.0,\n")
    assert trim_log(log, 30) == 0.0 and log.read_text() == head
    log.write_text("")
    assert trim_log(log, 30) == 0.0 and log.read_text() == ""


@pytest.mark.parametrize("text", ["iter,loss,lr,seconds\n0,2.0,0.01,1.5\n",
                                  "iter,loss,lr,seconds,val_mae,note\n0,2.0,0.01,1.5,,\n",
                                  "iter,lr,loss,seconds,val_mae\n0,0.01,2.0,1.5,\n"])
def test_trim_log_refuses_a_header_that_is_not_pycounts_and_leaves_the_log(tmp_path, text):
    log = tmp_path / "train_log.csv"
    log.write_text(text)
    with pytest.raises(TrainError, match=re.escape(str(log)) + " does not start with pycount's "
                       r"header \(iter,loss,lr,seconds,val_mae\); delete it to resume"):
        trim_log(log, 30)
    assert log.read_text() == text


def test_trim_log_names_a_log_that_is_not_text(tmp_path):
    log = tmp_path / "train_log.csv"
    log.write_bytes(b"iter,loss,lr,seconds,val_mae\n0,\xff\xfe,0.01,1.5,\n")
    with pytest.raises(TrainError, match=re.escape(str(log)) + r" is damaged "
                       r"\(UnicodeDecodeError\); delete it to resume"):
        trim_log(log, 30)


def test_a_log_without_a_whole_row_draws_nothing_and_says_nothing(tmp_path, capsys):
    log, png = tmp_path / "train_log.csv", tmp_path / "loss.png"
    log.write_text("iter,loss,lr,seconds,val_mae\n0,2.0,0.01\n")
    plot_log(log, png)
    assert not png.exists() and capsys.readouterr().out == ""


# ---------------------------------------------------------------------------- the solverstate

def _resume_in_subprocess(tmp_path, ds, model, max_iter):
    """`make train` resuming in a process of its own, since a Caffe abort would end pytest: its
    exit status and output (a PycountError printed as the CLI prints it, exit status 2)."""
    (tmp_path / "plan.pkl").write_bytes(pickle.dumps((ds, model)))
    script = tmp_path / "resume.py"
    script.write_text(
        "import pickle, sys\n"
        "from pycount.errors import PycountError\n"
        "from pycount.training import trainer as train\n"
        f"ds, model = pickle.loads(open({str(tmp_path / 'plan.pkl')!r}, 'rb').read())\n"
        "try:\n"
        f"    s = train.Trainer(ds, model, max_iter={max_iter}).train(resume=True)\n"
        "except PycountError as e:\n"
        "    print(f'pycount: error: {e}')\n"
        "    sys.exit(2)\n"
        "print('iterations', s['iterations'])\n")
    proc = subprocess.run([sys.executable, str(script)], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=600,
                          env=dict(os.environ, PYTHONPATH=str(config.ROOT)))
    return proc.returncode, proc.stdout.decode()


def _edit_solverstate(path, edit) -> None:
    from caffe.proto import caffe_pb2
    state = caffe_pb2.SolverState()
    state.ParseFromString(path.read_bytes())
    edit(state)
    path.write_bytes(state.SerializeToString())


def _legacy(blob, dims) -> None:
    """The blob's shape in the old form: num, channels, height and width."""
    blob.ClearField("shape")
    blob.num, blob.channels, blob.height, blob.width = dims


def _damage_solverstate(state, how: str) -> str:
    """Damage the parsed solverstate as `how` says; the words the refusal must hold."""
    first = tuple(state.history[0].shape.dim)         # conv1's weights: 4 axes
    size = int(np.prod(first))
    if how == "a history blob deleted":
        del state.history[-1]
        return (f"holds {len(state.history)} history blobs, where the SGDSolver of this net "
                f"keeps {len(state.history) + 1}")
    if how == "a history blob of another shape":
        swapped = (first[1], first[0], *first[2:])
        state.history[0].shape.dim[:] = swapped
        return re.escape(f"history blob 0 is {swapped}, where blob 0 of layer 'conv1' is {first}")
    if how == "a history blob cut short":
        del state.history[0].data[-1]
        return f"history blob 0 holds {size - 1} values for the {size} of blob 0 of layer 'conv1'"
    if how == "an old-style shape that differs":
        _legacy(state.history[0], (1, 1, 1, size))
        return re.escape(f"history blob 0 is (1, 1, 1, {size}), where blob 0 of layer 'conv1' is "
                         f"{first}")
    assert how == "the state of another iteration"
    state.iter = 20
    return "is the solver's state at iteration 20, but .*latest.json names it with the weights " \
           "of iteration 30"


@pytest.mark.parametrize("how", ["a history blob deleted", "a history blob of another shape",
                                 "a history blob cut short", "an old-style shape that differs",
                                 "the state of another iteration", "another head's solverstate"])
def test_a_solverstate_that_does_not_fit_the_net_is_refused_before_caffe(tiny, tmp_path, how):
    """Caffe aborted on a history of another length (Check failed: state.history_size() ==
    history_.size()) and on one blob's values cut short, and took blobs of another shape (the C
    head's solverstate in the R head's run) and a solverstate of another iteration than
    latest.json's without a word: the training went on."""
    ds, model = tiny
    prepare.prepare(ds)
    train.Trainer(ds, model, max_iter=30).train(resume=False)
    snaps = config.run_dir(ds, model) / "snapshots"
    state = snaps / json.loads((snaps / "latest.json").read_text())["solverstate"]
    if how == "another head's solverstate":
        train.Trainer(ds, model, head="C", max_iter=30).train(resume=False)
        other = config.run_dir(ds, model, "C") / "snapshots" / state.name
        state.write_bytes(other.read_bytes())
        # the same layers; the last one scores each count 0..max_patch_count, not one number
        needle = r"history blob \d+ is \(\d+, 64\), where blob 0 of layer '\w+' is \(1, 64\)"
    else:
        words = []
        _edit_solverstate(state, lambda s: words.append(_damage_solverstate(s, how)))
        needle = words[0]
    rc, out = _resume_in_subprocess(tmp_path, ds, model, 40)
    assert rc == 2 and f"pycount: error: {state}" in out and re.search(needle, out), out[-3000:]
    assert "RESUME=0" in out and "Check failed" not in out and "Traceback" not in out
    assert "resuming from" not in out and "iterations 40" not in out
    assert json.loads((snaps / "latest.json").read_text())["iter"] == 30


def test_a_solverstate_with_old_style_shapes_that_fit_resumes(tiny):
    """Caffe still reads a history blob's shape as num, channels, height and width, matched to
    the parameter's shape with 1s in front: such a solverstate is not refused."""
    ds, model = tiny
    prepare.prepare(ds)
    train.Trainer(ds, model, max_iter=30).train(resume=False)
    snaps = config.run_dir(ds, model) / "snapshots"
    state = snaps / json.loads((snaps / "latest.json").read_text())["solverstate"]

    def old_style(s):
        for blob in s.history:
            dims = tuple(blob.shape.dim)
            _legacy(blob, (1,) * (4 - len(dims)) + dims)
    _edit_solverstate(state, old_style)
    assert train.Trainer(ds, model, max_iter=40).train(resume=True)["iterations_this_session"] \
        == 10


def _one_layer_net():
    """A stand-in for a Caffe net of one layer, conv1, of one 2 x 2 blob (4 values)."""
    from types import SimpleNamespace
    return SimpleNamespace(params={"conv1": [SimpleNamespace(data=np.zeros((2, 2), np.float32),
                                                             shape=(2, 2))]})


def test_a_caffemodel_layer_of_another_size_is_refused(tmp_path):
    """Each layer's blobs are matched to the net's by their sizes: Caffe took 3 values for 4."""
    from caffe.proto import caffe_pb2
    from pycount.training import snapshots
    param = caffe_pb2.NetParameter()
    layer = param.layer.add()
    layer.name = "conv1"
    layer.blobs.add().data.extend([0.5] * 3)
    path = tmp_path / "snap_iter_30.caffemodel"
    path.write_bytes(param.SerializeToString())
    with pytest.raises(TrainError) as err:
        snapshots.check_snapshot_weights(_one_layer_net(), path)
    assert str(err.value) == (f"{path}: layer 'conv1' holds [3] values, the net [4]: written by "
                              f"another net; train again with RESUME=0")
    layer.blobs[0].data.append(0.5)                 # all 4: taken
    path.write_bytes(param.SerializeToString())
    snapshots.check_snapshot_weights(_one_layer_net(), path)


def test_a_solverstate_of_a_later_iteration_or_a_diff_cut_short_is_refused(tmp_path):
    """A solverstate at iteration 40 beside latest.json's 30 is a mixed-up pair as well as one
    at 20; a history blob whose diff holds 3 of its 4 values is damaged (no diff, or all 4,
    is whole)."""
    from types import SimpleNamespace

    from caffe.proto import caffe_pb2
    from pycount.training import snapshots
    path = tmp_path / "snap_iter_30.solverstate"
    state = caffe_pb2.SolverState(iter=40)
    blob = state.history.add()
    blob.shape.dim.extend([2, 2])
    blob.data.extend([0.0] * 4)
    solver = SimpleNamespace(net=_one_layer_net())
    with pytest.raises(TrainError) as err:
        snapshots.check_solver_history(solver, state, path, 30)
    assert str(err.value) == (f"{path} is the solver's state at iteration 40, but "
                              f"{tmp_path / 'latest.json'} names it with the weights of "
                              f"iteration 30: the pair is mixed up; train again with RESUME=0")
    state.iter = 30
    snapshots.check_solver_history(solver, state, path, 30)
    blob.diff.extend([0.0] * 3)
    with pytest.raises(TrainError) as err:
        snapshots.check_solver_history(solver, state, path, 30)
    assert str(err.value) == (f"{path}: history blob 0 holds 3 gradient values (diff) for the "
                              f"4 of blob 0 of layer 'conv1': damaged; train again with RESUME=0")
    blob.diff.append(0.0)
    snapshots.check_solver_history(solver, state, path, 30)


# ------------------------------------------------------------ a finished run's model lost since

def _set_best(snaps, best_iter: int) -> None:
    """latest.json's record of the best validation: at `best_iter`, with an MAE no validation
    beats (so that resuming cannot write the model by finding a better one)."""
    latest = json.loads((snaps / "latest.json").read_text())
    latest.update(best_iter=best_iter, best_val_mae=-1.0)
    (snaps / "latest.json").write_text(json.dumps(latest))


@pytest.mark.parametrize("damage", ["deleted", "truncated"])
def test_a_finished_runs_lost_model_is_written_again_from_its_last_snapshot(tiny, capsys,
                                                                             damage):
    """`make train` on a finished run whose model.caffemodel was deleted (or truncated) said it
    kept the weights, exit 0, without writing them, and recorded the truncated file's sha256 as
    the run's: `count` then took the damaged model. Where the weights kept are the last
    snapshot's, they are written again and their checksum recorded."""
    ds, model = tiny
    prepare.prepare(ds)
    train.Trainer(ds, model, max_iter=30).train(resume=False)
    run = config.run_dir(ds, model)
    kept = run / "model.caffemodel"
    _set_best(run / "snapshots", 30)
    if damage == "deleted":
        kept.unlink()
    else:
        kept.write_bytes(kept.read_bytes()[:1000])
    capsys.readouterr()
    summary = train.Trainer(ds, model, max_iter=30).train(resume=True)
    out = capsys.readouterr().out
    assert ("is not the model this run kept" in out) == (damage == "truncated")
    assert kept.stat().st_size > 10_000
    from pycount.util.atomic import sha256_of
    assert summary["model_sha256"] == sha256_of(kept)
    from pycount.inference.run import load_run
    assert load_run(run).path == run                 # counting takes it again


def test_a_finished_runs_lost_best_model_is_named_not_claimed(tiny):
    """The weights kept are of an earlier iteration than the last snapshot: they are gone, and
    the training says so (RESUME=0) instead of claiming a model it did not write."""
    ds, model = tiny
    prepare.prepare(ds)
    train.Trainer(ds, model, max_iter=30).train(resume=False)
    run = config.run_dir(ds, model)
    before = (run / "train.json").read_text()
    _set_best(run / "snapshots", 20)
    (run / "model.caffemodel").unlink()
    with pytest.raises(TrainError, match=re.escape(
            f"{run / 'model.caffemodel'} is missing or damaged: the weights it kept are those of "
            f"iteration 20 (the best validation MAE, -1), and the run keeps only its last "
            f"snapshot (iteration 30); RESUME=0 trains it again")):
        train.Trainer(ds, model, max_iter=30).train(resume=True)
    assert (run / "train.json").read_text() == before
    from pycount.errors import RunError
    from pycount.inference.run import load_run
    with pytest.raises(RunError, match="is missing from a finished run"):
        load_run(run)


# ------------------------------------------------------------------- the multistep schedule

def test_iters_that_move_the_steps_resume_at_the_rate_of_todays_schedule(tiny, monkeypatch):
    """fcrn's multistep schedule moves its steps with ITERS= (27 and 35 of 40 iterations, 54 and
    70 of 80); Caffe keeps the count of steps passed in the solverstate and only counts it up,
    so a finished 40-iteration run resumed with ITERS=80 trained iterations 40-80 at 1/100 of
    its base rate while the log said the base rate (helper-51). The restored solver holds the
    count today's steps give at iteration 40: none."""
    from caffe.proto import caffe_pb2
    ds, _ = tiny
    ds = dataclasses.replace(ds, crop=64, crop_stride=64, rot_step=90)
    base = config.model("fcrn")
    solver = dataclasses.replace(base.solver, batch=8, max_iter=40, test_interval=20, snapshot=20,
                                 stepvalues=(27, 35), average_after=0)
    model = dataclasses.replace(base, widths=(8, 16, 32, 64), solver=solver)
    prepare.prepare(ds, model=model)
    train.Trainer(ds, model).train(resume=False)
    snaps = config.run_dir(ds, model) / "snapshots"
    state = caffe_pb2.SolverState()
    state.ParseFromString((snaps / "snap_iter_40.solverstate").read_bytes())
    assert (state.iter, state.current_step) == (40, 2)
    restored = []
    real = train.restore_solver

    def spy(solver, solverstate, caffemodel, iteration=None, stepvalues=None):
        real(solver, solverstate, caffemodel, iteration, stepvalues)
        solver.snapshot()                  # the state as Caffe holds it now: iteration 40's
        state.ParseFromString(solverstate.read_bytes())
        restored.append((stepvalues, state.iter, state.current_step))
    monkeypatch.setattr(train, "restore_solver", spy)
    trainer = train.Trainer(ds, model, max_iter=80)
    assert trainer.model.solver.stepvalues == (54, 70)
    trainer.train(resume=True)
    assert restored == [((54, 70), 40, 0)]


# ------------------------------------------------------------------------- the weights kept

def test_a_stop_while_the_best_weights_are_written_keeps_the_record_of_the_file(tiny,
                                                                               monkeypatch):
    """The best validation was recorded before model.caffemodel was written: a Ctrl-C or SIGTERM
    during the write kept the earlier file (the write is atomic) while latest.json, and after the
    resume train.json, named the new best, so the weights kept were not the ones their record
    described (helper-51). The record follows the file."""
    ds, model = tiny
    prepare.prepare(ds)
    scores = {30: 5.0, 60: 4.0}               # iteration 30, then a better 60
    monkeypatch.setattr(train._Session, "validate",
                        lambda self: scores.get(self.solver.iter, 9.0))
    real, saves = train._save_weights, []

    def save(net, path):
        saves.append(path.name)
        if len(saves) == 2:                  # the signal lands while the better 60 is written
            raise KeyboardInterrupt
        real(net, path)
    monkeypatch.setattr(train, "_save_weights", save)
    with pytest.raises(KeyboardInterrupt):
        train.Trainer(ds, model).train(resume=False)
    latest = json.loads((config.run_dir(ds, model) / "snapshots" / "latest.json").read_text())
    assert saves == ["model.caffemodel"] * 2
    assert (latest["best_iter"], latest["best_val_mae"]) == (30, 5.0)


@pytest.mark.parametrize("drop", ["solverstate", "caffemodel", "best_iter", None])
def test_a_latest_json_lacking_any_key_is_refused_by_name(tmp_path, drop):
    """latest.json without its caffemodel or best_iter passed the check and failed later with a
    KeyError traceback (for best_iter only at the end of the resumed training; helper-58)."""
    from pycount.training import snapshots
    whole = {"solverstate": "snap_iter_30.solverstate", "caffemodel": "snap_iter_30.caffemodel",
             "best_iter": 20, "best_val_mae": 1.5, "iter": 30}
    path = tmp_path / "latest.json"
    path.write_text(json.dumps({k: v for k, v in whole.items() if k != drop}))
    if drop is None:
        assert snapshots.read_latest(path) == whole
        return
    with pytest.raises(TrainError, match=r"latest.json is corrupt or incomplete; its snapshots "
                                         r"cannot be resumed: train again with RESUME=0"):
        snapshots.read_latest(path)


# ------------------------------------------- snapshots.py on stand-ins (no training, no Caffe net)

def _blob(shape, values=None, diff=0, double=False):
    from caffe.proto import caffe_pb2
    blob = caffe_pb2.BlobProto()
    blob.shape.dim.extend(shape)
    n = int(np.prod(shape)) if values is None else values
    (blob.double_data if double else blob.data).extend([0.0] * n)
    (blob.double_diff if double else blob.diff).extend([0.0] * diff)
    return blob


def _net(*shapes):
    """A stand-in Caffe net: layer l0, l1, ... of one blob each, of these shapes."""
    from types import SimpleNamespace
    return SimpleNamespace(params={f"l{k}": [SimpleNamespace(data=np.zeros(s, np.float32),
                                                             shape=s)]
                                   for k, s in enumerate(shapes)})


class _Solver:
    """A stand-in solver: its net, and what restore() was given (the path, and the state the
    file held then)."""

    def __init__(self, net):
        self.net, self.restored = net, []

    def restore(self, path):
        from caffe.proto import caffe_pb2
        state = caffe_pb2.SolverState()
        state.ParseFromString(open(path, "rb").read())
        self.restored.append((path, state.learned_net, state.current_step))


class AdamSolver(_Solver):
    pass


class AdaDeltaSolver(_Solver):
    pass


def _weights(path, sizes: dict):
    from caffe.proto import caffe_pb2
    param = caffe_pb2.NetParameter()
    for name, blob_sizes in sizes.items():
        layer = param.layer.add()
        layer.name = name
        for n in blob_sizes:
            layer.blobs.add().data.extend([0.5] * n)
    path.write_bytes(param.SerializeToString())
    return path


def _pair(folder, learned_net, it=30, current_step=0):
    """A solverstate of l0 (2 x 2) at iteration `it`, and the caffemodel it belongs to."""
    from caffe.proto import caffe_pb2
    model = _weights(folder / f"snap_iter_{it}.caffemodel", {"l0": [4]})
    state = caffe_pb2.SolverState(iter=it, current_step=current_step,
                                  learned_net=learned_net or str(model.resolve()))
    state.history.append(_blob((2, 2)))
    path = folder / f"snap_iter_{it}.solverstate"
    path.write_bytes(state.SerializeToString())
    return path, model


@pytest.mark.parametrize("best, kept", [(None, float("inf")), (2.5, 2.5), (3, 3)])
def test_latest_json_without_a_validation_yet_keeps_every_later_one(tmp_path, best, kept):
    """best_val_mae null (no validation before the snapshot) reads as infinity, which the
    first validation beats; an older latest.json without "iter" is taken."""
    from pycount.training import snapshots
    path = tmp_path / "latest.json"
    path.write_text(json.dumps({"solverstate": "s", "caffemodel": "c", "best_iter": 0,
                                "best_val_mae": best}))
    assert snapshots.read_latest(path) == {"solverstate": "s", "caffemodel": "c",
                                           "best_iter": 0, "best_val_mae": kept}


@pytest.mark.parametrize("text", ["{", "", "[1, 2]", '{"solverstate": "s", "caffemodel": 5, '
                                  '"best_iter": 0, "best_val_mae": 1.0}',
                                  '{"solverstate": "s", "caffemodel": "c", "best_iter": 0, '
                                  '"best_val_mae": 1.0, "iter": "30"}'])
def test_latest_json_that_is_not_a_record_is_refused(tmp_path, text):
    from pycount.training import snapshots
    path = tmp_path / "latest.json"
    path.write_text(text)
    with pytest.raises(TrainError) as err:
        snapshots.read_latest(path)
    assert str(err.value) == (f"{path} is corrupt or incomplete; its snapshots cannot be "
                              f"resumed: train again with RESUME=0")


def test_a_pair_where_it_was_written_is_restored_as_it_is(tmp_path):
    from pycount.training import snapshots
    state, model = _pair(tmp_path, None, it=35, current_step=1)
    solver = _Solver(_net((2, 2)))
    snapshots.restore_solver(solver, state, model, 35, stepvalues=(27, 35))
    assert solver.restored == [(str(state), str(model.resolve()), 1)]
    assert sorted(p.name for p in tmp_path.iterdir()) == [model.name, state.name]


def test_a_moved_pair_is_restored_with_the_weights_where_they_are_now(tmp_path):
    """The solverstate names the caffemodel by the absolute path Caffe wrote; from a folder
    moved since, a copy naming the file where it is now is restored, then removed."""
    from pycount.training import snapshots
    state, model = _pair(tmp_path, "/gone/snap_iter_30.caffemodel", it=30, current_step=1)
    solver = _Solver(_net((2, 2)))
    snapshots.restore_solver(solver, state, model, 30, stepvalues=(27, 35))  # 1 step passed
    assert solver.restored == [(str(tmp_path / ".restore.solverstate"),
                                str(model.resolve()), 1)]
    assert sorted(p.name for p in tmp_path.iterdir()) == [model.name, state.name]
    from caffe.proto import caffe_pb2
    kept = caffe_pb2.SolverState()
    kept.ParseFromString(state.read_bytes())
    assert kept.learned_net == "/gone/snap_iter_30.caffemodel"       # the snapshot untouched


@pytest.mark.parametrize("it, steps, passed", [(35, (27, 35), 1), (36, (27, 35), 2),
                                               (27, (27, 35), 0), (10, (27, 35), 0),
                                               (40, (54, 70), 0)])
def test_the_count_of_steps_passed_is_todays_schedules(tmp_path, it, steps, passed):
    """(Caffe counts a step at the first iteration >= its value: after `it` iterations, those
    below it.)"""
    from pycount.training import snapshots
    state, model = _pair(tmp_path, None, it=it, current_step=2)
    solver = _Solver(_net((2, 2)))
    snapshots.restore_solver(solver, state, model, it, stepvalues=steps)
    restored = [(str(state), str(model.resolve()), 2)] if passed == 2 else \
        [(str(tmp_path / ".restore.solverstate"), str(model.resolve()), passed)]
    assert solver.restored == restored


def test_an_empty_solverstate_is_refused_by_name(tmp_path):
    from pycount.training import snapshots
    state, model = _pair(tmp_path, None)
    state.write_bytes(b"")
    solver = _Solver(_net((2, 2)))
    with pytest.raises(TrainError) as err:
        snapshots.restore_solver(solver, state, model, 30)
    assert str(err.value) == (f"{state} is empty or incomplete (no solver history); train "
                              f"again with RESUME=0")
    assert solver.restored == []


def test_an_older_latest_json_gives_no_iteration_to_match(tmp_path):
    from pycount.training import snapshots
    state, model = _pair(tmp_path, None, it=30)
    solver = _Solver(_net((2, 2)))
    snapshots.restore_solver(solver, state, model, None)
    assert solver.restored == [(str(state), str(model.resolve()), 0)]


def test_weights_of_another_net_are_refused_before_the_solver_is_restored(tmp_path):
    from pycount.training import snapshots
    state, model = _pair(tmp_path, None)
    _weights(model, {"l0": [3]})
    solver = _Solver(_net((2, 2)))
    with pytest.raises(TrainError) as err:
        snapshots.restore_solver(solver, state, model, 30)
    assert str(err.value) == (f"{model}: layer 'l0' holds [3] values, the net [4]: written by "
                              f"another net; train again with RESUME=0")
    assert solver.restored == []


def test_weights_lacking_a_layer_are_refused_by_its_name(tmp_path):
    from pycount.training import snapshots
    model = _weights(tmp_path / "snap_iter_30.caffemodel", {"l0": [4]})
    with pytest.raises(TrainError) as err:
        snapshots.check_snapshot_weights(_net((2, 2), (3,)), model)
    assert str(err.value) == (f"{model} has no weights for layer 'l1': it was written by "
                              f"another net or is incomplete; train again with RESUME=0")


@pytest.mark.parametrize("kind", [AdamSolver, AdaDeltaSolver])
def test_two_moment_solvers_keep_two_histories_per_blob(tmp_path, kind):
    """Adam's and AdaDelta's history: all the first moments, then all the second ones."""
    from caffe.proto import caffe_pb2
    from pycount.training import snapshots
    path = tmp_path / "snap_iter_30.solverstate"
    solver = kind(_net((2, 2), (3,)))
    state = caffe_pb2.SolverState(iter=30)
    state.history.extend([_blob((2, 2)), _blob((3,)), _blob((2, 2)), _blob((3,))])
    snapshots.check_solver_history(solver, state, path, 30)
    del state.history[2:]
    with pytest.raises(TrainError) as err:
        snapshots.check_solver_history(solver, state, path, 30)
    assert str(err.value) == (f"{path} holds 2 history blobs, where the {kind.__name__} of this "
                              f"net keeps 4 (2 for each of its 2 parameter blobs): written by "
                              f"another net or solver, or damaged; train again with RESUME=0")


def test_a_solverstate_in_double_precision_is_read_as_such(tmp_path):
    from caffe.proto import caffe_pb2
    from pycount.training import snapshots
    path = tmp_path / "snap_iter_30.solverstate"
    solver = _Solver(_net((2, 2)))
    state = caffe_pb2.SolverState(iter=30)
    state.history.append(_blob((2, 2), double=True, diff=4))
    snapshots.check_solver_history(solver, state, path, 30)
    del state.history[0].double_diff[-1]
    with pytest.raises(TrainError) as err:
        snapshots.check_solver_history(solver, state, path, 30)
    assert str(err.value) == (f"{path}: history blob 0 holds 3 gradient values (diff) for the "
                              f"4 of blob 0 of layer 'l0': damaged; train again with RESUME=0")


def test_an_old_style_shape_is_read_from_whichever_of_its_axes_are_set(tmp_path):
    """num, channels, height, width default to 0 (caffe.proto): one set is enough for the blob
    to be in the old form, which Caffe then reads whole."""
    from caffe.proto import caffe_pb2
    from pycount.training import snapshots
    path = tmp_path / "snap_iter_30.solverstate"
    solver = _Solver(_net((2, 2)))
    state = caffe_pb2.SolverState(iter=30)
    blob = state.history.add()
    blob.height, blob.width = 2, 2
    blob.data.extend([0.0] * 4)
    with pytest.raises(TrainError) as err:
        snapshots.check_solver_history(solver, state, path, 30)
    assert str(err.value) == (f"{path}: history blob 0 is (0, 0, 2, 2), where blob 0 of layer "
                              f"'l0' is (1, 1, 2, 2): written by another net, or damaged; "
                              f"train again with RESUME=0")
    blob.num, blob.channels = 1, 1
    snapshots.check_solver_history(solver, state, path, 30)
    solver = _Solver(_net((4,)))
    blob.num, blob.channels, blob.height, blob.width = 1, 1, 1, 4
    snapshots.check_solver_history(solver, state, path, 30)      # (4,) as (1, 1, 1, 4)
