"""`make audit-gpu` (pycount replicate): every paper cell pycount models, skipped with a line
where its weights or dataset are missing, the rest prepared, trained and evaluated."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pycount import config, errors
from pycount.reporting import replicate
from pycount.util import interrupt


def _data_root(tmp_path):
    """A DATA_ROOT holding the bacterial release's folder only (the cells are stubbed: its files
    are never read), so the tests do not depend on ../shared/datasets."""
    (tmp_path / "datasets" / config.dataset("bacterial").subdir).mkdir(parents=True)
    return tmp_path / "datasets"


def test_the_paper_cells_are_every_modelled_row_on_every_dataset():
    cells = replicate.paper_cells()
    models = {(m, h) for _, m, h in cells}
    assert models == {("alexnet", "C"), ("alexnet", "R"), ("resnet50", "C"), ("resnet50", "R"),
                      ("resnet101", "R"), ("resnet152", "R"), ("lecount", "R"),
                      ("ledetect", "R")}
    assert len(cells) == len(models) * len(replicate.DATASETS)     # each once per dataset


def test_cells_without_weights_or_data_are_skipped_and_the_rest_run(monkeypatch, tmp_path,
                                                                    workdirs):
    monkeypatch.setattr("pycount.nets.weights.WEIGHTS_DIR", tmp_path / "no-weights")
    ran = []
    monkeypatch.setattr(replicate, "_cell", lambda d, m, h, *a: ran.append((d, m, h)) or "ok")
    rows = replicate.run(gpu=-1, iters=2, datasets=("bacterial", "ki67"),
                         models=("resnet50", "lecount"), data_root=_data_root(tmp_path))
    status = {(r["dataset"], r["model"], r["head"]): r["status"] for r in rows}
    assert ran == [("bacterial", "lecount", "R")]
    assert status[("bacterial", "resnet50", "R")].startswith(
        "skipped: ResNet-50-model.caffemodel not found: put it in")
    # weights.resolve's SCRATCH=1 is `make train`'s: the sweep has no such setting
    assert status[("bacterial", "resnet50", "R")].endswith("(where to get it: weights/README.md)")
    assert "ki67 release there or set DATA_ROOT" in status[("ki67", "lecount", "R")]


def test_a_failed_cell_fails_the_sweep_after_the_others(monkeypatch, tmp_path, workdirs):
    monkeypatch.setattr(replicate, "_cell", lambda d, m, h, *a: "failed at train (exit 2)"
                        if m == "ledetect" else "ok")
    with pytest.raises(errors.TrainError, match=r"1 cell\(s\) failed: bacterial ledetect\(R\)"):
        replicate.run(gpu=-1, datasets=("bacterial",), models=("lecount", "ledetect"),
                      data_root=_data_root(tmp_path))


def test_a_dry_run_evaluates_longer_trainings_as_they_are(monkeypatch, tmp_path, workdirs,
                                                          capsys):
    """ITERS= below what a cell's run has trained: neither refused by its training (which failed
    the sweep) nor trained again, but evaluated as it is; it was "kept" unevaluated, and the
    sweep said "0 of 2 trained and evaluated" and exited 0. One evaluated after that training is
    done; one evaluated before it (then trained further) is evaluated again."""
    from pycount import cli
    root, ds = _data_root(tmp_path), config.dataset("bacterial")
    for model, head, metrics in (("alexnet", "R", None), ("alexnet", "C", "after"),
                                 ("resnet50", "R", "before")):
        run = config.run_dir(ds, config.model(model, ds), head)
        run.mkdir(parents=True)
        (run / "train.json").write_text('{"iterations": 500}')
        if metrics:
            (run / "metrics.json").write_text("{}")
            shift = 10 if metrics == "after" else -10
            t = (run / "train.json").stat().st_mtime + shift
            os.utime(run / "metrics.json", (t, t))
    ran = []
    monkeypatch.setattr(replicate, "_cell", lambda d, m, h, *a: ran.append((m, h, a[-1]))
                        or "ok (0.1 min)")
    monkeypatch.setattr("pycount.reporting.audit.why_not", lambda *a, **k: None)  # weights "there"
    rows = replicate.run(gpu=-1, iters=20, datasets=("bacterial",),
                         models=("alexnet", "resnet50"), data_root=root)
    status = {(r["model"], r["head"]): r["status"] for r in rows}
    longer = ("trained 500 iterations already, more than ITERS=20 (a dry run leaves longer "
              "trainings as they are)")
    assert status[("alexnet", "R")] == f"ok (0.1 min), evaluated only: {longer}"
    assert status[("alexnet", "C")] == f"done before: {longer}"
    assert sorted(ran) == [("alexnet", "R", ("eval",)), ("resnet50", "C", replicate.STEPS),
                           ("resnet50", "R", ("eval",))]
    # as the command line counts them: every cell trained and evaluated
    ran.clear()
    monkeypatch.setattr("pycount.cli._audit", lambda args: 0)
    assert cli.main(["replicate", "--gpu", "-1", "--iters", "20", "--datasets", "bacterial",
                     "--models", "alexnet", "--data-root", str(root)]) == 0
    assert ("2 of 2 paper cells trained and evaluated (ITERS=20: a dry run, whose short "
            "trainings the audit marks as short, not as results)") in capsys.readouterr().out
    assert ran == [("alexnet", "R", ("eval",))]
    # a full sweep (no ITERS=) has no such rule: the cell is trained to its schedule
    ran.clear()
    replicate.run(gpu=-1, datasets=("bacterial",), models=("alexnet",), data_root=root)
    assert sorted(ran) == [("alexnet", "C", replicate.STEPS), ("alexnet", "R", replicate.STEPS)]


# --- failure paths: bad DATASETS=/MODELS=, no data, no GPU, logs that cannot be written -------

@pytest.mark.parametrize("datasets, models, message", [
    (["foo"], None, "DATASETS=foo: 'foo' is not a column of the paper's tables"),
    (["synthetic"], None, "'synthetic' is not a column"),
    ([""], None, "DATASETS=: names no column"),
    (["", ""], None, "DATASETS=: names no column"),
    (["bacterial"], ["foo"], "MODELS=foo: 'foo' is not a model of the paper's rows"),
    (["bacterial"], ["fcrn"], "'fcrn' is not a model of the paper's rows"),
    (["bacterial"], [], "MODELS=: names no model"),
])
def test_bad_names_stop_before_any_cell(monkeypatch, tmp_path, workdirs, datasets, models,
                                        message):
    monkeypatch.setattr(replicate, "_cell", lambda *a: pytest.fail("a cell ran"))
    with pytest.raises(errors.ConfigError, match=message.replace("(", r"\(")):
        replicate.run(gpu=-1, datasets=datasets, models=models, data_root=_data_root(tmp_path))
    assert not config.runs_dir().exists()


def test_an_empty_datasets_list_on_the_command_line_is_refused(monkeypatch, tmp_path, workdirs,
                                                              capsys):
    """`make audit-gpu DATASETS=,` swept every column (an empty list read as "not given")."""
    from pycount import cli
    monkeypatch.setattr(replicate, "_cell", lambda *a: pytest.fail("a cell ran"))
    assert cli.main(["replicate", "--gpu", "-1", "--datasets", ",",
                     "--data-root", str(_data_root(tmp_path))]) == 2
    assert "DATASETS=: names no column" in capsys.readouterr().err


def test_a_data_root_without_datasets_is_an_error_not_a_silent_sweep(monkeypatch, tmp_path,
                                                                     workdirs):
    monkeypatch.setattr(replicate, "_cell", lambda *a: pytest.fail("a cell ran"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(errors.TrainError, match=f"none of the 3 paper cells can run here: "
                                                f"{empty}/vgg_cells is missing"):
        replicate.run(gpu=-1, datasets=("bacterial",), models=("alexnet", "lecount"),
                      data_root=empty)


def test_a_gpu_that_is_not_there_is_named_once_before_the_first_cell(monkeypatch, tmp_path,
                                                                     workdirs):
    monkeypatch.setattr("pycount.device.cuda_devices",
                        lambda: (False, 0, "this Caffe build is CPU-only (caffe-cpu)"))
    monkeypatch.setattr(replicate, "_cell", lambda *a: pytest.fail("a cell ran"))
    with pytest.raises(errors.TrainError, match=r"GPU=0 asked for, but this Caffe build is "
                                                r"CPU-only.*GPU=-1 runs the cells on the CPU"):
        replicate.run(gpu=0, datasets=("bacterial",), models=("lecount",),
                      data_root=_data_root(tmp_path))


def test_a_gpu_is_not_asked_for_when_no_cell_runs(monkeypatch, tmp_path, workdirs):
    monkeypatch.setattr("pycount.device.cuda_devices", lambda: pytest.fail("GPU checked"))
    with pytest.raises(errors.TrainError, match="none of the"):
        replicate.run(gpu=0, datasets=("bacterial",), models=("lecount",),
                      data_root=tmp_path / "nothing")


@pytest.mark.parametrize("blocker", ["file", "read-only"])
def test_a_log_folder_that_cannot_be_written_is_named(monkeypatch, tmp_path, workdirs, blocker):
    logs = config.runs_dir() / "replicate" / "logs"
    if blocker == "file":
        logs.parent.mkdir(parents=True)
        logs.write_text("")
        match = f"{logs} cannot be created: a file stands on its path"
    else:
        logs.mkdir(parents=True)
        real = type(logs).write_bytes

        def refuse(self, data):
            if self.parent == logs:
                raise OSError(30, "Read-only file system")
            return real(self, data)
        monkeypatch.setattr(type(logs), "write_bytes", refuse)
        match = rf"{logs} cannot be written \(Read-only file system\)"
    monkeypatch.setattr(replicate, "_cell", lambda *a: pytest.fail("a cell ran"))
    with pytest.raises(errors.TrainError, match=match):
        replicate.run(gpu=-1, datasets=("bacterial",), models=("lecount",),
                      data_root=_data_root(tmp_path))


def test_a_cell_whose_log_cannot_be_opened_fails_alone(tmp_path, workdirs):
    log_dir = tmp_path / "logs"
    (log_dir / f"bacterial-{config.run_name(config.model('lecount'), 'R')}.log").mkdir(
        parents=True)
    status = replicate._cell("bacterial", "lecount", "R", -1, None, None, log_dir)
    assert status.startswith("failed: cannot write its log") and str(log_dir) in status


def test_the_sweep_ends_in_the_audit_through_the_command_line(monkeypatch, tmp_path, workdirs,
                                                              capsys):
    """`pycount replicate` (make audit-gpu) ends by writing the audit: it ended in a traceback
    (the audit's arguments lacked DATA_ROOT) after every cell had run."""
    from pycount import cli
    monkeypatch.setattr(replicate, "_cell", lambda *a: "ok")
    rc = cli.main(["replicate", "--gpu", "-1", "--datasets", "bacterial", "--models", "lecount",
                   "--data-root", str(_data_root(tmp_path))])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "1 of 1 paper cells trained and evaluated; the audit follows" in out
    assert (config.runs_dir() / "audit" / "audit.md").is_file()


def test_a_dry_run_goes_on_where_it_stopped(monkeypatch, tmp_path, workdirs):
    """A cell trained ITERS iterations and evaluated is done, as is an evaluated classic method
    (ITERS= does not apply to it); one trained as far but not evaluated runs again (its eval),
    as does one trained fewer."""
    ds = config.dataset("bacterial")
    for model, head, iters, evaluated in (("alexnet", "R", 2, True), ("alexnet", "C", 2, False),
                                          ("lecount", "R", 0, True), ("ledetect", "R", 0, False),
                                          ("resnet50", "R", 1, True)):
        run = config.run_dir(ds, config.model(model, ds), head)
        run.mkdir(parents=True)
        (run / "train.json").write_text(f'{{"iterations": {iters}}}')
        if evaluated:
            (run / "metrics.json").write_text("{}")
    ran = []
    monkeypatch.setattr(replicate, "_cell", lambda d, m, h, *a: ran.append((m, h)) or "ok")
    monkeypatch.setattr("pycount.reporting.audit.why_not", lambda *a, **k: None)  # weights "there"
    rows = replicate.run(gpu=-1, iters=2, datasets=("bacterial",),
                         models=("alexnet", "lecount", "ledetect", "resnet50"),
                         data_root=_data_root(tmp_path))
    status = {(r["model"], r["head"]): r["status"] for r in rows}
    assert status[("alexnet", "R")] == status[("lecount", "R")] == "done before (ITERS=2)"
    assert sorted(ran) == [("alexnet", "C"), ("ledetect", "R"), ("resnet50", "C"),
                           ("resnet50", "R")]


def test_test_images_is_for_a_dry_run_and_reaches_each_cells_eval(monkeypatch, tmp_path,
                                                                  workdirs):
    """TEST_IMAGES=K (the dry run counts K test images per cell) only with ITERS=; each cell's
    eval gets it, its training does not; a full sweep counts a partially evaluated cell again."""
    root = _data_root(tmp_path)
    with pytest.raises(config.ConfigError, match="TEST_IMAGES=5 is for a dry run"):
        replicate.run(gpu=-1, test_images=5, datasets=("bacterial",), models=("lecount",),
                      data_root=root)
    calls = []
    monkeypatch.setattr(replicate, "_call", lambda cmd, *a: calls.append(cmd[3:]) or 0)
    assert replicate._cell("bacterial", "lecount", "R", -1, 2, None, tmp_path, 5).startswith("ok")
    assert [c[0] for c in calls] == ["prepare", "train", "eval"]
    assert calls[2][-2:] == ["--test-images", "5"] and "--test-images" not in calls[1]
    calls.clear()                    # a dry run's cell trained further than ITERS: its eval only
    assert replicate._cell("bacterial", "alexnet", "R", -1, 2, None, tmp_path, 5,
                           ("eval",)).startswith("ok")
    assert calls == [["eval", "--dataset", "bacterial", "--model", "alexnet", "--head", "R",
                      "--gpu", "-1", "--test-images", "5"]]
    ds = config.dataset("bacterial")
    run = config.run_dir(ds, config.model("lecount", ds), "R")
    run.mkdir(parents=True)
    (run / "train.json").write_text('{"iterations": 0}')
    ran = []
    monkeypatch.setattr(replicate, "_cell", lambda d, m, h, *a: ran.append(m) or "ok")
    for metrics, again in (('{"n_images": 5, "test_images_of": 100}', True),
                           ('{"n_images": 100, "test_images_of": 100}', False)):
        (run / "metrics.json").write_text(metrics)
        ran.clear()
        replicate.run(gpu=-1, datasets=("bacterial",), models=("lecount",), data_root=root)
        assert ran == (["lecount"] if again else [])


def test_a_trailing_comma_names_no_extra_cell(monkeypatch, tmp_path, workdirs):
    """`make audit-gpu DATASETS=bacterial, MODELS=lecount,`: the command line splits the lists
    at each comma, and the empty name after the last one failed the sweep ('' is not a column)."""
    from pycount import cli
    ran = []
    monkeypatch.setattr(replicate, "_cell", lambda d, m, h, *a: ran.append((d, m, h)) or "ok")
    monkeypatch.setattr("pycount.cli._audit", lambda args: 0)
    assert cli.main(["replicate", "--gpu", "-1", "--datasets", "bacterial,", "--models",
                     "lecount,", "--data-root", str(_data_root(tmp_path))]) == 0
    assert ran == [("bacterial", "lecount", "R")]


@pytest.mark.parametrize("model, head, error, fix", [
    ("resnet50", "C", "{run}/snapshots/latest.json is corrupt or incomplete; its snapshots cannot "
     "be resumed: train again with RESUME=0",
     "make train DATASET=bacterial MODEL=resnet50 HEAD=C GPU=0 'DATA_ROOT={root}' RESUME=0 "
     "ITERS=20"),
    ("lecount", "R", "{run}/model.npz is damaged; train this run again (make train ... RESUME=0)",
     "make train DATASET=bacterial MODEL=lecount 'DATA_ROOT={root}' RESUME=0"),
    ("resnet50", "R", "out of memory", None),
])
def test_a_failed_step_names_its_error_and_the_cells_own_fix(monkeypatch, tmp_path, model, head,
                                                             error, fix):
    """A step's error that asks for RESUME=0, which make audit-gpu has not, comes with the
    `make train` of that very cell (its head, GPU, DATA_ROOT and ITERS; a classic method's
    without the nets' settings, which it refuses); other errors as they are."""
    root = tmp_path / "my data"
    error, fix = error.format(run="/r"), fix and fix.format(root=root)
    seen = []

    def call(argv, log, env):
        seen.append(env)
        if argv[3] != "train":
            return 0
        log.write(f"I0101 solver.cpp] Iteration 0\npycount: error: an earlier error\n"
                  f"pycount: error: {error}\n")
        return 2
    monkeypatch.setattr(replicate, "_call", call)
    status = replicate._cell("bacterial", model, head, 0, 20, root, tmp_path)
    log = tmp_path / f"bacterial-{config.run_name(config.model(model), head)}.log"
    assert status == (f"failed at train (exit 2): {error}; see {log}" + (
        f"; the sweep has no RESUME=0: train this cell again from scratch with `{fix}`, then "
        f"run the sweep again" if fix else ""))
    # every step is told the sweep's process id: it stops when the sweep dies (follow_parent)
    assert [env[interrupt.PARENT_ENV] for env in seen] == [str(os.getpid())] * 2


def test_a_step_that_dies_without_a_message_points_at_its_log(monkeypatch, tmp_path):
    monkeypatch.setattr(replicate, "_call", lambda argv, log, env: log.write("Traceback\n") and 1)
    status = replicate._cell("bacterial", "lecount", "R", -1, None, None, tmp_path)
    assert status == (f"failed at prepare (exit 1); see "
                      f"{tmp_path / 'bacterial-lecount.log'}")


def test_a_step_stopped_on_its_own_stops_the_sweep_as_interrupted(monkeypatch, tmp_path,
                                                                   workdirs, capsys):
    """A training that exits 130 (its process sent SIGINT or SIGTERM) is "interrupted", not
    "failed at train (exit 130)", and the sweep stops there with 130, saying how to go on."""
    from pycount import cli
    steps = []
    monkeypatch.setattr(replicate, "_call", lambda argv, log, env: steps.append(argv[3]) or (
        130 if argv[3] == "train" else 0))
    monkeypatch.setattr("pycount.reporting.audit.why_not", lambda *a, **k: None)  # weights "there"
    assert cli.main(["replicate", "--gpu", "-1", "--iters", "2", "--datasets", "bacterial",
                     "--models", "alexnet", "--data-root", str(_data_root(tmp_path))]) == 130
    out, err = capsys.readouterr()
    first = replicate.paper_cells(["bacterial"], ["alexnet"])[0]
    assert steps == ["prepare", "train"]              # the second cell never started
    assert f"bacterial alexnet({first[2]}): interrupted at train; see " in out
    assert "failed" not in out + err and "trained and evaluated" not in out
    assert "sweep interrupted: the same command again goes on where it stopped" in err


# --- the sweep stopped (Ctrl-C, kill, kill -9) stops its running step, once, cleanly ----------

# A step's stand-in: its "train" answers SIGINT and SIGTERM as pycount's training does (a
# snapshot that takes a while, then exit 130), noting each signal it gets; the other steps
# succeed at once. As `pycount` does (cli.main), it asks to follow its parent.
FAKE_STEP = """
import os, signal, sys, time
sys.path.insert(0, {root!r})
from pycount.util.interrupt import follow_parent
follow_parent()
if sys.argv[1] != "train":
    sys.exit(0)

def note(line):
    with open({record!r}, "a") as f:
        f.write(line + "\\n")

got = []

def stop(signum, frame):
    got.append(signum)
    note(f"signal {{signum}}")

signal.signal(signal.SIGINT, stop)
signal.signal(signal.SIGTERM, stop)
note(f"started {{os.getpid()}}")
while not got:
    time.sleep(0.02)
time.sleep(1)                   # its snapshot: a second signal would land here
note("snapshot")
sys.exit(130)
"""

# The sweep (`pycount replicate`, a dry run of the alexnet cells), its steps the stand-in. SIGINT
# is handled as in a terminal, whatever pytest's own disposition.
SWEEP = """
import signal, sys
sys.path.insert(0, {root!r})
signal.signal(signal.SIGINT, signal.default_int_handler)
from pycount import cli
from pycount.reporting import replicate
call = replicate._call
replicate._call = lambda argv, log, env: call([sys.executable, {fake!r}, argv[3]], log, env)
replicate.audit.why_not = lambda *a, **k: None
replicate.check_gpu = lambda gpu: None
sys.exit(cli.main(["replicate", "--gpu", "-1", "--iters", "2", "--datasets", "bacterial",
                   "--models", "alexnet"]))
"""


def _gone(pid: int) -> bool:
    """The process has exited (reaped, or a zombie left to a parent that does not reap)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].startswith("Z")
    except FileNotFoundError:
        return True


def _until(test, what: str, seconds: float = 120):
    deadline = time.monotonic() + seconds
    while not test():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {seconds} s")
        time.sleep(0.05)


@pytest.fixture
def sweep(tmp_path, workdirs, monkeypatch):
    """A sweep started in a session of its own (as a terminal's foreground job), stopped once
    its training has begun; yields (sweep process, the training's record, its pid). Whatever is
    left running after the test is killed."""
    monkeypatch.delenv(interrupt.PARENT_ENV, raising=False)
    record = tmp_path / "steps.txt"
    record.touch()
    fake = tmp_path / "fake_step.py"
    fake.write_text(FAKE_STEP.format(root=str(config.ROOT), record=str(record)))
    proc = subprocess.Popen([sys.executable, "-c", SWEEP.format(root=str(config.ROOT),
                                                                 fake=str(fake))],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    pid = None
    try:
        _until(lambda: "started" in record.read_text() or proc.poll() is not None,
               "no training started")
        assert proc.poll() is None, proc.communicate()[0]
        pid = int(record.read_text().split()[1])
        yield proc, record, pid
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
        if pid is not None and not _gone(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.skipif(sys.platform != "linux", reason="the session and signals of Linux")
@pytest.mark.parametrize("send, sig", [
    (os.kill, signal.SIGTERM),       # `kill PID`: the sweep alone
    (os.kill, signal.SIGINT),        # `kill -INT PID`: the same
    (os.killpg, signal.SIGINT),      # Ctrl-C: the terminal's whole foreground group
    (os.killpg, signal.SIGTERM),     # a job stopped by its group (timeout, a scheduler)
])
def test_a_stopped_sweep_stops_its_training_once_and_waits_for_its_snapshot(sweep, send, sig):
    """The training got the signal exactly once (the sweep passed it on; a second would cut its
    snapshot short), the sweep waited for its snapshot (subprocess.call killed it 0.25 s after
    Ctrl-C), and ended with 130 at that cell, saying how to go on; the next cell never began."""
    proc, record, pid = sweep
    send(proc.pid, sig)
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 130, out
    assert record.read_text().splitlines() == [f"started {pid}", f"signal {int(sig)}",
                                               "snapshot"]
    assert _gone(pid)
    first = replicate.paper_cells(["bacterial"], ["alexnet"])[0]
    assert f"bacterial alexnet({first[2]}): interrupted at train; see " in out
    assert out.count("interrupted at") == 1 and "failed" not in out
    assert "sweep interrupted: the same command again goes on where it stopped" in out
    assert out.rstrip().endswith("pycount: interrupted")


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux's")
def test_a_sweep_killed_outright_stops_its_training(sweep):
    """kill -9 of the sweep: its training got SIGTERM from the kernel (it ran on, orphaned,
    holding its run's lock, and a rerun failed that cell) and wrote its snapshot.

    The kernel sends the parent-death signal at each reparenting: a sweep with more threads
    than one (OpenBLAS starts its workers when numpy loads, about one per core) hands its child
    to another of its threads, and so on, then to init, so the step may get SIGTERM more than
    once; a training answers the first and ignores the rest (interrupt.stop_once; test_train
    tests a second stop during the snapshot)."""
    proc, record, pid = sweep
    proc.kill()
    proc.communicate(timeout=60)
    _until(lambda: _gone(pid), "the orphaned training did not stop")
    lines = record.read_text().splitlines()
    assert lines[0] == f"started {pid}" and lines[-1] == "snapshot", lines
    assert set(lines[1:-1]) == {f"signal {int(signal.SIGTERM)}"}, lines     # one or more


@pytest.mark.skipif(sys.platform != "linux", reason="the session and signals of Linux")
def test_ctrl_c_twice_still_waits_for_the_snapshot(sweep):
    """A second Ctrl-C while the training writes its snapshot is not passed on (it would cut the
    snapshot short): the sweep says it is still waiting, and how to stop the step at once."""
    proc, record, pid = sweep
    os.killpg(proc.pid, signal.SIGINT)
    _until(lambda: "signal" in record.read_text(), "the training was not stopped")
    os.killpg(proc.pid, signal.SIGINT)
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 130, out
    assert record.read_text().splitlines() == [f"started {pid}", f"signal {int(signal.SIGINT)}",
                                               "snapshot"]
    assert f"still waiting for process {pid} to finish; `kill -9 {pid}` stops it at once" in out
    assert out.count("interrupted at train") == 1


@pytest.mark.parametrize("checkout", [False, True], ids=["installed", "checkout"])
def test_the_sweeps_steps_run_where_the_runs_go(checkout, tmp_path, monkeypatch):
    """Each step ran in config.ROOT: for an installed package (site-packages) its runs/ and data/
    went there while the sweep's audit read those of the working folder (helper-48); so an
    installed package's steps run in the working folder. From a checkout (a Makefile beside the
    package), each step runs in it, where its runs/ and data/ are, whatever folder the sweep was
    started in."""
    import sys
    from pycount import config
    from pycount.reporting import replicate
    root, work = tmp_path / ("checkout" if checkout else "site-packages"), tmp_path / "work"
    root.mkdir()
    if checkout:
        (root / "Makefile").write_text("")
    work.mkdir()
    monkeypatch.setattr(config, "ROOT", root)
    monkeypatch.chdir(work)
    with open(tmp_path / "log", "w") as log:
        assert replicate._call([sys.executable, "-c", "import os; print(os.getcwd())"], log,
                               dict(os.environ)) == 0
    assert (tmp_path / "log").read_text().strip() == str(root if checkout else work)


@pytest.mark.parametrize("text, partial", [
    ('{"n_images": 2, "test_images_of": 100}', True), ('{"n_images": 100, "test_images_of": 100}',
                                                       False),
    ("[2, 100]", False), ('"2 of 100"', False), ("{not json", False), (None, False)])
def test_only_a_readable_partial_evaluation_is_counted_again(tmp_path, text, partial):
    """A metrics.json of another JSON type, damaged or missing is no partial evaluation (the
    audit names it): the sweep neither crashes on it nor takes it for TEST_IMAGES='s."""
    f = tmp_path / "metrics.json"
    if text is not None:
        f.write_text(text)
    assert replicate._partial(f) is partial


def test_a_dry_run_trains_a_cell_trained_exactly_iters_but_not_evaluated_in_full(
        monkeypatch, tmp_path, workdirs):
    """A run stopped between its training to ITERS and its evaluation goes through every step
    again (its training has nothing left to do), not as "trained further than ITERS"."""
    ds = config.dataset("bacterial")
    run = config.run_dir(ds, config.model("alexnet", ds), "R")
    run.mkdir(parents=True)
    (run / "train.json").write_text('{"iterations": 2}')
    ran = []
    monkeypatch.setattr(replicate, "_cell", lambda d, m, h, *a: ran.append((m, h, a[-1])) or "ok")
    monkeypatch.setattr("pycount.reporting.audit.why_not", lambda *a, **k: None)  # weights "there"
    rows = replicate.run(gpu=-1, iters=2, datasets=("bacterial",), models=("alexnet",),
                         data_root=_data_root(tmp_path))
    assert {(r["model"], r["head"]): r["status"] for r in rows} == {("alexnet", "R"): "ok",
                                                                     ("alexnet", "C"): "ok"}
    assert sorted(ran) == [("alexnet", "C", replicate.STEPS), ("alexnet", "R", replicate.STEPS)]


def test_a_dry_run_takes_an_evaluation_as_new_as_its_training_for_done(monkeypatch, tmp_path,
                                                                       workdirs):
    """metrics.json and train.json of the same time (a coarse clock) is an evaluation of that
    training: done, not evaluated again."""
    ds = config.dataset("bacterial")
    run = config.run_dir(ds, config.model("alexnet", ds), "R")
    run.mkdir(parents=True)
    (run / "train.json").write_text('{"iterations": 500}')
    (run / "metrics.json").write_text("{}")
    t = (run / "train.json").stat().st_mtime
    os.utime(run / "metrics.json", (t, t))
    assert replicate._dry_run("bacterial", "alexnet", "R", 20) == (
        "done before: trained 500 iterations already, more than ITERS=20 (a dry run leaves "
        "longer trainings as they are)", ())


@pytest.mark.parametrize("text, iters", [('{"iterations": 20}', 20), ('{"iterations": true}', 0),
                                         ('{"iterations": "20"}', 0), ('{"iterations": 2.0}', 0),
                                         ("[20]", 0), ("{not json", 0), ("{}", 0)])
def test_the_iterations_a_cell_has_trained_are_a_whole_number_or_none(workdirs, text, iters):
    """A train.json whose iterations are no whole number (true is not 1) counts as none trained:
    a dry run of ITERS=1 did not take it for a cell trained and done."""
    ds = config.dataset("bacterial")
    run = config.run_dir(ds, config.model("alexnet", ds), "R")
    run.mkdir(parents=True)
    (run / "train.json").write_text(text)
    assert replicate._iterations("bacterial", "alexnet", "R") == iters


def test_a_relative_data_root_reaches_the_steps_as_an_absolute_path_and_the_gpu_is_asked_once(
        monkeypatch, tmp_path, workdirs):
    """The steps run in the project's folder: DATA_ROOT=datasets given from another folder is
    passed to them as that folder's datasets. The GPU is asked for once, not per cell."""
    _data_root(tmp_path)
    monkeypatch.chdir(tmp_path)
    seen, asked = [], []
    monkeypatch.setattr(replicate, "_cell", lambda d, m, h, gpu, iters, root, *a:
                        seen.append((m, root)) or "ok")
    monkeypatch.setattr(replicate, "check_gpu", asked.append)
    replicate.run(gpu=3, datasets=("bacterial",), models=("lecount", "ledetect"),
                  data_root="datasets")
    assert seen == [("lecount", str(tmp_path / "datasets")),
                    ("ledetect", str(tmp_path / "datasets"))]
    assert asked == [3]


def test_a_dry_runs_note_goes_with_a_cell_that_ran_not_with_one_that_failed(monkeypatch,
                                                                          tmp_path, workdirs):
    ds = config.dataset("bacterial")
    run = config.run_dir(ds, config.model("alexnet", ds), "R")
    run.mkdir(parents=True)
    (run / "train.json").write_text('{"iterations": 500}')
    monkeypatch.setattr(replicate, "_cell", lambda d, m, h, *a: "failed at eval (exit 2)"
                        if h == "R" else "ok")
    monkeypatch.setattr("pycount.reporting.audit.why_not", lambda *a, **k: None)  # weights "there"
    with pytest.raises(errors.TrainError) as failed:
        replicate.run(gpu=-1, iters=20, datasets=("bacterial",), models=("alexnet",),
                      data_root=_data_root(tmp_path))
    assert str(failed.value) == "1 cell(s) failed: bacterial alexnet(R): failed at eval (exit 2)"


def test_a_sweep_with_no_runnable_cell_names_up_to_three_reasons(monkeypatch, tmp_path,
                                                                 workdirs):
    monkeypatch.setattr(replicate, "_cell", lambda *a: pytest.fail("a cell ran"))
    monkeypatch.setattr("pycount.reporting.audit.why_not", lambda d, *a, **k: f"no {d} here")
    with pytest.raises(errors.TrainError) as none:
        replicate.run(gpu=-1, datasets=("bacterial", "nuclei", "ki67"), models=("lecount",))
    assert str(none.value) == ("none of the 3 paper cells can run here: no bacterial here; "
                               "no nuclei here; no ki67 here")
    with pytest.raises(errors.TrainError) as none:
        replicate.run(gpu=-1, models=("lecount",))
    assert str(none.value) == ("none of the 4 paper cells can run here: no bacterial here; "
                               "no nuclei here; no ki67 here; ...")


def test_each_step_of_a_cell_is_told_its_settings(monkeypatch, tmp_path):
    """prepare, train and eval each get the cell's dataset, model and DATA_ROOT; train and eval
    its head and GPU (a classic method, fitted on the CPU, none of them), train ITERS= and eval
    TEST_IMAGES=."""
    seen = []
    monkeypatch.setattr(replicate, "_call", lambda argv, log, env: seen.append(argv[3:]) or 0)
    root = tmp_path / "data"
    status = replicate._cell("bacterial", "alexnet", "C", 1, 20, root, tmp_path, 5)
    cell = ["--dataset", "bacterial", "--model", "alexnet", "--data-root", str(root)]
    assert seen == [["prepare", *cell], ["train", *cell, "--head", "C", "--gpu", "1", "--iters",
                                         "20"],
                    ["eval", *cell, "--head", "C", "--gpu", "1", "--test-images", "5"]]
    assert status.startswith("ok (") and status.endswith(" min)")
    seen.clear()
    replicate._cell("bacterial", "lecount", "R", 1, None, None, tmp_path)
    cell = ["--dataset", "bacterial", "--model", "lecount"]
    assert seen == [["prepare", *cell], ["train", *cell], ["eval", *cell]]
