"""spectral_norm_bounds' batches: every dense layer and every stored-matrix convolution's
frequency matrices grouped by shape and dtype, each group bounded as one batch
(_gram_batch); convolutions on the CPU's fused route run on their own (_gram_conv)."""

from __future__ import annotations

import numpy as np

from . import _dispatch, _gram_batch, _gram_conv
from ._gram_dft import frequency_matrices
from .reference.gram import unscale_bound


def check_memory(layers, convs, be, fn):
    """_gram_conv.check_memory for every convolution layer (convs: {i: (h, w)}), counting
    the stored-matrix layers' frequency matrices, which all stay alive until the end."""
    held = 0
    for i, (h, w) in convs.items():
        need = _gram_conv.check_memory(layers[i], h, w, be, f"input_sizes[{i}]", fn, held)
        if not _gram_conv.fused(layers[i], h, w, be):
            held += need


def bounds(layers, convs, n_iter, be, fn):
    """float64 NumPy array (len(layers),) of certified bounds; convs: {i: (h, w)} for the
    convolution layers. Every layer is prescaled on its own."""
    out = np.empty(len(layers), dtype=np.float64)
    groups = {}
    scaled = {}  # i: (p, under) of a prescaled conv layer (see _gram_batch.prescale)
    for i, layer in enumerate(layers):
        if i in convs:
            h, w = convs[i]
            if _gram_conv.fused(layer, h, w, be):  # a batch of its own, matrices made in the kernel
                out[i] = _gram_conv.bound(layer, h, w, n_iter, be, fn)
                continue
            K2, p, under = _gram_conv.prescale(layer)
            scaled[i] = (p, under)
            mats, slack = frequency_matrices(K2[0], h, w)
        else:
            mats, slack = layer[None], np.zeros(1)
        groups.setdefault((mats.shape[1:], mats.dtype.str), []).append((i, mats, slack))
    for items in groups.values():
        xp = _dispatch.array_module(items[0][1])
        A = xp.concatenate([mats for _, mats, _ in items], axis=0)
        b = _gram_batch.bounds(A, n_iter, be, fn=fn)  # matrices prescaled one by one
        start = 0
        for i, mats, slack in items:
            out[i] = (b[start : start + mats.shape[0]] + slack).max()
            if i in scaled:
                out[i] = unscale_bound(out[i : i + 1], *scaled[i], fn)[0]
            start += mats.shape[0]
    return out
