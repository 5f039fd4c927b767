// loom/cpu/gemm/epilogue.hpp: what happens to a finished tile of the product.
//
// The engine calls epi(i0, j0, mr, nr, tile, ld_tile) once for every tile of the output, with
// the complete sums over all of K: tile[i * ld_tile + j] is C(i0 + i, j0 + j) for i < mr, j < nr.
// The tile is in L1 when the call is made. Every output element is handed over exactly once;
// calls may come concurrently from several threads, always for disjoint tiles; the order of the
// tiles is unspecified. An epilogue writes the final values wherever it wants: the store below
// into a strided destination, a fused one applies bias, activation or a residual on the way.
#pragma once

#include <memory>
#include <type_traits>

#include <xsimd/xsimd.hpp>

#include "loom/core/config.hpp"
#include "loom/cpu/gemm/partial.hpp"
#include "loom/expr/ops.hpp"

namespace loom::cpu::gemm {

/// Stores each tile into a strided destination D: C(i, j) goes to data[i * row_stride + j * col_stride],
/// converted to D. With Accumulate the tile is added to what is there (C += A . B).
template <class D, bool Accumulate = false>
struct store_epilogue {
  D* data = nullptr;
  index_t row_stride = 0;
  index_t col_stride = 1;

  template <class T>
  LOOM_INLINE void operator()(index_t i0, index_t j0, index_t mr, index_t nr, const T* LOOM_RESTRICT tile,
                              index_t ld_tile) const {
    D* LOOM_RESTRICT out = data + i0 * row_stride + j0 * col_stride;
    if (col_stride == 1) {
      if constexpr (std::is_same_v<D, T> && !Accumulate) {
        // Whole vectors, then the tail (a call to memmove per row would cost more than the copy).
        using batch = xsimd::batch<T>;
        constexpr index_t L = index_t(batch::size);
        for (index_t i = 0; i < mr; ++i, out += row_stride, tile += ld_tile) {
          index_t j = 0;
          for (; j + L <= nr; j += L) batch::load_unaligned(tile + j).store_unaligned(out + j);
          if (j < nr) detail::copy_short(tile + j, nr - j, out + j);
        }
        return;
      }
      for (index_t i = 0; i < mr; ++i, out += row_stride, tile += ld_tile) {
        for (index_t j = 0; j < nr; ++j) put(out[j], tile[j]);
      }
    } else {
      for (index_t i = 0; i < mr; ++i, out += row_stride, tile += ld_tile) {
        for (index_t j = 0; j < nr; ++j) put(out[j * col_stride], tile[j]);
      }
    }
  }

 private:
  template <class T>
  static LOOM_INLINE void put(D& d, T v) {
    if constexpr (Accumulate) {
      d = loom::detail::convert<D>(d + v);
    } else {
      d = loom::detail::convert<D>(v);  // NaN and out-of-range floats saturate as every store does
    }
  }
};

/// The plain store: C into a row-major destination with leading dimension ld.
/// gemm<float>(M, N, K, row_major(a, lda), row_major(b, ldb), store_to(c, ldc)).
template <class D>
store_epilogue<D> store_to(D* data, index_t ld) {
  return {data, ld, 1};
}

/// The plain store into any strided destination (col_stride 1: row-major; row_stride 1: column-major).
template <class D>
store_epilogue<D> store_to(D* data, index_t row_stride, index_t col_stride) {
  return {data, row_stride, col_stride};
}

/// C += A . B into a row-major destination with leading dimension ld.
template <class D>
store_epilogue<D, true> accumulate_to(D* data, index_t ld) {
  return {data, ld, 1};
}

/// C += A . B into a strided destination.
template <class D>
store_epilogue<D, true> accumulate_to(D* data, index_t row_stride, index_t col_stride) {
  return {data, row_stride, col_stride};
}

/// A reference to any epilogue with the call signature above, for tiles of T: the engine's core
/// holds this, so it is compiled once per element type whatever the epilogue (a call through a
/// pointer per tile of 12 x 32 elements costs nothing measurable). The epilogue must outlive it.
template <class T>
class tile_sink {
 public:
  template <class Epilogue>
  explicit tile_sink(Epilogue& epi)
      : epi_(const_cast<void*>(static_cast<const void*>(std::addressof(epi)))), call_(&call<Epilogue>) {}

  LOOM_INLINE void operator()(index_t i0, index_t j0, index_t mr, index_t nr, const T* tile, index_t ld) const {
    call_(epi_, i0, j0, mr, nr, tile, ld);
  }

 private:
  template <class Epilogue>
  static void call(void* epi, index_t i0, index_t j0, index_t mr, index_t nr, const T* tile, index_t ld) {
    (*static_cast<Epilogue*>(epi))(i0, j0, mr, nr, tile, ld);
  }
  void* epi_;
  void (*call_)(void*, index_t, index_t, index_t, index_t, const T*, index_t);
};

}  // namespace loom::cpu::gemm
