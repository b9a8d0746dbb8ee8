"""Inference backends: a trained deploy net as a function from RGB patches to predicted counts.

Two engines run the same deploy.prototxt + model.caffemodel: pycaffe (the reference, the engine
that trained the net) and OpenCV's DNN module (`cv2.dnn.readNetFromCaffe`, CPU), which runs the
AlexNets 2-3x faster on CPU here and needs no Caffe build. Both see the same input blob,
made by nets.preprocess; this module is the leaf of pycount.inference (predictors.py builds the
predictor a run asks for); tests/test_backends.py checks that they agree on every committed net.
"""
from __future__ import annotations

import importlib
import tempfile
from pathlib import Path


import numpy as np

from pycount import config
from pycount.data import patches
from pycount.errors import RunError
from pycount.inference import density
from pycount.nets import builders as nets
from pycount.util import progress


def auto_batch(side: int) -> int:
    """Patches per forward call: about 160k input pixels (100 at 40 px, 44 at 60 px, 4 at
    200 px). Larger batches were slower on this CPU, as their activations leave the caches:
    cv2.dnn, ResNet-50 at 200 px: 17.9 img/s at batch 4, 16.6 at 64 (PyTorch 16.5 and 8.0); at
    60 px: 122 at 8, 104 at 177; alexnet-lite at 40 px: 1089 at 8, 894 at 256."""
    return int(min(256, max(4, 160_000 // (side * side))))


class Predictor:
    """Callable on RGB uint8 patches (N x p x p x 3), returning N predicted counts.

    Patches at the dataset's patch side are resized to the net's input side (SIZE) first.
    R head: the regressed count. C head: the most probable class (the paper's prediction), or,
    with `expected=True`, the expected class under the softmax.
    """

    def __init__(self, model: config.ModelConfig, ds: config.DatasetConfig, head: str,
                 batch: int | None = None, expected: bool = False):
        if head not in nets.HEADS:
            raise config.ConfigError(f"unknown head {head!r}; valid: {', '.join(nets.HEADS)}")
        self.model, self.ds, self.head = model, ds, head
        self.batch, self.expected = auto_batch(ds.input_size) if batch is None \
            else max(1, int(batch)), expected
        # the deploy nets' output blob
        self.output = "density" if model.density else "count" if head == "R" else "prob"

    def _forward(self, blob: np.ndarray) -> np.ndarray:
        """One chunk of the input blob (n x 3 x s x s float32) -> the output blob's array."""
        raise NotImplementedError

    def outputs(self, rgb: np.ndarray) -> np.ndarray:
        """The net's raw outputs: N regressed counts (R) or N x K class probabilities (C)."""
        rgb = np.asarray(rgb)
        side = self.ds.input_size
        chunks = []
        for i in range(0, len(rgb), self.batch):
            part = rgb[i:i + self.batch]
            if part.shape[1:3] != (side, side):      # a batch at a time: never a second stack
                part = np.stack([patches.resize_patch(p, side) for p in part])
            chunks.append(np.asarray(self._forward(nets.preprocess(part, self.model, self.ds)),
                                     np.float64))
            progress.step(i + len(chunks[-1]), len(rgb))
        if not chunks:
            raise ValueError("no patches to predict")
        out = np.concatenate(chunks)
        return out.reshape(len(rgb)) if self.head == "R" else out.reshape(len(rgb), -1)

    def to_counts(self, y: np.ndarray) -> np.ndarray:
        """Raw outputs -> counts: R as is; C the most probable class, or the expected one."""
        if self.head == "R":
            return y
        return y @ np.arange(y.shape[1]) if self.expected else y.argmax(axis=1).astype(np.float64)

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        return self.to_counts(self.outputs(rgb))

    def count_image(self, image: np.ndarray) -> density.ImageCount:
        """The paper's count of a whole image: sliding window at the dataset's patch and stride,
        patch counts at the patch centres, griddata density, its integral."""
        h, w = image.shape[:2]
        p = self.ds.patch
        if h < p or w < p:
            if not self.ds.pad:
                raise ValueError(f"the image is {w}x{h} px, smaller than the run's {p}x{p} px "
                                 f"patches: count images at least {p} px on each side (a run "
                                 f"trained on your own folder pads smaller ones, as it did in "
                                 f"training)")
            # as prepare.pad_small did to the training images: mean colour, bottom and right
            fill = tuple(float(v) for v in self.ds.mean_bgr[::-1]) or (0.0, 0.0, 0.0)
            image = patches.pad_to(image, p, fill)
        return density.count_image(image, p, self.ds.stride, self)


def _unreadable(weights, deploy, why: str) -> RunError:
    return RunError(f"{weights} cannot be used with {deploy}: {why}. The file is truncated or "
                    f"belongs to another net: copy the run folder again, or train it again "
                    f"(make train RESUME=0)")


def read_caffemodel(weights) -> dict[str, list[np.ndarray]]:
    """A caffemodel's weights by layer name (float32 arrays in the file's blob shapes), read in
    Python: Caffe's own loader aborts the process (a glog CHECK) on a truncated file."""
    from caffe.proto import caffe_pb2
    param = caffe_pb2.NetParameter()
    try:
        param.ParseFromString(Path(weights).read_bytes())
    except Exception as e:                 # protobuf's DecodeError
        raise _unreadable(weights, "this net", f"not a complete caffemodel ({e})") from None
    out = {}
    for layer in list(param.layer) + list(param.layers):
        arrays = []
        for src in layer.blobs:
            shape = tuple(src.shape.dim) if src.HasField("shape") else \
                tuple(d for d in (src.num, src.channels, src.height, src.width))
            a = np.asarray(src.data, np.float32)
            arrays.append(a.reshape(shape) if int(np.prod(shape)) == a.size else a)
        out[layer.name] = arrays
    return out


def copy_weights(net, arrays: dict[str, list[np.ndarray]], weights) -> None:
    """Copy weights (read_caffemodel's dict) into a pycaffe net, every shape checked first;
    every layer of the net with weights must be in the file (one left out would count with its
    filler's random values: another net's file, e.g. the other head's, in a run from before
    train.json recorded the model's sha256)."""
    missing = [name for name in net.params if name not in arrays]
    if missing and len(missing) < len(net.params):
        raise _unreadable(weights, "this net", f"the file lacks the weights of layer "
                          f"{missing[0]}" + (f" and {len(missing) - 1} more" if len(missing) > 1
                                             else ""))
    copied = 0
    for name, blobs in net.params.items():
        if name not in arrays:
            continue
        src_blobs = arrays[name]
        if len(src_blobs) != len(blobs):
            raise _unreadable(weights, "this net", f"layer {name} has {len(src_blobs)} "
                              f"weight blobs, the net {len(blobs)}")
        for i, (dst, src) in enumerate(zip(blobs, src_blobs)):
            if src.size != dst.data.size:
                raise _unreadable(weights, "this net", f"layer {name} blob {i} holds "
                                  f"{src.size} values, the net needs {dst.data.size}")
            dst.data[...] = src.reshape(dst.data.shape)
        copied += 1
    if net.params and not copied:
        raise _unreadable(weights, "this net", "no layer of the net is in the file")


def folded_net(deploy, arrays: dict[str, list[np.ndarray]], workdir: Path):
    """pycaffe TEST net of `deploy` with its BatchNorm + Scale pairs folded into the
    convolutions (pycount.nets.fold), and the weights to copy into it; the deploy net as it is
    when nothing folds or the prototxt does not parse here."""
    import caffe
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format
    from pycount.nets import fold
    param = caffe_pb2.NetParameter()
    try:
        text_format.Merge(Path(deploy).read_text(), param)
    except text_format.ParseError:         # a V1 net: Caffe's own path
        return caffe.Net(str(deploy), caffe.TEST), arrays
    chains = fold.foldable(param)
    if not chains:
        return caffe.Net(str(deploy), caffe.TEST), arrays
    param, arrays = fold.fold(param, arrays)
    path = workdir / "deploy-folded.prototxt"
    path.write_text(text_format.MessageToString(param))
    return caffe.Net(str(path), caffe.TEST), arrays


class CaffeBackend(Predictor):
    """pycaffe, in the mode the caller set (pycount.device.set_device); the net is reshaped to each chunk,
    so a short last chunk costs no padded work. BatchNorm + Scale are folded into the convolution
    before them (config.FOLD_BATCHNORM; fold=False keeps the deploy net as written)."""

    def __init__(self, deploy, weights, model, ds, head, batch: int | None = None,
                 expected: bool = False, fold: bool | None = None):
        import caffe
        from pycount.nets.check import check_deploy
        super().__init__(model, ds, head, batch, expected)
        check_deploy(deploy)
        arrays = read_caffemodel(weights)
        if config.FOLD_BATCHNORM if fold is None else fold:
            with tempfile.TemporaryDirectory(prefix="pycount-fold-") as tmp:
                self.net, arrays = folded_net(deploy, arrays, Path(tmp))
        else:
            self.net = caffe.Net(str(deploy), caffe.TEST)
        copy_weights(self.net, arrays, weights)

    @classmethod
    def from_net(cls, net, model, ds, head, batch: int | None = None, expected: bool = False):
        """Wrap a pycaffe net already built (e.g. one sharing its weights with a solver)."""
        self = cls.__new__(cls)
        Predictor.__init__(self, model, ds, head, batch, expected)
        self.net = net
        return self

    def _forward(self, blob):
        data = self.net.blobs[self.net.inputs[0]]
        if data.data.shape != blob.shape:
            data.reshape(*blob.shape)
            self.net.reshape()
        data.data[...] = blob
        return self.net.forward()[self.output].copy()   # Caffe reuses its output buffer


class Cv2DnnBackend(Predictor):
    """OpenCV DNN on the CPU (its own thread pool; cv2.setNumThreads limits it)."""

    def __init__(self, deploy, weights, model, ds, head, batch: int | None = None, expected: bool = False):
        import cv2
        from pycount.nets.check import check_deploy, input_dims
        super().__init__(model, ds, head, batch, expected)
        check_deploy(deploy)
        try:
            self.net = cv2.dnn.readNetFromCaffe(str(deploy), str(weights))
            # OpenCV checks the weights' shapes only when it builds the layers: one forward of
            # the declared input now, rather than a cv2.error in the middle of counting
            dims = input_dims(Path(deploy).read_text())
            if dims:
                self.net.setInput(np.zeros([1] + dims[1:], np.float32))
                self.net.forward()
        except cv2.error as e:
            raise _unreadable(weights, deploy, str(e).strip().splitlines()[-1]) from None
        self.net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
        self.net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)

    def _forward(self, blob):
        self.net.setInput(np.ascontiguousarray(blob))
        return self.net.forward(self.output)


BACKENDS = {"cv2": Cv2DnnBackend, "caffe": CaffeBackend}
# "auto": the faster engine for the model on the CPU (config.count_engine), pycaffe on a GPU
DEFAULT_BACKEND = config.DEFAULT_ENGINE
CHOICES = ("auto",) + tuple(BACKENDS)


# what a classic method (Le.count, Le.detect) counts with: its own numpy code, on the CPU
CLASSIC_ENGINE = "numpy"


def resolve(name: str | None, model: config.ModelConfig, gpu: int = -1) -> str:
    """The engine to run: `name` as given, or for None / "auto" caffe on a GPU and otherwise the
    model's faster CPU engine; cv2 when that is caffe and pycaffe is not importable. A classic
    method has no engine to choose and no GPU path: naming either is refused, as is a GPU for
    any engine but caffe, and caffe (named, or for a GPU) where pycaffe is not importable."""
    if model.classic:
        if name not in (None, "auto", CLASSIC_ENGINE):
            raise config.ConfigError(f"{model.name} counts with its own numpy code, not a net "
                                     f"engine: drop --backend {name} (BACKEND=)")
        if gpu >= 0:
            raise config.ConfigError(f"{model.name} runs on the CPU only: drop --gpu {gpu} "
                                     f"(GPU=)")
        return CLASSIC_ENGINE
    if name not in (None, "auto"):
        if name not in BACKENDS:
            raise config.ConfigError(f"unknown backend {name!r}; valid: {', '.join(CHOICES)}")
        if gpu >= 0 and name != "caffe":
            raise config.ConfigError(f"the {name} backend runs on the CPU; for GPU={gpu} use "
                                     f"the caffe backend (BACKEND=caffe, --backend caffe)")
        pick = name
    elif gpu >= 0:
        pick = "caffe"
    else:
        pick = config.count_engine(model)
        if pick == "caffe" and _pycaffe_missing():
            return "cv2"
    missing = _pycaffe_missing() if pick == "caffe" else None
    if missing:
        raise config.ConfigError(f"the caffe backend needs pycaffe ({missing}); build it with "
                                 f"`make caffe`, or count on the CPU with --backend cv2 "
                                 f"(BACKEND=cv2)")
    return pick


def _pycaffe_missing() -> ImportError | None:
    """Why pycaffe cannot be imported here, or None when it can."""
    try:
        importlib.import_module("caffe")
    except ImportError as e:
        return e
    return None
