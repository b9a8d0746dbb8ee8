"""Time and peak memory of the classic methods' fits (Le.count, Le.detect) on large images: what
a lab's own folder of microscope fields costs them (`pycount bench classic`).

Each fit runs in a child process of its own, so that its peak resident memory (ru_maxrss) is its
own: synthetic fluorescence-like images of `side` x `side` px with cells every ~20 px, `images`
of them, fitted with the method's defaults, then one more such image counted. Writes
bench/results/<date>-<host>-classic-fit.{json,md}.

    .venv/bin/python -m pycount bench classic --side 2048 --images 4 --models lecount
"""
from __future__ import annotations

import json
import resource
import subprocess
import sys
import time

import numpy as np
from scipy import ndimage

from bench import stages


def field(rng: np.random.Generator, side: int) -> tuple[np.ndarray, np.ndarray]:
    """An RGB uint8 image of Gaussian cells in the blue channel over noise, and its dots."""
    n = max(1, side * side // 400)
    dots = rng.uniform(4, side - 4, (n, 2))
    d = np.zeros((side, side), np.float32)
    d[dots[:, 1].astype(int), dots[:, 0].astype(int)] = 1
    blue = ndimage.gaussian_filter(d, 2.5) * 2 * np.pi * 2.5 ** 2 * 200 + rng.random((side, side)) * 20
    img = np.zeros((side, side, 3), np.uint8)
    img[..., 2] = np.clip(blue, 0, 255).astype(np.uint8)
    return img, dots


def child(model: str, side: int, images: int) -> dict:
    """Run in the child: fit, count one more image, report."""
    from pycount.classic.lecount import LeCount
    from pycount.classic.ledetect import LeDetect
    rng = np.random.default_rng(0)
    data = [field(rng, side) for _ in range(images + 1)]
    cls = {"lecount": LeCount, "ledetect": LeDetect}[model]
    t = time.perf_counter()
    fitted = cls.fit([im for im, _ in data[:-1]], [p for _, p in data[:-1]])
    fit_s = time.perf_counter() - t
    t = time.perf_counter()
    count = float(fitted.count_image(data[-1][0]))
    return {"model": model, "images": images, "side": side, "fit s": round(fit_s, 1),
            "count s": round(time.perf_counter() - t, 2), "counted": round(count, 1),
            "true": len(data[-1][1]),
            "peak MB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def run(models=("lecount", "ledetect"), side: int = 2048, images: int = 4) -> list[dict]:
    rows = []
    for m in models:
        out = subprocess.run([sys.executable, "-m", "bench.classic_fit", "--child", m, str(side),
                              str(images)], capture_output=True, text=True)
        if out.returncode:
            rows.append({"model": m, "images": images, "side": side,
                         "failed": (out.stderr.strip().splitlines() or ["killed"])[-1][:200]})
        else:
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    return rows


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        print(json.dumps(child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))))
    else:
        print(stages.write_results("classic-fit", run()).read_text())
