"""matkern on Dask: the kernels applied to dask arrays chunk by chunk on a cluster.

Install with ``pip install "matkern[dask]"`` (dask[array] and distributed). Every function
and estimator here takes dask arrays (NumPy or CuPy chunks) and returns lazy dask arrays,
or, for the norms and the SVD, computes on the current Dask scheduler (a
``distributed.Client`` when one is active). Each task runs matkern's single-process kernels
with the worker's own thread count (see ``_tasks.kernel_threads``).

- projections: :class:`SparseRandomProjection`, :class:`FJLT`, :func:`fwht`
- sparse products and graphs: :class:`SparseMatrix` (row-partitioned, persisted on the
  workers), :func:`fastrp`
- quantized inference: :func:`int8_matmul`, :func:`lut_matmul`
- certified norms: :func:`spectral_norm_bound` (tall arrays), :func:`spectral_norm_bounds`
- truncated SVD: :class:`TruncatedSVD` (FJLT range finder and Dask's tsqr)
"""

from __future__ import annotations

try:
    import dask  # noqa: F401
    import dask.array  # noqa: F401
    import distributed  # noqa: F401
except ImportError as e:  # pragma: no cover - exercised in a fresh interpreter by the tests
    raise ImportError(
        "matkern.dask needs dask[array] and distributed, which are not installed "
        f'({e}): pip install "matkern[dask]"'
    ) from e

from ._fastrp import fastrp  # noqa: E402
from ._norms import spectral_norm_bound, spectral_norm_bounds  # noqa: E402
from ._projection import FJLT, SparseRandomProjection, fwht  # noqa: E402
from ._quant import int8_matmul, lut_matmul  # noqa: E402
from ._sparse import SparseMatrix  # noqa: E402
from ._svd import TruncatedSVD  # noqa: E402

__all__ = [
    "SparseRandomProjection",
    "FJLT",
    "fwht",
    "SparseMatrix",
    "fastrp",
    "int8_matmul",
    "lut_matmul",
    "spectral_norm_bound",
    "spectral_norm_bounds",
    "TruncatedSVD",
]
