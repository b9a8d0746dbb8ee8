"""Paper mode: training the head on cached trunk features equals the plain solver."""
import dataclasses
import os
import re

import numpy as np
import pytest

caffe = pytest.importorskip("caffe", reason="run `make setup` to build Caffe")
from caffe.proto import caffe_pb2  # noqa: E402
from google.protobuf import text_format  # noqa: E402

from pycount import config  # noqa: E402
from pycount.training import features
from pycount.data import lmdbio
from pycount.nets import builders as nets


@pytest.fixture
def paper_mode(tmp_path):
    """A ResNet-50 R net in paper mode on a 24-patch LMDB, with 'pretrained' weights saved."""
    rng = np.random.default_rng(0)
    recs = [(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8), int(rng.integers(0, 9)))
            for _ in range(24)]
    for part in ("train", "val"):
        lmdbio.write_lmdb(tmp_path / part, iter(recs), n_max=24, patch=40, seed=0,
                          manifest={"fingerprint": part})
    base = nets.default_plan("bacterial", "resnet50")
    model = dataclasses.replace(base.model, solver=dataclasses.replace(
        base.model.solver, batch=4, base_lr=1e-12, clip_gradients=0))   # raw-pixel features are ~1e4
    plan = dataclasses.replace(base, model=model, train_source=str(tmp_path / "train"),
                               val_source=str(tmp_path / "val"))
    files = nets.write_net_files(plan, tmp_path / "run", snapshot_prefix=str(tmp_path / "s"))
    caffe.set_mode_cpu()
    caffe.set_random_seed(0)                     # the same random trunk every run
    pre = caffe.Net(str(files["deploy"]), caffe.TEST)
    for name, layer in zip(pre._layer_names, pre.layers):
        if layer.type == "BatchNorm":            # plausible statistics, as a trained net has
            pre.params[name][0].data[...] = rng.normal(0, 0.1, pre.params[name][0].data.shape)
            pre.params[name][1].data[...] = 1
            pre.params[name][2].data[...] = 1
    weights = tmp_path / "pretrained.caffemodel"
    pre.save(str(weights))
    return plan, files, weights, tmp_path


def test_cached_features_train_the_head_exactly_like_the_plain_solver(paper_mode):
    plan, files, weights, tmp = paper_mode
    k = 5
    plain = caffe.get_solver(str(files["solver"]))
    plain.net.copy_from(str(weights))
    feats, labels = features.trunk_features(files["deploy"], weights, tmp / "train", plan.model,
                                            plan.dataset, tmp / "cache", batch=7)
    assert feats.shape == (24, 2048) and labels.tolist() == [lab for *_, lab in
                                                             lmdbio.read_lmdb(tmp / "train")]
    head_net = tmp / "head.prototxt"
    head_net.write_text(features.head_net_prototxt(files["train_val"], feats.shape[1],
                                                   plan.model.solver.batch))
    cached = caffe.get_solver(str(features.write_solver(files["solver"], head_net,
                                                        tmp / "head_solver.prototxt")))
    for i in (0, 1):                             # the same starting head in both
        cached.net.params["count"][i].data[...] = plain.net.params["count"][i].data
    start = plain.net.params["count"][0].data.copy()
    plain.step(k)
    for _ in range(k):
        features.feed(cached.net, feats, labels, cached.iter * plan.model.solver.batch)
        cached.step(1)
    assert not np.allclose(plain.net.params["count"][0].data, start)      # it did train
    for i in (0, 1):
        assert np.allclose(cached.net.params["count"][i].data, plain.net.params["count"][i].data,
                           rtol=1e-4, atol=1e-6)


def test_feature_cache_is_reused_and_keyed_by_weights(paper_mode):
    plan, files, weights, tmp = paper_mode
    args = (files["deploy"], weights, tmp / "train", plan.model, plan.dataset, tmp / "cache")
    first, _ = features.trunk_features(*args)
    files_before = sorted(p.name for p in (tmp / "cache").iterdir())
    again, _ = features.trunk_features(*args)
    assert sorted(p.name for p in (tmp / "cache").iterdir()) == files_before
    assert np.array_equal(first, again)
    weights.touch()                               # other weights (mtime) -> another cache entry
    features.trunk_features(*args)
    assert len(list((tmp / "cache").glob("features-*.npy"))) == 2


def test_a_short_training_caches_only_the_rows_it_reads(paper_mode):
    """ITERS= x batch rows of the LMDB, the same numbers as the whole cache's first rows; a
    longer training computes the whole, and a short one then reuses it."""
    plan, files, weights, tmp = paper_mode
    args = (files["deploy"], weights, tmp / "train", plan.model, plan.dataset, tmp / "cache")
    part, part_labels = features.trunk_features(*args, rows=10)
    assert part.shape == (10, 2048)
    whole, labels = features.trunk_features(*args, rows=30)        # more than the 24 records
    assert whole.shape == (24, 2048)
    assert np.allclose(part, whole[:10], rtol=1e-5, atol=1e-6)
    assert part_labels.tolist() == labels[:10].tolist()
    names = sorted(p.name for p in (tmp / "cache").glob("features-*.npy"))
    assert len(names) == 2
    again, _ = features.trunk_features(*args, rows=12)             # the whole one serves
    assert again.shape == (24, 2048)
    assert sorted(p.name for p in (tmp / "cache").glob("features-*.npy")) == names
    small, _ = features.trunk_features(*args, rows=8)              # the 10-row one serves
    assert small.shape == (10, 2048)


def test_trainer_in_paper_mode_trains_the_head_on_cached_features(tiny, paper_mode, monkeypatch):
    import hashlib
    from pycount.evaluation import evaluate
    from pycount.data import prepare
    from pycount.training import trainer as train
    from pycount.nets import weights as weights_mod
    ds, _ = tiny
    ds = dataclasses.replace(ds, train_ids=ds.train_ids[:4], n_val=1, rot_step=0)  # 432 patches
    _, _, pretrained, tmp = paper_mode
    prepare.prepare(ds)
    model = dataclasses.replace(config.model("resnet50"), solver=dataclasses.replace(
        config.model("resnet50").solver, batch=8, base_lr=1e-12, clip_gradients=0, max_iter=20,
        test_interval=10, snapshot=2))            # a log row every 2 iterations
    data = pretrained.read_bytes()
    monkeypatch.setattr(weights_mod, "WEIGHTS_DIR", tmp)
    monkeypatch.setattr(weights_mod, "RELEASED", {model.weights: (
        len(data), hashlib.sha256(data).hexdigest())})
    (tmp / model.weights).write_bytes(data)
    starts, real_feed = [], features.feed
    monkeypatch.setattr(features, "feed", lambda net, f, lab, start: (
        starts.append(start), real_feed(net, f, lab, start)))
    summary = train.Trainer(ds, model).train(resume=False)
    assert summary["solver"] == "head on cached trunk features" and summary["iterations"] == 20
    # the batches of the plain solver: batch 0 for the curve's starting point, then iteration k
    # reads batch k + 1 (it read batch 0 again at iteration 0: helper-51)
    assert starts == [0] + [8 * (k + 1) for k in range(20)], starts
    run = config.run_dir(ds, model)
    # (the training loss follows each batch's counts, so the held-out patches' MAE says it)
    vals = [float(r.split(",")[4]) for r in (run / "train_log.csv").read_text().splitlines()[1:]
            if r.split(",")[4]]
    assert len(vals) == 3 and min(vals[1:]) < 0.5 * vals[0], f"the ResNet head did not learn: {vals}"
    assert list((run.parent / ".feature-cache").glob("features-*.npy"))
    # the saved model is the whole net: the pretrained trunk and the trained head
    full = caffe.Net(str(run / "deploy.prototxt"), caffe.TEST, weights=str(run / "model.caffemodel"))
    pre = caffe.Net(str(run / "deploy.prototxt"), caffe.TEST, weights=str(pretrained))
    assert np.array_equal(full.params["res5c_branch2c"][0].data, pre.params["res5c_branch2c"][0].data)
    assert not np.array_equal(full.params["count"][0].data, pre.params["count"][0].data)
    assert evaluate.evaluate(ds, model)["n_images"] == 4


def test_a_run_from_stand_in_weights_says_so(tiny, paper_mode, monkeypatch):
    """Weights listed in the folder's stand-in.json (a dry run of make audit-gpu) train, and the
    run's train.json marks them, so that the audit never takes the run for a result."""
    import hashlib
    import json
    from pycount.data import prepare
    from pycount.training import trainer as train
    from pycount.nets import weights as weights_mod
    ds, _ = tiny
    ds = dataclasses.replace(ds, train_ids=ds.train_ids[:4], n_val=1, rot_step=0)
    _, _, pretrained, tmp = paper_mode
    prepare.prepare(ds)
    model = dataclasses.replace(config.model("resnet50"), solver=dataclasses.replace(
        config.model("resnet50").solver, batch=8, max_iter=2, test_interval=2, snapshot=2))
    data = pretrained.read_bytes()
    folder = tmp / "stand-ins"
    folder.mkdir()
    (folder / model.weights).write_bytes(data)
    (folder / weights_mod.STAND_IN_LIST).write_text(json.dumps(
        {model.weights: [len(data), hashlib.sha256(data).hexdigest()]}))
    monkeypatch.setattr(weights_mod, "WEIGHTS_DIR", folder)
    summary = train.Trainer(ds, model).train(resume=False)
    assert summary["weights_stand_in"] is True and summary["iterations"] == 2
    info = json.loads((config.run_dir(ds, model) / "train.json").read_text())
    assert info["weights_stand_in"] is True
    # the released file in its place (here: the same bytes, listed as the release) and the run
    # resumed: it was begun on random parameters, so it stays a dry run (the mark was dropped)
    (folder / weights_mod.STAND_IN_LIST).unlink()
    monkeypatch.setitem(weights_mod.RELEASED, model.weights,
                        (len(data), hashlib.sha256(data).hexdigest()))
    longer = dataclasses.replace(model, solver=dataclasses.replace(model.solver, max_iter=4))
    resumed = train.Trainer(ds, longer, max_iter=4).train(resume=True)
    assert resumed["iterations"] == 4 and resumed["weights_stand_in"] is True


def test_the_cache_key_changes_with_the_weights_the_lmdb_and_the_net(tmp_path):
    weights, deploy, lmdb = tmp_path / "w.caffemodel", tmp_path / "deploy.prototxt", tmp_path / "l"
    weights.write_bytes(b"weights")
    deploy.write_text('name: "net"\n')
    lmdb.mkdir()
    lmdbio.write_manifest(lmdb, {"fingerprint": "abc", "records": 24})
    key = features.cache_key(weights, lmdb, deploy)
    assert len(key) == 20 and features.cache_key(weights, lmdb, deploy) == key
    deploy.write_text('name: "another net"\n')
    assert features.cache_key(weights, lmdb, deploy) != key
    deploy.write_text('name: "net"\n')
    lmdbio.write_manifest(lmdb, {"fingerprint": "abd", "records": 24})
    assert features.cache_key(weights, lmdb, deploy) != key
    lmdbio.write_manifest(lmdb, {"fingerprint": "abc", "records": 24})
    st = weights.stat()
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns + 1))   # the same size, written again
    assert features.cache_key(weights, lmdb, deploy) != key


def test_the_smallest_whole_cache_that_holds_the_rows_serves(tmp_path):
    """A cache of N rows is features-KEY-N.npy with labels-KEY-N.npy (no -N: every record); one
    without its labels (cut short by a kill) or a stray file does not serve."""
    key = "k" * 20

    def cache(tail, rows, labels=True):
        np.save(tmp_path / f"features-{key}{tail}.npy", np.full((rows, 2), rows, np.float32))
        if labels:
            np.save(tmp_path / f"labels-{key}{tail}.npy", np.arange(rows, dtype=np.float32))
    cache("", 24)
    cache("-10", 10)
    cache("-12", 12, labels=False)
    (tmp_path / f"features-{key}.old.npy").write_bytes(b"stray")
    for rows, held in ((8, 10), (10, 10), (11, 24), (24, 24), (99, 24)):   # no -N: all there is
        feats, labels = features._cached(tmp_path, key, rows)
        assert feats.shape == (held, 2) and (feats == held).all() and len(labels) == held
    assert features._cached(tmp_path, "j" * 20, 1) is None


def test_a_train_val_without_a_head_is_named(tmp_path):
    net = tmp_path / "train_val.prototxt"
    net.write_text('name: "trunk"\nlayer { name: "fc6" type: "InnerProduct" bottom: "pool5" '
                   'top: "fc6" }\nlayer { name: "count" type: "InnerProduct" bottom: "fc6" '
                   'top: "count" }\n')
    assert features.head_bottom(net) == "fc6"
    net.write_text(net.read_text().replace('name: "count"', 'name: "fc7"'))
    with pytest.raises(ValueError, match=re.escape(f"{net}: no head layer named count or score")):
        features.head_bottom(net)


def test_the_head_solver_trains_the_head_net_and_never_tests(tmp_path):
    solver = tmp_path / "solver.prototxt"
    solver.write_text('net: "/run/train_val.prototxt"\nbase_lr: 0.01\nmax_iter: 60\ntest_iter: 1\n'
                      'test_interval: 61\ntest_initialization: false\n')
    out = features.write_solver(solver, tmp_path / "head.prototxt",
                                tmp_path / "head_solver.prototxt")
    sp = text_format.Merge(out.read_text(), caffe_pb2.SolverParameter())
    assert sp.net == str(tmp_path / "head.prototxt")
    assert (sp.base_lr, sp.max_iter) == (pytest.approx(0.01), 60)
    assert not (sp.test_iter or sp.HasField("test_interval")
                or sp.HasField("test_initialization"))


def test_a_trunk_pass_that_fails_leaves_no_cache_behind(paper_mode, monkeypatch):
    plan, files, weights, tmp = paper_mode

    def failing(*args):
        raise MemoryError("out of memory")
    monkeypatch.setattr(features.nets, "preprocess", failing)
    with pytest.raises(MemoryError):
        features.trunk_features(files["deploy"], weights, tmp / "train", plan.model,
                                plan.dataset, tmp / "cache")
    assert list((tmp / "cache").iterdir()) == []
