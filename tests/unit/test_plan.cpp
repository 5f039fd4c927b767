// The fusion plan and explain(): what users can assert and read.
#include <loom/loom.hpp>

#include "support.hpp"

using namespace loom;

TEST_CASE("every elementwise expression is one kernel with no temporaries", "[plan]") {
  tensor<float, shape<64, 32>> x;
  tensor<float, shape<32>> b;
  static_assert(plan_of<decltype(2.f * x + exp(-x))>::kernels == 1);
  static_assert(plan_of<decltype(where(x > 0.f, x, 0.01f * x) + b)>::kernels == 1);
  static_assert(plan_of<decltype(2.f * x + exp(-x))>::temp_bytes == 0);
  static_assert(plan_of<decltype(x)>::kernels == 1);
  static_assert(plan_of<decltype(2.f * x + exp(-x))>::fused_nodes == 7);  // add, mul, 2, x, exp, neg, x
  SUCCEED();
}

TEST_CASE("explain shows the formula, kernels, temporaries, bytes and the loop nest", "[plan]") {
  tensor<float, shape<64, 32>> x, o;
  tensor<float, shape<32>> b;
  std::string s = explain(o + x * 2.f + b);
  INFO(s);
  CHECK(s.find("kernels: 1") != std::string::npos);
  CHECK(s.find("temporaries: 0 bytes") != std::string::npos);
  CHECK(s.find("x0: float32[64, 32]") != std::string::npos);
  CHECK(s.find("x2: float32[32]") != std::string::npos);
  CHECK(s.find("((x0 + (x1 * 2)) + x2)") != std::string::npos);
  CHECK(s.find("bytes read: " + std::to_string(2 * 64 * 32 * 4 + 32 * 4)) != std::string::npos);
  CHECK(s.find("written: " + std::to_string(64 * 32 * 4)) != std::string::npos);
  CHECK(s.find("loop space [64, 32]") != std::string::npos);
  std::string flat = explain(x * 2.f + x);
  INFO(flat);
  CHECK(flat.find("collapsed to [2048]") != std::string::npos);  // contiguous: one flat run
  CHECK(flat.find("layout contiguous") != std::string::npos);
  CHECK(flat.find("x1") == std::string::npos);  // one leaf, read once
}

TEST_CASE("explain shows streaming stores for large memory-bound loops only", "[plan][streaming]") {
  // cpu/loop_nest.hpp: over 24 MiB and at most streaming_max_cost per element (bench/RESULTS.md)
  tensor<float, shape<dyn>> x(std::size_t(1) << 23);
  const std::string cheap = explain(2.f * x + 1.f), costly = explain(0.5f * x * (1.f + tanh(x * x * x)));
  INFO(cheap << costly);
  CHECK(cheap.find("streaming stores") != std::string::npos);
  CHECK(costly.find("streaming stores") == std::string::npos);
  CHECK(costly.find("layout contiguous") != std::string::npos);
  tensor<float, shape<1024>> s;
  CHECK(explain(2.f * s + 1.f).find("streaming stores") == std::string::npos);
}

TEST_CASE("explain names the scalar path for mixed lane classes", "[plan]") {
  tensor<float, shape<8>> f;
  tensor<double, shape<8>> d;
  CHECK(explain(f + d).find("scalar") != std::string::npos);
  CHECK(explain(f + f).find("lanes") != std::string::npos);
}
