// Assigning an expression whose static shape does not fit the destination does not compile.
// expect: loom: the expression's shape does not fit the destination
#include <loom/loom.hpp>

int main() {
  loom::tensor<float, loom::shape<8, 4>> o;
#ifdef LOOM_KO
  loom::tensor<float, loom::shape<8, 5>> x;
#else
  loom::tensor<float, loom::shape<1, 4>> x;
#endif
  o = x * 2.f;
}
