// CUDA bindings of the spmm family. B and out are passed untyped (CuPy float32 or float16,
// C order) and their dtype is checked here; the Python layer has validated everything else.
#include "bind_common.hpp"
#include "spmm.hpp"

namespace matkern::cuda {
namespace {

using dany = nb::ndarray<nb::device::cuda, nb::c_contig>;

int io_of(const dany& x, const char* what) {
  const auto dt = x.dtype();
  if (dt.code == uint8_t(nb::dlpack::dtype_code::Float) && dt.lanes == 1) {
    if (dt.bits == 32) return kIoF32;
    if (dt.bits == 16) return kIoF16;
  }
  throw std::invalid_argument(std::string("spmm: ") + what + " must be float32 or float16");
}

void check_2d(const dany& b, const dany& out, int64_t m, int64_t n) {
  if (b.ndim() != 2 || out.ndim() != 2 || int64_t(b.shape(0)) != n || int64_t(out.shape(0)) != m ||
      out.shape(1) != b.shape(1))
    throw std::invalid_argument("spmm: inconsistent shapes");
  if (io_of(b, "B") != io_of(out, "out"))
    throw std::invalid_argument("spmm: B and out must have the same dtype");
}

// Flags travel as raw device addresses (0: none), from a CuPy int32 scalar array.
const int* flag_ptr(std::uintptr_t p) { return reinterpret_cast<const int*>(p); }

void nonfinite(dany b, std::uintptr_t flag, std::uintptr_t stream) {
  if (!flag) throw std::invalid_argument("spmm_nonfinite: null flag");
  spmm_nonfinite_launch(b.data(), int64_t(b.size()), io_of(b, "B"), reinterpret_cast<int*>(flag),
                        stream);
}

template <typename T>
using opt = std::optional<darr<T>>;

// A (m x n) as CSR, float32 values. The row segments (see SpmmCsrSegments) come all or none:
// bounds int64, seg_row, seg_slot and split_rows int32, part float32 scratch of
// len(split_rows) * k; none: one warp per row.
void csr(int64_t n, darr<const int64_t> indptr, darr<const int32_t> indices, darr<const float> data,
         dany b, dany out, std::uintptr_t only_if_bad, std::uintptr_t stream,
         opt<const int64_t> bounds, opt<const int32_t> seg_row, opt<const int32_t> seg_slot,
         opt<const int32_t> split_rows, opt<float> part) {
  const int64_t m = check_csr(indptr, indices, data, "spmm: inconsistent shapes");
  check_2d(b, out, m, n);
  const int io = io_of(b, "B");
  const int64_t k = int64_t(b.shape(1));
  const bool split = bounds || seg_row || seg_slot || split_rows || part;
  SpmmCsrSegments segs;
  if (split) {
    if (!bounds || !seg_row || !seg_slot || !split_rows || !part)
      throw std::invalid_argument("spmm_csr: inconsistent row segments");
    segs.n_seg = int64_t(seg_row->size());
    segs.n_split = int64_t(split_rows->size());
    if (int64_t(bounds->size()) != segs.n_seg + 1 || int64_t(seg_slot->size()) != segs.n_seg ||
        int64_t(part->size()) < segs.n_split * k)
      throw std::invalid_argument("spmm_csr: inconsistent row segments");
    segs.bounds = bounds->data();
    segs.seg_row = seg_row->data();
    segs.seg_slot = seg_slot->data();
    segs.split_rows = split_rows->data();
    segs.part = part->data();
  }
  spmm_csr_launch(m, k, indptr.data(), indices.data(), data.data(), b.data(), out.data(), io,
                  flag_ptr(only_if_bad), split ? &segs : nullptr, stream);
}

// A (m x n) as blocks of 16 x 16 (see spmm_bsr_launch).
void bsr(int64_t m, int64_t n, darr<const int64_t> block_ptr, darr<const int32_t> block_col,
         dany values, int mode, darr<const int32_t> out_rows, dany b, dany out, std::uintptr_t bad,
         std::uintptr_t stream) {
  const int64_t nbr = int64_t(block_ptr.size()) - 1;
  check_2d(b, out, m, n);
  const int io = io_of(b, "B");
  const bool ok = (mode == kModeF16) ? io == kIoF16 : io == kIoF32;
  const size_t vbytes = (mode == kModeTf32) ? 4 : 2;
  if (!ok || values.itemsize() != vbytes || int64_t(out_rows.size()) != nbr * 16 || nbr * 16 < m ||
      values.size() != block_col.size() * 256)
    throw std::invalid_argument("spmm_bsr: inconsistent block layout, mode or dtype");
  spmm_bsr_launch(nbr, n, b.shape(1), block_ptr.data(), block_col.data(), values.data(), mode,
                  out_rows.data(), b.data(), out.data(), flag_ptr(bad), stream);
}

}  // namespace

void bind_spmm(nb::module_& m) {
  m.def("spmm_nonfinite", &nonfinite, kLaunchCall, "b"_a, "flag"_a, "stream"_a);
  m.def("spmm_csr", &csr, kLaunchCall, "n"_a, "indptr"_a, "indices"_a, "data"_a, "b"_a, "out"_a,
        "only_if_bad"_a, "stream"_a, "bounds"_a.none() = nb::none(),
        "seg_row"_a.none() = nb::none(), "seg_slot"_a.none() = nb::none(),
        "split_rows"_a.none() = nb::none(), "part"_a.none() = nb::none());
  m.def("spmm_bsr", &bsr, kLaunchCall, "m"_a, "n"_a, "block_ptr"_a, "block_col"_a, "values"_a,
        "mode"_a, "out_rows"_a, "b"_a, "out"_a, "bad"_a, "stream"_a);
}

}  // namespace matkern::cuda
