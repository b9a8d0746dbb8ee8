"""Table 4's classic methods go through the same stages as the nets: `train` fits them on the
split's training images into a run folder, `eval` writes the same metrics, `pycount count` counts
with the run, and the audit fills their Table 4 cells."""
import csv
import json

import cv2
import numpy as np
import pytest

from pycount import cli, config
from pycount.evaluation import evaluate
from pycount.inference import predictors
from pycount.reporting import audit, replicate
from pycount.training.classic import train_classic

FAST = {"lecount": dict(n_words=24, codebook_samples=6000, kmeans_iters=10, contrast=0.05),
        "ledetect": dict(n_levels=24, min_area=4, max_area=600)}


@pytest.mark.parametrize("name", ["lecount", "ledetect"])
def test_a_classic_method_trains_evaluates_counts_and_fills_the_audit(name, tiny, monkeypatch,
                                                                     tmp_path):
    ds, _ = tiny
    model = config.model(name)
    monkeypatch.setitem(config.CLASSIC_BY_DATASET, (name, ds.name), FAST[name])
    summary = train_classic(ds, model)
    run = config.run_dir(ds, model)
    assert (run / "model.npz").exists() and summary["settings"] == FAST[name]
    assert json.loads((run / "train.json").read_text())["train_images"] == summary["train_images"]
    assert len(summary["train_images"]) == 8                  # train + val images of the split
    m = evaluate.evaluate(ds, model)
    rows = list(csv.DictReader(open(run / "predictions.csv")))
    assert [r["id"] for r in rows] == ["009", "010", "011", "012"]
    err = np.mean([abs(float(r["predicted"]) - float(r["true"])) for r in rows])
    assert m["mae"] == pytest.approx(err, abs=1e-3)
    assert m["mae"] < m["baseline_mae"]         # it counts: better than the mean training count
    assert len(list((run / "heatmaps").glob("*.png"))) == 4
    # `pycount count` with the run: the same count as eval for the same image
    image = cv2.imread(str(config.data_dir() / ds.subdir / "009cell.png"))
    out = tmp_path / "counted"
    assert cli.main(["count", str(config.data_dir() / ds.subdir / "009cell.png"), "--run",
                     str(run), "--out", str(out)]) == 0
    counted = float(next(csv.DictReader(open(out / "counts.csv")))["count"])
    assert counted == pytest.approx(float(rows[0]["predicted"]), abs=1e-3)  # CSV: 3 decimals
    direct = predictors.make_predictor("cv2", run).count_image(image[..., ::-1])
    assert direct.count == pytest.approx(counted, rel=1e-6)
    assert direct.heatmap.sum() == pytest.approx(counted, rel=1e-4, abs=1e-3)
    # the audit's Table 4 row of this method reads the run of this dataset's folder
    report = audit.build(config.runs_dir())
    label = {"lecount": "Le.count [16]", "ledetect": "Le.detect [5]"}[name]
    row = next(r for t in report["tables"] for r in t["rows"] if r["label"] == label)
    assert row["model"] == name


def test_prepare_has_nothing_to_write_for_a_classic_method(tiny, monkeypatch, capsys):
    monkeypatch.setitem(config.DATASETS, "synthetic", tiny[0])
    assert cli.main(["prepare", "--model", "lecount"]) == 0
    assert "no LMDB to prepare" in capsys.readouterr().out
    assert not (config.data_dir() / "lmdb").exists()


def test_train_json_names_the_commit_of_the_code_that_ran_not_the_tree_at_the_end(tiny, monkeypatch):
    """A fit (or training) can outlast a commit: train.json names the checkout as it was when the
    run began, the code that was loaded."""
    from pycount.util import provenance
    ds, _ = tiny
    model = config.model("ledetect")
    monkeypatch.setitem(config.CLASSIC_BY_DATASET, ("ledetect", ds.name), FAST["ledetect"])
    states = iter(["aaaaaaaaaaaa", "bbbbbbbbbbbb+changes"])
    monkeypatch.setattr(provenance, "commit", lambda: next(states))
    assert train_classic(ds, model)["commit"] == "aaaaaaaaaaaa"
    run = config.run_dir(ds, model)
    assert json.loads((run / "train.json").read_text())["commit"] == "aaaaaaaaaaaa"


def test_a_partial_evaluation_counts_the_first_test_images_and_is_no_result(tiny, monkeypatch,
                                                                            capsys):
    """`make eval TEST_IMAGES=K` counts the split's first K test images, says K of how many, and
    the audit takes it for no result (as a full sweep of audit-gpu does) until a full eval."""
    ds, _ = tiny
    monkeypatch.setitem(config.DATASETS, "synthetic", ds)
    monkeypatch.setitem(config.CLASSIC_BY_DATASET, ("lecount", ds.name), FAST["lecount"])
    model = config.model("lecount")
    train_classic(ds, model)
    run = config.run_dir(ds, model)
    assert cli.main(["eval", "--model", "lecount", "--test-images", "2"]) == 0
    assert "2 of the 4 test images (a partial evaluation: no result)" in capsys.readouterr().out
    assert [r["id"] for r in csv.DictReader(open(run / "predictions.csv"))] == ["009", "010"]
    m = json.loads((run / "metrics.json").read_text())
    assert (m["n_images"], m["test_images_of"]) == (2, 4)
    assert "2 of the 4 test images" in (run / "metrics.md").read_text()
    assert audit._read(run / "metrics.json")["error"].startswith("a partial evaluation")
    assert replicate._partial(run / "metrics.json")
    assert cli.main(["eval", "--model", "lecount"]) == 0
    m = audit._read(run / "metrics.json")
    assert "error" not in m and m["n_images"] == 4 and not replicate._partial(run / "metrics.json")
    full = (run / "metrics.json").read_text()
    assert cli.main(["eval", "--model", "lecount", "--test-images", "2"]) == 2   # the full result
    assert f"{run / 'metrics.json'} holds the full evaluation" in capsys.readouterr().err
    assert (run / "metrics.json").read_text() == full and len(list(csv.DictReader(
        open(run / "predictions.csv")))) == 4
    with pytest.raises(SystemExit):                  # argparse: a count of at least one
        cli.main(["eval", "--model", "lecount", "--test-images", "0"])


@pytest.mark.parametrize("option, needle", [
    ({"tta": 4}, "TTA=4: test-time augmentation is for density models (MODEL=fcrn), not lecount"),
    ({"shared": True}, "lecount has no convolutional trunk to share (drop --shared / SHARED=1)")])
def test_cnn_options_are_refused_for_a_classic_method(option, needle, tmp_path):
    """eval --tta 4 of lecount recorded tta 1, --shared "caffe shared": both were ignored."""
    ds = config.dataset("bacterial")
    with pytest.raises(config.ConfigError) as err:
        predictors.make_predictor("cv2", (tmp_path / "none", tmp_path / "model.npz"),
                                  config.model("lecount", ds), ds, "R", **option)
    assert str(err.value) == needle


@pytest.mark.parametrize("command, extra, named", [
    ("train", ["--gpu", "0"], "GPU=0"), ("train", ["--head", "C"], "HEAD=C"),
    ("train", ["--iters", "100"], "ITERS=100"), ("train", ["--scratch"], "SCRATCH=1"),
    ("train", ["--finetune", "all"], "FINETUNE=all"), ("train", ["--sigma", "4"], "SIGMA=4"),
    ("train", ["--hed-jitter", "0.2"], "HED=0.2"), ("eval", ["--size", "64"], "SIZE=64"),
    ("train", ["--patch", "32", "--crop", "64"], "PATCH=32, CROP=64"),
    ("eval", ["--backend", "caffe"], "BACKEND=caffe"), ("eval", ["--gpu", "0"], "GPU=0")])
def test_the_nets_options_are_refused_for_a_classic_method(tiny, monkeypatch, capsys, command,
                                                           extra, named):
    """A classic fit has no GPU path, head, iterations or engine: each was ignored without a word
    (eval --backend caffe recorded "caffe" for a numpy count, --gpu 0 asked Caffe for a GPU)."""
    monkeypatch.setitem(config.DATASETS, "synthetic", tiny[0])
    assert cli.main([command, "--model", "lecount", *extra]) == 2
    err = capsys.readouterr().err
    assert f"drop {named}" in err and "Traceback" not in err, err
    assert not config.run_dir(tiny[0], config.model("lecount")).exists()


def test_a_classic_method_has_no_engine_to_choose():
    """`pycount count --run <a Le.count run>` goes through resolve: its numpy code, nothing else."""
    from pycount.inference.engines import CLASSIC_ENGINE, resolve
    model = config.model("lecount")
    assert resolve(None, model) == resolve("auto", model) == CLASSIC_ENGINE
    with pytest.raises(config.ConfigError, match="drop --backend caffe"):
        resolve("caffe", model)
    with pytest.raises(config.ConfigError, match="drop --gpu 0"):
        resolve(None, model, gpu=0)


def test_the_gpu_sweep_fits_classic_cells_without_the_nets_options(monkeypatch, tmp_path):
    """make audit-gpu passed --gpu and --head to every cell; a classic cell now gets neither."""
    calls = []
    monkeypatch.setattr(replicate, "_call", lambda argv, *a, **kw: calls.append(argv) or 0)
    replicate._cell("bacterial", "lecount", "R", 0, None, None, tmp_path)
    replicate._cell("bacterial", "alexnet", "R", 0, 50, None, tmp_path)
    lecount, alexnet = calls[:3], calls[3:]
    assert all("--gpu" not in c and "--head" not in c for c in lecount), lecount
    assert ["--head", "R", "--gpu", "0", "--iters", "50"] == alexnet[1][-6:]
    assert ["--head", "R", "--gpu", "0"] == alexnet[2][-4:]


def _own_folder(root, fill, n=6, side=64):
    """n images of `side` px made by fill(rng) (H x W x 3 RGB uint8) with their dots as CSV."""
    rng = np.random.default_rng(3)
    root.mkdir()
    for i in range(n):
        img, dots = fill(rng, side)
        cv2.imwrite(str(root / f"c{i}.png"), img[..., ::-1])
        (root / f"c{i}.csv").write_text("x,y\n" + "".join(f"{x},{y}\n" for x, y in dots))
    return root


def _green_cells(rng, side):
    img = np.zeros((side, side, 3), np.uint8)
    dots = rng.integers(4, side - 4, (8, 2))
    for x, y in dots:
        cv2.circle(img, (int(x), int(y)), 3, (0, 200, 0), -1)
    return img, dots


def test_an_own_folder_is_fitted_on_the_channel_its_cells_show_in(tmp_path, workdirs, capsys,
                                                                   monkeypatch):
    """Green-only fluorescence read as blue left Le.count no textured pixel (a traceback): an own
    folder's classic fit reads the channel that varies most over its training images."""
    from pycount.training.classic import own_channel
    folder = _own_folder(tmp_path / "green", _green_cells)
    monkeypatch.setitem(config.CLASSIC_BY_DATASET, ("lecount", "green"),
                        {"n_words": 8, "codebook_samples": 2000, "kmeans_iters": 5})
    assert cli.main(["train", "--dataset", str(folder), "--model", "lecount"]) == 0
    assert "'channel': 'green'" in capsys.readouterr().out
    grey = np.repeat(_green_cells(np.random.default_rng(1), 32)[0][..., 1:2], 3, axis=2)
    assert own_channel([grey]) == "gray"


def test_a_classic_fit_with_nothing_to_learn_is_one_line_and_leaves_no_run(tmp_path, workdirs,
                                                                         capsys):
    folder = _own_folder(tmp_path / "flat", lambda rng, side: (
        np.full((side, side, 3), 128, np.uint8), [(10, 10), (30, 40)]))
    for name in ("lecount", "ledetect"):
        assert cli.main(["train", "--dataset", str(folder), "--model", name]) == 2
        err = capsys.readouterr().err
        assert f"pycount: error: {name} cannot be fitted on flat's training images" in err, err
        assert "MODEL=fcrn" in err and "Traceback" not in err
        assert not (workdirs / "runs" / "flat" / name).exists()
