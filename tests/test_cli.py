"""The command line: clear errors for unknown names and missing inputs, exit status 2."""
import errno
import re
import subprocess

import pytest

from pycount import cli
from pycount import config


@pytest.mark.parametrize("argv,needle", [
    (["prepare", "--dataset", "nope"], "valid: bacterial, ki67, ki67-synthetic, nuclei, synthetic"),
    (["train", "--model", "resnet9"], "valid: alexnet, alexnet-lite"),
])
def test_unknown_names_list_the_valid_ones(argv, needle, capsys):
    assert cli.main(argv) == 2
    assert needle in capsys.readouterr().err


def test_eval_without_a_trained_model_says_what_to_do(workdirs, capsys):
    pytest.importorskip("caffe")
    assert cli.main(["eval"]) == 2
    err = capsys.readouterr().err
    assert "is missing" in err and "make train" in err


def test_missing_dataset_folder_names_it_and_the_fix(workdirs, tmp_path, capsys):
    assert cli.main(["prepare", "--dataset", "bacterial", "--data-root", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "x") in err and "DATA_ROOT" in err


def test_make_stops_on_an_unknown_dataset_before_installing_anything():
    r = subprocess.run(["make", "-s", "prepare", "DATASET=nope"], cwd=config.ROOT,
                       capture_output=True, text=True)
    assert r.returncode != 0
    assert "unknown dataset 'nope'" in r.stderr and "synthetic" in r.stderr
    assert "[setup]" not in r.stderr and "[caffe]" not in r.stderr


def test_pycount_sets_the_thread_waits_before_caffe_loads_and_a_users_value_wins():
    """OpenMP threads and OpenBLAS's idle threads sleep instead of spinning (pycount/__init__.py):
    set on import, so before caffe loads the libraries that read them once."""
    import os
    import sys
    code = ("import os, pycount; print(os.environ['OMP_WAIT_POLICY'], "
            "os.environ['OPENBLAS_THREAD_TIMEOUT'])")
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_WAIT_POLICY", "OPENBLAS_THREAD_TIMEOUT")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["passive", "4"]
    mine = dict(env, OMP_WAIT_POLICY="active", OPENBLAS_THREAD_TIMEOUT="20")
    out = subprocess.run([sys.executable, "-c", code], env=mine, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["active", "20"]


@pytest.mark.parametrize("command", ["train", "replicate"])
@pytest.mark.parametrize("value", ["0", "-5", "ten"])
def test_fewer_than_one_iteration_stops_before_anything_is_written(workdirs, command, value,
                                                                   capsys):
    """ITERS=-5 reached Caffe's solver, which aborted (a glog CHECK, exit 134) after the run
    folder was written; ITERS=0 silently trained the full schedule."""
    with pytest.raises(SystemExit) as stop:
        cli.main([command, "--iters", value])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert f"argument --iters: {value!r} is not valid: train at least 1 iteration" in err
    assert err.count("\n") == 1 and err.endswith(f"; `pycount {command} --help` lists the options\n")
    assert not (workdirs / "runs").exists() and not (workdirs / "data").exists()


def test_the_trainer_refuses_fewer_than_one_iteration(workdirs):
    pytest.importorskip("caffe")
    from pycount.training.trainer import Trainer
    ds = config.dataset("synthetic")
    for n in (0, -5):
        with pytest.raises(config.ConfigError, match=f"ITERS={n} is not valid"):
            Trainer(ds, config.model("alexnet-lite", ds), max_iter=n)


def test_a_patch_too_small_to_hold_a_cell_is_refused(workdirs, capsys):
    """PATCH=1 on a named set cut ~900,000 patches of one pixel before anything complained."""
    assert cli.main(["prepare", "--dataset", "synthetic", "--patch", "4"]) == 2
    assert "PATCH=4 is not valid: a patch needs at least 8 px" in capsys.readouterr().err
    assert not (workdirs / "data" / "lmdb").exists()


@pytest.mark.parametrize("argv,needle", [
    (["--size", "3"], "SIZE=3 is not valid: resize patches to at least 8 px"),
    (["--rot", "400"], "ROT=400 is not valid: use a rotation step in degrees from 1 to 359"),
    (["--rot", "-30"], "ROT=-30 is not valid: use a rotation step in degrees from 1 to 359"),
    (["--seed", "-1"], "SEED=-1 is not valid: use a whole number, 0 or more"),
])
def test_settings_out_of_range_are_refused_with_their_meaning(workdirs, argv, needle, capsys):
    """SIZE=3 prepared patches that Caffe then aborted on (blob.cpp Check failed); ROT=400 was
    taken; a negative seed was told to use a positive number of pixels."""
    assert cli.main(["prepare", "--dataset", "synthetic", *argv]) == 2
    assert needle in capsys.readouterr().err


@pytest.mark.parametrize("value", ["-2", "abc", "1.5"])
def test_a_gpu_that_is_no_device_is_refused(value, capsys):
    """GPU=-2 was taken for the CPU."""
    with pytest.raises(SystemExit) as e:
        cli.main(["eval", "--gpu", value])
    assert e.value.code == 2
    assert f"argument --gpu: {value!r} is not valid: give a GPU's number" in capsys.readouterr().err


@pytest.mark.parametrize("command,argv,needle", [
    ("prepare", ["--model", "alexnet-lite", "--sigma", "2"], "SIGMA=2: for the density models"),
    ("prepare", ["--model", "alexnet-lite", "--crop-stride", "999999", "--hed-jitter", "0.5"],
     "CROP_STRIDE=999999, HED=0.5: for the density models"),
    ("train", ["--model", "alexnet-lite", "--crop", "64"], "CROP=64: for the density models"),
    ("train", ["--model", "alexnet-lite", "--zoom", "0.25"], "ZOOM=0.25: for the density models"),
    ("prepare", ["--zoom", "0.25"], "ZOOM=0.25: settings of the density models' crops"),
    ("train", ["--model", "fcrn", "--finetune", "all"], "FINETUNE=all: for the ImageNet-pretrained"),
    ("train", ["--model", "alexnet", "--scratch"], "SCRATCH=1: for the ImageNet-pretrained"),
    # prepare without MODEL= writes the patch models' LMDBs (it wrote one more under a crop tag)
    ("prepare", ["--crop", "32"], "CROP=32: settings of the density models' crops; give "
                                  "MODEL=fcrn (or fcrn-ctx) with it"),
])
def test_options_the_model_would_ignore_are_refused(workdirs, command, argv, needle, capsys):
    """They were taken: a patch model's LMDB written again under another tag (SIGMA=, CROP=,
    HED= change nothing in patches and counts), FINETUNE= on a net trained from scratch."""
    assert cli.main([command, "--dataset", "synthetic", *argv]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    assert not (workdirs / "data" / "lmdb").exists()


def test_the_density_options_pass_for_a_density_model(workdirs):
    cli._check_applies(cli.parser().parse_args(["prepare", "--model", "fcrn", "--sigma", "2",
                                                 "--hed-jitter", "0.1"]), config.model("fcrn"))


@pytest.mark.parametrize("var, folder", [("PYCOUNT_RUNS", "runs"), ("PYCOUNT_DATA", "data"),
                                         ("PYCOUNT_WEIGHTS", "weights")])
def test_an_empty_location_variable_counts_as_unset(var, folder, monkeypatch):
    """PYCOUNT_RUNS= (set, empty) was Path(""), the working folder: make train wrote there."""
    from pycount import config
    monkeypatch.setenv(var, "")
    where = {"runs": config.runs_dir, "data": config.data_dir, "weights": config.weights_dir}
    assert where[folder]() == config.ROOT / folder



def test_an_installed_package_writes_runs_and_data_in_the_working_folder(tmp_path, monkeypatch):
    """`pip install .` puts pycount in site-packages, where ROOT then points: the default runs/,
    data/ and weights/ (and count's default run) were inside the installation. A checkout keeps
    them beside its Makefile; an installed package in the folder it is run from."""
    for var in ("PYCOUNT_RUNS", "PYCOUNT_DATA", "PYCOUNT_WEIGHTS"):
        monkeypatch.delenv(var, raising=False)
    assert (config.runs_dir(), config.data_dir()) == (config.ROOT / "runs", config.ROOT / "data")
    site, work = tmp_path / "site-packages", tmp_path / "work"
    site.mkdir()
    work.mkdir()
    monkeypatch.setattr(config, "ROOT", site)
    monkeypatch.chdir(work)
    assert (config.runs_dir(), config.data_dir(), config.weights_dir()) == (
        work / "runs", work / "data", work / "weights")
    ds, m = config.dataset(config.DEFAULT_DATASET), config.model(config.DEFAULT_MODEL)
    assert config.run_dir(ds, m).is_relative_to(work / "runs")


def test_the_readme_lists_every_model_and_named_dataset():
    """The README's DATASET and MODEL tables name every choice `make` accepts (three study models
    were missing from it)."""
    readme = (config.ROOT / "README.md").read_text()
    rows = " ".join(line.split("|")[1] for line in readme.splitlines()
                    if line.startswith("| `"))
    named = set(re.findall(r"`([\w.-]+)`", rows))
    assert set(config.MODELS) <= named, sorted(set(config.MODELS) - named)
    assert set(config.DATASETS) <= named, sorted(set(config.DATASETS) - named)


def test_lists_on_the_command_line_drop_empty_and_spaced_names():
    args = cli.parser().parse_args(["replicate", "--datasets", " nuclei, ,bacterial,",
                                    "--models", "alexnet ,"])
    assert (args.datasets, args.models) == (["nuclei", "bacterial"], ["alexnet"])
    args = cli.parser().parse_args(["protocol", "--ns", "32,,50,", "--seeds", " 1, 2"])
    assert (args.ns, args.seeds) == ([32, 50], [1, 2])
    args = cli.parser().parse_args(["protocol"])
    assert (args.ns, args.seeds, args.jobs) == (list(config.PROTOCOL_NS),
                                                list(config.PROTOCOL_SEEDS), config.PROTOCOL_JOBS)


@pytest.mark.parametrize("argv, dry", [(["--iters", "5"], True), (["--test-images", "2"], False)])
def test_replicate_counts_the_cells_done_and_says_a_dry_run(monkeypatch, workdirs, capsys, argv,
                                                             dry):
    from pycount.reporting import replicate
    monkeypatch.setattr(replicate, "run", lambda *a, **k: [
        {"status": "ok"}, {"status": "done before"}, {"status": "failed: no data"}])
    monkeypatch.setattr(cli, "_audit", lambda args: 0)
    assert cli.main(["replicate", "--gpu", "-1", *argv]) == 0
    out = capsys.readouterr().out
    assert "2 of 3 paper cells trained and evaluated" in out
    assert ("ITERS=5: a dry run" in out) == dry


def test_count_passes_its_options_on(monkeypatch, workdirs):
    from pycount.inference import count
    seen = {}
    monkeypatch.setattr(count, "count", lambda inputs, run_dir, **kw: seen.update(
        inputs=inputs, run_dir=run_dir, **kw) or 0)
    assert cli.main(["count", "a.png", "b", "--run", "runs/x/fcrn", "--expected", "--out", "o",
                     "--recursive", "--tta", "4"]) == 0
    assert seen == dict(inputs=["a.png", "b"], run_dir="runs/x/fcrn", backend=seen["backend"],
                        out="o", gpu=-1, recursive=True, expected=True, shared=False, tta=4)
    assert cli.main(["count", "a.png", "--shared"]) == 0
    assert seen["run_dir"] == workdirs / "runs" / "synthetic" / "alexnet-lite"
    assert (seen["expected"], seen["shared"]) == (False, True)


def test_prepare_passes_force_and_a_classic_method_writes_no_lmdb(monkeypatch, workdirs, capsys):
    from pycount.data import prepare
    calls = []
    monkeypatch.setattr(prepare, "prepare", lambda ds, root, force, model: calls.append(force))
    monkeypatch.setattr(prepare, "load_split", lambda ds, root, keep: calls.append(keep))
    assert cli.main(["prepare", "--force"]) == 0
    assert cli.main(["prepare"]) == 0
    assert cli.main(["prepare", "--model", "lecount"]) == 0
    assert calls == [True, False, ()]            # every image read and checked, none kept
    assert "lecount reads the images themselves: no LMDB to prepare" in capsys.readouterr().out


def test_train_passes_scratch_finetune_and_restart_on(monkeypatch, workdirs, capsys):
    from pycount.training import trainer
    seen = []

    class Trainer:
        def __init__(self, ds, model, **kw):
            self.model = model

        def train(self, resume):
            seen.append((self.model.name, self.model.finetune, resume))
            return {"averaged_iterations": 0, "best_iter": 10, "best_val_patch_mae": 1.5,
                    "iterations": 20}
    monkeypatch.setattr(trainer, "Trainer", Trainer)
    resnet = config.model("resnet50").finetune
    assert cli.main(["train", "--model", "resnet50"]) == 0
    assert cli.main(["train", "--model", "resnet50", "--scratch", "--restart"]) == 0
    assert cli.main(["train", "--model", "resnet50", "--finetune", "all"]) == 0
    assert seen == [("resnet50", resnet, True), ("resnet50", "scratch", False),
                    ("resnet50", "all", True)]
    assert "trained 20 iterations; best validation patch MAE 1.500 at iteration 10" in \
        capsys.readouterr().out


@pytest.mark.parametrize("argv, needle", [
    (["train", "--model", "lecount", "--gpu", "0"], "drop GPU=0"),
    (["train", "--model", "lecount", "--sigma", "2"], "drop SIGMA=2"),
    (["eval", "--model", "ledetect", "--backend", "cv2", "--patch", "40"],
     "drop BACKEND=cv2, PATCH=40"),
    (["prepare", "--model", "lecount", "--stain-norm", "macenko"],
     "STAIN=macenko is for the nets; lecount reads the images as they are (drop STAIN=)"),
])
def test_the_nets_options_given_to_a_classic_method_are_refused(workdirs, capsys, argv,
                                                                 needle):
    assert cli.main([*argv, "--dataset", "synthetic"]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.startswith("pycount: error: ")
    assert "for the density models" not in err
    assert not (workdirs / "data").exists() and not (workdirs / "runs").exists()


def test_a_classic_method_takes_backend_auto(workdirs):
    args = cli.parser().parse_args(["eval", "--model", "lecount", "--backend", "auto"])
    cli._check_classic(args, config.model("lecount"))


def test_the_stain_normalisation_is_taken_for_the_nets(monkeypatch, workdirs):
    from pycount.data import prepare
    seen = []
    monkeypatch.setattr(prepare, "prepare", lambda ds, *a, **k: seen.append(ds.stain_norm))
    assert cli.main(["prepare", "--model", "fcrn", "--stain-norm", "macenko"]) == 0
    assert seen == ["macenko"]


@pytest.mark.parametrize("error, needle", [
    (KeyboardInterrupt(), "pycount: interrupted"),
    (PermissionError(errno.EACCES, "Permission denied", "/x/metrics.json"),
     "pycount: error: permission denied on /x/metrics.json: give this user access"),
    (OSError(errno.EROFS, "Read-only file system", "/ro/cache.npz"),
     "pycount: error: cannot write /ro/cache.npz (Read-only file system): make /ro writable, or "
     "write somewhere else"),
    (OSError(errno.EISDIR, "Is a directory", "/x/counts.csv"),
     "pycount: error: cannot write /x/counts.csv (Is a directory): a file stands where a folder "
     "belongs"),
])
def test_an_error_nothing_else_caught_is_one_line_and_its_status(monkeypatch, capsys, error,
                                                                 needle):
    def fail(args):
        raise error
    monkeypatch.setattr(cli, "run", fail)
    code = 130 if isinstance(error, KeyboardInterrupt) else 2
    assert cli.main(["prototxt"]) == code
    err = capsys.readouterr().err
    assert err.startswith(needle) and err.count("\n") == 1


def test_a_full_runs_folder_names_its_variable(monkeypatch, workdirs, capsys):
    def fail(args):
        raise OSError(errno.ENOSPC, "No space left on device", str(workdirs / "runs"))
    monkeypatch.setattr(cli, "run", fail)
    assert cli.main(["prototxt"]) == 2
    assert "or set PYCOUNT_RUNS to a folder that is" in capsys.readouterr().err


def test_another_os_error_is_not_taken_for_an_unwritable_disk(monkeypatch):
    def fail(args):
        raise OSError(errno.EIO, "Input/output error", "/x")
    monkeypatch.setattr(cli, "run", fail)
    with pytest.raises(OSError, match="Input/output error"):
        cli.main(["prototxt"])


def test_every_command_follows_its_parent(monkeypatch):
    from pycount.util import interrupt
    seen = []
    monkeypatch.setattr(interrupt, "follow_parent", lambda: seen.append("asked"))
    monkeypatch.setattr(cli, "run", lambda args: 0)
    assert cli.main(["prototxt"]) == 0
    assert seen == ["asked"]


def test_each_dataset_option_sets_its_own_setting():
    args = cli.parser().parse_args([
        "prepare", "--dataset", "nuclei", "--model", "fcrn", "--patch", "64", "--stride", "32",
        "--rot", "90", "--size", "224", "--train-n", "10", "--seed", "3", "--sigma", "1.5",
        "--resplit", "4", "--crop", "64", "--crop-stride", "32", "--hed-jitter", "0.05",
        "--zoom", "0.25", "--scale", "0.5", "--stain-norm", "reinhard"])
    ds = cli.dataset_of(args)
    assert (ds.patch, ds.stride, ds.rot_step, ds.size, ds.train_n, ds.seed, ds.sigma,
            ds.resplit, ds.crop, ds.crop_stride, ds.hed_jitter, ds.zoom, ds.scale,
            ds.stain_norm) == (64, 32, 90, 224, 10, 3, 1.5, 4, 64, 32, 0.05, 0.25, 0.5,
                               "reinhard")


@pytest.mark.parametrize("argv, env, own", [([], False, True), (["--out", "OUT"], False, False),
                                             ([], True, False)])
def test_only_the_projects_own_audit_refreshes_its_docs_and_record(monkeypatch, tmp_path, capsys,
                                                                   argv, env, own):
    """An audit written elsewhere (--out, PYCOUNT_RUNS) leaves docs/audit.md and the record of
    the audited runs alone."""
    from pycount.reporting import audit
    seen = {}
    monkeypatch.delenv("PYCOUNT_RUNS", raising=False)
    if env:
        monkeypatch.setenv("PYCOUNT_RUNS", str(tmp_path / "runs"))
    monkeypatch.setattr(audit, "build", lambda runs, record_path, data_root, tried_path:
                        seen.update(record=record_path, tried=tried_path) or "report")
    monkeypatch.setattr(audit, "record", lambda report, path: seen.update(recorded=path))
    monkeypatch.setattr(audit, "write", lambda report, out, docs_dir: seen.update(
        out=out, docs=docs_dir) or {"md": "a.md", "html": "a.html", "docs": "d.md"})
    monkeypatch.setattr(audit, "summary", lambda report: "summary")
    monkeypatch.setattr(cli.os, "access", lambda path, mode: True)
    argv = [str(tmp_path / a) if a == "OUT" else a for a in argv]
    assert cli.main(["audit", *argv]) == 0
    if own:
        assert seen == dict(record=config.AUDIT_RECORD, tried=config.AUDIT_TRIED,
                            recorded=config.AUDIT_RECORD, out=None, docs=config.ROOT / "docs")
    else:
        assert seen == dict(record=None, tried=None, out=argv[1] if argv else None, docs=None)


def test_iters_given_for_an_own_folder_win_over_its_schedule(monkeypatch, workdirs):
    import dataclasses
    from pycount.data import owndata
    from pycount.training import trainer
    own = dataclasses.replace(config.dataset("synthetic"), layout="folder", subdir="/x/cells",
                              name="cells")
    monkeypatch.setattr(cli, "dataset_of", lambda args: own)
    monkeypatch.setattr(owndata, "iterations", lambda ds, model: 999)
    seen = []

    class Trainer:
        def __init__(self, ds, model, max_iter, **kw):
            seen.append(max_iter)

        def train(self, resume):
            return {"averaged_iterations": 0, "best_iter": 1, "best_val_patch_mae": None,
                    "iterations": seen[-1]}
    monkeypatch.setattr(trainer, "Trainer", Trainer)
    assert cli.main(["train", "--iters", "5"]) == 0
    assert cli.main(["train"]) == 0
    assert seen == [5, 999]


def test_a_sets_own_zoom_beside_rot_0_is_refused_for_a_density_model(monkeypatch, workdirs,
                                                                      capsys):
    import dataclasses
    from pycount.data import prepare
    monkeypatch.setitem(config.DATASETS, "nuclei",
                        dataclasses.replace(config.DATASETS["nuclei"], zoom=0.25))
    monkeypatch.setattr(prepare, "prepare", lambda *a, **k: pytest.fail("prepared"))
    assert cli.main(["prepare", "--dataset", "nuclei", "--model", "fcrn", "--rot", "0"]) == 2
    assert ("nuclei's ZOOM=0.25 augments the mirrored and rotated training crops, and with ROT=0 "
            "training takes the crops as they are: set ZOOM=0") in capsys.readouterr().err


def test_a_protocol_of_unknown_names_stops_before_it_starts(monkeypatch, workdirs, capsys):
    from pycount.training import protocol
    monkeypatch.setattr(protocol, "run", lambda *a: pytest.fail("the protocol ran"))
    assert cli.main(["protocol", "--dataset", "nope"]) == 2
    assert "unknown dataset 'nope'" in capsys.readouterr().err
    assert cli.main(["protocol", "--model", "nope"]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err
