// loom/cpu/gemm/blocking.hpp: the register tile and the cache blocks of the packed GEMM.
//
// The engine computes C (M x N) = A (M x K) . B (K x N) in the BLIS style, with the roles of the
// operands mirrored because loom's tiles are row-major (the vector lanes run along N, the rows of
// A are broadcast):
//
//   io over M by mo      rows whose packed A block (and partial sums, see driver.hpp) fit
//   pc over K by kc      one pass over K
//     pack A             mo x kc, once per (io, pc): every element of A is packed once (L3)
//     jc over N by nc
//       pack B           kc x nc, once per (io, pc, jc) (L3; see cache_limits)
//       ir over mo by mr   A micro-panel kc x mr, reused by every jr: stays in L1
//         jr over nc by nr   B micro-panel kc x nr, streamed from L2
//           micro-kernel     mr x nr accumulators in vector registers
//
// All sizes are in elements. The register tile is a compile-time property of the element type
// and the instruction set (xsimd's default architecture); the cache blocks are run-time values
// so that a benchmark can sweep them, with defaults measured on AMD Zen 4 (see bench/RESULTS.md).
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <type_traits>

#include <xsimd/xsimd.hpp>

#include "loom/core/config.hpp"

namespace loom::cpu::gemm {

// -------------------------------------------------------------------------------------------------
// Register tile
// -------------------------------------------------------------------------------------------------

/// Vector registers of the instruction set xsimd compiles for (32 with AVX-512, 16 below).
inline constexpr int vector_registers = std::is_base_of_v<xsimd::avx512f, xsimd::default_arch> ? 32 : 16;

/// The micro-kernel's register tile for element type T: mr rows of A broadcast against nv
/// vectors of B (nr = nv * lanes columns), mr * nv accumulators.
///   AVX-512 (32 registers): 12 x 2 vectors = 24 accumulators, 2 for B, the A broadcasts are
///     folded into the FMAs as memory operands.  float: 12 x 32, double: 12 x 16.
///   AVX2 / SSE (16 registers): 6 x 2 vectors = 12 accumulators.  float on AVX2: 6 x 16.
template <class T>
struct register_tile {
  using batch = xsimd::batch<T>;
  static constexpr int lanes = int(batch::size);
  static constexpr int nv = 2;
  static constexpr int mr = vector_registers >= 32 ? 12 : 6;
  static constexpr int nr = nv * lanes;
};

// -------------------------------------------------------------------------------------------------
// Cache blocks
// -------------------------------------------------------------------------------------------------

/// Cache block sizes of one GEMM call, in elements. kc is the depth of one pass over K; when it
/// is smaller than K the partial sums of mo x N outputs wait in a per-thread scratch until the
/// last pass hands finished tiles to the epilogue.
struct blocking {
  index_t kc = 0;  ///< depth of a packed pass
  index_t nc = 0;  ///< columns of B packed at a time (multiple of nr)
  index_t mo = 0;  ///< rows of A packed at a time (multiple of mr)

  std::string describe() const {
    std::string s("kc=");
    s += std::to_string(kc);
    s += " nc=";
    s += std::to_string(nc);
    s += " mo=";
    s += std::to_string(mo);
    return s;
  }
};

/// Upper bounds of the cache blocks for T, measured on Zen 4 (32 KiB L1d, 1 MiB L2 per core,
/// 32 MiB L3; sweep in the W7 section of bench/RESULTS.md). The measured optimum is not the
/// textbook one: long passes (kc = 1024 floats, so K <= 1024 needs no scratch at all) and a wide
/// B block that lives in L3 rather than L2 (4 MiB, nc = 1024 floats at kc = 1024) beat kc = 256
/// with nc = 512 (an L2-sized B block) by about 5%. The hardware prefetchers keep the B
/// micro-panel stream (5 bytes per cycle) flowing from L3, and fewer passes over K mean fewer
/// round trips of partial sums and fewer refills of the A micro-panel.
template <class T>
struct cache_limits {
  /// Depth of one pass over K: 4 KiB of one row of A.
  static constexpr index_t kc = 4096 / index_t(sizeof(T));
  /// Bytes of the packed B block (kc x nc) of one thread.
  static constexpr index_t b_bytes = index_t(4) << 20;
  /// Bytes of the packed A block (mo x kc) of one thread.
  static constexpr index_t a_bytes = index_t(4) << 20;
  /// Bytes of the partial sums (mo x N) of one thread when K takes several passes.
  static constexpr index_t scratch_bytes = index_t(8) << 20;
};

/// Rounds x up to a multiple of m (m > 0).
LOOM_INLINE constexpr index_t round_up(index_t x, index_t m) { return (x + m - 1) / m * m; }

/// Splits `total` into the fewest parts of at most `limit` each, and returns the (equal, rounded
/// up to `align`) part size; so 1030 with limit 512 gives 352 (3 parts), never 512 + 512 + 6.
LOOM_INLINE constexpr index_t balanced_block(index_t total, index_t limit, index_t align) {
  if (total <= 0) return align;
  if (total <= limit) return round_up(total, align);  // the common small case: no division
  index_t parts = (total + limit - 1) / limit;
  return std::min(round_up(limit, align), round_up((total + parts - 1) / parts, align));
}

/// Completes a blocking for an M x N x K product of T: zero fields take the defaults, nc and mo
/// are rounded to the register tile, mo is capped by the packed-A and scratch budgets.
template <class T>
blocking complete_blocking(blocking b, index_t M, index_t N, index_t K) {
  using rt = register_tile<T>;
  using cl = cache_limits<T>;
  constexpr index_t size = index_t(sizeof(T));
  b.kc = b.kc > 0 ? std::min(b.kc, K) : std::max<index_t>(1, balanced_block(K, cl::kc, 1));
  // The divisions below only run for products larger than the budgets.
  if (b.nc > 0) {
    b.nc = round_up(b.nc, rt::nr);
  } else if (N * b.kc * size <= cl::b_bytes) {
    b.nc = round_up(N, rt::nr);
  } else {
    b.nc = balanced_block(N, std::max<index_t>(rt::nr, cl::b_bytes / (b.kc * size)), rt::nr);
  }
  if (b.mo > 0) {
    b.mo = M <= b.mo ? round_up(M, rt::mr) : balanced_block(M, std::max<index_t>(rt::mr, b.mo / rt::mr * rt::mr), rt::mr);
  } else {
    const index_t ldc = round_up(N, rt::nr);
    const bool passes = K > b.kc;
    if (M * b.kc * size <= cl::a_bytes && (!passes || M * ldc * size <= cl::scratch_bytes)) {
      b.mo = round_up(M, rt::mr);
    } else {
      index_t rows = cl::a_bytes / (b.kc * size);
      if (passes) rows = std::min(rows, cl::scratch_bytes / (ldc * size));
      b.mo = balanced_block(M, std::max<index_t>(rt::mr, rows / rt::mr * rt::mr), rt::mr);
    }
  }
  return b;
}

/// The blocks used for an M x N x K product of T.
template <class T>
blocking default_blocking(index_t M, index_t N, index_t K) {
  return complete_blocking<T>(blocking{}, M, N, K);
}

}  // namespace loom::cpu::gemm
