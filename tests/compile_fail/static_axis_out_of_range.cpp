// A reduction over an axis the operand does not have stops compilation, naming the operand's
// shape and the axis.
// expect: loom: axis out of range for the operand's rank
// expect: static_axis_out_of_range<loom::shape<64, 32>, 2>
#include <loom/loom.hpp>

int main() {
  loom::tensor<float, loom::shape<64, 32>> x;
#ifdef LOOM_KO
  auto e = loom::sum(x, loom::axis<2>);
#else
  auto e = loom::sum(x, loom::axis<-1>);
#endif
  (void)e;
}
