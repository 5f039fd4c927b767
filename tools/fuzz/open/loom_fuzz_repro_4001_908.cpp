// Reproducer of loom fuzz case 908 of corpus seed 4001 (tools/fuzz/open (batch 22 of seed 4001)), data seed 1, round 1 (special inputs), mode compound /= into float32.
// Build from the repository root:
//   g++ -std=c++20 -O2 -march=native -Iinclude -Itests tools/fuzz/open/loom_fuzz_repro_4001_908.cpp -o repro && ./repro
#include "reference/fuzz_harness.hpp"
using namespace loom;

static void case_908(loom_fuzz::context& ctx) {
  loom_fuzz::tensor_input<float, loom::shape<loom::dyn>> a(loom::shape<loom::dyn>{0});
  loom_fuzz::strided_input<float, loom::shape<loom::dyn, loom::dyn, 0>> b(loom::shape<loom::dyn, loom::dyn, 0>{129, 0}, {-3, 3, -3}, 1);
  loom_fuzz::tensor_input<double, loom::shape<loom::dyn, loom::dyn>> c(loom::shape<loom::dyn, loom::dyn>{129, 33});
  auto make = [](const auto& a, const auto& b, const auto& c) { return loom::log(loom::concat<1>(loom::matmul(a, b), [](const auto& d) { return d * loom::rsqrt(loom::mean(d * d, loom::axis<1>, loom::keepdims) + 0.5f); }(c - loom::mean(c, loom::axis<1>, loom::keepdims)))); };
  static_assert(std::is_same_v<loom::value_type_of<decltype(make(a.leaf(), b.leaf(), c.leaf()))>, double>);
  static const loom_fuzz::case_info info{908, 4001ull, "loom::log(loom::concat<1>(loom::matmul(a, b), [](const auto& d) { return d * loom::rsqrt(loom::mean(d * d, loom::axis<1>, loom::keepdims) + 0.5f); }(c - loom::mean(c, loom::axis<1>, loom::keepdims))))", "case 908", __FILE__};
  loom_fuzz::run_case(ctx, info, make, std::tie(a, b, c),
                      loom_fuzz::to_eval{},
                      loom_fuzz::to_mismatch<double>{},
                      loom_fuzz::to_compound<float, '/'>{});
}

int main() {
  loom_fuzz::context ctx;
  ctx.data_seed = 1ull;
  ctx.only_round = 1;
  ctx.cuda_compile = false;
  case_908(ctx);
  std::printf("%s\n", loom_fuzz::global_stats().summary().c_str());
  return loom_fuzz::global_stats().failures ? 1 : 0;
}
