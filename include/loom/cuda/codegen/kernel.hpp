// loom/cuda/codegen/kernel.hpp: elementwise kernels, printed once per expression type and layout.
//
// A kernel is described at run time by a kernel_desc (destination dtype, the element expression
// the emitters printed, the dtypes of its leaves and scalars) and a layout_key; print_kernel()
// turns the pair into CUDA C++. Everything here is ordinary run-time code, so the unit tests can
// print every op x dtype x layout in loops; the template at the bottom (kernel_family) only
// binds an expression type to its family_state, which keeps the printed sources and loaded
// kernels: one print per (type, destination dtype, layout key), one atomic load per launch after
// the first (runtime::cached_kernel). No other part is a template, so an expression type adds
// little more than its description to a program's size and build time.
//
// Leaves bound at a launch to the very same elements (x * x: one array read twice) are loaded
// once: a variant of the kernel with those leaves sharing a load (kernel_desc::same_as), found
// by an atomic load and a comparison while launches keep binding the same arrays.
//
// A kernel takes one parameter, a struct `args` (the argument block): pointers, then extents and
// strides (64-bit), then scalars by decreasing size. Fields sorted by alignment have no padding,
// so the host writes the block by the same walk (for_each_field) that printed it, and the
// generated source static_asserts its size: a host/device disagreement fails the NVRTC compile,
// which the tests run without a GPU.
//
// With extents baked in (options::bake_extents, as XLA specialises to shapes), the extents,
// strides and the vector flag are literals in the source instead of fields, so there is one
// kernel per shape; that policy exists to be measured against the default on a GPU.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "loom/core/config.hpp"
#include "loom/core/dtype.hpp"
#include "loom/core/error.hpp"
#include "loom/cuda/codegen/emit.hpp"
#include "loom/cuda/codegen/layout.hpp"
#include "loom/cuda/codegen/preamble.hpp"
#include "loom/cuda/runtime/hash.hpp"
#include "loom/cuda/runtime/module_cache.hpp"

namespace loom::cuda::codegen {

/// Threads per block of every elementwise kernel (the launch bound the source declares).
inline constexpr int block_threads = 256;

/// What an expression type compiles to, without its layout.
struct kernel_desc {
  dtype dst = dtype::float32;       ///< the destination's element type
  dtype value = dtype::float32;     ///< the expression's value type (converted to dst on store)
  std::vector<dtype> leaves;        ///< element types of the leaves, in emission order
  std::vector<leaf_kind> kinds;     ///< what each leaf parameter holds (empty: all values)
  std::vector<dtype> scalars;       ///< types of the scalar parameters, in emission order
  std::string element;              ///< the element expression over x<k> and p.s<k>
  /// For each leaf, the leaf whose loaded value it takes (empty: each its own). A launch whose
  /// leaves k and j < k read the very same elements (the same array and strides, x * x * x)
  /// prints a kernel that loads them once (shared_leaves below).
  std::vector<std::uint16_t> same_as;

  /// The leaf whose load leaf i's value is.
  [[nodiscard]] std::size_t source(std::size_t i) const { return i < same_as.size() ? same_as[i] : i; }

  [[nodiscard]] leaf_kind kind(std::size_t i) const { return i < kinds.size() ? kinds[i] : leaf_kind::value; }
  /// True where the kernel takes scalar accesses only, one element per step: some leaf is a
  /// position or lazy (generators, concat, pad), or the element is large. Vector accesses print
  /// the element V + 1 times (the V lanes of the vector loop, the scalar tail); sin and cos carry
  /// a Payne-Hanek argument reduction each, and every copy of them cost NVRTC about 25 ms of a
  /// first call (sin(a) * 1.25f + cos(b) - 0.5f: 202 ms with 5 copies, 90 with one, on the 2-core
  /// VM of 2026-11-27), where the kernel is bound more by their arithmetic than by load width.
  [[nodiscard]] bool scalar_only() const {
    for (leaf_kind k : kinds)
      if (k != leaf_kind::value) return true;
    return large_element();
  }
  /// True where the element calls sin or cos.
  [[nodiscard]] bool large_element() const {
    return element.find("loom::dev::sin(") != std::string::npos || element.find("loom::dev::cos(") != std::string::npos;
  }
  /// Elements per 16-byte access of the widest array (destination or leaf); 1 where scalar_only.
  [[nodiscard]] int lanes() const {
    if (scalar_only()) return 1;
    std::size_t widest = dtype_size(dst);
    for (dtype t : leaves) widest = std::max(widest, dtype_size(t));
    return static_cast<int>(16 / widest);
  }
};

/// The leaves of one launch that read the very same elements, for up to max_leaves leaves.
struct leaf_sources {
  static constexpr std::size_t max_leaves = 64;
  std::array<std::uint16_t, max_leaves> same_as{};
  std::size_t count = 0;
  bool any = false;  ///< some leaf takes another's value

  [[nodiscard]] bool equals(const std::vector<std::uint16_t>& v) const {
    return v.size() == count && std::equal(v.begin(), v.end(), same_as.begin());
  }
};

/// Finds, for every value leaf of d as the cursors `leaves` (planned: plan_layout's form, `rank`
/// strides) bind it, the first leaf of the same dtype whose cursor is identical: both then read
/// the same element at every index, and the kernel loads it once. Expressions of more than
/// leaf_sources::max_leaves leaves load each leaf.
inline leaf_sources shared_leaves(const kernel_desc& d, const array_cursor* leaves, std::size_t rank) {
  leaf_sources r;
  const std::size_t n = d.leaves.size();
  if (n < 2 || n > leaf_sources::max_leaves) return r;
  r.count = n;
  for (std::size_t k = 0; k < n; ++k) {
    r.same_as[k] = static_cast<std::uint16_t>(k);
    // (a null base is no memory: an empty array, or a plan made without a device)
    if (d.kind(k) != leaf_kind::value || leaves[k].elem_size == 0 || leaves[k].base == 0) continue;
    for (std::size_t j = 0; j < k; ++j) {
      if (r.same_as[j] != j || d.kind(j) != leaf_kind::value || d.leaves[j] != d.leaves[k]) continue;
      const array_cursor &a = leaves[j], &b = leaves[k];
      bool same = a.base == b.base && a.offset == b.offset && a.elem_size == b.elem_size;
      for (std::size_t q = 0; same && q < rank; ++q) same = a.stride[q] == b.stride[q];
      if (same) {
        r.same_as[k] = static_cast<std::uint16_t>(j);
        r.any = true;
        break;
      }
    }
  }
  return r;
}

/// A printed kernel: its symbol and its source (the preamble, then `body`).
struct kernel_text {
  std::string name;  ///< e.g. "loom_ew_c_3f09c2d1a4b5e6f7"
  std::string body;  ///< everything after the preamble; self-contained apart from it
  [[nodiscard]] std::string source() const { return preamble() + body; }
};

// ---------------------------------------------------------------------------------------------
// The argument block
// ---------------------------------------------------------------------------------------------

enum class field_kind : std::uint8_t { dst, leaf, count, extents, dst_strides, leaf_strides, scalar, vec };

/// One field of the argument block: what it holds, for which leaf/scalar, its element size and count.
struct field {
  field_kind kind;
  std::size_t index;
  std::size_t size;
  std::size_t count;
};

/// Calls f(field) for every field of the argument block of (d, key), in block order. `baked`:
/// the extents, strides and vector flag are literals, not fields.
template <class F>
void for_each_field(const kernel_desc& d, layout_key key, bool baked, F&& f) {
  const std::size_t r = key.rank;
  f(field{field_kind::dst, 0, 8, 1});
  for (std::size_t i = 0; i < d.leaves.size(); ++i) f(field{field_kind::leaf, i, 8, 1});
  if (!baked) {
    f(field{field_kind::count, 0, 8, 1});
    if (key.cls != layout_class::contiguous) {
      f(field{field_kind::extents, 0, 8, r});
      if (key.cls == layout_class::strided) f(field{field_kind::dst_strides, 0, 8, r});
      for (std::size_t i = 0; i < d.leaves.size(); ++i) f(field{field_kind::leaf_strides, i, 8, r});
    }
  }
  for (std::size_t i = 0; i < d.scalars.size(); ++i)
    if (dtype_size(d.scalars[i]) == 8) f(field{field_kind::scalar, i, 8, 1});
  if (!baked && key.cls != layout_class::strided) f(field{field_kind::vec, 0, 4, 1});
  for (std::size_t i = 0; i < d.scalars.size(); ++i)
    if (dtype_size(d.scalars[i]) == 4) f(field{field_kind::scalar, i, 4, 1});
  for (std::size_t i = 0; i < d.scalars.size(); ++i)
    if (dtype_size(d.scalars[i]) == 1) f(field{field_kind::scalar, i, 1, 1});
}

/// The size of the argument block of (d, key): the fields, rounded up to the 8-byte alignment.
inline std::size_t args_size(const kernel_desc& d, layout_key key, bool baked) {
  std::size_t s = 0;
  for_each_field(d, key, baked, [&](const field& f) { s += f.size * f.count; });
  return (s + 7) & ~std::size_t(7);
}

/// The argument block of one launch, written as the kernel's `args` struct lays it out.
struct arg_block {
  /// The most bytes a kernel parameter may take on every architecture loom supports.
  static constexpr std::size_t capacity = 4096;
  alignas(16) unsigned char bytes[capacity];
  std::size_t size = 0;

  void put(const void* p, std::size_t n) {
    std::memcpy(bytes + size, p, n);
    size += n;
  }
  void put_index(index_t v) { put(&v, sizeof v); }
};

/// Writes the argument block of a launch: `cs` the cursors as plan_layout left them (cs[0] the
/// destination), `sv` the scalar values. Throws cuda_error when the block exceeds the limit.
inline void pack_args(arg_block& out, const kernel_desc& d, const launch_shape& ls, const array_cursor* cs,
                      const scalar_value* sv, bool baked) {
  const std::size_t need = args_size(d, ls.key, baked);
  if (need > arg_block::capacity)
    throw cuda_error("loom: the expression has too many operands for one kernel (" + std::to_string(need) +
                     " bytes of arguments, the limit is " + std::to_string(arg_block::capacity) + ")");
  out.size = 0;
  for_each_field(d, ls.key, baked, [&](const field& f) {
    switch (f.kind) {
      case field_kind::dst: {
        const std::uint64_t a = cs[0].base;
        out.put(&a, 8);
        break;
      }
      case field_kind::leaf: {
        const std::uint64_t a = cs[1 + f.index].base;
        out.put(&a, 8);
        break;
      }
      case field_kind::count: out.put_index(ls.key.cls == layout_class::contiguous ? ls.elements : ls.units); break;
      case field_kind::extents:
        for (std::size_t k = 0; k < f.count; ++k) out.put_index(ls.extent[k]);
        break;
      case field_kind::dst_strides:
        for (std::size_t k = 0; k < f.count; ++k) out.put_index(cs[0].stride[k]);
        break;
      case field_kind::leaf_strides:
        for (std::size_t k = 0; k < f.count; ++k) out.put_index(cs[1 + f.index].stride[k]);
        break;
      case field_kind::scalar: out.put(sv[f.index].bytes, f.size); break;
      case field_kind::vec: {
        const std::int32_t v = ls.vec ? 1 : 0;
        out.put(&v, 4);
        break;
      }
    }
  });
  out.size = (out.size + 7) & ~std::size_t(7);
}

/// The values a kernel with baked extents has as literals: the launch shape and the cursors'
/// strides (cs[0] the destination).
struct baked_values {
  const launch_shape* shape = nullptr;
  const array_cursor* cursors = nullptr;
};

// ---------------------------------------------------------------------------------------------
// Printing
// ---------------------------------------------------------------------------------------------

namespace detail {

/// Appends the parts to s. One out-of-line call per printed line keeps these printers cheap to
/// compile in every translation unit that launches a kernel.
LOOM_NOINLINE inline void put(std::string& s, std::initializer_list<std::string_view> parts) {
  for (std::string_view p : parts) s.append(p.data(), p.size());
}

/// The kernel printed as s, '@' standing for its hash: the hash (salted per kernel kind) of s in
/// 16 hex digits replaces every '@', and the kernel is named prefix + the hash, so that the same
/// body always has the same name and different bodies never share one.
LOOM_NOINLINE inline kernel_text hashed_kernel(const std::string& s, std::uint64_t salt, const std::string& prefix) {
  const std::uint64_t h = cuda::detail::hasher(salt).field(s).finish64();
  static constexpr char digits[] = "0123456789abcdef";
  std::string hex(16, '0');
  for (int i = 0; i < 16; ++i) hex[static_cast<std::size_t>(15 - i)] = digits[(h >> (4 * i)) & 15u];
  std::string body;
  body.reserve(s.size() + 64);
  for (char c : s) {
    if (c == '@')
      body += hex;
    else
      body += c;
  }
  return {prefix + hex, std::move(body)};
}

/// "(I)123LL": an index literal of the kernel's index type.
inline std::string index_literal(index_t v) { return "(I)" + std::to_string(v) + "LL"; }

/// "  const I name[R] = {(I)p.name[0], ...};" or, baked, the literals of `values`.
LOOM_NOINLINE inline void put_index_array(std::string& s, std::string_view name, std::size_t r, const index_t* values) {
  put(s, {"  const I ", name, "[R] = {"});
  for (std::size_t k = 0; k < r; ++k) {
    if (k) s += ", ";
    if (values)
      s += index_literal(values[k]);
    else
      put(s, {"(I)p.", name, "[", std::to_string(k), "]"});
  }
  s += "};\n";
}

/// How the kernel hands each leaf's value to element().
enum class leaf_access { vector_lane, at_i, at_offset };

/// "element(p, <leaf 0>, <leaf 1>, ...)", converted to the destination's type where it differs.
LOOM_NOINLINE inline std::string element_call(const kernel_desc& d, leaf_access a) {
  std::string s;
  const bool convert = d.value != d.dst;
  if (convert) put(s, {"loom::dev::cvt<", dtype_c_name(d.dst), ">("});
  s += "element(p";
  for (std::size_t i = 0; i < d.leaves.size(); ++i) {
    const std::string k = std::to_string(i);
    const leaf_kind kind = d.kind(i);
    if (kind == leaf_kind::lazy) {  // its offset; element() loads in the branch that reads it
      put(s, {", (long long)", a == leaf_access::at_offset ? "o" + k : std::string("i")});
      continue;
    }
    if (kind == leaf_kind::position) {  // the start plus the offset
      put(s, {", p.a", k, " + (long long)", a == leaf_access::at_offset ? "o" + k : std::string("i")});
      continue;
    }
    const std::string from = std::to_string(d.source(i));  // the leaf whose load this is
    switch (a) {
      case leaf_access::vector_lane: put(s, {", v", from, ".v[j]"}); break;
      case leaf_access::at_i: put(s, {", p.a", from, "[i]"}); break;
      case leaf_access::at_offset: put(s, {", p.a", from, "[o", from, "]"}); break;
    }
  }
  s += convert ? "))" : ")";
  return s;
}

/// The vector body of contiguous and broadcast kernels: load every leaf (contiguous: at element
/// i; broadcast: at its offset o<k>, or one element repeated where its inner stride is 0),
/// compute each lane, store the vector at element index `dst_index`.
LOOM_NOINLINE inline void put_vector_body(std::string& s, const kernel_desc& d, std::string_view indent,
                                          std::string_view dst_index, bool broadcast) {
  for (std::size_t i = 0; i < d.leaves.size(); ++i) {
    if (d.source(i) != i) continue;  // loaded as another leaf
    const std::string k = std::to_string(i);
    const std::string_view t = dtype_c_name(d.leaves[i]);
    const std::string at = broadcast ? "o" + k : std::string("i");
    if (!broadcast) {
      put(s, {indent, "const loom::dev::vec<", t, ", V> v", k, " = *reinterpret_cast<const loom::dev::vec<", t,
              ", V>*>(p.a", k, " + ", at, ");\n"});
      continue;
    }
    put(s, {indent, "loom::dev::vec<", t, ", V> v", k, ";\n"});
    put(s, {indent, "if (st", k, "[R - 1] == 0) {\n"});
    put(s, {indent, "  const ", t, " b = p.a", k, "[", at, "];\n#pragma unroll\n"});
    put(s, {indent, "  for (int j = 0; j < V; ++j) v", k, ".v[j] = b;\n"});
    put(s, {indent, "} else {\n"});
    put(s, {indent, "  v", k, " = *reinterpret_cast<const loom::dev::vec<", t, ", V>*>(p.a", k, " + ", at, ");\n"});
    put(s, {indent, "}\n"});
  }
  const std::string_view dt = dtype_c_name(d.dst);
  put(s, {indent, "loom::dev::vec<", dt, ", V> r;\n#pragma unroll\n"});
  put(s, {indent, "for (int j = 0; j < V; ++j) r.v[j] = ", element_call(d, leaf_access::vector_lane), ";\n"});
  put(s, {indent, "*reinterpret_cast<loom::dev::vec<", dt, ", V>*>(p.d + ", dst_index, ") = r;\n"});
}

LOOM_NOINLINE inline void put_contiguous(std::string& s, const kernel_desc& d, const baked_values* baked) {
  put(s, {"  const I n = ", baked ? index_literal(baked->shape->elements) : std::string("(I)p.n"), ";\n"});
  s += "  const I tid = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x;\n"
       "  const I step = (I)gridDim.x * (I)blockDim.x;\n";
  if (d.scalar_only()) {
    s += "  constexpr I units = 0;\n";
  } else {
    put(s, {"  const I units = ", baked ? (baked->shape->vec ? "n / V" : "0") : "p.vec ? n / V : 0", ";\n"});
    s += "  for (I u = tid; u < units; u += step) {\n"
         "    const I i = u * V;\n";
    put_vector_body(s, d, "    ", "i", false);
    s += "  }\n";
  }
  put(s, {"  for (I i = units * V + tid; i < n; i += step) p.d[i] = ", element_call(d, leaf_access::at_i), ";\n"});
}

/// The odometer of broadcast and strided kernels: this thread's first multi-index and the grid
/// stride as digits (the only divisions), and the offset of every array there.
LOOM_NOINLINE inline void put_odometer_setup(std::string& s, const kernel_desc& d, std::size_t r, bool strided,
                                             const baked_values* baked) {
  const launch_shape* ls = baked ? baked->shape : nullptr;
  put(s, {"  const I total = ", ls ? index_literal(ls->units) : std::string("(I)p.units"), ";\n"});
  s += "  const I step = (I)gridDim.x * (I)blockDim.x;\n"
       "  I u = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x;\n"
       "  if (u >= total) return;\n";
  put_index_array(s, "ext", r, ls ? ls->extent.data() : nullptr);
  if (strided) put_index_array(s, "dst_st", r, baked ? baked->cursors[0].stride.data() : nullptr);
  for (std::size_t i = 0; i < d.leaves.size(); ++i)
    put_index_array(s, "st" + std::to_string(i), r, baked ? baked->cursors[1 + i].stride.data() : nullptr);
  s += "  I c[R], dig[R];\n"
       "  {\n"
       "    I a = u, b = step;\n"
       "#pragma unroll\n"
       "    for (int k = R - 1; k > 0; --k) {\n"
       "      c[k] = a % ext[k];\n"
       "      a /= ext[k];\n"
       "      dig[k] = b % ext[k];\n"
       "      b /= ext[k];\n"
       "    }\n"
       "    c[0] = a;\n"
       "    dig[0] = b;\n"
       "  }\n";
  if (!strided && d.leaves.empty()) return;
  s += "  I ";
  if (strided) s += "od = 0";
  for (std::size_t i = 0; i < d.leaves.size(); ++i) put(s, {i || strided ? ", o" : "o", std::to_string(i), " = 0"});
  s += ";\n#pragma unroll\n  for (int k = 0; k < R; ++k) {\n";
  if (strided) s += "    od += c[k] * dst_st[k];\n";
  for (std::size_t i = 0; i < d.leaves.size(); ++i) {
    const std::string k = std::to_string(i);
    put(s, {"    o", k, " += c[k] * st", k, "[k];\n"});
  }
  s += "  }\n";
}

/// One odometer step: the multi-index and every offset move by the grid stride (adds, and at
/// most one carry per axis).
LOOM_NOINLINE inline void put_advance(std::string& s, const kernel_desc& d, bool strided) {
  s += "    u += step;\n"
       "    if (u >= total) break;\n"
       "    I carry = 0;\n"
       "#pragma unroll\n"
       "    for (int k = R - 1; k >= 0; --k) {\n"
       "      const I a = dig[k] + carry;\n"
       "      c[k] += a;\n";
  if (strided) s += "      od += a * dst_st[k];\n";
  for (std::size_t i = 0; i < d.leaves.size(); ++i) {
    const std::string k = std::to_string(i);
    put(s, {"      o", k, " += a * st", k, "[k];\n"});
  }
  s += "      carry = 0;\n"
       "      if (k > 0 && c[k] >= ext[k]) {\n"
       "        c[k] -= ext[k];\n";
  if (strided) s += "        od -= ext[k] * dst_st[k];\n";
  for (std::size_t i = 0; i < d.leaves.size(); ++i) {
    const std::string k = std::to_string(i);
    put(s, {"        o", k, " -= ext[k] * st", k, "[k];\n"});
  }
  s += "        carry = 1;\n"
       "      }\n"
       "    }\n";
}

LOOM_NOINLINE inline void put_broadcast(std::string& s, const kernel_desc& d, std::size_t r, const baked_values* baked) {
  put_odometer_setup(s, d, r, false, baked);
  if (d.scalar_only()) {
    s += "  for (;;) {\n";
    put(s, {"    p.d[u] = ", element_call(d, leaf_access::at_offset), ";\n"});
  } else {
    put(s, {"  ", baked ? (baked->shape->vec ? "constexpr bool vec = true" : "constexpr bool vec = false")
                        : "const bool vec = p.vec != 0",
            ";\n"});
    s += "  for (;;) {\n"
         "    if (vec) {\n";
    put_vector_body(s, d, "      ", "u * V", true);
    s += "    } else {\n";
    put(s, {"      p.d[u] = ", element_call(d, leaf_access::at_offset), ";\n"});
    s += "    }\n";
  }
  put_advance(s, d, false);
  s += "  }\n";
}

LOOM_NOINLINE inline void put_strided(std::string& s, const kernel_desc& d, std::size_t r, const baked_values* baked) {
  put_odometer_setup(s, d, r, true, baked);
  s += "  for (;;) {\n";
  put(s, {"    p.d[od] = ", element_call(d, leaf_access::at_offset), ";\n"});
  put_advance(s, d, true);
  s += "  }\n";
}

LOOM_NOINLINE inline void put_field(std::string& s, const kernel_desc& d, layout_key key, const field& f) {
  const std::string idx = std::to_string(f.index), count = std::to_string(f.count);
  switch (f.kind) {
    case field_kind::dst: put(s, {"  ", dtype_c_name(d.dst), "* d;\n"}); break;
    case field_kind::leaf:
      if (d.kind(f.index) == leaf_kind::position)
        put(s, {"  long long a", idx, ";\n"});  // the position at iteration index 0
      else
        put(s, {"  const ", dtype_c_name(d.leaves[f.index]), "* a", idx, ";\n"});
      break;
    case field_kind::count: s += key.cls == layout_class::contiguous ? "  long long n;\n" : "  long long units;\n"; break;
    case field_kind::extents: put(s, {"  long long ext[", count, "];\n"}); break;
    case field_kind::dst_strides: put(s, {"  long long dst_st[", count, "];\n"}); break;
    case field_kind::leaf_strides: put(s, {"  long long st", idx, "[", count, "];\n"}); break;
    case field_kind::scalar: put(s, {"  ", dtype_c_name(d.scalars[f.index]), " s", idx, ";\n"}); break;
    case field_kind::vec: s += "  int vec;\n"; break;
  }
}

}  // namespace detail

/// Prints the kernel of (d, key). With `baked`, the extents, strides and vector flag of that one
/// launch are literals. The name is "loom_ew_" + a tag (c: contiguous; b<rank>: broadcast;
/// s<rank>: strided; then w for 64-bit indices, x for baked extents) + a hash of the body, so
/// the same body always has the same name and different bodies never share one.
LOOM_NOINLINE inline kernel_text print_kernel(const kernel_desc& d, layout_key key, const baked_values* baked = nullptr) {
  using detail::put;
  const std::size_t r = key.rank;
  std::string tag = key.cls == layout_class::contiguous ? "c"
                    : key.cls == layout_class::broadcast ? "b" + std::to_string(r)
                                                         : "s" + std::to_string(r);
  if (key.wide) tag += "w";
  if (baked) tag += "x";

  // '@' stands for the hash until the body is complete; C++ never uses the character.
  std::string s;
  s.reserve(4096);
  put(s, {"// loom elementwise kernel: ", key.describe(), baked ? ", extents baked in\n" : "\n"});
  s += "namespace loom_gen_@ {\nstruct args {\n";
  for_each_field(d, key, baked != nullptr, [&](const field& f) { detail::put_field(s, d, key, f); });
  put(s, {"};\nstatic_assert(sizeof(args) == ", std::to_string(args_size(d, key, baked != nullptr)),
          ", \"loom: the argument block of this kernel differs from the host's\");\n"});
  put(s, {"__device__ __forceinline__ ", dtype_c_name(d.value), " element(const args& p"});
  for (std::size_t i = 0; i < d.leaves.size(); ++i)
    put(s, {", const ", d.kind(i) == leaf_kind::value ? dtype_c_name(d.leaves[i]) : std::string_view("long long"), " x",
            std::to_string(i)});
  put(s, {") {\n  return ", d.element, ";\n}\n}  // namespace loom_gen_@\n"});
  put(s, {"extern \"C\" __global__ void __launch_bounds__(", std::to_string(block_threads), ") loom_ew_", tag,
          "_@(const LOOM_GRID_CONSTANT loom_gen_@::args p) {\n  using namespace loom_gen_@;\n  typedef ", key.wide ? "long long" : "int",
          " I;\n  constexpr int V = ", std::to_string(d.lanes()), ";\n"});
  if (key.cls != layout_class::contiguous) put(s, {"  constexpr int R = ", std::to_string(r), ";\n"});
  switch (key.cls) {
    case layout_class::contiguous: detail::put_contiguous(s, d, baked); break;
    case layout_class::broadcast: detail::put_broadcast(s, d, r, baked); break;
    case layout_class::strided: detail::put_strided(s, d, r, baked); break;
  }
  s += "}\n";

  return detail::hashed_kernel(s, 0x6c6f6f6d2d6577ull, "loom_ew_" + tag + "_");  // "loom-ew"
}

// ---------------------------------------------------------------------------------------------
// Expression types
// ---------------------------------------------------------------------------------------------

/// The description of assigning an expression of node type N into elements of type D.
template <class N, class D>
  requires emittable<N>
kernel_desc describe() {
  emit_state st;
  emitted e = emitter<N>::emit(st);
  kernel_desc d;
  d.dst = dtype_of<D>;
  d.value = e.type;
  d.leaves = st.leaves();
  d.kinds = st.kinds();
  d.scalars = st.scalars();
  d.element = std::move(e.text);
  return d;
}

/// The kernel of `d` with the extents of one launch baked in: one per description (a family's
/// desc() is one object per type) and distinct launch shape, found through a process-wide map
/// under a lock. That policy is for measuring kernels against the default, not for the dispatch
/// fast path. `cs`: the n cursors as plan_layout left them.
LOOM_NOINLINE inline const kernel_handle& baked_kernel(const kernel_desc& d, const launch_shape& ls,
                                                       const array_cursor* cs, std::size_t n) {
  std::string signature;
  signature.reserve(48 + 8 * max_rank * (n + 1));
  auto add = [&](const void* p, std::size_t bytes) { signature.append(static_cast<const char*>(p), bytes); };
  const kernel_desc* which = &d;
  const std::size_t slot = ls.key.slot();
  add(&which, sizeof which);
  add(&slot, sizeof slot);
  add(&ls.vec, sizeof ls.vec);
  add(&ls.elements, sizeof ls.elements);
  add(&ls.units, sizeof ls.units);
  add(ls.extent.data(), sizeof(index_t) * ls.key.rank);
  for (std::size_t c = 0; c < n; ++c) add(cs[c].stride.data(), sizeof(index_t) * ls.key.rank);
  struct registry {
    std::mutex mutex;
    std::unordered_map<std::string, const kernel_handle*> kernels;
  };
  static registry* const reg = new registry;  // process-wide, never destroyed (handles live as long)
  {
    std::lock_guard<std::mutex> lock(reg->mutex);
    if (auto it = reg->kernels.find(signature); it != reg->kernels.end()) return *it->second;
  }
  const baked_values bv{&ls, cs};
  const kernel_text t = print_kernel(d, ls.key, &bv);
  const kernel_handle& k = runtime::module_cache::process().kernel(t.source(), t.name, {}, {});
  std::lock_guard<std::mutex> lock(reg->mutex);
  reg->kernels.emplace(std::move(signature), &k);
  return k;
}

/// A printed kernel with its full source, as kernel_family keeps it.
struct generated_kernel {
  std::string name;
  std::string source;
};

/// The kernels of one description: the source of each layout key (printed on first use, then the
/// same string object), the cached kernel of each key (one atomic load per launch after the
/// first), and kernels with baked extents. One object per expression type and destination type
/// (kernel_family below), or per dtype for the copies of cuda/assign.hpp; none of it is a
/// template, so an expression type adds only its description to a program.
class family_state {
 public:
  explicit family_state(kernel_desc d) : desc_(std::move(d)) {}
  family_state(const family_state&) = delete;
  family_state& operator=(const family_state&) = delete;

  [[nodiscard]] const kernel_desc& desc() const noexcept { return desc_; }

  /// The printed kernel of `key`: printed once, then the same object.
  LOOM_NOINLINE const generated_kernel& generated(layout_key key) {
    slot& s = slots_[key.slot()];
    std::call_once(s.once, [&] {
      kernel_text t = print_kernel(desc_, key);
      s.kernel = generated_kernel{std::move(t.name), t.source()};
    });
    return s.kernel;
  }

  /// The loaded kernel for `key`: compiled (or read from the disk cache) on the first call.
  const kernel_handle& kernel(layout_key key) {
    return kernels_[key.slot()].get([this, key] {
      const generated_kernel& g = generated(key);
      return kernel_request{g.source, g.name, {}, {}};
    });
  }

  /// The kernel with the extents of one launch baked in (see baked_kernel above).
  const kernel_handle& baked(const launch_shape& ls, const array_cursor* cs, std::size_t n) const {
    return baked_kernel(desc_, ls, cs, n);
  }

  /// The description and printed kernel of `key` with some leaves loaded once (shared_leaves).
  struct shared_variant {
    std::size_t slot = 0;
    kernel_desc desc;
    generated_kernel kernel;
    mutable runtime::cached_kernel loaded;
  };

  /// The variant a launch of shape ls with these (planned) leaf cursors runs where some of its
  /// leaves read the very same elements, else null (the family's own kernel for ls.key).
  const shared_variant* variant(const launch_shape& ls, const array_cursor* leaves) {
    const leaf_sources sources = shared_leaves(desc_, leaves, ls.key.rank);
    return sources.any ? &shared(ls.key, sources) : nullptr;
  }

  /// The variant of (key, sources): printed on its first use, then found with one atomic load
  /// and a comparison while launches keep asking for the same one (an expression type binds the
  /// same arrays at every launch); another one is looked up under a lock.
  LOOM_NOINLINE const shared_variant& shared(layout_key key, const leaf_sources& sources) {
    std::atomic<const shared_variant*>& last = last_shared_[key.slot()];
    if (const shared_variant* v = last.load(std::memory_order_acquire); v != nullptr && sources.equals(v->desc.same_as))
      return *v;
    std::lock_guard<std::mutex> lock(shared_mutex_);
    for (const auto& v : shared_) {
      if (v->slot == key.slot() && sources.equals(v->desc.same_as)) {
        last.store(v.get(), std::memory_order_release);
        return *v;
      }
    }
    auto v = std::make_unique<shared_variant>();
    v->slot = key.slot();
    v->desc = desc_;
    v->desc.same_as.assign(sources.same_as.begin(), sources.same_as.begin() + static_cast<std::ptrdiff_t>(sources.count));
    kernel_text t = print_kernel(v->desc, key);
    v->kernel = generated_kernel{std::move(t.name), t.source()};
    shared_.push_back(std::move(v));
    last.store(shared_.back().get(), std::memory_order_release);
    return *shared_.back();
  }

  /// The loaded kernel of a shared variant: compiled (or read from the disk cache) once.
  static const kernel_handle& shared_kernel(const shared_variant& v) {
    return v.loaded.get([&v] { return kernel_request{v.kernel.source, v.kernel.name, {}, {}}; });
  }

 private:
  struct slot {
    std::once_flag once;
    generated_kernel kernel;
  };
  kernel_desc desc_;
  std::array<slot, layout_key::slots> slots_;
  std::array<runtime::cached_kernel, layout_key::slots> kernels_;
  std::mutex shared_mutex_;
  std::vector<std::unique_ptr<shared_variant>> shared_;
  std::array<std::atomic<const shared_variant*>, layout_key::slots> last_shared_{};
};

/// The kernels of node type N assigned into elements of type D: one family_state per type,
/// described on first use.
template <class N, class D>
  requires emittable<N>
struct kernel_family {
  static family_state& state() {
    static family_state s(describe<N, D>());
    return s;
  }
  static const kernel_desc& desc() { return state().desc(); }
  static const generated_kernel& generated(layout_key key) { return state().generated(key); }
  static const kernel_handle& kernel(layout_key key) { return state().kernel(key); }
  static const kernel_handle& baked(const launch_shape& ls, const array_cursor* cs, std::size_t n) {
    return state().baked(ls, cs, n);
  }
};

/// The family of copying an array of dtype t into one of the same type (the description
/// describe() gives a leaf): what an assignment whose operands overlap its destination runs after
/// evaluating into a temporary. Process-wide, never destroyed (handles live as long).
inline family_state& copy_family(dtype t) {
  static const std::array<family_state*, 5> families = [] {
    std::array<family_state*, 5> f{};
    for (dtype d : {dtype::bool_, dtype::int32, dtype::int64, dtype::float32, dtype::float64}) {
      kernel_desc k;
      k.dst = k.value = d;
      k.leaves = {d};
      k.kinds = {leaf_kind::value};
      k.element = "x0";
      f[static_cast<std::size_t>(d)] = new family_state(std::move(k));
    }
    return f;
  }();
  return *families[static_cast<std::size_t>(t)];
}

}  // namespace loom::cuda::codegen
