// Epilogue fusion of matmul: bias broadcast, relu, gelu, residual adds, scaling, casts and
// compound assignment applied to each finished tile in the GEMM's pass (plan_of says one kernel),
// explain()'s account of it, and the transformer MLP block (W9) whose products are materialised
// where they must be. Results against a float64 reference with a K-aware tolerance.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <loom/loom.hpp>

#include "support.hpp"

using namespace loom;
using loom_test::fill_random;

namespace {

using mat = tensor<float, shape<dyn, dyn>>;
using vec = tensor<float, shape<dyn>>;

double gelu_ref(double x) { return 0.5 * x * (1.0 + std::tanh(0.7978845608028654 * (x + 0.044715 * x * x * x))); }

/// The float64 product a . b, and the sum of |a_ik b_kj| per element (for the tolerance).
void ref_product(const mat& a, const mat& b, std::vector<double>& c, std::vector<double>& mag) {
  const index_t M = index_t(a.extent(0)), K = index_t(a.extent(1)), N = index_t(b.extent(1));
  c.assign(std::size_t(M * N), 0.0);
  mag.assign(std::size_t(M * N), 0.0);
  for (index_t i = 0; i < M; ++i)
    for (index_t k = 0; k < K; ++k) {
      const double x = a(i, k);
      for (index_t j = 0; j < N; ++j) {
        c[std::size_t(i * N + j)] += x * double(b(k, j));
        mag[std::size_t(i * N + j)] += std::fabs(x * double(b(k, j)));
      }
    }
}

/// Checks got(i, j) against f(c_ij, i, j), with an error budget of K ulps of |a||b| through f
/// (f's slope is at most `slope`).
template <class Got, class F>
void check_epilogue(index_t M, index_t N, index_t K, const std::vector<double>& c, const std::vector<double>& mag,
                    Got&& got, F&& f, const std::string& what, double slope = 1.5) {
  const double eps = std::numeric_limits<float>::epsilon();
  std::size_t bad = 0;
  std::string first;
  for (index_t i = 0; i < M; ++i)
    for (index_t j = 0; j < N; ++j) {
      const std::size_t e = std::size_t(i * N + j);
      const double want = f(c[e], i, j);
      const double g = double(got(i, j));
      const double tol = slope * double(K + 4) * eps * (mag[e] + 1.0) + 4 * eps * std::fabs(want);
      if (!(std::fabs(g - want) <= tol) && bad++ == 0)
        first = "(" + std::to_string(i) + ", " + std::to_string(j) + "): got " + std::to_string(g) + ", want " +
                std::to_string(want);
    }
  if (bad) FAIL_CHECK(what << " [" << M << " x " << N << " x " << K << "]: " << bad << " wrong, first at " << first);
}

struct dims3 {
  index_t m, n, k;
};
const std::vector<dims3> sizes = {{1, 1, 1}, {1, 129, 65}, {3, 17, 257}, {17, 65, 3},
                                  {65, 127, 129}, {127, 3, 17}, {129, 257, 1100}, {257, 129, 65}};

}  // namespace

TEST_CASE("matmul fusion: bias, relu, gelu, residual, scaling, cast", "[matmul][fusion]") {
  std::uint64_t seed = 10;
  for (auto [M, N, K] : sizes) {
    mat a(M, K), w(K, N), x(M, N), h(M, N);
    vec bias(N), rowscale(M);
    fill_random(a.data(), a.size(), seed++);
    fill_random(w.data(), w.size(), seed++);
    fill_random(x.data(), x.size(), seed++);
    fill_random(bias.data(), bias.size(), seed++);
    std::vector<double> c, mag;
    ref_product(a, w, c, mag);
    auto H = [&](index_t i, index_t j) { return h(i, j); };

    h = relu(matmul(a, w) + bias);
    check_epilogue(M, N, K, c, mag, H, [&](double s, index_t, index_t j) { return std::max(0.0, s + bias(j)); },
                   "relu(a . w + bias)");
    h = gelu(matmul(a, w) + bias);
    check_epilogue(M, N, K, c, mag, H, [&](double s, index_t, index_t j) { return gelu_ref(s + bias(j)); },
                   "gelu(a . w + bias)");
    h = x + gelu(matmul(a, w) + bias);
    check_epilogue(M, N, K, c, mag, H, [&](double s, index_t i, index_t j) { return x(i, j) + gelu_ref(s + bias(j)); },
                   "x + gelu(a . w + bias)");
    // A bias per row (broadcast along the columns: the epilogue's strided path) and scaling.
    mat colbias(M, 1);
    fill_random(colbias.data(), colbias.size(), seed++);
    h = 0.5f * matmul(a, w) - colbias;
    check_epilogue(M, N, K, c, mag, H, [&](double s, index_t i, index_t) { return 0.5 * s - colbias(i, 0); },
                   "0.5 * a . w - colbias");
    // A cast into a double destination.
    tensor<double, shape<dyn, dyn>> hd(M, N);
    hd = cast<double>(matmul(a, w)) * 2.0;
    check_epilogue(M, N, K, c, mag, [&](index_t i, index_t j) { return hd(i, j); },
                   [&](double s, index_t, index_t) { return 2.0 * s; }, "cast<double>(a . w) * 2", 2.5);
  }
  mat a(4, 4), w(4, 4), x(4, 4);
  vec bias(4);
  static_assert(plan_of<decltype(relu(matmul(a, w) + bias))>::kernels == 1);
  static_assert(plan_of<decltype(relu(matmul(a, w) + bias))>::temp_bytes == 0);
  static_assert(plan_of<decltype(relu(matmul(a, w) + bias))>::kind == plan_kind::contraction);
  static_assert(plan_of<decltype(x + gelu(matmul(a, w) + bias))>::kernels == 1);
  static_assert(plan_of<decltype(cast<double>(matmul(a, w)) * 2.0)>::kernels == 1);
  static_assert(plan_of<decltype(matmul(a * 2.f, transpose(w)))>::kernels == 1);
}

TEST_CASE("matmul fusion: compound assignment and batched epilogues", "[matmul][fusion]") {
  std::uint64_t seed = 50;
  for (auto [M, N, K] : sizes) {
    mat a(M, K), w(K, N), h(M, N), h0(M, N);
    fill_random(a.data(), a.size(), seed++);
    fill_random(w.data(), w.size(), seed++);
    fill_random(h0.data(), h0.size(), seed++);
    std::vector<double> c, mag;
    ref_product(a, w, c, mag);
    auto H = [&](index_t i, index_t j) { return h(i, j); };
    h = h0;
    h += matmul(a, w);
    check_epilogue(M, N, K, c, mag, H, [&](double s, index_t i, index_t j) { return h0(i, j) + s; }, "h += a . w");
    h = h0;
    h -= matmul(a, w);
    check_epilogue(M, N, K, c, mag, H, [&](double s, index_t i, index_t j) { return h0(i, j) - s; }, "h -= a . w");
  }
  // A batch of products, each with the same bias and activation.
  const index_t B = 3, M = 33, N = 47, K = 70;
  tensor<float, shape<dyn, dyn, dyn>> x(B, M, K), y(B, M, N);
  mat w(K, N);
  vec bias(N);
  fill_random(x.data(), x.size(), 91);
  fill_random(w.data(), w.size(), 92);
  fill_random(bias.data(), bias.size(), 93);
  y = relu(matmul(x, w) + bias);
  static_assert(plan_of<decltype(relu(matmul(x, w) + bias))>::kernels == 1);
  for (index_t t = 0; t < B; ++t) {
    mat xt(M, K);
    for (index_t i = 0; i < M; ++i)
      for (index_t k = 0; k < K; ++k) xt(i, k) = x(t, i, k);
    std::vector<double> c, mag;
    ref_product(xt, w, c, mag);
    check_epilogue(M, N, K, c, mag, [&](index_t i, index_t j) { return y(t, i, j); },
                   [&](double s, index_t, index_t j) { return std::max(0.0, s + bias(j)); }, "batched relu");
  }
}

TEST_CASE("matmul fusion: strided destinations, double and int32 epilogues", "[matmul][fusion]") {
  for (auto [M, N, K] : std::vector<dims3>{{1, 1, 1}, {17, 65, 33}, {129, 127, 257}}) {
    mat a(M, K), w(K, N);
    vec bias(N);
    fill_random(a.data(), a.size(), 71);
    fill_random(w.data(), w.size(), 72);
    fill_random(bias.data(), bias.size(), 73);
    std::vector<double> c, mag;
    ref_product(a, w, c, mag);
    // Into a column-major view: the epilogue stores with a stride.
    std::vector<float> out(std::size_t(M * N));
    auto ov = view(out.data(), shape<dyn, dyn>{M, N}, {1, M});
    ov = relu(matmul(a, w) + bias);
    check_epilogue(M, N, K, c, mag, [&](index_t i, index_t j) { return out[std::size_t(i + j * M)]; },
                   [&](double s, index_t, index_t j) { return std::max(0.0, s + bias(j)); }, "into a column-major view");
    // double: the same epilogue in 64-bit lanes.
    tensor<double, shape<dyn, dyn>> ad(M, K), wd(K, N), hd(M, N);
    for (std::size_t i = 0; i < ad.size(); ++i) ad.data()[i] = a.data()[i];
    for (std::size_t i = 0; i < wd.size(); ++i) wd.data()[i] = w.data()[i];
    hd = gelu(matmul(ad, wd) + 0.25);
    for (index_t i = 0; i < M; ++i)
      for (index_t j = 0; j < N; ++j) {
        const std::size_t e = std::size_t(i * N + j);
        CHECK(std::fabs(hd(i, j) - gelu_ref(c[e] + 0.25)) <= 1e-13 * double(K + 4) * (mag[e] + 1));
      }
    // int32: the plain product with a fused epilogue, exact.
    tensor<std::int32_t, shape<dyn, dyn>> ia(M, K), iw(K, N), ih(M, N);
    fill_random(ia.data(), ia.size(), 74, -20, 20);
    fill_random(iw.data(), iw.size(), 75, -20, 20);
    ih = maximum(matmul(ia, iw) * 2 - 7, 0);
    std::size_t bad = 0;
    for (index_t i = 0; i < M; ++i)
      for (index_t j = 0; j < N; ++j) {
        std::int64_t s = 0;
        for (index_t k = 0; k < K; ++k) s += std::int64_t(ia(i, k)) * iw(k, j);
        if (ih(i, j) != std::max<std::int64_t>(s * 2 - 7, 0)) ++bad;
      }
    CHECK(bad == 0);
  }
}

TEST_CASE("matmul fusion: explain shows the GEMM, its prologue and its epilogue", "[matmul][fusion]") {
  mat a(64, 48), w(48, 32), wt(32, 48);
  vec bias(32);
  const std::string s = explain(relu(matmul(a, w) + bias));
  CHECK(s.find("kernels: 1 (GEMM") != std::string::npos);
  CHECK(s.find("64 x 32 x 48") != std::string::npos);
  CHECK(s.find("A is read in place") != std::string::npos);
  CHECK(s.find("epilogue: relu((C + x2)) applied to each finished tile") != std::string::npos);
  CHECK(s.find("temporaries: 0 bytes") != std::string::npos);
  const std::string p = explain(matmul(a * 2.f, transpose(wt)));
  CHECK(p.find("A is an expression evaluated while packed") != std::string::npos);
  CHECK(p.find("B is read in place (row stride 1, column stride 48)") != std::string::npos);
  const std::string t = explain(transpose(matmul(a, w)));
  CHECK(t.find("kernels: 2") != std::string::npos);
  CHECK(t.find("computed first into a temporary") != std::string::npos);
}

TEST_CASE("matmul fusion: the transformer MLP block (W9)", "[matmul][fusion]") {
  // x + (gelu(layernorm(x) @ W1 + b1) @ W2 + b2): the outer product is one GEMM with the residual
  // and bias in its epilogue; its A operand (a GEMM with gelu and bias fused) and that GEMM's A
  // operand (the layer norm, a tiled reduction) are materialised first.
  for (auto [T, d] : std::vector<std::pair<index_t, index_t>>{{1, 8}, {33, 64}, {130, 96}}) {
    const index_t hid = 4 * d;
    mat x(T, d), w1(d, hid), w2(hid, d), y(T, d);
    vec b1(hid), b2(d), gamma(d), beta(d);
    fill_random(x.data(), x.size(), 1);
    fill_random(w1.data(), w1.size(), 2, -0.2, 0.2);
    fill_random(w2.data(), w2.size(), 3, -0.2, 0.2);
    fill_random(b1.data(), b1.size(), 4);
    fill_random(b2.data(), b2.size(), 5);
    fill_random(gamma.data(), gamma.size(), 6, 0.5, 1.5);
    fill_random(beta.data(), beta.size(), 7);
    auto mu = mean(x, axis<1>, keepdims);
    auto xc = x - mu;
    auto ln = xc * rsqrt(mean(xc * xc, axis<1>, keepdims) + 1e-5f) * gamma + beta;
    auto block = x + (matmul(gelu(matmul(ln, w1) + b1), w2) + b2);
    using P = plan_of<decltype(block)>;
    static_assert(P::kernels == 3);  // layer norm, first GEMM (+ bias, gelu), second GEMM (+ bias, residual)
    static_assert(P::kind == plan_kind::contraction);
    static_assert(!P::temp_bytes_bounded);
    y = block;
    const std::string e = explain(block);
    CHECK(e.find("kernels: 3") != std::string::npos);
    CHECK(e.find("A holds reductions or matmuls: materialised first") != std::string::npos);

    std::vector<double> lnr(std::size_t(T * d)), hr(std::size_t(T * hid));
    for (index_t t = 0; t < T; ++t) {
      double m = 0, v = 0;
      for (index_t j = 0; j < d; ++j) m += x(t, j);
      m /= double(d);
      for (index_t j = 0; j < d; ++j) v += (x(t, j) - m) * (x(t, j) - m);
      v /= double(d);
      for (index_t j = 0; j < d; ++j)
        lnr[std::size_t(t * d + j)] = (x(t, j) - m) / std::sqrt(v + 1e-5) * gamma(j) + beta(j);
    }
    double tolscale = 0;
    for (index_t t = 0; t < T; ++t)
      for (index_t j = 0; j < hid; ++j) {
        double s = b1(j);
        for (index_t k = 0; k < d; ++k) s += lnr[std::size_t(t * d + k)] * w1(k, j);
        hr[std::size_t(t * hid + j)] = gelu_ref(s);
      }
    std::size_t bad = 0;
    for (index_t t = 0; t < T; ++t)
      for (index_t j = 0; j < d; ++j) {
        double s = b2(j), mag = 0;
        for (index_t k = 0; k < hid; ++k) {
          s += hr[std::size_t(t * hid + k)] * w2(k, j);
          mag += std::fabs(hr[std::size_t(t * hid + k)] * w2(k, j));
        }
        const double want = x(t, j) + s;
        const double tol = 1e-5 * (mag + 1.0) * std::sqrt(double(d));
        tolscale = std::max(tolscale, std::fabs(y(t, j) - want) / tol);
        if (!(std::fabs(y(t, j) - want) <= tol)) ++bad;
      }
    CHECK(bad == 0);
    INFO("worst error / tolerance " << tolscale);
  }
}
