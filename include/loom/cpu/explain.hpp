// loom/cpu/explain.hpp: explain(expr) - the plan, and how the CPU backend runs it.
#pragma once

#include <string>

#include "loom/cpu/assign.hpp"
#include "loom/cpu/evaluator.hpp"
#include "loom/cpu/loop_nest.hpp"
#include "loom/cpu/traversal.hpp"
#include "loom/plan/explain.hpp"

namespace loom {

namespace detail {
template <class N>
std::string describe_loop_nest(const N& n);
}  // namespace detail

/// A readable description of how eval(e) runs: the formula, kernels, fused nodes, temporaries,
/// bytes read and written, and the CPU loop nest (collapsed space, layout, SIMD, threads) or the
/// tiles and reductions of an expression that holds reductions.
template <class E>
  requires expression<E>
std::string explain(const E& e) {
  auto n = as_node(e);
  using N = decltype(n);
  std::string s = detail::explain_common(n);
  if constexpr (cpu::has_reduction_v<N>)
    return s + cpu::describe_reducing<typename N::shape_type>(n);
  else
    return s + detail::describe_loop_nest(n);
}

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
    dims cd;
    cd.rank = sp.rank;
    for (std::size_t k = 0; k < sp.rank; ++k) cd.e[k] = static_cast<std::size_t>(sp.extent[k]);
    using trav = cpu::traversal<N, T>;
    const bool parallel = num_threads() > 1 && index_t(d.size()) * trav::cost >= cpu::parallel_threshold;
    const std::size_t blocked = cpu::blocked_axis(sp, cs.data(), cs.size());
    cpu += " collapsed to " + to_string(cd) + ", inner run " + std::to_string(sp.inner()) + ", layout " +
           (blocked < sp.rank ? "blocked " + std::to_string(cpu::block_side<T>()) + "x" +
                                    std::to_string(cpu::block_side<T>()) + " (an operand is read across rows)"
                              : std::string(contiguous ? "contiguous" : "strided/broadcast")) +
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
