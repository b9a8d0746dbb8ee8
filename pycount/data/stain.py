"""Stain augmentation for H&E / IHC crops (HED jitter) and stain normalisation of whole images
(Reinhard colour transfer).

Slides differ in how much haematoxylin and eosin (or DAB) they took up, and a net trained on one
batch of slides sees another batch's colours as new. Following the idea of Tellez et al. (2018,
"Whole-slide mitosis detection in H&E breast histology using PHH3 as a reference to train
distilled stain-invariant convolutional networks"), each training crop's colour is moved within
the stains' own space rather than in RGB: the pixels' optical densities are separated into
haematoxylin, eosin and DAB amounts with Ruifrok & Johnston's stain vectors, each amount is scaled
by a random factor and shifted by a random amount, and the result is turned back into RGB.

The round trip is exact (without jitter a crop comes back unchanged, to rounding), unlike
scikit-image's rgb2hed/hed2rgb, which clip negative amounts.

Normalisation instead removes the differences: every image, in training and in counting alike,
gets the training images' average colour statistics in CIE L*a*b* (Reinhard, Ashikhmin, Gooch &
Shirley 2001, "Color transfer between images", as used for H&E by many since).
"""
from __future__ import annotations

import cv2
import numpy as np

# Ruifrok & Johnston (2001): the optical density of a unit amount of each stain (rows: H, E, DAB)
# in R, G, B, normalised; as scikit-image's rgb_from_hed.
_STAINS = np.array([[0.65, 0.70, 0.29],
                    [0.07, 0.99, 0.11],
                    [0.27, 0.57, 0.78]])
_STAINS = _STAINS / np.linalg.norm(_STAINS, axis=1, keepdims=True)
_UNMIX = np.linalg.inv(_STAINS)


def to_stains(rgb: np.ndarray) -> np.ndarray:
    """H x W x 3 uint8 RGB -> H x W x 3 float64 amounts of haematoxylin, eosin, DAB."""
    od = -np.log10(np.maximum(np.asarray(rgb[..., :3], np.float64), 1.0) / 255.0)
    return od @ _UNMIX


def from_stains(amounts: np.ndarray) -> np.ndarray:
    """The inverse of to_stains, rounded and clipped to uint8 RGB."""
    rgb = 255.0 * np.power(10.0, -(amounts @ _STAINS))
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def hed_jitter(rgb: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """The crop with each stain's amount scaled by 1 + U(-s, s) and shifted by U(-s, s) times
    the crop's mean amount of that stain. strength 0 returns the crop itself."""
    if strength <= 0:
        return rgb
    amounts = to_stains(rgb)
    scale = 1.0 + rng.uniform(-strength, strength, 3)
    shift = rng.uniform(-strength, strength, 3) * amounts.reshape(-1, 3).mean(axis=0)
    out = from_stains(amounts * scale + shift)
    if rgb.shape[-1] > 3:                   # keep an alpha channel as it was
        out = np.concatenate([out, rgb[..., 3:]], axis=-1)
    return out


# --- stain normalisation (STAIN=reinhard) -------------------------------------------------------

def lab_stats(rgb: np.ndarray) -> np.ndarray:
    """2 x 3: the mean (row 0) and standard deviation (row 1) of an RGB image's CIE L*a*b*
    channels over all its pixels (L in 0-100)."""
    lab = _to_lab(rgb).reshape(-1, 3)
    return np.stack([lab.mean(axis=0), lab.std(axis=0)])


def reference(images) -> np.ndarray:
    """The normalisation target: the average of the images' lab_stats (the training images')."""
    return np.mean([lab_stats(im) for im in images], axis=0)


def reinhard(rgb: np.ndarray, ref) -> np.ndarray:
    """Reinhard et al. (2001) colour transfer: each L*a*b* channel of the image shifted and
    scaled so its mean and spread become the reference's (2 x 3, as lab_stats). A flat channel
    keeps its spread. Returns uint8 RGB; an alpha channel is kept."""
    ref = np.asarray(ref, np.float64).reshape(2, 3)
    lab = _to_lab(rgb)
    stats = lab_stats(rgb)
    spread = np.where(stats[1] > 1e-6, ref[1] / np.maximum(stats[1], 1e-6), 1.0)
    lab = ((lab - stats[0]) * spread + ref[0]).astype(np.float32)
    out = cv2.cvtColor(lab, cv2.COLOR_Lab2RGB)
    out = np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)
    if rgb.ndim == 3 and rgb.shape[-1] > 3:
        out = np.concatenate([out, rgb[..., 3:]], axis=-1)
    return out


def _to_lab(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[-1] < 3:
        raise ValueError(f"stain normalisation needs an RGB image, got shape {rgb.shape}")
    scale = 65535.0 if rgb.dtype == np.uint16 else 255.0
    return cv2.cvtColor(rgb[..., :3].astype(np.float32) / scale, cv2.COLOR_RGB2Lab)
