// Heat diffusion on a square plate, a five-point stencil that is not machine learning:
//
//   u'(i, j) = u + k (u(i-1, j) + u(i+1, j) + u(i, j-1) + u(i, j+1) - 4 u)    inside,
//   u' = 0 on the border (a plate held at zero, with a hot square in the middle).
//
// The four neighbours are slices of u (index maps: only different offsets into the same
// memory), the interior is padded back to the full plate with the border value, and the step is
// one fused pass: no shifted copies of the grid. Two buffers are swapped between steps. The
// result of every step is checked against a plain loop in float64, and the total heat is
// watched (it can only leave through the border).
//
// Usage: stencil [--check]   (--check: a small plate and few steps, for the test suite)
#include <loom/loom.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <utility>
#include <vector>

using namespace loom;

int main(int argc, char** argv) {
  const bool check_only = argc > 1 && std::strcmp(argv[1], "--check") == 0;
  const index_t n = check_only ? 67 : 2048;
  const int steps = check_only ? 20 : 100;
  const float k = 0.2f;  // stable for k <= 0.25
  using grid = tensor<float, shape<dyn, dyn>>;
  grid a(n, n), b(n, n);
  std::vector<double> ref(std::size_t(n * n), 0.0), nxt(ref.size());
  for (index_t i = 0; i < n; ++i)
    for (index_t j = 0; j < n; ++j) {
      const bool hot = std::abs(i - n / 2) < n / 8 && std::abs(j - n / 2) < n / 8;
      a(i, j) = hot ? 100.f : 0.f;
      ref[std::size_t(i * n + j)] = a(i, j);
    }

  auto step = [&](const grid& u) {
    auto rows = [&](index_t lo) { return slice<0>(u, lo, lo + n - 2); };
    auto centre = slice<1>(rows(1), 1, n - 1);
    auto up = slice<1>(rows(0), 1, n - 1), down = slice<1>(rows(2), 1, n - 1);
    auto left = slice<1>(rows(1), 0, n - 2), right = slice<1>(rows(1), 2, n);
    auto inner = centre + k * (up + down + left + right - 4.f * centre);
    return pad<0>(pad<1>(inner, 1, 1, 0.f), 1, 1, 0.f);
  };
  std::printf("%s\n", explain(step(a)).c_str());

  double worst = 0, seconds = 0;
  grid* u = &a;
  grid* v = &b;
  for (int s = 0; s < steps; ++s) {
    const auto t0 = std::chrono::steady_clock::now();
    *v = step(*u);
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::swap(u, v);
    if (check_only || s == steps - 1) {  // the float64 loop (every step in --check mode)
      for (index_t i = 0; i < n; ++i)
        for (index_t j = 0; j < n; ++j) {
          const std::size_t c = std::size_t(i * n + j);
          const bool border = i == 0 || j == 0 || i == n - 1 || j == n - 1;
          nxt[c] = border ? 0.0
                          : ref[c] + double(k) * (ref[c - std::size_t(n)] + ref[c + std::size_t(n)] + ref[c - 1] +
                                                  ref[c + 1] - 4 * ref[c]);
        }
      std::swap(ref, nxt);
      if (!check_only) break;
      for (index_t i = 0; i < n; ++i)
        for (index_t j = 0; j < n; ++j)
          worst = std::max(worst, std::fabs((*u)(i, j) - ref[std::size_t(i * n + j)]));
    }
  }
  double heat = 0;
  for (std::size_t i = 0; i < u->size(); ++i) heat += u->data()[i];
  const bool ok = worst < 1e-3 && std::isfinite(heat);
  std::printf("%d steps of a %lld x %lld plate: %.3f ms per step (%.2f GB/s), heat left %.1f, largest error %.3g: %s\n",
              steps, static_cast<long long>(n), static_cast<long long>(n), 1e3 * seconds / steps,
              2.0 * 4 * double(n * n) * steps / seconds / 1e9, heat, worst, ok ? "ok" : "WRONG");
  return ok ? 0 : 1;
}
