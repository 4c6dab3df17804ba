"""Randomized Hadamard rotations (QuaRot / QuIP# style) and PHI-S standardization.

A rotation Q = D H_n^T / sqrt(n) (D a diagonal of random signs, H_n the Hadamard matrix of
:func:`matkern.fwht`, n = m * 2^k) is orthogonal, so ``X W^T = (X Q)(W Q)^T``: rotating both
sides of a matmul leaves it unchanged while spreading every outlier coordinate over all n,
which is what lets plain per-row int8 or 4-bit groups fit well. Applying Q costs one fast
transform (n log n, plus m multiply-adds per element for the base order m), not a dense
n x n product.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from . import _checks, _dispatch, _hadamard_orders, _rotate_quant
from ._interop import array_methods, arrays
from .hadamard import _fwht
from .reference import randproj as _rp

__all__ = ["HadamardRotation", "hadamard_standardize"]

_FLOATS = (np.float32, np.float64)
_SIGN_STREAM = 0x6A09E667F3BCC909  # odd constant: the rotation's counter stream


def _signs(seed, n):
    """n random signs (+-1.0, float64) from the counter-based hash of (seed, i): the same on
    every backend and for every n-prefix."""
    key = _rp.rp_seed_key(seed)
    with np.errstate(over="ignore"):
        h = _rp._mix(
            np.uint64(key)
            + (np.arange(n, dtype=np.uint64) + np.uint64(1)) * np.uint64(_SIGN_STREAM)
        )
    return np.where((h >> np.uint64(63)) == 0, 1.0, -1.0)  # fmt: skip


@array_methods
class HadamardRotation:
    """The orthogonal n x n rotation ``Q = D H_n^T / sqrt(n)`` applied in O(n log n).

    ``D`` is a diagonal of random signs drawn from ``random_state`` by a counter-based hash
    (the same signs on every backend and machine; ``random_state=None`` draws a seed), ``H_n``
    the Hadamard matrix of :func:`matkern.fwht` (n a power of two or m * 2^k, e.g. 384, 1536,
    11008; see :func:`matkern.hadamard_matrix`). ``apply(X)`` returns ``X @ Q`` for the rows of
    X (shape (..., n)) and ``apply_transpose(Y)`` returns ``Y @ Q.T``, its inverse. The
    product of a matmul is unchanged by rotating both sides: ``X @ W.T == apply(X) @
    apply(W).T`` up to rounding.

    Parameters
    ----------
    n : int
        The dimension rotated (the last axis of the arrays).
    random_state : None, int, numpy Generator or RandomState
        Seed of the signs.
    randomized : bool
        False: D = I (the plain normalized Hadamard transform).

    Attributes
    ----------
    n, seed (the integer seed used), signs_ (float64 (n,), read-only), base_order (m).

    NumPy arrays run on the CPU kernels, CuPy arrays on the GPU (float32 or float64). The
    object pickles (it stores n and the seed; the signs are regenerated).

    Example
    -------
    >>> import numpy as np, matkern
    >>> Q = matkern.HadamardRotation(384, random_state=0)
    >>> X = np.random.default_rng(0).standard_normal((4, 384))
    >>> W = np.random.default_rng(1).standard_normal((8, 384))
    >>> bool(np.allclose(Q.apply(X) @ Q.apply(W).T, X @ W.T))
    True
    >>> bool(np.allclose(Q.apply_transpose(Q.apply(X)), X))
    True
    """

    def __init__(self, n, random_state=None, *, randomized=True):
        fn = "HadamardRotation"
        n = _checks.check_int(n, "n", fn, min_value=1)
        if _hadamard_orders.split_order(n) is None:
            raise ValueError(
                f"{fn}(): n must be a length with a Hadamard matrix here (powers of two, "
                f"12, 20, 24, 28, ..., 384, 1536, 11008, ...; see matkern.hadamard_matrix), "
                f"got {n}"
            )
        if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
            seed = int(random_state)
        else:
            seed = int(_checks.check_random_state(random_state, fn).integers(0, 2**63 - 1))
        self.n = n
        self.seed = seed
        self.randomized = bool(randomized)
        self._setup()

    def _setup(self):
        s = _signs(self.seed, self.n) if self.randomized else np.ones(self.n)
        s.flags.writeable = False
        self.signs_ = s
        self.base_order = _hadamard_orders.split_order(self.n)[0]
        self._device_signs = {}

    def __getstate__(self):
        return {"n": self.n, "seed": self.seed, "randomized": self.randomized}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._setup()

    def __eq__(self, other):
        return isinstance(other, HadamardRotation) and self.__getstate__() == other.__getstate__()

    def __hash__(self):
        return hash(tuple(self.__getstate__().values()))

    def __repr__(self):
        kind = "seed=%d" % self.seed if self.randomized else "randomized=False"
        return f"HadamardRotation(n={self.n}, {kind})"

    def _signs_like(self, X):
        key = (type(X).__module__.split(".")[0], X.dtype.str)
        s = self._device_signs.get(key)
        if s is None:
            s = _dispatch.array_module(X).asarray(self.signs_.astype(X.dtype))
            self._device_signs[key] = s
        return s

    def _check(self, X, fn):
        _checks.check_array(X, "X", fn, dtypes=_FLOATS, min_ndim=1, contiguous=False)
        if X.shape[-1] != self.n:
            raise ValueError(f"{fn}(): X must have {self.n} columns (last axis), got {X.shape}")

    def apply(self, X, *, backend=None):
        """``X @ Q``: each row x becomes H_n (D x) / sqrt(n). X: (..., n) float32/float64
        NumPy or CuPy; returns a new array of X's shape, dtype and array type."""
        fn = "HadamardRotation.apply"
        self._check(X, fn)
        if self.randomized and X.dtype == np.float32 and X.size:
            be = _dispatch.pick(fn, X, backend=backend)
            if _rotate_quant.fusable(self, be) and be == "cpu":
                # sign flip fused into the transform's pass (the same values as below)
                return _rotate_quant.rotate_cpu(X, self)
        Z = X * self._signs_like(X) if self.randomized else X.copy()
        return _fwht(Z, -1, True, Z, backend, transpose=False, fn=fn)

    def apply_transpose(self, Y, *, backend=None):
        """``Y @ Q.T`` (the inverse of :meth:`apply`): each row y becomes D H_n^T y / sqrt(n).
        Y: (..., n) float32/float64 NumPy or CuPy; returns a new array."""
        fn = "HadamardRotation.apply_transpose"
        self._check(Y, fn)
        Z = _fwht(Y, -1, True, None, backend, transpose=True, fn=fn)
        if self.randomized:
            Z *= self._signs_like(Z)
        return Z

    def matrix(self, dtype=np.float64):
        """The dense n x n matrix Q (``apply(X) == X @ Q``), for tests and small n."""
        from .hadamard import hadamard_matrix

        H = hadamard_matrix(self.n, dtype=np.float64)
        return (self.signs_[:, None] * H.T / math.sqrt(self.n)).astype(dtype)


@arrays("X")
def hadamard_standardize(X, *, random_state=None, backend=None):
    """PHI-S standardization: a Hadamard rotation that equalizes the per-dimension variance.

    Following PHI-S (Ranzinger et al., multi-teacher distillation), the data are centred,
    rotated into the eigenbasis of their covariance (which decorrelates them but leaves very
    unequal variances) and then by a normalized Hadamard matrix, which gives every dimension
    the same variance (the mean of the eigenvalues): ``Z = (X - mu) U H^T / sqrt(n) / sigma``
    with ``sigma^2 = trace(C) / n``. A single scalar then standardizes all dimensions, so the
    map is invertible and isotropic in scale.

    Parameters
    ----------
    X : (n_samples, n) float32/float64 NumPy or CuPy array
        n must have a Hadamard matrix (see :func:`matkern.hadamard_matrix`).
    random_state : None or int
        Seed of a random sign flip applied before the Hadamard rotation (None: no flip, the
        plain PHI-S transform).
    backend : optional, as elsewhere.

    Returns
    -------
    Z : array like X
        The standardized data: every column has variance ~1 (exactly equal column variances
        up to rounding when X's covariance is estimated from X itself).
    inverse : callable
        ``inverse(Z)`` maps standardized data back to X's space (``inverse(Z) ~= X``).

    Example
    -------
    >>> import numpy as np, matkern
    >>> X = np.random.default_rng(0).standard_normal((1000, 12)) * np.arange(1, 13)
    >>> Z, inverse = matkern.hadamard_standardize(X)
    >>> bool(np.allclose(Z.var(axis=0), 1.0)), bool(np.allclose(inverse(Z), X))
    (True, True)
    """
    fn = "hadamard_standardize"
    _checks.check_array(X, "X", fn, dtypes=_FLOATS, ndim=2, contiguous=False, finite=True)
    n_samples, n = X.shape
    if n_samples < 2:
        raise ValueError(f"{fn}(): X must have at least 2 rows, got shape {X.shape}")
    rot = HadamardRotation(
        n,
        random_state=0 if random_state is None else random_state,
        randomized=random_state is not None,
    )
    xp = _dispatch.array_module(X)
    mu = X.mean(axis=0)
    Xc = X - mu
    C = (Xc.T @ Xc) / (n_samples - 1)
    evals, U = xp.linalg.eigh(C.astype(xp.float64))
    sigma = float(xp.sqrt(xp.maximum(evals, 0).sum() / n))
    if not sigma > 0:
        raise ValueError(f"{fn}(): X has zero variance in every direction")
    U = U.astype(X.dtype)
    Z = rot.apply(Xc @ U, backend=backend) / X.dtype.type(sigma)

    @arrays("Zs")
    def inverse(Zs):
        return rot.apply_transpose(Zs * Zs.dtype.type(sigma), backend=backend) @ U.T + mu

    return Z, inverse
