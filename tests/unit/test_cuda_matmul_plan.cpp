// Matmul on the device, the parts that need no GPU: which roots are one cuBLASLt call and with
// which epilogue, which operands cuBLASLt takes as they are (row- or column-major matrices, with
// their leading dimension) and which go through a temporary, alignment and overlap. The numbers
// are checked on a GPU by tests/gpu/test_cuda_matmul.cpp.
#include <loom/cuda.hpp>
#include <loom/loom.hpp>

#include <cstdint>

#include "support.hpp"

using namespace loom;
namespace cd = loom::cuda::detail;
using cuda::runtime::lt_epilogue;

namespace {
template <class E>
using root = cd::lt_root<decltype(as_node(std::declval<const E&>()))>;

/// A device view over a fake address (planning only reads addresses and strides).
template <class S>
auto fake(std::uintptr_t slot, S s) {
  return cuda::view(reinterpret_cast<const float*>(slot << 24), s);
}
template <class S>
auto fake(std::uintptr_t slot, S s, std::array<index_t, S::rank> st) {
  return cuda::view(reinterpret_cast<const float*>(slot << 24), s, st);
}
}  // namespace

TEST_CASE("cuda matmul: roots cuBLASLt computes in one call, with their epilogue", "[cuda][matmul]") {
  auto a = fake(1, shape<dyn, dyn>{4, 8});
  auto w = fake(2, shape<dyn, dyn>{8, 5});
  auto b = fake(3, shape<dyn>{5});
  auto d = cuda::view(reinterpret_cast<const double*>(std::uintptr_t(4) << 24), shape<dyn>{5});
  STATIC_REQUIRE(root<decltype(matmul(a, w))>::value);
  STATIC_REQUIRE(root<decltype(matmul(a, w))>::epilogue == lt_epilogue::none);
  STATIC_REQUIRE(root<decltype(matmul(a, w) + b)>::epilogue == lt_epilogue::bias);
  STATIC_REQUIRE(root<decltype(b + matmul(a, w))>::epilogue == lt_epilogue::bias);
  STATIC_REQUIRE(root<decltype(relu(matmul(a, w) + b))>::epilogue == lt_epilogue::relu_bias);
  STATIC_REQUIRE(root<decltype(gelu(matmul(a, w) + b))>::epilogue == lt_epilogue::gelu_bias);
  STATIC_REQUIRE(root<decltype(gelu(matmul(a, w)))>::epilogue == lt_epilogue::gelu);
  STATIC_REQUIRE(root<decltype(relu(matmul(a, w)))>::epilogue == lt_epilogue::relu);
  // not one call: another epilogue, gelu_exact (cuBLASLt's GELU is the tanh form), a bias of
  // another type or rank, two products, an epilogue twice
  STATIC_REQUIRE_FALSE(root<decltype(exp(matmul(a, w)))>::value);
  STATIC_REQUIRE_FALSE(root<decltype(gelu_exact(matmul(a, w) + b))>::value);
  STATIC_REQUIRE_FALSE(root<decltype(matmul(a, w) + d)>::value);
  STATIC_REQUIRE_FALSE(root<decltype(matmul(a, w) + a)>::value);
  STATIC_REQUIRE_FALSE(root<decltype(matmul(a, w) + matmul(a, w))>::value);
  STATIC_REQUIRE_FALSE(root<decltype(relu(relu(matmul(a, w) + b)))>::value);
  STATIC_REQUIRE_FALSE(root<decltype(matmul(a, w) * 2.f)>::value);
  STATIC_REQUIRE_FALSE(root<decltype(relu(exp(matmul(a, w))))>::value);  // an activation over something else
  STATIC_REQUIRE_FALSE(root<decltype(gelu(a * 2.f))>::value);
  // the operands of the product and the bias are the nodes written
  const auto n = as_node(gelu(b + matmul(a, w)));
  using R = cd::lt_root<std::remove_cvref_t<decltype(n)>>;
  CHECK(R::bias(n).shape().extent(0) == 5);
  CHECK(R::product(n).rows() == 4);
  CHECK(R::product(n).cols() == 5);
  CHECK(R::product(n).inner() == 8);
}

TEST_CASE("cuda matmul: operands cuBLASLt reads in place, and those it does not", "[cuda][matmul]") {
  cd::memory_operand m;
  // a row-major matrix: ld is its row stride
  auto a = fake(1, shape<dyn, dyn>{4, 8});
  REQUIRE(cd::as_memory<float>(as_node(a), m));
  CHECK(m.base == (std::uintptr_t(1) << 24));
  auto x = cd::matrix_of(m);
  CHECK((x.ok && !x.col_major && x.ld == 8));
  // its transpose: column-major, the same leading dimension
  REQUIRE(cd::as_memory<float>(as_node(transpose(a)), m));
  x = cd::matrix_of(m);
  CHECK((x.ok && x.col_major && x.ld == 8));
  // a slice of columns keeps the row stride; its start moves the address
  REQUIRE(cd::as_memory<float>(as_node(slice<1>(a, 2, 6)), m));
  x = cd::matrix_of(m);
  CHECK((x.ok && !x.col_major && x.ld == 8));
  CHECK(m.base == (std::uintptr_t(1) << 24) + 2 * sizeof(float));
  // a padded pitch
  REQUIRE(cd::as_memory<float>(as_node(fake(5, shape<dyn, dyn>{3, 7}, {10, 1})), m));
  CHECK(cd::matrix_of(m).ld == 10);
  // every other column: neither layout, a temporary
  REQUIRE(cd::as_memory<float>(as_node(fake(5, shape<dyn, dyn>{3, 7}, {20, 2})), m));
  CHECK_FALSE(cd::matrix_of(m).ok);
  // a flipped matrix (negative stride): a temporary
  REQUIRE(cd::as_memory<float>(as_node(flip<1>(a)), m));
  CHECK_FALSE(cd::matrix_of(m).ok);
  // a single row or column takes any stride along its length of one
  REQUIRE(cd::as_memory<float>(as_node(fake(6, shape<dyn, dyn>{1, 9}, {0, 1})), m));
  CHECK(cd::matrix_of(m).ok);
  // arithmetic, a conversion, a generator, another element type: not memory
  CHECK_FALSE(cd::as_memory<float>(as_node(a * 2.f), m));
  CHECK_FALSE(cd::as_memory<double>(as_node(a), m));
  CHECK_FALSE(cd::as_memory<double>(as_node(cast<double>(a)), m));
  CHECK_FALSE(cd::as_memory<float>(as_node(iota<float>(shape<dyn, dyn>{4, 8})), m));
  CHECK_FALSE(cd::as_memory<float>(as_node(concat<0>(a, a)), m));
  // batch axes of a broadcast operand are strides too
  REQUIRE(cd::as_memory<float>(as_node(broadcast_to<shape<3, 4, 8>>(fake(7, shape<4, 8>{}))), m));
  CHECK((m.rank == 3 && m.stride[0] == 0 && m.stride[1] == 8 && m.stride[2] == 1));
}

TEST_CASE("cuda matmul: alignment and overlap", "[cuda][matmul]") {
  CHECK(cd::alignment_of(0x1000) == 256);
  CHECK(cd::alignment_of(0x1004) == 4);
  CHECK(cd::alignment_of(0x1010) == 16);
  cd::memory_operand a, d;
  REQUIRE(cd::as_memory<float>(as_node(fake(1, shape<dyn, dyn>{4, 8})), a));
  REQUIRE(cd::as_memory<float>(as_node(fake(1, shape<dyn, dyn>{4, 8}, {8, 1})), d));
  CHECK(cd::overlaps(a, 4, d));
  REQUIRE(cd::as_memory<float>(as_node(fake(2, shape<dyn, dyn>{4, 8})), d));
  CHECK_FALSE(cd::overlaps(a, 4, d));
  // the last row of a and a matrix starting right after it
  cd::memory_operand e = d;
  e.base = a.base + 32 * sizeof(float);
  CHECK_FALSE(cd::overlaps(a, 4, e));
  e.base -= sizeof(float);
  CHECK(cd::overlaps(a, 4, e));
}

TEST_CASE("cuda matmul: without a device, a device product throws cuda_error", "[cuda][matmul]") {
  if (cuda::available()) return;  // the GPU tests cover it
  cuda::tensor<float, shape<dyn, dyn>> a(4, 8), w(8, 5), o(4, 5);
  cuda::tensor<float, shape<dyn>> b(5);
  CHECK_THROWS_AS(o = gelu(matmul(a, w) + b), cuda_error);
  CHECK_THROWS_AS(o = exp(matmul(a, w)) + 1.f, cuda_error);
  CHECK_THROWS_AS(cuda::eval(matmul(a * 2.f, transpose(transpose(w)))), cuda_error);
}
