"""`pycount count` on a run folder made in tmp (alexnet-lite, random weights): any image format,
corrupt files reported and skipped, exit statuses, counts equal to pycount.density's."""
import csv
import dataclasses
import re
import shutil
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

pytest.importorskip("caffe")

from pycount import cli, config  # noqa: E402
from pycount.data.images import read_any_image
from pycount.errors import RunError
from pycount.inference import density
from pycount.inference.run import (load_run, resume_command, run_max_iter, with_run_reading,
                                   with_run_stain)
from pycount.nets import builders as nets
from pycount.util import atomic
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
    tifffile.imwrite(folder / "grey.tif", rng.integers(0, 256, (70, 90), dtype=np.uint8))
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
    assert sorted(rows) == sorted(str(images / n) for n in ("corrupt.png", "grey.tif",
                                                             "rgba.PNG"))
    assert rows[str(images / "corrupt.png")]["status"] == "failed"
    assert "cannot decode" in rows[str(images / "corrupt.png")]["error"]
    predict = predictors.make_predictor("cv2", run)
    for name, (w, h) in (("grey.tif", (90, 70)), ("rgba.PNG", (50, 64))):
        row = rows[str(images / name)]
        assert row["status"] == "ok" and (int(row["width"]), int(row["height"])) == (w, h)
        assert (out / f"{name.rsplit('.', 1)[0]}_heatmap.png").stat().st_size > 0
        r = density.count_image(read_any_image(images / name), 40, 20, predict)
        assert float(row["count"]) == pytest.approx(r.heatmap.sum(), rel=1e-6)
        assert float(row["count"]) == pytest.approx(r.count, rel=1e-6)
        assert float(row["tiling_count"]) == pytest.approx(r.tiling_count, rel=1e-6)
    assert [p.name for p in out.glob(".*")] == [".count.lock"]   # no temporary files left


def test_images_in_subfolders_are_named_and_each_row_names_its_heatmap(run, tmp_path, capsys):
    """Without --recursive a folder's subfolders were passed over without a word; and two images
    of one name (a/x.png, b/x.png) left no way to tell x_heatmap.png from x-2_heatmap.png."""
    top = tmp_path / "imgs"
    for sub in ("a", "b", "a/deeper"):
        (top / sub).mkdir(parents=True)
    grey = np.full((60, 60, 3), 90, np.uint8)
    for f in ("top.png", "a/x.png", "b/x.png", "a/deeper/y.png"):
        cv2.imwrite(str(top / f), grey)
    out = tmp_path / "out"
    assert cli.main(["count", str(top), "--run", str(run), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert ("note: 3 image(s) in subfolders are not counted (" in err and f"1 in {top / 'a'}"
            in err and "--recursive (RECURSIVE=1) counts them too" in err), err
    assert cli.main(["count", str(top / "a" / "x.png"), str(top / "b" / "x.png"), "--run",
                     str(run), "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out / "counts.csv")))
    assert [(r["file"], r["heatmap"]) for r in rows] == [
        (str(top / "a" / "x.png"), "x_heatmap.png"), (str(top / "b" / "x.png"), "x-2_heatmap.png")]
    assert all((out / r["heatmap"]).is_file() for r in rows)
    assert "not counted" not in capsys.readouterr().err


def test_a_dataset_folder_given_as_the_run_names_its_runs(tmp_path, workdirs, capsys):
    """--run my_cells (the annotated folder) for runs/my_cells/fcrn said only that
    my_cells/train.json is missing and to train a model first."""
    folder = tmp_path / "my_cells"
    folder.mkdir()
    runs = workdirs / "runs"
    for tag, model, dataset in (("my_cells", "fcrn", "my_cells"),
                                ("my_cells-p60-s30-r30", "alexnet", "my_cells"),
                                ("my_cells_2", "fcrn", "my_cells_2")):  # another folder's
        (runs / tag / model).mkdir(parents=True)
        (runs / tag / model / "train.json").write_text(json.dumps({"dataset": dataset}))
    image = tmp_path / "a.png"
    cv2.imwrite(str(image), np.full((60, 60, 3), 90, np.uint8))
    assert cli.main(["count", str(image), "--run", str(folder), "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"pycount: error: {folder} is not a run folder (it has no train.json); the runs trained "
        f"on its images (my_cells) are {runs / 'my_cells' / 'fcrn'}, "
        f"{runs / 'my_cells-p60-s30-r30' / 'alexnet'}: give one of them (RUN=)")
    # a folder named as a named set is its own dataset (bacterial-own): not the paper's runs
    named = tmp_path / "bacterial"
    named.mkdir()
    (runs / "bacterial" / "fcrn").mkdir(parents=True)
    (runs / "bacterial" / "fcrn" / "train.json").write_text(json.dumps({"dataset": "bacterial"}))
    assert cli.main(["count", str(image), "--run", str(named), "--out", str(tmp_path / "o")]) == 2
    assert "the runs trained" not in capsys.readouterr().err


def test_an_image_of_another_bit_depth_is_counted_and_marked_suspect(run, tmp_path):
    """A 16-bit image, where the run learned from 8-bit ones, is stretched on its own: a faint or
    empty field becomes bright noise, counted as cells (305 on an empty field where a full one
    held 64, in a review) with nothing said. Counted, but marked with the cause."""
    grey16 = tmp_path / "grey16.tif"
    tifffile.imwrite(grey16, np.random.default_rng(0).integers(0, 4096, (70, 90), np.uint16))
    out = tmp_path / "out"
    assert cli.main(["count", str(grey16), "--run", str(run), "--out", str(out)]) == 1
    row, = csv.DictReader(open(out / "counts.csv"))
    assert row["status"] == "suspect" and np.isfinite(float(row["count"]))
    assert row["error"].startswith(
        "a 16-bit image, where the run's training images were 8-bit: it is stretched on its own "
        "(its darkest and brightest values become black and white), which turns a faint or "
        "empty field into bright noise, so it reads otherwise than they did; save it as they "
        "were saved (count "), row["error"]


def test_a_one_bit_image_is_marked_suspect_as_its_own_depth(run, tmp_path):
    """A 1-bit PNG or TIFF (a mask, a thresholded image) is widened to 8-bit values by the
    reader, so its dtype said 8-bit and it counted as "ok" (544 cells where the image in shades
    counted 262, in a review); the file's own bits per sample now mark it."""
    mask = (np.random.default_rng(5).random((70, 90)) > 0.5).astype(np.uint8) * 255
    cv2.imwrite(str(tmp_path / "one.png"), mask, [cv2.IMWRITE_PNG_BILEVEL, 1])
    tifffile.imwrite(tmp_path / "one.tif", mask > 0)
    cv2.imwrite(str(tmp_path / "eight.png"), mask)
    out = tmp_path / "out"
    assert cli.main(["count", *(str(tmp_path / n) for n in ("one.png", "one.tif", "eight.png")),
                     "--run", str(run), "--out", str(out)]) == 1
    rows = {Path(r["file"]).name: r for r in csv.DictReader(open(out / "counts.csv"))}
    for name in ("one.png", "one.tif"):
        assert rows[name]["status"] == "suspect" and rows[name]["error"].startswith(
            "a 1-bit image, where the run's training images were 8-bit: it holds only 2 levels "
            "of intensity"), rows[name]["error"]
    assert rows["eight.png"]["status"] == "ok"


def test_caffe_backend_gives_the_same_counts(run, images, tmp_path):
    files = [str(images / "grey.tif")]
    for backend in ("cv2", "caffe"):
        out = tmp_path / backend
        assert cli.main(["count", *files, "--run", str(run), "--out", str(out),
                         "--backend", backend]) == 0
    counts = [float(next(csv.DictReader(open(tmp_path / b / "counts.csv")))["count"])
              for b in ("cv2", "caffe")]
    assert counts[0] == pytest.approx(counts[1], rel=1e-4)


def test_a_run_under_runs_slash_found_in_pycount_runs_is_named(run, images, tmp_path,
                                                                monkeypatch, capsys):
    """RUN=runs/<dataset>/<model> as the README writes it, with PYCOUNT_RUNS putting the runs
    elsewhere: the message names where the run is."""
    elsewhere = tmp_path / "my-runs"
    shutil.copytree(run, elsewhere / "synthetic" / "alexnet-lite")
    monkeypatch.setenv("PYCOUNT_RUNS", str(elsewhere))
    monkeypatch.chdir(tmp_path)
    assert cli.main(["count", str(images / "grey.tif"), "--run", "runs/synthetic/alexnet-lite",
                     "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"pycount: error: no run folder runs/synthetic/alexnet-lite: the runs are in "
        f"{elsewhere} (PYCOUNT_RUNS): RUN={elsewhere / 'synthetic' / 'alexnet-lite'}")


def test_the_dot_masks_of_an_annotated_folder_are_not_counted(run, tmp_path, capsys):
    """`count` on a folder that holds annotated images (NAME.png beside NAME_dots.png, the VGG's
    NNNcell/NNNdots) counts the images only and says which masks it left out; a mask named as a
    file is counted, and a file merely ending in "dots" with no image beside it, or a photo
    named like a mask (well_dots.png beside well.png, not mostly black), is an image."""
    folder = tmp_path / "annotated"
    folder.mkdir()
    rng = np.random.default_rng(2)
    for name in ("a.png", "001cell.png", "polkadots.png", "well.png", "well_dots.png"):
        cv2.imwrite(str(folder / name), rng.integers(0, 256, (60, 60, 3), dtype=np.uint8))
    for name in ("a_dots.png", "001dots.png"):                # mostly black: masks
        mask = np.zeros((60, 60), np.uint8)
        mask[rng.integers(0, 60, 20), rng.integers(0, 60, 20)] = 255
        cv2.imwrite(str(folder / name), mask)
    assert cli.main(["count", str(folder), "--run", str(run), "--out", str(tmp_path / "o")]) == 0
    counted = [Path(r["file"]).name for r in csv.DictReader(open(tmp_path / "o" / "counts.csv"))]
    assert counted == ["001cell.png", "a.png", "polkadots.png", "well.png", "well_dots.png"]
    assert (f"note: 2 dot masks of the images beside them left out of {folder} (001dots.png "
            f"marks 001cell.png, ...)") in capsys.readouterr().err
    assert cli.main(["count", str(folder / "a_dots.png"), "--run", str(run),
                     "--out", str(tmp_path / "o2")]) == 0
    # a set laid out as images/ + dots/ (the masks named as their images), counted recursively
    apart = tmp_path / "apart"
    for sub in ("images", "dots"):
        (apart / sub).mkdir(parents=True)
    for name in ("x.png", "y.png"):
        cv2.imwrite(str(apart / "images" / name),
                    rng.integers(0, 256, (60, 60, 3), dtype=np.uint8))
        mask = np.zeros((60, 60), np.uint8)
        mask[rng.integers(0, 60, 9), rng.integers(0, 60, 9)] = 255
        cv2.imwrite(str(apart / "dots" / name), mask)
    assert cli.main(["count", str(apart), "--recursive", "--run", str(run),
                     "--out", str(tmp_path / "o3")]) == 0
    counted = [Path(r["file"]) for r in csv.DictReader(open(tmp_path / "o3" / "counts.csv"))]
    assert counted == [apart / "images" / "x.png", apart / "images" / "y.png"]
    # DSB 2018's layout, one folder per image: <id>/images/<id>.png + <id>/masks/, a mask per
    # cell (none named as the image), counted recursively: the images only
    dsb = tmp_path / "dsb"
    for i in ("p1", "p2"):
        (dsb / i / "images").mkdir(parents=True)
        (dsb / i / "masks").mkdir()
        cv2.imwrite(str(dsb / i / "images" / f"{i}.png"),
                    rng.integers(0, 256, (60, 60, 3), dtype=np.uint8))
        for k in range(3):
            mask = np.zeros((60, 60), np.uint8)
            mask[10 * k: 10 * k + 4, 5:9] = 255
            cv2.imwrite(str(dsb / i / "masks" / f"m{k}.png"), mask)
    assert cli.main(["count", str(dsb), "--recursive", "--run", str(run),
                     "--out", str(tmp_path / "o4")]) == 0
    counted = [Path(r["file"]) for r in csv.DictReader(open(tmp_path / "o4" / "counts.csv"))]
    assert counted == [dsb / "p1" / "images" / "p1.png", dsb / "p2" / "images" / "p2.png"]
    # the Cell Tracking Challenge's layout: 01/t000.tif beside 01_GT/TRA/man_track000.tif (a
    # label per cell) and 01_GT/SEG/man_seg000.tif: the frames only
    ctc = tmp_path / "ctc"
    for sub in ("01", "01_GT/TRA", "01_GT/SEG"):
        (ctc / sub).mkdir(parents=True)
    for t in range(2):
        cv2.imwrite(str(ctc / "01" / f"t{t:03d}.tif"),
                    rng.integers(0, 256, (60, 60), dtype=np.uint8))
        labels = np.zeros((60, 60), np.uint16)
        for k in range(3):
            labels[10 * k: 10 * k + 4, 5:9] = k + 1
        cv2.imwrite(str(ctc / "01_GT" / "TRA" / f"man_track{t:03d}.tif"), labels)
        cv2.imwrite(str(ctc / "01_GT" / "SEG" / f"man_seg{t:03d}.tif"), labels)
    assert cli.main(["count", str(ctc), "--recursive", "--run", str(run),
                     "--out", str(tmp_path / "o5")]) == 0
    counted = [Path(r["file"]) for r in csv.DictReader(open(tmp_path / "o5" / "counts.csv"))]
    assert counted == [ctc / "01" / "t000.tif", ctc / "01" / "t001.tif"]


def test_a_broken_link_in_a_folder_fails_by_name(run, images, tmp_path, capsys):
    (images / "gone.png").symlink_to(tmp_path / "nowhere.png")
    assert cli.main(["count", str(images), "--run", str(run), "--out", str(tmp_path / "o")]) == 1
    rows = {r["file"]: r for r in csv.DictReader(open(tmp_path / "o" / "counts.csv"))}
    assert rows[str(images / "gone.png")]["error"] == (
        f"{images / 'gone.png'} is a broken link (to {tmp_path / 'nowhere.png'}, which does not "
        f"exist); restore the file it points to, or remove the link")
    assert rows[str(images / "grey.tif")]["status"] == "ok"


def test_a_link_loop_in_a_folder_or_below_it_fails_by_name(run, images, tmp_path, capsys):
    """A link that leads to itself, in the counted folder or a subfolder not counted (looked at
    for the note on images left in subfolders), stopped the count with a RuntimeError traceback
    ("Symlink loop"; helper-46)."""
    (images / "sub").mkdir()
    (images / "sub" / "loop.tif").symlink_to("loop.tif")
    (images / "self.png").symlink_to("self.png")
    assert cli.main(["count", str(images), "--run", str(run), "--out", str(tmp_path / "o")]) == 1
    rows = {r["file"]: r for r in csv.DictReader(open(tmp_path / "o" / "counts.csv"))}
    assert rows[str(images / "self.png")]["error"] == (
        f"{images / 'self.png'} is a link that leads back to itself (a loop, through self.png); "
        f"point it at the file, or remove the link")
    assert rows[str(images / "grey.tif")]["status"] == "ok"
    err = capsys.readouterr().err
    assert "Traceback" not in err and "1 image(s) in subfolders are not counted" in err


def test_a_folder_whose_images_lie_in_subfolders_names_them(run, images, tmp_path, capsys):
    """IMAGES= a dataset folder laid out as images/ + dots/: nothing to count at its top, so the
    message names the subfolders that hold images; --recursive counts them all."""
    top = tmp_path / "set"
    shutil.copytree(images, top / "images")
    assert cli.main(["count", str(top), "--run", str(run), "--out", str(tmp_path / "o")]) == 2
    n = len([f for f in (top / "images").iterdir() if f.suffix != ".txt"])
    assert (f"no images (*.png, *.jpg, *.jpeg, *.tif, *.tiff, *.bmp, *.pgm, *.ppm) in {top}; "
            f"its subfolders hold {n} ({n} in {top / 'images'}): name the folder to count, or "
            f"--recursive"
            in capsys.readouterr().err)
    assert cli.main(["count", str(top), "--run", str(run), "--out", str(tmp_path / "o"),
                     "--recursive"]) == 1                  # corrupt.png fails
    assert len((tmp_path / "o" / "counts.csv").read_text().splitlines()) == n + 1


def test_too_small_and_missing_images_fail_by_name(run, tmp_path, capsys):
    small = tmp_path / "small.png"
    cv2.imwrite(str(small), np.zeros((30, 60, 3), np.uint8))
    assert cli.main(["count", str(small), str(tmp_path / "nope.jpg"), "--run", str(run),
                     "--out", str(tmp_path / "out")]) == 1
    stdout = capsys.readouterr().out
    assert "smaller than the run's 40x40 px patches" in stdout
    assert f"no such file: {tmp_path / 'nope.jpg'}; check the path" in stdout
    # nothing given exists (a mistyped folder): a usage error, and no counts.csv
    assert cli.main(["count", str(tmp_path / "no such folder"), "--run", str(run),
                     "--out", str(tmp_path / "out2")]) == 2
    assert (f"{tmp_path / 'no such folder'}: no such file or folder; name the images or the "
            f"folder holding them (IMAGES=)") in capsys.readouterr().err
    assert not (tmp_path / "out2" / "counts.csv").exists()


def test_a_second_count_into_the_same_folder_stops(run, images, tmp_path, capsys):
    """Two counts into one OUT overwrote each other's counts.csv and heatmaps, both saying they
    had written them: while one writes there, another stops with the fix (exit 2)."""
    from pycount.util.runlock import OutLock
    out = tmp_path / "shared out"
    out.mkdir()
    held = OutLock(out)                     # as a count in another process holds it
    try:
        assert cli.main(["count", str(images), "--run", str(run), "--out", str(out)]) == 2
        assert (f"another pycount count is writing into {out} now (it holds "
                f"{out / '.count.lock'}); wait for it to end, or give --out (OUT=) another "
                f"folder") in capsys.readouterr().err
        assert not (out / "counts.csv").exists()
    finally:
        held.release()
    assert cli.main(["count", str(images), "--run", str(run), "--out", str(out)]) == 1
    assert (out / "counts.csv").is_file()


@pytest.mark.parametrize("missing", ["folder", "train.json", "model.caffemodel"])
def test_a_missing_run_file_is_named_with_the_fix(run, images, missing, capsys):
    if missing == "folder":
        run = run.parent / "no-such-run"
    else:
        (run / missing).unlink()
    assert cli.main(["count", str(images), "--run", str(run)]) == 2
    err = capsys.readouterr().err
    assert (f"no run folder {run}: check the path" if missing == "folder"
            else f"{run / missing} is missing") in err and "make train" in err


@pytest.mark.parametrize("backend", ["cv2", "caffe"])
@pytest.mark.parametrize("damage", ["truncated", "other net", "a layer missing"])
def test_a_damaged_caffemodel_is_one_message_not_an_abort(run, images, backend, damage, tmp_path):
    """A truncated model.caffemodel, or another net's, gave a cv2.error traceback or a glog
    abort (exit 134); now the file is checked before Caffe sees it (#21.3). In a subprocess, as
    a user runs it: an abort would kill it. A file lacking one layer (the other head's file)
    counted with that layer's random filler values through Caffe."""
    weights = run / "model.caffemodel"
    if damage == "truncated":
        data = weights.read_bytes()
        weights.write_bytes(data[:len(data) // 2])
    elif damage == "a layer missing":
        from caffe.proto import caffe_pb2
        param = caffe_pb2.NetParameter()
        param.ParseFromString(weights.read_bytes())
        last = max(i for i, layer in enumerate(param.layer) if layer.blobs)
        del param.layer[last]
        weights.write_bytes(param.SerializeToString())
    else:
        other = tmp_path / "other.prototxt"
        other.write_text(nets.net_prototxt(nets.default_plan("synthetic", "alexnet", "R"),
                                           "deploy"))
        random_caffemodel(other, weights)
    p = subprocess.run([sys.executable, "-m", "pycount", "count", str(images / "grey.tif"),
                        "--run", str(run), "--out", str(tmp_path / "out"), "--backend", backend],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert p.returncode == 2, p.stderr[-2000:]
    assert "Traceback" not in p.stderr
    assert f"pycount: error: {weights} cannot be used" in p.stderr
    assert "train it again" in p.stderr


DAMAGED_DEPLOYS = {
    "syntax": (lambda t: t.replace("layer {", "layer { {{", 1), "is not a valid net definition"),
    "unknown type": (lambda t: t.replace('type: "ReLU"', 'type: "FooLayer"', 1),
                     "layer type(s) this Caffe does not have: 'FooLayer'"),
    "unknown bottom": (lambda t: t.replace('bottom: "conv1"', 'bottom: "nosuchblob"', 1),
                       "reading blob 'nosuchblob'"),
    "empty": (lambda t: "", "holds no layers"),
}


@pytest.mark.parametrize("backend", ["cv2", "caffe"])
@pytest.mark.parametrize("damage", sorted(DAMAGED_DEPLOYS))
def test_a_damaged_deploy_is_one_message_not_an_abort(run, images, backend, damage, tmp_path):
    """A deploy.prototxt that does not parse, names an unknown layer type or reads a blob no
    layer makes aborted the caffe engine (glog CHECK, exit 134); an empty one gave a cv2.error
    traceback. Now checked before either engine builds it; in a subprocess, as a user runs it."""
    deploy = run / "deploy.prototxt"
    edit, needle = DAMAGED_DEPLOYS[damage]
    text = deploy.read_text()
    assert edit(text) != text
    deploy.write_text(edit(text))
    out = tmp_path / "out"
    p = subprocess.run([sys.executable, "-m", "pycount", "count", str(images / "grey.tif"),
                        "--run", str(run), "--out", str(out), "--backend", backend],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert p.returncode == 2, p.stderr[-2000:]
    assert "Traceback" not in p.stderr and "Check failed" not in p.stderr
    assert f"pycount: error: {deploy} " in p.stderr and needle in p.stderr
    assert "copy it again, or train it again" in p.stderr


def test_every_committed_deploy_passes_the_check():
    from pycount.nets.check import check_deploy
    deploys = sorted((ROOT / "prototxt").rglob("deploy*.prototxt"))
    assert len(deploys) >= 10
    for d in deploys:
        check_deploy(d)


def test_out_that_is_a_file_is_named(run, images, tmp_path, capsys):
    out = tmp_path / "out.txt"
    out.write_text("mine")
    assert cli.main(["count", str(images / "grey.tif"), "--run", str(run),
                     "--out", str(out)]) == 2
    assert f"{out} is a file" in capsys.readouterr().err and out.read_text() == "mine"


@pytest.mark.parametrize("where", ["below a file", "unwritable"])
def test_an_out_that_cannot_be_made_is_named_before_counting(run, images, where, tmp_path,
                                                             monkeypatch, capsys):
    import os
    if where == "below a file":
        (tmp_path / "a-file").write_text("mine")
        out, said = tmp_path / "a-file" / "sub", f"{tmp_path / 'a-file'} is a file"
    else:
        out, said = tmp_path / "ro", "is not writable"
        out.mkdir()
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, m: False if str(p) == str(out) else real(p, m))
    assert cli.main(["count", str(images), "--run", str(run), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert said in err and "give --out (OUT=)" in err and "Traceback" not in err


def test_kill_stops_a_count_as_ctrl_c_does(run, images, tmp_path, monkeypatch, capsys):
    """SIGTERM (`kill PID`) during a count: exit 130, what was counted in counts.partial.csv and
    no counts.csv from an earlier count that the new heatmaps no longer match."""
    import os
    import signal
    from pycount.inference import count as counting
    out = tmp_path / "out"
    assert cli.main(["count", str(images), "--run", str(run), "--out", str(out)]) == 1
    real, calls = counting.count_file, []

    def killed_at_the_second(*args, **kwargs):
        calls.append(args[0])
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kwargs)

    monkeypatch.setattr(counting, "count_file", killed_at_the_second)
    assert cli.main(["count", str(images), "--run", str(run), "--out", str(out)]) == 130
    assert not (out / "counts.csv").exists()
    assert [r["file"] for r in csv.DictReader(open(out / "counts.partial.csv"))] == [str(calls[0])]
    assert "interrupted: 1 of 3 images counted" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL       # the handler is put back


def test_a_count_into_a_used_folder_leaves_only_its_own_heatmaps(run, images, tmp_path, capsys):
    """Counting fewer images into an earlier count's folder left the earlier heatmaps beside the
    new counts.csv (27 of 30 from another count; helper-46). The earlier count's heatmaps that
    the new one does not write go; a file no count listed stays."""
    out = tmp_path / "out"
    assert cli.main(["count", str(images), "--run", str(run), "--out", str(out)]) == 1
    assert {p.name for p in out.glob("*_heatmap.png")} == {"grey_heatmap.png", "rgba_heatmap.png"}
    (out / "mine_heatmap.png").write_bytes(b"a user's file")
    assert cli.main(["count", str(images / "grey.tif"), "--run", str(run), "--out",
                     str(out)]) == 0
    assert [r["heatmap"] for r in csv.DictReader(open(out / "counts.csv"))] == ["grey_heatmap.png"]
    assert {p.name for p in out.glob("*_heatmap.png")} == {"grey_heatmap.png", "mine_heatmap.png"}
    assert "note: removed 1 heatmap(s) of an earlier count from" in capsys.readouterr().err
    # a heatmap counted as an image is not removed as the earlier count's (helper-48), and a
    # table of the user's own with a heatmap column names nothing to remove
    assert cli.main(["count", str(out / "grey_heatmap.png"), "--run", str(run), "--out",
                     str(out)]) == 0
    assert (out / "grey_heatmap.png").is_file() and (out / "grey_heatmap_heatmap.png").is_file()
    (out / "counts.csv").write_text("file,heatmap\nx,mine_heatmap.png\n")
    assert cli.main(["count", str(images / "grey.tif"), "--run", str(run), "--out",
                     str(out)]) == 0
    assert (out / "mine_heatmap.png").is_file()
    # a table with pycount's header names only heatmaps to remove (a hand-edited one named a
    # report and the lock; helper-49), and a name in another case is this count's own heatmap
    # on a case-insensitive disk (macOS, a USB stick): kept
    from pycount.inference.count import FIELDS
    (out / "report.docx").write_text("the lab's")
    with open(out / "counts.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        for name in ("report.docx", ".count.lock", "GREY_heatmap.png", "x" * 300 + "_heatmap.png"):
            w.writerow({"file": "f", "heatmap": name})
    (out / "GREY_heatmap.png").write_bytes(b"as if the same file")
    assert cli.main(["count", str(images / "grey.tif"), "--run", str(run), "--out",
                     str(out)]) == 0
    assert (out / "report.docx").is_file() and (out / "GREY_heatmap.png").is_file()


def test_a_negative_count_is_marked_suspect(run, images, tmp_path, monkeypatch, capsys):
    """No image holds fewer than no cells: a negative estimate is kept in counts.csv but marked,
    with the likely cause, and the exit status says not everything is right."""
    import dataclasses
    from pycount.inference import count as counting
    real = counting.make_predictor

    class Below:
        def __init__(self, inner):
            self.inner = inner

        def count_image(self, image):
            r = self.inner.count_image(image)
            # grey.tif (90 px wide) far below zero; rgba.PNG at -0.5: an empty field's noise
            return dataclasses.replace(r, count=-abs(r.count) - 5.0 if image.shape[1] == 90
                                       else -0.5)

    monkeypatch.setattr(counting, "make_predictor", lambda *a, **k: Below(real(*a, **k)))
    files = [str(images / "grey.tif"), str(images / "rgba.PNG")]
    assert cli.main(["count", *files, "--run", str(run), "--out", str(tmp_path / "o")]) == 1
    rows = {r["file"]: r for r in csv.DictReader(open(tmp_path / "o" / "counts.csv"))}
    grey, rgba = rows[files[0]], rows[files[1]]
    assert grey["status"] == "suspect" and float(grey["count"]) < 0
    assert grey["error"].startswith(f"a negative count ({float(grey['count']):.1f}): the image "
                                    f"is unlike the ones run was trained on")
    assert rgba["status"] == "ok" and rgba["error"] == "" and float(rgba["count"]) == -0.5
    out = capsys.readouterr().out
    assert "SUSPECT: a negative count" in out and "2 counted (1 suspect), 0 failed" in out
    # a run trained far short of its schedule (ITERS=60): the message says so
    info = json.loads((run / "train.json").read_text())
    (run / "train.json").write_text(json.dumps({**info, "iterations": 60}))
    assert cli.main(["count", *files, "--run", str(run), "--out", str(tmp_path / "o2")]) == 1
    rows = {r["file"]: r for r in csv.DictReader(open(tmp_path / "o2" / "counts.csv"))}
    schedule = config.model("alexnet-lite", config.dataset("synthetic")).solver.max_iter
    assert rows[files[0]]["error"].endswith(
        f"; run was trained 60 of alexnet-lite's {schedule:,} iterations (ITERS=): a short "
        f"training counts poorly")


def test_a_count_denser_than_training_ever_was_is_marked_suspect(run, images, tmp_path,
                                                                 monkeypatch):
    """Far more cells to the pixel than the run's training images allow for (SUSPECT_DENSITY
    x max_patch_count per patch area, over the whole image): an image unlike the training ones
    (an RGB slide on a grey-trained run read 136,304 cells in 640x480 px), kept but marked; just
    below it is ok."""
    import dataclasses
    from pycount.inference import count as counting
    real = counting.make_predictor
    ds = config.dataset("synthetic")
    per_px = config.SUSPECT_DENSITY * ds.max_patch_count / ds.patch ** 2

    class Dense:
        def __init__(self, inner):
            self.inner = inner

        def count_image(self, image):
            r = self.inner.count_image(image)
            most = per_px * image.shape[0] * image.shape[1]
            return dataclasses.replace(r, count=most + 1 if image.shape[1] == 90 else most - 1)

    monkeypatch.setattr(counting, "make_predictor", lambda *a, **k: Dense(real(*a, **k)))
    files = [str(images / "grey.tif"), str(images / "rgba.PNG")]
    assert cli.main(["count", *files, "--run", str(run), "--out", str(tmp_path / "o")]) == 1
    rows = {r["file"]: r for r in csv.DictReader(open(tmp_path / "o" / "counts.csv"))}
    grey, rgba = rows[files[0]], rows[files[1]]
    assert grey["status"] == "suspect" and grey["error"].startswith(
        f"{per_px * 90 * 70 + 1:.1f} cells: more than {config.SUSPECT_DENSITY:g} times as many "
        f"to the pixel as run's training images hold (at most {per_px * 90 * 70:.0f} in 90x70 px)")
    assert rgba["status"] == "ok" and rgba["error"] == ""


def test_an_interrupted_count_is_not_taken_for_a_result(run, images, tmp_path, monkeypatch,
                                                        capsys):
    """counts.csv is written only when every image is done; Ctrl-C keeps what was counted in
    counts.partial.csv and removes an earlier counts.csv, which the new heatmaps do not match."""
    from pycount.inference import count as counting
    out = tmp_path / "out"
    assert cli.main(["count", str(images), "--run", str(run), "--out", str(out)]) == 1
    assert (out / "counts.csv").is_file()
    before = list(out.glob("*_heatmap.png"))    # of the two readable images; the first fails
    real, calls = counting.count_file, []

    def stop_at_the_second(*args, **kwargs):
        calls.append(args[0])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(counting, "count_file", stop_at_the_second)
    assert cli.main(["count", str(images), "--run", str(run), "--out", str(out)]) == 130
    assert not (out / "counts.csv").exists()
    rows = list(csv.DictReader(open(out / "counts.partial.csv")))
    assert [r["file"] for r in rows] == [str(calls[0])]
    assert "interrupted: 1 of 3 images counted" in capsys.readouterr().err
    # the first count's heatmaps of the images not reached are gone with its table
    assert before and not list(out.glob("*_heatmap.png"))
    monkeypatch.setattr(counting, "count_file", real)
    assert cli.main(["count", str(images), "--run", str(run), "--out", str(out)]) == 1
    assert (out / "counts.csv").is_file() and not (out / "counts.partial.csv").exists()


def test_an_interrupted_count_removes_only_the_earlier_counts_heatmaps(run, images, tmp_path,
                                                                      monkeypatch):
    """Stopped at the third image: the second's new heatmap stays, the third's from the earlier
    count goes; a file the earlier table does not list (the user's own) is never removed."""
    from pycount.inference import count as counting
    out = tmp_path / "out"
    assert cli.main(["count", str(images), "--run", str(run), "--out", str(out)]) == 1
    real, calls = counting.count_file, []

    def stop_at(n):
        def stop(*args, **kwargs):
            calls.append(args[0])
            if len(calls) == n:
                raise KeyboardInterrupt
            return real(*args, **kwargs)
        return stop
    monkeypatch.setattr(counting, "count_file", stop_at(3))      # corrupt, grey, then rgba
    assert cli.main(["count", str(images), "--run", str(run), "--out", str(out)]) == 130
    assert sorted(p.name for p in out.glob("*_heatmap.png")) == ["grey_heatmap.png"]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "rgba_heatmap.png").write_bytes(b"the user's own file")
    calls.clear()
    monkeypatch.setattr(counting, "count_file", stop_at(1))
    assert cli.main(["count", str(images), "--run", str(run), "--out", str(mine)]) == 130
    assert (mine / "rgba_heatmap.png").read_bytes() == b"the user's own file"


def test_a_failed_recount_leaves_no_earlier_heatmap(run, images, tmp_path):
    out = tmp_path / "out"
    image = images / "grey.tif"
    assert cli.main(["count", str(image), "--run", str(run), "--out", str(out)]) == 0
    assert (out / "grey_heatmap.png").is_file()
    image.write_bytes(b"no longer a TIFF")
    assert cli.main(["count", str(image), "--run", str(run), "--out", str(out)]) == 1
    assert not (out / "grey_heatmap.png").exists()


def test_a_large_image_shows_its_own_progress(run, tmp_path, monkeypatch, capsys):
    """The bar counts images; inside one large image (a slide: minutes) it shows the share of
    that image's windows done, rising to 100 %, and the next image's line does not keep it."""
    monkeypatch.setattr(config, "PROGRESS_LOG_SECONDS", 0)     # off a terminal: every redraw
    folder = tmp_path / "slides"
    folder.mkdir()
    rng = np.random.default_rng(1)
    cv2.imwrite(str(folder / "a_big.png"), rng.integers(0, 256, (700, 900, 3), dtype=np.uint8))
    cv2.imwrite(str(folder / "b_small.png"), rng.integers(0, 256, (60, 60, 3), dtype=np.uint8))
    assert cli.main(["count", str(folder), "--run", str(run), "--out", str(tmp_path / "o")]) == 0
    err = capsys.readouterr().err
    shares = [int(v) for v in re.findall(r"a_big\.png: (\d+)%", err)]
    assert len(shares) >= 3 and shares == sorted(shares) and shares[-1] == 100
    after = err[err.rindex("a_big.png: 100%"):].splitlines()[1:]
    assert after and not any("a_big.png" in line for line in after)
    # a stride that does not divide the patch: the tiling estimate counts the tiles it lacks
    # after the windows; the share still rises once
    info = json.loads((run / "train.json").read_text())
    (run / "train.json").write_text(json.dumps({**info, "stride": 15}))
    assert cli.main(["count", str(folder / "a_big.png"), "--run", str(run),
                     "--out", str(tmp_path / "o2")]) == 0
    shares = [int(v) for v in re.findall(r"a_big\.png: (\d+)%", capsys.readouterr().err)]
    assert len(shares) >= 3 and shares == sorted(shares) and shares[-1] == 100


def test_a_very_tall_image_is_counted_with_its_figure(run, tmp_path):
    tall = tmp_path / "tall.png"
    cv2.imwrite(str(tall), np.full((3000, 40, 3), 90, np.uint8))
    out = tmp_path / "out"
    assert cli.main(["count", str(tall), "--run", str(run), "--out", str(out)]) == 0
    assert (out / "tall_heatmap.png").stat().st_size > 0


def _as_own_run(run: Path) -> config.DatasetConfig:
    """The run fixture as if trained on an own folder: its settings in dataset.json."""
    import dataclasses
    info = json.loads((run / "train.json").read_text())
    ds = dataclasses.replace(config.dataset("synthetic"), name="mine", layout="folder",
                             pad=True, mean_bgr=(30.0, 60.0, 90.0))
    (run / "dataset.json").write_text(config.dataset_to_json(ds))
    (run / "train.json").write_text(json.dumps({**info, "dataset": "mine"}))
    return ds


def test_an_own_run_pads_a_small_image_as_training_did(run, tmp_path, capsys):
    _as_own_run(run)
    small = tmp_path / "small.png"
    rgb = np.random.default_rng(1).integers(0, 256, (30, 60, 3), dtype=np.uint8)
    cv2.imwrite(str(small), rgb[..., ::-1])
    out = tmp_path / "out"
    assert cli.main(["count", str(small), "--run", str(run), "--out", str(out)]) == 0
    row = next(csv.DictReader(open(out / "counts.csv")))
    padded = np.empty((40, 60, 3), np.uint8)
    padded[:30], padded[30:] = rgb, (90, 60, 30)            # the mean colour, as RGB
    expect = density.count_image(padded, 40, 20, predictors.make_predictor("cv2", run))
    assert float(row["count"]) == pytest.approx(expect.count, rel=1e-6)
    assert (int(row["width"]), int(row["height"])) == (60, 30)
    err = capsys.readouterr().err
    assert f"note: {small} (60x30 px) is smaller than" in err and "padded to 60x40 px" in err


def test_a_grey_image_on_a_colour_trained_own_run_is_suspect(run, images, tmp_path):
    """An own folder's run knows whether its training images were grey (the mean colour of
    their pixels): a grey image counted by a colour-trained run, and a colour one by a
    grey-trained run, are marked (a grey-trained run read an H&E image of 135 cells as 11.8);
    an image like the training ones is not, nor any image on a named set's run."""
    import dataclasses
    ds = _as_own_run(run)                                   # mean (30, 60, 90): colour
    files = [str(images / "grey.tif"), str(images / "rgba.PNG")]
    assert cli.main(["count", *files, "--run", str(run), "--out", str(tmp_path / "a")]) == 1
    rows = {r["file"]: r for r in csv.DictReader(open(tmp_path / "a" / "counts.csv"))}
    assert rows[files[0]]["status"] == "suspect" and rows[files[0]]["error"].startswith(
        "a grey image, where run was trained on colour ones (count ")
    assert rows[files[1]]["status"] == "ok"
    grey = dataclasses.replace(ds, mean_bgr=(80.0, 80.0, 80.4))
    (run / "dataset.json").write_text(config.dataset_to_json(grey))
    assert cli.main(["count", *files, "--run", str(run), "--out", str(tmp_path / "b")]) == 1
    rows = {r["file"]: r for r in csv.DictReader(open(tmp_path / "b" / "counts.csv"))}
    assert rows[files[0]]["status"] == "ok"
    assert rows[files[1]]["error"].startswith("a colour image, where run was trained on grey")
    # fluorescence: a few green nuclei on black, trained on such (the mean nearly black, yet
    # colour): neither the training images nor the image are grey
    dark = dataclasses.replace(ds, mean_bgr=(1.2, 1.5, 1.0))
    (run / "dataset.json").write_text(config.dataset_to_json(dark))
    field = np.zeros((300, 300, 3), np.uint8)
    for y, x in ((50, 60), (200, 120), (150, 250)):
        cv2.circle(field, (x, y), 5, (0, 200, 0), -1)
    cv2.imwrite(str(tmp_path / "field.png"), field)
    assert cli.main(["count", str(tmp_path / "field.png"), "--run", str(run),
                     "--out", str(tmp_path / "c")]) == 0


@pytest.mark.parametrize("damage,needle", [
    ({"stride": 0}, "STRIDE=0 is not valid"),
    ({"patch": "abc"}, "settings pycount cannot use"),
    ({"sigma": "x"}, "settings pycount cannot use"),
    ({"model": "fcrnx"}, "unknown model 'fcrnx'"),
    ({"dataset": "nucleiX"}, "dataset.json is missing"),
    ({"head": "X"}, "head 'X' is neither R nor C"),
])
def test_a_damaged_train_json_is_named(run, images, damage, needle, capsys):
    info = json.loads((run / "train.json").read_text())
    (run / "train.json").write_text(json.dumps({**info, **damage}))
    assert cli.main(["count", str(images), "--run", str(run)]) == 2
    err = capsys.readouterr().err
    assert f"pycount: error: {run / 'train.json'}" in err or str(run / "dataset.json") in err
    assert needle in err


@pytest.mark.parametrize("damage", ["missing", "corrupt", "unknown key"])
def test_a_damaged_dataset_json_of_an_own_run_is_named(run, images, damage, capsys):
    _as_own_run(run)
    recorded = run / "dataset.json"
    if damage == "missing":
        recorded.unlink()
    elif damage == "corrupt":
        recorded.write_text(recorded.read_text()[:40])
    else:
        recorded.write_text(json.dumps({**json.loads(recorded.read_text()), "bogus_key": 1}))
    assert cli.main(["count", str(images), "--run", str(run)]) == 2
    err = capsys.readouterr().err
    # the file at fault comes first (it was train.json, blamed for its sibling)
    assert f"pycount: error: {recorded}" in err and ("copy" in err and "make train" in err)


def test_expected_on_a_regression_run_is_refused(run, images, tmp_path, capsys):
    """--expected (the C head's expected count) on an R run was ignored without a word."""
    assert cli.main(["count", str(images), "--run", str(run), "--expected",
                     "--out", str(tmp_path / "o")]) == 2
    assert (f"--expected reads the classification head's expected count; {run} is a run of the "
            f"R head (drop --expected)") in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("taken", ["counts.csv", "grey_heatmap.png"])
def test_a_folder_where_an_output_file_goes_is_named_before_counting(run, images, taken,
                                                                     tmp_path, capsys):
    out = tmp_path / "out"
    (out / taken).mkdir(parents=True)
    assert cli.main(["count", str(images), "--run", str(run), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{out / taken} is a folder" in err and "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == [taken]       # nothing counted or written


@pytest.mark.parametrize("where", ["same", "parent"])
def test_an_out_that_is_or_holds_the_counted_folder_is_refused(run, images, where, capsys):
    out = images if where == "same" else images.parent
    assert cli.main(["count", str(images), "--run", str(run), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "is, or holds, the folder being counted" in err and "Traceback" not in err
    assert not (images / "counts.csv").exists()


def test_recursive_counting_passes_over_an_earlier_counts_output(run, images, tmp_path):
    """An earlier count's output folder inside the counted tree: its heatmaps are not counted
    (they were, with heatmaps of heatmaps); a subfolder of real images still is."""
    (images / "corrupt.png").unlink()
    first = images / "counted"
    assert cli.main(["count", str(images), "--run", str(run), "--out", str(first)]) == 0
    assert len(list(first.glob("*_heatmap.png"))) == 2
    (images / "more").mkdir()
    shutil.copy(images / "rgba.PNG", images / "more" / "again.png")
    out = tmp_path / "second"
    assert cli.main(["count", str(images), "--recursive", "--run", str(run),
                     "--out", str(out)]) == 0
    files = sorted(Path(r["file"]).name for r in csv.DictReader(open(out / "counts.csv")))
    assert files == ["again.png", "grey.tif", "rgba.PNG"]


def test_a_full_output_disk_stops_the_count_with_the_fix(run, images, tmp_path, monkeypatch,
                                                         capsys):
    """Writing a heatmap fails with ENOSPC: one message naming the file and the fix, not one
    FAILED row per image that blames the images."""
    import errno
    from pycount.inference import count as counting

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(counting, "save_overlay", full)
    out = tmp_path / "out"
    assert cli.main(["count", str(images), "--run", str(run), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and "give --out (OUT=) a folder on another disk" in err
    assert "_heatmap.png" in err and "Traceback" not in err
    assert not (out / "counts.csv").exists()


def test_the_parent_of_run_folders_names_them(run, images, tmp_path, capsys):
    parent = run.parent
    assert cli.main(["count", str(images), "--run", str(parent), "--out",
                     str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"{parent} is not a run folder but holds 1: {run}" in err


def test_a_run_being_trained_says_so(run, images, tmp_path, capsys):
    import fcntl
    from pycount.util import runlock
    (run / "train.json").unlink()
    with open(run / runlock.LOCK_FILE, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)        # as a training holds it
        assert cli.main(["count", str(images), "--run", str(run), "--out",
                         str(tmp_path / "out")]) == 2
    assert "is being trained now" in capsys.readouterr().err


@pytest.mark.parametrize("edit,said", [
    ({"model": "fcrn"}, "is the net of alexnet-lite (R head), but"),
    ({"model": "alexnet"}, "is the net of alexnet-lite (R head), but"),
    ({"head": "C"}, "says alexnet-lite (C head)"),
    ({"patch": 48}, "is the net of 40 px patches read at 40x40 px, but"),
    ({"size": 64}, "says 40 px patches read at 64 px"),
])
def test_a_train_json_naming_another_net_is_refused_before_caffe(run, images, edit, said,
                                                                  tmp_path):
    """"model": "fcrn" written into an alexnet-lite run's train.json: count aborted in Caffe
    (inner_product_layer.cpp Check failed: K_ == new_K), exit 134."""
    info = json.loads((run / "train.json").read_text())
    (run / "train.json").write_text(json.dumps({**info, **edit}))
    p = subprocess.run([sys.executable, "-m", "pycount", "count", str(images / "grey.tif"),
                        "--run", str(run), "--out", str(tmp_path / "out")],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert p.returncode == 2, p.stderr[-2000:]
    assert said in p.stderr and "copy the run folder again whole" in p.stderr
    assert "Check failed" not in p.stderr and "Traceback" not in p.stderr


def test_an_earlier_counts_csv_goes_before_the_first_new_heatmap(run, images, tmp_path,
                                                                  monkeypatch):
    """A count killed with SIGKILL left the previous counts.csv (other images) beside its new
    heatmaps, a table that looked complete."""
    from pycount.inference import count as counting
    out = tmp_path / "out"
    assert cli.main(["count", str(images), "--run", str(run), "--out", str(out)]) == 1
    assert (out / "counts.csv").exists()
    real, seen = counting.count_file, []

    def first(*args, **kwargs):
        seen.append((out / "counts.csv").exists())
        return real(*args, **kwargs)

    monkeypatch.setattr(counting, "count_file", first)
    assert cli.main(["count", str(images), "--run", str(run), "--out", str(out)]) == 1
    assert seen and not any(seen) and (out / "counts.csv").exists()


def test_a_deploy_or_model_changed_since_training_is_refused_by_count_and_eval(tiny, tmp_path, capsys):
    """A deploy.prototxt edited without changing shapes (MAX pooling made AVE) was counted with
    by both engines: exit 0 and other counts. train.json records the sha256 of the one trained."""
    from pycount.data import prepare
    from pycount.evaluation import evaluate
    from pycount.training import trainer as train
    ds, model = tiny
    prepare.prepare(ds)
    train.Trainer(ds, model, max_iter=20).train(resume=False)
    run = config.run_dir(ds, model)
    info = json.loads((run / "train.json").read_text())
    deploy = run / "deploy.prototxt"
    assert len(info["deploy_sha256"]) == 64
    text = deploy.read_text()
    assert "pool: MAX" in text
    deploy.write_text(text.replace("pool: MAX", "pool: AVE", 1))
    folder = tmp_path / "imgs"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), np.full((60, 60, 3), 90, np.uint8))
    assert cli.main(["count", str(folder), "--run", str(run), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert f"{deploy} is not the net this run was trained as" in err and "Traceback" not in err
    with pytest.raises(evaluate.RunError, match="is not the net this run was trained as"):
        evaluate.evaluate(ds, model)
    deploy.write_text(text)                      # put back: counted again
    assert cli.main(["count", str(folder), "--run", str(run), "--out", str(tmp_path / "o")]) == 0
    # the weights replaced by those of another training of the same net: they loaded without
    # complaint and counted with exit 0 (review); train.json records the model's sha256 too
    weights = run / "model.caffemodel"
    assert info["model_sha256"] == atomic.sha256_of(weights)
    kept = weights.read_bytes()
    other = tmp_path / "other"
    train.Trainer(ds, model, max_iter=30, run=other).train(resume=False)
    assert (other / "model.caffemodel").read_bytes() != kept
    weights.write_bytes((other / "model.caffemodel").read_bytes())
    capsys.readouterr()
    assert cli.main(["count", str(folder), "--run", str(run), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert (f"{weights} is not the model this run trained (its sha256 differs from model_sha256 "
            f"in {run / 'train.json'}): it was replaced or damaged since" in err), err
    with pytest.raises(evaluate.RunError, match="is not the model this run trained"):
        evaluate.evaluate(ds, model)
    weights.write_bytes(kept)
    assert cli.main(["count", str(folder), "--run", str(run), "--out", str(tmp_path / "o")]) == 0


def test_a_run_being_trained_further_is_counted_with_a_note(run, images, tmp_path, capsys):
    """make eval refuses a run while a training holds it; pycount count went on with the last
    session's weights without a word (helper-55). It counts, and says so."""
    from pycount.util.runlock import RunLock
    files = [str(images / "grey.tif")]
    lock = RunLock(run)                       # a make train of the run under way
    try:
        assert cli.main(["count", *files, "--run", str(run), "--out", str(tmp_path / "o")]) == 0
    finally:
        lock.release()
    assert f"note: {run} is being trained further now" in capsys.readouterr().out
    assert cli.main(["count", *files, "--run", str(run), "--out", str(tmp_path / "o2")]) == 0
    assert "being trained" not in capsys.readouterr().out


def test_windows_are_cut_and_predicted_a_chunk_at_a_time(monkeypatch):
    """A large image's windows are never stacked all at once (config.COUNT_WINDOW_CHUNK): the
    predictor sees at most a chunk, and the counts are those of one whole stack."""
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (230, 310, 3), dtype=np.uint8)
    seen = []

    def predict(stack):
        seen.append(len(stack))
        return stack.reshape(len(stack), -1).mean(axis=1) / 50.0

    whole = density.count_image(image, 40, 20, predict)
    assert seen == [len(whole.patch_counts)] and seen[0] > 100
    seen.clear()
    monkeypatch.setattr(config, "COUNT_WINDOW_CHUNK", 37)
    chunked = density.count_image(image, 40, 20, predict)
    assert max(seen) == 37 and sum(seen) == len(whole.patch_counts)
    assert np.array_equal(chunked.patch_counts, whole.patch_counts)
    assert chunked.count == whole.count and chunked.tiling_count == whole.tiling_count


def test_a_large_images_figure_is_drawn_small(run, tmp_path, monkeypatch):
    """The heatmap figure of an image above config.OVERLAY_MAX_PX is drawn from an area-averaged
    copy (a full-size 8,192 px draw needed 512 MiB): same figure size, and the colour bar's scale
    (cells / px^2 of the image) kept."""
    import matplotlib.axes
    from pycount.inference import count as counting
    drawn = []
    real_imshow = matplotlib.axes.Axes.imshow

    def imshow(self, X, *args, **kwargs):
        drawn.append(np.asarray(X))
        return real_imshow(self, X, *args, **kwargs)
    monkeypatch.setattr("matplotlib.axes.Axes.imshow", imshow)
    monkeypatch.setattr(config, "OVERLAY_MAX_PX", 100)
    image = np.zeros((300, 200, 3), np.uint8)
    heat = np.full((300, 200), 0.02)
    heat[:150] = 0.04
    counting.save_overlay(tmp_path / "h.png", image, heat, "t")
    assert [a.shape[:2] for a in drawn] == [(100, 67), (100, 67)]
    assert np.isclose(drawn[1].max(), 0.04) and np.isclose(drawn[1].min(), 0.02)
    assert np.isclose(drawn[1].mean(), heat.mean(), rtol=0.02)


def test_an_image_too_large_for_memory_fails_by_name_and_the_rest_count(run, images, tmp_path,
                                                                       monkeypatch):
    from pycount.inference import count as counting
    real = counting.count_file

    def no_memory_for_grey(path, *args, **kwargs):
        if path.name == "grey.tif":
            raise MemoryError("Unable to allocate 512. MiB")
        return real(path, *args, **kwargs)
    monkeypatch.setattr(counting, "count_file", no_memory_for_grey)
    out = tmp_path / "out"
    assert cli.main(["count", str(images), "--run", str(run), "--out", str(out)]) == 1
    rows = {Path(r["file"]).name: r for r in csv.DictReader(open(out / "counts.csv"))}
    assert rows["grey.tif"]["status"] == "failed"
    assert rows["grey.tif"]["error"].startswith("not enough memory to count it (Unable to "
                                                "allocate 512. MiB): count it on a machine")
    assert rows["rgba.PNG"]["status"] == "ok"


def test_a_count_stopped_by_an_error_says_so_not_interrupted(run, images, tmp_path, monkeypatch,
                                                            capsys):
    from pycount.inference import count as counting
    real, calls = counting.count_file, []

    def fail_at_the_third(*args, **kwargs):
        calls.append(args[0])
        if len(calls) == 3:
            raise RuntimeError("a bug")
        return real(*args, **kwargs)
    monkeypatch.setattr(counting, "count_file", fail_at_the_third)
    with pytest.raises(RuntimeError):
        counting.count([str(images)], run=str(run), out=str(tmp_path / "out"))
    err = capsys.readouterr().err
    assert "stopped by an error (RuntimeError): 2 of 3 images counted" in err
    assert "interrupted" not in err


def test_an_earlier_partial_table_and_dead_writers_temporaries_go(run, images, tmp_path,
                                                                  dead_pid):
    """A count killed outright leaves counts.partial.csv (naming heatmaps the next count
    overwrites) and half-written `.NAME.tmp-PID.png` files: the next count removes both."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "counts.partial.csv").write_text("file,count\nother/grey.tif,261.7\n")
    stale = out / f".grey_heatmap.tmp-{dead_pid}.png"
    stale.write_bytes(b"half a png")
    assert cli.main(["count", str(images / "grey.tif"), "--run", str(run),
                     "--out", str(out)]) == 0
    assert not (out / "counts.partial.csv").exists() and not stale.exists()
    assert (out / "counts.csv").is_file()


def test_an_image_whose_name_is_not_utf8_is_counted_and_named(run, tmp_path, capsys):
    """A name written on another system (bytes that are not UTF-8): OpenCV 4.10 crashed the
    process (exit 139) on it, even beside the folder being counted (the dot-mask scan). It is
    counted from its bytes and named with \\x escapes in counts.csv and on screen."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    image = np.random.default_rng(4).integers(0, 256, (80, 80, 3), dtype=np.uint8)
    png = cv2.imencode(".png", image)[1].tobytes()
    odd = os.fsdecode(os.fsencode(str(folder)) + b"/bad\xffname.png")
    Path(odd).write_bytes(png)
    sub = os.fsencode(str(folder)) + b"/sub"
    os.mkdir(sub)
    Path(os.fsdecode(sub + b"/w\xff.png")).write_bytes(png)
    Path(os.fsdecode(sub + b"/w\xff_dots.png")).write_bytes(
        cv2.imencode(".png", np.zeros((80, 80), np.uint8))[1].tobytes())
    (folder / "ok.png").write_bytes(png)
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "pycount", "count", str(folder), "--run",
                           str(run), "--out", str(out)], capture_output=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr.decode("utf-8", "replace")[-2000:]
    rows = list(csv.DictReader(open(out / "counts.csv", encoding="utf-8")))
    by_name = {Path(r["file"]).name: r for r in rows}
    assert set(by_name) == {"bad\\xffname.png", "ok.png"}
    assert by_name["bad\\xffname.png"]["count"] == by_name["ok.png"]["count"]
    assert (out / by_name["bad\\xffname.png"]["heatmap"]).is_file()


def test_a_run_folder_whose_path_is_not_utf8_is_refused_by_name(run, images, tmp_path):
    odd = Path(os.fsdecode(os.fsencode(str(tmp_path)) + b"/r_bad\xff"))
    shutil.copytree(run, odd)
    done = subprocess.run([sys.executable, "-m", "pycount", "count", str(images / "grey.tif"),
                           "--run", str(odd), "--out", str(tmp_path / "out")],
                          capture_output=True, cwd=ROOT)
    err = done.stderr.decode("utf-8")
    assert done.returncode == 2 and "Traceback" not in err
    assert "r_bad\\xff has a path that is not valid UTF-8" in err and "rename the folder" in err


def test_an_image_with_a_very_long_name_gets_a_heatmap_name_that_fits(run, tmp_path):
    """A 250-character image name (or ~81 CJK characters) plus "_heatmap.png" is over the 255
    bytes a file name holds: the count stopped with a traceback and left the output folder
    unusable. The heatmap's name is cut, keeping a hash, and two such names stay apart."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    png = cv2.imencode(".png", np.random.default_rng(6).integers(
        0, 256, (60, 60, 3), dtype=np.uint8))[1].tobytes()
    longs = ["a" * 246 + "1.png", "a" * 246 + "2.png", "細胞" * 40 + ".png"]
    for name in longs + ["ok.png"]:
        (folder / name).write_bytes(png)
    out = tmp_path / "out"
    assert cli.main(["count", str(folder), "--run", str(run), "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out / "counts.csv", encoding="utf-8")))
    heatmaps = [r["heatmap"] for r in rows]
    assert len(rows) == 4 and len(set(heatmaps)) == 4
    assert all(len(h.encode()) <= config.HEATMAP_NAME_MAX_BYTES and (out / h).is_file()
               for h in heatmaps)
    assert "ok_heatmap.png" in heatmaps
    assert cli.main(["count", str(folder), "--run", str(run), "--out", str(out)]) == 0


def _counting_as(monkeypatch, count_of):
    """pycount count's engine replaced: count_of(image) is each image's count (its tiling
    estimate and heatmap the real engine's)."""
    import dataclasses
    from pycount.inference import count as counting
    real = counting.make_predictor

    class Fixed:
        def __init__(self, inner):
            self.inner = inner

        def count_image(self, image):
            return dataclasses.replace(self.inner.count_image(image), count=count_of(image))
    monkeypatch.setattr(counting, "make_predictor", lambda *a, **k: Fixed(real(*a, **k)))


def test_an_infinite_count_fails_by_name(run, images, tmp_path, monkeypatch):
    _counting_as(monkeypatch, lambda image: float("inf") if image.shape[1] == 90 else 3.0)
    files = [str(images / "grey.tif"), str(images / "rgba.PNG")]
    assert cli.main(["count", *files, "--run", str(run), "--out", str(tmp_path / "o")]) == 1
    rows = {r["file"]: r for r in csv.DictReader(open(tmp_path / "o" / "counts.csv"))}
    assert rows[files[0]]["status"] == "failed" and rows[files[0]]["count"] == ""
    assert rows[files[0]]["error"].startswith("the count is not a number (inf)")
    assert rows[files[1]]["status"] == "ok"


def test_counts_csv_keeps_ten_digits_and_a_count_just_below_minus_one_is_suspect(
        run, images, tmp_path, monkeypatch):
    _counting_as(monkeypatch, lambda image: -1.25 if image.shape[1] == 90 else 123.456789)
    files = [str(images / "grey.tif"), str(images / "rgba.PNG")]
    assert cli.main(["count", *files, "--run", str(run), "--out", str(tmp_path / "o")]) == 1
    rows = {r["file"]: r for r in csv.DictReader(open(tmp_path / "o" / "counts.csv"))}
    assert rows[files[1]]["count"] == "123.456789" and rows[files[1]]["status"] == "ok"
    assert rows[files[0]]["count"] == "-1.25" and rows[files[0]]["status"] == "suspect"


def test_a_folders_images_are_found_once_in_natural_order_hidden_ones_left_out(tmp_path):
    from pycount.inference import count as counting
    for name in ("img10.png", "img2.png", ".hidden.png", "img1.PNG"):
        cv2.imwrite(str(tmp_path / name), np.full((8, 8, 3), 90, np.uint8))
    found = counting.find_images([tmp_path, tmp_path / "img2.png"])
    assert [p.name for p in found] == ["img1.PNG", "img2.png", "img10.png"]


def test_only_heatmaps_named_in_a_table_pycount_wrote_are_earlier_heatmaps(tmp_path):
    from pycount.inference import count as counting
    header = ",".join(counting.FIELDS)
    (tmp_path / "counts.csv").write_text(
        f"{header}\na.png,1,1,8,8,0.1,ok,,a_heatmap.png\nb.png,1,1,8,8,0.1,ok,,notes.txt\n")
    # a table of the user's own, not pycount's: what it names is not pycount's to remove
    (tmp_path / "counts.partial.csv").write_text("file,heatmap\nc.png,c_heatmap.png\n")
    assert counting._earlier_heatmaps(tmp_path) == {"a_heatmap.png"}
    # a table of a count before the heatmap column is a count's output too
    old = tmp_path / "old"
    old.mkdir()
    (old / "counts.csv").write_text(",".join(counting.FIELDS[:-1]) + "\n")
    assert counting.is_count_output(old) and not counting.is_count_output(tmp_path / "none")


def test_grey_is_all_three_channels_alike_and_a_named_sets_run_is_not_judged_by_it():
    from pycount.inference import count as counting
    rgb = np.zeros((10, 10, 3), np.uint8)
    rgb[..., :2] = 100
    rgb[..., 2] = 200                               # R = G, B apart: colour
    assert not counting.is_grey(rgb)
    assert counting.is_grey(np.full((10, 10, 3), 100, np.uint8))
    # a named set's run (its fixed mean) is judged on neither colour nor grey
    assert counting.trained_grey(config.dataset("synthetic")) is None


def test_an_own_runs_small_image_is_judged_dense_over_the_patch_it_is_padded_to(
        run, tmp_path, monkeypatch):
    from pycount.inference.run import load_run
    _as_own_run(run)
    ds = load_run(run).ds
    per_px = config.SUSPECT_DENSITY * ds.max_patch_count / ds.patch ** 2
    h = ds.patch - 10
    small = tmp_path / "small.png"
    cv2.imwrite(str(small), np.full((h, 60, 3), (30, 60, 90), np.uint8))    # colour, as trained
    # 0.9 of the most over the padded patch x 60 px: more than over its own h x 60 px
    _counting_as(monkeypatch, lambda image: 0.9 * per_px * ds.patch * 60)
    assert 0.9 * ds.patch > h
    assert cli.main(["count", str(small), "--run", str(run), "--out", str(tmp_path / "o")]) == 0
    row = next(csv.DictReader(open(tmp_path / "o" / "counts.csv")))
    assert row["status"] == "ok", row["error"]


def test_a_scaled_runs_row_gives_the_files_own_size(run, tmp_path):
    import dataclasses
    ds = _as_own_run(run)
    (run / "dataset.json").write_text(config.dataset_to_json(dataclasses.replace(ds, scale=0.5)))
    image = tmp_path / "big.png"
    cv2.imwrite(str(image), np.full((100, 120, 3), (30, 60, 90), np.uint8))
    assert cli.main(["count", str(image), "--run", str(run), "--out", str(tmp_path / "o")]) == 0
    row = next(csv.DictReader(open(tmp_path / "o" / "counts.csv")))
    assert (row["width"], row["height"]) == ("120", "100")     # as on disk, not as counted


def test_a_counts_csv_that_cannot_be_written_is_an_error_not_success(run, images, tmp_path,
                                                                     monkeypatch, capsys):
    import errno
    from pycount.inference import count as counting

    def refused(path, rows):
        raise OSError(errno.EACCES, "Permission denied", str(path))
    monkeypatch.setattr(counting, "write_csv", refused)
    out = tmp_path / "o"
    assert cli.main(["count", str(images / "grey.tif"), "--run", str(run), "--out",
                     str(out)]) == 2
    assert "counts.csv" in capsys.readouterr().err and not (out / "counts.csv").exists()


def test_a_run_is_short_below_half_its_schedule_and_never_without_one(run):
    loaded = load_run(run)
    assert loaded.iterations is None and loaded.short_note() == ""
    half = dataclasses.replace(loaded, iterations=500, schedule=1000)
    assert config.SHORT_TRAINING == 0.5 and half.short_note() == ""
    assert dataclasses.replace(half, iterations=499).short_note() == (
        "; run was trained 499 of alexnet-lite's 1,000 iterations (ITERS=): a short training "
        "counts poorly")
    assert dataclasses.replace(half, schedule=None).short_note() == ""


@pytest.mark.parametrize("recorded,iterations", [(60, 60), (True, None), ("60", None)])
def test_only_a_whole_number_of_iterations_is_taken_from_train_json(run, recorded, iterations):
    info = json.loads((run / "train.json").read_text())
    (run / "train.json").write_text(json.dumps({**info, "iterations": recorded}))
    assert load_run(run).iterations == iterations


def test_a_train_json_naming_no_head_is_a_regression_run(run):
    info = json.loads((run / "train.json").read_text())
    del info["head"]
    (run / "train.json").write_text(json.dumps(info))
    assert load_run(run).head == "R"


def test_only_a_missing_runs_slash_path_is_looked_for_in_pycount_runs(workdirs, monkeypatch):
    (config.runs_dir() / "synthetic" / "alexnet-lite").mkdir(parents=True)
    (workdirs / "elsewhere").mkdir()
    monkeypatch.chdir(workdirs / "elsewhere")
    with pytest.raises(RunError) as e:
        load_run(Path("runs/synthetic/alexnet-lite"))
    assert str(e.value) == (f"no run folder runs/synthetic/alexnet-lite: the runs are in "
                            f"{config.runs_dir()} (PYCOUNT_RUNS): "
                            f"RUN={config.runs_dir() / 'synthetic' / 'alexnet-lite'}")
    with pytest.raises(RunError) as e:
        load_run(Path("old/synthetic/alexnet-lite"))
    assert str(e.value).startswith("no run folder old/synthetic/alexnet-lite: check the path")


def test_a_train_json_of_another_patch_read_at_the_nets_size_is_refused(run):
    """PATCH=48 SIZE=40 gives the same 40 px input as the net's own 40 px patches: the net's
    name still says which patch it was trained on."""
    info = json.loads((run / "train.json").read_text())
    (run / "train.json").write_text(json.dumps({**info, "patch": 48, "size": 40}))
    with pytest.raises(RunError, match=r"is the net of 40 px patches read at 40x40 px, but .* "
                                       r"says 48 px patches read at 40 px"):
        load_run(run)


def test_counting_takes_the_stain_normalisation_the_run_was_trained_with(tmp_path):
    plain = config.dataset("nuclei")
    reinhard = config.with_overrides(plain, stain_norm="reinhard")
    info = tmp_path / "train.json"
    with pytest.raises(RunError, match="was trained with stain normalisation 'none', not "
                                       "'reinhard'; count with STAIN=none"):
        with_run_stain(reinhard, {}, info)
    with pytest.raises(RunError, match="trained with stain normalisation 'reinhard', not "
                                       "'none'; count with STAIN=reinhard"):
        with_run_stain(plain, {"stain_norm": "reinhard", "stain_ref": [1] * 6}, info)
    for ref in ([1.0] * 5, [1.0] * 8, "1,2,3,4,5,6"):
        with pytest.raises(RunError, match="has no valid stain_ref for its stain normalisation "
                                           "'reinhard'; re-run make train"):
            with_run_stain(reinhard, {"stain_norm": "reinhard", "stain_ref": ref}, info)
    assert with_run_stain(reinhard, {"stain_norm": "reinhard", "stain_ref": list(range(6))},
                          info).stain_ref == (0.0, 1.0, 2.0, 3.0, 4.0, 5.0)
    assert with_run_stain(plain, {}, info) is plain


def test_an_own_run_recorded_without_a_mean_colour_keeps_todays(run, capsys):
    ds = _as_own_run(run)
    recorded = json.loads((run / "dataset.json").read_text())
    (run / "dataset.json").write_text(json.dumps({**recorded, "mean_bgr": []}))
    assert with_run_reading(ds, run) == ds
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("sigma,tag,said", [
    (5, "nuclei-sigma5", "make train DATASET=nuclei SIGMA=5 MODEL=fcrn"),
    (True, "nuclei", "make train DATASET=nuclei MODEL=fcrn")])
def test_the_resume_command_reads_a_whole_number_as_a_float_setting_but_not_a_bool(
        tmp_path, sigma, tag, said):
    info = {"dataset": "nuclei", "model": "fcrn", "dataset_tag": tag, "sigma": sigma}
    assert resume_command(tmp_path, info) == said


def test_a_runs_iterations_are_its_solvers_max_iter_line(tmp_path):
    assert run_max_iter(tmp_path) is None
    (tmp_path / "solver.prototxt").write_text('net: "train_val.prototxt"\nbase_lr: 0.01\n')
    assert run_max_iter(tmp_path) is None
    (tmp_path / "solver.prototxt").write_text("# max_iter: 100 before ITERS=\nmax_iter: 300\n")
    assert run_max_iter(tmp_path) == 300


def test_a_folder_in_place_of_a_run_file_is_named_missing(run):
    (run / "model.caffemodel").unlink()
    (run / "model.caffemodel").mkdir()
    with pytest.raises(RunError, match=f"{run / 'model.caffemodel'} is missing"):
        load_run(run)
