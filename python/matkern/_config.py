"""What was built and what can run here: matkern.backends() and matkern.show_config()."""

from __future__ import annotations

import os
import platform

from . import _dispatch


def backends() -> dict:
    """Facts about this build and machine, as a dict.

    Keys: ``version``, ``compiler``, ``simd`` (the widest CPU kernels in use: "avx512_vnni",
    "avx2+fma" or "portable"; at "avx512_vnni" the int8 GEMM and the 4-bit LUT kernels have
    512-bit versions, the other kernels run their AVX2 code), ``int8_tile`` (the int8 GEMM tile that
    runs now: "vpdpbusd", "vpdpwssd" (products of 6 rows or fewer run "avx2"), "avx2" or
    "portable"; MATKERN_SIMD and MATKERN_INT8_TILE=vpdpwssd change it), ``lut_kernel`` (the
    LUT matmul kernels' level: "avx512" for 4-bit weights with groups and K multiples of 64,
    the others "avx2"; or "avx2", "portable"), ``lut_int8_kernel`` (``lut_matmul(...,
    compute="int8")``: "avx512_vnni" for 4-bit weights with groups and K multiples of 128,
    the others "portable"; or "portable"), ``avx2_compiled`` / ``avx512_compiled``,
    ``omp_threads``, ``threads`` (matkern's thread count for this thread, see
    :func:`matkern.get_num_threads`) and ``threads_source`` (where the setting came from),
    ``cpu`` (bool, module importable), ``cuda_built`` (bool), ``cuda_architectures`` (list of
    ints), ``gpu_usable`` (bool) and ``gpu_reason`` (why or why not), ``cupy`` (version or
    None).

    Example
    -------
    >>> import matkern
    >>> matkern.backends()["cpu"]
    True
    """
    from . import __version__

    info = {
        "version": __version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu": _dispatch._cpu is not None,
        "compiler": None,
        "simd": None,
        "int8_tile": None,
        "lut_kernel": None,
        "lut_int8_kernel": None,
        "avx2_compiled": False,
        "avx512_compiled": False,
        "omp_threads": None,
        "threads": None,
        "threads_source": None,
        "cuda_built": _dispatch._cuda is not None,
        "cuda_architectures": [],
        "cuda_compiler": None,
        "gpu_usable": False,
        "gpu_reason": None,
        "cupy": None,
    }
    if _dispatch._cpu is not None:
        c = _dispatch._cpu
        from . import _threads

        info.update(
            compiler=c.compiler(),
            simd=c.simd_level(),
            int8_tile=c.int8_tile(),
            lut_kernel=c.lut_kernel(),
            lut_int8_kernel=c.lut_i8_kernel(),
            avx2_compiled=c.avx2_compiled(),
            avx512_compiled=c.avx512_compiled(),
            omp_threads=c.omp_max_threads(),
            threads=_threads.get_num_threads(),
            threads_source=_threads.thread_setting_source(),
        )
    else:
        info["cpu_error"] = _dispatch._cpu_error
    if _dispatch._cuda is not None:
        arch = _dispatch._cuda.architectures()
        info["cuda_architectures"] = [int(a.split("-")[0]) for a in arch.split(",") if a]
        info["cuda_compiler"] = "nvcc " + _dispatch._cuda.nvcc_version()
    ok, why = _dispatch.gpu_status()
    info["gpu_usable"], info["gpu_reason"] = ok, why
    try:
        info["cupy"] = _dispatch.cupy_module().__version__
    except RuntimeError:
        pass
    return info


_INT8_NOTES = {
    "vpdpbusd": " (AVX-512 VNNI, u8 x s8 layout)",
    "vpdpwssd": " (AVX-512 VNNI on int16 pairs, > 6 rows; fewer: avx2)",
}
_LUT_NOTES = {"avx512": " (4-bit, groups and K multiples of 64; other weights: avx2)"}
_LUT_I8_NOTES = {"avx512_vnni": " (4-bit, groups and K multiples of 128; others: portable)"}


def show_config(file=None) -> None:
    """Print :func:`backends` as a short report: version, compiler, SIMD level, the int8 tile
    and LUT kernel level that run, OpenMP threads, CUDA build and architectures, and whether a GPU is usable now (and why not).

    Example
    -------
    >>> import matkern
    >>> matkern.show_config()  # doctest: +SKIP
    matkern 0.1.0 ...
    """
    b = backends()
    lines = [
        f"matkern {b['version']} (Python {b['python']}, {b['machine']})",
        f"  CPU module : {'yes' if b['cpu'] else 'NO: ' + b.get('cpu_error', '')}",
        f"  compiler   : {b['compiler']}",
        f"  SIMD       : {b['simd']} (AVX2 kernels compiled: {b['avx2_compiled']};"
        f" AVX-512 VNNI: {b['avx512_compiled']};"
        f" MATKERN_SIMD={os.environ.get('MATKERN_SIMD', '') or 'unset'})",
        f"  int8 tile  : {b['int8_tile']}{_INT8_NOTES.get(b['int8_tile'], '')}",
        f"  LUT kernels: {b['lut_kernel']}{_LUT_NOTES.get(b['lut_kernel'], '')}",
        f"  LUT int8 X : {b['lut_int8_kernel']}{_LUT_I8_NOTES.get(b['lut_int8_kernel'], '')}",
        f"  threads    : {b['threads']} (from {b['threads_source']}; OpenMP's own limit"
        f" {b['omp_threads']})",
        f"  CUDA module: {'yes, ' + b['cuda_compiler'] if b['cuda_built'] else 'not built'}",
        f"  CUDA archs : {', '.join('sm_%d' % a for a in b['cuda_architectures']) or '-'}",
        f"  GPU usable : {'yes' if b['gpu_usable'] else 'no'} ({b['gpu_reason']})",
        f"  CuPy       : {b['cupy'] or 'not importable'}",
    ]
    print("\n".join(lines), file=file)
