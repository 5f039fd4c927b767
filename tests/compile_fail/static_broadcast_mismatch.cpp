// Static extents that cannot broadcast stop compilation where the expression is built, and the
// error names both shapes and the axis.
// expect: loom: shapes cannot be broadcast together
// expect: static_extents_cannot_broadcast<loom::shape<64, 32>, loom::shape<63, 32>, 0, 64, 63>
#include <loom/loom.hpp>

int main() {
  loom::tensor<float, loom::shape<64, 32>> x;
#ifdef LOOM_KO
  loom::tensor<float, loom::shape<63, 32>> y;
#else
  loom::tensor<float, loom::shape<1, 32>> y;
#endif
  auto e = x + y;
  (void)e;
}
