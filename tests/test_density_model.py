"""The density model of issue #7 end to end: crops and targets, the LMDB pair read in lockstep,
the net's shape, the loss falling, and `pycount count` giving the sum of its heatmap."""
import csv
import dataclasses
import json
import shutil

import numpy as np
import pytest

pytest.importorskip("caffe", reason="run `make setup` to build Caffe")
from pycount import config  # noqa: E402
from pycount.data import density_targets, lmdbio, prepare
from pycount.inference import count, fullconv, predictors
from pycount.inference.run import Run
from pycount.nets import builders as nets
from pycount.reporting import audit, render
from pycount.training import protocol
from pycount.training import trainer as train


@pytest.fixture
def dtiny(tiny):
    """The tiny synthetic set with 64 px crops at stride 64, quarter turns, and a narrow fcrn."""
    ds, _ = tiny
    ds = dataclasses.replace(ds, crop=64, crop_stride=64, rot_step=90)
    base = config.model("fcrn")
    solver = dataclasses.replace(base.solver, batch=8, max_iter=60, test_interval=30,
                                 snapshot=30, stepvalues=(), average_after=0)
    return ds, dataclasses.replace(base, widths=(8, 16, 32, 64), solver=solver)


def test_quarter_turn_crops_tile_the_map_exactly(dtiny):
    ds, _ = dtiny
    s = prepare.load(ds, ["001"])[0]
    crops = list(density_targets.training_crops(s.image, s.centres, 64, 64, 90, ds.sigma))
    # 4 x 4 disjoint windows, 4 quarter turns, image and mirror image
    assert len(crops) == 16 * 4 * 2 == density_targets.count_training_crops(256, 256, 64, 64, 90)
    # each of the 8 transforms tiles the image once: its crops hold exactly the image's count
    sums = np.array([d.sum(dtype=np.float64) for _, d in crops]).reshape(2, 4, 16)
    np.testing.assert_allclose(sums.sum(axis=2), s.count, atol=1e-3)


def test_zoomed_crops_tile_each_size_and_keep_one_cell_per_dot():
    """ZOOM=1: the image at 1, 1/2 and 2 times its size, each tiled exactly by 32 px crops in
    every quarter turn and mirror, so each size's crops hold the image's count; the Gaussians
    widen with the pixels (at twice the size, sigma 4: a peak 4x lower)."""
    rng = np.random.default_rng(5)
    image = rng.integers(0, 255, (128, 128, 3), dtype=np.uint8)
    centres = rng.uniform(20, 108, (9, 2))
    crops = list(density_targets.zoomed_crops(image, centres, 32, 32, 90, 2.0, zoom=1.0))
    n = [16, 4, 64]                      # 32 px tiles of 128, 64 and 256 px images
    assert len(crops) == 8 * sum(n) == density_targets.count_training_crops(128, 128, 32, 32, 90,
                                                                            zoom=1.0)
    sums = np.array([d.sum(dtype=np.float64) for _, d in crops])
    at = np.cumsum([0] + [8 * k for k in n])
    for (a, b), size in zip(zip(at[:-1], at[1:]), (128, 64, 256)):
        assert all(p.shape[:2] == (32, 32) for p, _ in crops[a:b])
        np.testing.assert_allclose(sums[a:b].reshape(8, -1).sum(axis=1), 9, atol=1e-3)
    one = list(density_targets.zoomed_crops(image, [[63.5, 63.5]], 32, 32, 90, 2.0, zoom=1.0))
    peak = {size: max(d.max() for _, d in one[a:b]) for (a, b), size in
            zip(zip(at[:-1], at[1:]), (128, 64, 256))}
    assert peak[128] / peak[256] == pytest.approx(4, rel=0.05)
    # no zoom: exactly training_crops
    plain = list(density_targets.training_crops(image, centres, 32, 32, 90, 2.0))
    same = list(density_targets.zoomed_crops(image, centres, 32, 32, 90, 2.0, zoom=0.0))
    assert len(plain) == len(same) and all(np.array_equal(a[1], b[1]) for a, b in zip(plain, same))


def test_zoom_is_a_variant_with_its_own_folders_and_is_checked():
    ds = config.dataset("nuclei")
    zoomed = config.with_overrides(ds, zoom=0.25)
    assert zoomed.tag == "nuclei-zoom0.25" and config.lmdb_dir(zoomed) != config.lmdb_dir(ds)
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(config.ConfigError, match="ZOOM="):
            config.with_overrides(ds, zoom=bad)
    # sigma widened with the enlarged crops must still fit them (a quarter of the crop)
    with pytest.raises(config.ConfigError) as err:
        config.with_overrides(ds, zoom=1.0, sigma=13)
    assert str(err.value).startswith("ZOOM=1 widens SIGMA=13 to 26 px in its enlarged crops, too "
                                     "wide for nuclei's crop of 96 px: the width may be at most")
    assert str(err.value).endswith("use a smaller zoom or sigma, or a crop of at least 104 px")
    with pytest.raises(config.ConfigError, match="ZOOM=1 widens nuclei's sigma of 2 px to 4 px "
                                                 "in its enlarged crops, too wide for CROP=8"):
        config.with_overrides(ds, zoom=1.0, crop=8)
    # and narrowed in the shrunken ones, stay a Gaussian of more than a pixel's dot
    with pytest.raises(config.ConfigError, match="narrows the sigma of 0.6 px to 0.3 px"):
        config.with_overrides(ds, zoom=1.0, sigma=0.6)
    # a change of under 5 % rounds most images back to their size: the same crops three times
    with pytest.raises(config.ConfigError, match="ZOOM=0.001 is not valid: use a range from 0.05"):
        config.with_overrides(ds, zoom=0.001)
    # ROT=0 takes the training crops as they are: the augmentations had no effect but the tag
    for k, var in (("zoom", "ZOOM=0.25"), ("hed_jitter", "HED=0.25")):
        with pytest.raises(config.ConfigError, match=f"{var} augments .* with ROT=0"):
            config.with_overrides(ds, rot_step=0, **{k: 0.25})


def test_prepare_writes_the_zoomed_crops_for_training_only(dtiny):
    ds, model = dtiny
    zoomed = config.with_overrides(ds, zoom=0.25)
    prepare.prepare(ds, model=model)
    prepare.prepare(zoomed, model=model)

    def n(d, part):
        return lmdbio.read_manifest(config.density_lmdbs(d, part)[0])["records"]
    # 6 training images of 256 px: 4 x 4 crops at 1x, 4 x 4 at 1/1.25 (205 px: the last row and
    # column flush with the edge), 5 x 5 at 1.25 (320 px), each in 4 quarter turns and mirrored
    assert n(ds, "train") == 6 * 16 * 8
    assert n(zoomed, "train") == 6 * (16 + 16 + 25) * 8 == 6 * density_targets.count_training_crops(
        256, 256, 64, 64, 90, zoom=0.25)
    assert n(zoomed, "val") == n(ds, "val")          # validation crops: the images as they are
    assert lmdbio.read_manifest(config.density_lmdbs(zoomed, "train")[0])["zoom"] == 0.25


@pytest.mark.parametrize("angle_step", [30, 90])
def test_targets_follow_the_pixels_under_rotation_and_mirroring(angle_step):
    # one bright pixel per cell: in every crop, the target's peak sits on the brightest pixel
    rng = np.random.default_rng(3)
    centres = rng.integers(70, 186, size=(1, 2)).astype(float)
    image = np.zeros((256, 256, 3), np.uint8)
    x, y = centres[0].astype(int)
    image[y - 1:y + 2, x - 1:x + 2] = 255
    seen = 0
    for pix, dens in density_targets.training_crops(image, centres, 64, 16, angle_step, 2.0):
        if dens.sum() < 0.99:            # the cell is not (wholly) inside this crop
            continue
        py, px = np.unravel_index(dens.argmax(), dens.shape)
        gy, gx = np.unravel_index(pix[..., 0].astype(float).argmax(), dens.shape)
        brightest = pix[..., 0] >= pix[..., 0].max() - 1
        assert brightest[py, px] or abs(py - gy) + abs(px - gx) <= 2, (py, px, gy, gx)
        seen += 1
    assert seen > 20


def test_a_rotated_crop_holds_its_cells_whole():
    # a cell well inside a 30-degree crop contributes exactly 1 (no label is interpolated)
    centres = np.array([[128.0, 128.0]])
    image = np.zeros((256, 256, 3), np.uint8)
    sums = [d.sum(dtype=np.float64) for _, d in
            density_targets.training_crops(image, centres, 64, 32, 30, 2.0)]
    assert max(sums) == pytest.approx(1.0, abs=1e-5)


def test_float_datum_round_trip():
    m = np.random.default_rng(0).random((5, 7)).astype(np.float32)
    np.testing.assert_array_equal(lmdbio.decode_float_datum(lmdbio.encode_float_datum(m, 3)), m)
    with pytest.raises(ValueError, match="H x W"):
        lmdbio.encode_float_datum(np.zeros((2, 2, 2)))


@pytest.mark.parametrize("shape, label", [((64, 64), 0), ((3, 200), 7), ((1, 1), 300)])
def test_float_datum_bytes_are_what_protobuf_writes(shape, label):
    # the hand-written wire format must be the Datum Caffe parses: byte for byte protobuf's own
    from caffe.proto import caffe_pb2
    m = (np.random.default_rng(1).standard_normal(shape) * 10).astype(np.float32)
    m.flat[0] = 0.0                 # zeros are written too (a repeated field keeps every value)
    datum = caffe_pb2.Datum(channels=1, height=shape[0], width=shape[1], label=label)
    datum.float_data.extend(m.ravel().tolist())
    assert lmdbio.encode_float_datum(m, label) == datum.SerializeToString()


def test_net_output_has_the_input_size(dtiny):
    import caffe
    ds, model = dtiny
    plan = nets.NetPlan(model=model, dataset=ds)
    net = caffe.Net(nets.write_net_files(plan, config.runs_dir() / "shape", "x")["deploy"].as_posix(),
                    caffe.TEST)
    for h, w in ((64, 64), (256, 256), (96, 136)):
        net.blobs["data"].reshape(2, 3, h, w)
        net.reshape()
        assert net.forward()["density"].shape == (2, 1, h, w)


def test_prepare_writes_a_lockstep_pair_and_the_loss_falls(dtiny):
    import caffe
    ds, model = dtiny
    out = prepare.prepare(ds, model=model)
    images, targets = config.density_lmdbs(ds, "train")
    assert out["train"]["records"] == 6 * 128
    assert lmdbio.read_manifest(images)["fingerprint"] == \
        lmdbio.read_manifest(targets)["fingerprint"]
    # the Data layers of the train net read crop k and target k together
    t = train.Trainer(ds, model, max_iter=60)
    files = nets.write_net_files(t._plan(), config.runs_dir() / "lockstep", "x")
    net = caffe.Net(str(files["train_val"]), caffe.TRAIN)
    net.forward()
    recs = list(lmdbio.read_lmdb(targets, limit=8, decode=lmdbio.decode_float_datum))
    np.testing.assert_allclose(net.blobs["target"].data[:, 0],
                               np.stack([d for _, d in recs]) * config.DENSITY_SCALE, rtol=1e-6)
    rgb = np.stack([p for _, p, _ in lmdbio.read_lmdb(images, limit=8)])
    np.testing.assert_allclose(net.blobs["data"].data, nets.preprocess(rgb, model, ds), atol=1e-5)
    del net
    summary = t.train(resume=False)
    rows = list(csv.DictReader(open(config.run_dir(ds, model) / "train_log.csv")))
    losses = np.array([float(r["loss"]) for r in rows])
    assert summary["iterations"] == 60 and summary["keep"] == "last"
    assert losses[-3:].mean() < 0.7 * losses[0], f"loss did not fall: {losses}"


def test_count_gives_the_sum_of_its_heatmap(dtiny, tmp_path):
    ds, model = dtiny
    prepare.prepare(ds, model=model)
    train.Trainer(ds, model, max_iter=30).train(resume=False)
    run = config.run_dir(ds, model)
    img = prepare.dataset_root(ds) / "009cell.png"
    # the run's train.json names the stock fcrn; count with this narrow one through load_run's
    # files, as `pycount count` does
    info = json.loads((run / "train.json").read_text())
    assert info["model"] == "fcrn" and info["crop"] == 64
    r = Run(run, run / "deploy.prototxt", run / "model.caffemodel", model, ds, "R")
    for engine in ("cv2", "caffe"):
        pred = fullconv.DensityPredictor(r.deploy, r.weights, model, ds, engine=engine)
        row = count.count_file(img, r, pred, tmp_path / f"{engine}.png")
        heat = pred.density(prepare.load(ds, ["009"])[0].image)
        assert heat.shape == (256, 256)
        assert row["count"] == pytest.approx(heat.sum(), rel=1e-9)
        assert (tmp_path / f"{engine}.png").stat().st_size > 0
    a = fullconv.DensityPredictor(r.deploy, r.weights, model, ds, engine="cv2").density(
        prepare.load(ds, ["009"])[0].image)
    b = fullconv.DensityPredictor(r.deploy, r.weights, model, ds, engine="caffe").density(
        prepare.load(ds, ["009"])[0].image)
    np.testing.assert_allclose(a, b, atol=1e-4 * max(1.0, np.abs(b).max()))
    # any size: smaller than a crop, sides off the pooling grid, in crops or in one pass
    small = prepare.load(ds, ["009"])[0].image[:50, :70]
    for whole in (False, True):
        p = fullconv.DensityPredictor(r.deploy, r.weights, model, ds, whole=whole)
        assert p.density(small).shape == (50, 70)


def test_density_heads_and_shared_are_refused(dtiny):
    ds, model = dtiny
    with pytest.raises(config.ConfigError, match="no C head"):
        nets.net_prototxt(nets.NetPlan(model=model, dataset=ds, head="C"), "deploy")
    with pytest.raises(config.ConfigError, match="fully convolutional"):
        predictors.make_predictor("cv2", ("d", "w"), model, ds, "R", shared=True)


def test_training_without_the_density_lmdbs_names_the_command(dtiny):
    ds, model = dtiny
    prepare.prepare(ds)                               # the patch LMDBs only
    with pytest.raises(train.TrainError, match="MODEL=fcrn"):
        train.Trainer(ds, model)


def test_a_half_replaced_pair_is_refused(dtiny):
    ds, model = dtiny
    prepare.prepare(ds, model=model)
    _, targets = config.density_lmdbs(ds, "val")
    m = lmdbio.read_manifest(targets)
    (targets / lmdbio.MANIFEST).write_text(json.dumps(dict(m, fingerprint="other")))
    with pytest.raises(train.TrainError, match="different `make prepare` runs"):
        train.Trainer(ds, model)._check_lmdb_patch()


def test_validation_crops_and_their_targets_come_from_the_same_window(dtiny):
    ds, model = dtiny
    # a 64 x 128 image (2 windows side by side); cells in the right window only
    image = np.zeros((64, 128, 3), np.uint8)
    image[:, 64:] = 255
    centres = np.array([[90.0, 20.0], [100.0, 40.0], [80.0, 30.0]])
    s = prepare.datasets.Sample("x", image, centres)
    crops = list(prepare._plain_crops([s], ds, model))
    assert [(p.shape, c) for p, c, _ in crops] == [((64, 64, 3), 0), ((64, 64, 3), 3)]
    assert crops[1][0].min() == 255 and crops[0][0].max() == 0
    assert crops[1][2].sum() == pytest.approx(3.0, abs=1e-3)
    assert crops[0][2].shape == (64, 64) and crops[0][2].sum() == pytest.approx(0.0, abs=1e-3)
    # with 8 px of context: 80 px crops, the mean colour (RGB) beyond the image's edge
    ctx = dataclasses.replace(model, context=8)
    ds = dataclasses.replace(ds, mean_bgr=(10.0, 20.0, 30.0))
    crops = list(prepare._plain_crops([s], ds, ctx))
    assert [p.shape for p, _, _ in crops] == [(80, 80, 3)] * 2
    assert crops[0][0][0, 0].tolist() == [30, 20, 10] and crops[0][0][8, 8].tolist() == [0, 0, 0]


def test_training_crop_labels_are_the_rounded_sum_of_their_targets(dtiny):
    ds, model = dtiny
    # a cell 2 px left of the border between two 64 px windows: about 0.77 of it in the left
    # one, whose label is then 1 (rounded), not 0 (cut off)
    s = prepare.datasets.Sample("x", np.zeros((64, 128, 3), np.uint8), np.array([[62.0, 32.0]]))
    recs = list(prepare._density_records([s], ds, 90, model))
    sums = [float(d.sum()) for _, _, d in recs]
    assert any(0.6 < v < 0.9 for v in sums), sums
    assert [c for _, c, _ in recs] == [int(v + 0.5) for v in sums]


def test_a_damaged_target_lmdb_is_written_again(dtiny, capsys):
    ds, model = dtiny
    prepare.prepare(ds, model=model)
    _, targets = config.density_lmdbs(ds, "val")
    data = targets / "data.mdb"
    data.write_bytes(data.read_bytes()[:4096])             # cut short
    capsys.readouterr()
    prepare.prepare(ds, model=model)
    assert "writing it again" in capsys.readouterr().out
    lmdbio.check_whole(targets)


def test_validation_crops_count_the_sums_of_their_targets(tmp_path):
    from pycount.training import validation
    recs = [(np.full((6, 6, 3), c, np.uint8), c, np.full((6, 6), c / 36, np.float32))
            for c in range(7)]
    lmdbio.write_lmdb(tmp_path / "img", iter(recs), n_max=7, patch=6, seed=0, manifest={},
                      targets=tmp_path / "tgt")
    rgb, true = validation.load_val_crops(tmp_path / "img", tmp_path / "tgt", limit=5)
    assert len(rgb) == 5
    # each crop with its own count: its pixels hold it too
    assert true == pytest.approx([float(p[0, 0, 0]) for p in rgb], abs=1e-4)
    # targets with fewer records than the crops: refused
    lmdbio.write_lmdb(tmp_path / "few", iter(recs[:3]), n_max=3, patch=6, seed=0, manifest={},
                      targets=tmp_path / "few_tgt")
    with pytest.raises(train.TrainError, match="do not match"):
        validation.load_val_crops(tmp_path / "img", tmp_path / "few_tgt")


def test_validation_density_sums_leave_out_the_context_and_keep_the_order(monkeypatch, dtiny):
    from pycount.training import validation
    ds, model = dtiny
    ctx = dataclasses.replace(model, context=8)

    class Stub:
        # each crop's map: 32 x 32 of the value of its first pixel (RGB, not preprocessed)
        @staticmethod
        def _forward(x):
            return np.ones((len(x), 1, 32, 32)) * x[:, 0, 0, 0][:, None, None, None]
    monkeypatch.setattr(validation.CaffeBackend, "from_net", lambda *a: Stub)
    monkeypatch.setattr(validation.nets, "preprocess", lambda rgb, m, d: rgb)
    rgb = np.stack([np.full((32, 32, 3), k, np.uint8) for k in range(5)])
    sums = validation.predict_density_sums(None, rgb, ctx, ds, batch=2)
    assert sums.tolist() == [k * 16 * 16 for k in range(5)]     # the central 16 x 16 only
    sums = validation.predict_density_sums(None, rgb, model, ds, batch=2)
    assert sums.tolist() == [k * 32 * 32 for k in range(5)]


def test_protocol_split_draws_n_training_images_per_seed():
    ds = config.dataset("bacterial")
    a = prepare.split(config.with_overrides(ds, train_n=32, seed=1), "unused")
    b = prepare.split(config.with_overrides(ds, train_n=32, seed=2), "unused")
    assert len(a["train"]) == 32 and set(a["train"]) <= set(ds.train_ids)
    assert a["train"] != b["train"]
    assert a == prepare.split(config.with_overrides(ds, train_n=32, seed=1), "unused")
    assert not set(a["val"]) & set(a["train"]) and set(a["test"]) == set(ds.test_ids)
    assert config.with_overrides(ds, train_n=32, seed=1).tag == "bacterial-n32-seed1"
    with pytest.raises(config.ConfigError, match="only 100"):
        config.with_overrides(ds, train_n=101)


def _fake_run(runs, seed, mae, model=None, moved=False):
    """A bacterial N = 32 fcrn run's metrics.json and prototxts, as training would leave them
    (with another `model` when given; with its folders elsewhere when `moved`)."""
    ds = config.with_overrides(config.dataset("bacterial"), train_n=32, seed=seed)
    d = runs / ds.tag / "fcrn"
    plan = nets.run_plan(ds, model or config.model("fcrn", ds))
    if moved:                     # trained under another runs/ and data root, then copied here
        plan = dataclasses.replace(plan, **{k: "/elsewhere/data/" + getattr(plan, k).split("/")[-1]
                                            for k in ("train_source", "val_source",
                                                      "train_targets", "val_targets")})
    nets.write_net_files(plan, d, snapshot_prefix="/elsewhere/runs/snapshots/snap")
    (d / "metrics.json").write_text(json.dumps(dict(
        dataset="bacterial", model="fcrn", head="R", density=True, train_n=32, seed=seed,
        mae=mae, mae_std=1.0, mre=0.01, baseline_mae=50.0, n_images=100)))
    (d / "train.json").write_text(json.dumps(dict(dataset="bacterial", model="fcrn", head="R",
                                                  train_n=32, seed=seed)))
    return d, plan


def test_protocol_summary_and_audit_rows(workdirs):
    runs = config.runs_dir()
    fcrn = config.model("fcrn")
    shorter = dataclasses.replace(fcrn, solver=fcrn.solver.stretched(2000))
    _fake_run(runs, 1, 2.0, moved=True)
    _fake_run(runs, 2, 4.0, model=shorter)
    rows = protocol.summarize("bacterial", "fcrn")
    # seed 2 was trained for 2,000 iterations, today's fcrn trains for more: shown apart, out of
    # the mean (it was averaged in)
    assert rows[0]["train_n"] == 32 and rows[0]["seeds"] == [1]
    assert rows[0]["mae_mean"] == pytest.approx(2.0) and rows[0]["mae_std"] is None
    assert rows[0]["stale_seeds"] == [2] and rows[0]["stale_mae"] == {"2": 4.0}
    # what `make protocol` does next: seed 2 again from scratch, seed 3 for the first time
    assert protocol.pending("bacterial", "fcrn", [32], [1, 2, 3]) == [(32, 2, True),
                                                                      (32, 3, False)]
    report = audit.build(runs)
    density = report["density"]
    ours = [r for r in density if r["what"] == "pycount fcrn"]
    assert ours and ours[0]["n"] == 32 and ours[0]["mae"] == pytest.approx(2.0)
    assert any(r["what"].startswith("FCRN-A") and r["mae"] == 2.9 for r in density)
    md = render.to_markdown(render.to_blocks(report))
    assert "Beyond the paper: density models" in md and "2.00 ± n/a" in md
    assert "seeds 2 trained with older settings" in md
    # a third seed whose metrics.json is damaged is left out; the other two still make the row
    for bad in ('"2.5"', "null", "NaN", "true"):
        d3, _ = _fake_run(runs, 3, 9.0)
        m = json.loads((d3 / "metrics.json").read_text())
        (d3 / "metrics.json").write_text(json.dumps(m).replace('"mae": 9.0', f'"mae": {bad}'))
        rows = protocol.summarize("bacterial", "fcrn")
        assert rows[0]["seeds"] == [1] and rows[0]["mae_mean"] == pytest.approx(2.0), bad
        density = audit.build(runs)["density"]
        assert [r["mae"] for r in density if r["what"] == "pycount fcrn"] == [pytest.approx(2.0)]


def test_drift_sees_the_net_and_the_solver_but_not_folders_or_the_name(workdirs):
    d, plan = _fake_run(config.runs_dir(), 1, 2.0, moved=True)
    today = nets.run_plan(plan.dataset, config.model("fcrn", plan.dataset))
    assert nets.drift(d, today) == []
    tv = d / "train_val.prototxt"         # a net's name only describes it (an older naming)
    tv.write_text(tv.read_text().replace('name: "fcrn-density', 'name: "fcrn-cu2-density', 1))
    assert nets.drift(d, today) == []
    wider = dataclasses.replace(today.model, widths=(32, 64, 128, 256))
    assert nets.drift(d, dataclasses.replace(today, model=wider)) == ["train_val"]
    sgd = dataclasses.replace(today.model, solver=dataclasses.replace(today.model.solver,
                                                                       type="SGD"))
    assert nets.drift(d, dataclasses.replace(today, model=sgd)) == ["solver"]
    (d / "solver.prototxt").unlink()
    assert nets.drift(d, today) == ["solver"]


def test_training_does_not_resume_snapshots_of_another_net(dtiny):
    ds, model = dtiny
    prepare.prepare(ds, model=model)
    train.Trainer(ds, model, max_iter=30).train(resume=False)
    wider = dataclasses.replace(model, widths=(16, 32, 64, 128))
    with pytest.raises(train.TrainError, match="another net.*RESUME=0"):
        train.Trainer(ds, wider, max_iter=60).train(resume=True)
    # the refused run is as it was: its snapshot and prototxts are still those of `model`
    run = config.run_dir(ds, model)
    assert json.loads((run / "snapshots" / "latest.json").read_text())["iter"] == 30
    assert nets.drift(run, nets.run_plan(ds, dataclasses.replace(
        model, solver=dataclasses.replace(model.solver, max_iter=30)))) == []


def test_learning_rate_schedules_match_caffe_policies():
    step = config.SolverConfig(base_lr=0.01, batch=1, max_iter=300, stepsize=100)
    assert [step.lr_at(i, 300) for i in (0, 99, 100, 250)] == pytest.approx([0.01, 0.01, 1e-3, 1e-4])
    poly = config.SolverConfig(base_lr=0.01, batch=1, max_iter=300, lr_policy="poly", power=2)
    assert [poly.lr_at(i, 300) for i in (0, 150, 300)] == pytest.approx([0.01, 0.0025, 0.0])
    text = nets.solver_prototxt(nets.NetPlan(model=dataclasses.replace(
        config.model("fcrn"), solver=poly), dataset=config.dataset("bacterial")), "n", "s")
    assert 'lr_policy: "poly"' in text and "power: 2" in text and "stepsize" not in text


def test_iters_override_moves_the_schedule(dtiny):
    ds, model = dtiny
    prepare.prepare(ds, model=model)
    model = dataclasses.replace(model, solver=dataclasses.replace(
        model.solver, stepvalues=(40, 50), average_after=50))
    t = train.Trainer(ds, model, max_iter=90)
    s = t.model.solver
    assert (s.max_iter, s.stepvalues, s.average_after) == (90, (60, 75), 75)
    text = nets.solver_prototxt(t._plan(), "n", "s")
    assert "max_iter: 90" in text and "stepvalue: 60" in text and "stepvalue: 75" in text
    assert [s.lr_at(i, 90) for i in (59, 60, 75)] == pytest.approx([1e-3, 1e-4, 1e-5])
    fcrn = config.model("fcrn").solver
    assert fcrn.stretched(fcrn.max_iter) == fcrn


def test_weight_average_is_the_running_mean_and_leaves_the_net_as_it_was(dtiny, tmp_path):
    import caffe
    ds, model = dtiny
    net = caffe.Net(nets.write_net_files(nets.NetPlan(model=model, dataset=ds),
                                         tmp_path, "x")["deploy"].as_posix(), caffe.TEST)
    avg = train.WeightAverage(net, start=0)
    w = net.params["conv1"][0]
    for v in (1.0, 2.0, 6.0):
        w.data[...] = v
        avg.add()
    with avg.applied():
        np.testing.assert_array_equal(w.data, 3.0)
    np.testing.assert_array_equal(w.data, 6.0)          # the net's own weights are back
    avg.save(tmp_path / "a.npz")
    again = train.WeightAverage(net, start=0)
    again.load(tmp_path / "a.npz")
    assert again.n == 3
    with again.applied():
        np.testing.assert_array_equal(w.data, 3.0)
    other = train.WeightAverage(caffe.Net(nets.write_net_files(nets.NetPlan(
        model=dataclasses.replace(model, widths=(4, 8, 16, 32)), dataset=ds),
        tmp_path / "o", "x")["deploy"].as_posix(), caffe.TEST), start=0)
    with pytest.raises(train.TrainError, match="does not match"):
        other.load(tmp_path / "a.npz")


def test_a_weight_average_of_no_iteration_leaves_the_net_its_own_weights():
    """Validation before averaging has begun goes through applied() with nothing added: the
    net keeps its own weights there, not 0 / 0 (NaN weights and a NaN validation MAE)."""
    from types import SimpleNamespace
    blob = SimpleNamespace(data=np.array([1.0, -2.0, 3.0], np.float32))
    avg = train.WeightAverage(SimpleNamespace(params={"conv1": [blob]}), start=100)
    with avg.applied():
        np.testing.assert_array_equal(blob.data, [1.0, -2.0, 3.0])
    np.testing.assert_array_equal(blob.data, [1.0, -2.0, 3.0])


def test_training_keeps_the_averaged_weights_and_resumes_the_average(dtiny):
    import caffe
    ds, model = dtiny
    prepare.prepare(ds, model=model)
    solver = dataclasses.replace(model.solver, max_iter=50, snapshot=10, average_after=40)
    first = dataclasses.replace(model, solver=solver)
    run = config.run_dir(ds, model)
    assert train.Trainer(ds, first).train(resume=False)["averaged_iterations"] == 10
    # a longer run resumes the solver and the average from iteration 50's snapshot
    longer = dataclasses.replace(model, solver=dataclasses.replace(solver, max_iter=60))
    assert train.Trainer(ds, longer).train(resume=True)["averaged_iterations"] == 20
    state = json.loads((run / "snapshots" / "latest.json").read_text())
    with np.load(run / "snapshots" / state["average"]) as z:
        assert int(z["n"]) == 20
        mean = z["arr_0"] / 20                              # conv1's weights, averaged
    kept = caffe.Net(str(run / "deploy.prototxt"), str(run / "model.caffemodel"), caffe.TEST)
    last = caffe.Net(str(run / "deploy.prototxt"), str(run / "snapshots" / state["caffemodel"]),
                     caffe.TEST)
    np.testing.assert_allclose(kept.params["conv1"][0].data, mean, rtol=1e-5, atol=1e-7)
    assert not np.allclose(last.params["conv1"][0].data, mean, rtol=1e-5, atol=1e-7)


def test_tta_density_turns_with_the_image(dtiny, tmp_path):
    # the 8-transform average is exactly equivariant: the density of a flipped or turned image is
    # the image's density flipped or turned (the net alone is not: its 1-pass maps differ)
    import caffe
    ds, model = dtiny
    deploy = nets.write_net_files(nets.NetPlan(model=model, dataset=ds), tmp_path, "x")["deploy"]
    weights = tmp_path / "random.caffemodel"
    net = caffe.Net(str(deploy), caffe.TEST)
    for k in net.params:                       # MSRA weights, and nonzero biases
        for b in net.params[k][1:]:
            b.data[...] = np.random.default_rng(1).normal(0, 0.1, b.data.shape)
    net.save(str(weights))
    img = prepare.load(ds, ["001"])[0].image[:128, :192]
    one = fullconv.DensityPredictor(deploy, weights, model, ds, tta=1)
    eight = fullconv.DensityPredictor(deploy, weights, model, ds, tta=8)
    d = eight.density(img)
    np.testing.assert_allclose(eight.density(np.ascontiguousarray(np.rot90(img))), np.rot90(d),
                               rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(eight.density(np.ascontiguousarray(img[:, ::-1])), d[:, ::-1],
                               rtol=1e-4, atol=1e-7)
    assert not np.allclose(one.density(np.ascontiguousarray(np.rot90(img))),
                           np.rot90(one.density(img)), rtol=1e-4, atol=1e-7)
    assert eight.count_image(img).count == pytest.approx(d.sum())
    # tta=4 averages over a subgroup: equivariant exactly under its own transforms only
    four = fullconv.DensityPredictor(deploy, weights, model, ds, tta=4)
    d4 = four.density(img)
    for mirror, k in config.TTA_TRANSFORMS[8]:
        def turn(a):
            return np.ascontiguousarray(np.rot90(a[:, ::-1] if mirror else a, k))
        same = np.allclose(four.density(turn(img)), turn(d4), rtol=1e-4, atol=1e-7)
        assert same == ((mirror, k) in config.TTA_TRANSFORMS[4]), (mirror, k)
    with pytest.raises(config.ConfigError, match="TTA=3"):
        fullconv.DensityPredictor(deploy, weights, model, ds, tta=3)
    with pytest.raises(config.ConfigError, match="density models"):
        predictors.make_predictor("cv2", (deploy, weights), config.model("alexnet-lite"), ds, "R",
                              tta=8)


@pytest.mark.parametrize("convs,decoder", [(1, "up-conv"), (1, "conv-up"), (2, "conv-up")])
def test_net_shape_and_receptive_field_of_each_layout(dtiny, convs, decoder, tmp_path):
    """Every encoder/decoder layout keeps the input's size, and the widest window of input pixels
    that one output pixel's gradient reaches is the receptive field nets.fcrn_receptive_field
    states (for every alignment of that pixel to the coarsest level's 8 px grid)."""
    import caffe
    ds, model = dtiny
    model = dataclasses.replace(model, convs=convs, decoder=decoder)
    plan = nets.NetPlan(model=model, dataset=ds)
    deploy = tmp_path / "deploy.prototxt"
    deploy.write_text("force_backward: true\n" + nets.net_prototxt(plan, "deploy"))
    net = caffe.Net(deploy.as_posix(), caffe.TEST)
    side = 160
    net.blobs["data"].reshape(1, 3, side, side)
    net.reshape()
    image = np.random.default_rng(0).normal(0, 1, (1, 3, side, side)).astype(np.float32)
    assert net.forward(data=image)["density"].shape == (1, 1, side, side)
    spans = []
    for x in range(76, 84):
        seed = np.zeros((1, 1, side, side), np.float32)
        seed[0, 0, side // 2, x] = 1.0
        reach = np.flatnonzero(np.abs(net.backward(density=seed)["data"][0]).sum(axis=(0, 1)))
        spans.append(reach.max() - reach.min() + 1)
    assert max(spans) == nets.fcrn_receptive_field(len(model.widths), convs, decoder)
    with pytest.raises(config.ConfigError, match="decoder"):
        nets.net_prototxt(nets.NetPlan(model=dataclasses.replace(model, decoder="up"),
                                       dataset=ds), "deploy")


def test_a_resumed_density_training_reads_crops_and_targets_on_in_lockstep(dtiny, train_to):
    # both Data layers (crops, targets) read past the batches used before the break: a run
    # stopped at iteration 10 and resumed ends where a 14-iteration run without the break does
    ds, model = dtiny
    prepare.prepare(ds, model=model)
    straight = train_to(ds, model, 14)
    resumed = train_to(ds, model, 14, stop=10)
    assert resumed.keys() == straight.keys()
    for name in straight:
        for a, b in zip(straight[name], resumed[name], strict=True):
            np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6, err_msg=name)


def test_protocol_summary_takes_only_the_draws_runs(workdirs):
    """A redrawn split's run of the same N and seed (RESPLIT=: `bacterial-n32-seed1-split5`) or a
    copy of a run folder matches the protocol's folder pattern; it is not that seed's result
    (it sorted after the seed's own and replaced it; helper-47)."""
    runs = config.runs_dir()
    d, _ = _fake_run(runs, 1, 2.0)
    ds = config.with_overrides(config.dataset("bacterial"), train_n=32, seed=1, resplit=5)
    assert ds.tag == "bacterial-n32-seed1-split5"
    other = runs / ds.tag / "fcrn"
    shutil.copytree(d, other)
    m = json.loads((other / "metrics.json").read_text())
    (other / "metrics.json").write_text(json.dumps(dict(m, mae=9.0, resplit=5)))
    shutil.copytree(d, runs / "bacterial-n32-seed1-copy" / "fcrn")
    row, = protocol.summarize("bacterial", "fcrn")
    assert row["seeds"] == [1] and row["mae_per_seed"] == [2.0] and row["stale_seeds"] == []
