"""The MESA distance of Lempitsky & Zisserman (2010) and its cutting-plane fit.

MESA(F, F0) = max over all axis-aligned boxes B of |F(B) - F0(B)|, with F(B) the sum of F over B.
The most violating box is a 2-D maximum-subarray problem, solved exactly here: for every pair of
rows the column sums are formed and Kadane's scan runs over the columns (O(H^2 W), vectorised over
the row pairs).

Learning (L&Z, Sect. 3): min_w  lam * R(w) + sum_i MESA(X_i w, F0_i). With the L1 regulariser
R = |w|_1 (one of the two L&Z report) every cutting-plane step is a linear program:

    min  lam * sum(w+ + w-) + sum_i xi_i
    s.t. s * (h_B . (w+ - w-) - F0_i(B)) <= xi_i   for the boxes B and signs s found so far,
         w+, w-, xi >= 0

where h_B is the histogram of code words inside box B. Each round adds, per image, the box of
largest |F(B) - F0(B)| under the current w when it exceeds xi_i, until no image has one.
"""
from __future__ import annotations

import numpy as np
from scipy import optimize


def max_subarray(d: np.ndarray, chunk: int = 64) -> tuple[float, tuple[int, int, int, int]]:
    """Largest sum over boxes of the 2-D array d and the box (y0, y1, x0, x1), half-open."""
    h, w = d.shape
    s = np.vstack([np.zeros((1, w)), np.cumsum(d, axis=0)])
    best, box = -np.inf, (0, 1, 0, 1)
    for t0 in range(0, h, chunk):
        tops, bots = [], []
        for t in range(t0, min(h, t0 + chunk)):
            b = np.arange(t + 1, h + 1)
            tops.append(np.full(len(b), t)); bots.append(b)
        tops, bots = np.concatenate(tops), np.concatenate(bots)
        cols = s[bots] - s[tops]                               # (pairs, w)
        cur = cols[:, 0].copy(); start = np.zeros(len(cur), int)
        bval = cur.copy(); bstart = start.copy(); bend = np.zeros(len(cur), int)
        for j in range(1, w):
            c = cols[:, j]
            restart = cur <= 0
            cur = np.where(restart, c, cur + c)
            start = np.where(restart, j, start)
            better = cur > bval
            bval = np.where(better, cur, bval)
            bstart = np.where(better, start, bstart)
            bend = np.where(better, j, bend)
        k = int(np.argmax(bval))
        if bval[k] > best:
            best, box = float(bval[k]), (int(tops[k]), int(bots[k]), int(bstart[k]), int(bend[k]) + 1)
    return best, box


def block_sum(d: np.ndarray, cell: int) -> np.ndarray:
    """Sums over cell x cell blocks (zero-padded at the far edges)."""
    if cell == 1:
        return d
    h, w = d.shape
    H, W = -(-h // cell) * cell, -(-w // cell) * cell
    p = np.zeros((H, W))
    p[:h, :w] = d
    return p.reshape(H // cell, cell, W // cell, cell).sum(axis=(1, 3))


def worst_box(d: np.ndarray, cell: int):
    """(|excess|, box, sign) of the box with the largest |sum d|, boxes on a grid of `cell` px."""
    b = block_sum(d, cell)
    vp, bp = max_subarray(b)
    vn, bn = max_subarray(-b)
    v, box, sign = (vp, bp, 1.0) if vp >= vn else (vn, bn, -1.0)
    h, w = d.shape
    y0, y1, x0, x1 = box
    return v, (y0 * cell, min(h, y1 * cell), x0 * cell, min(w, x1 * cell)), sign


def fit_mesa(word_maps, targets, k1: int, lam: float, max_rounds: int = 100, tol: float = 1e-3,
             cell: int = 1, log=None) -> tuple[np.ndarray, dict]:
    """Cutting-plane L1-regularised MESA fit of one weight per code word; returns (w, info).

    cell > 1 restricts the boxes to a grid of cell x cell px (the search then costs 1/cell^3)."""
    if max_rounds < 1:        # no round: no linear program solved, so no weights to return
        raise ValueError(f"the MESA fit needs at least one round, not {max_rounds} "
                         f"(Le.count's mesa_rounds >= 1)")
    n = len(word_maps)
    rows, rhs, owner = [], [], []

    def add(i, box, sign):
        y0, y1, x0, x1 = box
        h = np.bincount(word_maps[i][y0:y1, x0:x1].ravel(), minlength=k1).astype(float)
        rows.append(sign * h); rhs.append(sign * float(targets[i][y0:y1, x0:x1].sum())); owner.append(i)

    for i, wm in enumerate(word_maps):       # start from the whole-image count constraints
        full = (0, wm.shape[0], 0, wm.shape[1])
        add(i, full, 1.0); add(i, full, -1.0)
    xi = np.zeros(n)
    rounds = 0
    for rounds in range(1, max_rounds + 1):
        A = np.array(rows)
        m = len(rows)
        a_ub = np.zeros((m, 2 * k1 + n))
        a_ub[:, :k1], a_ub[:, k1:2 * k1] = A, -A
        a_ub[np.arange(m), 2 * k1 + np.array(owner)] = -1.0
        c = np.concatenate([np.full(2 * k1, lam), np.ones(n)])
        res = optimize.linprog(c, A_ub=a_ub, b_ub=np.array(rhs), bounds=(0, None), method="highs")
        if res.status != 0:
            raise RuntimeError(f"MESA linear program failed: {res.message}")
        w, xi = res.x[:k1] - res.x[k1:2 * k1], res.x[2 * k1:]
        added = 0
        worst = 0.0
        for i, wm in enumerate(word_maps):
            v, box, sign = worst_box(w[wm] - targets[i], cell)
            worst = max(worst, v - xi[i])
            if v > xi[i] + tol:
                add(i, box, sign); added += 1
        if log:
            log(f"MESA round {rounds}: objective {res.fun:.4f}, {added} boxes added, worst excess {worst:.4f}")
        if not added:
            break
    return w, {"rounds": rounds, "constraints": len(rows), "objective": float(res.fun)}
