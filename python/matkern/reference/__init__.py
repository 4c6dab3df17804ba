"""Plain NumPy implementations: the definition of correct, and the fallback backend.

Each family's reference lives in its own module (``matkern.reference.hadamard`` ...); the
public names are re-exported here, e.g. ``matkern.reference.fwht``.
"""

from .gram import *  # noqa: F401,F403
from .hadamard import fjlt, fwht  # noqa: F401
from .int8 import *  # noqa: F401,F403
from .lut import *  # noqa: F401,F403
from .matfun import *  # noqa: F401,F403
from .randproj import *  # noqa: F401,F403
from .sketch import *  # noqa: F401,F403
from .spmm import *  # noqa: F401,F403
from .svd import *  # noqa: F401,F403
