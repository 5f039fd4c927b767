// NumPy broadcasting for every pairing of ranks 1 to 4 (and rank 0), static and dynamic shapes,
// with random stretched axes, against an index-by-index float64 reference.
#include <loom/loom.hpp>

#include <random>

#include "support.hpp"

using namespace loom;

namespace {

using D4 = shape<dyn, dyn, dyn, dyn>;

// A tensor of rank R with the given extents, as shape<dyn, ...> of that rank.
template <std::size_t R>
struct dyn_shape;
template <>
struct dyn_shape<1> {
  using type = shape<dyn>;
};
template <>
struct dyn_shape<2> {
  using type = shape<dyn, dyn>;
};
template <>
struct dyn_shape<3> {
  using type = shape<dyn, dyn, dyn>;
};
template <>
struct dyn_shape<4> {
  using type = shape<dyn, dyn, dyn, dyn>;
};

template <std::size_t R>
auto make(const std::array<std::size_t, 4>& e) {
  using S = typename dyn_shape<R>::type;
  if constexpr (R == 1)
    return tensor<float, S>(e[0]);
  else if constexpr (R == 2)
    return tensor<float, S>(e[0], e[1]);
  else if constexpr (R == 3)
    return tensor<float, S>(e[0], e[1], e[2]);
  else
    return tensor<float, S>(e[0], e[1], e[2], e[3]);
}

// Element of a row-major array of rank r with extents e at the broadcast index idx (rank 4).
double at(const float* p, std::size_t r, const std::array<std::size_t, 4>& e, const std::array<std::size_t, 4>& idx) {
  std::size_t off = 0;
  for (std::size_t k = 0; k < r; ++k) {
    std::size_t i = idx[4 - r + k];
    if (e[k] == 1) i = 0;
    off = off * e[k] + i;
  }
  return p[off];
}

template <std::size_t RA, std::size_t RB>
void check_pair(std::mt19937& g) {
  std::uniform_int_distribution<int> ext(2, 6), coin(0, 2);
  for (int trial = 0; trial < 6; ++trial) {
    std::array<std::size_t, 4> full{};
    for (auto& f : full) f = std::size_t(ext(g));
    if (trial == 5) full[3] = 17;  // a longer inner run with a SIMD body and a tail
    std::array<std::size_t, 4> ea{1, 1, 1, 1}, eb{1, 1, 1, 1};
    for (std::size_t k = 0; k < RA; ++k) ea[k] = coin(g) == 0 ? 1 : full[4 - RA + k];
    for (std::size_t k = 0; k < RB; ++k) eb[k] = coin(g) == 0 ? 1 : full[4 - RB + k];
    auto a = make<RA>(ea);
    auto b = make<RB>(eb);
    loom_test::randomize(a, 100 + trial);
    loom_test::randomize(b, 200 + trial);
    auto o = eval(a * 2.f - b);
    constexpr std::size_t R = RA > RB ? RA : RB;
    static_assert(decltype(o)::rank == R);
    std::array<std::size_t, 4> eo{1, 1, 1, 1};  // right-aligned extents of the result
    for (std::size_t k = 0; k < 4; ++k) {
      std::size_t xa = k >= 4 - RA ? ea[k - (4 - RA)] : 1, xb = k >= 4 - RB ? eb[k - (4 - RB)] : 1;
      eo[k] = std::max(xa, xb);
    }
    for (std::size_t k = 0; k < R; ++k) REQUIRE(o.extent(k) == eo[4 - R + k]);
    std::vector<double> want;
    for (std::size_t i0 = 0; i0 < eo[0]; ++i0)
      for (std::size_t i1 = 0; i1 < eo[1]; ++i1)
        for (std::size_t i2 = 0; i2 < eo[2]; ++i2)
          for (std::size_t i3 = 0; i3 < eo[3]; ++i3) {
            std::array<std::size_t, 4> idx{i0, i1, i2, i3};
            want.push_back(double(2.f * float(at(a.data(), RA, ea, idx)) - float(at(b.data(), RB, eb, idx))));
          }
    INFO("ranks " << RA << " and " << RB << ", trial " << trial);
    loom_test::check_close(o.data(), want, 0, 0, "broadcast");
  }
}

}  // namespace

TEST_CASE("every pairing of ranks 1..4 broadcasts as NumPy", "[broadcast]") {
  std::mt19937 g(42);
  check_pair<1, 1>(g), check_pair<1, 2>(g), check_pair<1, 3>(g), check_pair<1, 4>(g);
  check_pair<2, 1>(g), check_pair<2, 2>(g), check_pair<2, 3>(g), check_pair<2, 4>(g);
  check_pair<3, 1>(g), check_pair<3, 2>(g), check_pair<3, 3>(g), check_pair<3, 4>(g);
  check_pair<4, 1>(g), check_pair<4, 2>(g), check_pair<4, 3>(g), check_pair<4, 4>(g);
}

TEST_CASE("static shapes broadcast at compile time", "[broadcast]") {
  tensor<float, shape<4, 1, 3>> a;
  tensor<float, shape<5, 1>> b;
  tensor<float, shape<>> s;
  loom_test::randomize(a, 1);
  loom_test::randomize(b, 2);
  s() = 0.5f;
  auto o = eval(a + b * s);
  static_assert(std::is_same_v<decltype(o)::shape_type, shape<4, 5, 3>>);
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 5; ++j)
      for (int k = 0; k < 3; ++k) CHECK(o(i, j, k) == a(i, 0, k) + b(j, 0) * 0.5f);
  tensor<float, shape<dyn, 3>> d(4);
  auto od = eval(d + tensor<float, shape<3>>{});  // a temporary moved into the expression
  static_assert(std::is_same_v<decltype(od)::shape_type, shape<dyn, 3>>);
  CHECK(od.extent(0) == 4);
}

TEST_CASE("rank-0 operands and scalars broadcast everywhere", "[broadcast]") {
  tensor<double, shape<>> s;
  s() = 2.0;
  tensor<double, shape<dyn, dyn>> m(3, 33);
  loom_test::randomize(m, 3);
  auto o = eval(m * s + 1);
  for (std::size_t i = 0; i < m.size(); ++i) CHECK(o.data()[i] == m.data()[i] * 2.0 + 1);
  auto z = eval(s * 3.0);
  CHECK(z() == 6.0);
}

TEST_CASE("run-time broadcast mismatches throw at build time", "[broadcast][bad-input]") {
  tensor<float, shape<dyn, dyn>> a(3, 4), b(2, 4);
  CHECK_THROWS_AS(a + b, shape_error);
  tensor<float, shape<dyn, 4>> c(3);
  tensor<float, shape<dyn>> d(5);
  CHECK_THROWS_AS(c * d, shape_error);
  tensor<float, shape<dyn>> one(1);
  CHECK_NOTHROW(c * one);
}
