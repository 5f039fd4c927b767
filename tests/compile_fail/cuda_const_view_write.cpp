// A device view of const data is read-only: assigning to it does not compile.
// expect: loom: cannot write through a view of const device data
#include <loom/cuda.hpp>

int main() {
  loom::cuda::tensor<float, loom::shape<64>> dx;
#ifdef LOOM_KO
  auto v = loom::cuda::view(static_cast<const loom::cuda::tensor<float, loom::shape<64>>&>(dx));
#else
  auto v = loom::cuda::view(dx);
#endif
  v = 1.f;
}
