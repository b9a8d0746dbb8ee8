"""Paper mode, done once: a frozen pretrained trunk's features of every training patch, cached.

In the paper's ResNets only the new head trains; the trunk (all layers below the head) cannot
change, so running it at every iteration recomputes the same numbers. Here the trunk runs once
over the training LMDB (in its key order, which is the order Caffe's Data layer reads), its output
is cached on disk under a key of (trunk weights, LMDB fingerprint, net), and a head-only net, cut
from the same train_val prototxt so the head is defined exactly once, trains on the cached rows.
The head sees the same batches in the same order as the plain solver would (the trainer feeds
iteration i the batch i + 1, the Data layer's after the curve's starting point read batch 0), so
its weights match the plain solver's (tests/test_features.py).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from pycount import config
from pycount.data import lmdbio
from pycount.nets import builders as nets
from pycount.util.progress import Progress

HEAD_LAYERS = ("count", "score")          # the names the heads have in pycount.nets
LOSS_TYPES = ("EuclideanLoss", "SoftmaxWithLoss")


def _net_param(path: Path):
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format
    p = caffe_pb2.NetParameter()
    text_format.Merge(Path(path).read_text(), p)
    return p


def head_bottom(train_val: Path) -> str:
    """The blob the head reads (the trunk's output), from the train_val prototxt."""
    for layer in _net_param(train_val).layer:
        if layer.name in HEAD_LAYERS:
            return layer.bottom[0]
    raise ValueError(f"{train_val}: no head layer named {' or '.join(HEAD_LAYERS)}")


def head_net_prototxt(train_val: Path, feature_dim: int, batch: int) -> str:
    """A net of Input(features), Input(label), the head and its loss, copied from train_val."""
    from caffe.proto import caffe_pb2
    full = _net_param(train_val)
    bottom = head_bottom(train_val)
    net = caffe_pb2.NetParameter()
    net.name = full.name + " | head on cached features"
    for name, dims in ((bottom, [batch, feature_dim]), ("label", [batch])):
        layer = net.layer.add(name=f"input_{name}", type="Input", top=[name])
        layer.input_param.shape.add().dim.extend(dims)
    for layer in full.layer:
        if layer.name in HEAD_LAYERS or (layer.type in LOSS_TYPES and not layer.include):
            net.layer.add().CopyFrom(layer)
    return str(net)


def cache_key(weights: Path, lmdb_path: Path, deploy: Path) -> str:
    """Identifies a feature cache: the trunk's weights, the LMDB's content, the net."""
    h = hashlib.sha256()
    st = Path(weights).stat()
    h.update(f"{Path(weights).resolve()}:{st.st_size}:{st.st_mtime_ns}".encode())
    h.update(str(lmdbio.read_manifest(lmdb_path).get("fingerprint")).encode())
    h.update(Path(deploy).read_bytes())
    return h.hexdigest()[:20]


def _cached(cache_dir: Path, key: str, rows: int):
    """The cache of `key` holding at least `rows` rows (the whole LMDB's first), or None."""
    found = []
    for f in cache_dir.glob(f"features-{key}*.npy"):
        tail = f.stem[len(f"features-{key}"):]     # "": every record; "-N": the first N
        if tail and not tail[1:].isdigit():
            continue
        held = int(tail[1:]) if tail else float("inf")
        labels = cache_dir / f"labels-{key}{tail}.npy"
        if held >= rows and labels.exists():
            found.append((held, f, labels))
    if not found:
        return None
    _, f, labels = min(found)        # the smallest that suffices: the whole one only if needed
    return np.load(f, mmap_mode="r"), np.load(labels)


def trunk_features(deploy: Path, weights: Path, lmdb_path: Path, model: config.ModelConfig,
                   ds: config.DatasetConfig, cache_dir: Path, batch: int = 64,
                   rows: int | None = None):
    """(features N x D float32 memmap, labels N) of every record of `lmdb_path`, in key order,
    computed once with the trunk of `deploy` + `weights` and cached in `cache_dir`. With `rows`
    (the records a short training reads, ITERS= x batch), of the first `rows` records only: a
    few iterations do not wait for the trunk to pass over a whole LMDB, and a later, longer
    training computes the rest (its cache then holds them all)."""
    import caffe
    key = cache_key(weights, lmdb_path, deploy)
    total = int(lmdbio.read_manifest(lmdb_path)["records"])
    n = min(total, rows) if rows else total
    hit = _cached(cache_dir, key, n) if cache_dir.is_dir() else None
    if hit is not None:
        return hit
    tail = "" if n == total else f"-{n}"
    feat_path = cache_dir / f"features-{key}{tail}.npy"
    label_path = cache_dir / f"labels-{key}{tail}.npy"
    cache_dir.mkdir(parents=True, exist_ok=True)
    net = caffe.Net(str(deploy), caffe.TEST, weights=str(weights))
    bottom = head_bottom_of_deploy(net)
    data = net.blobs["data"]
    data.reshape(batch, *data.data.shape[1:])
    net.reshape()
    dim = int(np.prod(net.blobs[bottom].data.shape[1:]))
    tmp = cache_dir / f".features-{key}.{os.getpid()}.npy"
    feats = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, dim))
    labels = np.empty(n, np.float32)
    try:
        chunk, labs, i = [], [], 0
        with Progress(n, "trunk features (computed once, cached)", "patches") as bar:
            for _, rgb, label in lmdbio.read_lmdb(lmdb_path, limit=n):
                chunk.append(rgb)
                labs.append(label)
                if len(chunk) == batch or i + len(chunk) == n:
                    k = len(chunk)
                    if data.data.shape[0] != k:
                        data.reshape(k, *data.data.shape[1:])
                        net.reshape()
                    data.data[...] = nets.preprocess(np.stack(chunk), model, ds)
                    net.forward(end=bottom)
                    feats[i:i + k] = net.blobs[bottom].data.reshape(k, dim)
                    labels[i:i + k] = labs
                    i += k
                    bar.update(k)
                    chunk, labs = [], []
        feats.flush()
        del feats
        np.save(label_path, labels)
        os.replace(tmp, feat_path)          # the cache exists only once complete
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return np.load(feat_path, mmap_mode="r"), labels


def head_bottom_of_deploy(net) -> str:
    """The blob feeding the head in a loaded deploy net."""
    names = list(net._layer_names)
    for name in HEAD_LAYERS:
        if name in names:
            return net.bottom_names[name][0]
    raise ValueError("deploy net has no head layer")


def write_solver(solver_path: Path, head_net: Path, out: Path) -> Path:
    """The run's solver, pointed at the head-only net."""
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format
    sp = caffe_pb2.SolverParameter()
    text_format.Merge(Path(solver_path).read_text(), sp)
    sp.net = str(head_net)
    sp.ClearField("test_iter")
    sp.ClearField("test_interval")
    sp.ClearField("test_initialization")
    out.write_text(str(sp))
    return out


def feed(net, feats: np.ndarray, labels: np.ndarray, start: int) -> None:
    """Put the batch of cached rows from `start` on (cycling, like the Data layer) into the head
    net's inputs."""
    bottom = next(b for b in net.blobs if b != "label")
    batch = net.blobs[bottom].data.shape[0]
    idx = (start + np.arange(batch)) % len(labels)
    net.blobs[bottom].data[...] = feats[idx].reshape(net.blobs[bottom].data.shape)
    net.blobs["label"].data[...] = labels[idx]
