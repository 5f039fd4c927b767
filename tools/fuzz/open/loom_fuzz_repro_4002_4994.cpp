// Reproducer of loom fuzz case 4994 of corpus seed 4002 (tools/fuzz/open, batch 124 of seed 4002), data seed 1, round 0 (ordinary inputs), mode threads.
// Build from the repository root:
//   g++ -std=c++20 -O2 -march=native -Iinclude -Itests tools/fuzz/open/loom_fuzz_repro_4002_4994.cpp -o repro && ./repro
#include "reference/fuzz_harness.hpp"
using namespace loom;

static void case_4994(loom_fuzz::context& ctx) {
  loom_fuzz::tensor_input<float, loom::shape<loom::dyn, loom::dyn, loom::dyn, 17>> a(loom::shape<loom::dyn, loom::dyn, loom::dyn, 17>{32, 15, 7});
  auto make = [](const auto& a) { return loom::max(loom::cos(a), loom::axis<2>); };
  static_assert(std::is_same_v<loom::value_type_of<decltype(make(a.leaf()))>, float>);
  static const loom_fuzz::case_info info{4994, 4002ull, "loom::max(loom::cos(a), loom::axis<2>)", "case 4994", __FILE__};
  loom_fuzz::run_case(ctx, info, make, std::tie(a),
                      loom_fuzz::to_eval{},
                      loom_fuzz::to_threads{},
                      loom_fuzz::to_assign<double, 0, true>{});
}

int main() {
  loom_fuzz::context ctx;
  ctx.data_seed = 1ull;
  ctx.only_round = 0;
  ctx.cuda_compile = false;
  case_4994(ctx);
  std::printf("%s\n", loom_fuzz::global_stats().summary().c_str());
  return loom_fuzz::global_stats().failures ? 1 : 0;
}
