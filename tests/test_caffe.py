"""Caffe, built from Debian's source by tools/build_caffe.sh, imports in the venv and works."""
import numpy as np
import pytest

caffe = pytest.importorskip("caffe", reason="run `make setup` to build Caffe")


def tiny_net(tmp_path):
    from caffe import layers as L
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[4, 3, 8, 8]))
    n.label = L.Input(shape=dict(dim=[4, 1]))
    n.conv = L.Convolution(n.data, num_output=2, kernel_size=3, weight_filler=dict(type="xavier"))
    n.relu = L.ReLU(n.conv, in_place=True)
    n.out = L.InnerProduct(n.relu, num_output=1, weight_filler=dict(type="xavier"))
    n.loss = L.EuclideanLoss(n.out, n.label)
    path = tmp_path / "tiny.prototxt"
    path.write_text("force_backward: true\n" + str(n.to_proto()))
    caffe.set_mode_cpu()
    return caffe.Net(str(path), caffe.TRAIN)


def test_forward_and_backward_match_numpy(tmp_path):
    net = tiny_net(tmp_path)
    rng = np.random.default_rng(0)
    net.blobs["data"].data[...] = rng.normal(size=(4, 3, 8, 8))
    net.blobs["label"].data[...] = rng.normal(size=(4, 1))
    loss = float(net.forward()["loss"])
    out, label = net.blobs["out"].data.copy(), net.blobs["label"].data
    # EuclideanLoss = sum of squared differences / (2 N)
    assert loss == pytest.approx(((out - label) ** 2).sum() / 8, rel=1e-5)
    net.backward()
    # d loss / d out = (out - label) / N, and the gradient reaches the weights
    assert np.allclose(net.blobs["out"].diff, (out - label) / 4, rtol=1e-5)
    assert np.abs(net.params["conv"][0].diff).sum() > 0


def test_finite_difference_gradient(tmp_path):
    net = tiny_net(tmp_path)
    rng = np.random.default_rng(1)
    net.blobs["data"].data[...] = rng.normal(size=(4, 3, 8, 8))
    net.blobs["label"].data[...] = rng.normal(size=(4, 1))
    net.forward()
    net.backward()
    w = net.params["out"][0]
    analytic = w.diff.flat[5]
    eps = 1e-3
    w.data.flat[5] += eps
    up = float(net.forward()["loss"])
    w.data.flat[5] -= 2 * eps
    down = float(net.forward()["loss"])
    assert analytic == pytest.approx((up - down) / (2 * eps), rel=1e-2, abs=1e-4)
