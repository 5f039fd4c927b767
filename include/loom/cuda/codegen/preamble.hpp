// loom/cuda/codegen/preamble.hpp: the device-side helpers every generated kernel starts with.
//
// One definition, two uses. The helpers below are written once, inside LOOM_CUDA_DEVICE_CODE(...),
// which both compiles them here as host functions (namespace loom::cuda::dev, so that the tests can
// hold every one against the scalar `apply` of expr/ops.hpp, exactly, on edge cases) and turns the
// same tokens into the text that NVRTC compiles (namespace loom::dev). So the semantics the tests
// check on the CPU are those of the code the GPU runs: integer wrap, division by zero giving 0,
// NaN propagation in maximum/minimum/clamp/relu, round half to even, saturating float->int
// conversion with NaN -> 0, and the gelu / gelu_exact formulas of ops.hpp term for term. Only the
// last bits of transcendental functions (CUDA's libdevice against the host libm) may differ.
//
// Each elementwise op of ops.hpp has a function of the same name here (the emitter prints
// `loom::dev::<Op::name>(...)`); cast<T> is cvt<T>. Operands arrive already converted to the
// op's computation type, so one template per op serves every dtype. No header is included on the
// device: NVRTC provides the math functions (expf, erfc, rint, ...) itself.
//
// Rules for the code inside the macro: no preprocessor directives, no `//` comments that matter
// (they vanish), balanced parentheses, and only what both g++ and NVRTC (C++17) accept.
#pragma once

#include <math.h>

#include <cstddef>
#include <string>
#include <string_view>

#include "loom/core/config.hpp"

#define LOOM_CUDA_DEVICE_CODE(...)                                                  \
  namespace loom::cuda::dev {                                                       \
  __VA_ARGS__                                                                       \
  }                                                                                 \
  namespace loom::cuda::codegen::detail {                                           \
  inline constexpr std::string_view device_code_tokens = #__VA_ARGS__;              \
  }

// On the host the helpers are plain inline functions; the device text defines LOOM_DFN itself.
#define LOOM_DFN inline

LOOM_CUDA_DEVICE_CODE(
    // ------------------------------------------------------------------ type traits
    template <class A, class B> struct same_type { static constexpr bool value = false; };
    template <class A> struct same_type<A, A> { static constexpr bool value = true; };

    template <class T> struct int_traits { static constexpr bool is_int = false; };
    template <> struct int_traits<int> {
      static constexpr bool is_int = true;
      typedef unsigned int unsigned_type;
      static constexpr int lowest = -2147483647 - 1;
      static constexpr int highest = 2147483647;
    };
    template <> struct int_traits<long long> {
      static constexpr bool is_int = true;
      typedef unsigned long long unsigned_type;
      static constexpr long long lowest = -9223372036854775807LL - 1;
      static constexpr long long highest = 9223372036854775807LL;
    };
    template <class T> struct is_floating { static constexpr bool value = false; };
    template <> struct is_floating<float> { static constexpr bool value = true; };
    template <> struct is_floating<double> { static constexpr bool value = true; };

    // N elements of T moved as one aligned access (16 bytes at most): float4-like loads and stores.
    template <class T, int N> struct alignas(sizeof(T) * N) vec { T v[N]; };

    // ------------------------------------------------------------------ math by type
    LOOM_DFN float m_exp(float x) { return ::expf(x); }
    LOOM_DFN double m_exp(double x) { return ::exp(x); }
    LOOM_DFN float m_log(float x) { return ::logf(x); }
    LOOM_DFN double m_log(double x) { return ::log(x); }
    LOOM_DFN float m_log1p(float x) { return ::log1pf(x); }
    LOOM_DFN double m_log1p(double x) { return ::log1p(x); }
    LOOM_DFN float m_expm1(float x) { return ::expm1f(x); }
    LOOM_DFN double m_expm1(double x) { return ::expm1(x); }
    LOOM_DFN float m_sqrt(float x) { return ::sqrtf(x); }
    LOOM_DFN double m_sqrt(double x) { return ::sqrt(x); }
    LOOM_DFN float m_sin(float x) { return ::sinf(x); }
    LOOM_DFN double m_sin(double x) { return ::sin(x); }
    LOOM_DFN float m_cos(float x) { return ::cosf(x); }
    LOOM_DFN double m_cos(double x) { return ::cos(x); }
    LOOM_DFN float m_tanh(float x) { return ::tanhf(x); }
    LOOM_DFN double m_tanh(double x) { return ::tanh(x); }
    LOOM_DFN float m_erf(float x) { return ::erff(x); }
    LOOM_DFN double m_erf(double x) { return ::erf(x); }
    LOOM_DFN float m_erfc(float x) { return ::erfcf(x); }
    LOOM_DFN double m_erfc(double x) { return ::erfc(x); }
    LOOM_DFN float m_floor(float x) { return ::floorf(x); }
    LOOM_DFN double m_floor(double x) { return ::floor(x); }
    LOOM_DFN float m_ceil(float x) { return ::ceilf(x); }
    LOOM_DFN double m_ceil(double x) { return ::ceil(x); }
    LOOM_DFN float m_rint(float x) { return ::rintf(x); }
    LOOM_DFN double m_rint(double x) { return ::rint(x); }
    LOOM_DFN float m_fabs(float x) { return ::fabsf(x); }
    LOOM_DFN double m_fabs(double x) { return ::fabs(x); }
    LOOM_DFN float m_pow(float x, float y) { return ::powf(x, y); }
    LOOM_DFN double m_pow(double x, double y) { return ::pow(x, y); }

    // ------------------------------------------------------------------ conversion (cast<T>)
    // As loom::detail::convert: to bool is != 0; floating to integer truncates, saturates out of
    // range and gives 0 for NaN; integer narrowing wraps.
    template <class To, class From> LOOM_DFN To cvt(From x) {
      if constexpr (same_type<To, From>::value) {
        return x;
      } else if constexpr (same_type<To, bool>::value) {
        return x != From(0);
      } else if constexpr (int_traits<To>::is_int && is_floating<From>::value) {
        if (x != x) return To(0);
        const From lo = static_cast<From>(int_traits<To>::lowest);
        const From hi = static_cast<From>(int_traits<To>::highest);
        if (x <= lo) return int_traits<To>::lowest;
        if (x >= hi) return int_traits<To>::highest;
        return static_cast<To>(x);
      } else {
        return static_cast<To>(x);
      }
    }

    // ------------------------------------------------------------------ arithmetic
    template <class T> LOOM_DFN T add(T a, T b) {
      if constexpr (int_traits<T>::is_int) {
        typedef typename int_traits<T>::unsigned_type U;
        return static_cast<T>(static_cast<U>(a) + static_cast<U>(b));
      } else {
        return a + b;
      }
    }
    template <class T> LOOM_DFN T sub(T a, T b) {
      if constexpr (int_traits<T>::is_int) {
        typedef typename int_traits<T>::unsigned_type U;
        return static_cast<T>(static_cast<U>(a) - static_cast<U>(b));
      } else {
        return a - b;
      }
    }
    template <class T> LOOM_DFN T mul(T a, T b) {
      if constexpr (int_traits<T>::is_int) {
        typedef typename int_traits<T>::unsigned_type U;
        return static_cast<T>(static_cast<U>(a) * static_cast<U>(b));
      } else {
        return a * b;
      }
    }
    template <class T> LOOM_DFN T div(T a, T b) {
      if constexpr (int_traits<T>::is_int) {
        if (b == T(0)) return T(0);
        if (b == T(-1)) return sub(T(0), a);
        return a / b;
      } else {
        return a / b;
      }
    }
    // ------------------------------------------------------------------ division by a row's value
    // A row kernel's output divides many elements by one float of the row (softmax's sum). The
    // quotient stays the correctly rounded x / s: y = 1 / s once a row (correctly rounded), then
    // per element q0 = x * y (within an ulp), the exact remainder x - s * q0 (an fma) and one
    // correction q0 + r * y, which is x / s rounded to nearest (Markstein's theorem) where
    // nothing underflows or overflows: |s| in [2^-20, 2^21) and |x| in [2^-60, 2^81) keep the
    // quotient within [2^-81, 2^101) and the remainder exact. The sign is q0's, so that a zero x
    // gives the zero x / s gives. Outside those ranges (and for inf and NaN) `ok` turns false
    // and the kernel divides those elements again with div().
    LOOM_DFN unsigned f32_bits(float x) {
      union {
        float f;
        unsigned u;
      } c;
      c.f = x;
      return c.u;
    }
    struct row_divisor {
      float s, y;
      bool fast;
    };
    LOOM_DFN row_divisor row_divisor_of(float s) {
      row_divisor d;
      d.s = s;
      d.y = 1.0f / s;
      d.fast = (f32_bits(s) & 0x7fffffffu) - 0x35800000u < 0x4a000000u - 0x35800000u;
      return d;
    }
    LOOM_DFN float div_row(float x, const row_divisor& d, bool& ok) {
      const float q0 = x * d.y;
      const float q = ::copysignf(::fmaf(::fmaf(-d.s, q0, x), d.y, q0), q0);
      const unsigned b = f32_bits(x) & 0x7fffffffu;
      ok = ok & ((b - 0x21800000u < 0x68000000u - 0x21800000u) | (b == 0u));
      return q;
    }
    template <class T> LOOM_DFN T maximum(T a, T b) {
      if constexpr (is_floating<T>::value) {
        if (a != a || b != b) return a + b;
      }
      return a < b ? b : a;
    }
    template <class T> LOOM_DFN T minimum(T a, T b) {
      if constexpr (is_floating<T>::value) {
        if (a != a || b != b) return a + b;
      }
      return b < a ? b : a;
    }
    template <class T> LOOM_DFN T ipow(T base, T e) {
      if (e < T(0)) return base == T(1) ? T(1) : base == T(-1) ? ((e & T(1)) ? T(-1) : T(1)) : T(0);
      T r = T(1);
      while (e) {
        if (e & T(1)) r = mul(r, base);
        base = mul(base, base);
        e >>= 1;
      }
      return r;
    }
    template <class T> LOOM_DFN T pow(T a, T b) {
      if constexpr (int_traits<T>::is_int) {
        return ipow(a, b);
      } else {
        return m_pow(a, b);
      }
    }

    // ------------------------------------------------------------------ comparison and logic
    template <class T> LOOM_DFN bool eq(T a, T b) { return a == b; }
    template <class T> LOOM_DFN bool ne(T a, T b) { return a != b; }
    template <class T> LOOM_DFN bool lt(T a, T b) { return a < b; }
    template <class T> LOOM_DFN bool le(T a, T b) { return a <= b; }
    template <class T> LOOM_DFN bool gt(T a, T b) { return a > b; }
    template <class T> LOOM_DFN bool ge(T a, T b) { return a >= b; }
    LOOM_DFN bool logical_and(bool a, bool b) { return a && b; }
    LOOM_DFN bool logical_or(bool a, bool b) { return a || b; }
    LOOM_DFN bool logical_not(bool a) { return !a; }

    // ------------------------------------------------------------------ same-type unary
    template <class T> LOOM_DFN T neg(T a) {
      if constexpr (int_traits<T>::is_int) {
        return sub(T(0), a);
      } else {
        return -a;
      }
    }
    template <class T> LOOM_DFN T abs(T a) {
      if constexpr (int_traits<T>::is_int) {
        return a < T(0) ? sub(T(0), a) : a;
      } else {
        return m_fabs(a);
      }
    }
    template <class T> LOOM_DFN T floor(T a) {
      if constexpr (!is_floating<T>::value) {  // integers and bool: unchanged
        return a;
      } else {
        return m_floor(a);
      }
    }
    template <class T> LOOM_DFN T ceil(T a) {
      if constexpr (!is_floating<T>::value) {  // integers and bool: unchanged
        return a;
      } else {
        return m_ceil(a);
      }
    }
    template <class T> LOOM_DFN T round(T a) {
      if constexpr (!is_floating<T>::value) {  // integers and bool: unchanged
        return a;
      } else {
        return m_rint(a);
      }
    }
    template <class T> LOOM_DFN T relu(T a) {
      if constexpr (is_floating<T>::value) {
        if (a != a) return a;
      }
      return a > T(0) ? a : T(0);
    }

    // ------------------------------------------------------------------ floating unary
    template <class T> LOOM_DFN T exp(T a) { return m_exp(a); }
    template <class T> LOOM_DFN T log(T a) { return m_log(a); }
    template <class T> LOOM_DFN T log1p(T a) { return m_log1p(a); }
    template <class T> LOOM_DFN T expm1(T a) { return m_expm1(a); }
    template <class T> LOOM_DFN T sqrt(T a) { return m_sqrt(a); }
    template <class T> LOOM_DFN T rsqrt(T a) { return T(1) / m_sqrt(a); }
    template <class T> LOOM_DFN T sin(T a) { return m_sin(a); }
    template <class T> LOOM_DFN T cos(T a) { return m_cos(a); }
    template <class T> LOOM_DFN T tanh(T a) { return m_tanh(a); }
    template <class T> LOOM_DFN T sigmoid(T a) { return T(1) / (T(1) + m_exp(-a)); }
    template <class T> LOOM_DFN T erf(T a) { return m_erf(a); }
    // +inf and a quiet NaN of type T (the reductions' identities and the mean of nothing): no
    // header gives the device an infinity constant, and squaring overflows in either type.
    template <class T> LOOM_DFN T m_inf() {
      T x = T(1e30);
      for (int i = 0; i < 6; ++i) x = x * x;
      return x;
    }
    template <class T> LOOM_DFN T m_nan() { return m_inf<T>() - m_inf<T>(); }
    // x is -inf: below zero, and x - x is NaN (no header gives the device an infinity constant).
    template <class T> LOOM_DFN bool is_negative_infinity(T x) { return x < T(0) && !(x - x == x - x); }
    // gelu(-inf) and gelu_exact(-inf) are -0, the limit (the formulas would give -inf * 0 = NaN).
    template <class T> LOOM_DFN T gelu(T x) {
      if (is_negative_infinity(x)) return -T(0);
      const T u = T(0.7978845608028654) * (x + T(0.044715) * x * x * x);
      // as ops.hpp: e^(-2|u|) never overflows, so the smallest results below zero are kept
      const T e = m_exp(T(-2) * (u < T(0) ? -u : u));
      return u >= T(0) ? x / (T(1) + e) : x * e / (T(1) + e);
    }
    template <class T> LOOM_DFN T gelu_exact(T x) {
      if (is_negative_infinity(x)) return -T(0);
      return T(0.5) * x * m_erfc(x * T(-0.7071067811865476));
    }

    // ------------------------------------------------------------------ ternary
    template <class T> LOOM_DFN T where(bool c, T a, T b) { return c ? a : b; }
    template <class T> LOOM_DFN T clamp(T x, T lo, T hi) { return minimum(maximum(x, lo), hi); })

#undef LOOM_DFN
#undef LOOM_CUDA_DEVICE_CODE

namespace loom::cuda::codegen {

namespace detail {
/// Lays the one-line token text of the device code out as lines: a break after every `;`, `{`
/// and `}` outside parentheses, indented by brace depth. Only for people reading dumped kernels.
inline std::string format_device_code(std::string_view text) {
  std::string out;
  out.reserve(text.size() + text.size() / 8);
  int parens = 0, braces = 0;
  bool line_start = true;
  auto newline = [&] {
    out += '\n';
    line_start = true;
  };
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (line_start) {
      if (c == ' ') continue;
      if (c == '}') --braces;
      out.append(static_cast<std::size_t>(2 * (braces > 0 ? braces : 0)), ' ');
      if (c == '}') ++braces;
      line_start = false;
    }
    out += c;
    if (c == '(') ++parens;
    if (c == ')') --parens;
    if (parens == 0) {
      if (c == '{') {
        ++braces;
        newline();
      } else if (c == '}') {
        --braces;
        const bool joins = i + 1 < text.size() && (text[i + 1] == ';' || text.substr(i + 1, 5) == " else");
        if (!joins) newline();
      } else if (c == ';') {
        newline();
      }
    }
  }
  if (!line_start) out += '\n';
  return out;
}
}  // namespace detail

/// The text every generated kernel begins with: the qualifier macro and the helpers above in
/// namespace loom::dev. Built once; the same string object on every call.
inline const std::string& preamble() {
  static const std::string text = [] {
    std::string s;
    s += "// Generated by loom " LOOM_VERSION_STRING ". Device helpers: loom/cuda/codegen/preamble.hpp.\n";
    s += "#define LOOM_DFN __device__ __forceinline__\n";
    // The argument block is read in place even where element() takes its address (sm_70 on).
    s += "#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 700\n#define LOOM_GRID_CONSTANT __grid_constant__\n"
         "#else\n#define LOOM_GRID_CONSTANT\n#endif\n";
    s += "namespace loom {\nnamespace dev {\n";
    s += detail::format_device_code(detail::device_code_tokens);
    s += "}  // namespace dev\n}  // namespace loom\n";
    return s;
  }();
  return text;
}

}  // namespace loom::cuda::codegen
