// loom/cuda/codegen/layout.hpp: the iteration space of one launch, and which kernel it needs.
//
// An assignment iterates over the destination's shape. As on the CPU (cpu/loop_nest.hpp), axes
// of extent 1 are dropped and adjacent axes merged wherever every array (every leaf and the
// destination) steps through them as one, so a contiguous expression becomes one flat run. What
// is left decides the *layout class*, which selects one of an expression type's kernels:
//
//   contiguous  one axis, every array at stride 1: a flat loop, 16-byte vector accesses where
//               every pointer is aligned, a scalar tail. The common case: x + y, exp(x) * 2.
//   broadcast   the destination is row-major; every leaf steps by 1 or 0 along the inner axis
//               (x + bias, x - row_max). Vector accesses when the inner extent is a multiple of
//               the vector width and the rows are aligned; a leaf with inner stride 0 is one load
//               broadcast to the vector.
//   strided     anything else (transposed or stepped views): scalar accesses at any strides.
//
// Broadcast and strided kernels keep a multi-index per thread and advance it by the grid's
// stride like an odometer (adds and compares, one carry per axis), so no element pays a division;
// a thread divides only once, to find its first index. Their kernels exist per collapsed rank,
// so the loops over axes unroll into registers.
//
// Indices are 32-bit where everything fits with room to spare (the fast path: integer
// multiply-adds are half the cost), else 64-bit; that is part of the kernel's key as well.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "loom/core/config.hpp"
#include "loom/core/shape.hpp"
#include "loom/cuda/codegen/emit.hpp"

namespace loom::cuda::codegen {

/// How the arrays of an assignment lie over its (collapsed) iteration space.
enum class layout_class : std::uint8_t { contiguous, broadcast, strided };

constexpr std::string_view layout_name(layout_class c) {
  switch (c) {
    case layout_class::contiguous: return "contiguous";
    case layout_class::broadcast: return "broadcast";
    case layout_class::strided: return "strided";
  }
  return "?";
}

/// Which of an expression type's kernels a launch needs: class, collapsed rank, index width.
struct layout_key {
  layout_class cls = layout_class::contiguous;
  std::uint8_t rank = 1;  ///< collapsed rank; always 1 for contiguous
  bool wide = false;      ///< 64-bit indices

  /// How many distinct keys there are (the size of an expression type's kernel table).
  static constexpr std::size_t slots = 2 + 4 * max_rank;

  /// This key's index in [0, slots).
  [[nodiscard]] constexpr std::size_t slot() const noexcept {
    const std::size_t w = wide ? 1 : 0;
    const std::size_t r = rank > 0 ? rank - 1u : 0u;
    switch (cls) {
      case layout_class::contiguous: return w;
      case layout_class::broadcast: return 2 + 2 * r + w;
      case layout_class::strided: return 2 + 2 * max_rank + 2 * r + w;
    }
    return 0;
  }
  /// "broadcast, rank 2, 32-bit indices".
  [[nodiscard]] std::string describe() const {
    return std::string(layout_name(cls)) + ", rank " + std::to_string(rank) + (wide ? ", 64-bit" : ", 32-bit") +
           " indices";
  }
  friend constexpr bool operator==(const layout_key&, const layout_key&) = default;
};

/// One launch's iteration space, collapsed, in the form the kernel takes it.
struct launch_shape {
  layout_key key;
  bool vec = false;   ///< 16-byte accesses (contiguous, broadcast)
  int lanes = 1;      ///< elements per vector access
  index_t elements = 0;  ///< elements of the destination
  /// Work items of the kernel's loop: the elements (contiguous: the kernel splits them into
  /// vectors itself), or vectors of `lanes` elements in a broadcast kernel's vector mode.
  index_t units = 0;
  std::array<index_t, max_rank> extent{};  ///< collapsed extents, the inner one in units
};

/// Elements (and unit-space spans) below which a kernel uses 32-bit indices. The margins keep
/// every intermediate value of the index arithmetic (a grid-stride step past the end, an odometer
/// carry before it is taken back) inside int32 without relying on wrap-around.
inline constexpr index_t narrow_elements = (index_t(1) << 31) - (index_t(1) << 25);
inline constexpr index_t narrow_span = index_t(1) << 30;
/// The most threads a launch uses (so a grid stride never exceeds the margins above).
inline constexpr index_t max_grid_threads = index_t(1) << 25;

/// The one stride axes k of `e` (extents) and `st` (a cursor's strides) for k in [lo, hi) merge
/// into, row-major - st[k] == fs * (the extents after k) wherever e[k] != 1 - into `fs`; false
/// where they do not merge. Axes of extent 1 count as none; with none at all fs is 0.
template <class E>
bool merged_stride(const E* e, const index_t* st, std::size_t lo, std::size_t hi, index_t& fs) {
  fs = 0;
  index_t span = 1;
  bool found = false;
  for (std::size_t k = hi; k-- > lo;) {
    const index_t ext = static_cast<index_t>(e[k]);
    if (ext == 1) continue;
    if (!found) {
      fs = st[k];
      found = true;
    } else if (st[k] != fs * span) {
      return false;
    }
    span *= ext;
  }
  return true;
}

/// Moves cursor c's offset into its base, as a kernel takes it: a position's base is its start
/// (an index, not an address), an array's the address of its element at iteration index 0.
inline void fold_offset(array_cursor& c) {
  if (c.elem_size == 0)
    c.base = static_cast<std::uintptr_t>(c.offset);
  else
    c.base += static_cast<std::uintptr_t>(c.offset * static_cast<index_t>(c.elem_size));
  c.offset = 0;
}

namespace detail {

/// The byte range [lo, hi) a cursor touches over space d.
inline void touched_range(const array_cursor& c, const dims& d, std::uintptr_t& lo, std::uintptr_t& hi) {
  index_t mn = c.offset, mx = c.offset;
  for (std::size_t k = 0; k < d.rank; ++k) {
    const index_t span = c.stride[k] * (static_cast<index_t>(d.e[k]) - 1);
    (span < 0 ? mn : mx) += span;
  }
  lo = c.base + static_cast<std::uintptr_t>(mn * static_cast<index_t>(c.elem_size));
  hi = c.base + static_cast<std::uintptr_t>((mx + 1) * static_cast<index_t>(c.elem_size));
}

inline bool aligned(std::uintptr_t p, std::size_t bytes) { return bytes == 0 || (p & (bytes - 1)) == 0; }

inline index_t abs_index(index_t v) { return v < 0 ? -v : v; }

}  // namespace detail

/// True where reading `c` while writing `dst` over space d needs no temporary: no overlap, or
/// the very same elements at the very same iteration index (elementwise self-assignment).
inline bool alias_safe(const array_cursor& c, const array_cursor& dst, const dims& d) {
  if (d.size() == 0 || c.elem_size == 0) return true;  // positions are not memory
  std::uintptr_t a0, a1, b0, b1;
  detail::touched_range(c, d, a0, a1);
  detail::touched_range(dst, d, b0, b1);
  if (a1 <= b0 || b1 <= a0) return true;
  if (c.base != dst.base || c.offset != dst.offset || c.elem_size != dst.elem_size) return false;
  for (std::size_t k = 0; k < d.rank; ++k)
    if (d.e[k] != 1 && c.stride[k] != dst.stride[k]) return false;
  return true;
}

/// Collapses space d over the cursors (cs[0] is the destination), rewriting their strides, and
/// returns the collapsed rank (>= 1) with its extents in `ext`.
inline std::size_t collapse(const dims& d, array_cursor* cs, std::size_t n, std::array<index_t, max_rank>& ext) {
  std::size_t r = 0;
  // In place: the collapsed axis r never runs ahead of the source axis k.
  for (std::size_t k = 0; k < d.rank; ++k) {
    const index_t e = static_cast<index_t>(d.e[k]);
    if (e == 1) continue;
    bool merge = r > 0;
    for (std::size_t c = 0; merge && c < n; ++c) merge = cs[c].stride[r - 1] == cs[c].stride[k] * e;
    if (merge) {
      ext[r - 1] *= e;
      for (std::size_t c = 0; c < n; ++c) cs[c].stride[r - 1] = cs[c].stride[k];
    } else {
      ext[r] = e;
      for (std::size_t c = 0; c < n; ++c) cs[c].stride[r] = cs[c].stride[k];
      ++r;
    }
  }
  if (r == 0) {  // one element: any unit stride reaches it
    r = 1;
    ext[0] = 1;
    for (std::size_t c = 0; c < n; ++c) cs[c].stride[0] = 1;
  }
  for (std::size_t c = 0; c < n; ++c)
    for (std::size_t k = r; k < max_rank; ++k) cs[c].stride[k] = 0;
  for (std::size_t k = r; k < max_rank; ++k) ext[k] = 0;
  return r;
}

/// Plans one launch over space d for cursors cs[0..n) (cs[0] the destination): collapses,
/// classifies, decides on vector accesses (`lanes` elements of 16 bytes / the widest element)
/// and on the index width, and rewrites the cursors into the form the kernel takes: each base
/// moved to the element at iteration index 0 (offset 0), strides in the collapsed unit space.
inline launch_shape plan_layout(const dims& d, array_cursor* cs, std::size_t n, int lanes) {
  launch_shape ls;
  ls.lanes = lanes;
  ls.elements = static_cast<index_t>(d.size());
  for (std::size_t c = 0; c < n; ++c) {
    if (cs[c].elem_size == 0)  // a position: its start
      cs[c].base = static_cast<std::uintptr_t>(cs[c].offset);
    else
      cs[c].base += static_cast<std::uintptr_t>(cs[c].offset * static_cast<index_t>(cs[c].elem_size));
    cs[c].offset = 0;
  }
  const std::size_t r = collapse(d, cs, n, ls.extent);
  const std::size_t in = r - 1;
  const index_t vl = lanes;

  bool all_unit = r == 1;
  for (std::size_t c = 0; all_unit && c < n; ++c) all_unit = cs[c].stride[0] == 1;
  bool dst_row_major = cs[0].stride[in] == 1;
  for (std::size_t k = 0; dst_row_major && k < in; ++k)
    dst_row_major = cs[0].stride[k] == cs[0].stride[k + 1] * ls.extent[k + 1];
  bool leaves_unit_or_zero = true;
  for (std::size_t c = 1; leaves_unit_or_zero && c < n; ++c)
    leaves_unit_or_zero = cs[c].stride[in] == 0 || cs[c].stride[in] == 1;

  if (all_unit) {
    ls.key = {layout_class::contiguous, 1, false};
    bool vec = true;
    for (std::size_t c = 0; vec && c < n; ++c) vec = detail::aligned(cs[c].base, static_cast<std::size_t>(vl) * cs[c].elem_size);
    ls.vec = vec;
    ls.units = ls.elements;
  } else if (dst_row_major && leaves_unit_or_zero) {
    ls.key = {layout_class::broadcast, static_cast<std::uint8_t>(r), false};
    bool vec = ls.extent[in] % vl == 0 && detail::aligned(cs[0].base, static_cast<std::size_t>(vl) * cs[0].elem_size);
    for (std::size_t c = 1; vec && c < n; ++c) {
      if (cs[c].stride[in] == 0) continue;
      vec = detail::aligned(cs[c].base, static_cast<std::size_t>(vl) * cs[c].elem_size);
      for (std::size_t k = 0; vec && k < in; ++k) vec = cs[c].stride[k] % vl == 0;
    }
    ls.vec = vec;
    if (vec) {  // the inner axis counts vectors: a unit step moves `lanes` elements
      ls.extent[in] /= vl;
      for (std::size_t c = 0; c < n; ++c) cs[c].stride[in] *= vl;
    }
    ls.units = vec ? ls.elements / vl : ls.elements;
  } else {
    ls.key = {layout_class::strided, static_cast<std::uint8_t>(r), false};
    ls.units = ls.elements;
  }

  bool wide = ls.elements >= narrow_elements;
  if (!wide && ls.key.cls != layout_class::contiguous) {
    for (std::size_t c = 0; !wide && c < n; ++c) {
      index_t span = 0;
      for (std::size_t k = 0; !wide && k < r; ++k) {
        index_t t = 0;
        wide = __builtin_mul_overflow(ls.extent[k], detail::abs_index(cs[c].stride[k]), &t) ||
               __builtin_add_overflow(span, t, &span) || span >= narrow_span;
      }
    }
  }
  ls.key.wide = wide;
  return ls;
}

}  // namespace loom::cuda::codegen
