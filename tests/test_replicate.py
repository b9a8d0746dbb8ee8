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


# --- failure paths: bad DATASETS=/MODELS=, no data, no GPU, logs that cannot be written -------

@pytest.mark.parametrize("datasets, models, message", [
    (["foo"], None, "DATASETS=foo: 'foo' is not a column of the paper's tables"),
    (["synthetic"], None, "'synthetic' is not a column"),
    ([""], None, "'' is not a column"),
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
    monkeypatch.setattr("pycount.reporting.audit.why_not", lambda *a: None)  # weights "there"
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
    monkeypatch.setattr(replicate.subprocess, "call", lambda cmd, **kw: calls.append(cmd[3:]) or 0)
    assert replicate._cell("bacterial", "lecount", "R", -1, 2, None, tmp_path, 5).startswith("ok")
    assert [c[0] for c in calls] == ["prepare", "train", "eval"]
    assert calls[2][-2:] == ["--test-images", "5"] and "--test-images" not in calls[1]
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
