// loom/cpu/loop_nest.hpp: the traversal every elementwise kernel runs.
//
// The iteration space is the destination's shape. Axes of extent 1 are dropped and adjacent axes
// are merged wherever every cursor (every leaf, and the destination) steps through them as one
// (stride[k] == stride[k+1] * extent[k+1]), so a contiguous expression becomes one flat run.
// The innermost remaining axis is the inner run: SIMD over it, with a scalar tail. Threads take
// equal contiguous pieces of the flattened space (row, column), which is right for uniform,
// memory-bound work; there is no division or modulo per element, only per piece.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <vector>

#include "loom/cpu/binding.hpp"
#include "loom/cpu/evaluator.hpp"
#include "loom/cpu/simd.hpp"
#include "loom/cpu/thread_pool.hpp"

namespace loom {
namespace cpu {

/// Collapses `d` over the given cursors (rewriting their strides) and returns the loop space.
inline loop_space collapse(const dims& d, cursor* const* cs, std::size_t n) {
  loop_space s;
  std::array<std::array<index_t, max_rank>, 64> small;  // new strides per cursor
  std::vector<std::array<index_t, max_rank>> big;
  auto* ns = n <= small.size() ? small.data() : (big.resize(n), big.data());
  for (std::size_t k = 0; k < d.rank; ++k) {
    const index_t e = static_cast<index_t>(d.e[k]);
    if (e == 1) continue;
    bool merge = s.rank > 0;
    for (std::size_t c = 0; merge && c < n; ++c) merge = ns[c][s.rank - 1] == cs[c]->stride[k] * e;
    if (merge) {
      s.extent[s.rank - 1] *= e;
      for (std::size_t c = 0; c < n; ++c) ns[c][s.rank - 1] = cs[c]->stride[k];
    } else {
      s.extent[s.rank] = e;
      for (std::size_t c = 0; c < n; ++c) ns[c][s.rank] = cs[c]->stride[k];
      ++s.rank;
    }
  }
  if (s.rank == 0) {  // every extent is 1: one element
    s.rank = 1;
    s.extent[0] = 1;
    for (std::size_t c = 0; c < n; ++c) ns[c][0] = 0;
  }
  for (std::size_t c = 0; c < n; ++c) {
    cs[c]->stride.fill(0);
    for (std::size_t k = 0; k < s.rank; ++k) cs[c]->stride[k] = ns[c][k];
  }
  return s;
}

/// Writes the destination of a loop nest through its cursor.
template <class T>
struct strided_writer {
  cursor c;
  T* row = nullptr;
  index_t inner = 0;
  std::size_t outer = 0;

  template <class Strides>
  void bind(T* data, const Strides& strides, std::size_t rank) {
    c.base = data;
    c.elem_size = sizeof(T);
    binding::identity(rank).strides_of(strides, c.stride, c.offset);
  }
  void prepare(const loop_space& s) {
    outer = s.outer_rank();
    inner = c.stride[outer];
  }
  LOOM_INLINE void set_row(const index_t* idx) {
    row = static_cast<T*>(const_cast<void*>(c.base)) + cursor_row(c, outer, idx);
  }
  template <class M>
  LOOM_INLINE void store(index_t i, T v) const {
    if constexpr (M::contiguous)
      row[i] = v;
    else
      row[i * inner] = v;
  }
  template <class M, class F>
  LOOM_INLINE void store_packet(index_t i, const packet_t<T, F>& v) const {
    if constexpr (M::contiguous) {
      cpu::store_packet<F>(row + i, v);
    } else {
      if (inner == 1)
        cpu::store_packet<F>(row + i, v);
      else
        scatter_packet<F>(row + i * inner, inner, v);
    }
  }
};

/// Runs one inner run [c0, c1) of the current row: packets, then a scalar tail. In streaming
/// mode, scalars first up to the destination's alignment, then non-temporal packet stores. A
/// writer with a prefetch stream `pf` (the tiled consumer's, cpu/tiled.hpp) runs its packets in
/// groups of four, prefetching between them.
template <class M, class F, class Dst, class Ev>
LOOM_INLINE void run_inner(const Dst& dst, const Ev& ev, index_t c0, index_t c1) {
  using T = std::remove_cv_t<std::remove_pointer_t<decltype(dst.row)>>;
  using V = typename Ev::value_type;
  index_t i = c0;
  if constexpr (!std::is_void_v<F>) {
    constexpr index_t w = static_cast<index_t>(lanes<F>);
    const auto put = [&](index_t j) LOOM_INLINE_LAMBDA {
      const auto v = convert_packet<T, V, F>(ev.template packet<M, F>(j));
      if constexpr (M::stream)
        stream_packet<F>(dst.row + j, v);
      else
        dst.template store_packet<M, F>(j, v);
    };
    if constexpr (M::stream) {
      constexpr std::uintptr_t a = stream_alignment<F, T>;
      for (; i < c1 && (reinterpret_cast<std::uintptr_t>(dst.row + i) % a) != 0; ++i)
        dst.template store<M>(i, loom::detail::convert<T>(ev.template scalar<M>(i)));
    }
    if constexpr (requires { dst.pf; })
      i = dst.pf.loop(i, c1, 4 * w, [&](index_t j) LOOM_INLINE_LAMBDA {
        for (index_t u = 0; u < 4 * w; u += w) put(j + u);
      });
    for (; i + w <= c1; i += w) put(i);
  }
  for (; i < c1; ++i) dst.template store<M>(i, loom::detail::convert<T>(ev.template scalar<M>(i)));
}

namespace detail {
/// The outer multi-index (into idx) and the column of flat position `begin` of the loop space.
inline index_t loop_position(const loop_space& s, index_t begin, std::array<index_t, max_rank>& idx) {
  const index_t inner = s.inner();
  const std::size_t outer = s.outer_rank();
  index_t row = begin / inner;
  idx.fill(0);
  for (std::size_t k = outer; k-- > 1;) {  // row -> outer multi-index, once per piece
    idx[k] = row % s.extent[k];
    row /= s.extent[k];
  }
  if (outer > 0) idx[0] = row;  // row < extent[0]: begin is inside the space
  return begin % inner;
}
/// Steps an outer multi-index to the next row.
LOOM_INLINE void next_loop_row(const loop_space& s, std::size_t outer, std::array<index_t, max_rank>& idx) {
  for (std::size_t k = outer; k-- > 0;) {
    if (++idx[k] < s.extent[k]) break;
    idx[k] = 0;
  }
}
/// Runs [begin, end) of the loop space from column `col` of the row at `idx`, leaving idx and col
/// at `end`: the row loop of run_range and run_pieces, on their local writer and evaluator.
template <class M, class F, class Dst, class Ev>
LOOM_INLINE void run_rows(Dst& dst, Ev& ev, const loop_space& s, std::array<index_t, max_rank>& idx, index_t& col,
                          index_t begin, index_t end) {
  const index_t inner = s.inner();
  const std::size_t outer = s.outer_rank();
  while (begin < end) {
    const index_t stop = std::min(inner, col + (end - begin));
    ev.set_row(idx.data());
    dst.set_row(idx.data());
    run_inner<M, F>(dst, ev, col, stop);
    begin += stop - col;
    col = stop;
    if (col == inner) {
      col = 0;
      next_loop_row(s, outer, idx);
    }
  }
}
}  // namespace detail

/// Runs the flattened range [begin, end) of the loop space (row-major over (row, column)), on
/// copies of the writer and the evaluator: locals whose address no other code holds, so the
/// packet stores (which may alias anything: the intrinsics' vector types are may_alias) leave
/// their row pointers in registers. Taken by reference, they were reloaded for every packet
/// (W4's last pass over 512 x 1024 floats: 20 -> 14.6 instructions a packet; the per-row values
/// they point at are still loaded per packet).
/// Streaming stores are fenced at the end unless Fence is false: then the caller fences once after
/// its last range (the tiled loops, whose tiles are ranges of a few KiB: a fence a tile held every
/// later store, and any load that needed one, until the tile's lines had reached memory).
template <class M, class F, bool Fence = true, class Dst, class Ev>
void run_range(const Dst& dst_in, const Ev& ev_in, const loop_space& s, index_t begin, index_t end) {
  Dst dst = dst_in;
  Ev ev = ev_in;
  std::array<index_t, max_rank> idx;
  index_t col = detail::loop_position(s, begin, idx);
  detail::run_rows<M, F>(dst, ev, s, idx, col, begin, end);
  if constexpr (M::stream && Fence) stream_fence();
}

/// Runs [begin, end) of the loop space like run_range, in pieces of `step` elements, calling
/// before(b, e) ahead of each piece [b, e): on one copy of the writer and the evaluator for the
/// whole range, so a tiled consumer (cpu/tiled.hpp) does not copy them, or set up its loop, for
/// every tile. before() returns the writer's prefetch stream for the piece, or nullptr to leave
/// it; it must not move what the evaluator's cursors point at (the copy keeps them). Streaming
/// stores are not fenced (the caller fences once, after its last range).
template <class M, class F, class Dst, class Ev, class Before>
void run_pieces(const Dst& dst_in, const Ev& ev_in, const loop_space& s, index_t begin, index_t end, index_t step,
                Before&& before) {
  Dst dst = dst_in;
  Ev ev = ev_in;
  std::array<index_t, max_rank> idx;
  index_t col = detail::loop_position(s, begin, idx);
  for (index_t piece = begin; begin < end; begin = piece) {
    piece = std::min(end, begin + step);
    if constexpr (requires { dst.pf; }) {
      if (const auto* st = before(begin, piece)) dst.pf = *st;
    } else {
      before(begin, piece);
    }
    detail::run_rows<M, F>(dst, ev, s, idx, col, begin, piece);
  }
}

/// Work below this many element-operations runs on the calling thread alone.
inline constexpr index_t parallel_threshold = index_t(1) << 16;

/// A kernel touching more bytes than this writes its destination with non-temporal stores: its
/// working set is larger than a last-level cache slice, so nothing it writes would still be
/// cached for the next kernel, and skipping the read-for-ownership saves a fifth to a third of
/// the memory traffic of a streaming kernel.
inline constexpr std::size_t streaming_store_bytes = std::size_t(24) << 20;

/// The layout class a loop nest runs in.
enum class layout_class { contiguous, streaming, general };

/// Above this cost per element (traversal<>::cost: about one unit per simple operation) a loop
/// nest is bound by its arithmetic, not by memory, and plain stores are faster than streaming
/// ones: measured on the 2-core Zen 4 of bench/RESULTS.md (2026-11-26), 2^24 floats at 1 thread,
/// W2's tanh-form GELU (cost 17) took 7.5-8.0 ms with plain stores and 8.0-10.2 with streaming
/// ones, gelu (cost 11) 8.2-8.7 against 9.1-10.0; W5 (cost 3) and W1 (cost 6) were faster
/// streaming (0.76-1.20 ms against 1.60-1.67; 13.0-14.0 against 14.1-14.2).
inline constexpr index_t streaming_max_cost = 8;

/// The layout class of a loop nest whose cursors are all unit-stride inside (or not), touching
/// about `bytes` bytes of memory, at `cost` per element (0: unknown, taken as memory-bound).
inline layout_class choose_layout(bool contiguous, std::size_t bytes, index_t cost = 0) {
  if (!contiguous) return layout_class::general;
  return bytes > streaming_store_bytes && cost <= streaming_max_cost ? layout_class::streaming
                                                                      : layout_class::contiguous;
}

/// Calls run(mode) with the mode of `layout`: streaming_mode only where packets of lane class F
/// can be streamed into T (else contiguous_mode).
template <class F, class T, class Run>
LOOM_INLINE void with_layout_mode(layout_class layout, Run&& run) {
  if (layout == layout_class::general) {
    run(general_mode{});
  } else if constexpr (!std::is_void_v<F> && stream_alignment<std::conditional_t<std::is_void_v<F>, float, F>, T> != 0) {
    if (layout == layout_class::streaming)
      run(streaming_mode{});
    else
      run(contiguous_mode{});
  } else {
    run(contiguous_mode{});
  }
}

/// Runs a prepared loop nest over the whole space, on the pool when the work is large enough.
template <class F, class Dst, class Ev>
void run_loop_nest(Dst& dst, Ev& ev, const loop_space& s, layout_class layout, index_t cost_per_element) {
  const index_t total = s.rows() * s.inner();
  if (total == 0) return;
  auto run = [&](auto mode, index_t b, index_t e) {
    using M = decltype(mode);
    Dst d = dst;
    Ev v = ev;
    run_range<M, F>(d, v, s, b, e);
  };
  auto go = [&](index_t b, index_t e) {
    using T = std::remove_cv_t<std::remove_pointer_t<decltype(dst.row)>>;
    with_layout_mode<F, T>(layout, [&](auto mode) { run(mode, b, e); });
  };
  const index_t threads = static_cast<index_t>(default_pool().size());
  if (threads == 1 || total * cost_per_element < parallel_threshold) {
    go(0, total);
    return;
  }
  // Chunk boundaries move back to a column that is a multiple of 64 in its row, so every element
  // takes the same path (packet or scalar tail, whose math may differ in the last ulp) whatever
  // the number of threads. Consecutive chunks share the boundary, so they still tile the range.
  // About eight chunks per thread, handed out in order as threads come free: a thread that starts
  // late (a worker woken from sleep, a virtual CPU the host has lent elsewhere) takes fewer.
  const index_t inner = s.inner();
  auto phase = [inner, total](index_t p) { return p >= total ? total : p - (p % inner) % 64; };
  parallel_chunks(total, threads * 8, std::max<index_t>(64, parallel_threshold / cost_per_element / 4), 64,
                  [&](index_t b, index_t e) {
                    const index_t b2 = phase(b), e2 = phase(e);
                    if (b2 < e2) go(b2, e2);
                  });
}

}  // namespace cpu
}  // namespace loom
