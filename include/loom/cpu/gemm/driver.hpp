// loom/cpu/gemm/driver.hpp: the loops around the micro-kernel, and the split over threads.
//
// gemm<T>(M, N, K, a, b, epi) computes the M x N product of the sources a (M x K) and b (K x N)
// and hands every finished tile, with its complete sums over K, to epi exactly once.
//
// K-blocking and the epilogue. The micro-kernel sums kc steps of K at a time. When K fits in one
// pass (K <= kc: every K up to 1024 floats / 512 doubles by default) the tile goes from the
// registers to a small aligned buffer on the stack and straight to the epilogue. Otherwise the
// partial sums of the thread's block of mo rows wait in a per-thread scratch (mo x N, at most
// 8 MiB): the first pass writes them, the middle passes add to them, and the last pass adds its
// part and hands the tile, now complete, to the epilogue while it is in L1. The packed A block
// (mo x kc) serves every column block and the packed B block (kc x nc) every row of the
// block, so each operand is packed once when M <= mo. The extra traffic is one read and one
// write of a tile per kc steps, 1/kc of the FMA work. The destination is never used as scratch,
// so the epilogue may write anything anywhere (another type, a fused expression).
//
// Threads. The output is cut into a grid of tm x tn rectangles, one per thread (tm * tn = p),
// chosen to minimise the busiest thread's cost: its micro-kernel work, counted in whole register
// tiles, plus the packing it does (a thread packs the A rows and B columns of its rectangle, so
// a split along M repacks B in every thread and a split along N repacks A). Rectangles are whole
// register tiles, so 1024 x 1024 splits 43 + 43 tiles of 12 rows. Small products stay on the
// calling thread.
//
// Compile time. gemm<T>(...) only turns its sources into operand<T>s and its epilogue into a
// tile_sink<T> (a pointer and a function pointer each) and calls gemm_core<T>, so the engine
// (packing, micro-kernels, thin paths, threads) is compiled once per element type in a
// translation unit, not once per expression type: each further product of a new expression
// costs its small adapters only. The price is an indirect call per tile (12 x 32 outputs of at
// least kc multiply-adds each) and per run read from a row-run source.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>

#include "loom/core/config.hpp"
#include "loom/core/error.hpp"
#include "loom/cpu/gemm/blocking.hpp"
#include "loom/cpu/gemm/epilogue.hpp"
#include "loom/cpu/gemm/micro_kernel.hpp"
#include "loom/cpu/gemm/pack.hpp"
#include "loom/cpu/gemm/source.hpp"
#include "loom/cpu/gemm/thin.hpp"
#include "loom/cpu/gemm/workspace.hpp"
#include "loom/cpu/thread_pool.hpp"

namespace loom::cpu::gemm {

/// Knobs of one call; the defaults are right for ordinary use.
struct options {
  blocking block{};      ///< cache blocks; a zero field takes its default value
  unsigned threads = 0;  ///< upper bound on the threads used; 0: loom::num_threads()
};

/// How a product is split over threads: a tm x tn grid of rectangles of the output.
struct thread_grid {
  index_t tm = 1;
  index_t tn = 1;
  index_t threads() const { return tm * tn; }
};

/// Multiply-adds below which a product runs on the calling thread; above it, one more thread per
/// this many (a wake-up of the pool costs a few microseconds, this is about 5 us of work).
inline constexpr index_t min_work_per_thread = index_t(1) << 19;

namespace detail {

/// Splits [0, n) into `parts` ranges of whole `unit`s (the last unit may be partial), balanced to
/// within one unit; returns the start of range t (t = parts gives n).
LOOM_INLINE index_t split_point(index_t n, index_t unit, index_t parts, index_t t) {
  index_t units = (n + unit - 1) / unit;
  return std::min(n, (units * t / parts) * unit);
}

}  // namespace detail

/// The grid for an M x N x K product of T on at most p threads (see the file comment).
template <class T>
thread_grid choose_thread_grid(index_t M, index_t N, index_t K, index_t p, const blocking& bl) {
  using rt = register_tile<T>;
  const index_t pm = (M + rt::mr - 1) / rt::mr, pn = (N + rt::nr - 1) / rt::nr;
  const double work = double(M) * double(N) * double(K);
  p = std::min<index_t>(p, std::max<index_t>(1, index_t(work / double(min_work_per_thread))));
  p = std::min(p, pm * pn);
  thread_grid best;
  double best_cost = std::numeric_limits<double>::infinity();
  for (index_t threads = p; threads >= 1 && best_cost == std::numeric_limits<double>::infinity(); --threads) {
    for (index_t tm = 1; tm <= threads; ++tm) {
      if (threads % tm) continue;
      index_t tn = threads / tm;
      if (tm > pm || tn > pn) continue;
      // The busiest thread: ceil(pm / tm) x ceil(pn / tn) tiles, and the packing of its rows
      // (once) and of its columns (once per mo block of its rows).
      double mt = double((pm + tm - 1) / tm * rt::mr), nt = double((pn + tn - 1) / tn * rt::nr);
      double tiles = mt * nt * double(K);
      // One packed element of B (a copy) costs about one vector of multiply-adds, one of A (a
      // transpose for the usual row-major A) about two. So a tie of the tile counts goes to the
      // split along M, where each thread packs half of A.
      double packing = double(K) * (2.0 * mt + nt * std::ceil(mt / double(bl.mo)));
      double cost = tiles + packing * double(rt::lanes);
      if (cost < best_cost * 0.999) {
        best_cost = cost;
        best = {tm, tn};
      }
    }
  }
  return best;
}

namespace detail {

/// Products of at most this many multiply-adds (1 x 1 x 1, 4 x 4 x 4) are plain loops: any
/// blocking costs more than the arithmetic.
inline constexpr index_t tiny_work = 64;

/// A tiny product of strided operands: one tile, scalar sums.
template <class T>
void tiny_product(index_t M, index_t N, index_t K, const operand<T>& a, const operand<T>& b,
                  const tile_sink<T>& epi) {
  T tile[tiny_work];
  // i-k-j order: the N sums of a row are independent chains, not one chain of K latencies.
  for (index_t i = 0; i < M; ++i) {
    T* row = tile + i * N;
    for (index_t j = 0; j < N; ++j) row[j] = T(0);
    for (index_t k = 0; k < K; ++k) {
      const T x = *a.at(i, k);
      for (index_t j = 0; j < N; ++j) row[j] += x * *b.at(k, j);
    }
  }
  epi(index_t(0), index_t(0), M, N, static_cast<const T*>(tile), N);
}

/// Hands zero tiles of the whole output to the epilogue (K = 0).
template <class T>
void zero_product(index_t M, index_t N, const tile_sink<T>& epi) {
  using rt = register_tile<T>;
  alignas(64) T tile[rt::mr * rt::nr] = {};
  for (index_t i = 0; i < M; i += rt::mr) {
    for (index_t j = 0; j < N; j += rt::nr) {
      epi(i, j, std::min<index_t>(rt::mr, M - i), std::min<index_t>(rt::nr, N - j), static_cast<const T*>(tile),
          index_t(rt::nr));
    }
  }
}

/// The blocked product of rows [m0, m1) and columns [n0, n1) of the output, on this thread.
template <class T>
void product_block(index_t m0, index_t m1, index_t n0, index_t n1, index_t K, const operand<T>& a, const operand<T>& b,
                   const tile_sink<T>& epi, const blocking& bl) {
  using rt = register_tile<T>;
  constexpr int MR = rt::mr, NR = rt::nr, NV = rt::nv;
  const index_t M = m1 - m0, N = n1 - n0;
  if (M <= 0 || N <= 0) return;

  workspace_lease ws;
  const index_t kc = std::min(bl.kc, K);
  const bool one_pass = K <= kc;
  const index_t nc = std::min(bl.nc, round_up(N, NR));
  const index_t mo = std::min(bl.mo, round_up(M, MR));
  const index_t ldc = round_up(N, NR);  // scratch row length
  T* packed_a = ws->a.get<T>(mo * kc);
  T* packed_b = ws->b.get<T>(nc * kc);
  T* scratch = one_pass ? nullptr : ws->c.get<T>(mo * ldc);
  alignas(64) T tile[MR * NR];

  for (index_t io = 0; io < M; io += mo) {
    const index_t mcur = std::min(mo, M - io);
    for (index_t pc = 0; pc < K; pc += kc) {
      const index_t kcur = std::min(kc, K - pc);
      const bool first = pc == 0, last = pc + kcur >= K;
      const tile_mode mode = first ? tile_mode::overwrite : tile_mode::accumulate;
      pack_a<MR>(a, m0 + io, mcur, pc, kcur, packed_a, *ws);
      for (index_t jc = 0; jc < N; jc += nc) {
        const index_t ncur = std::min(nc, N - jc);
        pack_b<NR>(b, pc, kcur, n0 + jc, ncur, packed_b, *ws);
        for (index_t ir = 0; ir < mcur; ir += MR) {
          const index_t mr = std::min<index_t>(MR, mcur - ir);
          const index_t i0 = m0 + io + ir;
          const T* ap = packed_a + ir * kcur;
          for (index_t jr = 0; jr < ncur; jr += NR) {
            const index_t nr = std::min<index_t>(NR, ncur - jr);
            const index_t j0 = n0 + jc + jr;
            const T* bp = packed_b + jr * kcur;
            if (one_pass) {
              run_micro_kernel<T, MR, NV>(mr, nr, kcur, ap, bp, tile, NR, tile_mode::overwrite);
              epi(i0, j0, mr, nr, static_cast<const T*>(tile), index_t(NR));
            } else {
              T* c = scratch + ir * ldc + jc + jr;
              run_micro_kernel<T, MR, NV>(mr, nr, kcur, ap, bp, c, ldc, mode);
              if (last) epi(i0, j0, mr, nr, static_cast<const T*>(c), ldc);
            }
          }
        }
      }
    }
  }
}

}  // namespace detail

// -------------------------------------------------------------------------------------------------
// The entry point
// -------------------------------------------------------------------------------------------------

namespace detail {

/// The whole product on type-erased operands and epilogue: compiled once per element type.
template <class T>
void gemm_core(index_t M, index_t N, index_t K, const operand<T>& a, const operand<T>& b, const tile_sink<T>& epi,
               const options& opt) {
  if (M < 0 || N < 0 || K < 0) {
    throw shape_error("loom: gemm extents must be non-negative, got M = " + std::to_string(M) +
                      ", N = " + std::to_string(N) + ", K = " + std::to_string(K));
  }
  if (M == 0 || N == 0) return;
  if (K == 0) {
    zero_product<T>(M, N, epi);
    return;
  }
  // Threads only for products worth waking them for (and never inside a pool task).
  index_t p = 1;
  const double work = double(M) * double(N) * double(K);
  if (work >= double(2 * min_work_per_thread) && !thread_pool::in_task()) {
    p = index_t(opt.threads ? std::min(opt.threads, num_threads()) : num_threads());
    p = std::min(p, index_t(work / double(min_work_per_thread)));
  }
  if (work <= double(tiny_work) && a.is_strided() && b.is_strided()) {
    tiny_product<T>(M, N, K, a, b, epi);
    return;
  }
  if (M <= thin_extent && thin_rows<T>(M, N, K, a, b, epi, p)) return;
  if (N <= thin_extent && thin_cols<T>(M, N, K, a, b, epi, p)) return;
  const blocking bl = complete_blocking<T>(opt.block, M, N, K);
  const thread_grid grid = p > 1 ? choose_thread_grid<T>(M, N, K, p, bl) : thread_grid{};
  if (grid.threads() == 1) {
    product_block<T>(0, M, 0, N, K, a, b, epi, bl);
    return;
  }
  using rt = register_tile<T>;
  default_pool().run(grid.threads(), [&](index_t t) {
    const index_t ti = t / grid.tn, tj = t % grid.tn;
    product_block<T>(split_point(M, rt::mr, grid.tm, ti), split_point(M, rt::mr, grid.tm, ti + 1),
                     split_point(N, rt::nr, grid.tn, tj), split_point(N, rt::nr, grid.tn, tj + 1), K, a, b, epi, bl);
  });
}

}  // namespace detail

/// C = epi(A . B): a is M x K, b is K x N (sources, see source.hpp), epi receives every finished
/// tile of the M x N product once (see epilogue.hpp). T is the type of the arithmetic.
/// The operands are read while tiles are already being handed over, so what the epilogue writes
/// must not alias a or b (x = x . w needs a temporary; the caller decides).
/// Throws loom::shape_error for negative extents; whatever a source or the epilogue throws
/// comes out of this call (once, from any thread).
/// Example, 64 x 32 = (64 x 128) . (128 x 32), all row-major:
///   gemm<float>(64, 32, 128, row_major(a, 128), row_major(b, 32), store_to(c, 32));
template <class T, class ASource, class BSource, class Epilogue>
void gemm(index_t M, index_t N, index_t K, const ASource& a, const BSource& b, Epilogue&& epi,
          const options& opt = {}) {
  static_assert(is_source_v<ASource>, "loom: gemm's A operand must be a source (strided(...), row_runs<T>(...))");
  static_assert(is_source_v<BSource>, "loom: gemm's B operand must be a source (strided(...), row_runs<T>(...))");
  static_assert(std::is_invocable_v<Epilogue&, index_t, index_t, index_t, index_t, const T*, index_t>,
                "loom: a gemm epilogue is called as epi(i0, j0, mr, nr, const T* tile, index_t ld_tile)");
  detail::gemm_core<T>(M, N, K, make_operand<T>(a), make_operand<T>(b), tile_sink<T>(epi), opt);
}

/// Products at least this large (multiply-adds) are split over the threads one at a time by
/// gemm_batched; smaller ones are spread whole over the threads.
inline constexpr index_t min_work_to_split = index_t(1) << 22;

/// count independent products of one shape: for t < count, gemm<T>(M, N, K, a_of(t), b_of(t),
/// epi_of(t)). Small products run whole on one thread each, spread over the pool (a batch of
/// 64 products of 32 x 32 x 32 keeps both cores busy); large ones are split one after another.
/// The epilogue of each product sees that product's tile coordinates. Example, C[t] = A[t] . B:
///   gemm_batched<float>(batch, M, N, K, [&](index_t t) { return row_major(a + t * M * K, K); },
///                       [&](index_t) { return row_major(b, N); },
///                       [&](index_t t) { return store_to(c + t * M * N, N); });
template <class T, class AOf, class BOf, class EpiOf>
void gemm_batched(index_t count, index_t M, index_t N, index_t K, AOf&& a_of, BOf&& b_of, EpiOf&& epi_of,
                  const options& opt = {}) {
  if (count < 0) throw shape_error("loom: gemm_batched count must be non-negative, got " + std::to_string(count));
  const double work = double(M) * double(N) * double(K);
  index_t p = thread_pool::in_task() ? 1 : index_t(opt.threads ? std::min(opt.threads, num_threads()) : num_threads());
  p = std::min(p, count);
  if (p <= 1 || work >= double(min_work_to_split) || work * double(count) < double(2 * min_work_per_thread)) {
    for (index_t t = 0; t < count; ++t) gemm<T>(M, N, K, a_of(t), b_of(t), epi_of(t), opt);
    return;
  }
  options one = opt;
  one.threads = 1;
  default_pool().run(p, [&](index_t part) {
    for (index_t t = count * part / p, end = count * (part + 1) / p; t < end; ++t) {
      gemm<T>(M, N, K, a_of(t), b_of(t), epi_of(t), one);
    }
  });
}

}  // namespace loom::cpu::gemm
