// loom/plan/explain.hpp: the backend-neutral part of explain(): the expression as a formula,
// its kernels, temporaries and the bytes it moves.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "loom/core/dtype.hpp"
#include "loom/core/shape.hpp"
#include "loom/expr/generator.hpp"
#include "loom/expr/index_map.hpp"
#include "loom/expr/map.hpp"
#include "loom/expr/matmul.hpp"
#include "loom/expr/node.hpp"
#include "loom/expr/reduce.hpp"
#include "loom/plan/plan.hpp"

namespace loom {
namespace detail {

/// Collects what explain() prints: leaves get short names (x0, x1, ...) by data pointer.
struct plan_printer {
  struct leaf_info {
    const void* data;
    std::string name, type, shape;
    std::size_t bytes;
  };
  std::vector<leaf_info> leaves;

  std::string leaf_name(const void* data, std::string type, std::string shape, std::size_t bytes) {
    for (auto& l : leaves)
      if (l.data == data && l.shape == shape && l.type == type) return l.name;
    leaves.push_back({data, "x" + std::to_string(leaves.size()), std::move(type), std::move(shape), bytes});
    return leaves.back().name;
  }
  std::size_t bytes_read() const {
    std::size_t b = 0;
    for (auto& l : leaves) b += l.bytes;
    return b;
  }
};

template <class T>
std::string scalar_text(T v) {
  if constexpr (std::is_same_v<T, bool>) {
    return v ? "true" : "false";
  } else if constexpr (std::is_floating_point_v<T>) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", static_cast<double>(v));
    return buf;
  } else {
    return std::to_string(v);
  }
}

/// Prints a node as a formula. Node kinds defined elsewhere add overloads of print_node.
template <class A, bool B>
std::string print_node(const leaf_node<A, B>& n, plan_printer& p) {
  using T = typename leaf_node<A, B>::value_type;
  return p.leaf_name(static_cast<const void*>(n.data()), std::string(dtype_name(dtype_of<T>)), to_string(n.shape()),
                     n.shape().size() * sizeof(T));
}
template <class T>
std::string print_node(const scalar_node<T>& n, plan_printer&) {
  return scalar_text(n.value);
}
template <class Op, class C, class... Args>
std::string print_node(const map_node<Op, C, Args...>& n, plan_printer& p) {
  std::vector<std::string> a;
  std::apply([&](const auto&... x) { (a.push_back(print_node(x, p)), ...); }, n.args);
  if constexpr (Op::rule == type_rule::convert)
    return "cast<" + std::string(dtype_name(dtype_of<C>)) + ">(" + a[0] + ")";
  if (!Op::symbol.empty() && a.size() == 2) return "(" + a[0] + " " + std::string(Op::symbol) + " " + a[1] + ")";
  if (!Op::symbol.empty() && a.size() == 1) return std::string(Op::symbol) + a[0];
  std::string s = std::string(Op::name) + "(";
  for (std::size_t i = 0; i < a.size(); ++i) s += (i ? ", " : "") + a[i];
  return s + ")";
}

template <class Red, class Arg, unsigned Mask, bool Keep>
std::string print_node(const reduce_node<Red, Arg, Mask, Keep>& n, plan_printer& p) {
  constexpr std::size_t r = Arg::shape_type::rank;
  std::string s = std::string(Red::name) + "(" + print_node(n.arg, p);
  if (Mask != all_axes_mask(r)) s += ", axes=" + axes_text(Mask, r);
  return s + (Keep ? ", keepdims)" : ")");
}
template <class Arg, std::size_t... P>
std::string print_node(const permute_node<Arg, P...>& n, plan_printer& p) {
  std::string s = "permute<";
  std::size_t i = 0;
  ((s += (i++ ? ", " : "") + std::to_string(P)), ...);
  return s + ">(" + print_node(n.arg, p) + ")";
}
template <class Arg, std::size_t A>
std::string print_node(const slice_node<Arg, A>& n, plan_printer& p) {
  const index_t end = n.begin + static_cast<index_t>(n.shape().extent(A)) * n.step;
  return "slice<" + std::to_string(A) + ">(" + print_node(n.arg, p) + ", " + std::to_string(n.begin) + ", " +
         std::to_string(end) + (n.step != 1 ? ", " + std::to_string(n.step) : std::string()) + ")";
}
template <class Arg, std::size_t A>
std::string print_node(const flip_node<Arg, A>& n, plan_printer& p) {
  return "flip<" + std::to_string(A) + ">(" + print_node(n.arg, p) + ")";
}
template <class Arg, class S>
std::string print_node(const broadcast_node<Arg, S>& n, plan_printer& p) {
  return "broadcast_to<" + to_string(n.shape()) + ">(" + print_node(n.arg, p) + ")";
}
template <class Arg, class S>
std::string print_node(const reshape_node<Arg, S>& n, plan_printer& p) {
  return "reshape<" + to_string(n.shape()) + ">(" + print_node(n.arg, p) + ")";
}
template <std::size_t A, class... Args>
std::string print_node(const concat_node<A, Args...>& n, plan_printer& p) {
  std::string s = "concat<" + std::to_string(A) + ">(";
  std::size_t i = 0;
  std::apply([&](const auto&... x) { ((s += (i++ ? ", " : "") + print_node(x, p)), ...); }, n.args);
  return s + ")";
}
template <class Arg, std::size_t A>
std::string print_node(const pad_node<Arg, A>& n, plan_printer& p) {
  return "pad<" + std::to_string(A) + ">(" + print_node(n.arg, p) + ", " + std::to_string(n.before) + ", " +
         std::to_string(n.after) + ", " + scalar_text(n.value) + ")";
}
template <class A, class B>
std::string print_node(const matmul_node<A, B>& n, plan_printer& p) {
  std::string a = print_node(n.a, p);
  return "matmul(" + a + ", " + print_node(n.b, p) + ")";
}
template <class T, class S>
std::string print_node(const iota_node<T, S>& n, plan_printer&) {
  return "iota<" + std::string(dtype_name(dtype_of<T>)) + ">(" + to_string(n.shape()) + ")";
}
template <class T, class S>
std::string print_node(const full_node<T, S>& n, plan_printer&) {
  return "full<" + std::string(dtype_name(dtype_of<T>)) + ">(" + to_string(n.shape()) + ", " + scalar_text(n.value) +
         ")";
}

/// The backend-neutral part of explain(n).
template <class N>
std::string explain_common(const N& n) {
  using P = plan_of<N>;
  using T = typename N::value_type;
  plan_printer p;
  std::string formula = print_node(n, p);
  std::string s;
  s += "loom plan: " + std::string(dtype_name(dtype_of<T>)) + to_string(n.shape()) + " = " + formula + "\n";
  for (auto& l : p.leaves) s += "  " + l.name + ": " + l.type + l.shape + "\n";
  s += "  kernels: " + std::to_string(P::kernels) + " (" + plan_kind_name(P::kind) + ")\n";
  s += "  fused nodes: " + std::to_string(P::fused_nodes) + "\n";
  s += "  temporaries: " + std::to_string(P::temp_bytes) + " bytes" +
       (P::temp_bytes_bounded ? std::string() : std::string(" and more (sizes known at run time)")) +
       (P::tiled_reductions ? " (per-tile buffers of at most " + std::to_string(max_tile_rows) +
                                  " values per reduction, per thread)"
                            : std::string()) +
       "\n";
  s += "  bytes read: " + std::to_string(p.bytes_read()) + ", written: " +
       std::to_string(n.shape().size() * sizeof(T)) + "\n";
  return s;
}

}  // namespace detail
}  // namespace loom
