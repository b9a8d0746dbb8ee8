"""`make audit-gpu` (pycount replicate): every paper cell pycount models, skipped with a line
where its weights or dataset are missing, the rest prepared, trained and evaluated."""
import pytest

from pycount import config, errors
from pycount.reporting import replicate


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
    assert "ki67 release there or set DATA_ROOT" in status[("ki67", "lecount", "R")]


def test_a_failed_cell_fails_the_sweep_after_the_others(monkeypatch, tmp_path, workdirs):
    monkeypatch.setattr(replicate, "_cell", lambda d, m, h, *a: "failed at train (exit 2)"
                        if m == "ledetect" else "ok")
    with pytest.raises(errors.TrainError, match=r"1 cell\(s\) failed: bacterial ledetect\(R\)"):
        replicate.run(gpu=-1, datasets=("bacterial",), models=("lecount", "ledetect"),
                      data_root=_data_root(tmp_path))


def test_a_dry_run_leaves_longer_trainings_as_they_are(monkeypatch, tmp_path, workdirs):
    """ITERS= below what a cell's run has trained: kept, not refused by its training (which
    failed the sweep) nor trained again."""
    ds = config.dataset("bacterial")
    for model, iters in (("alexnet", 500), ("lecount", 1)):
        run = config.run_dir(ds, config.model(model, ds), "R")
        run.mkdir(parents=True)
        (run / "train.json").write_text(f'{{"iterations": {iters}}}')
    ran = []
    monkeypatch.setattr(replicate, "_cell", lambda d, m, h, *a: ran.append((d, m, h)) or "ok")
    rows = replicate.run(gpu=-1, iters=20, datasets=("bacterial",),
                         models=("alexnet", "lecount"), data_root=_data_root(tmp_path))
    status = {(r["model"], r["head"]): r["status"] for r in rows}
    assert status[("alexnet", "R")].startswith("kept: trained 500 iterations already")
    assert ran == [("bacterial", "alexnet", "C"), ("bacterial", "lecount", "R")]
