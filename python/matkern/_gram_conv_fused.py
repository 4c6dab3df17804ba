"""The CPU's fused convolution route: every frequency matrix summed from the taps inside the
Gram kernel (never stored), frequencies that cannot hold the max stopped early, and for
kernels of few tap offsets the first Gram product taken from the taps (first_from_taps)."""

from __future__ import annotations

import numpy as np

from . import _dispatch
from ._gram_dft import phase_table, phases, slack, tap_l1_norm, tap_norm_sum

PROBES = 8  # frequencies bounded in full first when pruning (see bounds)
# Kernels with at most this many tap offsets (3 x 3: 25) take their first Gram product from
# the taps: 25 multiply-adds per entry against a 64-long complex dot product (5 x 5: 81, no
# cheaper than the product).
FIRST_OFFSETS = 25


def bounds(kernel, h, w, n_iter, prune=False):
    """Per-frequency bounds (float64, (h*(w//2+1),)), slack included, on the CPU: each thread
    sums its frequency matrix from the taps in float64 (the direct DFT of _gram_dft, in C++),
    rounds it as _gram_dft.frequency_matrices would, and bounds it in cache; the h*(w//2+1)
    matrices are never stored (computing and storing them had cost a third of the whole call).

    prune: only the maximum is needed. The PROBES frequencies of largest Frobenius norm
    (||K_f||_F^2 = a^T C a + b^T C b with C the taps' Gram matrix and a - ib the phases: no
    DFT needed) run all n_iter products first and give a rigorous lower bound L on the max;
    every other frequency stops as soon as its certified bound falls below L, keeping that
    bound (usually looser, always >= its norm). The max stays certified and as tight: the
    frequency holding the exact max never drops below L, so it runs all n_iter products (the
    pruned max equalled the unpruned one on every kernel tested). Random 64x64x3x3 kernels do
    ~2/3 of the products, trained ones ~1/5."""
    c_out, c_in, kh, kw = kernel.shape
    k64 = np.asarray(kernel, dtype=np.float64)
    cs, sn = phase_table(h, w, kh, kw)
    P = c_out * c_in
    # Rows padded by 8 doubles: at a stride of a multiple of 4 KiB the kh*kw rows that each
    # block of the sum reads would share L1 sets (it ran 5x slower for 64 x 64 kernels).
    taps = np.zeros((kh * kw, P + 8))
    taps[:, :P] = k64.reshape(P, kh * kw).T
    nf = cs.shape[0]
    # ||K_f||_F^2 from the taps' Gram matrix (it picks each matrix's scaling, and the probes).
    # einsum's own loops, not BLAS: a threaded BLAS call leaves workers spinning on the cores
    # the kernel's threads need next (it made a 32x32x5x5 layer 2.5x slower).
    tap_gram = np.einsum("tp,up->tu", taps, taps)
    fro2 = np.einsum("ft,tu,fu->f", cs, tap_gram, cs) + np.einsum("ft,tu,fu->f", sn, tap_gram, sn)
    # Floored at 1e-6 of the largest possible norm (sum of the taps' norms): the quadratic
    # form's cancellation errs by ~1e-7 of that, so the true norm stays below ~2x the value
    # that sets the scale, and nothing overflows however small the matrix.
    fro = np.maximum(np.sqrt(np.maximum(fro2, 0.0)), 1e-6 * tap_norm_sum(k64))
    # On the columns v = 0 and v = w/2 (w even), frequencies (u, v) and (h - u, v) hold
    # conjugate matrices (the kernel is real): same singular values, so one of each pair runs
    # and the other takes its bound (30 of 544 at 32 x 32).
    u = np.repeat(np.arange(h), w // 2 + 1)
    v = np.tile(np.arange(w // 2 + 1), h)
    edge = (v == 0) | ((w % 2 == 0) & (v == w // 2))
    src = np.where(edge & (u > h // 2), ((h - u) % h) * (w // 2 + 1) + v, np.arange(nf))
    keep = np.flatnonzero(src == np.arange(nf))
    cs, sn, fro, fro2 = cs[keep], sn[keep], fro[keep], fro2[keep]
    nk = len(keep)
    probe = np.zeros(0, dtype=np.int64)
    if prune and n_iter >= 3 and nk > PROBES:
        probe = np.argsort(-fro2, kind="stable")[:PROBES].astype(np.int64)
    f32 = kernel.dtype == np.float32  # complex64 matrices, run in 32-bit; else 64-bit
    out = np.empty(nk)
    if n_iter >= 1 and (2 * kh - 1) * (2 * kw - 1) <= FIRST_OFFSETS:
        gtaps, pt, pu, start, pc, ps, del64 = first_from_taps(k64, h, w, taps)
        _dispatch.cpu().gram_conv_bound_batch_first(
            taps,
            cs,
            sn,
            fro,
            c_out,
            c_in,
            f32,
            not f32,
            n_iter,
            probe,
            out,
            gtaps,
            pt,
            pu,
            start,
            pc[keep],
            ps[keep],
            del64,
        )
    else:
        _dispatch.cpu().gram_conv_bound_batch(
            taps, cs, sn, fro, c_out, c_in, f32, not f32, n_iter, probe, out
        )
    return out[np.searchsorted(keep, src)] + slack(k64, h, w, f32)


def first_from_taps(k64, h, w, taps=None):
    """The setup of the first Gram product from the taps (GramTapFirst in gram.hpp): with
    F_f = sum_t e^{-i theta_f(t)} K_t, F_f^H F_f = M_0 + sum over offsets d > 0 of
    S_d cos theta_f(d) + i A_d sin theta_f(d), M_d the sum of K_t^T K_u over tap pairs at
    offset pos_t - pos_u = d, S_d = M_d + M_d^T, A_d = M_d - M_d^T; the C++ kernel builds the
    M_d and evaluates every frequency's Gram matrix from them in double, and the chain takes
    it from there (n_iter - 1 more products). Taken on the smaller side (K_t^T when
    c_out < c_in: the Gram matrix is then conj(F F^H), same singular values).

    taps: the fused route's padded tap table, which is gtaps itself when c_in <= c_out.
    Returns (gtaps, pt, pu, start, pc, ps, del64). del64 bounds the double evaluation's error
    in Frobenius norm for every frequency: each entry is a sum of at most T ro products per
    M_d (ro the summed side), one more rounding for S_d, A_d, 1 + 2 nd terms with phases
    (accurate to 26 u64 absolute: the angle num * 2 pi / (h w) < 4 pi rounds twice), two
    roundings per term without FMA: all terms bounded by (sum_t |K_t|)^T (sum_u |K_u|)
    entrywise, whose Frobenius norm is at most ||sum_t |K_t| ||_F^2; twice that count."""
    c_out, c_in, kh, kw = k64.shape
    T = kh * kw
    ro = max(c_out, c_in)
    P = c_out * c_in
    if taps is not None and c_out >= c_in:
        gtaps = taps
    else:
        K = k64.reshape(c_out, c_in, T).transpose(2, 0, 1)  # (T, c_out, c_in)
        if c_out < c_in:
            K = K.transpose(0, 2, 1)
        gtaps = np.zeros((T, P + 8))  # padded rows, as the taps table (L1 sets)
        gtaps[:, :P] = K.reshape(T, P)
    pos = [(t // kw, t % kw) for t in range(T)]
    offs = [(dp, dq) for dp in range(kh) for dq in range(-(kw - 1), kw) if dp > 0 or dq > 0]
    pairs = {d: [] for d in [(0, 0)] + offs}
    for t in range(T):
        for u in range(T):
            d = (pos[t][0] - pos[u][0], pos[t][1] - pos[u][1])
            if d in pairs:
                pairs[d].append((t, u))
    order = [(0, 0)] + offs
    pt = np.array([t for d in order for t, _ in pairs[d]], dtype=np.int64)
    pu = np.array([u for d in order for _, u in pairs[d]], dtype=np.int64)
    start = np.cumsum([0] + [len(pairs[d]) for d in order]).astype(np.int64)
    pc, ps = phases(h, w, [d[0] for d in offs], [d[1] for d in offs])
    nd = len(offs)
    del64 = 2.0 * (T * ro + 2 * nd + 40) * 2.0**-53 * tap_l1_norm(k64) ** 2 * (1 + 1e-9)
    return gtaps, pt, pu, start, pc, ps, del64
