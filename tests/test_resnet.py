"""The paper's ResNets: He et al.'s structure and names, loading ImageNet weights by name, the
frozen trunk of the paper, and the checks of the weight files. Small inputs (40 px) keep it fast;
the "pretrained" caffemodel is one the test makes (the released files are not downloadable)."""
import dataclasses
import hashlib
import json
import os

import numpy as np
import pytest

caffe = pytest.importorskip("caffe", reason="run `make setup` to build Caffe")
from caffe.proto import caffe_pb2  # noqa: E402
from google.protobuf import text_format  # noqa: E402

from bench.audit_dry_run import randomize  # noqa: E402
from pycount import config  # noqa: E402
from pycount.data import lmdbio
from pycount.nets import builders as nets
from pycount.nets import weights

# depth -> (convolutions incl. the 4 projection shortcuts, a name only that depth has)
STRUCTURE = {50: (53, "res4f_branch2c"), 101: (104, "res4b22_branch2c"),
             152: (155, "res4b35_branch2c")}


def _net(text, tmp_path, phase=None, name="net.prototxt"):
    path = tmp_path / name
    path.write_text(text)
    return caffe.Net(str(path), phase if phase is not None else caffe.TEST)


def _proto(text):
    return text_format.Parse(text, caffe_pb2.NetParameter())


@pytest.mark.parametrize("depth", sorted(STRUCTURE))
def test_deploy_nets_have_hes_structure_and_the_head_shapes(depth, tmp_path):
    caffe.set_mode_cpu()
    n_conv, deep_name = STRUCTURE[depth]
    for head in ("R", "C"):
        plan = nets.default_plan("bacterial", f"resnet{depth}", head)
        net = _net(nets.net_prototxt(plan, "deploy"), tmp_path)
        names = list(net._layer_names)
        convs = [nm for nm, layer in zip(names, net.layers) if layer.type == "Convolution"]
        assert len(convs) == n_conv
        assert sum(nm.endswith("_branch1") for nm in convs) == 4
        assert {deep_name, "conv1", "bn_conv1", "scale_conv1", "res2a_branch1", "bn2a_branch2a",
                "scale5c_branch2c", "res3a_relu", "pool5"} <= set(names)
        assert "fc1000" not in names
        # stride 2 on branch1 and branch2a of res3a (the released layout), global pool5
        assert net.blobs["res3a"].data.shape[2:] == (5, 5) and net.blobs["pool5"].data.shape \
            == (1, 2048, 1, 1)
        assert (net.params["conv1"][0].data.shape, len(net.params["conv1"])) == \
            ((64, 3, 7, 7), 2 if depth == 50 else 1)    # the released ResNet-50 has a conv1 bias
        net.blobs["data"].reshape(2, 3, 40, 40)
        net.reshape()
        net.blobs["data"].data[...] = np.random.default_rng(0).normal(size=(2, 3, 40, 40))
        out = net.forward()
        if head == "R":
            assert out["count"].shape == (2, 1)
        else:
            assert out["prob"].shape == (2, config.n_classes(plan.dataset))


@pytest.mark.parametrize("finetune", nets.FINETUNE)
def test_learning_rates_and_batchnorm_statistics_per_finetune_mode(finetune):
    model = dataclasses.replace(config.model("resnet50"), finetune=finetune)
    plan = dataclasses.replace(nets.default_plan("bacterial", "resnet50"), model=model)
    assert nets.resnet_training(model) in nets.net_prototxt(plan, "deploy").splitlines()[0]
    for phase in ("train_val", "deploy"):
        layers = _proto(nets.net_prototxt(plan, phase)).layer
        bns = [layer for layer in layers if layer.type == "BatchNorm"]
        assert len(bns) == 53 and all([p.lr_mult for p in bn.param] == [0] * 3 for bn in bns)
        global_stats = phase == "deploy" or finetune != "scratch"
        assert all(bn.batch_norm_param.HasField("use_global_stats") == global_stats and
                   bn.batch_norm_param.use_global_stats == global_stats for bn in bns)
        trunk = [layer for layer in layers if layer.type in ("Convolution", "Scale")]
        want = 0 if finetune == "head" else 1
        assert {p.lr_mult for layer in trunk for p in layer.param[:1]} == {want}
        assert [p.lr_mult for p in layers[-1 if phase == "deploy" else -2].param] == [1, 2]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A ResNet-50 as released (fc1000 on pool5) with known random parameters and plausible
    BatchNorm statistics, saved as a caffemodel; returns (path, {layer: [arrays]})."""
    caffe.set_mode_cpu()
    L = caffe.layers
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 3, 40, 40]))
    top, fc = nets._resnet_trunk(n, n.data, nets.default_plan("bacterial", "resnet50"), False)
    n.fc1000 = fc(top, 1000)
    n.prob = L.Softmax(n.fc1000)
    tmp = tmp_path_factory.mktemp("pretrained")
    net = _net(str(n.to_proto()), tmp, name="imagenet.prototxt")
    randomize(net, np.random.default_rng(1))
    path = tmp / "ResNet-50-test.caffemodel"
    net.save(str(path))
    return path, {name: [b.data.copy() for b in blobs] for name, blobs in net.params.items()}


@pytest.fixture(scope="module")
def lmdbs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lmdb")
    rng = np.random.default_rng(0)
    recs = [(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8), i % 5) for i in range(8)]
    for part in ("train", "val"):
        lmdbio.write_lmdb(tmp / part, iter(recs), n_max=8, patch=40, seed=0, manifest={})
    return tmp


def _solver(lmdbs, tmp_path, finetune):
    base = nets.default_plan("bacterial", "resnet50")
    model = dataclasses.replace(base.model, finetune=finetune,
                                solver=dataclasses.replace(base.model.solver, batch=4))
    plan = dataclasses.replace(base, model=model, train_source=str(lmdbs / "train"),
                               val_source=str(lmdbs / "val"))
    files = nets.write_net_files(plan, tmp_path / "run", snapshot_prefix=str(tmp_path / "s"))
    caffe.set_mode_cpu()
    caffe.set_random_seed(0)
    return caffe.get_solver(str(files["solver"]))


def _params(net):
    return {name: [b.data.copy() for b in blobs] for name, blobs in net.params.items()}


def test_pretrained_trunk_is_copied_by_name_and_the_head_stays_initialised(
        pretrained, lmdbs, tmp_path):
    path, source = pretrained
    solver = _solver(lmdbs, tmp_path, "head")
    before = _params(solver.net)
    report = weights.init_from_pretrained(solver.net, path)
    assert report["initialised"] == ["count"] and report["unused"] == ["fc1000"]
    assert len(report["copied"]) == 3 * 53 and "fc1000" not in solver.net.params
    after = _params(solver.net)
    for name in report["copied"]:
        assert all(np.array_equal(a, s) for a, s in zip(after[name], source[name])), name
    assert all(np.array_equal(a, b) for a, b in zip(after["count"], before["count"]))
    assert np.abs(after["count"][0]).sum() > 0           # msra-filled, not copied, not zero
    # a deploy net sharing the solver's weights (as pycount.train validates) sees them all,
    # BatchNorm statistics included
    deploy = _net((tmp_path / "run" / "deploy.prototxt").read_text(), tmp_path)
    deploy.share_with(solver.net)
    assert np.array_equal(deploy.params["bn4f_branch2b"][1].data, source["bn4f_branch2b"][1])


def test_a_caffemodel_of_another_net_is_refused(tmp_path):
    caffe.set_mode_cpu()
    other = _net('layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 '
                 'dim: 2 } } } layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" '
                 'inner_product_param { num_output: 1 } }', tmp_path, name="other.prototxt")
    other.save(str(tmp_path / "other.caffemodel"))
    with pytest.raises(weights.WeightsError, match="no layer"):
        weights.init_from_pretrained(_net(
            nets.net_prototxt(nets.default_plan("bacterial", "resnet50"), "deploy"), tmp_path),
            tmp_path / "other.caffemodel")


@pytest.mark.parametrize("finetune", ["head", "all"])
def test_fine_tuning_keeps_what_is_frozen(finetune, pretrained, lmdbs, tmp_path):
    solver = _solver(lmdbs, tmp_path, finetune)
    weights.init_from_pretrained(solver.net, pretrained[0])
    before = _params(solver.net)
    solver.step(3)
    assert np.isfinite(solver.net.blobs["loss"].data).all()
    after = _params(solver.net)
    kinds = dict(zip(solver.net._layer_names, (layer.type for layer in solver.net.layers)))
    same = {name: all(np.array_equal(a, b) for a, b in zip(after[name], before[name]))
            for name in after}
    assert not same["count"]
    assert all(same[name] for name in same if kinds[name] == "BatchNorm")
    trunk = [name for name in same if kinds[name] in ("Convolution", "Scale")]
    assert len(trunk) == 2 * 53
    if finetune == "head":
        assert all(same[name] for name in trunk)
    else:
        assert not any(same[name] for name in trunk if kinds[name] == "Convolution")


@pytest.fixture
def tiny_release(tmp_path, monkeypatch):
    """weights/ in a temporary folder, with a table that knows one tiny file."""
    content = b"a tiny stand-in for a caffemodel"
    monkeypatch.setattr(weights, "WEIGHTS_DIR", tmp_path)
    monkeypatch.setattr(weights, "RELEASED", {
        "tiny.caffemodel": (len(content), hashlib.sha256(content).hexdigest())})
    model = dataclasses.replace(config.model("resnet50"), weights="tiny.caffemodel")
    return model, tmp_path / "tiny.caffemodel", content


def test_resolve_explains_a_missing_file(tiny_release):
    model, _, _ = tiny_release
    with pytest.raises(weights.WeightsError) as e:
        weights.resolve(model)
    assert all(s in str(e.value) for s in ("tiny.caffemodel", "weights/README.md", "SCRATCH=1"))


def test_resolve_refuses_a_file_with_another_hash(tiny_release):
    model, path, content = tiny_release
    path.write_bytes(content.upper())
    with pytest.raises(weights.WeightsError) as e:
        weights.resolve(model)
    assert weights.RELEASED["tiny.caffemodel"][1] in str(e.value)
    assert weights._sha256(path) in str(e.value)


def test_a_listed_stand_in_is_taken_for_a_dry_run_and_named(tiny_release, capsys):
    """A stand-in (random parameters, bench/audit_dry_run.py) listed in the folder's
    stand-in.json is accepted by its own size and sha256, with a note; an unlisted or altered
    file is still refused, and a damaged list is named."""
    model, path, content = tiny_release
    fake = b"random parameters of the same net"
    path.write_bytes(fake)
    with pytest.raises(weights.WeightsError):
        weights.resolve(model)
    listed = path.parent / weights.STAND_IN_LIST
    listed.write_text(json.dumps({"tiny.caffemodel": [len(fake), hashlib.sha256(fake).hexdigest()]}))
    assert weights.resolve(model) == path and weights.is_stand_in(path)
    assert weights.resolve(model) == path                   # named once, not at every look
    assert capsys.readouterr().err.count("is a stand-in") == 1
    path.write_bytes(fake.upper())
    with pytest.raises(weights.WeightsError, match="not the released"):
        weights.resolve(model)
    listed.write_text("{not json")
    with pytest.raises(weights.WeightsError, match="stand-in.json is damaged"):
        weights.resolve(model)


def test_the_audit_shows_a_stand_in_run_as_a_dry_run_and_never_records_it(workdirs, tmp_path):
    from pycount.reporting import audit
    run = config.runs_dir() / "bacterial" / "resnet50"
    run.mkdir(parents=True)
    (run / "train.json").write_text(json.dumps({"dataset": "bacterial", "model": "resnet50",
                                                "head": "R", "iterations": 2, "best_iter": 2,
                                                "best_val_patch_mae": 3.0, "seconds": 9.0,
                                                "weights_stand_in": True}))
    (run / "metrics.json").write_text(json.dumps({
        "dataset": "bacterial", "model": "resnet50", "head": "R", "mae": 50.0, "mae_std": 9.0,
        "mre": 0.3, "baseline_mae": 55.9, "n_images": 100}))
    record = tmp_path / "record.json"
    report = audit.build(config.runs_dir(), record_path=record)
    cell = next(r for t in report["tables"] for r in t["rows"]
                if r["model"] == "resnet50" and r["head"] == "R")["cells"]["bacterial"]
    assert cell["ours"] is None and cell["note"].startswith(
        "a dry run: bacterial/resnet50/train.json was trained from stand-in weights")
    assert "bacterial/resnet50" not in audit.record(report, record)


def test_a_cell_whose_weights_are_a_stand_in_still_needs_the_released_ones(tiny_release,
                                                                         workdirs, monkeypatch):
    """The audit of a dry run's folder: a cell not trained is "missing: needs ImageNet weights"
    when weights/ holds only a stand-in (it trains no result), while audit-gpu runs it."""
    from pycount.reporting import audit
    model, path, _ = tiny_release
    monkeypatch.setitem(config.MODELS, "resnet50", model)
    fake = b"random parameters of the same net"
    path.write_bytes(fake)
    (path.parent / weights.STAND_IN_LIST).write_text(json.dumps(
        {"tiny.caffemodel": [len(fake), hashlib.sha256(fake).hexdigest()]}))
    needs, why = audit._needs("resnet50", "synthetic", config.runs_dir() / "x")
    assert needs == "weights" and "is a stand-in" in why
    assert audit.why_not("synthetic", "resnet50") is None        # a dry run's sweep trains it


def test_resolve_accepts_the_release_and_remembers_the_check(tiny_release, monkeypatch):
    model, path, content = tiny_release
    hashed = []
    real = weights._sha256
    monkeypatch.setattr(weights, "_sha256", lambda p: hashed.append(p) or real(p))
    path.write_bytes(content)
    assert weights.resolve(model) == path and weights.resolve(model) == path
    assert len(hashed) == 1 and (stamp := path.with_name("tiny.caffemodel.sha256-ok")).exists()
    path.write_bytes(content[::-1])             # same size, another mtime: checked again
    os.utime(path, ns=(path.stat().st_atime_ns, json.loads(stamp.read_text())["mtime_ns"] + 10**9))
    with pytest.raises(weights.WeightsError):
        weights.resolve(model)
    assert len(hashed) == 2


def test_a_model_without_pretrained_weights_has_none_to_resolve(tiny_release):
    model, _, _ = tiny_release
    with pytest.raises(weights.WeightsError, match="resnet50 starts from no pretrained weights"):
        weights.resolve(dataclasses.replace(model, weights=""))


def test_a_stand_in_listed_under_a_name_of_its_own_is_taken(tiny_release):
    model, path, _ = tiny_release
    fake = b"random parameters of a net with no release"
    other = path.with_name("other.caffemodel")
    other.write_bytes(fake)
    (path.parent / weights.STAND_IN_LIST).write_text(json.dumps(
        {"other.caffemodel": [len(fake), hashlib.sha256(fake).hexdigest()]}))
    assert weights.resolve(dataclasses.replace(model, weights="other.caffemodel")) == other
    assert weights.is_stand_in(other)
    # the same name outside the weights folder is no stand-in
    assert not weights.is_stand_in(path.parent / "copy" / "other.caffemodel")


def test_a_checked_stand_in_is_not_taken_for_the_release_once_unlisted(tiny_release):
    """The stamp of a check records the sha256 it was checked against: a stand-in accepted for
    a dry run is hashed again, and refused, once stand-in.json no longer lists it."""
    model, path, _ = tiny_release
    fake = b"random parameters of the same net"
    path.write_bytes(fake)
    listed = path.parent / weights.STAND_IN_LIST
    listed.write_text(json.dumps({"tiny.caffemodel": [len(fake),
                                                      hashlib.sha256(fake).hexdigest()]}))
    assert weights.resolve(model) == path
    assert path.with_name("tiny.caffemodel.sha256-ok").exists()
    listed.unlink()
    with pytest.raises(weights.WeightsError, match="not the released tiny.caffemodel"):
        weights.resolve(model)


@pytest.mark.parametrize("text", ["{not json", "[]", '{"tiny.caffemodel": 5}',
                                  '{"tiny.caffemodel": ["many", "0"]}'])
def test_a_damaged_stand_in_list_is_named_with_the_fix(tiny_release, text):
    model, path, content = tiny_release
    path.write_bytes(content)
    (path.parent / weights.STAND_IN_LIST).write_text(text)
    with pytest.raises(weights.WeightsError, match="stand-in.json is damaged: delete it"):
        weights.resolve(model)


def _edited(path, tmp_path, edit, name):
    """A copy of the caffemodel at `path` with `edit(NetParameter)` applied."""
    msg = caffe_pb2.NetParameter()
    msg.ParseFromString(path.read_bytes())
    edit(msg)
    out = tmp_path / name
    out.write_bytes(msg.SerializeToString())
    return out


def _drop_stage4(msg):
    keep = [layer for layer in msg.layer if not any(
        layer.name.startswith(p) for p in ("res4", "bn4", "scale4"))]
    del msg.layer[:]
    msg.layer.extend(keep)


def _conv1_other_shape(msg):
    conv1 = next(layer for layer in msg.layer if layer.name == "conv1")
    conv1.blobs[0].shape.dim[:] = [64, 3, 49, 1]            # as many numbers, another shape


def _legacy_dims(msg):
    """conv1's weights in the num/channels/height/width fields of files before N-d blobs."""
    blob = next(layer for layer in msg.layer if layer.name == "conv1").blobs[0]
    n, c, h, w = blob.shape.dim
    blob.ClearField("shape")
    blob.num, blob.channels, blob.height, blob.width = n, c, h, w


@pytest.mark.parametrize("edit, needle", [
    (_drop_stage4, r"layer\(s\) of the net's trunk are not in this file \(bn4a_branch1|"
                   r"layer\(s\) of the net's trunk are not in this file \(res4a_branch1"),
    (_conv1_other_shape, "layer conv1 holds blobs of 64x3x49x1, 64 where the net has "
                         "64x3x7x7, 64"),
    (None, "not a readable caffemodel")])
def test_a_caffemodel_that_does_not_fit_the_net_is_refused_before_caffe_reads_it(
        pretrained, tmp_path, edit, needle):
    """Caffe aborted the process on a blob of another shape (net.cpp: Cannot copy param 0
    weights from layer 'conv1'; shape mismatch), and a file lacking trunk layers left them
    random (BatchNorm statistics included: the loss NaN at once); a stand-in skips the sha256."""
    caffe.set_mode_cpu()
    path, _ = pretrained
    if edit is None:
        bad = tmp_path / "cut.caffemodel"
        bad.write_bytes(path.read_bytes()[:5000])
    else:
        bad = _edited(path, tmp_path, edit, "bad.caffemodel")
    net = _net(nets.net_prototxt(nets.default_plan("bacterial", "resnet50"), "deploy"), tmp_path)
    with pytest.raises(weights.WeightsError, match=needle):
        weights.init_from_pretrained(net, bad)


def _conv1_without_bias(msg):
    del next(layer for layer in msg.layer if layer.name == "conv1").blobs[1]


def test_a_layer_with_a_blob_fewer_than_the_net_is_refused(pretrained, tmp_path):
    """Caffe aborts the process on a layer with another number of blobs (net.cpp: Incompatible
    number of blobs); the check names it first."""
    caffe.set_mode_cpu()
    bad = _edited(pretrained[0], tmp_path, _conv1_without_bias, "bad.caffemodel")
    net = _net(nets.net_prototxt(nets.default_plan("bacterial", "resnet50"), "deploy"), tmp_path)
    with pytest.raises(weights.WeightsError, match="layer conv1 holds blobs of 64x3x7x7 where the "
                                                   "net has 64x3x7x7, 64"):
        weights.check_fits(net, bad)


@pytest.mark.parametrize("kind", ["prototxt", "name not utf-8"])
def test_a_file_that_is_no_caffemodel_is_named_unreadable(pretrained, tmp_path, kind):
    """A prototxt put where the caffemodel goes (its text reads as protobuf wire types that do
    not exist), or a layer name that is no text: unreadable, not "a file of another net"."""
    caffe.set_mode_cpu()
    text = nets.net_prototxt(nets.default_plan("bacterial", "resnet50"), "deploy")
    bad = tmp_path / "ResNet-50-model.caffemodel"
    if kind == "prototxt":
        bad.write_text(text)
    else:
        data = pretrained[0].read_bytes()
        assert b"\n\x05conv1" in data
        bad.write_bytes(data.replace(b"\n\x05conv1", b"\n\x05\xffonv1", 1))
    with pytest.raises(weights.WeightsError, match="not a readable caffemodel"):
        weights.check_fits(_net(text, tmp_path), bad)


def _fixed_width_fields(msg):
    """What a caffemodel Caffe saved from a training net holds besides: a loss layer's
    loss_weight (a fixed32 field of the layer), and here a fixed64 field in a blob."""
    conv1 = next(layer for layer in msg.layer if layer.name == "conv1")
    conv1.loss_weight.append(0.5)
    conv1.blobs[0].MergeFromString(bytes([15 << 3 | 1]) + bytes(range(8)))


def _legacy_bias(msg):
    """conv1's bias as files before N-d blobs stored it: 1 x 1 x 1 x 64."""
    blob = next(layer for layer in msg.layer if layer.name == "conv1").blobs[1]
    (n,) = blob.shape.dim
    blob.ClearField("shape")
    blob.num, blob.channels, blob.height, blob.width = 1, 1, 1, n


@pytest.mark.parametrize("edit", [_fixed_width_fields, _legacy_bias])
def test_fixed_width_fields_and_legacy_bias_dimensions_are_read_as_caffe_reads_them(
        pretrained, tmp_path, edit):
    caffe.set_mode_cpu()
    path, source = pretrained
    other = _edited(path, tmp_path, edit, "other.caffemodel")
    shapes = weights.blob_shapes(other)
    assert shapes["conv1"] == ([((64, 3, 7, 7), False), ((64,), False)]
                               if edit is _fixed_width_fields else
                               [((64, 3, 7, 7), False), ((1, 1, 1, 64), True)])
    assert shapes["fc1000"] == [((1000, 2048), False), ((1000,), False)]
    net = _net(nets.net_prototxt(nets.default_plan("bacterial", "resnet50"), "deploy"), tmp_path)
    weights.init_from_pretrained(net, other)
    assert np.array_equal(net.params["conv1"][1].data, source["conv1"][1])


def test_legacy_blob_dimensions_fit_as_caffe_reads_them(pretrained, tmp_path):
    caffe.set_mode_cpu()
    path, source = pretrained
    old = _edited(path, tmp_path, _legacy_dims, "legacy.caffemodel")
    net = _net(nets.net_prototxt(nets.default_plan("bacterial", "resnet50"), "deploy"), tmp_path)
    weights.check_fits(net, old)
    weights.init_from_pretrained(net, old)
    assert np.array_equal(net.params["conv1"][0].data, source["conv1"][0])
