"""Benchmarks of the spmm family.

CPU: float32 ``A @ B`` for k = 32 and 128 over the real matrices in data/matrices and
generated ones (band, 27-point stencil, R-MAT, uniform), against scipy.sparse and MKL through
sparse_dot_mkl (both cores). MKL runs with MKL_THREADING_LAYER=GNU (set here before MKL loads
unless already set) so that it shares GNU OpenMP with matkern instead of bringing its own
Intel OpenMP runtime, whose spinning threads would fight matkern's in the same process.
Sizes are cut to this 2-core machine: band matrices n = 16384 with bandwidth 64 and 256
only (the issue's wider bands up to 16384 are 16x-256x larger and take minutes each here).

GPU: float32 and float16, k in {8, 32, 128, 512}, per matrix class, against cupyx (cuSPARSE).
Each GPU case also times matkern's two kernels forced (kernel="csr" / "blocked"), which is the
measurement behind the automatic rule; preparation time is reported separately in the notes.
"""

import os

import numpy as np

from bench._runner import Case

_MKL = {"mod": None, "why": None}


def _find_mkl_rt():
    """The libmkl_rt that the `mkl` wheel put in this environment's lib/ folder, which the
    dynamic loader does not search in a virtual environment: sparse_dot_mkl then needs it
    named in MKL_RT (issue #24: the MKL anchor was skipped for everyone)."""
    import glob
    import sys

    for prefix in dict.fromkeys([sys.prefix, sys.base_prefix, sys.exec_prefix]):
        found = sorted(glob.glob(os.path.join(prefix, "lib", "libmkl_rt.so*")))
        if found:
            return found[-1]
    return None


def _mkl():
    if _MKL["mod"] is None and _MKL["why"] is None:
        os.environ.setdefault("MKL_THREADING_LAYER", "GNU")
        if "MKL_RT" not in os.environ:
            path = _find_mkl_rt()
            if path is not None:
                os.environ["MKL_RT"] = path
        try:
            from sparse_dot_mkl import dot_product_mkl

            _MKL["mod"] = dot_product_mkl
        except Exception as exc:  # not installed, or libmkl_rt not found
            _MKL["why"] = f"MKL anchor skipped: {type(exc).__name__}: {exc}"[:200]
    return _MKL["mod"]


def _real(name):
    import pathlib

    import scipy.io
    import scipy.sparse as sp

    path = pathlib.Path(__file__).resolve().parent.parent / "data" / "matrices" / f"{name}.mtx"
    return sp.csr_matrix(scipy.io.mmread(path))


REAL = ["cora", "citeseer", "pubmed", "ca-CondMat", "cryg2500", "dnn-n1024-l1", "dnn-n1024-l2"]


def _generated(quick, gpu=False):
    import matkern.generators as g

    if quick and not gpu:
        return {
            "band n=8192 bw=64": lambda: g.band(8192, 64, random_state=0),
            "stencil27 24^3": lambda: g.stencil27(24, random_state=0),
            "rmat scale=14 ef=16": lambda: g.rmat(14, 16, random_state=0),
            "uniform 16384 d=1e-3": lambda: g.uniform_random(16384, 16384, 1e-3, random_state=0),
        }
    out = {
        "band n=16384 bw=64": lambda: g.band(16384, 64, random_state=0),
        "band n=16384 bw=256": lambda: g.band(16384, 256, random_state=0),
        "stencil27 32^3": lambda: g.stencil27(32, random_state=0),
        "rmat scale=15 ef=16": lambda: g.rmat(15, 16, random_state=0),
        "uniform 16384 d=1e-3": lambda: g.uniform_random(16384, 16384, 1e-3, random_state=0),
    }
    if gpu:
        out["band n=16384 bw=1024"] = lambda: g.band(16384, 1024, random_state=0)
        out["stencil27 48^3"] = lambda: g.stencil27(48, random_state=0)
    return out


_CPU_MAT = {}


def _cpu_matrix(label, load):
    """(A float32 CSR, its prepared SparseMatrix), read once for the cases of one matrix (the
    Matrix Market files take a moment to parse); one matrix held at a time."""
    import matkern

    if label not in _CPU_MAT:
        _CPU_MAT.clear()
        A = load().astype(np.float32)
        A.sort_indices()
        _CPU_MAT[label] = A, matkern.SparseMatrix(A).prepare("cpu", np.float32)
    return _CPU_MAT[label]


def _cpu_case(label, load, k):
    import matkern

    def make():
        A, S = _cpu_matrix(label, load)
        B = np.random.default_rng(k).standard_normal((A.shape[1], k)).astype(np.float32)
        out = np.empty((A.shape[0], k), np.float32)
        fns = {
            "matkern": lambda: matkern.spmm(S, B, out=out),
            "scipy.sparse": lambda: A @ B,
            "_A": A,
            "_B": B,
            "_out": out,
        }
        mkl = _mkl()
        if mkl is not None:
            fns["MKL (sparse_dot_mkl)"] = lambda: mkl(A, B)
        return fns

    def info(fns):
        A, B = fns["_A"], fns["_B"]
        y = matkern.spmm(A, B)
        err = float(np.max(np.abs(y - A @ B)))
        note = f"{A.shape[0]}x{A.shape[1]} nnz={A.nnz}; max |diff| vs scipy {err:.1e}"
        return note + ("; " + _MKL["why"] if _MKL["why"] else "")

    return Case(
        "spmm",
        f"{label} k={k} f32",
        make,
        bars={"scipy.sparse": 3.0, "MKL (sparse_dot_mkl)": 1.0},
        info=info,
    )


_GPU_MATS = {}


def _gpu_matrix(label, load):
    """(A, SparseMatrix) per matrix, shared by its cases: the preparation is paid once per
    matrix and mode, as a user who keeps the SparseMatrix pays it."""
    import matkern

    if label not in _GPU_MATS:
        A = load().astype(np.float32)
        A.sort_indices()
        _GPU_MATS.clear()  # keep one matrix on the GPU at a time
        _GPU_MATS[label] = (A, matkern.SparseMatrix(A))
    return _GPU_MATS[label]


def _gpu_case(ctx, label, load, k, dtype):
    import matkern

    cp = ctx.cupy
    name = np.dtype(dtype).name

    def make():
        import cupyx.scipy.sparse as csp

        A, S = _gpu_matrix(label, load)
        B = cp.asarray(np.random.default_rng(k).standard_normal((A.shape[1], k)).astype(dtype))
        S.prepare("cuda", dtype)
        st = S.block_stats()
        out = cp.empty((A.shape[0], k), dtype=dtype)
        fns = {"matkern": lambda: matkern.spmm(S, B, out=out), "_S": S, "_A": A, "_B": B, "_st": st}
        try:  # cuSPARSE in the same dtype where cupyx supports it, else float32
            Ag = csp.csr_matrix(A.astype(dtype))
            Ag @ B
            fns["cupyx (cuSPARSE)"] = lambda: Ag @ B
            fns["_anchor"] = f"cuSPARSE in {name}"
        except Exception as exc:
            Ag32, B32 = csp.csr_matrix(A), B.astype(cp.float32)
            fns["cupyx (cuSPARSE)"] = lambda: Ag32 @ B32
            fns["_anchor"] = f"cuSPARSE in float32 (cupyx {name}: {type(exc).__name__})"
        fns["matkern kernel=csr"] = lambda: matkern.spmm(S, B, kernel="csr")
        if st["fill_ratio"] >= 0.02:  # below that the block layout is >12x the CSR size
            fns["matkern kernel=blocked"] = lambda: matkern.spmm(S, B, kernel="blocked")
        return fns

    def info(fns):
        S, A, B, st = fns["_S"], fns["_A"], fns["_B"], fns["_st"]
        c = min(k, 16)  # error over the first 16 columns keeps the float64 check short
        y = cp.asnumpy(matkern.spmm(S, B))[:, :c].astype(np.float64)
        ref = A.astype(np.float64) @ cp.asnumpy(B[:, :c]).astype(np.float64)
        rel = float(np.linalg.norm(y - ref) / max(np.linalg.norm(ref), 1e-30))
        prep = ", ".join(f"{k_}={v * 1e3:.1f}ms" for k_, v in S.prepare_time_.items())
        return (
            f"{fns['_anchor']}; nnz={A.nnz} kernel={S.kernel_} reorder={st['reorder']} "
            f"blocks={st['n_blocks']} fill={st['fill_ratio']:.3f}; rel. Frobenius error "
            f"{rel:.1e}; preparation {prep}"
        )

    goal = {}
    if k >= 32 and (label.startswith("band") or label.startswith("stencil")):
        goal = {"cupyx (cuSPARSE)": 1.5}
    return Case("spmm", f"{label} k={k} {name}", make, bars=goal, device="cuda", info=info)


def cases(ctx):
    q = ctx.quick
    if ctx.device == "cpu":
        # --quick leaves out the real matrices that repeat another's kind: citeseer (a small
        # citation graph, as cora) and dnn-n1024-l2 (the same layer shape as l1)
        real = [n for n in REAL if not (q and n in ("citeseer", "dnn-n1024-l2"))]
        mats = {n: (lambda n=n: _real(n)) for n in real}
        mats.update(_generated(q))
        for label, load in mats.items():
            for k in (32, 128):
                yield _cpu_case(label, load, k)
    else:
        mats = {n: (lambda n=n: _real(n)) for n in ("pubmed", "ca-CondMat", "dnn-n1024-l1")}
        mats.update(_generated(False, gpu=True))
        for label, load in mats.items():  # cases of one matrix in a row (shared preparation)
            for dtype in (np.float32, np.float16):
                for k in (8, 32, 128, 512):
                    yield _gpu_case(ctx, label, load, k, dtype)
