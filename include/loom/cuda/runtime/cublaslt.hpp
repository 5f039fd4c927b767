// loom/cuda/runtime/cublaslt.hpp: cuBLASLt, loaded at run time, for matmul with a fused epilogue.
//
// A contraction whose epilogue cuBLASLt can fuse (bias, ReLU, GELU and their combinations) goes
// to cublasLtMatmul rather than to a generated kernel: its Hopper kernels are what a generated
// GEMM would have to match. Only what that needs is declared here -- the handle, the operation
// descriptor, matrix layouts, the heuristic query and the matmul itself -- with the enum values
// and the two semi-opaque structs as cuBLASLt documents them, so that <cublasLt.h> is not needed.
//
// The wrappers are thin RAII owners; choosing layouts (loom's row-major tensors are handed to
// cuBLASLt as the transposed column-major problem, so the bias runs along D's columns) belongs to
// the matmul emitter, not here.
//
// cuBLASLt uses the CUDA runtime internally, which works in the current device's primary context:
// the same context loom uses, so loom's device pointers and streams are valid for it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "loom/core/error.hpp"
#include "loom/cuda/runtime/device.hpp"
#include "loom/cuda/runtime/driver.hpp"
#include "loom/cuda/runtime/library.hpp"
#include "loom/cuda/runtime/stream.hpp"

struct cublasLtContext;  // the tag <cublasLt.h> gives the handle

namespace loom::cuda::detail {

using cublas_status = int;
using cublaslt_handle_t = ::cublasLtContext*;
struct lt_matmul_desc_st;
struct lt_matrix_layout_st;
struct lt_preference_st;
using lt_matmul_desc_t = lt_matmul_desc_st*;
using lt_matrix_layout_t = lt_matrix_layout_st*;
using lt_preference_t = lt_preference_st*;

/// cublasLtMatmulAlgo_t: 64 bytes, opaque.
struct lt_matmul_algo {
  std::uint64_t data[8];
};

/// cublasLtMatmulHeuristicResult_t.
struct lt_heuristic_result {
  lt_matmul_algo algo;
  std::size_t workspace_size;
  cublas_status state;
  float waves_count;
  int reserved[4];
};

/// The values of cuBLAS(Lt) enums loom uses, as cuBLASLt documents them.
namespace lt {
inline constexpr cublas_status status_success = 0;
// cublasComputeType_t
inline constexpr int compute_16f = 64;
inline constexpr int compute_32f = 68;
inline constexpr int compute_32f_fast_tf32 = 77;
inline constexpr int compute_64f = 70;
// cudaDataType_t
inline constexpr int r_32f = 0;
inline constexpr int r_64f = 1;
inline constexpr int r_16f = 2;
inline constexpr int r_16bf = 14;
// cublasOperation_t
inline constexpr int op_n = 0;
inline constexpr int op_t = 1;
// cublasLtMatmulDescAttributes_t
inline constexpr int desc_transa = 3;
inline constexpr int desc_transb = 4;
inline constexpr int desc_epilogue = 7;
inline constexpr int desc_bias_pointer = 8;
inline constexpr int desc_bias_data_type = 26;
// cublasLtMatrixLayoutAttribute_t and cublasLtOrder_t
inline constexpr int layout_order = 1;
inline constexpr int order_col = 0;
inline constexpr int order_row = 1;
// cublasLtMatmulPreferenceAttributes_t
inline constexpr int pref_max_workspace_bytes = 1;
inline constexpr int pref_min_alignment_a_bytes = 5;  // then B, C, D: 6, 7, 8
}  // namespace lt

struct cublaslt_api {
  cublas_status (*cublasLtCreate)(cublaslt_handle_t*) = nullptr;
  cublas_status (*cublasLtDestroy)(cublaslt_handle_t) = nullptr;
  std::size_t (*cublasLtGetVersion)() = nullptr;
  cublas_status (*cublasLtMatmulDescCreate)(lt_matmul_desc_t*, int, int) = nullptr;
  cublas_status (*cublasLtMatmulDescDestroy)(lt_matmul_desc_t) = nullptr;
  cublas_status (*cublasLtMatmulDescSetAttribute)(lt_matmul_desc_t, int, const void*, std::size_t) = nullptr;
  cublas_status (*cublasLtMatrixLayoutCreate)(lt_matrix_layout_t*, int, std::uint64_t, std::uint64_t,
                                              std::int64_t) = nullptr;
  cublas_status (*cublasLtMatrixLayoutDestroy)(lt_matrix_layout_t) = nullptr;
  cublas_status (*cublasLtMatrixLayoutSetAttribute)(lt_matrix_layout_t, int, const void*, std::size_t) = nullptr;
  cublas_status (*cublasLtMatmulPreferenceCreate)(lt_preference_t*) = nullptr;
  cublas_status (*cublasLtMatmulPreferenceDestroy)(lt_preference_t) = nullptr;
  cublas_status (*cublasLtMatmulPreferenceSetAttribute)(lt_preference_t, int, const void*, std::size_t) = nullptr;
  cublas_status (*cublasLtMatmulAlgoGetHeuristic)(cublaslt_handle_t, lt_matmul_desc_t, lt_matrix_layout_t,
                                                  lt_matrix_layout_t, lt_matrix_layout_t, lt_matrix_layout_t,
                                                  lt_preference_t, int, lt_heuristic_result*, int*) = nullptr;
  cublas_status (*cublasLtMatmul)(cublaslt_handle_t, lt_matmul_desc_t, const void*, const void*, lt_matrix_layout_t,
                                  const void*, lt_matrix_layout_t, const void*, const void*, lt_matrix_layout_t, void*,
                                  lt_matrix_layout_t, const lt_matmul_algo*, void*, std::size_t,
                                  stream_handle) = nullptr;
  // optional
  const char* (*cublasLtGetStatusName)(cublas_status) = nullptr;
  const char* (*cublasLtGetStatusString)(cublas_status) = nullptr;
};

struct cublaslt_state {
  shared_library library;
  cublaslt_api api;
  std::size_t version = 0;  // e.g. 130000
  bool usable = false;
  std::string problem;
};

inline std::vector<std::string> cublaslt_library_names() {
  return {"libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so.11", "libcublasLt.so"};
}

/// Opens cuBLASLt from `names` (then the toolkit folders) and binds it. Never throws.
inline cublaslt_state probe_cublaslt(const std::vector<std::string>& names) noexcept {
  cublaslt_state s;
  try {
    std::string tried;
    s.library = open_first(names, toolkit_library_dirs(), &tried);
    if (!s.library) {
      s.problem = "loom: cuBLASLt was not found; tried:" + tried;
      return s;
    }
    cublaslt_api& a = s.api;
    std::string missing;
    auto need = [&](auto& fn, const char* symbol) {
      if (!s.library.bind(fn, symbol)) missing += std::string(missing.empty() ? "" : ", ") + symbol;
    };
    need(a.cublasLtCreate, "cublasLtCreate");
    need(a.cublasLtDestroy, "cublasLtDestroy");
    need(a.cublasLtGetVersion, "cublasLtGetVersion");
    need(a.cublasLtMatmulDescCreate, "cublasLtMatmulDescCreate");
    need(a.cublasLtMatmulDescDestroy, "cublasLtMatmulDescDestroy");
    need(a.cublasLtMatmulDescSetAttribute, "cublasLtMatmulDescSetAttribute");
    need(a.cublasLtMatrixLayoutCreate, "cublasLtMatrixLayoutCreate");
    need(a.cublasLtMatrixLayoutDestroy, "cublasLtMatrixLayoutDestroy");
    need(a.cublasLtMatrixLayoutSetAttribute, "cublasLtMatrixLayoutSetAttribute");
    need(a.cublasLtMatmulPreferenceCreate, "cublasLtMatmulPreferenceCreate");
    need(a.cublasLtMatmulPreferenceDestroy, "cublasLtMatmulPreferenceDestroy");
    need(a.cublasLtMatmulPreferenceSetAttribute, "cublasLtMatmulPreferenceSetAttribute");
    need(a.cublasLtMatmulAlgoGetHeuristic, "cublasLtMatmulAlgoGetHeuristic");
    need(a.cublasLtMatmul, "cublasLtMatmul");
    s.library.bind(a.cublasLtGetStatusName, "cublasLtGetStatusName");
    s.library.bind(a.cublasLtGetStatusString, "cublasLtGetStatusString");
    if (!missing.empty()) {
      s.problem = "loom: cuBLASLt at " + s.library.file() + " lacks " + missing;
      return s;
    }
    s.version = a.cublasLtGetVersion();
    s.usable = true;
  } catch (...) {
    s.usable = false;
    if (s.problem.empty()) s.problem = "loom: out of host memory while loading cuBLASLt";
  }
  return s;
}

/// The process-wide cuBLASLt, loaded once on first use (the library is large: only on demand).
inline const cublaslt_state& cublaslt_state_once() noexcept {
  static const cublaslt_state* const state = [] {
    auto* s = new cublaslt_state(probe_cublaslt(cublaslt_library_names()));
    s->library.release();
    return s;
  }();
  return *state;
}

/// cuBLASLt's functions; throws loom::cuda_error when it cannot be loaded.
inline const cublaslt_api& cublaslt() {
  const cublaslt_state& s = cublaslt_state_once();
  if (!s.usable) throw cuda_error(s.problem);
  return s.api;
}

/// Throws loom::cuda_error "loom: <what> failed: CUBLAS_STATUS_... (<text>)" on an error status.
inline void check_cublas(cublas_status st, const std::string& what) {
  if (st == lt::status_success) [[likely]]
    return;
  const cublaslt_api& a = cublaslt_state_once().api;
  const char* name = a.cublasLtGetStatusName != nullptr ? a.cublasLtGetStatusName(st) : nullptr;
  const char* text = a.cublasLtGetStatusString != nullptr ? a.cublasLtGetStatusString(st) : nullptr;
  std::string msg =
      "loom: " + what + " failed: " + (name != nullptr ? std::string(name) : "cuBLAS status " + std::to_string(st));
  if (text != nullptr) msg += std::string(" (") + text + ")";
  throw cuda_error(msg);
}

}  // namespace loom::cuda::detail

namespace loom::cuda::runtime {

/// True when cuBLASLt loads. Never throws.
inline bool cublaslt_available() noexcept { return detail::cublaslt_state_once().usable; }

/// cublasLtGetVersion(), e.g. 130000 for cuBLASLt 13.0.0. Throws loom::cuda_error without it.
inline std::size_t cublaslt_version() {
  detail::cublaslt();
  return detail::cublaslt_state_once().version;
}

/// The epilogues cuBLASLt fuses into a matmul (cublasLtEpilogue_t).
enum class lt_epilogue : std::uint32_t {
  none = 1,
  relu = 2,
  bias = 4,
  relu_bias = 6,
  gelu = 32,
  gelu_bias = 36,
};

/// A cuBLASLt handle (RAII, movable). Needs a device.
class cublaslt_handle {
 public:
  cublaslt_handle() {
    const detail::cublaslt_api& a = detail::cublaslt();
    detail::make_current();
    detail::check_cublas(a.cublasLtCreate(&handle_), "cublasLtCreate");
  }
  cublaslt_handle(const cublaslt_handle&) = delete;
  cublaslt_handle& operator=(const cublaslt_handle&) = delete;
  cublaslt_handle(cublaslt_handle&& o) noexcept : handle_(std::exchange(o.handle_, nullptr)) {}
  cublaslt_handle& operator=(cublaslt_handle&& o) noexcept {
    std::swap(handle_, o.handle_);
    return *this;
  }
  ~cublaslt_handle() {
    if (handle_ != nullptr) detail::cublaslt_state_once().api.cublasLtDestroy(handle_);
  }
  [[nodiscard]] detail::cublaslt_handle_t get() const noexcept { return handle_; }

 private:
  detail::cublaslt_handle_t handle_ = nullptr;
};

/// The process-wide cuBLASLt handle (the handle holds no per-call state; any thread may use it).
inline const cublaslt_handle& shared_cublaslt_handle() {
  static const cublaslt_handle* const h = new cublaslt_handle();
  return *h;
}

/// A matmul operation descriptor: compute and scale types, transposes, epilogue, bias.
class lt_matmul_desc {
 public:
  /// `compute` is a cublasComputeType_t (detail::lt::compute_32f...), `scale` a cudaDataType_t.
  lt_matmul_desc(int compute, int scale) {
    detail::check_cublas(detail::cublaslt().cublasLtMatmulDescCreate(&desc_, compute, scale),
                         "cublasLtMatmulDescCreate");
  }
  lt_matmul_desc(const lt_matmul_desc&) = delete;
  lt_matmul_desc& operator=(const lt_matmul_desc&) = delete;
  lt_matmul_desc(lt_matmul_desc&& o) noexcept : desc_(std::exchange(o.desc_, nullptr)) {}
  lt_matmul_desc& operator=(lt_matmul_desc&& o) noexcept {
    std::swap(desc_, o.desc_);
    return *this;
  }
  ~lt_matmul_desc() {
    if (desc_ != nullptr) detail::cublaslt_state_once().api.cublasLtMatmulDescDestroy(desc_);
  }

  lt_matmul_desc& transpose_a(bool t) {
    return set_i32(detail::lt::desc_transa, t ? detail::lt::op_t : detail::lt::op_n);
  }
  lt_matmul_desc& transpose_b(bool t) {
    return set_i32(detail::lt::desc_transb, t ? detail::lt::op_t : detail::lt::op_n);
  }
  lt_matmul_desc& epilogue(lt_epilogue e) {
    const auto v = static_cast<std::uint32_t>(e);
    return set(detail::lt::desc_epilogue, &v, sizeof(v), "epilogue");
  }
  /// The bias vector (device pointer) of a *_bias epilogue, and its cudaDataType_t.
  lt_matmul_desc& bias(const void* device_ptr, int data_type) {
    set(detail::lt::desc_bias_pointer, &device_ptr, sizeof(device_ptr), "bias pointer");
    return set_i32(detail::lt::desc_bias_data_type, data_type);
  }
  [[nodiscard]] detail::lt_matmul_desc_t get() const noexcept { return desc_; }

 private:
  lt_matmul_desc& set_i32(int attr, std::int32_t v) { return set(attr, &v, sizeof(v), "attribute"); }
  lt_matmul_desc& set(int attr, const void* value, std::size_t size, const char* what) {
    detail::check_cublas(detail::cublaslt().cublasLtMatmulDescSetAttribute(desc_, attr, value, size),
                         std::string("cublasLtMatmulDescSetAttribute (") + what + ")");
    return *this;
  }
  detail::lt_matmul_desc_t desc_ = nullptr;
};

/// A matrix layout: element type, rows, columns, leading dimension, storage order.
class lt_matrix_layout {
 public:
  lt_matrix_layout(int data_type, std::uint64_t rows, std::uint64_t cols, std::int64_t ld, bool row_major = false) {
    const detail::cublaslt_api& a = detail::cublaslt();
    detail::check_cublas(a.cublasLtMatrixLayoutCreate(&layout_, data_type, rows, cols, ld),
                         "cublasLtMatrixLayoutCreate");
    if (row_major) {
      const std::int32_t order = detail::lt::order_row;
      detail::check_cublas(a.cublasLtMatrixLayoutSetAttribute(layout_, detail::lt::layout_order, &order, sizeof(order)),
                           "cublasLtMatrixLayoutSetAttribute (order)");
    }
  }
  lt_matrix_layout(const lt_matrix_layout&) = delete;
  lt_matrix_layout& operator=(const lt_matrix_layout&) = delete;
  lt_matrix_layout(lt_matrix_layout&& o) noexcept : layout_(std::exchange(o.layout_, nullptr)) {}
  lt_matrix_layout& operator=(lt_matrix_layout&& o) noexcept {
    std::swap(layout_, o.layout_);
    return *this;
  }
  ~lt_matrix_layout() {
    if (layout_ != nullptr) detail::cublaslt_state_once().api.cublasLtMatrixLayoutDestroy(layout_);
  }
  [[nodiscard]] detail::lt_matrix_layout_t get() const noexcept { return layout_; }

 private:
  detail::lt_matrix_layout_t layout_ = nullptr;
};

/// Heuristic search preferences: the workspace the matmul may use.
class lt_preference {
 public:
  explicit lt_preference(std::uint64_t max_workspace_bytes) {
    const detail::cublaslt_api& a = detail::cublaslt();
    detail::check_cublas(a.cublasLtMatmulPreferenceCreate(&pref_), "cublasLtMatmulPreferenceCreate");
    detail::check_cublas(a.cublasLtMatmulPreferenceSetAttribute(pref_, detail::lt::pref_max_workspace_bytes,
                                                                &max_workspace_bytes, sizeof(max_workspace_bytes)),
                         "cublasLtMatmulPreferenceSetAttribute (workspace)");
  }
  /// The alignment in bytes (a power of two, up to 256) that A, B, C and D have at least: the
  /// heuristics only offer algorithms that work with it (by default they assume 256).
  lt_preference& min_alignment(std::uint32_t a, std::uint32_t b, std::uint32_t c, std::uint32_t d) {
    const detail::cublaslt_api& api = detail::cublaslt();
    const std::uint32_t v[4] = {a, b, c, d};
    for (int i = 0; i < 4; ++i)
      detail::check_cublas(api.cublasLtMatmulPreferenceSetAttribute(pref_, detail::lt::pref_min_alignment_a_bytes + i,
                                                                    &v[i], sizeof(v[i])),
                           "cublasLtMatmulPreferenceSetAttribute (alignment)");
    return *this;
  }
  lt_preference(const lt_preference&) = delete;
  lt_preference& operator=(const lt_preference&) = delete;
  lt_preference(lt_preference&& o) noexcept : pref_(std::exchange(o.pref_, nullptr)) {}
  lt_preference& operator=(lt_preference&& o) noexcept {
    std::swap(pref_, o.pref_);
    return *this;
  }
  ~lt_preference() {
    if (pref_ != nullptr) detail::cublaslt_state_once().api.cublasLtMatmulPreferenceDestroy(pref_);
  }
  [[nodiscard]] detail::lt_preference_t get() const noexcept { return pref_; }

 private:
  detail::lt_preference_t pref_ = nullptr;
};

/// Up to `count` algorithms cuBLASLt suggests for D = A B (+ C) with these layouts, best first.
/// Throws loom::cuda_error when none is found.
inline std::vector<detail::lt_heuristic_result> lt_heuristics(const cublaslt_handle& h, const lt_matmul_desc& op,
                                                              const lt_matrix_layout& a, const lt_matrix_layout& b,
                                                              const lt_matrix_layout& c, const lt_matrix_layout& d,
                                                              const lt_preference& pref, int count = 1) {
  std::vector<detail::lt_heuristic_result> results(static_cast<std::size_t>(count > 0 ? count : 1));
  int found = 0;
  detail::make_current();
  detail::check_cublas(
      detail::cublaslt().cublasLtMatmulAlgoGetHeuristic(h.get(), op.get(), a.get(), b.get(), c.get(), d.get(),
                                                        pref.get(), count, results.data(), &found),
      "cublasLtMatmulAlgoGetHeuristic");
  if (found <= 0) throw cuda_error("loom: cuBLASLt found no algorithm for this matmul");
  results.resize(static_cast<std::size_t>(found));
  return results;
}

/// D = alpha * op(A) op(B) + beta * C, then the descriptor's epilogue, queued on `s`.
inline void lt_matmul(const cublaslt_handle& h, const lt_matmul_desc& op, const void* alpha, const void* A,
                      const lt_matrix_layout& a, const void* B, const lt_matrix_layout& b, const void* beta,
                      const void* C, const lt_matrix_layout& c, void* D, const lt_matrix_layout& d,
                      const detail::lt_matmul_algo* algo, void* workspace, std::size_t workspace_bytes, stream_ref s) {
  detail::make_current();
  detail::check_cublas(
      detail::cublaslt().cublasLtMatmul(h.get(), op.get(), alpha, A, a.get(), B, b.get(), beta, C, c.get(), D, d.get(),
                                        algo, workspace, workspace_bytes, s.handle()),
      "cublasLtMatmul");
}

}  // namespace loom::cuda::runtime
