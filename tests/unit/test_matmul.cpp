// matmul(a, b): shapes (odd sizes, 1 x 1 x 1, M = 1, batches broadcast), operands in place
// (contiguous, transposed, strided views), as expressions, float / double / int32 and mixed types,
// static and dynamic shapes, shape errors that leave the destination untouched, and aliasing.
// Every result is compared with a float64 reference with a K-aware tolerance: the error of a
// dot product of K terms is at most about K ulps of the sum of |a_ik b_kj|.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include <loom/loom.hpp>

#include "support.hpp"

using namespace loom;
using loom_test::fill_random;

namespace {

using mat_f = tensor<float, shape<dyn, dyn>>;
using mat_d = tensor<double, shape<dyn, dyn>>;
using mat_i = tensor<std::int32_t, shape<dyn, dyn>>;

/// Compares got(i, j) with sum_k a(i, k) b(k, j) for an M x N x K product.
template <class Got>
void check_product(index_t M, index_t N, index_t K, const std::function<double(index_t, index_t)>& a,
                   const std::function<double(index_t, index_t)>& b, Got&& got, double eps, const std::string& what,
                   const std::function<double(double, index_t, index_t)>& post = nullptr) {
  std::size_t bad = 0;
  std::string first;
  for (index_t i = 0; i < M; ++i) {
    for (index_t j = 0; j < N; ++j) {
      double s = 0, mag = 0;
      for (index_t k = 0; k < K; ++k) {
        const double p = a(i, k) * b(k, j);
        s += p;
        mag += std::fabs(p);
      }
      double want = post ? post(s, i, j) : s;
      const double g = static_cast<double>(got(i, j));
      const double tol = double(K + 4) * eps * (mag + 1.0) + eps * std::fabs(want);
      if (!(std::fabs(g - want) <= tol)) {
        if (bad++ == 0)
          first = "(" + std::to_string(i) + ", " + std::to_string(j) + "): got " + std::to_string(g) + ", want " +
                  std::to_string(want);
      }
    }
  }
  if (bad) FAIL_CHECK(what << " [" << M << " x " << N << " x " << K << "]: " << bad << " wrong, first at " << first);
}

template <class T>
double eps_of() {
  return std::is_floating_point_v<T> ? double(std::numeric_limits<T>::epsilon()) : 0.0;
}

struct dims3 {
  index_t m, n, k;
};
const std::vector<dims3> float_sizes = {{1, 1, 1},     {1, 3, 17},    {3, 1, 65},   {17, 17, 17}, {1, 257, 129},
                                        {1, 127, 300}, {65, 1, 127},  {127, 129, 65}, {129, 65, 257}, {257, 127, 3},
                                        {3, 257, 1},   {16, 65, 1100}, {2, 2, 2},    {4, 4, 4},    {5, 3, 0},
                                        {300, 200, 1500}};

}  // namespace

TEST_CASE("matmul: float products of odd sizes, contiguous operands", "[matmul]") {
  std::uint64_t seed = 1;
  for (auto [M, N, K] : float_sizes) {
    mat_f a(M, K), b(K, N), c(M, N);
    fill_random(a.data(), a.size(), seed++);
    fill_random(b.data(), b.size(), seed++);
    c = matmul(a, b);
    check_product(
        M, N, K, [&](index_t i, index_t k) { return double(a(i, k)); }, [&](index_t k, index_t j) { return double(b(k, j)); },
        [&](index_t i, index_t j) { return c(i, j); }, eps_of<float>(), "float");
  }
}

TEST_CASE("matmul: double and int32 products, and mixed types promote", "[matmul]") {
  std::uint64_t seed = 100;
  for (auto [M, N, K] : std::vector<dims3>{{1, 1, 1}, {3, 17, 65}, {65, 127, 129}, {1, 129, 257}, {257, 3, 17}}) {
    mat_d a(M, K), b(K, N), c(M, N);
    fill_random(a.data(), a.size(), seed++);
    fill_random(b.data(), b.size(), seed++);
    c = matmul(a, b);
    check_product(
        M, N, K, [&](index_t i, index_t k) { return a(i, k); }, [&](index_t k, index_t j) { return b(k, j); },
        [&](index_t i, index_t j) { return c(i, j); }, eps_of<double>(), "double");

    mat_i ia(M, K), ib(K, N), ic(M, N);
    fill_random(ia.data(), ia.size(), seed++, -50, 50);
    fill_random(ib.data(), ib.size(), seed++, -50, 50);
    ic = matmul(ia, ib);
    check_product(
        M, N, K, [&](index_t i, index_t k) { return double(ia(i, k)); },
        [&](index_t k, index_t j) { return double(ib(k, j)); }, [&](index_t i, index_t j) { return ic(i, j); }, 0.0,
        "int32");

    // int32 with float promotes to double, as NumPy.
    auto mixed = eval(matmul(ia, b));
    static_assert(std::is_same_v<decltype(mixed)::value_type, double>);
    check_product(
        M, N, K, [&](index_t i, index_t k) { return double(ia(i, k)); }, [&](index_t k, index_t j) { return b(k, j); },
        [&](index_t i, index_t j) { return mixed(i, j); }, eps_of<double>(), "int32 x double");
  }
}

TEST_CASE("matmul: transposed, strided and expression operands", "[matmul]") {
  std::uint64_t seed = 200;
  for (auto [M, N, K] : std::vector<dims3>{{1, 1, 1}, {1, 65, 17}, {17, 3, 129}, {65, 127, 257}, {129, 257, 65}}) {
    mat_f at(K, M), b(K, N), bt(N, K), a(M, K);
    fill_random(at.data(), at.size(), seed++);
    fill_random(b.data(), b.size(), seed++);
    fill_random(bt.data(), bt.size(), seed++);
    fill_random(a.data(), a.size(), seed++);
    mat_f c(M, N);
    auto A = [&](index_t i, index_t k) { return double(a(i, k)); };
    auto B = [&](index_t k, index_t j) { return double(b(k, j)); };
    auto At = [&](index_t i, index_t k) { return double(at(k, i)); };
    auto Bt = [&](index_t k, index_t j) { return double(bt(j, k)); };
    auto C = [&](index_t i, index_t j) { return c(i, j); };
    const double e = eps_of<float>();

    c = matmul(transpose(at), b);
    check_product(M, N, K, At, B, C, e, "transpose(a) . b");
    c = matmul(a, transpose(bt));
    check_product(M, N, K, A, Bt, C, e, "a . transpose(b)");
    c = matmul(transpose(at), transpose(bt));
    check_product(M, N, K, At, Bt, C, e, "transpose(a) . transpose(b)");

    // Strided views: every other column of a wider matrix, and a column-major view.
    std::vector<float> wide(std::size_t(M * 2 * K + 1));
    fill_random(wide.data(), wide.size(), seed++);
    auto sv = view(wide.data(), shape<dyn, dyn>{M, K}, {2 * K, 2});
    std::vector<float> cm(std::size_t(K * N));
    fill_random(cm.data(), cm.size(), seed++);
    auto cv = view(cm.data(), shape<dyn, dyn>{K, N}, {1, K});
    c = matmul(sv, cv);
    check_product(
        M, N, K, [&](index_t i, index_t k) { return double(wide[std::size_t(i * 2 * K + 2 * k)]); },
        [&](index_t k, index_t j) { return double(cm[std::size_t(k + j * K)]); }, C, e, "strided views");

    // Expression operands, evaluated while packed: a * 2 and exp(b) - 1, and a slice.
    c = matmul(a * 2.f, exp(b) - 1.f);
    check_product(
        M, N, K, [&](index_t i, index_t k) { return 2.0 * a(i, k); },
        [&](index_t k, index_t j) { return std::exp(double(b(k, j))) - 1.0; }, C, 4 * e, "expression operands");
    c = matmul(a * 0.5f, transpose(bt));
    check_product(
        M, N, K, [&](index_t i, index_t k) { return 0.5 * a(i, k); }, Bt, C, e, "a * 0.5 . transpose(b)");
  }
}

TEST_CASE("matmul: static shapes, and the contract's products", "[matmul]") {
  tensor<float, shape<64, 48>> a;
  tensor<float, shape<48, 32>> w;
  tensor<float, shape<32, 48>> wt;
  tensor<float, shape<64, 32>> h;
  loom_test::randomize(a, 1);
  loom_test::randomize(w, 2);
  loom_test::randomize(wt, 3);
  h = matmul(a, w);
  static_assert(std::is_same_v<decltype(matmul(a, w))::shape_type, shape<64, 32>>);
  check_product(
      64, 32, 48, [&](index_t i, index_t k) { return double(a(i, k)); }, [&](index_t k, index_t j) { return double(w(k, j)); },
      [&](index_t i, index_t j) { return h(i, j); }, eps_of<float>(), "static");
  h = matmul(a * 2.f, transpose(wt));
  check_product(
      64, 32, 48, [&](index_t i, index_t k) { return 2.0 * a(i, k); },
      [&](index_t k, index_t j) { return double(wt(j, k)); }, [&](index_t i, index_t j) { return h(i, j); },
      eps_of<float>(), "static, expression operands");
  // Static x dynamic: the result's extents are static where they can be.
  tensor<float, shape<dyn, 48>> d(5);
  loom_test::randomize(d, 4);
  static_assert(std::is_same_v<decltype(matmul(d, w))::shape_type, shape<dyn, 32>>);
  auto e = eval(matmul(d, w));
  check_product(
      5, 32, 48, [&](index_t i, index_t k) { return double(d(i, k)); }, [&](index_t k, index_t j) { return double(w(k, j)); },
      [&](index_t i, index_t j) { return e(i, j); }, eps_of<float>(), "dyn x static");
}

TEST_CASE("matmul: batches broadcast as NumPy", "[matmul]") {
  std::uint64_t seed = 300;
  for (auto [M, N, K] : std::vector<dims3>{{1, 1, 1}, {3, 17, 5}, {17, 65, 33}, {65, 3, 129}}) {
    const index_t B0 = 2, B1 = 3;
    tensor<float, shape<dyn, dyn, dyn, dyn>> a(B0, 1, M, K), c(B0, B1, M, N);
    tensor<float, shape<dyn, dyn, dyn>> b(B1, K, N);
    fill_random(a.data(), a.size(), seed++);
    fill_random(b.data(), b.size(), seed++);
    c = matmul(a, b);  // [2, 1, M, K] x [3, K, N] -> [2, 3, M, N]
    REQUIRE(c.extent(0) == std::size_t(B0));
    for (index_t p = 0; p < B0; ++p)
      for (index_t q = 0; q < B1; ++q)
        check_product(
            M, N, K, [&](index_t i, index_t k) { return double(a(p, 0, i, k)); },
            [&](index_t k, index_t j) { return double(b(q, k, j)); }, [&](index_t i, index_t j) { return c(p, q, i, j); },
            eps_of<float>(), "batched " + std::to_string(p) + "," + std::to_string(q));

    // A batch of matrices times one matrix, and the transposed batch operand (permute).
    tensor<float, shape<dyn, dyn, dyn>> x(B1, M, K), y(B1, M, N);
    mat_f w(K, N);
    fill_random(x.data(), x.size(), seed++);
    fill_random(w.data(), w.size(), seed++);
    y = matmul(x * 3.f, w);
    for (index_t q = 0; q < B1; ++q)
      check_product(
          M, N, K, [&](index_t i, index_t k) { return 3.0 * x(q, i, k); }, [&](index_t k, index_t j) { return double(w(k, j)); },
          [&](index_t i, index_t j) { return y(q, i, j); }, eps_of<float>(), "batch x matrix");
    tensor<float, shape<dyn, dyn, dyn>> xt(B1, K, M);
    fill_random(xt.data(), xt.size(), seed++);
    y = matmul(permute<0, 2, 1>(xt), w);
    for (index_t q = 0; q < B1; ++q)
      check_product(
          M, N, K, [&](index_t i, index_t k) { return double(xt(q, k, i)); }, [&](index_t k, index_t j) { return double(w(k, j)); },
          [&](index_t i, index_t j) { return y(q, i, j); }, eps_of<float>(), "permuted batch");
  }
}

TEST_CASE("matmul: shape errors throw before anything is written", "[matmul]") {
  mat_f a(3, 4), b(5, 6), c(3, 6);
  for (std::size_t i = 0; i < c.size(); ++i) c.data()[i] = 7.f;
  try {
    c = matmul(a, b);
    FAIL("no shape_error");
  } catch (const shape_error& e) {
    const std::string m = e.what();
    CHECK(m.find("[3, 4]") != std::string::npos);
    CHECK(m.find("[5, 6]") != std::string::npos);
  }
  CHECK(std::all_of(c.data(), c.data() + c.size(), [](float v) { return v == 7.f; }));
  // A product that does not fit the destination.
  mat_f b2(4, 5);
  CHECK_THROWS_AS(c = matmul(a, b2), shape_error);
  CHECK_THROWS_AS(c += relu(matmul(a, b2)), shape_error);
  CHECK(std::all_of(c.data(), c.data() + c.size(), [](float v) { return v == 7.f; }));
  // Batch axes that do not broadcast.
  tensor<float, shape<dyn, dyn, dyn>> x(2, 3, 4), y(3, 4, 5);
  CHECK_THROWS_AS(matmul(x, y), shape_error);
}

TEST_CASE("matmul: aliasing of the destination with an operand", "[matmul]") {
  for (index_t n : {1, 3, 17, 65, 129}) {
    mat_f a(n, n), b(n, n);
    fill_random(a.data(), a.size(), 400 + n);
    fill_random(b.data(), b.size(), 500 + n);
    const mat_f a0 = a, b0 = b;
    a = matmul(a, b);
    check_product(
        n, n, n, [&](index_t i, index_t k) { return double(a0(i, k)); }, [&](index_t k, index_t j) { return double(b0(k, j)); },
        [&](index_t i, index_t j) { return a(i, j); }, eps_of<float>(), "a = a . b");
    b = matmul(a0, transpose(b));
    check_product(
        n, n, n, [&](index_t i, index_t k) { return double(a0(i, k)); }, [&](index_t k, index_t j) { return double(b0(j, k)); },
        [&](index_t i, index_t j) { return b(i, j); }, eps_of<float>(), "b = a . transpose(b)");
    mat_f c = a0;
    c += matmul(c, b0);
    check_product(
        n, n, n, [&](index_t i, index_t k) { return double(a0(i, k)); }, [&](index_t k, index_t j) { return double(b0(k, j)); },
        [&](index_t i, index_t j) { return c(i, j); }, eps_of<float>(), "c += c . b",
        [&](double s, index_t i, index_t j) { return s + a0(i, j); });
  }
}

TEST_CASE("matmul: into views, and under other nodes (materialised)", "[matmul]") {
  const index_t M = 17, N = 33, K = 65;
  mat_f a(M, K), b(K, N);
  fill_random(a.data(), a.size(), 600);
  fill_random(b.data(), b.size(), 601);
  auto A = [&](index_t i, index_t k) { return double(a(i, k)); };
  auto B = [&](index_t k, index_t j) { return double(b(k, j)); };
  // Into a column-major view.
  std::vector<float> out(std::size_t(M * N));
  auto ov = view(out.data(), shape<dyn, dyn>{M, N}, {1, M});
  ov = matmul(a, b);
  check_product(M, N, K, A, B, [&](index_t i, index_t j) { return out[std::size_t(i + j * M)]; }, eps_of<float>(),
                "into a column-major view");
  // Transposed and reduced: the product is materialised first.
  mat_f ct(N, M);
  ct = transpose(matmul(a, b));
  check_product(M, N, K, A, B, [&](index_t i, index_t j) { return ct(j, i); }, eps_of<float>(), "transpose(a . b)");
  tensor<float, shape<dyn>> rs(M);
  rs = sum(matmul(a, b), axis<1>);
  using P = plan_of<decltype(sum(matmul(a, b), axis<1>))>;
  static_assert(P::kernels == 2);
  for (index_t i = 0; i < M; ++i) {
    double s = 0, mag = 0;
    for (index_t j = 0; j < N; ++j)
      for (index_t k = 0; k < K; ++k) {
        s += A(i, k) * B(k, j);
        mag += std::fabs(A(i, k) * B(k, j));
      }
    CHECK(std::fabs(rs(i) - s) <= 1e-5 * (mag + 1));
  }
  // A product of a product.
  mat_f w(N, 5), abw(M, 5);
  fill_random(w.data(), w.size(), 602);
  abw = matmul(matmul(a, b), w);
  mat_f ab = matmul(a, b);
  check_product(
      M, 5, N, [&](index_t i, index_t k) { return double(ab(i, k)); }, [&](index_t k, index_t j) { return double(w(k, j)); },
      [&](index_t i, index_t j) { return abw(i, j); }, 4 * eps_of<float>(), "(a . b) . w");
  static_assert(plan_of<decltype(matmul(matmul(a, b), w))>::kernels == 2);
}

TEST_CASE("matmul: rank-1 operands as NumPy (row, column, dot)", "[matmul]") {
  for (auto [N, K] : std::vector<std::pair<index_t, index_t>>{{1, 1}, {3, 17}, {65, 129}}) {
    mat_f w(K, N), wt(N, K);
    tensor<float, shape<dyn>> v(K), r(N), u(N);
    fill_random(w.data(), w.size(), 700 + K);
    fill_random(v.data(), v.size(), 800 + K);
    fill_random(wt.data(), wt.size(), 900 + K);
    r = matmul(v, w);  // [K] x [K, N] -> [N]
    check_product(
        1, N, K, [&](index_t, index_t k) { return double(v(k)); }, [&](index_t k, index_t j) { return double(w(k, j)); },
        [&](index_t, index_t j) { return r(j); }, eps_of<float>(), "vector . matrix");
    u = matmul(wt, v);  // [N, K] x [K] -> [N]
    check_product(
        N, 1, K, [&](index_t i, index_t k) { return double(wt(i, k)); }, [&](index_t k, index_t) { return double(v(k)); },
        [&](index_t i, index_t) { return u(i); }, eps_of<float>(), "matrix . vector");
    auto d = eval(matmul(v, v));
    static_assert(decltype(d)::shape_type::rank == 0);
    check_product(
        1, 1, K, [&](index_t, index_t k) { return double(v(k)); }, [&](index_t k, index_t) { return double(v(k)); },
        [&](index_t, index_t) { return d(); }, eps_of<float>(), "dot");
  }
}

TEST_CASE("matmul: integer products wrap on overflow, as elementwise * and + do", "[matmul]") {
  // Found by the fuzz corpus under UBSan: the integer loop multiplied and added int32 values
  // directly, so an overflowing product was undefined behaviour instead of wrapping.
  for (auto [M, N, K] : std::vector<dims3>{{1, 1, 1}, {2, 3, 5}, {3, 17, 65}}) {
    mat_i a(M, K), b(K, N), c(M, N);
    for (std::size_t k = 0; k < a.size(); ++k) a.data()[k] = 2000000000 - std::int32_t(k);
    for (std::size_t k = 0; k < b.size(); ++k) b.data()[k] = std::int32_t(k % 7) - 3 + (k % 2 ? 2147483000 : 0);
    c = matmul(a, b);
    for (index_t i = 0; i < M; ++i)
      for (index_t j = 0; j < N; ++j) {
        std::uint32_t s = 0;  // the product modulo 2^32
        for (index_t k = 0; k < K; ++k) s += std::uint32_t(a(i, k)) * std::uint32_t(b(k, j));
        CHECK(c(i, j) == std::int32_t(s));
      }
    tensor<std::int64_t, shape<dyn, dyn>> la(M, K), lb(K, N), lc(M, N);
    for (std::size_t k = 0; k < la.size(); ++k) la.data()[k] = std::numeric_limits<std::int64_t>::max() - std::int64_t(k);
    for (std::size_t k = 0; k < lb.size(); ++k) lb.data()[k] = 3 + std::int64_t(k);
    lc = matmul(la, lb);
    for (index_t i = 0; i < M; ++i)
      for (index_t j = 0; j < N; ++j) {
        std::uint64_t s = 0;
        for (index_t k = 0; k < K; ++k) s += std::uint64_t(la(i, k)) * std::uint64_t(lb(k, j));
        CHECK(lc(i, j) == std::int64_t(s));
      }
  }
}

TEST_CASE("matmul: a float product stored into integers converts as every store does", "[matmul]") {
  // NaN gives 0 and out-of-range values saturate (a plain cast in the GEMM's store was undefined
  // behaviour, INT64_MIN in practice; found by the long fuzz run, seed 2000 case 11)
  tensor<float, shape<dyn, dyn>> a(3, 2), b(2, 5);
  a = zeros<float>(shape<dyn, dyn>(3, 2));
  b = zeros<float>(shape<dyn, dyn>(2, 5));
  a(0, 0) = std::numeric_limits<float>::quiet_NaN();
  a(1, 0) = 1e30f;
  a(2, 0) = -1e30f;
  a(2, 1) = 1.f;
  for (index_t j = 0; j < 5; ++j) b(0, j) = 1.f, b(1, j) = 2.5f;
  std::vector<std::int64_t> raw(3 * 10, 7);
  auto dst = view(raw.data(), shape<dyn, dyn>(3, 5), std::array<index_t, 2>{10, 2});  // strided
  dst = matmul(a, b);
  for (index_t j = 0; j < 5; ++j) {
    CHECK(raw[std::size_t(2 * j)] == 0);
    CHECK(raw[std::size_t(10 + 2 * j)] == std::numeric_limits<std::int64_t>::max());
    CHECK(raw[std::size_t(20 + 2 * j)] == std::numeric_limits<std::int64_t>::min());
    CHECK(raw[std::size_t(2 * j + 1)] == 7);  // the gaps are untouched
  }
  tensor<std::int32_t, shape<dyn, dyn>> o(3, 5);
  o = matmul(a, b);
  CHECK(o(0, 0) == 0);
  CHECK(o(1, 4) == std::numeric_limits<std::int32_t>::max());
  CHECK(o(2, 2) == std::numeric_limits<std::int32_t>::min());
}
