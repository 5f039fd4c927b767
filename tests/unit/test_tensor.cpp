// Owning tensors and non-owning views: construction, access, copying, assignment rules.
#include <loom/loom.hpp>

#include <cstdint>
#include <vector>

#include "support.hpp"

using namespace loom;

TEST_CASE("tensors are zeroed, aligned and row-major", "[tensor]") {
  tensor<float, shape<5, 7>> x;
  CHECK(x.size() == 35);
  CHECK(x.extent(0) == 5);
  CHECK(x.extent(1) == 7);
  CHECK(reinterpret_cast<std::uintptr_t>(x.data()) % 64 == 0);
  for (std::size_t i = 0; i < x.size(); ++i) CHECK(x.data()[i] == 0.f);
  x(2, 3) = 4.f;
  CHECK(x.data()[2 * 7 + 3] == 4.f);
  CHECK(x.strides()[0] == 7);
  CHECK(x.strides()[1] == 1);
  tensor<double, shape<dyn, 3, dyn>> y(2, 4);
  CHECK(y.size() == 24);
  CHECK(y.shape().extent(2) == 4);
  y(1, 2, 3) = 1.0;
  CHECK(y.data()[1 * 12 + 2 * 4 + 3] == 1.0);
  CHECK_THROWS_AS(y.at(2, 0, 0), shape_error);
  tensor<float, shape<>> s;
  s() = 3.f;
  CHECK(s.size() == 1);
  CHECK(s() == 3.f);
  tensor<float, shape<dyn>> empty(0);
  CHECK(empty.size() == 0);
}

TEST_CASE("copying copies the data; moving moves it", "[tensor]") {
  tensor<int, shape<dyn>> a(10);
  for (int i = 0; i < 10; ++i) a(i) = i;
  tensor<int, shape<dyn>> b = a;
  b(0) = 100;
  CHECK(a(0) == 0);
  CHECK(b(1) == 1);
  const int* p = b.data();
  tensor<int, shape<dyn>> c = std::move(b);
  CHECK(c.data() == p);
  CHECK(c(0) == 100);
}

TEST_CASE("assignment never resizes: a mismatch throws and writes nothing", "[tensor][bad-input]") {
  tensor<float, shape<dyn>> a(3), c(4);
  a(0) = 1.f, a(1) = 2.f, a(2) = 3.f;
  CHECK_THROWS_AS(a = c, shape_error);
  CHECK_THROWS_AS(a = c * 2.f, shape_error);
  CHECK_THROWS_AS(a += c, shape_error);
  CHECK_THROWS_AS(a = std::move(c), shape_error);
  CHECK(c.size() == 4);
  CHECK(a(0) == 1.f);
  CHECK(a(2) == 3.f);
  tensor<float, shape<dyn, 4>> m(3);
  tensor<float, shape<dyn, 4>> n(2);
  for (std::size_t i = 0; i < m.size(); ++i) m.data()[i] = float(i);
  try {
    m = n + 1.f;
    FAIL("no throw");
  } catch (const shape_error& e) {
    std::string w = e.what();
    CHECK(w.find("[2, 4]") != std::string::npos);
    CHECK(w.find("[3, 4]") != std::string::npos);
  }
  for (std::size_t i = 0; i < m.size(); ++i) CHECK(m.data()[i] == float(i));
  try {
    tensor<float, shape<dyn>> p(3), q(4);
    p = p + q;
    FAIL("no throw");
  } catch (const shape_error& e) {
    std::string w = e.what();
    CHECK(w.find("[3]") != std::string::npos);
    CHECK(w.find("[4]") != std::string::npos);
  }
}

TEST_CASE("an expression that broadcasts into the destination fills it", "[tensor][broadcast]") {
  tensor<float, shape<3, 4>> o;
  tensor<float, shape<4>> row;
  for (int j = 0; j < 4; ++j) row(j) = float(j);
  o = row;
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 4; ++j) CHECK(o(i, j) == float(j));
  o = 5.f;
  for (std::size_t i = 0; i < o.size(); ++i) CHECK(o.data()[i] == 5.f);
  o += row;
  CHECK(o(2, 3) == 8.f);
  o *= 2;
  CHECK(o(2, 3) == 16.f);
  o -= 1.f;
  o /= 3.f;
  CHECK(o(2, 3) == 5.f);
}

TEST_CASE("constructing from an expression takes its shape", "[tensor]") {
  tensor<float, shape<dyn, 2>> x(3);
  for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = float(i);
  tensor<float, shape<dyn, 2>> y = x * 2.f;
  CHECK(y.extent(0) == 3);
  CHECK(y(2, 1) == 10.f);
  tensor<double, shape<dyn, dyn>> z = x + 1.f;  // converts and takes both extents
  CHECK(z.extent(0) == 3);
  CHECK(z.extent(1) == 2);
  CHECK(z(1, 1) == 4.0);
  tensor<float, shape<3, 2>> s = x;  // static from dynamic, checked at run time
  CHECK(s(2, 0) == 4.f);
  CHECK_THROWS_AS((tensor<float, shape<4, 2>>(x)), shape_error);
}

TEST_CASE("views read and write user memory, contiguous or strided", "[view]") {
  std::vector<float> buf(6 * 5);
  for (std::size_t i = 0; i < buf.size(); ++i) buf[i] = float(i);
  auto v = view(buf.data(), shape<dyn, 5>{6});
  CHECK(v.extent(0) == 6);
  CHECK(v(1, 2) == 7.f);
  const std::vector<float>& cbuf = buf;
  auto cv = view(cbuf.data(), shape<6, 5>{});
  static_assert(std::is_same_v<decltype(cv)::element_type, const float>);
  // A column-major view of the same bytes: 5 x 6 with strides (1, 5).
  auto t = view(buf.data(), shape<5, 6>{}, {1, 5});
  CHECK(t(2, 1) == buf[1 * 5 + 2]);
  tensor<float, shape<5, 6>> tt = t * 1.f;
  for (int i = 0; i < 5; ++i)
    for (int j = 0; j < 6; ++j) CHECK(tt(i, j) == buf[j * 5 + i]);
  // Every second column: a strided view as an operand and as a destination.
  auto even = view(buf.data(), shape<6, 3>{}, {5, 2});
  tensor<float, shape<6, 3>> e = even + 0.f;
  CHECK(e(4, 2) == buf[4 * 5 + 4]);
  even = even * -1.f;
  CHECK(buf[4 * 5 + 4] == -24.f);
  CHECK(buf[4 * 5 + 3] == 23.f);  // odd columns untouched
  // Negative strides: a reversed view.
  auto rev = view(buf.data() + 29, shape<30>{}, {-1});
  tensor<float, shape<30>> r = rev + 0.f;
  CHECK(r(0) == buf[29]);
  CHECK(r(29) == buf[0]);
  // View of a tensor, and writing through it.
  tensor<float, shape<2, 3>> x;
  auto xv = x.view();
  xv = 2.f;
  CHECK(x(1, 2) == 2.f);
  xv += x;
  CHECK(x(0, 0) == 4.f);
}

TEST_CASE("views of null or misaligned pointers throw loom::error", "[view][bad-input]") {
  float* null = nullptr;
  CHECK_THROWS_AS(view(null, shape<dyn>{3}), error);
  CHECK_NOTHROW(view(null, shape<dyn>{0}));
  alignas(8) unsigned char bytes[64] = {};
  auto* mis = reinterpret_cast<float*>(bytes + 1);
  CHECK_THROWS_AS(view(mis, shape<4>{}), error);
  try {
    (void)view(null, shape<dyn, 2>{3});
  } catch (const error& e) {
    CHECK(std::string(e.what()).find("null") != std::string::npos);
  }
}
