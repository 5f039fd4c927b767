// Index maps: transpose, permute, slice (with steps), flip, broadcast_to, reshape, concat and pad,
// each against direct indexing, composed with each other, with elementwise ops and with
// reductions, at odd sizes; and the destination read through an index map.
#include <loom/loom.hpp>

#include <vector>

#include "support.hpp"

using namespace loom;

namespace {
using mat = tensor<float, shape<dyn, dyn>>;
using cube = tensor<float, shape<dyn, dyn, dyn>>;

mat random_mat(std::size_t r, std::size_t c, std::uint64_t seed) {
  mat x(r, c);
  loom_test::randomize(x, seed);
  return x;
}
}  // namespace

TEST_CASE("transpose and permute", "[index][permute]") {
  for (auto [r, c] : {std::pair<std::size_t, std::size_t>{1, 1}, {7, 17}, {33, 1025}, {1023, 65}, {130, 130}}) {
    mat x = random_mat(r, c, r * c);
    mat t = transpose(x);
    REQUIRE(t.extent(0) == c);
    REQUIRE(t.extent(1) == r);
    std::size_t bad = 0;
    for (std::size_t i = 0; i < r; ++i)
      for (std::size_t j = 0; j < c; ++j) bad += t(j, i) != x(i, j);
    CHECK(bad == 0);
    mat u = transpose(x) * 2.f + 1.f;
    CHECK(u(c - 1, r / 2) == 2.f * x(r / 2, c - 1) + 1.f);
  }
  cube x(3, 5, 7);
  loom_test::randomize(x, 1);
  cube p = permute<2, 0, 1>(x);
  REQUIRE((p.extent(0) == 7 && p.extent(1) == 3 && p.extent(2) == 5));
  std::size_t bad = 0;
  for (std::size_t i = 0; i < 3; ++i)
    for (std::size_t j = 0; j < 5; ++j)
      for (std::size_t k = 0; k < 7; ++k) bad += p(k, i, j) != x(i, j, k);
  CHECK(bad == 0);
  cube back = permute<1, 2, 0>(permute<2, 0, 1>(x));
  CHECK(std::memcmp(back.data(), x.data(), x.size() * 4) == 0);
  tensor<float, shape<4, 6, 8>> s;
  static_assert(std::is_same_v<decltype(eval(permute<1, 2, 0>(s))), tensor<float, shape<6, 8, 4>>>);
  static_assert(std::is_same_v<decltype(eval(transpose(tensor<int, shape<3, 9>>{}))), tensor<int, shape<9, 3>>>);
  static_assert(plan_of<decltype(permute<2, 1, 0>(s) * 2.f)>::kernels == 1);
  static_assert(plan_of<decltype(permute<2, 1, 0>(s) * 2.f)>::temp_bytes == 0);
}

TEST_CASE("large transposes run blocked and stay exact", "[index][blocked]") {
  mat x = random_mat(1031, 2053, 3);
  mat t(2053, 1031);
  t = transpose(x);
  std::size_t bad = 0;
  for (std::size_t i = 0; i < 1031; ++i)
    for (std::size_t j = 0; j < 2053; ++j) bad += t(j, i) != x(i, j);
  CHECK(bad == 0);
  CHECK(explain(transpose(x)).find("blocked") != std::string::npos);
  // Mixed with a row-major operand.
  mat y = random_mat(2053, 1031, 4);
  t = transpose(x) + y;
  CHECK(t(100, 900) == x(900, 100) + y(100, 900));
  // Rank 3, the last two axes swapped.
  cube c(3, 129, 257);
  loom_test::randomize(c, 5);
  cube pc = permute<0, 2, 1>(c);
  CHECK(pc(2, 256, 128) == c(2, 128, 256));
  CHECK(pc(1, 3, 100) == c(1, 100, 3));
}

TEST_CASE("blocked transposes copy their blocks: every element size, views, concat and pad", "[index][blocked]") {
  // cpu/blocked.hpp copies each block of an operand read across rows (a dense cursor) before the
  // block's rows read it; concat and pad operands are read in place.
  const std::size_t r = 263, c = 1031;
  tensor<double, shape<dyn, dyn>> xd(r, c);
  loom_test::randomize(xd, 8);
  tensor<double, shape<dyn, dyn>> td(c, r);
  td = transpose(xd) * 2.0;
  tensor<std::int32_t, shape<dyn, dyn>> xi(r, c);
  for (std::size_t i = 0; i < r; ++i)
    for (std::size_t j = 0; j < c; ++j) xi(i, j) = std::int32_t(i * 4099 + j);
  tensor<std::int64_t, shape<dyn, dyn>> ti(c, r);
  ti = cast<std::int64_t>(transpose(xi)) + 1;
  tensor<bool, shape<dyn, dyn>> xb(r, c);
  for (std::size_t i = 0; i < r; ++i)
    for (std::size_t j = 0; j < c; ++j) xb(i, j) = (i + 3 * j) % 7 == 0;
  tensor<bool, shape<dyn, dyn>> tb(c, r);
  tb = transpose(xb);
  std::size_t bad = 0;
  for (std::size_t i = 0; i < r; ++i)
    for (std::size_t j = 0; j < c; ++j) {
      bad += td(j, i) != 2.0 * xd(i, j);
      bad += ti(j, i) != std::int64_t(xi(i, j)) + 1;
      bad += tb(j, i) != xb(i, j);
    }
  CHECK(bad == 0);
  // a strided view (every other column) and a flipped one, read transposed
  mat x = random_mat(r, 2 * c, 9);
  auto v = slice<1>(x, 0, 2 * c, 2);
  mat tv(c, r);
  tv = transpose(v) - transpose(flip<1>(v));
  for (std::size_t i = 0; i < r; i += 5)
    for (std::size_t j = 0; j < c; ++j) bad += tv(j, i) != x(i, 2 * j) - x(i, 2 * (c - 1 - j));
  CHECK(bad == 0);
  // transposed operands inside concat and pad (their cursors point past their arrays)
  mat a = random_mat(300, 200, 10), b = random_mat(300, 100, 11);
  mat cat(300, 300);
  cat = transpose(concat<0>(transpose(a), transpose(b)));
  mat pd(300, 290);
  pd = transpose(pad<0>(transpose(b), 90, 100, 7.f));
  for (std::size_t i = 0; i < 300; ++i) {
    for (std::size_t j = 0; j < 300; ++j) bad += cat(i, j) != (j < 200 ? a(i, j) : b(i, j - 200));
    for (std::size_t j = 0; j < 290; ++j) bad += pd(i, j) != (j < 90 || j >= 190 ? 7.f : b(i, j - 90));
  }
  CHECK(bad == 0);
}

TEST_CASE("blocked transposes at the edges of their register tiles", "[index][blocked]") {
  // cpu/blocked.hpp turns 4-byte elements eight by eight and 8-byte elements four by four with AVX
  // shuffles; the rows and columns that do not fill a tile are copied one by one.
  const std::size_t sizes[] = {1, 3, 4, 5, 7, 8, 9, 16, 17, 31, 65, 129};
  std::size_t bad = 0;
  for (std::size_t r : sizes)
    for (std::size_t c : sizes) {
      mat x = random_mat(r, c, unsigned(r * 131 + c));
      mat t(c, r);
      t = transpose(x);
      tensor<std::int32_t, shape<dyn, dyn>> xi(r, c), ti(c, r);
      tensor<double, shape<dyn, dyn>> xd(r, c), td(c, r);
      tensor<std::int64_t, shape<dyn, dyn>> xl(r, c), tl(c, r);
      for (std::size_t i = 0; i < r; ++i)
        for (std::size_t j = 0; j < c; ++j) {
          xi(i, j) = std::int32_t(i * 7919 + j) - 1000;
          xd(i, j) = double(x(i, j)) + 1e-12 * double(i);
          xl(i, j) = (std::int64_t(i) << 40) - std::int64_t(j * 104729);
        }
      ti = transpose(xi);
      td = transpose(xd);
      tl = transpose(xl);
      for (std::size_t i = 0; i < r; ++i)
        for (std::size_t j = 0; j < c; ++j)
          bad += (t(j, i) != x(i, j)) + (ti(j, i) != xi(i, j)) + (td(j, i) != xd(i, j)) + (tl(j, i) != xl(i, j));
    }
  CHECK(bad == 0);
  mat x = random_mat(17, 129, 1);
  CHECK(explain(transpose(x)).find("blocked") != std::string::npos);
  tensor<double, shape<dyn, dyn>> xd(17, 129);
  CHECK(explain(transpose(xd)).find("blocked") != std::string::npos);
}

TEST_CASE("slice, with steps, negative positions and clamping", "[index][slice]") {
  mat x = random_mat(64, 33, 6);
  tensor<float, shape<64, 33>> sx;
  auto s0 = slice<0>(sx, 16, 32);
  static_assert(std::is_same_v<decltype(eval(s0)), tensor<float, shape<dyn, 33>>>);
  mat a = slice<0>(x, 16, 32);
  REQUIRE(a.extent(0) == 16);
  CHECK(a(0, 5) == x(16, 5));
  mat b = slice<1>(x, 1, 33, 3);  // columns 1, 4, ..., 31
  REQUIRE(b.extent(1) == 11);
  for (std::size_t j = 0; j < 11; ++j) CHECK(b(7, j) == x(7, 1 + 3 * j));
  mat c = slice<-2>(x, -10, 100, 4);  // rows 54, 58, 62
  REQUIRE(c.extent(0) == 3);
  CHECK(c(2, 0) == x(62, 0));
  mat e = slice<0>(x, 40, 10);
  CHECK(e.extent(0) == 0);
  CHECK_THROWS_AS(slice<0>(x, 0, 10, 0), shape_error);
  // Slices of slices, with a step on both axes.
  mat d = slice<1>(slice<0>(x, 1, 64, 2), 2, 30, 5);
  REQUIRE((d.extent(0) == 32 && d.extent(1) == 6));
  CHECK(d(31, 5) == x(63, 27));
}

TEST_CASE("flip and broadcast_to", "[index][flip][broadcast]") {
  mat x = random_mat(17, 1025, 7);
  mat f0 = flip<0>(x), f1 = flip<1>(x), f01 = flip<0>(flip<1>(x));
  std::size_t bad = 0;
  for (std::size_t i = 0; i < 17; ++i)
    for (std::size_t j = 0; j < 1025; ++j)
      bad += f0(i, j) != x(16 - i, j) || f1(i, j) != x(i, 1024 - j) || f01(i, j) != x(16 - i, 1024 - j);
  CHECK(bad == 0);
  tensor<float, shape<dyn>> v(1025);
  loom_test::randomize(v, 8);
  auto b = eval(broadcast_to(v, shape<dyn, dyn>{3, 1025}));
  CHECK(b(2, 1000) == v(1000));
  tensor<float, shape<64, 32>> s;
  loom_test::randomize(s, 9);
  auto bs = eval(broadcast_to<shape<4, 64, 32>>(s));
  static_assert(std::is_same_v<decltype(bs), tensor<float, shape<4, 64, 32>>>);
  CHECK(bs(3, 10, 20) == s(10, 20));
  tensor<float, shape<dyn, 1>> col(5);
  CHECK_THROWS_AS(broadcast_to(col, shape<dyn, 4>{6}), shape_error);
  auto bc = eval(broadcast_to(col, shape<dyn, 4>{5}));
  CHECK(bc.extent(1) == 4);
}

TEST_CASE("reshape: free where the layout allows, copied where it does not", "[index][reshape]") {
  tensor<float, shape<64, 32>> x;
  for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = float(i);
  auto r = eval(reshape<shape<8, 8, 32>>(x));
  static_assert(std::is_same_v<decltype(r), tensor<float, shape<8, 8, 32>>>);
  CHECK(r(3, 4, 5) == float((3 * 8 + 4) * 32 + 5));
  static_assert(plan_of<decltype(reshape<shape<2048>>(x))>::kernels == 1);
  static_assert(plan_of<decltype(reshape<shape<2048>>(x * 2.f + 1.f))>::temp_bytes == 0);
  // Merging axes of a transpose is not a regrouping of strides: the operand is materialised.
  auto rt = eval(reshape<shape<2048>>(transpose(x)));
  static_assert(plan_of<decltype(reshape<shape<2048>>(transpose(x)))>::kernels == 2);
  for (std::size_t k = 0; k < 2048; k += 37) CHECK(rt(k) == x(k % 64, k / 64));
  // Splitting the axes of a transpose is free, and still right.
  auto st = eval(reshape<shape<4, 8, 64>>(transpose(x)));
  CHECK(st(3, 7, 63) == x(63, 31));
  // Run-time shapes.
  mat d(6, 10);
  for (std::size_t i = 0; i < d.size(); ++i) d.data()[i] = float(i);
  auto rd = eval(reshape(d, shape<dyn, dyn, dyn>{3, 4, 5}));
  CHECK(rd(2, 3, 4) == 59.f);
  auto rd2 = eval(reshape(d, shape<dyn, 15>{4}));
  CHECK(rd2(3, 14) == 59.f);
  CHECK_THROWS_AS(reshape(d, shape<dyn>{61}), shape_error);
  // Of a broadcast operand (its strides do not merge): materialised, right.
  tensor<float, shape<dyn>> v(10);
  for (std::size_t i = 0; i < 10; ++i) v(i) = float(i);
  auto rb = eval(reshape(d * 0.f + v, shape<dyn>{60}));
  CHECK(rb(37) == 7.f);
  // Of a slice with a step: regrouped in place where possible.
  auto rs = eval(reshape(slice<0>(d, 0, 6, 2), shape<dyn>{30}));
  CHECK(rs(29) == d(4, 9));
  auto rs2 = eval(reshape(slice<1>(d, 0, 10, 2), shape<dyn>{30}));
  CHECK(rs2(7) == d(1, 4));
  // Rank-0 and size-0.
  tensor<float, shape<1, 1>> one;
  one(0, 0) = 5;
  CHECK(eval(reshape<shape<>>(one))() == 5.f);
  mat z(0, 3);
  CHECK(eval(reshape(z, shape<dyn, dyn>{3, 0})).size() == 0);
}

TEST_CASE("concat: per-packet branches, straddling boundaries, promotion", "[index][concat]") {
  for (std::size_t c1 : {1, 5, 16, 17, 31}) {
    mat a = random_mat(9, c1, c1), b = random_mat(9, 23, c1 + 1);
    tensor<double, shape<dyn, dyn>> d(9, 3);
    loom_test::randomize(d, c1 + 2);
    auto c = eval(concat<1>(a, b, d));
    static_assert(std::is_same_v<decltype(c)::value_type, double>);
    REQUIRE(c.extent(1) == c1 + 26);
    std::size_t bad = 0;
    for (std::size_t i = 0; i < 9; ++i)
      for (std::size_t j = 0; j < c1 + 26; ++j) {
        const double want = j < c1 ? a(i, j) : j < c1 + 23 ? b(i, j - c1) : d(i, j - c1 - 23);
        bad += c(i, j) != want;
      }
    CHECK(bad == 0);
    auto r = eval(concat<0>(a, a * 2.f, -a));
    REQUIRE(r.extent(0) == 27);
    CHECK(r(10, c1 - 1) == 2.f * a(1, c1 - 1));
    CHECK(r(26, 0) == -a(8, 0));
  }
  tensor<float, shape<64, 32>> x;
  static_assert(std::is_same_v<decltype(eval(concat<1>(x, x))), tensor<float, shape<64, 64>>>);
  static_assert(std::is_same_v<decltype(eval(concat<0>(x, mat(3, 32)))), tensor<float, shape<dyn, 32>>>);
  CHECK_THROWS_AS(concat<0>(mat(3, 4), mat(3, 5)), shape_error);
}

TEST_CASE("pad with a constant along any axis", "[index][pad]") {
  mat x = random_mat(5, 19, 11);
  mat p = pad<1>(x, 3, 14, -1.f);
  REQUIRE(p.extent(1) == 36);
  std::size_t bad = 0;
  for (std::size_t i = 0; i < 5; ++i)
    for (std::size_t j = 0; j < 36; ++j) bad += p(i, j) != ((j >= 3 && j < 22) ? x(i, j - 3) : -1.f);
  CHECK(bad == 0);
  mat q = pad<0>(x, 0, 2);
  REQUIRE(q.extent(0) == 7);
  CHECK(q(6, 4) == 0.f);
  CHECK(q(4, 4) == x(4, 4));
  tensor<int32_t, shape<4>> n;
  n(0) = 1;
  auto pn = eval(pad<0>(n, 2, 0, 9));
  CHECK((pn(0) == 9 && pn(1) == 9 && pn(2) == 1));
  CHECK_THROWS_AS(pad<0>(x, -1, 0), shape_error);
}

TEST_CASE("index maps compose with each other and with elementwise ops", "[index][compose]") {
  mat x = random_mat(40, 30, 12);
  // Rows 10..29 reversed, transposed, every other column, then padded and concatenated.
  mat a = transpose(flip<0>(slice<0>(x, 10, 30)));  // [30, 20]
  mat b = slice<1>(a, 0, 20, 2);                    // [30, 10]
  mat c = concat<1>(pad<1>(b, 1, 1, 0.f), transpose(slice<0>(x, 0, 5)));  // [30, 12 + 5]
  REQUIRE((c.extent(0) == 30 && c.extent(1) == 17));
  for (std::size_t i = 0; i < 30; ++i)
    for (std::size_t j = 0; j < 17; ++j) {
      float want;
      if (j == 0 || j == 11)
        want = 0.f;
      else if (j < 11)
        want = x(29 - 2 * (j - 1), i);
      else
        want = x(j - 12, i);
      CHECK(c(i, j) == want);
    }
  // reshape of a permute of a broadcast, with arithmetic.
  tensor<float, shape<dyn>> v(6);
  for (std::size_t i = 0; i < 6; ++i) v(i) = float(i);
  auto r = eval(reshape(permute<1, 0>(broadcast_to(v, shape<dyn, dyn>{4, 6})) * 2.f, shape<dyn, dyn>{3, 8}));
  // permute gives [6, 4] with (i, j) = v(i); flattened row-major then [3, 8].
  for (std::size_t k = 0; k < 24; ++k) CHECK(r(k / 8, k % 8) == 2.f * float(k / 4));
}

TEST_CASE("index maps compose with reductions", "[index][reduce]") {
  mat x = random_mat(37, 29, 13);
  auto colsum = eval(sum(x, axis<0>));
  auto rowmax = eval(max(x, axis<1>));
  auto t0 = eval(sum(transpose(x), axis<1>));  // = column sums
  for (std::size_t j = 0; j < 29; ++j) CHECK(t0(j) == Approx(colsum(j)).epsilon(1e-5));
  auto am = eval(argmax(flip<1>(x), axis<1>));
  for (std::size_t i = 0; i < 37; ++i) CHECK(x(i, 28 - std::size_t(am(i))) == rowmax(i));
  auto cm = eval(max(concat<1>(x, x * 0.f - 10.f), axis<1>));
  for (std::size_t i = 0; i < 37; ++i) CHECK(cm(i) == rowmax(i));
  auto pm = eval(mean(pad<1>(x, 2, 1, 0.f), axis<1>));
  for (std::size_t i = 0; i < 37; ++i) {
    double s = 0;
    for (std::size_t j = 0; j < 29; ++j) s += x(i, j);
    CHECK(pm(i) == Approx(s / 32).epsilon(1e-5));
  }
  auto rs = eval(sum(reshape(x, shape<dyn, dyn>{29, 37}), axis<1>));
  for (std::size_t i = 0; i < 29; ++i) {
    double s = 0;
    for (std::size_t k = 0; k < 37; ++k) s += x.data()[i * 37 + k];
    CHECK(rs(i) == Approx(s).epsilon(1e-5));
  }
  auto sl = eval(sum(slice<0>(x, 1, 37, 3), axis<0>));
  for (std::size_t j = 0; j < 29; j += 4) {
    double s = 0;
    for (std::size_t i = 1; i < 37; i += 3) s += x(i, j);
    CHECK(sl(j) == Approx(s).epsilon(1e-5));
  }
  // A reduction under an index map, broadcast back: transposed row maxima along columns.
  auto tr = eval(transpose(max(x, axis<1>, keepdims)));
  REQUIRE((tr.extent(0) == 1 && tr.extent(1) == 37));
  CHECK(tr(0, 20) == rowmax(20));
  auto rr = eval(reshape(sum(x, axis<1>), shape<dyn>{37}) + 1.f);
  CHECK(rr(3) == Approx(eval(sum(x, axis<1>))(3) + 1.f));
}

TEST_CASE("the destination read through an index map", "[index][aliasing]") {
  for (std::size_t n : {1, 7, 64, 129}) {
    mat x = random_mat(n, n, n);
    mat x0 = x;
    x = transpose(x);
    std::size_t bad = 0;
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t j = 0; j < n; ++j) bad += x(i, j) != x0(j, i);
    CHECK(bad == 0);
    x = flip<0>(x0);
    for (std::size_t i = 0; i < n; ++i) bad += x(i, 0) != x0(n - 1 - i, 0);
    x = x0;
    x = flip<1>(x);
    for (std::size_t j = 0; j < n; ++j) bad += x(0, j) != x0(0, n - 1 - j);
    CHECK(bad == 0);
  }
  tensor<float, shape<dyn, dyn>> sq(16, 16);
  loom_test::randomize(sq, 14);
  mat s0 = sq;
  sq = transpose(sq) + sq;
  CHECK(sq(2, 9) == s0(9, 2) + s0(2, 9));
  // A rotation of the rows: concat of two slices of the destination.
  tensor<float, shape<dyn>> v(10);
  for (std::size_t i = 0; i < 10; ++i) v(i) = float(i);
  v = concat<0>(slice<0>(v, 3, 10), slice<0>(v, 0, 3));
  for (std::size_t i = 0; i < 10; ++i) CHECK(v(i) == float((i + 3) % 10));
  // A shift by padding.
  v = pad<0>(slice<0>(v, 0, 9), 1, 0, -1.f);
  CHECK(v(0) == -1.f);
  CHECK(v(1) == 3.f);
  CHECK(v(9) == float((8 + 3) % 10));
}
