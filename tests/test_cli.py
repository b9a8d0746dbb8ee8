"""The command line: clear errors for unknown names and missing inputs, exit status 2."""
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
