"""The frame itself: configuration report, dispatch rules and the shared argument checks."""

import numpy as np
import pytest

import matkern
from conftest import simd_level_run
from matkern import _checks, _dispatch


def test_backends_report_has_the_documented_keys():
    b = matkern.backends()
    for key in (
        "version",
        "compiler",
        "simd",
        "avx2_compiled",
        "avx512_compiled",
        "omp_threads",
        "cuda_built",
        "cuda_architectures",
        "gpu_usable",
        "gpu_reason",
        "cupy",
    ):
        assert key in b
    assert b["cpu"] is True
    assert b["simd"] in ("avx512_vnni", "avx2+fma", "portable")
    assert b["omp_threads"] >= 1
    if b["cuda_built"]:
        assert 80 in b["cuda_architectures"] or 90 in b["cuda_architectures"]
    if not b["gpu_usable"]:
        assert b["gpu_reason"]


def test_show_config_prints_every_line(capsys):
    matkern.show_config()
    text = capsys.readouterr().out
    for word in ("matkern", "SIMD", "OpenMP", "CUDA module", "GPU usable"):
        assert word in text


@pytest.mark.parametrize(
    "level,tile,lut",
    [
        ("portable", "portable", "portable"),
        ("avx2", "avx2", "avx2"),
        ("avx512_vnni", "vpdpbusd", "avx512"),
    ],
)
def test_show_config_names_the_int8_tile_and_lut_level(level, tile, lut):
    """backends() names the int8 tile and LUT kernel level that run at each SIMD level (a
    fresh interpreter per level), and show_config prints them."""
    code = (
        "import io, sys, numpy as np, matkern\n"
        "b = matkern.backends(); f = io.StringIO(); matkern.show_config(file=f)\n"
        "t = f.getvalue()\n"
        "ok = f'int8 tile  : {b[\"int8_tile\"]}' in t and f'LUT kernels: {b[\"lut_kernel\"]}' in t\n"
        "np.save(sys.argv[1], np.array([b['int8_tile'], b['lut_kernel'], str(ok)]))\n"
        "print(b['simd'])\n"
    )
    assert simd_level_run(level, code).tolist() == [tile, lut, "True"]


def test_show_config_int8_tile_follows_the_tile_setting(monkeypatch):
    """MATKERN_INT8_TILE=vpdpwssd (read per call) turns the vpdpbusd path off: reported."""
    if matkern.backends()["int8_tile"] != "vpdpbusd":
        pytest.skip("this CPU or build has no AVX-512 VNNI")
    monkeypatch.setenv("MATKERN_INT8_TILE", "vpdpwssd")
    assert matkern.backends()["int8_tile"] == "vpdpwssd"
    assert not _dispatch.cpu().int8_vnni_enabled()


def test_numpy_input_runs_on_cpu_by_default():
    assert _dispatch.pick("f", np.zeros(3)) == "cpu"


def test_backend_argument_is_checked():
    with pytest.raises(ValueError, match="backend must be one of"):
        _dispatch.pick("f", np.zeros(3), backend="tpu")


def test_cuda_backend_on_numpy_input_is_refused_or_unavailable():
    with pytest.raises((ValueError, RuntimeError), match="cuda"):
        _dispatch.pick("f", np.zeros(3), backend="cuda")


def test_missing_gpu_gives_runtime_error_with_reason():
    ok, why = _dispatch.gpu_status()
    if ok:
        pytest.skip("a GPU is usable here")
    with pytest.raises(RuntimeError, match="backend 'cuda' is not available"):
        _dispatch.cuda()


def test_non_array_input_is_a_type_error():
    with pytest.raises(
        TypeError, match="f\\(\\): expected a NumPy or CuPy array, got builtins.list"
    ):
        _dispatch.pick("f", [1, 2, 3])


def test_check_array_messages():
    x = np.zeros((4, 4), np.float32)
    with pytest.raises(TypeError, match=r"g\(\): a must have dtype float64, got float32"):
        _checks.check_array(x, "a", "g", dtypes=(np.float64,))
    with pytest.raises(ValueError, match=r"g\(\): a must be 1-dimensional, got shape \(4, 4\)"):
        _checks.check_array(x, "a", "g", ndim=1)
    with pytest.raises(ValueError, match="must be C-contiguous"):
        _checks.check_array(x[:, ::2], "a", "g")
    with pytest.raises(ValueError, match="must not be empty"):
        _checks.check_array(np.zeros((0, 3)), "a", "g")
    with pytest.raises(ValueError, match="must be finite"):
        _checks.check_array(np.array([1.0, np.nan]), "a", "g", finite=True)
    with pytest.raises(TypeError, match="must be a NumPy or CuPy array"):
        _checks.check_array("x", "a", "g")


def test_check_scalars():
    with pytest.raises(TypeError):
        _checks.check_int(True, "n", "g")
    with pytest.raises(ValueError, match=r"n must be >= 1, got 0"):
        _checks.check_int(0, "n", "g", min_value=1)
    with pytest.raises(ValueError):
        _checks.check_float(float("nan"), "t", "g")
    with pytest.raises(ValueError, match="overflows the 32-bit"):
        _checks.check_index_range(2**31, "nnz", "g")
    with pytest.raises(TypeError, match="random_state"):
        _checks.check_random_state("seed", "g")
    assert _checks.check_random_state(3, "g").integers(1000) == np.random.default_rng(3).integers(
        1000
    )
