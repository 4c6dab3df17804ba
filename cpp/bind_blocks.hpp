// A dense matrix passed as a list of row blocks (its chunks, read in place): the binding-side
// checks and the RowBlocks view the CSR kernels take (spmm.hpp). Shared by the spmm and randproj
// bindings.
#pragma once
#include <nanobind/stl/vector.h>

#include <vector>

#include "bind_common.hpp"
#include "spmm.hpp"

namespace matkern {

template <typename T>
using block_arr = nb::ndarray<const T, nb::device::cpu, nb::ndim<2>>;

// Checks the blocks (at least one, at most 65536; k columns each, rows contiguous; rows adding
// up to n) and keeps their addresses; errors read "<fn>: ...".
template <typename T>
struct BlockList {
  std::vector<const T*> ptr;
  std::vector<int64_t> off, ld;

  BlockList(const std::vector<block_arr<T>>& blocks, int64_t n, int64_t k, const char* fn) {
    const auto fail = [fn](const char* what) {
      throw std::invalid_argument(std::string(fn) + ": " + what);
    };
    if (blocks.empty() || blocks.size() > 65536) fail("1 to 65536 blocks expected");
    off.assign(1, 0);
    for (const auto& blk : blocks) {
      if (int64_t(blk.shape(1)) != k) fail("every block must have the output's column count");
      if (k > 1 && blk.shape(0) > 0 && blk.stride(1) != 1)
        fail("every block's rows must be contiguous");
      ptr.push_back(blk.data());
      ld.push_back(int64_t(blk.stride(0)));
      off.push_back(off.back() + int64_t(blk.shape(0)));
    }
    if (off.back() != n) fail("the blocks' rows must add up to n");
  }
  RowBlocks<T> view() const { return {ptr.data(), off.data(), ld.data(), int64_t(ptr.size())}; }
};

}  // namespace matkern
