"""scikit-learn glue shared by matkern's estimators (SparseRandomProjection, FJLT,
TruncatedSVD).

scikit-learn is a (hard) dependency of matkern: the estimators derive from its
``BaseEstimator``, ``TransformerMixin`` and ``ClassNamePrefixFeaturesOutMixin``, so
``get_params`` / ``set_params`` / ``clone``, ``set_output``, ``get_feature_names_out``, tags and
the repr are scikit-learn's own, and input on the host is validated by scikit-learn's
``validate_data`` (lists, pandas frames, integer, object and F-ordered arrays converted as
scikit-learn converts them; its error messages and ``n_features_in_`` / ``feature_names_in_``
bookkeeping).

Two matkern additions around it:

- a scipy sparse matrix's index structure is validated in its stored format *before*
  scikit-learn converts it (scipy's conversions trust the indices and write out of bounds
  when they are corrupted, see ``_sparse_input``);
- CuPy arrays and cupyx sparse matrices stay on the GPU: checked here (same rules: float32 /
  float64 kept, integer and bool converted to float64, 2-D, not empty, finite) with the same
  ``n_features_in_`` bookkeeping and scikit-learn's wording of the feature-count error.

The NaN/Inf check is a pass over X (scikit-learn's: a sum, then an elementwise check only when
the sum is not finite); ``sklearn.config_context(assume_finite=True)`` skips it on both
devices, as it does for scikit-learn's own estimators.
"""

from __future__ import annotations

import numpy as np
from sklearn import get_config
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from . import _checks, _dispatch, _sparse_input

__all__ = [
    "BaseEstimator",
    "ClassNamePrefixFeaturesOutMixin",
    "TransformerMixin",
    "check_fitted",
    "validate_X",
    "validate_inverse_input",
    "result_dtype",
    "sparse_like",
]

FLOATS = [np.float64, np.float32]  # scikit-learn's order: other dtypes become float64


def check_fitted(est):
    """scikit-learn's ``check_is_fitted`` (raises ``sklearn.exceptions.NotFittedError``, a
    ValueError and AttributeError)."""
    check_is_fitted(est)


def validate_X(est, X, *, reset, fn, accept_sparse=True, name="X"):
    """X validated and converted for ``est`` (fit: ``reset=True`` records ``n_features_in_``
    and ``feature_names_in_``; otherwise they are compared). Host input: a NumPy array or a
    scipy CSR/CSC matrix of float32/float64 (any layout: kernels make C-contiguous copies
    themselves). GPU input: the CuPy array / cupyx matrix itself (ints/bools as float64)."""
    if _dispatch.is_cupy_array(X) or _dispatch.is_cupyx_sparse(X):
        return _validate_gpu(est, X, reset=reset, fn=fn, accept_sparse=accept_sparse, name=name)
    if accept_sparse and _dispatch.is_sparse(X):
        _sparse_input.check_structure(X, name, fn)  # before scipy converts anything
    return validate_data(
        est,
        X,
        accept_sparse=["csr", "csc"] if accept_sparse else False,
        dtype=FLOATS,
        reset=reset,
    )


def _validate_gpu(est, X, *, reset, fn, accept_sparse, name):
    xp = _dispatch.cupy_module()
    if _dispatch.is_cupyx_sparse(X):
        if not accept_sparse:
            raise TypeError(
                f"{fn}(): sparse data was passed for {name}, but dense data is required; "
                "use X.toarray() to convert to a dense array"
            )
        _sparse_input.check_structure(X, name, fn)
        if X.dtype.kind in "biu":
            X = X.astype(np.float64)
        data = X.data
    else:
        if X.dtype.kind in "biu":
            X = X.astype(np.float64)
        data = X
    if X.dtype not in [np.dtype(d) for d in FLOATS]:
        raise ValueError(f"{fn}(): {name} must have a real floating dtype, got {X.dtype}")
    if len(X.shape) != 2:
        raise ValueError(f"{fn}(): Expected 2D array, got shape {tuple(X.shape)} for {name}")
    n, d = X.shape
    if n < 1:
        raise ValueError(
            f"Found array with 0 sample(s) (shape=({n}, {d})) while a minimum of 1 is required."
        )
    if d < 1:
        raise ValueError(
            f"Found array with 0 feature(s) (shape=({n}, {d})) while a minimum of 1 is required."
        )
    # scikit-learn's assume_finite setting skips the check on the host; here too
    if data.size and not get_config()["assume_finite"] and not bool(xp.isfinite(data).all()):
        raise ValueError(f"{fn}(): Input {name} contains NaN or infinity.")
    if reset:
        est.n_features_in_ = d
        if hasattr(est, "feature_names_in_"):
            del est.feature_names_in_
    elif d != est.n_features_in_:
        raise ValueError(
            f"X has {d} features, but {type(est).__name__} is expecting "
            f"{est.n_features_in_} features as input."
        )
    return X


def validate_inverse_input(X, n_columns, fn, *, accept_sparse=True):
    """The input of ``inverse_transform``: (n, n_columns), float32/float64 (host input
    converted by scikit-learn's ``check_array``)."""
    if _dispatch.is_cupy_array(X) or _dispatch.is_cupyx_sparse(X):
        probe = _Probe()
        X = _validate_gpu(probe, X, reset=True, fn=fn, accept_sparse=accept_sparse, name="X")
    else:
        if accept_sparse and _dispatch.is_sparse(X):
            _sparse_input.check_structure(X, "X", fn)
        X = check_array(X, dtype=FLOATS, accept_sparse=["csr", "csc"] if accept_sparse else False)
    if X.shape[1] != n_columns:
        raise ValueError(
            f"{fn}(): X must have {n_columns} columns (n_components_), got shape {X.shape}"
        )
    return X


class _Probe:
    """A stand-in estimator for validation that records nothing."""


def result_dtype(x_dtype, fit_dtype):
    """The dtype of ``X @ components_.T`` in scikit-learn: NumPy's promotion of X's dtype and
    the fitted dtype (float32 only when both are float32)."""
    return np.result_type(x_dtype, fit_dtype)


def sparse_like(Y, X):
    """The dense result Y as a CSR matrix of X's kind: cupyx for cupyx input; for scipy input
    a ``csr_array`` or ``csr_matrix`` as scikit-learn's ``sparse_interface`` setting asks
    (when it has one), else of X's own kind."""
    if _dispatch.is_cupy_array(Y):
        import cupyx.scipy.sparse as csp

        return csp.csr_matrix(Y)
    return _dense_to_csr(Y, _csr_class(X))


def _csr_class(X):
    """scipy's ``csr_matrix`` or ``csr_array`` for a result from scipy input X, as
    scikit-learn's ``sparse_interface`` setting asks (when it has one), else X's own kind."""
    import scipy.sparse as sp

    interface = get_config().get("sparse_interface")
    if interface is None:
        interface = "spmatrix" if sp.isspmatrix(X) else "sparray"
    return sp.csr_matrix if interface == "spmatrix" else sp.csr_array


def csr_result(parts, shape, X):
    """A CSR result from a kernel's (indptr int64, indices int32, data) arrays, of the kind
    :func:`sparse_like` gives for X, with the index dtype scipy's conversion of the dense
    result has (int32 while nnz and the shape fit it)."""
    indptr, indices, data = parts
    if int(indptr[-1]) <= np.iinfo(np.int32).max and max(shape) <= np.iinfo(np.int32).max:
        indptr = indptr.astype(np.int32)
    else:
        indices = indices.astype(np.int64)
    return _csr_class(X)((data, indices, indptr), shape=shape)


def _dense_to_csr(Y, cls):
    """``cls(Y)`` for a dense 2-D NumPy Y, without scipy's general conversion (a COO pass over
    np.nonzero, the larger part of a sparse projection's time): a projection's rows are
    nearly always full, and then the CSR structure is known without searching."""
    n, k = Y.shape
    idx = np.int32 if Y.size < 2**31 else np.int64
    counts = np.count_nonzero(Y, axis=1)
    indptr = np.zeros(n + 1, idx)
    np.cumsum(counts, out=indptr[1:])
    if int(indptr[-1]) == Y.size:
        indices = np.tile(np.arange(k, dtype=idx), n)
        data = np.ascontiguousarray(Y).reshape(-1)
    else:
        rows, cols = np.nonzero(Y)
        indices, data = cols.astype(idx), Y[rows, cols]
    return cls((data, indices, indptr), shape=(n, k))


def cast(X, dtype):
    """X (dense or sparse, host or GPU) in ``dtype``, a copy only when the dtype changes."""
    if X.dtype == dtype:
        return X
    return X.astype(dtype)


def check_flag(value, name, fn):
    """A bool parameter (True/False, NumPy bools accepted)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(
            f"{fn}(): {name} must be True or False, got {type(value).__name__} {value!r}"
        )
    return bool(value)


def check_index_range(d, fn):
    """n_features must fit the kernels' 32-bit indices."""
    _checks.check_index_range(d, "n_features", fn)
