// loom/cpu/binding.hpp: how each node of an expression sees the loop nest's iteration space.
//
// An assignment iterates over one space (the destination's shape). A binding says, for one node,
// which of its own indices an iteration index reaches: node[d] = offset[d] + sum_k coef[d][k] it[k].
// Broadcasting zeroes rows; index maps (transpose, slice, flip, ...) rewrite them. A leaf turns
// its binding into one stride per iteration axis, so every affine index map over a leaf costs
// nothing per element: it is only a different set of strides.
#pragma once

#include <array>
#include <cstddef>

#include "loom/core/config.hpp"
#include "loom/core/shape.hpp"

namespace loom {
namespace cpu {

struct binding {
  std::size_t it_rank = 0;
  std::size_t node_rank = 0;
  std::array<std::array<index_t, max_rank>, max_rank> coef{};
  std::array<index_t, max_rank> offset{};

  /// The binding of the iteration space to itself.
  static binding identity(std::size_t rank) {
    binding b;
    b.it_rank = b.node_rank = rank;
    for (std::size_t k = 0; k < rank; ++k) b.coef[k][k] = 1;
    return b;
  }

  /// The binding of an operand of shape `operand` broadcast (NumPy rules) into a node of shape
  /// `node` bound by *this: a missing or stretched axis does not move with the iteration.
  binding broadcast_operand(const dims& node, const dims& operand) const {
    binding c;
    c.it_rank = it_rank;
    c.node_rank = operand.rank;
    const std::size_t lead = node.rank - operand.rank;
    for (std::size_t d = 0; d < operand.rank; ++d) {
      if (operand.e[d] == 1 && node.e[d + lead] != 1) continue;  // stretched: stays at 0
      c.coef[d] = coef[d + lead];
      c.offset[d] = offset[d + lead];
    }
    return c;
  }

  /// Element strides per iteration axis, and the element offset at iteration index 0, of an
  /// array with the given strides read through this binding.
  template <class Strides>
  void strides_of(const Strides& array_strides, std::array<index_t, max_rank>& out, index_t& off) const {
    out.fill(0);
    off = 0;
    for (std::size_t d = 0; d < node_rank; ++d) {
      const index_t s = array_strides[d];
      off += s * offset[d];
      for (std::size_t k = 0; k < it_rank; ++k) out[k] += s * coef[d][k];
    }
  }
};

namespace detail {

// Bindings of an index map's operand, and the regrouping of strides a reshape needs: pure index
// arithmetic that every backend shares (cpu/index_eval.hpp, cuda/codegen/emit.hpp).

/// Operand axis perm[j] is node axis j.
inline binding permuted_binding(const binding& b, const std::size_t* perm, std::size_t rank) {
  binding c;
  c.it_rank = b.it_rank;
  c.node_rank = rank;
  for (std::size_t j = 0; j < rank; ++j) {
    c.coef[perm[j]] = b.coef[j];
    c.offset[perm[j]] = b.offset[j];
  }
  return c;
}
/// Operand index along `axis` is first + step * node index.
inline binding affine_axis_binding(const binding& b, std::size_t axis, index_t first, index_t step) {
  binding c = b;
  for (std::size_t k = 0; k < b.it_rank; ++k) c.coef[axis][k] = step * b.coef[axis][k];
  c.offset[axis] = first + step * b.offset[axis];
  return c;
}

/// Strides `to_strides` over shape `to` such that, for every index of `to`, the element reached
/// is the one of the same row-major position in shape `from` read with `from_strides`. False
/// where no such strides exist (axes that must merge do not step as one).
///   from [4, 6] strides {6, 1} -> to [2, 2, 6]: {12, 6, 1}
///   from [4, 6] strides {1, 4} (a transpose) -> to [24]: false
inline bool regroup_strides(const dims& from, const index_t* from_strides, const dims& to, index_t* to_strides) {
  for (std::size_t j = 0; j < to.rank; ++j) to_strides[j] = 0;
  if (from.size() == 0) return true;
  std::size_t i = 0, j = 0;
  while (true) {
    while (i < from.rank && from.e[i] == 1) ++i;
    while (j < to.rank && to.e[j] == 1) ++j;
    if (i == from.rank || j == to.rank) break;
    const std::size_t i0 = i, j0 = j;
    std::size_t pa = from.e[i++], pb = to.e[j++];
    while (pa != pb) {
      if (pa < pb)
        pa *= from.e[i++];
      else
        pb *= to.e[j++];
    }
    // from axes [i0, i) form one run: each non-1 axis must step as the next one's full extent.
    std::size_t last = i0;
    for (std::size_t k = i0; k < i; ++k) {
      if (from.e[k] == 1) continue;
      if (k != last && from.e[last] != 1 && from_strides[last] != from_strides[k] * index_t(from.e[k])) return false;
      last = k;
    }
    index_t s = from_strides[last];
    for (std::size_t k = j; k-- > j0;) {
      to_strides[k] = to.e[k] == 1 ? 0 : s;
      s *= index_t(to.e[k]);
    }
  }
  return true;
}

/// Moves strides and an offset built over `from` (iteration = from's index) to the iteration
/// space of b, where b binds the iteration space to `to`. False (nothing changed) where
/// regroup_strides is.
inline bool regroup_into(std::array<index_t, max_rank>& stride, index_t& offset, const dims& from, const dims& to,
                         const binding& b) {
  std::array<index_t, max_rank> rho{};
  if (!regroup_strides(from, stride.data(), to, rho.data())) return false;
  std::array<index_t, max_rank> st{};
  for (std::size_t d = 0; d < to.rank; ++d) {
    offset += rho[d] * b.offset[d];
    for (std::size_t k = 0; k < b.it_rank; ++k) st[k] += rho[d] * b.coef[d][k];
  }
  stride = st;
  return true;
}

}  // namespace detail

/// The part of a leaf the loop nest reasons about (collapsing axes, aliasing): where the array
/// is, and how it moves with each iteration axis.
struct cursor {
  const void* base = nullptr;  // the array's element 0
  std::size_t elem_size = 0;
  index_t offset = 0;  // elements from base at iteration index 0
  std::array<index_t, max_rank> stride{};
  /// Every position of the iteration space is an element of the array (a leaf's reader, also
  /// under affine index maps): the blocked traversal may copy a block of it. Concat and pad
  /// clear it on their operands, whose cursors point past their arrays outside their ranges.
  bool dense = false;
};

/// The position (in elements from c.base) of cursor c at the start of the row at outer index idx
/// (its first `outer` axes).
///
/// Scalar by construction: as a loop, GCC vectorised it (AVX-512: 32-byte loads of idx and of the
/// strides, masked to `outer`), and those wide loads of values the caller had just stored - idx[0]
/// as 8 bytes, a cursor copied in 32-byte pieces that the strides straddle - cannot be forwarded
/// from the store buffer: each waited until every earlier store had reached L1, the tile's row
/// stores that miss included (a layer norm's reductions on a Xeon, bench/RESULTS.md 2026-11-28).
LOOM_INLINE index_t cursor_row(const cursor& c, std::size_t outer, const index_t* idx) {
  static_assert(max_rank == 8, "cursor_row spells out every outer rank");
  index_t o = c.offset;
  switch (outer) {
    case 8: o += idx[7] * c.stride[7]; [[fallthrough]];
    case 7: o += idx[6] * c.stride[6]; [[fallthrough]];
    case 6: o += idx[5] * c.stride[5]; [[fallthrough]];
    case 5: o += idx[4] * c.stride[4]; [[fallthrough]];
    case 4: o += idx[3] * c.stride[3]; [[fallthrough]];
    case 3: o += idx[2] * c.stride[2]; [[fallthrough]];
    case 2: o += idx[1] * c.stride[1]; [[fallthrough]];
    case 1: o += idx[0] * c.stride[0]; [[fallthrough]];
    default: break;
  }
  return o;
}

/// The iteration space after collapsing: extents, and the outer/inner split.
struct loop_space {
  std::size_t rank = 0;  // >= 1 after collapsing; the last axis is the inner run
  std::array<index_t, max_rank> extent{};
  index_t inner() const { return extent[rank - 1]; }
  index_t rows() const {
    index_t r = 1;
    for (std::size_t k = 0; k + 1 < rank; ++k) r *= extent[k];
    return r;
  }
  std::size_t outer_rank() const { return rank - 1; }
  /// The extents as a shape (for the byte ranges and descriptions that take one).
  dims to_dims() const {
    dims d;
    d.rank = rank;
    for (std::size_t k = 0; k < rank; ++k) d.e[k] = static_cast<std::size_t>(extent[k]);
    return d;
  }
};

/// The inner loop's layout class: every cursor has unit inner stride (contiguous), or not.
/// streaming_mode is contiguous_mode with non-temporal stores to the destination.
struct contiguous_mode {
  static constexpr bool contiguous = true;
  static constexpr bool stream = false;
};
struct streaming_mode {
  static constexpr bool contiguous = true;
  static constexpr bool stream = true;
};
struct general_mode {
  static constexpr bool contiguous = false;
  static constexpr bool stream = false;
};

}  // namespace cpu
}  // namespace loom
