"""What the stain normalisations (STAIN=reinhard|macenko, pycount.data.stain) do to a dataset's
test images, before any net sees them (issue #26, "Stain and colour").

Both targets are measured on the dataset's training images, as `prepare` measures them. Over the
test images, per method: how far the images still differ in colour (the standard deviation,
across images, of their mean L* and of their haematoxylin amount's mean and 99th percentile, from
Ruifrok & Johnston's unmixing), how far a second normalisation moves an image (a stable method
leaves a normalised image put), and the seconds per image. A figure shows the test images with
the lowest, the median and the highest mean L* as they are and under each method.

    .venv/bin/python -m bench.stain_examples --dataset nuclei
    (results and the figure in bench/results/)
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from bench import stages
from pycount import config
from pycount.data import prepare, stain

METHODS = ("none",) + tuple(config.STAIN_METHODS)


def _normalise(method: str, image: np.ndarray, ref) -> np.ndarray:
    return image if method == "none" else stain.normalise(method, image, ref)


def colour_spread(images) -> dict:
    """Across the images: the std of their mean L*, and of their haematoxylin's mean and 99th
    percentile amount."""
    lightness = [stain.lab_stats(im)[0, 0] for im in images]
    h = [stain.to_stains(im)[..., 0] for im in images]
    return {"L* mean, std across images": round(float(np.std(lightness)), 3),
            "H mean, std across images": round(float(np.std([x.mean() for x in h])), 4),
            "H p99, std across images": round(float(np.std([np.percentile(x, 99) for x in h])), 4)}


def compare(train_images, test_images) -> tuple[list[dict], dict]:
    """One row per method (none first) over the test images, and the normalised images."""
    rows, out = [], {}
    for method in METHODS:
        ref = None if method == "none" else stain.target(method, train_images)
        start = time.perf_counter()
        normed = [_normalise(method, im, ref) for im in test_images]
        seconds = (time.perf_counter() - start) / max(1, len(test_images))
        again = [np.abs(_normalise(method, im, ref).astype(int) - im).mean() for im in normed]
        rows.append({"method": method, **colour_spread(normed),
                     "renormalised, mean |change| (grey levels)": round(float(np.mean(again)), 3),
                     "s per image": round(seconds, 3)})
        out[method] = normed
    return rows, out


def figure(images_by_method: dict, picks: list[int], names: list[str], path: Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    methods = list(images_by_method)
    fig, axes = plt.subplots(len(picks), len(methods), figsize=(3 * len(methods), 3 * len(picks)),
                             squeeze=False)
    for r, i in enumerate(picks):
        for c, m in enumerate(methods):
            ax = axes[r][c]
            ax.imshow(images_by_method[m][i])
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                ax.set_title(m if m != "none" else "as it is")
            if c == 0:
                ax.set_ylabel(names[r])
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def main(argv=None) -> Path:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="nuclei")
    p.add_argument("--data-root", default=None)
    args = p.parse_args(argv)
    ds = config.dataset(args.dataset)
    ids = prepare.split(ds, args.data_root)
    train = [s.image for s in prepare.load(ds, ids["train"], args.data_root)]
    test = prepare.load(ds, ids["test"], args.data_root)
    rows, images = compare(train, [s.image for s in test])
    order = np.argsort([stain.lab_stats(s.image)[0, 0] for s in test])
    picks = [int(order[0]), int(order[len(order) // 2]), int(order[-1])]
    names = [f"{test[i].id} ({label})" for i, label in zip(picks, ("darkest", "median",
                                                                    "lightest"))]
    note = (f"\nOver the {len(test)} test images of {ds.name}; targets measured on its "
            f"{len(train)} training images. The figure (the .png of this name) shows "
            f"{', '.join(names)} as they are and under each method.\n")
    md = stages.write_results(f"stain-{ds.name}", rows, note=note,
                              extra={"dataset": ds.name, "test_images": len(test),
                                     "train_images": len(train), "shown": names})
    figure(images, picks, names, md.with_suffix(".png"))
    print(md.read_text())
    return md


if __name__ == "__main__":
    main()
