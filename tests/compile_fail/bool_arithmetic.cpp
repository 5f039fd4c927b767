// Arithmetic on bool operands alone is rejected, as NumPy rejects subtracting bools.
// expect: loom: arithmetic on bool operands alone is not defined
#include <loom/loom.hpp>

int main() {
  loom::tensor<bool, loom::shape<8>> a, b;
#ifdef LOOM_KO
  auto e = a - b;
#else
  auto e = loom::cast<int>(a) - b;
#endif
  (void)e;
}
