"""Stain augmentation for H&E / IHC crops (HED jitter) and stain normalisation of whole images
(Reinhard's colour transfer, Macenko's stain unmixing).

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
Shirley 2001, "Color transfer between images", as used for H&E by many since), or their stain
colours and amounts (Macenko et al. 2009, below).
"""
from __future__ import annotations

import cv2
import numpy as np

from pycount import config

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
    return _with_alpha(from_stains(amounts * scale + shift), rgb)   # an alpha channel kept


# --- stain normalisation (STAIN=) ---------------------------------------------------------------

def target(method: str, images) -> np.ndarray:
    """The normalisation target of `method` measured on `images` (the training images), flat."""
    if method == "reinhard":
        return reinhard_reference(images).ravel()
    if method == "macenko":
        return macenko_reference(images)
    raise ValueError(f"unknown stain normalisation {method!r}")


def normalise(method: str, rgb: np.ndarray, ref) -> np.ndarray:
    """The image normalised by `method` to the target `ref` (as `target` returns it)."""
    if method == "reinhard":
        return reinhard(rgb, ref)
    if method == "macenko":
        return macenko(rgb, ref)
    raise ValueError(f"unknown stain normalisation {method!r}")


# Reinhard: colour statistics

def lab_stats(rgb: np.ndarray) -> np.ndarray:
    """2 x 3: the mean (row 0) and standard deviation (row 1) of an RGB image's CIE L*a*b*
    channels over all its pixels (L in 0-100)."""
    return _moments(_to_lab(rgb))


def _moments(lab: np.ndarray) -> np.ndarray:
    lab = lab.reshape(-1, 3)
    return np.stack([lab.mean(axis=0), lab.std(axis=0)])


def reinhard_reference(images) -> np.ndarray:
    """The normalisation target: the average of the images' lab_stats (the training images')."""
    return np.mean([lab_stats(im) for im in images], axis=0)


def reinhard(rgb: np.ndarray, ref) -> np.ndarray:
    """Reinhard et al. (2001) colour transfer: each L*a*b* channel of the image shifted and
    scaled so its mean and spread become the reference's (2 x 3, as lab_stats). A flat channel
    keeps its spread. Returns uint8 RGB; an alpha channel is kept."""
    ref = np.asarray(ref, np.float64).reshape(2, 3)
    lab = _to_lab(rgb)
    stats = _moments(lab)
    spread = np.where(stats[1] > 1e-6, ref[1] / np.maximum(stats[1], 1e-6), 1.0)
    lab = ((lab - stats[0]) * spread + ref[0]).astype(np.float32)
    return _with_alpha(cv2.cvtColor(lab, cv2.COLOR_Lab2RGB) * 255.0, rgb)


def _unit_rgb(rgb: np.ndarray, dtype=np.float32) -> np.ndarray:
    """An 8- or 16-bit RGB(A) image's RGB in [0, 1]; ValueError for anything but colour."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[-1] < 3:
        raise ValueError(f"stain normalisation needs an RGB image, got shape {rgb.shape}")
    scale = 65535.0 if rgb.dtype == np.uint16 else 255.0
    return rgb[..., :3].astype(dtype) / scale


def _with_alpha(rgb255: np.ndarray, original: np.ndarray) -> np.ndarray:
    """Values in 0-255 rounded to uint8 RGB, with the original's alpha channel if it had one."""
    out = np.clip(np.rint(rgb255), 0, 255).astype(np.uint8)
    if original.shape[-1] > 3:
        out = np.concatenate([out, original[..., 3:]], axis=-1)
    return out


def _to_lab(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(_unit_rgb(rgb), cv2.COLOR_RGB2Lab)


# Macenko et al. (2009), "A method for normalizing histology slides for quantitative analysis":
# each image's own haematoxylin and eosin colours are estimated from its stained pixels, its
# pixels are unmixed into the two stains' amounts, the amounts are scaled so their high
# percentile is the reference's, and the pixels are made again with the reference's colours.
# Unlike Reinhard's transfer, unstained (white) pixels stay white, whatever the tissue's share.

def macenko_stains(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(2 x 3 unit optical-density vectors of haematoxylin then eosin, their 2 amounts' high
    percentile) of one image, or None when it has too few stained pixels to tell."""
    unmixed = _macenko_unmix(rgb)
    if unmixed is None:
        return None
    stains, amounts = unmixed
    return stains, np.percentile(amounts, config.MACENKO_MAX_PERCENTILE, axis=1)


def _macenko_unmix(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(the image's 2 x 3 stain vectors, as macenko_stains; 2 x pixels amounts of each), or
    None when it has too few stained pixels."""
    od = _optical_density(rgb).reshape(-1, 3)
    tissue = od[(od > config.MACENKO_OD_MIN).all(axis=1)]
    if len(tissue) < config.MACENKO_MIN_PIXELS:
        return None
    # the plane of the two largest directions of the stained pixels' optical densities
    _, vecs = np.linalg.eigh(np.cov(tissue.T))
    plane = vecs[:, 1:3]
    plane = plane * np.where(plane.sum(axis=0) < 0, -1.0, 1.0)      # both pointing to positive OD
    proj = tissue @ plane
    angle = np.arctan2(proj[:, 1], proj[:, 0])
    lo, hi = np.percentile(angle, [config.MACENKO_ANGLE_PERCENTILE,
                                   100 - config.MACENKO_ANGLE_PERCENTILE])
    v1 = plane @ np.array([np.cos(lo), np.sin(lo)])
    v2 = plane @ np.array([np.cos(hi), np.sin(hi)])
    # haematoxylin absorbs red most (Ruifrok & Johnston: 0.65 R against eosin's 0.07)
    stains = np.stack([v1, v2] if v1[0] > v2[0] else [v2, v1])
    stains = stains / np.linalg.norm(stains, axis=1, keepdims=True)
    return stains, np.linalg.lstsq(stains.T, od.T, rcond=None)[0]


def macenko_reference(images) -> np.ndarray:
    """The target: the images' stain vectors averaged (and made unit again), their amounts'
    high percentiles' median; flat: 6 stain-vector values then 2 amounts."""
    found = [m for m in (macenko_stains(im) for im in images) if m is not None]
    if not found:
        raise ValueError("no image has enough stained pixels for Macenko's normalisation")
    stains = np.mean([s for s, _ in found], axis=0)
    stains = stains / np.linalg.norm(stains, axis=1, keepdims=True)
    return np.concatenate([stains.ravel(), np.median([a for _, a in found], axis=0)])


def macenko(rgb: np.ndarray, ref) -> np.ndarray:
    """The image made again from its own stains' amounts, scaled to the reference's high
    percentile, with the reference's stain colours. An image with too few stained pixels is
    returned as it is. uint8 RGB; an alpha channel is kept."""
    ref = np.asarray(ref, np.float64)
    ref_stains, ref_max = ref[:6].reshape(2, 3), ref[6:8]
    unmixed = _macenko_unmix(rgb)          # one unmixing gives the percentile and the pixels
    if unmixed is None:
        return rgb
    _, amounts = unmixed
    high = np.percentile(amounts, config.MACENKO_MAX_PERCENTILE, axis=1)
    amounts = amounts * (ref_max / np.maximum(high, 1e-6))[:, None]
    rebuilt = 255.0 * np.power(10.0, -(amounts.T @ ref_stains))
    return _with_alpha(rebuilt.reshape(*rgb.shape[:2], 3), rgb)


def _optical_density(rgb: np.ndarray) -> np.ndarray:
    return -np.log10(np.maximum(_unit_rgb(rgb, np.float64), 1.0 / 255.0))
