"""Plain NumPy implementations: the definition of correct, and the fallback backend.

Each family's reference lives in its own module (``matkern.reference.hadamard`` ...); the
public names are re-exported here, e.g. ``matkern.reference.fwht``.
"""

from .hadamard import fjlt, fwht  # noqa: F401
