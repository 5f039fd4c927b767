// The packed GEMM engine (loom/cpu/gemm.hpp) against a float64 reference on random inputs:
// odd and thin sizes, float / double / int32 / int64, row-major, transposed, strided and row-run
// sources, custom epilogues, forced multi-pass K blocking, 1 and 2 threads.
#include <catch2/catch.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "loom/cpu/gemm/driver.hpp"
#include "loom/cpu/thread_pool.hpp"

using loom::index_t;
namespace lg = loom::cpu::gemm;

namespace {

// Workers the pool starts need a moment before they first look at its job counter (see the
// report on thread_pool's start-up race); give them that moment after a resize.
void use_threads(unsigned n) {
  static const bool pool_started = [] {
    loom::num_threads();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    return true;
  }();
  (void)pool_started;
  loom::set_num_threads(n);
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
}

const index_t odd_sizes[] = {1, 3, 17, 65, 127, 129, 257};

/// An operand stored with a layout: row-major, column-major (transposed) or strided with gaps.
enum class layout { row, col, strided };

const char* name(layout l) { return l == layout::row ? "row-major" : l == layout::col ? "col-major" : "strided"; }

template <class T>
struct matrix {
  index_t rows = 0, cols = 0, rs = 0, cs = 0;
  std::vector<T> data;

  matrix(index_t r, index_t c, layout l, std::mt19937& g) : rows(r), cols(c) {
    switch (l) {
      case layout::row: rs = c, cs = 1; break;
      case layout::col: rs = 1, cs = r; break;
      case layout::strided: rs = 3 * c + 2, cs = 3; break;  // every third column, padded rows
    }
    index_t extent = r == 0 || c == 0 ? 1 : (r - 1) * rs + (c - 1) * cs + 1;
    data.assign(std::size_t(extent), T(0));
    for (index_t i = 0; i < r; ++i)
      for (index_t j = 0; j < c; ++j) (*this)(i, j) = draw(g);
  }
  static T draw(std::mt19937& g) {
    if constexpr (std::is_floating_point_v<T>) {
      return std::uniform_real_distribution<T>(T(-1), T(1))(g);
    } else {
      return T(std::uniform_int_distribution<int>(-8, 8)(g));
    }
  }
  T& operator()(index_t i, index_t j) { return data[std::size_t(i * rs + j * cs)]; }
  T operator()(index_t i, index_t j) const { return data[std::size_t(i * rs + j * cs)]; }
  lg::strided_source<T> source() const { return lg::strided(data.data(), rs, cs); }
};

/// The float64 product and the sum of |a||b| per element (for the error bound).
template <class T>
void reference(const matrix<T>& a, const matrix<T>& b, std::vector<double>& ref, std::vector<double>& mag) {
  index_t M = a.rows, K = a.cols, N = b.cols;
  ref.assign(std::size_t(M * N), 0.0);
  mag.assign(std::size_t(M * N), 0.0);
  for (index_t i = 0; i < M; ++i)
    for (index_t k = 0; k < K; ++k) {
      double x = double(a(i, k));
      for (index_t j = 0; j < N; ++j) {
        ref[std::size_t(i * N + j)] += x * double(b(k, j));
        mag[std::size_t(i * N + j)] += std::abs(x * double(b(k, j)));
      }
    }
}

/// K-aware bound: a sum of K products in T is within about K * eps * sum |a||b| of the truth.
template <class T>
double tolerance(index_t K, double mag) {
  if constexpr (std::is_integral_v<T>) {
    return 0.0;
  } else {
    return 2.0 * double(K + 1) * double(std::numeric_limits<T>::epsilon()) * mag + 1e-30;
  }
}

/// Runs gemm into a row-major C with padded rows and checks every element and the padding.
template <class T, class ASource, class BSource>
void check_product(const matrix<T>& a, const matrix<T>& b, const ASource& as, const BSource& bs,
                   const lg::options& opt = {}, double a_scale = 1.0) {
  const index_t M = a.rows, K = a.cols, N = b.cols;
  const index_t ldc = N + 5;
  const T sentinel = T(77);
  std::vector<T> c(std::size_t(std::max<index_t>(M, 1) * ldc), sentinel);
  lg::gemm<T>(M, N, K, as, bs, lg::store_to(c.data(), ldc), opt);
  std::vector<double> ref, mag;
  reference(a, b, ref, mag);
  index_t bad = 0;
  for (index_t i = 0; i < M; ++i) {
    for (index_t j = 0; j < N; ++j) {
      double want = a_scale * ref[std::size_t(i * N + j)];
      double got = double(c[std::size_t(i * ldc + j)]);
      if (std::abs(got - want) > tolerance<T>(K, std::abs(a_scale) * mag[std::size_t(i * N + j)])) {
        if (++bad <= 3) {
          UNSCOPED_INFO("C(" << i << ", " << j << ") = " << got << ", reference " << want);
        }
      }
    }
    for (index_t j = N; j < ldc; ++j) {
      if (c[std::size_t(i * ldc + j)] != sentinel) ++bad;
    }
  }
  INFO("M = " << M << ", N = " << N << ", K = " << K << ", " << opt.block.describe() << ", threads "
              << loom::num_threads() << ", mismatches " << bad);
  CHECK(bad == 0);
}

template <class T>
void check_layouts(index_t M, index_t N, index_t K, layout la, layout lb, std::mt19937& g,
                   const lg::options& opt = {}) {
  matrix<T> a(M, K, la, g), b(K, N, lb, g);
  INFO("A " << name(la) << ", B " << name(lb));
  check_product(a, b, a.source(), b.source(), opt);
}

/// Blocks small enough that modest sizes take several passes over K, several mo / nc / mc blocks.
lg::options tiny_blocks() {
  lg::options o;
  o.block.kc = 16;
  o.block.nc = 2 * lg::register_tile<float>::nr;
  o.block.mo = 3 * lg::register_tile<float>::mr;
  return o;
}

}  // namespace

TEST_CASE("gemm: every odd size combination, float, row-major", "[gemm]") {
  std::mt19937 g(1);
  for (unsigned threads : {1u, 2u}) {
    use_threads(threads);
    for (index_t M : odd_sizes)
      for (index_t N : odd_sizes)
        for (index_t K : odd_sizes) check_layouts<float>(M, N, K, layout::row, layout::row, g);
  }
}

TEST_CASE("gemm: transposed and strided operands, float and double", "[gemm]") {
  std::mt19937 g(2);
  const layout layouts[] = {layout::row, layout::col, layout::strided};
  const index_t shapes[][3] = {{17, 65, 129}, {129, 17, 65}, {65, 129, 17}, {1, 257, 127}, {257, 1, 127},
                               {127, 127, 1},  {3, 3, 3},     {257, 129, 257}, {1, 1, 257}};
  for (unsigned threads : {1u, 2u}) {
    use_threads(threads);
    for (auto& s : shapes)
      for (layout la : layouts)
        for (layout lb : layouts) {
          check_layouts<float>(s[0], s[1], s[2], la, lb, g);
          check_layouts<double>(s[0], s[1], s[2], la, lb, g);
        }
  }
}

TEST_CASE("gemm: thin shapes (matrix-vector, up to 4 rows or columns) in every layout", "[gemm]") {
  std::mt19937 g(3);
  const layout layouts[] = {layout::row, layout::col, layout::strided};
  for (unsigned threads : {1u, 2u}) {
    use_threads(threads);
    for (index_t t : {1, 2, 3, 4})
      for (index_t L : {1, 3, 17, 129, 1000})
        for (index_t K : {1, 17, 700})
          for (layout la : layouts)
            for (layout lb : layouts) {
              check_layouts<float>(t, L, K, la, lb, g);
              check_layouts<float>(L, t, K, la, lb, g);
              if (t != 2) continue;
              check_layouts<double>(t, L, K, la, lb, g);
              check_layouts<double>(L, t, K, la, lb, g);
            }
  }
}

TEST_CASE("gemm: several passes over K, several row and column blocks (small cache blocks)", "[gemm]") {
  std::mt19937 g(4);
  for (unsigned threads : {1u, 2u}) {
    use_threads(threads);
    for (index_t M : {1, 3, 17, 65, 129})
      for (index_t N : {1, 3, 17, 65, 129})
        for (index_t K : {15, 16, 17, 65, 129}) {
          check_layouts<float>(M, N, K, layout::row, layout::row, g, tiny_blocks());
          check_layouts<double>(M, N, K, layout::col, layout::strided, g, tiny_blocks());
        }
  }
  // The default blocks with K over one pass.
  use_threads(2);
  check_layouts<float>(129, 257, 1100, layout::row, layout::row, g);
  check_layouts<double>(65, 129, 600, layout::row, layout::col, g);
}

TEST_CASE("gemm: integers are exact", "[gemm]") {
  std::mt19937 g(5);
  for (unsigned threads : {1u, 2u}) {
    use_threads(threads);
    for (index_t M : {1, 17, 129})
      for (index_t N : {1, 3, 65})
        for (index_t K : {1, 127, 300}) {
          check_layouts<std::int32_t>(M, N, K, layout::row, layout::row, g);
          check_layouts<std::int32_t>(M, N, K, layout::col, layout::strided, g);
          check_layouts<std::int64_t>(M, N, K, layout::row, layout::col, g);
        }
    check_layouts<std::int32_t>(65, 65, 65, layout::row, layout::row, g, tiny_blocks());
  }
}

TEST_CASE("gemm: row-run sources evaluate an expression operand while packing", "[gemm]") {
  std::mt19937 g(6);
  for (unsigned threads : {1u, 2u}) {
    use_threads(threads);
    for (auto [M, N, K] : {std::array<index_t, 3>{1, 1, 1}, {17, 65, 129}, {129, 127, 3}, {257, 129, 300},
                          {1, 300, 257}, {300, 1, 257}}) {
      for (bool small : {false, true}) {
        const lg::options opt = small ? tiny_blocks() : lg::options{};
        matrix<float> x(M, K, layout::row, g), b(K, N, layout::col, g);
        // Runs are read from several threads: Catch2's assertions are not thread-safe.
        std::atomic<bool> in_bounds{true};
        // A = 0.5 * X, read a run at a time.
        auto half_x = lg::row_runs<float>([&](index_t r, index_t c0, index_t n, float* out) {
          if (r < 0 || r >= M || c0 < 0 || n <= 0 || c0 + n > K) in_bounds = false;
          for (index_t j = 0; j < n; ++j) out[j] = 0.5f * x(r, c0 + j);
        });
        check_product(x, b, half_x, b.source(), opt, 0.5);
        CHECK(in_bounds);
        // B through a row-run source too (a double source feeding a float product).
        matrix<float> bb(K, N, layout::strided, g);
        auto b_runs = lg::row_runs<double>([&](index_t r, index_t c0, index_t n, double* out) {
          if (r < 0 || r >= K || c0 < 0 || n <= 0 || c0 + n > N) in_bounds = false;
          for (index_t j = 0; j < n; ++j) out[j] = double(bb(r, c0 + j));
        });
        check_product(x, bb, x.source(), b_runs, opt);
        CHECK(in_bounds);
      }
    }
  }
}

TEST_CASE("gemm: a fused epilogue (bias + relu) sees complete sums, every element once", "[gemm]") {
  std::mt19937 g(7);
  for (unsigned threads : {1u, 2u}) {
    use_threads(threads);
    for (auto [M, N, K] : {std::array<index_t, 3>{1, 1, 1}, {3, 17, 65}, {129, 257, 127}, {257, 129, 1100},
                          {1, 1000, 300}, {1000, 1, 300}, {65, 65, 0}}) {
      for (bool small : {false, true}) {
        const lg::options opt = small ? tiny_blocks() : lg::options{};
        matrix<float> a(M, K, layout::row, g), b(K, N, layout::row, g);
        std::vector<float> bias(static_cast<std::size_t>(N));
        for (auto& v : bias) v = std::uniform_real_distribution<float>(-1, 1)(g);
        std::vector<float> c(std::size_t(M * N), -5.f);
        std::vector<std::atomic<int>> seen(std::size_t(M * N));
        std::atomic<bool> bounds_ok{true};
        lg::gemm<float>(
            M, N, K, a.source(), b.source(),
            [&](index_t i0, index_t j0, index_t mr, index_t nr, const float* tile, index_t ld) {
              if (i0 < 0 || j0 < 0 || mr <= 0 || nr <= 0 || i0 + mr > M || j0 + nr > N || ld < nr) {
                bounds_ok = false;
                return;
              }
              for (index_t i = 0; i < mr; ++i)
                for (index_t j = 0; j < nr; ++j) {
                  float v = tile[i * ld + j] + bias[std::size_t(j0 + j)];
                  c[std::size_t((i0 + i) * N + j0 + j)] = v > 0.f ? v : 0.f;
                  seen[std::size_t((i0 + i) * N + j0 + j)].fetch_add(1, std::memory_order_relaxed);
                }
            },
            opt);
        REQUIRE(bounds_ok);
        std::vector<double> ref, mag;
        reference(a, b, ref, mag);
        index_t bad = 0, not_once = 0;
        for (index_t e = 0; e < M * N; ++e) {
          if (seen[std::size_t(e)].load() != 1) ++not_once;
          double want = std::max(0.0, ref[std::size_t(e)] + double(bias[std::size_t(e % N)]));
          if (std::abs(double(c[std::size_t(e)]) - want) > tolerance<float>(K, mag[std::size_t(e)] + 1.0)) ++bad;
        }
        INFO("M = " << M << ", N = " << N << ", K = " << K << ", threads " << threads << ", small blocks " << small);
        CHECK(not_once == 0);
        CHECK(bad == 0);
      }
    }
  }
}

TEST_CASE("gemm: empty extents", "[gemm]") {
  std::mt19937 g(8);
  for (unsigned threads : {1u, 2u}) {
    use_threads(threads);
    // K = 0: the product is zero, and it still goes through the epilogue.
    for (auto [M, N] : {std::pair<index_t, index_t>{1, 1}, {3, 17}, {129, 65}}) {
      matrix<float> a(M, 0, layout::row, g), b(0, N, layout::row, g);
      check_product(a, b, a.source(), b.source());
      std::vector<double> c(std::size_t(M * N), 9.0);
      lg::gemm<double>(M, N, 0, lg::row_major<double>(nullptr, 0), lg::row_major<double>(nullptr, N),
                       lg::store_to(c.data(), N));
      for (double v : c) CHECK(v == 0.0);
    }
    // M = 0 or N = 0: nothing to hand over.
    int calls = 0;
    auto count = [&](index_t, index_t, index_t, index_t, const float*, index_t) { ++calls; };
    std::vector<float> a(100, 1.f), b(100, 1.f);
    lg::gemm<float>(0, 5, 5, lg::row_major(a.data(), 5), lg::row_major(b.data(), 5), count);
    lg::gemm<float>(5, 0, 5, lg::row_major(a.data(), 5), lg::row_major(b.data(), 1), count);
    lg::gemm<float>(0, 0, 0, lg::row_major(a.data(), 1), lg::row_major(b.data(), 1), count);
    CHECK(calls == 0);
  }
}

TEST_CASE("gemm: 1 x 1 x 1, accumulate, conversion on store, negative extents", "[gemm]") {
  use_threads(2);
  float a = 3.f, b = -2.f, c = 0.f;
  lg::gemm<float>(1, 1, 1, lg::row_major(&a, 1), lg::row_major(&b, 1), lg::store_to(&c, 1));
  CHECK(c == -6.f);
  lg::gemm<float>(1, 1, 1, lg::row_major(&a, 1), lg::row_major(&b, 1), lg::accumulate_to(&c, 1));
  CHECK(c == -12.f);

  // A float product stored into a double, column-major destination.
  std::mt19937 g(9);
  matrix<float> x(17, 33, layout::row, g), y(33, 9, layout::row, g);
  std::vector<double> out(17 * 9, 0.0);
  lg::gemm<float>(17, 9, 33, x.source(), y.source(), lg::store_to(out.data(), 1, 17));
  std::vector<double> ref, mag;
  reference(x, y, ref, mag);
  for (index_t i = 0; i < 17; ++i)
    for (index_t j = 0; j < 9; ++j)
      CHECK(std::abs(out[std::size_t(i + j * 17)] - ref[std::size_t(i * 9 + j)]) <= tolerance<float>(33, mag[std::size_t(i * 9 + j)]));

  CHECK_THROWS_AS(lg::gemm<float>(-1, 1, 1, lg::row_major(&a, 1), lg::row_major(&b, 1), lg::store_to(&c, 1)),
                  loom::shape_error);
}

TEST_CASE("gemm: a product inside an epilogue gets its own workspace", "[gemm]") {
  use_threads(1);
  std::mt19937 g(10);
  matrix<float> a(40, 30, layout::row, g), b(30, 50, layout::row, g), s(2, 2, layout::row, g);
  std::vector<float> c(40 * 50);
  float inner = 0.f;
  lg::gemm<float>(40, 50, 30, a.source(), b.source(), [&](index_t i0, index_t j0, index_t mr, index_t nr, const float* t, index_t ld) {
    float x = 0.f;
    lg::gemm<float>(1, 1, 2, s.source(), lg::strided(s.data.data(), 2, 1), lg::store_to(&x, 1));
    inner = x;
    lg::store_to(c.data(), 50)(i0, j0, mr, nr, t, ld);
  });
  CHECK(inner == Approx(s(0, 0) * s(0, 0) + s(0, 1) * s(1, 0)));
  std::vector<double> ref, mag;
  reference(a, b, ref, mag);
  for (index_t e = 0; e < 40 * 50; ++e) CHECK(std::abs(c[std::size_t(e)] - ref[std::size_t(e)]) <= tolerance<float>(30, mag[std::size_t(e)]));
}

TEST_CASE("gemm_batched: small products spread over threads, large ones split", "[gemm]") {
  std::mt19937 g(11);
  for (unsigned threads : {1u, 2u}) {
    use_threads(threads);
    for (auto [count, M, N, K] : {std::array<index_t, 4>{0, 3, 3, 3}, {1, 17, 17, 17}, {64, 32, 32, 32}, {7, 1, 65, 129},
                                 {5, 65, 3, 33}, {3, 200, 180, 170}}) {
      std::vector<matrix<float>> as;
      for (index_t t = 0; t < count; ++t) as.emplace_back(M, K, layout::row, g);
      matrix<float> b(K, N, layout::col, g);  // shared by every product (a broadcast batch dimension)
      std::vector<float> c(std::size_t(std::max<index_t>(count, 1) * M * N), -1.f);
      lg::gemm_batched<float>(
          count, M, N, K, [&](index_t t) { return as[std::size_t(t)].source(); }, [&](index_t) { return b.source(); },
          [&](index_t t) { return lg::store_to(c.data() + t * M * N, N); });
      index_t bad = 0;
      for (index_t t = 0; t < count; ++t) {
        std::vector<double> ref, mag;
        reference(as[std::size_t(t)], b, ref, mag);
        for (index_t e = 0; e < M * N; ++e)
          if (std::abs(double(c[std::size_t(t * M * N + e)]) - ref[std::size_t(e)]) > tolerance<float>(K, mag[std::size_t(e)]))
            ++bad;
      }
      INFO("count " << count << ", " << M << " x " << N << " x " << K << ", threads " << threads);
      CHECK(bad == 0);
    }
  }
}

TEST_CASE("gemm: the thread grid splits square and thin products evenly", "[gemm]") {
  using rt = lg::register_tile<float>;
  auto grid_of = [](index_t M, index_t N, index_t K) {
    return lg::choose_thread_grid<float>(M, N, K, 2, lg::default_blocking<float>(M, N, K));
  };
  // Square and K-thin: two halves of the rows, whole register tiles (86 row panels: 43 + 43).
  for (auto [M, N, K] : {std::array<index_t, 3>{1024, 1024, 1024}, {1024, 1024, 64}}) {
    auto g = grid_of(M, N, K);
    CHECK(g.tm == 2);
    CHECK(g.tn == 1);
    index_t half = lg::detail::split_point(M, rt::mr, 2, 1);
    CHECK(half % rt::mr == 0);
    CHECK(std::abs((M - half) - half) <= rt::mr);
  }
  // Few rows: two halves of the columns.
  auto g = grid_of(64, 1024, 1024);
  CHECK(g.tm == 1);
  CHECK(g.tn == 2);
  CHECK(lg::detail::split_point(1024, rt::nr, 2, 1) == 512);
  // Too little work for a second thread.
  CHECK(grid_of(16, 16, 16).threads() == 1);
}
