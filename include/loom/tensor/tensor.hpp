// loom/tensor/tensor.hpp: the owning host tensor.
//
// tensor<float, shape<4096, 1024>> owns 64-byte aligned, row-major storage. Copying copies the
// data. A tensor never changes shape after construction: assigning an expression of another
// shape throws shape_error and writes nothing (an expression that broadcasts into the
// destination is fine, as in NumPy's o[...] = e).
#pragma once

#include <array>
#include <cstring>
#include <type_traits>
#include <utility>

#include "loom/core/config.hpp"
#include "loom/core/dtype.hpp"
#include "loom/core/error.hpp"
#include "loom/core/shape.hpp"
#include "loom/expr/fwd.hpp"
#include "loom/tensor/storage.hpp"

namespace loom {

namespace detail {
/// Row-major strides (in elements) of a shape.
template <class Shape>
std::array<index_t, Shape::rank> row_major_strides(const Shape& s) {
  std::array<index_t, Shape::rank> st{};
  index_t acc = 1;
  for (std::size_t k = Shape::rank; k-- > 0;) {
    st[k] = acc;
    acc *= static_cast<index_t>(s.extent(k));
  }
  return st;
}

/// The shape a tensor of static shape Shape takes from an expression of shape `from`.
template <class Shape>
Shape shape_for_construction(const dims& from) {
  if constexpr (Shape::is_static) {
    check_assignable(from, Shape{}.to_dims());
    return Shape{};
  } else {
    return Shape::from_dims(from);
  }
}
}  // namespace detail

/// Compound assignments shared by tensors and writable views (Derived::operator= is their own).
template <class Derived>
class assignable {
 public:
  template <class E>
    requires operand<E>
  Derived& operator+=(const E& e) {
    return apply<assign_op::add>(e);
  }
  template <class E>
    requires operand<E>
  Derived& operator-=(const E& e) {
    return apply<assign_op::sub>(e);
  }
  template <class E>
    requires operand<E>
  Derived& operator*=(const E& e) {
    return apply<assign_op::mul>(e);
  }
  template <class E>
    requires operand<E>
  Derived& operator/=(const E& e) {
    return apply<assign_op::div>(e);
  }

 protected:
  template <assign_op Op, class E>
  Derived& apply(const E& e);
};

/// An owning host tensor: tensor<float, shape<dyn, 1024>> y(n);
template <element_type T, shape_type Shape>
class tensor : public assignable<tensor<T, Shape>> {
 public:
  static constexpr bool is_loom_array = true;
  static constexpr memory_space space = memory_space::host;
  using value_type = T;
  using shape_type = Shape;
  static constexpr std::size_t rank = Shape::rank;
  static constexpr bool read_only = false;

  /// A tensor of zeros; dyn extents (if any) are 0.
  tensor() : tensor(Shape{}) {}

  /// A tensor of zeros with the given dyn extents, in order: tensor<float, shape<dyn, 1024>> y(n).
  template <std::integral... I>
    requires(sizeof...(I) == Shape::num_dyn && Shape::num_dyn > 0)
  explicit tensor(I... dyn_extents) : tensor(Shape{dyn_extents...}) {}

  /// A tensor of zeros of shape s.
  explicit tensor(const Shape& s) : shape_(s), buf_(allocate(s)) {
    if (buf_.size()) std::memset(static_cast<void*>(buf_.data()), 0, buf_.size() * sizeof(T));
  }

  /// Evaluates an expression into a new tensor (its shape is the expression's).
  template <class E>
    requires(expression<E> && !std::is_same_v<std::remove_cvref_t<E>, tensor>)
  tensor(const E& e)  // NOLINT: implicit, so that `tensor<float, S> o = 2.f * x;` reads as math
      : shape_(detail::shape_for_construction<Shape>(e.shape().to_dims())), buf_(allocate(shape_)) {
    static_assert(assignment_shape_check<shape_type_of<E>, Shape>::value);
    detail::assign<assign_op::set>(*this, e);
  }

  tensor(const tensor& o) : shape_(o.shape_), buf_(o.buf_.size()) {
    if (buf_.size()) std::memcpy(static_cast<void*>(buf_.data()), o.buf_.data(), buf_.size() * sizeof(T));
  }
  tensor(tensor&& o) noexcept : shape_(o.shape_), buf_(std::move(o.buf_)) { o.shape_ = Shape{}; }

  /// Copies the data of a tensor of the same shape; throws shape_error otherwise.
  tensor& operator=(const tensor& o) {
    if (this == &o) return *this;
    if (!(shape_ == o.shape_))
      throw shape_error("loom: cannot assign a tensor of shape " + to_string(o.shape_) + " to a tensor of shape " +
                        to_string(shape_));
    if (buf_.size()) std::memcpy(static_cast<void*>(buf_.data()), o.buf_.data(), buf_.size() * sizeof(T));
    return *this;
  }
  /// Takes the storage of a tensor of the same shape; throws shape_error otherwise (o is untouched).
  tensor& operator=(tensor&& o) {
    if (this == &o) return *this;
    if (!(shape_ == o.shape_))
      throw shape_error("loom: cannot assign a tensor of shape " + to_string(o.shape_) + " to a tensor of shape " +
                        to_string(shape_));
    buf_.swap(o.buf_);
    return *this;
  }
  /// Evaluates an expression into this tensor, as one fused kernel.
  template <class E>
    requires(operand<E> && !std::is_same_v<std::remove_cvref_t<E>, tensor>)
  tensor& operator=(const E& e) {
    return this->template apply<assign_op::set>(e);
  }

  const Shape& shape() const noexcept { return shape_; }
  std::size_t extent(std::size_t k) const noexcept { return shape_.extent(k); }
  std::size_t size() const noexcept { return buf_.size(); }
  T* data() noexcept { return buf_.data(); }
  const T* data() const noexcept { return buf_.data(); }
  /// Row-major strides in elements.
  std::array<index_t, rank> strides() const { return detail::row_major_strides(shape_); }
  index_t stride(std::size_t k) const {
    index_t s = 1;
    for (std::size_t j = k + 1; j < rank; ++j) s *= static_cast<index_t>(shape_.extent(j));
    return s;
  }

  /// Element access (unchecked), for tests and glue: x(i, j) = 1.f.
  template <std::integral... I>
    requires(sizeof...(I) == rank)
  T& operator()(I... idx) noexcept {
    return buf_.data()[offset(idx...)];
  }
  template <std::integral... I>
    requires(sizeof...(I) == rank)
  const T& operator()(I... idx) const noexcept {
    return buf_.data()[offset(idx...)];
  }
  /// Element access that throws shape_error on an index out of range.
  template <std::integral... I>
    requires(sizeof...(I) == rank)
  T& at(I... idx) {
    check_index(idx...);
    return (*this)(idx...);
  }

  /// A view of this tensor's data.
  tensor_view<T, Shape> view() noexcept { return tensor_view<T, Shape>(data(), shape_); }
  tensor_view<const T, Shape> view() const noexcept { return tensor_view<const T, Shape>(data(), shape_); }

 private:
  static detail::aligned_buffer<T> allocate(const Shape& s) {
    auto d = s.to_dims();
    return detail::aligned_buffer<T>(detail::checked_size(d.e.data(), d.rank, sizeof(T)));
  }
  template <class... I>
  index_t offset(I... idx) const noexcept {
    index_t off = 0;
    std::size_t k = 0;
    ((off = off * static_cast<index_t>(shape_.extent(k++)) + static_cast<index_t>(idx)), ...);
    return off;
  }
  template <class... I>
  void check_index(I... idx) const {
    std::size_t k = 0;
    bool ok = true;
    ((ok = ok && static_cast<std::size_t>(idx) < shape_.extent(k++)), ...);
    if (!ok) throw shape_error("loom: index out of range for a tensor of shape " + to_string(shape_));
  }

  Shape shape_;
  detail::aligned_buffer<T> buf_;
};

template <class Derived>
template <assign_op Op, class E>
Derived& assignable<Derived>::apply(const E& e) {
  detail::assign<Op>(static_cast<Derived&>(*this), e);
  return static_cast<Derived&>(*this);
}

}  // namespace loom
