// CUDA bindings of the spmm family. B and out are passed untyped (CuPy float32 or float16,
// C order) and their dtype is checked here; the Python layer has validated everything else.
#include <stdexcept>

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
  if (b.ndim() != 2 || out.ndim() != 2 || int64_t(b.shape(0)) != n ||
      int64_t(out.shape(0)) != m || out.shape(1) != b.shape(1))
    throw std::invalid_argument("spmm: inconsistent shapes");
  if (io_of(b, "B") != io_of(out, "out"))
    throw std::invalid_argument("spmm: B and out must have the same dtype");
}

// Flags travel as raw device addresses (0: none), from a CuPy int32 scalar array.
const int* flag_ptr(std::uintptr_t p) { return reinterpret_cast<const int*>(p); }

void nonfinite(dany b, std::uintptr_t flag, std::uintptr_t stream) {
  if (!flag) throw std::invalid_argument("spmm_nonfinite: null flag");
  const int io = io_of(b, "B");
  const void* bp = b.data();
  const int64_t count = int64_t(b.size());
  nb::gil_scoped_release release;
  spmm_nonfinite_launch(bp, count, io, reinterpret_cast<int*>(flag), stream);
}

void csr(int64_t n, darr<const int64_t> indptr, darr<const int32_t> indices,
         darr<const float> data, dany b, dany out, std::uintptr_t only_if_bad,
         std::uintptr_t stream) {
  const int64_t m = int64_t(indptr.size()) - 1;
  check_2d(b, out, m, n);
  const int io = io_of(b, "B");
  const int64_t k = int64_t(b.shape(1));
  const int64_t* ip = indptr.data();
  const int32_t* jp = indices.data();
  const float* dp = data.data();
  const void* bp = b.data();
  void* op = out.data();
  nb::gil_scoped_release release;
  spmm_csr_launch(m, k, ip, jp, dp, bp, op, io, flag_ptr(only_if_bad), stream);
}

void bsr(int64_t m, int64_t n, darr<const int64_t> block_ptr, darr<const int32_t> block_col,
         dany values, int mode, darr<const int32_t> out_rows, dany b, dany out,
         std::uintptr_t bad, std::uintptr_t stream) {
  const int64_t nbr = int64_t(block_ptr.size()) - 1;
  check_2d(b, out, m, n);
  const int io = io_of(b, "B");
  const bool ok = (mode == kModeF16) ? io == kIoF16 : io == kIoF32;
  const size_t vbytes = (mode == kModeTf32) ? 4 : 2;
  if (!ok || values.itemsize() != vbytes || int64_t(out_rows.size()) != nbr * 16 ||
      nbr * 16 < m || values.size() != block_col.size() * 256)
    throw std::invalid_argument("spmm_bsr: inconsistent block layout, mode or dtype");
  const int64_t k = int64_t(b.shape(1));
  const int64_t* bp_ = block_ptr.data();
  const int32_t* bc = block_col.data();
  const void* vp = values.data();
  const int32_t* orp = out_rows.data();
  const void* bp = b.data();
  void* op = out.data();
  nb::gil_scoped_release release;
  spmm_bsr_launch(nbr, n, k, bp_, bc, vp, mode, orp, bp, op, flag_ptr(bad), stream);
}

}  // namespace

void bind_spmm(nb::module_& m) {
  m.def("spmm_nonfinite", &nonfinite);
  m.def("spmm_csr", &csr);
  m.def("spmm_bsr", &bsr);
}

}  // namespace matkern::cuda
