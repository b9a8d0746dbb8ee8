"""Dense SIFT at every pixel, a k-means codebook and hard quantisation (Le.count's features).

Lempitsky & Zisserman (NIPS 2010) describe each pixel of a cell image by a dense SIFT descriptor
(VLFeat's vl_dsift, on the blue channel for the VGG cells) quantised against a k-means codebook;
the pixel's feature is the one-hot code word. This module computes the same kind of descriptor
with numpy/scipy, written from the SIFT construction (Lowe 2004) as vl_dsift applies it densely:

  gradient magnitude and orientation -> 8 orientation channels (linear interpolation between the
  two nearest bins) -> each channel convolved with a triangular kernel of half-width `bin_size`
  (bilinear spatial binning) -> the 4 x 4 spatial bins around each pixel, `bin_size` apart,
  concatenated into 128 numbers -> L2-normalised, clipped at 0.2, renormalised.

Descriptors whose unnormalised norm is below `contrast` (flat background) are set to zero and get
their own code word (index K), so the codebook is not spent on noise in empty background.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

N_ORI = 8
N_SPATIAL = 4
DIM = N_ORI * N_SPATIAL * N_SPATIAL


def channel(image: np.ndarray, name: str) -> np.ndarray:
    """The single float32 [0, 1] channel the descriptors are computed on."""
    rgb = image.astype(np.float32) / 255.0
    if name in ("red", "green", "blue"):
        return np.ascontiguousarray(rgb[..., ("red", "green", "blue").index(name)])
    if name == "gray":
        return rgb @ np.array([0.299, 0.587, 0.114], np.float32)
    if name == "hematoxylin":  # optical density along the H&E haematoxylin stain vector (Ruifrok & Johnston)
        od = -np.log(np.clip(rgb, 1.0 / 255, 1.0))
        h = np.array([0.650, 0.704, 0.286], np.float32)
        return (od @ (h / np.linalg.norm(h))).astype(np.float32) / np.float32(np.log(255.0))
    raise ValueError(f"unknown channel {name!r}; use red, green, blue, gray or hematoxylin")


def _triangle(bin_size: int) -> np.ndarray:
    k = np.concatenate([np.arange(1, bin_size + 1), np.arange(bin_size - 1, 0, -1)]).astype(np.float32)
    return k / bin_size


def orientation_channels(gray: np.ndarray, bin_size: int = 3, presmooth: float = 0.0) -> np.ndarray:
    """H x W x 8 gradient magnitude split over 8 orientations, spatially binned (triangular kernel)."""
    if gray.ndim != 2:
        raise ValueError(f"dense_sift takes a 2-D image, got shape {gray.shape}")
    if bin_size < 1:
        raise ValueError(f"bin_size must be >= 1, got {bin_size}")
    g = gray.astype(np.float32)
    if presmooth > 0:
        g = ndimage.gaussian_filter(g, presmooth, mode="reflect")
    gy, gx = np.gradient(g)
    mag = np.hypot(gx, gy)
    pos = (np.arctan2(gy, gx) % (2 * np.pi)) * (N_ORI / (2 * np.pi))
    b0 = np.floor(pos).astype(np.int64) % N_ORI
    w1 = (pos - np.floor(pos)).astype(np.float32)
    kern = _triangle(bin_size)
    chans = []
    for o in range(N_ORI):
        c = mag * ((b0 == o) * (1 - w1) + (((b0 + 1) % N_ORI) == o) * w1)
        c = ndimage.convolve1d(c, kern, axis=0, mode="reflect")
        chans.append(ndimage.convolve1d(c, kern, axis=1, mode="reflect"))
    return np.stack(chans, axis=-1)


def _offsets(bin_size: int) -> list[int]:
    # bin centres at (i - 1.5) * bin_size, rounded to whole pixels
    return [int(np.floor((i - 1.5) * bin_size + 0.5)) for i in range(N_SPATIAL)]


def descriptors(padded: np.ndarray, pad: int, offs, ys: np.ndarray, xs: np.ndarray,
                contrast: float) -> tuple[np.ndarray, np.ndarray]:
    """The normalised descriptors at rows ys x columns xs from the padded orientation channels."""
    desc = np.empty((len(ys), len(xs), DIM), np.float32)
    k = 0
    for dy in offs:
        for dx in offs:
            desc[..., k:k + N_ORI] = padded[pad + dy + ys[:, None], pad + dx + xs[None, :]]
            k += N_ORI
    norm = np.linalg.norm(desc, axis=-1)
    flat = norm <= max(contrast, 1e-12)
    desc /= np.where(flat, 1.0, norm)[..., None]
    np.minimum(desc, 0.2, out=desc)
    desc /= np.maximum(np.linalg.norm(desc, axis=-1), 1e-12)[..., None]
    desc[flat] = 0
    return desc, flat


def _padded_channels(gray, bin_size, presmooth):
    chans = orientation_channels(gray, bin_size, presmooth)
    offs = _offsets(bin_size)
    pad = max(abs(o) for o in offs)
    return np.pad(chans, ((pad, pad), (pad, pad), (0, 0)), mode="reflect"), pad, offs


def dense_sift(gray: np.ndarray, bin_size: int = 3, presmooth: float = 0.0, contrast: float = 0.0,
               step: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """SIFT descriptors centred on every `step`-th pixel of a 2-D float image.

    Returns (desc, flat): desc (h', w', 128) float32 with h' = ceil(H / step), flat (h', w') bool
    marking descriptors below the contrast threshold (set to zero)."""
    padded, pad, offs = _padded_channels(gray, bin_size, presmooth)
    h, w = gray.shape
    return descriptors(padded, pad, offs, np.arange(0, h, step), np.arange(0, w, step), contrast)


def sample_descriptors(gray: np.ndarray, bin_size: int, presmooth: float, contrast: float, step: int,
                       k: int, rng: np.random.Generator, strip_pixels: int = 1 << 18) -> np.ndarray:
    """k descriptors drawn without replacement from the non-flat ones on every step-th pixel.

    The same draw as dense_sift(..., step) followed by rng.choice over its non-flat rows, but with
    the descriptors formed a strip of grid rows at a time (~strip_pixels grid points): a 2048 x 2048
    image at step 1 needs ~130 MB for them instead of 2 GB for all of its descriptors at once.
    Where the grid takes more than one strip, the strips are formed twice (once to count the
    non-flat descriptors, once to gather the drawn ones)."""
    padded, pad, offs = _padded_channels(gray, bin_size, presmooth)
    h, w = gray.shape
    ys, xs = np.arange(0, h, step), np.arange(0, w, step)
    rows = max(1, strip_pixels // len(xs))
    strips = [ys[r:r + rows] for r in range(0, len(ys), rows)]
    kept, first = [], None
    for sy in strips:
        desc, flat = descriptors(padded, pad, offs, sy, xs, contrast)
        kept.append(int((~flat).sum()))
        if len(strips) == 1:        # kept only where no second pass will form it again
            first = desc.reshape(-1, DIM)[~flat.ravel()]
    total = sum(kept)
    if total == 0:
        return np.empty((0, DIM), np.float32)
    pick = rng.choice(total, min(k, total), replace=False)
    if len(strips) == 1:
        return first[pick]
    out = np.empty((len(pick), DIM), np.float32)
    start = 0
    for sy, n in zip(strips, kept):
        mine = np.flatnonzero((pick >= start) & (pick < start + n))
        if len(mine):
            desc, flat = descriptors(padded, pad, offs, sy, xs, contrast)
            out[mine] = desc.reshape(-1, DIM)[~flat.ravel()][pick[mine] - start]
        start += n
    return out


def _sq_dists(x: np.ndarray, centres: np.ndarray, c2: np.ndarray) -> np.ndarray:
    return c2[None, :] - 2.0 * (x @ centres.T)          # + |x|^2, constant per row


def assign(x: np.ndarray, centres: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """Index of the nearest centre for each row of x (int32)."""
    c2 = np.einsum("ij,ij->i", centres, centres)
    out = np.empty(len(x), np.int32)
    for s in range(0, len(x), chunk):
        out[s:s + chunk] = np.argmin(_sq_dists(x[s:s + chunk], centres, c2), axis=1)
    return out


def kmeans(x: np.ndarray, k: int, iters: int = 25, seed: int = 0) -> np.ndarray:
    """Lloyd's k-means with k-means++ seeding; returns (k, d) float32 centres.

    Empty clusters are re-seeded at the points farthest from their centres."""
    x = np.asarray(x, np.float32)
    if len(x) < k:
        raise ValueError(f"k-means needs at least k={k} samples, got {len(x)}")
    rng = np.random.default_rng(seed)
    centres = np.empty((k, x.shape[1]), np.float32)
    centres[0] = x[rng.integers(len(x))]
    d2 = np.sum((x - centres[0]) ** 2, axis=1)
    for j in range(1, k):  # k-means++
        p = d2 / d2.sum() if d2.sum() > 0 else None
        centres[j] = x[rng.choice(len(x), p=p)]
        d2 = np.minimum(d2, np.sum((x - centres[j]) ** 2, axis=1))
    x2 = np.einsum("ij,ij->i", x, x)
    labels = None
    for _ in range(iters):
        c2 = np.einsum("ij,ij->i", centres, centres)
        new = np.empty(len(x), np.int32)
        dist = np.empty(len(x), np.float32)
        for s in range(0, len(x), 65536):
            d = _sq_dists(x[s:s + 65536], centres, c2)
            new[s:s + 65536] = np.argmin(d, axis=1)
            dist[s:s + 65536] = d[np.arange(len(d)), new[s:s + 65536]] + x2[s:s + 65536]
        counts = np.bincount(new, minlength=k)
        sums = np.zeros_like(centres)
        np.add.at(sums, new, x)
        empty = np.flatnonzero(counts == 0)
        centres = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], centres)
        if len(empty):
            far = np.argsort(dist)[::-1][:len(empty)]
            centres[empty] = x[far]
        if labels is not None and np.array_equal(new, labels) and not len(empty):
            break
        labels = new
    return centres.astype(np.float32)


def words(gray: np.ndarray, codebook: np.ndarray, bin_size: int, presmooth: float, contrast: float,
          strip_pixels: int = 1 << 18) -> np.ndarray:
    """H x W int32 code word per pixel: 0..K-1 from the codebook, K for flat (low-contrast) pixels.

    Descriptors are formed and quantised a strip of rows at a time (about strip_pixels pixels), so
    a 1920 x 2560 image needs ~130 MB for them rather than 2.5 GB."""
    padded, pad, offs = _padded_channels(gray, bin_size, presmooth)
    h, w = gray.shape
    out = np.full((h, w), len(codebook), np.int32)
    rows = max(1, strip_pixels // w)
    xs = np.arange(w)
    for r0 in range(0, h, rows):
        ys = np.arange(r0, min(h, r0 + rows))
        desc, flat = descriptors(padded, pad, offs, ys, xs, contrast)
        keep = ~flat.ravel()
        strip = np.full(len(ys) * w, len(codebook), np.int32)
        strip[keep] = assign(desc.reshape(-1, DIM)[keep], codebook)
        out[ys[0]:ys[-1] + 1] = strip.reshape(len(ys), w)
    return out
