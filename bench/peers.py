"""`make bench`: pycount's stages beside their peers, measured in the same run on the same machine.

Peers: PyTorch on the CPU (the same nets, built from the same prototxts by pycount.torch_peer)
and OpenCV's cv2.dnn on our caffemodels. The machine's limit: measured float32 GEMM GFLOP/s, each
net's FLOPs per image, and each engine's share of that peak. Memory: the peak resident size of
prepare, train and count, each in its own process. The summary gives ratios (pycount / PyTorch),
since absolute times on shared machines drift.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from pycount import config
from pycount.nets import builders as nets
from pycount.inference import predictors

# forward: (model, dataset giving the input side, SIZE override or None, batch)
FORWARD_CASES = [("alexnet-lite", "bacterial", None, 64), ("alexnet", "ki67", None, 10),
                 ("resnet50", "nuclei", None, 64), ("resnet50", "bacterial", 224, 10),
                 ("resnet152", "ki67", None, 10)]
# training: (model, dataset, batch); ResNets as in the paper (trunk frozen, head trained)
TRAIN_CASES = [("alexnet-lite", "bacterial", 16), ("alexnet", "bacterial", 32),
               ("resnet50", "bacterial", 32), ("resnet152", "bacterial", 32)]
# counting one image: (dataset giving patch/stride or crop, H, W), each with every CNN of
# config.MODELS (the classic Le.count / Le.detect have no PyTorch peer)
COUNT_SIZES = [("nuclei", 500, 500), ("ki67", 1920, 2560)]
COUNT_MODELS = [name for name, m in config.MODELS.items() if not m.classic]
COUNT_CASES = [(dataset, h, w, name) for dataset, h, w in COUNT_SIZES for name in COUNT_MODELS]


def _best(fn, repeat: int = 3) -> float:
    """Best wall time of `repeat` calls after one warm-up."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def gemm_peak(n: int = 2048) -> dict:
    """float32 matrix product GFLOP/s through numpy (OpenBLAS) and, if present, torch."""
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
    flops = 2.0 * n ** 3
    out = {"numpy_sgemm_gflops": round(flops / _best(lambda: a @ b) / 1e9, 1)}
    try:
        import torch
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        out["torch_sgemm_gflops"] = round(flops / _best(lambda: ta @ tb) / 1e9, 1)
    except ImportError:
        pass
    out["peak_gflops"] = max(out.values())
    return out


def _deploy(model_name: str, dataset: str, size: int | None, head: str = "R") -> tuple:
    ds = config.with_overrides(config.dataset(dataset), size=size) if size else \
        config.dataset(dataset)
    model = config.model(model_name, ds)
    plan = nets.NetPlan(model=model, dataset=ds, head=head)
    return ds, model, nets.net_prototxt(plan, "deploy")


def _caffe_net(prototxt: str, folder: Path):
    """A pycaffe TEST net with seeded random weights, BatchNorm statistics 0 / 1, and its file."""
    from bench.stages import random_net
    path = folder / "deploy.prototxt"
    path.write_text(prototxt)
    weights = folder / "w.caffemodel"
    return random_net(path, weights), path, weights


def net_flops(net) -> float:
    """Multiply-adds x 2 of the Convolution and InnerProduct layers, per image."""
    total = 0.0
    names = list(net._layer_names)
    for name, layer in zip(names, net.layers):
        if layer.type in ("Convolution", "InnerProduct"):
            w = net.params[name][0].data
            top = net.top_names[name][0]
            spatial = int(np.prod(net.blobs[top].data.shape[2:])) if layer.type == "Convolution" \
                else 1
            total += 2.0 * w.size * spatial
    return total


def bench_forward(cases=FORWARD_CASES, peak: float | None = None) -> list[dict]:
    """Forward images/s per net, input side and batch: pycaffe, cv2.dnn, PyTorch."""
    import cv2
    import torch
    from bench import torch_peer
    rows = []
    for name, dataset, size, batch in cases:
        ds, model, proto = _deploy(name, dataset, size)
        with tempfile.TemporaryDirectory(prefix="pycount-bench-") as tmp:
            net, path, weights = _caffe_net(proto, Path(tmp))
            flops = net_flops(net)
            side = ds.input_size
            x = np.random.default_rng(0).standard_normal((batch, 3, side, side)).astype(np.float32)
            net.blobs["data"].reshape(*x.shape)
            net.reshape()
            net.blobs["data"].data[...] = x

            def run_caffe():
                net.forward()
            cvnet = cv2.dnn.readNetFromCaffe(str(path), str(weights))

            def run_cv2():
                cvnet.setInput(x)
                cvnet.forward()
            tnet, _ = torch_peer.build(proto)
            torch_peer.load_caffe_weights(tnet, net)
            tx = torch.from_numpy(x)

            def run_torch():
                with torch.inference_mode():
                    tnet(tx)
            row = {"model": name, "input": side, "batch": batch,
                   "gflop_per_image": round(flops / 1e9, 3)}
            for engine, fn in (("caffe", run_caffe), ("cv2", run_cv2), ("torch", run_torch)):
                rate = batch / _best(fn)
                row[f"{engine}_img_s"] = round(rate, 1)
                if peak:
                    row[f"{engine}_peak_pct"] = round(100 * rate * flops / 1e9 / peak, 1)
            row["caffe_over_torch"] = round(row["caffe_img_s"] / row["torch_img_s"], 2)
            row["best_pycount_over_torch"] = round(max(row["caffe_img_s"], row["cv2_img_s"])
                                                   / row["torch_img_s"], 2)
            rows.append(row)
            print(row, flush=True)
    return rows


def bench_train_peers(cases=TRAIN_CASES, iters: int = 4) -> list[dict]:
    """Training images/s: pycount's solver (plain, and for frozen trunks the cached-feature
    head that `make train` uses) beside a PyTorch loop over the same net, same batch, SGD with
    momentum and a Euclidean (MSE) loss; frozen trunks are frozen in PyTorch too."""
    import torch
    from bench import stages as bench
    from bench import torch_peer
    pyc = {(r["model"], r["patch"]): r for r in bench.bench_train(cases, iters=iters)}
    rows = []
    for name, dataset, batch in cases:
        ds, model, proto = _deploy(name, dataset, None)
        tnet, _ = torch_peer.build(proto)
        frozen = model.family == "resnet" and model.finetune == "head"
        head_names = {"count"}
        params = [p for n, p in tnet.named_parameters()
                  if not frozen or n.split(".")[1] in head_names]
        if frozen:
            for n, p in tnet.named_parameters():
                p.requires_grad_(n.split(".")[1] in head_names)
        tnet.train(not frozen)                  # frozen BatchNorm stays in inference mode
        opt = torch.optim.SGD(params, lr=1e-4, momentum=0.9)
        side = ds.input_size
        x = torch.randn(batch, 3, side, side)
        y = torch.rand(batch, 1) * 8

        def step():
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(tnet(x), y) / 2
            loss.backward()
            opt.step()
        step()
        t0 = time.perf_counter()
        for _ in range(iters):
            step()
        torch_rate = batch * iters / (time.perf_counter() - t0)
        p = pyc[(name, side)]
        row = {"model": name, "input": side, "batch": batch,
               "mode": "trunk frozen" if frozen else "all layers",
               "caffe_img_s": p["plain_images_per_s"], "torch_img_s": round(torch_rate, 1),
               "caffe_over_torch": round(p["plain_images_per_s"] / torch_rate, 2)}
        if "cached_head_images_per_s" in p:
            row["pycount_cached_head_img_s"] = p["cached_head_images_per_s"]
            row["pycount_cached_over_torch"] = round(p["cached_head_images_per_s"] / torch_rate, 1)
        rows.append(row)
        print(row, flush=True)
    return rows


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _time_engines(jobs: dict, rounds: int) -> dict:
    """{engine: best seconds of `rounds` runs of its job}; the engines take turns, in an order
    reversed every round, so that a slow spell of a loaded machine is not one engine's alone."""
    best = {e: float("inf") for e in jobs}
    order = list(jobs)
    for r in range(rounds):
        for e in (order if r % 2 == 0 else order[::-1]):
            best[e] = min(best[e], _timed(jobs[e]))
    return best


def _count_row(h, w, name, unit, n, timed_on, secs: dict, extra: dict) -> dict:
    """One row of the count table: every engine's seconds, pycount's best and its ratio."""
    ours = {e: t for e, t in secs.items() if e != "torch"}
    best = min(ours, key=ours.get)
    row = {"image": f"{h}x{w}", "model": name, **extra, "weights": "random",
           "units": unit, "n": n, "timed_on": timed_on if timed_on < n else "all"}
    for e, t in secs.items():
        row[f"{e}_s"] = round(t, 2)
    row.update(pycount_best_s=round(ours[best], 2), best_engine=best,
               best_over_torch=round(ours[best] / secs["torch"], 3))
    for e, t in ours.items():
        row[f"{e}_over_torch"] = round(t / secs["torch"], 3)
    return row


def _count_windows(dataset, h, w, name, image, engines, max_windows, rounds) -> dict:
    """A per-window net: every window cropped and batched through the engine (the paper's way,
    `pycount count`'s default), pycount's triangle-filled heatmap; PyTorch the same windows,
    the same batch (backends.auto_batch), scipy's griddata. Over max_windows windows, each
    engine is timed on an evenly spread subset and its time scaled to all windows."""
    import torch
    from scipy.interpolate import griddata
    from pycount.data import patches
    from pycount.inference import density
    from pycount.inference import engines as backends
    from bench import torch_peer
    ds, model, proto = _deploy(name, dataset, None)
    origins = patches.grid(h, w, ds.patch, ds.stride)
    centres = patches.patch_centres(origins, ds.patch)
    n = len(origins)
    pick = np.arange(n) if n <= max_windows else \
        np.linspace(0, n - 1, max_windows).round().astype(int)
    sub = origins[pick]
    scale = n / len(sub)
    batch = backends.auto_batch(ds.input_size)           # the same batch for every engine
    with tempfile.TemporaryDirectory(prefix="pycount-bench-") as tmp:
        net, path, weights = _caffe_net(proto, Path(tmp))
        tnet, _ = torch_peer.build(proto)
        torch_peer.load_caffe_weights(tnet, net)
        del net

        def torch_windows(origs):
            with torch.inference_mode():
                for i in range(0, len(origs), batch):
                    stack = density.window_stack(image, origs[i:i + batch], ds.patch)
                    tnet(torch.from_numpy(np.ascontiguousarray(
                        nets.preprocess(stack, model, ds)))).numpy()
        yy, xx = np.mgrid[0:h, 0:w]
        counts = np.random.default_rng(0).uniform(0, 5, n)
        griddata(centres, counts, (xx, yy), method="linear")               # warm-ups
        density.density_map((h, w), centres, counts, ds.patch)
        t_griddata = _timed(lambda: griddata(centres, counts / ds.patch ** 2, (xx, yy),
                                             method="linear"))
        t_fill = _timed(lambda: density.density_map((h, w), centres, counts, ds.patch))
        jobs = {}
        for engine in engines:
            pred = predictors.make_predictor(engine, (path, weights), model, ds, "R",
                                             batch=batch)
            pred(density.window_stack(image, sub[:2], ds.patch))            # warm-up
            jobs[engine] = lambda pred=pred: pred(density.window_stack(image, sub, ds.patch))
        torch_windows(sub[:2])
        jobs["torch"] = lambda: torch_windows(sub)
        secs = {e: t * scale + (t_griddata if e == "torch" else t_fill)
                for e, t in _time_engines(jobs, rounds).items()}
        del jobs
    return _count_row(h, w, name, "windows", n, len(sub), secs,
                      {"patch/stride": f"{ds.patch}/{ds.stride}", "batch": batch,
                       "heatmap_s (pycount fill / torch griddata)":
                           f"{t_fill:.2f} / {t_griddata:.2f}",
                       # the nets alone: the heatmaps' difference (the paper's griddata against
                       # pycount's equal triangle fill) left out of the ratio
                       "net_only_best_over_torch": round(
                           (min(t for e, t in secs.items() if e != "torch") - t_fill)
                           / (secs["torch"] - t_griddata), 3)})


def _count_density(dataset, h, w, name, image, engines, max_crops, rounds) -> dict:
    """The density net (fcrn): pycount's DensityPredictor.count_image per engine, beside the
    same job in PyTorch (torch_peer.DensityPeer: the same crops, 8 flips / quarter turns,
    averaging). Over max_crops crops, everything is timed on a band of the image's top rows and
    scaled by the crops (all transforms) of the whole image over the band's."""
    from pycount.inference.fullconv import DensityPredictor
    from bench import torch_peer
    ds, model, proto = _deploy(name, dataset, None)
    with tempfile.TemporaryDirectory(prefix="pycount-bench-") as tmp:
        net, path, weights = _caffe_net(proto, Path(tmp))
        tnet, _ = torch_peer.build(proto)
        torch_peer.load_caffe_weights(tnet, net)
        del net
        peer = torch_peer.DensityPeer(tnet, model, ds)
        n = peer.crops(h, w)
        band = h
        while not peer.whole and band > ds.crop and peer.crops(band, w) > max_crops:
            band = max(ds.crop, band - peer.stride)
        part = np.ascontiguousarray(image[:band])
        n_sub = peer.crops(band, w)
        scale = n / n_sub
        small = np.ascontiguousarray(image[:ds.crop, :ds.crop])
        jobs = {}
        for engine in engines:
            pred = DensityPredictor(path, weights, model, ds, engine=engine)
            pred.count_image(small)                                           # warm-up
            jobs[engine] = lambda pred=pred: pred.count_image(part)
        peer.count(small)                                                     # warm-up
        jobs["torch"] = lambda: peer.count(part)
        secs = {e: t * scale for e, t in _time_engines(jobs, rounds).items()}
        del jobs
    if peer.whole:
        what = "whole image" if n == peer.tta else f"{n // peer.tta} tiles"
        return _count_row(h, w, name, f"{what} x {peer.tta} transforms", n, n_sub, secs,
                          {"context": model.context})
    return _count_row(h, w, name, f"crops x {peer.tta} transforms", n, n_sub, secs,
                      {"crop/stride": f"{ds.crop}/{peer.stride}", "batch": peer.batch,
                       "timed_band_rows": band if band < h else "all"})


def bench_count_peers(cases=COUNT_CASES, engines=None, max_windows: int = 48,
                      max_crops: int = 450, rounds: int = 2) -> list[dict]:
    """Seconds to count one image, per (image size, model): each of pycount's engines
    (inference.engines.BACKENDS: cv2.dnn, pycaffe) and the same job written plainly in PyTorch,
    random weights. Per-window nets: see _count_windows; fcrn: see _count_density. Large cases
    are timed on a subset (max_windows windows, or a band of about max_crops crops) and
    extrapolated: the `timed_on` column says on how many. Each engine's time is its best of
    `rounds`, the engines taking turns (_time_engines)."""
    from pycount.inference import engines as backends
    from bench import stages as bench
    import cv2
    import torch
    engines = list(engines or backends.BACKENDS)
    # threads come from the environment (OPENBLAS_NUM_THREADS for pycaffe, OPENCV_FOR_THREADS_NUM
    # for cv2.dnn, OMP_NUM_THREADS for PyTorch; `make bench THREADS=n` sets all three)
    threads = (f"cv2 {cv2.getNumThreads()}, openblas "
               f"{os.environ.get('OPENBLAS_NUM_THREADS', 'default')}, torch "
               f"{torch.get_num_threads()}")
    rows, images = [], {}
    for dataset, h, w, name in cases:
        if (dataset, h, w) not in images:
            images[(dataset, h, w)] = bench._bench_image(dataset, h, w)
        image, source = images[(dataset, h, w)]
        model = config.model(name, config.dataset(dataset))
        if model.density:
            row = _count_density(dataset, h, w, name, image, engines, max_crops, rounds)
        else:
            row = _count_windows(dataset, h, w, name, image, engines, max_windows, rounds)
        row.update(source=source, threads=threads, best_of_rounds=rounds)
        rows.append(row)
        print(row, flush=True)
    return rows


MEMORY_JOBS = {
    "prepare bacterial (40/20, 30 deg, 100 images)":
        "from pycount import config; from pycount.data import prepare; "
        "prepare.prepare(config.dataset('bacterial'), "
        "{root!r}, force=True)",
    "train alexnet-lite on bacterial (batch 16, 50 iterations)":
        "from pycount import config; from pycount.training import trainer as train; "
        "ds = config.dataset('bacterial'); "
        "train.Trainer(ds, config.model('alexnet-lite', ds), max_iter=50).train(resume=False)",
    "count one 1920x2560 image, resnet152, per window (cv2; 128 of the 1764 windows)":
        "import numpy as np; from bench import peers as b, stages as bench; "
        "from pycount.data import patches; from pycount.inference import density, predictors; "
        "import pathlib, tempfile; ds, m, p = b._deploy('resnet152', 'ki67', None); "
        "t = pathlib.Path(tempfile.mkdtemp()); net, path, w = b._caffe_net(p, t); del net; "
        "img, _ = bench._bench_image('ki67', 1920, 2560); "
        "o = patches.grid(1920, 2560, ds.patch, ds.stride); "
        "pr = predictors.make_predictor('cv2', (path, w), m, ds, 'R'); "
        "c = pr(density.window_stack(img, o[:128], ds.patch)); "
        "density.density_map((1920, 2560), patches.patch_centres(o, ds.patch), "
        "np.resize(c, len(o)), ds.patch)",
    "count one 1920x2560 image, resnet152, shared trunk (cv2, no 1 % check)":
        "import numpy as np; from bench import peers as b, stages as bench; "
        "from pycount.data import patches; from pycount.inference import shared; "
        "import pathlib, tempfile; ds, m, p = b._deploy('resnet152', 'ki67', None); "
        "t = pathlib.Path(tempfile.mkdtemp()); net, path, w = b._caffe_net(p, t); del net; "
        "img, _ = bench._bench_image('ki67', 1920, 2560); "
        "o = patches.grid(1920, 2560, ds.patch, ds.stride); "
        "sp = shared.SharedPredictor(path, w, m, ds, 'R', engine='cv2'); "
        "sp.window_outputs(img, o)",
}


def bench_memory(data_root=None) -> list[dict]:
    """Peak resident memory of each stage, each in a fresh Python process, one after the other
    in one scratch folder (train reads what prepare wrote)."""
    rows = []
    root = str(Path(data_root).resolve()) if data_root else None
    with tempfile.TemporaryDirectory(prefix="pycount-bench-mem-") as tmp:
        env = dict(os.environ, PYCOUNT_DATA=str(Path(tmp) / "data"),
                   PYCOUNT_RUNS=str(Path(tmp) / "runs"), GLOG_minloglevel="2")
        for label, code in MEMORY_JOBS.items():
            # VmHWM, not ru_maxrss: the latter survives exec and would report the parent's size
            script = (f"import sys; sys.path.insert(0, {str(config.ROOT)!r})\n"
                      + code.format(root=root) + "\n"
                      "print('PEAK_KB', [l.split()[1] for l in open('/proc/self/status') "
                      "if l.startswith('VmHWM')][0])\n")
            t0 = time.perf_counter()
            p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                               env=env)
            secs = time.perf_counter() - t0
            peak = [l for l in p.stdout.splitlines() if l.startswith("PEAK_KB")]
            err = p.stderr.strip().splitlines()[-1] if p.stderr.strip() else str(p.returncode)
            rows.append({"stage": label, "seconds": round(secs, 1),
                         "peak_rss_mb": round(int(peak[0].split()[1]) / 1024, 1) if peak else None,
                         "status": "ok" if p.returncode == 0 else f"failed: {err}"})
            print(rows[-1], flush=True)
    return rows


def summary(res: dict) -> str:
    """The Markdown report: ratios first, then every table."""
    lines = [f"# pycount benchmark beside PyTorch and cv2.dnn ({res['utc'][:10]}, "
             f"{res['machine']['host']}, {res['machine']['cpus']} CPUs"
             f"{' (' + res['machine']['cpu'] + ')' if res['machine'].get('cpu') else ''}, "
             f"no GPU)", ""]
    g = res.get("gemm") or {}
    if g:
        lines += [f"Machine limit: float32 GEMM {g['peak_gflops']} GFLOP/s "
                  f"(numpy {g.get('numpy_sgemm_gflops')}, torch {g.get('torch_sgemm_gflops')}).",
                  ""]
    lines += ["## Ratios (pycount / PyTorch; above 1 for rates, below 1 for times, pycount is "
              "ahead)", "", "| what | case | ratio |", "|---|---|---:|"]
    for r in res["forward"]:
        lines.append(f"| inference images/s (best of pycaffe, cv2.dnn) | {r['model']} "
                     f"{r['input']} px, batch {r['batch']} | {r['best_pycount_over_torch']} |")
    for r in res["train"]:
        case = f"{r['model']} {r['input']} px, batch {r['batch']}, {r['mode']}"
        lines.append(f"| training images/s (solver, the same step in both) | {case} | "
                     f"{r['caffe_over_torch']} |")
        if "pycount_cached_over_torch" in r:   # unlike work: stated as such
            lines.append(f"| training images/s (head on cached trunk features, the one-off trunk "
                         f"pass not counted; PyTorch recomputes the trunk each step) | {case} | "
                         f"{r['pycount_cached_over_torch']} |")
    for r in res["count"]:
        if "best_over_torch" not in r:         # a report of the earlier format
            continue
        lines.append(f"| time to count one image (pycount's best engine: {r['best_engine']}) "
                     f"| {r['image']}, {r['model']} | {r['best_over_torch']} |")
        if "net_only_best_over_torch" in r:
            lines.append(f"| the same, nets only (heatmap: pycount's triangle fill against "
                         f"scipy's griddata, left out) | {r['image']}, {r['model']} | "
                         f"{r['net_only_best_over_torch']} |")
    lines.append("")
    if res.get("count"):
        lines.append("Counting: random weights; each engine does what `pycount count` does by "
                     "default (per-window nets: every window through the net, batched, the "
                     "triangle-filled heatmap; fcrn: DensityPredictor, crops at half stride under 8 "
                     "flips / quarter turns), PyTorch the same job from the same prototxt (scipy "
                     "griddata for the per-window heatmap). Where `timed_on` is below `n`, every "
                     "engine was timed on that many windows (an evenly spread subset) or crops (a "
                     "band of the image's top rows, all 8 transforms) and its time scaled to all of "
                     "them. Each engine's time is its best of `best_of_rounds` runs, the engines "
                     "taking turns; `threads` are each engine's threads (`make bench THREADS=n`). "
                     "The shared trunk (`--shared`, off by default) is not in this table: "
                     "`make bench-eval` times it.")
    if res.get("train"):
        lines.append("Training with a frozen trunk: pycount runs the trunk once over the training "
                     "LMDB (at pycaffe's forward rate) and then trains the head on cached features; "
                     "the PyTorch loop recomputes the frozen trunk at every step.")
    lines.append("")
    for key, title in (("prepare", "Prepare (LMDB writing), patches/s"), ("forward", "Forward, images/s and share of the GEMM peak"),
                       ("train", "Training, images/s"),
                       ("count", "Counting one image, seconds (per engine; "
                                 "extrapolated where timed_on < n)"),
                       ("memory", "Peak memory per stage")):
        rows = res.get(key)
        if not rows:
            continue
        keys = list(dict.fromkeys(k for r in rows for k in r))
        lines += [f"## {title}", "", "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
        lines += ["| " + " | ".join(str(r.get(k, "")) for k in keys) + " |" for r in rows]
        lines.append("")
    return "\n".join(lines)


STAGES = ("gemm", "prepare", "forward", "train", "count", "memory")


def run_all(data_root=None, stages=STAGES,
            count_options: dict | None = None) -> Path:
    """Run `stages` and write bench/results/<date>-<host>[-<stages>].{json,md} (the stages named
    when not all ran; -2, -3, ... after it when that day's file is there already: a report is
    never overwritten); count_options go to bench_count_peers (max_windows, max_crops: the
    extrapolation subsets)."""
    from datetime import datetime, timezone
    import platform
    from bench.stages import RESULTS, machine
    res = {"utc": datetime.now(timezone.utc).isoformat(), "machine": machine(),
           "gemm": {}, "prepare": [], "forward": [], "train": [], "count": [], "memory": []}
    name = f"{res['utc'][:10]}-{platform.node()}"
    if set(stages) != set(STAGES):
        name += "-" + "-".join(s for s in STAGES if s in stages)
    base, n = RESULTS / name, 1
    while base.with_suffix(".json").exists() or base.with_suffix(".md").exists():
        n += 1
        base = RESULTS / f"{name}-{n}"
    if "gemm" in stages:
        res["gemm"] = gemm_peak()
        print(res["gemm"], flush=True)
    peak = res["gemm"].get("peak_gflops")
    if "prepare" in stages:                 # no peer: PyTorch has no LMDB writer of its own
        from bench.stages import bench_prepare
        res["prepare"] = bench_prepare(["bacterial", "nuclei"], data_root)
    if "forward" in stages:
        res["forward"] = bench_forward(peak=peak)
    if "train" in stages:
        res["train"] = bench_train_peers()
    if "count" in stages:
        res["count"] = bench_count_peers(**(count_options or {}))
    if "memory" in stages:
        res["memory"] = bench_memory(data_root)
    RESULTS.mkdir(parents=True, exist_ok=True)
    base.with_suffix(".json").write_text(json.dumps(res, indent=1))
    base.with_suffix(".md").write_text(summary(res) + "\n")
    return base.with_suffix(".md")
