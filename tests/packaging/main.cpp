// A program that uses loom the way a user's project does (built by tools/checks/packaging.sh
// through find_package, add_subdirectory and the single header).
#include <loom/loom.hpp>

#include <cstdio>

int main() {
  using namespace loom;
  tensor<float, shape<dyn, 64>> x(33);
  tensor<float, shape<64>> b;
  for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = float(i % 7) - 3.f;
  for (std::size_t j = 0; j < 64; ++j) b(j) = 0.5f;
  tensor<float, shape<dyn, 64>> y = relu(x + b) * 2.f;
  for (std::size_t i = 0; i < 33; ++i)
    for (std::size_t j = 0; j < 64; ++j) {
      const float v = x(i, j) + 0.5f;
      if (y(i, j) != (v > 0 ? 2 * v : 0.f)) {
        std::printf("wrong result at (%zu, %zu)\n", i, j);
        return 1;
      }
    }
  std::printf("loom %s: ok\n", LOOM_VERSION_STRING);
  return 0;
}
