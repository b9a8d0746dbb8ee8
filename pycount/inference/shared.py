"""Shared convolutions: count a large image without running the net once per window.

Overlapping windows (stride < patch) recompute the same convolutions many times: on a 1920x2560
Ki67 image at patch 200 / stride 50 every pixel lies in about 16 windows. Here the deploy net is
cut in two at its last spatial blob (AlexNet: pool5; ResNet: res5c, before the global pooling):

  trunk   the convolutional layers, run ONCE over the whole image (any size: they are
          translation-equivariant), giving a feature map at the trunk's total stride S;
  head    the rest (AlexNet: fc6-fc7-count; ResNet: global pool + count), run per window on the
          window's f x f crop of that feature map, f being what the trunk gives for one patch.

A window at (x0, y0) reads the feature map at (x0/S + i, y0/S + j); when S does not divide the
window positions the map is sampled bilinearly. A lone patch sees zero padding at its borders,
the whole image sees the neighbouring pixels; when the trunk's receptive field is as large as
the patch (the paper's nets at the paper's patch sizes) that changes every cell of the feature
map, not only the border ones, and the counts move by far more than 1 % (`make bench-eval`
measured 45 % on the synthetic set's alexnet-lite). So every image is checked: a spread sample
of windows also goes through the per-window net, and where the shared counts of that sample
differ by more than `tolerance` (config.SHARED_TOLERANCE) the image is counted per window instead, with a warning.
Both engines (cv2.dnn, pycaffe) run the cut nets with the run's own caffemodel (weights are
matched by layer name).
"""
from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pycount import config
from pycount.inference import engines as backends
from pycount.nets import builders as nets
from pycount.util import progress

_LAYER = re.compile(r"^layer \{\n.*?^\}\n", re.S | re.M)


@dataclass
class Layer:
    text: str
    name: str
    type: str
    bottoms: list[str]
    tops: list[str]
    stride: int
    global_pool: bool


def parse_layers(prototxt: str) -> tuple[str, list[Layer]]:
    """(the text before the first layer, the layers) of a prototxt written by pycount.nets."""
    blocks = list(_LAYER.finditer(prototxt))
    if not blocks:
        raise ValueError("no top-level `layer {` blocks found")
    layers = []
    for m in blocks:
        t = m.group(0)
        field = lambda key: re.findall(rf'^  {key}: "?([^"\n]+)"?$', t, re.M)  # noqa: E731
        stride = re.search(r"^    stride: (\d+)$", t, re.M)
        layers.append(Layer(t, field("name")[0], field("type")[0], field("bottom"), field("top"),
                            int(stride.group(1)) if stride else 1,
                            bool(re.search(r"^    global_pooling: true$", t, re.M))))
    return prototxt[:blocks[0].start()], layers


def _input_layer(top: str, shape: tuple[int, ...]) -> str:
    dims = "".join(f"      dim: {d}\n" for d in shape)
    return (f'layer {{\n  name: "{top}_input"\n  type: "Input"\n  top: "{top}"\n'
            f"  input_param {{\n    shape {{\n{dims}    }}\n  }}\n}}\n")


@dataclass
class Cut:
    trunk_layers: list[Layer]
    head_layers: list[Layer]
    header: str
    blob: str          # the trunk's output, the head's input
    stride: int        # the trunk's total stride, input pixels per feature cell

    @property
    def blob_layer(self) -> str:
        """The last layer writing `blob` (an in-place ReLU): cv2.dnn names outputs by layer."""
        return [l.name for l in self.trunk_layers if self.blob in l.tops][-1]

    def trunk(self, shape) -> str:
        return self.header + _input_layer("data", shape) + "".join(l.text for l in self.trunk_layers)

    def head(self, shape) -> str:
        return self.header + _input_layer(self.blob, shape) + "".join(l.text for l in self.head_layers)


def cut_deploy(prototxt: str) -> Cut:
    """Cut a deploy net before its first InnerProduct or global pooling layer."""
    header, layers = parse_layers(prototxt)
    if layers[0].type != "Input":
        raise ValueError("the deploy net must start with an Input layer")
    stride = {layers[0].tops[0]: 1}
    for i, layer in enumerate(layers[1:], start=1):
        if layer.type == "InnerProduct" or (layer.type == "Pooling" and layer.global_pool):
            blob = layer.bottoms[0]
            return Cut(layers[1:i], layers[i:], header, blob, stride[blob])
        s = stride[layer.bottoms[0]] * (layer.stride if layer.type in ("Convolution", "Pooling")
                                       else 1)
        for top in layer.tops:
            stride[top] = s
    raise ValueError("the deploy net has no InnerProduct or global pooling layer to cut at")


def _engine(kind: str, prototxt: str, weights: Path, model, ds, head: str, output: str):
    """A backend of `kind` over a prototxt given as text (read at construction), its output
    read from `output`: a blob name for pycaffe, the name of the layer writing it for cv2.dnn."""
    with tempfile.TemporaryDirectory(prefix="pycount-cut-") as tmp:
        path = Path(tmp) / "net.prototxt"
        path.write_text(prototxt)
        engine = backends.BACKENDS[kind](path, weights, model, ds, head)
    engine.output = output
    return engine


def sample_windows(fmap: np.ndarray, fx: np.ndarray, fy: np.ndarray, size: int) -> np.ndarray:
    """Crops of a C x H x W feature map: for each window k the size x size grid starting at the
    fractional cell (fx[k], fy[k]), sampled bilinearly (edges clamped). -> K x C x size x size."""
    c, h, w = fmap.shape
    steps = np.arange(size, dtype=np.float64)

    def axis(start, n):
        pos = np.clip(start[:, None] + steps[None, :], 0, n - 1)   # K x size
        lo = np.floor(pos).astype(np.intp)
        hi = np.minimum(lo + 1, n - 1)
        return lo, hi, (pos - lo).astype(np.float32)

    x0, x1, ax = axis(np.asarray(fx, np.float64), w)
    y0, y1, ay = axis(np.asarray(fy, np.float64), h)
    f = fmap.astype(np.float32, copy=False)
    # gather rows then columns: K x C x size(y) x size(x)
    def g(yi, xi):
        return f[:, yi[:, :, None], xi[:, None, :]].transpose(1, 0, 2, 3)
    wy, wx = ay[:, None, :, None], ax[:, None, None, :]
    return ((g(y0, x0) * (1 - wx) + g(y0, x1) * wx) * (1 - wy)
            + (g(y1, x0) * (1 - wx) + g(y1, x1) * wx) * wy)


class SharedPredictor(backends.Predictor):
    """Counts of sliding windows with the trunk shared (module doc). Called on a stack of
    patches it falls back to the plain per-window engine (used for the few tiling-check tiles)."""

    def __init__(self, deploy, weights, model, ds, head, batch: int | None = None,
                 expected: bool = False, engine: str = backends.DEFAULT_BACKEND,
                 max_side: int = config.SHARED_MAX_SIDE,
                 tolerance: float | None = config.SHARED_TOLERANCE,
                 check_windows: int = config.SHARED_CHECK_WINDOWS):
        super().__init__(model, ds, head, batch, expected)
        engine = backends.resolve(engine, model)
        self.plain = backends.BACKENDS[engine](deploy, weights, model, ds, head, batch, expected)
        self.cut = cut_deploy(Path(deploy).read_text())
        side = ds.input_size
        self.trunk = _engine(engine, self.cut.trunk((1, 3, side, side)), weights, model, ds,
                             head, self.cut.blob_layer if engine == "cv2" else self.cut.blob)
        probe = self.trunk._forward(np.zeros((1, 3, side, side), np.float32))
        self.channels, self.fsize = probe.shape[1], probe.shape[2]
        if probe.shape[2] != probe.shape[3]:
            raise ValueError(f"non-square trunk output {probe.shape} for a square patch")
        self.head_net = _engine(engine, self.cut.head((1, self.channels, self.fsize, self.fsize)),
                                weights, model, ds, head, self.output)
        self.max_side = max_side
        self.caffe_max_pixels = config.SHARED_CAFFE_MAX_PIXELS
        self.tolerance, self.check_windows = tolerance, check_windows
        self.last_check: dict = {}          # the latest image's check: sample sums, verdict
        self._warned = False

    def _forward(self, blob):                      # plain per-window path (Predictor.outputs)
        return self.plain._forward(blob)

    def feature_map(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        """The trunk's output over the whole image and the input scale (SIZE / patch)."""
        scale = self.ds.input_size / self.ds.patch
        if scale != 1.0:
            image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA
                               if scale < 1 else cv2.INTER_LINEAR)
        if max(image.shape[:2]) > self.max_side:
            raise ValueError(f"image side {max(image.shape[:2])} px > {self.max_side}; count it "
                             "without --shared, or in parts")
        blob = nets.preprocess(image[None], self.model, self.ds)
        return self.trunk._forward(blob)[0], scale

    def window_outputs(self, image: np.ndarray, origins: np.ndarray) -> np.ndarray:
        """The head's raw outputs for windows at `origins` ((x0, y0), dataset patch units)."""
        fmap, scale = self.feature_map(image)
        cells = np.asarray(origins, np.float64) * scale / self.cut.stride
        outs = []
        for i in range(0, len(cells), self.batch):
            crops = sample_windows(fmap, cells[i:i + self.batch, 0], cells[i:i + self.batch, 1],
                                   self.fsize)
            outs.append(np.asarray(self.head_net._forward(crops), np.float64))
            progress.step(i + len(crops), len(cells))
        out = np.concatenate(outs)
        return out.reshape(len(cells)) if self.head == "R" else out.reshape(len(cells), -1)

    def predict_windows(self, image: np.ndarray, origins: np.ndarray, patch: int) -> np.ndarray:
        """Counts of the windows at `origins`: shared, unless the check (module doc) fails."""
        if patch != self.ds.patch:
            raise ValueError(f"windows of {patch} px, but the net was trained on {self.ds.patch}")
        origins = np.asarray(origins)
        from pycount.inference.density import predict_windows, window_stack
        side = self.ds.input_size / self.ds.patch
        if isinstance(self.plain, backends.CaffeBackend) \
                and image.shape[0] * image.shape[1] * side ** 2 > self.caffe_max_pixels:
            # pycaffe keeps every blob of the net (config.SHARED_CAFFE_MAX_PIXELS)
            self.last_check = {"shared_used": False, "reason": "image too large for pycaffe"}
            return predict_windows(image, origins, patch, self)
        counts = self.to_counts(self.window_outputs(image, origins))
        if self.tolerance is None:
            return counts
        k = min(len(origins), self.check_windows)
        pick = np.linspace(0, len(origins) - 1, k).round().astype(int)
        with progress.within(lambda _: None):      # a sample: not the image's progress
            exact = self(window_stack(image, origins[pick], patch))
        diff = abs(counts[pick].sum() - exact.sum()) / max(abs(exact.sum()), 1.0)
        self.last_check = {"windows": k, "shared": float(counts[pick].sum()),
                           "per_window": float(exact.sum()), "relative_diff": float(diff),
                           "shared_used": bool(diff <= self.tolerance)}
        if diff <= self.tolerance:
            return counts
        if not self._warned:
            import sys
            print(f"pycount: shared convolutions moved the count of {k} sample windows by "
                  f"{100 * diff:.1f}% (> {100 * self.tolerance:g}%); counting per window "
                  f"instead (this net's receptive field is too large for its patch)",
                  file=sys.stderr)
            self._warned = True
        return self(window_stack(image, origins, patch))
