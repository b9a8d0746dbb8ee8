"""The inference backends agree with each other and with a plain pycaffe forward, on every
committed deploy net (random weights: no trained model needed)."""
import dataclasses

import numpy as np
import pytest

caffe = pytest.importorskip("caffe")

from caffe.proto import caffe_pb2  # noqa: E402

from pycount.inference import engines as backends  # noqa: E402
from pycount import config
from pycount.errors import RunError
from pycount.nets import builders as nets
from pycount.inference import density, predictors
from pycount.util import progress


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


def test_auto_batch_is_about_160k_input_pixels_and_between_4_and_256():
    assert [backends.auto_batch(side) for side in (10, 25, 26, 40, 60, 200, 400)] == \
        [256, 256, 236, 100, 44, 4, 4]


def test_a_head_that_is_neither_r_nor_c_is_refused():
    plan = nets.default_plan("synthetic", "alexnet-lite")
    with pytest.raises(config.ConfigError, match="unknown head 'X'; valid: R, C"):
        backends.Predictor(plan.model, plan.dataset, "X")


def test_a_batch_below_one_counts_a_patch_at_a_time_and_no_patches_is_refused(tmp_path):
    plan = nets.default_plan("synthetic", "alexnet-lite")
    deploy, weights = _write_net(plan, tmp_path)
    args = (deploy, weights, plan.model, plan.dataset, "R")
    one = backends.Cv2DnnBackend(*args, batch=0)
    rgb = _patches(plan, 3)
    assert one.batch == 1
    np.testing.assert_allclose(one(rgb), backends.Cv2DnnBackend(*args)(rgb), rtol=1e-5)
    with pytest.raises(ValueError, match="no patches to predict"):
        one(rgb[:0])


def test_an_image_is_counted_with_windows_at_the_datasets_stride(tmp_path):
    plan = nets.default_plan("synthetic", "alexnet-lite")
    deploy, weights = _write_net(plan, tmp_path)
    predict = backends.Cv2DnnBackend(deploy, weights, plan.model, plan.dataset, "R")
    image = np.random.default_rng(2).integers(0, 256, (80, 100, 3), dtype=np.uint8)
    r = predict.count_image(image)
    assert (plan.dataset.patch, plan.dataset.stride) == (40, 20)
    assert r.patch_counts.shape == (3 * 4,)
    assert r.count == density.count_image(image, 40, 20, predict).count


def test_a_caffemodel_of_v1_layers_with_legacy_blob_dimensions_is_read(tmp_path):
    param = caffe_pb2.NetParameter()
    layer = param.layers.add(name="conv1")
    blob = layer.blobs.add(num=2, channels=3, height=1, width=1)
    blob.data.extend(range(6))
    path = tmp_path / "v1.caffemodel"
    path.write_bytes(param.SerializeToString())
    arrays = backends.read_caffemodel(path)
    assert list(arrays) == ["conv1"] and arrays["conv1"][0].shape == (2, 3, 1, 1)
    np.testing.assert_array_equal(arrays["conv1"][0].ravel(), np.arange(6, dtype=np.float32))


@pytest.mark.parametrize("edit,needle", [
    (lambda a: {**a, "conv1": a["conv1"][:1]}, "layer conv1 has 1 weight blobs, the net 2"),
    (lambda a: {**a, "fc6": [a["fc6"][0].ravel()[:-1], a["fc6"][1]]},
     r"layer fc6 blob 0 holds \d+ values, the net needs \d+"),
    (lambda a: {f"other_{name}": blobs for name, blobs in a.items()},
     "no layer of the net is in the file"),
    (lambda a: {name: blobs for name, blobs in a.items() if name != "fc7"},
     "the file lacks the weights of layer fc7. The file is truncated")],
    ids=["a-blob-fewer", "a-blob-of-another-size", "no-layer-of-the-net", "one-layer-lacking"])
def test_weights_that_do_not_fit_the_net_are_refused_before_caffe_copies_them(edit, needle,
                                                                              tmp_path):
    plan = nets.default_plan("synthetic", "alexnet-lite")
    deploy, weights = _write_net(plan, tmp_path)
    net = caffe.Net(str(deploy), caffe.TEST)
    with pytest.raises(RunError, match=f"{weights} cannot be used with this net: {needle}"):
        backends.copy_weights(net, edit(backends.read_caffemodel(weights)), weights)


def test_a_classic_method_refuses_every_net_engine():
    model = config.model("lecount")
    assert backends.resolve(backends.CLASSIC_ENGINE, model) == backends.CLASSIC_ENGINE
    for name in backends.BACKENDS:
        with pytest.raises(config.ConfigError, match=f"drop --backend {name} \\(BACKEND=\\)"):
            backends.resolve(name, model)


def test_counting_reports_the_share_of_patches_done_after_each_batch(tmp_path):
    plan = nets.default_plan("synthetic", "alexnet-lite")
    deploy, weights = _write_net(plan, tmp_path)
    predict = backends.Cv2DnnBackend(deploy, weights, plan.model, plan.dataset, "R", batch=2)
    shares = []
    with progress.within(shares.append):
        predict(_patches(plan, 5))
    assert shares == [0.4, 0.8, 1.0]
