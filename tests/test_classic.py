"""pycount.classic: Le.count (Lempitsky & Zisserman 2010) and Le.detect (Arteta et al. 2012) on
small synthetic images of bright Gaussian blobs at known positions on a dark background."""
import numpy as np
import pytest

from pycount.classic import LeCount
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
    yy, xx = np.mgrid[0:size, 0:size]
    img = np.full((size, size), 20.0)
    for x, y in pts:
        img += 200 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma ** 2))
    img += rng.normal(0, noise, img.shape)
    g = np.clip(img, 0, 255)
    rgb = np.stack([g * c + 5 * (1 - c) for c in colour], axis=-1)
    return rgb.astype(np.uint8), pts


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
