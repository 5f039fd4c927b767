// A static reshape that changes the number of elements stops compilation, naming both shapes and
// both sizes.
// expect: loom: reshape cannot change the number of elements
// expect: static_reshape_changes_size<loom::shape<64, 32>, loom::shape<8, 8, 33>, 2048, 2112>
#include <loom/loom.hpp>

int main() {
  loom::tensor<float, loom::shape<64, 32>> x;
#ifdef LOOM_KO
  auto e = loom::reshape<loom::shape<8, 8, 33>>(x);
#else
  auto e = loom::reshape<loom::shape<8, 8, 32>>(x);
#endif
  (void)e;
}
