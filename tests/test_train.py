"""Training end to end on a tiny synthetic set: LMDBs, pycaffe solver, loss falls, resume."""
import csv
import dataclasses
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("caffe", reason="run `make setup` to build Caffe")
from pycount import config, device  # noqa: E402
from pycount.evaluation import evaluate
from pycount.data import lmdbio
from pycount.data import prepare
from pycount.training import trainer as train
from pycount.util import atomic


def test_prepare_writes_exact_labels_and_reuses(tiny):
    ds, _ = tiny
    manifests = prepare.prepare(ds)
    ids = prepare.split(ds)
    assert len(ids["val"]) == 2 and not set(ids["val"]) & set(ids["train"])
    samples = prepare.load(ds, ids["train"])
    # every training patch at 0/90/180/270 degrees: 12 x 12 windows x 4 angles per image
    assert manifests["train"]["records"] == len(samples) * 144 * 4
    # the label histogram equals a brute-force count over the 12 x 12 windows of 40 px at
    # stride 20 (written out here, not with pycount.patches), 4 times (exact rotations)
    expected = {}
    for s in samples:
        xy = np.asarray(s.centres, float) + 0.5        # pixel i spans [i - 0.5, i + 0.5)
        starts = list(range(0, 256 - 40, 20)) + [256 - 40]   # the last flush with the edge
        for y0 in starts:
            for x0 in starts:
                c = int(np.sum((xy[:, 0] >= x0) & (xy[:, 0] < x0 + 40)
                               & (xy[:, 1] >= y0) & (xy[:, 1] < y0 + 40)))
                expected[str(c)] = expected.get(str(c), 0) + 4
    assert manifests["train"]["count_histogram"] == dict(sorted(expected.items(),
                                                                key=lambda kv: int(kv[0])))
    lmdb_path = config.lmdb_dir(ds) / "train_lmdb"
    before = (lmdb_path / "data.mdb").stat().st_mtime_ns
    prepare.prepare(ds)                                    # same settings and sources: reused
    assert (lmdb_path / "data.mdb").stat().st_mtime_ns == before


def test_size_variant_writes_resized_patches_in_its_own_folder(tiny):
    ds, _ = tiny
    big = config.with_overrides(ds, size=48, rot_step=0)
    manifests = prepare.prepare(big)
    path = config.lmdb_dir(big)
    assert path.name == "synthetic-p40-s20-r0-48px"
    assert manifests["train"]["stored_patch"] == 48 and manifests["train"]["patch"] == 40
    _, rgb, _ = next(lmdbio.read_lmdb(path / "train_lmdb"))
    assert rgb.shape == (48, 48, 3)


def test_small_images_are_padded_in_the_mean_colour_and_a_narrow_one_is_refused():
    ds = dataclasses.replace(config.dataset("synthetic"), mean_bgr=(10.0, 20.0, 30.0))
    sample = prepare.datasets.Sample
    wide = sample("w", np.full((30, 50, 3), 99, np.uint8), np.zeros((0, 2)))    # 50 x 30 px
    big = sample("b", np.full((50, 50, 3), 99, np.uint8), np.zeros((0, 2)))
    out = prepare.pad_small([wide, big], 40, ds)
    assert out[1] is big                                   # large enough: as it was
    assert out[0].image.shape == (40, 50, 3)               # only the short side padded
    assert out[0].image[39, 0].tolist() == [30, 20, 10]    # the mean colour, in RGB
    assert out[0].image[29, 0].tolist() == [99, 99, 99]
    # without padding an image short on one side is refused, naming its size
    with pytest.raises(prepare.DatasetError, match="the image is 50x30 px, smaller than"):
        prepare.check_sizes([wide], 40, ds)
    prepare.check_sizes([big], 40, ds)


def test_validation_images_held_out_and_split_draws():
    ds = config.dataset("synthetic")                       # n_val 5
    # at most a quarter of the training images
    assert [prepare.val_count(ds, n) for n in (3, 12, 16, 40)] == [1, 3, 4, 5]
    # TRAIN_N: the training images left over, at most n_val
    assert prepare.val_count(dataclasses.replace(ds, train_n=10), 12) == 2
    # TRAIN_N taking every training image leaves none to validate on: refused
    eight = dataclasses.replace(ds, train_ids=tuple(f"{i:03d}" for i in range(1, 9)), train_n=8)
    with pytest.raises(prepare.DatasetError, match="TRAIN_N=8 leaves no image"):
        prepare.split(eight, "unused")
    # 10 in 55 test images, rounded: 25 images give 4.5 -> 5
    train, test = prepare.draw_split([f"{i:02d}" for i in range(25)])
    assert len(test) == 5 and len(train) == 20
    # RESPLIT: the training images are the pool's first ones in the seeded permutation
    pool = [f"{i:02d}" for i in range(10)]
    order = np.random.default_rng(7).permutation(10)
    a, b = prepare.redraw(pool[:7], pool[7:], 7)
    assert a == sorted(pool[i] for i in order[:7]) and b == sorted(pool[i] for i in order[7:])


def test_the_source_fingerprint_changes_with_the_marks_alone():
    # an annotation edited (same pixels) must make the LMDB out of date
    image = np.zeros((8, 8, 3), np.uint8)
    a = prepare.datasets.Sample("1", image, np.array([[2.0, 3.0]]))
    b = prepare.datasets.Sample("1", image, np.array([[2.0, 4.0]]))
    assert prepare.content_hash([a]) != prepare.content_hash([b])


def test_train_patches_cuts_the_training_lmdb_only(tiny):
    ds, _ = tiny
    manifests = prepare.prepare(dataclasses.replace(ds, train_patches=50))
    assert manifests["train"]["records"] == 50
    # 2 validation images x 12 x 12 windows, unrotated, all kept
    assert manifests["val"]["records"] == 2 * 144 and "patches_cut" not in manifests["val"]


def test_validation_reads_the_first_patches_in_key_order_and_refuses_an_empty_lmdb(tmp_path):
    from pycount.training import validation
    recs = [(np.full((6, 6, 3), i, np.uint8), i) for i in range(10)]
    lmdbio.write_lmdb(tmp_path / "val", iter(recs), n_max=10, patch=6, seed=1, manifest={})
    keys = sorted(k for k, _, _ in lmdbio.read_lmdb(tmp_path / "val"))
    first = [int(k) for k in keys[:4]]          # record i went under the key of perm[i]
    order = np.argsort(np.random.default_rng(1).permutation(10))
    x, y = validation.load_val_patches(tmp_path / "val", limit=4)
    assert x.shape == (4, 6, 6, 3) and y.tolist() == [float(order[k]) for k in first]
    assert [int(p[0, 0, 0]) for p in x] == [int(order[k]) for k in first]   # pixels with labels
    assert len(validation.load_val_patches(tmp_path / "val")[1]) == 10
    lmdbio.write_lmdb(tmp_path / "empty", iter([]), n_max=0, patch=6, seed=1, manifest={})
    with pytest.raises(train.TrainError, match="the validation LMDB is empty"):
        validation.load_val_patches(tmp_path / "empty")


def test_validation_predicts_patches_with_the_runs_head(monkeypatch, tiny):
    from pycount.training import validation
    ds, model = tiny
    asked = []

    def from_net(net, model, ds, head, batch):
        asked.append((head, batch))
        return lambda rgb: np.full(len(rgb), 2.0)
    monkeypatch.setattr(validation.CaffeBackend, "from_net", from_net)
    out = validation.predict_patches(None, np.zeros((3, 6, 6, 3), np.uint8), model, ds, "C")
    assert out.tolist() == [2.0] * 3 and asked == [("C", 256)]


def test_a_cut_training_lmdb_holds_the_first_patches_read_and_training_says_so(tiny, capsys):
    ds, model = tiny
    whole = prepare.prepare(ds)["train"]
    first = [(k, lab) for k, _, lab in lmdbio.read_lmdb(config.lmdb_dir(ds) / "train_lmdb",
                                                         limit=300)]
    cut = dataclasses.replace(ds, train_patches=300)
    manifest = prepare.prepare(cut)["train"]              # other settings: written again
    assert manifest["records"] == 300 and manifest["patches_cut"] == whole["records"]
    kept = [(k, lab) for k, _, lab in lmdbio.read_lmdb(config.lmdb_dir(cut) / "train_lmdb")]
    assert kept == first
    capsys.readouterr()
    train.Trainer(cut, model, max_iter=25).train(resume=False)      # 25 x 16 = 400 reads
    assert "keeps 300 of the" in capsys.readouterr().out
    train.Trainer(cut, model, max_iter=10).train(resume=False)      # 160 reads: no note
    assert "keeps 300" not in capsys.readouterr().out


def test_invalid_override_is_refused():
    with pytest.raises(config.ConfigError, match="STRIDE"):
        config.with_overrides(config.dataset("nuclei"), stride=0)


def test_loss_falls_and_training_resumes(tiny):
    ds, model = tiny
    prepare.prepare(ds)
    first = train.Trainer(ds, model, max_iter=40).train(resume=False)
    assert first["iterations"] == 40
    run = config.run_dir(ds, model)
    latest = json.loads((run / "snapshots" / "latest.json").read_text())
    assert latest["iter"] == 40 and (run / "model.caffemodel").exists()
    # a snapshot write that was interrupted (a partial file, latest.json not yet updated) is
    # never resumed from
    (run / "snapshots" / "snap_iter_50.solverstate").write_bytes(b"\x00partial")
    # a run killed after that snapshot had logged rows past it, the last one cut short
    first_seconds = float(list(csv.DictReader(open(run / "train_log.csv")))[-1]["seconds"])
    # train.json's time is the log's last row's plus the final snapshot's writing: close on a
    # quiet machine, up to a second or so beside other jobs, never less
    assert -0.1 <= first["seconds"] - first_seconds <= max(0.2, 0.25 * first["seconds"])
    with open(run / "train_log.csv", "a") as f:
        f.write("60,1.5,0.001,999.0,\n80,1.2,0.0")
    # a second call continues from the snapshot to max_iter instead of starting again
    second = train.Trainer(ds, model).train(resume=True)
    assert second["iterations"] == 60 and second["iterations_this_session"] == 20
    rows = list(csv.DictReader(open(run / "train_log.csv")))
    iters = [int(r["iter"]) for r in rows]
    assert iters[0] == 0 and iters[-1] == 60 and len(set(iters)) == len(iters) == len(rows)
    assert iters == sorted(iters) and all(r["loss"] != "1.5" for r in rows)
    # the seconds column and train.json count the training time of both sessions
    seconds = [float(r["seconds"]) for r in rows]
    assert seconds == sorted(seconds) and 999.0 not in seconds
    assert second["seconds"] == pytest.approx(first_seconds + second["seconds_this_session"],
                                              abs=0.2)
    assert (-0.1 <= second["seconds"] - seconds[-1]
            <= max(0.2, 0.25 * second["seconds_this_session"]))
    losses = np.array([float(r["loss"]) for r in rows])
    assert losses[-2:].mean() < 0.5 * losses[0], f"loss did not fall: {losses}"
    vals = [float(r["val_mae"]) for r in rows if r["val_mae"]]
    assert vals[-1] < vals[0], f"validation MAE did not fall: {vals}"
    assert (run / "loss.png").stat().st_size > 0
    assert [p.name for p in (run / "snapshots").glob("*.solverstate")] == \
        ["snap_iter_60.solverstate"]                                   # old and partial pruned
    # eval: every output a run promises, with counts that add up
    m = evaluate.evaluate(ds, model)
    saved = json.loads((run / "metrics.json").read_text())
    assert {"mae", "mae_std", "mre", "baseline_mae", "n_images"} <= set(saved)
    assert saved["n_images"] == 4 and saved["mae"] == pytest.approx(m["mae"])
    preds = list(csv.DictReader(open(run / "predictions.csv")))
    assert [r["id"] for r in preds] == ["009", "010", "011", "012"]
    errors = [abs(float(r["predicted"]) - float(r["true"])) for r in preds]
    assert np.mean(errors) == pytest.approx(saved["mae"], abs=1e-3)
    # the baseline: always the mean count of the images the run learned from (train + monitor),
    # never of the test images
    ids = prepare.split(ds)
    learned = [len(s.centres) for s in prepare.load(ds, ids["train"] + ids["val"])]
    assert len(learned) == 8 and saved["train_mean_count"] == pytest.approx(np.mean(learned))
    truth = np.array([float(r["true"]) for r in preds])
    assert saved["baseline_mae"] == pytest.approx(np.abs(truth - np.mean(learned)).mean())
    assert np.mean(learned) != pytest.approx(truth.mean())
    assert len(list((run / "heatmaps").glob("*.png"))) == 4
    assert (run.parent / "fig7.png").exists() and "MAE" in (run / "metrics.md").read_text()


def test_training_without_lmdb_says_how_to_prepare(workdirs):
    with pytest.raises(train.TrainError, match="make prepare DATASET=synthetic"):
        train.Trainer(config.dataset("synthetic"), config.model("alexnet-lite"))


def test_gpu_request_on_cpu_build_fails_cleanly():
    with pytest.raises(train.TrainError, match="GPU"):
        device.set_device(0)


def test_training_without_pycaffe_names_the_build(monkeypatch):
    """`pycount train` where pycaffe is not importable ended in a ModuleNotFoundError traceback."""
    monkeypatch.setitem(sys.modules, "caffe", None)          # import caffe then fails
    for gpu in (-1, 0):
        with pytest.raises(train.TrainError, match=r"pycaffe cannot be imported .*; build it "
                                                   r"with `make caffe`"):
            device.set_device(gpu)



@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "kill"])
def test_ctrl_c_writes_a_snapshot_that_training_resumes_from(tiny, tmp_path, sig):
    # SIGTERM (`kill PID`) stops a training as Ctrl-C does: the way to stop one started in the
    # background, where SIGINT is ignored
    ds, model = tiny
    prepare.prepare(ds)
    (tmp_path / "plan.pkl").write_bytes(pickle.dumps((ds, model)))
    script = tmp_path / "train_forever.py"
    script.write_text(
        "import pickle, sys\n"
        f"sys.path.insert(0, {str(config.ROOT)!r})\n"
        "from pycount.training import trainer as train\n"
        f"ds, model = pickle.loads(open({str(tmp_path / 'plan.pkl')!r}, 'rb').read())\n"
        "train.Trainer(ds, model, max_iter=10**6).train(resume=False)\n")
    # as a terminal's Ctrl-C: SIGINT handled even where this test runs in a background job
    # (which starts with SIGINT ignored, and Python then installs no KeyboardInterrupt)
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=dict(os.environ),
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    log = config.run_dir(ds, model) / "train_log.csv"
    deadline = time.time() + 300              # generous: CI machines are sometimes shared
    while time.time() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 4):
        time.sleep(0.5)
    assert proc.poll() is None, proc.communicate()[0].decode()[-2000:]
    logged = int(log.read_text().splitlines()[-1].split(",")[0])
    proc.send_signal(sig)
    try:
        out = proc.communicate(timeout=300)[0].decode()
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("training did not stop within 300 s of Ctrl-C:\n"
                    + proc.communicate()[0].decode()[-2000:])
    assert proc.returncode != 0 and "interrupted: writing a snapshot" in out
    run = config.run_dir(ds, model)
    latest = json.loads((run / "snapshots" / "latest.json").read_text())
    # the snapshot is taken where the signal found the loop: no earlier than the last row logged
    # before it was sent (the loop may stop right there, or some iterations later)
    assert latest["iter"] >= logged > 0
    assert (run / "snapshots" / latest["solverstate"]).exists()
    # the interrupted iterations are logged and their seconds kept (#21.7)
    rows = list(csv.DictReader(open(run / "train_log.csv")))
    assert int(rows[-1]["iter"]) == latest["iter"]
    summary = json.loads((run / "train.json").read_text())
    assert summary["interrupted"] is True and summary["iterations"] == latest["iter"]
    assert summary["seconds"] == pytest.approx(float(rows[-1]["seconds"]), abs=2.0)
    resumed = train.Trainer(ds, model, max_iter=latest["iter"] + 20).train(resume=True)
    assert resumed["iterations"] == latest["iter"] + 20
    assert resumed["iterations_this_session"] == 20


def test_a_patch_count_beyond_the_classification_heads_classes_is_refused_before_caffe(tiny):
    """A patch holding more cells than the C head has classes would make Caffe's softmax loss
    read past its scores (a crash, or training on garbage): refused with the fix, nothing
    written; the regression head trains on the same LMDBs."""
    from pycount.errors import TrainError
    ds, model = tiny
    manifests = prepare.prepare(ds)
    most = max(int(k) for m in manifests.values() for k in m["count_histogram"])
    assert most >= 2
    few = dataclasses.replace(ds, max_patch_count=most - 1)
    with pytest.raises(TrainError, match=rf"a patch holds {most} cells, but the classification "
                                         rf"head \(HEAD=C\) of synthetic has classes "
                                         rf"0\.\.{most - 1} only .*HEAD=R"):
        train.Trainer(few, model, head="C", max_iter=5).train(resume=False)
    assert not config.run_dir(few, model, "C").exists()
    assert train.Trainer(few, model, head="R", max_iter=2).train(resume=False)["iterations"] == 2


def test_a_resume_on_data_prepare_rewrote_since_is_refused_and_prepare_waits_for_a_training(
        tiny):
    """Each snapshot records the training LMDB's fingerprint (its settings, images and marks): a
    resume after `make prepare` rewrote the LMDB with other data is refused, not mixed in; and
    prepare does not rewrite LMDBs that a running training of the dataset reads."""
    import fcntl
    from pycount.errors import DatasetError, TrainError
    ds, model = tiny
    prepare.prepare(ds)
    train.Trainer(ds, model, max_iter=10).train(resume=False)
    run = config.run_dir(ds, model)
    lmdb = config.lmdb_dir(ds) / "train_lmdb"
    manifest = lmdbio.read_manifest(lmdb)
    assert json.loads((run / "snapshots" / "latest.json").read_text())["data"] == \
        manifest["fingerprint"]
    from pycount.util import runlock
    # the training held its LMDBs' readers files (made beside them) and unmarked its lock
    assert all(runlock.readers_file(config.lmdb_dir(ds) / f"{p}_lmdb").exists()
               for p in ("train", "val"))
    assert (run / ".train.lock").read_text() == ""
    with open(run / ".train.lock", "a+") as lock:        # as an older pycount's training holds it
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(DatasetError, match=f"{lmdb} may be read by a training now "
                                               f"\\({run}: of an older pycount"):
            prepare.prepare(ds, force=True)
        lock.write(runlock.MARK)                         # as this pycount's RunLock marks it
        lock.flush()
        prepare.prepare(ds, force=True)                  # rewritten: it reads none of them
    assert lmdbio.read_manifest(lmdb) != manifest
    # a training that reads it, from whatever runs folder: refused
    reading = runlock.ReadersLock([lmdb])
    with pytest.raises(DatasetError, match=f"{lmdb} is read by a training now \\(it holds "
                                           f"{runlock.readers_file(lmdb)}\\)"):
        prepare.prepare(ds, force=True)
    reading.release()
    # a training that begins to read it while prepare writes it: checked again before the new
    # database replaces the old (prepare swapped it in under the training: helper-55)
    real, held = lmdbio.write_lmdb, []

    def write_while_a_training_starts(dest, *args, **kw):
        if Path(dest) == lmdb:
            held.append(runlock.ReadersLock([lmdb]))
        return real(dest, *args, **kw)
    before = lmdbio.read_manifest(lmdb)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(lmdbio, "write_lmdb", write_while_a_training_starts)
        with pytest.raises(DatasetError, match=f"{lmdb} is read by a training now"):
            prepare.prepare(ds, force=True)
    held.pop().release()
    assert lmdbio.read_manifest(lmdb) == before                   # the old one stands
    assert not [p for p in lmdb.parent.iterdir() if p.name.startswith(".")
                and "train_lmdb" in p.name and "readers" not in p.name]    # no temporary left
    other = runlock.ReadersLock([lmdb.parent / "another_lmdb"])   # another model's LMDB
    prepare.prepare(ds, force=True)
    other.release()
    rewritten = lmdbio.read_manifest(lmdb)
    assert rewritten["fingerprint"] == manifest["fingerprint"] and rewritten != manifest
    manifest = rewritten
    lmdbio.write_manifest(lmdb, {**manifest, "fingerprint": "other data"})   # as prepare would
    with pytest.raises(TrainError, match="snapshots were trained on other data than"):
        train.Trainer(ds, model, max_iter=20).train(resume=True)
    assert json.loads((run / "train.json").read_text())["iterations"] == 10
    # the validation LMDB likewise (a validation image's marks edited): the weights kept would
    # have been chosen across two validation sets
    lmdbio.write_manifest(lmdb, manifest)
    val = config.lmdb_dir(ds) / "val_lmdb"
    val_manifest = lmdbio.read_manifest(val)
    assert json.loads((run / "snapshots" / "latest.json").read_text())["val_data"] == \
        val_manifest["fingerprint"]
    lmdbio.write_manifest(val, {**val_manifest, "fingerprint": "other marks"})
    with pytest.raises(TrainError, match="snapshots were validated on other data than"):
        train.Trainer(ds, model, max_iter=20).train(resume=True)
    lmdbio.write_manifest(val, val_manifest)
    assert train.Trainer(ds, model, max_iter=20).train(resume=True)["iterations"] == 20


def test_a_whole_lmdb_without_write_access_to_its_lock_is_said_not_written_again(
        tiny, monkeypatch, capsys):
    """A current LMDB on a read-only data root was called damaged, written again, and that
    failed with advice for a full disk."""
    from pycount.errors import LmdbError
    ds, _ = tiny
    prepare.prepare(ds)
    capsys.readouterr()
    real = os.access
    monkeypatch.setattr(lmdbio.os, "access", lambda p, mode: False if mode == os.W_OK
                        else real(p, mode))
    with pytest.raises(LmdbError) as refused:
        prepare.prepare(ds)
    assert "Caffe's LMDB reader needs write access to its lock file" in str(refused.value)
    assert "set PYCOUNT_DATA to a writable folder" in str(refused.value)
    assert "writing it again" not in capsys.readouterr().out


def test_a_larger_patch_of_a_named_set_scales_its_classes_with_the_area():
    ds = config.dataset("bacterial")
    assert config.with_overrides(ds, patch=ds.patch).max_patch_count == ds.max_patch_count
    assert config.with_overrides(ds, patch=3 * ds.patch).max_patch_count == 9 * ds.max_patch_count


def test_classification_head_trains_and_reports_argmax_and_expected(tiny):
    ds, model = tiny
    prepare.prepare(ds)
    summary = train.Trainer(ds, model, head="C", max_iter=20).train(resume=False)
    run = config.run_dir(ds, model, "C")
    assert run.name == "alexnet-lite-C" and summary["head"] == "C"
    m = evaluate.evaluate(ds, model, head="C")
    assert {"mae", "expected_mae", "expected_mre"} <= set(m)
    rows = list(csv.DictReader(open(run / "predictions.csv")))
    assert "expected" in rows[0]
    # argmax predictions are whole classes per patch; the expected value is not
    assert any(float(r["expected"]) != float(r["predicted"]) for r in rows)


def test_lmdb_of_another_patch_size_is_refused(tiny):
    ds, model = tiny
    prepare.prepare(ds)
    manifest_path = config.lmdb_dir(ds) / "train_lmdb" / lmdbio.MANIFEST
    manifest = json.loads(manifest_path.read_text())
    manifest_path.write_text(json.dumps(dict(manifest, stored_patch=60)))
    with pytest.raises(train.TrainError, match="holds 60 px patches but .* expects 40 px"):
        train.Trainer(ds, model).train()


def _train_in_subprocess(tmp_path, ds, model, max_iter: int, resume: bool):
    """A training process of its own (kills and aborts must not take pytest with them)."""
    (tmp_path / "plan.pkl").write_bytes(pickle.dumps((ds, model)))
    script = tmp_path / "train.py"
    script.write_text(
        "import pickle\n"
        "from pycount.training import trainer as train\n"
        f"ds, model = pickle.loads(open({str(tmp_path / 'plan.pkl')!r}, 'rb').read())\n"
        f"s = train.Trainer(ds, model, max_iter={max_iter}).train(resume={resume})\n"
        "print('iterations', s['iterations'], 'this session', s['iterations_this_session'])\n")
    return subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONPATH=str(config.ROOT)))


def test_a_restart_killed_early_never_resumes_the_old_run(tiny, tmp_path):
    """RESUME=0 removes the old run's snapshots and results first: killed before its own first
    snapshot, it leaves nothing that a later `make train` would resume or `make count` use."""
    ds, model = tiny
    prepare.prepare(ds)
    train.Trainer(ds, model).train(resume=False)
    evaluate.evaluate(ds, model)
    run = config.run_dir(ds, model)
    assert (run / "snapshots" / "latest.json").exists() and (run / "metrics.json").exists()
    slow = dataclasses.replace(model, solver=dataclasses.replace(
        model.solver, snapshot=10**6, test_interval=10**6))
    proc = _train_in_subprocess(tmp_path, ds, slow, 10**6, resume=False)
    log, latest = run / "train_log.csv", run / "snapshots" / "latest.json"
    deadline = time.time() + 300               # until the new run has logged two rows of its own
    while time.time() < deadline and (latest.exists() or not log.exists()
                                      or len(log.read_text().splitlines()) < 3):
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()[0].decode()[-2000:]
    proc.kill()
    proc.wait()
    for name in ("snapshots/latest.json", "model.caffemodel", "metrics.json", "predictions.csv",
                 "heatmaps", "train.json"):
        assert not (run / name).exists(), f"{name} of the old run survived RESUME=0"
    again = train.Trainer(ds, model, max_iter=20).train(resume=True)
    assert again["iterations_this_session"] == 20          # from scratch, not "resuming"


def test_eval_of_a_training_killed_outright_says_to_finish_it(tiny):
    """Killed with SIGKILL before its end (no train.json, no model.caffemodel yet, snapshots
    there), eval said the folder was no trained run and to train a model first."""
    ds, model = tiny
    prepare.prepare(ds)
    train.Trainer(ds, model, max_iter=20).train(resume=False)
    run = config.run_dir(ds, model)
    for name in ("train.json", "model.caffemodel"):
        (run / name).unlink()
    with pytest.raises(evaluate.RunError) as refused:
        evaluate.evaluate(ds, model)
    assert str(refused.value).endswith(
        f"the training in {run} stopped before it finished (killed outright: its last snapshot "
        f"is named in {run / 'snapshots' / 'latest.json'}); finish it first (make train resumes "
        f"it from that snapshot)"), str(refused.value)


def test_a_moved_run_folder_resumes(tiny, tmp_path, monkeypatch):
    """Run folders are relocatable: snapshots are named relative to the folder, and the
    solverstate's absolute weights path is pointed at the folder it is in now (#21.2)."""
    ds, model = tiny
    prepare.prepare(ds)
    train.Trainer(ds, model, max_iter=30).train(resume=False)
    old = config.run_dir(ds, model)
    monkeypatch.setenv("PYCOUNT_RUNS", str(tmp_path / "elsewhere"))
    new = config.run_dir(ds, model)
    shutil.copytree(old, new)
    shutil.rmtree(old.parent)
    proc = _train_in_subprocess(tmp_path, ds, model, 40, resume=True)
    out = proc.communicate(timeout=600)[0].decode()
    assert proc.returncode == 0, out[-3000:]
    assert "resuming from iteration 30" in out and "iterations 40 this session 10" in out
    assert not old.exists()


def test_a_resumed_training_reads_the_data_a_run_without_the_break_reads(tiny, monkeypatch,
                                                                        train_to):
    # Caffe restarts a restored solver's Data layers at the LMDB's first record; pycount reads
    # past the batches used before the break, so a run stopped at iteration 10 and resumed ends
    # with the weights of one that ran 14 iterations straight (alexnet-lite here: no dropout;
    # random mirroring off for this test, so that nothing random differs). One training image
    # (576 patches) in batches of 128: the layers wrap round mid-batch, and the batches repeat
    # every 9, so the 11 read before the break become 2 to read past.
    from pycount.nets import builders
    transform = builders._transform
    monkeypatch.setattr(builders, "_transform", lambda plan, train: {
        **transform(plan, train), "mirror": False})
    ds, model = tiny
    ds = dataclasses.replace(ds, train_ids=ds.train_ids[:2], n_val=1)
    model = dataclasses.replace(model, solver=dataclasses.replace(model.solver, batch=128))
    prepare.prepare(ds)
    assert lmdbio.read_manifest(config.lmdb_dir(ds) / "train_lmdb")["records"] == 576
    straight = train_to(ds, model, 14)
    resumed = train_to(ds, model, 14, stop=10)
    assert resumed.keys() == straight.keys()
    for name in straight:
        for a, b in zip(straight[name], resumed[name]):
            np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6, err_msg=name)

    # without reading past them (Caffe's own resume) the weights differ: the check can fail
    monkeypatch.setattr(train._Session, "_continue_data", lambda self: None)
    naive = train_to(ds, model, 14, stop=10)
    assert any(not np.allclose(n, s, rtol=1e-3, atol=1e-5)
               for name in straight for n, s in zip(naive[name], straight[name]))


def test_a_long_training_also_snapshots_by_the_clock(tiny, monkeypatch):
    ds, model = tiny
    prepare.prepare(ds)
    monkeypatch.setattr(config, "DISPLAY_INTERVAL", 5)
    monkeypatch.setattr(config, "SNAPSHOT_SECONDS", 0)       # every chunk of 5 is "too long ago"
    taken = []
    snapshot = train._Session.snapshot

    def spy(self):
        taken.append(self.solver.iter)
        snapshot(self)
    monkeypatch.setattr(train._Session, "snapshot", spy)
    train.Trainer(ds, model, max_iter=20).train(resume=False)
    assert taken == [5, 10, 15, 20]                  # the model's interval alone: only 20
    run = config.run_dir(ds, model)
    assert json.loads((run / "snapshots" / "latest.json").read_text())["iter"] == 20
    assert [p.name for p in (run / "snapshots").glob("*.caffemodel")] == ["snap_iter_20.caffemodel"]


def _resume_in_subprocess(tmp_path, ds, model, max_iter: int | None = None):
    """`make train` resuming, as its own process (a Caffe abort must not end pytest): (returncode,
    output)."""
    proc = _train_in_subprocess(tmp_path, ds, model, max_iter or "None", resume=True)
    out = proc.communicate(timeout=600)[0].decode()
    return proc.returncode, out


def _damage(snaps, what: str, other_run=None) -> None:
    latest = json.loads((snaps / "latest.json").read_text())
    weights, state = snaps / latest["caffemodel"], snaps / latest["solverstate"]
    if what == "caffemodel truncated":
        weights.write_bytes(weights.read_bytes()[:len(weights.read_bytes()) // 3])
    elif what == "caffemodel empty":
        weights.write_bytes(b"")
    elif what == "solverstate empty":
        state.write_bytes(b"")
    elif what == "latest.json garbage":
        (snaps / "latest.json").write_text("{garbage")
    elif what == "latest.json without a pair":
        (snaps / "latest.json").write_text("{}")
    elif what == "another head's snapshot":
        for f in (other_run / "snapshots").glob("snap_iter_*"):
            shutil.copy(f, snaps / f.name)


@pytest.mark.parametrize("what,needle", [
    ("caffemodel truncated", "is corrupt (not a complete caffemodel)"),
    ("caffemodel empty", "has no weights for layer"),
    ("solverstate empty", "is empty or incomplete (no solver history)"),
    ("latest.json garbage", "latest.json is corrupt or incomplete"),
    ("latest.json without a pair", "latest.json is corrupt or incomplete"),
    ("another head's snapshot", "written by another net"),
])
def test_a_damaged_snapshot_is_refused_before_caffe(tiny, tmp_path, what, needle):
    """Caffe aborted (exit 134) on a truncated snapshot caffemodel or an empty solverstate,
    resumed an empty caffemodel from random weights, and resumed another head's snapshot with
    its last layer random; a damaged latest.json gave a traceback."""
    ds, model = tiny
    prepare.prepare(ds)
    run = config.run_dir(ds, model)
    other = None
    if what == "another head's snapshot":
        train.Trainer(ds, model, head="C", max_iter=30).train(resume=False)
        other = config.run_dir(ds, model, "C")
    train.Trainer(ds, model, max_iter=30).train(resume=False)
    _damage(run / "snapshots", what, other)
    rc, out = _resume_in_subprocess(tmp_path, ds, model, 60)
    assert rc == 1 and "TrainError" in out and needle in out, out[-3000:]
    assert "Check failed" not in out and "resuming from" not in out


def _trained_30_and_evaluated(tiny):
    """(ds, model, run folder) of the tiny set trained 30 iterations, then evaluated."""
    ds, model = tiny
    prepare.prepare(ds)
    train.Trainer(ds, model, max_iter=30).train(resume=False)
    evaluate.evaluate(ds, model)
    return ds, model, config.run_dir(ds, model)


def test_a_finished_run_without_its_snapshot_is_not_silently_trained_again(tiny):
    ds, model, run = _trained_30_and_evaluated(tiny)
    shutil.rmtree(run / "snapshots")
    with pytest.raises(train.TrainError, match="holds a finished training but no snapshot"):
        train.Trainer(ds, model, max_iter=30).train(resume=True)
    assert (run / "model.caffemodel").exists() and (run / "metrics.json").exists()
    assert train.Trainer(ds, model, max_iter=30).train(resume=False)["iterations"] == 30


def test_fewer_iterations_than_trained_are_refused_and_more_drop_old_results(tiny):
    ds, model, run = _trained_30_and_evaluated(tiny)
    with pytest.raises(train.TrainError, match="has trained 30 iterations already, more than "
                                               "ITERS=20"):
        train.Trainer(ds, model, max_iter=20).train(resume=True)
    assert (run / "metrics.json").exists()                 # refused: nothing changed
    train.Trainer(ds, model, max_iter=40).train(resume=True)
    for name in ("metrics.json", "metrics.md", "predictions.csv", "heatmaps"):
        assert not (run / name).exists(), f"{name} of the 30-iteration model survived"


def test_a_run_resumed_at_its_end_before_any_validation_keeps_a_model(tiny, train_to):
    """Stopped at iteration 10 (snapshot, no validation yet) and resumed with ITERS=10: the run
    ended 'best at iteration -1' with no model.caffemodel; now it validates and keeps one."""
    ds, model = tiny
    prepare.prepare(ds)
    train_to(ds, model, 10, stop=10)
    run = config.run_dir(ds, model)
    info = json.loads((run / "train.json").read_text())
    assert info["iterations"] == 10 and info["best_iter"] == 10 and "interrupted" not in info
    assert (run / "model.caffemodel").exists()


def test_a_stop_after_the_steps_to_a_validation_is_validated_on_resume(tiny, monkeypatch,
                                                                       capsys):
    """A signal acts when the solver's steps return: stopped there at the last iteration, the
    run resumed 'finished' and kept older weights, iteration 60 never validated; now it is."""
    ds, model = tiny
    prepare.prepare(ds)
    step, keep, seen = train._Session.step, train._Session.validate_and_keep, []

    def stopping(self, k):
        step(self, k)
        if self.solver.iter == 60:
            raise KeyboardInterrupt          # after the steps, before their validation

    def spy(self):
        seen.append(self.solver.iter)
        return keep(self)
    monkeypatch.setattr(train._Session, "step", stopping)
    monkeypatch.setattr(train._Session, "validate_and_keep", spy)
    with pytest.raises(KeyboardInterrupt):
        train.Trainer(ds, model, max_iter=60).train(resume=False)
    assert seen == [30]
    monkeypatch.setattr(train._Session, "step", step)
    capsys.readouterr()
    done = train.Trainer(ds, model, max_iter=60).train(resume=True)
    assert seen == [30, 60] and done["iterations"] == 60
    assert "validated iteration 60, which the interruption skipped" in capsys.readouterr().out
    # a resume where the validation was not skipped validates nothing again
    train.Trainer(ds, model, max_iter=90).train(resume=True)
    assert seen == [30, 60, 90]


def test_a_run_stopped_before_its_first_validation_writes_strict_json(tiny, monkeypatch):
    """No validation yet: the best validation MAE is null in train.json and latest.json (it was
    written as Infinity, which JSON parsers other than Python's refuse), and the run resumes."""
    ds, model = tiny
    prepare.prepare(ds)
    step = train._Session.step

    def stopping(self, k):
        step(self, k)
        raise KeyboardInterrupt
    monkeypatch.setattr(train._Session, "step", stopping)
    with pytest.raises(KeyboardInterrupt):
        train.Trainer(ds, model, max_iter=40).train(resume=False)
    monkeypatch.setattr(train._Session, "step", step)
    run = config.run_dir(ds, model)

    def strict(text):
        return json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in the JSON"))
    info = strict((run / "train.json").read_text())
    latest = strict((run / "snapshots" / "latest.json").read_text())
    assert info["interrupted"] and info["iterations"] < model.solver.test_interval
    assert info["best_val_patch_mae"] is None and latest["best_val_mae"] is None
    done = train.Trainer(ds, model, max_iter=40).train(resume=True)
    assert done["iterations"] == 40 and done["best_val_patch_mae"] > 0


def test_an_lmdb_older_than_its_annotations_is_refused_until_prepared_again(tiny, capsys,
                                                                            monkeypatch):
    """make train read the LMDB of the old marks after an annotation was edited; now prepare's
    stamp of the folder tells, and prepare again rebuilds (content changed) or renews it."""
    import cv2
    from pycount.data import sources
    ds, model = tiny
    prepare.prepare(ds)
    root = prepare.dataset_root(ds)
    stamp = lmdbio.read_manifest(config.lmdb_dir(ds) / "train_lmdb")["source_stamp"]
    assert stamp["root"] == str(root.resolve()) and "001dots.png" in stamp["files"]
    (root / "notes.txt").write_text("a lab's notes: not an image or an annotation")
    assert sources.changes(stamp) is None
    dots = root / f"{ds.train_ids[0]}dots.png"
    bgr = cv2.imread(str(dots))
    bgr[5, 5] = (0, 0, 255)                            # one more cell marked
    cv2.imwrite(str(dots), bgr)
    with pytest.raises(train.TrainError, match=rf"{dots.name} changed\); run `make prepare "
                                               rf"DATASET=synthetic"):
        train.Trainer(ds, model, max_iter=5).train(resume=False)
    before = lmdbio.read_manifest(config.lmdb_dir(ds) / "train_lmdb")["fingerprint"]
    prepare.prepare(ds)                                # the content changed: rebuilt
    after = lmdbio.read_manifest(config.lmdb_dir(ds) / "train_lmdb")
    assert after["fingerprint"] != before
    assert train.Trainer(ds, model, max_iter=5).train(resume=False)["iterations"] == 5
    # a file only touched (a copy, a checkout): training reads the content again, finds it as
    # the LMDB was written from, renews the stamp and goes on (tests/test_own_data.py: the note)
    os.utime(dots, ns=(dots.stat().st_atime_ns, dots.stat().st_mtime_ns + 10**9))
    capsys.readouterr()
    hashed = []
    monkeypatch.setattr(lmdbio, "check_whole", lambda p, _real=lmdbio.check_whole:
                        (hashed.append(Path(p).name), _real(p))[1])
    assert train.Trainer(ds, model, max_iter=10).train()["iterations"] == 10
    assert sorted(hashed) == ["train_lmdb", "val_lmdb"]     # each once: not again on the re-read
    assert f"{dots.name} changed), but their pixels and marks are the ones" in \
        capsys.readouterr().out
    assert lmdbio.read_manifest(config.lmdb_dir(ds) / "train_lmdb")["fingerprint"] == \
        after["fingerprint"]
    assert sources.changes(lmdbio.read_manifest(config.lmdb_dir(ds) / "train_lmdb")
                           ["source_stamp"]) is None
    # an image removed
    (root / f"{ds.test_ids[-1]}cell.png").unlink()
    with pytest.raises(train.TrainError, match=f"{ds.test_ids[-1]}cell.png removed"):
        train.Trainer(ds, model, max_iter=15).train()


def test_a_stale_half_written_lmdb_goes_at_the_next_prepare(tiny):
    """A prepare killed while writing left its hidden .partial folder until the next write of
    that LMDB; the next prepare removes it, also when it reuses the LMDB."""
    ds, _ = tiny
    prepare.prepare(ds)
    dest = config.lmdb_dir(ds) / "train_lmdb"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    partial = dest.parent / f".{dest.name}.partial-{dead.pid}"
    partial.mkdir()
    (partial / "data.mdb").write_bytes(b"half")
    prepare.prepare(ds)
    assert not partial.exists()


def test_a_second_training_of_the_same_run_stops_at_once(tiny, tmp_path):
    ds, model = tiny
    prepare.prepare(ds)
    slow = dataclasses.replace(model, solver=dataclasses.replace(model.solver, max_iter=10**6))
    proc = _train_in_subprocess(tmp_path, ds, slow, 10**6, resume=False)
    run = config.run_dir(ds, model)
    deadline = time.time() + 300
    while time.time() < deadline and not (run / "train_log.csv").exists():
        time.sleep(0.2)
    time.sleep(1.0)
    try:
        with pytest.raises(train.TrainError, match="is being trained by another process"):
            train.Trainer(ds, model, max_iter=20).train(resume=True)
        assert proc.poll() is None and (run / "train_log.csv").exists()
    finally:
        proc.kill()
        proc.wait()
    assert train.Trainer(ds, model, max_iter=20).train(resume=False)["iterations"] == 20


@pytest.mark.parametrize("damage,needle", [
    ("deleted", "data.mdb is missing"),
    ("cut short", "is cut short"),
    ("invalid", "is not a readable database"),
    ("garbled", "is damaged: its bytes differ"),
])
def test_a_damaged_lmdb_is_named_before_caffe_opens_it(tiny, damage, needle):
    """Caffe aborted on a missing or invalid data.mdb, died of SIGBUS on a truncated one, and
    aborted (a glog CHECK, no channels in a Datum) on one overwritten inside, size unchanged."""
    ds, model = tiny
    prepare.prepare(ds)
    data = config.lmdb_dir(ds) / "train_lmdb" / "data.mdb"
    _damage_lmdb(data, damage)
    with pytest.raises(lmdbio.LmdbError, match=needle):
        train.Trainer(ds, model, max_iter=20)


def _damage_lmdb(data, how):
    raw = data.read_bytes()
    if how == "deleted":
        data.unlink()
    elif how == "cut short":
        data.write_bytes(raw[:len(raw) // 2])
    elif how == "invalid":
        data.write_bytes(raw[:4096])
    else:                       # 2,000 bytes overwritten every 4 KiB past the first pages
        b = bytearray(raw)
        for at in range(20000, len(b) - 2000, 4096):
            b[at:at + 2000] = b"\x00" * 2000
        assert len(b) == len(raw)
        data.write_bytes(bytes(b))


@pytest.mark.parametrize("damage", ["deleted", "cut short", "garbled"])
def test_prepare_writes_a_damaged_lmdb_again_instead_of_reusing_it(tiny, damage, capsys):
    """A current manifest beside a damaged data.mdb is not "up to date": the database is
    written again, and training then starts."""
    ds, model = tiny
    prepare.prepare(ds)
    data = config.lmdb_dir(ds) / "train_lmdb" / "data.mdb"
    _damage_lmdb(data, damage)
    capsys.readouterr()
    prepare.prepare(ds)
    out = capsys.readouterr().out
    assert "writing it again" in out
    lmdbio.check_whole(data.parent)
    assert train.Trainer(ds, model, max_iter=20).train(resume=False)["iterations"] == 20


def test_a_new_lmdb_format_writes_the_earlier_lmdbs_again(tiny, monkeypatch, capsys):
    """The fingerprint held the settings and the images, not how prepare cuts them: a change to
    the patches or targets left the LMDBs written before reused as current (helper-53).
    config.LMDB_FORMAT raised makes them out of date; at 1 the fingerprints are as before."""
    ds, _ = tiny
    first = prepare.prepare(ds)["train"]["fingerprint"]
    capsys.readouterr()
    assert prepare.prepare(ds)["train"]["fingerprint"] == first
    assert "up to date" in capsys.readouterr().out
    monkeypatch.setattr(config, "LMDB_FORMAT", 2)
    again = prepare.prepare(ds)
    assert again["train"]["fingerprint"] != first and "up to date" not in capsys.readouterr().out
    assert again["val"]["records"] > 0


def test_the_prepare_hint_repeats_the_settings(workdirs):
    ds = config.with_overrides(config.dataset("synthetic"), patch=48, stride=24)
    with pytest.raises(train.TrainError, match="make prepare DATASET=synthetic PATCH=48 STRIDE=24`"):
        train.Trainer(ds, config.model("alexnet-lite"))


@pytest.mark.parametrize("damage", ["header", "binary", "text seconds"])
def test_a_damaged_training_log_is_named_or_its_bad_rows_dropped(tiny, damage):
    ds, model = tiny
    prepare.prepare(ds)
    train.Trainer(ds, model, max_iter=30).train(resume=False)
    log = config.run_dir(ds, model) / "train_log.csv"
    text = log.read_text()
    if damage == "header":
        log.write_text(text.replace("iter,loss", "iteration,loss", 1))
    elif damage == "binary":
        log.write_bytes(text.encode() + b"\xff\xfe\x00garbage")
    else:
        log.write_text(text + "25,1.0,0.001,abc,\n")
    if damage == "text seconds":             # a row that does not parse is dropped, as a cut one
        assert train.Trainer(ds, model, max_iter=40).train(resume=True)["iterations"] == 40
        assert "abc" not in log.read_text()
        return
    with pytest.raises(train.TrainError, match="train_log.csv (is damaged|does not start with)"):
        train.Trainer(ds, model, max_iter=40).train(resume=True)


def test_eval_on_a_full_disk_is_one_message_and_leaves_the_metrics_before_it(tiny, monkeypatch):
    """A heatmap write failing with EFBIG (ulimit -f) or ENOSPC was a matplotlib traceback."""
    import errno
    ds, model, run = _trained_30_and_evaluated(tiny)
    before = (run / "metrics.json").read_text()

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(evaluate, "_save_heatmap", full)
    with pytest.raises(evaluate.RunError) as err:
        evaluate.evaluate(ds, model)
    assert f"cannot write the evaluation into {run}" in str(err.value)
    assert "No space left on device" in str(err.value) and "free space" in str(err.value)
    assert (run / "metrics.json").read_text() == before


def test_eval_of_a_read_only_run_folder_is_refused_before_counting(tiny, monkeypatch):
    ds, model, run = _trained_30_and_evaluated(tiny)
    from pycount.util import atomic

    def read_only(folder):
        if Path(folder) == run:
            raise PermissionError(13, "Permission denied", str(folder / ".write-test"))

    monkeypatch.setattr(atomic, "probe_writable", read_only)
    counted = []
    monkeypatch.setattr(evaluate, "_summarize", lambda *a: counted.append(1))
    with pytest.raises(evaluate.RunError, match="Permission denied.*make the run folder writable"):
        evaluate.evaluate(ds, model)
    assert not counted


def test_nan_weights_give_no_metrics_and_a_failed_count(tiny, tmp_path):
    """A caffemodel holding NaN: eval wrote `nan ± nan` with exit 0, count a row `nan` 'ok'."""
    import caffe
    from pycount import cli
    ds, model, run = _trained_30_and_evaluated(tiny)
    (run / "metrics.json").unlink()
    net = caffe.Net(str(run / "deploy.prototxt"), str(run / "model.caffemodel"), caffe.TEST)
    net.params["count"][1].data[...] = np.nan
    net.save(str(run / "model.caffemodel"))
    # as a training that ended on NaN weights writes them: train.json records this very file
    # (one damaged since is refused by its sha256 first: test_count)
    info = json.loads((run / "train.json").read_text())
    info["model_sha256"] = atomic.sha256_of(run / "model.caffemodel")
    (run / "train.json").write_text(json.dumps(info))
    with pytest.raises(evaluate.RunError, match="as NaN or infinite .*train it again"):
        evaluate.evaluate(ds, model)
    assert not (run / "metrics.json").exists()
    image = tmp_path / "one.png"
    cv2.imwrite(str(image), np.full((60, 60, 3), 128, np.uint8))
    assert cli.main(["count", str(image), "--run", str(run), "--out", str(tmp_path / "o")]) == 1
    row = next(csv.DictReader(open(tmp_path / "o" / "counts.csv")))
    assert row["status"] == "failed" and "not a number" in row["error"]


def test_a_file_size_limit_stops_training_with_a_message_not_a_caffe_abort(tiny, tmp_path):
    """Under `ulimit -f` (or a quota) Caffe aborted writing model.caffemodel or a snapshot
    (io.cpp: Check failed: proto.SerializeToOstream), and its temporary file stayed in the run
    for good; free disk space (what was checked) says nothing of either."""
    import resource
    ds, model = tiny
    prepare.prepare(ds)
    train.Trainer(ds, model, max_iter=30).train(resume=False)
    run = config.run_dir(ds, model)
    size = (run / "model.caffemodel").stat().st_size
    limit = size // 2                          # below the model (and a snapshot's caffemodel)
    stale = run / ".model.tmp-999999.caffemodel"
    stale.write_bytes(b"left by a process killed while writing")
    (tmp_path / "plan.pkl").write_bytes(pickle.dumps((ds, model)))
    script = tmp_path / "train.py"
    script.write_text(
        "import pickle, sys\n"
        "from pycount.errors import TrainError\n"
        "from pycount.training import trainer as train\n"
        f"ds, model = pickle.loads(open({str(tmp_path / 'plan.pkl')!r}, 'rb').read())\n"
        "try:\n"
        "    train.Trainer(ds, model, max_iter=60).train(resume=False)\n"
        "except TrainError as e:\n"
        "    print('TrainError:', e)\n"
        "    sys.exit(2)\n")
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True,
        env=dict(os.environ, PYTHONPATH=str(config.ROOT)),
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out[-2000:]
    assert "TrainError:" in out and "File too large" in out and "Check failed" not in out
    assert "ulimit -f" in out
    assert not list(run.glob(".*.tmp-*")) and not list(run.glob(".reserve-*"))
    assert not list((run / "snapshots").glob(".reserve-*"))


def test_a_run_trained_past_the_schedule_is_called_finished_not_told_to_drop_iters(tiny):
    """`make train` (no ITERS=) on a run trained further with ITERS= said 'leave ITERS= out'."""
    ds, model = tiny
    prepare.prepare(ds)
    train.Trainer(ds, model, max_iter=70).train(resume=False)
    with pytest.raises(train.TrainError, match=r"trained 70 iterations, past the model's "
                                               r"schedule of 60: it is finished; ITERS=71 or more "
                                               r"trains it further"):
        train.Trainer(ds, model).train()
    with pytest.raises(train.TrainError, match="more than ITERS=50; leave ITERS= out"):
        train.Trainer(ds, model, max_iter=50).train()
    # an own folder's pycount.toml iters (what `make train` passes without ITERS=) is its
    # schedule: no ITERS= to leave out
    toml = dataclasses.replace(ds, iters=50)
    with pytest.raises(train.TrainError, match=r"trained 70 iterations, past pycount.toml's "
                                               r"iters of 50: it is finished"):
        train.Trainer(toml, model, max_iter=50).train()


def test_a_refused_training_leaves_the_run_unlocked(tiny):
    """A resume refused after the run's lock was taken kept it held as long as the refusal's
    traceback lived: in one process (a notebook, the protocol's tests) the next training of the
    run was then refused as 'being trained'."""
    from pycount.util.runlock import in_training
    ds, model = tiny
    prepare.prepare(ds)
    train.Trainer(ds, model, max_iter=30).train(resume=False)
    run = config.run_dir(ds, model)
    with pytest.raises(train.TrainError, match="more than ITERS=20") as refused:
        train.Trainer(ds, model, max_iter=20).train()
    assert refused.value is not None and not in_training(run)
    assert train.Trainer(ds, model, max_iter=40).train()["iterations"] == 40


def test_an_evaluation_and_a_training_of_one_run_exclude_each_other(tiny):
    """make eval took no lock: a second evaluation (TEST_IMAGES=) ran beside the first and the
    last to end stayed, and a training begun during an evaluation left its metrics beside newer
    weights (helper-55). An evaluation holds <run>/.eval.lock: a second one and a training wait
    for it, and the run is left unlocked after each refusal."""
    from pycount.errors import RunError
    from pycount.evaluation import evaluate
    from pycount.util.runlock import EvalLock, in_evaluation, in_training
    ds, model = tiny
    prepare.prepare(ds)
    train.Trainer(ds, model, max_iter=30).train(resume=False)
    run = config.run_dir(ds, model)
    held = EvalLock(run)                     # an evaluation under way
    assert in_evaluation(run)
    with pytest.raises(train.TrainError, match=r"is being evaluated now \(a make eval holds "
                                               r".*\.eval\.lock\): training it would change"):
        train.Trainer(ds, model, max_iter=40).train()
    assert not in_training(run)
    with pytest.raises(RunError, match="is being evaluated now"):
        evaluate.evaluate(ds, model, heatmaps=0)
    held.release()
    assert evaluate.evaluate(ds, model, heatmaps=0)["n_images"] == len(ds.test_ids)
    assert not in_evaluation(run)
    assert train.Trainer(ds, model, max_iter=40).train()["iterations"] == 40


@pytest.mark.parametrize("second", ["at once", "during the snapshot"])
def test_a_second_stop_while_the_snapshot_is_written_does_not_cut_it_short(tiny, tmp_path,
                                                                           second):
    """Ctrl-C reaches a protocol's runs, and the protocol then sends each SIGTERM too: the
    second signal, outside sigterm_as_interrupt, killed the run while it wrote its snapshot."""
    ds, model = tiny
    prepare.prepare(ds)
    (tmp_path / "plan.pkl").write_bytes(pickle.dumps((ds, model)))
    script = tmp_path / "train_slow_snapshot.py"
    script.write_text(
        "import pickle, sys, time\n"
        "from pycount.training import trainer as train\n"
        "real = train._Session.snapshot\n"
        "def slow(self):\n"
        "    print('snapshot begins', flush=True)\n"
        "    time.sleep(2)\n"
        "    real(self)\n"
        "train._Session.snapshot = slow\n"
        f"ds, model = pickle.loads(open({str(tmp_path / 'plan.pkl')!r}, 'rb').read())\n"
        "try:\n"
        "    train.Trainer(ds, model, max_iter=10**6).train(resume=False)\n"
        "except KeyboardInterrupt:\n"
        "    print('stopped cleanly', flush=True)\n"
        "    sys.exit(130)\n")
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, PYTHONPATH=str(config.ROOT)),
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    run = config.run_dir(ds, model)
    log = run / "train_log.csv"
    deadline = time.time() + 300
    while time.time() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 3):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    if second == "at once":                     # the protocol's SIGTERM right behind Ctrl-C
        proc.send_signal(signal.SIGTERM)
    lines, stopping = [], second == "at once"
    for line in proc.stdout:                    # the interrupted snapshot has begun: stop again
        lines.append(line)
        stopping = stopping or "interrupted: writing a snapshot" in line
        if stopping and "snapshot begins" in line:
            if second != "at once":
                proc.send_signal(signal.SIGTERM)
            break
    out = "".join(lines) + proc.communicate(timeout=300)[0]
    assert proc.returncode == 130 and "stopped cleanly" in out, out[-2000:]
    latest = json.loads((run / "snapshots" / "latest.json").read_text())
    info = json.loads((run / "train.json").read_text())
    assert info["interrupted"] and info["iterations"] == latest["iter"] > 0
    assert (run / "snapshots" / latest["solverstate"]).exists()


def test_an_evaluation_stopped_halfway_leaves_the_previous_heatmaps_with_their_metrics(
        tiny, monkeypatch):
    """Heatmaps were drawn into heatmaps/ as the images were counted: one stopped halfway left
    new heatmaps beside the previous evaluation's metrics (another TTA or backend: other maps)."""
    ds, model, run = _trained_30_and_evaluated(tiny)
    before = {p.name: p.read_bytes() for p in (run / "heatmaps").iterdir()}
    metrics = (run / "metrics.json").read_text()
    assert before
    drawn = []
    real = evaluate._save_heatmap

    def stop_after_one(path, *args):
        real(path, *args)
        drawn.append(path)
        raise KeyboardInterrupt
    monkeypatch.setattr(evaluate, "_save_heatmap", stop_after_one)
    with pytest.raises(KeyboardInterrupt):
        evaluate.evaluate(ds, model)
    assert drawn and drawn[0].parent != run / "heatmaps"          # drawn aside, then dropped
    assert {p.name: p.read_bytes() for p in (run / "heatmaps").iterdir()} == before
    assert (run / "metrics.json").read_text() == metrics
    assert not list(run.glob(".heatmaps.tmp-*"))
    monkeypatch.setattr(evaluate, "_save_heatmap", real)
    evaluate.evaluate(ds, model)
    assert sorted(p.name for p in (run / "heatmaps").iterdir()) == sorted(before)
