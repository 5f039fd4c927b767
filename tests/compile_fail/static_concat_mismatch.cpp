// concat needs equal static extents off the concat axis; the error names both shapes and the axis.
// expect: loom: concat needs operands of one rank and equal extents off the concat axis
// expect: static_concat_mismatch<loom::shape<4, 5>, loom::shape<3, 6>, 0, 1>
#include <loom/loom.hpp>

int main() {
  loom::tensor<float, loom::shape<4, 5>> a;
#ifdef LOOM_KO
  loom::tensor<float, loom::shape<3, 6>> b;
#else
  loom::tensor<float, loom::shape<3, 5>> b;
#endif
  auto e = loom::concat<0>(a, b);
  (void)e;
}
