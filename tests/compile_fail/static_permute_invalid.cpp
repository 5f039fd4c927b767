// permute<...> must name each axis exactly once.
// expect: loom: permute<P...> needs each axis of the operand exactly once
// expect: static_permutation_invalid<loom::shape<4, 5, 6>, 0, 0, 2>
#include <loom/loom.hpp>

int main() {
  loom::tensor<float, loom::shape<4, 5, 6>> x;
#ifdef LOOM_KO
  auto e = loom::permute<0, 0, 2>(x);
#else
  auto e = loom::permute<0, 2, 1>(x);
#endif
  (void)e;
}
