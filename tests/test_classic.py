"""pycount.classic: Le.count (Lempitsky & Zisserman 2010) and Le.detect (Arteta et al. 2012) on
small synthetic images of bright Gaussian blobs at known positions on a dark background."""
import os

import numpy as np
import pytest

from pycount.classic import LeCount, LeDetect
from pycount.classic import ledetect as ld
from pycount.classic._common import check_image, check_points, dot_map, gaussian
from pycount.classic.features import channel, dense_sift, kmeans

SIZE = 96


def blobs(rng, n, size=SIZE, sigma=2.2, min_dist=9.0, noise=3.0, colour=(0, 0, 1)):
    """An RGB uint8 image of n bright Gaussian blobs (centres at least min_dist apart) and the centres."""
    pts = []
    while len(pts) < n:
        p = rng.uniform(6, size - 6, 2)
        if all(np.hypot(*(p - q)) >= min_dist for q in pts):
            pts.append(p)
    pts = np.array(pts).reshape(-1, 2)
    return render(rng, pts, size, sigma, noise, colour), pts


def render(rng, pts, size=SIZE, sigma=2.2, noise=3.0, colour=(0, 0, 1)):
    """An RGB uint8 image of bright Gaussian blobs at pts on a dark background, with noise."""
    yy, xx = np.mgrid[0:size, 0:size]
    img = np.full((size, size), 20.0)
    for x, y in pts:
        img += 200 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma ** 2))
    img += rng.normal(0, noise, img.shape)
    g = np.clip(img, 0, 255)
    return np.stack([g * c + 5 * (1 - c) for c in colour], axis=-1).astype(np.uint8)


def blob_set(seed, counts, **kw):
    rng = np.random.default_rng(seed)
    images, points = zip(*(blobs(rng, n, **kw) for n in counts))
    return list(images), list(points)


FAST_COUNT = dict(n_words=24, codebook_samples=6000, kmeans_iters=10, contrast=0.05)


@pytest.fixture(scope="module")
def lecount():
    images, points = blob_set(0, [10, 18, 25, 14, 30, 8])
    return LeCount.fit(images, points, **FAST_COUNT)


# --- features --------------------------------------------------------------------------------------

def test_dense_sift_is_normalised_and_rotates_with_the_gradient():
    rng = np.random.default_rng(1)
    img = rng.random((40, 40)).astype(np.float32)
    desc, flat = dense_sift(img, bin_size=3)
    assert desc.shape == (40, 40, 128) and not flat.any()
    np.testing.assert_allclose(np.linalg.norm(desc, axis=-1), 1.0, rtol=1e-5)
    # a horizontal ramp has all its gradient in orientation bin 0 (pointing +x)
    ramp = np.tile(np.linspace(0, 1, 40, dtype=np.float32), (40, 1))
    d, _ = dense_sift(ramp)
    per_ori = d[20, 20].reshape(16, 8).sum(0)
    assert per_ori.argmax() == 0 and per_ori[0] > 0.9 * per_ori.sum()
    # flat images give zero descriptors, all marked flat
    d, flat = dense_sift(np.full((20, 20), 0.5, np.float32), contrast=1e-3)
    assert flat.all() and not d.any()


def test_kmeans_finds_separated_clusters():
    rng = np.random.default_rng(2)
    true = np.array([[0, 0], [10, 0], [0, 10]], np.float32)
    x = np.concatenate([c + rng.normal(0, 0.5, (200, 2)) for c in true]).astype(np.float32)
    c = kmeans(x, 3, seed=0)
    assert np.abs(np.sort(c, axis=0) - np.sort(true, axis=0)).max() < 0.3

def test_the_channels_the_descriptors_are_computed_on():
    px = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [0, 0, 0]]] * 8, np.uint8)
    np.testing.assert_allclose(channel(px, "gray")[0], [0.299, 0.587, 0.114, 0.0], rtol=1e-6)
    np.testing.assert_array_equal(channel(px, "green")[0], [0.0, 1.0, 0.0, 0.0])
    # optical density -ln(value / 255) along the unit haematoxylin vector, over ln(255): a
    # channel at 0 (read as 1/255) gives 1 times its component, a channel at 255 nothing
    h = np.array([0.650, 0.704, 0.286]) / np.linalg.norm([0.650, 0.704, 0.286])
    np.testing.assert_allclose(channel(px, "hematoxylin")[0],
                               [h[1] + h[2], h[0] + h[2], h[0] + h[1], h.sum()], rtol=1e-5)
    img, pts = blobs(np.random.default_rng(15), 4)
    with pytest.raises(ValueError, match="unknown channel 'purple'; use red, green, blue, gray or "
                                         "hematoxylin"):
        LeDetect.fit([img], [pts], channel="purple")


def _sift_at(gray, y, x, b):
    """The descriptor at (y, x) as the features' docstring builds it, pixel by pixel (y and x at
    least 3 * b from the border, so no edge handling is involved)."""
    gy, gx = np.gradient(gray.astype(np.float64))
    mag = np.hypot(gx, gy)
    pos = (np.arctan2(gy, gx) % (2 * np.pi)) / (2 * np.pi) * 8
    tri = {u: (b - abs(u)) / b for u in range(-b + 1, b)}
    centres = [int(np.floor((i - 1.5) * b + 0.5)) for i in range(4)]
    d = np.zeros(128)
    for iy, cy in enumerate(centres):
        for ix, cx in enumerate(centres):
            for u, wu in tri.items():
                for v, wv in tri.items():
                    py, px = y + cy + u, x + cx + v
                    lo = int(np.floor(pos[py, px]))
                    f = pos[py, px] - lo
                    k = (iy * 4 + ix) * 8
                    d[k + lo % 8] += wu * wv * mag[py, px] * (1 - f)
                    d[k + (lo + 1) % 8] += wu * wv * mag[py, px] * f
    norm = np.linalg.norm(d)
    d = np.minimum(d / norm, 0.2)
    return d / np.linalg.norm(d), norm


def test_dense_sift_is_the_binned_clipped_gradient_histogram():
    from scipy import ndimage
    gray = np.random.default_rng(16).random((34, 30)).astype(np.float32)
    at = [(12, 15), (17, 13), (20, 19), (16, 16)]
    ref = [_sift_at(gray, y, x, 3) for y, x in at]
    contrast = float(np.median([n for _, n in ref]))
    desc, flat = dense_sift(gray, bin_size=3, contrast=contrast)
    for (y, x), (d, norm) in zip(at, ref):
        assert flat[y, x] == (norm <= contrast)
        if norm > contrast:
            np.testing.assert_allclose(desc[y, x], d, rtol=1e-4, atol=1e-6)
    (d2, _), = [_sift_at(gray, 16, 15, 2)]
    np.testing.assert_allclose(dense_sift(gray, bin_size=2)[0][16, 15], d2, rtol=1e-4, atol=1e-6)
    smooth = ndimage.gaussian_filter(gray, 1.5, mode="reflect")
    np.testing.assert_allclose(dense_sift(gray, presmooth=1.5)[0], dense_sift(smooth)[0], atol=1e-5)
    # below the contrast threshold a descriptor is zero and flat, never NaN, at contrast 0 too
    d, flat = dense_sift(gray, contrast=1e9)
    assert flat.all() and not d.any()
    d, flat = dense_sift(np.full((12, 12), 0.3, np.float32), contrast=0.0)
    assert flat.all() and not d.any()
    with pytest.raises(ValueError, match="bin_size must be >= 1, got 0"):
        dense_sift(gray, bin_size=0)
    with pytest.raises(ValueError, match=r"dense_sift takes a 2-D image, got shape \(34, 30, 1\)"):
        dense_sift(gray[..., None])


def test_kmeans_needs_k_samples():
    with pytest.raises(ValueError, match="k-means needs at least k=3 samples, got 2"):
        kmeans(np.zeros((2, 4), np.float32), 3)


def test_kmeans_seeds_one_centre_per_cluster_and_ends_at_the_cluster_means():
    """k-means++ never seeds a centre on a point that already has one: five clusters of identical
    points get one seed each, before any Lloyd iteration; and the result is a fixed point of
    Lloyd's iteration (each centre the mean of the points nearest to it)."""
    from pycount.classic.features import assign
    points = np.array([[0, 0], [10, 0], [0, 10], [10, 10], [5, 20]], np.float32)
    x = np.repeat(points, 20, axis=0)
    for seed in range(4):
        np.testing.assert_array_equal(np.unique(kmeans(x, 5, iters=0, seed=seed), axis=0),
                                      np.unique(points, axis=0))
    np.testing.assert_array_equal(np.unique(kmeans(x, 5), axis=0), np.unique(points, axis=0))
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.normal(c, 1.0, (300, 2)) for c in ([0, 0], [6, 0], [3, 5])]).astype(np.float32)
    for seed in (0, 1):
        c = kmeans(x, 6, seed=seed)
        near = assign(x, c)
        np.testing.assert_allclose(c, [x[near == j].mean(0) for j in range(6)], atol=1e-4)


def test_flat_pixels_get_the_extra_word():
    from pycount.classic.features import words
    gray = np.random.default_rng(25).random((37, 29)).astype(np.float32)
    gray[:14] = 0.5                                            # a flat band, 7 px beyond the reach
    codebook = kmeans(dense_sift(gray[20:])[0].reshape(-1, 128), 8, iters=5, seed=0)
    got = words(gray, codebook, 3, 0.0, 0.05)
    assert (got[:6] == 8).all() and (got[20:] < 8).all()


# --- Le.count --------------------------------------------------------------------------------------

def test_lecount_counts_held_out_images(lecount):
    images, points = blob_set(7, [12, 22, 35, 5])
    truth = np.array([len(p) for p in points])
    pred = np.array([lecount.count_image(im) for im in images])
    assert np.all(np.abs(pred - truth) <= np.maximum(1.5, 0.08 * truth)), (pred, truth)


def test_lecount_density_integrates_to_the_count(lecount):
    img, _ = blobs(np.random.default_rng(3), 15)
    dens = lecount.density(img)
    assert dens.shape == img.shape[:2] and dens.dtype == np.float32
    assert dens.sum() == pytest.approx(lecount.count_image(img), rel=1e-4, abs=1e-3)


def test_lecount_density_is_high_on_the_cells(lecount):
    img, pts = blobs(np.random.default_rng(4), 12)
    dens = lecount.density(img)
    near = np.zeros(dens.shape, bool)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    for x, y in pts:
        near |= (xx - x) ** 2 + (yy - y) ** 2 <= 36  # 6 px: the blob (sigma 2.2) plus the fit smoothing
    assert dens[near].sum() > 0.8 * dens.sum()


def test_lecount_save_load_round_trip(lecount, tmp_path):
    path = tmp_path / "sub" / "lecount.npz"
    lecount.save(path)
    assert path.is_file() and not [p for p in path.parent.iterdir() if p != path]  # no temp file left
    again = LeCount.load(path)
    img, _ = blobs(np.random.default_rng(5), 20)
    assert again.count_image(img) == lecount.count_image(img)
    np.testing.assert_array_equal(again.density(img), lecount.density(img))
    assert again.settings == lecount.settings
    with np.load(path, allow_pickle=False) as z:  # loadable without pickle
        assert "codebook" in z.files
    with pytest.raises(ValueError, match="le.count"):
        LeDetect.load(path)


def test_lecount_rejects_bad_input(lecount):
    img, pts = blobs(np.random.default_rng(6), 5)
    with pytest.raises(ValueError, match="H x W x 3 uint8"):
        lecount.count_image(img.astype(np.float32))
    with pytest.raises(ValueError, match="H x W x 3 uint8"):
        lecount.density(img[..., 0])
    with pytest.raises(ValueError, match="2 images but 1"):
        LeCount.fit([img, img], [pts])
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        LeCount.fit([img], [pts.ravel()])
    with pytest.raises(ValueError, match="outside"):
        LeCount.fit([img], [pts + 500])
    with pytest.raises(ValueError, match="at least one"):
        LeCount.fit([], [])
    with pytest.raises(ValueError, match="unknown Le.count settings"):
        LeCount.fit([img], [pts], n_word=3)


def test_lecount_refuses_an_unknown_loss_and_too_few_textured_pixels():
    img, pts = blobs(np.random.default_rng(6), 5)
    with pytest.raises(ValueError, match="unknown loss 'MESA'; use 'ridge' or 'mesa'"):
        LeCount.fit([img], [pts], loss="MESA", **FAST_COUNT)
    with pytest.raises(ValueError, match=r"only \d+ textured pixels in the training images, fewer than "
                                         r"n_words=24; lower n_words or contrast"):
        LeCount.fit([img], [pts], **{**FAST_COUNT, "contrast": 2.28})


def _with_arrays(src, dst, **arrays):
    with np.load(src) as z:
        np.savez(dst, **{**{k: z[k] for k in z.files}, **arrays})
    return dst


def test_lecount_load_refuses_arrays_that_do_not_match_the_settings(lecount, tmp_path):
    lecount.save(tmp_path / "m.npz")
    for name, bad in (("codebook", lecount.codebook[:-1]), ("weights", lecount.weights[:-1]),
                      ("int_edges", np.zeros(3))):
        path = _with_arrays(tmp_path / "m.npz", tmp_path / f"bad_{name}.npz", **{name: bad})
        with pytest.raises(ValueError, match=f"bad_{name}.npz: code book .* do not match n_words=24"):
            LeCount.load(path)


def test_lecount_without_smoothing_fits_the_one_hot_least_squares_with_the_cross_validated_lam():
    """smooth_sigma 0, loss_cell 1: the per-pixel ridge fit of the one-hot codes to the target (dots
    spread by target_sigma), with lam chosen by the held-out count error (one image per fold here)
    and the final solve on all images with that lam. With the SIFT words alone it decouples into
    one ridge-shrunk mean density per code word."""
    images, points = blob_set(33, [10, 18, 25, 14])
    for bins in (0, 3):
        model = LeCount.fit(images, points, smooth_sigma=0.0, loss_cell=1, target_sigma=1.5, cv_folds=4,
                            lambdas=(1e3, 1e-3), intensity_bins=bins, **FAST_COUNT)
        assert model.info["lambda"] == 1e-3
        k1 = model.dim
        X = [sum(np.eye(k1)[m.ravel()] for m in model.feature_maps(im)) for im in images]
        t = [gaussian(dot_map(p, im.shape), 1.5).ravel() for im, p in zip(images, points)]
        A, b = [x.T @ x for x in X], [x.T @ y for x, y in zip(X, t)]

        def solve(use, lam):
            a = sum(A[i] for i in use)
            return np.linalg.solve(a + lam * np.trace(a) / k1 * np.eye(k1), sum(b[i] for i in use))
        np.testing.assert_allclose(model.weights, solve(range(4), 1e-3), rtol=1e-6, atol=1e-12)
        held_out = [abs(X[i].sum(0) @ solve([j for j in range(4) if j != i], 1e-3) - len(points[i]))
                    for i in range(4)]
        assert model.info["cv_mae"]["0.001"] == pytest.approx(np.mean(held_out), rel=1e-6)
        if not bins:
            n = np.bincount(np.concatenate([m.ravel() for im in images for m in model.feature_maps(im)]),
                            minlength=k1)
            np.testing.assert_allclose(model.weights, sum(b) / (n + 1e-3 * n.sum() / k1), rtol=1e-6)


def test_lecount_mesa_fit_searches_the_boxes_on_the_settings_grid(monkeypatch):
    from pycount.classic import mesa
    calls, real = [], mesa.fit_mesa
    monkeypatch.setattr(mesa, "fit_mesa", lambda *a, **kw: calls.append((a[2:], kw)) or real(*a, **kw))
    images, points = blob_set(21, [10, 18])
    model = LeCount.fit(images, points, loss="mesa", mesa_lambda=1e-4, mesa_rounds=3, mesa_cell=8,
                        **FAST_COUNT)
    assert calls == [((25, 1e-4, 3), {"cell": 8})] and 1 <= model.info["rounds"] <= 3


def test_lecount_normal_equations_are_those_of_the_smoothed_one_hot_blocks():
    from scipy import ndimage
    from pycount.classic.lecount import _normal_equations
    rng = np.random.default_rng(34)
    maps = [rng.integers(0, 5, (21, 14)), 5 + rng.integers(0, 3, (21, 14))]
    target = rng.random((21, 14))
    for sigma, cell in ((0.0, 1), (3.0, 1), (4.0, 2), (0.0, 3)):
        for m in (maps, maps[:1]):
            onehot = sum(np.eye(8)[mi] for mi in m)                      # (21, 14, 8)
            hb, wb = -(-21 // cell), -(-14 // cell)
            edges = [(0, hb * cell - 21), (0, wb * cell - 14)]
            X = np.pad(onehot, edges + [(0, 0)]).reshape(hb, cell, wb, cell, 8).sum(axis=(1, 3))
            y = np.pad(target, edges).reshape(hb, cell, wb, cell).sum(axis=(1, 3))
            if sigma:
                X = ndimage.gaussian_filter(X, (sigma / cell, sigma / cell, 0), mode="reflect")
                y = ndimage.gaussian_filter(y, sigma / cell, mode="reflect")
            X = X.reshape(-1, 8)
            A, b = _normal_equations(m, target, 8, sigma, cell)
            np.testing.assert_allclose(A, X.T @ X, rtol=1e-10, atol=1e-10)
            np.testing.assert_allclose(b, X.T @ y.ravel(), rtol=1e-10, atol=1e-10)


def test_lecount_chooses_lam_by_the_held_out_count_error():
    """Four images, one per fold, of three code words with densities 0.1, 0.2 and 0.5: the last
    image alone has the third word, so held out it is counted without it (error 2); the others
    are counted exactly at a small lam. A large lam shrinks every count to about 0."""
    from pycount.classic.lecount import _choose_lambda
    hists = np.array([[10, 5, 0], [4, 8, 0], [6, 6, 0], [2, 2, 4]], float)
    w = np.array([0.1, 0.2, 0.5])
    counts = hists @ w                                                  # 2, 2, 1.8, 2.6
    As, bs = np.array([np.diag(h) for h in hists]), hists * w
    lam, cv = _choose_lambda(As, bs, hists, counts, (1e-9, 1e3), 4, np.random.default_rng(0))
    assert lam == 1e-9
    assert cv["1e-09"] == pytest.approx(2 / 4, abs=1e-6)               # the mean over images
    assert cv["1000.0"] == pytest.approx(counts.mean(), rel=1e-2)
    assert _choose_lambda(As[:1], bs[:1], hists[:1], counts[:1], (1e-3, 1e3), 4,
                          np.random.default_rng(0)) == (1e-3, None)     # one image: no folds


def test_lecount_intensity_codes_follow_the_sift_words_and_the_flat_word():
    images, points = blob_set(23, [10, 18, 25, 14])
    model = LeCount.fit(images, points, intensity_bins=6, **FAST_COUNT)
    pix = np.concatenate([channel(im, "blue").ravel()[::7] for im in images])
    np.testing.assert_allclose(model.int_edges, np.quantile(pix, [1 / 6, 2 / 6, 3 / 6, 4 / 6, 5 / 6]),
                               rtol=1e-6)                     # quantiles of the fit's channel
    img, _ = blobs(np.random.default_rng(24), 20)
    words, bins = model.feature_maps(img)
    gray = channel(img, "blue")
    np.testing.assert_array_equal(bins, 25 + np.searchsorted(model.int_edges, gray))
    assert bins.min() == 25 and bins.max() == 30 and words.max() <= 24
    dens = model.density(img)
    np.testing.assert_allclose(dens, model.weights[words] + model.weights[bins], rtol=1e-6, atol=1e-6)


# --- Le.detect -------------------------------------------------------------------------------------

FAST_DETECT = dict(n_levels=24, min_area=4, max_area=600)


@pytest.fixture(scope="module")
def ledetect():
    images, points = blob_set(10, [8, 14, 20, 11])
    return LeDetect.fit(images, points, **FAST_DETECT)


def test_ledetect_finds_well_separated_blobs(ledetect):
    images, points = blob_set(11, [6, 13, 19])
    for img, pts in zip(images, points):
        found = ledetect.detect(img)
        assert ledetect.count_image(img) == len(pts) == len(found)
        # every blob matched by a detection within 2 px
        d = np.hypot(*(found[:, None, :] - pts[None, :, :]).transpose(2, 0, 1))
        assert d.min(axis=0).max() < 2.0


def test_ledetect_selection_has_no_nested_pair(ledetect):
    images, _ = blob_set(12, [25], min_dist=5.0)  # touching blobs: nested candidates abound
    reg, chosen, _ = ledetect.detect_regions(images[0])
    assert chosen.sum() > 0 and (reg.parent >= 0).any()
    idx = np.flatnonzero(chosen)
    masks = np.array([reg.mask(i) for i in idx])
    assert masks.sum(axis=0).max() == 1            # selected regions are pairwise disjoint
    for i in idx:                                  # and no selected region has a selected ancestor
        a = reg.parent[i]
        while a >= 0:
            assert not chosen[a]
            a = reg.parent[a]


def test_select_is_the_best_non_overlapping_set():
    # tree: 0 -> (1, 2), 1 -> (3, 4); parents before children
    parent = np.array([-1, 0, 0, 1, 1])
    np.testing.assert_array_equal(ld.select(np.array([3.5, 1.0, 0.5, 1.0, 1.5]), parent), [1, 0, 0, 0, 0])
    np.testing.assert_array_equal(ld.select(np.array([2.0, 1.0, 0.5, 1.0, 1.5]), parent), [0, 0, 1, 1, 1])
    np.testing.assert_array_equal(ld.select(np.array([-1.0, 2.0, -0.5, 1.0, 0.5]), parent), [0, 1, 0, 0, 0])
    # brute force over all antichains of a random forest
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = 9
        parent = np.array([-1] + [int(rng.integers(-1, i)) for i in range(1, n)])
        s = rng.normal(size=n)
        anc = [set() for _ in range(n)]
        for i in range(n):
            if parent[i] >= 0:
                anc[i] = anc[parent[i]] | {parent[i]}
        best = 0.0
        for m in range(1 << n):
            sel = [i for i in range(n) if m >> i & 1]
            if all(not (anc[i] & set(sel)) for i in sel):
                best = max(best, sum(s[i] for i in sel))
        assert s[ld.select(s, parent)].sum() == pytest.approx(best)


def paired_blobs(rng, singles, pairs, sep=2.5):
    """An image of single blobs and of pairs whose centres are sep px apart: each pair forms one
    extremal region at every threshold (a one-cell-per-region detector can count it only once)."""
    centres, pts = [], []
    while len(centres) < singles + pairs:
        p = rng.uniform(8, SIZE - 8, 2)
        if all(np.hypot(*(p - q)) >= 12 for q in centres):
            centres.append(p)
    for k, c in enumerate(centres):
        if k < pairs:
            a = rng.uniform(0, np.pi)
            d = np.array([np.cos(a), np.sin(a)]) * sep / 2
            pts += [c - d, c + d]
        else:
            pts.append(c)
    pts = np.array(pts)
    return render(rng, pts), pts


def test_ledetect_tuple_classes_count_merged_pairs():
    # the bacterial setting (config.CLASSIC_BY_DATASET): a region may be labelled 2..k cells
    rng = np.random.default_rng(20)
    images, points = zip(*(paired_blobs(rng, s, p) for s, p in [(6, 4), (9, 3), (4, 6), (8, 5)]))
    single = LeDetect.fit(list(images), list(points), **FAST_DETECT)
    tuples = LeDetect.fit(list(images), list(points), learner="logistic", max_tuple=3, **FAST_DETECT)
    rng = np.random.default_rng(21)
    for s, p in [(5, 4), (7, 2), (3, 6)]:
        img, pts = paired_blobs(rng, s, p)
        assert tuples.count_image(img) == len(pts) == s + 2 * p
        assert single.count_image(img) == s + p          # one per region: each pair once
    with pytest.raises(ValueError, match="max_tuple=1"):
        LeDetect.fit(list(images), list(points), max_tuple=3, **FAST_DETECT)  # the SSVM scores single cells


def test_ledetect_save_load_round_trip(ledetect, tmp_path):
    path = tmp_path / "ledetect.npz"
    ledetect.save(path)
    again = LeDetect.load(path)
    img, _ = blob_set(13, [16])[0][0], None
    np.testing.assert_array_equal(again.detect(img), ledetect.detect(img))
    with pytest.raises(ValueError, match="le.detect"):
        LeCount.load(path)


def test_ledetect_rejects_bad_input(ledetect):
    img, pts = blobs(np.random.default_rng(14), 5)
    with pytest.raises(ValueError, match="H x W x 3 uint8"):
        ledetect.detect(img[..., :2])
    with pytest.raises(ValueError, match="outside"):
        LeDetect.fit([img], [pts - 100])
    with pytest.raises(ValueError, match="unknown Le.detect settings"):
        LeDetect.fit([img], [pts], levels=3)


def test_extremal_regions_of_a_square_with_a_brighter_pixel():
    """A 3 x 3 square at 1 with its centre at 2, thresholds 0.5 ... 2: two nodes, the square (the
    same pixel set at 0.5 and 1 is one node) and the centre pixel inside it, with their features."""
    gray = np.zeros((20, 20))
    gray[4:7, 5:8] = 1.0
    gray[5, 6] = 2.0
    levels, edges = np.array([0.5, 1.0, 1.5, 2.0]), np.array([0.0, 1.5, 3.0])
    for max_area in (9, 1000):                      # both areas at the bounds are candidates
        reg = ld.extremal_regions(gray, levels, 1, max_area, edges)
        assert len(reg) == 2                        # the background is never a region
        np.testing.assert_array_equal(reg.level_idx, [0, 2])
        np.testing.assert_array_equal(reg.parent, [-1, 0])
        np.testing.assert_array_equal(reg.area, [9, 1])
        np.testing.assert_array_equal(reg.centroid, [[6, 5], [6, 5]])
        np.testing.assert_allclose(reg.hists, [[8 / 9, 1 / 9], [0, 1]])
        got = dict(zip(ld.SCALARS, reg.scalars.T))
        np.testing.assert_allclose(got["log_area"], np.log([9, 1]))
        np.testing.assert_allclose(got["level"], [0.5, 1.5])
        np.testing.assert_allclose(got["mean"], [10 / 9, 2])
        np.testing.assert_allclose(got["ring_contrast"], [10 / 9, 1])     # the ring: 0 and 1
        np.testing.assert_allclose(got["axis_ratio"], [1, 1])
        np.testing.assert_allclose(got["log_parent_ratio"], np.log([max_area / 9, 9]))
        np.testing.assert_allclose(got["log_child_ratio"], [np.log(9), 0])
        np.testing.assert_allclose(got["depth"], [0, 1])
        assert reg.mask(1).sum() == 1 and reg.mask(1)[5, 6]
    assert len(ld.extremal_regions(gray, levels, 2, 8, edges)) == 0


def test_dots_a_little_outside_a_region_label_it_only_with_a_tolerance():
    lab = np.zeros((10, 10), np.int64)
    lab[2:5, 1:4] = 1
    lab[2:5, 5:9] = 2
    reg = ld.Regions([lab], np.array([0, 0]), np.array([1, 2]), np.array([-1, -1]), None, None, None, None)
    # (x, y): two inside region 1 (one on its edge next to region 2), 2 px below region 1, 1 px below 2
    pts = np.array([[2, 3], [3, 3], [1, 6], [8, 5]], float)
    np.testing.assert_array_equal(reg.dots_inside(pts), [2, 0])
    np.testing.assert_array_equal(reg.dots_inside(pts, 1), [2, 1])
    np.testing.assert_array_equal(reg.dots_inside(pts, 2), [3, 1])


def test_soft_bins_interpolate_between_the_two_nearest_centres():
    got = ld._soft_bins(np.array([0.5, 2.25, 9.0, -1.0]), np.array([0.0, 1.0, 2.0, 3.0]))
    np.testing.assert_allclose(got, [[0.5, 0.5, 0, 0], [0, 0, 0.75, 0.25], [0, 0, 0, 1], [1, 0, 0, 0]])


def test_select_takes_no_descendant_of_a_chosen_region():
    np.testing.assert_array_equal(ld.select(np.array([3.0, -5.0, 1.0]), np.array([-1, 0, 1])), [1, 0, 0])


def test_ledetect_fit_refuses_settings_and_images_it_cannot_use():
    img, pts = blobs(np.random.default_rng(14), 5)
    flat = np.full((32, 32, 3), 60, np.uint8)
    with pytest.raises(ValueError, match=r"no intensity range in the chosen channel \('blue'\); "
                                         "pick another channel"):
        LeDetect.fit([flat], [[[5, 5]]], **FAST_DETECT)
    with pytest.raises(ValueError, match="max_tuple must be >= 1, got 0"):
        LeDetect.fit([img], [pts], max_tuple=0, **FAST_DETECT)
    with pytest.raises(ValueError, match="unknown learner 'svm'; use 'ssvm' or 'logistic'"):
        LeDetect.fit([img], [pts], learner="svm", **FAST_DETECT)
    with pytest.raises(ValueError, match=r"no usable training regions \(\d+ candidates, 0 with exactly "
                                         r"one dot\); check the points and the min_area/max_area settings"):
        LeDetect.fit([img], [np.empty((0, 2))], **FAST_DETECT)


def test_ledetect_takes_the_score_offset_of_least_training_count_error():
    """The calibration tries OFFSET_GRID on the training images and keeps the offset of least
    count MAE, whatever score_offset it started from; a cap on the regions per image is kept."""
    images, points = blob_set(10, [8, 14, 20, 11])
    model = LeDetect.fit(images, points, max_regions_per_image=50, **FAST_DETECT)
    assert model.info["regions"] == 4 * 50
    errs = model.info["offset_train_mae"]
    assert list(errs) == [str(o) for o in ld.OFFSET_GRID]
    best = min(errs, key=errs.get)
    assert model.settings.score_offset == model.info["score_offset"] == float(best)
    assert len(set(errs.values())) > 1                        # the offset matters here
    shifted = LeDetect.fit(images, points, max_regions_per_image=50, score_offset=2.0, **FAST_DETECT)
    assert shifted.info["offset_train_mae"] == errs and shifted.settings.score_offset == float(best)


def test_ledetect_load_keeps_the_settings_and_refuses_another_binning(ledetect, tmp_path):
    ledetect.save(tmp_path / "m.npz")
    assert LeDetect.load(tmp_path / "m.npz").settings == ledetect.settings
    with np.load(tmp_path / "m.npz") as z:
        sizes = z["bin_sizes"]
    for name, bad in (("fewer", sizes[:-1]), ("other", sizes + 1)):
        path = _with_arrays(tmp_path / "m.npz", tmp_path / f"{name}.npz", bin_sizes=bad)
        with pytest.raises(ValueError, match=f"{name}.npz: feature binning does not match this "
                                             "version of Le.detect"):
            LeDetect.load(path)


def test_region_loss_charges_empty_regions_extra_dots_and_missed_dots():
    # relative to missing every dot: a region with k dots saves k, costs 1 if empty and k - 1 extra
    np.testing.assert_array_equal(ld.region_loss(np.array([0, 1, 2, 3])), [1, -1, -1, -1])


def test_ledetect_finds_nothing_in_a_blank_image(ledetect):
    blank = np.zeros((40, 40, 3), np.uint8)
    assert ledetect.detect(blank).shape == (0, 2) and ledetect.count_image(blank) == 0.0


def test_the_structured_svm_hinge_and_what_it_learns_on_a_tree():
    """Regions: a root with 2 dots holding two regions of 1 dot, and an empty region elsewhere.
    Started from a score that prefers the root, the first hinge is the loss-augmented best (root and
    the empty region: score 5, loss -1 + 1) against the least-loss selection (the two one-dot
    regions: score 0, loss -2): 7. Training ends selecting the one-dot regions, at no hinge."""
    from numpy.random import default_rng
    X, dots, parent = np.eye(4), np.array([2, 1, 1, 0]), np.array([-1, 0, 0, -1])
    w0 = np.array([5.0, 0.0, 0.0, 0.0])
    _, info = ld._ssvm([(X, dots, parent, 2)], w0, 0.0, 1, default_rng(0), 1.0)
    assert info["hinge_first"] == pytest.approx(7.0)
    w, info = ld._ssvm([(X, dots, parent, 2)], w0, 1e-3, 30, default_rng(0), 1.0)
    np.testing.assert_array_equal(ld.select(X @ w, parent), [0, 1, 1, 0])
    assert info["hinge_last"] == pytest.approx(0.0, abs=1e-9)
    # the weights returned are the mean of the last half of the iterates w_t = w_(t-1) - g_t / sqrt(t)
    # (3 epochs of one image: w_2 and w_3), here g_t = (root + empty - both one-dot regions) / 2 dots
    w, _ = ld._ssvm([(X, dots, parent, 2)], w0, 0.0, 3, default_rng(0), 1.0)
    g = np.array([1.0, -1.0, -1.0, 1.0]) / 2
    np.testing.assert_allclose(w, w0 - g * (1 + 1 / np.sqrt(2) + 1 / (2 * np.sqrt(3))))


def test_the_logistic_start_leaves_the_bias_unpenalised():
    y = np.array([1] * 8 + [0] * 2)
    W = ld._softmax(np.ones((10, 1)), y, 2, 10.0).reshape(1, 2)
    assert W[0, 1] - W[0, 0] == pytest.approx(np.log(4), abs=1e-4)      # p(one dot) = 8 / 10


# --- MESA (Le.count's original loss) ---------------------------------------------------------------

def test_max_subarray_matches_brute_force():
    from pycount.classic.mesa import max_subarray
    rng = np.random.default_rng(20)
    for _ in range(5):
        d = rng.normal(size=(7, 9))
        v, (y0, y1, x0, x1) = max_subarray(d, chunk=3)
        best = max(d[a:b, c:e].sum() for a in range(7) for b in range(a + 1, 8)
                   for c in range(9) for e in range(c + 1, 10))
        assert v == pytest.approx(best) and d[y0:y1, x0:x1].sum() == pytest.approx(best)


def test_lecount_mesa_counts_held_out_images():
    images, points = blob_set(21, [10, 18, 25, 14])
    model = LeCount.fit(images, points, loss="mesa", mesa_lambda=1e-4, **FAST_COUNT)
    assert model.info["loss"] == "mesa" and model.info["rounds"] >= 1
    test_images, test_points = blob_set(22, [12, 30])
    pred = np.array([model.count_image(im) for im in test_images])
    truth = np.array([len(p) for p in test_points])
    assert np.all(np.abs(pred - truth) <= np.maximum(2.0, 0.1 * truth)), (pred, truth)


def test_max_subarray_keeps_a_small_positive_prefix_and_takes_the_best_cell_of_a_negative_array():
    from pycount.classic.mesa import max_subarray
    assert max_subarray(np.array([[0.4, 1.0, -3.0, 0.3, 0.3]])) == (pytest.approx(1.4), (0, 1, 0, 2))
    assert max_subarray(np.array([[-3.0, -1.0], [-2.0, -5.0]])) == (-1.0, (0, 1, 1, 2))


def test_mesa_worst_box_on_a_grid_is_clipped_to_the_image_and_signed():
    from pycount.classic.mesa import block_sum, worst_box
    np.testing.assert_array_equal(block_sum(np.arange(15.0).reshape(3, 5), 2),
                                  [[12, 20, 13], [21, 25, 14]])          # zero-padded far edges
    d = np.full((5, 7), -0.1)
    d[4, 6] = 8.0                        # the far corner: its 2 x 2 block hangs over both edges
    assert worst_box(d, 2) == (pytest.approx(8.0), (4, 5, 6, 7), 1.0)
    assert worst_box(-d, 2) == (pytest.approx(8.0), (4, 5, 6, 7), -1.0)


def test_mesa_fit_recovers_signed_weights_and_its_l1_weight_shrinks_them():
    from pycount.classic.mesa import fit_mesa
    words = np.zeros((6, 6), np.int64)
    words[:, 3:] = 1
    words[0] = 2
    target = np.where(words == 0, 0.5, np.where(words == 1, -0.25, 0.0))
    w, info = fit_mesa([words], [target], 3, 1e-3)
    np.testing.assert_allclose(w, [0.5, -0.25, 0.0], atol=1e-9)
    assert info["objective"] == pytest.approx(1e-3 * 0.75)
    w, _ = fit_mesa([words], [target], 3, 100.0)     # |w| costs more than any count error
    np.testing.assert_allclose(w, 0.0, atol=1e-9)


def test_mesa_fit_stops_when_no_image_has_a_box_beyond_its_slack():
    """Three images of one code word, 0.5, 0.25 and 0.25 cells per pixel: the whole-image counts
    settle w at the median, 0.25, in the first round; the first image's slack (its excess, 4) is
    no reason to go on."""
    from pycount.classic.mesa import fit_mesa
    words = [np.zeros((4, 4), np.int64)] * 3
    targets = [np.full((4, 4), v) for v in (0.5, 0.25, 0.25)]
    log = []
    w, info = fit_mesa(words, targets, 1, 1e-3, max_rounds=20, log=log.append)
    np.testing.assert_allclose(w, [0.25], atol=1e-9)
    assert info == {"rounds": 1, "constraints": 6, "objective": pytest.approx(4 + 0.25e-3)}
    assert log == ["MESA round 1: objective 4.0003, 0 boxes added, worst excess 0.0000"]
    w1, info1 = fit_mesa(words, targets, 1, 1e-3, max_rounds=1)
    assert info1["rounds"] == 1 and w1 == pytest.approx(w)


def test_lecount_intensity_bins_fit_and_round_trip(tmp_path):
    images, points = blob_set(23, [10, 18, 25, 14])
    model = LeCount.fit(images, points, intensity_bins=6, **FAST_COUNT)
    assert model.weights.shape == (FAST_COUNT["n_words"] + 1 + 6,) and len(model.int_edges) == 5
    img, pts = blobs(np.random.default_rng(24), 20)
    assert model.count_image(img) == pytest.approx(len(pts), abs=2.0)
    model.save(tmp_path / "m.npz")
    again = LeCount.load(tmp_path / "m.npz")
    assert again.count_image(img) == model.count_image(img)
    with pytest.raises(ValueError, match="intensity_bins=0"):
        LeCount.fit(images, points, intensity_bins=6, loss="mesa", **FAST_COUNT)


def test_words_in_strips_equal_the_whole_image():
    from pycount.classic.features import assign, words
    rng = np.random.default_rng(25)
    gray = rng.random((37, 29)).astype(np.float32)
    codebook = kmeans(dense_sift(gray)[0].reshape(-1, 128), 8, iters=5, seed=0)
    whole = words(gray, codebook, 3, 0.0, 0.05, strip_pixels=10 ** 9)
    desc, flat = dense_sift(gray, contrast=0.05)
    ref = np.where(flat, 8, assign(desc.reshape(-1, 128), codebook).reshape(flat.shape))
    np.testing.assert_array_equal(whole, ref)
    np.testing.assert_array_equal(words(gray, codebook, 3, 0.0, 0.05, strip_pixels=100), whole)


def test_codebook_draw_in_strips_is_the_draw_from_all_descriptors():
    """sample_descriptors forms the descriptors a strip at a time, yet draws exactly what drawing
    from all of them at once drew (the named sets' code books are unchanged by the strips)."""
    from pycount.classic.features import sample_descriptors
    gray = np.random.default_rng(26).random((41, 33)).astype(np.float32)
    gray[:12] = 0.5                                            # a flat band: excluded rows
    for step, k in ((1, 50), (2, 30), (3, 10_000)):
        desc, flat = dense_sift(gray, 3, 0.0, 0.05, step=step)
        d = desc.reshape(-1, 128)[~flat.ravel()]
        ref = d[np.random.default_rng(7).choice(len(d), min(k, len(d)), replace=False)]
        for strip in (10 ** 9, 40, 1):
            got = sample_descriptors(gray, 3, 0.0, 0.05, step, k, np.random.default_rng(7), strip)
            np.testing.assert_array_equal(got, ref)
    flat_img = np.full((20, 20), 0.5, np.float32)
    rng = np.random.default_rng(1)
    assert sample_descriptors(flat_img, 3, 0.0, 0.05, 1, 10, rng).shape == (0, 128)
    assert rng.random() == np.random.default_rng(1).random()     # an empty image draws nothing


def test_codebook_draw_memory_is_a_strip_not_the_image():
    """A large image's code-book draw no longer holds all its descriptors (a 2048 x 2048 lab image
    took > 6 GB and was killed): here a 384 x 384 image, whose descriptors alone are 75 MB."""
    import tracemalloc
    from pycount.classic.features import sample_descriptors
    gray = np.random.default_rng(27).random((384, 384)).astype(np.float32)
    all_desc = 384 * 384 * 128 * 4
    tracemalloc.start()
    got = sample_descriptors(gray, 3, 0.0, 0.05, 1, 1000, np.random.default_rng(0), 1 << 12)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert got.shape == (1000, 128)
    assert peak < all_desc / 3, (peak, all_desc)


def test_normal_equations_in_strips_equal_the_whole_image():
    """The normal equations are built a strip of block rows at a time with the Gaussian's reach
    on both sides: the same A and b as the whole image at once (to rounding)."""
    from pycount.classic.lecount import _normal_equations
    rng = np.random.default_rng(28)
    maps = [rng.integers(0, 9, (70, 45)), 9 + rng.integers(0, 3, (70, 45))]
    target = rng.random((70, 45))
    for sigma, cell in ((8.0, 4), (3.0, 1), (0.0, 4), (2.0, 3)):
        A, b = _normal_equations(maps, target, 12, sigma, cell, strip_values=10 ** 9)
        for strip in (12 * 12 * 3, 1):
            A2, b2 = _normal_equations(maps, target, 12, sigma, cell, strip_values=strip)
            np.testing.assert_allclose(A2, A, rtol=1e-10, atol=1e-10)
            np.testing.assert_allclose(b2, b, rtol=1e-10, atol=1e-10)


def test_ledetect_fit_memory_does_not_grow_with_the_training_images():
    """The region trees of the training images keep their features, not their stacks of label
    images (48 thresholds x the image: ~1 GB for one 1920x2560 Ki67-size image), so the peak
    memory of a fit is that of one image's tree, whatever the number of images."""
    import tracemalloc
    size, n_levels = 256, 48
    images, points = blob_set(5, [40] * 6, size=size)
    stack = n_levels * size * size * 4            # one image's int32 label images

    def peak(k):
        tracemalloc.start()
        LeDetect.fit(images[:k], points[:k], n_levels=n_levels, ssvm_epochs=2)
        p = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return p
    one, six = peak(1), peak(6)
    assert six < one + stack, (one, six, stack)      # holding them all would add 5 stacks


def test_lecount_codebook_samples_a_sparser_grid_only_where_images_dwarf_their_share(monkeypatch):
    """Small images (the VGG cells, nuclei) give the codebook its descriptors from every pixel, as
    before; an image with far more pixels than 64 x its share of the samples gives them from a
    sparser grid (a Ki67 image: step 5), and the model still counts."""
    from pycount.classic import features
    steps, real = [], features.sample_descriptors
    monkeypatch.setattr(features, "sample_descriptors", lambda *a: steps.append(a[4]) or real(*a))
    images, points = blob_set(31, [10, 18, 25, 14])
    LeCount.fit(images, points, **FAST_COUNT)                         # 96 px: 9,216 px, 1,500 each
    assert steps == [1, 1, 1, 1]
    steps.clear()
    model = LeCount.fit(images, points, **{**FAST_COUNT, "codebook_samples": 40})   # 10 each
    assert steps == [int(np.sqrt(SIZE * SIZE / (64 * 10)))] * 4 and steps[0] == 3
    img, pts = blobs(np.random.default_rng(32), 20)
    assert model.count_image(img) == pytest.approx(len(pts), abs=3.0)


def test_the_fits_show_their_progress_per_training_image(capsys):
    """A Ki67 fit takes half an hour: both fits report each training image as they go."""
    images, points = blob_set(41, [10, 18, 25, 14])
    LeCount.fit(images, points, **FAST_COUNT)
    err = capsys.readouterr().err
    for label in ("Le.count: code book descriptors", "Le.count: per-image normal equations"):
        assert f"{label}: 4/4 images (100%)" in err, err
    LeDetect.fit(images, points, **FAST_DETECT)
    assert "Le.detect: extremal regions: 4/4 images (100%)" in capsys.readouterr().err


def test_the_classic_fit_benchmark_reports_each_fit_from_its_own_process():
    """`pycount bench classic`: one child per fit, its time, its own peak memory and a count."""
    from bench import classic_fit
    rows = classic_fit.run(("ledetect",), side=96, images=2)
    (row,) = rows
    assert row["model"] == "ledetect" and row["images"] == 2 and row["peak MB"] > 10
    assert abs(row["counted"] - row["true"]) <= 0.5 * row["true"]
    bad = classic_fit.run(("nosuch",), side=96, images=2)
    assert "failed" in bad[0] and "KeyError" in bad[0]["failed"]


# --- input checks, dots and model files (_common) --------------------------------------------------

def test_an_image_is_checked_before_anything_is_fitted_or_counted():
    with pytest.raises(ValueError, match=r"images\[0\] must be a numpy array .*got list"):
        LeDetect.fit([[[[0, 0, 0]] * 16] * 16], [[]])
    with pytest.raises(ValueError, match="a list of H x W x 3 arrays, got a single array"):
        LeCount.fit(np.zeros((16, 16, 3), np.uint8), [[]])
    smallest = np.zeros((8, 8, 3), np.uint8)
    assert check_image(smallest) is smallest
    for h, w in ((7, 8), (8, 7), (40, 5)):
        with pytest.raises(ValueError, match=f"image is {w}x{h} px; at least 8x8 is needed"):
            check_image(np.zeros((h, w, 3), np.uint8))


def test_points_are_0_based_xy_inside_the_image_up_to_one_pixel_then_clipped_onto_it():
    shape = (10, 20, 3)                                         # 20 px wide, 10 px high
    got = check_points([[-1, -1], [20, 10], [19.5, 0.5], [15, 5]], shape)
    np.testing.assert_array_equal(got, [[0, 0], [19, 9], [19, 0.5], [15, 5]])
    for bad in ([-1.01, 5], [20.01, 5], [5, -1.01], [5, 10.01], [15, 15]):
        with pytest.raises(ValueError, match=r"points: 1 of 2 points lie outside the 20x10 image "
                                             r"\(first \[.*\]\); points are 0-based \(x, y\)"):
            check_points([[3, 3], bad], shape)
    with pytest.raises(ValueError, match="points holds NaN or infinite coordinates"):
        check_points([[3, 3], [np.nan, 4]], shape)
    assert check_points([], shape).shape == (0, 2)              # an image without a cell


def test_the_target_has_one_unit_per_dot_at_its_nearest_pixel_and_keeps_it_at_the_border():
    d = dot_map(np.array([[2.6, 1.2], [3.4, 0.8], [6.0, 3.0]]), (4, 7))
    expected = np.zeros((4, 7))
    expected[1, 3], expected[3, 6] = 2.0, 1.0                   # two dots on one pixel count twice
    np.testing.assert_array_equal(d, expected)
    smooth = gaussian(d, 2.0)
    assert smooth.sum() == pytest.approx(3.0) and smooth[0, 0] > 0   # no mass lost off the edge
    np.testing.assert_array_equal(gaussian(d, 0.0), d)


def test_a_failed_save_leaves_the_previous_model_and_no_temporary(lecount, tmp_path, monkeypatch):
    path = tmp_path / "lecount.npz"
    lecount.save(path)
    before = path.read_bytes()

    beside = []

    def full(fd):                      # the disk fills up as the new model is being written
        beside.extend(p.name for p in tmp_path.iterdir() if p != path)
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="No space left"):
        lecount.save(path)
    assert len(beside) == 1 and beside[0].startswith(".lecount.npz.")   # written beside it, then
    assert [p.name for p in tmp_path.iterdir()] == ["lecount.npz"] and path.read_bytes() == before


def test_loading_a_file_that_is_no_model_says_so(lecount, tmp_path):
    with pytest.raises(FileNotFoundError, match="none.npz: no such model file"):
        LeCount.load(tmp_path / "none.npz")
    np.savez(tmp_path / "plain.npz", weights=np.zeros(3))
    with pytest.raises(ValueError, match=r"plain.npz is not a pycount.classic model \(no __meta__ entry\)"):
        LeCount.load(tmp_path / "plain.npz")
    lecount.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as z:
        arrays = {k: z[k] for k in z.files if k != "int_edges"}
    np.savez(tmp_path / "old.npz", **arrays)
    with pytest.raises(ValueError, match=r"old.npz lacks the arrays \['int_edges'\]; re-save the model"):
        LeCount.load(tmp_path / "old.npz")


def test_a_mesa_fit_of_no_round_is_refused_by_its_setting():
    """mesa_rounds 0 solved no linear program and stopped on an UnboundLocalError (helper-64)."""
    images, points = blob_set(21, [10, 18])
    with pytest.raises(ValueError, match=r"at least one round, not 0 \(Le.count's mesa_rounds"):
        LeCount.fit(images, points, loss="mesa", mesa_rounds=0, **FAST_COUNT)
