// loom/cuda/options.hpp: choices about how the CUDA backend generates and compiles kernels.
#pragma once

#include <cstdlib>
#include <string>
#include <string_view>

namespace loom::cuda {

namespace detail {
/// True where environment variable `name` is "1", "true", "on" or "yes".
inline bool env_flag(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr) return false;
  const std::string_view s(v);
  return s == "1" || s == "true" || s == "on" || s == "yes";
}
/// LOOM_CUDA_BAKE_EXTENTS=1 (or "true", "on") makes baking extents into kernels the default.
inline bool bake_extents_default() {
  static const bool on = env_flag("LOOM_CUDA_BAKE_EXTENTS");
  return on;
}
/// LOOM_CUDA_TF32=1 (or "true", "on") lets float matmuls use TF32 tensor cores by default.
inline bool tf32_default() {
  static const bool on = env_flag("LOOM_CUDA_TF32");
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
  /// Float matmuls (cuBLASLt) multiply in TF32 on tensor cores (10-bit mantissas, float
  /// accumulation: about 1e-3 relative) instead of full float. Default: off, or LOOM_CUDA_TF32.
  bool tf32 = detail::tf32_default();
};

}  // namespace loom::cuda
