"""Density models trained with context (config.ModelConfig.context, MODEL=fcrn-ctx, issue #22):
crops cut with context around them, the loss on their centre only, and whole images counted in
one pass exactly as by tiles when the context covers the receptive field."""
import csv
import dataclasses

import numpy as np
import pytest

from pycount import config
from pycount.data import density_targets

FILL = (10, 20, 30)


def _image(seed=0, h=256, w=192):
    rng = np.random.default_rng(seed)
    image = rng.integers(40, 250, size=(h, w, 3), dtype=np.uint8)
    centres = np.column_stack([rng.uniform(0, w - 1, 40), rng.uniform(0, h - 1, 40)])
    return image, centres


def test_context_crops_are_the_plain_crops_with_their_surroundings():
    image, centres = _image()
    m, c = 16, 64
    plain = list(density_targets.training_crops(image, centres, c, 64, 90, 2.0))
    ctx = list(density_targets.training_crops(image, centres, c, 64, 90, 2.0, context=m,
                                              fill=FILL))
    assert len(ctx) == len(plain) == density_targets.count_training_crops(256, 192, c, 64, 90, m)
    for (p, d), (q, e) in zip(plain, ctx):
        assert q.shape == (c + 2 * m, c + 2 * m, 3) and e.shape == (c, c)
        np.testing.assert_array_equal(q[m:m + c, m:m + c], p)       # the same supervised window
        np.testing.assert_array_equal(e, d)                         # with the same target
    # the first crop sits in the image's top-left corner: its context there is the fill colour,
    # and to the right and below it is the image
    first = ctx[0][0]
    assert (first[:m, :] == FILL).all() and (first[:, :m] == FILL).all()
    np.testing.assert_array_equal(first[m:, m:], image[:c + m, :c + m])


def test_rotated_context_crops_are_counted_ahead_and_hold_their_cells_whole():
    image = np.zeros((256, 256, 3), np.uint8)
    centres = np.array([[128.0, 128.0]])
    crops = list(density_targets.training_crops(image, centres, 64, 32, 30, 2.0, context=24,
                                                fill=FILL))
    assert len(crops) == density_targets.count_training_crops(256, 256, 64, 32, 30, 24)
    # more 30-degree crops fit than without context: the image's edge is no limit to the
    # context, only to the supervised centre's rotated footprint
    assert all(p.shape == (112, 112, 3) and d.shape == (64, 64) for p, d in crops)
    sums = np.array([d.sum(dtype=np.float64) for _, d in crops])
    assert sums.max() == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="context"):
        next(density_targets.training_crops(image, centres, 64, 32, 90, 2.0, context=-1))


def test_a_context_model_has_its_own_lmdbs_and_net_input():
    from pycount.nets import builders as nets
    ds = config.dataset("bacterial")
    assert config.density_lmdbs(ds, "train")[0].parent.name == "density"
    assert config.density_lmdbs(ds, "train", 32)[0].parent.name == "density-ctx32"
    plan = nets.default_plan("bacterial", "fcrn-ctx")
    assert plan.patch == ds.crop + 64 and "density-ctx32/train_lmdb" in plan.train_source


@pytest.fixture
def ctiny(tiny):
    """The tiny synthetic set with 64 px crops and a two-level fcrn (receptive field 20 px)
    trained with 16 px of context: the context covers the receptive field."""
    pytest.importorskip("caffe", reason="run `make setup` to build Caffe")
    from pycount.nets import builders as nets
    ds, _ = tiny
    ds = dataclasses.replace(ds, crop=64, crop_stride=64, rot_step=90)
    base = config.model("fcrn-ctx")
    solver = dataclasses.replace(base.solver, batch=8, max_iter=60, test_interval=30,
                                 snapshot=30, stepvalues=(), average_after=0)
    model = dataclasses.replace(base, widths=(4, 8), convs=2, context=16, solver=solver)
    assert nets.fcrn_receptive_field(2, 2, "conv-up") <= 2 * model.context
    return ds, model


def test_the_loss_sees_the_centre_and_whole_images_count_as_their_tiles(ctiny, monkeypatch):
    import caffe
    from pycount.data import lmdbio, prepare
    from pycount.inference import fullconv
    from pycount.nets import builders as nets
    from pycount.training import trainer as train
    ds, model = ctiny
    out = prepare.prepare(ds, model=model)
    images, targets = config.density_lmdbs(ds, "train", 16)
    assert out["train"]["records"] == 6 * 128 and lmdbio.read_manifest(images)["context"] == 16
    t = train.Trainer(ds, model, max_iter=60)
    files = nets.write_net_files(t._plan(), config.runs_dir() / "ctx", "x")
    net = caffe.Net(str(files["train_val"]), caffe.TRAIN)
    net.forward()
    assert net.blobs["data"].data.shape == (8, 3, 96, 96)
    assert net.blobs["supervised"].data.shape == net.blobs["target"].data.shape == (8, 1, 64, 64)
    # the Crop layer keeps the score's centre: offset 16 on both axes
    np.testing.assert_array_equal(net.blobs["supervised"].data,
                                  net.blobs["score"].data[:, :, 16:80, 16:80])
    del net
    summary = t.train(resume=False)
    assert summary["context"] == 16
    rows = list(csv.DictReader(open(config.run_dir(ds, model) / "train_log.csv")))
    losses = np.array([float(r["loss"]) for r in rows])
    assert losses[-3:].mean() < 0.7 * losses[0], f"loss did not fall: {losses}"

    run = config.run_dir(ds, model)
    image = prepare.load(ds, ["009"])[0].image
    for engine in ("caffe", "cv2"):
        whole = fullconv.DensityPredictor(run / "deploy.prototxt", run / "model.caffemodel",
                                          model, ds, engine=engine, tta=1)
        assert whole.whole                       # the default for a model with context
        tiles = fullconv.DensityPredictor(run / "deploy.prototxt", run / "model.caffemodel",
                                          model, ds, engine=engine, tta=1, whole=False)
        a, b = whole.density(image), tiles.density(image)
        assert a.shape == b.shape == image.shape[:2]
        np.testing.assert_allclose(a, b, atol=1e-5 * max(1.0, np.abs(b).max()))
        assert a.sum() == pytest.approx(b.sum(), rel=1e-4)
    # images too large for one pass go by tiles with their context: the same density
    big = fullconv.DensityPredictor(run / "deploy.prototxt", run / "model.caffemodel", model,
                                    ds, engine="caffe", tta=1)
    ref = big.density(image)
    assert config.density_whole_max_px(config.model("fcrn-ctx")) < 3_700_000   # cv2.dnn's limit
    monkeypatch.setattr(config, "DENSITY_WHOLE_MAX_PX", 10_000)
    monkeypatch.setattr(config, "DENSITY_TILE", 96)
    np.testing.assert_allclose(big.density(image), ref, atol=1e-5 * max(1.0, np.abs(ref).max()))


def test_a_large_image_counts_through_cv2_without_crashing_it(tmp_path):
    """cv2.dnn crashed (SIGSEGV) on a 2048 x 2048 input through fcrn's widths: pycount counts an
    image that large by tiles. A subprocess, so a crash fails the test instead of ending pytest."""
    import subprocess
    import sys
    import textwrap
    caffe = pytest.importorskip("caffe", reason="run `make setup` to build Caffe")
    from pycount.nets import builders as nets
    plan = nets.default_plan("bacterial", "fcrn-ctx")
    deploy = nets.write_net_files(plan, tmp_path, "x")["deploy"]
    net = caffe.Net(str(deploy), caffe.TEST)           # the fillers' random weights
    net.save(str(tmp_path / "w.caffemodel"))
    del net
    code = textwrap.dedent(f"""
        import numpy as np
        from pycount import config
        from pycount.inference.fullconv import DensityPredictor
        m, ds = config.model("fcrn-ctx"), config.dataset("bacterial")
        p = DensityPredictor({str(deploy)!r}, {str(tmp_path / "w.caffemodel")!r}, m, ds,
                             engine="cv2", tta=1)
        img = np.random.default_rng(0).integers(0, 256, (2048, 2048, 3), dtype=np.uint8)
        d = p.density(img)
        assert d.shape == (2048, 2048) and np.isfinite(d).all()
        print("counted", d.sum())
        """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and "counted" in r.stdout, r.stderr[-2000:]


def test_a_deeper_net_needs_inputs_on_its_pooling_grid_and_counts_whole_images(workdirs):
    """fcrn-ctx5 pools four times: a crop whose input (crop + 2 x context) is no multiple of 16
    is refused before Caffe (which aborts at the first skip sum); on the grid, its deploy net
    maps a padded whole nuclei image to a density of the same size."""
    caffe = pytest.importorskip("caffe", reason="run `make setup` to build Caffe")
    from pycount.inference import fullconv
    from pycount.nets import builders as nets
    plan = nets.default_plan("nuclei", "fcrn-ctx5")
    assert nets.fcrn_receptive_field(5, 2, "conv-up") == 236
    bad = dataclasses.replace(plan, dataset=dataclasses.replace(plan.dataset, crop=104))
    with pytest.raises(config.ConfigError, match=r"168 px\) must be a multiple of 16: use CROP="):
        nets.net_prototxt(bad, "train_val")
    lead = fullconv.context_lead(plan.model)
    side = -(-(500 + 2 * lead) // 16) * 16
    net = caffe.Net(nets.write_net_files(plan, config.runs_dir() / "ctx5", "x")["deploy"]
                    .as_posix(), caffe.TEST)
    net.blobs["data"].reshape(1, 3, side, side)
    net.reshape()
    out = net.forward(data=np.zeros((1, 3, side, side), np.float32))
    assert next(iter(out.values())).shape[-2:] == (side, side)


# --------------------------------------------------------------------------- fullconv's stitching
class _ShiftNet:
    """A stand-in for a density net, as a backend: its 'density' at (y, x) is the preprocessed
    blue channel `shift` px to the left (0 beyond the input's edge)."""
    shift = 0

    def __init__(self, *args):
        pass

    def _forward(self, blob):
        out = np.zeros((blob.shape[0], 1) + blob.shape[2:], np.float32)
        out[:, 0, :, self.shift:] = blob[:, 0, :, :blob.shape[3] - self.shift]
        return out


def _predictor(monkeypatch, shift, context, whole=None, tta=1):
    from pycount.inference import fullconv
    net = type("Net", (_ShiftNet,), {"shift": shift})
    monkeypatch.setitem(fullconv.backends.BACKENDS, "cv2", net)
    ds = config.dataset("synthetic")                              # crop 64, mean BGR (85, .5, .5)
    model = dataclasses.replace(config.model("fcrn"), context=context)
    return fullconv.DensityPredictor("deploy", "weights", model, ds, engine="cv2", whole=whole,
                                     tta=tta)


def _blue(rgb):
    """The net's blue input channel, worked out by hand: (B - 85) / 64."""
    return (rgb[..., 2].astype(np.float64) - 85.0) / 64.0


@pytest.mark.parametrize("shape", [(70, 90), (40, 150)])
@pytest.mark.parametrize("context, whole, tta", [(0, None, 1), (0, None, 8), (0, True, 4),
                                                 (20, None, 1), (20, False, 8)])
def test_the_density_is_stitched_back_onto_its_pixels(monkeypatch, shape, context, whole, tta):
    """A net whose output at each pixel is its own input there: by crops (each pixel the mean of
    the crops covering it, an image smaller than a crop padded), in one pass, and under test-time
    flips and turns, the density is the input channel in place."""
    rgb = np.random.default_rng(4).integers(0, 256, shape + (3,), dtype=np.uint8)
    p = _predictor(monkeypatch, 0, context, whole, tta)
    d = p.density(rgb)
    assert d.shape == shape
    np.testing.assert_allclose(d, _blue(rgb), atol=1e-6)
    assert p.count_image(rgb).count == pytest.approx(_blue(rgb).sum(), abs=1e-3)


@pytest.mark.parametrize("whole", [True, False])
def test_context_and_padding_reach_the_net_where_the_image_is(monkeypatch, whole):
    """A net that looks 2 px to its left: with 20 px of context, every kept pixel sees the image
    2 px to its left, and the first two columns the padding, the dataset's mean colour (0 once
    preprocessed), in one pass and by crops alike."""
    rgb = np.random.default_rng(6).integers(0, 256, (70, 90, 3), dtype=np.uint8)
    d = _predictor(monkeypatch, 2, 20, whole).density(rgb)
    expected = np.zeros((70, 90))
    expected[:, 2:] = _blue(rgb)[:, :-2]
    np.testing.assert_allclose(d, expected, atol=1e-6)


def test_a_large_image_goes_by_tiles_with_its_context(monkeypatch):
    from pycount.inference import fullconv
    monkeypatch.setattr(config, "density_whole_max_px", lambda model: 2000)
    monkeypatch.setattr(config, "DENSITY_TILE", 32)
    rgb = np.random.default_rng(8).integers(0, 256, (70, 90, 3), dtype=np.uint8)
    p = _predictor(monkeypatch, 2, 20)
    assert not fullconv.in_one_pass(p.model, 70, 90)
    expected = np.zeros((70, 90))
    expected[:, 2:] = _blue(rgb)[:, :-2]
    np.testing.assert_allclose(p.density(rgb), expected, atol=1e-6)


def test_the_one_pass_padding_is_the_context_rounded_up_to_the_pooling_grid():
    from pycount.inference import fullconv
    base = config.model("fcrn")                                  # 4 levels: a grid of 8 px
    assert [fullconv.context_lead(dataclasses.replace(base, context=c)) for c in (0, 8, 20, 32)] \
        == [0, 8, 24, 32]
    model = dataclasses.replace(base, context=20)
    limit = config.density_whole_max_px(model)
    # padded by 24 px on each side, exactly at the limit: one pass; a column more: tiles
    f = next(f for f in range(1000, 3000) if limit % f == 0)
    h, w = f - 48, limit // f - 48
    assert fullconv.in_one_pass(model, h, w) and not fullconv.in_one_pass(model, h, w + 1)
    # the padding counts: an image under the limit whose padded size is over it goes by tiles
    side = int(np.sqrt(limit)) - 10
    assert not fullconv.in_one_pass(model, side, side)


@pytest.mark.parametrize("context, tta, large, blobs", [
    # 70 + 2 * 24 and 90 + 2 * 24, up to the 8 px grid; a quarter turn swaps the sides
    (20, None, False, [(1, 120, 144)] * 4 + [(1, 144, 120)] * 4),
    (20, 4, False, [(1, 120, 144)] * 2 + [(1, 144, 120)] * 2),
    (0, 1, False, [(12, 64, 64)]),                   # 64 px crops at stride 32: 3 rows of 4
    (0, 1, True, [(12, 64, 64)]),                    # however large the image
])
def test_the_net_sees_the_inputs_of_its_counting_regime(monkeypatch, context, tta, large, blobs):
    """A context model counts in one pass (the image with the context, rounded up to the
    pooling grid, around it), under each of its test-time transforms; a plain model by crops of
    its training size at half their stride. Recorded: the blobs the net is given."""
    if large:
        monkeypatch.setattr(config, "density_whole_max_px", lambda model: 2000)
    seen = []

    class Recorder(_ShiftNet):
        def _forward(self, blob):
            seen.append((blob.shape[0],) + blob.shape[2:])
            return super()._forward(blob)
    from pycount.inference import fullconv
    monkeypatch.setitem(fullconv.backends.BACKENDS, "cv2", Recorder)
    ds = config.dataset("synthetic")
    model = dataclasses.replace(config.model("fcrn"), context=context, tta=8)
    p = fullconv.DensityPredictor("deploy", "weights", model, ds, engine="cv2", tta=tta)
    shape = (70, 90) if context else (128, 160)
    p.density(np.zeros(shape + (3,), np.uint8))
    assert sorted(seen) == sorted(blobs)
