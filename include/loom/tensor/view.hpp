// loom/tensor/view.hpp: non-owning views of user memory.
//
// view(ptr, shape<dyn, 1024>{n}) sees n x 1024 row-major elements at ptr; view(ptr, shape, strides)
// sees any strides (in elements, negative and zero allowed). A view of const data is read-only:
// assigning to it does not compile. Views are expressions like tensors; assigning an expression
// to a view writes into the user's memory.
#pragma once

#include <array>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <string>
#include <type_traits>
#include <utility>

#include "loom/core/config.hpp"
#include "loom/core/error.hpp"
#include "loom/core/shape.hpp"
#include "loom/expr/fwd.hpp"
#include "loom/tensor/tensor.hpp"

namespace loom {

struct contiguous_layout {};
struct strided_layout {};

namespace detail {
template <class T>
void check_view_pointer(const T* p, std::size_t size, const std::string& shape) {
  if (size == 0) return;
  if (p == nullptr) throw error("loom: a view of shape " + shape + " was given a null pointer");
  if (reinterpret_cast<std::uintptr_t>(p) % alignof(T) != 0)
    throw error("loom: a view of shape " + shape + " was given a pointer not aligned to its element type (" +
                std::to_string(alignof(T)) + " bytes)");
}

/// Throws shape_error where the extents of a view multiply to more elements than a 64-bit index
/// counts (the product would wrap, and the view would pass for a small or empty one).
inline void check_view_extents(const dims& d) {
  std::size_t n = 1;
  bool empty = false, over = false;
  for (std::size_t k = 0; k < d.rank; ++k) {
    empty = empty || d.e[k] == 0;
    if (d.e[k] != 0 && n > std::size_t(std::numeric_limits<index_t>::max()) / d.e[k]) over = true;
    else n *= d.e[k];
  }
  if (over && !empty)
    throw shape_error("loom: a view of shape " + to_string(d) + " has more elements than a 64-bit index counts");
}

/// The checks of a view's construction: extents that count, and a usable pointer.
template <class T>
void check_view(const T* p, const dims& d) {
  check_view_extents(d);
  check_view_pointer(p, d.size(), to_string(d));
}

/// Throws loom::error where a destination's strides may map two of its indices to one element: a
/// stride of 0 on an axis of more than one element, or axes whose strides interleave. Such a view
/// would receive several values per element, in an order that depends on threads and SIMD (and
/// `+=` would add to a partial result), so it is refused before anything is written. The test
/// is the sufficient one (sorted by |stride|, each axis steps past all that the smaller ones
/// reach); it also refuses the rare interleaved layouts that happen to be one-to-one.
inline void check_destination_strides(const dims& d, const index_t* strides) {
  std::array<std::size_t, max_rank> ax{};
  std::size_t n = 0;
  for (std::size_t k = 0; k < d.rank; ++k) {
    if (d.e[k] == 0) return;  // nothing is written
    if (d.e[k] > 1) ax[n++] = k;
  }
  for (std::size_t i = 1; i < n; ++i)  // by |stride|: an insertion sort of at most 8 axes
    for (std::size_t j = i; j > 0 && std::abs(strides[ax[j]]) < std::abs(strides[ax[j - 1]]); --j)
      std::swap(ax[j], ax[j - 1]);
  index_t reach = 0;  // the largest distance the axes so far span
  for (std::size_t i = 0; i < n; ++i) {
    const index_t s = std::abs(strides[ax[i]]);
    if (s <= reach) {
      std::string st = "[";
      for (std::size_t k = 0; k < d.rank; ++k) st += (k ? ", " : "") + std::to_string(strides[k]);
      throw error("loom: cannot assign to a view of shape " + to_string(d) + " with strides " + st +
                  "]: its strides reach some element twice (axis " + std::to_string(ax[i]) +
                  "), so it cannot be a destination; assign to a tensor and copy");
    }
    reach += s * (index_t(d.e[ax[i]]) - 1);
  }
}

/// check_destination_strides for a destination array (nothing to check for tensors and
/// row-major views).
template <class D>
void check_destination(const D& dst) {
  if constexpr (requires { typename D::layout_type; }) {
    if constexpr (std::is_same_v<typename D::layout_type, strided_layout>) {
      const auto st = dst.strides();
      check_destination_strides(dst.shape().to_dims(), st.data());
    }
  }
}

/// Raised where code assigns through a view of const data.
template <class ViewOfConstData>
struct cannot_write_through_a_view_of_const_data {
  static_assert(!std::is_same_v<ViewOfConstData, ViewOfConstData>,
                "loom: cannot write through a view of const data (tensor_view<const T, ...> is read-only)");
  static constexpr bool value = false;
};
template <class V, bool Const>
struct writable_check {
  static constexpr bool value = true;
};
template <class V>
struct writable_check<V, true> {
  static constexpr bool value = cannot_write_through_a_view_of_const_data<V>::value;
};
}  // namespace detail

/// A non-owning view: T may be const (read-only view); Layout is contiguous_layout (row-major)
/// or strided_layout (explicit strides in elements).
template <class T, shape_type Shape, class Layout>
class tensor_view : public assignable<tensor_view<T, Shape, Layout>> {
  static constexpr bool is_strided = std::is_same_v<Layout, strided_layout>;
  struct no_strides {};

 public:
  static constexpr bool is_loom_array = true;
  static constexpr memory_space space = memory_space::host;
  using value_type = std::remove_const_t<T>;
  using element_type = T;
  using shape_type = Shape;
  using layout_type = Layout;
  static constexpr std::size_t rank = Shape::rank;
  static constexpr bool read_only = std::is_const_v<T>;
  static_assert(::loom::element_type<value_type>, "loom: views hold bool, int32_t, int64_t, float or double");

  tensor_view() = default;
  /// A row-major view of shape s at p.
  tensor_view(T* p, const Shape& s)
    requires(!is_strided)
      : p_(p), shape_(s) {
    detail::check_view(p, s.to_dims());
  }
  /// A view of shape s at p with the given strides (in elements).
  tensor_view(T* p, const Shape& s, const std::array<index_t, rank>& strides)
    requires(is_strided)
      : p_(p), shape_(s), strides_(strides) {
    detail::check_view(p, s.to_dims());
  }
  /// A view of const data from a view of mutable data, or a strided view from a contiguous one.
  template <class U, class L>
    requires(std::is_same_v<std::remove_const_t<U>, value_type> && (std::is_const_v<T> || !std::is_const_v<U>) &&
             (is_strided || std::is_same_v<L, contiguous_layout>))
  tensor_view(const tensor_view<U, Shape, L>& o)  // NOLINT: implicit, like T* to const T*
      : p_(o.data()), shape_(o.shape()) {
    if constexpr (is_strided) strides_ = o.strides();
  }
  tensor_view(const tensor_view&) = default;

  /// Writes the data of another view (views are not re-seated by assignment).
  tensor_view& operator=(const tensor_view& o) { return assign_from(o); }
  /// Evaluates an expression into the viewed memory, as one fused kernel.
  template <class E>
    requires(operand<E> && !std::is_same_v<std::remove_cvref_t<E>, tensor_view>)
  tensor_view& operator=(const E& e) {
    return assign_from(e);
  }

  const Shape& shape() const noexcept { return shape_; }
  std::size_t extent(std::size_t k) const noexcept { return shape_.extent(k); }
  std::size_t size() const noexcept { return shape_.size(); }
  T* data() const noexcept { return p_; }
  std::array<index_t, rank> strides() const {
    if constexpr (is_strided)
      return strides_;
    else
      return detail::row_major_strides(shape_);
  }
  index_t stride(std::size_t k) const { return strides()[k]; }

  template <std::integral... I>
    requires(sizeof...(I) == rank)
  T& operator()(I... idx) const noexcept {
    return p_[offset(idx...)];
  }

 private:
  template <class E>
  tensor_view& assign_from(const E& e) {
    this->template apply<assign_op::set>(e);
    return *this;
  }
  template <class... I>
  index_t offset(I... idx) const noexcept {
    auto st = strides();
    index_t off = 0;
    std::size_t k = 0;
    ((off += static_cast<index_t>(idx) * st[k++]), ...);
    return off;
  }

  T* p_ = nullptr;
  Shape shape_{};
  [[no_unique_address]] std::conditional_t<is_strided, std::array<index_t, rank>, no_strides> strides_{};
};

/// A row-major view of user memory: view(ptr, shape<dyn, 1024>{n}). A pointer to const gives a
/// read-only view. Throws loom::error for a null or misaligned pointer with a non-empty shape.
template <class T, std::size_t... Es>
tensor_view<T, shape<Es...>> view(T* p, const shape<Es...>& s) {
  return tensor_view<T, shape<Es...>>(p, s);
}

/// A strided view: view(ptr, shape<3, 4>{}, {1, 3}) sees a column-major 3 x 4 matrix.
template <class T, std::size_t... Es>
tensor_view<T, shape<Es...>, strided_layout> view(T* p, const shape<Es...>& s,
                                                  const std::array<index_t, sizeof...(Es)>& strides) {
  return tensor_view<T, shape<Es...>, strided_layout>(p, s, strides);
}

/// A view of a tensor's data.
template <element_type T, shape_type Shape>
tensor_view<T, Shape> view(tensor<T, Shape>& t) {
  return t.view();
}
template <element_type T, shape_type Shape>
tensor_view<const T, Shape> view(const tensor<T, Shape>& t) {
  return t.view();
}

}  // namespace loom
