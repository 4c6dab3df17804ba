// Rows [i0, i1) of the fused LSQR pass (sketch.hpp: dense_lsqr_pass) into zp (r x n, zeroed
// here). Included by sketch_lsqr.cpp (portable) and sketch_lsqr_avx2.cpp, each inside its own
// namespace and after its own dots<R>(rows, t, n, out) (out[q] = rows[q] . t) and
// axpys<R>(rows, d, n, z) (z += sum_q d[q] rows[q]): one loop structure, each copy compiled
// with its file's flags.
template <typename T>
void lsqr_rows(const T* a, int64_t i0, int64_t i1, int64_t n, const double* t, int64_t r,
               const double* w, const double* c, double* y, double* zp) {
  for (int64_t j = 0; j < r * n; ++j) zp[j] = 0.0;
  constexpr int R = 4;  // rows whose updates of z share one load and store of z
  int64_t i = i0;
  for (; i + R <= i1; i += R) {
    const T* rows[R];
    for (int q = 0; q < R; ++q) rows[q] = a + (i + q) * n;
    for (int64_t k = 0; k < r; ++k) {
      double d[R];
      dots<R>(rows, t + k * n, n, d);
      for (int q = 0; q < R; ++q) {
        d[q] += c[k] * w[(i + q) * r + k];
        y[(i + q) * r + k] = d[q];
      }
      axpys<R>(rows, d, n, zp + k * n);
    }
  }
  for (; i < i1; ++i) {
    const T* row = a + i * n;
    for (int64_t k = 0; k < r; ++k) {
      double d;
      dots<1>(&row, t + k * n, n, &d);
      d += c[k] * w[i * r + k];
      y[i * r + k] = d;
      axpys<1>(&row, &d, n, zp + k * n);
    }
  }
}
