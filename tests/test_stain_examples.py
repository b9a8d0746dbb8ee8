"""bench.stain_examples: the colour spread of a set of images before and after each stain
normalisation, on tissue stained at different strengths."""
import numpy as np

from bench import stain_examples

RUIFROK = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11]])
RUIFROK = RUIFROK / np.linalg.norm(RUIFROK, axis=1, keepdims=True)


def _tissue(stains, h_scale, seed, side=64):
    """H&E-like tissue (haematoxylin scaled by h_scale) under a band of white glass."""
    rng = np.random.default_rng(seed)
    amounts = np.stack([rng.uniform(0.2, 0.8, (side, side)) * h_scale,
                        rng.uniform(0.05, 0.6, (side, side))], axis=-1)
    amounts[:side // 4] = 0
    return np.clip(np.rint(255 * 10.0 ** -(amounts @ stains)), 0, 255).astype(np.uint8)


def test_normalising_narrows_the_spread_of_differently_stained_tissue(tmp_path):
    train = [_tissue(RUIFROK, 1.0, s) for s in range(3)]
    test = [_tissue(RUIFROK, scale, 10 + i) for i, scale in enumerate((0.6, 1.0, 1.6))]
    rows, images = stain_examples.compare(train, test)
    by = {r["method"]: r for r in rows}
    assert list(by) == ["none", "reinhard", "macenko"]
    assert by["none"]["renormalised, mean |change| (grey levels)"] == 0
    for method in ("reinhard", "macenko"):
        assert all(a.shape == b.shape for a, b in zip(images[method], test))
    # Reinhard equalises the lightness, Macenko the haematoxylin's high percentile
    lightness = "L* mean, std across images"
    assert by["reinhard"][lightness] < 0.2 * by["none"][lightness]
    assert by["macenko"]["H p99, std across images"] < 0.3 * by["none"]["H p99, std across images"]
    png = stain_examples.figure(images, [0, 2], ["pale", "dark"], tmp_path / "f.png")
    assert png.stat().st_size > 1000
