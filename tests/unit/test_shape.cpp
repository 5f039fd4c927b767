// shape<...>: static and dynamic extents, broadcasting rules, errors.
#include <loom/loom.hpp>

#include "support.hpp"

using namespace loom;

TEST_CASE("static shapes store nothing and are constant expressions", "[shape]") {
  using S = shape<4096, 1024>;
  static_assert(S::rank == 2 && S::is_static && S::num_dyn == 0);
  static_assert(S{}.extent(0) == 4096 && S{}.extent(1) == 1024 && S{}.size() == 4096 * 1024);
  static_assert(std::is_empty_v<S>);
  static_assert(shape<>{}.size() == 1 && shape<>::rank == 0);
  static_assert(shape<0, 5>{}.size() == 0);
  CHECK(S::static_string() == "[4096, 1024]");
  CHECK(to_string(S{}) == "[4096, 1024]");
}

TEST_CASE("dynamic extents are given in order and stored alone", "[shape]") {
  using D = shape<dyn, 8, dyn>;
  static_assert(D::num_dyn == 2 && !D::is_static);
  static_assert(sizeof(D) == 2 * sizeof(std::size_t));
  D d{3, 5};
  CHECK(d.extent(0) == 3);
  CHECK(d.extent(1) == 8);
  CHECK(d.extent(2) == 5);
  CHECK(d.size() == 120);
  CHECK(to_string(d) == "[3, 8, 5]");
  CHECK(D::static_string() == "[dyn, 8, dyn]");
  CHECK(d == shape<3, 8, 5>{});
  CHECK(!(d == shape<3, 8, 4>{}));
  CHECK(!(d == shape<3, 8>{}));
  shape<dyn, dyn, dyn, dyn, dyn, dyn, dyn, dyn> r8{1, 2, 3, 4, 5, 6, 7, 8};
  CHECK(r8.size() == 40320);
  std::size_t big = std::size_t(1) << 40;
  shape<dyn> b{big};
  CHECK(b.extent(0) == big);  // 64-bit extents
}

TEST_CASE("from_dims checks static extents", "[shape]") {
  dims d;
  d.rank = 2;
  d.e[0] = 7;
  d.e[1] = 1024;
  auto s = shape<dyn, 1024>::from_dims(d);
  CHECK(s.extent(0) == 7);
  CHECK_THROWS_AS((shape<dyn, 512>::from_dims(d)), shape_error);
  CHECK_THROWS_AS(shape<dyn>::from_dims(d), shape_error);
  try {
    (void)shape<dyn, 512>::from_dims(d);
  } catch (const shape_error& e) {
    CHECK(std::string(e.what()).find("[7, 1024]") != std::string::npos);
    CHECK(std::string(e.what()).find("[dyn, 512]") != std::string::npos);
  }
}

TEST_CASE("static broadcasting follows NumPy", "[shape][broadcast]") {
  static_assert(std::is_same_v<broadcast_shape_t<shape<4, 1>, shape<3>>, shape<4, 3>>);
  static_assert(std::is_same_v<broadcast_shape_t<shape<8, 1, 6, 1>, shape<7, 1, 5>>, shape<8, 7, 6, 5>>);
  static_assert(std::is_same_v<broadcast_shape_t<shape<>, shape<2, 3>>, shape<2, 3>>);
  static_assert(std::is_same_v<broadcast_shape_t<shape<dyn, 3>, shape<3>>, shape<dyn, 3>>);
  static_assert(std::is_same_v<broadcast_shape_t<shape<dyn>, shape<5>>, shape<5>>);
  static_assert(std::is_same_v<broadcast_shape_t<shape<1>, shape<dyn>>, shape<dyn>>);
  static_assert(std::is_same_v<broadcast_shape_t<shape<dyn>, shape<dyn>>, shape<dyn>>);
  static_assert(check_broadcast_v<shape<4, 1>, shape<3>>);
}

TEST_CASE("run-time broadcasting throws shape_error naming both shapes", "[shape][broadcast]") {
  dims a, b;
  a.rank = 2, a.e[0] = 3, a.e[1] = 4;
  b.rank = 1, b.e[0] = 5;
  try {
    (void)broadcast_dims(a, b);
    FAIL("no throw");
  } catch (const shape_error& e) {
    std::string m = e.what();
    CHECK(m.find("[3, 4]") != std::string::npos);
    CHECK(m.find("[5]") != std::string::npos);
    CHECK(m.find("axis 1") != std::string::npos);
  }
  b.e[0] = 1;
  CHECK(broadcast_dims(a, b) == a);
  CHECK(broadcasts_to(b, a));
  CHECK(!broadcasts_to(a, b));
}

TEST_CASE("element counts that overflow 64 bits throw", "[shape][bad-input]") {
  const std::size_t huge = std::size_t(1) << 33;
  CHECK_THROWS_AS((tensor<float, shape<dyn, dyn>>(huge, huge)), shape_error);
  CHECK_THROWS_AS((tensor<double, shape<dyn, dyn, dyn>>(huge, huge, 4)), shape_error);
  CHECK_THROWS_AS((tensor<float, shape<dyn>>(std::size_t(-2))), shape_error);
}
