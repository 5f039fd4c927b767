// Generated kernels executed without a GPU: the exact CUDA source the backend prints is compiled
// by the host C++ compiler with the CUDA built-ins emulated (blockIdx, blockDim, ... as globals,
// __device__ and __global__ as nothing), loaded, and run block by block, thread by thread, on
// host memory handed to the planner through cuda::view. The results are compared with the CPU
// library's. This checks what NVRTC cannot: that the kernels compute the right thing -- the
// odometer of broadcast and strided kernels across grid-stride steps and carries (grids of 1, 3
// and many blocks, blocks of 32 and 256 threads), vector accesses and tails, misaligned views,
// negative strides, stores converting to another type, every scalar type in the argument block
// (so the host's packing matches the kernel's struct), 64-bit index variants and baked extents.
//
// Needs a host C++ compiler at run time: $LOOM_TEST_CXX, else $CXX, else c++. Where none works,
// the test skips with a visible message.
#include <dlfcn.h>
#include <unistd.h>

#include <loom/cuda.hpp>
#include <loom/loom.hpp>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "support.hpp"

using namespace loom;
namespace cg = loom::cuda::codegen;
namespace fs = std::filesystem;

namespace {

using launch_fn = int (*)(const char* name, const unsigned char* args, unsigned grid, unsigned block);

/// Collects kernels (first pass) or runs them through the emulator (second pass).
struct emulator {
  std::map<std::string, std::string> bodies;
  launch_fn launch = nullptr;
  std::size_t runs = 0, column_runs = 0, block_runs = 0, row_runs = 0, cached_row_runs = 0, vector_row_runs = 0;
  std::size_t finish_group_runs = 0;  ///< second stages with several lanes per output
  std::size_t shared_runs = 0;  ///< elementwise kernels with some leaves loaded once
  std::size_t bound_row_runs = 0, kept_row_runs = 0;  ///< row kernels bound to their arrays; keeping an operand
  bool plain_variant = true;  ///< rows_case also runs the kernel without the row cache
  int expect_bound = -1;      ///< rows_case checks the plan's binding (1: bound, 0: general, -1: not checked)
};

template <class T>
void fill(T* p, std::size_t n, unsigned seed) {
  std::mt19937 g(seed);
  for (std::size_t i = 0; i < n; ++i) {
    if constexpr (std::is_same_v<T, bool>)
      p[i] = (g() & 1) != 0;
    else if constexpr (std::is_integral_v<T>)
      p[i] = T(int(g() % 200) - 100);
    else
      p[i] = T(double(g() % 20000) / 10000.0 - 1.0);
  }
}

/// dst = n as cuda::detail::execute plans it, with the kernel run by the emulator on a grid of
/// at most max_blocks blocks of `block` threads; `wide` forces the 64-bit variant.
template <class Dst, class N>
void emu_assign(emulator& emu, Dst& dst, const N& n, unsigned block, unsigned max_blocks, bool wide, bool bake) {
  using T = typename Dst::value_type;
  const dims dd = dst.shape().to_dims();
  const dims ed = n.shape().to_dims();
  using P = cg::param_count<N>;
  std::array<cg::array_cursor, P::leaves + 1> cs;
  std::array<cg::scalar_value, P::scalars + 1> sv;
  cs[0] = cuda::detail::destination_cursor(dst, dd);
  cg::operand_sink sink{cs.data() + 1, sv.data()};
  cg::binder<N>::bind(n, sink, cpu::binding::identity(dd.rank).broadcast_operand(dd, ed));
  using family = cg::kernel_family<N, T>;
  cg::launch_shape ls = cg::plan_layout(dd, cs.data(), cs.size(), family::desc().lanes());
  if (wide) ls.key.wide = true;
  // as launch_bound: leaves that read the very same elements are loaded once
  const cg::family_state::shared_variant* shared = family::state().variant(ls, cs.data() + 1);
  const cg::kernel_desc& desc = shared != nullptr ? shared->desc : family::desc();
  const cg::baked_values bv{&ls, cs.data()};
  const cg::kernel_text t = cg::print_kernel(desc, ls.key, bake ? &bv : nullptr);
  if (!emu.launch) {
    emu.bodies.emplace(t.name, t.body);
    return;
  }
  cg::arg_block args;
  cg::pack_args(args, desc, ls, cs.data(), sv.data(), bake);
  const index_t items = ls.key.cls == cg::layout_class::contiguous && ls.vec
                            ? std::max<index_t>(ls.elements / ls.lanes, ls.elements % ls.lanes)
                            : ls.units;
  const auto blocks = static_cast<unsigned>(std::clamp<index_t>((items + block - 1) / block, 1, max_blocks));
  if (dd.size() == 0) return;  // the backend launches nothing
  REQUIRE(emu.launch(t.name.c_str(), args.bytes, blocks, block) == 0);
  ++emu.runs;
  if (shared != nullptr) ++emu.shared_runs;
}

/// Reduction node n as cuda/reduce.hpp plans it (for a device of `sm` multiprocessors) into out,
/// both stages run by the emulator with blocks of `block` threads (fibers meeting at barriers).
template <class RN>
void emu_reduce(emulator& emu, const RN& n, typename RN::value_type* out, int sm, unsigned block) {
  const auto pl = cuda::detail::plan_reduction(n, sm);
  const cg::reduce_launch& rl = pl.rl;
  const cg::reduce_desc& d = cuda::detail::reduce_desc_of<RN>();
  const cg::kernel_text main = cg::print_reduce_kernel(d, rl.kr, rl.rr, rl.columns), fin = cg::print_reduce_finish(d);
  if (!emu.launch) {
    emu.bodies.emplace(main.name, main.body);
    emu.bodies.emplace(fin.name, fin.body);
    return;
  }
  if (rl.K == 0) return;
  std::vector<unsigned char> partial(static_cast<std::size_t>(rl.K * rl.S) * cuda::detail::partial_bytes);
  const auto target = reinterpret_cast<std::uintptr_t>(rl.S > 1 ? static_cast<void*>(partial.data()) : static_cast<void*>(out));
  cg::arg_block args;
  cg::pack_reduce_args(args, d, rl, target, pl.leaves.data(), pl.scalars.data());
  // At most 5 blocks (each emulated as `block` fibers): the kernels loop over their work
  // items with the grid's stride, so fewer blocks than the device would get cover them all.
  const unsigned grid = std::min(cuda::detail::reduce_grid(rl, sm, block), 5u);
  REQUIRE(emu.launch(main.name.c_str(), args.bytes, grid, block) == 0);
  ++(rl.columns ? emu.column_runs : emu.block_runs);
  ++emu.runs;
  if (rl.S > 1) {
    struct {
      std::uint64_t out, partial;
      std::int64_t K, S, M;
    } fa{reinterpret_cast<std::uintptr_t>(out), reinterpret_cast<std::uintptr_t>(partial.data()), rl.K, rl.S, rl.M};
    REQUIRE(emu.launch(fin.name.c_str(), reinterpret_cast<const unsigned char*>(&fa), 2, 32) == 0);
    ++emu.runs;
    if (cg::finish_lanes(rl.S, 32) > 1) ++emu.finish_group_runs;
  }
}

/// reduce(build(host views)) on the CPU against the emulated kernels on the same memory, for a
/// few device sizes (so that outputs are split into chunks or not) and block sizes.
template <class Build, class... Hs>
void reduce_case(emulator& emu, const char* what, Build build, const Hs&... hs) {
  const auto want = eval(build(hs...));
  using T = typename std::remove_cvref_t<decltype(want)>::value_type;
  for (int sm : {1, 4, 132})
    for (unsigned block : {32u, 64u}) {
      std::vector<T> got(want.size() + 1);
      emu_reduce(emu, as_node(build(cuda::view(hs.data(), hs.shape())...)), got.data(), sm, block);
      if (!emu.launch) continue;
      std::size_t bad = 0, first = 0;
      for (std::size_t i = 0; i < want.size(); ++i) {
        bool same;
        if constexpr (std::is_floating_point_v<T>)
          same = loom_test::close(double(got[i]), double(want.data()[i]), std::is_same_v<T, float> ? 2e-5 : 1e-12, 1e-6) ||
                 (std::isnan(double(got[i])) && std::isnan(double(want.data()[i])));
        else
          same = got[i] == want.data()[i];
        if (!same && bad++ == 0) first = i;
      }
      if (bad) {
        INFO(what << ": sm " << sm << ", block " << block << ": " << bad << " of " << want.size() << " differ; first at "
                  << first << ": got " << +got[first] << ", want " << +want.data()[first]);
        CHECK(bad == 0);
      }
    }
}

/// build(host views) as one row kernel (cuda/rows.hpp) against the CPU library: the plan for a
/// device of 4 multiprocessors, blocks of 256 emulated threads, at most 2 blocks (the kernel
/// strides over the rows). Up to four launches: as planned into a fresh array whose rows (rank
/// 2) lie 3 elements apart beyond their length, as planned into a contiguous one (so that the row
/// cache's whole-group stores run), and, with emu.plain_variant, into the padded one the general
/// kernel without the row cache and, where the plan was bound to its arrays, the general kernel
/// with it (the tests of p.same and p.hits that the bound kernel leaves out).
/// `expect_rows`: the row kernel must apply (else the plan must refuse it); `expect_K`: the row
/// cache's elements per thread planned for the contiguous destination (-1: not checked).
template <class Build, class... Hs>
void rows_case(emulator& emu, const char* what, bool expect_rows, int expect_K, Build build, const Hs&... hs) {
  const auto want = eval(build(hs...));
  using T = typename std::remove_cvref_t<decltype(want)>::value_type;
  using S = typename std::remove_cvref_t<decltype(want)>::shape_type;
  auto n = as_node(build(cuda::view(hs.data(), hs.shape(), hs.strides())...));
  using N = decltype(n);
  static_assert(cuda::detail::row_rank_v<N> > 0, "not a row expression");
  constexpr int sm = 4;  // (the multiprocessors only decide whether few long rows take this way: 4 or more here)
  bool planned_bound = false;
  for (int variant : {0, 1, 2, 3}) {
    const bool padded = variant != 1, plain = variant == 2, general = variant >= 2;
    const dims dd = want.shape().to_dims();
    std::array<index_t, S::rank> st{};
    index_t span = 1;
    for (std::size_t k = S::rank; k-- > 0;) {
      st[k] = span;
      span *= static_cast<index_t>(dd.e[k]) + (padded && S::rank == 2 && k == 1 ? 3 : 0);
    }
    std::vector<T> buf(static_cast<std::size_t>(std::max<index_t>(span, 1)) + 8, T{});
    auto dst = cuda::view(buf.data(), want.shape(), st);
    cg::array_cursor dc = cuda::detail::destination_cursor(dst, dd);
    auto pl = cuda::detail::plan_rows<T>(n, dc, dd, sm);
    INFO(what << ", variant " << variant << ", K " << pl.rl.K << ", V " << pl.rl.V << ", hits " << pl.rl.hits << ", ovec "
              << pl.rl.ovec);
    REQUIRE(pl.ok == expect_rows);
    if (!pl.ok) return;
    if (variant == 1 && expect_K >= 0) CHECK(pl.rl.K == expect_K);
    if (variant == 0) {
      planned_bound = pl.rl.bound;
      if (emu.expect_bound >= 0) CHECK(pl.rl.bound == (emu.expect_bound == 1));
    }
    if (variant == 1 && !pl.rl.ovec) continue;  // the same kernel as variant 0
    if (general && !emu.plain_variant) continue;
    if (plain && pl.rl.K == 0 && !planned_bound) continue;  // the same kernel as variant 0
    if (variant == 3 && (pl.rl.K == 0 || !planned_bound)) continue;
    if (plain) pl.rl.K = 0, pl.rl.V = 1, pl.rl.hits = 0, pl.rl.ovec = false;
    if (general) pl.rl.bound = false;
    const auto& g = cuda::detail::row_family<N, T>::generated(pl.rl);
    if (!emu.launch) {
      emu.bodies.emplace(g.name, g.source.substr(cg::preamble().size()));
      continue;
    }
    cg::arg_block args;
    cg::pack_row_args(args, cuda::detail::row_family<N, T>::desc(), pl.rl, pl.cs.data(), pl.sv.data(), pl.same.data());
    REQUIRE(emu.launch(g.name.c_str(), args.bytes, std::min(cuda::detail::row_grid(pl.rl), 2u),
                       cg::row_block_threads) == 0);
    ++emu.row_runs;
    if (pl.rl.bound) ++emu.bound_row_runs;
    if (g.source.find("its operand, which the output repeats") != std::string::npos) ++emu.kept_row_runs;
    if (pl.rl.K > 0) ++emu.cached_row_runs;
    if (pl.rl.ovec) ++emu.vector_row_runs;
    ++emu.runs;
    std::size_t bad = 0, first = 0, i = 0;
    loom::tensor<T, S> host_got(want.shape());
    auto hv = view(buf.data(), want.shape(), st);
    host_got = hv;
    for (i = 0; i < want.size(); ++i) {
      bool same;
      if constexpr (std::is_floating_point_v<T>)
        same = loom_test::close(double(host_got.data()[i]), double(want.data()[i]), std::is_same_v<T, float> ? 2e-5 : 1e-12,
                                1e-6) ||
               (std::isnan(double(host_got.data()[i])) && std::isnan(double(want.data()[i])));
      else
        same = host_got.data()[i] == want.data()[i];
      if (!same && bad++ == 0) first = i;
    }
    if (bad) {
      INFO(bad << " of " << want.size() << " differ; first at " << first << ": got " << +host_got.data()[first] << ", want "
               << +want.data()[first]);
      CHECK(bad == 0);
    }
  }
}

/// Runs make(args...) over "device" views into dst (count elements from dst.data()) for every
/// grid shape, index width and extents policy, and compares with `want`.
template <class T, class Make, class Dst, class... Args>
void run_case(emulator& emu, const char* what, const T* want, std::size_t count, Dst dst, Make make,
              const Args&... args) {
  for (unsigned block : {256u, 32u})
    for (unsigned max_blocks : {1u, 3u, 1000u})
      for (bool wide : {false, true})
        for (bool bake : {false, true}) {
          T* d = dst.data().get();
          for (std::size_t i = 0; i < count; ++i) d[i] = T{};
          emu_assign(emu, dst, as_node(make(args...)), block, max_blocks, wide, bake);
          if (!emu.launch) continue;
          std::size_t bad = 0, first = 0;
          for (std::size_t i = 0; i < count; ++i) {
            bool same;
            if constexpr (std::is_floating_point_v<T>)
              same = loom_test::close(double(d[i]), double(want[i]), std::is_same_v<T, float> ? 1e-5 : 1e-12, 1e-7);
            else
              same = d[i] == want[i];
            if (!same && bad++ == 0) first = i;
          }
          if (bad) {
            INFO(what << ": block " << block << ", at most " << max_blocks << " blocks, wide " << wide << ", baked "
                      << bake << ": " << bad << " of " << count << " differ; first at " << first << ": got "
                      << +d[first] << ", want " << +want[first]);
            CHECK(bad == 0);
          }
        }
}

/// Every case, in collecting or in running mode.
void run_cases(emulator& emu) {
  // Contiguous: odd sizes, aligned and misaligned starts, mixed types, logic, converting stores.
  for (std::size_t n : {0u, 1u, 7u, 17u, 1023u, 1025u, 4099u}) {
    for (std::size_t off : {0u, 1u}) {
      INFO("n = " << n << ", offset " << off);
      std::vector<float> xb(n + 8), yb(n + 8), ob(n + 8);
      fill(xb.data(), xb.size(), 1 + unsigned(n));
      fill(yb.data(), yb.size(), 2 + unsigned(n));
      auto hx = view(xb.data() + off, shape<dyn>{n});
      auto hy = view(yb.data() + off, shape<dyn>{n});
      auto dx = cuda::view(xb.data() + off, shape<dyn>{n});
      auto dy = cuda::view(yb.data() + off, shape<dyn>{n});
      {
        auto fused = [](const auto& x, const auto& y) { return 2.f * x + exp(-x) / (1.f + abs(y)); };
        const tensor<float, shape<dyn>> want = fused(hx, hy);
        run_case(emu, "contiguous fused", want.data(), n, cuda::view(ob.data() + off, shape<dyn>{n}), fused, dx, dy);
      }
      {
        auto mixed = [](const auto& x, const auto& y) { return cast<double>(x) * 3 - y; };
        const tensor<double, shape<dyn>> want = mixed(hx, hy);
        std::vector<double> o(n + 8);
        run_case(emu, "contiguous mixed", want.data(), n, cuda::view(o.data() + off, shape<dyn>{n}), mixed, dx, dy);
      }
      {
        auto logic = [](const auto& x, const auto& y) { return (x > 0.f) && !(y < 0.5f); };
        const tensor<bool, shape<dyn>> want = logic(hx, hy);
        std::vector<char> o(n + 32);
        run_case(emu, "contiguous bool", want.data(), n,
                 cuda::view(reinterpret_cast<bool*>(o.data()) + off, shape<dyn>{n}), logic, dx, dy);
      }
      {
        // x is one array read as three leaves (loaded once); x and x shifted by one are two
        auto repeated = [](const auto& x, const auto& y) { return x * x + y * x - x; };
        const tensor<float, shape<dyn>> want = repeated(hx, hy);
        run_case(emu, "contiguous, one array read three times", want.data(), n,
                 cuda::view(ob.data() + off, shape<dyn>{n}), repeated, dx, dy);
        auto shifted = [](const auto& x, const auto& x1) { return x * x1 + x; };
        const tensor<float, shape<dyn>> want2 = shifted(hx, view(xb.data() + off + 1, shape<dyn>{n}));
        run_case(emu, "contiguous, an array and itself one element on", want2.data(), n,
                 cuda::view(ob.data() + off, shape<dyn>{n}), shifted, dx, cuda::view(xb.data() + off + 1, shape<dyn>{n}));
      }
      {
        auto scaled = [](const auto& x) { return x * 3e9f; };  // stored into int32: saturates
        tensor<std::int32_t, shape<dyn>> want(n);
        want = scaled(hx);
        std::vector<std::int32_t> o(n + 8);
        run_case(emu, "contiguous store to int32", want.data(), n, cuda::view(o.data() + off, shape<dyn>{n}), scaled,
                 dx);
      }
    }
  }
  // Broadcast: rows, columns, vector or scalar accesses, an expression smaller than the destination.
  for (std::size_t inner : {1u, 3u, 4u, 8u, 1023u, 1024u}) {
    for (std::size_t rows : {1u, 5u, 37u}) {
      INFO("rows " << rows << ", inner " << inner);
      std::vector<float> xb(rows * inner), rb(inner), cb(rows), ob(rows * inner);
      fill(xb.data(), xb.size(), 3);
      fill(rb.data(), rb.size(), 4);
      fill(cb.data(), cb.size(), 5);
      auto hx = view(xb.data(), shape<dyn, dyn>{rows, inner});
      auto hr = view(rb.data(), shape<dyn>{inner});
      auto hc = view(cb.data(), shape<dyn, 1>{rows});
      auto dx = cuda::view(xb.data(), shape<dyn, dyn>{rows, inner});
      auto dr = cuda::view(rb.data(), shape<dyn>{inner});
      auto dc = cuda::view(cb.data(), shape<dyn, 1>{rows});
      auto dout = cuda::view(ob.data(), shape<dyn, dyn>{rows, inner});
      auto rowcol = [](const auto& x, const auto& r, const auto& c) { return x * r - c; };
      const tensor<float, shape<dyn, dyn>> want = rowcol(hx, hr, hc);
      run_case(emu, "x * row - col", want.data(), rows * inner, dout, rowcol, dx, dr, dc);
      auto repeated = [](const auto& x, const auto& r, const auto& c) { return x * r - c + x * x + r * c; };
      const tensor<float, shape<dyn, dyn>> want1 = repeated(hx, hr, hc);
      run_case(emu, "x, row and col each read twice", want1.data(), rows * inner, dout, repeated, dx, dr, dc);
      tensor<float, shape<dyn, dyn>> want2(rows, inner);
      want2 = hr + 1.f;
      run_case(emu, "row into the destination", want2.data(), rows * inner, dout, [](const auto& r) { return r + 1.f; }, dr);
      std::vector<double> od(rows * inner);
      auto colrow = [](const auto& c, const auto& r) { return cast<double>(c) + r; };
      const tensor<double, shape<dyn, dyn>> want3 = colrow(hc, hr);
      run_case(emu, "col + row in double", want3.data(), rows * inner, cuda::view(od.data(), shape<dyn, dyn>{rows, inner}),
               colrow, dc, dr);
    }
  }
  {
    std::vector<double> ab(4 * 3 * 6), bb(5 * 6), ob(4 * 5 * 3 * 6);
    fill(ab.data(), ab.size(), 7);
    fill(bb.data(), bb.size(), 8);
    auto f = [](const auto& a, const auto& b) { return a * b + 0.5; };
    const tensor<double, shape<4, 5, 3, 6>> want = f(view(ab.data(), shape<4, 1, 3, 6>{}), view(bb.data(), shape<5, 1, 6>{}));
    run_case(emu, "[4, 1, 3, 6] * [5, 1, 6]", want.data(), want.size(), cuda::view(ob.data(), shape<4, 5, 3, 6>{}), f,
             cuda::view(ab.data(), shape<4, 1, 3, 6>{}), cuda::view(bb.data(), shape<5, 1, 6>{}));
  }
  // Strided: transposed and flipped operands.
  for (std::size_t r : {1u, 7u, 33u}) {
    for (std::size_t c : {1u, 5u, 64u}) {
      INFO(r << " x " << c);
      std::vector<float> xb(r * c), ob(r * c);
      fill(xb.data(), xb.size(), 9);
      const std::array<index_t, 2> tst{1, index_t(c)}, fst{-index_t(c), -1};
      auto f = [](const auto& t) { return sin(t) * t + 1.f; };
      const tensor<float, shape<dyn, dyn>> want = f(view(xb.data(), shape<dyn, dyn>{c, r}, tst));
      run_case(emu, "transposed", want.data(), r * c, cuda::view(ob.data(), shape<dyn, dyn>{c, r}), f,
               cuda::view(xb.data(), shape<dyn, dyn>{c, r}, tst));
      auto g = [](const auto& t) { return t * 2.f; };
      const tensor<float, shape<dyn, dyn>> want2 = g(view(xb.data() + (r * c - 1), shape<dyn, dyn>{r, c}, fst));
      run_case(emu, "flipped", want2.data(), r * c, cuda::view(ob.data(), shape<dyn, dyn>{r, c}), g,
               cuda::view(xb.data() + (r * c - 1), shape<dyn, dyn>{r, c}, fst));
    }
  }
  // A stepped destination: every other element of each row, the others untouched.
  {
    const std::size_t r = 9, c = 13;
    std::vector<std::int64_t> xb(r * c), ob(r * c * 2);
    fill(xb.data(), xb.size(), 10);
    auto hx = view(xb.data(), shape<dyn, dyn>{r, c});
    const tensor<std::int64_t, shape<dyn, dyn>> want = hx * hx - 3;
    auto dx = cuda::view(xb.data(), shape<dyn, dyn>{r, c});
    auto dst = cuda::view(ob.data(), shape<dyn, dyn>{r, c}, {index_t(2 * c), 2});
    for (unsigned max_blocks : {1u, 3u, 100u})
      for (bool wide : {false, true})
        for (bool bake : {false, true}) {
          std::fill(ob.begin(), ob.end(), 0);
          emu_assign(emu, dst, as_node(dx * dx - 3), 32, max_blocks, wide, bake);
          if (!emu.launch) continue;
          std::size_t bad = 0;
          for (std::size_t i = 0; i < r; ++i)
            for (std::size_t j = 0; j < c; ++j)
              bad += ob[i * 2 * c + 2 * j] != want(i, j) || ob[i * 2 * c + 2 * j + 1] != 0;
          INFO("stepped destination, at most " << max_blocks << " blocks, wide " << wide << ", baked " << bake);
          CHECK(bad == 0);
        }
  }
  // Scalars of every type in the argument block.
  {
    const std::size_t n = 100;
    std::vector<std::int32_t> ib(n);
    std::vector<double> ob(n);
    fill(ib.data(), n, 11);
    auto f = [](const auto& i) {
      return where(i > 3, cast<double>(i) * 0.5, cast<double>(cast<bool>(i) && true) + std::int64_t(7)) +
             clamp(i, -5, 5) + cast<float>(i) * 0.25f;
    };
    const tensor<double, shape<dyn>> want = f(view(ib.data(), shape<dyn>{n}));
    run_case(emu, "scalars", want.data(), n, cuda::view(ob.data(), shape<dyn>{n}), f, cuda::view(ib.data(), shape<dyn>{n}));
  }
  // Index maps and generators: affine maps only change the strides of the leaves underneath;
  // iota is a position; concat and pad select on a position and load only the branch taken.
  for (std::size_t r : {1u, 7u, 33u}) {
    for (std::size_t c : {1u, 5u, 17u, 64u}) {
      INFO(r << " x " << c);
      std::vector<float> xb(r * c), yb(r * c), ob(4 * (r + 8) * (c + 8));
      std::vector<double> db(4 * (r + 8) * (c + 8));
      std::vector<std::int32_t> ib(r * c);
      fill(xb.data(), xb.size(), 21);
      fill(yb.data(), yb.size(), 22);
      fill(ib.data(), ib.size(), 23);
      auto hx = view(xb.data(), shape<dyn, dyn>{r, c});
      auto hy = view(yb.data(), shape<dyn, dyn>{r, c});
      auto hi = view(ib.data(), shape<dyn, dyn>{r, c});
      auto dx = cuda::view(xb.data(), shape<dyn, dyn>{r, c});
      auto dy = cuda::view(yb.data(), shape<dyn, dyn>{r, c});
      auto di = cuda::view(ib.data(), shape<dyn, dyn>{r, c});
      auto out = [&](std::size_t a, std::size_t b) { return cuda::view(ob.data(), shape<dyn, dyn>{a, b}); };
      auto outd = [&](std::size_t a, std::size_t b) { return cuda::view(db.data(), shape<dyn, dyn>{a, b}); };
      {
        auto f = [](const auto& x, const auto& y) { return transpose(x) * 2.f - transpose(y); };
        const tensor<float, shape<dyn, dyn>> want = f(hx, hy);
        run_case(emu, "transpose", want.data(), want.size(), out(c, r), f, dx, dy);
      }
      {
        auto f = [](const auto& x) { return flip<0>(x) + flip<1>(x) * 0.5f; };
        const tensor<float, shape<dyn, dyn>> want = f(hx);
        run_case(emu, "flip", want.data(), want.size(), out(r, c), f, dx);
      }
      {
        auto f = [](const auto& x) { return slice<1>(slice<0>(x, 1, 100, 2), -4, 100); };
        const tensor<float, shape<dyn, dyn>> want = f(hx);
        run_case(emu, "slices with steps and a negative start", want.data(), want.size(),
                 out(want.extent(0), want.extent(1)), f, dx);
      }
      {
        auto f = [](const auto& x) { return broadcast_to(slice<0>(x, 0, 1), shape<dyn, dyn>{3, x.extent(1)}) + 1.f; };
        const tensor<float, shape<dyn, dyn>> want = f(hx);
        run_case(emu, "broadcast_to", want.data(), want.size(), out(3, c), f, dx);
      }
      {
        auto f = [](const auto& x, const auto& i) { return reshape(x, shape<dyn>{x.size()}) + cast<float>(reshape(i, shape<dyn>{i.size()})); };
        const tensor<float, shape<dyn>> want = f(hx, hi);
        run_case(emu, "reshape", want.data(), want.size(), cuda::view(ob.data(), shape<dyn>{r * c}), f, dx, di);
      }
      {
        auto f = [](const auto& x) { return x + iota<float>(shape<dyn, dyn>{x.extent(0), x.extent(1)}) * 0.25f; };
        const tensor<float, shape<dyn, dyn>> want = f(hx);
        run_case(emu, "iota", want.data(), want.size(), out(r, c), f, dx);
        auto g = [](const auto& x) { return transpose(iota<std::int32_t>(shape<dyn, dyn>{x.extent(0), x.extent(1)})) + 1; };
        std::vector<std::int32_t> oi(r * c);
        const tensor<std::int32_t, shape<dyn, dyn>> want2 = g(hx);
        run_case(emu, "transposed iota", want2.data(), want2.size(), cuda::view(oi.data(), shape<dyn, dyn>{c, r}), g, dx);
      }
      {
        auto f = [](const auto& x) { return x * full<float>(shape<dyn, dyn>{x.extent(0), x.extent(1)}, 3) + ones<float>(shape<dyn>{x.extent(1)}) - zeros<float>(shape<dyn, 1>{x.extent(0)}); };
        const tensor<float, shape<dyn, dyn>> want = f(hx);
        run_case(emu, "full, ones, zeros", want.data(), want.size(), out(r, c), f, dx);
      }
      {
        auto f = [](const auto& x, const auto& y, const auto& i) { return concat<0>(x, exp(y), cast<double>(i) * 0.5); };
        const tensor<double, shape<dyn, dyn>> want = f(hx, hy, hi);
        run_case(emu, "concat of three along rows (promoted to double)", want.data(), want.size(), outd(3 * r, c), f, dx, dy, di);
        auto g = [](const auto& x, const auto& y) { return concat<1>(flip<1>(x), slice<1>(y, 1, 100)) * 2.f; };
        const tensor<float, shape<dyn, dyn>> want2 = g(hx, hy);
        run_case(emu, "concat along columns of a flip and a slice", want2.data(), want2.size(),
                 out(want2.extent(0), want2.extent(1)), g, dx, dy);
        auto h = [](const auto& x, const auto& y) { return concat<0>(concat<1>(x, y), transpose(concat<0>(transpose(y), transpose(x)))); };
        const tensor<float, shape<dyn, dyn>> want3 = h(hx, hy);
        run_case(emu, "nested concats", want3.data(), want3.size(), out(want3.extent(0), want3.extent(1)), h, dx, dy);
      }
      {
        auto f = [](const auto& x) { return pad<0>(pad<1>(x, 2, 3, -1.f), 1, 0, 7.f); };
        const tensor<float, shape<dyn, dyn>> want = f(hx);
        run_case(emu, "pad both axes", want.data(), want.size(), out(want.extent(0), want.extent(1)), f, dx);
        auto g = [](const auto& x, const auto& y) { return pad<1>(transpose(x) + transpose(y), 0, 4) + concat<1>(iota<float>(shape<dyn, dyn>{x.extent(1), x.extent(0)}), zeros<float>(shape<dyn, 4>{x.extent(1)})); };
        const tensor<float, shape<dyn, dyn>> want2 = g(hx, hy);
        run_case(emu, "pad of a transpose plus a concat of generators", want2.data(), want2.size(),
                 out(want2.extent(0), want2.extent(1)), g, dx, dy);
      }
    }
  }
  {
    // A rank-3 permute.
    std::vector<double> xb(3 * 4 * 5), ob(60);
    fill(xb.data(), xb.size(), 24);
    auto f = [](const auto& x) { return permute<2, 0, 1>(x) * 3.0; };
    const tensor<double, shape<5, 3, 4>> want = f(view(xb.data(), shape<3, 4, 5>{}));
    run_case(emu, "permute<2, 0, 1>", want.data(), want.size(), cuda::view(ob.data(), shape<5, 3, 4>{}), f,
             cuda::view(xb.data(), shape<3, 4, 5>{}));
  }
  // Reductions: every reducer, kept inner or outer axes, full reductions split into chunks (two
  // stages), fused producers (maps, index maps, generators), NaN, ties, empty axes.
  for (std::size_t r : {1u, 7u, 33u}) {
    for (std::size_t c : {1u, 5u, 1000u, 5000u}) {
      INFO(r << " x " << c);
      std::vector<float> xb(r * c), yb(r * c);
      std::vector<std::int32_t> ib(r * c);
      fill(xb.data(), xb.size(), 31);
      fill(yb.data(), yb.size(), 32);
      fill(ib.data(), ib.size(), 33);
      for (std::size_t i = 0; i < ib.size(); ++i) ib[i] %= 7;  // ties for the arg reductions
      if (r * c > 10) xb[r * c / 2] = std::numeric_limits<float>::quiet_NaN();
      auto hx = view(xb.data(), shape<dyn, dyn>{r, c});
      auto hy = view(yb.data(), shape<dyn, dyn>{r, c});
      auto hi = view(ib.data(), shape<dyn, dyn>{r, c});
      reduce_case(emu, "sum rows", [](const auto& y) { return sum(y, axis<1>); }, hy);
      reduce_case(emu, "sum columns", [](const auto& y) { return sum(y, axis<0>, keepdims); }, hy);
      reduce_case(emu, "sum of everything", [](const auto& y) { return sum(y); }, hy);
      reduce_case(emu, "fused mean", [](const auto& x, const auto& y) { return mean(exp(y) * 2.f + x * 0.f, axis<1>); }, hy, hy);
      reduce_case(emu, "max with NaN", [](const auto& x) { return max(x, axis<1>); }, hx);
      reduce_case(emu, "min columns with NaN", [](const auto& x) { return min(x, axis<0>); }, hx);
      reduce_case(emu, "argmax with ties", [](const auto& i) { return argmax(i, axis<1>); }, hi);
      reduce_case(emu, "argmin of everything with ties", [](const auto& i) { return argmin(i); }, hi);
      reduce_case(emu, "argmax with NaN", [](const auto& x) { return argmax(x, axis<1>); }, hx);
      reduce_case(emu, "int sum into int64", [](const auto& i) { return sum(i * i, axis<1>); }, hi);
      reduce_case(emu, "bool sum", [](const auto& i) { return sum(i > 2); }, hi);
      reduce_case(emu, "int mean into double", [](const auto& i) { return mean(i, axis<0>); }, hi);
      reduce_case(emu, "prod", [](const auto& y) { return prod(1.f + y * 0.01f, axis<1>); }, hy);
      reduce_case(emu, "sum of a transpose", [](const auto& y) { return sum(transpose(y), axis<1>); }, hy);
      reduce_case(emu, "sum of a concat and iota",
                  [](const auto& x, const auto& y) {
                    return sum(concat<1>(y, flip<1>(y)) + iota<float>(shape<dyn, dyn>{y.extent(0), 2 * y.extent(1)}) * 1e-3f, axis<1>);
                  },
                  hy, hy);
    }
  }
  {
    std::vector<double> xb(4 * 5 * 6);
    fill(xb.data(), xb.size(), 34);
    auto hx = view(xb.data(), shape<4, 5, 6>{});
    reduce_case(emu, "rank 3 over axes 0 and 2", [](const auto& x) { return sum(x * x, axes<0, 2>); }, hx);
    reduce_case(emu, "rank 3 over axes 0 and 2, keepdims", [](const auto& x) { return max(x, axes<0, 2>, keepdims); }, hx);
    reduce_case(emu, "rank 3 over axis 1", [](const auto& x) { return argmin(x, axis<1>); }, hx);
    std::vector<float> eb(1);
    auto he = view(eb.data(), shape<dyn, dyn>{3, 0});
    reduce_case(emu, "sum over an empty axis", [](const auto& e) { return sum(e, axis<1>); }, he);
    reduce_case(emu, "prod over an empty axis", [](const auto& e) { return prod(e, axis<1>); }, he);
    CHECK_THROWS_AS(cuda::detail::plan_reduction(as_node(max(cuda::view(eb.data(), shape<dyn, dyn>{3, 0}), axis<1>)), 4),
                    shape_error);
    // Every axis of a rank-8 operand: the kernels take at most 7 reduced axes (beside the kept
    // one of extent 1), so two neighbours merge - or an axis of extent 1 goes; where none can
    // (strides that do not nest), a clear error.
    std::vector<float> r8(2 * 3 * 2 * 2 * 2 * 2 * 2 * 5);
    fill(r8.data(), r8.size(), 35);
    auto h8 = view(r8.data(), shape<2, 3, 2, 2, 2, 2, 2, 5>{});
    reduce_case(emu, "rank 8, every axis", [](const auto& x) { return sum(x * 2.f, axes<0, 1, 2, 3, 4, 5, 6, 7>); }, h8);
    reduce_case(emu, "rank 8, argmax of everything", [](const auto& x) { return argmax(x); }, h8);
    auto h8t = view(r8.data(), shape<1, 3, 2, 2, 2, 2, 2, 10>{});
    reduce_case(emu, "rank 8 with an axis of extent 1", [](const auto& x) { return max(x); }, h8t);
    std::vector<float> c8(256);
    const auto column_major = cuda::view(c8.data(), shape<2, 2, 2, 2, 2, 2, 2, 2>{}, {1, 2, 4, 8, 16, 32, 64, 128});
    CHECK_THROWS_AS(cuda::detail::plan_reduction(as_node(sum(column_major)), 4), cuda_error);
  }
  // Row kernels: reductions along the rows broadcast back (a warp per row up to 1024 elements,
  // a block per row beyond), nested and repeated reductions, every reducer, 2 trailing axes.
  // The row cache: K floats per thread (G = 32 threads per row up to 1024 columns, else 256),
  // in groups of 4 where the rows are 16-byte aligned (a multiple of 4 columns here), none
  // beyond 32 per thread.
  const auto cache_K = [](std::size_t c, bool aligned = true) {
    const std::size_t G = c <= 1024 ? 32 : 256, per = (c + G - 1) / G;
    std::size_t K = aligned && c % 4 == 0 ? 4 : 1;
    while (K < per) K *= 2;
    return K > 32 ? 0 : int(K);
  };
  for (auto [r, c] : {std::pair<std::size_t, std::size_t>{1, 1}, {7, 17}, {9, 16}, {5, 1024}, {9, 1025}, {3, 4096},
                      {6, 4099}, {5, 8192}, {5, 8196}}) {
    INFO(r << " x " << c);
    std::vector<float> xb(r * c + 1), yb(r * c + 1), gb(c + 1), bb(c + 1);
    std::vector<double> db(r * c + 1);
    std::vector<std::int32_t> kb(r * c + 1);
    fill(xb.data(), xb.size(), unsigned(r * 31 + c));
    fill(yb.data(), yb.size(), unsigned(r * 37 + c));
    fill(gb.data(), gb.size(), unsigned(c + 5));
    fill(bb.data(), bb.size(), unsigned(c + 6));
    fill(db.data(), db.size(), unsigned(r + c));
    fill(kb.data(), kb.size(), unsigned(r * 3 + c));
    auto hx = view(xb.data(), shape<dyn, dyn>{r, c});
    auto hg = view(gb.data(), shape<dyn>{c});
    auto hb = view(bb.data(), shape<dyn>{c});
    auto hd = view(db.data(), shape<dyn, dyn>{r, c});
    auto hk = view(kb.data(), shape<dyn, dyn>{r, c});
    // Every expression (and the plain form beside the cached one) at three sizes: a warp per
    // row one element at a time, a warp in groups of 4 (32 a thread), a block one at a time (32
    // a thread); softmax, layer norm and the two-array case at every size (the emulation's time
    // goes with the launches and the rows: ~40 s here).
    const bool all = c == 17 || c == 1024 || c == 4099;
    // Softmax and layer norm over one array take the kernel bound to it (the general one runs
    // beside it at the sizes in `all`); the two-array case cannot (x and y are different rows).
    emu.plain_variant = all || c == 16;
    emu.expect_bound = 1;
    rows_case(emu, "softmax", true, cache_K(c), [](const auto& x) {
      auto e = exp(x - max(x, axis<1>, keepdims));
      return e / sum(e, axis<1>, keepdims);
    }, hx);
    emu.expect_bound = cache_K(c) == 0 ? 1 : 0;  // (without the row cache only repeated reductions bind)
    rows_case(emu, "two arrays of one shape: y cached, x read from memory", true, cache_K(c), [](const auto& x, const auto& y) {
      return (x - mean(y, axis<1>, keepdims)) * max(x, axis<1>, keepdims) + y;
    }, hx, view(yb.data(), shape<dyn, dyn>{r, c}));
    emu.expect_bound = 1;
    rows_case(emu, "layer norm", true, cache_K(c), [](const auto& x, const auto& g, const auto& b) {
      auto d = x - mean(x, axis<1>, keepdims);
      return d * rsqrt(mean(d * d, axis<1>, keepdims) + 1e-5f) * g + b;
    }, hx, hg, hb);
    emu.expect_bound = -1;
    if (!all) continue;
    rows_case(emu, "softmax of rows that start one element off 16 bytes", true, cache_K(c, false),
              [](const auto& x) {
                auto e = exp(x - max(x, axis<1>, keepdims));
                return e / sum(e, axis<1>, keepdims);
              },
              view(xb.data() + 1, shape<dyn, dyn>{r, c}));
    rows_case(emu, "log-softmax", true, -1, [](const auto& x) {
      auto d = x - max(x, axis<1>, keepdims);
      return d - log(sum(exp(d), axis<1>, keepdims));
    }, hx);
    rows_case(emu, "rms norm of double", true, -1, [](const auto& x) { return x * rsqrt(mean(x * x, axis<1>, keepdims) + 1e-6); }, hd);
    rows_case(emu, "int rows: max, min, sum, prod", true, -1, [](const auto& k) {
      return k * 2 - max(k, axis<1>, keepdims) + min(k, axis<1>, keepdims) * sum(k, axis<1>, keepdims) +
             prod(where(k > 95, 2, 1), axis<1>, keepdims);
    }, hk);
    rows_case(emu, "argmax and argmin along the row", true, -1, [](const auto& x) {
      return cast<float>(argmax(x, axis<1>, keepdims) - argmin(x, axis<1>, keepdims)) + x;
    }, hx);
    if (c == 17)  // (c rows of r: the emulation's time grows with the rows)
      rows_case(emu, "a transposed operand", true, -1, [](const auto& x) { return x - mean(x, axis<1>, keepdims); },
                view(xb.data(), shape<dyn, dyn>{c, r}, {1, index_t(c)}));
  }
  emu.plain_variant = true;
  {
    std::vector<float> xb(3 * 5 * 7);
    fill(xb.data(), xb.size(), 77);
    auto hx = view(xb.data(), shape<3, 5, 7>{});
    rows_case(emu, "two trailing axes", true, -1, [](const auto& x) { return x - mean(x, axes<1, 2>, keepdims); }, hx);
    rows_case(emu, "a row whose axes do not merge (swapped strides)", false, -1,
              [](const auto& x) { return x - mean(x, axes<1, 2>, keepdims); }, view(xb.data(), shape<3, 5, 7>{}, {35, 1, 5}));
    std::vector<float> nb(9 * 130);
    fill(nb.data(), nb.size(), 78);
    nb[4 * 130 + 7] = std::numeric_limits<float>::quiet_NaN();
    rows_case(emu, "NaN in a row", true, -1, [](const auto& x) {
      auto e = exp(x - max(x, axis<1>, keepdims));
      return e / sum(e, axis<1>, keepdims);
    }, view(nb.data(), shape<dyn, dyn>{9, 130}));
  }
  // A fill (no leaves) into a strided destination.
  {
    std::vector<float> ob(64);
    auto dst = cuda::view(ob.data(), shape<8, 4>{}, {8, 2});
    emu_assign(emu, dst, scalar_node<float>{2.5f}, 32, 2, false, false);
    if (emu.launch)
      for (std::size_t i = 0; i < 64; ++i) CHECK(ob[i] == (i % 2 == 0 ? 2.5f : 0.f));
  }
}

/// The host compiler to use, or empty.
std::string host_compiler() {
  for (const char* var : {"LOOM_TEST_CXX", "CXX"})
    if (const char* v = std::getenv(var); v != nullptr && *v != '\0') return v;
  return "c++";
}

const char* const emulation_prelude = R"(// CUDA built-ins emulated on the host: elementwise kernels one thread at a
// time; reduction and row kernels (shared memory, __syncthreads, warp shuffles) with a block's
// threads as fibers (ucontext) on this one thread: each runs to its next __syncthreads, then the
// next one does, so a barrier is a switch of stacks rather than a meeting of OS threads.
#include <math.h>
#include <string.h>
#include <ucontext.h>
#include <functional>
#include <memory>
#include <vector>
struct loom_emu_dim { unsigned x = 1, y = 1, z = 1; };
static loom_emu_dim blockIdx, blockDim, gridDim, threadIdx;
struct loom_emu_fiber {
  ucontext_t context;
  std::unique_ptr<char[]> stack;
  bool done = false;
};
static ucontext_t loom_emu_scheduler;
static std::vector<loom_emu_fiber> loom_emu_fibers;
static const std::function<void()>* loom_emu_body = nullptr;
static inline void __syncthreads() {
  swapcontext(&loom_emu_fibers[threadIdx.x].context, &loom_emu_scheduler);
}
static void loom_emu_fiber_main() {
  (*loom_emu_body)();
  loom_emu_fibers[threadIdx.x].done = true;  // then back to the scheduler (uc_link)
}
// Runs body() as `block` threads of one block: round after round, every thread that has not
// returned runs up to its next __syncthreads.
static void loom_emu_run_block(unsigned block, const std::function<void()>& body) {
  constexpr std::size_t stack_bytes = 256 * 1024;
  loom_emu_body = &body;
  if (loom_emu_fibers.size() < block) loom_emu_fibers.resize(block);
  for (unsigned t = 0; t < block; ++t) {
    loom_emu_fiber& f = loom_emu_fibers[t];
    if (!f.stack) f.stack.reset(new char[stack_bytes]);
    f.done = false;
    getcontext(&f.context);
    f.context.uc_stack.ss_sp = f.stack.get();
    f.context.uc_stack.ss_size = stack_bytes;
    f.context.uc_link = &loom_emu_scheduler;
    makecontext(&f.context, loom_emu_fiber_main, 0);
  }
  for (bool running = true; running;) {
    running = false;
    for (unsigned t = 0; t < block; ++t) {
      if (loom_emu_fibers[t].done) continue;
      threadIdx.x = t;
      swapcontext(&loom_emu_scheduler, &loom_emu_fibers[t].context);
      running = running || !loom_emu_fibers[t].done;
    }
  }
}
// A shuffle: every thread of the block calls it at once (row kernels keep their trips uniform).
static unsigned long long loom_emu_lanes[1024];
template <class T>
static inline T __shfl_xor_sync(unsigned, T v, int h) {
  const unsigned me = threadIdx.x;
  memcpy(&loom_emu_lanes[me], &v, sizeof(T));
  __syncthreads();
  T r;
  memcpy(&r, &loom_emu_lanes[me ^ unsigned(h)], sizeof(T));
  __syncthreads();
  return r;
}
#define __device__
#define __forceinline__ inline
#define __global__
#define __shared__ static
#define __launch_bounds__(...)
)";

}  // namespace

TEST_CASE("cuda emulation: generated kernels run on the host compute what the CPU computes", "[cuda][emulation]") {
  emulator emu;
  run_cases(emu);  // collect
  REQUIRE(emu.bodies.size() > 100);

  const fs::path dir = fs::temp_directory_path() / ("loom-emulation-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  {
    std::ofstream out(dir / "kernels.cpp");
    out << emulation_prelude << cg::preamble();
    for (const auto& [name, body] : emu.bodies) out << body;
    out << "#include <cstring>\nextern \"C\" int loom_emu_launch(const char* name, const unsigned char* args, unsigned "
           "grid, unsigned block) {\n";
    for (const auto& [name, body] : emu.bodies) {
      const std::string hash = name.substr(name.rfind('_') + 1);
      const std::string call = name + "(*reinterpret_cast<const loom_gen_" + hash + "::args*>(args));";
      out << "  if (std::strcmp(name, \"" << name << "\") == 0) {\n";
      if (name.rfind("loom_rd_", 0) == 0 || name.rfind("loom_rw_", 0) == 0 || name.rfind("loom_rf_", 0) == 0) {  // cooperative: the block's threads at once
        out << "    gridDim.x = grid; blockDim.x = block;\n"
            << "    const std::function<void()> body = [&] { " << call << " };\n"
            << "    for (unsigned b = 0; b < grid; ++b) {\n"
            << "      blockIdx.x = b;\n      loom_emu_run_block(block, body);\n    }\n    return 0;\n  }\n";
      } else {
        out << "    gridDim.x = grid; blockDim.x = block;\n"
            << "    for (unsigned b = 0; b < grid; ++b) for (unsigned t = 0; t < block; ++t) {\n"
            << "      blockIdx.x = b; threadIdx.x = t;\n"
            << "      " << call << "\n"
            << "    }\n    return 0;\n  }\n";
      }
    }
    out << "  return 1;\n}\n";
  }
  const std::string cxx = host_compiler();
  const std::string cmd = cxx + " -std=c++20 -O1 -w -shared -fPIC -pthread -o " + (dir / "kernels.so").string() + " " +
                          (dir / "kernels.cpp").string() + " > " + (dir / "log.txt").string() + " 2>&1";
  const int rc = std::system(cmd.c_str());
  if (rc != 0) {
    std::ifstream log(dir / "log.txt");
    const std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
    if (text.find("not found") != std::string::npos || text.find("No such file") != std::string::npos) {
      WARN("no host C++ compiler (" << cxx << "): skipped");
      fs::remove_all(dir);
      return;
    }
    FAIL("the generated kernels do not compile on the host:\n" << text.substr(0, 4000));
  }
  void* so = ::dlopen((dir / "kernels.so").c_str(), RTLD_NOW | RTLD_LOCAL);
  REQUIRE(so != nullptr);
  emu.launch = reinterpret_cast<launch_fn>(::dlsym(so, "loom_emu_launch"));
  REQUIRE(emu.launch != nullptr);
  run_cases(emu);  // run and compare
  CHECK(emu.runs > 2000);
  CHECK(emu.shared_runs > 500);  // leaves loaded once: contiguous, broadcast, strided
  CHECK(emu.column_runs > 50);  // both reduction strategies ran
  CHECK(emu.block_runs > 50);
  CHECK(emu.finish_group_runs > 0);  // second stages with lanes combining as a tree
  CHECK(emu.row_runs > 60);
  CHECK(emu.cached_row_runs > 50);  // the row cache, one element at a time and in groups
  CHECK(emu.vector_row_runs > 10);  // and whole-group stores
  CHECK(emu.bound_row_runs > 30);   // kernels bound to their arrays (and the general ones beside them)
  CHECK(emu.kept_row_runs > 5);     // a reduction's operand kept for the output (softmax's exp, K <= 8)
  ::dlclose(so);
  fs::remove_all(dir);
}
