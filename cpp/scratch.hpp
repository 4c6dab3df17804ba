// Scratch buffers for chunks that run on the helper pool (parallel.hpp). A chunk does not
// know which thread runs it, so its buffers live with the OS thread, one per tag, reused by
// that thread's next chunk and next call, instead of one per chunk: a vector of 128 KiB or
// more per chunk is a fresh mmap and its page faults every time. Contents are whatever the
// thread's last use left; callers initialise what they read.
#pragma once

#include <cstddef>
#include <vector>

namespace matkern {

template <typename Tag, typename T>
T* thread_scratch(size_t n) {
  thread_local std::vector<T> buf;
  if (buf.size() < n) buf.resize(n);
  return buf.data();
}

}  // namespace matkern
