// loom/cpu/gemm/pack.hpp: copying blocks of the operands into the micro-kernel's panel layout.
//
// A packed A block is a sequence of micro-panels of mr rows: panel p holds rows p*mr .. p*mr+mr-1
// as kc groups of mr elements (element (i, k) at p*mr*kc + k*mr + i). A packed B block is a
// sequence of micro-panels of nr columns: element (k, j) of panel q at q*nr*kc + k*nr + j. Rows or
// columns past the operand's edge are packed as zeros, so the micro-kernel always computes a full
// tile and never reads outside the buffers; the epilogue only sees the valid part.
//
// Both cases reduce to one primitive, a *panel* of W lanes by nd depth steps: element (l, d) of the
// source at src[l * ls + d * ds], packed at out[d * W + l]. Lanes are A's rows / B's columns, depth
// is K. The primitive has a copy path (ls == 1: the lanes of one depth step are contiguous, e.g. a
// row-major B), a transpose path (ds == 1: each lane is contiguous along K, e.g. a row-major A) and
// a gather path for any other strides.
#pragma once

#include <algorithm>
#include <cstring>
#include <type_traits>

#include <xsimd/xsimd.hpp>
#if defined(__AVX__)
#include <immintrin.h>
#endif

#include "loom/core/config.hpp"
#include "loom/cpu/gemm/partial.hpp"
#include "loom/cpu/gemm/source.hpp"
#include "loom/cpu/gemm/workspace.hpp"

namespace loom::cpu::gemm {
namespace detail {

// -------------------------------------------------------------------------------------------------
// The panel primitive
// -------------------------------------------------------------------------------------------------

/// Lanes contiguous in the source: each depth step is one short copy (whole vectors where the
/// types match; the packed rows are 64-byte aligned when W * sizeof(T) is a multiple of 64).
template <int W, class T, class U>
LOOM_INLINE void pack_panel_copy(const U* LOOM_RESTRICT src, index_t ds, index_t nl, index_t nd,
                                 T* LOOM_RESTRICT out) {
  if (nl == W) {
    using batch = xsimd::batch<T>;
    constexpr int L = int(batch::size);
    constexpr int vec = std::is_same_v<T, U> ? W / L * L : 0;
    for (index_t d = 0; d < nd; ++d, src += ds, out += W) {
      if constexpr (vec > 0) {
#pragma GCC unroll 8
        for (int l = 0; l < vec; l += L) batch::load_unaligned(src + l).store_unaligned(out + l);
      }
#pragma GCC unroll 64
      for (int l = vec; l < W; ++l) out[l] = static_cast<T>(src[l]);
    }
  } else {
    for (index_t d = 0; d < nd; ++d, src += ds, out += W) copy_and_pad<W>(src, nl, out);
  }
}

/// out[0, W) = 0, in whole vectors where W allows.
template <int W, class T>
LOOM_INLINE void zero_group(T* out) {
  using batch = xsimd::batch<T>;
  constexpr int L = int(batch::size);
  if constexpr (W % L == 0) {
#pragma GCC unroll 8
    for (int l = 0; l < W; l += L) batch(T(0)).store_unaligned(out + l);
  } else {
#pragma GCC unroll 64
    for (int l = 0; l < W; ++l) out[l] = T(0);
  }
}

#if defined(__AVX__)
/// Transposes 4 rows x 8 depth steps of 4-byte elements into out[d * W + l], l < 4.
LOOM_INLINE void transpose_4x8(const void* r0, const void* r1, const void* r2, const void* r3, void* out, index_t W) {
  __m256 a = _mm256_loadu_ps(static_cast<const float*>(r0)), b = _mm256_loadu_ps(static_cast<const float*>(r1));
  __m256 c = _mm256_loadu_ps(static_cast<const float*>(r2)), d = _mm256_loadu_ps(static_cast<const float*>(r3));
  __m256 ab_lo = _mm256_unpacklo_ps(a, b), ab_hi = _mm256_unpackhi_ps(a, b);
  __m256 cd_lo = _mm256_unpacklo_ps(c, d), cd_hi = _mm256_unpackhi_ps(c, d);
  // Each 128-bit half of u_k holds the 4 rows at depth k (low half) and k + 4 (high half).
  __m256 u0 = _mm256_shuffle_ps(ab_lo, cd_lo, 0x44), u1 = _mm256_shuffle_ps(ab_lo, cd_lo, 0xEE);
  __m256 u2 = _mm256_shuffle_ps(ab_hi, cd_hi, 0x44), u3 = _mm256_shuffle_ps(ab_hi, cd_hi, 0xEE);
  float* o = static_cast<float*>(out);
  _mm_storeu_ps(o + 0 * W, _mm256_castps256_ps128(u0));
  _mm_storeu_ps(o + 1 * W, _mm256_castps256_ps128(u1));
  _mm_storeu_ps(o + 2 * W, _mm256_castps256_ps128(u2));
  _mm_storeu_ps(o + 3 * W, _mm256_castps256_ps128(u3));
  _mm_storeu_ps(o + 4 * W, _mm256_extractf128_ps(u0, 1));
  _mm_storeu_ps(o + 5 * W, _mm256_extractf128_ps(u1, 1));
  _mm_storeu_ps(o + 6 * W, _mm256_extractf128_ps(u2, 1));
  _mm_storeu_ps(o + 7 * W, _mm256_extractf128_ps(u3, 1));
}

/// Transposes 4 rows x 4 depth steps of 8-byte elements into out[d * W + l], l < 4.
LOOM_INLINE void transpose_4x4_64(const void* r0, const void* r1, const void* r2, const void* r3, void* out,
                                  index_t W) {
  __m256d a = _mm256_loadu_pd(static_cast<const double*>(r0)), b = _mm256_loadu_pd(static_cast<const double*>(r1));
  __m256d c = _mm256_loadu_pd(static_cast<const double*>(r2)), d = _mm256_loadu_pd(static_cast<const double*>(r3));
  __m256d ab_lo = _mm256_unpacklo_pd(a, b), ab_hi = _mm256_unpackhi_pd(a, b);
  __m256d cd_lo = _mm256_unpacklo_pd(c, d), cd_hi = _mm256_unpackhi_pd(c, d);
  double* o = static_cast<double*>(out);
  _mm256_storeu_pd(o + 0 * W, _mm256_permute2f128_pd(ab_lo, cd_lo, 0x20));
  _mm256_storeu_pd(o + 1 * W, _mm256_permute2f128_pd(ab_hi, cd_hi, 0x20));
  _mm256_storeu_pd(o + 2 * W, _mm256_permute2f128_pd(ab_lo, cd_lo, 0x31));
  _mm256_storeu_pd(o + 3 * W, _mm256_permute2f128_pd(ab_hi, cd_hi, 0x31));
}
#endif

/// Each lane contiguous along the depth: a transpose of nl rows into W-wide groups. With AVX and
/// matching 4- or 8-byte types, blocks of 4 rows are transposed in registers (a row-major A is
/// the common case, and this is the costliest copy of the engine); the rows left over (nl not a
/// multiple of 4, or no AVX) are walked side by side, so each source cache line is fetched once
/// and used for all its elements.
template <int W, class T, class U>
LOOM_INLINE void pack_panel_transpose(const U* LOOM_RESTRICT src, index_t ls, index_t nl, index_t nd,
                                      T* LOOM_RESTRICT out) {
  index_t d = 0;
#if defined(__AVX__)
  if constexpr (std::is_same_v<T, U> && W % 4 == 0 && (sizeof(T) == 4 || sizeof(T) == 8)) {
    constexpr index_t step = sizeof(T) == 4 ? 8 : 4;
    auto block = [&](int l, index_t dd) __attribute__((always_inline)) {
      const U* r = src + l * ls + dd;
      if constexpr (sizeof(T) == 4) {
        transpose_4x8(r, r + ls, r + 2 * ls, r + 3 * ls, out + dd * W + l, W);
      } else {
        transpose_4x4_64(r, r + ls, r + 2 * ls, r + 3 * ls, out + dd * W + l, W);
      }
    };
    if (nl == W) {
      for (; d + step <= nd; d += step) {
#pragma GCC unroll 16
        for (int l = 0; l < W; l += 4) block(l, d);
      }
    } else if (nl >= 4) {
      const int full = int(nl / 4 * 4);
      for (; d + step <= nd; d += step) {
        for (int l = 0; l < full; l += 4) block(l, d);
        for (index_t dd = d; dd < d + step; ++dd) {
          T* o = out + dd * W;
          for (int l = full; l < W; ++l) o[l] = l < nl ? src[l * ls + dd] : T(0);
        }
      }
    }
  }
#endif
  for (; d < nd; ++d) {
    T* o = out + d * W;
    if (nl == W) {
#pragma GCC unroll 64
      for (int l = 0; l < W; ++l) o[l] = static_cast<T>(src[l * ls + d]);
    } else {
      zero_group<W>(o);
      for (index_t l = 0; l < nl; ++l) o[l] = static_cast<T>(src[l * ls + d]);
    }
  }
}

/// Any strides.
template <int W, class T, class U>
LOOM_INLINE void pack_panel_gather(const U* LOOM_RESTRICT src, index_t ls, index_t ds, index_t nl, index_t nd,
                                   T* LOOM_RESTRICT out) {
  for (index_t d = 0; d < nd; ++d, out += W) {
    const U* s = src + d * ds;
    if (nl < W) zero_group<W>(out);
    for (index_t l = 0; l < nl; ++l) out[l] = static_cast<T>(s[l * ls]);
  }
}

/// Packs the panel (l, d) -> src[l * ls + d * ds], l < nl <= W, d < nd, into out[d * W + l].
template <int W, class T, class U>
void pack_panel(const U* src, index_t ls, index_t ds, index_t nl, index_t nd, T* out) {
  if (ls == 1) {
    pack_panel_copy<W>(src, ds, nl, nd, out);
  } else if (ds == 1) {
    pack_panel_transpose<W>(src, ls, nl, nd, out);
  } else {
    pack_panel_gather<W>(src, ls, ds, nl, nd, out);
  }
}

}  // namespace detail

// -------------------------------------------------------------------------------------------------
// Packing A (m x kc block starting at (i0, k0)) into micro-panels of MR rows
// -------------------------------------------------------------------------------------------------

/// A strided A packs each micro-panel with one panel primitive (lanes = rows, depth = columns);
/// a row-run A reads the MR rows of a micro-panel into the staging buffer, then interleaves them.
template <int MR, class T>
void pack_a(const operand<T>& a, index_t i0, index_t m, index_t k0, index_t kc, T* out, workspace& ws) {
  if (a.is_strided()) {
    for (index_t p = 0; p < m; p += MR, out += MR * kc) {
      detail::pack_panel<MR>(a.at(i0 + p, k0), a.row_stride, a.col_stride, std::min<index_t>(MR, m - p), kc, out);
    }
    return;
  }
  T* rows = ws.staging.get<T>(MR * kc);
  for (index_t p = 0; p < m; p += MR, out += MR * kc) {
    index_t nl = std::min<index_t>(MR, m - p);
    for (index_t l = 0; l < nl; ++l) a.read(i0 + p + l, k0, kc, rows + l * kc);
    detail::pack_panel<MR>(static_cast<const T*>(rows), kc, index_t(1), nl, kc, out);
  }
}

// -------------------------------------------------------------------------------------------------
// Packing B (kc x n block starting at (k0, j0)) into micro-panels of NR columns
// -------------------------------------------------------------------------------------------------

namespace detail {

/// Writes the n elements of one row of B (columns j0 .. j0 + n - 1 at depth d) into depth step d
/// of every micro-panel: out points at step d of the first panel, panels are NR * kc apart.
template <int NR, class T, class U>
LOOM_INLINE void scatter_row(const U* LOOM_RESTRICT row, index_t n, index_t kc, T* LOOM_RESTRICT out) {
  using batch = xsimd::batch<T>;
  constexpr int L = int(batch::size);
  index_t q = 0;
  for (; q + NR <= n; q += NR, out += NR * kc) {
    if constexpr (std::is_same_v<T, U> && NR % L == 0) {
#pragma GCC unroll 8
      for (int l = 0; l < NR; l += L) batch::load_unaligned(row + q + l).store_aligned(out + l);
    } else {
#pragma GCC unroll 64
      for (int l = 0; l < NR; ++l) out[l] = static_cast<T>(row[q + l]);
    }
  }
  if (q < n) copy_and_pad<NR>(row + q, n - q, out);
}

}  // namespace detail

/// Packs B. A row-major B (unit column stride) is read row by row, each row a contiguous run
/// spread over the micro-panels (reading a panel at a time would touch a new page every row); a
/// row-run B likewise, one run of n elements per row; any other strided B packs each micro-panel
/// with one panel primitive (lanes = columns, depth = rows).
template <int NR, class T>
void pack_b(const operand<T>& b, index_t k0, index_t kc, index_t j0, index_t n, T* out, workspace& ws) {
  if (!b.is_strided()) {
    T* row = ws.staging.get<T>(n);
    for (index_t d = 0; d < kc; ++d) {
      b.read(k0 + d, j0, n, row);
      detail::scatter_row<NR>(static_cast<const T*>(row), n, kc, out + d * NR);
    }
  } else if (b.col_stride == 1) {
    for (index_t d = 0; d < kc; ++d) detail::scatter_row<NR>(b.at(k0 + d, j0), n, kc, out + d * NR);
  } else {
    for (index_t q = 0; q < n; q += NR, out += NR * kc) {
      detail::pack_panel<NR>(b.at(k0, j0 + q), b.col_stride, b.row_stride, std::min<index_t>(NR, n - q), kc, out);
    }
  }
}

}  // namespace loom::cpu::gemm
