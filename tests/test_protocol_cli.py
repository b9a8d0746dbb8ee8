"""`make protocol` (pycount protocol): bad NS=/SEEDS=/JOBS=, a missing release and damaged run
folders are named before or instead of a training; no (N, seed) run is started here."""
import dataclasses
import json
import os
import signal
import sys

import pytest

from pycount import cli, config, errors
from pycount.nets import builders as nets
from pycount.training import protocol
from pycount.util import interrupt


@pytest.fixture
def jobs(monkeypatch, workdirs):
    """The (N, seed, steps) every job would run, instead of running them."""
    ran = []

    def job(base, n, seed, retrain, threads, log_dir, steps=("prepare", "train", "eval"),
            children=None, name=""):
        ran.append((n, seed, tuple(steps)))
        return n, seed, "ok", 0.0
    monkeypatch.setattr(protocol, "_job", job)
    return ran


def _root(tmp_path):
    """A DATA_ROOT holding the bacterial release's folder (its files are never read here)."""
    (tmp_path / "datasets" / config.dataset("bacterial").subdir).mkdir(parents=True)
    return str(tmp_path / "datasets")


@pytest.mark.parametrize("args, message", [
    (["--ns", ""], "NS= names no N"),
    (["--ns", ","], "NS= names no N"),
    (["--seeds", ""], "SEEDS= names no seed"),
    (["--ns=0"], "N = 0 is not valid"),
    (["--ns=32,-3"], "N = -3 is not valid"),
    (["--seeds=1,-1"], "seed -1 is not valid"),
    (["--jobs", "0"], "JOBS=0 is not valid"),
    (["--jobs=-2"], "JOBS=-2 is not valid"),
    (["--ns", "100"], "N = 100 leaves none to validate on"),
])
def test_bad_settings_stop_before_any_run(jobs, tmp_path, capsys, args, message):
    assert cli.main(["protocol", "--data-root", _root(tmp_path), *args]) == 2
    assert message in capsys.readouterr().err
    assert jobs == [] and not config.runs_dir().exists()


def test_a_list_that_is_no_numbers_is_named(jobs, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["protocol", "--ns", "32,abc"])
    assert stop.value.code == 2
    assert "'32,abc' is not valid: give whole numbers separated by commas" in \
        capsys.readouterr().err
    assert jobs == []


def test_repeated_n_and_seeds_run_once(jobs, tmp_path):
    """A repeat would train one run folder twice at once (its lock then fails one of them)."""
    assert cli.main(["protocol", "--data-root", _root(tmp_path), "--ns", "32,32",
                     "--seeds", "1,1,2", "--jobs", "2"]) == 0
    assert sorted(jobs) == [(32, 1, ("prepare", "train", "eval")),
                            (32, 2, ("prepare", "train", "eval"))]


def test_a_missing_release_is_named_once(jobs, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.main(["protocol", "--data-root", str(empty), "--ns", "32", "--seeds", "1"]) == 2
    err = capsys.readouterr().err
    assert f"{empty / config.dataset('bacterial').subdir} is missing" in err
    assert "make data DATASET=bacterial" in err and jobs == []


def _evaluated(ds, n, seed, metrics: str, trained: bool = True):
    """A protocol run of today's settings with the given metrics.json text."""
    d = config.with_overrides(ds, train_n=n, seed=seed)
    model = config.model("fcrn", d)
    run = config.run_dir(d, model)
    nets.write_net_files(nets.run_plan(d, model), run, snapshot_prefix=str(run / "snap"))
    (run / "metrics.json").write_text(metrics)
    if trained:
        (run / "train.json").write_text(json.dumps({"iterations": model.solver.max_iter}))
        (run / "model.caffemodel").write_bytes(b"weights")
    return run


PARTIAL = json.dumps({"dataset": "bacterial", "train_n": 32, "seed": 2, "mae": 3.0, "mre": 0.02,
                      "n_images": 2, "test_images_of": 100})     # TEST_IMAGES=2: no result
HUGE = '{"dataset": "bacterial", "train_n": 32, "seed": 2, "mae": 1%s, "mre": 0.02}' % ("0" * 400)


@pytest.mark.parametrize("damage", ["{not json", "[]", '{"train_n": 32}', "", PARTIAL, HUGE])
def test_a_damaged_metrics_file_is_evaluated_again(jobs, tmp_path, capsys, damage):
    """Before, it counted as done and its seed silently left the table; a partial evaluation
    (TEST_IMAGES=) counted as done and its MAE went into the table."""
    pytest.importorskip("caffe")            # stale() compares prototxts only with Caffe built
    ds = config.dataset("bacterial")
    good = json.dumps({"dataset": "bacterial", "train_n": 32, "seed": 1, "mae": 3.0,
                       "mre": 0.02})
    _evaluated(ds, 32, 1, good)
    damaged = _evaluated(ds, 32, 2, damage)
    unfinished = _evaluated(ds, 32, 3, damage, trained=False)
    assert cli.main(["protocol", "--data-root", _root(tmp_path), "--ns", "32",
                     "--seeds", "1,2,3"]) == 0
    assert sorted(jobs) == [(32, 2, ("eval",)), (32, 3, ("prepare", "train", "eval"))]
    out = capsys.readouterr().out
    assert f"{damaged / 'metrics.json'} holds no result" in out and "evaluating it again" in out
    assert f"{unfinished / 'metrics.json'} holds no result" in out
    assert [r["seeds"] for r in protocol.summarize(ds, "fcrn")] == [[1]]


def test_a_classic_methods_protocol_needs_no_net(workdirs):
    """lecount/ledetect have no prototxt to compare: their runs are never stale (a traceback
    from the net builder before)."""
    ds = config.dataset("bacterial")
    d = config.with_overrides(ds, train_n=32, seed=1)
    run = config.run_dir(d, config.model("lecount", d))
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({"dataset": "bacterial", "train_n": 32,
                                                  "seed": 1, "mae": 3.5, "mre": 0.02}))
    assert protocol.stale(run, ds, "lecount", 32, 1) == []
    assert protocol.pending(ds, "lecount", [32], [1, 2]) == [(32, 2, False)]
    assert [r["mae_per_seed"] for r in protocol.summarize(ds, "lecount")] == [[3.5]]


def test_an_unwritable_runs_folder_is_named(jobs, tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "runs-file"
    blocker.write_text("")
    monkeypatch.setenv("PYCOUNT_RUNS", str(blocker))
    assert cli.main(["protocol", "--data-root", _root(tmp_path), "--ns", "32",
                     "--seeds", "1"]) == 2
    err = capsys.readouterr().err
    assert f"{blocker / 'protocol' / 'logs'} cannot be created" in err
    assert "PYCOUNT_RUNS" in err and jobs == []


def test_a_log_that_cannot_be_written_fails_that_run_only(tmp_path, monkeypatch):
    log_dir = tmp_path / "logs"
    (log_dir / "n32-seed1.log").mkdir(parents=True)        # a folder where the log goes
    n, seed, status, _ = protocol._job(["--dataset", "bacterial"], 32, 1, False, 1, log_dir)
    assert (n, seed) == (32, 1) and status.startswith("cannot write its log")


def test_kill_stops_the_protocol_and_its_runs(workdirs, tmp_path, monkeypatch, capsys):
    """`kill PID` of a protocol left its training running as an orphan (whose lock then failed
    the next protocol): now the runs get SIGTERM too (a training snapshots on it) and are waited
    for, no further run starts, and the protocol exits as interrupted."""
    import os
    import signal
    import threading
    import time
    import types
    fake = tmp_path / "fake-python"            # stands for `python -m pycount <step>`
    fake.write_text(f"#!/bin/sh\necho $$ >> {tmp_path / 'started'}\n"
                    f"trap 'echo $$ >> {tmp_path / 'stopped'}; exit 143' TERM\n"
                    f"sleep 60 & wait\n")
    fake.chmod(0o755)
    monkeypatch.setattr(protocol, "sys", types.SimpleNamespace(executable=str(fake),
                                                               stderr=sys.stderr))

    def kill_when_started():
        while not (tmp_path / "started").exists():
            time.sleep(0.05)
        time.sleep(0.2)
        os.kill(os.getpid(), signal.SIGTERM)
    threading.Thread(target=kill_when_started, daemon=True).start()
    assert cli.main(["protocol", "--data-root", _root(tmp_path), "--ns", "32",
                     "--seeds", "1,2,3", "--jobs", "1"]) == 130
    started = (tmp_path / "started").read_text().split()
    assert len(started) == 1 and (tmp_path / "stopped").read_text().split() == started
    assert "protocol interrupted: stopping its runs" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_a_protocols_run_stops_when_the_protocol_is_killed_outright(tmp_path):
    """kill -9 of a protocol left its `pycount train` children running, holding their run
    folders' locks (a rerun then failed, "being trained by another process"): a child started
    with the parent's id in PYCOUNT_PARENT_PID gets SIGTERM when that parent dies."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pycount.util import interrupt
    child = ("from pycount.util.interrupt import follow_parent; follow_parent(); "
             "import time; time.sleep(120)")
    parent = ("import os, subprocess, sys, time\n"
              f"env = dict(os.environ, {interrupt.PARENT_ENV}=str(os.getpid()))\n"
              f"p = subprocess.Popen([sys.executable, '-c', {child!r}], env=env)\n"
              "print(p.pid, flush=True)\n"
              "time.sleep(120)\n")
    proc = subprocess.Popen([sys.executable, "-c", parent], stdout=subprocess.PIPE, text=True,
                            cwd=config.ROOT)
    pid = int(proc.stdout.readline())
    time.sleep(2)                                   # the child has asked for the signal by now
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        with open(f"/proc/{pid}/stat") as f:        # gone but not yet reaped: a zombie
            if f.read().split(") ")[1].startswith("Z"):
                break
        time.sleep(0.1)
    else:
        os.kill(pid, signal.SIGKILL)
        raise AssertionError("the child outlived its killed parent")


def _own_folder_with_iters(root, iters=20):
    from test_own_data import make_folder
    folder = make_folder(root, n=8)
    (folder / "pycount.toml").write_text(f"iters = {iters}\n")
    return protocol.resolve_dataset(str(folder))


def _write_run(ds, n, seed, solver_iters=None):
    """The prototxts a training of (N, seed) writes, at `solver_iters` iterations."""
    from pycount.nets import builders as nets
    ds_n = config.with_overrides(ds, train_n=n, seed=seed)
    m = config.model("fcrn", ds_n)
    if solver_iters:
        m = dataclasses.replace(m, solver=m.solver.stretched(solver_iters))
    run = config.run_dir(ds_n, m)
    nets.write_net_files(nets.run_plan(ds_n, m), run, str(run / "snapshots" / "snap"))
    return run


def test_a_folder_with_iters_in_its_spec_is_not_trained_again_each_time(tmp_path, workdirs):
    """pycount.toml's iters: the runs train that many iterations, but the protocol compared them
    with the model's 8,000, so every rerun trained every seed again from scratch."""
    ds = _own_folder_with_iters(tmp_path / "own")
    _write_run(ds, 2, 1, solver_iters=20)
    assert protocol.stale(config.run_dir(config.with_overrides(ds, train_n=2, seed=1),
                                         config.model("fcrn")), ds, "fcrn", 2, 1) == []
    assert protocol.pending(ds, "fcrn", [2], [1]) == [(2, 1, False)]   # to evaluate, not retrain


def test_a_run_of_another_schedule_stopped_before_its_metrics_is_trained_again(tmp_path,
                                                                                workdirs):
    """A run without metrics.json (its training or eval stopped) was resumed whatever schedule
    its snapshots were of, mixing the two; a run not begun is simply trained."""
    ds = _own_folder_with_iters(tmp_path / "own", iters=30)
    _write_run(ds, 2, 1, solver_iters=20)           # begun when pycount.toml said 20
    assert protocol.pending(ds, "fcrn", [2], [1, 2]) == [(2, 1, True), (2, 2, False)]


def test_seeds_of_older_settings_are_shown_apart_and_left_out_of_the_mean(tmp_path, workdirs):
    ds = _own_folder_with_iters(tmp_path / "own")
    for seed, mae, iters in ((1, 2.0, 20), (2, 4.0, 20), (3, 9.0, 50)):
        run = _write_run(ds, 2, seed, solver_iters=iters)
        (run / "metrics.json").write_text(json.dumps({
            "dataset": ds.name, "train_n": 2, "seed": seed, "mae": mae, "mre": 0.1}))
    row, = protocol.summarize(ds, "fcrn")
    assert (row["seeds"], row["mae_mean"], row["stale_seeds"]) == ([1, 2], 3.0, [3])
    md = protocol.to_markdown([row])
    assert "| 3.00 ± 1.41 | 2.00, 4.00 | seed 3: 9.00 |" in md
    (config.run_dir(config.with_overrides(ds, train_n=2, seed=2), config.model("fcrn"))
     / "metrics.json").unlink()
    row, = protocol.summarize(ds, "fcrn")
    assert row["mae_std"] is None and "| 2.00 ± n/a (one seed) |" in protocol.to_markdown([row])


def test_the_table_is_of_the_ns_and_seeds_asked_for(tmp_path, workdirs):
    """A seed tried once (SEEDS=7) stayed in `make protocol NS=2 SEEDS=1,2`'s mean: summarize
    takes what the protocol was asked for; the audit (no filter) still shows every seed."""
    ds = _own_folder_with_iters(tmp_path / "own")
    for n, seed, mae in ((2, 1, 2.0), (2, 2, 4.0), (2, 7, 30.0), (3, 1, 5.0)):
        run = _write_run(ds, n, seed, solver_iters=20)
        (run / "metrics.json").write_text(json.dumps({
            "dataset": ds.name, "train_n": n, "seed": seed, "mae": mae, "mre": 0.1}))
    row, = protocol.summarize(ds, "fcrn", ns={2}, seeds={1, 2})
    assert (row["train_n"], row["seeds"], row["mae_mean"]) == (2, [1, 2], 3.0)
    rows = protocol.summarize(ds, "fcrn")
    assert [(r["train_n"], r["seeds"]) for r in rows] == [(2, [1, 2, 7]), (3, [1])]


def _lecount_run(seed, mae, dataset="bacterial", n=32):
    """A protocol run of Le.count (no net: never stale) evaluated at `mae`."""
    d = config.with_overrides(config.dataset("bacterial"), train_n=n, seed=seed)
    run = config.run_dir(d, config.model("lecount", d))
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({"dataset": dataset, "train_n": n,
                                                  "seed": seed, "mae": mae, "mre": mae / 100}))
    return run


def test_the_summary_takes_a_runs_own_metrics_before_its_record_and_only_its_datasets(workdirs):
    """A recorded seed counts only when its run folder is gone (the folder's evaluation is the
    newer); a metrics.json of another dataset in the folder is no seed of this one."""
    _lecount_run(1, 2.0)
    _lecount_run(2, 4.0, dataset="nuclei")
    rec = {"train_n": 32, "mae": 9.0, "mre": 0.09, "dataset": "bacterial"}
    row, = protocol.summarize("bacterial", "lecount", recorded={
        "bacterial-n32-seed1/lecount": dict(rec, seed=1),
        "bacterial-n32-seed3/lecount": dict(rec, seed=3, mae=5.0),
        "bacterial-n32-seed4/lecount": dict(rec, seed=4, mae=7.0, stale=True)})
    assert (row["seeds"], row["mae_per_seed"], row["recorded_seeds"]) == ([1, 3], [2.0, 5.0], [3])
    assert row["mae_mean"] == 3.5 and row["mre_mean"] == pytest.approx(0.055)
    assert row["mae_std"] == pytest.approx(2.1213203)               # sample std of 2 and 5
    assert (row["stale_seeds"], row["stale_mae"]) == ([4], {"4": 7.0})


def test_seed_0_is_a_draw():
    assert protocol.check_sweep([32, 50, 32], [0, 1, 0], 1) == ([32, 50], [0, 1])


def test_a_training_is_complete_only_with_its_weights_kept(tmp_path):
    """Only then is a run with a damaged metrics.json evaluated again rather than trained on."""
    ds = config.dataset("bacterial")
    full = config.model("fcrn", ds).solver.max_iter
    (tmp_path / "train.json").write_text(json.dumps({"iterations": full}))
    assert not protocol._trained(tmp_path, ds, "fcrn")
    (tmp_path / "model.caffemodel").write_bytes(b"weights")
    assert protocol._trained(tmp_path, ds, "fcrn")
    (tmp_path / "train.json").write_text(json.dumps({"iterations": full, "interrupted": True}))
    assert not protocol._trained(tmp_path, ds, "fcrn")


def test_a_retrained_run_restarts_its_training_only(tmp_path):
    """--restart goes to `pycount train` alone (prepare and eval have no such option), with the
    run's N and seed on every step."""
    class Children:
        argv, envs = [], []

        def call(self, argv, **kwargs):
            self.argv.append(argv[3:])
            self.envs.append(kwargs["env"])
            return 0
    children = Children()
    assert protocol._job(["--dataset", "bacterial"], 32, 4, True, 1, tmp_path,
                         children=children)[:3] == (32, 4, "ok")
    run = ["--dataset", "bacterial", "--train-n", "32", "--seed", "4"]
    assert children.argv == [["prepare", *run], ["train", *run, "--restart"], ["eval", *run]]
    # each step stops when the protocol dies, and has the BLAS threads it was given
    assert {(env[interrupt.PARENT_ENV], env["OPENBLAS_NUM_THREADS"]) for env in children.envs} \
        == {(str(os.getpid()), "1")}


def test_no_run_starts_once_the_protocol_is_stopping():
    children = protocol._Children()
    children.stop()
    assert children.call([sys.executable, "-c", "raise SystemExit(3)"]) == -signal.SIGTERM


def test_a_protocol_with_every_run_done_needs_no_release_and_reports_only_what_was_asked(
        jobs, tmp_path, capsys):
    """Nothing to train: a DATA_ROOT without the release is no error; the summary written is of
    the seeds asked for, not of every seed on the disk."""
    _lecount_run(1, 2.0)
    _lecount_run(2, 4.0)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.main(["protocol", "--model", "lecount", "--data-root", str(empty), "--ns", "32",
                     "--seeds", "1"]) == 0
    assert jobs == []
    rows = json.loads((config.runs_dir() / "protocol" / "bacterial-lecount.json").read_text())
    assert [(r["train_n"], r["seeds"], r["mae_mean"]) for r in rows] == [(32, [1], 2.0)]


def test_a_failed_run_fails_the_protocol_after_its_summary(monkeypatch, tmp_path, workdirs):
    monkeypatch.setattr(protocol, "_job", lambda base, n, seed, *a: (
        n, seed, "train failed (exit 2); see its log" if seed == 2 else "ok", 0.0))
    with pytest.raises(errors.TrainError, match=r"^train failed \(exit 2\); see its log$"):
        protocol.run("bacterial", "lecount", ns=(32,), seeds=(1, 2), data_root=_root(tmp_path))
    assert (config.runs_dir() / "protocol" / "bacterial-lecount.md").is_file()


def test_a_run_trained_again_from_scratch_loses_its_old_metrics_first(jobs, tmp_path):
    """Its MAE went with the weights the retraining replaces: a retraining stopped midway left
    it, and the next protocol took the run for evaluated and resumed it."""
    pytest.importorskip("caffe")            # stale() compares prototxts only with Caffe built
    ds = _own_folder_with_iters(tmp_path / "own", iters=30)
    run = _write_run(ds, 2, 1, solver_iters=20)            # trained when pycount.toml said 20
    (run / "metrics.json").write_text(json.dumps({"dataset": ds.name, "train_n": 2, "seed": 1,
                                                  "mae": 2.0, "mre": 0.1}))
    protocol.run(str(tmp_path / "own"), "fcrn", ns=(2,), seeds=(1,))
    assert jobs == [(2, 1, ("prepare", "train", "eval"))]
    assert not (run / "metrics.json").exists()
