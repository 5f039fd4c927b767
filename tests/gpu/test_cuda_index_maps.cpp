// Index maps and generators on a real device, against the CPU library's result for the same
// expression: transpose, permute, slice (steps, negative starts), flip, broadcast_to, reshape (in
// place, and of a transposed operand through a temporary), iota, zeros/ones/full, concat (two and
// three operands, mixed dtypes, nested) and pad, alone and composed, for odd sizes, into tensors
// and strided destinations.
//
// Every test skips with a visible message where no CUDA device is available.
#include <loom/cuda.hpp>
#include <loom/loom.hpp>

#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "gpu_support.hpp"
#include "support.hpp"

using namespace loom;
using loom_gpu_test::to_device;
using loom_gpu_test::to_host;

namespace {

/// build(host operands...) on the CPU and build(device copies...) on the device, compared.
template <class Build, class... Hs>
void check_same(const std::string& what, Build build, const Hs&... hs) {
  INFO(what);
  auto want = eval(build(hs...));
  auto got = to_host(cuda::eval(build(to_device(hs)...)));
  REQUIRE(got.shape().to_dims() == want.shape().to_dims());
  using T = typename decltype(want)::value_type;
  std::vector<double> w(want.data(), want.data() + want.size());
  if constexpr (std::is_floating_point_v<T>)
    loom_test::check_close(got.data(), w, std::is_same_v<T, float> ? 1e-5 : 1e-12, 1e-6, what);
  else
    loom_test::check_equal(got.data(), std::vector<T>(want.data(), want.data() + want.size()), what);
}

}  // namespace

TEST_CASE("cuda index maps: affine maps, reshape and generators match the CPU", "[cuda][gpu][index_map]") {
  LOOM_REQUIRE_GPU();
  for (std::size_t r : {1u, 7u, 17u, 1025u}) {
    for (std::size_t c : {1u, 16u, 17u, 1023u}) {
      if (r * c > (1u << 20)) continue;
      INFO(r << " x " << c);
      tensor<float, shape<dyn, dyn>> x(r, c), y(r, c);
      tensor<std::int32_t, shape<dyn, dyn>> k(r, c);
      loom_test::randomize(x, 1 + r + c);
      loom_test::randomize(y, 2 + r + c);
      loom_test::randomize(k, 3 + r + c, -50, 50);
      check_same("transpose", [](const auto& a, const auto& b) { return transpose(a) * 2.f - transpose(b); }, x, y);
      check_same("flip", [](const auto& a) { return flip<0>(a) + flip<1>(a) * 0.5f; }, x);
      check_same("slices", [](const auto& a) { return slice<1>(slice<0>(a, 1, 1000000, 3), -5, 1000000); }, x);
      check_same("broadcast_to",
                 [](const auto& a) { return broadcast_to(slice<0>(a, 0, 1), shape<dyn, dyn>{5, a.extent(1)}) + 1.f; }, x);
      check_same("reshape in place",
                 [](const auto& a, const auto& i) { return reshape(a, shape<dyn>{a.size()}) * cast<float>(reshape(i, shape<dyn>{i.size()})); },
                 x, k);
      check_same("reshape of a transpose (through a temporary)",
                 [](const auto& a) { return reshape(transpose(a), shape<dyn>{a.size()}) + 1.f; }, x);
      check_same("iota", [](const auto& a) { return a + iota<float>(shape<dyn, dyn>{a.extent(0), a.extent(1)}); }, x);
      check_same("transposed iota",
                 [](const auto& a) { return transpose(iota<std::int64_t>(shape<dyn, dyn>{a.extent(0), a.extent(1)})) + 1; }, x);
      check_same("full, ones, zeros",
                 [](const auto& a) {
                   return a * full<float>(shape<dyn, dyn>{a.extent(0), a.extent(1)}, 3) + ones<float>(shape<dyn>{a.extent(1)}) -
                          zeros<float>(shape<dyn, 1>{a.extent(0)});
                 },
                 x);
    }
  }
  tensor<double, shape<3, 4, 5>> t;
  loom_test::randomize(t, 9);
  check_same("permute<2, 0, 1>", [](const auto& a) { return permute<2, 0, 1>(a) * 3.0; }, t);
}

TEST_CASE("cuda index maps: concat and pad match the CPU", "[cuda][gpu][index_map]") {
  LOOM_REQUIRE_GPU();
  for (std::size_t r : {1u, 7u, 17u, 1025u}) {
    for (std::size_t c : {1u, 16u, 17u, 1023u}) {
      if (r * c > (1u << 20)) continue;
      INFO(r << " x " << c);
      tensor<float, shape<dyn, dyn>> x(r, c), y(r, c);
      tensor<std::int32_t, shape<dyn, dyn>> k(r, c);
      loom_test::randomize(x, 4 + r + c);
      loom_test::randomize(y, 5 + r + c);
      loom_test::randomize(k, 6 + r + c, -50, 50);
      check_same("concat of three, promoted",
                 [](const auto& a, const auto& b, const auto& i) { return concat<0>(a, exp(b), cast<double>(i) * 0.5); }, x, y, k);
      check_same("concat of a flip and a slice",
                 [](const auto& a, const auto& b) { return concat<1>(flip<1>(a), slice<1>(b, 1, 1000000)) * 2.f; }, x, y);
      check_same("nested concats",
                 [](const auto& a, const auto& b) {
                   return concat<0>(concat<1>(a, b), transpose(concat<0>(transpose(b), transpose(a))));
                 },
                 x, y);
      check_same("pad both axes", [](const auto& a) { return pad<0>(pad<1>(a, 2, 3, -1.f), 1, 0, 7.f); }, x);
      check_same("pad of a transpose plus a concat of generators",
                 [](const auto& a, const auto& b) {
                   return pad<1>(transpose(a) + transpose(b), 0, 4) +
                          concat<1>(iota<float>(shape<dyn, dyn>{a.extent(1), a.extent(0)}), zeros<float>(shape<dyn, 4>{a.extent(1)}));
                 },
                 x, y);
      // into a strided destination: every other column
      auto want = eval(concat<1>(x, y));
      auto dx = to_device(x), dy = to_device(y);
      cuda::tensor<float, shape<dyn, dyn>> wide(r, 4 * c);
      auto dst = cuda::view(wide.data(), shape<dyn, dyn>{r, 2 * c}, {index_t(4 * c), 2});
      dst = concat<1>(dx, dy);
      auto h = to_host(wide);
      std::size_t bad = 0;
      for (std::size_t i = 0; i < r; ++i)
        for (std::size_t j = 0; j < 2 * c; ++j) bad += h(i, 2 * j) != want(i, j) || h(i, 2 * j + 1) != 0.f;
      CHECK(bad == 0);
    }
  }
}
