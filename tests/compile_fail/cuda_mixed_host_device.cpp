// One expression cannot read host and device arrays: it stops where the expression is built.
// expect: loom: an expression cannot mix host tensors and device tensors
#include <loom/cuda.hpp>
#include <loom/tensor/tensor.hpp>

int main() {
  loom::tensor<float, loom::shape<64>> x;
  loom::cuda::tensor<float, loom::shape<64>> dx;
#ifdef LOOM_KO
  auto e = x * 2.f + dx;
#else
  auto e = dx * 2.f + dx;
#endif
  (void)e;
}
