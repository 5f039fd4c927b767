// loom/cpu/matmul.hpp: contractions on the CPU - a GEMM with fused prologue and epilogue.
//
//   h = relu(matmul(a, w) + bias);     one GEMM; relu(tile + bias) is applied to each finished
//                                      tile (bias read at the tile's coordinates) before the store
//   h = matmul(a * 2.f, transpose(w)); a * 2.f is evaluated a run at a time while A is packed;
//                                      transpose(w) is read in place through its strides
//
// The plan (plan/plan.hpp, matmul_summary) decides; this file carries it out:
//
//   * The root f(matmul(a, b), rest...) with f elementwise over the product's shape runs as
//     gemm_batched over the batch axes of the output. Each finished tile goes to an epilogue that
//     runs f's evaluator over the tile's rows, the product's evaluator reading the tile itself
//     (through a thread-local window), rest... read at the tile's coordinates. A bare product is
//     stored by the engine's own store.
//   * An operand is read in place when it is a tensor or view under affine index maps
//     (transpose, slice, flip, broadcast: a pointer and two strides per batch), evaluated while
//     packed when it is any other expression free of reductions and matmuls (a row_run_source
//     whose reader runs the operand's evaluator over the run), and materialised first otherwise.
//   * A matmul anywhere else is materialised by its evaluator into a tensor of its own shape (as
//     a reduction built outside a plan does), and read like one.
//   * Aliasing: the operands are read while tiles are stored, so a destination overlapping them
//     (a = matmul(a, b)) goes through a temporary; rest... may read the destination at the
//     element it writes (o += matmul(a, b)).
//   * float and double run on the packed engine; integer products on a plain loop.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "loom/core/shape.hpp"
#include "loom/cpu/assign.hpp"
#include "loom/cpu/binding.hpp"
#include "loom/cpu/evaluator.hpp"
#include "loom/cpu/gemm/driver.hpp"
#include "loom/cpu/gemm/epilogue.hpp"
#include "loom/cpu/gemm/source.hpp"
#include "loom/cpu/index_eval.hpp"
#include "loom/cpu/loop_nest.hpp"
#include "loom/cpu/tiled.hpp"
#include "loom/cpu/traversal.hpp"
#include "loom/expr/index_map.hpp"
#include "loom/expr/matmul.hpp"
#include "loom/plan/plan.hpp"
#include "loom/tensor/tensor.hpp"

namespace loom {
namespace cpu {

namespace detail {

/// The finished tile an epilogue is running over: tile(i, j) = C(i0 + i, j0 + j).
struct tile_window {
  const void* tile = nullptr;
  index_t ld = 0;
  index_t i0 = 0;
  index_t j0 = 0;
};

/// Per-thread state of matmul evaluation: which product node's evaluator reads tiles (set while
/// the fused root's evaluator is built), the tile being stored, and explain()'s dry run.
struct matmul_state {
  const void* fuse_target = nullptr;
  const tile_window* window = nullptr;
  bool dry = false;
};
inline matmul_state& matmul_tls() {
  static thread_local matmul_state s;
  return s;
}

/// Products materialised during one evaluation on this thread, so that equal products (same
/// type and operands, e.g. the scores of a softmax written through `auto`, read three times) are
/// computed once. Entries live while a scope is open; evaluators keep their tensors alive.
struct matmul_cache {
  struct entry {
    const void* tag;
    const void* node;
    bool (*equal)(const void*, const void*);
    std::shared_ptr<void> tensor;
  };
  std::vector<entry> entries;
  int depth = 0;
  static matmul_cache& current() {
    static thread_local matmul_cache c;
    return c;
  }
};
/// Entries made inside a scope are dropped when it closes (their nodes may be gone then).
struct matmul_cache_scope {
  std::size_t size;
  matmul_cache_scope() : size(matmul_cache::current().entries.size()) { ++matmul_cache::current().depth; }
  ~matmul_cache_scope() {
    matmul_cache& c = matmul_cache::current();
    --c.depth;
    c.entries.resize(size);
  }
  matmul_cache_scope(const matmul_cache_scope&) = delete;
  matmul_cache_scope& operator=(const matmul_cache_scope&) = delete;
};

/// Makes explain() build matmul evaluators without running any product.
struct matmul_dry_scope {
  bool saved;
  matmul_dry_scope() : saved(matmul_tls().dry) { matmul_tls().dry = true; }
  ~matmul_dry_scope() { matmul_tls().dry = saved; }
  matmul_dry_scope(const matmul_dry_scope&) = delete;
  matmul_dry_scope& operator=(const matmul_dry_scope&) = delete;
};

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// The evaluator of a product read by its consumer
// ---------------------------------------------------------------------------------------------

/// Two products are equal where their operands are (the same arrays, the same expressions).
template <class A, class B>
struct same_node<matmul_node<A, B>> {
  static bool eq(const matmul_node<A, B>& x, const matmul_node<A, B>& y) {
    return node_equal(x.a, y.a) && node_equal(x.b, y.b);
  }
};

template <class A, class B>
struct evaluator<matmul_node<A, B>> {
  using node_type = matmul_node<A, B>;
  using value_type = typename node_type::value_type;
  using held = tensor<value_type, typename node_type::shape_type>;

  cursor c;
  const value_type* row = nullptr;
  index_t inner = 0;
  std::size_t outer = 0;
  bool tile_mode = false;  // reads the finished tile of the GEMM it is the epilogue of
  std::shared_ptr<held> own;

  evaluator(const node_type& n, const binding& b) {
    detail::matmul_state& st = detail::matmul_tls();
    if (st.fuse_target == static_cast<const void*>(&n)) {
      tile_mode = true;
      return;
    }
    std::array<index_t, max_rank> strides{};
    const auto rs = loom::detail::row_major_strides(n.shape());
    for (std::size_t k = 0; k < node_type::rank; ++k) strides[k] = rs[k];
    if (!st.dry) {
      detail::matmul_cache& cache = detail::matmul_cache::current();
      const void* tag = &detail::type_tag<node_type>::id;
      for (auto& e : cache.entries)
        if (e.tag == tag && e.equal(e.node, &n)) own = std::static_pointer_cast<held>(e.tensor);
      if (!own) {
        context_scope none(nullptr);
        own = std::make_shared<held>(n.shape());
        execute(*own, n);
        if (cache.depth > 0)
          cache.entries.push_back({tag, &n,
                                   [](const void* x, const void* y) {
                                     return node_equal(*static_cast<const node_type*>(x),
                                                       *static_cast<const node_type*>(y));
                                   },
                                   own});
      }
      c.base = own->data();
    }
    c.elem_size = sizeof(value_type);
    binding nb = b;
    nb.node_rank = node_type::rank;
    nb.strides_of(strides, c.stride, c.offset);
  }
  template <class Fn>
  void for_each_cursor(Fn&& f) {
    if (!tile_mode) f(c);
  }
  void prepare(const loop_space& s) {
    outer = s.outer_rank();
    inner = tile_mode ? 1 : c.stride[outer];
  }
  LOOM_INLINE void set_row(const index_t* idx) {
    if (tile_mode) {
      const detail::tile_window& w = *detail::matmul_tls().window;
      row = static_cast<const value_type*>(w.tile) + (idx[outer - 1] - w.i0) * w.ld - w.j0;
      return;
    }
    row = static_cast<const value_type*>(c.base) + cursor_row(c, outer, idx);
  }
  template <class M>
  LOOM_INLINE value_type scalar(index_t i) const {
    if (M::contiguous || tile_mode) return row[i];
    return row[i * inner];
  }
  template <class M, class F>
  LOOM_INLINE packet_t<value_type, F> packet(index_t i) const {
    if (M::contiguous || inner == 1) return load_packet<F>(row + i);
    if (inner == 0) return broadcast_packet<F>(row[0]);
    return gather_packet<F>(row + i * inner, inner);
  }
};

namespace detail {

// ---------------------------------------------------------------------------------------------
// Operands: read in place, evaluated while packed, or materialised
// ---------------------------------------------------------------------------------------------

/// True where X is an array under affine index maps only: one pointer and strides reach it.
template <class X>
struct affine_array : std::false_type {};
template <class Arr, bool V>
struct affine_array<leaf_node<Arr, V>> : std::true_type {};
template <class Arg, std::size_t... P>
struct affine_array<permute_node<Arg, P...>> : affine_array<Arg> {};
template <class Arg, std::size_t Ax>
struct affine_array<slice_node<Arg, Ax>> : affine_array<Arg> {};
template <class Arg, std::size_t Ax>
struct affine_array<flip_node<Arg, Ax>> : affine_array<Arg> {};
template <class Arg, class S>
struct affine_array<broadcast_node<Arg, S>> : affine_array<Arg> {};

enum class operand_kind { in_place, packed_expression, materialised };

template <class X>
constexpr operand_kind operand_kind_of() {
  if constexpr (affine_array<X>::value)
    return operand_kind::in_place;
  else if constexpr (loom::detail::packable_operand_v<X>)
    return operand_kind::packed_expression;
  else
    return operand_kind::materialised;
}

/// One operand of a product, ready to hand sources (one per batch) to the engine.
template <class X>
struct gemm_operand {
  using U = typename X::value_type;
  static constexpr std::size_t rx = X::rank;
  static constexpr operand_kind kind = operand_kind_of<X>();
  using lane = typename traversal<X, U>::lane_class;

  dims xd;
  const U* base = nullptr;
  std::array<index_t, max_rank> st{};
  index_t off = 0;
  std::optional<tensor<U, typename X::shape_type>> own;
  std::optional<evaluator<X>> ev;
  std::vector<std::pair<std::uintptr_t, std::uintptr_t>> ranges;  // memory it reads

  explicit gemm_operand(const X& x) : xd(x.shape().to_dims()) {
    auto note = [&](cursor& c) {
      if (c.elem_size == 0 || xd.size() == 0) return;
      std::uintptr_t lo, hi;
      touched_range(c, xd, lo, hi);
      ranges.emplace_back(lo, hi);
    };
    if constexpr (kind == operand_kind::in_place) {
      evaluator<X> e(x, binding::identity(rx));
      e.for_each_cursor([&](cursor& c) {
        note(c);
        base = static_cast<const U*>(c.base);
        st = c.stride;
        off = c.offset;
      });
    } else if constexpr (kind == operand_kind::packed_expression) {
      ev.emplace(x, binding::identity(rx));
      ev->for_each_cursor(note);
      loop_space s;
      s.rank = rx;
      for (std::size_t k = 0; k < rx; ++k) s.extent[k] = static_cast<index_t>(xd.e[k]);
      ev->prepare(s);
    } else {
      own.emplace(x.shape());
      {
        context_scope none(nullptr);
        execute(*own, x);
      }
      base = own->data();
      const auto s = own->strides();
      for (std::size_t k = 0; k < rx; ++k) st[k] = s[k];
    }
  }

  bool overlaps(std::uintptr_t lo, std::uintptr_t hi) const {
    for (auto& r : ranges)
      if (!(r.second <= lo || hi <= r.first)) return true;
    return false;
  }

  /// The operand's batch index for the output's batch index ob (of rank nb), broadcast.
  std::array<index_t, max_rank> batch_index(const index_t* ob, std::size_t nb) const {
    std::array<index_t, max_rank> idx{};
    for (std::size_t d = 0; d + 2 < rx; ++d) idx[d] = xd.e[d] == 1 ? 0 : ob[d + nb - (rx - 2)];
    return idx;
  }

  /// The source of the matrix at output batch index ob.
  auto source(const index_t* ob, std::size_t nb) const {
    const std::array<index_t, max_rank> idx = batch_index(ob, nb);
    if constexpr (kind == operand_kind::packed_expression) {
      return gemm::row_runs<U>([this, idx](index_t r, index_t c0, index_t n, U* out) {
        evaluator<X> e = *ev;
        std::array<index_t, max_rank> at = idx;
        at[rx - 2] = r;
        e.set_row(at.data());
        strided_writer<U> w;
        w.row = out - c0;
        w.inner = 1;
        run_inner<general_mode, lane>(w, e, c0, c0 + n);
      });
    } else {
      index_t o = off;
      for (std::size_t d = 0; d + 2 < rx; ++d) o += idx[d] * st[d];
      return gemm::strided(base + o, st[rx - 2], st[rx - 1]);
    }
  }

  std::string describe() const {
    if constexpr (kind == operand_kind::in_place)
      return "read in place (row stride " + std::to_string(st[rx - 2]) + ", column stride " +
             std::to_string(st[rx - 1]) + ")";
    else if constexpr (kind == operand_kind::packed_expression)
      return "an expression evaluated while packed (no temporary)";
    else
      return "materialised first (" + std::to_string(xd.size() * sizeof(U)) + " bytes)";
  }
};

/// The plain product for element types the packed engine does not cover (integers): a row of
/// C at a time, B converted once.
template <class P>
void simple_product(index_t M, index_t N, index_t K, const gemm::operand<P>& a, const gemm::operand<P>& b,
                    const gemm::tile_sink<P>& epi) {
  std::vector<P> bm(static_cast<std::size_t>(K * N)), arow(static_cast<std::size_t>(K)),
      crow(static_cast<std::size_t>(N));
  for (index_t k = 0; k < K; ++k) b.read(k, 0, N, bm.data() + k * N);
  for (index_t i = 0; i < M; ++i) {
    if (K > 0) a.read(i, 0, K, arow.data());
    for (index_t j = 0; j < N; ++j) crow[std::size_t(j)] = P(0);
    for (index_t k = 0; k < K; ++k) {
      const P x = arow[std::size_t(k)];
      const P* br = bm.data() + k * N;
      // integers wrap as elementwise * and + do (signed overflow would be undefined behaviour)
      for (index_t j = 0; j < N; ++j)
        crow[std::size_t(j)] = loom::detail::wrap_add(crow[std::size_t(j)], loom::detail::wrap_mul(x, br[j]));
    }
    epi(i, 0, 1, N, static_cast<const P*>(crow.data()), N);
  }
}

/// The product node of a fused root (reached through elementwise nodes).
template <class N>
const typename loom::detail::epilogue_of<N>::product& find_product(const N& n) {
  if constexpr (is_matmul_node<N>::value) {
    return n;
  } else {
    return std::apply(
        [](const auto&... x) -> const typename loom::detail::epilogue_of<N>::product& {
          const typename loom::detail::epilogue_of<N>::product* p = nullptr;
          auto one = [&](const auto& y) {
            if constexpr (has_matmul_v<std::remove_cvref_t<decltype(y)>>) p = &find_product(y);
          };
          (one(x), ...);
          return *p;
        },
        n.args);
  }
}

/// A number no earlier fused product of this process had (epilogues key their per-thread state
/// on it).
inline std::uint64_t next_run_id() {
  static std::atomic<std::uint64_t> next{1};
  return next.fetch_add(1, std::memory_order_relaxed);
}

/// Runs the fused root n (its product m) into dst of the same shape.
template <class Dst, class N, class MM>
void run_fused(Dst& dst, const N& n, const MM& m) {
  using D = std::remove_cvref_t<Dst>;
  using T = typename D::value_type;
  using P = typename MM::value_type;
  constexpr std::size_t R = N::rank;
  const dims dd = dst.shape().to_dims();

  strided_writer<T> w;
  w.bind(dst.data(), dst.strides(), R);
  std::uintptr_t d0, d1;
  touched_range(w.c, dd, d0, d1);

  gemm_operand<typename MM::a_type> ga(m.a);
  gemm_operand<typename MM::b_type> gb(m.b);
  bool safe = !ga.overlaps(d0, d1) && !gb.overlaps(d0, d1);
  std::optional<evaluator<N>> evo;
  if constexpr (!is_matmul_node<N>::value) {
    matmul_state& ms = matmul_tls();
    const void* saved = ms.fuse_target;
    ms.fuse_target = &m;
    try {
      evo.emplace(n, binding::identity(R));
    } catch (...) {
      ms.fuse_target = saved;
      throw;
    }
    ms.fuse_target = saved;
    evo->for_each_cursor([&](cursor& c) { safe = safe && alias_safe(c, w.c, dd); });
  }
  if (!safe && !is_fresh(w.c)) {
    via_temporary(dst, [&](auto& tmp) { run_fused(tmp, n, m); }, [&](const auto& tmp) { execute(dst, as_node(tmp)); });
    return;
  }
  loop_space s;
  s.rank = R;
  for (std::size_t k = 0; k < R; ++k) s.extent[k] = static_cast<index_t>(dd.e[k]);
  // Unit steps along the rows for the destination and every operand the epilogue reads (the tile
  // always has them): contiguous loads and stores.
  bool contiguous = w.c.stride[R - 1] == 1 || dd.e[R - 1] == 1;
  if (evo) {
    evo->for_each_cursor([&](cursor& c) { contiguous = contiguous && (c.elem_size == 0 || c.stride[R - 1] == 1); });
    evo->prepare(s);
  }
  w.prepare(s);
  const std::uint64_t run = next_run_id();

  constexpr std::size_t nb = R - 2;
  const index_t M = static_cast<index_t>(dd.e[R - 2]), Ncols = static_cast<index_t>(dd.e[R - 1]), K = m.inner();
  index_t count = 1;
  for (std::size_t d = 0; d < nb; ++d) count *= static_cast<index_t>(dd.e[d]);
  auto batch = [&](index_t t) {
    std::array<index_t, max_rank> bi{};
    for (std::size_t d = nb; d-- > 0;) {
      bi[d] = t % static_cast<index_t>(dd.e[d]);
      t /= static_cast<index_t>(dd.e[d]);
    }
    return bi;
  };
  auto a_of = [&](index_t t) {
    const auto bi = batch(t);
    return ga.source(bi.data(), nb);
  };
  auto b_of = [&](index_t t) {
    const auto bi = batch(t);
    return gb.source(bi.data(), nb);
  };
  auto epi_of = [&](index_t t) {
    const auto bi = batch(t);
    if constexpr (is_matmul_node<N>::value) {
      index_t o = w.c.offset;
      for (std::size_t d = 0; d < nb; ++d) o += bi[d] * w.c.stride[d];
      return gemm::store_to(dst.data() + o, w.c.stride[R - 2], w.c.stride[R - 1]);
    } else {
      using F = typename traversal<N, T>::lane_class;
      return [&, bi](index_t i0, index_t j0, index_t mr, index_t nr, const P* tile, index_t ld) {
        // Each thread copies the prepared evaluator and writer once per run, not once per tile
        // (a copy per tile cost as much as the epilogue's arithmetic).
        static thread_local std::optional<evaluator<N>> mine;
        static thread_local std::optional<strided_writer<T>> my_writer;
        static thread_local std::uint64_t my_run = 0;
        if (my_run != run) {
          mine = *evo;
          my_writer = w;
          my_run = run;
        }
        evaluator<N>& e = *mine;
        strided_writer<T>& ww = *my_writer;
        const tile_window win{tile, ld, i0, j0};
        matmul_state& ms = matmul_tls();
        const tile_window* saved = ms.window;
        ms.window = &win;
        std::array<index_t, max_rank> idx = bi;
        auto rows = [&](auto mode) {
          for (index_t i = 0; i < mr; ++i) {
            idx[R - 2] = i0 + i;
            e.set_row(idx.data());
            ww.set_row(idx.data());
            run_inner<decltype(mode), F>(ww, e, j0, j0 + nr);
          }
        };
        if (contiguous)
          rows(contiguous_mode{});
        else
          rows(general_mode{});
        ms.window = saved;
      };
    }
  };
  if constexpr (std::is_floating_point_v<P>) {
    gemm::gemm_batched<P>(count, M, Ncols, K, a_of, b_of, epi_of);
  } else {
    for (index_t t = 0; t < count; ++t) {
      auto sa = a_of(t);
      auto sb = b_of(t);
      auto epi = epi_of(t);
      simple_product<P>(M, Ncols, K, gemm::make_operand<P>(sa), gemm::make_operand<P>(sb), gemm::tile_sink<P>(epi));
    }
  }
}

}  // namespace detail

/// Evaluates an expression holding matmuls into dst: one GEMM with the expression as its epilogue
/// where the plan fuses it, else its products materialised and the rest run as usual.
template <class Dst, class N>
void execute_matmul(Dst& dst, const N& n) {
  if constexpr (loom::detail::fused_epilogue_v<N>) {
    const dims dd = dst.shape().to_dims();
    const dims ed = n.shape().to_dims();
    check_assignable(ed, dd);
    if (dd.size() == 0) return;
    const auto& m = detail::find_product(n);
    if (dd == ed && m.shape().to_dims() == ed) {
      detail::run_fused(dst, n, m);
      return;
    }
  }
  detail::matmul_cache_scope products;  // equal products in this evaluation are computed once
  if constexpr (has_reduction_v<N>)
    execute_reducing(dst, n);
  else
    execute_elementwise(dst, n);
}

}  // namespace cpu
}  // namespace loom
