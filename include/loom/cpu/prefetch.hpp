// loom/cpu/prefetch.hpp: software prefetch of the next tile's rows, spread over the packets of
// the passes that work on this one.
//
// The tiled passes (cpu/tiled.hpp) read a tile of rows from memory once, in their first pass,
// and then work on it in cache. The hardware prefetcher runs ahead of demand misses only, so
// while the later passes compute, nothing fetches the next tile, and its first pass waits for
// memory with nothing to overlap. A stream hands the later passes the next tile's lines, one
// prefetch every `every` elements of their work: the fetches overlap the arithmetic and arrive
// at about the rate memory can serve them. (Issued all at once, at the start of a tile or of a
// row, they fill the miss buffers and stall the pass behind them: measured slower, see
// bench/RESULTS.md.)
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <limits>

#include "loom/core/config.hpp"
#include "loom/core/shape.hpp"

namespace loom {
namespace cpu {

/// Bytes one prefetch fetches (a cache line).
inline constexpr index_t prefetch_line = 64;

/// A byte range of the next tile to fetch.
struct prefetch_range {
  const char* from = nullptr;
  const char* to = nullptr;
  /// Cache lines from `from` (a partial last line counts).
  index_t lines() const { return (to - from + prefetch_line - 1) / prefetch_line; }
};

/// Up to four ranges (one per operand the tile's first pass reads from memory), taken in order.
struct prefetch_plan {
  static constexpr std::size_t max_ranges = 4;
  std::array<prefetch_range, max_ranges> r{};
  std::size_t n = 0;
  /// Cache lines in all ranges.
  index_t lines() const {
    index_t s = 0;
    for (std::size_t i = 0; i < n; ++i) s += r[i].lines();
    return s;
  }
};

/// A slice of a plan's lines for one pass: at most one prefetch a tick, one every `every` elements
/// the pass works on. The passes' loops run through `loop` below, which splits a loop where a
/// prefetch is due: a disarmed stream (the default) leaves the loop whole, as it was without one.
/// (A test and a branch in every iteration, and more so a loop there to catch up, cost the
/// reductions 15% more instructions in cache, armed or not, and spilled the consumers' values.)
struct prefetch_stream {
  static constexpr index_t line = prefetch_line;
  static constexpr index_t never = std::numeric_limits<index_t>::max() / 2;
  const char* p = nullptr;    // next line
  const char* end = nullptr;  // past the current piece's last line
  index_t every = never;      // elements between prefetches
  index_t left = never;       // elements until the next one
  // The slice's later pieces (where it spans ranges of the plan), taken when the current one ends.
  std::array<prefetch_range, prefetch_plan::max_ranges> rest{};
  std::size_t next = 0, pieces = 0;

  /// Lines [first, first + count) of `plan`, one every `every_elems` elements.
  static prefetch_stream slice(const prefetch_plan& plan, index_t first, index_t count, index_t every_elems) {
    prefetch_stream s;
    for (std::size_t i = 0; i < plan.n && count > 0; ++i) {
      const index_t l = plan.r[i].lines();
      if (first >= l) {
        first -= l;
        continue;
      }
      const index_t take = std::min(l - first, count);
      s.rest[s.pieces++] = {plan.r[i].from + first * line, plan.r[i].from + (first + take) * line};
      count -= take;
      first = 0;
    }
    if (s.pieces == 0) return s;
    s.p = s.rest[0].from;
    s.end = s.rest[0].to;
    s.next = 1;
    s.every = every_elems < 1 ? 1 : every_elems;
    s.left = s.every;
    return s;
  }

  /// Runs body(i) for i = i0, i0 + step, ... while i + step <= i1, with the prefetches that fall
  /// due between its iterations; returns where it stopped.
  template <class Body>
  LOOM_INLINE index_t loop(index_t i, index_t i1, index_t step, Body&& body) {
    while (i + step <= i1) {
      index_t n = (i1 - i) / step;                                    // iterations left
      if (left < n * step) n = left <= step ? 1 : (left + step - 1) / step;  // to the next prefetch
      const index_t stop = i + n * step;
      for (; i < stop; i += step) body(i);
      tick(n * step);
    }
    return i;
  }

  /// `elems` elements of work done: the prefetch due, if one is.
  LOOM_INLINE void tick(index_t elems) {
    left -= elems;
    if (left <= 0) {
      left += every;
      if (p >= end) {
        if (next == pieces) return;
        p = rest[next].from;
        end = rest[next].to;
        ++next;
      }
#if defined(__GNUC__) || defined(__clang__)
      __builtin_prefetch(p, 0, 2);  // T1 (on the Zen 3 of bench/RESULTS.md faster than T0 and T2)
#endif
      p += line;
    }
  }
};

}  // namespace cpu
}  // namespace loom
