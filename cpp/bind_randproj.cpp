// Bindings of the randproj family: generator rows, fused projections, FastRP graph products.
#include "bind_blocks.hpp"
#include "bind_common.hpp"
#include "randproj.hpp"

#include <cstdlib>
#include <new>

namespace matkern {
namespace {

void check_table(const carr<const uint64_t>& table, int64_t k) {
  if (int64_t(table.size()) != k + 1)
    throw std::invalid_argument("randproj: table must have k+1 entries");
}

void count(uint64_t seed_key, carr<const uint64_t> table, int64_t k, int64_t j0,
           carr<int64_t> counts) {
  check_table(table, k);
  rp::count(seed_key, table.data(), k, j0, int64_t(counts.size()), counts.data());
}

// Fills the rows of R (as CSR: indptr given, comps and negs written).
void fill(uint64_t seed_key, carr<const uint64_t> table, int64_t k, int64_t j0,
          carr<const int64_t> indptr, carr<int32_t> comps, carr<int8_t> negs) {
  check_table(table, k);
  const Csr r = check_csr(indptr, comps, negs, "rp_fill: inconsistent sizes");
  if (r.end() != r.nnz) throw std::invalid_argument("rp_fill: inconsistent sizes");
  rp::fill(seed_key, table.data(), k, j0, r.rows, r.indptr, comps.data(), negs.data());
}

template <typename T>
void dense(carr<const T> x, uint64_t seed_key, carr<const uint64_t> table, double scale,
           carr<T> out) {
  const int64_t n = x.shape(0), d = x.shape(1), k = out.shape(1);
  check_table(table, k);
  if (int64_t(out.shape(0)) != n) throw std::invalid_argument("rp_dense: out rows");
  rp::dense<T>(x.data(), n, d, seed_key, table.data(), k, scale, out.data());
}

// out = scale * diag(rowscale) X diag(colscale) R, X (n x d) as CSR; no scale when None.
template <typename T>
void sparse(carr<const int64_t> indptr, carr<const int32_t> indices, carr<const T> data, int64_t d,
            std::optional<carr<const T>> rowscale, std::optional<carr<const T>> colscale,
            uint64_t seed_key, carr<const uint64_t> table, double scale, carr<T> out) {
  const int64_t n = out.shape(0), k = out.shape(1);
  check_table(table, k);
  const char* error = "rp_sparse: inconsistent sizes";
  const Csr x = check_csr(indptr, indices, data, n, error);
  if (x.end() != x.nnz || (rowscale && int64_t(rowscale->size()) != n) ||
      (colscale && int64_t(colscale->size()) != d))
    throw std::invalid_argument(error);
  rp::sparse<T>(x.indptr, x.indices, data.data(), n, d, data_or_null(rowscale),
                data_or_null(colscale), seed_key, table.data(), k, scale, out.data());
}

// rp_sparse with R's rows given (ptr d + 1, comp in [0, k), val): every index is checked,
// since the kernel writes out[i][comp] and reads ptr[indices].
template <typename T>
void sparse_given(carr<const int64_t> indptr, carr<const int32_t> indices, carr<const T> data,
                  std::optional<carr<const T>> rowscale, std::optional<carr<const T>> colscale,
                  carr<const int64_t> ptr, carr<const int32_t> comp, carr<const float> val,
                  double scale, carr<T> out) {
  const int64_t n = out.shape(0), k = out.shape(1);
  const char* error = "rp_sparse_given: inconsistent sizes";
  const Csr x = check_csr(indptr, indices, data, error);
  const Csr r = check_csr(ptr, comp, val, error);
  if (out.ndim() != 2 || x.rows != n || (rowscale && int64_t(rowscale->size()) != n) ||
      (colscale && int64_t(colscale->size()) != r.rows))
    throw std::invalid_argument(error);
  x.check_structure("rp_sparse_given (X)", r.rows);
  r.check_structure("rp_sparse_given (R)", k);
  rp::sparse_given<T>(x.indptr, x.indices, data.data(), n, data_or_null(rowscale),
                      data_or_null(colscale), r.indptr, r.indices, val.data(), k, scale,
                      out.data());
}

// malloc'd memory handed to NumPy: the array frees it when it goes.
template <typename T>
nb::ndarray<nb::numpy, T, nb::ndim<1>> owned_array(T* p, int64_t size) {
  nb::capsule owner(p, [](void* q) noexcept { std::free(q); });
  return nb::ndarray<nb::numpy, T, nb::ndim<1>>(p, {size_t(size)}, owner);
}

// rp_sparse (no row or column scale) returning CSR (indptr int64, indices int32, data T)
// with explicit zeros dropped. Not under kKernelCall: the result's size is known only after
// the kernel, and its NumPy arrays are made with the GIL held, after the KernelScope.
template <typename T>
nb::tuple sparse_csr(carr<const int64_t> indptr, carr<const int32_t> indices, carr<const T> data,
                     int64_t d, int64_t k, uint64_t seed_key, carr<const uint64_t> table,
                     double scale) {
  check_table(table, k);
  const char* error = "rp_sparse_csr: inconsistent sizes";
  const Csr x = check_csr(indptr, indices, data, error);
  if (x.end() != x.nnz || k < 1 || d < 1) throw std::invalid_argument(error);
  const int64_t n = x.rows;
  auto* out_indptr = static_cast<int64_t*>(std::malloc(sizeof(int64_t) * (n + 1)));
  if (!out_indptr) throw std::bad_alloc();
  int32_t* out_indices = nullptr;
  T* out_data = nullptr;
  int64_t nnz = 0;
  try {
    KernelScope scope;
    nnz = rp::sparse_csr<T>(x.indptr, x.indices, data.data(), n, d, seed_key, table.data(), k,
                            scale, out_indptr, &out_indices, &out_data);
  } catch (...) {
    std::free(out_indptr);
    throw;
  }
  auto a = owned_array(out_indptr, n + 1);
  auto b = owned_array(out_indices, nnz);
  auto c = owned_array(out_data, nnz);
  return nb::make_tuple(a, b, c);
}

template <typename T>
void accumulate(carr<const T> u, double weight, bool l2, carr<T> emb,
                std::optional<carr<const T>> base) {
  if (u.shape(0) != emb.shape(0) || u.shape(1) != emb.shape(1))
    throw std::invalid_argument("accumulate_rows: shapes differ");
  if (base && (base->shape(0) != emb.shape(0) || base->shape(1) != emb.shape(1)))
    throw std::invalid_argument("accumulate_rows: base's shape differs");
  rp::accumulate<T>(u.data(), u.shape(0), u.shape(1), weight, l2, emb.data(),
                    base ? base->data() : nullptr);
}

// One FastRP hop of a row block (rp::hop): the previous iterate as its row blocks, read in
// place; emb (the block's embedding after the hop) written from base (or added to when base is
// None); u_out (the block's new iterate) written when given.
template <typename T>
void hop(int64_t n, carr<const int64_t> indptr, carr<const int32_t> indices, carr<const T> data,
         std::vector<block_arr<T>> blocks, double weight, bool l2, carr<T> emb,
         std::optional<carr<const T>> base, std::optional<carr<T>> u_out) {
  const char* shapes = "rp_hop: inconsistent shapes";
  const Csr a = check_csr(indptr, indices, data, shapes);
  if (emb.ndim() != 2 || int64_t(emb.shape(0)) != a.rows) throw std::invalid_argument(shapes);
  const int64_t k = int64_t(emb.shape(1));
  const auto same = [&](const auto& o) {
    return o.ndim() == 2 && o.shape(0) == emb.shape(0) && o.shape(1) == emb.shape(1);
  };
  if ((base && !same(*base)) || (u_out && !same(*u_out))) throw std::invalid_argument(shapes);
  const BlockList<T> b(blocks, n, k, "rp_hop");
  if (a.rows > 0 && a.end() > a.nnz)
    throw std::invalid_argument("rp_hop: indptr points past the indices");
  rp::hop<T>(a.rows, k, a.indptr, a.indices, data.data(), b.view(), weight, l2, emb.data(),
             base ? base->data() : nullptr, u_out ? u_out->data() : nullptr);
}

template <typename T>
void def_typed(nb::module_& m) {
  m.def("rp_hop", &hop<T>, kKernelCall, "n"_a, "indptr"_a, "indices"_a, "data"_a, "blocks"_a,
        "weight"_a, "l2"_a, "emb"_a, "base"_a.none() = nb::none(), "u_out"_a.none() = nb::none());
  m.def("rp_dense", &dense<T>, kKernelCall, "x"_a, "seed_key"_a, "table"_a, "scale"_a, "out"_a);
  m.def("rp_sparse", &sparse<T>, kKernelCall, "indptr"_a, "indices"_a, "data"_a, "d"_a,
        "rowscale"_a.none(), "colscale"_a.none(), "seed_key"_a, "table"_a, "scale"_a, "out"_a);
  m.def("rp_sparse_given", &sparse_given<T>, kKernelCall, "indptr"_a, "indices"_a, "data"_a,
        "rowscale"_a.none(), "colscale"_a.none(), "ptr"_a, "comp"_a, "val"_a, "scale"_a, "out"_a);
  m.def("rp_accumulate", &accumulate<T>, kKernelCall, "u"_a, "weight"_a, "l2"_a, "emb"_a,
        "base"_a.none() = nb::none());
  m.def("rp_sparse_csr", &sparse_csr<T>, "indptr"_a, "indices"_a, "data"_a, "d"_a, "k"_a,
        "seed_key"_a, "table"_a, "scale"_a);
}

}  // namespace

void bind_randproj(nb::module_& m) {
  m.def("rp_count", &count, kKernelCall, "seed_key"_a, "table"_a, "k"_a, "j0"_a, "counts"_a);
  m.def("rp_fill", &fill, kKernelCall, "seed_key"_a, "table"_a, "k"_a, "j0"_a, "indptr"_a,
        "comps"_a, "negs"_a);
  def_typed<float>(m);
  def_typed<double>(m);
}

}  // namespace matkern
