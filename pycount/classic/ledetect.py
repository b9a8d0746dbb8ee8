"""Le.detect: Arteta, Lempitsky, Noble & Zisserman, "Learning to Detect Cells Using Non-overlapping
Extremal Regions" (MICCAI 2012).

1. Candidates: the extremal regions of the image (connected components of {I >= t} over a ladder of
   thresholds t), which form a tree: a region at a higher threshold lies inside exactly one region
   at each lower threshold. Regions that do not change between consecutive thresholds are merged
   (one node per distinct pixel set); regions outside [min_area, max_area] are dropped (a dropped
   node's children become roots).
2. A feature vector per region: area, threshold, intensity statistics and histogram, contrast with
   the ring of pixels just outside, shape (compactness, ellipse axis ratio and fill), and stability
   (area relative to its parent and to its largest child), each scalar encoded into soft bins so a
   linear score is a flexible function of it, as Arteta et al. bin their features.
3. A learned linear score per region, trained as in the paper by a structured SVM whose loss
   counts selected regions without a dot, extra dots in a selected region and missed dots
   (learner="ssvm": stochastic subgradient descent on the structured hinge, loss-augmented DP,
   started from a logistic fit of "the region holds exactly one dot"). Two additions (see the
   settings' comments for what they did): score_offset is then chosen on the training images' count error
   (calibrate_offset), and on nuclei a dot within label_tolerance px of a region labels it.
   learner="logistic" keeps the logistic score alone (a simplification) and allows the tuple
   classes of Arteta et al. 2013 (max_tuple > 1).
4. Inference as in the paper: the non-overlapping subset of the tree with the largest total score,
   by dynamic programming (a node is taken, or the best of its subtrees are). Selected regions are
   pairwise disjoint. Count = number of selected regions; detections = their centroids.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
from scipy import ndimage, optimize

from pycount.util.progress import Progress

from . import features
from ._common import (check_image, check_training_set, load_npz, replace_settings,
                      save_npz)

KIND = "le.detect"
FORMAT = 1
STRUCT8 = np.ones((3, 3), bool)


@dataclass(frozen=True)
class LeDetectSettings:
    # "blue" for the VGG cells (the stained channel; the others are ~0), "hematoxylin" for H&E
    # nuclei (optical density along the haematoxylin stain vector, nuclei bright).
    channel: str = "blue"
    # Gaussian sigma (px) before thresholding, and the number of thresholds (evenly between two
    # training-pixel quantiles). Checked by the share of dots an ideal selection reaches on 4
    # bacterial training images (~75 % for presmooth 0-1.5, 48-255 levels) and on 3 nuclei images
    # (1 px better than 2); not tuned further.
    presmooth: float = 1.0
    n_levels: int = 48
    level_quantiles: tuple = (0.05, 0.999)  # range of the threshold ladder (training pixel quantiles)
    min_area: int = 6               # px; smaller regions are not candidates (cells are ~50-300 px)
    max_area: int = 2500            # px; larger regions are not candidates (>> one cell in both sets)
    n_bins: int = 8                 # soft bins per scalar feature
    hist_bins: int = 8              # bins of the in-region intensity histogram
    l2: float = 1e-3                # logistic-regression ridge (per region, on binned features): not tuned
    score_offset: float = 0.0       # score = log-odds - offset; 0 takes regions judged p > 1/2
    # 1 = Arteta et al. 2012: a selected region is one cell. k > 1 adds the "tuple" classes of their
    # follow-up (Arteta et al., CVPR 2013): a region may be labelled 2..k cells and counts as such.
    max_tuple: int = 1
    # choose score_offset from OFFSET_GRID by the training images' count MAE (replacing the value
    # above). Bacterial, 12 training -> 8 validation images: MAE 80.4 -> 52.3 (logistic score).
    calibrate_offset: bool = True
    # "ssvm": the paper's structured SVM (linear score, trained by subgradient descent on the
    # structured hinge with loss-augmented DP inference; needs max_tuple = 1), started from the
    # logistic fit. "logistic": the logistic/multinomial score alone (a simplification).
    learner: str = "ssvm"
    ssvm_lambda: float = 1e-3       # ridge weight of the structured SVM objective (1e-4: same result)
    ssvm_epochs: int = 30           # passes over the training images (60: MAE 48.4 vs 49.5, 12 images)
    ssvm_step: float = 1.0          # subgradient step scale (step / sqrt(t)): measured (0.1, 1, 3 on 12 bacterial images)
    # a dot up to this many px outside a region (and in no other region) labels it: annotators'
    # clicks may fall just outside the extremal region (nuclei: 2 px lifts the share of dots an ideal
    # selection can reach from ~80 % to ~95 %, measured on 3 training images; bacterial: no gain).
    # On the nuclei validation split the MAE did not improve (79.2 with 2 px vs 77.5 without).
    label_tolerance: int = 0
    max_regions_per_image: int = 20000  # training subsample cap per image (memory), seeded
    seed: int = 0

    def replace(self, **kw) -> "LeDetectSettings":
        return replace_settings(self, "Le.detect", **kw)


DEFAULTS = LeDetectSettings()
# Per-dataset settings: pycount/config.py, CLASSIC_BY_DATASET (with their measured effects).
OFFSET_GRID = np.arange(-8.0, 4.01, 0.25)
SCALARS = ("log_area", "level", "mean", "std", "contrast_level", "ring_contrast", "compactness",
           "axis_ratio", "ellipse_fill", "log_parent_ratio", "log_child_ratio", "depth")


class Regions:
    """The extremal-region tree of one image: per node its threshold index, label in that
    threshold's label image, parent (-1 for a root), features and centroid."""

    def __init__(self, labels, level_idx, label, parent, scalars, hists, centroid, area):
        self.labels, self.level_idx, self.label, self.parent = labels, level_idx, label, parent
        self.scalars, self.hists, self.centroid, self.area = scalars, hists, centroid, area

    def __len__(self):
        return len(self.parent)

    def mask(self, node: int) -> np.ndarray:
        return self.labels[self.level_idx[node]] == self.label[node]

    def dots_inside(self, points: np.ndarray, tolerance: int = 0) -> np.ndarray:
        """Number of the given (x, y) points inside each node; with tolerance t, a point up to t px
        outside a region (and inside no other region of that threshold) counts as inside it."""
        out = np.zeros(len(self), np.int64)
        if not len(points) or not len(self):
            return out
        h, w = self.labels[0].shape
        xs = np.clip(np.rint(points[:, 0]).astype(int), 0, w - 1)
        ys = np.clip(np.rint(points[:, 1]).astype(int), 0, h - 1)
        for li in np.unique(self.level_idx):
            nodes = np.flatnonzero(self.level_idx == li)
            lab = self.labels[li]
            if tolerance > 0:
                grown = ndimage.grey_dilation(lab, size=(2 * tolerance + 1,) * 2)
                lab = np.where(lab > 0, lab, grown)
            per_label = np.bincount(lab[ys, xs], minlength=max(self.label[nodes].max(), lab.max()) + 1)
            out[nodes] = per_label[self.label[nodes]]
        return out


def extremal_regions(gray: np.ndarray, levels: np.ndarray, min_area: int, max_area: int, hist_edges) -> Regions:
    """The tree of extremal regions {gray >= t} for t in levels (ascending), with their features."""
    h, w = gray.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    nb = len(hist_edges) - 1
    gbin = np.clip(np.searchsorted(hist_edges, gray, side="right") - 1, 0, nb - 1)
    all_labels = []
    prev_lab, prev_node, prev_area = None, None, None      # label image / node id / area per label
    n_nodes = 0
    cols = {k: [] for k in ("level_idx", "label", "parent", "area", "sx", "sy", "sxx", "syy", "sxy", "si", "sii",
                            "perim", "ring", "level")}
    hists = []
    for li, t in enumerate(levels):
        mask = gray >= t
        lab, n = ndimage.label(mask, structure=STRUCT8)
        if n == 0:
            all_labels.append(lab)
            prev_lab, prev_node, prev_area = lab, np.full(1, -1), np.zeros(1)
            continue
        idx = lab.ravel()
        area = np.bincount(idx, minlength=n + 1).astype(np.float64)
        node_of = np.full(n + 1, -1, np.int64)
        # parent component at the previous level (any pixel of a component is inside the same one)
        first = np.full(n + 1, -1, np.int64)
        order = np.flatnonzero(idx)
        first[idx[order[::-1]]] = order[::-1]
        if prev_lab is None:
            par_label = np.zeros(n + 1, np.int64)
        else:
            par_label = prev_lab.ravel()[np.maximum(first, 0)]
        keep = (area >= min_area) & (area <= max_area)
        keep[0] = False
        # the same pixel set as its parent: reuse the parent's node (no new node)
        same = np.zeros(n + 1, bool)
        if prev_lab is not None:
            same = (par_label > 0) & (prev_area[par_label] == area) & (prev_node[par_label] >= 0)
            node_of[same] = prev_node[par_label[same]]
        new = np.flatnonzero(keep & ~same)
        if len(new):
            ids = np.arange(n_nodes, n_nodes + len(new))
            node_of[new] = ids
            n_nodes += len(new)
            parent = prev_node[par_label[new]] if prev_lab is not None else np.full(len(new), -1)
            m = idx.astype(np.int64)
            g = gray.ravel().astype(np.float64)
            bc = lambda wts: np.bincount(m, weights=wts, minlength=n + 1)[new]  # noqa: E731
            xf, yf = xx.ravel(), yy.ravel()
            # boundary pixels: in the region with a 4-neighbour outside it
            inner = ndimage.binary_erosion(mask, border_value=0)
            boundary = (mask & ~inner).ravel()
            # ring: the pixels just outside, given to the adjacent component
            ring_lab = ndimage.grey_dilation(lab, footprint=STRUCT8)
            ring = (~mask).ravel() & (ring_lab.ravel() > 0)
            rl = ring_lab.ravel()[ring]
            ring_sum = np.bincount(rl, weights=g[ring], minlength=n + 1)[new]
            ring_n = np.bincount(rl, minlength=n + 1)[new]
            cols["level_idx"].append(np.full(len(new), li)); cols["label"].append(new)
            cols["parent"].append(parent); cols["area"].append(area[new])
            cols["sx"].append(bc(xf)); cols["sy"].append(bc(yf)); cols["sxx"].append(bc(xf * xf))
            cols["syy"].append(bc(yf * yf)); cols["sxy"].append(bc(xf * yf)); cols["si"].append(bc(g))
            cols["sii"].append(bc(g * g)); cols["perim"].append(bc(boundary.astype(np.float64)))
            cols["ring"].append(ring_sum / np.maximum(ring_n, 1)); cols["level"].append(np.full(len(new), t))
            hcount = np.bincount(m * nb + gbin.ravel(), minlength=(n + 1) * nb).reshape(n + 1, nb)[new]
            hists.append(hcount / area[new][:, None])
        all_labels.append(lab)
        prev_lab, prev_node, prev_area = lab, node_of, area
    if n_nodes == 0:
        empty = np.empty(0)
        return Regions(all_labels, empty.astype(int), empty.astype(int), empty.astype(int),
                       np.empty((0, len(SCALARS))), np.empty((0, nb)), np.empty((0, 2)), empty)
    c = {k: np.concatenate(v) for k, v in cols.items()}
    parent = c["parent"].astype(np.int64)
    a = c["area"]
    mx, my = c["sx"] / a, c["sy"] / a
    vxx = np.maximum(c["sxx"] / a - mx * mx, 0) + 1 / 12
    vyy = np.maximum(c["syy"] / a - my * my, 0) + 1 / 12
    vxy = c["sxy"] / a - mx * my
    tr, det = vxx + vyy, np.maximum(vxx * vyy - vxy * vxy, 1e-12)
    disc = np.sqrt(np.maximum(tr * tr / 4 - det, 0))
    l1, l2 = tr / 2 + disc, np.maximum(tr / 2 - disc, 1e-6)
    mean = c["si"] / a
    std = np.sqrt(np.maximum(c["sii"] / a - mean * mean, 0))
    par_area = np.where(parent >= 0, a[np.maximum(parent, 0)], np.nan)
    child_max = np.zeros(len(a))
    has_par = parent >= 0
    np.maximum.at(child_max, parent[has_par], a[has_par])
    depth = np.zeros(len(a))
    for i in range(len(a)):          # parents precede children (created at lower thresholds)
        if parent[i] >= 0:
            depth[i] = depth[parent[i]] + 1
    scalars = np.stack([
        np.log(a), c["level"], mean, std, mean - c["level"], mean - c["ring"],
        4 * np.pi * a / np.maximum(c["perim"], 1) ** 2, np.sqrt(l2 / l1),
        a / (4 * np.pi * np.sqrt(l1 * l2)),
        np.where(has_par, np.log(np.where(has_par, par_area, 1) / a), np.log(max_area / a)),
        np.where(child_max > 0, np.log(a / np.maximum(child_max, 1)), 0.0),
        depth], axis=1)
    return Regions(all_labels, c["level_idx"].astype(np.int64), c["label"].astype(np.int64), parent,
                   scalars, np.concatenate(hists), np.stack([mx, my], axis=1), a)


def select(scores: np.ndarray, parent: np.ndarray) -> np.ndarray:
    """Boolean mask of the non-overlapping set of nodes (no node together with an ancestor) with
    the largest total score: DP bottom-up best(n) = max(score(n), sum of best(children)), then the
    choices read top-down. Nodes must be numbered so that parents precede their children."""
    n = len(scores)
    best = np.zeros(n)
    childsum = np.zeros(n)
    take = np.zeros(n, bool)
    for i in range(n - 1, -1, -1):
        take[i] = scores[i] > childsum[i] and scores[i] > 0
        best[i] = scores[i] if take[i] else childsum[i]
        if parent[i] >= 0:
            childsum[parent[i]] += best[i]
    chosen = np.zeros(n, bool)
    blocked = np.zeros(n, bool)
    for i in range(n):
        if parent[i] >= 0:
            blocked[i] = blocked[parent[i]] or chosen[parent[i]]
        chosen[i] = take[i] and not blocked[i]
    return chosen


def _soft_bins(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Each value as a linear interpolation between the two nearest of len(edges) bin centres."""
    k = len(edges)
    pos = np.interp(x, edges, np.arange(k))
    lo = np.clip(np.floor(pos).astype(int), 0, k - 1)
    hi = np.minimum(lo + 1, k - 1)
    frac = pos - lo
    out = np.zeros((len(x), k))
    out[np.arange(len(x)), lo] += 1 - frac
    out[np.arange(len(x)), hi] += frac
    return out


class LeDetect:
    """A fitted Le.detect model: threshold ladder, feature binning and linear region score."""

    def __init__(self, settings: LeDetectSettings, levels, hist_edges, bin_edges, weights, info):
        self.settings, self.levels, self.hist_edges = settings, levels, hist_edges
        self.bin_edges, self.weights, self.info = bin_edges, weights, info

    def _gray(self, image):
        g = features.channel(image, self.settings.channel)
        if self.settings.presmooth > 0:
            g = ndimage.gaussian_filter(g, self.settings.presmooth, mode="reflect")
        return g

    def regions(self, image: np.ndarray) -> Regions:
        s = self.settings
        return extremal_regions(self._gray(check_image(image)), self.levels, s.min_area, s.max_area, self.hist_edges)

    def _design(self, reg: Regions) -> np.ndarray:
        parts = [_soft_bins(reg.scalars[:, j], self.bin_edges[j]) for j in range(reg.scalars.shape[1])]
        return np.hstack(parts + [reg.hists, np.ones((len(reg), 1))])

    def class_scores(self, reg: Regions) -> tuple[np.ndarray, np.ndarray]:
        """(score, cells) per region, minus score_offset. learner "ssvm": the linear score w . f and
        one cell. "logistic": the log-odds of the region's best class c in 1..max_tuple against "no
        selectable class" (0 cells or more than max_tuple), and that c."""
        k = self.settings.max_tuple
        if not len(reg):
            return np.empty(0), np.empty(0, int)
        if self.settings.learner == "ssvm":
            return self._design(reg) @ self.weights - self.settings.score_offset, np.ones(len(reg), int)
        z = self._design(reg) @ self.weights.reshape(-1, k + 2)   # classes 0, 1..k, >k
        z -= z.max(axis=1, keepdims=True)
        c = 1 + np.argmax(z[:, 1:k + 1], axis=1)
        rest = np.logaddexp(z[:, 0], z[:, k + 1])
        return z[np.arange(len(z)), c] - rest - self.settings.score_offset, c

    def scores(self, reg: Regions) -> np.ndarray:
        return self.class_scores(reg)[0]

    # -- training ---------------------------------------------------------------------------------
    @classmethod
    def fit(cls, images: Sequence[np.ndarray], points: Sequence[np.ndarray], **settings) -> "LeDetect":
        s = DEFAULTS.replace(**settings)
        images, points = check_training_set(images, points)
        t0 = time.perf_counter()
        rng = np.random.default_rng(s.seed)
        probe = cls(s, None, None, None, None, {})
        # one image's grey levels and region tree at a time: a 1920x2560 image's 48 label images
        # alone take ~1 GB, so the trees keep only their features, parents and dot counts
        pix = []
        for im in images:
            g = probe._gray(im)
            pix.append(g.ravel()[rng.choice(g.size, min(g.size, 20000), replace=False)])
        pix = np.concatenate(pix)
        lo, hi = np.quantile(pix, s.level_quantiles)
        if not hi > lo:
            raise ValueError("the training images have no intensity range in the chosen channel "
                             f"({s.channel!r}); pick another channel")
        levels = np.linspace(lo, hi, s.n_levels)
        hist_edges = np.linspace(lo, hi, s.hist_bins + 1)
        regs, ys, trees = [], [], []
        with Progress(len(images), "Le.detect: extremal regions", "images") as bar:
            for im, pts in zip(images, points):
                r = extremal_regions(probe._gray(im), levels, s.min_area, s.max_area, hist_edges)
                dots = r.dots_inside(pts, s.label_tolerance)
                r.labels = None                              # the label images: ~1 GB a 5 Mpx image
                trees.append((r, dots, len(pts)))
                y = np.minimum(dots, s.max_tuple + 1)
                keep = np.arange(len(r))
                if len(r) > s.max_regions_per_image:
                    keep = np.sort(rng.choice(len(r), s.max_regions_per_image, replace=False))
                regs.append((r.scalars[keep], r.hists[keep]))
                ys.append(y[keep])
                bar.update(1)
        scal = np.concatenate([a for a, _ in regs])
        hist = np.concatenate([b for _, b in regs])
        y = np.concatenate(ys)
        if s.max_tuple < 1:
            raise ValueError(f"max_tuple must be >= 1, got {s.max_tuple}")
        if s.learner not in ("ssvm", "logistic"):
            raise ValueError(f"unknown learner {s.learner!r}; use 'ssvm' or 'logistic'")
        if s.learner == "ssvm" and s.max_tuple != 1:
            raise ValueError("learner='ssvm' scores single cells (max_tuple=1); use learner='logistic' for tuples")
        if len(y) == 0 or not (y == 1).any() or (y == 1).all():
            raise ValueError(f"no usable training regions ({len(y)} candidates, {int((y == 1).sum())} with exactly "
                             "one dot); check the points and the min_area/max_area settings")
        bin_edges = np.array([np.unique(np.quantile(scal[:, j], np.linspace(0, 1, s.n_bins)))
                              for j in range(scal.shape[1])], dtype=object)
        bin_edges = [np.asarray(e, float) if len(e) > 1 else np.array([e[0], e[0] + 1.0]) for e in bin_edges]
        model = cls(s, levels, hist_edges, bin_edges, None, {})
        X = np.hstack([_soft_bins(scal[:, j], bin_edges[j]) for j in range(scal.shape[1])] + [hist, np.ones((len(y), 1))])
        ssvm_info = None
        if s.learner == "ssvm":
            w2 = _softmax(X, (y == 1).astype(int), 2, s.l2).reshape(-1, 2)
            data = [(model._design(r), dots, r.parent, n) for r, dots, n in trees]
            model.weights, ssvm_info = _ssvm(data, w2[:, 1] - w2[:, 0], s.ssvm_lambda, s.ssvm_epochs, rng,
                                             s.ssvm_step)
        else:
            model.weights = _softmax(X, y.astype(int), s.max_tuple + 2, s.l2)
        trees = [(r, n) for r, _, n in trees]
        calib = None
        if s.calibrate_offset:
            model, calib = model._calibrated(trees)
        model.info = {"train_images": len(images), "regions": int(len(y)), "positives": int((y == 1).sum()),
                      "train_seconds": time.perf_counter() - t0, "score": s.learner,
                      "score_offset": model.settings.score_offset, "offset_train_mae": calib,
                      "ssvm": ssvm_info}
        return model

    def _calibrated(self, trees) -> tuple["LeDetect", dict]:
        """The model with the score_offset (from OFFSET_GRID) whose DP selection gives the lowest
        count MAE on the training images: it sets the balance between taking a region and taking
        its sub-regions that the structured SVM learns jointly with the weights in the paper."""
        raw = [(self.class_scores(r) + (r.parent, n)) for r, n in trees]
        errs = []
        for off in OFFSET_GRID:
            e = [abs(float(cells[select(sc + self.settings.score_offset - off, par)].sum()) - n)
                 for sc, cells, par, n in raw]
            errs.append(float(np.mean(e)))
        best = float(OFFSET_GRID[int(np.argmin(errs))])
        model = LeDetect(self.settings.replace(score_offset=best), self.levels, self.hist_edges,
                         self.bin_edges, self.weights, {})
        return model, dict(zip(map(str, OFFSET_GRID), errs))

    # -- inference --------------------------------------------------------------------------------
    def detect_regions(self, image: np.ndarray) -> tuple[Regions, np.ndarray, np.ndarray]:
        """The region tree, the selected nodes (bool) and the cells each node stands for."""
        reg = self.regions(image)
        score, cells = self.class_scores(reg)
        return reg, select(score, reg.parent), cells

    def detect(self, image: np.ndarray) -> np.ndarray:
        """(K, 2) float (x, y): the centroid of each selected region, repeated for a region labelled
        as a tuple of c cells (max_tuple > 1), so K is the count."""
        reg, chosen, cells = self.detect_regions(image)
        if not len(reg):
            return np.empty((0, 2))
        return np.repeat(reg.centroid[chosen], cells[chosen], axis=0)

    def count_image(self, image: np.ndarray) -> float:
        return float(len(self.detect(image)))

    # -- storage ----------------------------------------------------------------------------------
    def save(self, path) -> None:
        arrays = {"levels": self.levels, "hist_edges": self.hist_edges, "weights": self.weights,
                  "bin_sizes": np.array([len(e) for e in self.bin_edges]),
                  "bin_edges": np.concatenate(self.bin_edges)}
        save_npz(path, arrays, {"kind": KIND, "format": FORMAT, "settings": asdict(self.settings), "info": self.info})

    @classmethod
    def load(cls, path) -> "LeDetect":
        a, meta = load_npz(path, KIND, ("levels", "hist_edges", "weights", "bin_sizes", "bin_edges"))
        st = meta["settings"]
        st["level_quantiles"] = tuple(st["level_quantiles"])
        s = LeDetectSettings(**st)
        sizes = a["bin_sizes"].astype(int)
        if len(sizes) != len(SCALARS) or sizes.sum() != len(a["bin_edges"]):
            raise ValueError(f"{path}: feature binning does not match this version of Le.detect")
        bin_edges = np.split(a["bin_edges"], np.cumsum(sizes)[:-1])
        return cls(s, a["levels"], a["hist_edges"], bin_edges, a["weights"], meta.get("info", {}))


def region_loss(k: np.ndarray) -> np.ndarray:
    """Arteta et al.'s loss, split over the selected regions: a region without a dot costs 1, one
    with k >= 2 dots k - 1, and every dot left outside the selection 1 (so selecting a region with
    k dots saves k). The constant (all dots missed) is left out."""
    return (k == 0) + np.maximum(k - 1, 0) - k


def _ssvm(data, w0: np.ndarray, lam: float, epochs: int, rng, step: float) -> tuple[np.ndarray, dict]:
    """Structured SVM  min_w lam/2 |w|^2 + mean_i [max_y (w.Phi(y) + Delta(y)) - w.Phi(y*_i)]
    over non-overlapping selections y, by stochastic subgradient steps of size step / sqrt(t) on
    the hinge per annotated dot (images of many cells do not dominate), returning the average of
    the last half of the iterates. y*_i is the highest-scoring selection
    among those of least loss (DP with a large weight on -Delta); the loss-augmented maximiser is
    the DP with scores w.f + Delta per region. data: per image (design, dots per region, parent,
    number of dots)."""
    w = w0.copy()
    n = len(data)
    avg, n_avg, t = np.zeros_like(w), 0, 0
    hist = []
    for ep in range(epochs):
        total = 0.0
        for i in rng.permutation(n):
            X, k, parent, n_dots = data[i]
            if not len(X):
                continue
            loss = region_loss(k).astype(float)
            score = X @ w
            truth = select(score - 1e3 * loss, parent)
            pred = select(score + loss, parent)
            hinge = (score[pred].sum() + loss[pred].sum()) - score[truth].sum() - loss[truth].sum()
            dots = max(1.0, float(n_dots))
            total += hinge
            grad = lam * w + (X[pred].sum(0) - X[truth].sum(0)) / dots
            t += 1
            w = w - step / np.sqrt(t) * grad
            if ep >= epochs // 2:
                avg += w; n_avg += 1
        hist.append(total / n)
    return (avg / n_avg if n_avg else w), {"epochs": epochs, "hinge_first": hist[0] if hist else None,
                                           "hinge_last": hist[-1] if hist else None}


def _softmax(X: np.ndarray, y: np.ndarray, n_classes: int, l2: float) -> np.ndarray:
    """L2-regularised multinomial logistic regression (mean log-loss + l2/2 |W|^2, biases
    unpenalised) by L-BFGS; returns W flattened (d x n_classes)."""
    n, d = X.shape
    pen = np.full((d, 1), l2)
    pen[-1] = 0.0
    onehot = np.zeros((n, n_classes))
    onehot[np.arange(n), y] = 1.0

    def f(wflat):
        W = wflat.reshape(d, n_classes)
        z = X @ W
        z -= z.max(axis=1, keepdims=True)
        lse = np.log(np.exp(z).sum(axis=1, keepdims=True))
        loss = np.mean(lse[:, 0] - (z * onehot).sum(1)) + 0.5 * np.sum(pen * W * W)
        p = np.exp(z - lse)
        grad = X.T @ (p - onehot) / n + pen * W
        return loss, grad.ravel()

    res = optimize.minimize(f, np.zeros(d * n_classes), jac=True, method="L-BFGS-B", options={"maxiter": 500})
    return res.x
