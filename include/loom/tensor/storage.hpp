// loom/tensor/storage.hpp: 64-byte aligned heap storage for owning tensors.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <string>
#include <utility>

#include "loom/core/error.hpp"

namespace loom {
namespace detail {

/// Alignment of every tensor's first element: one cache line, one AVX-512 vector.
inline constexpr std::size_t tensor_alignment = 64;

/// Multiplies extents, throwing shape_error where the product (or its size in bytes) overflows.
inline std::size_t checked_size(const std::size_t* e, std::size_t rank, std::size_t elem_bytes) {
  std::size_t n = 1;
  for (std::size_t k = 0; k < rank; ++k) {
    if (e[k] != 0 && n > std::numeric_limits<std::size_t>::max() / e[k]) {
      std::string s;
      for (std::size_t j = 0; j < rank; ++j) s += (j ? ", " : "") + std::to_string(e[j]);
      throw shape_error("loom: the number of elements of shape [" + s + "] overflows 64 bits");
    }
    n *= e[k];
  }
  for (std::size_t k = 0; k < rank; ++k)
    if (e[k] == 0) return 0;
  if (n > (std::numeric_limits<std::size_t>::max() / 2) / elem_bytes) {
    std::string s;
    for (std::size_t j = 0; j < rank; ++j) s += (j ? ", " : "") + std::to_string(e[j]);
    throw shape_error("loom: a tensor of shape [" + s + "] needs more bytes than can be addressed");
  }
  return n;
}

/// Owning, aligned, uninitialised array of n elements of T (trivial element types only).
template <class T>
class aligned_buffer {
 public:
  aligned_buffer() = default;
  explicit aligned_buffer(std::size_t n) : n_(n) {
    if (n == 0) return;
    std::size_t bytes = (n * sizeof(T) + tensor_alignment - 1) / tensor_alignment * tensor_alignment;
    p_ = static_cast<T*>(std::aligned_alloc(tensor_alignment, bytes));
    if (!p_) throw std::bad_alloc();
  }
  aligned_buffer(aligned_buffer&& o) noexcept : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
  aligned_buffer& operator=(aligned_buffer&& o) noexcept {
    if (this != &o) {
      std::free(p_);
      p_ = std::exchange(o.p_, nullptr);
      n_ = std::exchange(o.n_, 0);
    }
    return *this;
  }
  aligned_buffer(const aligned_buffer&) = delete;
  aligned_buffer& operator=(const aligned_buffer&) = delete;
  ~aligned_buffer() { std::free(p_); }

  T* data() noexcept { return p_; }
  const T* data() const noexcept { return p_; }
  std::size_t size() const noexcept { return n_; }
  void swap(aligned_buffer& o) noexcept {
    std::swap(p_, o.p_);
    std::swap(n_, o.n_);
  }

 private:
  T* p_ = nullptr;
  std::size_t n_ = 0;
};

}  // namespace detail
}  // namespace loom
