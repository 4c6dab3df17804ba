"""matkern: fast C++/CUDA kernels for sparse, quantized and randomized linear algebra.

Call the functions on NumPy arrays (C++ CPU kernels) or CuPy arrays (CUDA kernels): the
result has the input's array type and device. PyTorch tensors (CPU and CUDA), JAX arrays and
other DLPack producers are taken too, without a copy (see :mod:`matkern._interop`; torch
tensors come back as tensors). ``backend="reference" | "cpu" | "cuda"``
forces a backend; :mod:`matkern.reference` holds the plain NumPy definitions.
:func:`show_config` says what was built and what can run here.
"""

__version__ = "0.1.0"  # the one place: pyproject.toml reads it (metadata.version)

from . import generators, reference  # noqa: F401
from ._config import backends, show_config  # noqa: F401
from ._spmm import *  # noqa: F401,F403
from ._threads import _init_from_environment as _init_threads  # noqa: E402
from ._threads import get_num_threads, set_num_threads, threads  # noqa: F401
from .gram import *  # noqa: F401,F403
from .hadamard import *  # noqa: F401,F403
from .int8 import *  # noqa: F401,F403
from .lut import *  # noqa: F401,F403
from .matfun import *  # noqa: F401,F403
from .randproj import *  # noqa: F401,F403
from .rotation import *  # noqa: F401,F403
from .sketch import *  # noqa: F401,F403
from .svd import *  # noqa: F401,F403

_init_threads()
del _init_threads
