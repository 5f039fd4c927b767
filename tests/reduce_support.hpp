// Helpers for the reduction tests: float64 references over any axis set, and a checker that runs
// one reduction (by its public spelling) against them.
#pragma once

#include <loom/loom.hpp>

#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "support.hpp"

namespace loom_test {

/// Which reduction: the public functions, one tag each.
enum class red { sum, mean, max, min, prod, argmax, argmin };
inline const char* red_name(red r) {
  switch (r) {
    case red::sum: return "sum";
    case red::mean: return "mean";
    case red::max: return "max";
    case red::min: return "min";
    case red::prod: return "prod";
    case red::argmax: return "argmax";
    case red::argmin: return "argmin";
  }
  return "?";
}

/// Calls the public reduction R with the given trailing arguments (axes, keepdims).
template <red R, class X, class... A>
auto call_reduction(const X& x, A... a) {
  using namespace loom;
  if constexpr (R == red::sum) return sum(x, a...);
  if constexpr (R == red::mean) return mean(x, a...);
  if constexpr (R == red::max) return max(x, a...);
  if constexpr (R == red::min) return min(x, a...);
  if constexpr (R == red::prod) return prod(x, a...);
  if constexpr (R == red::argmax) return argmax(x, a...);
  if constexpr (R == red::argmin) return argmin(x, a...);
}

/// axes<K...> of the set bits of Mask.
template <unsigned Mask>
struct axes_of_mask {
  static constexpr std::size_t count = [] {
    std::size_t c = 0;
    for (unsigned m = Mask; m; m >>= 1) c += m & 1u;
    return c;
  }();
  static constexpr std::array<int, count> bits = [] {
    std::array<int, count> b{};
    std::size_t c = 0;
    for (int k = 0; k < 32; ++k)
      if ((Mask >> k) & 1u) b[c++] = k;
    return b;
  }();
  template <std::size_t... I>
  static auto make(std::index_sequence<I...>) {
    return loom::axes<bits[I]...>;
  }
  using type = decltype(make(std::make_index_sequence<count>{}));
};

/// The float64 (or exact integer) reference of reduction r over the axes in mask of a row-major
/// array of shape d. Outputs in row-major order of the kept axes.
template <class T>
std::vector<double> reference(red r, const T* x, const loom::dims& d, unsigned mask) {
  std::vector<std::size_t> kept, reduced;
  for (std::size_t k = 0; k < d.rank; ++k) ((mask >> k) & 1u ? reduced : kept).push_back(k);
  std::vector<std::size_t> stride(d.rank, 1);
  for (std::size_t k = d.rank; k-- > 1;) stride[k - 1] = stride[k] * d.e[k];
  std::size_t nk = 1, nr = 1;
  for (auto k : kept) nk *= d.e[k];
  for (auto k : reduced) nr *= d.e[k];
  std::vector<double> out(d.size() == 0 && nk != 0 ? nk : nk);
  std::vector<std::size_t> ki(kept.size()), ri(reduced.size());
  for (std::size_t o = 0; o < nk; ++o) {
    std::size_t t = o;
    for (std::size_t j = kept.size(); j-- > 0;) {
      ki[j] = t % d.e[kept[j]];
      t /= d.e[kept[j]];
    }
    std::size_t base = 0;
    for (std::size_t j = 0; j < kept.size(); ++j) base += ki[j] * stride[kept[j]];
    double acc = r == red::prod ? 1.0 : 0.0;
    std::int64_t iacc = r == red::prod ? 1 : 0;
    double best = 0;
    std::int64_t best_i = -1;
    bool nan = false;
    for (std::size_t q = 0; q < nr; ++q) {
      std::size_t u = q, off = base;
      for (std::size_t j = reduced.size(); j-- > 0;) {
        off += (u % d.e[reduced[j]]) * stride[reduced[j]];
        u /= d.e[reduced[j]];
      }
      const T v = x[off];
      const double dv = static_cast<double>(v);
      if constexpr (std::is_integral_v<T>) {
        if (r == red::prod) iacc = static_cast<std::int64_t>(static_cast<std::uint64_t>(iacc) * static_cast<std::uint64_t>(std::int64_t(v)));
        if (r == red::sum || r == red::mean) iacc += std::int64_t(v);
      }
      if (r == red::sum || r == red::mean) acc += dv;
      if (r == red::prod) acc *= dv;
      if (r == red::max || r == red::min) {
        if (dv != dv) nan = true;
        if (q == 0 || (r == red::max ? dv > best : dv < best)) best = dv;
      }
      if (r == red::argmax || r == red::argmin) {
        const bool bnan = best_i >= 0 && best != best;
        const bool better = best_i < 0 || (!bnan && (dv != dv || (r == red::argmax ? dv > best : dv < best)));
        if (better) {
          best = dv;
          best_i = std::int64_t(q);
        }
      }
    }
    switch (r) {
      case red::sum: out[o] = std::is_integral_v<T> ? double(iacc) : acc; break;
      case red::prod: out[o] = std::is_integral_v<T> ? double(iacc) : acc; break;
      case red::mean: out[o] = (std::is_integral_v<T> ? double(iacc) : acc) / double(nr); break;
      case red::max:
      case red::min: out[o] = nan ? std::numeric_limits<double>::quiet_NaN() : best; break;
      case red::argmax:
      case red::argmin: out[o] = double(best_i); break;
    }
  }
  return out;
}

/// Runs reduction R over the axes of Mask (Mask == ~0u: the overload without axes) with or
/// without keepdims on x, and compares with the reference: value type, shape and values.
template <red R, unsigned Mask, bool Keep, class X>
void check_reduction(const X& x, double rtol = 2e-5) {
  using T = typename X::value_type;
  constexpr std::size_t rank = X::rank;
  constexpr unsigned mask = Mask == ~0u ? loom::all_axes_mask(rank) : Mask;
  const loom::dims d = x.shape().to_dims();
  bool need_identity = R == red::max || R == red::min || R == red::argmax || R == red::argmin;
  bool empty_axis = false;
  std::size_t out_size = 1;
  for (std::size_t k = 0; k < rank; ++k) {
    if (((mask >> k) & 1u) && d.e[k] == 0) empty_axis = true;
    if (!((mask >> k) & 1u)) out_size *= d.e[k];
  }
  auto build = [&] {
    if constexpr (Mask == ~0u) {
      if constexpr (Keep)
        return call_reduction<R>(x, loom::keepdims);
      else
        return call_reduction<R>(x);
    } else {
      using A = typename axes_of_mask<Mask>::type;
      if constexpr (Keep)
        return call_reduction<R>(x, A{}, loom::keepdims);
      else
        return call_reduction<R>(x, A{});
    }
  };
  INFO(red_name(R) << " over mask " << mask << (Keep ? " keepdims" : "") << " of " << loom::to_string(d) << " "
                   << loom::dtype_name(loom::dtype_of<T>));
  if (need_identity && empty_axis && out_size != 0) {
    CHECK_THROWS_AS(build(), loom::shape_error);
    return;
  }
  auto node = build();
  auto got = loom::eval(node);
  using V = typename decltype(got)::value_type;
  // Shape: kept axes (reduced ones as 1 with keepdims).
  std::size_t j = 0;
  for (std::size_t k = 0; k < rank; ++k) {
    if ((mask >> k) & 1u) {
      if (Keep) CHECK(got.extent(j++) == 1);
    } else {
      CHECK(got.extent(j++) == d.e[k]);
    }
  }
  CHECK(got.size() == out_size);
  const auto want = reference(R, x.data(), d, mask);
  if constexpr (R == red::argmax || R == red::argmin) {
    static_assert(std::is_same_v<V, std::int64_t>);
    check_equal(got.data(), want, "arg");
  } else if constexpr (std::is_integral_v<V>) {
    check_equal(got.data(), want, "int");
  } else {
    // Relative to the magnitude of what was summed (cancellation), for sums and means.
    std::vector<double> scale = reference(R == red::prod ? red::prod : red::sum, x.data(), d, mask);
    if (R == red::sum || R == red::mean) {
      std::vector<double> absx(d.size());
      for (std::size_t i = 0; i < d.size(); ++i) absx[i] = std::fabs(double(x.data()[i]));
      scale = reference(red::sum, absx.data(), d, mask);
    }
    std::size_t nr = out_size ? d.size() / std::max<std::size_t>(out_size, 1) : 0;
    double atol = 0;
    for (auto s : scale) atol = std::max(atol, std::fabs(s));
    if (R == red::mean && nr) atol /= double(nr);
    const double eps = std::is_same_v<V, float> ? 1.0 : 1e-9;
    check_close(got.data(), want, rtol * eps, (R == red::max || R == red::min) ? 0.0 : 1e-6 * eps * atol, "values");
  }
}

}  // namespace loom_test
