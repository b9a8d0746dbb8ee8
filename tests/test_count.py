"""`pycount count` on a run folder made in tmp (alexnet-lite, random weights): any image format,
corrupt files reported and skipped, exit statuses, counts equal to pycount.density's."""
import csv
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

pytest.importorskip("caffe")

from pycount import cli  # noqa: E402
from pycount.data import readers as datasets
from pycount.inference import density
from pycount.nets import builders as nets
from pycount.inference import predictors
from test_backends import random_caffemodel  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def run(tmp_path):
    plan = nets.default_plan("synthetic", "alexnet-lite", "R")
    run = tmp_path / "run"
    run.mkdir()
    (run / "deploy.prototxt").write_text(nets.net_prototxt(plan, "deploy"))
    random_caffemodel(run / "deploy.prototxt", run / "model.caffemodel")
    ds = plan.dataset
    (run / "train.json").write_text(json.dumps({
        "dataset": "synthetic", "model": "alexnet-lite", "head": "R", "dataset_tag": ds.tag,
        "patch": ds.patch, "stride": ds.stride, "size": ds.size, "rot_step": ds.rot_step}))
    return run


@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "images"
    folder.mkdir()
    tifffile.imwrite(folder / "grey16.tif", rng.integers(0, 4096, (70, 90), dtype=np.uint16))
    cv2.imwrite(str(folder / "rgba.PNG"), rng.integers(0, 256, (64, 50, 4), dtype=np.uint8))
    (folder / "corrupt.png").write_bytes(rng.integers(0, 256, 500, dtype=np.uint8).tobytes())
    (folder / "notes.txt").write_text("not an image: not picked up from a folder")
    return folder


def test_count_images_of_any_format_and_skip_the_corrupt_one(run, images, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["count", str(images), "--run", str(run), "--out", str(out)]) == 1
    stdout = capsys.readouterr().out
    assert "corrupt.png" in stdout and "FAILED" in stdout
    rows = {r["file"]: r for r in csv.DictReader(open(out / "counts.csv"))}
    assert sorted(rows) == sorted(str(images / n) for n in ("corrupt.png", "grey16.tif",
                                                             "rgba.PNG"))
    assert rows[str(images / "corrupt.png")]["status"] == "failed"
    assert "cannot decode" in rows[str(images / "corrupt.png")]["error"]
    predict = predictors.make_predictor("cv2", run)
    for name, (w, h) in (("grey16.tif", (90, 70)), ("rgba.PNG", (50, 64))):
        row = rows[str(images / name)]
        assert row["status"] == "ok" and (int(row["width"]), int(row["height"])) == (w, h)
        assert (out / f"{name.rsplit('.', 1)[0]}_heatmap.png").stat().st_size > 0
        r = density.count_image(datasets._read_any_image(images / name), 40, 20, predict)
        assert float(row["count"]) == pytest.approx(r.heatmap.sum(), rel=1e-6)
        assert float(row["count"]) == pytest.approx(r.count, rel=1e-6)
        assert float(row["tiling_count"]) == pytest.approx(r.tiling_count, rel=1e-6)
    assert not list(out.glob(".*"))                 # no temporary files left behind


def test_caffe_backend_gives_the_same_counts(run, images, tmp_path):
    files = [str(images / "grey16.tif")]
    for backend in ("cv2", "caffe"):
        out = tmp_path / backend
        assert cli.main(["count", *files, "--run", str(run), "--out", str(out),
                         "--backend", backend]) == 0
    counts = [float(next(csv.DictReader(open(tmp_path / b / "counts.csv")))["count"])
              for b in ("cv2", "caffe")]
    assert counts[0] == pytest.approx(counts[1], rel=1e-4)


def test_too_small_and_missing_images_fail_by_name(run, tmp_path, capsys):
    small = tmp_path / "small.png"
    cv2.imwrite(str(small), np.zeros((30, 60, 3), np.uint8))
    assert cli.main(["count", str(small), str(tmp_path / "nope.jpg"), "--run", str(run),
                     "--out", str(tmp_path / "out")]) == 1
    stdout = capsys.readouterr().out
    assert "smaller than the run's 40x40 px patches" in stdout
    assert f"no such file: {tmp_path / 'nope.jpg'}; check the path" in stdout


@pytest.mark.parametrize("missing", ["folder", "train.json", "model.caffemodel"])
def test_a_missing_run_file_is_named_with_the_fix(run, images, missing, capsys):
    if missing == "folder":
        run, missing = run.parent / "no-such-run", "train.json"
    else:
        (run / missing).unlink()
    assert cli.main(["count", str(images), "--run", str(run)]) == 2
    err = capsys.readouterr().err
    assert str(run / missing) in err and "make train" in err


@pytest.mark.parametrize("backend", ["cv2", "caffe"])
@pytest.mark.parametrize("damage", ["truncated", "other net"])
def test_a_damaged_caffemodel_is_one_message_not_an_abort(run, images, backend, damage, tmp_path):
    """A truncated model.caffemodel, or another net's, gave a cv2.error traceback or a glog
    abort (exit 134); now the file is checked before Caffe sees it (#21.3). In a subprocess, as
    a user runs it: an abort would kill it."""
    weights = run / "model.caffemodel"
    if damage == "truncated":
        data = weights.read_bytes()
        weights.write_bytes(data[:len(data) // 2])
    else:
        other = tmp_path / "other.prototxt"
        other.write_text(nets.net_prototxt(nets.default_plan("synthetic", "alexnet", "R"),
                                           "deploy"))
        random_caffemodel(other, weights)
    p = subprocess.run([sys.executable, "-m", "pycount", "count", str(images / "grey16.tif"),
                        "--run", str(run), "--out", str(tmp_path / "out"), "--backend", backend],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert p.returncode == 2, p.stderr[-2000:]
    assert "Traceback" not in p.stderr
    assert f"pycount: error: {weights} cannot be used" in p.stderr
    assert "train it again" in p.stderr
