// loom/cuda/options.hpp: choices about how the CUDA backend generates and compiles kernels.
#pragma once

#include <cstdlib>
#include <string>
#include <string_view>

namespace loom::cuda {

namespace detail {
/// LOOM_CUDA_BAKE_EXTENTS=1 (or "true", "on") makes baking extents into kernels the default.
inline bool bake_extents_default() {
  static const bool on = [] {
    const char* v = std::getenv("LOOM_CUDA_BAKE_EXTENTS");
    if (v == nullptr) return false;
    const std::string_view s(v);
    return s == "1" || s == "true" || s == "on" || s == "yes";
  }();
  return on;
}
}  // namespace detail

/// How kernels are generated and compiled:
///   cuda::compile(e, cuda::options{.arch = "sm_80"});
///   dy.assign(e, stream, cuda::options{.bake_extents = true});
struct options {
  /// The architecture cuda::compile() compiles for ("sm_80", "sm_90", "compute_90" for PTX).
  /// Empty: the device's, or sm_90 where there is no device. Launches always use the device's.
  std::string arch{};
  /// Print the actual extents and strides into the kernel as constants (one kernel per shape, as
  /// XLA specialises) instead of passing them at run time (one kernel per expression type and
  /// layout class). Default: off, or LOOM_CUDA_BAKE_EXTENTS.
  bool bake_extents = detail::bake_extents_default();
};

}  // namespace loom::cuda
