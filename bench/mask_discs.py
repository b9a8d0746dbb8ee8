"""Dot masks drawn as discs (issue 25: a lab's or a public set's `NAME_dots.png`): how many
cells pycount reads from masks of known counts, with discs of one radius or of several in one
mask, 15 or 40 % of them touching in pairs or triangles, as PNG and as JPEG (quality 85). The
rule of mask_centres is beside the area-only rule it replaced (a blob of k times the median
area is k discs), computed here.

    .venv/bin/python -m bench.mask_discs      # bench/results/<date>-<host>-mask-discs.md/.json
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from bench import stages
from pycount.data import annotations

RADII = ((1,), (2,), (3,), (5,), (2, 3), (2, 3, 4), (1, 2), (3, 5), (1, 2, 3, 4))
EVEN_RADII = ((1,), (2,), (3,), (2, 3), (2, 3, 4))


def disc(mask: np.ndarray, x: int, y: int, r: int, even: bool) -> None:
    """A filled disc of radius r at pixel (x, y) (cv2.circle: 2r + 1 px across), or with
    `even`, 2r px across, centred on the corner between four pixels (an even-sided brush)."""
    if not even:
        cv2.circle(mask, (x, y), r, 255, -1)
        return
    yy, xx = np.mgrid[-r:r, -r:r]
    inside = ((xx + 0.5) ** 2 + (yy + 0.5) ** 2 <= r * r) & (y + yy >= 0) & (x + xx >= 0)
    mask[y + yy[inside], x + xx[inside]] = 255


def draw(rng, radii, touching: float, group: int, n: int = 120, side: int = 600,
         even: bool = False):
    """A side x side mask of `n` discs of the radii, a share `touching` of the placements a
    group of `group` touching discs (in a row of two, or a triangle of three), and one more disc
    cut in half by the top edge; their count. `even`: even-sided discs (disc)."""
    mask, placed, count = np.zeros((side, side), np.uint8), [], 1
    disc(mask, side // 2, 0, int(max(radii)), even)           # the one the edge cuts
    while count < n:
        r = int(rng.choice(radii))
        x, y = (int(v) for v in rng.integers(20, side - 40, 2))
        k = group if rng.random() < touching else 1
        centres = [(x, y), (x + 2 * r, y), (x + r, y + int(round(1.732 * r)))][:k]
        if not all((a - px) ** 2 + (b - py) ** 2 > (r + pr + 3) ** 2
                   for a, b in centres for px, py, pr in placed + [(side // 2, 0, max(radii))]):
            continue
        for a, b in centres:
            disc(mask, a, b, r, even)
            placed.append((a, b, r))
        count += k
    return mask, count


def area_rule(on: np.ndarray) -> int:
    """The count of the rule before 2026-12-06: each blob round(area / median area) cells."""
    n, _, stats, _ = cv2.connectedComponentsWithStats(on.astype(np.uint8), connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA].astype(float)
    return int(np.maximum(1, np.round(areas / np.median(areas))).sum())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--masks", type=int, default=4, help="masks per setting")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(2016)
    start = time.monotonic()
    rows = []
    for radii, even in [(r, False) for r in RADII] + [(r, True) for r in EVEN_RADII]:
        for touching, group in ((0.15, 2), (0.15, 3), (0.4, 2), (0.4, 3)):
            err = {"png": [], "jpeg": [], "area rule": []}
            for _ in range(args.masks):
                mask, truth = draw(rng, radii, touching, group, even=even)
                on = mask != 0
                err["png"].append(len(annotations.mask_centres(on)) - truth)
                err["area rule"].append(area_rule(on) - truth)
                _, buf = cv2.imencode(".jpg", mask, [cv2.IMWRITE_JPEG_QUALITY, 85])
                j = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
                err["jpeg"].append(len(annotations.mask_centres(j >= max(1, int(j.max()) // 2)))
                                   - truth)
            rows.append((radii, even, touching, group, err))
    table = [{"discs": ", ".join(f"{2 * r}" if even else f"{2 * r + 1}" for r in radii)
              + " px across", "touching": f"{touching:.0%}", "group": group,
              **{k: " ".join(f"{e:+d}" for e in v) for k, v in err.items()}}
             for radii, even, touching, group, err in rows]
    worst = {k: max(abs(e) for *_, err in rows for e in err[k]) for k in rows[0][4]}
    note = (f"`python -m bench.mask_discs --masks {args.masks}` ({time.monotonic() - start:.0f} "
            f"s): 600 px masks of 121 cells each (one cut in half by the top edge), discs of an odd width (a circle around a pixel) or an even one (around a pixel corner); per setting the signed errors (read - drawn) of "
            f"its {args.masks} masks: pycount's mask_centres on the PNG and on the JPEG, and the "
            f"area-only rule it replaced. Largest error of any mask: "
            + ", ".join(f"{k} {v}" for k, v in worst.items()) + ".\n")
    out = stages.write_results("mask-discs", table, into=args.out, note=note)
    print(out.read_text())
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
