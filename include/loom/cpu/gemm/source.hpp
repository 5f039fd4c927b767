// loom/cpu/gemm/source.hpp: how the GEMM engine reads an operand while it packs it.
//
// An operand of the product (A: M x K, B: K x N) is never read by the micro-kernel itself: the
// engine copies blocks of it into its own packed buffers, and a *source* says how the elements
// of such a block are obtained. Two kinds exist:
//
//   strided_source<U>       element (r, c) is data[r * row_stride + c * col_stride]; covers
//                           row-major (col_stride 1), column-major / transposed (row_stride 1)
//                           and any strided view. The packer has fast paths for both unit strides.
//   row_run_source<U, F>    f(r, c0, n, U* out) writes elements (r, c0 .. c0 + n - 1) to out,
//                           contiguously. An expression operand is evaluated this way, a run at a
//                           time, while it is packed: no temporary of the operand's size exists.
//
// U may differ from the GEMM's element type T; the packer converts (static_cast) each element.
//
// The engine's compiled core sees neither source type: make_operand<T>(source) turns either kind
// into an operand<T> (strided memory of T, or a reader of runs of T behind a function pointer).
// So the packing loops, the thin paths and the driver are instantiated once per element type,
// however many different expression operands a program multiplies (see driver.hpp).
#pragma once

#include <cstddef>
#include <type_traits>
#include <utility>
#include <vector>

#include "loom/core/config.hpp"

namespace loom::cpu::gemm {

/// Operand read through a pointer and two strides in elements.
/// A 3 x 4 row-major matrix with leading dimension 8 is strided(p, 8, 1); its transpose (4 x 3)
/// is strided(p, 1, 8).
template <class U>
struct strided_source {
  using value_type = U;
  const U* data = nullptr;
  index_t row_stride = 0;
  index_t col_stride = 1;

  LOOM_INLINE const U* at(index_t r, index_t c) const { return data + r * row_stride + c * col_stride; }
};

/// Operand evaluated a row run at a time: read(r, c0, n, out) writes (r, c0 .. c0 + n - 1) to out.
template <class U, class Read>
struct row_run_source {
  using value_type = U;
  Read read;
};

/// A strided operand: element (r, c) at data[r * row_stride + c * col_stride].
template <class U>
strided_source<U> strided(const U* data, index_t row_stride, index_t col_stride) {
  return {data, row_stride, col_stride};
}

/// A row-major operand with leading dimension ld (ld >= its number of columns).
template <class U>
strided_source<U> row_major(const U* data, index_t ld) {
  return {data, ld, 1};
}

/// A column-major operand with leading dimension ld, i.e. the transpose of a row-major matrix.
template <class U>
strided_source<U> col_major(const U* data, index_t ld) {
  return {data, 1, ld};
}

/// An operand produced by a callable read(r, c0, n, U* out) that writes n elements of row r,
/// starting at column c0, to out. Example, A = 0.5 * X for a row-major X with leading dimension ld:
///   row_runs<float>([&](index_t r, index_t c0, index_t n, float* o) {
///     for (index_t j = 0; j < n; ++j) o[j] = 0.5f * x[r * ld + c0 + j]; });
/// The engine calls it concurrently from several threads, each with its own out.
template <class U, class Read>
row_run_source<U, std::decay_t<Read>> row_runs(Read&& read) {
  return {std::forward<Read>(read)};
}

template <class S>
inline constexpr bool is_strided_source_v = false;
template <class U>
inline constexpr bool is_strided_source_v<strided_source<U>> = true;

template <class S>
inline constexpr bool is_row_run_source_v = false;
template <class U, class Read>
inline constexpr bool is_row_run_source_v<row_run_source<U, Read>> = true;

/// True for the types the engine accepts as an operand.
template <class S>
inline constexpr bool is_source_v = is_strided_source_v<std::remove_cvref_t<S>> ||
                                    is_row_run_source_v<std::remove_cvref_t<S>>;

// -------------------------------------------------------------------------------------------------
// The type-erased operand of the core
// -------------------------------------------------------------------------------------------------

/// An operand as the engine's core sees it: strided memory of T (read_fn null), or a reader of
/// row runs producing T. It refers to the source it was made from, which must outlive it.
template <class T>
struct operand {
  const T* data = nullptr;
  index_t row_stride = 0;
  index_t col_stride = 1;
  const void* reader = nullptr;
  void (*read_fn)(const void*, index_t, index_t, index_t, T*) = nullptr;

  LOOM_INLINE bool is_strided() const { return read_fn == nullptr; }
  LOOM_INLINE const T* at(index_t r, index_t c) const { return data + r * row_stride + c * col_stride; }
  /// Elements (r, c0 .. c0 + n - 1) to out, whichever kind this is.
  void read(index_t r, index_t c0, index_t n, T* out) const {
    if (read_fn) {
      read_fn(reader, r, c0, n, out);
    } else {
      const T* s = at(r, c0);
      for (index_t j = 0; j < n; ++j) out[j] = s[j * col_stride];
    }
  }
};

namespace detail {

/// Reads a run of U elements from a source and converts it to T through a per-thread buffer.
template <class T, class Source>
void read_converted(const void* source, index_t r, index_t c0, index_t n, T* out) {
  using U = typename Source::value_type;
  const Source& s = *static_cast<const Source*>(source);
  if constexpr (is_strided_source_v<Source>) {
    const U* p = s.at(r, c0);
    for (index_t j = 0; j < n; ++j) out[j] = static_cast<T>(p[j * s.col_stride]);
  } else if constexpr (std::is_same_v<U, T>) {
    s.read(r, c0, n, out);
  } else {
    thread_local std::vector<U> buffer;
    if (buffer.size() < std::size_t(n)) buffer.resize(std::size_t(n));
    s.read(r, c0, n, buffer.data());
    for (index_t j = 0; j < n; ++j) out[j] = static_cast<T>(buffer[std::size_t(j)]);
  }
}

}  // namespace detail

/// The operand<T> of a strided source: the memory itself when U is T, a converting reader else.
template <class T, class U>
operand<T> make_operand(const strided_source<U>& s) {
  operand<T> o;
  if constexpr (std::is_same_v<U, T>) {
    o.data = s.data;
    o.row_stride = s.row_stride;
    o.col_stride = s.col_stride;
  } else {
    o.reader = &s;
    o.read_fn = &detail::read_converted<T, strided_source<U>>;
  }
  return o;
}

/// The operand<T> of a row-run source.
template <class T, class U, class Read>
operand<T> make_operand(const row_run_source<U, Read>& s) {
  operand<T> o;
  o.reader = &s;
  o.read_fn = &detail::read_converted<T, row_run_source<U, Read>>;
  return o;
}

}  // namespace loom::cpu::gemm
