"""BatchNorm + Scale folded into the convolution before them (pycount.nets.fold): the pycaffe
engine's folded net gives the deploy net's outputs, on the committed ResNets and on small nets
that exercise each case of the rule (a bias on the convolution or not, a moving-average factor
of 0, a Scale without bias, chains that must stay as they are)."""
import numpy as np
import pytest

caffe = pytest.importorskip("caffe")

from caffe.proto import caffe_pb2  # noqa: E402
from google.protobuf import text_format  # noqa: E402

from pycount import config  # noqa: E402
from pycount.inference import engines  # noqa: E402
from pycount.nets import builders as nets  # noqa: E402
from pycount.nets import fold  # noqa: E402
from test_backends import random_caffemodel  # noqa: E402

SMALL = """
name: "small"
input: "data" input_shape { dim: 2 dim: 3 dim: 12 dim: 12 }
layer { name: "c1" type: "Convolution" bottom: "data" top: "c1"
        convolution_param { num_output: 5 kernel_size: 3 pad: 1 bias_term: %(bias)s
                            weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "bn1" type: "BatchNorm" bottom: "c1" top: "c1"
        batch_norm_param { use_global_stats: true eps: %(eps)s } }
layer { name: "sc1" type: "Scale" bottom: "c1" top: "c1" scale_param { bias_term: %(sbias)s } }
layer { name: "r1" type: "ReLU" bottom: "c1" top: "c1" }
layer { name: "c2" type: "Convolution" bottom: "c1" top: "c2"
        convolution_param { num_output: 4 kernel_size: 1 group: 1
                            weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "bn2" type: "BatchNorm" bottom: "c2" top: "n2"
        batch_norm_param { use_global_stats: true } }
layer { name: "sc2" type: "Scale" bottom: "n2" top: "n2" scale_param { bias_term: true } }
"""


def _small(tmp_path, bias="true", sbias="true", eps="1e-5", factor=1.0, seed=0):
    deploy = tmp_path / "small.prototxt"
    deploy.write_text(SMALL % dict(bias=bias, sbias=sbias, eps=eps))
    weights = random_caffemodel(deploy, tmp_path / "small.caffemodel", seed=seed)
    if factor != 1.0:                  # Caffe stores sums: mean and variance times the factor
        net = caffe.Net(str(deploy), caffe.TEST, weights=str(weights))
        for name in ("bn1", "bn2"):
            for blob in net.params[name][:2]:
                blob.data[...] *= factor
            net.params[name][2].data[...] = factor
        net.save(str(weights))
    return deploy, weights


def _forward(net, x, blob):
    net.blobs["data"].data[...] = x
    net.forward()
    return net.blobs[blob].data.copy()


def _param(deploy):
    param = caffe_pb2.NetParameter()
    text_format.Merge(deploy.read_text(), param)
    return param


@pytest.mark.parametrize("bias,sbias,eps,factor", [("true", "true", "1e-5", 1.0),
                                                    ("false", "true", "0.001", 0.25),
                                                    ("true", "false", "1e-5", 3.0)])
def test_folded_small_net_matches_the_deploy_net(bias, sbias, eps, factor, tmp_path):
    deploy, weights = _small(tmp_path, bias, sbias, eps, factor)
    x = np.random.default_rng(2).normal(0, 50, (2, 3, 12, 12)).astype(np.float32)
    plain = caffe.Net(str(deploy), caffe.TEST, weights=str(weights))
    folded, arrays = engines.folded_net(deploy, engines.read_caffemodel(weights), tmp_path)
    engines.copy_weights(folded, arrays, weights)
    # only the in-place chain after c1 folds; c2's BatchNorm writes a new blob and stays
    assert [n for n in folded._layer_names if n != "input"] == ["c1", "r1", "c2", "bn2", "sc2"]
    assert len(folded.params["c1"]) == 2
    for blob in ("c1", "n2"):
        want = _forward(plain, x, blob)
        got = _forward(folded, x, blob)
        assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()


def test_factor_zero_means_zero_statistics(tmp_path):
    # Caffe reads a moving-average factor of 0 as "no statistics yet": mean 0, variance 0
    deploy, weights = _small(tmp_path, factor=0.0)
    plain = caffe.Net(str(deploy), caffe.TEST, weights=str(weights))
    folded, arrays = engines.folded_net(deploy, engines.read_caffemodel(weights), tmp_path)
    engines.copy_weights(folded, arrays, weights)
    x = np.random.default_rng(3).normal(0, 1, (2, 3, 12, 12)).astype(np.float32)
    want, got = _forward(plain, x, "c1"), _forward(folded, x, "c1")
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()


def test_chains_that_are_not_in_place_or_not_adjacent_stay(tmp_path):
    param = _param(_small(tmp_path)[0])
    assert fold.foldable(param) == [(0, 1, 2)]
    param.layer[2].top[0] = "elsewhere"           # Scale writes another blob: not the pattern
    assert fold.foldable(param) == []
    param = _param(tmp_path / "small.prototxt")
    param.layer.insert(1, caffe_pb2.LayerParameter(name="x", type="ReLU", bottom=["c1"],
                                                   top=["c1"]))
    assert fold.foldable(param) == []             # a layer between convolution and BatchNorm


def _retype(index, kind):
    def edit(param):
        param.layer[index].type = kind
    return edit


def _rewire(index, field, blob):
    def edit(param):
        getattr(param.layer[index], field)[0] = blob
    return edit


def _scale_param(**fields):
    def edit(param):
        for key, value in fields.items():
            setattr(param.layer[2].scale_param, key, value)
    return edit


def _second_top(param):
    param.layer[0].top.append("c1b")


@pytest.mark.parametrize("edit", [
    _retype(0, "Deconvolution"), _retype(1, "ReLU"), _retype(2, "Bias"),
    _rewire(1, "bottom", "data"), _rewire(1, "top", "n1"), _rewire(2, "bottom", "data"),
    _scale_param(axis=0), _scale_param(num_axes=2), _second_top],
    ids=["not-conv", "not-batchnorm", "not-scale", "bn-reads-elsewhere", "bn-writes-elsewhere",
         "scale-reads-elsewhere", "scale-axis-0", "scale-two-axes", "conv-two-tops"])
def test_each_part_of_the_rule_must_hold_for_a_chain_to_fold(edit, tmp_path):
    """Only Convolution -> BatchNorm -> Scale, all in place on the convolution's one top, with a
    per-channel Scale, is one affine map per channel; any other shape stays as it is."""
    param = _param(_small(tmp_path)[0])
    edit(param)
    assert fold.foldable(param) == []


def test_a_chain_at_the_end_of_the_net_folds(tmp_path):
    param = _param(_small(tmp_path)[0])
    del param.layer[3:]                           # c1, bn1, sc1: the net ends with the chain
    assert fold.foldable(param) == [(0, 1, 2)]
    folded, _ = fold.fold(param, engines.read_caffemodel(tmp_path / "small.caffemodel"))
    assert [layer.name for layer in folded.layer] == ["c1"]


def test_a_v1_prototxt_is_refused_with_the_upgrade_tool_named():
    param = text_format.Parse('layers { name: "c1" type: CONVOLUTION bottom: "data" top: "c1" }',
                              caffe_pb2.NetParameter())
    with pytest.raises(ValueError, match="upgrade_net_proto_text"):
        fold.foldable(param)


def test_folding_leaves_the_callers_net_and_weights_as_they_were(tmp_path):
    deploy, weights = _small(tmp_path, bias="false")
    param, arrays = _param(deploy), engines.read_caffemodel(weights)
    before = {name: [a.copy() for a in blobs] for name, blobs in arrays.items()}
    folded, new = fold.fold(param, arrays)
    assert [layer.name for layer in param.layer] == ["c1", "bn1", "sc1", "r1", "c2", "bn2", "sc2"]
    assert param.layer[0].convolution_param.bias_term is False
    assert folded.layer[0].convolution_param.bias_term is True and len(new["c1"]) == 2
    assert sorted(arrays) == sorted(before) and all(
        np.array_equal(a, b) for name in before for a, b in zip(arrays[name], before[name]))
    assert sorted(new) == sorted(arrays.keys() - {"bn1", "sc1"})     # the folded layers go
    assert new["c2"] is arrays["c2"]              # untouched layers are shared, not copied


def test_missing_weights_for_a_chain_are_named(tmp_path):
    deploy, weights = _small(tmp_path)
    arrays = engines.read_caffemodel(weights)
    del arrays["bn1"]
    with pytest.raises(ValueError, match="bn1"):
        fold.fold(_param(deploy), arrays)


def test_the_caffe_engine_folds_as_config_says_unless_told(tmp_path, monkeypatch):
    deploy, weights = _small(tmp_path)
    plan = nets.default_plan("bacterial", "resnet50")
    args = (deploy, weights, plan.model, plan.dataset, "R")
    monkeypatch.setattr(config, "FOLD_BATCHNORM", True)
    assert "bn1" not in engines.CaffeBackend(*args).net._layer_names
    monkeypatch.setattr(config, "FOLD_BATCHNORM", False)
    assert "bn1" in engines.CaffeBackend(*args).net._layer_names
    assert "bn1" not in engines.CaffeBackend(*args, fold=True).net._layer_names


def test_unfolded_engine_keeps_the_deploy_net(tmp_path):
    deploy, weights = _small(tmp_path)
    plan = nets.default_plan("bacterial", "resnet50")
    backend = engines.CaffeBackend(deploy, weights, plan.model, plan.dataset, "R", fold=False)
    assert "bn1" in backend.net._layer_names


@pytest.mark.parametrize("model", ["resnet50", "resnet152"])
def test_folded_resnet_counts_as_the_deploy_net(model, tmp_path):
    plan = nets.default_plan("bacterial", model)
    deploy = tmp_path / "deploy.prototxt"
    deploy.write_text(nets.net_prototxt(plan, "deploy"))
    weights = random_caffemodel(deploy, tmp_path / "model.caffemodel")
    rgb = np.random.default_rng(1).integers(0, 256, (3, plan.patch, plan.patch, 3), np.uint8)
    args = (deploy, weights, plan.model, plan.dataset, "R")
    try:
        folded = engines.CaffeBackend(*args, fold=True)
        plain = engines.CaffeBackend(*args, fold=False)
        assert not any(t in ("BatchNorm", "Scale") for t in (l.type for l in folded.net.layers))
        assert sum(l.type == "BatchNorm" for l in plain.net.layers) > 50
        want, got = plain(rgb), folded(rgb)
        assert np.abs(got - want).max() <= 1e-4 * max(1.0, np.abs(want).max())
    finally:
        weights.unlink()
