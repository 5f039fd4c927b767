// loom/cuda/compile.hpp: looking at and compiling an expression's kernel without running it.
//
//   std::string src = cuda::kernel_source(exp(dx) * 2.f);  // works without a GPU
//   auto k = cuda::compile(exp(dx) * 2.f);                  // NVRTC only, works without a GPU
//   k.name, k.arch, k.cubin_bytes
//
// Both describe the kernel that evaluating the expression into a new tensor of its own shape
// (cuda::eval) would launch: its layout class follows the expression's leaves (contiguous,
// broadcast, strided views). compile() goes through the process-wide module cache, so a later
// launch of the same kernel on a device of that architecture reuses the compiled program (and
// the disk cache keeps it between runs).
#pragma once

#include <array>
#include <cstddef>
#include <memory>
#include <string>

#include "loom/core/shape.hpp"
#include "loom/cpu/binding.hpp"
#include "loom/cuda/assign.hpp"
#include "loom/cuda/codegen/emit.hpp"
#include "loom/cuda/codegen/kernel.hpp"
#include "loom/cuda/codegen/layout.hpp"
#include "loom/cuda/matmul.hpp"
#include "loom/cuda/options.hpp"
#include "loom/cuda/reduce.hpp"
#include "loom/cuda/rows.hpp"
#include "loom/cuda/runtime/module_cache.hpp"
#include "loom/cuda/runtime/nvrtc.hpp"
#include "loom/expr/node.hpp"
#include "loom/plan/explain.hpp"

namespace loom::cuda {

/// What cuda::compile() produced.
struct compiled_kernel {
  std::string name;          ///< the kernel's symbol, e.g. "loom_ew_c_3f09c2d1a4b5e6f7"
  std::string arch;          ///< what it was compiled for: "sm_90" (or "compute_90": PTX)
  std::size_t cubin_bytes = 0;  ///< size of the compiled image
  bool is_ptx = false;       ///< the image is PTX (the device is newer than NVRTC knows)
  std::string layout;        ///< "contiguous, rank 1, 32-bit indices"
  std::string log;           ///< NVRTC's warnings (empty when read from the disk cache)
  std::shared_ptr<const compiled_program> program;  ///< the image and its names
};

namespace detail {

/// The launch plan of evaluating node n into a new contiguous tensor of its value type, and the
/// cursors of that plan (for baked extents). Device addresses are those the leaves hold now
/// (null without a device); they only decide vector accesses, which the source does not depend
/// on unless extents are baked in.
template <class N>
struct source_plan {
  using P = codegen::param_count<N>;
  std::array<codegen::array_cursor, P::leaves + 1> cursors;
  std::array<codegen::scalar_value, P::scalars + 1> scalars;
  codegen::launch_shape shape;
  /// A reshape's operand does not regroup: an assignment evaluates it into a temporary first
  /// (cuda/assign.hpp), and the plan here is the contiguous one of N's kernels.
  bool reshape_copied = false;

  explicit source_plan(const N& n) {
    using T = typename N::value_type;
    const dims d = n.shape().to_dims();
    cursors[0].base = 0;
    cursors[0].elem_size = sizeof(T);
    cpu::binding::identity(d.rank).strides_of(loom::detail::row_major_strides(n.shape()), cursors[0].stride,
                                              cursors[0].offset);
    codegen::operand_sink sink{cursors.data() + 1, scalars.data()};
    const int lanes = codegen::kernel_family<N, T>::desc().lanes();
    try {
      codegen::binder<N>::bind(n, sink, cpu::binding::identity(d.rank));
    } catch (const codegen::reshape_needs_copy&) {
      reshape_copied = true;
      shape.key = {codegen::layout_class::contiguous, 1, false};
      shape.lanes = lanes;
      shape.elements = shape.units = static_cast<index_t>(d.size());
      shape.extent[0] = shape.elements;
      return;
    }
    shape = codegen::plan_layout(d, cursors.data(), cursors.size(), lanes);
  }

  using family = codegen::kernel_family<N, typename N::value_type>;

  /// The variant a launch of this plan runs where some leaves read the same elements (loaded
  /// once: codegen::shared_leaves), else null.
  [[nodiscard]] const codegen::family_state::shared_variant* shared() const {
    return reshape_copied ? nullptr : family::state().variant(shape, cursors.data() + 1);
  }
  /// The description and the printed kernel a launch of this plan runs.
  [[nodiscard]] const codegen::kernel_desc& desc() const {
    const auto* v = shared();
    return v != nullptr ? v->desc : family::desc();
  }
  [[nodiscard]] const codegen::generated_kernel& generated() const {
    const auto* v = shared();
    return v != nullptr ? v->kernel : family::generated(shape.key);
  }
};

/// The kernel text of node n (baked or not).
template <class N>
codegen::kernel_text kernel_text_of(const N& n, const options& o) {
  const source_plan<N> plan(n);
  if (o.bake_extents) {
    const codegen::baked_values bv{&plan.shape, plan.cursors.data()};
    return codegen::print_kernel(plan.desc(), plan.shape.key, &bv);
  }
  const codegen::generated_kernel& g = plan.generated();
  return {g.name, g.source.substr(codegen::preamble().size())};
}

/// Kernel `name` of `source` compiled through the process-wide module cache for o.arch.
inline compiled_kernel compile_source(const std::string& source, const std::string& name, std::string layout,
                                      const options& o) {
  compile_options co;
  co.arch = o.arch;
  std::shared_ptr<const compiled_program> p = runtime::module_cache::process().program(source, {name}, co);
  compiled_kernel k;
  k.name = name;
  k.arch = p->arch;
  k.cubin_bytes = p->image.size();
  k.is_ptx = p->is_ptx;
  k.layout = std::move(layout);
  k.log = p->log;
  k.program = std::move(p);
  return k;
}

/// Multiprocessors to plan for: the device's, or an H100's where there is none.
inline int planning_sm_count() { return available() ? device_info().sm_count : 132; }

/// How a row launch holds its row: ", the row in registers (16 per thread, 4-element loads)".
inline std::string row_cache_words(const codegen::row_launch& rl) {
  const std::string bound = rl.bound ? ", bound to its arrays" : ", general (tests which arrays repeat)";
  if (rl.K == 0) return ", the row read from memory (L1/L2) by each pass" + bound;
  return ", the row in registers (" + std::to_string(rl.K) + " per thread, " +
         (rl.V > 1 ? std::to_string(rl.V) + "-element loads" : std::string("one element at a time")) + ")" + bound;
}

/// The row kernel (cuda/rows.hpp) that evaluating n into a new tensor launches, or null where
/// its reductions run as kernels of their own.
template <class N>
const codegen::generated_kernel* row_kernel_of(const N& n, codegen::row_launch* rl = nullptr) {
  if constexpr (row_rank_v<N> > 0 && codegen::emittable<N>) {
    const row_plan<N> pl = plan_rows_of_eval(n, planning_sm_count());
    if (!pl.ok) return nullptr;
    if (rl) *rl = pl.rl;
    return &row_family<N, typename N::value_type>::generated(pl.rl);
  } else {
    return nullptr;
  }
}

/// The main kernel of reduction n as planned for the device (or an H100's 132 multiprocessors).
template <class N>
const codegen::generated_kernel& reduction_kernel_of(const N& n, codegen::reduce_launch* rl = nullptr) {
  const auto pl = plan_reduction(n, planning_sm_count());
  if (rl) *rl = pl.rl;
  return reduce_family<N>::main_generated(pl.rl.kr, pl.rl.rr, pl.rl.columns);
}

/// The error for an expression whose reductions run as kernels of their own: there is no one
/// kernel to show or compile.
template <class N>
[[noreturn]] void several_kernels() {
  throw cuda_error(
      "loom: cuda: this expression's reductions run as kernels of their own before it (no kernel generator "
      "prints it as one kernel: that is done for reductions along the trailing axes broadcast back, such as "
      "softmax and layer norm); expression type: " +
      type_name<N>());
}

}  // namespace detail

/// The CUDA source of the kernel that evaluating e into a new tensor launches; the same string
/// object for every expression of the same type and layout class. Works without a GPU. Throws
/// cuda_error for an expression the CUDA backend cannot generate yet.
template <class E>
  requires expression<E>
const std::string& kernel_source(const E& e) {
  auto n = as_node(e);
  using N = decltype(n);
  if constexpr (!codegen::emittable<N>) {
    detail::not_emittable<N>();
  } else if constexpr (detail::lone_reduction<N>) {
    return detail::reduction_kernel_of(n).source;
  } else if constexpr (detail::has_reduce_v<N>) {
    if (const codegen::generated_kernel* g = detail::row_kernel_of(n)) return g->source;
    detail::several_kernels<N>();
  } else {
    const detail::source_plan<N> plan(n);
    return plan.generated().source;
  }
}

/// kernel_source() with options (bake_extents prints this expression's extents into the source).
template <class E>
  requires expression<E>
std::string kernel_source(const E& e, const options& o) {
  auto n = as_node(e);
  using N = decltype(n);
  if constexpr (!codegen::emittable<N>) {
    detail::not_emittable<N>();
  } else if constexpr (detail::has_reduce_v<N>) {
    return kernel_source(e);  // a row kernel takes its extents at run time
  } else {
    return detail::kernel_text_of(n, o).source();
  }
}

/// Compiles the kernel of e with NVRTC (no GPU needed) for o.arch (default: the device's, or
/// sm_90 without one), through the process-wide module cache. Throws jit_error with the log and
/// the numbered source on a compile error, cuda_error without NVRTC.
template <class E>
  requires expression<E>
compiled_kernel compile(const E& e, const options& o = {}) {
  auto n = as_node(e);
  using N = decltype(n);
  if constexpr (!codegen::emittable<N>) {
    detail::not_emittable<N>();
  } else if constexpr (detail::has_reduce_v<N>) {
    const codegen::generated_kernel* g = nullptr;
    std::string layout;
    if constexpr (detail::lone_reduction<N>) {
      codegen::reduce_launch rl;
      g = &detail::reduction_kernel_of(n, &rl);
      layout = std::string("reduction: ") + (rl.columns ? "a thread" : "a block") + " per output, kept rank " +
               std::to_string(rl.kr) + ", reduced rank " + std::to_string(rl.rr) +
               (rl.S > 1 ? ", " + std::to_string(rl.S) + " chunks per output and a second stage" : std::string());
    } else {
      codegen::row_launch rl;
      g = detail::row_kernel_of(n, &rl);
      if (g == nullptr) detail::several_kernels<N>();
      layout = std::string("rows: ") + (rl.G == 32 ? "a warp" : "a block") + " per row, kept rank " + std::to_string(rl.kr) +
               detail::row_cache_words(rl);
    }
    return detail::compile_source(g->source, g->name, std::move(layout), o);
  } else {
    const detail::source_plan<N> plan(n);
    const codegen::kernel_text t = detail::kernel_text_of(n, o);
    return detail::compile_source(t.source(), t.name, plan.shape.key.describe(), o);
  }
}

/// What evaluating e on the device does: the plan (formula, kernels, bytes) and the kernel the
/// CUDA backend generates for it (name, layout class, vector width, index width). Found by
/// argument-dependent lookup for expressions of device arrays, so explain(e) picks this one.
template <class E>
  requires(expression<E> && std::remove_cvref_t<E>::space == memory_space::device)
std::string explain(const E& e) {
  auto n = as_node(e);
  using N = decltype(n);
  std::string s = loom::detail::explain_common(n);
  if constexpr (has_matmul_v<N>) {
    if constexpr (detail::lt_root<N>::value) {
      using Ep = runtime::lt_epilogue;
      constexpr Ep ep = detail::lt_root<N>::epilogue;
      const char* name = ep == Ep::none ? "none" : ep == Ep::bias ? "bias" : ep == Ep::relu ? "relu"
                         : ep == Ep::relu_bias ? "bias, relu" : ep == Ep::gelu ? "gelu" : "bias, gelu";
      s += std::string("  cuda: one cuBLASLt matmul (epilogue: ") + name +
           ") writing the destination where it is a row-major matrix of the product's type\n";
    } else {
      s += "  cuda: each product runs as a cuBLASLt matmul into a device temporary, then the rest of the expression\n";
    }
  } else if constexpr (!codegen::emittable<N>) {
    s += "  cuda: no kernel generator for this expression yet\n";
  } else if constexpr (detail::has_reduce_v<N>) {
    codegen::row_launch rl;
    if (const codegen::generated_kernel* g = detail::row_kernel_of(n, &rl)) {
      const codegen::row_desc& d = detail::row_family<N, typename N::value_type>::desc();
      std::size_t twins = 0;
      for (const auto& st : d.stages) twins += st.twins.empty() ? 0 : 1;
      s += "  cuda: one row kernel " + g->name + ": " + std::to_string(d.stages.size()) + " reduction(s) along rows of " +
           std::to_string(rl.C) + " (" + std::to_string(twins) + " computed once where they read the same arrays), then the row; " +
           (rl.G == 32 ? "a warp" : "a block") + " per row, " + std::to_string(rl.R) + " rows" + detail::row_cache_words(rl) +
           "\n";
    } else if constexpr (detail::lone_reduction<N>) {
      codegen::reduce_launch rl;
      const codegen::generated_kernel& g = detail::reduction_kernel_of(n, &rl);
      s += "  cuda: reduction kernel " + g.name + ", " + (rl.columns ? "a thread" : "a block") + " per output (" +
           std::to_string(rl.K) + " outputs of " + std::to_string(rl.M) + " elements)" +
           (rl.S > 1 ? ", each in " + std::to_string(rl.S) + " chunks combined in a fixed order (a tree) by a second kernel" : std::string()) +
           ", its operand fused\n";
    } else {
      s += "  cuda: each reduction runs as kernels of its own into a device temporary, then the expression as one more kernel\n";
    }
  } else {
    const detail::source_plan<N> plan(n);
    using family = codegen::kernel_family<N, typename N::value_type>;
    const codegen::launch_shape& ls = plan.shape;
    if (plan.reshape_copied)
      s += "  cuda: a reshape's operand has strides that do not regroup: it is evaluated into a temporary first\n";
    s += "  cuda: kernel " + plan.generated().name + ", " + ls.key.describe() + ", collapsed extents [";
    for (std::size_t k = 0; k < ls.key.rank; ++k) s += (k ? ", " : "") + std::to_string(ls.extent[k]);
    s += "]";
    if (ls.key.cls != codegen::layout_class::strided)
      s += ", 16-byte accesses of " + std::to_string(family::desc().lanes()) + " elements where aligned";
    s += "\n";
  }
  return s;
}

}  // namespace loom::cuda
