// loom/cuda/matmul.hpp: matmul on the device, through cuBLASLt.
//
// An assignment whose root is a product with an epilogue cuBLASLt fuses -- matmul(a, b),
// matmul(a, b) + bias, relu(...) or gelu(...) of either (gelu is the tanh form, as cuBLASLt's) --
// is one cublasLtMatmul call writing the destination. Anywhere else a product is evaluated that
// way into a device temporary and the rest of the expression reads it (cuda/assign.hpp), so
// other epilogues are a generated kernel after the GEMM.
//
// loom's tensors are row-major and cuBLASLt's matrices column-major: D = A B (M x N) is computed
// as D^T = B^T A^T, whose column-major views are the row-major arrays themselves. An operand that
// is a view of memory (a tensor, a strided view, a transpose or slice of one) is handed to
// cuBLASLt as it is, transposed where its columns are contiguous; any other operand expression is
// evaluated into a contiguous temporary first. Batch axes broadcast as NumPy's and run as one call
// per matrix. float multiplies in full precision (or TF32 with options::tf32), double in double;
// other types throw loom::cuda_error.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <type_traits>
#include <unordered_map>

#include "loom/core/error.hpp"
#include "loom/core/shape.hpp"
#include "loom/cpu/binding.hpp"
#include "loom/cuda/codegen/emit.hpp"
#include "loom/cuda/codegen/layout.hpp"
#include "loom/cuda/options.hpp"
#include "loom/cuda/runtime/cublaslt.hpp"
#include "loom/cuda/runtime/memory.hpp"
#include "loom/cuda/runtime/stream.hpp"
#include "loom/expr/map.hpp"
#include "loom/expr/matmul.hpp"
#include "loom/expr/node.hpp"
#include "loom/expr/ops.hpp"

namespace loom::cuda::detail {

// ---------------------------------------------------------------------------------------------
// Which roots are one cuBLASLt call
// ---------------------------------------------------------------------------------------------

/// lt_root<N>: N is a product with an epilogue cuBLASLt fuses. product(n) is the matmul node,
/// bias(n) the bias operand (a rank-1 node, where has_bias), epilogue the cuBLASLt epilogue.
template <class N>
struct lt_root {
  static constexpr bool value = false;
};
template <class A, class B>
struct lt_root<matmul_node<A, B>> {
  static constexpr bool value = true, has_bias = false;
  static constexpr runtime::lt_epilogue epilogue = runtime::lt_epilogue::none;
  using product_type = matmul_node<A, B>;
  static const product_type& product(const matmul_node<A, B>& n) { return n; }
};
/// matmul + bias (either order), the bias a rank-1 operand of the product's type along its columns.
template <class C, class X, class Y>
struct lt_root<map_node<ops::add, C, X, Y>> {
  static constexpr bool left = is_matmul_node<X>::value && !is_matmul_node<Y>::value;
  static constexpr bool right = is_matmul_node<Y>::value && !is_matmul_node<X>::value;
  using P = std::conditional_t<left, X, Y>;
  using Bias = std::conditional_t<left, Y, X>;
  static constexpr bool value = (left || right) && Bias::rank == 1 &&
                                std::is_same_v<typename Bias::value_type, typename P::value_type> &&
                                std::is_same_v<C, typename P::value_type>;
  static constexpr bool has_bias = true;
  static constexpr runtime::lt_epilogue epilogue = runtime::lt_epilogue::bias;
  using product_type = P;
  static const P& product(const map_node<ops::add, C, X, Y>& n) { return std::get<left ? 0 : 1>(n.args); }
  static const Bias& bias(const map_node<ops::add, C, X, Y>& n) { return std::get<left ? 1 : 0>(n.args); }
};
/// relu or gelu of a product, or of a product plus bias (anything else under them: not one call).
template <class Op, class C, class X>
  requires((std::is_same_v<Op, ops::relu> || std::is_same_v<Op, ops::gelu>) && lt_root<X>::value)
struct lt_root<map_node<Op, C, X>> {
  using inner = lt_root<X>;
  static constexpr bool value = inner::value && inner::epilogue != runtime::lt_epilogue::relu &&
                                inner::epilogue != runtime::lt_epilogue::gelu &&
                                inner::epilogue != runtime::lt_epilogue::relu_bias &&
                                inner::epilogue != runtime::lt_epilogue::gelu_bias &&
                                std::is_same_v<C, typename X::value_type>;
  static constexpr bool has_bias = value && inner::has_bias;
  static constexpr bool is_relu = std::is_same_v<Op, ops::relu>;
  static constexpr runtime::lt_epilogue epilogue =
      has_bias ? (is_relu ? runtime::lt_epilogue::relu_bias : runtime::lt_epilogue::gelu_bias)
               : (is_relu ? runtime::lt_epilogue::relu : runtime::lt_epilogue::gelu);
  using product_type = typename inner::product_type;
  static const product_type& product(const map_node<Op, C, X>& n) { return inner::product(std::get<0>(n.args)); }
  static const auto& bias(const map_node<Op, C, X>& n) { return inner::bias(std::get<0>(n.args)); }
};

// ---------------------------------------------------------------------------------------------
// Operands as cuBLASLt matrices
// ---------------------------------------------------------------------------------------------

/// An operand of rank r >= 2 (or a bias of rank 1) in memory: its element 0's address and its
/// strides over its own axes.
struct memory_operand {
  std::uintptr_t base = 0;
  std::size_t rank = 0;
  dims d;
  std::array<index_t, max_rank> stride{};
};

/// True where node X is a view of memory of element type T (a leaf under index maps only, no
/// arithmetic, conversion or generator), and then its address and strides in `out`.
template <class T, class X>
bool as_memory(const X& x, memory_operand& out) {
  if constexpr (!codegen::emittable<X>) {
    return false;
  } else {
    using P = codegen::param_count<X>;
    if constexpr (P::leaves != 1 || P::scalars != 0) {
      return false;
    } else {
      static const bool pure = [] {
        codegen::emit_state st;
        const codegen::emitted e = codegen::emitter<X>::emit(st);
        return e.text == "x0" && st.kinds().size() == 1 && st.kinds()[0] == codegen::leaf_kind::value &&
               st.leaves()[0] == dtype_of<T>;
      }();
      if (!pure) return false;
      codegen::array_cursor c;
      codegen::scalar_value unused;
      codegen::operand_sink sink{&c, &unused};
      out.d = x.shape().to_dims();
      out.rank = out.d.rank;
      try {
        codegen::binder<X>::bind(x, sink, cpu::binding::identity(out.rank));
      } catch (const codegen::reshape_needs_copy&) {
        return false;
      }
      out.base = c.base + static_cast<std::uintptr_t>(c.offset * static_cast<index_t>(sizeof(T)));
      out.stride = c.stride;
      return true;
    }
  }
}

/// A matrix operand as cuBLASLt takes it: rows x cols (loom's, row-major sense), stored row-major
/// (ld between rows) or column-major (ld between columns).
struct lt_matrix {
  bool ok = false;
  bool col_major = false;
  index_t ld = 0;
};
/// The matrix of the last two axes of m (rows x cols), where their strides allow one.
inline lt_matrix matrix_of(const memory_operand& m) {
  const std::size_t r = m.rank;
  const index_t rows = static_cast<index_t>(m.d.e[r - 2]), cols = static_cast<index_t>(m.d.e[r - 1]);
  const index_t sr = m.stride[r - 2], sc = m.stride[r - 1];
  lt_matrix x;
  if ((cols == 1 || sc == 1) && (rows == 1 || sr >= std::max<index_t>(cols, 1))) {
    x.ok = true;
    x.ld = rows == 1 ? std::max<index_t>(cols, 1) : sr;
  } else if ((rows == 1 || sr == 1) && (cols == 1 || sc >= std::max<index_t>(rows, 1))) {
    x.ok = x.col_major = true;
    x.ld = cols == 1 ? std::max<index_t>(rows, 1) : sc;
  }
  return x;
}

/// The largest power of two up to 256 that divides address a.
inline std::uint32_t alignment_of(std::uintptr_t a) {
  std::uint32_t k = 1;
  while (k < 256 && a % (2 * k) == 0) k *= 2;
  return k;
}

/// True where the bytes the operand can reach and those of the destination overlap.
inline bool overlaps(const memory_operand& m, std::size_t elem, const memory_operand& d) {
  const auto span = [&](const memory_operand& x, std::uintptr_t& lo, std::uintptr_t& hi) {
    index_t a = 0, b = 0;
    for (std::size_t k = 0; k < x.rank; ++k) {
      if (x.d.e[k] == 0) {
        lo = hi = x.base;
        return;
      }
      const index_t s = x.stride[k] * (static_cast<index_t>(x.d.e[k]) - 1);
      (s < 0 ? a : b) += s;
    }
    lo = x.base + static_cast<std::uintptr_t>(a * static_cast<index_t>(elem));
    hi = x.base + static_cast<std::uintptr_t>(b * static_cast<index_t>(elem)) + elem;
  };
  std::uintptr_t a0, a1, b0, b1;
  span(m, a0, a1);
  span(d, b0, b1);
  return a0 < b1 && b0 < a1 && a0 != a1 && b0 != b1;
}

/// D (row-major M x N matrices over the batch axes of dd) = epilogue(A B + bias), one cuBLASLt
/// call per matrix, queued on st. A: [..., M, K], B: [..., K, N] (batch axes broadcast into dd's),
/// bias: N contiguous elements or 0. Every matrix must be lt_matrix-ok; D row-major.
template <class T>
void lt_product(const memory_operand& A, const memory_operand& B, std::uintptr_t bias, runtime::lt_epilogue epi,
                const memory_operand& D, const stream_ref& st, bool tf32) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>);
  const std::size_t rd = D.rank;
  const index_t M = static_cast<index_t>(D.d.e[rd - 2]), N = static_cast<index_t>(D.d.e[rd - 1]),
                K = static_cast<index_t>(A.d.e[A.rank - 1]);
  if (M == 0 || N == 0) return;
  index_t batches = 1;
  for (std::size_t k = 0; k + 2 < rd; ++k) batches *= static_cast<index_t>(D.d.e[k]);
  if (batches == 0) return;
  const lt_matrix ma = matrix_of(A), mb = matrix_of(B), md = matrix_of(D);
  if (!ma.ok || !mb.ok || !md.ok || md.col_major)
    throw cuda_error("loom: internal: a matmul operand is not a cuBLASLt matrix");
  constexpr int dt = std::is_same_v<T, float> ? lt::r_32f : lt::r_64f;
  const int compute = std::is_same_v<T, double> ? lt::compute_64f : tf32 ? lt::compute_32f_fast_tf32 : lt::compute_32f;
  namespace rt = runtime;
  // D^T (N x M, column-major, ld md.ld) = op(B^T) (N x K) * op(A^T) (K x M).
  rt::lt_matmul_desc op(compute, dt);
  op.transpose_a(mb.col_major).transpose_b(ma.col_major);
  if (epi != rt::lt_epilogue::none) op.epilogue(epi);
  if (bias != 0) op.bias(reinterpret_cast<const void*>(bias), dt);
  const auto u = [](index_t v) { return static_cast<std::uint64_t>(v); };
  const rt::lt_matrix_layout la = mb.col_major ? rt::lt_matrix_layout(dt, u(K), u(N), mb.ld) : rt::lt_matrix_layout(dt, u(N), u(K), mb.ld);
  const rt::lt_matrix_layout lb = ma.col_major ? rt::lt_matrix_layout(dt, u(M), u(K), ma.ld) : rt::lt_matrix_layout(dt, u(K), u(M), ma.ld);
  const rt::lt_matrix_layout ld(dt, u(N), u(M), md.ld);
  // One heuristic query per problem and alignment class (the first call of a shape pays it).
  std::uint32_t align = alignment_of(D.base);
  align = std::min({align, alignment_of(A.base), alignment_of(B.base)});
  for (std::size_t k = 0; k + 2 < A.rank; ++k) align = std::min(align, alignment_of(static_cast<std::uintptr_t>(A.stride[k] * index_t(sizeof(T)))));
  for (std::size_t k = 0; k + 2 < B.rank; ++k) align = std::min(align, alignment_of(static_cast<std::uintptr_t>(B.stride[k] * index_t(sizeof(T)))));
  for (std::size_t k = 0; k + 2 < rd; ++k) align = std::min(align, alignment_of(static_cast<std::uintptr_t>(D.stride[k] * index_t(sizeof(T)))));
  constexpr std::size_t workspace_bytes = std::size_t(32) << 20;
  static std::mutex mutex;
  static std::unordered_map<std::string, lt_matmul_algo> algos;
  std::string key;
  for (index_t v : {M, N, K, index_t(ma.col_major), index_t(mb.col_major), ma.ld, mb.ld, md.ld, index_t(align),
                    index_t(epi), index_t(bias != 0), index_t(compute), index_t(dt)})
    key.append(reinterpret_cast<const char*>(&v), sizeof v);
  lt_matmul_algo algo{};
  bool found = false;
  {
    std::lock_guard<std::mutex> lock(mutex);
    if (auto it = algos.find(key); it != algos.end()) {
      algo = it->second;
      found = true;
    }
  }
  if (!found) {
    rt::lt_preference pref(workspace_bytes);
    pref.min_alignment(align, align, align, align);
    const auto r = rt::lt_heuristics(rt::shared_cublaslt_handle(), op, la, lb, ld, ld, pref, 1);
    algo = r[0].algo;
    std::lock_guard<std::mutex> lock(mutex);
    algos.emplace(key, algo);
  }
  device_buffer workspace(workspace_bytes, st);
  const T alpha = 1, beta = 0;
  // batch offsets: dd's batch axes, the operands' aligned to the right (extent 1: broadcast)
  std::array<index_t, max_rank> idx{};
  const std::size_t nb = rd - 2;
  for (index_t b = 0; b < batches; ++b) {
    index_t oa = 0, ob = 0, od = 0;
    for (std::size_t k = 0; k < nb; ++k) {
      od += idx[k] * D.stride[k];
      const std::size_t ka = k + (A.rank - 2) - nb, kb = k + (B.rank - 2) - nb;
      if (k + A.rank >= rd && A.d.e[ka] != 1) oa += idx[k] * A.stride[ka];
      if (k + B.rank >= rd && B.d.e[kb] != 1) ob += idx[k] * B.stride[kb];
    }
    const auto at = [](std::uintptr_t base, index_t off) {
      return reinterpret_cast<void*>(base + static_cast<std::uintptr_t>(off * static_cast<index_t>(sizeof(T))));
    };
    rt::lt_matmul(rt::shared_cublaslt_handle(), op, &alpha, at(B.base, ob), la, at(A.base, oa), lb, &beta, at(D.base, od), ld,
                  at(D.base, od), ld, &algo, workspace.data(), workspace_bytes, st);
    for (std::size_t k = nb; k-- > 0;) {
      if (++idx[k] < static_cast<index_t>(D.d.e[k])) break;
      idx[k] = 0;
    }
  }
}

}  // namespace loom::cuda::detail
