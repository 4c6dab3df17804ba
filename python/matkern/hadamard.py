"""Fast Walsh-Hadamard transform and the fast Johnson-Lindenstrauss transform (P·H·D)."""

from __future__ import annotations

import functools
import math
import numbers

import numpy as np

from . import _checks, _dispatch, _estimator, _hadamard_orders
from ._interop import array_methods, arrays
from .reference import hadamard as ref

__all__ = ["fwht", "hadamard_matrix", "FJLT", "fjlt", "johnson_lindenstrauss_min_dim"]

_FLOATS = (np.float32, np.float64)
# Largest base order m for which the CPU's one-pass kernel beats BLAS + the strided transform
# (register-tiled H_m stage; at m = 108..344 the BLAS product was 1.3-5x faster, 2026-12-03).
_MIXED_KERNEL_MAX_M = 64


@arrays("x", "out")
def fwht(x, axis=-1, normalize=False, out=None, *, backend=None):
    """Walsh-Hadamard transform along one axis, for lengths n = m * 2^k.

    Computes ``y = H_n x`` along ``axis``. For a power of two n, ``H_n`` is the n x n
    Hadamard matrix in Sylvester (natural) order, entries +-1. For n = m * p (p a power of
    two, m > 1 the base order chosen by :func:`hadamard_matrix`, e.g. 384 = 12 * 32,
    11008 = 344 * 32), ``H_n = H_p (Sylvester) kron H_m`` with H_m a Paley matrix: the
    length-n axis is read as (p, m), H_m is applied to each block of m (one matrix product,
    m multiply-adds per element) and the fast transform across the blocks. Lengths without a
    Hadamard matrix here (e.g. 6, 156, 172) are refused with ValueError.
    ``normalize=True`` divides by sqrt(n) so that the transform is orthonormal; for powers of
    two it is then its own inverse (``H_m`` need not be symmetric: the inverse of the
    normalized transform is its transpose, see :class:`HadamardRotation`). Applying the
    unnormalized power-of-two transform twice multiplies by n.

    Parameters
    ----------
    x : numpy.ndarray or cupy.ndarray, float32 or float64, any shape, any strides
        The length along ``axis`` must be a power of two or m * 2^k as above. NaN and Inf
        propagate.
    axis : int
        The axis to transform (default the last).
    normalize : bool
        Scale by 1/sqrt(n).
    out : array, optional
        C-contiguous array of x's shape, dtype and array type to write into (may be ``x``
        itself when x is C-contiguous: an in-place transform).
    backend : {"reference", "cpu", "cuda"}, optional
        Force a backend; by default NumPy input runs on the CPU and CuPy input on the GPU.

    Returns
    -------
    Array of x's shape, dtype and array type (``out`` when given).

    Example
    -------
    >>> import numpy as np, matkern
    >>> matkern.fwht(np.array([1.0, 0.0, 0.0, 0.0]))
    array([1., 1., 1., 1.])
    >>> matkern.fwht(np.ones((2, 384), np.float32), normalize=True).shape
    (2, 384)
    """
    return _fwht(x, axis, normalize, out, backend, transpose=False, fn="fwht")


def _fwht(x, axis, normalize, out, backend, *, transpose, fn):
    """fwht, or with ``transpose`` the transform by H_n^T (differs from H_n when H_m is not
    symmetric)."""
    _checks.check_array(x, "x", fn, dtypes=_FLOATS, min_ndim=1, contiguous=False)
    ax = _checks.normalize_axis(axis, x.ndim, "axis", fn)
    n = x.shape[ax]
    split = _hadamard_orders.split_order(n)
    if split is None:
        raise ValueError(
            f"{fn}(): x must have a length m * 2^k along axis {axis} for which a Hadamard "
            f"matrix is built here (powers of two, 12, 20, 24, 28, ...; see "
            f"matkern.hadamard_matrix), got {n}"
        )
    m, p = split
    _checks.check_out(out, x.shape, x.dtype, x, "out", fn)
    be = _dispatch.pick(fn, x, out, backend=backend)
    if be == "reference":
        y = ref.fwht(_dispatch.to_host(x), axis=ax, normalize=bool(normalize), transpose=transpose)
        return _dispatch.reference_result(y, x, out)
    xp = _dispatch.array_module(x)
    if out is None:
        out = xp.empty(x.shape, dtype=x.dtype)
    outer = math.prod(x.shape[:ax])
    inner = math.prod(x.shape[ax + 1 :])
    flat = out.reshape(-1)
    if m > 1 and be == "cpu" and inner == 1 and m <= _MIXED_KERNEL_MAX_M:
        # One pass per row (cpp/hadamard_mixed.inc): H_m on each block, butterflies across;
        # with AVX-512, 16 rows at a time (cpp/hadamard_avx512.cpp). Read from x and written
        # to out in that one pass when they share no memory.
        ht = _hadamard_orders.padded_columns(m, x.dtype, transpose)
        if out is not x and x.flags.c_contiguous and not np.may_share_memory(x, out):
            _dispatch.cpu().fwht_mixed_copy(x.reshape(-1), flat, outer, m, p, ht, bool(normalize))
            return out
        if out is not x:
            out[...] = x
        _dispatch.cpu().fwht_mixed_inplace(flat, outer, m, p, ht, bool(normalize))
        return out
    if m > 1:
        # H_p kron H_m: the dense H_m over each block of m (a matrix product, BLAS/cuBLAS),
        # then the fast transform across the p blocks with the block as its inner axis.
        H = xp.asarray(_hadamard_orders.base_matrix(m, x.dtype))
        if normalize:
            H = H * x.dtype.type(1.0 / math.sqrt(m))
        if not transpose:
            H = H.T
        src = x if x.flags.c_contiguous else xp.ascontiguousarray(x)
        blocks = src.reshape(outer * p, m, inner)
        # matmul without out= (NumPy's out= path skips BLAS for some shapes: 3x slower)
        if inner == 1:
            out[...] = (blocks.reshape(outer * p, m) @ H).reshape(x.shape)
        else:
            out[...] = xp.matmul(H.T, blocks).reshape(x.shape)
        if p > 1:
            _fwht_pow2_inplace(flat, outer, p, m * inner, normalize, be)
        return out
    if be == "cpu" and x.flags.c_contiguous and not np.may_share_memory(x, out):
        # Out of place in one pass: each row is copied just before it is transformed.
        _dispatch.cpu().fwht_copy(x.reshape(-1), flat, outer, n, inner, bool(normalize))
        return out
    if out is not x:
        out[...] = x
    _fwht_pow2_inplace(flat, outer, n, inner, normalize, be)
    return out


def _fwht_pow2_inplace(flat, outer, n, inner, normalize, be):
    if be == "cpu":
        _dispatch.cpu().fwht_inplace(flat, outer, n, inner, bool(normalize))
    else:
        _dispatch.cuda().fwht_inplace(
            flat, outer, n, inner, bool(normalize), _dispatch.stream_ptr()
        )


def hadamard_matrix(n, dtype=np.float64):
    """The n x n Hadamard matrix that :func:`fwht` applies (entries +-1, H H^T = n I).

    Built for every n = m * 2^k for which a Paley construction of some order m = o * 2^j
    exists (o odd, q = m - 1 or m / 2 - 1 a prime, or the square or cube of one): all powers
    of two, and 12, 20, 24, 28, 36, 40, 44, 52, 60, 108, 140, 384, 1536, 2560, 3072, 5120,
    9984 (312 * 32), 11008 (344 * 32), 13824, 14336, ... ``H_n = H_(2^k) kron H_m`` with
    H_(2^k) in Sylvester order and H_m the Paley matrix (see ``matkern._hadamard_orders``).
    156 and 172 have no Paley construction and are refused (their multiples by 2^k, k >= 1,
    use m = 312 and 344). Unlike :func:`scipy.linalg.hadamard` (powers of two only).

    Parameters
    ----------
    n : int
        The order.
    dtype : numpy dtype
        Of the result (default float64).

    Returns
    -------
    numpy.ndarray (n, n), for tests and small sizes: use :func:`fwht` to apply it.

    Example
    -------
    >>> import numpy as np, matkern
    >>> H = matkern.hadamard_matrix(12)
    >>> bool(np.array_equal(H @ H.T, 12 * np.eye(12)))
    True
    """
    fn = "hadamard_matrix"
    n = _checks.check_int(n, "n", fn, min_value=1)
    split = _hadamard_orders.split_order(n)
    if split is None:
        raise ValueError(f"{fn}(): no Hadamard matrix of order {n} is built here")
    m, p = split
    _checks.check_memory(n * n * np.dtype(dtype).itemsize, "the dense matrix", fn)
    Hp = ref.fwht(np.eye(p), axis=0)
    return np.kron(Hp, _hadamard_orders.base_matrix(m)).astype(dtype)


def johnson_lindenstrauss_min_dim(n_samples, eps=0.1):
    """Smallest k such that a random projection to k dimensions keeps pairwise squared
    distances within 1 +- eps with good probability: ``4 log(n) / (eps^2/2 - eps^3/3)``,
    the same bound as scikit-learn's function of this name.

    Example
    -------
    >>> matkern.johnson_lindenstrauss_min_dim(1000, eps=0.5)
    331
    """
    fn = "johnson_lindenstrauss_min_dim"
    n_samples = _checks.check_int(n_samples, "n_samples", fn, min_value=1)
    eps = _checks.check_float(eps, "eps", fn, min_value=0.0, max_value=1.0, strict=True)
    if eps >= 1.0:
        raise ValueError(f"{fn}(): eps must be < 1, got {eps}")
    return int(4 * np.log(n_samples) / (eps**2 / 2 - eps**3 / 3))


@array_methods
class FJLT(
    _estimator.ClassNamePrefixFeaturesOutMixin,
    _estimator.TransformerMixin,
    _estimator.BaseEstimator,
):
    """Fast Johnson-Lindenstrauss transform (Ailon-Chazelle): ``y = s · P · H · D · x``, a
    scikit-learn transformer (scikit-learn has no FJLT; it follows its random projections:
    parameters, errors, warnings, dtypes, ``inverse_transform``).

    ``D`` flips the signs of the d features at random, ``H`` is the orthonormal
    Hadamard transform of the features zero-padded to d' (the next power of two; with
    ``padding="hadamard"`` the smallest d' >= d with an m * 2^k transform, often d itself:
    384, 768, 1536, ... are not padded to 512, 1024, 2048), ``P``
    is a sparse k x d' matrix whose entries are N(0, 1) with probability ``density`` and 0
    otherwise, and ``s = 1 / sqrt(k · density)`` so that squared norms are preserved in
    expectation. ``density`` defaults to ``min(1, log(n)^2 / d')`` for n fitted samples
    (Ailon-Chazelle's q with constant 1).

    The random matrices are drawn on the host from ``random_state``, so the same seed gives
    the same transform on every backend. P's nonzeros are drawn directly (binomial counts and
    sampled positions, see ``_draw_projection``: the same law as independent Bernoulli(q)
    entries) in O(nnz) memory; since the fix of issue #15 a given seed gives a
    different P than before (``signs_`` is unchanged). ``random_state``: None, a nonnegative
    int, a numpy Generator or RandomState. CPU: one fused pass per row (sign, pad, FWHT, sparse
    gather) with threads over rows; an m * 2^k length runs the same fused pass with the
    mixed transform (H_m on blocks of m, butterflies across; the sign flip and padding fused
    into its first stage). GPU: batched FWHT then a sparse gather kernel (m * 2^k: fwht then
    a sparse product).

    Parameters
    ----------
    n_components : int or "auto"
        Output dimension k; "auto" uses :func:`johnson_lindenstrauss_min_dim` (n, eps), which
        must give 1 <= k <= n_features (ValueError otherwise, as in scikit-learn: one sample
        gives k = 0). An int above n_features warns (``DataDimensionalityWarning``).
    eps : float
        Only used when ``n_components="auto"``.
    density : float in (0, 1], optional
        Probability that an entry of P is nonzero.
    compute_inverse_components : bool, default False
        Compute ``inverse_components_`` (pseudo-inverse of ``components_``) in fit.
    random_state : None, int or numpy Generator
    padding : {"power_of_two", "hadamard"}, default "power_of_two"
        The transform length d': the next power of two, or the smallest length >= d with an
        m * 2^k Hadamard transform of base order m <= 64 (:func:`hadamard_matrix`), which
        pads 384 to 384 instead of 512. H is then H_(2^k) kron H_m, not symmetric: the
        padding changes the transform, so the same seed gives different results.
    backend : {"reference", "cpu", "cuda"}, optional

    Input: dense X (n, d): NumPy arrays, array-likes and pandas frames as scikit-learn
    validates them (float32/float64 kept, integer and object data converted to float64, any
    layout, NaN/Inf and sparse input refused), or CuPy arrays. The result's dtype is NumPy's
    promotion of X's dtype and the fitted dtype, its array type X's.

    Attributes
    ----------
    n_components_, n_features_in_, feature_names_in_ (pandas input with string column names),
    density_, padded_features_ (d'), signs_ (d,), projection_ (scipy.sparse CSR, k x d',
    float64), scale_, ``components_`` (the equivalent dense k x d matrix in the dtype of the
    data fitted on, computed on first access, read-only) and ``inverse_components_`` (when
    ``compute_inverse_components``).

    Sizes whose P or components_ would exceed the machine's physical memory are refused with
    ValueError before allocating.

    Example
    -------
    >>> import numpy as np, matkern
    >>> X = np.random.default_rng(0).standard_normal((100, 1000)).astype(np.float32)
    >>> Y = matkern.FJLT(64, random_state=0).fit_transform(X)
    >>> Y.shape, Y.dtype
    ((100, 64), dtype('float32'))
    """

    def __init__(
        self,
        n_components="auto",
        *,
        eps=0.1,
        density=None,
        compute_inverse_components=False,
        random_state=None,
        padding="power_of_two",
        backend=None,
    ):
        self.n_components = n_components
        self.eps = eps
        self.density = density
        self.compute_inverse_components = compute_inverse_components
        self.random_state = random_state
        self.padding = padding
        self.backend = backend

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    def __getstate__(self):
        # the per-dtype kernel arrays and components_ are caches (possibly on the GPU): rebuilt
        state = super().__getstate__()
        if "_cache" in state:
            state = {**state, "_cache": {}, "_components": None}
        return state

    @property
    def _n_features_out(self):
        """Output width, for get_feature_names_out (``fjlt0``, ``fjlt1``, ...)."""
        return self.n_components_

    def fit(self, X, y=None):
        """Draw D and P for inputs shaped like X (n_samples x n_features). Returns self."""
        fn = "FJLT.fit"
        X = _estimator.validate_X(self, X, reset=True, fn=fn, accept_sparse=False)
        n, d = X.shape
        from .randproj import _check_backend, _check_flag, _n_components, pinv, warn_no_reduction

        _checks.check_choice(self.padding, "padding", fn, ("power_of_two", "hadamard"))
        dpad = _padded_length(d, self.padding)
        # "auto" must give 1 <= k <= d, as scikit-learn's random projections require
        k = _n_components(self.n_components, self.eps, n, d, fn)
        if self.density is None:
            q = min(1.0, math.log(max(n, 2)) ** 2 / dpad)
        else:
            q = _checks.check_float(
                self.density, "density", fn, min_value=0.0, max_value=1.0, strict=True
            )
        _check_backend(self.backend, fn)
        inverse = _check_flag(self.compute_inverse_components, "compute_inverse_components", fn)
        _checks.check_index_range(dpad, "padded n_features", fn)
        warn_no_reduction(self.n_components, k, d)
        rng = _check_seed(self.random_state, fn)
        # Refuse what cannot fit before drawing: P's expected entries (12 bytes each in CSR),
        # with 6 standard deviations of slack.
        mean = k * dpad * q
        _checks.check_memory(
            12 * (mean + 6 * math.sqrt(mean) + 1) + 8 * (k + d), "the projection P", fn
        )
        signs = rng.integers(0, 2, size=d).astype(np.float64)
        signs *= 2.0
        signs -= 1.0
        P = _draw_projection(rng, k, dpad, q)
        self.n_components_ = k
        self.padded_features_, self.density_ = dpad, q
        self.signs_, self.projection_ = signs, P
        self.scale_ = 1.0 / math.sqrt(k * q)
        self._fit_dtype = np.dtype(X.dtype)
        self._cache = {}
        self._components = None
        if inverse:
            self.inverse_components_ = pinv(self.components_)
        elif hasattr(self, "inverse_components_"):
            del self.inverse_components_
        return self

    def _check_state(self, fn):
        """projection_ and signs_ are public attributes: check what the kernels (and scipy)
        will index with, so that a modified projection_ gives an error, not an out-of-bounds
        read."""
        import scipy.sparse as sp

        from . import _sparse_input

        P = self.projection_
        k, dpad, d = self.n_components_, self.padded_features_, self.n_features_in_
        if not sp.issparse(P) or P.format != "csr" or tuple(P.shape) != (k, dpad):
            raise ValueError(
                f"{fn}(): projection_ must be a ({k}, {dpad}) CSR matrix, got "
                f"{type(P).__name__} of shape {getattr(P, 'shape', None)}"
            )
        _sparse_input.check_compressed(P.indptr, P.indices, k, dpad, "projection_", fn, data=P.data)
        if np.shape(self.signs_) != (d,):
            raise ValueError(f"{fn}(): signs_ must have shape ({d},), got {np.shape(self.signs_)}")
        return P

    def _arrays(self, dtype, xp):
        key = (np.dtype(dtype).str, xp.__name__)
        if key not in self._cache:
            P = self._check_state("FJLT.transform")
            nnz = int(P.indptr[-1])
            host = (
                np.asarray(self.signs_).astype(dtype),
                P.indptr.astype(np.int64),
                P.indices[:nnz].astype(np.int32),
                P.data[:nnz].astype(dtype),
            )
            self._cache[key] = tuple(xp.asarray(a) for a in host)
        return self._cache[key]

    def transform(self, X):
        """Project the rows of X (n x d) to n x k (dtype and array type: see the class
        docstring)."""
        fn = "FJLT.transform"
        _estimator.check_fitted(self)
        X = _estimator.validate_X(self, X, reset=False, fn=fn, accept_sparse=False)
        X = _estimator.cast(X, _estimator.result_dtype(X.dtype, self._fit_dtype))
        X = _dispatch.array_module(X).ascontiguousarray(X)
        be = _dispatch.pick(fn, X, backend=self.backend)
        k, dpad = self.n_components_, self.padded_features_
        if be == "reference":
            # sparse: never a dense k x d' array
            Pd = self._check_state(fn).astype(X.dtype)
            Xh = _dispatch.to_host(X)
            return _dispatch.reference_result(
                ref.fjlt(Xh, self.signs_.astype(X.dtype), Pd, self.scale_), X
            )
        xp = _dispatch.array_module(X)
        signs, indptr, indices, data = self._arrays(X.dtype, xp)
        out = xp.empty((X.shape[0], k), dtype=X.dtype)
        # The kernels run the unnormalized FWHT: fold its 1/sqrt(d') into the final scale.
        scale = self.scale_ / math.sqrt(dpad)
        m, p = _hadamard_orders.split_order(dpad)
        if m > 1:
            return self._transform_mixed(X, be, (signs, indptr, indices, data), m, p, scale, out)
        if be == "cpu":
            _dispatch.cpu().fjlt_transform(X, signs, indptr, indices, data, dpad, scale, out)
            return out
        # GPU: the padded transform needs rows x d' scratch; bound it to ~256 MiB per chunk.
        cuda, stream = _dispatch.cuda(), _dispatch.stream_ptr()
        step = max(1, (256 << 20) // (dpad * X.dtype.itemsize))
        for r0 in range(0, X.shape[0], step):
            xs = X[r0 : r0 + step]
            scratch = xp.empty((xs.shape[0], dpad), dtype=X.dtype)
            cuda.fjlt_transform(
                xs, signs, indptr, indices, data, dpad, scale, scratch, out[r0 : r0 + step], stream
            )
        return out

    def _transform_mixed(self, X, be, arrays, m, p, scale, out):
        """transform for d' = m * p, m > 1 (padding="hadamard"): on the CPU one fused pass per
        row (cpp/rotate_quant.cpp: sign flip and padding, the mixed transform, the sparse
        gather); on the GPU the padded rows through fwht, then P as a sparse product."""
        signs, indptr, indices, data = arrays
        if be == "cpu":
            ht = _hadamard_orders.padded_columns(m, X.dtype)
            _dispatch.cpu().fjlt_mixed_transform(
                X, signs, ht, m, p, indptr, indices, data, scale, out
            )
            return out
        import cupyx.scipy.sparse as csp

        xp = _dispatch.array_module(X)
        d, dpad = X.shape[1], m * p
        # cupyx's CSR takes int32 index arrays
        if int(indptr[-1]) > _checks.INT32_MAX:
            raise ValueError(
                f"FJLT.transform(): projection_ has {int(indptr[-1])} nonzeros, more than the "
                f"GPU's sparse product takes with padding='hadamard' ({_checks.INT32_MAX})"
            )
        P = csp.csr_matrix(
            (data, indices, indptr.astype(xp.int32)), shape=(self.n_components_, dpad)
        )
        step = max(1, (256 << 20) // (dpad * X.dtype.itemsize))
        for r0 in range(0, X.shape[0], step):
            z = xp.zeros((min(step, X.shape[0] - r0), dpad), dtype=X.dtype)
            z[:, :d] = X[r0 : r0 + step] * signs
            fwht(z, axis=-1, out=z)
            out[r0 : r0 + step] = (P @ z.T).T * X.dtype.type(scale)
        return out

    def inverse_transform(self, X):
        """Map projected rows back: ``X @ inverse_components_.T``, (n, n_components) ->
        (n, n_features), dense (the pseudo-inverse is computed here when
        ``compute_inverse_components`` is False), as scikit-learn's random projections."""
        from .randproj import inverse, pinv

        fn = "FJLT.inverse_transform"
        _estimator.check_fitted(self)
        X = _estimator.validate_inverse_input(X, self.n_components_, fn)
        inv = getattr(self, "inverse_components_", None)
        if inv is None:
            inv = pinv(self.components_)
        return inverse(X, inv)

    @property
    def components_(self):
        """The dense k x d matrix M with transform(X) == X @ M.T (NumPy, read-only, in the
        dtype of the data fitted on; computed in float64).

        Row r of P·H is H^T·P_r (H^T = H for powers of two), so M = scale ·
        (H^T P_r)[:d] · signs, row by row: a transform of P's rows in blocks whose scratch is at most about a quarter of M,
        never a d' x d' Hadamard or identity matrix."""
        _estimator.check_fitted(self)
        if self._components is None:
            k, d, dpad = self.n_components_, self.n_features_in_, self.padded_features_
            _checks.check_memory(
                8 * k * d * 1.25 + 8 * dpad,
                "components_ (a dense k x d matrix)",
                "FJLT.components_",
            )
            P = self._check_state("FJLT.components_")
            out = np.empty((k, d), dtype=self._fit_dtype)
            rows = max(1, min(k, (k * d) // (4 * dpad)))
            # signs are +-1: (block * signs) * scale == block * (signs * scale) exactly, and a
            # float32 result is rounded once, from the float64 product
            factor = np.asarray(self.signs_, dtype=np.float64) * self.scale_
            for r0 in range(0, k, rows):
                r1 = min(k, r0 + rows)
                block = P[r0:r1].toarray()
                _fwht(block, -1, True, block, None, transpose=True, fn="FJLT.components_")
                np.multiply(block[:, :d], factor, out=out[r0:r1])
                del block
            out.flags.writeable = False
            self._components = out
        return self._components


def _padded_length(d, padding):
    """FJLT's transform length d' for d features: the next power of two, or with
    ``padding="hadamard"`` the smallest length >= d whose Hadamard transform runs the fused
    m * 2^k row kernel (base order m <= _MIXED_KERNEL_MAX_M); the next power of two is such a
    length, so the search ends there at the latest."""
    pow2 = 1 << max(0, (d - 1).bit_length())
    if padding == "power_of_two":
        return pow2
    best = pow2
    for m in _small_bases():  # m * 2^j >= d, the smallest j; split_order(n) then has m' <= m
        n = m << max(0, (-(-d // m) - 1).bit_length())
        best = min(best, n)
    return best


@functools.lru_cache(maxsize=1)
def _small_bases():
    """The base orders 1 < m <= _MIXED_KERNEL_MAX_M with a Hadamard matrix here."""
    return tuple(
        m for m in range(2, _MIXED_KERNEL_MAX_M + 1) if _hadamard_orders.split_order(m) == (m, 1)
    )


def _check_seed(random_state, fn):
    """check_random_state with an int seed checked here, so that a negative one names the
    argument (numpy's own message does not)."""
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        if int(random_state) < 0:
            raise ValueError(
                f"{fn}(): random_state must be None, a nonnegative int, a numpy "
                f"Generator or RandomState, got {int(random_state)}"
            )
    return _checks.check_random_state(random_state, fn)


# Expected nonzeros of P drawn per block of rows: bounds the draw's scratch (a few MB).
_DRAW_BLOCK = 1 << 16


def _draw_projection(rng, k, dpad, q):
    """P (k x dpad CSR, sorted indices): each entry independently N(0, 1) with probability q,
    else 0, drawn without a dense k x dpad array.

    The k * dpad cells, in row-major order, go in consecutive chunks of about
    _DRAW_BLOCK / q cells (4 * _DRAW_BLOCK when dense). In a chunk of m cells the number of nonzeros is drawn,
    N ~ Binomial(m, q), then their positions, a uniformly random N-subset of the chunk
    (``Generator.choice(replace=False)``: Floyd's algorithm, O(N) scratch): the same law as m
    independent Bernoulli(q) cells. For q > 1/32 (a dense P, which is anyway about as large
    as the chunk) the chunk's cells are drawn as Bernoulli(q) directly. Then one N(0, 1) value
    per nonzero, in row-major order. Scratch: O(_DRAW_BLOCK) whatever k and dpad."""
    import scipy.sparse as sp

    total = k * dpad
    dense = q > 1.0 / 32
    chunk = max(1, min(total, 4 * _DRAW_BLOCK if dense else int(_DRAW_BLOCK / q)))
    counts = np.zeros(k, dtype=np.int64)
    parts = []  # int32 column indices per chunk (the flat int64 positions are scratch only)
    for c0 in range(0, total, chunk):
        m = min(total, c0 + chunk) - c0
        if dense:
            pos = np.flatnonzero(rng.random(m) < q)
        else:
            pos = rng.choice(m, size=int(rng.binomial(m, q)), replace=False, shuffle=False)
            pos.sort()
        pos = pos.astype(np.int64, copy=False)
        pos += c0
        r0 = c0 // dpad
        per_row = np.bincount(pos // dpad - r0)  # rows r0 .. (< k, since pos < k * dpad)
        counts[r0 : r0 + per_row.size] += per_row
        parts.append((pos % dpad).astype(np.int32))
        del pos
    cols = np.concatenate(parts) if parts else np.empty(0, np.int32)
    del parts
    indptr = np.zeros(k + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    vals = rng.standard_normal(cols.size)
    if cols.size <= _checks.INT32_MAX:
        indptr = indptr.astype(np.int32)
    return sp.csr_matrix((vals, cols, indptr), shape=(k, dpad))


@arrays("X")
def fjlt(X, n_components="auto", *, eps=0.1, density=None, random_state=None, backend=None):
    """Fast JL transform of the rows of X in one call: ``FJLT(...).fit_transform(X)``.

    X is (n, d) float32/float64, NumPy or CuPy; returns (n, k) of the same dtype and type.

    Example
    -------
    >>> Y = matkern.fjlt(np.ones((10, 300), np.float32), 16, random_state=1)  # doctest: +SKIP
    """
    return FJLT(
        n_components, eps=eps, density=density, random_state=random_state, backend=backend
    ).fit_transform(X)
