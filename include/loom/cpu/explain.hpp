// loom/cpu/explain.hpp: explain(expr) - the plan, and how the CPU backend runs it.
#pragma once

#include <string>

#include "loom/cpu/assign.hpp"
#include "loom/cpu/evaluator.hpp"
#include "loom/cpu/loop_nest.hpp"
#include "loom/cpu/traversal.hpp"
#include "loom/plan/explain.hpp"

namespace loom {

/// A readable description of how eval(e) runs: the formula, kernels, fused nodes, temporaries,
/// bytes read and written, and the CPU loop nest (collapsed space, layout, SIMD, threads).
template <class E>
  requires expression<E>
std::string explain(const E& e) {
  auto n = as_node(e);
  using N = decltype(n);
  using T = typename N::value_type;
  std::string s = detail::explain_common(n);
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
    bool contiguous = true;
    for (auto* c : cs) contiguous = contiguous && c->stride[sp.rank - 1] == 1;
    dims cd;
    cd.rank = sp.rank;
    for (std::size_t k = 0; k < sp.rank; ++k) cd.e[k] = static_cast<std::size_t>(sp.extent[k]);
    using trav = cpu::traversal<N, T>;
    const bool parallel = num_threads() > 1 && index_t(d.size()) * trav::cost >= cpu::parallel_threshold;
    cpu += " collapsed to " + to_string(cd) + ", inner run " + std::to_string(sp.inner()) + ", layout " +
           (contiguous ? "contiguous" : "strided/broadcast") + "\n  cpu: " + trav::describe() + ", cost " +
           std::to_string(trav::cost) + "/element, threads " + (parallel ? std::to_string(num_threads()) : "1") +
           (parallel ? "" : " (below the parallel threshold)") + "\n";
  } else {
    cpu += " (empty)\n";
  }
  return s + cpu;
}

}  // namespace loom
