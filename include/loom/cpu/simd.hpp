// loom/cpu/simd.hpp: packets (SIMD vectors) of every loom element type, and moving between them.
//
// A loop nest runs in one *lane class*: F = float (32-bit lanes: float, int32, bool masks) or
// F = double (64-bit lanes: double, int64, bool masks), so every node of an expression produces
// packets of the same number of lanes and conversions never change the lane count. An expression
// that mixes 32- and 64-bit types runs the scalar path (which the compiler may still vectorise).
// The instruction set is xsimd's default architecture, i.e. the one the program is compiled for.
#pragma once

#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include <xsimd/xsimd.hpp>
#if defined(__SSE2__)
#include <immintrin.h>
#endif

#include "loom/core/config.hpp"
#include "loom/core/dtype.hpp"
#include "loom/expr/ops.hpp"

namespace loom {
namespace cpu {

using simd_arch = xsimd::default_arch;
template <class T>
using batch = xsimd::batch<T, simd_arch>;
template <class T>
using batch_bool = xsimd::batch_bool<T, simd_arch>;

/// xsimd::select, except that 32- and 64-bit integer packets on AVX-512BW go straight to the
/// AVX-512F/DQ blend: xsimd's AVX-512BW overload also names the 8- and 16-bit blends, which GCC
/// defines as macros without optimisation, and those do not compile for wider lanes (a -O0
/// -march=native build on an AVX-512 machine would otherwise fail).
template <class M, class B>
LOOM_INLINE B blend(const M& mask, const B& a, const B& b) {
#if defined(__AVX512BW__)
  using arch = typename B::arch_type;
  if constexpr (std::is_integral_v<typename B::value_type> && sizeof(typename B::value_type) >= 4 &&
                std::is_base_of_v<xsimd::avx512bw, arch>)
    return xsimd::kernel::select(mask, a, b, xsimd::avx512dq{});
  else
#endif
    return xsimd::select(mask, a, b);
}

/// Lanes per packet in lane class F (16 floats or 8 doubles with AVX-512).
template <class F>
inline constexpr std::size_t lanes = batch<F>::size;

/// The name of the instruction set packets use ("avx512bw", "avx2", ...).
inline const char* simd_name() { return simd_arch::name(); }

namespace detail {
template <class T, class F>
struct packet_of {
  static constexpr bool ok = false;
  using type = void;
};
template <class F>
struct packet_of<bool, F> {
  static constexpr bool ok = true;
  using type = batch_bool<F>;
};
template <>
struct packet_of<float, float> {
  static constexpr bool ok = true;
  using type = batch<float>;
};
template <>
struct packet_of<std::int32_t, float> {
  static constexpr bool ok = true;
  using type = batch<std::int32_t>;
};
template <>
struct packet_of<double, double> {
  static constexpr bool ok = true;
  using type = batch<double>;
};
template <>
struct packet_of<std::int64_t, double> {
  static constexpr bool ok = true;
  using type = batch<std::int64_t>;
};
}  // namespace detail

/// The packet type of element type T in lane class F (bool packets are masks).
template <class T, class F>
using packet_t = typename detail::packet_of<T, F>::type;

/// True where T has packets in lane class F.
template <class T, class F>
inline constexpr bool has_packet_v = detail::packet_of<T, F>::ok;

/// The lane class an element type belongs to (void for bool, which fits both).
template <class T>
using lane_class_of = std::conditional_t<std::is_same_v<T, bool>, void, std::conditional_t<(sizeof(T) == 4), float, double>>;

// ---------------------------------------------------------------------------------------------
// Loads and stores
// ---------------------------------------------------------------------------------------------

/// W consecutive elements.
template <class F, class T>
LOOM_INLINE packet_t<T, F> load_packet(const T* p) {
  if constexpr (std::is_same_v<T, bool>)
    return batch_bool<F>::load_unaligned(p);
  else
    return batch<T>::load_unaligned(p);
}

/// W elements `stride` apart.
template <class F, class T>
LOOM_INLINE packet_t<T, F> gather_packet(const T* p, index_t stride) {
  constexpr std::size_t w = lanes<F>;
  alignas(64) T tmp[w];
  for (std::size_t l = 0; l < w; ++l) tmp[l] = p[static_cast<index_t>(l) * stride];
  return load_packet<F>(tmp);
}

/// One element in every lane.
template <class F, class T>
LOOM_INLINE packet_t<T, F> broadcast_packet(T v) {
  if constexpr (std::is_same_v<T, bool>)
    return batch_bool<F>(v);
  else
    return batch<T>(v);
}

template <class F, class T>
LOOM_INLINE void store_packet(T* p, const packet_t<T, F>& v) {
  v.store_unaligned(p);
}

/// Bytes a non-temporal store of one packet must be aligned to (0: the packet has none).
template <class F, class T>
inline constexpr std::size_t stream_alignment = std::is_same_v<T, bool> ? 0 : lanes<F> * sizeof(T);

/// A non-temporal (streaming) store of one packet to p, aligned to stream_alignment<F, T>: the
/// line goes to memory without being read first or kept in cache. Callers end a run of them with
/// stream_fence().
template <class F, class T>
LOOM_INLINE void stream_packet(T* p, const packet_t<T, F>& v) {
  constexpr std::size_t bytes = lanes<F> * sizeof(T);
#if defined(__AVX512F__)
  if constexpr (bytes == 64) {
    if constexpr (std::is_same_v<T, float>)
      _mm512_stream_ps(p, v);
    else if constexpr (std::is_same_v<T, double>)
      _mm512_stream_pd(p, v);
    else
      _mm512_stream_si512(reinterpret_cast<__m512i*>(p), v);
    return;
  }
#endif
#if defined(__AVX__)
  if constexpr (bytes == 32) {
    if constexpr (std::is_same_v<T, float>)
      _mm256_stream_ps(p, v);
    else if constexpr (std::is_same_v<T, double>)
      _mm256_stream_pd(p, v);
    else
      _mm256_stream_si256(reinterpret_cast<__m256i*>(p), v);
    return;
  }
#endif
#if defined(__SSE2__)
  if constexpr (bytes == 16) {
    if constexpr (std::is_same_v<T, float>)
      _mm_stream_ps(p, v);
    else if constexpr (std::is_same_v<T, double>)
      _mm_stream_pd(p, v);
    else
      _mm_stream_si128(reinterpret_cast<__m128i*>(p), v);
    return;
  }
#endif
  v.store_aligned(p);
}

/// Orders earlier non-temporal stores before later stores.
LOOM_INLINE void stream_fence() {
#if defined(__SSE2__)
  _mm_sfence();
#endif
}

template <class F, class T>
LOOM_INLINE void scatter_packet(T* p, index_t stride, const packet_t<T, F>& v) {
  constexpr std::size_t w = lanes<F>;
  alignas(64) T tmp[w];
  v.store_unaligned(tmp);
  for (std::size_t l = 0; l < w; ++l) p[static_cast<index_t>(l) * stride] = tmp[l];
}

// ---------------------------------------------------------------------------------------------
// Conversions inside one lane class, with the semantics of loom::detail::convert
// ---------------------------------------------------------------------------------------------

template <class To, class From, class F>
LOOM_INLINE packet_t<To, F> convert_packet(const packet_t<From, F>& x) {
  if constexpr (std::is_same_v<To, From>) {
    return x;
  } else if constexpr (std::is_same_v<From, bool>) {  // mask to 0 / 1
    if constexpr (std::is_same_v<To, F>)
      return blend(x, batch<To>(To(1)), batch<To>(To(0)));
    else
      return blend(xsimd::bool_cast(x), batch<To>(To(1)), batch<To>(To(0)));
  } else if constexpr (std::is_same_v<To, bool>) {  // != 0, NaN included (xsimd's != is ordered)
    if constexpr (std::is_same_v<From, F>)
      return ~(x == batch<From>(From(0)));
    else
      return xsimd::bool_cast(~(x == batch<From>(From(0))));
  } else if constexpr (std::is_floating_point_v<To>) {  // integer to floating
    return xsimd::batch_cast<To>(x);
  } else {  // floating to integer: truncate, saturate, NaN gives 0
    using I = To;
    const batch<From> lo(static_cast<From>(std::numeric_limits<I>::min()));
    const batch<From> hi(static_cast<From>(std::numeric_limits<I>::max()));
    auto bad = xsimd::bool_cast(xsimd::isnan(x));
    auto under = xsimd::bool_cast(x <= lo);
    auto over = xsimd::bool_cast(x >= hi);
    auto safe = blend(xsimd::isnan(x) | (x <= lo) | (x >= hi), batch<From>(From(0)), x);
    batch<I> r = xsimd::batch_cast<I>(safe);
    r = blend(under, batch<I>(std::numeric_limits<I>::min()), r);
    r = blend(over, batch<I>(std::numeric_limits<I>::max()), r);
    return blend(bad, batch<I>(I(0)), r);
  }
}

/// A mask of another lane type as the lane class's own mask type.
template <class F, class M>
LOOM_INLINE batch_bool<F> as_class_mask(const M& m) {
  if constexpr (std::is_same_v<M, batch_bool<F>>)
    return m;
  else
    return xsimd::bool_cast(m);
}

}  // namespace cpu
}  // namespace loom
