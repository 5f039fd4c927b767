// loom/expr/fwd.hpp: what every part of loom needs to recognise a loom expression.
//
// Tensors, views and expression nodes are told apart by a marker, not by inheritance, so that
// each stays a plain value type. Backends attach behaviour through evaluators keyed by type.
#pragma once

#include <concepts>
#include <cstddef>
#include <type_traits>

#include "loom/core/dtype.hpp"
#include "loom/core/shape.hpp"

namespace loom {

/// Where the data of an array lives. An expression may not mix host and device arrays.
enum class memory_space { any, host, device };

template <element_type T, shape_type Shape>
class tensor;

struct contiguous_layout;  // row-major, strides implied by the shape
struct strided_layout;     // strides stored, in elements, any sign

template <class T, shape_type Shape, class Layout = contiguous_layout>
class tensor_view;

/// A tensor or a view: data with a shape (host or device).
template <class T>
concept array_like = requires { std::remove_cvref_t<T>::is_loom_array; };

/// An expression node (the result of an operator, a function, an index map...).
template <class T>
concept node_like = requires { std::remove_cvref_t<T>::is_loom_node; };

/// Anything that can stand on the right of an assignment: an array or a node.
template <class T>
concept expression = array_like<T> || node_like<T>;

/// An operand of an elementwise operator: an expression or a C++ scalar.
template <class T>
concept operand = expression<T> || scalar_type<T>;

template <class T>
using value_type_of = typename std::remove_cvref_t<T>::value_type;
template <class T>
using shape_type_of = typename std::remove_cvref_t<T>::shape_type;

/// How an assignment combines the destination with the expression: d = e, d += e, ...
enum class assign_op { set, add, sub, mul, div };

namespace detail {
/// The CPU assignment of an expression into a host destination (defined in cpu/assign.hpp).
template <assign_op Op, class Dst, class Src>
void assign(Dst& dst, const Src& src);
}  // namespace detail

}  // namespace loom
