// A device assignment of a matmul expression is refused at compile time (no device GEMM yet).
// expect: loom: matmul on device not yet supported
#include <loom/cuda.hpp>
#include <loom/loom.hpp>

int main() {
  loom::cuda::tensor<float, loom::shape<loom::dyn, 32>> a(4), o(4);
  loom::cuda::tensor<float, loom::shape<32, 32>> w;
#ifdef LOOM_KO
  o = loom::relu(loom::matmul(a, w));
#else
  o = loom::relu(a);
#endif
  (void)w;
}
