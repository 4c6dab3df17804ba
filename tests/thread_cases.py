"""One call of every CPU kernel route that runs in parallel, on fixed inputs: the results
must be bit-identical whatever the thread count (tests/test_threads.py compares 1, 2 and 16
threads, the last in a subprocess with OMP_NUM_THREADS=16). Run as a script, it saves them to
the .npz file named by its argument."""

import sys

import numpy as np
import scipy.sparse as sp

import matkern


def kernel_results():
    rng = np.random.default_rng(0)
    A = sp.random(3000, 500, density=0.02, format="csr", random_state=1, dtype=np.float32)
    B = rng.standard_normal((500, 64)).astype(np.float32)
    X = rng.standard_normal((64, 1024)).astype(np.float32)
    W = rng.standard_normal((512, 1024)).astype(np.float32)
    qlut = matkern.lut_quantize(W)
    big = rng.standard_normal((600, 530)).astype(np.float32)  # the chunked float32 SYRK
    conv = rng.standard_normal((16, 12, 3, 3)).astype(np.float32)
    D = sp.random(400, 300, density=0.05, format="csr", random_state=2, dtype=np.float64)
    Xr, Wr = X[:, :384] * np.float32(0.1), W[:64, :384]
    rot = matkern.HadamardRotation(384, random_state=0)
    return {
        "spmm": matkern.spmm(A, B),
        "fwht": matkern.fwht(X),
        "fwht_long": matkern.fwht(rng.standard_normal(1 << 18)),
        "int8": matkern.int8_matmul(X, matkern.int8_quantize(W)),
        "lut_gemv": matkern.lut_matmul(X[:1], qlut),
        "lut_blocked": matkern.lut_matmul(X[:16], qlut),
        "lut_wide": matkern.lut_matmul(X, qlut),
        "gram": np.array([matkern.spectral_norm_bound(W[:, :512].copy())]),
        "gram_batch": matkern.spectral_norm_bound(W.reshape(64, 64, 128)),
        "gram_syrk": np.array([matkern.spectral_norm_bound(big)]),
        "gram_conv": np.array([matkern.conv_spectral_norm_bound(conv, (16, 16))]),
        "srp": matkern.SparseRandomProjection(32, random_state=0).fit_transform(X),
        "srp_sparse": matkern.SparseRandomProjection(
            32, random_state=0, dense_output=True
        ).fit_transform(A),
        "srp_csr": matkern.SparseRandomProjection(32, random_state=0).fit_transform(A).toarray(),
        "fjlt": matkern.FJLT(32, random_state=0).fit_transform(X),
        "fastrp": matkern.fastrp(sp.csr_matrix(A[:, :500][:500]), dim=16, random_state=0),
        "svd": matkern.TruncatedSVD(8, random_state=0).fit(D).singular_values_,
        # the fused rotate + quantize routes (m = 12: 384) and the m * 2^k FJLT
        "int8_rotated": matkern.int8_matmul(Xr, matkern.int8_quantize(Wr, rotation=rot)),
        "lut_rotated": matkern.lut_matmul(Xr, matkern.lut_quantize(Wr, rotation=rot)),
        "fjlt_mixed": matkern.FJLT(16, random_state=0, padding="hadamard").fit_transform(Xr),
    }


if __name__ == "__main__":
    np.savez(sys.argv[1], **kernel_results())
