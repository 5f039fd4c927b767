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

#include "loom/core/config.hpp"
#include "loom/cpu/gemm/source.hpp"
#include "loom/cpu/gemm/workspace.hpp"

namespace loom::cpu::gemm {
namespace detail {

// -------------------------------------------------------------------------------------------------
// The panel primitive
// -------------------------------------------------------------------------------------------------

/// Lanes contiguous in the source: each depth step is one short copy.
template <int W, class T, class U>
LOOM_INLINE void pack_panel_copy(const U* LOOM_RESTRICT src, index_t ds, index_t nl, index_t nd,
                                 T* LOOM_RESTRICT out) {
  if (nl == W) {
    for (index_t d = 0; d < nd; ++d, src += ds, out += W) {
#pragma GCC unroll 64
      for (int l = 0; l < W; ++l) out[l] = static_cast<T>(src[l]);
    }
  } else {
    for (index_t d = 0; d < nd; ++d, src += ds, out += W) {
      index_t l = 0;
      for (; l < nl; ++l) out[l] = static_cast<T>(src[l]);
      for (; l < W; ++l) out[l] = T(0);
    }
  }
}

/// Each lane contiguous along the depth: a transpose of nl rows into W-wide groups; the W rows are
/// walked side by side, so each source cache line is fetched once and used for all its elements.
template <int W, class T, class U>
LOOM_INLINE void pack_panel_transpose(const U* LOOM_RESTRICT src, index_t ls, index_t nl, index_t nd,
                                      T* LOOM_RESTRICT out) {
  if (nl == W) {
    const U* rows[W];
#pragma GCC unroll 64
    for (int l = 0; l < W; ++l) rows[l] = src + l * ls;
    for (index_t d = 0; d < nd; ++d, out += W) {
#pragma GCC unroll 64
      for (int l = 0; l < W; ++l) out[l] = static_cast<T>(rows[l][d]);
    }
  } else {
    for (index_t d = 0; d < nd; ++d, out += W) {
      index_t l = 0;
      for (; l < nl; ++l) out[l] = static_cast<T>(src[l * ls + d]);
      for (; l < W; ++l) out[l] = T(0);
    }
  }
}

/// Any strides.
template <int W, class T, class U>
LOOM_INLINE void pack_panel_gather(const U* LOOM_RESTRICT src, index_t ls, index_t ds, index_t nl, index_t nd,
                                   T* LOOM_RESTRICT out) {
  for (index_t d = 0; d < nd; ++d, out += W) {
    const U* s = src + d * ds;
    index_t l = 0;
    for (; l < nl; ++l) out[l] = static_cast<T>(s[l * ls]);
    for (; l < W; ++l) out[l] = T(0);
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

/// Strided A: each micro-panel is one panel primitive (lanes = rows, depth = columns).
template <int MR, class T, class U>
void pack_a(const strided_source<U>& a, index_t i0, index_t m, index_t k0, index_t kc, T* out, workspace&) {
  for (index_t p = 0; p < m; p += MR, out += MR * kc) {
    detail::pack_panel<MR>(a.at(i0 + p, k0), a.row_stride, a.col_stride, std::min<index_t>(MR, m - p), kc, out);
  }
}

/// Row-run A: the MR rows of a micro-panel are read into the staging buffer, then interleaved.
template <int MR, class T, class U, class Read>
void pack_a(const row_run_source<U, Read>& a, index_t i0, index_t m, index_t k0, index_t kc, T* out,
            workspace& ws) {
  U* rows = ws.staging.get<U>(MR * kc);
  for (index_t p = 0; p < m; p += MR, out += MR * kc) {
    index_t nl = std::min<index_t>(MR, m - p);
    for (index_t l = 0; l < nl; ++l) a.read(i0 + p + l, k0, kc, rows + l * kc);
    detail::pack_panel<MR>(rows, kc, index_t(1), nl, kc, out);
  }
}

// -------------------------------------------------------------------------------------------------
// Packing B (kc x n block starting at (k0, j0)) into micro-panels of NR columns
// -------------------------------------------------------------------------------------------------

/// Strided B: each micro-panel is one panel primitive (lanes = columns, depth = rows).
template <int NR, class T, class U>
void pack_b(const strided_source<U>& b, index_t k0, index_t kc, index_t j0, index_t n, T* out, workspace&) {
  for (index_t q = 0; q < n; q += NR, out += NR * kc) {
    detail::pack_panel<NR>(b.at(k0, j0 + q), b.col_stride, b.row_stride, std::min<index_t>(NR, n - q), kc, out);
  }
}

/// Row-run B: one run of n elements per row of the block, cut into the micro-panels.
template <int NR, class T, class U, class Read>
void pack_b(const row_run_source<U, Read>& b, index_t k0, index_t kc, index_t j0, index_t n, T* out,
            workspace& ws) {
  U* row = ws.staging.get<U>(n);
  index_t panels = (n + NR - 1) / NR;
  for (index_t d = 0; d < kc; ++d) {
    b.read(k0 + d, j0, n, row);
    T* o = out + d * NR;
    for (index_t q = 0; q < panels; ++q, o += NR * kc) {
      const U* r = row + q * NR;
      index_t nl = std::min<index_t>(NR, n - q * NR);
      if (nl == NR) {
#pragma GCC unroll 64
        for (int l = 0; l < NR; ++l) o[l] = static_cast<T>(r[l]);
      } else {
        index_t l = 0;
        for (; l < nl; ++l) o[l] = static_cast<T>(r[l]);
        for (; l < NR; ++l) o[l] = T(0);
      }
    }
  }
}

}  // namespace loom::cpu::gemm
