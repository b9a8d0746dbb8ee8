"""The PyTorch peer of `make bench`: the very net of a deploy prototxt, as a torch module.

Users weigh pycount against writing the same job in PyTorch. To compare like with like, the
peer is not a look-alike from a model zoo: it is built layer by layer from the same generated
deploy.prototxt (Convolution, ReLU, LRN, Pooling with Caffe's ceil rounding, BatchNorm + Scale,
Eltwise, InnerProduct, Dropout, Softmax; for the density net FCRN also Deconvolution, the fixed
bilinear x2 upsampling, and Power), and the caffemodel's weights can be copied in, so a test
proves it computes what Caffe computes. torch is an optional, benchmark-only dependency
(tools/bench.py installs it): nothing else in pycount imports this module.
"""
from __future__ import annotations

import re

import numpy as np

from pycount.inference.shared import parse_layers


def _int(text: str, key: str, default: int | None = None) -> int | None:
    m = re.search(rf"^\s+{key}: (\d+)$", text, re.M)
    return int(m.group(1)) if m else default


def _float(text: str, key: str, default: float) -> float:
    m = re.search(rf"^\s+{key}: ([-+0-9.eE]+)$", text, re.M)
    return float(m.group(1)) if m else default


def _word(text: str, key: str, default: str) -> str:
    m = re.search(rf"^\s+{key}: (\w+)$", text, re.M)
    return m.group(1) if m else default


def build(prototxt: str):
    """(torch.nn.Module, output blob name) for a deploy prototxt; the module maps the input
    blob (N x C x H x W float32) to the last layer's top. Its lazy layers are initialised by
    one forward pass at the Input layer's shape."""
    import torch
    from torch import nn

    _, layers = parse_layers(prototxt)
    if layers[0].type != "Input":
        raise ValueError("the deploy net must start with an Input layer")
    shape = [int(d) for d in re.findall(r"dim: (\d+)", layers[0].text)]
    channels = {layers[0].tops[0]: shape[1]}
    mods, plan = nn.ModuleDict(), []
    for l in layers[1:]:
        t, c_in = l.text, channels.get(l.bottoms[0]) if l.bottoms else None
        c_out = c_in
        if l.type == "Convolution":
            c_out = _int(t, "num_output")
            mods[l.name] = nn.Conv2d(c_in, c_out, _int(t, "kernel_size"), _int(t, "stride", 1),
                                     _int(t, "pad", 0), groups=_int(t, "group", 1),
                                     bias=_word(t, "bias_term", "true") == "true")
        elif l.type == "Deconvolution":
            # Caffe's weight blob is C_in x C_out/group x k x k, as torch's ConvTranspose2d's
            c_out = _int(t, "num_output")
            mods[l.name] = nn.ConvTranspose2d(c_in, c_out, _int(t, "kernel_size"),
                                              _int(t, "stride", 1), _int(t, "pad", 0),
                                              groups=_int(t, "group", 1),
                                              bias=_word(t, "bias_term", "true") == "true")
        elif l.type == "Power":
            mods[l.name] = _make_power()(_float(t, "power", 1.0), _float(t, "scale", 1.0),
                                         _float(t, "shift", 0.0))
        elif l.type == "Eltwise" and _word(t, "operation", "SUM") != "SUM":
            raise ValueError(f"layer {l.name}: only Eltwise SUM has a PyTorch peer here")
        elif l.type == "InnerProduct":
            c_out = _int(t, "num_output")
            mods[l.name] = nn.LazyLinear(c_out, bias=_word(t, "bias_term", "true") == "true")
        elif l.type == "BatchNorm":
            mods[l.name] = nn.BatchNorm2d(c_in, eps=_float(t, "eps", 1e-5), affine=False)
        elif l.type == "Scale":
            mods[l.name] = _make_scale()(c_in, _word(t, "bias_term", "false") == "true")
        elif l.type == "LRN":
            # Caffe's ACROSS_CHANNELS LRN: x / (1 + alpha/n * sum x^2)^beta, as torch's
            mods[l.name] = nn.LocalResponseNorm(_int(t, "local_size", 5), _float(t, "alpha", 1.0),
                                                _float(t, "beta", 0.75), _float(t, "k", 1.0))
        elif l.type == "Pooling":
            if re.search(r"global_pooling: true", t):
                mods[l.name] = nn.AdaptiveAvgPool2d(1) if _word(t, "pool", "MAX") == "AVE" \
                    else nn.AdaptiveMaxPool2d(1)
            else:
                k, s, p = _int(t, "kernel_size"), _int(t, "stride", 1), _int(t, "pad", 0)
                mods[l.name] = (nn.MaxPool2d(k, s, p, ceil_mode=True)
                                if _word(t, "pool", "MAX") == "MAX"
                                else nn.AvgPool2d(k, s, p, ceil_mode=True,
                                                  count_include_pad=True))
        elif l.type not in ("ReLU", "Eltwise", "Dropout", "Softmax"):
            raise ValueError(f"layer {l.name}: type {l.type} has no PyTorch peer here")
        for top in l.tops:
            channels[top] = c_out
        plan.append((l.name, l.type, list(l.bottoms), l.tops[0]))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = mods

        def forward(self, x):
            blobs = {layers[0].tops[0]: x}
            for name, kind, bottoms, top in plan:
                b = blobs[bottoms[0]]
                if kind == "ReLU":
                    y = torch.relu(b)
                elif kind == "Eltwise":                     # SUM (checked above)
                    y = b
                    for other in bottoms[1:]:
                        y = y + blobs[other]
                elif kind == "Softmax":
                    y = torch.softmax(b, dim=1)
                elif kind == "Dropout":
                    y = nn.functional.dropout(b, 0.5, self.training)
                elif kind == "InnerProduct":
                    y = self.layers[name](b.flatten(1))
                else:
                    y = self.layers[name](b)
                blobs[top] = y
            return blobs[plan[-1][3]]

    net = Net().eval()
    with torch.no_grad():
        net(torch.zeros([1] + shape[1:]))
    return net, plan[-1][3]


def _make_scale():
    from torch import nn
    import torch

    class Scale(nn.Module):
        """Caffe's Scale layer: per-channel multiply (and add)."""

        def __init__(self, channels: int, bias: bool):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(channels))
            self.bias = nn.Parameter(torch.zeros(channels)) if bias else None

        def forward(self, x):
            y = x * self.weight.view(1, -1, 1, 1)
            return y if self.bias is None else y + self.bias.view(1, -1, 1, 1)
    return Scale


def _make_power():
    from torch import nn

    class Power(nn.Module):
        """Caffe's Power layer: (shift + scale * x) ** power."""

        def __init__(self, power: float, scale: float, shift: float):
            super().__init__()
            self.power, self.scale, self.shift = power, scale, shift

        def forward(self, x):
            y = x * self.scale if self.scale != 1.0 else x
            y = y + self.shift if self.shift != 0.0 else y
            return y if self.power == 1.0 else y ** self.power
    return Power


def load_caffe_weights(net, caffe_net) -> None:
    """Copy a pycaffe net's parameters into the peer (layer names are shared)."""
    import torch
    with torch.no_grad():
        for name, params in caffe_net.params.items():
            m = net.layers[name] if name in net.layers else None
            if m is None:
                continue
            arrays = [np.array(p.data) for p in params]
            kind = type(m).__name__
            if kind == "BatchNorm2d":
                f = arrays[2].ravel()[0]
                s = 0.0 if f == 0 else 1.0 / f
                m.running_mean.copy_(torch.from_numpy(arrays[0] * s))
                m.running_var.copy_(torch.from_numpy(arrays[1] * s))
            else:
                m.weight.copy_(torch.from_numpy(arrays[0]).reshape(m.weight.shape))
                if len(arrays) > 1 and getattr(m, "bias", None) is not None:
                    m.bias.copy_(torch.from_numpy(arrays[1]).reshape(m.bias.shape))


class DensityPeer:
    """The fcrn count written plainly in PyTorch: the job of pycount's DensityPredictor (crops of
    ds.crop px on a grid at half that stride, the last flush with the image's end; a pixel's
    density the mean over the crops that cover it; with tta = 4 or 8 the image under each of
    config.TTA_TRANSFORMS[tta], each map turned back, the maps averaged), with `net` (from build) as
    the forward. Images smaller than a crop are padded with the mean colour, as pycount does.
    A model trained with context (MODEL=fcrn-ctx) is run as pycount runs it: the whole image at
    once, padded by the context rounded up to the pooling grid."""

    def __init__(self, net, model, ds, tta: int | None = None, batch: int | None = None):
        self.net, self.model, self.ds = net, model, ds
        self.tta = model.tta if tta is None else tta
        self.crop = ds.crop
        self.stride = max(1, ds.crop // 2)
        from pycount import config
        self.batch = batch or max(1, config.DENSITY_BATCH_PX // (self.crop * self.crop))
        self.whole = model.context > 0
        self.align = 2 ** (len(model.widths) - 1)

    def crops(self, h: int, w: int) -> int:
        """How many crops go through the net for an h x w image (all transforms; whole images,
        or tiles of the largest ones, for a model with context)."""
        from pycount import config
        from pycount.data import patches
        from pycount.inference import fullconv
        if self.whole:
            if fullconv.in_one_pass(self.model, h, w):
                return self.tta
            t = config.DENSITY_TILE
            return self.tta * len(patches.grid(max(h, t), max(w, t), t, t))
        c = self.crop
        n = len(patches.grid(max(h, c), max(w, c), c, self.stride))
        return n * self.tta          # a quarter turn swaps the sides: the same grid, transposed

    def _whole(self, rgb: np.ndarray) -> np.ndarray:
        import torch
        from pycount.inference import fullconv
        from pycount.nets import builders as nets
        h, w = rgb.shape[:2]
        a, lead = self.align, fullconv.context_lead(self.model)
        mean_rgb = np.asarray(nets.input_transform(self.model, self.ds)[0], np.float32)[::-1]
        img = np.empty((-(-(h + 2 * lead) // a) * a, -(-(w + 2 * lead) // a) * a, 3), np.float32)
        img[...] = mean_rgb
        img[lead:lead + h, lead:lead + w] = rgb[..., :3]
        with torch.inference_mode():
            blob = torch.from_numpy(np.ascontiguousarray(
                nets.preprocess(img[None], self.model, self.ds)))
            return self.net(blob).numpy()[0, 0, lead:lead + h, lead:lead + w].astype(np.float64)

    def _once(self, rgb: np.ndarray) -> np.ndarray:
        from pycount import config
        from pycount.inference import fullconv
        h, w = rgb.shape[:2]
        if self.whole:
            if fullconv.in_one_pass(self.model, h, w):
                return self._whole(rgb)
            return self._crops(rgb, config.DENSITY_TILE, config.DENSITY_TILE,
                               fullconv.context_lead(self.model), 1)
        return self._crops(rgb, self.crop, self.stride, 0, self.batch)

    def _crops(self, rgb: np.ndarray, c: int, stride: int, m: int, batch: int) -> np.ndarray:
        """Crops of c px at `stride`, each with m px of context around it, centres kept."""
        import torch
        from pycount.data import patches
        from pycount.nets import builders as nets
        h, w = rgb.shape[:2]
        mean_rgb = np.asarray(nets.input_transform(self.model, self.ds)[0], np.float32)[::-1]
        hc, wc = max(h, c), max(w, c)
        img = np.empty((hc + 2 * m, wc + 2 * m, 3), np.float32)
        img[...] = mean_rgb
        img[m:m + h, m:m + w] = rgb[..., :3]
        total = np.zeros((hc, wc))
        hits = np.zeros((hc, wc))
        origins = patches.grid(hc, wc, c, stride)
        with torch.inference_mode():
            for i in range(0, len(origins), batch):
                chunk = origins[i:i + batch]
                tiles = np.stack([img[y:y + c + 2 * m, x:x + c + 2 * m] for x, y in chunk])
                blob = torch.from_numpy(np.ascontiguousarray(
                    nets.preprocess(tiles, self.model, self.ds)))
                out = self.net(blob).numpy()[:, 0]
                for (x, y), d in zip(chunk, out):
                    total[y:y + c, x:x + c] += d[m:m + c, m:m + c]
                    hits[y:y + c, x:x + c] += 1
        return (total / hits)[:h, :w]

    def density(self, rgb: np.ndarray) -> np.ndarray:
        """H x W density (cells per px^2) of an RGB uint8 image."""
        rgb = np.asarray(rgb)
        if self.tta == 1:
            return self._once(rgb)
        from pycount import config
        from pycount.inference import fullconv
        return fullconv.tta_density(rgb, self._once, config.TTA_TRANSFORMS[self.tta])

    def count(self, rgb: np.ndarray) -> float:
        return float(self.density(rgb).sum())
