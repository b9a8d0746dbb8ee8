"""Le.count: Lempitsky & Zisserman, "Learning To Count Objects in Images" (NIPS 2010).

Each pixel p is described by the one-hot code word x_p of its dense SIFT descriptor (features.py);
the density is linear in it, F(p) = w . x_p, and the count of an image is the integral (sum) of F.

Learning. L&Z fit w by minimising the MESA distance (the largest count error over all boxes) with a
cutting-plane QP. This module implements the simpler per-pixel least-squares ("ridge") fit of the
same linear density to the dot annotations:

    min_w  sum_i || G_s * (X_i w) - G_s * D_i ||^2  +  lam * (tr A / K) * ||w||^2

where D_i is the dot map smoothed by a Gaussian of `target_sigma` (L&Z's ground-truth density),
X_i the one-hot word maps and G_s a Gaussian of `smooth_sigma` applied to both sides (it lets the
estimate be off by a few pixels without cost, the tolerance that MESA's box sums give). With
smooth_sigma = 0 the fit decouples into one ridge-shrunk mean density per code word. The normal
equations A w = b are (K+1) x (K+1) and accumulate image by image, so lam is chosen by k-fold
cross-validation over the training images (count MAE), as L&Z chose their regularisation on a
validation half of the N images, at the cost of a few small solves.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
from scipy import ndimage

from pycount.util.progress import Progress

from . import features, mesa
from ._common import (check_image, check_training_set, dot_map, gaussian, load_npz,
                      replace_settings, save_npz)

KIND = "le.count"
FORMAT = 1


@dataclass(frozen=True)
class LeCountSettings:
    # "blue": L&Z computed their dense SIFTs on the blue channel of the VGG cells (their released
    # code); "gray" or "hematoxylin" suit H&E slides (the bench's nuclei run says which it used).
    channel: str = "blue"
    # SIFT spatial bin in px (4 x 4 bins, so the descriptor spans 4*bin_size): L&Z's released code
    # calls vl_dsift with no options; 3 is VLFeat's default bin size as we know it (not verified
    # here). Nuclei: 5 gave 86.5 vs 90.8 on the validation split (without intensity bins).
    bin_size: int = 3
    presmooth: float = 0.0          # Gaussian sigma before the gradients: none (vl_dsift's default)
    # Descriptors with an unnormalised norm below this are "flat" and share one extra word:
    # measured on the bacterial validation split (N=32 -> the other 68 of 001-100, smooth_sigma 2):
    # MAE 7.57 at 0.15 vs 7.96 at 0.02 (0.15 is below the norm of ~30 % of the pixels of 001).
    contrast: float = 0.15
    n_words: int = 256              # code book size: a first choice in the 256-2000 range, not tuned
    codebook_samples: int = 100_000  # descriptors k-means sees, drawn evenly from the training images
    # ... drawn from a grid of every step-th pixel, step = floor(sqrt(pixels / (this x the image's
    # share of samples))): 1 (every pixel) for the VGG cells and the nuclei images, 5 for a Ki67
    # image (4.9 MP, ~2,200 samples), whose dense SIFT at every pixel took 40 s and 2.5 GB here
    codebook_oversample: int = 64
    kmeans_iters: int = 25
    # Ground-truth density: each dot spread by a Gaussian of this sigma (px); L&Z's ground truth is
    # a sum of Gaussians at the dots. Next to smooth_sigma 8 it hardly matters (at smooth_sigma 2,
    # 2 px gave 6.71 vs 7.57 for 1 px on the bacterial validation split).
    target_sigma: float = 1.0
    # tolerance smoothing of both sides in the loss (px), bacterial validation MAE: 0 -> 9.35,
    # 2 -> 7.57, 4 -> 5.31, 8 -> 4.15, 16 -> 4.16
    smooth_sigma: float = 8.0
    # the loss compares densities summed over loss_cell x loss_cell blocks (then smoothed): speed,
    # and the same spirit of region-level tolerance; 1 = per pixel. At smooth_sigma 8: 4.16 (4) vs
    # 4.15 (1) on the bacterial validation split, and the fit is several times faster.
    loss_cell: int = 4
    # relative ridge strengths tried by cross-validation (times tr(A)/K)
    lambdas: tuple = (1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
    cv_folds: int = 4               # folds over the training images for the choice of lam
    # "ridge" (default): the per-pixel least-squares fit above. "mesa": L&Z's MESA distance with
    # the L1 regulariser, by cutting planes (mesa.py), boxes on a grid of mesa_cell px.
    loss: str = "ridge"
    mesa_lambda: float = 1e-3       # L1 weight (per unit of |w|_1 against the summed MESA): not tuned
    mesa_cell: int = 4              # box grid (px) of the MESA search: for speed (1 = exact); not tuned
    mesa_rounds: int = 60
    # > 0: a second one-hot block, the pixel's channel intensity in this many bins (training
    # quantiles), added to the SIFT word (x_p = [word, intensity bin]); L&Z's framework takes any
    # per-pixel features. 0 = SIFT words alone (their cell experiment). Nuclei: config.CLASSIC_BY_DATASET.
    intensity_bins: int = 0
    seed: int = 0

    def replace(self, **kw) -> "LeCountSettings":
        return replace_settings(self, "Le.count", **kw)


DEFAULTS = LeCountSettings()
# Per-dataset settings: pycount/config.py, CLASSIC_BY_DATASET (with their measured effects).


class LeCount:
    """A fitted Le.count model: code book + one density weight per code word."""

    def __init__(self, settings: LeCountSettings, codebook: np.ndarray, weights: np.ndarray, info: dict,
                 int_edges: np.ndarray | None = None):
        self.settings, self.codebook, self.weights, self.info = settings, codebook, weights, info
        self.int_edges = np.empty(0) if int_edges is None else np.asarray(int_edges, float)

    # -- features ---------------------------------------------------------------------------------
    def _gray(self, image):
        return features.channel(image, self.settings.channel)

    def words(self, image: np.ndarray) -> np.ndarray:
        """H x W int32 code word of each pixel (K = flat background)."""
        s = self.settings
        return features.words(self._gray(check_image(image)), self.codebook, s.bin_size, s.presmooth, s.contrast)

    def feature_maps(self, image: np.ndarray) -> list[np.ndarray]:
        """The index maps whose one-hot codes are the pixel features x_p: the SIFT code word
        (0..K, K = flat) and, with intensity_bins > 0, K+1 + the intensity bin of the channel."""
        maps = [self.words(image)]
        if self.settings.intensity_bins:
            maps.append(self.settings.n_words + 1 + np.searchsorted(self.int_edges, self._gray(image)))
        return maps

    @property
    def dim(self) -> int:
        return self.settings.n_words + 1 + self.settings.intensity_bins

    def _pixel_density(self, image) -> np.ndarray:
        maps = self.feature_maps(image)
        return sum(self.weights[m] for m in maps)

    # -- training ---------------------------------------------------------------------------------
    @classmethod
    def fit(cls, images: Sequence[np.ndarray], points: Sequence[np.ndarray], **settings) -> "LeCount":
        s = DEFAULTS.replace(**settings)
        images, points = check_training_set(images, points)
        if s.channel not in ("red", "green", "blue", "gray", "hematoxylin"):
            raise ValueError(f"unknown channel {s.channel!r}")
        if s.loss not in ("ridge", "mesa"):
            raise ValueError(f"unknown loss {s.loss!r}; use 'ridge' or 'mesa'")
        t0 = time.perf_counter()
        rng = np.random.default_rng(s.seed)
        # 1. code book from non-flat descriptors, evenly over the images
        per_image = max(1, s.codebook_samples // len(images))
        sample = []
        with Progress(len(images), "Le.count: code book descriptors", "images") as bar:
            for im in images:
                step = max(1, int(np.sqrt(im.shape[0] * im.shape[1] / (s.codebook_oversample * per_image))))
                d = features.sample_descriptors(features.channel(im, s.channel), s.bin_size, s.presmooth,
                                                s.contrast, step, per_image, rng)
                if len(d):
                    sample.append(d)
                bar.update(1)
        sample = np.concatenate(sample) if sample else np.empty((0, features.DIM), np.float32)
        if len(sample) < s.n_words:
            raise ValueError(f"only {len(sample)} textured pixels in the training images, fewer than "
                             f"n_words={s.n_words}; lower n_words or contrast")
        codebook = features.kmeans(sample, s.n_words, s.kmeans_iters, s.seed)
        t_codebook = time.perf_counter() - t0
        int_edges = None
        if s.intensity_bins:
            pix = np.concatenate([features.channel(im, s.channel).ravel()[::7] for im in images])
            int_edges = np.quantile(pix, np.linspace(0, 1, s.intensity_bins + 1)[1:-1])
        model = cls(s, codebook, np.zeros(s.n_words + 1 + s.intensity_bins), {}, int_edges)
        k1 = model.dim
        if s.loss == "mesa":
            if s.intensity_bins:
                raise ValueError("loss='mesa' takes the SIFT words alone; set intensity_bins=0")
            maps = [model.words(im) for im in images]
            targets = [gaussian(dot_map(pts, im.shape), s.target_sigma) for im, pts in zip(images, points)]
            model.weights, minfo = mesa.fit_mesa(maps, targets, k1, s.mesa_lambda, s.mesa_rounds,
                                                 cell=s.mesa_cell)
            model.info = {"train_images": len(images), "train_seconds": time.perf_counter() - t0,
                          "codebook_seconds": t_codebook, "loss": "mesa", **minfo}
            return model
        # 2. per-image normal equations and word histograms
        As, bs, hists, counts = [], [], [], []
        with Progress(len(images), "Le.count: per-image normal equations", "images") as bar:
            for im, pts in zip(images, points):
                maps = model.feature_maps(im)
                target = gaussian(dot_map(pts, im.shape), s.target_sigma)
                A, b = _normal_equations(maps, target, k1, s.smooth_sigma, s.loss_cell)
                As.append(A); bs.append(b)
                hists.append(sum(np.bincount(m.ravel(), minlength=k1) for m in maps).astype(np.float64))
                counts.append(len(pts))
                bar.update(1)
        As, bs, hists, counts = np.array(As), np.array(bs), np.array(hists), np.array(counts, float)
        # 3. lam by k-fold cross-validation on the count error, then the final solve on all images
        lam, cv = _choose_lambda(As, bs, hists, counts, s.lambdas, s.cv_folds, rng)
        model.weights = _solve(As.sum(0), bs.sum(0), lam)
        model.info = {"lambda": lam, "cv_mae": cv, "train_images": len(images),
                      "train_seconds": time.perf_counter() - t0, "codebook_seconds": t_codebook,
                      "loss": "ridge"}
        return model

    # -- inference --------------------------------------------------------------------------------
    def density(self, image: np.ndarray) -> np.ndarray:
        """H x W float32 density F(p) = w . x_p (cells per pixel); its sum is the count."""
        return self._pixel_density(image).astype(np.float32)

    def count_image(self, image: np.ndarray) -> float:
        return float(self._pixel_density(image).sum())

    # -- storage ----------------------------------------------------------------------------------
    def save(self, path) -> None:
        save_npz(path, {"codebook": self.codebook, "weights": self.weights, "int_edges": self.int_edges},
                 {"kind": KIND, "format": FORMAT, "settings": asdict(self.settings), "info": self.info})

    @classmethod
    def load(cls, path) -> "LeCount":
        arrays, meta = load_npz(path, KIND, ("codebook", "weights", "int_edges"))
        st = meta["settings"]
        st["lambdas"] = tuple(st["lambdas"])
        s = LeCountSettings(**st)
        if (arrays["codebook"].shape != (s.n_words, features.DIM)
                or arrays["weights"].shape != (s.n_words + 1 + s.intensity_bins,)
                or len(arrays["int_edges"]) != max(s.intensity_bins - 1, 0)):
            raise ValueError(f"{path}: code book {arrays['codebook'].shape} / weights {arrays['weights'].shape} "
                             f"do not match n_words={s.n_words}")
        return cls(s, arrays["codebook"], arrays["weights"], meta.get("info", {}), arrays["int_edges"])


def block_hist(maps, k1: int, cell: int) -> np.ndarray:
    """(h', w', k1) count of each code (over all the index maps) in every cell x cell block."""
    if isinstance(maps, np.ndarray):
        maps = [maps]
    h, w = maps[0].shape
    hb, wb = -(-h // cell), -(-w // cell)
    by = (np.arange(h) // cell)[:, None]
    bx = (np.arange(w) // cell)[None, :]
    out = np.zeros(hb * wb * k1)
    for m in maps:
        out += np.bincount(((by * wb + bx) * k1 + m).ravel(), minlength=hb * wb * k1)
    return out.reshape(hb, wb, k1)


def block_sum(a: np.ndarray, cell: int) -> np.ndarray:
    h, w = a.shape
    hb, wb = -(-h // cell), -(-w // cell)
    p = np.zeros((hb * cell, wb * cell))
    p[:h, :w] = a
    return p.reshape(hb, cell, wb, cell).sum(axis=(1, 3))


def _normal_equations(maps, target: np.ndarray, k1: int, sigma: float, cell: int,
                      strip_values: int = 1 << 22):
    """A = X^T X and b = X^T y, X the one-hot word maps summed over cell x cell blocks and smoothed
    by a Gaussian of sigma px (sigma / cell blocks), y the target treated the same way.

    X is formed a strip of block rows at a time (~strip_values numbers, 32 MB), each strip with the
    Gaussian's reach of rows on both sides so that its own rows are smoothed exactly as in the
    whole image: a 2048 x 2048 image no longer needs its whole X (540 MB at 257 words) at once."""
    if sigma <= 0 and cell == 1 and len(maps) == 1:  # one-hot rows: A is diagonal
        flat = maps[0].ravel()
        A = np.diag(np.bincount(flat, minlength=k1).astype(np.float64))
        return A, np.bincount(flat, weights=target.ravel(), minlength=k1)
    h, w = target.shape
    hb, wb = -(-h // cell), -(-w // cell)
    s = sigma / cell
    reach = int(4.0 * s + 0.5) if sigma > 0 else 0        # gaussian_filter's radius (truncate 4)
    rows = max(1, strip_values // (wb * k1))
    A, b = np.zeros((k1, k1)), np.zeros(k1)
    for b0 in range(0, hb, rows):
        b1 = min(hb, b0 + rows)
        e0, e1 = max(0, b0 - reach), min(hb, b1 + reach)
        X = block_hist([m[e0 * cell:e1 * cell] for m in maps], k1, cell)
        y = block_sum(target[e0 * cell:e1 * cell], cell)
        if sigma > 0:
            X = ndimage.gaussian_filter(X, (s, s, 0), mode="reflect")
            y = ndimage.gaussian_filter(y, s, mode="reflect")
        X = X[b0 - e0:b1 - e0].reshape(-1, k1)
        A += X.T @ X
        b += X.T @ y[b0 - e0:b1 - e0].ravel()
    return A, b


def _solve(A: np.ndarray, b: np.ndarray, lam: float) -> np.ndarray:
    k = len(A)
    scale = max(np.trace(A) / k, 1e-12)
    return np.linalg.solve(A + lam * scale * np.eye(k), b)


def _choose_lambda(As, bs, hists, counts, lambdas, folds, rng):
    n = len(As)
    lambdas = tuple(lambdas)
    if len(lambdas) == 1 or n < 2:
        return float(lambdas[0]), None
    folds = min(folds, n)
    order = rng.permutation(n)
    fold_of = np.empty(n, int)
    fold_of[order] = np.arange(n) % folds
    A_all, b_all = As.sum(0), bs.sum(0)
    errs = []
    for lam in lambdas:
        err = 0.0
        for f in range(folds):
            held = fold_of == f
            w = _solve(A_all - As[held].sum(0), b_all - bs[held].sum(0), lam)
            err += np.abs(hists[held] @ w - counts[held]).sum()
        errs.append(err / n)
    best = int(np.argmin(errs))
    return float(lambdas[best]), {str(l): float(e) for l, e in zip(lambdas, errs)}
