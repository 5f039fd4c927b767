// What the GPU tests share: skipping visibly without a device, and moving tensors to the device
// and back.
#pragma once

#include <loom/cuda.hpp>
#include <loom/loom.hpp>

/// Returns from the test with a visible message where no CUDA device is available.
#define LOOM_REQUIRE_GPU()                                                      \
  do {                                                                          \
    if (!loom::cuda::available()) {                                             \
      WARN("no CUDA device: skipped (" << loom::cuda::unavailable_reason() << ")"); \
      return;                                                                   \
    }                                                                           \
  } while (0)

namespace loom_gpu_test {

template <class T, class S>
loom::cuda::tensor<T, S> to_device(const loom::tensor<T, S>& h) {
  loom::cuda::tensor<T, S> d(h.shape());
  loom::cuda::copy(d, h);
  return d;
}

template <class T, class S>
loom::tensor<T, S> to_host(const loom::cuda::tensor<T, S>& d) {
  loom::tensor<T, S> h(d.shape());
  loom::cuda::copy(h, d);
  return h;
}

}  // namespace loom_gpu_test
