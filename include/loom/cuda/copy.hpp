// loom/cuda/copy.hpp: cuda::copy between host and device arrays.
//
//   cuda::copy(dx, y);          // host -> device
//   cuda::copy(y, dx);          // device -> host
//   cuda::copy(dy, dx, stream); // device -> device, queued on a stream
//
// Both sides have the same element type and the same shape (no broadcasting: a copy moves
// bytes); a mismatch throws loom::shape_error naming both. Host arrays must be row-major
// (tensors, contiguous views); device arrays may be strided views, which go through a kernel and
// a contiguous temporary. Copies are queued on the stream (loom's default stream if none is
// given) and return as the driver's asynchronous copies do: from pageable host memory once the
// source may be reused, into pageable host memory once the data has arrived; with pinned host
// memory at once (synchronise the stream before touching it).
#pragma once

#include <cstddef>
#include <string>
#include <type_traits>

#include "loom/core/error.hpp"
#include "loom/core/shape.hpp"
#include "loom/cuda/assign.hpp"
#include "loom/cuda/runtime/memory.hpp"
#include "loom/cuda/runtime/stream.hpp"
#include "loom/cuda/tensor.hpp"
#include "loom/expr/fwd.hpp"

namespace loom::cuda {

namespace detail {

template <class A>
constexpr bool on_device = std::remove_cvref_t<A>::space == memory_space::device;

template <class Dst, class Src>
void copy_impl(Dst& dst, const Src& src, const stream_ref* s) {
  using D = std::remove_cvref_t<Dst>;
  using S = std::remove_cvref_t<Src>;
  using T = typename D::value_type;
  static_assert(std::is_same_v<T, typename S::value_type>,
                "loom: cuda::copy needs the same element type on both sides; cast<T>(...) on the device first");
  static_assert(on_device<D> || on_device<S>, "loom: cuda::copy copies to or from the device; assign host arrays");
  static_assert(!D::read_only, "loom: cuda::copy cannot write through a view of const data");
  const dims dd = dst.shape().to_dims(), sd = src.shape().to_dims();
  if (!(dd == sd))
    throw shape_error("loom: cuda::copy from shape " + to_string(sd) + " to shape " + to_string(dd) +
                      ": the shapes differ (copies do not broadcast)");
  if constexpr (!on_device<D>) {
    if (!is_row_major(dst.shape(), dst.strides()))
      throw error("loom: cuda::copy needs a row-major host destination; copy into a tensor and assign from it");
  }
  if constexpr (!on_device<S>) {
    if (!is_row_major(src.shape(), src.strides()))
      throw error("loom: cuda::copy needs a row-major host source; assign it into a tensor first");
  }
  require_device();
  const std::size_t bytes = dd.size() * sizeof(T);
  if (bytes == 0) return;
  const stream_ref st = s != nullptr ? *s : default_stream();
  using Shape = typename D::shape_type;

  if constexpr (on_device<D> && on_device<S>) {
    if (is_row_major(dst.shape(), dst.strides()) && is_row_major(src.shape(), src.strides()))
      runtime::copy_on_device_async(dst.data().address(), src.data().address(), bytes, st);
    else
      assign<assign_op::set>(dst, src, &st, nullptr);
  } else if constexpr (on_device<D>) {
    if (is_row_major(dst.shape(), dst.strides())) {
      runtime::copy_to_device_async(dst.data().address(), src.data(), bytes, st);
    } else {  // through a contiguous device temporary
      cuda::detail::device_buffer tmp(bytes, st);
      runtime::copy_to_device_async(tmp.address(), src.data(), bytes, st);
      const tensor_view<const T, Shape> t(device_ptr<const T>(static_cast<const T*>(tmp.data())), dst.shape());
      assign<assign_op::set>(dst, t, &st, nullptr);
    }
  } else {
    if (is_row_major(src.shape(), src.strides())) {
      runtime::copy_to_host_async(dst.data(), src.data().address(), bytes, st);
    } else {
      cuda::detail::device_buffer tmp(bytes, st);
      tensor_view<T, Shape> t(device_ptr<T>(static_cast<T*>(tmp.data())), dst.shape());
      assign<assign_op::set>(t, src, &st, nullptr);
      runtime::copy_to_host_async(dst.data(), tmp.address(), bytes, st);
    }
  }
}

}  // namespace detail

/// Copies src into dst (same element type, same shape), host -> device, device -> host or
/// device -> device, on loom's default stream: cuda::copy(dx, y); cuda::copy(y, dx).
/// Throws shape_error on a shape mismatch, cuda_error without a device.
template <class Dst, class Src>
  requires(array_like<Dst> && array_like<Src>)
void copy(Dst&& dst, const Src& src) {
  detail::copy_impl(dst, src, nullptr);
}

/// copy() queued on stream s.
template <class Dst, class Src>
  requires(array_like<Dst> && array_like<Src>)
void copy(Dst&& dst, const Src& src, stream_ref s) {
  detail::copy_impl(dst, src, &s);
}

}  // namespace loom::cuda
