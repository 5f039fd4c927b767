// A device tensor cannot be assigned an expression of host tensors (that is a copy: cuda::copy).
// expect: loom: a device destination cannot take an expression of host arrays; use cuda::copy
#include <loom/cuda.hpp>
#include <loom/tensor/tensor.hpp>

int main() {
  loom::tensor<float, loom::shape<64>> x;
  loom::cuda::tensor<float, loom::shape<64>> dx, dy;
#ifdef LOOM_KO
  dy = exp(x);
#else
  dy = exp(dx);
#endif
}
