// loom/core/shape.hpp: static and dynamic extents.
//
// shape<4096, 1024> is fully static and stores nothing; shape<dyn, 1024> stores one extent.
// One code path serves both: extent(k) is a constant expression where the extent is static.
#pragma once

#include <array>
#include <concepts>
#include <cstddef>
#include <limits>
#include <string>
#include <type_traits>
#include <utility>

#include "loom/core/error.hpp"

namespace loom {

/// Marks an extent known only at run time: shape<dyn, 1024>.
inline constexpr std::size_t dyn = std::numeric_limits<std::size_t>::max();

/// The largest rank loom supports.
inline constexpr std::size_t max_rank = 8;

/// A run-time shape of any rank up to max_rank: what the loop nests and error messages use.
struct dims {
  std::size_t rank = 0;
  std::array<std::size_t, max_rank> e{};

  constexpr std::size_t operator[](std::size_t k) const { return e[k]; }
  constexpr std::size_t& operator[](std::size_t k) { return e[k]; }
  constexpr std::size_t size() const {
    std::size_t n = 1;
    for (std::size_t k = 0; k < rank; ++k) n *= e[k];
    return n;
  }
  friend constexpr bool operator==(const dims& a, const dims& b) {
    if (a.rank != b.rank) return false;
    for (std::size_t k = 0; k < a.rank; ++k)
      if (a.e[k] != b.e[k]) return false;
    return true;
  }
};

/// "[4096, 1024]"; a rank-0 shape is "[]".
inline std::string to_string(const dims& d) {
  std::string s = "[";
  for (std::size_t k = 0; k < d.rank; ++k) {
    if (k) s += ", ";
    s += std::to_string(d.e[k]);
  }
  return s + "]";
}

namespace detail {
template <std::size_t... Es>
constexpr std::size_t count_dyn() {
  return ((Es == dyn ? 1u : 0u) + ... + 0u);
}

// The stored run-time extents of a shape; empty (and free, by the empty base optimisation) when
// every extent is static.
template <std::size_t N>
struct dyn_storage {
  std::array<std::size_t, N> dyn_extents{};
  constexpr std::size_t get_dyn(std::size_t j) const { return dyn_extents[j]; }
  constexpr void set_dyn(std::size_t j, std::size_t v) { dyn_extents[j] = v; }
};
template <>
struct dyn_storage<0> {
  constexpr std::size_t get_dyn(std::size_t) const { return 0; }
  constexpr void set_dyn(std::size_t, std::size_t) {}
};
}  // namespace detail

/// A shape: a list of extents, each static or dyn. Only the dyn extents are stored, in order.
///   shape<4096, 1024>{}            4096 x 1024, size 0 bytes of state
///   shape<dyn, 1024>{n}            n x 1024
///   shape<>{}                      rank 0, one element
template <std::size_t... Es>
struct shape : detail::dyn_storage<detail::count_dyn<Es...>()> {
  static constexpr std::size_t rank = sizeof...(Es);
  static_assert(rank <= max_rank, "loom: shapes have at most 8 axes");
  static constexpr std::array<std::size_t, rank> static_extents{Es...};
  static constexpr std::size_t num_dyn = detail::count_dyn<Es...>();
  static constexpr bool is_static = num_dyn == 0;

  constexpr shape() = default;

  /// The run-time extents, one per dyn axis, in order: shape<dyn, 8, dyn>{3, 5} is 3 x 8 x 5.
  template <std::integral... I>
    requires(sizeof...(I) == num_dyn && num_dyn > 0)
  constexpr explicit shape(I... ds) {
    std::size_t j = 0;
    (this->set_dyn(j++, static_cast<std::size_t>(ds)), ...);
  }

  /// The extent of axis k.
  constexpr std::size_t extent(std::size_t k) const {
    std::size_t d = 0;
    for (std::size_t i = 0; i < rank; ++i) {
      if (static_extents[i] == dyn) {
        if (i == k) return this->get_dyn(d);
        ++d;
      } else if (i == k) {
        return static_extents[i];
      }
    }
    return 1;
  }
  /// The number of elements.
  constexpr std::size_t size() const {
    std::size_t n = 1;
    for (std::size_t k = 0; k < rank; ++k) n *= extent(k);
    return n;
  }
  constexpr dims to_dims() const {
    dims d;
    d.rank = rank;
    for (std::size_t k = 0; k < rank; ++k) d.e[k] = extent(k);
    return d;
  }
  /// Builds this shape from run-time extents; throws shape_error where a static extent differs.
  static shape from_dims(const dims& d) {
    if (d.rank != rank) throw shape_error("loom: a shape of rank " + std::to_string(rank) + " cannot hold " + to_string(d));
    shape s;
    std::size_t j = 0;
    for (std::size_t k = 0; k < rank; ++k) {
      if (static_extents[k] == dyn) {
        s.set_dyn(j++, d.e[k]);  // NOLINT
      } else if (static_extents[k] != d.e[k]) {
        throw shape_error("loom: shape " + to_string(d) + " does not fit " + static_string() + " (axis " +
                          std::to_string(k) + ")");
      }
    }
    return s;
  }
  /// The static form: "[dyn, 1024]".
  static std::string static_string() {
    std::string s = "[";
    for (std::size_t k = 0; k < rank; ++k) {
      if (k) s += ", ";
      s += static_extents[k] == dyn ? std::string("dyn") : std::to_string(static_extents[k]);
    }
    return s + "]";
  }

  template <std::size_t... Fs>
  friend constexpr bool operator==(const shape& a, const shape<Fs...>& b) {
    if constexpr (sizeof...(Fs) != rank) {
      return false;
    } else {
      for (std::size_t k = 0; k < rank; ++k)
        if (a.extent(k) != b.extent(k)) return false;
      return true;
    }
  }
};

template <class T>
struct is_shape : std::false_type {};
template <std::size_t... Es>
struct is_shape<shape<Es...>> : std::true_type {};
/// shape<...> itself.
template <class T>
concept shape_type = is_shape<std::remove_cvref_t<T>>::value;

template <std::size_t... Es>
std::string to_string(const shape<Es...>& s) {
  return to_string(s.to_dims());
}

// ---------------------------------------------------------------------------------------------
// Building shapes from lists of static extents
// ---------------------------------------------------------------------------------------------

/// shape_from<std::array{4, 5}> : a shape type from a constexpr array of extents.
template <auto Arr, class Seq = std::make_index_sequence<Arr.size()>>
struct shape_from_array;
template <auto Arr, std::size_t... I>
struct shape_from_array<Arr, std::index_sequence<I...>> {
  using type = shape<Arr[I]...>;
};
template <auto Arr>
using shape_from_array_t = typename shape_from_array<Arr>::type;

// ---------------------------------------------------------------------------------------------
// Broadcasting (NumPy rules: align right, a 1 stretches, missing axes are 1)
// ---------------------------------------------------------------------------------------------

namespace detail {

constexpr std::size_t broadcast_extent(std::size_t a, std::size_t b) {
  if (a == b) return a;
  if (a == 1) return b;
  if (b == 1) return a;
  if (a == dyn) return b;
  if (b == dyn) return a;
  return a;  // mismatch: reported by the check, keep going with something well-formed
}
constexpr bool broadcast_compatible(std::size_t a, std::size_t b) {
  return a == b || a == 1 || b == 1 || a == dyn || b == dyn;
}

template <class A, class B>
struct broadcast_static {
  static constexpr std::size_t rank = A::rank > B::rank ? A::rank : B::rank;
  static constexpr std::size_t ext_a(std::size_t k) {  // axis k of the result, as seen from A
    return k + A::rank < rank ? 1 : A::static_extents[k + A::rank - rank];
  }
  static constexpr std::size_t ext_b(std::size_t k) {
    return k + B::rank < rank ? 1 : B::static_extents[k + B::rank - rank];
  }
  static constexpr std::array<std::size_t, rank> extents = [] {
    std::array<std::size_t, rank> r{};
    for (std::size_t k = 0; k < rank; ++k) r[k] = broadcast_extent(ext_a(k), ext_b(k));
    return r;
  }();
  // The first axis (of the result) whose static extents conflict, or rank if none does.
  static constexpr std::size_t bad_axis = [] {
    for (std::size_t k = 0; k < rank; ++k)
      if (!broadcast_compatible(ext_a(k), ext_b(k))) return k;
    return rank;
  }();
  using type = shape_from_array_t<extents>;
};

}  // namespace detail

/// The static shape of broadcasting A with B: broadcast_shape_t<shape<4, 1>, shape<3>> is shape<4, 3>.
template <class A, class B>
using broadcast_shape_t = typename detail::broadcast_static<A, B>::type;

/// Raised where two static shapes cannot be broadcast together. The compiler prints this template's
/// arguments beside the message: the two shapes, the axis of the result, and both extents.
template <class ShapeA, class ShapeB, std::size_t Axis, std::size_t ExtentA, std::size_t ExtentB>
struct static_extents_cannot_broadcast {
  static_assert(ExtentA == ExtentB,
                "loom: shapes cannot be broadcast together: see ShapeA, ShapeB, Axis, ExtentA and ExtentB in "
                "'static_extents_cannot_broadcast<ShapeA, ShapeB, Axis, ExtentA, ExtentB>'");
  static constexpr bool value = true;
};

namespace detail {
template <class A, class B, bool Ok = (broadcast_static<A, B>::bad_axis == broadcast_static<A, B>::rank)>
struct broadcast_check {
  static constexpr bool value = true;
};
template <class A, class B>
struct broadcast_check<A, B, false> {
  using bs = broadcast_static<A, B>;
  static constexpr bool value = static_extents_cannot_broadcast<A, B, bs::bad_axis, bs::ext_a(bs::bad_axis),
                                                                bs::ext_b(bs::bad_axis)>::value;
};
}  // namespace detail

/// True where A and B broadcast; a static mismatch stops compilation with a message naming both.
template <class A, class B>
inline constexpr bool check_broadcast_v = detail::broadcast_check<A, B>::value;

/// Broadcasts two run-time shapes; throws shape_error naming both where they do not fit.
inline dims broadcast_dims(const dims& a, const dims& b) {
  dims r;
  r.rank = a.rank > b.rank ? a.rank : b.rank;
  for (std::size_t k = 0; k < r.rank; ++k) {
    std::size_t ea = k + a.rank < r.rank ? 1 : a.e[k + a.rank - r.rank];
    std::size_t eb = k + b.rank < r.rank ? 1 : b.e[k + b.rank - r.rank];
    if (ea != eb && ea != 1 && eb != 1)
      throw shape_error("loom: shapes " + to_string(a) + " and " + to_string(b) + " cannot be broadcast together (axis " +
                        std::to_string(k) + " of the result: " + std::to_string(ea) + " vs " + std::to_string(eb) + ")");
    r.e[k] = ea == 1 ? eb : ea;
  }
  return r;
}

/// True where a value of shape `from` can be broadcast into shape `to` without changing `to`.
inline bool broadcasts_to(const dims& from, const dims& to) {
  if (from.rank > to.rank) return false;
  for (std::size_t k = 0; k < from.rank; ++k) {
    std::size_t ef = from.e[k], et = to.e[k + to.rank - from.rank];
    if (ef != et && ef != 1) return false;
  }
  return true;
}

/// Checks, at compile time where both are static, that a value of shape From can be assigned into To.
template <class From, class To>
struct static_assignable {
  static constexpr bool value = [] {
    if (From::rank > To::rank) return false;
    for (std::size_t k = 0; k < From::rank; ++k) {
      std::size_t f = From::static_extents[k], t = To::static_extents[k + To::rank - From::rank];
      if (!(f == t || f == 1 || f == dyn || t == dyn)) return false;
    }
    return true;
  }();
};

/// Raised where an expression of static shape From cannot be assigned into a destination of shape To.
template <class From, class To, bool Ok = static_assignable<From, To>::value>
struct assignment_shape_check {
  static constexpr bool value = true;
};
template <class FromShape, class ToShape>
struct assignment_shape_check<FromShape, ToShape, false> {
  static_assert(static_assignable<FromShape, ToShape>::value,
                "loom: the expression's shape does not fit the destination: see FromShape and ToShape in "
                "'assignment_shape_check<FromShape, ToShape>'");
  static constexpr bool value = false;
};

/// Throws shape_error unless `from` broadcasts into `to` (the destination never changes shape).
inline void check_assignable(const dims& from, const dims& to) {
  if (!broadcasts_to(from, to))
    throw shape_error("loom: cannot assign an expression of shape " + to_string(from) + " to a destination of shape " +
                      to_string(to));
}

}  // namespace loom
