"""Shared convolutions (pycount.shared): the cut nets are the deploy net, exactly, for one patch;
bilinear window sampling; counting with --shared goes through the whole-image trunk."""
import numpy as np
import pytest

from pycount import config
from pycount.inference import density
from pycount.nets import builders as nets
from pycount.inference import shared

REF = config.REFERENCE_DATASET       # the dataset whose nets are committed

caffe = pytest.importorskip("caffe", reason="run `make setup` to build Caffe")


# density nets have no window head to cut: they are refused (tests/test_density_model.py)
@pytest.mark.parametrize("plan", [p for p in nets.committed_plans()
                                  if p.head == "R" and not p.model.density],
                         ids=lambda p: f"{p.dataset.name}-{p.model.name}")
def test_every_committed_deploy_cuts_before_its_first_fc_or_global_pool(plan):
    cut = shared.cut_deploy((nets.committed_dir(plan) / "deploy.prototxt").read_text())
    first = cut.head_layers[0]
    assert first.type == "InnerProduct" or (first.type == "Pooling" and first.global_pool)
    assert all(l.type not in ("InnerProduct", "Input") for l in cut.trunk_layers)
    if plan.model.family == "resnet":
        assert (cut.blob, cut.stride) == ("res5c", 32)     # conv1, pool1, res3a, res4a, res5a
    else:
        assert cut.blob == "pool5"
        # conv1 stride 4 for patches of 128 px and more, 1 below (the adapted conv1); 3 pools
        assert cut.stride == (4 if plan.patch >= 128 else 1) * 8


def _random_weights(deploy, tmp_path):
    caffe.set_mode_cpu()
    caffe.set_random_seed(7)
    net = caffe.Net(str(deploy), caffe.TEST)
    for name, layer in zip(net._layer_names, net.layers):
        if layer.type == "BatchNorm":          # stored statistics: mean 0, variance 1
            mean, var, factor = net.params[name]
            mean.data[...], var.data[...], factor.data[...] = 0, 1, 1
    path = tmp_path / "random.caffemodel"
    net.save(str(path))
    return path


@pytest.mark.parametrize("engine", ["cv2", "caffe"])
@pytest.mark.parametrize("model_name", ["alexnet-lite", "resnet50"])
def test_trunk_plus_head_equal_the_deploy_net_on_one_patch(model_name, engine, tmp_path):
    ds = config.dataset("synthetic")
    model = config.model(model_name, ds)
    deploy = nets.committed_dir(nets.default_plan(REF, model_name)) / "deploy.prototxt"
    weights = _random_weights(deploy, tmp_path)
    sp = shared.SharedPredictor(deploy, weights, model, ds, "R", engine=engine)
    rng = np.random.default_rng(1)
    patch = rng.integers(0, 256, (ds.patch, ds.patch, 3), dtype=np.uint8)
    whole = sp.predict_windows(patch, np.array([[0, 0]]), ds.patch)
    plain = sp.plain(patch[None])
    assert whole.shape == (1,) and np.isfinite(whole).all()
    np.testing.assert_allclose(whole, plain, rtol=1e-4, atol=1e-5)
    # and the prediction is not a constant: another patch gives another count
    other = rng.integers(0, 256, (ds.patch, ds.patch, 3), dtype=np.uint8)
    assert abs(sp.predict_windows(other, np.array([[0, 0]]), ds.patch)[0] - whole[0]) > 1e-6


def test_sample_windows_is_exact_on_whole_cells_and_bilinear_between():
    rng = np.random.default_rng(0)
    fmap = rng.normal(size=(3, 9, 11)).astype(np.float32)
    crops = shared.sample_windows(fmap, np.array([2.0, 0.0]), np.array([1.0, 4.0]), 4)
    np.testing.assert_array_equal(crops[0], fmap[:, 1:5, 2:6])
    np.testing.assert_array_equal(crops[1], fmap[:, 4:8, 0:4])
    half = shared.sample_windows(fmap, np.array([2.5]), np.array([1.0]), 4)[0]
    np.testing.assert_allclose(half, (fmap[:, 1:5, 2:6] + fmap[:, 1:5, 3:7]) / 2, rtol=1e-6)
    # past the map's edge the last cell repeats
    edge = shared.sample_windows(fmap, np.array([9.0]), np.array([0.0]), 3)[0]
    np.testing.assert_array_equal(edge[:, :, 2], fmap[:, 0:3, 10])


def test_count_image_uses_the_whole_image_trunk(tmp_path, monkeypatch):
    ds = config.dataset("synthetic")
    model = config.model("alexnet-lite", ds)
    deploy = nets.committed_dir(nets.default_plan(REF, "alexnet-lite")) / "deploy.prototxt"
    sp = shared.SharedPredictor(deploy, _random_weights(deploy, tmp_path), model, ds, "R")
    calls = []
    real = sp.feature_map
    monkeypatch.setattr(sp, "feature_map", lambda image: calls.append(image.shape) or real(image))
    image = np.random.default_rng(2).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    r = density.count_image(image, ds.patch, ds.stride, sp)
    assert calls == [(120, 160, 3)]                      # one trunk pass for all 35 windows
    assert r.patch_counts.shape == (5 * 7,)
    assert abs(r.heatmap.sum() - r.count) < 1e-9 and r.heatmap.shape == (120, 160)


def test_a_net_without_fc_or_global_pool_cannot_be_cut():
    text = ('layer {\n  name: "data"\n  type: "Input"\n  top: "data"\n}\n'
            'layer {\n  name: "c"\n  type: "Convolution"\n  bottom: "data"\n  top: "c"\n}\n')
    with pytest.raises(ValueError, match="no InnerProduct"):
        shared.cut_deploy(text)


def test_images_whose_shared_counts_drift_are_counted_per_window(tmp_path):
    """The 1 % rule: the sample check falls back to the per-window net, whose counts come out
    exactly; with the check off, the (different) shared counts come back."""
    ds = config.dataset("synthetic")
    model = config.model("alexnet-lite", ds)
    deploy = nets.committed_dir(nets.default_plan(REF, "alexnet-lite")) / "deploy.prototxt"
    weights = _random_weights(deploy, tmp_path)
    image = np.random.default_rng(3).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    origins = density.patches.grid(120, 160, ds.patch, ds.stride)
    per_window = shared.SharedPredictor(deploy, weights, model, ds, "R").plain(
        density.window_stack(image, origins, ds.patch))
    strict = shared.SharedPredictor(deploy, weights, model, ds, "R", tolerance=0.0)
    np.testing.assert_array_equal(strict.predict_windows(image, origins, ds.patch), per_window)
    assert strict.last_check["shared_used"] is False and strict.last_check["windows"] == 16
    unchecked = shared.SharedPredictor(deploy, weights, model, ds, "R", tolerance=None)
    assert not np.allclose(unchecked.predict_windows(image, origins, ds.patch), per_window,
                           rtol=1e-3)
