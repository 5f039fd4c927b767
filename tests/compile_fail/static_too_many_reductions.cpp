// An expression holding more reduction occurrences than a plan tracks (128) stops compilation
// with one message that says so and what to do; 63 of them (nested normalisations, each
// holding its operand twice) compile.
// expect: loom: this expression holds more reduction occurrences than a plan tracks
// expect: evaluate a part of it with eval() first
#include <loom/loom.hpp>

template <int N, class E>
auto normalised(const E& e) {
  if constexpr (N == 0) {
    return e;
  } else {
    auto n = normalised<N - 1>(e);
    return n / loom::sum(n, loom::axis<1>, loom::keepdims);  // occurrences: 2 * inner + 1
  }
}

int main() {
  loom::tensor<float, loom::shape<8, 16>> x, y;
#ifdef LOOM_KO
  y = normalised<8>(x);  // 255 occurrences
#else
  y = normalised<6>(x);  // 63
#endif
}
