"""Generated nets: committed prototxts are current, every net parses in Caffe, output shapes."""
import dataclasses
import re

import numpy as np
import pytest

caffe = pytest.importorskip("caffe", reason="run `make setup` to build Caffe")
from caffe.proto import caffe_pb2  # noqa: E402
from google.protobuf import text_format  # noqa: E402

from pycount import config  # noqa: E402
from pycount.data import lmdbio
from pycount.nets import builders as nets


def test_committed_prototxts_equal_what_the_generator_writes(tmp_path):
    written = nets.write_committed(tmp_path)
    committed = sorted(p.relative_to(config.PROTOTXT_DIR)
                       for p in config.PROTOTXT_DIR.rglob("*.prototxt"))
    assert committed == sorted(p.relative_to(tmp_path) for p in written), \
        "prototxt/ differs from the generator's file list: run `make prototxt` and commit"
    for rel in committed:
        assert (config.PROTOTXT_DIR / rel).read_text() == (tmp_path / rel).read_text(), \
            f"prototxt/{rel} is stale: run `make prototxt` and commit"


# What a dataset may change in a committed net (prototxt/ holds the reference dataset's nets):
# its input side, mean colour, LMDB paths and batch anywhere; the net's name (first line); the
# number of classes of the C head's last layer. Anything else would be a net not committed.
FREE_ANYWHERE = ("dim:", "mean_value:", "source:", "batch_size:")


def _committed_twin(plan: nets.NetPlan) -> nets.NetPlan:
    """The committed plan whose layers a dataset's net must share."""
    same = [p for p in nets.committed_plans() if (p.model.name, p.head) == (plan.model.name,
                                                                             plan.head)]
    if plan.model.family == "alexnet":
        same = [p for p in same if nets.alexnet_adaptation(p.patch)
                == nets.alexnet_adaptation(plan.patch)]
    assert len(same) == 1, f"no single committed twin for {plan.dataset.name}/{plan.model.name}"
    return same[0]


@pytest.mark.parametrize("dataset", sorted(config.DATASETS))
@pytest.mark.parametrize("phase", ["train_val", "deploy"])
def test_other_datasets_change_only_what_is_allowed(dataset, phase):
    for m in (name for name, model in config.MODELS.items() if not model.classic):
        for head in nets.HEADS if not config.MODELS[m].density else ("R",):
            plan = nets.default_plan(dataset, m, head)
            ours = nets.net_prototxt(plan, phase).split("\n")
            ref = (nets.committed_dir(_committed_twin(plan)) / f"{phase}.prototxt") \
                .read_text().split("\n")
            assert len(ours) == len(ref), f"{dataset}/{m}-{head}: another net than prototxt/'s"
            layer = ""
            for i, (a, b) in enumerate(zip(ref, ours)):
                if a.strip().startswith("name:"):
                    layer = a.strip()
                if a == b or a.strip().startswith(FREE_ANYWHERE) or i == 0:
                    continue
                assert head == "C" and a.strip().startswith("num_output:") \
                    and layer == 'name: "score"', \
                    f"{dataset}/{m}-{head} {phase}, line {i + 1}: {a.strip()!r} -> {b.strip()!r}"


@pytest.mark.parametrize("plan", nets.committed_plans(),
                         ids=lambda p: f"{p.dataset.name}-{p.model.name}-{p.head}")
def test_deploy_net_parses_and_has_the_head_shape(plan, tmp_path):
    caffe.set_mode_cpu()
    path = tmp_path / "deploy.prototxt"
    path.write_text(nets.net_prototxt(plan, "deploy"))
    net = caffe.Net(str(path), caffe.TEST)
    for name, layer in zip(net._layer_names, net.layers):
        if layer.type == "BatchNorm":     # statistics as a loaded model has (not 0: x / sqrt(eps))
            net.params[name][1].data[...] = 1
            net.params[name][2].data[...] = 1
    n = 1 if plan.model.family == "resnet" else 3
    net.blobs["data"].reshape(n, 3, plan.patch, plan.patch)
    net.reshape()
    net.blobs["data"].data[...] = np.random.default_rng(0).normal(size=(n, 3, plan.patch,
                                                                      plan.patch))
    out = net.forward()
    if plan.model.density:                # a map of the input's size
        assert out["density"].shape == (n, 1, plan.patch, plan.patch)
        assert np.isfinite(out["density"]).all()
    elif plan.head == "R":
        assert out["count"].shape == (n, 1) and np.isfinite(out["count"]).all()
    else:
        assert out["prob"].shape == (n, config.n_classes(plan.dataset))
        assert np.allclose(out["prob"].sum(1), 1, atol=1e-5)


@pytest.mark.parametrize("encoded", [False, True], ids=["raw", "png"])
def test_train_val_net_reads_the_lmdb_and_computes_the_loss(tmp_path, encoded):
    rng = np.random.default_rng(0)
    recs = [(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8), i % 5) for i in range(8)]
    for part in ("train", "val"):
        lmdbio.write_lmdb(tmp_path / part, iter(recs), n_max=8, patch=40, seed=0, manifest={},
                          encoded=encoded)
    base = nets.default_plan("synthetic", "alexnet-lite")
    model = dataclasses.replace(base.model, solver=dataclasses.replace(base.model.solver, batch=4))
    plan = dataclasses.replace(base, model=model, train_source=str(tmp_path / "train"),
                               val_source=str(tmp_path / "val"))
    files = nets.write_net_files(plan, tmp_path / "run", snapshot_prefix=str(tmp_path / "s"))
    caffe.set_mode_cpu()
    net = caffe.Net(str(files["train_val"]), caffe.TEST)
    out = net.forward()
    assert net.blobs["count"].data.shape == (4, 1)
    pred, label = net.blobs["count"].data.ravel(), net.blobs["label"].data.ravel()
    assert float(out["loss"]) == pytest.approx(((pred - label) ** 2).sum() / 8, rel=1e-4)
    assert caffe.get_solver(str(files["solver"])).iter == 0
    # pycount.nets.preprocess (used at test time) equals Caffe's transform_param on the records
    first = np.stack([rgb for _, rgb, _ in lmdbio.read_lmdb(tmp_path / "val", limit=4)])
    assert np.allclose(net.blobs["data"].data, nets.preprocess(first, plan.model, plan.dataset), atol=1e-5)


def test_training_patches_are_mirrored_as_config_says_and_never_for_a_frozen_trunk(monkeypatch):
    """Random mirroring is augmentation beyond the paper's rotations: one setting
    (config.TRAIN_MIRROR) says it, the TRAIN Data layer follows it, TEST never mirrors, and a
    frozen trunk (features cached per patch) never does (helper-51: it was unstated)."""
    plan = nets.default_plan("nuclei", "alexnet")

    def mirrored():
        text = nets.net_prototxt(plan, "train_val")
        return text.count("mirror: true"), text.count("mirror: false")
    assert mirrored() == (1, 1)                      # TRAIN mirrors, TEST does not
    monkeypatch.setattr(config, "TRAIN_MIRROR", False)
    assert mirrored() == (0, 2)
    monkeypatch.setattr(config, "TRAIN_MIRROR", True)
    frozen = nets.default_plan("nuclei", "resnet50")
    assert frozen.model.finetune == "head"
    assert "mirror: true" not in nets.net_prototxt(frozen, "train_val")


def test_alexnet_adaptation_is_stated_in_the_net_name():
    small = nets.default_plan("synthetic", "alexnet")
    assert "adapted" in nets.net_prototxt(small, "deploy").splitlines()[0]


def test_unknown_head_is_refused():
    plan = dataclasses.replace(nets.default_plan("synthetic", "alexnet-lite"), head="X")
    with pytest.raises(config.ConfigError, match="R, C"):
        nets.net_prototxt(plan, "deploy")


def test_solver_settings_per_model_and_dataset():
    nuclei, ki67 = config.dataset("nuclei"), config.dataset("ki67")
    assert config.model("alexnet-lite", nuclei).solver.max_iter == 12000
    assert config.model("alexnet-lite").solver.max_iter == 2400             # the model's own
    assert config.model("resnet152", ki67).solver.batch == 8
    tv = (config.PROTOTXT_DIR / "ki67" / "alexnet" / "train_val.prototxt").read_text()
    assert "batch_size: 8" in tv and "batch_size: 32" not in tv


def _layers(plan, phase="deploy"):
    net = caffe_pb2.NetParameter()
    text_format.Merge(nets.net_prototxt(plan, phase), net)
    return {layer.name: layer for layer in net.layer}


@pytest.mark.parametrize("side,kernel,stride,words", [(127, 5, 1, "5x5 stride 1 pad 2"),
                                                      (128, 11, 4, "11x11 stride 4")])
def test_alexnet_takes_bvlc_conv1_from_a_128_px_patch_on(side, kernel, stride, words):
    base = nets.default_plan("synthetic", "alexnet")
    plan = dataclasses.replace(base, dataset=dataclasses.replace(base.dataset, size=side))
    conv1 = _layers(plan)["conv1"].convolution_param
    assert (list(conv1.kernel_size), list(conv1.stride)) == ([kernel], [stride])
    assert words in nets.net_prototxt(plan, "deploy").splitlines()[0]


def test_a_narrow_alexnet_keeps_eight_channels_per_convolution():
    base = nets.default_plan("synthetic", "alexnet-lite")
    plan = dataclasses.replace(base, model=dataclasses.replace(base.model, width=0.02))
    layers = _layers(plan)
    assert [layers[f"conv{i}"].convolution_param.num_output for i in range(1, 6)] == [8] * 5


def test_a_resnet_from_scratch_learns_its_batch_statistics_and_deploys_with_them():
    base = nets.default_plan("synthetic", "resnet50")
    plan = dataclasses.replace(base, model=dataclasses.replace(base.model, finetune="scratch"))
    for phase, frozen in (("train_val", False), ("deploy", True)):
        bns = [layer for layer in _layers(plan, phase).values() if layer.type == "BatchNorm"]
        assert len(bns) == 53
        assert {(bn.batch_norm_param.HasField("use_global_stats")
                 and bn.batch_norm_param.use_global_stats) for bn in bns} == {frozen}
    # a pretrained trunk keeps ImageNet's statistics in training too
    assert all(layer.batch_norm_param.use_global_stats for layer in _layers(base, "train_val")
               .values() if layer.type == "BatchNorm")


@pytest.mark.parametrize("change,needle", [
    (dict(depth=34), "ResNet depth 34 is not one of 50, 101, 152"),
    (dict(finetune="some"), "unknown finetune 'some'; valid: head, all, scratch")])
def test_a_resnet_of_another_depth_or_training_is_refused_by_name(change, needle):
    base = nets.default_plan("synthetic", "resnet50")
    plan = dataclasses.replace(base, model=dataclasses.replace(base.model, **change))
    with pytest.raises(config.ConfigError, match=re.escape(needle)):
        nets.net_prototxt(plan, "deploy")


def test_a_density_crop_off_the_pooling_grid_is_refused_with_a_crop_that_fits():
    plan = nets.default_plan("nuclei", "fcrn")
    grid = 2 ** (len(plan.model.widths) - 1)
    for crop, fits in ((grid // 2 - 1, grid), (5 * grid + 1, 5 * grid)):
        bad = dataclasses.replace(plan, dataset=dataclasses.replace(plan.dataset, crop=crop))
        with pytest.raises(config.ConfigError, match=rf"must be a multiple of {grid}: use CROP= a "
                           rf"multiple of {grid}, e.g. {fits}$"):
            nets.net_prototxt(bad, "train_val")
    with pytest.raises(config.ConfigError, match=r"predicts a density map: it has no C head "
                       r"\(use HEAD=R\)"):
        nets.net_prototxt(dataclasses.replace(plan, head="C"), "deploy")


def test_a_runs_own_classification_net_has_a_score_per_count(workdirs):
    ds, model = config.dataset("synthetic"), config.model("alexnet-lite")
    plan = nets.run_plan(ds, model, "C")
    assert plan.n_classes == config.n_classes(ds) > 1
    assert _layers(plan)["score"].inner_product_param.num_output == config.n_classes(ds)
    assert plan.train_source == str((config.lmdb_dir(ds) / "train_lmdb").resolve())
    assert nets.run_plan(ds, model).n_classes == 0


def test_comparable_drops_only_the_nets_name_line_and_the_folders():
    assert nets.comparable('name: "alexnet | adapted"\nsource: "/a/b/train_lmdb"') == \
        'source: "train_lmdb"'
    assert nets.comparable('net: "/run/train_val.prototxt"\nbase_lr: 0.01') == \
        'net: "train_val.prototxt"\nbase_lr: 0.01'


def test_drift_without_caffe_compares_nothing(tmp_path, monkeypatch):
    def no_caffe():
        raise ImportError("No module named 'caffe'")
    monkeypatch.setattr(nets, "_caffe", no_caffe)
    assert nets.drift(tmp_path, nets.default_plan("synthetic", "alexnet-lite")) == []
