"""Benchmarks (`make bench-*`): measured rates written to bench/results/, never asserted in tests."""
from __future__ import annotations

import dataclasses
import json
import os
import platform
import resource
import shutil
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from pycount import config
from pycount.data import prepare
from pycount.inference import predictors

RESULTS = config.ROOT / "bench" / "results"


def _folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def bench_prepare(names: list[str], data_root=None, max_images: dict[str, int] | None = None) -> list[dict]:
    """Time `prepare` (training LMDB at the paper's settings) per dataset, in a scratch folder.

    max_images caps the training images of a dataset (ki67 at full size is ~50 GB of patches);
    the rates stay comparable, the totals are extrapolated and marked so.
    """
    rows = []
    for name in names:
        ds = config.dataset(name)
        ids = prepare.split(ds, data_root)
        cap = (max_images or {}).get(name)
        n_train = len(ids["train"])
        if cap and cap < n_train:                    # cap images: one validation, the rest train
            ds = dataclasses.replace(ds, train_ids=tuple(ids["train"][:cap]), n_val=1)
        prepare.dataset_root(ds, data_root)          # generate a synthetic set outside the timing
        scratch = Path(tempfile.mkdtemp(prefix="pycount-bench-"))
        old = os.environ.get("PYCOUNT_DATA")
        try:
            if ds.generated:                         # keep using the generated images
                (scratch / ds.subdir).symlink_to(config.data_dir() / ds.subdir)
            os.environ["PYCOUNT_DATA"] = str(scratch)
            start = time.perf_counter()
            manifests = prepare.prepare(ds, data_root, force=True)
            seconds = time.perf_counter() - start
            size = _folder_bytes(config.lmdb_dir(ds))
        finally:
            if old is None:
                os.environ.pop("PYCOUNT_DATA", None)
            else:
                os.environ["PYCOUNT_DATA"] = old
            shutil.rmtree(scratch, ignore_errors=True)
        records = sum(m["records"] for m in manifests.values())
        images = len(manifests["train"]["images"]) + len(manifests["val"]["images"])
        rows.append({"dataset": name, "patch": ds.patch, "stride": ds.stride,
                     "rot_step": ds.rot_step, "encoded": ds.encoded, "images": images,
                     "all_train_images": n_train + len(ids["val"]), "patches": records,
                     "seconds": round(seconds, 2), "patches_per_s": round(records / seconds, 1),
                     "mb_per_s": round(size / 2**20 / seconds, 2), "lmdb_mb": round(size / 2**20, 1),
                     "full_set_seconds_estimate": round(seconds * (n_train + len(ids["val"]))
                                                        / images, 1)})
    return rows


def cpu_kind(cpuinfo: str | None = None) -> str:
    """The CPU's model name and its widest vector unit ("AMD EPYC, AVX2"): rates measured on
    two CPU kinds of one host name differ by up to 2x (AVX-512 or not), the ratios much less."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return platform.processor() or "unknown"
    name, flags = "", set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and not name:
            name = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = set(value.split())
    vector = ("AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags
              else "AVX" if "avx" in flags else "")
    return ", ".join(filter(None, [name or platform.processor() or "unknown", vector]))


def machine() -> dict:
    return {"host": platform.node(), "cpus": os.cpu_count(), "cpu": cpu_kind(),
            "python": platform.python_version(), "machine": platform.machine(),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def write_results(kind: str, rows: list[dict], into: Path | None = None,
                  extra: dict | None = None, note: str = "") -> Path:
    """bench/results/<date>-<host>-<kind>.json and a Markdown table beside it (-2, -3, ... after
    the kind when that day's results of the kind are there already: nothing is overwritten);
    `into`: the .md path an earlier call returned, rewritten (a run that saves as it goes);
    `extra`: more top-level keys of the JSON (what the table does not show); `note`: Markdown
    after the table."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    if into is not None:
        base = into.with_suffix("")
    else:
        base, n = RESULTS / f"{stamp}-{platform.node()}-{kind}", 1
        while base.with_suffix(".json").exists() or base.with_suffix(".md").exists():
            n += 1
            base = RESULTS / f"{stamp}-{platform.node()}-{kind}-{n}"
    base.with_suffix(".json").write_text(json.dumps({"kind": kind, "machine": machine(),
                                                     "utc": datetime.now(timezone.utc).isoformat(),
                                                     "rows": rows, **(extra or {})}, indent=1))
    keys = list(dict.fromkeys(k for r in rows for k in r))     # every column, in order
    md = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    md += ["| " + " | ".join(str(r.get(k, "")) for k in keys) + " |" for r in rows]
    base.with_suffix(".md").write_text(f"# {kind} benchmark, {stamp}, {platform.node()}\n\n"
                                       + "\n".join(md) + "\n"
                                       + ("\n" + note.lstrip("\n") if note else ""))
    return base.with_suffix(".md")


# (model, dataset whose patch size it trains on, batch); ResNets in paper mode (frozen trunk)
TRAIN_CASES = [("alexnet-lite", "bacterial", 16), ("alexnet-lite", "nuclei", 16),
               ("alexnet-lite", "ki67", 8), ("alexnet", "bacterial", 32),
               ("resnet50", "bacterial", 32), ("resnet152", "bacterial", 32)]


def _random_lmdbs(folder: Path, patch: int, n: int) -> None:
    import numpy as np
    from pycount.data import lmdbio
    rng = np.random.default_rng(0)
    recs = [(rng.integers(0, 256, (patch, patch, 3), dtype=np.uint8), int(rng.integers(0, 9)))
            for _ in range(n)]
    for part in ("train", "val"):
        lmdbio.write_lmdb(folder / part, iter(recs), n_max=n, patch=patch, seed=0,
                          manifest={"fingerprint": f"bench-{part}-{patch}"})


def bench_train(cases=TRAIN_CASES, iters: int = 4) -> list[dict]:
    """Training images/s of the plain solver per model and patch size, on random patches; for
    the ResNets in paper mode also the head on cached trunk features, and the trunk's one-off
    feature pass, so that the feature cache's speed-up can be read off."""
    import caffe
    from pycount.training import features
    from pycount.nets import builders as nets
    caffe.set_mode_cpu()
    rows = []
    for name, dataset, batch in cases:
        ds = config.dataset(dataset)
        model = config.model(name, ds)
        model = dataclasses.replace(model, solver=dataclasses.replace(model.solver, batch=batch))
        scratch = Path(tempfile.mkdtemp(prefix="pycount-bench-"))
        try:
            n = batch * (iters + 2)
            _random_lmdbs(scratch, ds.input_size, n)
            plan = nets.NetPlan(model=model, dataset=ds, head="R",
                                train_source=str(scratch / "train"),
                                val_source=str(scratch / "val"))
            files = nets.write_net_files(plan, scratch / "run", str(scratch / "snap"))
            solver = caffe.get_solver(str(files["solver"]))
            solver.step(1)                                   # warm-up: allocations, prefetch
            start = time.perf_counter()
            solver.step(iters)
            plain = batch * iters / (time.perf_counter() - start)
            row = {"model": name, "patch": ds.input_size, "batch": batch,
                   "mode": model.finetune, "plain_images_per_s": round(plain, 1)}
            if model.finetune == "head":
                weights = scratch / "trunk.caffemodel"
                solver.net.save(str(weights))
                start = time.perf_counter()
                feats, labels = features.trunk_features(files["deploy"], weights, scratch / "train",
                                                        model, ds, scratch / "cache", batch=batch)
                extract = n / (time.perf_counter() - start)
                head = scratch / "head.prototxt"
                head.write_text(features.head_net_prototxt(files["train_val"], feats.shape[1],
                                                           batch))
                cached = caffe.get_solver(str(features.write_solver(files["solver"], head,
                                                                    scratch / "hs.prototxt")))
                k = 200
                start = time.perf_counter()
                for _ in range(k):
                    features.feed(cached.net, feats, labels, cached.iter * batch)
                    cached.step(1)
                head_rate = batch * k / (time.perf_counter() - start)
                row.update(feature_pass_images_per_s=round(extract, 1),
                           cached_head_images_per_s=round(head_rate, 1),
                           speedup_after_feature_pass=round(head_rate / plain, 1))
            rows.append(row)
            del solver
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return rows


# (dataset whose patch/stride is used, image source, H, W): the paper's three image sizes
EVAL_CASES = [("bacterial", 256, 256), ("nuclei", 500, 500), ("ki67", 1920, 2560)]
EVAL_MODELS = ["alexnet-lite", "alexnet", "resnet50", "resnet152"]


def _bench_image(dataset: str, h: int, w: int, data_root=None):
    """(RGB image, its source): the dataset's first test image where it is readable, else a
    generated one of the same size (ki67: one ki67-synthetic image)."""
    import numpy as np
    from pycount.data import readers as datasets, synthetic
    try:
        ds = config.dataset(dataset)
        ids = prepare.split(ds, data_root)
        s = prepare.load(ds, ids["test"][:1], data_root)[0]
        if s.image.shape[:2] == (h, w):
            return s.image, f"{dataset} test image {s.id}"
    except Exception:                        # noqa: BLE001 (missing data: generate instead)
        pass
    folder = Path(tempfile.mkdtemp(prefix="pycount-bench-img-"))
    try:
        if (h, w) == (1920, 2560):
            synthetic.generate_ki67_synthetic(folder, n_images=1)
            s = datasets.read("generic", folder)[0]
            return s.image, "ki67-synthetic image 001"
        synthetic.generate_synthetic(folder, n_images=1, size=h)
        s = datasets.read("vgg_cells", folder)[0]
        return np.ascontiguousarray(s.image[:h, :w]), f"synthetic {h} px image 001"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _weights(model, ds, folder: Path) -> tuple[Path, Path, str]:
    """(deploy, caffemodel, where the weights come from): a trained run if there is one, else
    seeded random weights with BatchNorm statistics 0 / 1. The speed does not depend on the
    weights; the shared-count difference means something only for trained ones."""
    from pycount.nets import builders as nets
    # a trained run of this dataset, else of another dataset with the same net input (the
    # synthetic demo's alexnet-lite reads bacterial-sized patches)
    for other in [ds.name] + [n for n in config.DATASETS if n != ds.name]:
        try:
            o = config.dataset(other)
        except config.ConfigError:
            continue
        run = config.run_dir(o, config.model(model.name, o))
        if o.input_size == ds.input_size and (run / "model.caffemodel").exists() \
                and (run / "deploy.prototxt").exists():
            return run / "deploy.prototxt", run / "model.caffemodel", f"trained on {o.name}"
    deploy = nets.committed_dir(nets.default_plan(ds.name, model.name)) / "deploy.prototxt"
    path = folder / f"{ds.name}-{model.name}.caffemodel"
    random_net(deploy, path)
    return deploy, path, "random"


def random_net(deploy: Path, out: Path):
    """A pycaffe TEST net of `deploy` with seeded random weights and BatchNorm statistics
    0 / 1, saved to `out`; returns the net."""
    import caffe
    caffe.set_mode_cpu()
    caffe.set_random_seed(0)
    net = caffe.Net(str(deploy), caffe.TEST)
    for name, layer in zip(net._layer_names, net.layers):
        if layer.type == "BatchNorm":
            for blob, v in zip(net.params[name], (0, 1, 1)):
                blob.data[...] = v
    net.save(str(out))
    return net


def bench_eval(models=EVAL_MODELS, backends_=("cv2", "caffe"), cases=EVAL_CASES,
               max_windows: int = 128, data_root=None, on_row=None) -> list[dict]:
    """Seconds to count one image per (image size, model, engine), the paper's per-window way
    and with the trunk shared (pycount.shared), and how far the shared count moves.

    Per-window passes over more than max_windows windows are timed on max_windows of them and
    extrapolated (marked); the count difference is then taken over those windows' sum."""
    import numpy as np
    from pycount.inference import density
    from pycount.data import patches
    from pycount.inference import shared
    rows = []
    for dataset, h, w in cases:
        ds = config.dataset(dataset)
        image, source = _bench_image(dataset, h, w, data_root)
        origins = patches.grid(h, w, ds.patch, ds.stride)
        folder = Path(tempfile.mkdtemp(prefix="pycount-bench-w-"))
        try:
            for name in models:
                model = config.model(name, ds)
                deploy, weights, trained = _weights(model, ds, folder)
                for engine in backends_:
                    plain = predictors.make_predictor(engine, (deploy, weights), model, ds, "R")
                    sp = shared.SharedPredictor(deploy, weights, model, ds, "R", engine=engine)
                    plain(density.window_stack(image, origins[:2], ds.patch))   # warm-up
                    n = len(origins)
                    pick = np.arange(n) if n <= max_windows else \
                        np.linspace(0, n - 1, max_windows).round().astype(int)
                    sub = origins[pick]
                    t0 = time.perf_counter()
                    c_plain = plain(density.window_stack(image, sub, ds.patch))
                    t_plain = (time.perf_counter() - t0) * n / len(sub)
                    centres = patches.patch_centres(origins, ds.patch)
                    t0 = time.perf_counter()
                    density.density_map((h, w), centres, np.ones(n), ds.patch)
                    t_grid = time.perf_counter() - t0
                    row = {"image": f"{h}x{w}", "source": source,
                           "patch/stride": f"{ds.patch}/{ds.stride}", "windows": n,
                           "model": name, "weights": trained, "engine": engine,
                           "per_window_s": round(t_plain + t_grid, 2),
                           "per_window_timed_on": len(sub), "heatmap_s": round(t_grid, 2)}
                    if engine == "caffe" and model.family == "resnet" and h * w > 2e6:
                        # pycaffe keeps every blob of the net: a whole 1920x2560 image through
                        # ResNet-50 took 21 GB here; ResNet-152 would not fit in 24 GB
                        row["shared_s"] = "skipped (memory)"
                    else:
                        t0 = time.perf_counter()
                        c_all = sp.window_outputs(image, origins)      # bare, no 1 % check
                        t_shared = time.perf_counter() - t0
                        c_shared = c_all[pick]
                        diff = abs(c_shared.sum() - c_plain.sum()) / max(abs(c_plain.sum()),
                                                                          1e-9)
                        row.update({
                            "shared_s": round(t_shared + t_grid, 2),
                            "speedup": round((t_plain + t_grid) / (t_shared + t_grid), 1),
                            "count_diff_pct": round(100 * diff, 2),
                            "shared_within_1pct": bool(diff <= 0.01),
                            "max_window_diff": round(float(np.abs(c_shared - c_plain).max()), 3)})
                    rows.append(row)
                    if on_row:                      # results so far survive a crash
                        on_row(rows)
                    print(rows[-1], flush=True)
                    del plain, sp
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    return rows
