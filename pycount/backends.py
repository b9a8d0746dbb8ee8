"""Inference backends: a trained deploy net as a function from RGB patches to predicted counts.

Two engines run the same deploy.prototxt + model.caffemodel: pycaffe (the reference, the engine
that trained the net) and OpenCV's DNN module (`cv2.dnn.readNetFromCaffe`, CPU), which runs the
AlexNets 2-3x faster on CPU here and needs no Caffe build. Both see the same input blob,
made by nets.preprocess; tests/test_backends.py checks that they agree on every committed net.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from . import config, nets


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
        if rgb.shape[1:3] != (side, side):
            from .prepare import resize_patch          # lazily: prepare pulls in the readers
            rgb = np.stack([resize_patch(p, self.ds) for p in rgb])
        chunks = [np.asarray(self._forward(nets.preprocess(rgb[i:i + self.batch], self.model,
                                                           self.ds)), np.float64)
                  for i in range(0, len(rgb), self.batch)]
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


class CaffeBackend(Predictor):
    """pycaffe, in the mode the caller set (train.set_device); the net is reshaped to each chunk,
    so a short last chunk costs no padded work."""

    def __init__(self, deploy, weights, model, ds, head, batch: int | None = None, expected: bool = False):
        import caffe
        super().__init__(model, ds, head, batch, expected)
        self.net = caffe.Net(str(deploy), caffe.TEST, weights=str(weights))

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
        super().__init__(model, ds, head, batch, expected)
        self.net = cv2.dnn.readNetFromCaffe(str(deploy), str(weights))
        self.net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
        self.net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)

    def _forward(self, blob):
        self.net.setInput(np.ascontiguousarray(blob))
        return self.net.forward(self.output)


BACKENDS = {"cv2": Cv2DnnBackend, "caffe": CaffeBackend}
# the faster on CPU: 0.18 s against 0.49 s for pycaffe on 144 alexnet-lite patches (2 cores)
DEFAULT_BACKEND = "cv2"


def make_backend(name: str, run_or_paths, model: config.ModelConfig | None = None,
                 ds: config.DatasetConfig | None = None, head: str | None = None,
                 batch: int | None = None, expected: bool = False, shared: bool = False,
                 tta: int | None = None) -> Predictor:
    """A predictor by backend name, for a run folder (its train.json gives model, dataset and
    head) or for (deploy.prototxt, weights) paths with model, ds and head given. shared=True:
    the convolutional trunk runs once per image instead of once per window (pycount.shared).
    tta: a density model's test-time augmentation (None: the model's own setting)."""
    if name not in BACKENDS:
        raise config.ConfigError(f"unknown backend {name!r}; valid: {', '.join(BACKENDS)}")
    if isinstance(run_or_paths, (str, Path)):
        from .count import load_run                 # lazily: count imports this module
        run = load_run(run_or_paths)
        deploy, weights, model, ds, head = run.deploy, run.weights, run.model, run.ds, run.head
    else:
        deploy, weights = run_or_paths
        if model is None or ds is None or head is None:
            raise ValueError("make_backend: give model, ds and head with explicit paths")
    if model.density:
        if shared:
            raise config.ConfigError(f"{model.name} is fully convolutional: it already runs once "
                                     f"per image (drop --shared / SHARED=1)")
        from .fullconv import DensityPredictor
        return DensityPredictor(deploy, weights, model, ds, engine=name, tta=tta)
    if tta not in (None, 1):
        raise config.ConfigError(f"TTA={tta}: test-time augmentation is for density models "
                                 f"(MODEL=fcrn), not {model.name}")
    if shared:
        from .shared import SharedPredictor
        return SharedPredictor(deploy, weights, model, ds, head, batch=batch, expected=expected,
                               engine=name)
    return BACKENDS[name](deploy, weights, model, ds, head, batch=batch, expected=expected)
