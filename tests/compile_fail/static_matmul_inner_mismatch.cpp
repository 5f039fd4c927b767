// Static inner extents of a matmul that differ stop compilation where the product is built, and
// the error names both shapes and both extents.
// expect: loom: matmul(a, b) needs a's last extent equal to b's second-to-last
// expect: static_matmul_inner_extents_differ<loom::shape<64, 48>, loom::shape<47, 32>, 48, 47>
#include <loom/loom.hpp>

int main() {
  loom::tensor<float, loom::shape<64, 48>> a;
#ifdef LOOM_KO
  loom::tensor<float, loom::shape<47, 32>> w;
#else
  loom::tensor<float, loom::shape<48, 32>> w;
#endif
  auto e = loom::matmul(a, w);
  (void)e;
}
