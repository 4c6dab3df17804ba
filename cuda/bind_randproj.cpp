// CUDA bindings of the randproj family (device arrays, CuPy's stream as an integer).
#include "bind_common.hpp"
#include "randproj.hpp"

namespace matkern::cuda {
namespace {

void count(uint64_t seed_key, darr<const uint64_t> table, int64_t k, int64_t j0,
           darr<int64_t> counts, std::uintptr_t stream) {
  if (int64_t(table.size()) != k + 1) throw std::invalid_argument("rp_count: table size");
  const uint64_t* t = table.data();
  int64_t* c = counts.data();
  const int64_t nr = int64_t(counts.size());
  nb::gil_scoped_release release;
  rp_count(seed_key, t, k, j0, nr, c, stream);
}

void fill(uint64_t seed_key, darr<const uint64_t> table, int64_t k, int64_t j0,
          darr<const int64_t> indptr, darr<int32_t> comps, darr<int8_t> negs,
          std::uintptr_t stream) {
  if (int64_t(table.size()) != k + 1 || indptr.size() < 1 || comps.size() != negs.size())
    throw std::invalid_argument("rp_fill: inconsistent sizes");
  const uint64_t* t = table.data();
  const int64_t* ip = indptr.data();
  int32_t* cp = comps.data();
  int8_t* np_ = negs.data();
  const int64_t nr = int64_t(indptr.size()) - 1;
  nb::gil_scoped_release release;
  rp_fill(seed_key, t, k, j0, nr, ip, cp, np_, stream);
}

template <typename T>
void dense(darr<const T> x, darr<const int64_t> cptr, darr<const int32_t> cols,
           darr<const int8_t> negs, int64_t j0, darr<T> out, std::uintptr_t stream) {
  const int64_t n = x.shape(0), d = x.shape(1), k = out.shape(1);
  if (int64_t(out.shape(0)) != n || int64_t(cptr.size()) != k + 1 || cols.size() != negs.size())
    throw std::invalid_argument("rp_dense_accumulate: inconsistent sizes");
  const T* xp = x.data();
  const int64_t* cp = cptr.data();
  const int32_t* jp = cols.data();
  const int8_t* ng = negs.data();
  T* op = out.data();
  nb::gil_scoped_release release;
  rp_dense_accumulate(xp, n, d, cp, jp, ng, j0, k, op, stream);
}

template <typename T>
void sparse(darr<const int64_t> xptr, darr<const int32_t> xidx, darr<const T> xval,
            darr<const T> colscale, darr<const int64_t> rptr, darr<const int32_t> comps,
            darr<const int8_t> negs, int64_t j0, int64_t j1, darr<T> out, std::uintptr_t stream) {
  const int64_t n = out.shape(0), k = out.shape(1);
  if (int64_t(xptr.size()) != n + 1 || xidx.size() != xval.size() ||
      int64_t(rptr.size()) != j1 - j0 + 1 || comps.size() != negs.size())
    throw std::invalid_argument("rp_sparse_accumulate: inconsistent sizes");
  const int64_t* xp = xptr.data();
  const int32_t* xi = xidx.data();
  const T* xv = xval.data();
  const T* cs = colscale.size() ? colscale.data() : nullptr;
  const int64_t* rp = rptr.data();
  const int32_t* cp = comps.data();
  const int8_t* ng = negs.data();
  T* op = out.data();
  nb::gil_scoped_release release;
  rp_sparse_accumulate(xp, xi, xv, n, cs, rp, cp, ng, j0, j1, k, op, stream);
}

template <typename T>
void spmm(darr<const int64_t> indptr, darr<const int32_t> indices, darr<const T> data,
          darr<const T> rowscale, darr<const T> b, darr<T> out, std::uintptr_t stream) {
  const int64_t n = out.shape(0), k = out.shape(1);
  if (int64_t(indptr.size()) != n + 1 || indices.size() != data.size() ||
      int64_t(b.shape(1)) != k || (rowscale.size() != 0 && int64_t(rowscale.size()) != n))
    throw std::invalid_argument("rp_csr_spmm: inconsistent sizes");
  const int64_t* ip = indptr.data();
  const int32_t* ix = indices.data();
  const T* v = data.data();
  const T* rs = rowscale.size() ? rowscale.data() : nullptr;
  const T* bp = b.data();
  T* op = out.data();
  nb::gil_scoped_release release;
  rp_csr_spmm(ip, ix, v, n, rs, bp, k, op, stream);
}

}  // namespace

void bind_randproj(nb::module_& m) {
  m.def("rp_count", &count);
  m.def("rp_fill", &fill);
  m.def("rp_dense_accumulate", &dense<float>);
  m.def("rp_dense_accumulate", &dense<double>);
  m.def("rp_sparse_accumulate", &sparse<float>);
  m.def("rp_sparse_accumulate", &sparse<double>);
  m.def("rp_csr_spmm", &spmm<float>);
  m.def("rp_csr_spmm", &spmm<double>);
}

}  // namespace matkern::cuda
