// loom/cpu/gemm/micro_kernel.hpp: the register-blocked inner product of one A and one B micro-panel.
//
// For k in [0, kc): load NV vectors of the B panel, broadcast each of the MR values of the A panel
// and FMA them into MR x NV accumulators. The accumulators never leave the registers until the
// end, where the MR x NR tile is written (or added) to a row-major buffer whose rows are aligned.
// With AVX-512 and MR = 12, NV = 2 the loop body is 2 vector loads and 24 FMAs whose broadcast
// operand comes straight from memory ({1to16}); 24 independent chains hide the FMA latency.
#pragma once

#include <type_traits>

#include <xsimd/xsimd.hpp>

#include "loom/core/config.hpp"

// Software prefetch distances of the micro-kernel (tuning knobs; see bench/RESULTS.md).
#ifndef LOOM_GEMM_PREFETCH_B
#define LOOM_GEMM_PREFETCH_B 0
#endif
#ifndef LOOM_GEMM_PREFETCH_C
#define LOOM_GEMM_PREFETCH_C 0
#endif

namespace loom::cpu::gemm {

namespace detail {

/// One depth step: acc[i][v] += a[i] * b[v * lanes ...].
template <int MR, int NV, class T, class Batch>
LOOM_INLINE void fma_step(Batch (&acc)[MR][NV], const T* LOOM_RESTRICT a, const T* LOOM_RESTRICT b) {
  constexpr int W = int(Batch::size);
  Batch bv[NV];
#pragma GCC unroll 8
  for (int v = 0; v < NV; ++v) bv[v] = Batch::load_aligned(b + v * W);
#pragma GCC unroll 32
  for (int i = 0; i < MR; ++i) {
    Batch ai(a[i]);
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[i][v] = xsimd::fma(ai, bv[v], acc[i][v]);
  }
}

}  // namespace detail

/// What the micro-kernel does with its tile buffer.
enum class tile_mode {
  overwrite,   ///< c = A.B
  accumulate,  ///< c += A.B
};

/// c[0:MR, 0:NV*lanes] (row-major, leading dimension ldc, every row 64-byte aligned) = or +=
/// a . b, where a is a panel of kc groups of LDA values (the first MR used) and b a panel of kc
/// groups of LDB values (the first NV vectors used). The full tile has MR = LDA, NV * lanes = LDB;
/// the edges of the output use fewer rows or vectors of the same panels. kc may be 0 (zeros).
template <class T, int MR, int NV, int LDA = MR, int LDB = NV * int(xsimd::batch<T>::size),
          int PrefetchB = LOOM_GEMM_PREFETCH_B, bool PrefetchC = LOOM_GEMM_PREFETCH_C>
LOOM_NOINLINE void micro_kernel(index_t kc, const T* LOOM_RESTRICT a, const T* LOOM_RESTRICT b, T* LOOM_RESTRICT c,
                                index_t ldc, tile_mode mode) {
  using batch = xsimd::batch<T>;
  constexpr int NR = LDB;
  constexpr int W = int(batch::size);

  batch acc[MR][NV];
#pragma GCC unroll 32
  for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[i][v] = batch(T(0));
  }
  if constexpr (PrefetchC) {
    // The tile is read (accumulate) or written at the end: start fetching its lines now.
#pragma GCC unroll 32
    for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 8
      for (int l = 0; l < int(NV * W * sizeof(T)); l += 64) __builtin_prefetch(reinterpret_cast<const char*>(c + i * ldc) + l, 1);
    }
  }

  index_t k = 0;
  for (; k + 4 <= kc; k += 4) {
    if constexpr (PrefetchB > 0) {
      // The B panel streams from L2: ask for the lines of 4 steps PrefetchB steps ahead.
      constexpr int lines = int(4 * NR * sizeof(T) / 64);
#pragma GCC unroll 16
      for (int l = 0; l < lines; ++l) __builtin_prefetch(b + PrefetchB * NR + l * (64 / int(sizeof(T))));
    }
    detail::fma_step<MR, NV>(acc, a, b);
    detail::fma_step<MR, NV>(acc, a + LDA, b + NR);
    detail::fma_step<MR, NV>(acc, a + 2 * LDA, b + 2 * NR);
    detail::fma_step<MR, NV>(acc, a + 3 * LDA, b + 3 * NR);
    a += 4 * LDA;
    b += 4 * NR;
  }
  for (; k < kc; ++k) {
    detail::fma_step<MR, NV>(acc, a, b);
    a += LDA;
    b += NR;
  }

  if (mode == tile_mode::accumulate) {
#pragma GCC unroll 32
    for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[i][v] += batch::load_aligned(c + i * ldc + v * W);
    }
  }
#pragma GCC unroll 32
  for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[i][v].store_aligned(c + i * ldc + v * W);
  }
}

}  // namespace loom::cpu::gemm

namespace loom::cpu::gemm {

/// The micro-kernel for a tile of mr <= MR rows and nr <= NV * lanes columns of full panels:
/// the full kernel inside the output, a kernel with fewer rows (1, 2, 4, 8 ...) or vectors at
/// its edges, so a 1 x 1 product does one FMA rather than MR * NV.
template <class T, int MR, int NV>
LOOM_INLINE void run_micro_kernel(index_t mr, index_t nr, index_t kc, const T* a, const T* b, T* c, index_t ldc,
                                  tile_mode mode) {
  constexpr int W = int(xsimd::batch<T>::size);
  constexpr int NR = NV * W;
  static_assert(NV == 1 || NV == 2, "loom: the edge dispatch below assumes 1 or 2 vectors per row");
  auto rows = [&]<int V>(std::integral_constant<int, V>) {
    if (mr == MR) {
      micro_kernel<T, MR, V, MR, NR>(kc, a, b, c, ldc, mode);
    } else if (mr == 1) {
      micro_kernel<T, 1, V, MR, NR>(kc, a, b, c, ldc, mode);
    } else if (mr <= 2) {
      micro_kernel<T, 2, V, MR, NR>(kc, a, b, c, ldc, mode);
    } else if (mr <= 4 || MR <= 4) {
      micro_kernel<T, (MR < 4 ? MR : 4), V, MR, NR>(kc, a, b, c, ldc, mode);
    } else if (mr <= 8 || MR <= 8) {
      micro_kernel<T, (MR < 8 ? MR : 8), V, MR, NR>(kc, a, b, c, ldc, mode);
    } else {
      micro_kernel<T, MR, V, MR, NR>(kc, a, b, c, ldc, mode);
    }
  };
  if (NV == 2 && nr <= W) {
    rows(std::integral_constant<int, 1>{});
  } else {
    rows(std::integral_constant<int, NV>{});
  }
}

}  // namespace loom::cpu::gemm
