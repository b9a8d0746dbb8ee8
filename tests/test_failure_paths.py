"""The failure paths a lab hits (issue #21): every one ends in one `pycount: error:` line naming
the file and the fix, a non-zero exit, no traceback; killed commands leave nothing that is taken
for a result, and the next run cleans what they left."""
import dataclasses
import os
import pickle
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


@pytest.mark.parametrize("var, value, needle", [("HEAD", "X", "unknown head 'X'"),
                                                 ("MODEL", "nope", "unknown model 'nope'"),
                                                 ("DATASET", "nope", "unknown dataset 'nope'")])
def test_make_refuses_bad_names_before_setting_anything_up(var, value, needle, tmp_path):
    """An invalid HEAD was caught only after `make setup` (#21.9)."""
    p = subprocess.run(["make", "-s", "train", f"{var}={value}", f"VENV={tmp_path / 'venv'}"],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and needle in p.stderr
    assert not (tmp_path / "venv").exists()
