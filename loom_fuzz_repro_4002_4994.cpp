// Reproducer of loom fuzz case 4994 of corpus seed 4002 (tools/fuzz/open/loom_fuzz_repro_4002_4994.cpp), data seed 1, round 0 (ordinary inputs), mode threads.
// Build from the repository root:
//   g++ -std=c++20 -O2 -march=native -Iinclude -Itests ./loom_fuzz_repro_4002_4994.cpp -o repro && ./repro
#include "reference/fuzz_harness.hpp"
using namespace loom;

case 4994

int main() {
  loom_fuzz::context ctx;
  ctx.data_seed = 1ull;
  ctx.only_round = 0;
  ctx.cuda_compile = false;
  case_4994(ctx);
  std::printf("%s\n", loom_fuzz::global_stats().summary().c_str());
  return loom_fuzz::global_stats().failures ? 1 : 0;
}
