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

from . import config, prepare

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


def machine() -> dict:
    return {"host": platform.node(), "cpus": os.cpu_count(), "python": platform.python_version(),
            "machine": platform.machine(),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def write_results(kind: str, rows: list[dict]) -> Path:
    """bench/results/<date>-<host>-<kind>.json and a Markdown table beside it."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    base = RESULTS / f"{stamp}-{platform.node()}-{kind}"
    base.with_suffix(".json").write_text(json.dumps({"kind": kind, "machine": machine(),
                                                     "utc": datetime.now(timezone.utc).isoformat(),
                                                     "rows": rows}, indent=1))
    keys = list(dict.fromkeys(k for r in rows for k in r))     # every column, in order
    md = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    md += ["| " + " | ".join(str(r.get(k, "")) for k in keys) + " |" for r in rows]
    base.with_suffix(".md").write_text(f"# {kind} benchmark, {stamp}, {platform.node()}\n\n"
                                       + "\n".join(md) + "\n")
    return base.with_suffix(".md")


# (model, dataset whose patch size it trains on, batch); ResNets in paper mode (frozen trunk)
TRAIN_CASES = [("alexnet-lite", "bacterial", 16), ("alexnet-lite", "nuclei", 16),
               ("alexnet-lite", "ki67", 8), ("alexnet", "bacterial", 32),
               ("resnet50", "bacterial", 32), ("resnet152", "bacterial", 32)]


def _random_lmdbs(folder: Path, patch: int, n: int) -> None:
    import numpy as np
    from . import lmdbio
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
    from . import features, nets
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
