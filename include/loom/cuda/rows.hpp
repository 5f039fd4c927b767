// loom/cuda/rows.hpp: expressions whose reductions run along their rows and are broadcast back
// (softmax, layer norm, RMS norm) as one row kernel (cuda/codegen/row_kernel.hpp).
//
// The expression type qualifies when every reduction in it is reached through elementwise maps
// only (from the root, or from the operand of another such reduction), keeps its dimensions, and
// reduces the same number m of trailing axes: row_rank_v<N> is that m (0: no reduction; -1: the
// expression does not have that form). At run time the launch also needs each reduction's
// operand to span the destination's trailing extents, every array to step along the row by one
// stride (the trailing axes merge), no overlap with the destination other than an element's own,
// and enough rows for the device or short ones; otherwise cuda/assign.hpp runs the reductions as
// kernels of their own (cuda/reduce.hpp), as before.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "loom/core/shape.hpp"
#include "loom/cpu/binding.hpp"
#include "loom/cuda/codegen/emit.hpp"
#include "loom/cuda/codegen/kernel.hpp"
#include "loom/cuda/codegen/layout.hpp"
#include "loom/cuda/codegen/row_kernel.hpp"
#include "loom/cuda/runtime/device.hpp"
#include "loom/cuda/runtime/launch.hpp"
#include "loom/cuda/runtime/module_cache.hpp"
#include "loom/cuda/runtime/stream.hpp"
#include "loom/cuda/reduce.hpp"
#include "loom/expr/map.hpp"
#include "loom/expr/reduce.hpp"
#include "loom/tensor/tensor.hpp"

namespace loom::cuda::detail {

/// m of two parts of one expression: -1 if either is -1 or they differ, else the one that is not 0.
constexpr int combine_row_rank(int a, int b) {
  if (a < 0 || b < 0) return -1;
  if (a == 0) return b;
  if (b == 0 || a == b) return a;
  return -1;
}

/// The trailing axes m that every reduction of N reduces (see the top of this file).
template <class N>
struct row_rank {
  static constexpr int value = has_reduce_v<N> ? -1 : 0;  // an index map over a reduction: no
};
template <class Op, class C, class... Args>
struct row_rank<map_node<Op, C, Args...>> {
  static constexpr int value = [] {
    int m = 0;
    ((m = combine_row_rank(m, row_rank<Args>::value)), ...);
    return m;
  }();
};
template <class Red, class Arg, unsigned Mask, bool Keep>
struct row_rank<reduce_node<Red, Arg, Mask, Keep>> {
  static constexpr int value = [] {
    constexpr std::size_t r = Arg::shape_type::rank;
    int m = 0;
    while (m < int(r) && ((Mask >> (r - 1 - std::size_t(m))) & 1u)) ++m;
    const unsigned trailing = m == 0 ? 0u : ((1u << m) - 1u) << (r - std::size_t(m));
    if (!Keep || m == 0 || Mask != trailing) return -1;
    return combine_row_rank(m, row_rank<Arg>::value);
  }();
};
template <class N>
inline constexpr int row_rank_v = row_rank<N>::value;

/// The number of reduction nodes in N (an upper bound on a row kernel's reductions).
template <class N>
struct reduce_count;
namespace row_detail {
template <class List>
struct reduce_count_list;
template <class... Ns>
struct reduce_count_list<type_list<Ns...>> {
  static constexpr std::size_t value = (std::size_t(0) + ... + reduce_count<Ns>::value);
};
}  // namespace row_detail
template <class N>
struct reduce_count {
  static constexpr std::size_t value =
      (is_reduce_node<N>::value ? 1 : 0) + row_detail::reduce_count_list<node_children_t<N>>::value;
};

/// The row kernels of expression type N written into elements of type D.
template <class N, class D>
struct row_family {
  static const codegen::row_desc& desc() {
    static const codegen::row_desc d = [] {
      codegen::emit_state st;
      st.enable_rows();
      codegen::emitted e = codegen::emitter<N>::emit(st);
      return codegen::describe_rows(st, std::move(e), dtype_of<D>);
    }();
    return d;
  }
  /// The kernel for kept rank kr, G threads per row, the row cache (K, V) and the binding
  /// (bound or general): printed once, then the same strings.
  static constexpr std::size_t slot_count = 2 * max_rank * 7 * 2 * 2;
  static std::size_t slot_of(std::size_t kr, int G, int K, int V, bool bound) {
    std::size_t k = 0;  // K: 0, 1, 2, 4, ..., 32
    while (k < 6 && (K >> k) > 1) ++k;
    k = K == 0 ? 0 : k + 1;
    return ((((G == 32 ? 0 : max_rank) + kr - 1) * 7 + k) * 2 + (V > 1 ? 1 : 0)) * 2 + (bound ? 1 : 0);
  }
  static const codegen::generated_kernel& generated(std::size_t kr, int G, int K = 0, int V = 1, bool bound = false) {
    struct slot {
      std::once_flag once;
      codegen::generated_kernel k;
    };
    static std::array<slot, slot_count> slots;
    slot& s = slots[slot_of(kr, G, K, V, bound)];
    std::call_once(s.once, [&] {
      codegen::kernel_text t = codegen::print_row_kernel(desc(), kr, G, K, V, bound);
      s.k = codegen::generated_kernel{std::move(t.name), t.source()};
    });
    return s.k;
  }
  static const codegen::generated_kernel& generated(const codegen::row_launch& rl) {
    return generated(rl.kr, rl.G, rl.K, rl.V, rl.bound);
  }
  static const kernel_handle& kernel(const codegen::row_launch& rl) {
    static std::array<runtime::cached_kernel, slot_count> kernels;
    return kernels[slot_of(rl.kr, rl.G, rl.K, rl.V, rl.bound)].get([&] {
      const codegen::generated_kernel& g = generated(rl);
      return kernel_request{g.source, g.name, {}, {}};
    });
  }
};

/// A row launch planned on the host: the shape, the cursors over [kept axes..., the row] (the
/// destination first) and scalars, and which reductions reuse an earlier one.
template <class N>
struct row_plan {
  using P = codegen::param_count<N>;
  bool ok = false;
  codegen::row_launch rl;
  std::array<codegen::array_cursor, P::leaves + 1> cs{};
  std::array<codegen::scalar_value, P::scalars + 1> sv{};
  std::array<long long, reduce_count<N>::value + 1> same{};
};

namespace row_detail {
/// Rewrites cursor c over dims d (rank r, the last m axes the row) to [kept axes (kr of them),
/// the row]: false where the row's axes do not merge into one stride.
inline bool collapse_row(codegen::array_cursor& c, const dims& d, std::size_t m, std::size_t kr) {
  const std::size_t r = d.rank;
  index_t cs = 0;
  if (!codegen::merged_stride(d.e.data(), c.stride.data(), r - m, r, cs)) return false;
  std::array<index_t, max_rank> st{};
  for (std::size_t j = 0; j + m < r; ++j) st[j] = c.stride[j];
  st[kr] = cs;
  c.stride = st;
  codegen::fold_offset(c);
  return true;
}
inline bool same_cursor(const codegen::array_cursor& a, const codegen::array_cursor& b, std::size_t kr) {
  if (a.base != b.base || a.elem_size != b.elem_size) return false;
  for (std::size_t j = 0; j <= kr; ++j)
    if (a.stride[j] != b.stride[j]) return false;
  return true;
}

/// The row cache of a launch: K elements of the cached leaf per thread (the smallest power of
/// two that covers the row, at most 32 and 128 bytes), in 16-byte groups where the leaf's rows
/// are aligned and contiguous and the row's length a multiple of the group, else one at a time;
/// which candidate leaves read the cached array; whether the destination takes whole groups.
inline void plan_row_cache(codegen::row_launch& rl, const codegen::row_desc& d, const codegen::array_cursor* cs) {
  rl.K = 0;
  rl.V = 1;
  rl.hits = 0;
  rl.ovec = false;
  if (d.cached < 0) return;
  const auto L = static_cast<std::size_t>(d.cached);
  const std::size_t es = codegen::dtype_size(d.desc.leaves[L]);
  const index_t per = (rl.C + rl.G - 1) / rl.G;
  const int W = codegen::row_vector_width(d.desc.leaves[L]);
  const auto aligned_rows = [&](const codegen::array_cursor& c) {  // contiguous rows on 16-byte boundaries
    return c.stride[rl.kr] == 1 && codegen::kept_starts_aligned(c, rl.kr, W);
  };
  const bool vec = W > 1 && rl.C % W == 0 && aligned_rows(cs[1 + L]);
  int K = vec ? W : 1;
  while (K < per) K *= 2;
  if (K > 32 || static_cast<std::size_t>(K) * es > 128) return;
  rl.K = K;
  rl.V = vec ? W : 1;
  for (std::size_t k : d.candidates)
    if (same_cursor(cs[1 + k], cs[1 + L], rl.kr)) rl.hits |= std::uint64_t(1) << k;
  const std::size_t ds = codegen::dtype_size(d.desc.dst);
  rl.ovec = vec && static_cast<std::size_t>(W) * ds <= 16 && aligned_rows(cs[0]);
}
}  // namespace row_detail

/// Plans expression n written into dst (dims dd) as a row kernel for a device of sm_count
/// multiprocessors; plan.ok is false where it does not apply (the caller goes the other way).
template <class D, class N>
row_plan<N> plan_rows(const N& n, const codegen::array_cursor& dst, const dims& dd, int sm_count) {
  constexpr int M = row_rank_v<N>;
  static_assert(M > 0);
  row_plan<N> pl;
  const std::size_t m = static_cast<std::size_t>(M);
  if (dd.rank < m) return pl;
  codegen::row_launch& rl = pl.rl;
  rl.R = rl.C = 1;
  std::array<index_t, max_rank> row_ext{};
  for (std::size_t t = 0; t < dd.rank; ++t) {
    const index_t e = static_cast<index_t>(dd.e[t]);
    if (t + m < dd.rank)
      rl.R *= e;
    else
      rl.C *= row_ext[t + m - dd.rank] = e;
  }
  if (rl.R == 0 || rl.C == 0) return pl;  // empty: the reductions' own kernels say what that means
  // Few long rows: the reductions' own kernels split each row across the device instead.
  if (rl.R < std::max(1, sm_count) && rl.C > 4096) return pl;
  const dims ed = n.shape().to_dims();
  pl.cs[0] = dst;
  codegen::operand_sink sink{pl.cs.data() + 1, pl.sv.data()};
  sink.row_rank = m;
  sink.row_extents = row_ext.data();
  try {
    codegen::binder<N>::bind(n, sink, cpu::binding::identity(dd.rank).broadcast_operand(dd, ed));
  } catch (const codegen::not_a_row&) {
    return pl;
  } catch (const codegen::reshape_needs_copy&) {
    return pl;
  }
  for (std::size_t i = 1; i <= sink.leaf_count; ++i)
    if (!codegen::alias_safe(pl.cs[i], pl.cs[0], dd)) return pl;  // the general path takes a temporary
  rl.kr = std::max<std::size_t>(dd.rank - m, 1);
  for (std::size_t j = 0; j < rl.kr; ++j) rl.kext[j] = dd.rank > m ? static_cast<index_t>(dd.e[j]) : 1;
  for (std::size_t i = 0; i <= sink.leaf_count; ++i)
    if (!row_detail::collapse_row(pl.cs[i], dd, m, rl.kr)) return pl;
  // A reduction reuses an earlier one of the same computation over the same arrays and scalars.
  const codegen::row_desc& d = row_family<N, D>::desc();
  for (std::size_t j = 0; j < d.stages.size(); ++j) {
    const codegen::row_stage& s = d.stages[j];
    pl.same[j] = -1;
    for (std::size_t t : s.twins) {
      const codegen::row_stage& o = d.stages[t];
      bool eq = true;
      for (std::size_t k = 0; eq && k < s.leaf_end - s.leaf_begin; ++k)
        eq = row_detail::same_cursor(pl.cs[1 + s.leaf_begin + k], pl.cs[1 + o.leaf_begin + k], rl.kr);
      for (std::size_t k = 0; eq && k < s.scalar_end - s.scalar_begin; ++k)
        eq = std::equal(std::begin(pl.sv[s.scalar_begin + k].bytes), std::end(pl.sv[s.scalar_begin + k].bytes),
                        std::begin(pl.sv[o.scalar_begin + k].bytes));
      if (eq) {
        pl.same[j] = static_cast<long long>(t);
        break;
      }
    }
  }
  rl.G = rl.C <= 1024 ? 32 : 256;
  row_detail::plan_row_cache(rl, d, pl.cs.data());
  // The bound kernel where every repeated reduction reuses its first twin and (with the cache)
  // every candidate reads the cached array: softmax and layer norm written over one array.
  rl.bound = true;
  for (std::size_t j = 0; j < d.stages.size(); ++j)
    rl.bound = rl.bound && pl.same[j] == (d.stages[j].twins.empty() ? -1 : static_cast<long long>(d.stages[j].twins.front()));
  if (rl.K > 0)
    for (std::size_t k : d.candidates) rl.bound = rl.bound && ((rl.hits >> k) & 1u) != 0;
  pl.ok = true;
  return pl;
}

/// Blocks of a row launch: a group of G threads per row, a block for every 256 / G rows (the
/// kernel strides over the rows only beyond 2^30 blocks). A grid of 8 blocks per multiprocessor
/// striding over the rows ran 1.6 waves where the cached kernels fit 5 blocks per
/// multiprocessor: the blocks of the second wave started after the first had done all their
/// rows.
inline unsigned row_grid(const codegen::row_launch& rl) {
  const index_t per_block = codegen::row_block_threads / rl.G;
  return static_cast<unsigned>(std::clamp<index_t>((rl.R + per_block - 1) / per_block, 1, index_t(1) << 30));
}

/// The row plan of evaluating n into a new contiguous tensor (cuda::eval), for inspection
/// without a device (the destination's address stands apart from every leaf's).
template <class N>
row_plan<N> plan_rows_of_eval(const N& n, int sm_count) {
  using T = typename N::value_type;
  const dims d = n.shape().to_dims();
  codegen::array_cursor dc;
  dc.base = std::uintptr_t(1) << 48;
  dc.elem_size = sizeof(T);
  cpu::binding::identity(d.rank).strides_of(loom::detail::row_major_strides(n.shape()), dc.stride, dc.offset);
  return plan_rows<T>(n, dc, d, sm_count);
}

/// Queues n, written into elements of type T at destination cursor dc (dims dd), as one row
/// kernel on stream st; false (nothing queued) where it does not apply.
template <class T, class N>
bool launch_rows(const codegen::array_cursor& dc, const N& n, const dims& dd, const stream_ref& st) {
  const int sm = device_info().sm_count;
  const row_plan<N> pl = plan_rows<T>(n, dc, dd, sm);
  if (!pl.ok) return false;
  const codegen::row_desc& d = row_family<N, T>::desc();
  codegen::arg_block args;
  codegen::pack_row_args(args, d, pl.rl, pl.cs.data(), pl.sv.data(), pl.same.data());
  void* params[] = {args.bytes};
  runtime::launch(row_family<N, T>::kernel(pl.rl), launch_dim(row_grid(pl.rl)),
                  launch_dim(codegen::row_block_threads), 0, st, params);
  return true;
}

}  // namespace loom::cuda::detail
