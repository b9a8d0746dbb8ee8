"""tools/caffe-patches/07-pooling.patch: Caffe's CPU pooling, its planes shared among threads and
its running maximum in a register, gives what Caffe's own loop gives, to the bit.

The reference is Caffe's loop written out in numpy: the same windows (clipped to the image; the
average divided by the window's size with its padding), the same scan order (row by row, the
first of equal maxima kept, -FLT_MAX and mask -1 where nothing exceeds -FLT_MAX), and backward
the same additions in the same order. Each case runs on one thread and on two (the patch reads
OMP_NUM_THREADS at every pass), with and without Caffe's second top (the mask as a blob).
"""
from __future__ import annotations

import numpy as np
import pytest

caffe = pytest.importorskip("caffe", reason="run `make setup` to build Caffe")

FLT_MAX = np.float32(np.finfo(np.float32).max)


def pooled_side(n: int, k: int, s: int, pad: int) -> int:
    """Caffe's pooled size: rounded up, the last window starting inside the image + pad."""
    out = -(-(n + 2 * pad - k) // s) + 1
    if pad and (out - 1) * s >= n + pad:
        out -= 1
    return out


def windows(h: int, w: int, k: tuple, s: tuple, pad: tuple):
    """Per output (row-major): the padded window [hs, he) x [ws, we) and the clipped one."""
    ph, pw = pooled_side(h, k[0], s[0], pad[0]), pooled_side(w, k[1], s[1], pad[1])
    out = []
    for i in range(ph):
        for j in range(pw):
            hs, ws = i * s[0] - pad[0], j * s[1] - pad[1]
            he, we = min(hs + k[0], h + pad[0]), min(ws + k[1], w + pad[1])
            out.append(((hs, he, ws, we), (max(hs, 0), min(he, h), max(ws, 0), min(we, w))))
    return ph, pw, out


def reference(x: np.ndarray, top_diff: np.ndarray, method: str, k, s, pad):
    """Caffe's CPU loop, value by value: (top, mask or None, bottom diff)."""
    n, c, h, w = x.shape
    ph, pw, wins = windows(h, w, k, s, pad)
    top = np.empty((n, c, ph, pw), np.float32)
    mask = np.full((n, c, ph, pw), -1, np.int64)
    bottom_diff = np.zeros_like(x)
    for a in range(n):
        for b in range(c):
            plane, out, m = x[a, b], top[a, b].reshape(-1), mask[a, b].reshape(-1)
            grad, td = bottom_diff[a, b].reshape(-1), top_diff[a, b].reshape(-1)
            for o, ((hs, he, ws, we), (h0, h1, w0, w1)) in enumerate(wins):
                if method == "max":
                    best, arg = -FLT_MAX, -1
                    for y in range(h0, h1):
                        for xx in range(w0, w1):
                            if plane[y, xx] > best:
                                best, arg = plane[y, xx], y * w + xx
                    out[o], m[o] = best, arg
                else:
                    size = np.float32((he - hs) * (we - ws))
                    total = np.float32(0)
                    for y in range(h0, h1):
                        for xx in range(w0, w1):
                            total = np.float32(total + plane[y, xx])
                    out[o] = np.float32(total / size)
            for o, (full, (h0, h1, w0, w1)) in enumerate(wins):       # backward, in Caffe's order
                if method == "max":
                    grad[m[o]] = np.float32(grad[m[o]] + td[o])
                else:
                    size = np.float32((full[1] - full[0]) * (full[3] - full[2]))
                    for y in range(h0, h1):
                        for xx in range(w0, w1):
                            grad[y * w + xx] = np.float32(grad[y * w + xx] + np.float32(td[o] / size))
    return top, (mask if method == "max" else None), bottom_diff


def run_caffe(tmp_path, x, top_diff, method, k, s, pad, with_mask: bool):
    from caffe import layers as L, params as P
    net_spec = caffe.NetSpec()
    net_spec.data = L.Input(shape=dict(dim=list(x.shape)))
    pool = dict(pool=P.Pooling.MAX if method == "max" else P.Pooling.AVE, kernel_h=k[0],
                kernel_w=k[1], stride_h=s[0], stride_w=s[1], pad_h=pad[0], pad_w=pad[1])
    if with_mask:
        net_spec.pool, net_spec.mask = L.Pooling(net_spec.data, ntop=2, **pool)
    else:
        net_spec.pool = L.Pooling(net_spec.data, **pool)
    path = tmp_path / "pool.prototxt"
    path.write_text("force_backward: true\n" + str(net_spec.to_proto()))
    caffe.set_mode_cpu()
    net = caffe.Net(str(path), caffe.TRAIN)
    net.blobs["data"].data[...] = x
    net.forward()
    net.blobs["pool"].diff[...] = top_diff
    net.backward()
    mask = net.blobs["mask"].data.astype(np.int64) if with_mask else None
    return net.blobs["pool"].data.copy(), mask, net.blobs["data"].diff.copy()


def inputs(kind: str, shape, rng):
    if kind == "ties":                                # few distinct values: many equal maxima
        return rng.integers(0, 3, size=shape).astype(np.float32)
    x = rng.normal(size=shape).astype(np.float32)
    if kind == "odd":                                 # -inf (never a maximum) and a NaN
        x.reshape(-1)[::5] = -np.inf
        x.reshape(-1)[6] = np.nan
        x[..., -1, -1] = 0.25                         # a corner window may hold that one value
    return x


# (method, kernel, stride, pad, input shape, input kind): fcrn's 2x2 (whole windows, and an odd
# side whose last window is cut), AlexNet's 3x3 stride 2, a ResNet's 3x3 padded and 7x7 average,
# rectangular ones; above 16,384 outputs the patch shares the planes among threads
CASES = [
    ("max", (2, 2), (2, 2), (0, 0), (2, 16, 64, 64), "normal"),
    ("max", (2, 2), (2, 2), (0, 0), (1, 16, 65, 63), "ties"),
    ("max", (2, 2), (2, 2), (0, 0), (1, 2, 9, 7), "odd"),
    ("max", (3, 3), (2, 2), (0, 0), (2, 8, 61, 61), "ties"),
    ("max", (3, 3), (2, 2), (1, 1), (1, 12, 48, 50), "normal"),
    ("max", (3, 2), (1, 2), (1, 0), (1, 3, 11, 13), "odd"),
    ("ave", (7, 7), (1, 1), (0, 0), (1, 4, 9, 9), "normal"),
    ("ave", (3, 3), (2, 2), (1, 1), (2, 16, 40, 41), "normal"),
    ("ave", (2, 3), (2, 1), (1, 1), (1, 3, 8, 10), "ties"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}{c[1][0]}x{c[1][1]}s{c[2][0]}p{c[3][0]}"
                         f"-{'x'.join(map(str, c[4]))}-{c[5]}")
def test_pooling_matches_caffes_loop_to_the_bit(tmp_path, monkeypatch, case):
    method, k, s, pad, shape, kind = case
    rng = np.random.default_rng(abs(hash(case)) % 2**32)
    x = inputs(kind, shape, rng)
    ph, pw = pooled_side(shape[2], k[0], s[0], pad[0]), pooled_side(shape[3], k[1], s[1], pad[1])
    top_diff = rng.normal(size=(shape[0], shape[1], ph, pw)).astype(np.float32)
    if len(x.reshape(-1)) > 20_000 and method == "max":      # the big cases: vectorised check
        want = None
    else:
        want = reference(x, top_diff, method, k, s, pad)
        # a window without a value above -FLT_MAX has mask -1, where Caffe's backward writes
        # before the blob: the cases keep one in every window (test_nothing_above_minus_flt_max)
        assert want[1] is None or (want[1] >= 0).all()
    monkeypatch.delenv("CAFFE_DNNL_THREADS", raising=False)
    got = {}
    for threads in ("1", "2"):
        monkeypatch.setenv("OMP_NUM_THREADS", threads)
        for with_mask in ((False, True) if method == "max" else (False,)):
            got[threads, with_mask] = run_caffe(tmp_path, x, top_diff, method, k, s, pad, with_mask)
    first = got["1", False]
    for key, (top, mask, diff) in got.items():      # threads and the mask blob change nothing
        np.testing.assert_array_equal(top, first[0], err_msg=str(key))
        np.testing.assert_array_equal(diff, first[2], err_msg=str(key))
        if mask is not None:
            np.testing.assert_array_equal(mask, got["1", True][1])
    if want is None:
        want = vectorised_max_reference(x, top_diff, k, s, pad)
    np.testing.assert_array_equal(first[0], want[0])
    np.testing.assert_array_equal(first[2], want[2])
    if method == "max":
        np.testing.assert_array_equal(got["1", True][1], want[1])


def vectorised_max_reference(x, top_diff, k, s, pad):
    """Caffe's max loop over all outputs at once, offset by offset in the window's scan order
    (for the large cases, where the value-by-value loop would take minutes); backward adds each
    plane's terms in output order (np.add.at applies them one after another)."""
    n, c, h, w = x.shape
    ph, pw = pooled_side(h, k[0], s[0], pad[0]), pooled_side(w, k[1], s[1], pad[1])
    best = np.full((n, c, ph, pw), -FLT_MAX, np.float32)
    arg = np.full((n, c, ph, pw), -1, np.int64)
    hs = np.arange(ph)[:, None] * s[0] - pad[0]
    ws = np.arange(pw)[None, :] * s[1] - pad[1]
    for dy in range(k[0]):
        for dx in range(k[1]):
            y, xx = hs + dy, ws + dx
            ok = (y >= 0) & (y < h) & (xx >= 0) & (xx < w)
            v = x[:, :, np.clip(y, 0, h - 1), np.clip(xx, 0, w - 1)]
            better = ok & (v > best)
            best = np.where(better, v, best)
            arg = np.where(better, np.broadcast_to(y * w + xx, arg.shape), arg)
    grad = np.zeros((n * c, h * w), np.float32)
    planes = np.repeat(np.arange(n * c), ph * pw)
    np.add.at(grad, (planes, arg.reshape(-1)), top_diff.reshape(-1))
    return best, arg, grad.reshape(x.shape)


def test_nothing_above_minus_flt_max(tmp_path):
    """A max window holding only -inf and NaN: -FLT_MAX with mask -1 (forward only: Caffe's
    backward would add at index -1, before the plane)."""
    from caffe import layers as L, params as P
    x = np.full((1, 2, 4, 4), -np.inf, np.float32)
    x[0, 1, 1, 1] = np.nan
    x[0, 1, 2:, 2:] = 1.5
    net_spec = caffe.NetSpec()
    net_spec.data = L.Input(shape=dict(dim=list(x.shape)))
    net_spec.pool, net_spec.mask = L.Pooling(net_spec.data, ntop=2, pool=P.Pooling.MAX,
                                             kernel_size=2, stride=2)
    path = tmp_path / "pool.prototxt"
    path.write_text(str(net_spec.to_proto()))
    net = caffe.Net(str(path), caffe.TEST)
    net.blobs["data"].data[...] = x
    net.forward()
    top, mask = net.blobs["pool"].data, net.blobs["mask"].data
    np.testing.assert_array_equal(top[0, 0], np.full((2, 2), -FLT_MAX))
    np.testing.assert_array_equal(mask[0, 0], np.full((2, 2), -1))
    np.testing.assert_array_equal(top[0, 1], [[-FLT_MAX, -FLT_MAX], [-FLT_MAX, 1.5]])
    np.testing.assert_array_equal(mask[0, 1], [[-1, -1], [-1, 10]])


def test_vectorised_reference_is_the_loop():
    """The large cases' reference against the value-by-value one, on a small input with ties."""
    rng = np.random.default_rng(3)
    for k, s, pad in (((2, 2), (2, 2), (0, 0)), ((3, 3), (2, 2), (1, 1))):
        x = inputs("ties", (1, 2, 9, 11), rng)
        ph, pw = pooled_side(9, k[0], s[0], pad[0]), pooled_side(11, k[1], s[1], pad[1])
        td = rng.normal(size=(1, 2, ph, pw)).astype(np.float32)
        loop, fast = reference(x, td, "max", k, s, pad), vectorised_max_reference(x, td, k, s, pad)
        for a, b in zip(loop, fast):
            np.testing.assert_array_equal(a, b)
