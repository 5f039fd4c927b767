// loom/cpu/blocked.hpp: the blocked traversal, for expressions that read across the rows they write.
//
// When the destination is written along its inner axis but some operand steps through memory
// along another axis (a transpose), walking whole rows touches a new cache line (and soon a new
// page) of that operand for every element. The blocked traversal walks square blocks of the two
// axes instead - B rows of the destination by B columns - so the block of the operand it reads
// (B columns of B rows) stays in L1 while the block is written.
//
// Even so, the B rows of such an operand that one block reads lie a whole row of the array apart
// - with a power-of-two row length all in the same few L1 sets - and a packet of B lanes would be
// gathered from B of them. So each block first copies the block of every such operand (a dense
// cursor: cursor::dense) into a per-thread buffer in the destination's order, reading each source
// row segment once from end to end, and the block's rows then read that buffer contiguously.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#if defined(__AVX__)
#include <immintrin.h>
#endif

#include "loom/cpu/binding.hpp"
#include "loom/cpu/gemm/workspace.hpp"
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

namespace detail {

#if defined(__AVX__)
/// The 8 x 8 tile of 4-byte elements at src (rows S apart) into dst (rows B apart), turned: eight
/// loads, 24 shuffles and eight stores in place of 64 scalar loads and 64 stores (the scalar copy
/// was 71% of a 4096 x 4096 float transpose's time).
LOOM_INLINE void turn_8x8(std::uint32_t* dst, index_t B, const std::uint32_t* src, index_t S) {
  __m256 r[8], t[8];
  for (int j = 0; j < 8; ++j) r[j] = _mm256_loadu_ps(reinterpret_cast<const float*>(src + j * S));
  for (int j = 0; j < 8; j += 2) {  // pairs of rows interleaved
    t[j] = _mm256_unpacklo_ps(r[j], r[j + 1]);
    t[j + 1] = _mm256_unpackhi_ps(r[j], r[j + 1]);
  }
  for (int j = 0; j < 8; j += 4) {  // then pairs of pairs: 4 x 4 turned in each 128-bit half
    r[j] = _mm256_shuffle_ps(t[j], t[j + 2], 0x44);
    r[j + 1] = _mm256_shuffle_ps(t[j], t[j + 2], 0xEE);
    r[j + 2] = _mm256_shuffle_ps(t[j + 1], t[j + 3], 0x44);
    r[j + 3] = _mm256_shuffle_ps(t[j + 1], t[j + 3], 0xEE);
  }
  for (int i = 0; i < 4; ++i) {  // the halves of rows i and i + 4 exchanged
    _mm256_storeu_ps(reinterpret_cast<float*>(dst + i * B), _mm256_permute2f128_ps(r[i], r[i + 4], 0x20));
    _mm256_storeu_ps(reinterpret_cast<float*>(dst + (i + 4) * B), _mm256_permute2f128_ps(r[i], r[i + 4], 0x31));
  }
}

/// The 4 x 4 tile of 8-byte elements, turned the same way: four loads, eight shuffles and four
/// stores in place of 16 scalar loads and 16 stores.
LOOM_INLINE void turn_4x4(std::uint64_t* dst, index_t B, const std::uint64_t* src, index_t S) {
  __m256d r[4], t[4];
  for (int j = 0; j < 4; ++j) r[j] = _mm256_loadu_pd(reinterpret_cast<const double*>(src + j * S));
  for (int j = 0; j < 4; j += 2) {  // pairs of rows interleaved: 2 x 2 turned in each 128-bit half
    t[j] = _mm256_unpacklo_pd(r[j], r[j + 1]);
    t[j + 1] = _mm256_unpackhi_pd(r[j], r[j + 1]);
  }
  for (int i = 0; i < 2; ++i) {  // the halves of rows i and i + 2 exchanged
    _mm256_storeu_pd(reinterpret_cast<double*>(dst + i * B), _mm256_permute2f128_pd(t[i], t[i + 2], 0x20));
    _mm256_storeu_pd(reinterpret_cast<double*>(dst + (i + 2) * B), _mm256_permute2f128_pd(t[i], t[i + 2], 0x31));
  }
}
#endif

/// The side of the tiles pack_block turns in registers: 32 bytes of elements (one AVX register).
template <class E>
constexpr index_t turn_side() {
  return sizeof(E) >= 4 ? index_t(32 / sizeof(E)) : 8;
}

/// dst[r * B + c] = src[r + c * S] for r < na, c < ni: a block of an operand stored along the
/// blocked axis, turned to the destination's order. Elements are copied as E (their bytes).
template <class E>
void pack_block(E* dst, index_t B, const E* src, index_t S, index_t na, index_t ni) {
  constexpr index_t T = turn_side<E>();  // T x T tiles: T source segments in flight, T destination rows
  index_t c = 0;
  for (; c + T <= ni; c += T) {
    index_t r = 0;
#if defined(__AVX__)
    if constexpr (sizeof(E) == 4)
      for (; r + T <= na; r += T) turn_8x8(dst + r * B + c, B, src + r + c * S, S);
    else if constexpr (sizeof(E) == 8)
      for (; r + T <= na; r += T) turn_4x4(dst + r * B + c, B, src + r + c * S, S);
#endif
    for (; r + T <= na; r += T)
      for (index_t j = 0; j < T; ++j)
        for (index_t i = 0; i < T; ++i) dst[(r + i) * B + c + j] = src[(r + i) + (c + j) * S];
    for (; r < na; ++r)
      for (index_t j = 0; j < T; ++j) dst[r * B + c + j] = src[r + (c + j) * S];
  }
  for (; c < ni; ++c)
    for (index_t r = 0; r < na; ++r) dst[r * B + c] = src[r + c * S];
}

/// One operand of a blocked loop that is copied per block: its cursor as bound, and its buffer.
struct packed_operand {
  cursor* c = nullptr;
  cursor orig;
  gemm::aligned_buffer buf;
  unsigned char* aligned = nullptr;
};

/// Whether the cursor's block is copied: memory read across the rows (a cache line or more per
/// inner step) with unit stride along the blocked axis a, every position an element.
inline bool packs(const cursor& k, std::size_t a, std::size_t inner) {
  return k.dense && k.elem_size > 0 && k.stride[a] == 1 &&
         std::abs(k.stride[inner]) * static_cast<index_t>(k.elem_size) >= 64 &&
         (k.elem_size == 1 || k.elem_size == 2 || k.elem_size == 4 || k.elem_size == 8);
}

/// Copies the block [r0, r0 + na) x [c0, c0 + ni) of p.orig (the other axes at idx) into p's
/// buffer and points p's cursor there: stride B along a, 1 along the inner axis.
inline void pack_operand(packed_operand& p, const loop_space& s, std::size_t a, const index_t* idx, index_t r0,
                         index_t c0, index_t na, index_t ni, index_t B) {
  const std::size_t inner = s.rank - 1;
  const cursor& o = p.orig;
  index_t off = o.offset + r0 * o.stride[a] + c0 * o.stride[inner];
  for (std::size_t k = 0; k < inner; ++k)
    if (k != a) off += idx[k] * o.stride[k];
  const index_t S = o.stride[inner];
  const unsigned char* src = static_cast<const unsigned char*>(o.base) + off * static_cast<index_t>(o.elem_size);
  switch (o.elem_size) {
    case 1:
      pack_block(p.aligned, B, src, S, na, ni);
      break;
    case 2:
      pack_block(reinterpret_cast<std::uint16_t*>(p.aligned), B, reinterpret_cast<const std::uint16_t*>(src), S, na,
                 ni);
      break;
    case 4:
      pack_block(reinterpret_cast<std::uint32_t*>(p.aligned), B, reinterpret_cast<const std::uint32_t*>(src), S, na,
                 ni);
      break;
    default:
      pack_block(reinterpret_cast<std::uint64_t*>(p.aligned), B, reinterpret_cast<const std::uint64_t*>(src), S, na,
                 ni);
      break;
  }
  cursor& c = *p.c;
  c.base = p.aligned;
  c.offset = -(r0 * B + c0);
  c.stride.fill(0);
  c.stride[a] = B;
  c.stride[inner] = 1;
}

}  // namespace detail

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
  // With the copied operands read contiguously, the rows may run in contiguous mode, and with
  // non-temporal stores where the destination is large (each block writes whole cache lines of B
  // rows that nothing reads again soon).
  bool contiguous = dst.c.stride[inner] == 1;
  std::size_t npacked = 0;
  ev.for_each_cursor([&](cursor& c) {
    if (detail::packs(c, a, inner))
      ++npacked;
    else if (c.elem_size != 0 && c.stride[inner] != 1)
      contiguous = false;
  });
  using T = std::remove_cv_t<std::remove_pointer_t<decltype(dst.row)>>;
  const layout_class layout = contiguous
                                  ? choose_layout(true, std::size_t(rest * ea * ei) * sizeof(T) * 2, cost_per_element)
                                  : layout_class::general;
  auto run = [&](index_t b0, index_t b1) {
    Dst d = dst;
    Ev v = ev;
    std::vector<detail::packed_operand> packed(npacked);
    std::size_t np = 0;
    v.for_each_cursor([&](cursor& c) {
      if (!detail::packs(c, a, inner)) return;
      detail::packed_operand& p = packed[np++];
      p.c = &c;
      p.orig = c;
      p.aligned = p.buf.get<unsigned char>(B * B * static_cast<index_t>(c.elem_size));
    });
    with_layout_mode<F, T>(layout, [&](auto mode) {
      using M = decltype(mode);
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
        const index_t r0 = ba * B, r1 = std::min(ea, r0 + B);
        if (!packed.empty()) {
          for (auto& p : packed) detail::pack_operand(p, s, a, idx.data(), r0, c0, r1 - r0, c1 - c0, B);
          v.prepare(s);  // the packed cursors' inner strides are now 1
        }
        for (index_t r = r0; r < r1; ++r) {
          idx[a] = r;
          v.set_row(idx.data());
          d.set_row(idx.data());
          run_inner<M, F>(d, v, c0, c1);
        }
      }
      if constexpr (M::stream) stream_fence();
    });
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
