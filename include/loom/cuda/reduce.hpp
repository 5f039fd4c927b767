// loom/cuda/reduce.hpp: reductions on the device, and expressions holding them.
//
// A reduction node runs as the generated kernels of cuda/codegen/reduce_kernel.hpp into a device
// temporary of its own shape (its producers fused into it: nothing of the operand's size is ever
// held); an expression holding reductions is evaluated with each of them replaced by a read of
// its temporary, as one more generated kernel. Nested reductions are evaluated innermost first.
// (The CPU fuses a reduction broadcast back into its row pass; on the device that one-pass row
// kernel -- softmax, layer norm -- is still to come.)
//
// plan_reduction() is the host half: the binding of the operand over [kept axes..., reduced
// axes...], the cursors, the split into chunks; launch_reduction() queues it. The tests run the
// same plan through a host emulation of the kernels.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "loom/core/error.hpp"
#include "loom/core/shape.hpp"
#include "loom/cpu/binding.hpp"
#include "loom/cuda/codegen/emit.hpp"
#include "loom/cuda/codegen/kernel.hpp"
#include "loom/cuda/codegen/layout.hpp"
#include "loom/cuda/codegen/reduce_kernel.hpp"
#include "loom/cuda/options.hpp"
#include "loom/cuda/runtime/device.hpp"
#include "loom/cuda/runtime/launch.hpp"
#include "loom/cuda/runtime/memory.hpp"
#include "loom/cuda/runtime/stream.hpp"
#include "loom/cuda/tensor.hpp"
#include "loom/expr/reduce.hpp"
#include "loom/expr/traits.hpp"

namespace loom::cuda::detail {

template <class N>
struct reduce_bit {
  static constexpr unsigned value = is_reduce_node<N>::value ? 1u : 0u;
};
/// True where the tree of N holds a reduction.
template <class N>
inline constexpr bool has_reduce_v = fold_nodes_or<reduce_bit, N>::value != 0;

/// True where N is one reduction whose operand holds none: its own kernel is what evaluating it
/// launches first (and, split into chunks, a second stage).
template <class N>
inline constexpr bool lone_reduction = false;
template <class Red, class Arg, unsigned Mask, bool Keep>
inline constexpr bool lone_reduction<reduce_node<Red, Arg, Mask, Keep>> = !has_reduce_v<Arg> && codegen::emittable<Arg>;

/// The reduction description of node type RN (printed once per type).
template <class RN>
const codegen::reduce_desc& reduce_desc_of() {
  static const codegen::reduce_desc d = [] {
    codegen::reduce_desc r;
    codegen::emit_state st;
    codegen::emitted e = codegen::emitter<typename RN::arg_type>::emit(st);
    r.op.value = e.type;
    r.op.dst = dtype_of<typename RN::value_type>;
    r.op.leaves = st.leaves();
    r.op.kinds = st.kinds();
    r.op.scalars = st.scalars();
    r.op.element = std::move(e.text);
    r.reducer = std::string(RN::reducer::name);
    r.out = dtype_of<typename RN::value_type>;
    return r;
  }();
  return d;
}

/// A reduction launch planned on the host: its shape and its operand's cursors and scalars.
template <class RN>
struct reduction_plan {
  using P = codegen::param_count<typename RN::arg_type>;
  codegen::reduce_launch rl;
  std::array<codegen::array_cursor, P::leaves + 1> leaves{};
  std::array<codegen::scalar_value, P::scalars + 1> scalars{};
};

/// Plans reduction n for a device of `sm_count` multiprocessors: binds the operand over
/// [kept axes..., reduced axes...] and chooses the chunks (S > 1 only where there are too few
/// outputs to fill the device). Throws shape_error for max/min/argmax/argmin of nothing.
template <class RN>
reduction_plan<RN> plan_reduction(const RN& n, int sm_count) {
  using Red = typename RN::reducer;
  reduction_plan<RN> pl;
  const dims ad = n.in_dims();
  std::array<std::size_t, max_rank> kept{}, red{};
  std::size_t kr = 0, rr = 0;
  for (std::size_t d = 0; d < ad.rank; ++d) {
    if ((RN::mask >> d) & 1u)
      red[rr++] = d;
    else
      kept[kr++] = d;
  }
  cpu::binding b;
  b.it_rank = b.node_rank = ad.rank;
  for (std::size_t j = 0; j < kr; ++j) b.coef[kept[j]][j] = 1;
  for (std::size_t j = 0; j < rr; ++j) b.coef[red[j]][kr + j] = 1;
  codegen::operand_sink sink{pl.leaves.data(), pl.scalars.data()};
  codegen::binder<typename RN::arg_type>::bind(n.arg, sink, b);

  std::array<index_t, max_rank> re{};
  for (std::size_t j = 0; j < rr; ++j) re[j] = static_cast<index_t>(ad.e[red[j]]);
  if (kr == 0 && rr == max_rank) {
    // Every axis of an operand of the largest rank: the kernels' kept axis (of extent 1) leaves
    // room for max_rank - 1 reduced ones, so two neighbours merge into one (the same elements
    // in the same order), or one of extent 1 goes.
    std::size_t at = max_rank;
    for (std::size_t j = 0; j + 1 < rr && at == max_rank; ++j) {
      bool ok = true;
      if (re[j] != 1 && re[j + 1] != 1)
        for (std::size_t i = 0; ok && i < sink.leaf_count; ++i)
          ok = pl.leaves[i].stride[j] == pl.leaves[i].stride[j + 1] * re[j + 1];
      if (ok) at = j;
    }
    if (at == max_rank)
      throw cuda_error("loom: cuda: a reduction over all " + std::to_string(max_rank) + " axes of shape " + to_string(ad) +
                       " whose operand's axes do not merge pairwise (no kernel takes " + std::to_string(max_rank) +
                       " reduced axes); reduce some axes first, or evaluate the operand into a tensor");
    for (std::size_t i = 0; i < sink.leaf_count; ++i) {
      std::array<index_t, max_rank>& st = pl.leaves[i].stride;
      if (re[at + 1] != 1) st[at] = st[at + 1];
      for (std::size_t j = at + 1; j + 1 < rr; ++j) st[j] = st[j + 1];
      st[rr - 1] = 0;
    }
    re[at] *= re[at + 1];
    for (std::size_t j = at + 1; j + 1 < rr; ++j) re[j] = re[j + 1];
    re[--rr] = 0;
  }

  codegen::reduce_launch& rl = pl.rl;
  rl.kr = std::max<std::size_t>(kr, 1);
  rl.rr = std::max<std::size_t>(rr, 1);
  rl.K = rl.M = 1;
  for (std::size_t j = 0; j < rl.kr; ++j) rl.K *= rl.kext[j] = kr ? static_cast<index_t>(ad.e[kept[j]]) : 1;
  for (std::size_t j = 0; j < rl.rr; ++j) rl.M *= rl.rext[j] = rr ? re[j] : 1;
  if (rl.M == 0 && rl.K != 0 && Red::needs_identity && !std::is_same_v<Red, reduce_ops::sum> &&
      !std::is_same_v<Red, reduce_ops::mean> && !std::is_same_v<Red, reduce_ops::prod>)
    throw shape_error("loom: " + std::string(Red::name) + " over an empty axis of shape " + to_string(ad) +
                      " has no value");
  for (std::size_t i = 0; i < sink.leaf_count; ++i) {
    codegen::array_cursor& c = pl.leaves[i];
    codegen::fold_offset(c);
    std::array<index_t, max_rank> st{};
    for (std::size_t j = 0; j < rl.kr; ++j) st[j] = kr ? c.stride[j] : 0;
    for (std::size_t j = 0; j < rl.rr; ++j) st[rl.kr + j] = rr ? c.stride[kr + j] : 0;  // (kr + rr <= max_rank)
    c.stride = st;
  }
  // A thread per output where the outputs lie next to each other in every operand (the kept
  // inner axis steps by 0 or 1, the reduced inner one by neither): column sums and the like.
  bool columns = kr > 0 && rl.kext[rl.kr - 1] > 1 && rl.K >= 32;
  for (std::size_t i = 0; columns && i < sink.leaf_count; ++i) {
    const codegen::array_cursor& c = pl.leaves[i];
    if (c.elem_size == 0) continue;
    const index_t ks = c.stride[rl.kr - 1], rs = c.stride[rl.kr + rl.rr - 1];
    columns = (ks == 0 || ks == 1) && rs != 1;
  }
  rl.columns = columns;
  // Chunks: one per output where there are enough outputs; else (blocks) up to 8 work items per
  // multiprocessor of at least 4096 elements each, or (threads) about 2048 threads per
  // multiprocessor of at least 64 elements each.
  const index_t sm = std::max(1, sm_count);
  rl.S = 1;
  if (columns) {
    if (rl.K < 2048 * sm && rl.M > 64)
      rl.S = std::min<index_t>(rl.M / 64, (2048 * sm + rl.K - 1) / rl.K);
    rl.S = std::max<index_t>(rl.S, 1);
  } else if (rl.K < 2 * sm && rl.M > 4096) {
    rl.S = std::min<index_t>((rl.M + 4095) / 4096, std::max<index_t>(1, (8 * sm + rl.K - 1) / std::max<index_t>(rl.K, 1)));
  }
  rl.chunk = rl.M == 0 ? 0 : (rl.M + rl.S - 1) / rl.S;
  if (rl.S > 1) rl.chunk = (rl.chunk + 15) / 16 * 16;  // chunks start on 16-element boundaries (the vector path)
  if (rl.chunk > 0) rl.S = (rl.M + rl.chunk - 1) / rl.chunk;
  return pl;
}

/// Bytes of one partial accumulator (the kernels' acc_t: a value of at most 8 bytes and an index).
inline constexpr std::size_t partial_bytes = 16;

/// The kernels of reduction node type RN: the main one per (kept, reduced) rank, the second stage.
template <class RN>
struct reduce_family {
  /// The main kernel for kept rank kr, reduced rank rr: printed once, then the same strings.
  static const codegen::generated_kernel& main_generated(std::size_t kr, std::size_t rr, bool columns) {
    struct slot {
      std::once_flag once;
      codegen::generated_kernel g;
    };
    static std::array<slot, 2 * max_rank * max_rank> slots;
    slot& s = slots[(columns ? max_rank * max_rank : 0) + (kr - 1) * max_rank + (rr - 1)];
    std::call_once(s.once, [&] {
      codegen::kernel_text t = codegen::print_reduce_kernel(reduce_desc_of<RN>(), kr, rr, columns);
      s.g = codegen::generated_kernel{std::move(t.name), t.source()};
    });
    return s.g;
  }
  static const codegen::kernel_text& finish_text() {
    static const codegen::kernel_text t = codegen::print_reduce_finish(reduce_desc_of<RN>());
    return t;
  }
  static const kernel_handle& main(std::size_t kr, std::size_t rr, bool columns) {
    static std::array<runtime::cached_kernel, 2 * max_rank * max_rank> kernels;
    return kernels[(columns ? max_rank * max_rank : 0) + (kr - 1) * max_rank + (rr - 1)].get([&] {
      const codegen::generated_kernel& g = main_generated(kr, rr, columns);
      return kernel_request{g.source, g.name, {}, {}};
    });
  }
  static const kernel_handle& finish() {
    static runtime::cached_kernel k;
    return k.get([] {
      const codegen::kernel_text& t = finish_text();
      return kernel_request{t.source(), t.name, {}, {}};
    });
  }
};

/// Blocks of the main kernel for a plan: one work item each (blocks), or one per thread
/// (columns, blocks of `block` threads); at most 8 (32) blocks per multiprocessor.
inline unsigned reduce_grid(const codegen::reduce_launch& rl, int sm_count, unsigned block = codegen::reduce_block_threads) {
  const index_t items = rl.K * rl.S;
  const index_t sm = std::max(1, sm_count);
  if (rl.columns) return static_cast<unsigned>(std::clamp<index_t>((items + block - 1) / block, 1, 32 * sm));
  return static_cast<unsigned>(std::clamp<index_t>(items, 1, index_t(8) * sm));
}

/// Queues planned reduction pl into `out` (K contiguous elements of RN::value_type) on stream st.
template <class RN>
void launch_planned_reduction(const reduction_plan<RN>& pl, std::uintptr_t out, const stream_ref& st, int sm) {
  const codegen::reduce_launch& rl = pl.rl;
  if (rl.K == 0) return;
  const codegen::reduce_desc& d = reduce_desc_of<RN>();
  device_buffer partial;
  std::uintptr_t target = out;
  if (rl.S > 1) {
    partial = device_buffer(static_cast<std::size_t>(rl.K * rl.S) * partial_bytes, st);
    target = partial.address();
  }
  codegen::arg_block args;
  codegen::pack_reduce_args(args, d, rl, target, pl.leaves.data(), pl.scalars.data());
  void* params[] = {args.bytes};
  runtime::launch(reduce_family<RN>::main(rl.kr, rl.rr, rl.columns), launch_dim(reduce_grid(rl, sm)),
                  launch_dim(codegen::reduce_block_threads), 0, st, params);
  if (rl.S > 1) {
    struct {
      std::uint64_t out, partial;
      std::int64_t K, S, M;
    } fa{out, partial.address(), rl.K, rl.S, rl.M};
    void* fparams[] = {&fa};
    const index_t block = codegen::reduce_block_threads, per = block / codegen::finish_lanes(rl.S, block);
    runtime::launch(reduce_family<RN>::finish(), launch_dim(static_cast<unsigned>(std::clamp<index_t>((rl.K + per - 1) / per, 1, 65535))),
                    launch_dim(static_cast<unsigned>(block)), 0, st, fparams);
  }  // `partial` is freed in stream order, after the second stage
}

/// Queues reduction n into `out` (K contiguous elements of RN::value_type) on stream st.
template <class RN>
void launch_reduction(const RN& n, std::uintptr_t out, const stream_ref& st) {
  const int sm = device_info().sm_count;
  launch_planned_reduction(plan_reduction(n, sm), out, st, sm);
}

/// Queues reduction n straight into the destination `dst` (a cursor over dd, RN's shape, of RN's
/// value type): true where dst is contiguous and overlaps none of the operand's arrays; false,
/// with nothing queued, otherwise (the caller then goes through a temporary).
template <class RN>
bool launch_reduction_into(const RN& n, const codegen::array_cursor& dst, const dims& dd, const stream_ref& st) {
  index_t span = 1;
  for (std::size_t k = dd.rank; k-- > 0;) {
    if (dd.e[k] != 1 && dst.stride[k] != span) return false;
    span *= static_cast<index_t>(dd.e[k]);
  }
  const std::uintptr_t out = dst.base + static_cast<std::uintptr_t>(dst.offset * static_cast<index_t>(dst.elem_size));
  const std::uintptr_t out_end = out + static_cast<std::uintptr_t>(span) * dst.elem_size;
  const int sm = device_info().sm_count;
  const reduction_plan<RN> pl = plan_reduction(n, sm);
  const codegen::reduce_launch& rl = pl.rl;
  dims space;  // the operand's space as planned: [kept axes..., reduced axes...] (at most max_rank)
  space.rank = rl.kr + rl.rr;
  for (std::size_t j = 0; j < rl.kr; ++j) space.e[j] = static_cast<std::size_t>(rl.kext[j]);
  for (std::size_t j = 0; j < rl.rr; ++j) space.e[rl.kr + j] = static_cast<std::size_t>(rl.rext[j]);
  if (space.size() != 0 && span != 0)
    for (std::size_t i = 0; i < reduction_plan<RN>::P::leaves; ++i) {
      const codegen::array_cursor& c = pl.leaves[i];
      if (c.elem_size == 0) continue;  // a position, not memory
      std::uintptr_t lo, hi;
      codegen::detail::touched_range(c, space, lo, hi);
      if (lo < out_end && out < hi) return false;
    }
  launch_planned_reduction(pl, out, st, sm);
  return true;
}

}  // namespace loom::cuda::detail
