// loom/cpu/gemm/thin.hpp: products with at most a few rows (M <= 4) or columns (N <= 4).
//
// A matrix-vector product touches every element of the large operand once, so packing it (a
// read and a write of all of it, then a read of the copy) costs more than the product itself.
// Here the large operand is read in place, through its unit stride, by one of two kernels:
//
//   axpy  vectors run along the large operand's contiguous rows: out[r, :] += s[r, k] * v[k, :]
//         (M small with a row-major B; N small with a column-major A, computed transposed)
//   dot   vectors run along K: out[r, s] = sum_k x[r][k] * y[s][k]
//         (M small with a column-major B; N small with a row-major A)
//
// The small operand is read through its strides, or copied to a contiguous buffer first (it has
// at most 4 x K elements; a row-run source always is). Sums cover all of K in registers, so every
// tile is complete when it reaches the epilogue. Other layouts of the large operand, and row-run
// sources for it, take the packed path.
#pragma once

#include <algorithm>
#include <utility>

#include <xsimd/xsimd.hpp>

#include "loom/core/config.hpp"
#include "loom/cpu/gemm/epilogue.hpp"
#include "loom/cpu/gemm/source.hpp"
#include "loom/cpu/gemm/workspace.hpp"
#include "loom/cpu/thread_pool.hpp"

namespace loom::cpu::gemm {

/// Products with at most this many rows or columns use the kernels of this file.
inline constexpr index_t thin_extent = 4;

namespace detail {

/// Calls f(std::integral_constant<int, n>) for a run-time n in [1, Max].
template <int Max, class F>
LOOM_INLINE void with_constant(index_t n, F&& f) {
  [&]<int... I>(std::integer_sequence<int, I...>) {
    (void)((n == I + 1 ? (f(std::integral_constant<int, I + 1>{}), true) : false) || ...);
  }(std::make_integer_sequence<int, Max>{});
}

// -------------------------------------------------------------------------------------------------
// axpy: R rows of scalars against a block of V vectors of a contiguous row, for every k
// -------------------------------------------------------------------------------------------------

/// out[r * ld + l] = sum_k s[r * s_r + k * s_k] * v[k * v_k + l] for r < R, l < n (n <= V * lanes).
/// Whole vectors are loaded while they fit in n, the remaining lanes one by one.
template <class T, int R, int V>
LOOM_NOINLINE void axpy_block(index_t K, const T* LOOM_RESTRICT s, index_t s_r, index_t s_k, const T* LOOM_RESTRICT v,
                              index_t v_k, index_t n, T* LOOM_RESTRICT out, index_t ld) {
  using batch = xsimd::batch<T>;
  constexpr index_t W = index_t(batch::size);
  if (n == V * W) {
    batch acc[R][V];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
      for (int u = 0; u < V; ++u) acc[r][u] = batch(T(0));
    for (index_t k = 0; k < K; ++k, v += v_k, s += s_k) {
      batch b[V];
#pragma GCC unroll 8
      for (int u = 0; u < V; ++u) b[u] = batch::load_unaligned(v + u * W);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        batch x(s[r * s_r]);
#pragma GCC unroll 8
        for (int u = 0; u < V; ++u) acc[r][u] = xsimd::fma(x, b[u], acc[r][u]);
      }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
      for (int u = 0; u < V; ++u) acc[r][u].store_unaligned(out + r * ld + u * W);
  } else {
    // A tail narrower than V vectors: scalar sums (rare: at most one block per row group).
    for (int r = 0; r < R; ++r)
      for (index_t l = 0; l < n; ++l) out[r * ld + l] = T(0);
    for (index_t k = 0; k < K; ++k, v += v_k, s += s_k) {
      for (int r = 0; r < R; ++r) {
        T x = s[r * s_r];
        for (index_t l = 0; l < n; ++l) out[r * ld + l] += x * v[l];
      }
    }
  }
}

// -------------------------------------------------------------------------------------------------
// dot: R rows against S rows, all contiguous along K
// -------------------------------------------------------------------------------------------------

/// out[r * ld + c] = sum_k x[r][k] * y[c][k] for r < R, c < S.
template <class T, int R, int S>
LOOM_NOINLINE void dot_block(index_t K, const T* const* x, const T* const* y, T* LOOM_RESTRICT out, index_t ld) {
  using batch = xsimd::batch<T>;
  constexpr index_t W = index_t(batch::size);
  batch acc[R][S];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int c = 0; c < S; ++c) acc[r][c] = batch(T(0));
  index_t k = 0;
  for (; k + W <= K; k += W) {
    batch yv[S];
#pragma GCC unroll 8
    for (int c = 0; c < S; ++c) yv[c] = batch::load_unaligned(y[c] + k);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      batch xv = batch::load_unaligned(x[r] + k);
#pragma GCC unroll 8
      for (int c = 0; c < S; ++c) acc[r][c] = xsimd::fma(xv, yv[c], acc[r][c]);
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int c = 0; c < S; ++c) {
      T sum = xsimd::hadd(acc[r][c]);
      for (index_t kk = k; kk < K; ++kk) sum += x[r][kk] * y[c][kk];
      out[r * ld + c] = sum;
    }
  }
}

/// Rows [0, R) x columns [j0, j1) of s (R x K, strides s_r, s_k) times v (K rows of stride v_k,
/// unit column stride), handed to the epilogue in chunks. One or two rows take 8 vectors per k
/// (512 contiguous bytes of a float row per k, 8 accumulator chains), more rows take 4.
template <class T, int R>
void axpy_rows(index_t j0, index_t j1, index_t K, const T* s, index_t s_r, index_t s_k, const T* v, index_t v_k,
               const tile_sink<T>& epi) {
  constexpr index_t W = index_t(xsimd::batch<T>::size);
  constexpr int VB = R <= 2 ? 8 : 4;
  constexpr index_t chunk = VB * W;
  alignas(64) T tile[R * chunk];
  for (index_t j = j0; j < j1; j += chunk) {
    index_t n = std::min(chunk, j1 - j);
    if (n == chunk) {
      axpy_block<T, R, VB>(K, s, s_r, s_k, v + j, v_k, n, tile, chunk);
    } else {
      index_t l = 0;
      for (; l + W <= n; l += W) axpy_block<T, R, 1>(K, s, s_r, s_k, v + j + l, v_k, W, tile + l, chunk);
      if (l < n) axpy_block<T, R, 1>(K, s, s_r, s_k, v + j + l, v_k, n - l, tile + l, chunk);
    }
    epi(index_t(0), j, index_t(R), n, static_cast<const T*>(tile), chunk);
  }
}

/// The transposed case of axpy_rows: columns [0, S) x rows [i0, i1) of the output, computed as
/// S rows of lanes along A's contiguous columns and transposed into row-major tiles.
template <class T, int S>
void axpy_cols(index_t i0, index_t i1, index_t K, const T* s, index_t s_r, index_t s_k, const T* v, index_t v_k,
               const tile_sink<T>& epi) {
  constexpr index_t W = index_t(xsimd::batch<T>::size);
  constexpr int VA = S <= 2 ? 8 : 4;
  constexpr index_t chunk = VA * W;
  alignas(64) T tile_t[S * chunk];
  alignas(64) T tile[chunk * S];
  for (index_t i = i0; i < i1; i += chunk) {
    index_t m = std::min(chunk, i1 - i);
    if (m == chunk) {
      axpy_block<T, S, VA>(K, s, s_r, s_k, v + i, v_k, m, tile_t, chunk);
    } else {
      index_t l = 0;
      for (; l + W <= m; l += W) axpy_block<T, S, 1>(K, s, s_r, s_k, v + i + l, v_k, W, tile_t + l, chunk);
      if (l < m) axpy_block<T, S, 1>(K, s, s_r, s_k, v + i + l, v_k, m - l, tile_t + l, chunk);
    }
    for (index_t r = 0; r < m; ++r)
      for (int c = 0; c < S; ++c) tile[r * S + c] = tile_t[c * chunk + r];
    epi(i, index_t(0), m, index_t(S), static_cast<const T*>(tile), index_t(S));
  }
}

/// Runs f(begin, end) over [0, n) cut into at most p chunks of whole `align` units.
template <class F>
void split_range(index_t n, index_t p, index_t align, F&& f) {
  index_t units = (n + align - 1) / align;
  p = std::max<index_t>(1, std::min(p, units));
  if (p == 1) {
    f(index_t(0), n);
    return;
  }
  default_pool().run(p, [&](index_t t) { f(std::min(n, units * t / p * align), std::min(n, units * (t + 1) / p * align)); });
}

// -------------------------------------------------------------------------------------------------
// The two thin cases
// -------------------------------------------------------------------------------------------------

/// out[r * len + i] = x(r, i) for r < count, i < len: rows of a small operand, made contiguous.
template <class T>
void gather_rows(const operand<T>& x, index_t count, index_t len, T* out) {
  for (index_t r = 0; r < count; ++r) x.read(r, 0, len, out + r * len);
}

/// out[c * len + k] = x(k, c) for c < count <= thin_extent, k < len: columns of a small operand.
template <class T>
void gather_cols(const operand<T>& x, index_t count, index_t len, T* out) {
  T row[thin_extent];
  for (index_t k = 0; k < len; ++k) {
    x.read(k, 0, count, row);
    for (index_t c = 0; c < count; ++c) out[c * len + k] = row[c];
  }
}

/// M <= thin_extent. Returns false (and does nothing) when B is not strided with a unit stride.
template <class T>
bool thin_rows(index_t M, index_t N, index_t K, const operand<T>& a, const operand<T>& b, const tile_sink<T>& epi,
               index_t threads) {
  constexpr index_t W = index_t(xsimd::batch<T>::size);
  if (!b.is_strided() || (b.col_stride != 1 && b.row_stride != 1)) return false;
  workspace_lease ws;  // the calling thread's: holds A when it must be copied, read by every thread
  if (b.col_stride == 1) {
    // axpy along B's rows; A's scalars through its strides, or copied when A is a reader.
    const T* s = a.data;
    index_t s_r = a.row_stride, s_k = a.col_stride;
    if (!a.is_strided()) {
      T* buf = ws->a.template get<T>(M * K);
      gather_rows(a, M, K, buf);
      s = buf, s_r = K, s_k = 1;
    }
    split_range(N, threads, 8 * W, [&](index_t j0, index_t j1) {
      with_constant<thin_extent>(M, [&](auto R) {
        axpy_rows<T, decltype(R)::value>(j0, j1, K, s, s_r, s_k, b.at(0, 0), b.row_stride, epi);
      });
    });
    return true;
  }
  // dot products of A's rows (made contiguous) with B's columns (contiguous along K).
  const T* rows[thin_extent];
  if (a.is_strided() && a.col_stride == 1) {
    for (index_t r = 0; r < M; ++r) rows[r] = a.at(r, 0);
  } else {
    T* buf = ws->a.template get<T>(M * K);
    gather_rows(a, M, K, buf);
    for (index_t r = 0; r < M; ++r) rows[r] = buf + r * K;
  }
  constexpr index_t S = 4;
  split_range(N, threads, 16, [&](index_t j0, index_t j1) {
    T tile[thin_extent * S];
    with_constant<thin_extent>(M, [&](auto R) {
      for (index_t j = j0; j < j1; j += S) {
        index_t n = std::min(S, j1 - j);
        const T* cols[S];
        for (index_t c = 0; c < n; ++c) cols[c] = b.at(0, j + c);
        with_constant<S>(n, [&](auto C) { dot_block<T, R(), C()>(K, rows, cols, tile, S); });
        epi(index_t(0), j, M, n, static_cast<const T*>(tile), S);
      }
    });
  });
  return true;
}

/// N <= thin_extent. Returns false (and does nothing) when A is not strided with a unit stride.
template <class T>
bool thin_cols(index_t M, index_t N, index_t K, const operand<T>& a, const operand<T>& b, const tile_sink<T>& epi,
               index_t threads) {
  constexpr index_t W = index_t(xsimd::batch<T>::size);
  if (!a.is_strided() || (a.col_stride != 1 && a.row_stride != 1)) return false;
  workspace_lease ws;  // the calling thread's: holds B when it must be copied, read by every thread
  if (a.col_stride == 1) {
    // dot products of A's rows with B's columns (made contiguous).
    const T* cols[thin_extent];
    if (b.is_strided() && b.row_stride == 1) {
      for (index_t c = 0; c < N; ++c) cols[c] = b.at(0, c);
    } else {
      T* buf = ws->b.template get<T>(N * K);
      gather_cols(b, N, K, buf);
      for (index_t c = 0; c < N; ++c) cols[c] = buf + c * K;
    }
    constexpr index_t R = 4;
    split_range(M, threads, 16, [&](index_t i0, index_t i1) {
      T tile[R * thin_extent];
      with_constant<thin_extent>(N, [&](auto S) {
        for (index_t i = i0; i < i1; i += R) {
          index_t m = std::min(R, i1 - i);
          const T* rows[R];
          for (index_t r = 0; r < m; ++r) rows[r] = a.at(i + r, 0);
          with_constant<R>(m, [&](auto RR) { dot_block<T, RR(), S()>(K, rows, cols, tile, S()); });
          epi(i, index_t(0), m, N, static_cast<const T*>(tile), index_t(S()));
        }
      });
    });
    return true;
  }
  // axpy along A's columns, computing the transposed tile (rows = B's columns).
  const T* s = b.data;
  index_t s_r = b.col_stride, s_k = b.row_stride;
  if (!b.is_strided()) {
    T* buf = ws->b.template get<T>(N * K);
    gather_cols(b, N, K, buf);
    s = buf, s_r = K, s_k = 1;
  }
  split_range(M, threads, 8 * W, [&](index_t i0, index_t i1) {
    with_constant<thin_extent>(N, [&](auto S) {
      axpy_cols<T, decltype(S)::value>(i0, i1, K, s, s_r, s_k, a.at(0, 0), a.col_stride, epi);
    });
  });
  return true;
}

}  // namespace detail
}  // namespace loom::cpu::gemm
