// A view of const data is read-only: assigning to it does not compile.
// expect: loom: cannot write through a view of const data
#include <loom/loom.hpp>

#include <vector>

int main() {
  std::vector<float> buf(32, 1.f);
  const std::vector<float>& cbuf = buf;
  auto v = loom::view(buf.data(), loom::shape<32>{});
  auto cv = loom::view(cbuf.data(), loom::shape<32>{});
#ifdef LOOM_KO
  cv = v * 2.f;
#else
  v = cv * 2.f;
#endif
}
