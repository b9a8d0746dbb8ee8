"""Counting with a density model (MODEL=fcrn, issue #7): the density map of a whole image.

The net is fully convolutional, but it is trained on crops of ds.crop px, where every pixel within
half a receptive field (35 px) of the crop's edge sees zero padding; on a 64 px crop that is every
pixel. A whole 256 px image in one pass is then unlike anything seen in training: in our first
trials (bacterial, N = 32, evaluated mid-training) its count drifted by -5 to -35 cells while the
crops' sums had no bias; on the final weights of that run the two came close (test MAE 3.64 in one
pass, 3.50 by crops). So by default an image is counted as it was trained: crops of ds.crop px on
a grid at half that stride (the last flush with the image's end), each predicted in the padding
regime of training; a pixel's density is the mean over the crops that cover it. The heatmap is
that stitched density (cells per px^2) and the count is its sum; no griddata is needed.
`whole=True` runs the image in one pass instead (sides padded to the pooling grid).

A model trained with context (config.ModelConfig.context, MODEL=fcrn-ctx: the loss saw only the
central crop of each training input, with m px of image, or beyond the image its mean colour,
around it) is counted in one pass by default: the image padded by m px of the mean colour (rounded
up to the pooling grid) on every side, which is the regime it was trained in. `whole=False` counts
it by crops as above, each cut with its m px of context and only its centre kept.

Test-time augmentation (model.tta, config.TTA_TRANSFORMS): the density is predicted for the image
under each of its 8 flips and quarter turns (tta = 8), or under a subgroup of 4 of them, each map
turned back, and the maps averaged. These are the transforms the net was trained under, and they
map pixels onto pixels, so no value is interpolated.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pycount.inference import engines as backends
from pycount import config
from pycount.inference import density
from pycount.nets import builders as nets
from pycount.data import patches
from pycount.util import progress


def context_lead(model: config.ModelConfig) -> int:
    """The padding a one-pass count puts around the image: the model's context, rounded up to
    the pooling grid."""
    a = 2 ** (len(model.widths) - 1)
    return -(-model.context // a) * a


def in_one_pass(model: config.ModelConfig, h: int, w: int) -> bool:
    """Whether an h x w image, padded by context_lead, is small enough for one pass
    (config.density_whole_max_px); larger ones go by DENSITY_TILE px tiles with that context."""
    lead = context_lead(model)
    return (h + 2 * lead) * (w + 2 * lead) <= config.density_whole_max_px(model)


def turned(rgb: np.ndarray, mirror: bool, k: int) -> np.ndarray:
    """The image under one transform of config.TTA_TRANSFORMS: mirrored left-right first if
    `mirror`, then k quarter turns."""
    return np.ascontiguousarray(np.rot90(rgb[:, ::-1] if mirror else rgb, k))


def tta_density(rgb: np.ndarray, once, transforms) -> np.ndarray:
    """The mean of once(image under each transform), each map turned back onto the image."""
    total = np.zeros(rgb.shape[:2])
    for i, (mirror, k) in enumerate(transforms):
        with progress.part(i, len(transforms)):
            back = np.rot90(once(turned(rgb, mirror, k)), -k)
        total += back[:, ::-1] if mirror else back
    return total / len(transforms)


class DensityPredictor:
    """A trained density net on RGB images, through cv2.dnn or pycaffe."""

    def __init__(self, deploy: Path, weights: Path, model: config.ModelConfig,
                 ds: config.DatasetConfig, engine: str = "auto", batch: int | None = None,
                 whole: bool | None = None, tta: int | None = None):
        if not model.density:
            raise config.ConfigError(f"{model.name} is not a density model")
        self.tta = model.tta if tta is None else tta
        if self.tta not in config.TTA_TRANSFORMS:
            raise config.ConfigError(f"TTA={self.tta}: use 1 (the image as it is), 4 (four of "
                                     f"its flips and turns) or 8 (every flip and quarter turn)")
        self.model, self.ds = model, ds
        self.whole = model.context > 0 if whole is None else whole
        self.crop, self.stride = ds.crop, max(1, ds.crop // 2)
        self.context = model.context
        self.align = 2 ** (len(model.widths) - 1)
        side = self.crop + 2 * self.context
        self.batch = batch or max(1, config.DENSITY_BATCH_PX // (side * side))
        engine = backends.resolve(engine, model)
        self.backend = backends.BACKENDS[engine](deploy, weights, model, ds, "R")

    def _forward(self, blob: np.ndarray) -> np.ndarray:
        """N x 3 x H x W input blob -> N x H x W density (the engine's own forward)."""
        return np.asarray(self.backend._forward(blob))[:, 0]

    def _padded(self, rgb: np.ndarray, hp: int, wp: int, at: int = 0) -> np.ndarray:
        """The image on an hp x wp canvas of the dataset's mean colour (0 after preprocessing),
        its top-left corner at (at, at)."""
        mean_rgb = np.asarray(nets.input_transform(self.model, self.ds)[0], np.float32)[::-1]
        out = np.empty((hp, wp, 3), np.float32)
        out[...] = mean_rgb
        out[at:at + rgb.shape[0], at:at + rgb.shape[1]] = rgb[..., :3]
        return out

    def density(self, rgb: np.ndarray) -> np.ndarray:
        """H x W float64 predicted density (cells per px^2) of an RGB uint8 image."""
        rgb = np.asarray(rgb)
        if self.tta == 1:
            return self._density(rgb)
        return tta_density(rgb, self._density, config.TTA_TRANSFORMS[self.tta])

    def _density(self, rgb: np.ndarray) -> np.ndarray:
        """The density of the image as it is (no test-time augmentation)."""
        h, w = rgb.shape[:2]
        a, lead = self.align, context_lead(self.model)
        if self.whole and not in_one_pass(self.model, h, w):
            return self._tiles(rgb, config.DENSITY_TILE, config.DENSITY_TILE, lead, batch=1)
        if self.whole:
            img = self._padded(rgb, -(-(h + 2 * lead) // a) * a, -(-(w + 2 * lead) // a) * a,
                               at=lead)
            return self._forward(nets.preprocess(img[None], self.model, self.ds))[
                0, lead:lead + h, lead:lead + w].astype(np.float64)
        return self._tiles(rgb, self.crop, self.stride, self.context, self.batch)

    def _tiles(self, rgb: np.ndarray, c: int, stride: int, m: int, batch: int) -> np.ndarray:
        """The density by c px tiles at `stride` (the last flush with the image's end), each
        predicted with m px of context (the image, or beyond it its mean colour) around it and
        only its centre kept; a pixel's density is the mean over the tiles that cover it."""
        h, w = rgb.shape[:2]
        hc, wc = max(h, c), max(w, c)
        img = self._padded(rgb, hc + 2 * m, wc + 2 * m, at=m)
        origins = patches.grid(hc, wc, c, stride)
        total = np.zeros((hc, wc))
        hits = np.zeros((hc, wc))
        for i in range(0, len(origins), batch):
            chunk = origins[i:i + batch]
            tiles = np.stack([img[y:y + c + 2 * m, x:x + c + 2 * m] for x, y in chunk])
            out = self._forward(nets.preprocess(tiles, self.model, self.ds))
            for (x, y), d in zip(chunk, out):
                total[y:y + c, x:x + c] += d[m:m + c, m:m + c]
                hits[y:y + c, x:x + c] += 1
            progress.step(i + len(chunk), len(origins))
        return (total / hits)[:h, :w]

    def count_image(self, rgb: np.ndarray) -> density.ImageCount:
        """The count (the density's sum) with the density as its heatmap."""
        d = self.density(rgb)
        total = float(d.sum())
        return density.ImageCount(count=total, tiling_count=total, heatmap=d,
                                  centres=np.zeros((0, 2)), patch_counts=np.zeros(0))
