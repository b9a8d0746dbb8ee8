"""Folding a deploy net's BatchNorm + Scale pairs into the convolution before them.

In a deploy net BatchNorm normalises with stored statistics, so Convolution -> BatchNorm ->
Scale is one affine map per output channel and the convolution alone can carry it:

    W' = W * g / sqrt(var + eps),    b' = (b - mean) * g / sqrt(var + eps) + beta

(g, beta: the Scale layer's blobs; mean, var: BatchNorm's stored sums divided by its
moving-average factor, as Caffe does). The folded net computes the same outputs (to float32
rounding; tests/test_fold.py checks every committed net that has BatchNorm) with two passes over
each activation fewer. OpenCV's DNN module does the same fusion itself; pycaffe does not, which is
why the pycaffe engine folds (config.FOLD_BATCHNORM).

Only the in-place chains the ResNet builders write are folded: a BatchNorm whose bottom and top
are a Convolution's top, directly after it, followed by an in-place Scale on the same blob.
Anything else is left as it is.
"""
from __future__ import annotations

import numpy as np


def _layers(param):
    if len(param.layers):
        raise ValueError("a V1 prototxt (`layers {`): upgrade it with Caffe's upgrade_net_proto_text")
    return list(param.layer)


def foldable(param) -> list[tuple[int, int, int]]:
    """(convolution, batchnorm, scale) layer indices of every chain that can be folded."""
    layers = _layers(param)
    chains = []
    for i in range(len(layers) - 2):
        conv, bn, scale = layers[i:i + 3]
        if conv.type != "Convolution" or bn.type != "BatchNorm" or scale.type != "Scale":
            continue
        if len(conv.top) != 1:
            continue
        blob = conv.top[0]
        if list(bn.bottom) != [blob] or list(bn.top) != [blob] \
                or list(scale.bottom) != [blob] or list(scale.top) != [blob]:
            continue
        if scale.scale_param.axis != 1 or scale.scale_param.num_axes != 1:
            continue
        chains.append((i, i + 1, i + 2))
    return chains


def fold(param, blobs: dict[str, list[np.ndarray]]):
    """A deploy NetParameter and its weights (layer name -> blob arrays, as the caffemodel
    holds them) -> the folded NetParameter (a copy) and weights (new dict; arrays of the
    layers it does not touch are shared, not copied)."""
    out = type(param)()
    out.CopyFrom(param)
    layers = _layers(param)
    new_blobs = dict(blobs)
    drop = set()
    for ci, bi, si in foldable(param):
        conv, bn, scale = layers[ci], layers[bi], layers[si]
        if conv.name not in blobs or bn.name not in blobs or scale.name not in blobs:
            raise ValueError(f"the weights lack one of {conv.name}, {bn.name}, {scale.name}")
        w = np.asarray(blobs[conv.name][0], np.float64)
        c = w.shape[0]
        b = np.asarray(blobs[conv.name][1], np.float64).reshape(c) \
            if len(blobs[conv.name]) > 1 else np.zeros(c)
        mean, var, factor = (np.asarray(a, np.float64).reshape(-1) for a in blobs[bn.name][:3])
        k = 0.0 if factor[0] == 0 else 1.0 / factor[0]
        inv_std = 1.0 / np.sqrt(var * k + bn.batch_norm_param.eps)
        gamma = np.asarray(blobs[scale.name][0], np.float64).reshape(c)
        beta = np.asarray(blobs[scale.name][1], np.float64).reshape(c) \
            if scale.scale_param.bias_term else np.zeros(c)
        a = gamma * inv_std
        new_blobs[conv.name] = [
            (w * a.reshape((c,) + (1,) * (w.ndim - 1))).astype(np.float32),
            ((b - mean * k) * a + beta).astype(np.float32)]
        out.layer[ci].convolution_param.bias_term = True
        drop.update((bi, si))
        new_blobs.pop(bn.name, None)
        new_blobs.pop(scale.name, None)
    for i in sorted(drop, reverse=True):
        del out.layer[i]
    return out, new_blobs
