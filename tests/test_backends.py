"""The inference backends agree with each other and with a plain pycaffe forward, on every
committed deploy net (random weights: no trained model needed)."""
import dataclasses

import numpy as np
import pytest

caffe = pytest.importorskip("caffe")

from pycount.inference import engines as backends  # noqa: E402
from pycount import config
from pycount.nets import builders as nets
from pycount.inference import predictors


def random_caffemodel(deploy, out, seed=0):
    """Weights for a deploy prototxt: its fillers, plus non-zero biases and, for BatchNorm,
    non-trivial running mean and variance, so every parameter shapes the output."""
    caffe.set_random_seed(seed)          # the fillers too: the same weights on every run
    net = caffe.Net(str(deploy), caffe.TEST)
    rng = np.random.default_rng(seed)
    for layer in net.layer_dict.values():
        if layer.type == "BatchNorm":
            mean, var, factor = layer.blobs
            mean.data[...] = rng.normal(0, 0.5, mean.data.shape)
            var.data[...] = rng.uniform(0.5, 2.0, var.data.shape)
            factor.data[...] = 1.0
        elif layer.type in ("Convolution", "InnerProduct", "Scale") and len(layer.blobs) > 1:
            layer.blobs[1].data[...] = rng.normal(0, 0.1, layer.blobs[1].data.shape)
    net.save(str(out))
    return out


def _distinct(plans):
    """Plans whose deploy nets differ (prototxt or input transform): datasets sharing a patch
    size, class count and mean share one net."""
    seen = {}
    for plan in plans:
        key = (nets.net_prototxt(plan, "deploy"), nets.input_transform(plan.model, plan.dataset))
        seen.setdefault(key, plan)
    return list(seen.values())


PLANS = _distinct(nets.committed_plans())


def _patches(plan, n, seed=1):
    side = plan.patch
    return np.random.default_rng(seed).integers(0, 256, (n, side, side, 3), dtype=np.uint8)


def _write_net(plan, tmp_path):
    deploy = tmp_path / "deploy.prototxt"
    deploy.write_text(nets.net_prototxt(plan, "deploy"))
    return deploy, random_caffemodel(deploy, tmp_path / "model.caffemodel")


@pytest.mark.parametrize("plan", PLANS, ids=lambda p: f"{p.dataset.name}-{p.model.name}-"
                                                      f"{p.head}-p{p.patch}")
def test_backends_agree_on_every_committed_net(plan, tmp_path):
    deploy, weights = _write_net(plan, tmp_path)
    if plan.model.density:              # a density map of a 1.5-crop image, stitched from crops
        from pycount.inference.fullconv import DensityPredictor
        side = plan.patch * 3 // 2
        rgb = np.random.default_rng(1).integers(0, 256, (side, side + 8, 3), dtype=np.uint8)
        maps = [DensityPredictor(deploy, weights, plan.model, plan.dataset, engine=e).density(rgb)
                for e in ("caffe", "cv2")]
        assert maps[0].shape == maps[1].shape == (side, side + 8)
        assert np.abs(maps[1] - maps[0]).max() <= 1e-4 * max(1e-3, np.abs(maps[0]).max())
        return
    try:
        rgb = _patches(plan, 1)      # one patch: ResNet-152 at 200 px takes ~2 s per forward
        args = (deploy, weights, plan.model, plan.dataset, plan.head)
        y_caffe = backends.CaffeBackend(*args).outputs(rgb)
        y_cv2 = backends.Cv2DnnBackend(*args).outputs(rgb)
        assert y_caffe.shape == y_cv2.shape == ((1,) if plan.head == "R" else (1, plan.n_classes))
        # 1e-4 relative to the output's size, counted as at least one cell: a random net's output
        # can sit near 0, where float32 rounding alone exceeds 1e-4 of it
        assert np.abs(y_cv2 - y_caffe).max() <= 1e-4 * max(1.0, np.abs(y_caffe).max())
    finally:
        weights.unlink()             # the full AlexNets' and ResNets' weights take 100-240 MB


@pytest.mark.parametrize("head", nets.HEADS)
@pytest.mark.parametrize("dataset", ["synthetic", "nuclei"])
def test_backend_counts_are_a_plain_pycaffe_forward(dataset, head, tmp_path):
    plan = nets.default_plan(dataset, "alexnet-lite", head)
    deploy, weights = _write_net(plan, tmp_path)
    rgb = _patches(plan, 3)
    blob = nets.preprocess(rgb, plan.model, plan.dataset)
    net = caffe.Net(str(deploy), caffe.TEST, weights=str(weights))
    net.blobs["data"].reshape(*blob.shape)
    net.reshape()
    net.blobs["data"].data[...] = blob
    y = net.forward()["count" if head == "R" else "prob"].astype(np.float64)
    args = (deploy, weights, plan.model, plan.dataset, head)
    for backend in (backends.CaffeBackend(*args, batch=2), backends.Cv2DnnBackend(*args, batch=2)):
        if head == "R":              # chunks of 2 and 1 patches
            np.testing.assert_allclose(backend(rgb), y.ravel(), rtol=1e-4)
        else:                        # the paper's class, and the expected value on request
            np.testing.assert_allclose(backend.outputs(rgb), y, rtol=1e-4, atol=1e-7)
            np.testing.assert_array_equal(backend(rgb), y.argmax(axis=1))
            backend.expected = True
            np.testing.assert_allclose(backend(rgb), y @ np.arange(y.shape[1]), rtol=1e-4)


def test_patches_are_resized_to_the_nets_input(tmp_path):
    ds = config.with_overrides(config.dataset("synthetic"), size=48)
    plan = dataclasses.replace(nets.default_plan("synthetic", "alexnet-lite"), dataset=ds)
    deploy, weights = _write_net(plan, tmp_path)
    predict = backends.Cv2DnnBackend(deploy, weights, plan.model, ds, "R")
    rgb = _patches(nets.default_plan("synthetic", "alexnet-lite"), 4)
    from pycount.data.patches import resize_patch
    resized = np.stack([resize_patch(p, ds.input_size) for p in rgb])
    np.testing.assert_array_equal(predict(rgb), predict(resized))


def test_unknown_backend_lists_the_valid_ones():
    with pytest.raises(ValueError, match="valid: auto, cv2, caffe"):
        predictors.make_predictor("onnx", "runs/x")


@pytest.mark.parametrize("model,want", [("resnet50", "caffe"), ("resnet152", "caffe"),
                                        ("fcrn-ctx", "caffe"), ("fcrn", "caffe"),
                                        ("alexnet", "cv2"), ("alexnet-lite", "cv2")])
def test_auto_engine_is_the_benchmarked_choice(model, want):
    """The engine `auto` picks per model: the faster one as bench/results measured it (config's
    count_engine comment gives the figures; this pins the choice, it does not time it)."""
    m = config.MODELS[model]
    assert backends.resolve(None, m) == backends.resolve("auto", m) == want
    assert backends.resolve("auto", m, gpu=0) == "caffe"        # only pycaffe runs on a GPU
    for name in backends.BACKENDS:                                # a named engine is kept
        assert backends.resolve(name, m) == name
    with pytest.raises(config.ConfigError, match="unknown backend 'onnx'"):
        backends.resolve("onnx", m)
    assert backends.resolve("caffe", m, gpu=1) == "caffe"
    with pytest.raises(config.ConfigError, match="cv2 backend runs on the CPU; for GPU=0"):
        backends.resolve("cv2", m, gpu=0)                         # refused before any device


def test_auto_falls_back_to_cv2_without_pycaffe(monkeypatch):
    import importlib

    def no_caffe(name, *a, **k):
        raise ImportError(f"No module named {name!r}")
    monkeypatch.setattr(importlib, "import_module", no_caffe)
    assert backends.resolve("auto", config.MODELS["resnet50"]) == "cv2"
    # caffe asked for by name, or for a GPU: refused with the fix, before any engine is built
    for name, gpu in (("caffe", -1), ("auto", 0), ("caffe", 0)):
        with pytest.raises(config.ConfigError, match=r"the caffe backend needs pycaffe \(No "
                                                     r"module named 'caffe'\); build it with"):
            backends.resolve(name, config.MODELS["resnet50"], gpu)
    assert backends.resolve("cv2", config.MODELS["resnet50"]) == "cv2"
