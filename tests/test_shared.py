"""Shared convolutions (pycount.shared): the cut nets are the deploy net, exactly, for one patch;
bilinear window sampling; counting with --shared goes through the whole-image trunk."""
import dataclasses

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


def _lite(tmp_path, ds=None, **kw):
    """alexnet-lite's deploy net for `ds` (the synthetic set by default), random weights."""
    plan = nets.default_plan("synthetic", "alexnet-lite")
    plan = dataclasses.replace(plan, dataset=ds or plan.dataset)
    deploy = tmp_path / "deploy.prototxt"
    deploy.write_text(nets.net_prototxt(plan, "deploy"))
    return shared.SharedPredictor(deploy, _random_weights(deploy, tmp_path), plan.model,
                                  plan.dataset, "R", **kw)


def test_a_net_read_at_another_size_than_its_patch_is_shared_as_the_plain_net(tmp_path):
    """SIZE=48 on 40 px patches: the image is resized as each patch would be (INTER_LINEAR
    when enlarged) before the trunk, so a one-window image counts as the plain net does."""
    ds = config.with_overrides(config.dataset("synthetic"), size=48)
    sp = _lite(tmp_path, ds, tolerance=None)
    patch = np.random.default_rng(4).integers(0, 256, (ds.patch, ds.patch, 3), dtype=np.uint8)
    np.testing.assert_allclose(sp.predict_windows(patch, np.array([[0, 0]]), ds.patch),
                               sp.plain(patch[None]), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("size,x0,cell", [(40, 20, 2.5), (48, 25, 3.75)])
def test_a_window_between_feature_cells_is_read_bilinearly_at_its_own_place(size, x0, cell,
                                                                            tmp_path):
    """alexnet-lite's trunk has stride 8: a window at x0 = 20 starts at cell 2.5; read at
    SIZE=48 (x 1.2), one at x0 = 25 at cell 3.75. Not rounded down to a whole cell."""
    sp = _lite(tmp_path, config.with_overrides(config.dataset("synthetic"), size=size),
               tolerance=None)
    assert sp.cut.stride == 8
    image = np.random.default_rng(5).integers(0, 256, (80, 100, 3), dtype=np.uint8)
    fmap, _ = sp.feature_map(image)

    def head_at(fx):
        crops = shared.sample_windows(fmap, np.array([fx]), np.array([0.0]), sp.fsize)
        return sp.head_net._forward(crops).ravel()
    got = sp.window_outputs(image, np.array([[x0, 0]]))
    np.testing.assert_allclose(got, head_at(cell), rtol=1e-5)
    assert abs(got[0] - head_at(np.floor(cell))[0]) > 1e-6


def test_a_deploy_is_cut_by_its_own_strides_at_its_last_spatial_blob():
    """Caffe's default stride is 1 where a layer gives none; cv2.dnn names the trunk's output
    by the last layer writing it (here the in-place ReLU)."""
    def layer(name, kind, bottom, top, *lines):
        return (f'layer {{\n  name: "{name}"\n  type: "{kind}"\n  bottom: "{bottom}"\n'
                f'  top: "{top}"\n' + "".join(f"{line}\n" for line in lines) + "}\n")
    text = ('name: "hand"\nlayer {\n  name: "data"\n  type: "Input"\n  top: "data"\n}\n'
            + layer("c1", "Convolution", "data", "c1", "  convolution_param {",
                    "    num_output: 4", "  }")
            + layer("p1", "Pooling", "c1", "p1", "  pooling_param {", "    stride: 2", "  }")
            + layer("c2", "Convolution", "p1", "c2", "  convolution_param {", "    stride: 3",
                    "  }")
            + layer("r2", "ReLU", "c2", "c2")
            + layer("fc", "InnerProduct", "c2", "fc"))
    cut = shared.cut_deploy(text)
    assert (cut.blob, cut.stride, cut.blob_layer) == ("c2", 6, "r2")
    assert [l.name for l in cut.trunk_layers] == ["c1", "p1", "c2", "r2"]
    assert [l.name for l in cut.head_layers] == ["fc"]
    with pytest.raises(ValueError, match="must start with an Input layer"):
        shared.cut_deploy(text.replace('type: "Input"', 'type: "Data"'))
    with pytest.raises(ValueError, match="no top-level `layer {` blocks found"):
        shared.cut_deploy('name: "hand"\ninput: "data"\n')


def test_an_image_too_large_or_windows_of_another_patch_are_refused(tmp_path):
    sp = _lite(tmp_path, max_side=130)
    image = np.zeros((120, 160, 3), np.uint8)
    with pytest.raises(ValueError, match="image side 160 px > 130; count it without --shared"):
        sp.predict_windows(image, np.array([[0, 0]]), 40)
    with pytest.raises(ValueError, match="windows of 60 px, but the net was trained on 40"):
        sp.predict_windows(image[:, :120], np.array([[0, 0]]), 60)


@pytest.mark.parametrize("engine", ["cv2", "caffe"])
def test_only_pycaffe_counts_an_image_above_its_pixel_limit_per_window(engine, tmp_path):
    sp = _lite(tmp_path, engine=engine)
    image = np.random.default_rng(6).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    origins = density.patches.grid(60, 80, 40, 20)
    per_window = sp.plain(density.window_stack(image, origins, 40))
    sp.predict_windows(image, origins, 40)
    assert sp.last_check["windows"] == len(origins)           # under the limit: shared, checked
    sp.caffe_max_pixels = 60 * 80 - 1
    counts = sp.predict_windows(image, origins, 40)
    if engine == "caffe":
        assert sp.last_check == {"shared_used": False, "reason": "image too large for pycaffe"}
        np.testing.assert_array_equal(counts, per_window)
    else:
        assert sp.last_check["windows"] == len(origins)


def test_the_check_samples_windows_spread_over_the_image_and_warns_once(tmp_path, capsys):
    image = np.random.default_rng(3).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    origins = density.patches.grid(120, 160, 40, 20)
    shared_counts = _lite(tmp_path, tolerance=None).predict_windows(image, origins, 40)
    strict = _lite(tmp_path, tolerance=0.0)
    per_window = strict.plain(density.window_stack(image, origins, 40))
    strict.predict_windows(image, origins, 40)
    pick = np.linspace(0, len(origins) - 1, 16).round().astype(int)
    assert pick[-1] == len(origins) - 1
    check = strict.last_check
    assert check["shared"] == pytest.approx(shared_counts[pick].sum(), rel=1e-6)
    assert check["per_window"] == pytest.approx(per_window[pick].sum(), rel=1e-6)
    assert check["relative_diff"] == pytest.approx(
        abs(check["shared"] - check["per_window"]) / max(abs(check["per_window"]), 1.0))
    strict.predict_windows(image, origins, 40)
    assert capsys.readouterr().err.count("shared convolutions moved the count of 16 sample "
                                         "windows") == 1
    # a drift of exactly the tolerance keeps the shared counts
    strict.tolerance = check["relative_diff"]
    np.testing.assert_allclose(strict.predict_windows(image, origins, 40), shared_counts,
                               rtol=1e-6)
    assert strict.last_check["shared_used"] is True


def test_the_drift_of_a_near_empty_image_is_measured_against_one_cell(tmp_path):
    """Counts far below one cell (here the count layer scaled by 1e-4): the drift is taken
    relative to one cell, not to the tiny count itself (nor to more than one cell)."""
    sp = _lite(tmp_path, engine="caffe", tolerance=0.0)
    for net in (sp.plain.net, sp.head_net.net):
        for blob in net.params["count"]:
            blob.data[...] *= 1e-4
    image = np.random.default_rng(3).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    sp.predict_windows(image, density.patches.grid(120, 160, 40, 20), 40)
    check = sp.last_check
    assert 0 < abs(check["per_window"]) < 1
    assert check["relative_diff"] == pytest.approx(abs(check["shared"] - check["per_window"]))
