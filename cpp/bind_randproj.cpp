// Bindings of the randproj family: generator rows, fused projections, FastRP graph products.
#include "bind_common.hpp"
#include "threads.hpp"
#include "randproj.hpp"

namespace matkern {
namespace {

void check_table(const carr<const uint64_t>& table, int64_t k) {
  if (int64_t(table.size()) != k + 1) throw std::invalid_argument("randproj: table must have k+1 entries");
}

void count(uint64_t seed_key, carr<const uint64_t> table, int64_t k, int64_t j0,
           carr<int64_t> counts) {
  check_table(table, k);
  const uint64_t* t = table.data();
  int64_t* c = counts.data();
  const int64_t nr = int64_t(counts.size());
  KernelScope scope;  // GIL released, threads taken from the budget
  rp::count(seed_key, t, k, j0, nr, c);
}

void fill(uint64_t seed_key, carr<const uint64_t> table, int64_t k, int64_t j0,
          carr<const int64_t> indptr, carr<int32_t> comps, carr<int8_t> negs) {
  check_table(table, k);
  const int64_t nr = int64_t(indptr.size()) - 1;
  if (nr < 0 || indptr.data()[nr] != int64_t(comps.size()) || comps.size() != negs.size())
    throw std::invalid_argument("rp_fill: inconsistent sizes");
  const uint64_t* t = table.data();
  const int64_t* ip = indptr.data();
  int32_t* cp = comps.data();
  int8_t* np_ = negs.data();
  KernelScope scope;  // GIL released, threads taken from the budget
  rp::fill(seed_key, t, k, j0, nr, ip, cp, np_);
}

template <typename T>
void dense(carr<const T> x, uint64_t seed_key, carr<const uint64_t> table, double scale,
           carr<T> out) {
  const int64_t n = x.shape(0), d = x.shape(1), k = out.shape(1);
  check_table(table, k);
  if (int64_t(out.shape(0)) != n) throw std::invalid_argument("rp_dense: out rows");
  const T* xp = x.data();
  const uint64_t* t = table.data();
  T* op = out.data();
  KernelScope scope;  // GIL released, threads taken from the budget
  rp::dense<T>(xp, n, d, seed_key, t, k, scale, op);
}

template <typename T>
void sparse(carr<const int64_t> indptr, carr<const int32_t> indices, carr<const T> data, int64_t d,
            carr<const T> rowscale, carr<const T> colscale, uint64_t seed_key,
            carr<const uint64_t> table, double scale, carr<T> out) {
  const int64_t n = out.shape(0), k = out.shape(1);
  check_table(table, k);
  if (int64_t(indptr.size()) != n + 1 || indices.size() != data.size() ||
      indptr.data()[n] != int64_t(data.size()) ||
      (rowscale.size() != 0 && int64_t(rowscale.size()) != n) ||
      (colscale.size() != 0 && int64_t(colscale.size()) != d))
    throw std::invalid_argument("rp_sparse: inconsistent sizes");
  const int64_t* ip = indptr.data();
  const int32_t* ix = indices.data();
  const T* v = data.data();
  const T* rs = rowscale.size() ? rowscale.data() : nullptr;
  const T* cs = colscale.size() ? colscale.data() : nullptr;
  const uint64_t* t = table.data();
  T* op = out.data();
  KernelScope scope;  // GIL released, threads taken from the budget
  rp::sparse<T>(ip, ix, v, n, d, rs, cs, seed_key, t, k, scale, op);
}

template <typename T>
void accumulate(carr<const T> u, double weight, bool l2, carr<T> emb) {
  if (u.shape(0) != emb.shape(0) || u.shape(1) != emb.shape(1))
    throw std::invalid_argument("accumulate_rows: shapes differ");
  const int64_t n = u.shape(0), k = u.shape(1);
  const T* up = u.data();
  T* ep = emb.data();
  KernelScope scope;  // GIL released, threads taken from the budget
  rp::accumulate<T>(up, n, k, weight, l2, ep);
}

}  // namespace

void bind_randproj(nb::module_& m) {
  m.def("rp_count", &count);
  m.def("rp_fill", &fill);
  m.def("rp_dense", &dense<float>);
  m.def("rp_dense", &dense<double>);
  m.def("rp_sparse", &sparse<float>);
  m.def("rp_sparse", &sparse<double>);
  m.def("rp_accumulate", &accumulate<float>);
  m.def("rp_accumulate", &accumulate<double>);
}

}  // namespace matkern
