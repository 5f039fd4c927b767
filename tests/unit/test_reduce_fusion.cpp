// Reductions broadcast back: softmax, layer norm, RMS norm and log-softmax run as one pass over
// row tiles (plan_of says so, explain shows it, the values match float64), common subexpressions
// are computed once, other structures fall back to small materialised results, and writing the
// destination that is reduced is right.
#include <cstring>

#include "reduce_support.hpp"

using namespace loom;

namespace {

using mat = tensor<float, shape<dyn, dyn>>;

std::vector<double> softmax_ref(const mat& x, bool log_form = false) {
  const std::size_t R = x.extent(0), C = x.extent(1);
  std::vector<double> o(R * C);
  for (std::size_t i = 0; i < R; ++i) {
    double m = -INFINITY, s = 0;
    for (std::size_t j = 0; j < C; ++j) m = std::max(m, double(x(i, j)));
    for (std::size_t j = 0; j < C; ++j) s += std::exp(double(x(i, j)) - m);
    for (std::size_t j = 0; j < C; ++j)
      o[i * C + j] = log_form ? double(x(i, j)) - m - std::log(s) : std::exp(double(x(i, j)) - m) / s;
  }
  return o;
}

std::vector<double> layer_norm_ref(const mat& x, const tensor<float, shape<dyn>>& g, const tensor<float, shape<dyn>>& b,
                                   double eps, bool rms) {
  const std::size_t R = x.extent(0), C = x.extent(1);
  std::vector<double> o(R * C);
  for (std::size_t i = 0; i < R; ++i) {
    double mu = 0, var = 0;
    for (std::size_t j = 0; j < C; ++j) mu += x(i, j);
    mu /= double(C);
    if (rms) mu = 0;
    for (std::size_t j = 0; j < C; ++j) var += (x(i, j) - mu) * (x(i, j) - mu);
    var /= double(C);
    for (std::size_t j = 0; j < C; ++j)
      o[i * C + j] = (x(i, j) - mu) / std::sqrt(var + eps) * g(j) + (rms ? 0.0 : double(b(j)));
  }
  return o;
}

}  // namespace

TEST_CASE("softmax as written in DESIGN.md is one tiled kernel and matches float64", "[fusion][softmax]") {
  const std::pair<std::size_t, std::size_t> sizes[] = {{1, 1}, {7, 17}, {33, 1023}, {130, 1025}, {5, 4099}, {1000, 3}};
  for (auto [r, c] : sizes) {
    mat x(r, c), o(r, c);
    loom_test::randomize(x, r * 7 + c, -8, 8);
    auto e = exp(x - max(x, axis<1>, keepdims));
    o = e / sum(e, axis<1>, keepdims);
    loom_test::check_close(o.data(), softmax_ref(x), 2e-6, 1e-9, "softmax " + std::to_string(r) + "x" + std::to_string(c));
  }
  tensor<float, shape<4096, 1024>> x;
  auto e = exp(x - max(x, axis<1>, keepdims));
  using P = plan_of<decltype(e / sum(e, axis<1>, keepdims))>;
  static_assert(P::kernels == 1);
  static_assert(P::kind == plan_kind::tiled);
  static_assert(P::tiled_reductions == 3 && P::materialised_reductions == 0);
  // Per-tile buffers (three reductions' values per row, and a cache of e for the tile's rows):
  // tens of kilobytes, never the 16 MiB of x.
  static_assert(P::temp_bytes <= 3 * max_tile_rows * sizeof(float) + tile_target_bytes + 1024 * sizeof(float));
  static_assert(P::temp_bytes_bounded);
}

TEST_CASE("row values are computed once per row; a reduction's operand reused by the consumer is cached",
          "[fusion][rewrite]") {
  mat x(37, 1031), y(37, 1031), o(37, 1031);
  loom_test::randomize(x, 101, -3, 3);
  loom_test::randomize(y, 102, -3, 3);
  // softmax: the consumer's e is read from the cache the sum filled.
  auto e = exp(x - max(x, axis<1>, keepdims));
  std::string s = explain(e / sum(e, axis<1>, keepdims));
  INFO(s);
  CHECK(s.find("keeping its operand in r2") != std::string::npos);
  // The same type of operand over another tensor: not the same values (filled per tile; see
  // "a cached subexpression that no reduction computes").
  auto f = exp(y - max(y, axis<1>, keepdims));
  o = e / sum(f, axis<1>, keepdims);
  const auto se = softmax_ref(x);
  for (std::size_t i = 0; i < 37; i += 5) {
    double m = -1e300, sf = 0;
    for (std::size_t j = 0; j < 1031; ++j) m = std::max(m, double(y(i, j)));
    for (std::size_t j = 0; j < 1031; ++j) sf += std::exp(double(y(i, j)) - m);
    double mx = -1e300;
    for (std::size_t j = 0; j < 1031; ++j) mx = std::max(mx, double(x(i, j)));
    for (std::size_t j = 0; j < 1031; j += 97) CHECK(o(i, j) == Approx(std::exp(double(x(i, j)) - mx) / sf).epsilon(1e-5));
  }
  // The cached operand used twice, and a row value used twice.
  o = e / sum(e, axis<1>, keepdims) + 0.5f * e;
  for (std::size_t j = 0; j < 1031; j += 101) {
    double mx = -1e300;
    for (std::size_t k = 0; k < 1031; ++k) mx = std::max(mx, double(x(3, k)));
    CHECK(o(3, j) == Approx(se[3 * 1031 + j] + 0.5 * std::exp(double(x(3, j)) - mx)).epsilon(1e-5));
  }
  auto mu = mean(x, axis<1>, keepdims);
  auto r = rsqrt(mean((x - mu) * (x - mu), axis<1>, keepdims) + 1e-5f);
  s = explain((x - mu) * r + r);
  INFO(s);
  CHECK(s.find("a value per row") != std::string::npos);
  o = (x - mu) * r + r;
  for (std::size_t i = 0; i < 37; i += 6) {
    double m = 0, v = 0;
    for (std::size_t j = 0; j < 1031; ++j) m += x(i, j);
    m /= 1031;
    for (std::size_t j = 0; j < 1031; ++j) v += (x(i, j) - m) * (x(i, j) - m);
    const double rr = 1 / std::sqrt(v / 1031 + 1e-5);
    CHECK(o(i, 10) == Approx((x(i, 10) - m) * rr + rr).epsilon(1e-4));
  }
}

TEST_CASE("explain shows the tiles, the reductions per tile and the common subexpression", "[fusion][explain]") {
  mat x(4096, 1024);
  auto e = exp(x - max(x, axis<1>, keepdims));
  const std::string s = explain(e / sum(e, axis<1>, keepdims));
  INFO(s);
  CHECK(s.find("kernels: 1 (row tiles") != std::string::npos);
  CHECK(s.find("per tile, in order: r0 = max over axes {1} (keepdims); r1 = sum over axes {1} (keepdims)") !=
        std::string::npos);
  CHECK(s.find("common subexpressions: 1 (max over axes {1} (keepdims) computed once for 2 uses)") != std::string::npos);
  CHECK(s.find("per-tile buffers") != std::string::npos);
  const std::string f = explain(x / sum(x));
  INFO(f);
  CHECK(f.find("materialised first") != std::string::npos);
  CHECK(f.find("kernels: 2") != std::string::npos);
}

TEST_CASE("log-softmax, layer norm and RMS norm are one tiled kernel each", "[fusion][norm]") {
  const std::pair<std::size_t, std::size_t> sizes[] = {{3, 7}, {17, 1024}, {129, 1031}, {2, 5000}};
  for (auto [r, c] : sizes) {
    mat x(r, c), o(r, c);
    tensor<float, shape<dyn>> g(c), b(c);
    loom_test::randomize(x, r + c, -3, 3);
    loom_test::randomize(g, 2 * c);
    loom_test::randomize(b, 3 * c);
    const float eps = 1e-5f;
    const std::string at = std::to_string(r) + "x" + std::to_string(c);

    auto m = max(x, axis<1>, keepdims);
    o = x - m - log(sum(exp(x - m), axis<1>, keepdims));
    loom_test::check_close(o.data(), softmax_ref(x, true), 1e-5, 1e-5, "log-softmax " + at);
    static_assert(plan_of<decltype(x - m - log(sum(exp(x - m), axis<1>, keepdims)))>::kernels == 1);

    auto mu = mean(x, axis<1>, keepdims);
    auto var = mean((x - mu) * (x - mu), axis<1>, keepdims);
    o = (x - mu) * rsqrt(var + eps) * g + b;
    loom_test::check_close(o.data(), layer_norm_ref(x, g, b, eps, false), 2e-5, 2e-5, "layer norm " + at);
    using LN = plan_of<decltype((x - mu) * rsqrt(var + eps) * g + b)>;
    static_assert(LN::kernels == 1 && LN::kind == plan_kind::tiled);

    o = x * rsqrt(mean(x * x, axis<1>, keepdims) + eps) * g;
    loom_test::check_close(o.data(), layer_norm_ref(x, g, b, eps, true), 2e-5, 2e-5, "rms norm " + at);
    static_assert(plan_of<decltype(x * rsqrt(mean(x * x, axis<1>, keepdims) + eps) * g)>::kernels == 1);
  }
}

TEST_CASE("reductions over the last axis of higher ranks tile over all leading axes", "[fusion][rank]") {
  tensor<float, shape<dyn, dyn, dyn>> x(3, 5, 33), o(3, 5, 33);
  loom_test::randomize(x, 61, -4, 4);
  auto e = exp(x - max(x, axis<2>, keepdims));
  o = e / sum(e, axis<2>, keepdims);
  static_assert(plan_of<decltype(e / sum(e, axis<2>, keepdims))>::kind == plan_kind::tiled);
  mat flat(15, 33);
  std::memcpy(flat.data(), x.data(), x.size() * 4);
  loom_test::check_close(o.data(), softmax_ref(flat), 2e-6, 1e-9, "softmax rank 3");
  // Without keepdims the reduction broadcasts from the right as NumPy does: over axis 0 of a
  // [n, n] it lines up with the columns - not tiled, but right.
  mat y(9, 9), p(9, 9);
  loom_test::randomize(y, 62);
  p = y - mean(y, axis<0>);
  for (std::size_t i = 0; i < 9; ++i)
    for (std::size_t j = 0; j < 9; ++j) {
      double mu = 0;
      for (std::size_t k = 0; k < 9; ++k) mu += y(k, j);
      CHECK(p(i, j) == Approx(y(i, j) - mu / 9).margin(1e-6));
    }
}

TEST_CASE("structures that do not tile fall back to small materialised results", "[fusion][fallback]") {
  mat x(67, 45), o(67, 45);
  loom_test::randomize(x, 71);
  // Column statistics broadcast over rows.
  o = (x - mean(x, axis<0>, keepdims)) / (max(x, axis<0>, keepdims) - min(x, axis<0>, keepdims));
  using C = plan_of<decltype((x - mean(x, axis<0>, keepdims)) / (max(x, axis<0>, keepdims) - min(x, axis<0>, keepdims)))>;
  static_assert(C::kind == plan_kind::staged && C::kernels == 4);
  for (std::size_t j = 0; j < 45; j += 11) {
    double mu = 0, hi = -1e9, lo = 1e9;
    for (std::size_t i = 0; i < 67; ++i) {
      mu += x(i, j);
      hi = std::max(hi, double(x(i, j)));
      lo = std::min(lo, double(x(i, j)));
    }
    mu /= 67;
    for (std::size_t i = 0; i < 67; i += 13) CHECK(o(i, j) == Approx((x(i, j) - mu) / (hi - lo)).margin(1e-5));
  }
  // A full reduction broadcast, used twice: computed once.
  o = x / sum(x) + sum(x);
  double s = 0;
  for (std::size_t i = 0; i < x.size(); ++i) s += x.data()[i];
  CHECK(o(3, 4) == Approx(x(3, 4) / s + s).epsilon(1e-4));
  // An index map between the consumer and the reduction.
  mat sq(45, 45), q(45, 45);
  loom_test::randomize(sq, 72);
  q = sq - transpose(max(sq, axis<1>, keepdims));  // row maxima laid out as a row
  auto mx = eval(max(sq, axis<1>));
  for (std::size_t i = 0; i < 45; i += 7)
    for (std::size_t j = 0; j < 45; j += 5) CHECK(q(i, j) == sq(i, j) - mx(j));
  // A reduction read through a flip still tiles (the map keeps each row's reduction in its row).
  o = x - flip<0>(sum(flip<0>(x), axis<1>, keepdims));
  static_assert(plan_of<decltype(x - flip<0>(sum(flip<0>(x), axis<1>, keepdims)))>::kind == plan_kind::tiled);
  auto rs = eval(sum(x, axis<1>));
  for (std::size_t i = 0; i < 67; i += 6) CHECK(o(i, 3) == Approx(x(i, 3) - rs(i)).margin(1e-5));
}

TEST_CASE("nested reductions at the root: the inner one per block of outputs", "[fusion][nested]") {
  mat x(33, 1027);
  loom_test::randomize(x, 81);
  auto var = eval(mean((x - mean(x, axis<1>, keepdims)) * (x - mean(x, axis<1>, keepdims)), axis<1>));
  static_assert(plan_of<decltype(mean((x - mean(x, axis<1>, keepdims)) * (x - mean(x, axis<1>, keepdims)),
                                      axis<1>))>::kernels == 1);
  for (std::size_t i = 0; i < 33; ++i) {
    double mu = 0, v = 0;
    for (std::size_t j = 0; j < 1027; ++j) mu += x(i, j);
    mu /= 1027;
    for (std::size_t j = 0; j < 1027; ++j) v += (x(i, j) - mu) * (x(i, j) - mu);
    CHECK(var(i) == Approx(v / 1027).epsilon(1e-5));
  }
  // A full reduction inside a full reduction: the inner one first.
  const float centred = eval(sum(x - mean(x)))();
  CHECK(std::fabs(centred) < 1e-2);
}

TEST_CASE("softmax and normalisation in place: the destination is the operand", "[fusion][aliasing]") {
  mat x(65, 1031);
  loom_test::randomize(x, 91, -5, 5);
  const auto want = softmax_ref(x);
  mat o = x;
  o = exp(o - max(o, axis<1>, keepdims)) / sum(exp(o - max(o, axis<1>, keepdims)), axis<1>, keepdims);
  loom_test::check_close(o.data(), want, 2e-6, 1e-9, "in-place softmax");
  mat p = x;
  p = p / sum(p, axis<1>, keepdims);
  for (std::size_t i = 0; i < 65; i += 8) {
    double s = 0;
    for (std::size_t j = 0; j < 1031; ++j) s += x(i, j);
    CHECK(p(i, 5) == Approx(x(i, 5) / s).epsilon(1e-4));
  }
  mat q = x;
  q = q / sum(q, axis<0>, keepdims);  // columns: materialised first, then in place
  for (std::size_t j = 0; j < 1031; j += 100) {
    double s = 0;
    for (std::size_t i = 0; i < 65; ++i) s += x(i, j);
    CHECK(q(7, j) == Approx(x(7, j) / s).epsilon(1e-4));
  }
  // Reading the destination transposed inside the reduction: not row-local, so a temporary.
  mat sq(33, 33);
  loom_test::randomize(sq, 92);
  mat sq0 = sq;
  sq = sq - max(transpose(sq), axis<1>, keepdims);
  for (std::size_t i = 0; i < 33; i += 4) {
    double m = -1e9;
    for (std::size_t k = 0; k < 33; ++k) m = std::max(m, double(sq0(k, i)));
    CHECK(sq(i, 2) == Approx(sq0(i, 2) - m));
  }
  // Compound assignment.
  mat r = x;
  r -= max(r, axis<1>, keepdims);
  auto mx = eval(max(x, axis<1>));
  CHECK(r(3, 9) == x(3, 9) - mx(3));
}

TEST_CASE("the consumer's cached operand kept in the destination's own rows", "[fusion][cache]") {
  // Where the destination is row-major, of the cached values' type and read by no operand, the
  // sum's pass writes e into the destination and the consumer divides it there in place. Every
  // other destination keeps e in a tile buffer. Both must give the same values, at any number of
  // threads, with rows shorter and longer than a tile.
  const unsigned before = num_threads();
  const std::pair<std::size_t, std::size_t> sizes[] = {{1, 1}, {3, 7}, {1000, 17}, {9, 1023}, {8, 1025}, {2, 5000}};
  for (unsigned t : {1u, 2u, 3u}) {
    set_num_threads(t);
    for (auto [r, c] : sizes) {
      const std::string at = std::to_string(r) + "x" + std::to_string(c) + " at " + std::to_string(t) + " threads";
      mat x(r, c);
      loom_test::randomize(x, r * 31 + c + t, -30, 30);
      const auto want = softmax_ref(x);
      auto e = exp(x - max(x, axis<1>, keepdims));
      mat o(r, c);  // contiguous float: in place
      o = e / sum(e, axis<1>, keepdims);
      loom_test::check_close(o.data(), want, 2e-6, 1e-9, "softmax into its destination " + at);
      // The cache read twice at its own position, beside a second cache of another operand.
      auto f = exp(0.5f * x);
      o = e / sum(e, axis<1>, keepdims) + 0.25f * e - f / sum(f, axis<1>, keepdims);
      for (std::size_t i = 0; i < r; i += std::max<std::size_t>(1, r / 5)) {
        double m = -1e300, sf = 0;
        for (std::size_t j = 0; j < c; ++j) {
          m = std::max(m, double(x(i, j)));
          sf += std::exp(0.5 * double(x(i, j)));
        }
        for (std::size_t j = 0; j < c; j += std::max<std::size_t>(1, c / 7)) {
          const double w = want[i * c + j] + 0.25 * std::exp(double(x(i, j)) - m) - std::exp(0.5 * double(x(i, j))) / sf;
          CHECK(o(i, j) == Approx(w).epsilon(1e-5).margin(1e-6));
        }
      }
      // A double destination (the cache stays float), and a strided one.
      tensor<double, shape<dyn, dyn>> od(r, c);
      od = e / sum(e, axis<1>, keepdims);
      for (std::size_t i = 0; i < r * c; i += 13) CHECK(od.data()[i] == Approx(want[i]).epsilon(2e-6).margin(1e-12));
      mat wide(r, 2 * c);
      wide = 7.0f;
      tensor_view<float, shape<dyn, dyn>, strided_layout> v(wide.data(), shape<dyn, dyn>(r, c), {index_t(2 * c), 2});
      v = e / sum(e, axis<1>, keepdims);
      for (std::size_t i = 0; i < r; ++i)
        for (std::size_t j = 0; j < c; ++j) {
          REQUIRE(wide(i, 2 * j) == Approx(want[i * c + j]).epsilon(2e-6).margin(1e-12));
          REQUIRE(wide(i, 2 * j + 1) == 7.0f);
        }
      // The destination read by the operand: a tile buffer (or a temporary), never its own rows.
      mat p = x;
      p = exp(p - max(p, axis<1>, keepdims)) / sum(exp(p - max(p, axis<1>, keepdims)), axis<1>, keepdims);
      loom_test::check_close(p.data(), want, 2e-6, 1e-9, "softmax of its own destination " + at);
    }
    // Two trailing axes reduced, rows over two leading ones.
    tensor<float, shape<dyn, dyn, dyn, dyn>> y(3, 5, 7, 33), oy(3, 5, 7, 33);
    loom_test::randomize(y, 77 + t, -4, 4);
    auto ey = exp(y - max(y, axes<2, 3>, keepdims));
    oy = ey / sum(ey, axes<2, 3>, keepdims);
    for (std::size_t a = 0; a < 3; ++a)
      for (std::size_t b = 0; b < 5; ++b) {
        double m = -1e300, s = 0;
        for (std::size_t i = 0; i < 7; ++i)
          for (std::size_t j = 0; j < 33; ++j) m = std::max(m, double(y(a, b, i, j)));
        for (std::size_t i = 0; i < 7; ++i)
          for (std::size_t j = 0; j < 33; ++j) s += std::exp(double(y(a, b, i, j)) - m);
        for (std::size_t i = 0; i < 7; i += 3)
          for (std::size_t j = 0; j < 33; j += 8)
            CHECK(oy(a, b, i, j) == Approx(std::exp(double(y(a, b, i, j)) - m) / s).epsilon(2e-6));
      }
  }
  set_num_threads(before);
}

TEST_CASE("a cached subexpression that no reduction computes is filled per tile", "[fusion][cache][fill]") {
  // exp(x - max(x)) has the type of the sum's operand exp(y - max(y)) but other values: the rewrite
  // makes it a cached subexpression, the walk finds no reduction computing it, and a runner fills
  // its cache for each tile before the consumer reads it. Static and dynamic shapes, odd sizes, one
  // and two threads, and the destination as the filled subexpression's operand.
  const unsigned before = num_threads();
  auto want_of = [](auto& x, auto& y, std::size_t r, std::size_t c) {
    std::vector<double> w(r * c);
    for (std::size_t i = 0; i < r; ++i) {
      double mx = -1e300, my = -1e300, s = 0;
      for (std::size_t j = 0; j < c; ++j) {
        mx = std::max(mx, double(x.data()[i * c + j]));
        my = std::max(my, double(y.data()[i * c + j]));
      }
      for (std::size_t j = 0; j < c; ++j) s += std::exp(double(y.data()[i * c + j]) - my);
      for (std::size_t j = 0; j < c; ++j) w[i * c + j] = std::exp(double(x.data()[i * c + j]) - mx) / s;
    }
    return w;
  };
  const std::pair<std::size_t, std::size_t> sizes[] = {{1, 1}, {7, 17}, {17, 7}, {3, 1023}, {2, 1025}, {1000, 3}};
  for (unsigned t : {1u, 2u}) {
    set_num_threads(t);
    for (auto [r, c] : sizes) {
      const std::string at = std::to_string(r) + "x" + std::to_string(c) + " at " + std::to_string(t) + " threads";
      mat x(r, c), y(r, c), o(r, c);
      loom_test::randomize(x, r * 13 + c + t, -6, 6);
      loom_test::randomize(y, r * 17 + c + t, -6, 6);
      const auto want = want_of(x, y, r, c);
      auto ex = exp(x - max(x, axis<1>, keepdims));
      auto ey = exp(y - max(y, axis<1>, keepdims));
      o = ex / sum(ey, axis<1>, keepdims);
      loom_test::check_close(o.data(), want, 2e-6, 1e-9, "filled cache " + at);
      // The destination is the filled subexpression's operand: read before the tile is written.
      mat p = x;
      p = exp(p - max(p, axis<1>, keepdims)) / sum(ey, axis<1>, keepdims);
      loom_test::check_close(p.data(), want, 2e-6, 1e-9, "filled cache of the destination " + at);
    }
  }
  set_num_threads(before);
  tensor<float, shape<9, 33>> xs, ys, os;
  loom_test::randomize(xs, 5, -3, 3);
  loom_test::randomize(ys, 6, -3, 3);
  auto ex = exp(xs - max(xs, axis<1>, keepdims));
  auto ey = exp(ys - max(ys, axis<1>, keepdims));
  const std::string s = explain(ex / sum(ey, axis<1>, keepdims));
  INFO(s);
  CHECK(s.find("computed per tile") != std::string::npos);
  os = ex / sum(ey, axis<1>, keepdims);
  loom_test::check_close(os.data(), want_of(xs, ys, 9, 33), 2e-6, 1e-9, "filled cache, static shape");
}

TEST_CASE("segments of many tiles: the consumer runs each as one loop nest, the passes as each tile starts",
          "[fusion][segment]") {
  // A slot of one value a row holds a segment of up to max_tile_rows rows; the consumer runs the
  // segment as one loop nest and the reductions run as each tile of it starts. Row counts around
  // the segment's (1023, 1025, 2 segments and a part), one and two threads (other chunks, the same
  // bits), short rows (many rows a tile) and rows of one element (the consumer's run crosses rows,
  // cut where tiles end; a row value then has a pass of its own).
  const unsigned before = num_threads();
  const std::pair<std::size_t, std::size_t> sizes[] = {{1023, 3}, {1025, 7}, {2 * max_tile_rows + 17, 5}, {2500, 64}, {37, 1031}};
  for (auto [r, c] : sizes) {
    const std::string at = std::to_string(r) + "x" + std::to_string(c);
    mat x(r, c), o1(r, c), o2(r, c);
    tensor<float, shape<dyn>> g(c), b(c);
    loom_test::randomize(x, r + 7 * c, -3, 3);
    loom_test::randomize(g, c + 1);
    loom_test::randomize(b, c + 2);
    const float eps = 1e-5f;
    auto mu = mean(x, axis<1>, keepdims);
    auto var = mean((x - mu) * (x - mu), axis<1>, keepdims);
    set_num_threads(1);
    o1 = (x - mu) * rsqrt(var + eps) * g + b;
    set_num_threads(2);
    o2 = (x - mu) * rsqrt(var + eps) * g + b;
    loom_test::check_close(o1.data(), layer_norm_ref(x, g, b, eps, false), 2e-5, 2e-5, "layer norm " + at);
    CHECK(std::memcmp(o1.data(), o2.data(), r * c * sizeof(float)) == 0);
    // softmax keeps e in the destination; into double it keeps it in a tile buffer instead (the
    // consumer's readers then move every tile, so the consumer runs tile by tile)
    auto e = exp(x - max(x, axis<1>, keepdims));
    o1 = e / sum(e, axis<1>, keepdims);
    tensor<double, shape<dyn, dyn>> od(r, c);
    od = e / sum(e, axis<1>, keepdims);
    const auto want = softmax_ref(x);
    loom_test::check_close(o1.data(), want, 2e-6, 1e-9, "softmax " + at);
    loom_test::check_close(od.data(), want, 2e-6, 1e-9, "softmax into double " + at);
  }
  // Rows of one element: a (rows, 1) consumer of two reductions and a row value, in double (more
  // tiles a segment than in float), 1 and 2 threads.
  for (std::size_t r : {std::size_t(1), std::size_t(1023), std::size_t(3001)}) {
    tensor<double, shape<dyn, dyn>> x(r, 5), o1(r, 1), o2(r, 1);
    loom_test::randomize(x, r + 3, 0.5, 2);
    auto s = sum(x, axis<1>, keepdims);
    auto m = max(x, axis<1>, keepdims);
    set_num_threads(1);
    o1 = s / m + rsqrt(mean(x * x, axis<1>, keepdims) + 1.0);
    set_num_threads(2);
    o2 = s / m + rsqrt(mean(x * x, axis<1>, keepdims) + 1.0);
    std::vector<double> want(r);
    for (std::size_t i = 0; i < r; ++i) {
      double sm = 0, mx = -1e300, sq = 0;
      for (std::size_t j = 0; j < 5; ++j) {
        sm += x(i, j);
        mx = std::max(mx, x(i, j));
        sq += x(i, j) * x(i, j);
      }
      want[i] = sm / mx + 1 / std::sqrt(sq / 5 + 1);
    }
    loom_test::check_close(o1.data(), want, 1e-12, 1e-12, "rows of one element, " + std::to_string(r));
    CHECK(std::memcmp(o1.data(), o2.data(), r * sizeof(double)) == 0);
  }
  set_num_threads(before);
}
