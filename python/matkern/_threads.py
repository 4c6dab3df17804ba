"""One BLAS thread around sequences of small dense operations.

NumPy's and SciPy's wheels each bundle their own OpenBLAS, each with a thread pool whose idle
workers spin for a while after every call. A sequence of small calls that alternates between
the two (``@`` / ``numpy.linalg`` and ``scipy.linalg``), with OpenMP kernels in between, then
has one pool's spinning workers holding the cores that the other pool's need: on a 2-core
machine a TruncatedSVD update ran 3x slower (15x with another process busy) than on one
thread. ``single_blas_thread()`` limits every loaded BLAS to one thread for the duration
(through threadpoolctl), from the main thread only; nested uses share one limit, lifted by
the outermost exit.
"""

from __future__ import annotations

import contextlib
import threading

_state = {"controller": None, "depth": 0, "saved": []}


def _controller():
    if _state["controller"] is None:
        try:
            import scipy.linalg  # noqa: F401  (load SciPy's BLAS before the controller scans)
            from threadpoolctl import ThreadpoolController

            # Scanning the loaded libraries takes ~8 ms: once. A BLAS loaded later (another
            # package's) is not limited.
            _state["controller"] = ThreadpoolController()
        except Exception:  # threadpoolctl missing or unable to inspect: run unlimited
            _state["controller"] = False
    return _state["controller"]


@contextlib.contextmanager
def single_blas_thread():
    """Context manager: BLAS libraries run one thread inside it, when entered from the main
    thread (OpenBLAS ignores raising its thread count from other threads, so a limit set
    there could not be lifted; elsewhere, and without threadpoolctl, it does nothing)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    ctl = _controller()
    top = ctl and _state["depth"] == 0
    if top:
        # The libraries' own getters and setters: threadpoolctl's limiter objects cache the
        # counts they saw.
        libs = [lc for lc in ctl.lib_controllers if lc.user_api == "blas"]
        _state["saved"] = [(lc, lc.get_num_threads()) for lc in libs]
        for lc in libs:
            lc.set_num_threads(1)
    _state["depth"] += 1
    try:
        yield
    finally:
        _state["depth"] -= 1
        if top:
            for lc, n in _state["saved"]:
                lc.set_num_threads(n)
            _state["saved"] = []
