// loom/cpu/reduce.hpp: the reduction kernels - one pass over an operand, SIMD and accurate.
//
// A reduction runs over a *reduction space*: the kept axes (one output per index) followed by the
// reduced axes. Its operand's evaluator is bound to that space, so the operand - any elementwise
// expression, index map or nested reduction read from a buffer - is computed on the fly and never
// stored. After collapsing (within each part, never across), one of two layouts is chosen:
//
//   inner  the last reduced axis is the operand's unit stride: each output reduces its rows with
//          SIMD packets into four accumulators (the row of a softmax or a full sum);
//   outer  the last kept axis is the unit stride: a block of outputs is accumulated across
//          packets of columns, row after row of the reduced axes (column sums).
//
// Sums stay accurate in float: inner runs are summed in blocks of `sum_block` elements with 4 x
// lanes partial sums, and the block sums are combined pairwise (a binary-counter cascade); outer
// accumulators are folded every 32 rows into a second level and every 1024 into a third. The
// order of every combination is fixed by the shape alone, so results do not depend on threads.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <type_traits>
#include <vector>

#include "loom/core/config.hpp"
#include "loom/cpu/binding.hpp"
#include "loom/cpu/packet_ops.hpp"
#include "loom/cpu/prefetch.hpp"
#include "loom/cpu/simd.hpp"
#include "loom/expr/ops.hpp"
#include "loom/expr/reduce.hpp"

namespace loom {
namespace cpu {

/// Elements summed per block of an inner run before the block's sum enters the cascade.
inline constexpr index_t sum_block = 2048;
/// The widest block of outputs the outer layout accumulates at once.
inline constexpr index_t outer_block = 1024;
/// Packet accumulators of an inner-axis reduction whose operand costs `operand_cost` a packet
/// (traversal units): four hide the combine's latency behind a cheap operand (a load, a product);
/// an operand as dear as exp takes longer to compute than two accumulators' chains, and the
/// registers the other two held go to its constants instead.
constexpr int inner_accumulators(int operand_cost) { return operand_cost >= 8 ? 2 : 4; }

// ---------------------------------------------------------------------------------------------
// The reduction space
// ---------------------------------------------------------------------------------------------

/// A reduction's space after collapsing, and the loop space its operand's evaluator runs over.
struct reduce_space {
  std::size_t kr = 0, rr = 0;             // kept and reduced axes after collapsing (>= 1 each)
  std::array<index_t, max_rank> ke{}, re{};  // their extents
  bool outer = false;                     // outer layout (else inner)
  bool contiguous = false;                // every memory cursor has unit inner stride
  loop_space ls;                          // inner: kept..., reduced...; outer: kept[:-1], reduced..., kept[-1]
  index_t kept_count = 1, reduced_count = 1;
  /// Reduced elements per reduced "row" of the flattened reduced space (inner: the run length).
  index_t reduced_row() const { return outer ? 1 : re[rr - 1]; }
};

namespace detail {
/// Collapses axes [lo, hi) of `e` over the cursors: drops extent-1 axes and merges neighbours that
/// every cursor steps through as one. Writes the extents and per-cursor strides of the result.
inline std::size_t collapse_part(const index_t* e, std::size_t lo, std::size_t hi, cursor* const* cs, std::size_t n,
                                 index_t* out_e, std::array<index_t, max_rank>* out_s) {
  std::size_t r = 0;
  for (std::size_t k = lo; k < hi; ++k) {
    if (e[k] == 1) continue;
    bool merge = r > 0;
    for (std::size_t c = 0; merge && c < n; ++c) merge = out_s[c][r - 1] == cs[c]->stride[k] * e[k];
    if (merge) {
      out_e[r - 1] *= e[k];
      for (std::size_t c = 0; c < n; ++c) out_s[c][r - 1] = cs[c]->stride[k];
    } else {
      out_e[r] = e[k];
      for (std::size_t c = 0; c < n; ++c) out_s[c][r] = cs[c]->stride[k];
      ++r;
    }
  }
  if (r == 0) {
    out_e[0] = 1;
    for (std::size_t c = 0; c < n; ++c) out_s[c][0] = 0;
    r = 1;
  }
  return r;
}
}  // namespace detail

/// Builds the reduction space of extents e = [kept (nk axes)..., reduced (nr axes)...] over the
/// cursors, rewriting their strides to the loop space's order. The reduced axes keep their order
/// (arg reductions report row-major positions over them).
inline reduce_space make_reduce_space(const index_t* e, std::size_t nk, std::size_t nr, cursor* const* cs,
                                      std::size_t n) {
  reduce_space rs;
  std::array<std::array<index_t, max_rank>, 64> ks_small, rs_small;
  std::vector<std::array<index_t, max_rank>> ks_big, rs_big;
  auto* ks = n <= 64 ? ks_small.data() : (ks_big.resize(n), ks_big.data());
  auto* rsd = n <= 64 ? rs_small.data() : (rs_big.resize(n), rs_big.data());
  rs.kr = detail::collapse_part(e, 0, nk, cs, n, rs.ke.data(), ks);
  rs.rr = detail::collapse_part(e, nk, nk + nr, cs, n, rs.re.data(), rsd);
  for (std::size_t k = 0; k < rs.kr; ++k) rs.kept_count *= rs.ke[k];
  for (std::size_t k = 0; k < rs.rr; ++k) rs.reduced_count *= rs.re[k];

  auto unitish = [&](auto* st, std::size_t axis, bool& any_unit) {
    bool ok = true;
    for (std::size_t c = 0; c < n; ++c) {
      if (cs[c]->elem_size == 0) continue;
      const index_t v = st[c][axis];
      if (v == 1) any_unit = true;
      ok = ok && (v == 0 || v == 1);
    }
    return ok;
  };
  bool ru = false, ku = false;
  const bool inner_ok = unitish(rsd, rs.rr - 1, ru) && ru;
  const bool outer_ok = rs.ke[rs.kr - 1] > 1 && unitish(ks, rs.kr - 1, ku) && ku;
  rs.outer = !inner_ok && outer_ok;

  // The loop space, and each cursor's strides in its order.
  std::size_t r = 0;
  std::vector<std::array<index_t, max_rank>> out(n);
  auto set = [&](index_t ext, auto* st, std::size_t axis) {
    rs.ls.extent[r] = ext;
    for (std::size_t c = 0; c < n; ++c) out[c][r] = st[c][axis];
    ++r;
  };
  if (!rs.outer) {
    for (std::size_t k = 0; k < rs.kr; ++k) set(rs.ke[k], ks, k);
    for (std::size_t k = 0; k < rs.rr; ++k) set(rs.re[k], rsd, k);
  } else {
    for (std::size_t k = 0; k + 1 < rs.kr; ++k) set(rs.ke[k], ks, k);
    for (std::size_t k = 0; k < rs.rr; ++k) set(rs.re[k], rsd, k);
    set(rs.ke[rs.kr - 1], ks, rs.kr - 1);
  }
  rs.ls.rank = r;
  rs.contiguous = true;
  for (std::size_t c = 0; c < n; ++c) {
    cs[c]->stride.fill(0);
    for (std::size_t k = 0; k < r; ++k) cs[c]->stride[k] = out[c][k];
    if (cs[c]->elem_size != 0 && out[c][r - 1] != 1) rs.contiguous = false;
  }
  return rs;
}

// ---------------------------------------------------------------------------------------------
// Accumulation
// ---------------------------------------------------------------------------------------------

/// The running value of an arg reduction: the best value and its flat index.
template <class V>
struct arg_acc {
  V v{};
  std::int64_t i = -1;
};

namespace detail {

template <class Red>
inline constexpr bool is_sum_like = std::is_same_v<Red, reduce_ops::sum> || std::is_same_v<Red, reduce_ops::mean>;

template <class Red, class A>
LOOM_INLINE A combine(A a, A x) {
  return Red::combine(a, x);
}

template <class Red, class C, class F, class P>
LOOM_INLINE P combine_packet(const P& a, const P& x) {
  if constexpr (is_sum_like<Red>)
    return a + x;
  else if constexpr (std::is_same_v<Red, reduce_ops::prod>)
    return a * x;
  else if constexpr (std::is_same_v<Red, reduce_ops::max>)
    return packet_op<ops::maximum>::template apply<C, F>(a, x);
  else
    return packet_op<ops::minimum>::template apply<C, F>(a, x);
}

/// to[k] = combine(to[k], from[k]) for k in [0, n), by packets where there are any (lane by lane
/// the same operations as the scalar loop).
template <class Red, class A, class F>
LOOM_INLINE void combine_into(A* to, const A* from, index_t n) {
  index_t k = 0;
  if constexpr (!std::is_void_v<F>) {
    using P = packet_t<A, F>;
    constexpr index_t w = static_cast<index_t>(P::size);
    for (; k + w <= n; k += w)
      combine_packet<Red, A, F>(P::load_unaligned(to + k), P::load_unaligned(from + k)).store_unaligned(to + k);
  }
  for (; k < n; ++k) to[k] = combine<Red>(to[k], from[k]);
}

/// Lanes of packet p folded as a tree - lane l with lane l + h, h halving - by `pop` on packets
/// (AVX-512: in registers) or `sop` on scalars: four dependent steps for sixteen lanes where a fold
/// in lane order takes fifteen, which every short row waits for (a softmax over 65536 rows of 64
/// floats spent a third of its time folding lanes in order through memory).
template <class A, class F, class P, class PacketOp, class ScalarOp>
LOOM_INLINE A tree_fold(const P& p, PacketOp pop, ScalarOp sop) {
#if defined(__AVX512F__)
  if constexpr (sizeof(P) == 64 && std::is_same_v<A, float>) {
    P q = pop(p, P(_mm512_shuffle_f32x4(p, p, 0x4E)));  // lanes 8-15 onto 0-7
    q = pop(q, P(_mm512_shuffle_f32x4(q, q, 0xB1)));    // 4-7 onto 0-3
    q = pop(q, P(_mm512_permute_ps(q, 0x4E)));          // 2-3 onto 0-1
    q = pop(q, P(_mm512_permute_ps(q, 0xB1)));          // 1 onto 0
    return _mm512_cvtss_f32(q);
  } else if constexpr (sizeof(P) == 64 && std::is_same_v<A, double>) {
    P q = pop(p, P(_mm512_shuffle_f64x2(p, p, 0x4E)));
    q = pop(q, P(_mm512_shuffle_f64x2(q, q, 0xB1)));
    q = pop(q, P(_mm512_permute_pd(q, 0x55)));
    return _mm512_cvtsd_f64(q);
  }
#endif
  alignas(64) A t[lanes<F>];
  p.store_unaligned(t);
  for (std::size_t h = lanes<F> / 2; h > 0; h /= 2)
    for (std::size_t l = 0; l < h; ++l) t[l] = sop(t[l], t[l + h]);
  return t[0];
}

/// The lanes of a packet of partial results combined into one.
template <class Red, class A, class F, class P>
LOOM_INLINE A fold_packet(const P& p) {
  return tree_fold<A, F>(
      p, [](const P& a, const P& b) { return combine_packet<Red, A, F>(a, b); },
      [](A a, A b) { return combine<Red>(a, b); });
}

/// Sums enter pairwise (a binary counter of partial sums); other reductions simply combine.
template <class Red, class A>
struct cascade {
  A plain = Red::template identity<A>();
  A level[48];
  std::uint64_t n = 0;
  LOOM_INLINE void push(A x) {
    if constexpr (is_sum_like<Red>) {
      std::size_t i = 0;
      for (std::uint64_t m = n; m & 1u; m >>= 1, ++i) x = combine<Red>(level[i], x);
      level[i] = x;
      ++n;
    } else {
      plain = combine<Red>(plain, x);
    }
  }
  LOOM_INLINE A total() const {
    if constexpr (is_sum_like<Red>) {  // the levels present, highest first
      if (n == 0) return Red::template identity<A>();
      std::uint64_t m = n;
      int i = 63 - std::countl_zero(m);
      A t = level[i];
      for (m &= ~(std::uint64_t(1) << i); m != 0; m &= ~(std::uint64_t(1) << i)) {
        i = 63 - std::countl_zero(m);
        t = combine<Red>(t, level[i]);
      }
      return t;
    } else {
      return plain;
    }
  }
};

template <class Red>
inline constexpr bool is_max = std::is_same_v<Red, reduce_ops::max>;
template <class Red>
inline constexpr bool is_extremum = std::is_same_v<Red, reduce_ops::max> || std::is_same_v<Red, reduce_ops::min>;

/// One step of a floating max (min) that leaves NaN to a separate flag: (x > a) ? x : a, one
/// instruction on x86 (maxps returns its second operand when either is NaN, so a NaN x leaves a
/// unchanged and a never becomes NaN); where the instruction propagates NaN instead, a may
/// become NaN, which the flag reports the same way.
template <class Red, class P>
LOOM_INLINE P extremum_step(const P& a, const P& x) {
  if constexpr (std::is_same_v<Red, reduce_ops::max>)
    return xsimd::max(x, a);
  else
    return xsimd::min(x, a);
}

/// Whether any lane of the packets added was NaN. AVX-512: one masked compare a packet (the
/// mask of lanes ordered so far, narrowed by each packet); elsewhere an unordered compare and an
/// or of masks.
template <class A, class P>
struct nan_flags {
#if defined(__AVX512F__)
  static constexpr bool mask_register = sizeof(P) == 64;
#else
  static constexpr bool mask_register = false;
#endif
#if defined(__AVX512F__)
  // Held as the mask type itself: as a uint32_t, GCC moved it to a general register and back
  // around every compare (kmovw twice a packet), and the max pass of a softmax over 512 x 256
  // floats in L2 took 11 us instead of 8.9.
  using mask_type = std::conditional_t<sizeof(A) == 4, __mmask16, __mmask8>;
#else
  using mask_type = std::uint32_t;
#endif
  using flags_type = std::conditional_t<mask_register, mask_type, xsimd::batch_bool<A, typename P::arch_type>>;
  flags_type f = init();

  static flags_type init() {
    if constexpr (mask_register)
      return mask_type((std::uint32_t(1) << lanes_of) - 1);  // lanes ordered so far: all
    else
      return xsimd::isnan(P(A(0)));  // none NaN
  }
  LOOM_INLINE void add(const P& x) { add2(x, x); }
  /// Adds two packets with one compare where the instruction set has an unordered compare of two
  /// operands (true where either lane is NaN): the max pass of a softmax on AVX2 spent a compare
  /// and an or on every packet. (add(x) is add2(x, x): x unordered with itself is NaN.)
  LOOM_INLINE void add2(const P& x, const P& y) {
#if defined(__AVX512F__)
    if constexpr (mask_register) {
      if constexpr (std::is_same_v<A, float>)
        f = _mm512_mask_cmp_ps_mask(f, x, y, _CMP_ORD_Q);
      else
        f = _mm512_mask_cmp_pd_mask(f, x, y, _CMP_ORD_Q);
      return;
    }
#endif
#if defined(__AVX__)
    if constexpr (!mask_register && sizeof(P) == 32) {
      using B = xsimd::batch_bool<A, typename P::arch_type>;
      if constexpr (std::is_same_v<A, float>)
        f = f | B(_mm256_cmp_ps(x, y, _CMP_UNORD_Q));
      else
        f = f | B(_mm256_cmp_pd(x, y, _CMP_UNORD_Q));
      return;
    }
#endif
#if defined(__SSE2__)
    if constexpr (!mask_register && sizeof(P) == 16) {
      using B = xsimd::batch_bool<A, typename P::arch_type>;
      if constexpr (std::is_same_v<A, float>)
        f = f | B(_mm_cmpunord_ps(x, y));
      else
        f = f | B(_mm_cmpunord_pd(x, y));
      return;
    }
#endif
    if constexpr (!mask_register) f = f | xsimd::isnan(x) | xsimd::isnan(y);
  }
  LOOM_INLINE bool any() const {
    if constexpr (mask_register)
      return std::uint32_t(f) != (std::uint32_t(1) << lanes_of) - 1;
    else
      return xsimd::any(f);
  }
  static constexpr std::size_t lanes_of = sizeof(P) / sizeof(A);
};

/// Floating max/min of [i0, i1): four accumulators of NaN-ignoring steps and a NaN flag per
/// lane (two instructions a packet instead of the five of the elementwise NaN-propagating
/// maximum, and no blend in the accumulators' dependency chains), the lanes folded as a tree.
/// NaN anywhere gives NaN.
template <class Red, class A, class F, class M, class Ev>
LOOM_INLINE A extremum_run(const Ev& ev, index_t i0, index_t i1, prefetch_stream& pf) {
  using V = typename Ev::value_type;
  using P = packet_t<A, F>;
  constexpr index_t w = static_cast<index_t>(lanes<F>);
  const P id(Red::template identity<A>());
  P a0 = id, a1 = id, a2 = id, a3 = id;
  nan_flags<A, P> n0, n1;  // two packets a compare where the instruction set allows (add2)
  index_t i = i0;
  auto load = [&](index_t j) LOOM_INLINE_LAMBDA { return convert_packet<A, V, F>(ev.template packet<M, F>(j)); };
  i = pf.loop(i, i1, 4 * w, [&](index_t j) LOOM_INLINE_LAMBDA {
    const P x0 = load(j), x1 = load(j + w), x2 = load(j + 2 * w), x3 = load(j + 3 * w);
    a0 = extremum_step<Red>(a0, x0);
    a1 = extremum_step<Red>(a1, x1);
    a2 = extremum_step<Red>(a2, x2);
    a3 = extremum_step<Red>(a3, x3);
    n0.add2(x0, x1);
    n1.add2(x2, x3);
  });
  for (; i + w <= i1; i += w) {
    const P x = load(i);
    a0 = extremum_step<Red>(a0, x);
    n0.add(x);
  }
  if (n0.any() || n1.any()) return std::numeric_limits<A>::quiet_NaN();
  A s = tree_fold<A, F>(  // no NaN among them
      extremum_step<Red>(extremum_step<Red>(a0, a1), extremum_step<Red>(a2, a3)),
      [](const P& a, const P& x) { return extremum_step<Red>(a, x); },
      [](A a, A x) { return is_max<Red> ? (x > a ? x : a) : (x < a ? x : a); });
  for (; i < i1; ++i) s = combine<Red>(s, loom::detail::convert<A>(ev.template scalar<M>(i)));
  return s;
}

/// Reduces [i0, i1) of the current row (i1 - i0 <= sum_block for sums), prefetching `pf`'s lines,
/// in `Acc` (2 or 4) packet accumulators.
template <class Red, class A, class F, class M, int Acc, class Ev>
LOOM_INLINE A reduce_run(const Ev& ev, index_t i0, index_t i1, prefetch_stream& pf) {
  static_assert(Acc == 2 || Acc == 4);
  using V = typename Ev::value_type;
  if constexpr (!std::is_void_v<F> && is_extremum<Red> && std::is_floating_point_v<A>) {
    if (i1 - i0 >= index_t(lanes<F>)) return extremum_run<Red, A, F, M>(ev, i0, i1, pf);
  }
  A s = Red::template identity<A>();
  index_t i = i0;
  if constexpr (!std::is_void_v<F>) {
    using P = packet_t<A, F>;
    constexpr index_t w = static_cast<index_t>(lanes<F>);
    if (i1 - i0 >= w) {
      const P id(Red::template identity<A>());
      P a0 = id, a1 = id, a2 = id, a3 = id;
      i = pf.loop(i, i1, 4 * w, [&](index_t j) LOOM_INLINE_LAMBDA {
        a0 = combine_packet<Red, A, F>(a0, convert_packet<A, V, F>(ev.template packet<M, F>(j)));
        a1 = combine_packet<Red, A, F>(a1, convert_packet<A, V, F>(ev.template packet<M, F>(j + w)));
        P& c = Acc == 4 ? a2 : a0;
        P& d = Acc == 4 ? a3 : a1;
        c = combine_packet<Red, A, F>(c, convert_packet<A, V, F>(ev.template packet<M, F>(j + 2 * w)));
        d = combine_packet<Red, A, F>(d, convert_packet<A, V, F>(ev.template packet<M, F>(j + 3 * w)));
      });
      for (; i + w <= i1; i += w) a0 = combine_packet<Red, A, F>(a0, convert_packet<A, V, F>(ev.template packet<M, F>(i)));
      P t = combine_packet<Red, A, F>(a0, a1);
      if constexpr (Acc == 4) t = combine_packet<Red, A, F>(t, combine_packet<Red, A, F>(a2, a3));
      s = fold_packet<Red, A, F>(t);
    }
  }
  for (; i < i1; ++i) s = combine<Red>(s, loom::detail::convert<A>(ev.template scalar<M>(i)));
  return s;
}

/// The kept and reduced-outer multi-index of (kept flat k, reduced row q) in the inner layout.
inline void inner_index(const reduce_space& rs, index_t k, index_t q, index_t* idx) {
  for (std::size_t j = rs.kr; j-- > 0;) {
    idx[j] = k % rs.ke[j];
    k /= rs.ke[j];
  }
  for (std::size_t j = rs.rr - 1; j-- > 0;) {
    idx[rs.kr + j] = q % rs.re[j];
    q /= rs.re[j];
  }
}
/// Steps the reduced-outer part of an inner-layout index to the next row.
LOOM_INLINE void next_reduced_row(const reduce_space& rs, index_t* idx) {
  for (std::size_t j = rs.rr - 1; j-- > 0;) {
    if (++idx[rs.kr + j] < rs.re[j]) return;
    idx[rs.kr + j] = 0;
  }
}

}  // namespace detail

template <class Ev>
struct tee_evaluator;
namespace detail {
/// Whether an operand evaluator writes as it reads (a tee keeps every value in a cache).
template <class Ev>
inline constexpr bool writes_cache = false;
template <class Ev>
inline constexpr bool writes_cache<tee_evaluator<Ev>> = true;
}  // namespace detail

/// Inner layout: for each kept output k in [k0, k1), the (unfinished) reduction over the reduced
/// flat range [a, b), into out[k - k0].
///
/// A tee runs on a copy of its evaluator, once a call (a tile's rows): a local whose address no
/// other code holds, so that its stores (softmax's exp kept for the quotient, may_alias like every
/// packet store) do not force its row pointers and row values to be reloaded for every packet
/// (the exp-and-sum pass on AVX2: three pointer loads and a broadcast a packet). An evaluator that
/// only reads runs in place: its loop has no stores, and the copy's stores - wide loads of the
/// cursors the tile loop has just pointed - waited behind the consumer's stores (W4 on a Xeon,
/// bench/RESULTS.md 2026-11-28 20:08). `pf`'s copy (a local, in registers) prefetches between
/// groups of four packets.
/// `Acc`: packet accumulators (inner_accumulators).
template <class Red, class A, class F, class M, int Acc = 4, class Ev>
void reduce_inner(Ev& ev_in, const reduce_space& rs, index_t k0, index_t k1, index_t a, index_t b, A* out,
                  const prefetch_stream& pf_in = {}) {
  std::conditional_t<detail::writes_cache<Ev>, Ev, Ev&> ev = ev_in;
  prefetch_stream pf = pf_in;
  const index_t W = rs.re[rs.rr - 1];
  std::array<index_t, max_rank> idx;
  if (rs.rr == 1 && rs.kr == 1 && (!detail::is_sum_like<Red> || b - a <= sum_block)) {
    // One run per output, output k at kept index k: no index arithmetic and no cascade (a single
    // block enters it as itself), which is most of the cost of a short row (a softmax over 512 x 64
    // floats in L2: 28.5 -> 23.9 us; over 32 x 1024: 16.9 -> 15.9).
    for (index_t k = k0; k < k1; ++k) {
      idx[0] = k;
      ev.set_row(idx.data());
      A v = detail::reduce_run<Red, A, F, M, Acc>(ev, a, b, pf);
      if constexpr (!detail::is_sum_like<Red>) v = detail::combine<Red>(Red::template identity<A>(), v);
      out[k - k0] = v;
    }
    return;
  }
  idx.fill(0);
  for (index_t k = k0; k < k1; ++k) {
    detail::cascade<Red, A> cs;
    index_t q = a / W, col = a % W, pos = a;
    detail::inner_index(rs, k, q, idx.data());
    while (pos < b) {
      const index_t stop = std::min(W, col + (b - pos));
      ev.set_row(idx.data());
      if constexpr (detail::is_sum_like<Red>) {
        for (index_t c = col; c < stop; c += sum_block)
          cs.push(detail::reduce_run<Red, A, F, M, Acc>(ev, c, std::min(stop, c + sum_block), pf));
      } else {
        cs.push(detail::reduce_run<Red, A, F, M, Acc>(ev, col, stop, pf));
      }
      pos += stop - col;
      col = 0;
      detail::next_reduced_row(rs, idx.data());
    }
    out[k - k0] = cs.total();
  }
}

/// Outer layout: outputs [k0, k1) (a range of the flattened kept space) accumulated across
/// columns over reduced rows [a, b), into out[k - k0].
template <class Red, class A, class F, class M, class Ev>
void reduce_outer(Ev& ev, const reduce_space& rs, index_t k0, index_t k1, index_t a, index_t b, A* out) {
  const index_t Wk = rs.ke[rs.kr - 1];
  constexpr bool levels = detail::is_sum_like<Red>;
  constexpr index_t G = 32;
  alignas(64) A acc0[outer_block];
  alignas(64) A acc1[levels ? outer_block : 1];
  alignas(64) A acc2[levels ? outer_block : 1];
  const A id = Red::template identity<A>();
  // A level's partial sums into the next level's, by packets (GCC's -O2 had left the scalar loop
  // scalar, a fifth of the instructions of column sums over rows of 256 floats).
  const auto fold_level = [id](A* to, A* from, index_t w) {
    detail::combine_into<Red, A, F>(to, from, w);
    std::fill(from, from + w, id);
  };
  std::array<index_t, max_rank> idx{};
  const std::size_t ko_rank = rs.kr - 1;
  // Rows in pairs where the operand only reads (a tee also writes its cache) and the sum has
  // levels (a pair never straddles a fold: G is even and in0 starts at 0).
  constexpr bool pairs = levels && !detail::writes_cache<Ev>;
  std::conditional_t<pairs, Ev, Ev&> ev2 = ev;  // the second row's copy (unused without pairs)
  index_t k = k0;
  while (k < k1) {
    // A segment of one kept-outer index and a block of columns.
    index_t ko = k / Wk;
    const index_t c0 = k % Wk, c1 = std::min({Wk, c0 + (k1 - k), c0 + outer_block});
    const index_t w = c1 - c0;
    for (std::size_t j = ko_rank; j-- > 0;) {
      idx[j] = ko % rs.ke[j];
      ko /= rs.ke[j];
    }
    std::fill(acc0, acc0 + w, id);
    if constexpr (levels) {
      std::fill(acc1, acc1 + w, id);
      std::fill(acc2, acc2 + w, id);
    }
    // reduced multi-index of row a
    {
      index_t q = a;
      for (std::size_t j = rs.rr; j-- > 0;) {
        idx[ko_rank + j] = q % rs.re[j];
        q /= rs.re[j];
      }
    }
    index_t in0 = 0, in1 = 0;
    const auto next_row = [&] {
      for (std::size_t j = rs.rr; j-- > 0;) {
        if (++idx[ko_rank + j] < rs.re[j]) break;
        idx[ko_rank + j] = 0;
      }
    };
    for (index_t q = a; q < b;) {
      const bool two = pairs && b - q >= 2;
      ev.set_row(idx.data());
      if (two) {
        next_row();
        ev2.set_row(idx.data());
      }
      index_t i = 0;
      if constexpr (!std::is_void_v<F>) {
        // A column's path depends on the column alone, not on where this segment starts or
        // ends (the split across threads): columns [0, full) are computed by packets at
        // multiples of the width, the last Wk % lw by the scalar path. A packet group cut by
        // the segment is computed whole and only its lanes inside [c0, c1) are used, so a
        // column gives the same bits under any split (a packet cos and a scalar cos may differ).
        using P = packet_t<A, F>;
        using V = typename Ev::value_type;
        constexpr index_t lw = static_cast<index_t>(lanes<F>);
        const index_t full = Wk - Wk % lw, pend = std::min(c1, full);
        index_t c = c0;
        const auto partial = [&](index_t g, index_t e) {  // lanes [c, e) of the group at g
          alignas(64) A t[lw], t2[lw];
          convert_packet<A, V, F>(ev.template packet<M, F>(g)).store_aligned(t);
          if (two) convert_packet<A, V, F>(ev2.template packet<M, F>(g)).store_aligned(t2);
          for (; c < e; ++c) {
            acc0[c - c0] = detail::combine<Red>(acc0[c - c0], t[c - g]);
            if (two) acc0[c - c0] = detail::combine<Red>(acc0[c - c0], t2[c - g]);
          }
        };
        if (c < pend && c % lw != 0) partial(c - c % lw, std::min(c - c % lw + lw, pend));
        // Two rows at a time (each column's sum still takes row q, then row q + 1: the same bits):
        // the accumulators loaded and stored once for two rows. Column sums of 2048 x 1024 floats
        // at 2 threads on the Zen 3: 0.125-0.139 -> 0.115-0.122 ms (hand-written 0.101-0.108).
        if (two) {
          const auto step2 = [&](index_t at) {
            P x = convert_packet<A, V, F>(ev.template packet<M, F>(at));
            P y = convert_packet<A, V, F>(ev2.template packet<M, F>(at));
            P s = P::load_unaligned(acc0 + (at - c0));
            detail::combine_packet<Red, A, F>(detail::combine_packet<Red, A, F>(s, x), y).store_unaligned(acc0 + (at - c0));
          };
          for (; c + 2 * lw <= pend; c += 2 * lw) {
            step2(c);
            step2(c + lw);
          }
          for (; c + lw <= pend; c += lw) step2(c);
        } else {
          const auto step = [&](index_t at) {
            P x = convert_packet<A, V, F>(ev.template packet<M, F>(at));
            P s = P::load_unaligned(acc0 + (at - c0));
            detail::combine_packet<Red, A, F>(s, x).store_unaligned(acc0 + (at - c0));
          };
          // Four packets an iteration: the one-packet loop of a column sum is 24 bytes of code,
          // and where it straddled a 32-byte boundary the Zen 3 ran it at 0.6x (bench/RESULTS.md,
          // 2026-11-28: the same function 0.25 ms or 0.15 by where the linker put it).
          for (; c + 4 * lw <= pend; c += 4 * lw) {
            step(c);
            step(c + lw);
            step(c + 2 * lw);
            step(c + 3 * lw);
          }
          for (; c + lw <= pend; c += lw) step(c);
        }
        if (c < pend) partial(c, pend);
        i = c - c0;
      }
      for (; i < w; ++i) {
        acc0[i] = detail::combine<Red>(acc0[i], loom::detail::convert<A>(ev.template scalar<M>(c0 + i)));
        if (two) acc0[i] = detail::combine<Red>(acc0[i], loom::detail::convert<A>(ev2.template scalar<M>(c0 + i)));
      }
      if constexpr (levels) {
        in0 += two ? 2 : 1;
        if (in0 == G) {
          in0 = 0;
          fold_level(acc1, acc0, w);
          if (++in1 == G) {
            in1 = 0;
            fold_level(acc2, acc1, w);
          }
        }
      }
      next_row();
      q += two ? 2 : 1;
    }
    for (index_t j = 0; j < w; ++j) {
      if constexpr (levels)
        out[k - k0 + j] = (acc2[j] + acc1[j]) + acc0[j];
      else
        out[k - k0 + j] = acc0[j];
    }
    k += w;
  }
}

/// Arg reductions, inner layout (scalar): the first best value of each output over [a, b).
template <class Red, class V, class M, class Ev>
void reduce_inner_arg(Ev& ev, const reduce_space& rs, index_t k0, index_t k1, index_t a, index_t b,
                      arg_acc<V>* out) {
  const index_t W = rs.re[rs.rr - 1];
  std::array<index_t, max_rank> idx{};
  for (index_t k = k0; k < k1; ++k) {
    arg_acc<V> best;
    index_t q = a / W, col = a % W, pos = a;
    detail::inner_index(rs, k, q, idx.data());
    while (pos < b) {
      const index_t stop = std::min(W, col + (b - pos));
      ev.set_row(idx.data());
      const index_t base = pos - col;
      for (index_t i = col; i < stop; ++i) {
        const V x = loom::detail::convert<V>(ev.template scalar<M>(i));
        if (best.i < 0 || reduce_ops::arg_better<Red>(x, best.v)) {
          best.v = x;
          best.i = base + i;
        }
      }
      pos += stop - col;
      col = 0;
      detail::next_reduced_row(rs, idx.data());
    }
    out[k - k0] = best;
  }
}

/// Arg reductions, outer layout (scalar per column, rows in order).
template <class Red, class V, class M, class Ev>
void reduce_outer_arg(Ev& ev, const reduce_space& rs, index_t k0, index_t k1, index_t a, index_t b,
                      arg_acc<V>* out) {
  const index_t Wk = rs.ke[rs.kr - 1];
  std::array<index_t, max_rank> idx{};
  const std::size_t ko_rank = rs.kr - 1;
  for (index_t k = k0; k < k1; ++k) out[k - k0] = arg_acc<V>{};
  index_t k = k0;
  while (k < k1) {
    index_t ko = k / Wk;
    const index_t c0 = k % Wk, c1 = std::min(Wk, c0 + (k1 - k));
    for (std::size_t j = ko_rank; j-- > 0;) {
      idx[j] = ko % rs.ke[j];
      ko /= rs.ke[j];
    }
    {
      index_t q = a;
      for (std::size_t j = rs.rr; j-- > 0;) {
        idx[ko_rank + j] = q % rs.re[j];
        q /= rs.re[j];
      }
    }
    arg_acc<V>* o = out + (k - k0) - c0;
    for (index_t q = a; q < b; ++q) {
      ev.set_row(idx.data());
      for (index_t c = c0; c < c1; ++c) {
        const V x = loom::detail::convert<V>(ev.template scalar<M>(c));
        if (o[c].i < 0 || reduce_ops::arg_better<Red>(x, o[c].v)) {
          o[c].v = x;
          o[c].i = q;
        }
      }
      for (std::size_t j = rs.rr; j-- > 0;) {
        if (++idx[ko_rank + j] < rs.re[j]) break;
        idx[ko_rank + j] = 0;
      }
    }
    k += c1 - c0;
  }
}

/// Combines a later partial result into an earlier one (Scheme "split the reduced range").
template <class Red, class A>
LOOM_INLINE void merge_partial(A& into, const A& later) {
  into = detail::combine<Red>(into, later);
}
template <class Red, class V>
LOOM_INLINE void merge_partial(arg_acc<V>& into, const arg_acc<V>& later) {
  if (later.i < 0) return;
  if (into.i < 0 || reduce_ops::arg_better<Red>(later.v, into.v)) into = later;
}

/// The value of an output from its accumulator; `count` is the number of reduced elements.
template <class Red, class R, class A>
LOOM_INLINE R finalize(const A& a, index_t count) {
  if constexpr (Red::is_arg) {
    return static_cast<R>(a.i);
  } else if constexpr (std::is_same_v<Red, reduce_ops::mean>) {
    return static_cast<R>(a) / static_cast<R>(count);
  } else {
    return loom::detail::convert<R>(a);
  }
}

}  // namespace cpu
}  // namespace loom
