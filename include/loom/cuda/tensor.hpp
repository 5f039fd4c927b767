// loom/cuda/tensor.hpp: the device tensor, device views and device pointers.
//
//   cuda::tensor<float, shape<dyn, 1024>> dx(n), dy(n);   // device memory, zeroed
//   cuda::copy(dx, y);                                    // host -> device
//   dy = exp(dx) * 2.f;                                   // one generated kernel
//   auto v = cuda::view(raw_device_ptr, shape<dyn>{n});   // a user's device memory
//
// cuda::tensor is the device twin of loom::tensor: same constructors, same shapes, row-major,
// never resized by assignment. Its memory comes from the caching, stream-ordered allocator
// (runtime/memory.hpp) on loom's default stream. It allocates only where a device is there: a
// tensor constructed without a GPU holds no memory and does not throw, so code that builds
// expressions, prints or compiles their kernels runs anywhere; anything that needs the memory
// (an assignment, a copy, eval) throws loom::cuda_error saying why CUDA is unavailable.
//
// Device arrays are expressions like host arrays (space = memory_space::device); mixing the two
// in one expression does not compile. data() returns a device_ptr, not a T*, so device memory
// cannot be dereferenced on the host by accident; .get() gives the raw pointer for other CUDA code.
//
// Streams: a tensor is created (and zeroed) on loom's default stream and its memory is given back
// on that stream. Work on another stream must be ordered after the creation (e.g. by
// cuda::synchronize()) and before the destruction, as with any stream-ordered allocator.
#pragma once

#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>

#include "loom/core/config.hpp"
#include "loom/core/dtype.hpp"
#include "loom/core/error.hpp"
#include "loom/core/shape.hpp"
#include "loom/cuda/options.hpp"
#include "loom/cuda/runtime/device.hpp"
#include "loom/cuda/runtime/memory.hpp"
#include "loom/cuda/runtime/stream.hpp"
#include "loom/expr/fwd.hpp"
#include "loom/tensor/storage.hpp"
#include "loom/tensor/tensor.hpp"
#include "loom/tensor/view.hpp"

namespace loom::cuda {

/// A pointer to device memory: not dereferenceable on the host; get() is the raw pointer.
template <class T>
class device_ptr {
 public:
  using element_type = T;

  constexpr device_ptr() noexcept = default;
  constexpr explicit device_ptr(T* p) noexcept : p_(p) {}
  /// device_ptr<float> converts to device_ptr<const float>, like float* to const float*.
  template <class U>
    requires(!std::is_same_v<U, T> && std::is_convertible_v<U*, T*>)
  constexpr device_ptr(device_ptr<U> o) noexcept : p_(o.get()) {}  // NOLINT: implicit, as for T*

  /// The raw device pointer, for other CUDA code (kernels, cuBLAS, PyTorch's from_blob, ...).
  [[nodiscard]] constexpr T* get() const noexcept { return p_; }
  constexpr explicit operator bool() const noexcept { return p_ != nullptr; }
  /// For printing and comparing addresses (explain() names leaves by address).
  constexpr explicit operator const void*() const noexcept { return p_; }
  [[nodiscard]] std::uintptr_t address() const noexcept { return reinterpret_cast<std::uintptr_t>(p_); }

  constexpr device_ptr operator+(index_t i) const noexcept { return device_ptr(p_ + i); }
  constexpr device_ptr operator-(index_t i) const noexcept { return device_ptr(p_ - i); }
  friend constexpr bool operator==(device_ptr a, device_ptr b) noexcept { return a.p_ == b.p_; }

 private:
  T* p_ = nullptr;
};

namespace detail {

/// Throws cuda_error saying why CUDA is unavailable, unless it is available.
inline void require_device() {
  if (!available()) {
    const std::string& why = unavailable_reason();
    throw cuda_error(why.empty() ? std::string("loom: CUDA is not available") : why);
  }
}

/// The assignment of an expression (or scalar) into a device array; defined in cuda/assign.hpp.
/// `s`: the stream, or nullptr for loom's default stream. `o`: options, or nullptr for the defaults.
template <assign_op Op, class Dst, class Src>
void assign(Dst& dst, const Src& src, const stream_ref* s, const options* o);

/// Raised where code assigns through a device view of const data.
template <class ViewOfConstData>
struct cannot_write_through_a_device_view_of_const_data {
  static_assert(!std::is_same_v<ViewOfConstData, ViewOfConstData>,
                "loom: cannot write through a view of const device data (cuda::tensor_view<const T, ...> is read-only)");
  static constexpr bool value = false;
};

/// True where the strides of an array of shape s are row-major on every axis that moves.
template <class Shape, class Strides>
bool is_row_major(const Shape& s, const Strides& strides) {
  index_t expect = 1;
  for (std::size_t k = Shape::rank; k-- > 0;) {
    const auto e = static_cast<index_t>(s.extent(k));
    if (e != 1 && strides[k] != expect) return false;
    expect *= e;
  }
  return true;
}

}  // namespace detail

/// Assignment operators shared by device tensors and writable device views.
template <class Derived>
class device_assignable {
 public:
  template <class E>
    requires operand<E>
  Derived& operator+=(const E& e) {
    return apply<assign_op::add>(e, nullptr, nullptr);
  }
  template <class E>
    requires operand<E>
  Derived& operator-=(const E& e) {
    return apply<assign_op::sub>(e, nullptr, nullptr);
  }
  template <class E>
    requires operand<E>
  Derived& operator*=(const E& e) {
    return apply<assign_op::mul>(e, nullptr, nullptr);
  }
  template <class E>
    requires operand<E>
  Derived& operator/=(const E& e) {
    return apply<assign_op::div>(e, nullptr, nullptr);
  }
  /// Evaluates e into this array as one kernel queued on stream s: dy.assign(exp(dx), stream).
  template <class E>
    requires operand<E>
  Derived& assign(const E& e, stream_ref s) {
    return apply<assign_op::set>(e, &s, nullptr);
  }
  /// assign() with options: dy.assign(e, stream, cuda::options{.bake_extents = true}).
  template <class E>
    requires operand<E>
  Derived& assign(const E& e, stream_ref s, const options& o) {
    return apply<assign_op::set>(e, &s, &o);
  }

 protected:
  template <assign_op Op, class E>
  Derived& apply(const E& e, const stream_ref* s, const options* o) {
    detail::assign<Op>(static_cast<Derived&>(*this), e, s, o);
    return static_cast<Derived&>(*this);
  }
};

/// An owning device tensor: cuda::tensor<float, shape<dyn, 1024>> dx(n);
template <element_type T, shape_type Shape>
class tensor : public device_assignable<tensor<T, Shape>> {
 public:
  static constexpr bool is_loom_array = true;
  static constexpr memory_space space = memory_space::device;
  using value_type = T;
  using shape_type = Shape;
  static constexpr std::size_t rank = Shape::rank;
  static constexpr bool read_only = false;

  /// A tensor of zeros; dyn extents (if any) are 0.
  tensor() : tensor(Shape{}) {}

  /// A tensor of zeros with the given dyn extents, in order: cuda::tensor<float, shape<dyn, 1024>> dx(n).
  template <std::integral... I>
    requires(sizeof...(I) == Shape::num_dyn && Shape::num_dyn > 0)
  explicit tensor(I... dyn_extents) : tensor(Shape{dyn_extents...}) {}

  /// A tensor of zeros of shape s, on loom's default stream. Without a device: no memory, no throw.
  explicit tensor(const Shape& s) : shape_(s) {
    const std::size_t bytes = byte_size(s);
    if (bytes != 0 && available()) {
      const stream_ref st = default_stream();
      buf_ = cuda::detail::device_buffer(bytes, st);
      runtime::fill_bytes_async(buf_.address(), 0, bytes, st);
    }
  }

  /// A tensor of zeros of shape s whose memory is ordered on stream st. Throws without a device.
  tensor(const Shape& s, stream_ref st) : shape_(s) {
    detail::require_device();
    const std::size_t bytes = byte_size(s);
    if (bytes != 0) {
      buf_ = cuda::detail::device_buffer(bytes, st);
      runtime::fill_bytes_async(buf_.address(), 0, bytes, st);
    }
  }

  /// Evaluates an expression of device arrays into a new tensor (its shape is the expression's).
  template <class E>
    requires(expression<E> && !std::is_same_v<std::remove_cvref_t<E>, tensor>)
  tensor(const E& e)  // NOLINT: implicit, as loom::tensor's: cuda::tensor<float, S> o = exp(dx);
      : shape_(loom::detail::shape_for_construction<Shape>(e.shape().to_dims())) {
    static_assert(assignment_shape_check<shape_type_of<E>, Shape>::value);
    detail::require_device();
    const std::size_t bytes = byte_size(shape_);
    if (bytes != 0) buf_ = cuda::detail::device_buffer(bytes, default_stream());
    detail::assign<assign_op::set>(*this, e, nullptr, nullptr);
  }

  /// A copy of the data, on loom's default stream.
  tensor(const tensor& o) : shape_(o.shape_) {
    if (!o.buf_.empty()) {
      const stream_ref st = default_stream();
      buf_ = cuda::detail::device_buffer(o.buf_.size(), st);
      runtime::copy_on_device_async(buf_.address(), o.buf_.address(), o.buf_.size(), st);
    }
  }
  tensor(tensor&& o) noexcept : shape_(o.shape_), buf_(std::move(o.buf_)) { o.shape_ = Shape{}; }

  /// Copies the data of a tensor of the same shape; throws shape_error otherwise.
  tensor& operator=(const tensor& o) {
    if (this == &o) return *this;
    check_same_shape(o.shape_);
    detail::require_device();
    if (!buf_.empty())
      runtime::copy_on_device_async(buf_.address(), o.buf_.address(), buf_.size(), default_stream());
    return *this;
  }
  /// Takes the memory of a tensor of the same shape; throws shape_error otherwise (o is untouched).
  tensor& operator=(tensor&& o) {
    if (this == &o) return *this;
    check_same_shape(o.shape_);
    std::swap(buf_, o.buf_);
    return *this;
  }
  /// Evaluates an expression of device arrays (or fills with a scalar) as one generated kernel.
  template <class E>
    requires(operand<E> && !std::is_same_v<std::remove_cvref_t<E>, tensor>)
  tensor& operator=(const E& e) {
    return this->template apply<assign_op::set>(e, nullptr, nullptr);
  }

  const Shape& shape() const noexcept { return shape_; }
  std::size_t extent(std::size_t k) const noexcept { return shape_.extent(k); }
  std::size_t size() const noexcept { return shape_.size(); }
  /// The device memory (null where nothing is allocated: no device, or no elements).
  device_ptr<T> data() noexcept { return device_ptr<T>(static_cast<T*>(buf_.data())); }
  device_ptr<const T> data() const noexcept { return device_ptr<const T>(static_cast<const T*>(buf_.data())); }
  /// True where the tensor holds device memory (false without a device, or with no elements).
  bool allocated() const noexcept { return !buf_.empty(); }
  /// Row-major strides in elements.
  std::array<index_t, rank> strides() const { return loom::detail::row_major_strides(shape_); }
  index_t stride(std::size_t k) const { return strides()[k]; }

  /// A device view of this tensor's memory.
  auto view() noexcept;
  auto view() const noexcept;

 private:
  static std::size_t byte_size(const Shape& s) {
    const dims d = s.to_dims();
    return loom::detail::checked_size(d.e.data(), d.rank, sizeof(T)) * sizeof(T);
  }
  void check_same_shape(const Shape& other) const {
    if (!(shape_ == other))
      throw shape_error("loom: cannot assign a device tensor of shape " + to_string(other) +
                        " to a device tensor of shape " + to_string(shape_));
  }

  Shape shape_;
  cuda::detail::device_buffer buf_;
};

/// A non-owning view of device memory: T may be const (read-only); Layout is contiguous_layout
/// (row-major) or strided_layout (explicit strides in elements, any sign, 0 to repeat).
template <class T, shape_type Shape, class Layout = contiguous_layout>
class tensor_view : public device_assignable<tensor_view<T, Shape, Layout>> {
  static constexpr bool is_strided = std::is_same_v<Layout, strided_layout>;
  struct no_strides {};

 public:
  static constexpr bool is_loom_array = true;
  static constexpr memory_space space = memory_space::device;
  using value_type = std::remove_const_t<T>;
  using element_type = T;
  using shape_type = Shape;
  using layout_type = Layout;
  static constexpr std::size_t rank = Shape::rank;
  static constexpr bool read_only = std::is_const_v<T>;
  static_assert(::loom::element_type<value_type>, "loom: views hold bool, int32_t, int64_t, float or double");

  tensor_view() = default;
  /// A row-major view of shape s at device pointer p.
  tensor_view(device_ptr<T> p, const Shape& s)
    requires(!is_strided)
      : p_(p), shape_(s) {
    loom::detail::check_view(p.get(), s.to_dims());
  }
  /// A view of shape s at p with the given strides (in elements).
  tensor_view(device_ptr<T> p, const Shape& s, const std::array<index_t, rank>& strides)
    requires(is_strided)
      : p_(p), shape_(s), strides_(strides) {
    loom::detail::check_view(p.get(), s.to_dims());
  }
  /// A view of const data from one of mutable data, or a strided view from a contiguous one.
  template <class U, class L>
    requires(std::is_same_v<std::remove_const_t<U>, value_type> && (std::is_const_v<T> || !std::is_const_v<U>) &&
             (is_strided || std::is_same_v<L, contiguous_layout>))
  tensor_view(const tensor_view<U, Shape, L>& o)  // NOLINT: implicit, like T* to const T*
      : p_(o.data()), shape_(o.shape()) {
    if constexpr (is_strided) strides_ = o.strides();
  }
  tensor_view(const tensor_view&) = default;

  /// Writes the data of another view (views are not re-seated by assignment).
  tensor_view& operator=(const tensor_view& o) { return this->template apply<assign_op::set>(o, nullptr, nullptr); }
  /// Evaluates an expression into the viewed memory as one generated kernel.
  template <class E>
    requires(operand<E> && !std::is_same_v<std::remove_cvref_t<E>, tensor_view>)
  tensor_view& operator=(const E& e) {
    return this->template apply<assign_op::set>(e, nullptr, nullptr);
  }

  const Shape& shape() const noexcept { return shape_; }
  std::size_t extent(std::size_t k) const noexcept { return shape_.extent(k); }
  std::size_t size() const noexcept { return shape_.size(); }
  device_ptr<T> data() const noexcept { return p_; }
  std::array<index_t, rank> strides() const {
    if constexpr (is_strided)
      return strides_;
    else
      return loom::detail::row_major_strides(shape_);
  }
  index_t stride(std::size_t k) const { return strides()[k]; }

 private:
  device_ptr<T> p_{};
  Shape shape_{};
  [[no_unique_address]] std::conditional_t<is_strided, std::array<index_t, rank>, no_strides> strides_{};
};

template <element_type T, shape_type Shape>
auto tensor<T, Shape>::view() noexcept {
  return tensor_view<T, Shape>(data(), shape_);
}
template <element_type T, shape_type Shape>
auto tensor<T, Shape>::view() const noexcept {
  return tensor_view<const T, Shape>(data(), shape_);
}

/// A row-major view of a user's device memory: cuda::view(device_ptr, shape<dyn, 1024>{n}).
/// Throws loom::error for a null or misaligned pointer with a non-empty shape.
template <class T, std::size_t... Es>
tensor_view<T, shape<Es...>> view(device_ptr<T> p, const shape<Es...>& s) {
  return tensor_view<T, shape<Es...>>(p, s);
}
/// The same from a raw device pointer (from cudaMalloc, cuMemAlloc, PyTorch's data_ptr(), ...).
template <class T, std::size_t... Es>
tensor_view<T, shape<Es...>> view(T* device_pointer, const shape<Es...>& s) {
  return tensor_view<T, shape<Es...>>(device_ptr<T>(device_pointer), s);
}
/// A strided view of device memory: cuda::view(p, shape<3, 4>{}, {1, 3}) is a column-major 3 x 4.
template <class T, std::size_t... Es>
tensor_view<T, shape<Es...>, strided_layout> view(device_ptr<T> p, const shape<Es...>& s,
                                                  const std::array<index_t, sizeof...(Es)>& strides) {
  return tensor_view<T, shape<Es...>, strided_layout>(p, s, strides);
}
template <class T, std::size_t... Es>
tensor_view<T, shape<Es...>, strided_layout> view(T* device_pointer, const shape<Es...>& s,
                                                  const std::array<index_t, sizeof...(Es)>& strides) {
  return tensor_view<T, shape<Es...>, strided_layout>(device_ptr<T>(device_pointer), s, strides);
}
/// A view of a device tensor's memory.
template <element_type T, shape_type Shape>
tensor_view<T, Shape> view(tensor<T, Shape>& t) {
  return t.view();
}
template <element_type T, shape_type Shape>
tensor_view<const T, Shape> view(const tensor<T, Shape>& t) {
  return t.view();
}

}  // namespace loom::cuda
