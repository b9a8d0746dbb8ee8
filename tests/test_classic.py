"""pycount.classic: Le.count (Lempitsky & Zisserman 2010) and Le.detect (Arteta et al. 2012) on
small synthetic images of bright Gaussian blobs at known positions on a dark background."""
import numpy as np
import pytest

from pycount.classic import LeCount, LeDetect
from pycount.classic import ledetect as ld
from pycount.classic.features import dense_sift, kmeans

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
