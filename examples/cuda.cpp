// The CUDA path, from a program built with plain g++ (no nvcc): the demo's residual update
//
//   y = x + gelu(h + bias) * scale          x, h: [rows, 1024], bias: [1024]
//
// on device tensors becomes one generated CUDA kernel, compiled at run time by NVRTC.
//
// It prints the generated source (cuda::kernel_source), compiles it for sm_90 without needing a
// GPU (cuda::compile: NVRTC only), and, where a GPU is present, runs it and checks the result
// against loom's CPU evaluation. Without NVRTC or a GPU it says which piece is missing and what
// it could still do; that is not an error.
//
// Usage: cuda [--check]   (--check: prints the kernel without the preamble)
#include <loom/cuda.hpp>
#include <loom/loom.hpp>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>

using namespace loom;

int main(int argc, char** argv) {
  const bool check_only = argc > 1 && std::strcmp(argv[1], "--check") == 0;
  const index_t rows = 300;
  constexpr index_t cols = 1000;
  cuda::tensor<float, shape<dyn, cols>> dx(rows), dh(rows), dy(rows);
  cuda::tensor<float, shape<cols>> dbias;
  const float scale = 0.7f;

  // one kernel: the bias broadcast along rows, the tanh-form GELU, the scale and the residual
  auto update = dx + gelu(dh + dbias) * scale;
  std::printf("%s\n", explain(update).c_str());

  std::string src;
  try {
    src = cuda::kernel_source(update);
  } catch (const error& err) {
    std::printf("no kernel source: %s\n", err.what());
    return 1;  // generating source needs nothing but the headers
  }
  // The preamble (device helpers embedded in loom's headers) comes first; the kernel itself is
  // the part from its extern "C" entry point on. --check prints only that part.
  const std::size_t entry = src.find("extern \"C\"");
  if (check_only && entry != std::string::npos)
    std::printf("[%zu characters of preamble]\n%s\n", entry, src.c_str() + entry);
  else
    std::printf("%s\n", src.c_str());

  try {
    const auto k = cuda::compile(update, cuda::options{.arch = "sm_90"});
    std::printf("NVRTC compiled %s for %s: %zu bytes of cubin (%s)\n", k.name.c_str(), k.arch.c_str(), k.cubin_bytes,
                k.layout.c_str());
  } catch (const jit_error& err) {
    std::printf("NVRTC rejected the kernel:\n%s\n", err.what());
    return 1;  // a generated kernel that does not compile is a loom bug
  } catch (const cuda_error& err) {
    std::printf("NVRTC is not available here (%s): the source above is what would be compiled\n", err.what());
  }

  if (!cuda::available()) {
    std::printf("no CUDA device: the kernel was compiled, not run\n");
    return 0;
  }
  tensor<float, shape<dyn, cols>> x(rows), h(rows), y(rows), want(rows);
  tensor<float, shape<cols>> bias;
  std::mt19937 g(3);
  std::uniform_real_distribution<float> u(-4.f, 4.f);
  for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = u(g), h.data()[i] = u(g);
  for (std::size_t i = 0; i < bias.size(); ++i) bias.data()[i] = 0.1f * u(g);
  cuda::copy(dx, x);
  cuda::copy(dh, h);
  cuda::copy(dbias, bias);
  dy = update;  // generated, compiled (or read from the disk cache), launched
  cuda::copy(y, dy);
  cuda::synchronize();
  want = x + gelu(h + bias) * scale;  // the same expression on the CPU
  double worst = 0;
  for (std::size_t i = 0; i < y.size(); ++i)
    worst = std::max(worst, std::fabs(double(y.data()[i]) - want.data()[i]) / (1.0 + std::fabs(double(want.data()[i]))));
  const bool ok = worst < 1e-5;
  std::printf("x + gelu(h + bias) * scale over %lld x %lld on the GPU: largest difference from the CPU %.3g: %s\n",
              static_cast<long long>(rows), static_cast<long long>(cols), worst, ok ? "ok" : "WRONG");
  return ok ? 0 : 1;
}
