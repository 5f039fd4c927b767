// loom/cuda/assign.hpp: from `dy = expr` to a launched kernel.
//
// Order of work, as on the CPU (cpu/assign.hpp): check shapes (nothing is queued on a mismatch),
// make sure there is a device, bind the expression to the destination's iteration space (every
// leaf's address and strides), check aliasing, plan the layout (collapse, class, vector width,
// index width), fetch the expression type's kernel for that layout (one atomic load after the
// first launch), write the argument block and launch. Compound assignments (+= ...) are the
// elementwise map of the destination with the expression, like on the CPU.
//
// Aliasing: a leaf that reads the destination at the very index it writes is safe (dx = dx * dx
// + dx needs nothing); any other overlap goes through a temporary on the same stream.
#pragma once

#include <array>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "loom/core/error.hpp"
#include "loom/core/shape.hpp"
#include "loom/cpu/binding.hpp"
#include "loom/cuda/codegen/emit.hpp"
#include "loom/cuda/codegen/kernel.hpp"
#include "loom/cuda/codegen/layout.hpp"
#include "loom/cuda/options.hpp"
#include "loom/cuda/matmul.hpp"
#include "loom/cuda/reduce.hpp"
#include "loom/cuda/rows.hpp"
#include "loom/cuda/runtime/device.hpp"
#include "loom/cuda/runtime/launch.hpp"
#include "loom/cuda/runtime/memory.hpp"
#include "loom/cuda/runtime/stream.hpp"
#include "loom/cuda/tensor.hpp"
#include "loom/expr/elementwise.hpp"
#include "loom/expr/index_map.hpp"
#include "loom/expr/map.hpp"
#include "loom/expr/matmul.hpp"
#include "loom/expr/node.hpp"
#include "loom/expr/reduce.hpp"

namespace loom::cuda {

namespace detail {

/// The name of type T as the compiler spells it (for messages about expressions).
template <class T>
std::string type_name() {
  std::string_view f = __PRETTY_FUNCTION__;
  const std::size_t at = f.find("T = ");
  if (at == std::string_view::npos) return std::string(f);
  f.remove_prefix(at + 4);
  const std::size_t end = f.find_first_of(";]");
  return std::string(f.substr(0, end));
}

/// The error for an expression holding a node kind the CUDA backend cannot print yet.
template <class N>
[[noreturn]] void not_emittable() {
  throw cuda_error(
      "loom: the CUDA backend has no kernel generator yet for a node of this expression (elementwise "
      "operations, index maps and generators print one kernel; reductions run as kernels of their own when "
      "assigned, or in one row kernel; matmul runs through cuBLASLt, not a generated kernel); expression type: " +
      type_name<N>());
}

/// Blocks of a launch over `items` work items: enough to cover them, at most what fills the
/// device (its SMs times the blocks of 256 threads one SM holds) and the index margins.
inline unsigned grid_blocks(index_t items) {
  static const index_t cap = [] {
    const device_properties& p = device_info();
    const index_t per_sm = std::max<index_t>(1, p.max_threads_per_sm / codegen::block_threads);
    const index_t fill = std::max<index_t>(1, static_cast<index_t>(p.sm_count) * per_sm);
    return std::min<index_t>(fill, codegen::max_grid_threads / codegen::block_threads);
  }();
  const index_t want = (items + codegen::block_threads - 1) / codegen::block_threads;
  return static_cast<unsigned>(std::clamp<index_t>(want, 1, cap));
}

/// The cursor of a destination array over its own shape.
template <class Dst>
codegen::array_cursor destination_cursor(const Dst& dst, const dims& dd) {
  codegen::array_cursor c;
  c.base = dst.data().address();
  c.elem_size = sizeof(typename Dst::value_type);
  cpu::binding::identity(dd.rank).strides_of(dst.strides(), c.stride, c.offset);
  return c;
}

template <class Dst, class N>
void execute(Dst& dst, const N& n, const stream_ref* s, const options* o, bool fresh = false);

/// Temporaries an expression's launch reads; released (stream-ordered) after it is queued.
using held_temporaries = std::vector<std::shared_ptr<void>>;

/// N with every reduction evaluated first into a device tensor of its own shape (its kernels,
/// cuda/reduce.hpp) and read from there, every matmul likewise (cuBLASLt, cuda/matmul.hpp), and,
/// with copy_reshapes, the operand of every reshape too (the fallback where some reshape's
/// operand has strides that do not regroup: reshape of a transpose). type is the rewritten node type; make() queues the kernels on stream st and keeps
/// the temporaries in h until the launch that reads them is queued.
/// What materialised<N, Mode> evaluates into temporaries first: every reduction and matmul
/// (Mode 0), every reshape's operand too (copy_reshapes), or only the matmuls, keeping the
/// reductions for the kernels that fuse them (keep_reductions).
inline constexpr unsigned copy_reshapes = 1u, keep_reductions = 2u;

template <class N, unsigned Mode>
struct materialised {
  using type = N;
  static const N& make(const N& n, held_temporaries&, const stream_ref&, const options*) { return n; }
};

/// A device temporary of node n's value (evaluated by `fill(device address)`), as a leaf.
template <class T, class S, class Fill>
leaf_node<tensor_view<const T, S>, true> temporary_leaf(const S& shape, held_temporaries& h, const stream_ref& st,
                                                         Fill fill) {
  auto t = std::make_shared<tensor<T, S>>(shape, st);
  if (t->size() != 0) fill(*t);
  h.push_back(t);
  return leaf_node<tensor_view<const T, S>, true>{tensor_view<const T, S>(std::as_const(*t).data(), t->shape())};
}

template <class Op, class C, class... Args, unsigned R>
struct materialised<map_node<Op, C, Args...>, R> {
  using type = map_node<Op, C, typename materialised<Args, R>::type...>;
  static type make(const map_node<Op, C, Args...>& n, held_temporaries& h, const stream_ref& st, const options* o) {
    return std::apply(
        [&](const Args&... a) {
          return type(std::tuple<typename materialised<Args, R>::type...>(materialised<Args, R>::make(a, h, st, o)...),
                      n.shape());
        },
        n.args);
  }
};
template <class Arg, std::size_t... P, unsigned R>
struct materialised<permute_node<Arg, P...>, R> {
  using type = permute_node<typename materialised<Arg, R>::type, P...>;
  static type make(const permute_node<Arg, P...>& n, held_temporaries& h, const stream_ref& st, const options* o) {
    return type(materialised<Arg, R>::make(n.arg, h, st, o));
  }
};
template <class Arg, std::size_t A, unsigned R>
struct materialised<slice_node<Arg, A>, R> {
  using type = slice_node<typename materialised<Arg, R>::type, A>;
  static type make(const slice_node<Arg, A>& n, held_temporaries& h, const stream_ref& st, const options* o) {
    const index_t count = static_cast<index_t>(n.shape().extent(A));
    return type(materialised<Arg, R>::make(n.arg, h, st, o), n.begin, n.begin + count * n.step, n.step);
  }
};
template <class Arg, std::size_t A, unsigned R>
struct materialised<flip_node<Arg, A>, R> {
  using type = flip_node<typename materialised<Arg, R>::type, A>;
  static type make(const flip_node<Arg, A>& n, held_temporaries& h, const stream_ref& st, const options* o) {
    return type(materialised<Arg, R>::make(n.arg, h, st, o));
  }
};
template <class Arg, class S, unsigned R>
struct materialised<broadcast_node<Arg, S>, R> {
  using type = broadcast_node<typename materialised<Arg, R>::type, S>;
  static type make(const broadcast_node<Arg, S>& n, held_temporaries& h, const stream_ref& st, const options* o) {
    return type(materialised<Arg, R>::make(n.arg, h, st, o), n.shape());
  }
};
template <class Arg, std::size_t A, unsigned R>
struct materialised<pad_node<Arg, A>, R> {
  using type = pad_node<typename materialised<Arg, R>::type, A>;
  static type make(const pad_node<Arg, A>& n, held_temporaries& h, const stream_ref& st, const options* o) {
    return type(materialised<Arg, R>::make(n.arg, h, st, o), n.before, n.after, n.value);
  }
};
template <std::size_t A, class... Args, unsigned R>
struct materialised<concat_node<A, Args...>, R> {
  using type = concat_node<A, typename materialised<Args, R>::type...>;
  static type make(const concat_node<A, Args...>& n, held_temporaries& h, const stream_ref& st, const options* o) {
    return std::apply([&](const Args&... a) { return type(materialised<Args, R>::make(a, h, st, o)...); }, n.args);
  }
};
template <class Arg, class S, unsigned R>
struct materialised<reshape_node<Arg, S>, R> {
  using T = typename Arg::value_type;
  using AS = typename Arg::shape_type;
  using inner = materialised<Arg, R>;
  using leaf = leaf_node<tensor_view<const T, AS>, true>;
  using type = std::conditional_t<(R & copy_reshapes) != 0, reshape_node<leaf, S>, reshape_node<typename inner::type, S>>;
  static type make(const reshape_node<Arg, S>& n, held_temporaries& h, const stream_ref& st, const options* o) {
    if constexpr ((R & copy_reshapes) != 0) {
      auto a = inner::make(n.arg, h, st, o);
      return type(temporary_leaf<T>(n.arg.shape(), h, st, [&](auto& t) { execute(t, a, &st, o, true); }), n.shape());
    } else {
      return type(inner::make(n.arg, h, st, o), n.shape());
    }
  }
};
template <class Red, class Arg, unsigned Mask, bool Keep, unsigned R>
struct materialised<reduce_node<Red, Arg, Mask, Keep>, R> {
  using RN = reduce_node<Red, Arg, Mask, Keep>;
  using T = typename RN::value_type;
  using S = typename RN::shape_type;
  using type = std::conditional_t<(R & keep_reductions) != 0,
                                  reduce_node<Red, typename materialised<Arg, R>::type, Mask, Keep>,
                                  leaf_node<tensor_view<const T, S>, true>>;
  static type make(const RN& n, held_temporaries& h, const stream_ref& st, const options* o) {
    if constexpr ((R & keep_reductions) != 0) {
      return type(materialised<Arg, R>::make(n.arg, h, st, o));
    } else {
      return evaluated(n, h, st, o);
    }
  }

 private:
  static leaf_node<tensor_view<const T, S>, true> evaluated(const RN& n, held_temporaries& h, const stream_ref& st,
                                                            const options* o) {
    using inner = materialised<Arg, R>;  // nested reductions first
    using RN2 = reduce_node<Red, typename inner::type, Mask, Keep>;
    const RN2 n2(inner::make(n.arg, h, st, o));
    return temporary_leaf<T>(n.shape(), h, st, [&](auto& t) {
      if constexpr (!codegen::emittable<typename inner::type>) {
        not_emittable<typename inner::type>();
      } else {
        try {
          launch_reduction(n2, t.data().address(), st);
        } catch (const codegen::reshape_needs_copy&) {
          using inner3 = materialised<Arg, R | copy_reshapes>;
          if constexpr ((R & copy_reshapes) == 0 && codegen::emittable<typename inner3::type>) {
            const reduce_node<Red, typename inner3::type, Mask, Keep> n3(inner3::make(n.arg, h, st, o));
            launch_reduction(n3, t.data().address(), st);
          } else {
            throw;
          }
        }
      }
    });
  }
};

/// A product: evaluated by cuBLASLt into a device temporary (zeros where the inner extent is 0).
template <class A, class B, unsigned R>
struct materialised<matmul_node<A, B>, R> {
  using MN = matmul_node<A, B>;
  using T = typename MN::value_type;
  using S = typename MN::shape_type;
  using type = leaf_node<tensor_view<const T, S>, true>;
  static type make(const MN& n, held_temporaries& h, const stream_ref& st, const options* o) {
    return temporary_leaf<T>(n.shape(), h, st, [&](auto& t) {
      if (n.inner() != 0) execute(t, n, &st, o, true);
    });
  }
};

/// Where node x is a cuBLASLt-ready matrix (or, rank 1, a contiguous vector) of type T, its
/// memory; else x evaluated into a contiguous temporary of type T (kept in h) and that.
template <class T, class X>
memory_operand matrix_operand(const X& x, held_temporaries& h, const stream_ref& st, const options* o) {
  memory_operand m;
  if (as_memory<T>(x, m)) {
    const bool vector_ok = m.rank != 1 || m.d.e[0] <= 1 || m.stride[0] == 1;
    if (m.rank == 1 ? vector_ok : matrix_of(m).ok) return m;
  }
  using S = typename X::shape_type;
  auto t = std::make_shared<tensor<T, S>>(x.shape(), st);
  if (t->size() != 0) {
    if constexpr (std::is_same_v<typename X::value_type, T>)
      execute(*t, x, &st, o, true);
    else
      execute(*t, loom::detail::make_map<ops::cast<T>>(x), &st, o, true);
  }
  h.push_back(t);
  m.base = t->data().address();
  m.d = x.shape().to_dims();
  m.rank = m.d.rank;
  m.stride = {};
  index_t span = 1;
  for (std::size_t k = m.rank; k-- > 0;) {
    m.stride[k] = span;
    span *= static_cast<index_t>(m.d.e[k]);
  }
  return m;
}

/// n (a product with an epilogue cuBLASLt fuses: lt_root<N>) into dst as cuBLASLt calls; false
/// (nothing queued) where dst is not a row-major matrix of the product's type and shape, overlaps
/// an operand, or the bias does not run along the product's columns.
template <class Dst, class N>
bool launch_matmul_root(Dst& dst, const N& n, const dims& dd, const stream_ref& st, const options* o) {
  using L = lt_root<N>;
  using MN = typename L::product_type;
  using T = typename MN::value_type;
  if constexpr (!std::is_same_v<typename Dst::value_type, T>) {
    return false;
  } else if constexpr (!std::is_same_v<T, float> && !std::is_same_v<T, double>) {
    throw cuda_error("loom: matmul on the device takes float or double operands (cuBLASLt); cast the operands first");
  } else {
    const MN& mm = L::product(n);
    const dims pd = mm.shape().to_dims();
    if (!(pd == dd) || mm.inner() == 0) return false;
    memory_operand D;
    D.base = dst.data().address();
    D.d = dd;
    D.rank = dd.rank;
    const auto ds = dst.strides();
    for (std::size_t k = 0; k < dd.rank; ++k) D.stride[k] = static_cast<index_t>(ds[k]);
    const lt_matrix md = matrix_of(D);
    if (!md.ok || md.col_major || dd.size() == 0) return dd.size() == 0;
    held_temporaries held;
    const memory_operand A = matrix_operand<T>(mm.a, held, st, o), B = matrix_operand<T>(mm.b, held, st, o);
    std::uintptr_t bias = 0;
    memory_operand bm;
    if constexpr (L::has_bias) {
      const auto& b = L::bias(n);
      if (static_cast<index_t>(b.shape().extent(0)) != mm.cols()) return false;
      bm = matrix_operand<T>(b, held, st, o);
      bias = bm.base;
      if (overlaps(bm, sizeof(T), D)) return false;
    }
    if (overlaps(A, sizeof(T), D) || overlaps(B, sizeof(T), D)) return false;
    lt_product<T>(A, B, bias, L::epilogue, D, st, o != nullptr ? o->tf32 : tf32_default());
    return true;  // the temporaries are freed in stream order, after the calls that read them
  }
}

/// The launch of a bound elementwise expression, for every expression type: the family's kernel
/// for the planned layout, its argument block, the launch. cs[0] is the destination, cs[1..n)
/// the leaves as bound, sv the scalars. An operand that overlaps the destination other than at
/// the very index it is written (`fresh`: none can) sends the launch into a contiguous temporary
/// on the same stream, which a copy kernel then writes over the destination.
LOOM_NOINLINE inline void launch_bound(codegen::family_state& family, codegen::array_cursor* cs, std::size_t n,
                                       const codegen::scalar_value* sv, const dims& dd, bool fresh,
                                       const stream_ref& st, const options* o) {
  for (std::size_t i = 1; i < n && !fresh; ++i) {
    if (!codegen::alias_safe(cs[i], cs[0], dd)) {
      // (plan_layout rewrites the cursors it is given: the copy takes the two as they are here)
      const codegen::array_cursor dst = cs[0];
      cuda::detail::device_buffer tmp(dd.size() * dst.elem_size, st);
      codegen::array_cursor t = dst;
      t.base = reinterpret_cast<std::uintptr_t>(tmp.data());
      t.offset = 0;
      t.stride = {};
      index_t span = 1;
      for (std::size_t k = dd.rank; k-- > 0;) {
        t.stride[k] = span;
        span *= static_cast<index_t>(dd.e[k]);
      }
      cs[0] = t;
      launch_bound(family, cs, n, sv, dd, true, st, o);
      codegen::array_cursor copy[2] = {dst, t};
      const codegen::scalar_value none{};
      launch_bound(codegen::copy_family(family.desc().dst), copy, 2, &none, dd, true, st, o);
      return;  // the temporary is freed in stream order, after the copy that reads it
    }
  }
  const codegen::launch_shape ls = codegen::plan_layout(dd, cs, n, family.desc().lanes());
  const bool bake = o != nullptr ? o->bake_extents : bake_extents_default();
  // Leaves that read the very same elements (x * x * x) are loaded once: a kernel of its own.
  const codegen::family_state::shared_variant* shared = family.variant(ls, cs + 1);
  const codegen::kernel_desc& desc = shared != nullptr ? shared->desc : family.desc();
  const kernel_handle& k = bake ? codegen::baked_kernel(desc, ls, cs, n)
                           : shared != nullptr ? codegen::family_state::shared_kernel(*shared)
                                               : family.kernel(ls.key);
  codegen::arg_block args;
  codegen::pack_args(args, desc, ls, cs, sv, bake);
  // A contiguous kernel in vector mode runs elements / lanes vectors and a tail of fewer than
  // `lanes` elements on the same threads.
  const index_t items = ls.key.cls == codegen::layout_class::contiguous && ls.vec
                            ? std::max<index_t>(ls.elements / ls.lanes, ls.elements % ls.lanes)
                            : ls.units;
  void* params[] = {args.bytes};
  runtime::launch(k, launch_dim(grid_blocks(items)), launch_dim(codegen::block_threads), 0, st, params);
}

/// Evaluates node n into the device array dst (tensor or writable view) as one kernel on stream
/// *s (loom's default stream where s is null). `fresh`: dst is a temporary just allocated for an
/// overlap, which nothing read can overlap (the spans of concat and pad operands reach past their
/// arrays and could hold it: no second temporary).
template <class Dst, class N>
void execute(Dst& dst, const N& n, const stream_ref* s, const options* o, bool fresh) {
  using T = typename Dst::value_type;
  const dims dd = dst.shape().to_dims();
  const dims ed = n.shape().to_dims();
  check_assignable(ed, dd);
  if constexpr (has_matmul_v<N>) {
    // a product with an epilogue cuBLASLt fuses: one call; else every product into a temporary
    // (cuBLASLt), then the rest (which may hold reductions) as the other kinds of expression
    require_device();
    const stream_ref st = s != nullptr ? *s : default_stream();
    if constexpr (lt_root<N>::value) {
      if (launch_matmul_root(dst, n, dd, st, o)) return;
      if constexpr (is_matmul_node<N>::value) {
        if (fresh && n.inner() != 0)
          throw cuda_error("loom: internal: a product into a fresh temporary was refused by cuBLASLt's planner");
      }
    }
    if constexpr (is_matmul_node<N>::value) {
      held_temporaries held;
      const auto m = materialised<N, 0u>::make(n, held, st, o);
      execute(dst, m, &st, o, fresh);
    } else {
      held_temporaries held;
      const auto m = materialised<N, keep_reductions>::make(n, held, st, o);
      execute(dst, m, &st, o, fresh);
    }
  } else if constexpr (has_reduce_v<N>) {
    // every reduction into a temporary of its own (innermost first), then the rest as one kernel
    require_device();
    const stream_ref st = s != nullptr ? *s : default_stream();
    if constexpr (row_rank_v<N> > 0 && codegen::emittable<N>) {
      // reductions along the rows, broadcast back: one kernel (cuda/rows.hpp) where it applies
      if (launch_rows<T>(destination_cursor(dst, dd), n, dd, st)) return;
    }
    if constexpr (lone_reduction<N> && std::is_same_v<T, typename N::value_type>) {
      // one reduction of the destination's type and shape: straight into it where it is
      // contiguous and no operand overlaps it (no temporary, no copy kernel)
      if (dd == ed) {
        try {
          if (launch_reduction_into(n, destination_cursor(dst, dd), dd, st)) return;
        } catch (const codegen::reshape_needs_copy&) {
          // (nothing was queued: the temporaries' path below copies the reshape's operand)
        }
      }
    }
    held_temporaries held;
    const auto m = materialised<N, 0u>::make(n, held, st, o);
    execute(dst, m, &st, o, fresh);
  } else if constexpr (!codegen::emittable<N>) {
    not_emittable<N>();
  } else {
    require_device();
    if (dd.size() == 0) return;
    const stream_ref st = s != nullptr ? *s : default_stream();

    using P = codegen::param_count<N>;
    std::array<codegen::array_cursor, P::leaves + 1> cs;
    std::array<codegen::scalar_value, P::scalars + 1> sv;
    cs[0] = destination_cursor(dst, dd);
    codegen::operand_sink sink{cs.data() + 1, sv.data()};
    try {
      codegen::binder<N>::bind(n, sink, cpu::binding::identity(dd.rank).broadcast_operand(dd, ed));
    } catch (const codegen::reshape_needs_copy&) {
      using R = materialised<N, copy_reshapes>;
      if constexpr (!std::is_same_v<typename R::type, N>) {
        held_temporaries held;
        const auto m = R::make(n, held, st, o);
        execute(dst, m, &st, o, fresh);
        return;  // the temporaries are freed in stream order, after the launch that reads them
      } else {
        throw;
      }
    }

    launch_bound(codegen::kernel_family<N, T>::state(), cs.data(), cs.size(), sv.data(), dd, fresh, st, o);
  }
}

template <assign_op Op, class Dst, class Src>
void assign(Dst& dst, const Src& src, const stream_ref* s, const options* o) {
  using D = std::remove_cvref_t<Dst>;
  using T = typename D::value_type;
  static_assert(D::space == memory_space::device, "loom: this destination is not a device array");
  if constexpr (D::read_only) {
    static_assert(cannot_write_through_a_device_view_of_const_data<D>::value);
  } else if constexpr (scalar_type<Src>) {
    assign<Op>(dst, scalar_node<T>{static_cast<T>(src)}, s, o);
  } else {
    static_assert(std::remove_cvref_t<Src>::space != memory_space::host,
                  "loom: a device destination cannot take an expression of host arrays; use cuda::copy");
    static_assert(assignment_shape_check<shape_type_of<Src>, typename D::shape_type>::value);
    loom::detail::check_destination(dst);
    if constexpr (Op == assign_op::set) {
      execute(dst, as_node(src), s, o);
    } else {
      using op = std::conditional_t<Op == assign_op::add, ops::add,
                                    std::conditional_t<Op == assign_op::sub, ops::sub,
                                                       std::conditional_t<Op == assign_op::mul, ops::mul, ops::div>>>;
      execute(dst, loom::detail::make_map<op>(dst, src), s, o);
    }
  }
}

}  // namespace detail

/// Evaluates an expression of device arrays into a new device tensor: cuda::eval(exp(dx) + 1.f).
/// Throws loom::cuda_error without a device.
template <class E>
  requires expression<E>
auto eval(const E& e) {
  return tensor<value_type_of<E>, shape_type_of<E>>(e);
}

/// eval() with the kernel (and the new tensor's memory) on stream s.
template <class E>
  requires expression<E>
auto eval(const E& e, stream_ref s) {
  using R = tensor<value_type_of<E>, shape_type_of<E>>;
  auto n = as_node(e);
  R r(loom::detail::shape_for_construction<shape_type_of<E>>(n.shape().to_dims()), s);
  r.assign(n, s);
  return r;
}

}  // namespace loom::cuda
