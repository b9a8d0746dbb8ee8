"""make bench's measuring tools: FLOP counts, and the PyTorch peer computing Caffe's function."""
import numpy as np
import pytest

caffe = pytest.importorskip("caffe", reason="run `make setup` to build Caffe")
from bench import peers as bench_peers  # noqa: E402
from pycount.nets import builders as nets

TINY = """name: "tiny"
layer {
  name: "data"
  type: "Input"
  top: "data"
  input_param {
    shape {
      dim: 1
      dim: 3
      dim: 8
      dim: 8
    }
  }
}
layer {
  name: "conv"
  type: "Convolution"
  bottom: "data"
  top: "conv"
  convolution_param {
    num_output: 4
    pad: 1
    kernel_size: 3
    stride: 1
  }
}
layer {
  name: "relu"
  type: "ReLU"
  bottom: "conv"
  top: "conv"
}
layer {
  name: "count"
  type: "InnerProduct"
  bottom: "conv"
  top: "count"
  inner_product_param {
    num_output: 5
  }
}
"""


def test_flops_count_multiply_adds_of_conv_and_fc(tmp_path):
    net, _, _ = bench_peers._caffe_net(TINY, tmp_path)
    # conv: 4 x 3 x 3 x 3 weights at 8 x 8 positions; fc: 256 x 5; two FLOPs per multiply-add
    assert bench_peers.net_flops(net) == 2 * (4 * 27 * 64 + 256 * 5)


@pytest.mark.parametrize("dataset, model", [("bacterial", "alexnet-lite"), ("ki67", "alexnet"),
                                            ("bacterial", "resnet50")])
def test_torch_peer_computes_what_caffe_computes(dataset, model, tmp_path):
    torch = pytest.importorskip("torch", reason="the benchmark-only peer: make bench installs it")
    from bench import torch_peer
    proto = (nets.committed_dir(nets.default_plan(dataset, model)) / "deploy.prototxt").read_text()
    net, _, _ = bench_peers._caffe_net(proto, tmp_path)
    for name, layer in zip(net._layer_names, net.layers):     # non-trivial BatchNorm statistics
        if layer.type == "BatchNorm":
            net.params[name][0].data[...] = 0.05
            net.params[name][1].data[...] = 1.5
    peer, out = torch_peer.build(proto)
    torch_peer.load_caffe_weights(peer, net)
    x = np.random.default_rng(0).normal(size=net.blobs["data"].data.shape).astype(np.float32)
    net.blobs["data"].data[...] = x
    ref = net.forward()[out].copy()
    with torch.no_grad():
        got = peer(torch.from_numpy(x)).numpy()
    scale = max(1.0, float(np.abs(ref).max()))
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-4 * scale)


@pytest.mark.parametrize("dataset", ["bacterial", "nuclei"])
def test_torch_peer_computes_what_caffe_computes_for_fcrn(dataset, tmp_path):
    """The density net: Deconvolution (fixed bilinear x2, grouped), Eltwise skips and the Power
    rescale, at the dataset's crop side, on random weights."""
    torch = pytest.importorskip("torch", reason="the benchmark-only peer: make bench installs it")
    from bench import torch_peer
    _, _, proto = bench_peers._deploy("fcrn", dataset, None)
    assert "Deconvolution" in proto and "Power" in proto
    net, _, _ = bench_peers._caffe_net(proto, tmp_path)
    for name, params in net.params.items():          # biases too, so that every term is tested
        if len(params) > 1:
            params[1].data[...] = np.random.default_rng(1).normal(
                0, 0.1, params[1].data.shape).astype(np.float32)
    peer, out = torch_peer.build(proto)
    assert out == "density"
    torch_peer.load_caffe_weights(peer, net)
    x = np.random.default_rng(0).normal(size=(2,) + net.blobs["data"].data.shape[1:]) \
        .astype(np.float32)
    net.blobs["data"].reshape(*x.shape)
    net.reshape()
    net.blobs["data"].data[...] = x
    ref = net.forward()[out].copy()
    assert ref.shape == x.shape[:1] + (1,) + x.shape[2:] and np.abs(ref).max() > 0
    with torch.no_grad():
        got = peer(torch.from_numpy(x)).numpy()
    # the density is ~0.01 cells/px: 1e-4 of its largest value, not 1e-4 absolute
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-4 * float(np.abs(ref).max()))


@pytest.mark.parametrize("name, tta", [("fcrn", 1), ("fcrn", 4), ("fcrn", 8), ("fcrn-ctx", 8)])
def test_torch_density_peer_does_densitypredictors_job(name, tta, tmp_path, monkeypatch):
    """The density count's peer: the same crops (fcrn-ctx: the same padded whole image), flips /
    quarter turns and averaging as pycount's DensityPredictor, so the two densities agree (on an
    image that is not a whole number of crops, and on one smaller than a crop)."""
    pytest.importorskip("torch", reason="the benchmark-only peer: make bench installs it")
    from bench import torch_peer
    from pycount import config
    from pycount.inference.fullconv import DensityPredictor
    ds, model, proto = bench_peers._deploy(name, "bacterial", None)
    net, path, weights = bench_peers._caffe_net(proto, tmp_path)
    peer_net, _ = torch_peer.build(proto)
    torch_peer.load_caffe_weights(peer_net, net)
    ours = DensityPredictor(path, weights, model, ds, engine="caffe", tta=tta)
    peer = torch_peer.DensityPeer(peer_net, model, ds, tta=tta)
    rng = np.random.default_rng(0)
    for shape in ((90, 130, 3), (50, 70, 3)):
        rgb = rng.integers(0, 256, shape, dtype=np.uint8)
        ref = ours.density(rgb)
        got = peer.density(rgb)
        assert got.shape == ref.shape == shape[:2]
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-4 * float(np.abs(ref).max()))
    if model.context:
        assert ours.whole and peer.crops(90, 130) == tta            # one pass per transform
        # past the one-pass limit both go by tiles with their context
        monkeypatch.setattr(config, "DENSITY_WHOLE_MAX_PX", 5_000)
        monkeypatch.setattr(config, "DENSITY_TILE", 48)
        rgb = rng.integers(0, 256, (90, 130, 3), dtype=np.uint8)
        ref = ours.density(rgb)
        np.testing.assert_allclose(peer.density(rgb), ref, rtol=0,
                                   atol=1e-4 * float(np.abs(ref).max()))
        assert peer.crops(90, 130) == tta * 2 * 3
    else:                                   # 64 px crops at 32: rows 0, 26; columns 0, 32, 64, 66
        assert peer.crops(90, 130) == tta * 8


def test_count_cases_cover_every_cnn_at_both_sizes():
    from pycount import config
    cnns = {n for n, m in config.MODELS.items() if not m.classic}
    assert "fcrn" in cnns and not cnns & {"lecount", "ledetect"}
    for size in ((500, 500), (1920, 2560)):
        assert {c[3] for c in bench_peers.COUNT_CASES if c[1:3] == size} == cnns


def test_engines_take_turns_and_keep_their_best():
    calls = []
    jobs = {e: (lambda e=e: calls.append(e)) for e in ("cv2", "caffe", "torch")}
    best = bench_peers._time_engines(jobs, rounds=2)
    assert calls == ["cv2", "caffe", "torch", "torch", "caffe", "cv2"]
    assert set(best) == set(jobs) and all(0 <= t < float("inf") for t in best.values())


def test_count_stage_rows_and_report(tmp_path):
    """One small image through the count stage (a per-window net and fcrn), extrapolating from
    a subset of windows and a band of crops; the report renders without the other stages."""
    pytest.importorskip("torch", reason="the benchmark-only peer: make bench installs it")
    cases = [("bacterial", 128, 128, "alexnet-lite"), ("bacterial", 128, 128, "fcrn")]
    rows = bench_peers.bench_count_peers(cases, max_windows=4, max_crops=40, rounds=1)
    win, dens = rows
    assert win["units"] == "windows" and win["timed_on"] == 4 and win["n"] > 4
    assert dens["units"] == "crops x 8 transforms" and dens["timed_on"] <= 40 < dens["n"]
    assert dens["timed_band_rows"] == 64                      # one row of 64 px crops
    for r in rows:
        assert r["best_engine"] in ("cv2", "caffe")
        assert r["pycount_best_s"] == min(r["cv2_s"], r["caffe_s"])
        assert r["best_over_torch"] == r[f"{r['best_engine']}_over_torch"]
    md = bench_peers.summary({"utc": "2026-01-01T00:00:00", "machine": {"host": "h", "cpus": 2},
                              "gemm": {}, "prepare": [], "forward": [], "train": [],
                              "count": rows, "memory": []})
    assert "| 128x128, fcrn |" in md and "Training with a frozen trunk" not in md
    # the per-window net's ratio also without the heatmaps (scipy's griddata on PyTorch's side)
    fill, grid = (float(v) for v in win["heatmap_s (pycount fill / torch griddata)"].split(" / "))
    assert win["net_only_best_over_torch"] == pytest.approx(
        (win["pycount_best_s"] - fill) / (win["torch_s"] - grid), abs=0.05)
    assert "nets only (heatmap" in md and "net_only_best_over_torch" not in dens


def test_results_of_the_same_day_are_kept_side_by_side(tmp_path, monkeypatch):
    from bench import stages
    monkeypatch.setattr(stages, "RESULTS", tmp_path)
    first = stages.write_results("modes", [{"a": 1}])
    second = stages.write_results("modes", [{"a": 2}])
    assert first != second and second.name.endswith("-modes-2.md")
    assert "| 1 |" in first.read_text() and "| 2 |" in second.read_text()
    # a run that saves as it goes rewrites its own file, not a third one
    assert stages.write_results("modes", [{"a": 3}], into=second) == second
    assert "| 3 |" in second.read_text() and len(list(tmp_path.glob("*.md"))) == 2


def test_results_carry_extra_json_keys_and_a_note_after_the_table(tmp_path, monkeypatch):
    import json
    from bench import stages
    monkeypatch.setattr(stages, "RESULTS", tmp_path)
    md = stages.write_results("kept", [{"a": 1}], extra={"runs": {"x": [1, 2]}},
                              note="\nthe note\n")
    data = json.loads(md.with_suffix(".json").read_text())
    assert data["rows"] == [{"a": 1}] and data["runs"] == {"x": [1, 2]}
    assert md.read_text().endswith("| 1 |\n\nthe note\n")
    # a note without its own blank line is still a paragraph, not a row of the table
    md = stages.write_results("kept", [{"a": 1}], note="the note")
    assert md.read_text().endswith("| 1 |\n\nthe note")


def test_results_name_the_cpu_kind_they_were_measured_on():
    """Two CPU kinds behind one host name measure rates up to 2x apart: the record says which."""
    from bench import stages
    intel = ("processor\t: 0\nmodel name\t: Intel Xeon Gold\nflags\t\t: fpu sse avx avx2 avx512f\n"
             "processor\t: 1\nmodel name\t: Intel Xeon Gold\nflags\t\t: fpu sse avx avx2 avx512f\n")
    assert stages.cpu_kind(intel) == "Intel Xeon Gold, AVX-512"
    assert stages.cpu_kind("model name : AMD EPYC\nflags : sse avx avx2 fma\n") == "AMD EPYC, AVX2"
    assert stages.cpu_kind("model name : Old\nflags : sse sse2\n") == "Old"
    assert "cpu" in stages.machine()
    md = bench_peers.summary({"utc": "2026-01-01T00:00:00", "machine": {
        "host": "h", "cpus": 2, "cpu": "AMD EPYC, AVX2"}, "gemm": {}, "prepare": [],
        "forward": [], "train": [], "count": [], "memory": []})
    assert md.splitlines()[0].endswith("(2026-01-01, h, 2 CPUs (AMD EPYC, AVX2), no GPU)")


def test_make_bench_without_pytorch_names_what_installs_it(monkeypatch):
    """The peer missing stops `pycount bench all` with one line naming the fix, before any stage."""
    import importlib.util
    from bench import cli as bench_cli
    find = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "torch" else find(name, *a))
    monkeypatch.setattr(bench_peers, "run_all", lambda *a, **k: pytest.fail("a stage ran"))
    with pytest.raises(SystemExit, match="PyTorch \\(the peer\\) is missing; `make bench` "
                       "installs it from bench-requirements.txt"):
        bench_cli.main(["all", "--stages", "gemm"])
