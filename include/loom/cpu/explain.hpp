// loom/cpu/explain.hpp: explain(expr) - the plan, and how the CPU backend runs it.
#pragma once

#include <string>

#include "loom/cpu/assign.hpp"
#include "loom/cpu/evaluator.hpp"
#include "loom/cpu/loop_nest.hpp"
#include "loom/cpu/matmul.hpp"
#include "loom/cpu/traversal.hpp"
#include "loom/plan/explain.hpp"

namespace loom {

namespace detail {
template <class N>
std::string describe_loop_nest(const N& n);
/// The CPU part of explain(n) (after the plan): the loop nest, the tiles, or the GEMM.
template <class N>
std::string describe_cpu(const N& n);

/// Every line of s indented by two more spaces.
inline std::string indent(const std::string& s) {
  std::string r;
  bool start = true;
  for (char c : s) {
    if (start) r += "  ";
    r += c;
    start = c == '\n';
  }
  return r;
}
}  // namespace detail

namespace cpu {
/// The CPU part of explain() for an expression holding matmuls.
template <class N>
std::string describe_matmul(const N& n) {
  if constexpr (loom::detail::fused_epilogue_v<N>) {
    const auto& m = detail::find_product(n);
    using MM = std::remove_cvref_t<decltype(m)>;
    using P = typename MM::value_type;
    const dims md = m.shape().to_dims();
    index_t count = 1;
    for (std::size_t d = 0; d + 2 < md.rank; ++d) count *= static_cast<index_t>(md.e[d]);
    std::string s = "  cpu: GEMM " + std::string(std::is_floating_point_v<P> ? "(packed, " : "(plain loop, ") +
                    std::string(dtype_name(dtype_of<P>)) + ") of " + std::to_string(count) + " product" +
                    (count == 1 ? "" : "s") + " of " + std::to_string(m.rows()) + " x " + std::to_string(m.cols()) +
                    " x " + std::to_string(m.inner()) + ", threads up to " + std::to_string(num_threads()) + "\n";
    detail::matmul_dry_scope dry;
    auto operand = [&](const char* name, const auto& x) {
      using X = std::remove_cvref_t<decltype(x)>;
      if constexpr (detail::operand_kind_of<X>() != detail::operand_kind::materialised) {
        s += std::string("  cpu: prologue: ") + name + " is " + detail::gemm_operand<X>(x).describe() + "\n";
      } else {
        s += std::string("  cpu: prologue: ") + name + " holds reductions or matmuls: materialised first (" +
             std::to_string(x.shape().size() * sizeof(typename X::value_type)) + " bytes) by its own plan:\n";
        s += loom::detail::indent(loom::detail::explain_common(x) + loom::detail::describe_cpu(x));
      }
    };
    operand("A", m.a);
    operand("B", m.b);
    if constexpr (is_matmul_node<N>::value) {
      s += "  cpu: epilogue: plain store of each tile\n";
    } else {
      // The epilogue's formula with the product written C.
      loom::detail::plan_printer p;
      std::string f = loom::detail::print_node(n, p);
      const std::string c = loom::detail::print_node(m, p);
      if (const std::size_t at = f.find(c); at != std::string::npos) f.replace(at, c.size(), "C");
      s += "  cpu: epilogue: " + f + " applied to each finished tile C before its store, " +
           traversal<N, typename N::value_type>::describe() + "\n";
    }
    return s;
  } else {
    detail::matmul_dry_scope dry;
    std::string s =
        "  cpu: each matmul is computed first into a temporary of its own shape (its own GEMM; kernels counts every "
        "occurrence, equal ones - the same operands - run once), then:\n";
    if constexpr (has_reduction_v<N>)
      return s + describe_reducing<typename N::shape_type>(n);
    else
      return s + loom::detail::describe_loop_nest(n);
  }
}

}  // namespace cpu

/// A readable description of how eval(e) runs: the formula, kernels, fused nodes, temporaries,
/// bytes read and written, and the CPU loop nest (collapsed space, layout, SIMD, threads) or the
/// tiles and reductions of an expression that holds reductions.
template <class E>
  requires(expression<E> && std::remove_cvref_t<E>::space != memory_space::device)
std::string explain(const E& e) {
  auto n = as_node(e);
  return detail::explain_common(n) + detail::describe_cpu(n);
}

namespace detail {
template <class N>
std::string describe_cpu(const N& n) {
  if constexpr (has_matmul_v<N>)
    return cpu::describe_matmul(n);
  else if constexpr (cpu::has_reduction_v<N>)
    return cpu::describe_reducing<typename N::shape_type>(n);
  else
    return describe_loop_nest(n);
}
}  // namespace detail

namespace detail {
/// The CPU part of explain() for an elementwise expression: its loop nest.
template <class N>
std::string describe_loop_nest(const N& n) {
  using T = typename N::value_type;
  const dims d = n.shape().to_dims();
  std::string cpu = "  cpu: loop space " + to_string(d);
  if (d.size() > 0) {
    cpu::evaluator<N> ev(n, cpu::binding::identity(d.rank));
    std::vector<cpu::cursor*> cs;
    cpu::cursor dst;
    dst.base = nullptr;
    dst.elem_size = sizeof(T);
    cpu::binding::identity(d.rank).strides_of(detail::row_major_strides(n.shape()), dst.stride, dst.offset);
    cs.push_back(&dst);
    ev.for_each_cursor([&](cpu::cursor& c) { cs.push_back(&c); });
    auto sp = cpu::collapse(d, cs.data(), cs.size());
    const bool contiguous = cpu::detail::inner_contiguous(cs.data(), cs.size(), sp.rank - 1);
    const dims cd = sp.to_dims();
    using trav = cpu::traversal<N, T>;
    const bool parallel = num_threads() > 1 && index_t(d.size()) * trav::cost >= cpu::parallel_threshold;
    const std::size_t blocked = cpu::blocked_axis(sp, cs.data(), cs.size());
    cpu += " collapsed to " + to_string(cd) + ", inner run " + std::to_string(sp.inner()) + ", layout " +
           (blocked < sp.rank ? "blocked " + std::to_string(cpu::block_side<T>()) + "x" +
                                    std::to_string(cpu::block_side<T>()) + " (an operand is read across rows)"
                              : std::string(!contiguous ? "strided/broadcast"
                                            : cpu::choose_layout(true, cs.size() * d.size() * sizeof(T), trav::cost) ==
                                                      cpu::layout_class::streaming
                                                ? "contiguous, streaming stores (the destination bypasses the cache)"
                                                : "contiguous")) +
           "\n  cpu: " + trav::describe() + ", cost " +
           std::to_string(trav::cost) + "/element, threads " + (parallel ? std::to_string(num_threads()) : "1") +
           (parallel ? "" : " (below the parallel threshold)") + "\n";
  } else {
    cpu += " (empty)\n";
  }
  return cpu;
}
}  // namespace detail

}  // namespace loom
