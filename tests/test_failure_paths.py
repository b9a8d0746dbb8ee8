"""The failure paths a lab hits (issue #21): every one ends in one `pycount: error:` line naming
the file and the fix, a non-zero exit, no traceback; killed commands leave nothing that is taken
for a result, and the next run cleans what they left."""
import dataclasses
import json
import errno
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from pycount import cli, config, errors
from pycount.data import lmdbio, prepare

ROOT = Path(__file__).resolve().parent.parent


def _pycount(*args, env=None, timeout: int = 600):
    return subprocess.run([sys.executable, "-m", "pycount", *map(str, args)], capture_output=True,
                          text=True, cwd=ROOT, env=dict(os.environ, **(env or {})),
                          timeout=timeout)


def _one_clean_error(p, *needles):
    assert p.returncode == 2, p.stdout[-2000:] + p.stderr[-2000:]
    assert "Traceback" not in p.stderr and "Check failed" not in p.stderr, p.stderr[-3000:]
    assert "pycount: error:" in p.stderr
    for n in needles:
        assert n in p.stderr, p.stderr[-2000:]


def test_every_user_error_is_a_pycount_error():
    for cls in (errors.ConfigError, errors.DatasetError, errors.DownloadError,
                errors.LmdbError, errors.WeightsError, errors.TrainError, errors.RunError,
                errors.Diverged):
        assert issubclass(cls, errors.PycountError)


def test_the_cli_maps_weights_errors_to_one_line(monkeypatch, capsys):
    """WeightsError printed a traceback: cli.main did not catch it (#21.5)."""
    def missing(args):
        raise errors.WeightsError("weights/ResNet-50-model.caffemodel is missing; see "
                                  "weights/README.md")
    monkeypatch.setattr(cli, "run", missing)
    assert cli.main(["train", "--model", "resnet50"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == ("pycount: error: weights/ResNet-50-model.caffemodel is missing; see "
                           "weights/README.md")


@pytest.fixture
def generic(tmp_path):
    """A generic-layout dataset of 10 images of 120x100 px, one of them 30x30 px."""
    root = tmp_path / "datasets"
    folder = root / "ki67"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for k in range(10):
        h, w = (30, 30) if k == 7 else (100, 120)
        cv2.imwrite(str(folder / f"{k:03d}.png"), rng.integers(0, 255, (h, w, 3), np.uint8))
        (folder / f"{k:03d}.csv").write_text("x,y\n5,5\n12.5,20\n")
    ds = dataclasses.replace(config.dataset("ki67"), patch=40, stride=20, rot_step=0, n_val=2,
                             encoded=False)
    return ds, root, folder / "007.png"


def test_an_image_smaller_than_the_patch_stops_prepare_by_name(generic, workdirs):
    """It crashed with 'patch size 200 exceeds image side length 10', naming no file (#21.4);
    every image of the split is read and checked before an LMDB is written (#21.9)."""
    ds, root, small = generic
    with pytest.raises(errors.DatasetError, match=f"{small}: the image is 30x30 px, smaller "
                       f"than ki67's 40 px patches; use PATCH="):
        prepare.prepare(ds, root)
    assert not (config.lmdb_dir(ds) / "train_lmdb").exists()


def test_an_image_smaller_than_the_crop_names_the_crop(generic, workdirs):
    """A density model's crops: the message named patches and PATCH=, which do not change them."""
    ds, root, _ = generic
    with pytest.raises(errors.DatasetError) as err:
        prepare.prepare(dataclasses.replace(ds, crop=112), root, model=config.model("fcrn"))
    assert "smaller than ki67's 112 px training crops; use CROP= (and CROP_STRIDE=)" in str(err.value)


def test_an_image_smaller_than_the_patch_stops_the_cli_cleanly(generic, workdirs):
    ds, root, small = generic
    p = _pycount("prepare", "--dataset", "ki67", "--data-root", root, "--patch", 40,
                 "--stride", 20, env={"PYCOUNT_DATA": str(workdirs / "data")})
    _one_clean_error(p, str(small), "smaller than ki67's 40 px patches")


def test_a_full_disk_during_an_lmdb_write_gives_the_advice(tiny, workdirs):
    """lmdb.Error is not an OSError: a write past `ulimit -f` printed a traceback (#21.6)."""
    ds, _ = tiny
    prepare.dataset_root(ds)                      # the images are generated before the limit
    plan = workdirs / "plan.pkl"
    plan.write_bytes(pickle.dumps(ds))
    script = workdirs / "prepare.py"
    script.write_text(
        "import pickle, sys\n"
        "from pycount import config, errors\n"
        "from pycount.data import prepare\n"
        "config.SYNTHETIC_IMAGES = 12\n"
        "try:\n"
        f"    prepare.prepare(pickle.loads(open({str(plan)!r}, 'rb').read()))\n"
        "except errors.PycountError as e:\n"
        "    print(f'pycount: error: {e}', file=sys.stderr)\n"
        "    sys.exit(2)\n")
    # 200 blocks of 512 bytes: the images are there already, the LMDB does not fit
    p = subprocess.run(["bash", "-c", f"ulimit -f 200; exec {sys.executable} {script}"],
                       capture_output=True, text=True, cwd=ROOT,
                       env=dict(os.environ, PYCOUNT_DATA=str(workdirs / "data"),
                                PYTHONPATH=str(ROOT)), timeout=300)
    _one_clean_error(p, "writing failed", "nothing was replaced", "disk is full")
    assert not list(config.lmdb_dir(ds).glob(".*partial*"))


def test_kill_stops_make_prepare_as_ctrl_c_does(workdirs):
    """SIGTERM (`kill PID`) during `pycount prepare`: "interrupted", exit 130 and no half-written
    LMDB folder left behind (it stayed, silently, until the next prepare)."""
    code = ("import sys; from pycount import cli; "
            "sys.exit(cli.main(['prepare', '--dataset', 'synthetic', '--rot', '30']))")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYCOUNT_DATA=str(workdirs / "data")))
    lmdb_dir = config.lmdb_dir(dataclasses.replace(config.dataset("synthetic"), rot_step=30))
    deadline = time.time() + 300
    while time.time() < deadline and not list(lmdb_dir.glob(".*_lmdb.partial-*/data.mdb")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == 130 and "pycount: interrupted" in err and "Traceback" not in err
    assert not list(lmdb_dir.glob(".*partial*"))


def test_a_killed_prepare_leaves_partials_that_the_next_run_removes(tiny, workdirs, tmp_path):
    """A killed `prepare` leaked hidden .train_lmdb.partial-<pid> folders (#21.8)."""
    ds, _ = tiny
    prepare.dataset_root(ds)
    big = dataclasses.replace(ds, rot_step=30)                 # a write long enough to kill
    plan = tmp_path / "plan.pkl"
    plan.write_bytes(pickle.dumps(big))
    code = ("import pickle; from pycount import config; from pycount.data import prepare; "
            "config.SYNTHETIC_IMAGES = 12; "
            f"prepare.prepare(pickle.loads(open({str(plan)!r}, 'rb').read()))")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                            env=dict(os.environ, PYCOUNT_DATA=str(workdirs / "data")))
    lmdb_dir = config.lmdb_dir(big)
    deadline = time.time() + 300
    while time.time() < deadline and not list(lmdb_dir.glob(".train_lmdb.partial-*/data.mdb")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    leaked = list(lmdb_dir.glob(".train_lmdb.partial-*"))
    assert leaked, "the kill came too late to leave a partial folder"
    live = lmdb_dir / f".train_lmdb.partial-{os.getpid()}"     # a live writer's stays
    live.mkdir()
    assert lmdbio.remove_stale_partials(lmdb_dir / "train_lmdb") == leaked
    assert live.exists()
    live.rmdir()
    prepare.prepare(big)
    assert not list(lmdb_dir.glob(".*partial*"))
    assert lmdbio.read_manifest(lmdb_dir / "train_lmdb")["records"] > 0


@pytest.mark.parametrize("var, value, needle", [
    ("HEAD", "X", "unknown head 'X'"),
    ("MODEL", "nope", "unknown model 'nope'"),
    ("DATASET", "nope", "unknown dataset 'nope'"),
    # a quote went into the check's Python source: a SyntaxError traceback, or code run
    ("MODEL", "fcrn'); print('injected'); ('", "unknown model \"fcrn'); print('injected')"),
    ("FORCE", "true", "FORCE=true is not valid: use FORCE=1 or FORCE=0"),  # was ignored
    ("RESUME", "no", "RESUME=no is not valid: use RESUME=1 or RESUME=0"),
    ("RECURSIVE", "true", "RECURSIVE=true is not valid: use RECURSIVE=1 or RECURSIVE=0")])
def test_make_refuses_bad_names_before_setting_anything_up(var, value, needle, tmp_path):
    """An invalid HEAD was caught only after `make setup` (#21.9)."""
    p = subprocess.run(["make", "-s", "train", f"{var}={value}", f"VENV={tmp_path / 'venv'}"],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and needle in p.stderr
    assert "injected" not in p.stdout and "Traceback" not in p.stderr
    assert not (tmp_path / "venv").exists()


@pytest.mark.parametrize("given", ["BATCH=0", "dataset=bacterial", "ITER=10"])
def test_make_refuses_a_setting_it_does_not_know(given, tmp_path):
    """`make train BATCH=0` (or a typo) was passed to nothing: a full training on the defaults."""
    p = subprocess.run(["make", "-s", "train", "DATASET=synthetic", given,
                        f"VENV={tmp_path / 'venv'}"], cwd=ROOT, capture_output=True, text=True,
                       timeout=60)
    name = given.split("=")[0]
    assert p.returncode != 0 and f"{name} is not a setting of this Makefile" in p.stderr
    assert "ITERS" in p.stderr and not (tmp_path / "venv").exists()
    ok = subprocess.run(["make", "-s", "-n", "train", "DATASET=synthetic", "ITERS=10",
                         "PYCOUNT_RUNS=/tmp/x", "OMP_NUM_THREADS=1"], cwd=ROOT,
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr       # settings and the environment pycount reads pass


def test_make_gpu_check_refuses_the_cpu_and_passes_the_gpu_it_is_given(tmp_path):
    """`make gpu-check GPU=-1` (the CPU) ran on GPU 0 without a word; make audit-gpu repeated
    replicate's default GPU in the Makefile: each passes only the GPU= a user sets."""
    def dry(*words):
        return subprocess.run(["make", "-s", "-n", *words, f"VENV={tmp_path / 'venv'}"],
                              cwd=ROOT, capture_output=True, text=True, timeout=60)
    for cpu in ("-1", "-2", "-01"):                      # before its prepare step (helper-49)
        said = dry("gpu-check", f"GPU={cpu}")
        assert said.returncode != 0 and said.stdout == ""
        assert f"GPU={cpu} is the CPU: make gpu-check trains on a GPU" in said.stderr
    assert "--gpu '1'" in dry("gpu-check", "GPU=1").stdout
    assert "--gpu" not in dry("gpu-check").stdout.split("gpu_check", 1)[1].split("\n\n")[0]
    assert "replicate --gpu '-1'" in dry("audit-gpu", "GPU=-1", "ITERS=2").stdout
    assert "replicate  --data-root" in dry("audit-gpu").stdout


@pytest.mark.parametrize("goals, given, readers", [
    (["eval"], "RUN=runs/x/fcrn", "make count"),                # evaluated the default run
    (["train"], "TTA=3", "make eval or make demo or make count"),
    (["prepare", "train"], "OUT=/tmp/o", "make count or make audit"),
    # make audit-gpu swept every paper cell with MODEL= (not MODELS=) ignored; make protocol
    # trained the R head with HEAD=C, and on the CPU with GPU=0
    (["audit-gpu"], "MODEL=alexnet", "make prepare or make train or make eval or make demo or "
                                     "make protocol"),
    (["protocol"], "HEAD=C", "make prepare or make train or make eval or make demo"),
    (["count"], "SIGMA=2", "make prepare or make train or make eval or make demo or make "
                           "protocol")])
def test_make_refuses_a_setting_none_of_its_targets_reads(goals, given, readers, tmp_path):
    """`make eval RUN=...` evaluated the default run folder, not RUN's, and `make audit OUT=...`
    wrote to runs/audit: a setting that only other targets read stops the command at once."""
    dataset = [] if {"audit-gpu", "count"} & set(goals) else ["DATASET=synthetic"]
    p = subprocess.run(["make", "-s", "-n", *goals, *dataset, given,
                        f"VENV={tmp_path / 'venv'}"], cwd=ROOT, capture_output=True, text=True,
                       timeout=60)
    name = given.split("=")[0]
    assert p.returncode != 0 and (f"{name}= is not read by make {' '.join(goals)} (only by "
                                  f"{readers}): remove it") in p.stderr, p.stderr
    assert "-m pycount" not in p.stdout
    # where one of the goals reads it, it passes; make audit takes OUT= as its report folder
    ok = subprocess.run(["make", "-s", "-n", "prepare", "train", "eval", "DATASET=synthetic",
                         "ITERS=10", "TTA=1"], cwd=ROOT, capture_output=True, text=True,
                        timeout=60)
    assert ok.returncode == 0, ok.stderr
    audit = subprocess.run(["make", "-s", "-n", "audit", f"OUT={tmp_path / 'my report'}"],
                           cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert audit.returncode == 0 and f"--out '{tmp_path / 'my report'}'" in audit.stdout


def test_make_clean_reads_no_setting_and_an_empty_setting_is_refused(tmp_path):
    """`make clean DATASET=x` removed every dataset's data and every run (clean was not among
    the checked goals), and ITERS= left empty (an unset $N in a script) trained the full
    schedule, RUN= empty counted with the demo's run (helper-55). Both stop at once; make clean
    says what it removes and that PYCOUNT_RUNS / PYCOUNT_DATA folders stay. (All dry runs.)"""
    def dry(*words, env=None):
        return subprocess.run(["make", "-s", "-n", *words], cwd=ROOT, capture_output=True,
                              text=True, timeout=60, env=env)
    for given in ("DATASET=x", "MODEL=fcrn", "RUN=runs/x/fcrn"):
        p = dry("clean", given)
        assert p.returncode != 0 and p.stdout == "", p.stdout
        assert f"{given.split('=')[0]}= is not read by make clean" in p.stderr
    assert dry("distclean", "DATASET=x", f"VENV={tmp_path / 'v'}").returncode != 0
    for words in (("train", "DATASET=synthetic", "ITERS="), ("count", "RUN="),
                  ("eval", "DATASET=")):
        p = dry(*words, f"VENV={tmp_path / 'venv'}")
        empty = next(w for w in words if w.endswith("="))
        assert p.returncode != 0 and f"{empty} is empty: give it a value" in p.stderr, p.stderr
    import os
    env = {**os.environ, "PYCOUNT_RUNS": str(tmp_path / "mine")}
    p = dry("clean", env=env)
    assert p.returncode == 0 and "rm -rf data runs" in p.stdout
    assert f"left as they are: {tmp_path / 'mine'}" in p.stdout


@pytest.mark.parametrize("given", ["ZOOM=0.25", "SIGMA=2", "RESPLIT=1"])
def test_make_protocol_refuses_the_settings_it_would_drop(given, tmp_path):
    """make protocol passes only DATASET, MODEL, NS, SEEDS, JOBS: ZOOM= (or SIGMA=, ...) was
    accepted and the protocol ran at the dataset's own settings without a word."""
    p = subprocess.run(["make", "-s", "-n", "protocol", "DATASET=synthetic", given,
                        f"VENV={tmp_path / 'venv'}"], cwd=ROOT, capture_output=True, text=True,
                       timeout=60)
    name = given.split("=")[0]
    assert p.returncode != 0 and f"{name}= is not used by make protocol" in p.stderr
    assert "-m pycount protocol" not in p.stdout


def test_make_passes_a_folder_name_with_spaces_quotes_and_parentheses_as_one_argument(tmp_path):
    """DATASET="/x/my cells" reached pycount as two arguments ("unrecognized arguments: cells"),
    and "(copy)" was a shell syntax error."""
    import shlex
    folder = tmp_path / "O'Brien cells (copy)"
    folder.mkdir()
    p = subprocess.run(["make", "-s", "-n", "prepare", f"DATASET={folder}", "MODEL=fcrn",
                        f"DATA_ROOT={tmp_path} x"], cwd=ROOT, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    line = next(x for x in p.stdout.splitlines() if "-m pycount prepare" in x)
    argv = shlex.split(line)
    assert argv[argv.index("--dataset") + 1] == str(folder)
    assert argv[argv.index("--data-root") + 1] == f"{tmp_path} x"
    assert argv[argv.index("--model") + 1] == "fcrn"
    for target, needle in (("count", "IMAGES= is missing: make count IMAGES=dir RUN=runs/x/y"),
                           ("data", "DATASET= is missing: make data DATASET=bacterial")):
        p = subprocess.run(["make", "-s", target, "RUN=x", f"VENV={tmp_path / 'venv'}"],
                           cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert p.returncode != 0 and needle in p.stderr


# ---- eval refuses a run folder it cannot trust, before any engine is built or file written ---

def _eval_run(folder_head: str = "R", train_json=None, **changes) -> Path:
    """The folder `pycount eval` reads for the default dataset and model (its files are
    placeholders: every refusal below comes before they are opened), with the train.json a
    finished training writes, `changes` applied; train_json=False: none, a str: that text."""
    ds = config.dataset(config.DEFAULT_DATASET)
    model = config.model(config.DEFAULT_MODEL, ds)
    run = config.run_dir(ds, model, folder_head)
    run.mkdir(parents=True)
    for name in config.run_files(model):
        (run / name).write_text("placeholder\n")
    info = {"dataset": ds.name, "model": model.name, "head": folder_head, "iterations": 60,
            "best_iter": 60, "best_val_patch_mae": 1.5, "seconds": 10.0, "net": "x",
            "dataset_tag": ds.tag, "patch": ds.patch, "stride": ds.stride, "size": ds.size,
            "rot_step": ds.rot_step, "train_n": 0, "seed": 0, "resplit": 0, **changes}
    if train_json is None:
        (run / "train.json").write_text(json.dumps(info))
    elif train_json is not False:
        (run / "train.json").write_text(train_json)
    return run


def _no_engine(monkeypatch):
    """Fails the test if eval gets as far as building an engine."""
    from pycount.evaluation import evaluate

    def built(*args, **kwargs):
        raise AssertionError("eval built an engine for a run it should have refused")
    monkeypatch.setattr(evaluate, "make_predictor", built)


def _nothing_written(run: Path) -> None:
    for name in ("metrics.json", "metrics.md", "predictions.csv", "heatmaps"):
        assert not (run / name).exists(), name
    assert not (run.parent / "fig7.png").exists()


def _eval_error(capsys) -> str:
    assert cli.main(["eval"]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pycount: error: "), captured.err
    return lines[0]


def test_eval_refuses_a_run_whose_training_never_wrote_train_json(workdirs, monkeypatch, capsys):
    """A training killed after its first validation leaves model.caffemodel but no train.json:
    eval counted with it and wrote metrics.json (F8)."""
    _no_engine(monkeypatch)
    run = _eval_run(train_json=False)
    err = _eval_error(capsys)
    assert f"{run / 'train.json'} is missing" in err
    assert "has not finished" in err and "make train resumes it" in err
    _nothing_written(run)


def test_eval_refuses_an_interrupted_training(workdirs, monkeypatch, capsys):
    _no_engine(monkeypatch)
    run = _eval_run(interrupted=True, iterations=30)
    err = _eval_error(capsys)
    ds = config.dataset(config.DEFAULT_DATASET)
    assert err == (f"pycount: error: {run}: its training was interrupted at iteration 30; "
                   f"finish it first (make train DATASET={ds.name} MODEL={config.DEFAULT_MODEL} "
                   f"resumes it)")
    _nothing_written(run)


def _through_make(command: str) -> config.DatasetConfig:
    """The dataset that `make train VAR=value ...` trains: each word through the Makefile's own
    `$(call opt,VAR,--option)` table (an empty value passes nothing), Make's `$$` as `$`, then
    the command line's parser and cli.dataset_of, as `make train` runs them."""
    import shlex
    from pycount import cli
    makefile = (Path(__file__).resolve().parent.parent / "Makefile").read_text()
    options = dict(re.findall(r"\$\(call opt,(\w+),(--[\w-]+)\)", makefile))
    words = shlex.split(command)
    assert words[:2] == ["make", "train"], command
    argv = ["train"]
    for word in words[2:]:
        var, value = word.split("=", 1)
        if value:
            argv += [options[var], value.replace("$$", "$")]
    return cli.dataset_of(cli.parser().parse_args(argv), say=lambda _: None)


def test_the_resume_command_names_the_runs_settings(tmp_path, workdirs):
    """The make train that an interrupted run's message names trains that run folder again:
    a named set's settings off its defaults, a protocol run (TRAIN_N, SEED), a redrawn split, a
    head, ITERS= of a longer schedule; an own folder by its path with the settings given over
    its own (SIGMA=, MARKER=all over its pycount.toml's marker: an empty MARKER= passed
    nothing), a `$` in its path doubled for Make. `make train` alone trained the default set."""
    from pycount.inference.run import resume_command

    def info_of(ds, model="fcrn", **more):
        keys = ("patch", "stride", "rot_step", "size", "train_n", "seed", "resplit", "sigma",
                "crop", "crop_stride", "hed_jitter", "scale", "zoom", "stain_norm")
        return json.loads(json.dumps({"dataset": ds.name, "model": model, "head": "R",
                                      "dataset_tag": ds.tag, **{k: getattr(ds, k) for k in keys},
                                      **more}))

    def run_of(name):
        run = tmp_path / "runs" / name
        run.mkdir(parents=True)
        return run

    named = config.with_overrides(config.dataset("nuclei"), sigma=5.0, zoom=0.1, train_n=32,
                                  seed=3, resplit=2)
    run = run_of("named")
    (run / "solver.prototxt").write_text("base_lr: 0.001\nmax_iter: 12000\n")
    said = resume_command(run, info_of(named, head="C"))
    assert said == ("make train DATASET=nuclei SIGMA=5 ZOOM=0.1 TRAIN_N=32 SEED=3 RESPLIT=2 "
                    "MODEL=fcrn HEAD=C ITERS=12000")
    assert _through_make(said).tag == named.tag == "nuclei-sigma5-zoom0.1-n32-seed3-split2"
    (run / "solver.prototxt").write_text("max_iter: 8000\n")        # fcrn's own schedule
    assert "ITERS" not in resume_command(run, info_of(named))
    # a hand-edited train.json: a value of the wrong kind is not read as a setting, and the
    # settings left no longer give back the run's tag, so no command is offered as its own
    edited = resume_command(run, {**info_of(named), "sigma": "wide", "patch": 60.5})
    assert edited.startswith("the make train that trained it, with the settings of "
                             "nuclei-sigma5-zoom0.1-n32-seed3-split2")

    folder = tmp_path / "my $cells"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        cv2.imwrite(str(folder / f"img{i}.png"), rng.integers(0, 255, (90, 90, 3), np.uint8))
        (folder / f"img{i}.csv").write_text("x,y,class\n" + "".join(
            f"{x},{y},{'pos' if (x // 12 + y // 12) % 2 else 'neg'}\n"
            for x in range(5, 90, 12) for y in range(5, 90, 12)))
    (folder / "pycount.toml").write_text('marker = "pos"\niters = 300\n')
    own = _through_make(f"make train 'DATASET={folder}' SIGMA=3 MARKER=all")
    assert (own.sigma, own.marker, own.tag) == (3.0, "", "my $cells-sigma3-marker-all")
    run = run_of("own")
    from pycount.data import owndata
    owndata.record_in_run(run, own)
    # trained to its pycount.toml's iters: no ITERS= (it was named, though `make train` trains
    # there without it)
    (run / "solver.prototxt").write_text("max_iter: 300\n")
    said = resume_command(run, info_of(own))
    assert said == f"make train 'DATASET={str(folder).replace('$', '$$')}' SIGMA=3 MARKER=all " \
                   f"MODEL=fcrn"
    assert _through_make(said).tag == own.tag
    (run / "dataset.json").write_text("{")       # damaged: the name is all there is
    assert resume_command(run, {"dataset": own.name, "model": "fcrn"}) == (
        "make train 'DATASET=my $$cells' MODEL=fcrn")
    assert resume_command(tmp_path, {}) == "make train"


def test_eval_refuses_a_run_that_a_training_holds_now(workdirs, monkeypatch, capsys):
    """eval beside a resumed `make train` of the same run counted the last session's weights and
    left a metrics.json that the end of the training made stale; now refused while the lock is
    held, and once it is free the evaluation records the iterations it counted."""
    import fcntl
    _no_engine(monkeypatch)
    run = _eval_run(iterations=30)
    with open(run / ".train.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)      # as runlock.RunLock holds it
        err = _eval_error(capsys)
    assert err == (f"pycount: error: {run} is being trained now (a make train holds "
                   f"{run / '.train.lock'}): its weights and train.json are the last session's "
                   f"and change when it ends; evaluate it then")
    _nothing_written(run)


@pytest.mark.parametrize("text, needle", [
    ("garb{", "is unreadable or corrupt (Expecting value"),
    ("[1, 2]", "is not a training summary (a JSON object was expected, not list)"),
    ('"s"', "is not a training summary (a JSON object was expected, not str)"),
])
def test_eval_names_a_damaged_train_json_and_the_fix(text, needle, workdirs, monkeypatch, capsys):
    """train.json = `garb{` ended eval in a JSONDecodeError traceback (F17)."""
    _no_engine(monkeypatch)
    run = _eval_run(train_json=text)
    err = _eval_error(capsys)
    assert err.startswith(f"pycount: error: {run / 'train.json'} {needle}")
    assert err.endswith("re-run make train for this run (RESUME=0 trains it again from scratch)")
    _nothing_written(run)


def test_eval_of_a_damaged_train_json_is_one_line_and_exit_2_in_a_process(workdirs):
    run = _eval_run(train_json="garb{")
    p = _pycount("eval", env={"PYCOUNT_DATA": str(workdirs / "data"),
                              "PYCOUNT_RUNS": str(workdirs / "runs")}, timeout=120)
    _one_clean_error(p, f"{run / 'train.json'} is unreadable or corrupt", "re-run make train")
    assert len(p.stderr.strip().splitlines()) == 1
    _nothing_written(run)


@pytest.mark.parametrize("changes, said, variables", [
    # a C-head run in the R run's place: cv2 had no layer "count", the caffe engine a KeyError
    ({"head": "C"}, "head C, not R", "HEAD=C"),
    # PATCH=48: a cv2 assertion, or Caffe's inner_product CHECK aborting the process (134)
    ({"patch": 48, "dataset_tag": "synthetic-p48-s20-r30"}, "patch 48, not 40", "PATCH=48"),
    ({"stride": 10, "size": 64, "dataset_tag": "synthetic-p40-s10-r30-64px"},
     "stride 10, not 20; size 64, not 0", "STRIDE=10 SIZE=64"),
    ({"model": "alexnet"}, "model alexnet, not alexnet-lite", "MODEL=alexnet"),
    ({"dataset": "bacterial"}, "dataset bacterial, not synthetic", "DATASET=bacterial"),
])
def test_eval_refuses_a_run_folder_of_another_training(changes, said, variables, workdirs,
                                                      monkeypatch, capsys):
    """eval never compared train.json with what it was asked to evaluate (F18)."""
    _no_engine(monkeypatch)
    run = _eval_run(**changes)
    err = _eval_error(capsys)
    assert err.startswith(f"pycount: error: {run / 'train.json'} records another training than "
                          f"the one asked for ({said}): the run in {run} was trained with "
                          f"{variables}.")
    assert "make train ... RESUME=0" in err
    _nothing_written(run)


@pytest.mark.parametrize("changes, said", [
    ({"patch": "40"}, "patch = '40' is not a number"),
    ({"head": 1}, "head = 1 is not text"),
    ({"dataset": 123}, "dataset = 123 is not text"),
    ({"scale": None}, "scale = None is not a number"),
])
def test_eval_names_a_hand_edited_train_json_as_damaged(changes, said, workdirs, monkeypatch,
                                                        capsys):
    """Values of the wrong type: "patch 40, not 40", "Evaluate it with SCALE=None", or a move
    into the folder the run was already in."""
    _no_engine(monkeypatch)
    run = _eval_run(**changes)
    err = _eval_error(capsys)
    assert err.startswith(f"pycount: error: {run / 'train.json'} is damaged ({said}: not as "
                          f"make train writes it)")
    _nothing_written(run)


def test_eval_of_a_run_in_its_place_whose_dataset_settings_changed_says_so(workdirs, monkeypatch,
                                                                          capsys):
    """An own folder's settings inferred again (edited marks) left a run whose train.json says
    PATCH=44 in the folder the dataset's name gives: eval told the user to move it where it
    already was."""
    _no_engine(monkeypatch)
    run = _eval_run(patch=44, stride=22)                 # the tag: this very folder's
    err = _eval_error(capsys)
    assert err == (f"pycount: error: {run / 'train.json'} records another training than the "
                   f"one asked for (patch 44, not 40; stride 22, not 20): the run was trained "
                   f"with PATCH=44 STRIDE=22, and synthetic's settings have changed since (an "
                   f"own folder's are inferred again from its images and marks). Evaluate it "
                   f"with PATCH=44 STRIDE=22, or train it again (make train ... RESUME=0)")
    _nothing_written(run)


def test_eval_names_where_a_misplaced_run_belongs(workdirs, monkeypatch, capsys):
    _no_engine(monkeypatch)
    _eval_run(head="C")
    err = _eval_error(capsys)
    assert f"Move it to {workdirs / 'runs' / 'synthetic' / 'alexnet-lite-C'}, where" in err


def _finished_run_of_placeholders(ds, model, head="R"):
    """A run folder as a finished training of `model` on `ds` leaves it (train.json of its
    settings, 60 iterations), its net and weights files placeholders for a test's stand-in
    engine."""
    run = config.run_dir(ds, model, head)
    run.mkdir(parents=True)
    for name in config.run_files(model):
        (run / name).write_text("placeholder\n")
    (run / "train.json").write_text(json.dumps({
        "dataset": ds.name, "model": model.name, "head": head, "patch": ds.patch,
        "stride": ds.stride, "size": ds.size, "rot_step": ds.rot_step, "iterations": 60}))
    return run


def test_eval_counts_a_finished_run_of_its_settings_and_skips_a_damaged_fig7_sibling(
        tiny, monkeypatch, capsys):
    """The checks pass a run trained as asked; and another run's predictions.csv with a count
    that is no number ended eval in a ValueError traceback after metrics.json was written
    (F19): Fig. 7 leaves that run out with one line, the good sibling stays in."""
    import types
    from pycount.evaluation import evaluate
    from pycount.evaluation import figures
    ds, model = tiny
    run = _finished_run_of_placeholders(ds, model)

    class Counter:                                   # stands in for the engine: 7 per image
        def count_image(self, image):
            return types.SimpleNamespace(count=7.0, tiling_count=6.0)
    monkeypatch.setattr(evaluate, "make_predictor", lambda *a, **k: Counter())
    bad, good = run.parent / "bad-run", run.parent / "good-run"
    bad.mkdir()
    (bad / "predictions.csv").write_text("id,true,predicted,tiling,abs_error\n009,5,abc,5,0\n")
    good.mkdir()
    ids = list(ds.test_ids)
    (good / "predictions.csv").write_text("id,true,predicted,tiling,abs_error\n" + "".join(
        f"{i},1,2,2,1\n" for i in ids))
    for folder in (bad, good):
        (folder / "metrics.json").write_text(json.dumps({"n_images": len(ids),
                                                         "test_images_of": len(ids)}))
    # an evaluation stopped before its metrics.json, and a partial one: no result to draw
    for name, m in (("stopped-run", None), ("partial-run", {"n_images": 1, "test_images_of": 9})):
        (run.parent / name).mkdir()
        (run.parent / name / "predictions.csv").write_text(
            (good / "predictions.csv").read_text())
        if m:
            (run.parent / name / "metrics.json").write_text(json.dumps(m))
    drawn = {}
    save = figures.save_fig7
    monkeypatch.setattr(figures, "save_fig7", lambda path, ids, true, est, title: (
        drawn.update(est), save(path, ids, true, est, title)))
    m = evaluate.evaluate(ds, model, heatmaps=0)
    assert m["n_images"] == len(ids) and json.loads((run / "metrics.json").read_text())["mae"] == \
        pytest.approx(m["mae"])
    assert (run.parent / "fig7.png").is_file() and sorted(drawn) == [run.name]
    notes = [line for line in capsys.readouterr().out.splitlines() if line.startswith("note:")]
    assert notes == [f"note: Fig. 7 leaves out bad-run: {bad / 'predictions.csv'} is unreadable "
                     f"or damaged (ValueError(\"could not convert string to float: 'abc'\")); "
                     f"evaluate its run again (make eval) to write it anew",
                     f"note: Fig. 7 leaves out good-run: its test images or their true counts "
                     f"differ from {run.name}'s (the latest evaluation); make eval for good-run "
                     f"counts it against today's"]
    # good-run counted against the truths of today's evaluation: drawn beside it (helper-50:
    # every run was drawn against the first run's truths, one read by an earlier pycount)
    truths = [r.split(",")[1] for r in (run / "predictions.csv").read_text().splitlines()[1:]]
    (good / "predictions.csv").write_text("id,true,predicted,tiling,abs_error\n" + "".join(
        f"{i},{t},2,2,1\n" for i, t in zip(ids, truths)))
    drawn.clear()
    assert evaluate.write_fig7(run.parent) == run.parent / "fig7.png"
    assert sorted(drawn) == [run.name, "good-run"]


def test_an_eval_stopped_among_its_writes_leaves_no_mix_of_two(tiny, monkeypatch):
    """Killed between predictions.csv and metrics.json, eval left the last evaluation's metrics
    beside this one's counts (the audit then recorded them together); and the folders that
    killed evaluations left (.heatmaps.old-*) stayed for good."""
    import types
    from pycount.evaluation import evaluate
    from pycount.evaluation import figures
    ds, model = tiny
    run = _finished_run_of_placeholders(ds, model)
    count = {"n": 7.0}

    class Counter:
        def count_image(self, image):
            return types.SimpleNamespace(count=count["n"], tiling_count=count["n"],
                                         heatmap=np.zeros((4, 4)))
    monkeypatch.setattr(evaluate, "make_predictor", lambda *a, **k: Counter())
    monkeypatch.setattr(evaluate, "_save_heatmap", lambda path, *a: path.write_bytes(b"png"))
    first = evaluate.evaluate(ds, model)
    assert (run / "metrics.json").is_file()
    dead = run / ".heatmaps.old-999999-abc"          # of an evaluation killed outright
    dead.mkdir()
    count["n"] = 9.0
    write = figures.write_predictions

    def killed_after(*a, **k):
        write(*a, **k)
        raise KeyboardInterrupt                      # stands in for the kill
    monkeypatch.setattr(evaluate.report, "write_predictions", killed_after)
    with pytest.raises(KeyboardInterrupt):
        evaluate.evaluate(ds, model)
    # this evaluation's counts are there, so the last one's metrics must not be
    assert "9" in (run / "predictions.csv").read_text()
    assert not (run / "metrics.json").exists() and not (run / "metrics.md").exists()
    monkeypatch.setattr(evaluate.report, "write_predictions", write)
    again = evaluate.evaluate(ds, model)
    assert again["mae"] != first["mae"] and json.loads((run / "metrics.json").read_text())[
        "mae"] == pytest.approx(again["mae"])
    assert not dead.exists() and not list(run.glob(".heatmaps.*"))


def _stub_counts(monkeypatch, counts):
    """eval's engine replaced: image i of the test set counted counts[i], its tiling estimate
    one less."""
    import types
    from pycount.evaluation import evaluate
    seen = []

    class Counter:
        def count_image(self, image):
            seen.append(1)
            c = counts[(len(seen) - 1) % len(counts)]
            return types.SimpleNamespace(count=c, tiling_count=c - 1, heatmap=np.zeros((4, 4)))
    monkeypatch.setattr(evaluate, "make_predictor", lambda *a, **k: Counter())
    monkeypatch.setattr(evaluate, "_save_heatmap", lambda path, *a: path.write_bytes(b"png"))
    return evaluate


def test_eval_test_images_counts_at_least_one_and_all_of_them_is_a_full_result(tiny,
                                                                               monkeypatch):
    ds, model = tiny
    run = _finished_run_of_placeholders(ds, model)
    evaluate = _stub_counts(monkeypatch, [7.0])
    with pytest.raises(config.ConfigError, match="TEST_IMAGES=0: count at least 1"):
        evaluate.evaluate(ds, model, test_images=0)
    _nothing_written(run)
    evaluate.evaluate(ds, model)
    # TEST_IMAGES= all 4 test images: no partial evaluation, so not refused beside the full one
    m = evaluate.evaluate(ds, model, test_images=4)
    assert (m["n_images"], m["test_images_of"]) == (4, 4)
    # a partial evaluation replaces another partial one (only a full one is kept)
    (run / "metrics.json").unlink()
    assert evaluate.evaluate(ds, model, test_images=2)["n_images"] == 2
    m = evaluate.evaluate(ds, model, test_images=3)
    assert (m["n_images"], m["test_images_of"]) == (3, 4)
    # a full evaluation of an earlier training (older than train.json) is no reason to refuse
    evaluate.evaluate(ds, model)
    os.utime(run / "train.json", (time.time() + 5, time.time() + 5))
    assert evaluate.evaluate(ds, model, test_images=2)["n_images"] == 2


def test_eval_baseline_is_the_mean_count_of_the_training_and_validation_images(tiny,
                                                                              monkeypatch):
    ds, model = tiny
    _finished_run_of_placeholders(ds, model)
    evaluate = _stub_counts(monkeypatch, [7.0])
    # the 8 training images of the split (6 trained on, 2 validated on), counted by their marks
    train = [s.count for s in prepare.load(ds, list(ds.train_ids))]
    test = [s.count for s in prepare.load(ds, list(ds.test_ids))]
    assert len(train) == 8
    m = evaluate.evaluate(ds, model)
    assert m["train_mean_count"] == pytest.approx(np.mean(train))
    assert m["baseline_mae"] == pytest.approx(np.mean(np.abs(np.array(test) - np.mean(train))))
    assert m["mae"] == pytest.approx(np.mean(np.abs(np.array(test) - 7.0)))
    # the tiling estimate's errors, relative to the true counts
    assert m["tiling_mae"] == pytest.approx(np.mean(np.abs(np.array(test) - 6.0)))
    assert m["tiling_mre"] == pytest.approx(np.mean(np.abs(np.array(test) - 6.0) / test))


def test_eval_of_a_run_that_counts_an_infinity_writes_no_metrics(tiny, monkeypatch):
    ds, model = tiny
    run = _finished_run_of_placeholders(ds, model)
    evaluate = _stub_counts(monkeypatch, [7.0, float("inf")])
    with pytest.raises(errors.RunError, match="as NaN or infinite"):
        evaluate.evaluate(ds, model)
    assert not (run / "metrics.json").exists()


def test_eval_of_a_classic_run_ignores_the_patch_settings(tiny, monkeypatch):
    # a classic method tiles no patches: PATCH= differing from its train.json is no other training
    ds, _ = tiny
    model = config.model("lecount")
    run = _finished_run_of_placeholders(ds, model)
    info = json.loads((run / "train.json").read_text())
    (run / "train.json").write_text(json.dumps(dict(info, patch=ds.patch + 8)))
    evaluate = _stub_counts(monkeypatch, [7.0])
    assert evaluate.evaluate(ds, model)["n_images"] == 4


def test_eval_of_a_c_head_reports_the_expected_count_beside_the_most_probable(tiny,
                                                                             monkeypatch):
    import types
    from pycount.evaluation import evaluate
    ds, model = tiny
    _finished_run_of_placeholders(ds, model, "C")

    def predictor(*a, expected=False, **k):
        c = 5.0 if expected else 7.0         # the expected count, the most probable class
        return types.SimpleNamespace(count_image=lambda image: types.SimpleNamespace(
            count=c, tiling_count=c, heatmap=np.zeros((4, 4))))
    monkeypatch.setattr(evaluate, "make_predictor", predictor)
    monkeypatch.setattr(evaluate, "_save_heatmap", lambda path, *a: path.write_bytes(b"png"))
    m = evaluate.evaluate(ds, model, head="C")
    test = np.array([s.count for s in prepare.load(ds, list(ds.test_ids))], float)
    assert m["mae"] == pytest.approx(np.mean(np.abs(test - 7.0)))
    assert m["expected_mae"] == pytest.approx(np.mean(np.abs(test - 5.0)))
    assert m["expected_mre"] == pytest.approx(np.mean(np.abs(test - 5.0) / test))


@pytest.mark.parametrize("text", ["", "id,true\n", "id,true,predicted\nx,1,\n",
                                  "id,true,predicted\nx,1\n", b"\xff\xfe\x00"])
def test_read_predictions_names_a_damaged_file(text, tmp_path):
    from pycount.evaluation import figures
    f = tmp_path / "predictions.csv"
    f.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(errors.RunError, match=f"{f} is unreadable or damaged .*make eval"):
        figures.read_predictions(f)


VGG = ROOT.parent / "shared" / "datasets" / "vgg_cells"


def _without_root_powers() -> list[str]:
    """A command prefix under which file permissions hold (root reads anything otherwise)."""
    if os.geteuid() != 0:
        return []
    if not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv: permissions cannot be tested")
    caps = "-dac_override,-dac_read_search"
    return ["setpriv", f"--bounding-set={caps}", f"--inh-caps={caps}"]


@pytest.mark.skipif(not VGG.is_dir(), reason="the VGG cells release is not here")
@pytest.mark.parametrize("where", ["file", "folder"])
def test_a_release_this_user_may_not_read_is_one_message(where, tmp_path, workdirs):
    """A file without read permission was 'corrupt or not an image', a folder that may not be
    listed 'no pairs found', and on Python 3.11 some such folders a PermissionError traceback."""
    copy = tmp_path / "root" / "vgg_cells"
    shutil.copytree(VGG, copy)
    blocked = copy / "030cell.png" if where == "file" else copy
    blocked.chmod(0o000 if where == "file" else 0o311)
    try:
        p = subprocess.run(_without_root_powers() + [
            sys.executable, "-m", "pycount", "prepare", "--dataset", "bacterial",
            "--data-root", str(copy.parent), "--model", "lecount"], cwd=ROOT,
            capture_output=True, text=True, timeout=300)
    finally:
        blocked.chmod(0o755 if where == "folder" else 0o644)
    assert p.returncode == 2, p.stderr[-2000:]
    assert f"permission denied on {blocked}" in p.stderr and "Traceback" not in p.stderr


def test_a_hidden_mac_file_beside_the_release_is_ignored_and_twin_nuclei_folders_refused(tmp_path):
    from pycount.data import readers
    folder = tmp_path / "vgg"
    folder.mkdir()
    for name in ("001cell.png", "001dots.png", "._001cell.png"):
        cv2.imwrite(str(folder / name), np.zeros((8, 8, 3), np.uint8))
    assert list(readers._pairs(folder)) == ["001"]
    detection = tmp_path / "Detection"
    for name in ("img5", "img05"):
        (detection / name).mkdir(parents=True)
        (detection / name / f"{name}.bmp").write_bytes(b"BM")
        (detection / name / f"{name}_detection.mat").write_bytes(b"")
    with pytest.raises(errors.DatasetError, match="are both image 5"):
        readers._crc_pairs(detection)


def test_every_variable_the_makefile_reads_is_a_setting_it_accepts():
    """The unknown-setting check must not refuse a variable some target reads."""
    import re
    text = (ROOT / "Makefile").read_text()
    read = set(re.findall(r"\$\(call (?:opt|flag),([A-Z_]+)", text)) | set(
        re.findall(r"\$\(([A-Z][A-Z_]*)\)", text))
    internal = {"ARGS", "CHECK", "COUNT_ARGS", "MODEL_ARGS", "PY", "PYCOUNT", "SHELL", "SETTINGS",
                "ENVIRONMENT", "GIVEN", "UNKNOWN", "MAKE", "DATASET_SETTINGS", "SPECIFIC",
                "CHECKED_GOALS", "IGNORED", "MAKECMDGOALS", "RUN_SETTINGS", "EMPTY",
                "PYCOUNT_RUNS", "PYCOUNT_DATA"}   # (the last two: environment, named by clean)

    def listed(name):       # a variable's words, the lists it names expanded
        words = re.search(rf"^{name} := (.*?)\n(?=\S)", text, re.S | re.M).group(1)
        return {w for v in words.replace("\\", " ").split()
                for w in (listed(v[2:-1]) if v.startswith("$(") else {v})}
    settings = listed("SETTINGS")
    assert read - internal <= settings, read - internal - settings
    reads = {x for line in re.findall(r"^READS_[a-z-]+ := (.*)$", text, re.M)
             for w in line.split("#")[0].split()
             for x in (listed(w[2:-1]) if w.startswith("$(") else {w})}
    assert {"HEAD", "DATASET", "PATCH", "MODELS"} <= reads
    assert reads <= listed("SPECIFIC") <= settings        # the per-target lists name settings


def test_a_data_root_that_is_a_file_is_one_message(tmp_path, workdirs, monkeypatch, capsys):
    """PYCOUNT_DATA naming a file (or a read-only or full disk) ended prepare of an own folder in a
    NotADirectoryError traceback from the measurement cache."""
    from test_own_data import make_folder
    folder = make_folder(tmp_path / "cells", n=4)
    afile = tmp_path / "afile"
    afile.write_text("x")
    monkeypatch.setenv("PYCOUNT_DATA", str(afile))
    assert cli.main(["prepare", "--dataset", str(folder), "--model", "fcrn"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"pycount: error: cannot write {afile / 'own'}") and \
        "set PYCOUNT_DATA to a folder that is" in err and "Traceback" not in err, err


@pytest.mark.parametrize("code, fix", [
    (errno.EROFS, "make {folder} writable, or set PYCOUNT_DATA to a folder that is"),
    (errno.ENOSPC, "free space on the disk holding {folder} (it is full or its quota spent), or "
                   "set PYCOUNT_DATA to a folder that is"),
])
def test_a_read_only_or_full_data_root_is_one_message(workdirs, monkeypatch, capsys, code, fix):
    path = config.data_dir() / "own" / "cells.json"

    def fails(args):
        raise OSError(code, os.strerror(code), str(path))
    monkeypatch.setattr(cli, "run", fails)
    assert cli.main(["prepare"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"pycount: error: cannot write {path} ({os.strerror(code)}): "
                   + fix.format(folder=path.parent)), err


def test_eval_without_the_settings_a_run_was_trained_with_names_that_run(workdirs, capsys):
    """A run trained with ZOOM=0.25 lives in runs/<dataset>-zoom0.25/<model>; eval without ZOOM=
    said "train a model first", as if none had been."""
    run = workdirs / "runs" / "synthetic-zoom0.25" / "fcrn"
    run.mkdir(parents=True)
    (run / "train.json").write_text("{}")
    (workdirs / "runs" / "synthetic-sigma3" / "alexnet").mkdir(parents=True)   # another model
    assert cli.main(["eval", "--dataset", "synthetic", "--model", "fcrn"]) == 2
    err = capsys.readouterr().err
    assert (f"{workdirs / 'runs' / 'synthetic' / 'fcrn'} is not a trained run folder, but fcrn "
            f"was trained on synthetic with other settings: {run}; give the settings") in err
    assert "alexnet" not in err and err.count("\n") == 1


def test_pycount_data_that_is_a_file_is_named_for_the_generated_set(workdirs, monkeypatch, capsys):
    """PYCOUNT_DATA naming a file: the synthetic set's generation ended in a FileExistsError
    traceback (the public sets already said which file stood in the way)."""
    from pycount import cli
    blocker = workdirs / "a file"
    blocker.write_text("")
    monkeypatch.setenv("PYCOUNT_DATA", str(blocker))
    assert cli.main(["prepare", "--dataset", "synthetic"]) == 2
    err = capsys.readouterr().err
    assert (f"pycount: error: cannot make {blocker} for the generated images ({blocker} is a "
            f"file); move it, or set PYCOUNT_DATA to a folder that can be made") in err
    assert "Traceback" not in err
