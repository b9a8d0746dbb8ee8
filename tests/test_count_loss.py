"""The density nets' count loss (config.ModelConfig.count_loss, MODEL=fcrn-count, issue #26): a
second Euclidean loss on each training crop's count, whose gradient adds the same amount to every
pixel of a crop: w x (the crop's count error) / (batch x DENSITY_SCALE)."""
import dataclasses

import numpy as np
import pytest

from pycount import config


def test_only_the_count_model_has_the_count_loss():
    from pycount.nets import builders as nets
    plain = nets.net_prototxt(nets.default_plan("bacterial", "fcrn"), "train_val")
    counted = nets.net_prototxt(nets.default_plan("bacterial", "fcrn-count"), "train_val")
    assert "count_loss" not in plain and "Reduction" not in plain
    assert counted.count('type: "Reduction"') == 2 and "loss_weight: 20" in counted
    # counting with the run: the deploy nets are the same net
    deploy = [nets.net_prototxt(nets.default_plan("bacterial", m), "deploy").split("\n", 1)[1]
              for m in ("fcrn", "fcrn-count")]
    assert deploy[0] == deploy[1]


@pytest.mark.parametrize("context", [0, 16])
def test_the_count_loss_and_its_gradient(tiny, context):
    pytest.importorskip("caffe", reason="run `make setup` to build Caffe")
    import caffe
    from pycount.data import prepare
    from pycount.nets import builders as nets
    from pycount.training import trainer as train
    ds, _ = tiny
    ds = dataclasses.replace(ds, crop=64, crop_stride=64, rot_step=90)
    base = config.model("fcrn-count")
    w = 3.0
    model = dataclasses.replace(base, widths=(4, 8), convs=2, context=context, count_loss=w,
                                solver=dataclasses.replace(base.solver, batch=8, max_iter=20))
    prepare.prepare(ds, model=model)
    t = train.Trainer(ds, model, max_iter=20)
    files = nets.write_net_files(t._plan(), config.runs_dir() / "count", "x")
    net = caffe.Net(str(files["train_val"]), caffe.TRAIN)
    net.forward()
    score = net.blobs["supervised" if context else "score"].data.astype(np.float64)
    target = net.blobs["target"].data.astype(np.float64)
    s, b = config.DENSITY_SCALE, score.shape[0]
    counts = score.sum(axis=(1, 2, 3)) / s
    true = target.sum(axis=(1, 2, 3)) / s
    np.testing.assert_allclose(net.blobs["count"].data, counts, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(net.blobs["true_count"].data, true, rtol=1e-4, atol=1e-4)
    assert true.max() > 0                                    # crops with cells in this batch
    assert float(net.blobs["count_loss"].data) == pytest.approx(
        ((counts - true) ** 2).sum() / (2 * b), rel=1e-3)
    # backward: each pixel's gradient is the per-pixel loss's plus w x its crop's count error
    net.backward()
    grad = net.blobs["supervised" if context else "score"].diff.astype(np.float64)
    expected = (score - target) / b + w * ((counts - true) / (b * s))[:, None, None, None]
    np.testing.assert_allclose(grad, expected, rtol=1e-3, atol=1e-6)
