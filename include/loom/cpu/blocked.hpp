// loom/cpu/blocked.hpp: the blocked traversal, for expressions that read across the rows they write.
//
// When the destination is written along its inner axis but some operand steps through memory
// along another axis (a transpose), walking whole rows touches a new cache line (and soon a new
// page) of that operand for every element. The blocked traversal walks square blocks of the two
// axes instead - B rows of the destination by B columns - so the block of the operand it reads
// (B columns of B rows) stays in L1 while the block is written.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdlib>

#include "loom/cpu/binding.hpp"
#include "loom/cpu/loop_nest.hpp"
#include "loom/cpu/thread_pool.hpp"

namespace loom {
namespace cpu {

/// The outer axis to block with the inner axis, or s.rank where the plain traversal is right.
/// cs[0] is the destination. An operand asks for blocking when it is memory, steps at least a
/// cache line per inner element, and has a unit stride on some outer axis.
inline std::size_t blocked_axis(const loop_space& s, cursor* const* cs, std::size_t n) {
  if (s.rank < 2) return s.rank;
  const std::size_t inner = s.rank - 1;
  if (cs[0]->stride[inner] != 1) return s.rank;
  for (std::size_t c = 1; c < n; ++c) {
    const cursor& k = *cs[c];
    if (k.elem_size == 0) continue;
    if (std::abs(k.stride[inner]) * static_cast<index_t>(k.elem_size) < 64) continue;
    for (std::size_t a = inner; a-- > 0;)
      if (std::abs(k.stride[a]) == 1 && s.extent[a] > 1) return a;
  }
  return s.rank;
}

/// The side of a block: two blocks (read and written) of B x B elements fit in half of L1.
template <class T>
constexpr index_t block_side() {
  return sizeof(T) <= 4 ? 64 : 32;
}

/// Runs the loop nest in B x B blocks of (axis a, inner axis), threads over blocks.
template <class F, class Dst, class Ev>
void run_blocked(Dst& dst, Ev& ev, const loop_space& s, std::size_t a, index_t B, index_t cost_per_element) {
  const std::size_t inner = s.rank - 1;
  const index_t ea = s.extent[a], ei = s.extent[inner];
  const index_t nba = (ea + B - 1) / B, nbi = (ei + B - 1) / B;
  index_t rest = 1;
  for (std::size_t k = 0; k < inner; ++k)
    if (k != a) rest *= s.extent[k];
  const index_t blocks = rest * nba * nbi;
  if (blocks == 0) return;
  auto run = [&](index_t b0, index_t b1) {
    Dst d = dst;
    Ev v = ev;
    std::array<index_t, max_rank> idx{};
    for (index_t blk = b0; blk < b1; ++blk) {
      index_t t = blk;
      const index_t bi = t % nbi;
      t /= nbi;
      const index_t ba = t % nba;
      t /= nba;
      for (std::size_t k = inner; k-- > 0;) {  // the other outer axes, from the block's number
        if (k == a) continue;
        idx[k] = t % s.extent[k];
        t /= s.extent[k];
      }
      const index_t c0 = bi * B, c1 = std::min(ei, c0 + B);
      const index_t r1 = std::min(ea, ba * B + B);
      for (index_t r = ba * B; r < r1; ++r) {
        idx[a] = r;
        v.set_row(idx.data());
        d.set_row(idx.data());
        run_inner<general_mode, F>(d, v, c0, c1);
      }
    }
  };
  const index_t threads = static_cast<index_t>(default_pool().size());
  const index_t total = rest * ea * ei;
  if (threads == 1 || total * cost_per_element < parallel_threshold) {
    run(0, blocks);
    return;
  }
  parallel_chunks(blocks, threads, 1, 1, run);
}

}  // namespace cpu
}  // namespace loom
