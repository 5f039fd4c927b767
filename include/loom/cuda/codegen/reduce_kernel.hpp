// loom/cuda/codegen/reduce_kernel.hpp: reduction kernels, printed once per expression type.
//
// A reduction node becomes two kinds of kernel:
//
//   loom_rd_<hash>  the reduction proper. Its operand's expression is printed by the elementwise
//                   emitters (producers are fused: sum(x * y) reads x and y once and never holds
//                   x * y). The operand's index space is split into the kept axes (one output
//                   each) and the reduced axes; a work item is one output, or one of S equal
//                   chunks of an output's reduced range where there are too few outputs to fill
//                   the device (a full sum). A block takes one work item at a time: each thread
//                   folds every blockDim-th element of the range (an odometer over the reduced
//                   axes: adds and carries, no division per element) into an accumulator, and
//                   the block combines the accumulators as a tree in shared memory. With S == 1
//                   the block writes the result, else its partial.
//   loom_rc_<hash>  the same reduction with one *thread* per work item, for outputs that lie next
//                   to each other in memory (column sums: the kept inner axis steps by 1 in every
//                   operand): neighbouring threads read neighbouring elements, each folding its
//                   chunk of the reduced range in order.
//   loom_rf_<hash>  the second stage where S > 1: a group of lanes per output (a whole block
//                   for a full sum's ~1000 partials, one lane for a few) folds its S partials and
//                   combines them as a tree; it depends on the reducer and dtypes only.
//
// Deterministic: the chunks, the threads' shares and the tree are fixed by the shape and the
// block size, never by timing; no atomics. Float sums, means and products accumulate in double
// (a sum of 2^24 floats stays within float rounding of the exact value), integer and bool ones in
// 64-bit integers (as on the CPU); max and min propagate NaN; argmax/argmin keep the first NaN,
// else the first index of the extreme value, whatever the split.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "loom/core/config.hpp"
#include "loom/core/dtype.hpp"
#include "loom/core/error.hpp"
#include "loom/cuda/codegen/emit.hpp"
#include "loom/cuda/codegen/kernel.hpp"
#include "loom/cuda/codegen/layout.hpp"
#include "loom/cuda/runtime/hash.hpp"

namespace loom::cuda::codegen {

/// Threads per block of a reduction kernel (a power of two: the tree halves it).
inline constexpr int reduce_block_threads = 256;

/// What a reduction node compiles to: its operand's element expression (op.dst unused) and the
/// reducer, by name (expr/reduce.hpp: sum, mean, prod, max, min, argmax, argmin).
struct reduce_desc {
  kernel_desc op;
  std::string reducer;
  dtype out = dtype::float32;  ///< the result's dtype
  [[nodiscard]] bool is_arg() const { return reducer == "argmax" || reducer == "argmin"; }
  /// The accumulator's C type: double for floating sums, means and products, long long for
  /// integer and bool ones, the value's own type for max, min and the arg reductions' values.
  [[nodiscard]] std::string_view acc_c_name() const {
    const bool floating = op.value == dtype::float32 || op.value == dtype::float64;
    if (reducer == "sum" || reducer == "mean" || reducer == "prod") return floating ? "double" : "long long";
    return dtype_c_name(op.value);
  }
};

/// The run-time shape of one reduction launch: kept and reduced ranks (>= 1 each) and extents,
/// outputs K, reduced count M, chunks per output S of `chunk` elements.
struct reduce_launch {
  std::size_t kr = 1, rr = 1;
  std::array<index_t, max_rank> kext{}, rext{};
  index_t K = 0, M = 0, S = 1, chunk = 0;
  bool columns = false;  ///< a thread per work item (loom_rc_), else a block (loom_rd_)
};

namespace detail {

/// The shared device functions of a reduction: acc_t, identity(), fold(acc, x, m), combine(a, b)
/// and finish(acc) -> the result, for reducer r over values of type `value` into `out`.
LOOM_NOINLINE inline void put_reducer(std::string& s, const reduce_desc& d) {
  const std::string_view v = dtype_c_name(d.op.value), a = d.acc_c_name(), o = dtype_c_name(d.out);
  const bool floating = d.op.value == dtype::float32 || d.op.value == dtype::float64;
  const bool is_bool = d.op.value == dtype::bool_;
  const std::string& r = d.reducer;
  put(s, {"struct acc_t { ", a, " v; long long i; };\n"});
  // The identity (max/min: the lowest/highest value, so that any element replaces it).
  std::string id = "0";
  if (r == "prod") id = "1";
  if (r == "max" || r == "argmax")
    id = floating ? "-loom::dev::m_inf<" + std::string(v) + ">()" : is_bool ? "false" : "loom::dev::int_traits<" + std::string(v) + ">::lowest";
  if (r == "min" || r == "argmin")
    id = floating ? "loom::dev::m_inf<" + std::string(v) + ">()" : is_bool ? "true" : "loom::dev::int_traits<" + std::string(v) + ">::highest";
  put(s, {"__device__ __forceinline__ acc_t identity() { acc_t a; a.v = ", id, "; a.i = -1; return a; }\n"});
  // fold: one element x (at reduced index m) into a; combine: two partial accumulators.
  if (r == "sum" || r == "mean") {
    put(s, {"__device__ __forceinline__ void fold(acc_t& a, ", v, " x, long long) { a.v += (", a, ")x; }\n"});
    s += "__device__ __forceinline__ void combine(acc_t& a, const acc_t& b) { a.v += b.v; }\n";
  } else if (r == "prod") {
    if (floating) {
      put(s, {"__device__ __forceinline__ void fold(acc_t& a, ", v, " x, long long) { a.v *= (double)x; }\n"});
      s += "__device__ __forceinline__ void combine(acc_t& a, const acc_t& b) { a.v *= b.v; }\n";
    } else {  // two's complement wrap, as the CPU's
      put(s, {"__device__ __forceinline__ void fold(acc_t& a, ", v,
              " x, long long) { a.v = (long long)((unsigned long long)a.v * (unsigned long long)(long long)x); }\n"});
      s += "__device__ __forceinline__ void combine(acc_t& a, const acc_t& b) { a.v = (long long)((unsigned long long)a.v * "
           "(unsigned long long)b.v); }\n";
    }
  } else if (r == "max" || r == "min") {
    const std::string_view cmp = r == "max" ? ">" : "<";
    if (floating) {  // NaN anywhere gives NaN
      put(s, {"__device__ __forceinline__ void fold(acc_t& a, ", v, " x, long long) { if (a.v == a.v && (x != x || x ", cmp,
              " a.v)) a.v = x; }\n"});
      put(s, {"__device__ __forceinline__ void combine(acc_t& a, const acc_t& b) { if (a.v == a.v && (b.v != b.v || b.v ", cmp,
              " a.v)) a.v = b.v; }\n"});
    } else {
      put(s, {"__device__ __forceinline__ void fold(acc_t& a, ", v, " x, long long) { if (x ", cmp, " a.v) a.v = x; }\n"});
      put(s, {"__device__ __forceinline__ void combine(acc_t& a, const acc_t& b) { if (b.v ", cmp, " a.v) a.v = b.v; }\n"});
    }
  } else {  // argmax, argmin: the first NaN, else the first index of the extreme value
    const std::string_view cmp = r == "argmax" ? ">" : "<";
    const std::string nan_a = floating ? "a.v != a.v" : "false", nan_b = floating ? "b.v != b.v" : "false";
    put(s, {"__device__ __forceinline__ bool better(const acc_t& b, const acc_t& a) {\n"
            "  if (b.i < 0) return false;\n  if (a.i < 0) return true;\n"
            "  const bool na = ", nan_a, ", nb = ", nan_b, ";\n"
            "  if (na || nb) return nb && (!na || b.i < a.i);\n"
            "  if (b.v ", cmp, " a.v) return true;\n  if (a.v ", cmp, " b.v) return false;\n  return b.i < a.i;\n}\n"});
    put(s, {"__device__ __forceinline__ void fold(acc_t& a, ", v, " x, long long m) { acc_t b; b.v = x; b.i = m; if (better(b, a)) a = b; }\n"});
    s += "__device__ __forceinline__ void combine(acc_t& a, const acc_t& b) { if (better(b, a)) a = b; }\n";
  }
  // finish: the result from the accumulator (M: the reduced count, for the mean).
  if (r == "mean")
    put(s, {"__device__ __forceinline__ ", o, " finish(const acc_t& a, long long M) { return loom::dev::cvt<", o,
            ">(M == 0 ? loom::dev::m_nan<double>() : (double)a.v / (double)M); }\n"});
  else if (d.is_arg())
    put(s, {"__device__ __forceinline__ ", o, " finish(const acc_t& a, long long) { return a.i; }\n"});
  else
    put(s, {"__device__ __forceinline__ ", o, " finish(const acc_t& a, long long) { return loom::dev::cvt<", o, ">(a.v); }\n"});
}

}  // namespace detail

/// The size of the reduction kernel's argument block: out, leaves, K, M, S, chunk, the extents
/// and strides (8 bytes each), then the scalars by decreasing size.
inline std::size_t reduce_args_size(const reduce_desc& d, std::size_t kr, std::size_t rr) {
  std::size_t s = 8 * (1 + d.op.leaves.size() + 4 + kr + rr + d.op.leaves.size() * (kr + rr) + 1 + d.op.leaves.size());
  for (dtype t : d.op.scalars) s += dtype_size(t);
  return (s + 7) & ~std::size_t(7);
}

/// The vector width of a reduction's flat path: 16 bytes of its widest leaf; 0 where a leaf is
/// not a value in memory (generators, concat, pad) or there are none.
inline int reduce_vector_width(const reduce_desc& d) {
  std::size_t widest = 0;
  for (std::size_t i = 0; i < d.op.leaves.size(); ++i) {
    if (d.op.kind(i) != leaf_kind::value) return 0;
    widest = std::max(widest, dtype_size(d.op.leaves[i]));
  }
  return widest == 0 ? 0 : static_cast<int>(16 / widest);
}

namespace detail {
/// The element call of a reduction kernel at offsets o<k>.
inline std::string reduce_element_call(const reduce_desc& d) {
  std::string call = "element(p";
  for (std::size_t i = 0; i < d.op.leaves.size(); ++i) {
    const std::string k = std::to_string(i);
    switch (d.op.kind(i)) {
      case leaf_kind::value: call += ", p.a" + k + "[o" + k + "]"; break;
      case leaf_kind::lazy: call += ", o" + k; break;
      case leaf_kind::position: call += ", p.a" + k + " + o" + k; break;
    }
  }
  return call + ")";
}
/// "    I ok0 = 0, ...;" and the kept offsets of output k (divisions once per work item).
inline void put_kept_offsets(std::string& s, std::size_t n, std::string_view indent) {
  put(s, {indent, "I "});
  for (std::size_t i = 0; i < n; ++i) put(s, {i ? ", " : "", "ok", std::to_string(i), " = 0"});
  if (n == 0) s += "unused_ok = 0";
  put(s, {";\n", indent, "{\n", indent, "  I a = k;\n#pragma unroll\n", indent, "  for (int j = KR - 1; j >= 0; --j) {\n", indent,
          "    const I c = a % p.kext[j];\n", indent, "    a /= p.kext[j];\n"});
  for (std::size_t i = 0; i < n; ++i) {
    const std::string k = std::to_string(i);
    put(s, {indent, "    ok", k, " += c * p.kst", k, "[j];\n"});
  }
  put(s, {indent, "  }\n", indent, "}\n"});
}
/// "      I o0 = ok0, ...;" and the offsets of the reduced multi-index c added.
inline void put_reduced_offsets(std::string& s, std::size_t n) {
  s += "      I ";
  for (std::size_t i = 0; i < n; ++i) put(s, {i ? ", " : "", "o", std::to_string(i), " = ok", std::to_string(i)});
  if (n == 0) s += "unused_o = 0";
  s += ";\n#pragma unroll\n      for (int j = 0; j < RR; ++j) {\n";
  for (std::size_t i = 0; i < n; ++i) {
    const std::string k = std::to_string(i);
    put(s, {"        o", k, " += c[j] * p.rst", k, "[j];\n"});
  }
  s += "      }\n";
}
}  // namespace detail

/// Prints the reduction kernel of d for kept rank kr and reduced rank rr; `columns`: a thread
/// per work item (loom_rc_), else a block (loom_rd_).
LOOM_NOINLINE inline kernel_text print_reduce_kernel(const reduce_desc& d, std::size_t kr, std::size_t rr,
                                                     bool columns = false) {
  using detail::put;
  const std::size_t n = d.op.leaves.size();
  std::string s;
  s.reserve(6000);
  put(s, {"// loom reduction kernel: ", d.reducer, ", kept rank ", std::to_string(kr), ", reduced rank ", std::to_string(rr),
          columns ? ", a thread per output" : ", a block per output",
          "\nnamespace loom_gen_@ {\nstruct args {\n  void* out;\n"});
  for (std::size_t i = 0; i < n; ++i) {
    const std::string k = std::to_string(i);
    if (d.op.kind(i) == leaf_kind::position)
      put(s, {"  long long a", k, ";\n"});
    else
      put(s, {"  const ", dtype_c_name(d.op.leaves[i]), "* a", k, ";\n"});
  }
  put(s, {"  long long K, M, S, chunk;\n  long long kext[", std::to_string(kr), "];\n  long long rext[", std::to_string(rr), "];\n"});
  for (std::size_t i = 0; i < n; ++i) {
    const std::string k = std::to_string(i);
    put(s, {"  long long kst", k, "[", std::to_string(kr), "];\n  long long rst", k, "[", std::to_string(rr), "];\n"});
  }
  s += "  long long flat;  // the reduced axes collapse to one stride per leaf, fs<k> (2: and the vector path applies)\n";
  for (std::size_t i = 0; i < n; ++i) put(s, {"  long long fs", std::to_string(i), ";\n"});
  for (std::size_t size : {8u, 4u, 1u})
    for (std::size_t i = 0; i < d.op.scalars.size(); ++i)
      if (dtype_size(d.op.scalars[i]) == size) put(s, {"  ", dtype_c_name(d.op.scalars[i]), " s", std::to_string(i), ";\n"});
  put(s, {"};\nstatic_assert(sizeof(args) == ", std::to_string(reduce_args_size(d, kr, rr)),
          ", \"loom: the argument block of this kernel differs from the host's\");\n"});
  put(s, {"__device__ __forceinline__ ", dtype_c_name(d.op.value), " element(const args& p"});
  for (std::size_t i = 0; i < n; ++i)
    put(s, {", const ", d.op.kind(i) == leaf_kind::value ? dtype_c_name(d.op.leaves[i]) : std::string_view("long long"), " x",
            std::to_string(i)});
  put(s, {") {\n  return ", d.op.element, ";\n}\n"});
  detail::put_reducer(s, d);
  s += "}  // namespace loom_gen_@\n";
  if (columns) {
    put(s, {"extern \"C\" __global__ void __launch_bounds__(", std::to_string(reduce_block_threads),
            ") loom_rc_@(const LOOM_GRID_CONSTANT loom_gen_@::args p) {\n  using namespace loom_gen_@;\n"
            "  typedef long long I;\n  constexpr int KR = ",
            std::to_string(kr), ", RR = ", std::to_string(rr),
            ";\n  const I total = p.K * p.S;\n"
            "  for (I w = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x; w < total; w += (I)gridDim.x * (I)blockDim.x) {\n"
            "    const I k = w % p.K, sp = w / p.K;  // neighbouring threads: neighbouring outputs\n"});
    detail::put_kept_offsets(s, n, "    ");
    s += "    const I m0 = sp * p.chunk;\n    const I m1 = m0 + p.chunk < p.M ? m0 + p.chunk : p.M;\n"
         "    acc_t acc = identity();\n    if (m0 < m1) {\n      I c[RR];\n      {\n        I a = m0;\n#pragma unroll\n"
         "        for (int j = RR - 1; j > 0; --j) {\n          c[j] = a % p.rext[j];\n          a /= p.rext[j];\n        }\n"
         "        c[0] = a;\n      }\n";
    detail::put_reduced_offsets(s, n);
    put(s, {"      for (I m = m0;;) {\n        fold(acc, ", detail::reduce_element_call(d),
            ", m);\n        if (++m >= m1) break;\n"
            "        for (int j = RR - 1; j >= 0; --j) {  // the next reduced index\n          ++c[j];\n"});
    for (std::size_t i = 0; i < n; ++i) {
      const std::string k = std::to_string(i);
      put(s, {"          o", k, " += p.rst", k, "[j];\n"});
    }
    s += "          if (j == 0 || c[j] < p.rext[j]) break;\n          c[j] = 0;\n";
    for (std::size_t i = 0; i < n; ++i) {
      const std::string k = std::to_string(i);
      put(s, {"          o", k, " -= p.rext[j] * p.rst", k, "[j];\n"});
    }
    put(s, {"        }\n      }\n    }\n    if (p.S == 1)\n      static_cast<", dtype_c_name(d.out),
            "*>(p.out)[k] = finish(acc, p.M);\n    else\n      static_cast<acc_t*>(p.out)[k * p.S + sp] = acc;\n  }\n}\n"});
      return detail::hashed_kernel(s, 0x6c6f6f6d2d7263ull, "loom_rc_");  // "loom-rc"
  }
  put(s, {"extern \"C\" __global__ void __launch_bounds__(", std::to_string(reduce_block_threads),
          ") loom_rd_@(const LOOM_GRID_CONSTANT loom_gen_@::args p) {\n  using namespace loom_gen_@;\n"
          "  typedef long long I;\n  constexpr int KR = ",
          std::to_string(kr), ", RR = ", std::to_string(rr), ";\n  __shared__ acc_t sh[", std::to_string(reduce_block_threads),
          "];\n  const I total = p.K * p.S;\n  const I step = (I)blockDim.x;\n"
          "  for (I w = (I)blockIdx.x; w < total; w += (I)gridDim.x) {\n    const I k = w / p.S, sp = w % p.S;\n"});
  detail::put_kept_offsets(s, n, "    ");
  s += "    const I m0 = sp * p.chunk;\n    const I m1 = m0 + p.chunk < p.M ? m0 + p.chunk : p.M;\n"
       "    acc_t acc = identity();\n    I m = m0 + (I)threadIdx.x;\n";
  // Flat: every leaf's offset is linear in the reduced index (the reduced axes merge): no
  // odometer, and four elements (four loads) in flight per thread in four accumulators.
  {
    std::string body[4];
    for (int u = 0; u < 4; ++u) {
      const std::string q = u == 0 ? "m" : "m + " + std::to_string(u) + " * step";
      std::string& b = body[u];
      b = "        {\n          const I q = " + q + ";\n";
      for (std::size_t i = 0; i < n; ++i) {
        const std::string k = std::to_string(i);
        b += "          const I o" + k + " = ok" + k + " + q * p.fs" + k + ";\n";
      }
      b += "          fold(" + std::string(u == 0 ? "acc" : "acc" + std::to_string(u)) + ", " + detail::reduce_element_call(d) +
           ", q);\n        }\n";
    }
    // flat == 2: every leaf contiguous along the reduced axes and 16-byte aligned at every
    // chunk's start: V-element loads, two groups in flight per thread, then the tail.
    // A float sum or mean adds each group pairwise in float and folds that into its double
    // accumulator: one conversion and one double add per group, not per element (W6's sum of
    // 2^28 floats converted every element at 16 a clock per multiprocessor).
    if (const int V = reduce_vector_width(d); V > 1 && !columns) {
      const std::string VS = std::to_string(V);
      const bool pairwise = (d.reducer == "sum" || d.reducer == "mean") && d.op.value == dtype::float32;
      const auto group = [&](std::string_view at, std::string_view even, std::string_view odd) {
        std::string b = "        {\n          const I q = " + std::string(at) + ";\n";
        for (std::size_t i = 0; i < n; ++i) {
          const std::string k = std::to_string(i), t(dtype_c_name(d.op.leaves[i]));
          b += "          const loom::dev::vec<" + t + ", " + VS + "> u" + k + " = *reinterpret_cast<const loom::dev::vec<" + t +
               ", " + VS + ">*>(p.a" + k + " + ok" + k + " + q);\n";
        }
        std::string call = "element(p";
        for (std::size_t i = 0; i < n; ++i) call += ", u" + std::to_string(i) + ".v[j]";
        call += ")";
        if (pairwise) {  // the group's operands added pairwise in float, then one fold
          b += "          float t[" + VS + "];\n#pragma unroll\n          for (int j = 0; j < " + VS + "; ++j) t[j] = " + call + ";\n";
          for (int h = V / 2; h > 0; h /= 2)
            b += "#pragma unroll\n          for (int j = 0; j < " + std::to_string(h) + "; ++j) t[j] += t[j + " + std::to_string(h) + "];\n";
          b += "          fold(" + std::string(even) + ", t[0], q);\n        }\n";
          return b;
        }
        b += "#pragma unroll\n          for (int j = 0; j < " + VS + "; ++j) fold(j % 2 ? " + std::string(odd) + " : " +
             std::string(even) + ", " + call + ", q + j);\n        }\n";
        return b;
      };
      s += "    if (p.flat == 2) {\n      acc_t acc1 = identity(), acc2 = identity(), acc3 = identity();\n"
           "      const I vstep = step * " + VS + ";\n      I q0 = m0 + (I)threadIdx.x * " + VS + ";\n"
           "      for (; q0 + vstep + " + VS + " <= m1; q0 += 2 * vstep) {\n";
      s += group("q0", "acc", "acc1");
      s += group("q0 + vstep", "acc2", "acc3");
      s += "      }\n      for (; q0 + " + VS + " <= m1; q0 += vstep) {\n";
      s += group("q0", "acc", "acc1");
      s += "      }\n      combine(acc, acc1);\n      combine(acc2, acc3);\n      combine(acc, acc2);\n"
           "      for (I q = m1 - (m1 - m0) % " + VS + " + (I)threadIdx.x; q < m1; q += step) {  // the tail\n";
      for (std::size_t i = 0; i < n; ++i) {
        const std::string k = std::to_string(i);
        s += "        const I o" + k + " = ok" + k + " + q;\n";
      }
      s += "        fold(acc, " + detail::reduce_element_call(d) + ", q);\n      }\n    } else\n";
    }
    s += "    if (p.flat) {\n      acc_t acc1 = identity(), acc2 = identity(), acc3 = identity();\n"
         "      for (; m + 3 * step < m1; m += 4 * step) {\n";
    for (int u = 0; u < 4; ++u) s += body[u];
    s += "      }\n      for (; m < m1; m += step) {\n";
    s += body[0];
    s += "      }\n      combine(acc, acc1);\n      combine(acc2, acc3);\n      combine(acc, acc2);\n"
         "    } else if (m < m1) {\n";
  }
  s += 
       "      I c[RR], dig[RR];\n      {\n        I a = m, b = step;\n#pragma unroll\n"
       "        for (int j = RR - 1; j > 0; --j) {\n          c[j] = a % p.rext[j];\n          a /= p.rext[j];\n"
       "          dig[j] = b % p.rext[j];\n          b /= p.rext[j];\n        }\n        c[0] = a;\n        dig[0] = b;\n      }\n";
  detail::put_reduced_offsets(s, n);
  s += "      for (;;) {\n";
  // element() at the current offsets
  std::string call = "element(p";
  for (std::size_t i = 0; i < n; ++i) {
    const std::string k = std::to_string(i);
    switch (d.op.kind(i)) {
      case leaf_kind::value: call += ", p.a" + k + "[o" + k + "]"; break;
      case leaf_kind::lazy: call += ", o" + k; break;
      case leaf_kind::position: call += ", p.a" + k + " + o" + k; break;
    }
  }
  call += ")";
  put(s, {"        fold(acc, ", call, ", m);\n        m += step;\n        if (m >= m1) break;\n        I carry = 0;\n#pragma unroll\n"
          "        for (int j = RR - 1; j >= 0; --j) {\n          const I a = dig[j] + carry;\n          c[j] += a;\n"});
  for (std::size_t i = 0; i < n; ++i) {
    const std::string k = std::to_string(i);
    put(s, {"          o", k, " += a * p.rst", k, "[j];\n"});
  }
  s += "          carry = 0;\n          if (j > 0 && c[j] >= p.rext[j]) {\n            c[j] -= p.rext[j];\n";
  for (std::size_t i = 0; i < n; ++i) {
    const std::string k = std::to_string(i);
    put(s, {"            o", k, " -= p.rext[j] * p.rst", k, "[j];\n"});
  }
  s += "            carry = 1;\n          }\n        }\n      }\n    }\n"
       "    sh[threadIdx.x] = acc;\n    __syncthreads();\n"
       "    for (unsigned h = blockDim.x / 2; h > 0; h >>= 1) {\n"
       "      if (threadIdx.x < h) combine(sh[threadIdx.x], sh[threadIdx.x + h]);\n      __syncthreads();\n    }\n";
  put(s, {"    if (threadIdx.x == 0) {\n      if (p.S == 1)\n        static_cast<", dtype_c_name(d.out),
          "*>(p.out)[k] = finish(sh[0], p.M);\n      else\n        static_cast<acc_t*>(p.out)[w] = sh[0];\n    }\n"
          "    __syncthreads();\n  }\n}\n"});
  return detail::hashed_kernel(s, 0x6c6f6f6d2d7264ull, "loom_rd_");  // "loom-rd"
}

/// Lanes of the second stage per output for S partials in blocks of `block` threads: a power of
/// two, at least four partials a lane, at most the block. The kernel works it out the same way.
inline index_t finish_lanes(index_t S, index_t block) {
  index_t g = 1;
  while (g * 2 <= block && g * 8 <= S) g *= 2;
  return g;
}

/// Prints the second stage of reducer d (its operand's expression does not matter): G lanes per
/// output (finish_lanes) fold every G-th of its S partials in order (neighbouring lanes read
/// neighbouring partials), then combine as a tree in shared memory.
/// The block walks its groups of outputs together, so that every thread meets every barrier.
LOOM_NOINLINE inline kernel_text print_reduce_finish(const reduce_desc& d) {
  using detail::put;
  std::string s;
  put(s, {"// loom reduction, second stage: ", d.reducer, " of ", dtype_c_name(d.op.value), " into ", dtype_c_name(d.out),
          "\nnamespace loom_gen_@ {\nstruct args {\n  void* out;\n  const void* partial;\n  long long K, S, M;\n};\n"});
  detail::put_reducer(s, d);
  put(s, {"}  // namespace loom_gen_@\nextern \"C\" __global__ void __launch_bounds__(", std::to_string(reduce_block_threads),
          ") loom_rf_@(const LOOM_GRID_CONSTANT loom_gen_@::args p) {\n  using namespace loom_gen_@;\n"
          "  typedef long long I;\n  __shared__ acc_t sh[", std::to_string(reduce_block_threads),
          "];\n  const acc_t* part = static_cast<const acc_t*>(p.partial);\n"
          "  I G = 1;  // lanes per output, as the host's finish_lanes\n"
          "  while (G * 2 <= (I)blockDim.x && G * 8 <= p.S) G *= 2;\n"
          "  const I lane = (I)threadIdx.x % G, per = (I)blockDim.x / G;\n"
          "  for (I base = (I)blockIdx.x * per; base < p.K; base += (I)gridDim.x * per) {\n"
          "    const I k = base + (I)threadIdx.x / G;\n    acc_t a = identity();\n"
          "    if (k < p.K)\n      for (I j = lane; j < p.S; j += G) combine(a, part[k * p.S + j]);\n"
          "    sh[threadIdx.x] = a;\n    __syncthreads();\n"
          "    for (I h = G / 2; h > 0; h /= 2) {\n      if (lane < h) combine(sh[threadIdx.x], sh[threadIdx.x + h]);\n"
          "      __syncthreads();\n    }\n    if (lane == 0 && k < p.K) static_cast<",
          dtype_c_name(d.out), "*>(p.out)[k] = finish(sh[threadIdx.x], p.M);\n    __syncthreads();\n  }\n}\n"});
  return detail::hashed_kernel(s, 0x6c6f6f6d2d7266ull, "loom_rf_");  // "loom-rf"
}

/// Writes the argument block of a reduction launch: out (results or partials), the leaves as
/// plan left them (leaf cursors: strides over [kept axes..., reduced axes...]), the shape, the
/// scalars.
inline void pack_reduce_args(arg_block& out, const reduce_desc& d, const reduce_launch& rl, std::uintptr_t dst,
                             const array_cursor* leaves, const scalar_value* sv) {
  const std::size_t need = reduce_args_size(d, rl.kr, rl.rr);
  if (need > arg_block::capacity)
    throw cuda_error("loom: the reduction has too many operands for one kernel (" + std::to_string(need) +
                     " bytes of arguments, the limit is " + std::to_string(arg_block::capacity) + ")");
  out.size = 0;
  const std::uint64_t o = dst;
  out.put(&o, 8);
  const std::size_t n = d.op.leaves.size();
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint64_t a = leaves[i].base;
    out.put(&a, 8);
  }
  for (index_t v : {rl.K, rl.M, rl.S, rl.chunk}) out.put_index(v);
  for (std::size_t k = 0; k < rl.kr; ++k) out.put_index(rl.kext[k]);
  for (std::size_t k = 0; k < rl.rr; ++k) out.put_index(rl.rext[k]);
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t k = 0; k < rl.kr; ++k) out.put_index(leaves[i].stride[k]);
    for (std::size_t k = 0; k < rl.rr; ++k) out.put_index(leaves[i].stride[rl.kr + k]);
  }
  // flat where, for every leaf, the reduced axes merge into one stride fs
  std::array<index_t, 64> fs{};
  bool flat = n <= fs.size();
  for (std::size_t i = 0; flat && i < n; ++i)
    flat = merged_stride(rl.rext.data(), leaves[i].stride.data() + rl.kr, 0, rl.rr, fs[i]);
  // flat == 2 (the vector path): every leaf steps by one element along the reduced axes, each
  // chunk starts on a 16-byte boundary of every leaf (aligned bases, kept strides and chunk
  // length multiples of the group)
  int mode = flat ? 1 : 0;
  if (const int V = reduce_vector_width(d); flat && V > 1 && !rl.columns && n > 0 && rl.chunk % V == 0) {
    mode = 2;
    for (std::size_t i = 0; mode == 2 && i < n; ++i)
      if (fs[i] != 1 || !kept_starts_aligned(leaves[i], rl.kr, V)) mode = 1;
  }
  out.put_index(mode);
  for (std::size_t i = 0; i < n; ++i) out.put_index(flat && i < fs.size() ? fs[i] : 0);
  for (std::size_t size : {8u, 4u, 1u})
    for (std::size_t i = 0; i < d.op.scalars.size(); ++i)
      if (dtype_size(d.op.scalars[i]) == size) out.put(sv[i].bytes, size);
  out.size = (out.size + 7) & ~std::size_t(7);
}

}  // namespace loom::cuda::codegen
