// loom/cpu/gemm/workspace.hpp: the per-thread packing and accumulation buffers of the GEMM.
//
// Every thread that runs a part of a product keeps its buffers from one call to the next (they
// only grow), so a call of a small product allocates nothing. A call made while the thread's
// workspace is already in use (a source or an epilogue that itself multiplies) gets a fresh one.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <new>

#include "loom/core/config.hpp"

namespace loom::cpu::gemm {

/// A growable 64-byte aligned buffer of bytes.
class aligned_buffer {
 public:
  aligned_buffer() = default;
  aligned_buffer(const aligned_buffer&) = delete;
  aligned_buffer& operator=(const aligned_buffer&) = delete;
  ~aligned_buffer() { release(); }

  /// Room for n elements of T, 64-byte aligned; the contents are unspecified.
  template <class T>
  T* get(index_t n) {
    std::size_t bytes = std::size_t(n) * sizeof(T) + 64;  // slack: vector tails may touch it
    if (bytes > size_) {
      release();
      std::size_t grown = std::max(bytes, size_ + size_ / 2);
      data_ = static_cast<std::byte*>(::operator new(grown, std::align_val_t(64)));
      size_ = grown;
    }
    return reinterpret_cast<T*>(data_);
  }

 private:
  void release() {
    if (data_) ::operator delete(data_, std::align_val_t(64));
    data_ = nullptr;
    size_ = 0;
  }
  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

/// The buffers one thread uses during one product.
struct workspace {
  aligned_buffer a;        ///< packed A block (mc x kc)
  aligned_buffer b;        ///< packed B block (kc x nc)
  aligned_buffer c;        ///< partial sums between passes over K (mo x nc)
  aligned_buffer staging;  ///< rows read from a row-run source before they are interleaved
  bool busy = false;
};

/// Holds the calling thread's workspace for the duration of a product.
class workspace_lease {
 public:
  workspace_lease() {
    workspace& w = local();
    if (!w.busy) {
      ws_ = &w;
    } else {
      owned_ = new workspace;
      ws_ = owned_;
    }
    ws_->busy = true;
  }
  ~workspace_lease() {
    ws_->busy = false;
    delete owned_;
  }
  workspace_lease(const workspace_lease&) = delete;
  workspace_lease& operator=(const workspace_lease&) = delete;

  workspace& operator*() const { return *ws_; }
  workspace* operator->() const { return ws_; }

 private:
  static workspace& local() {
    thread_local workspace w;
    return w;
  }
  workspace* ws_ = nullptr;
  workspace* owned_ = nullptr;
};

}  // namespace loom::cpu::gemm
