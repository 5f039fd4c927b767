// Matmul on a real device (cuBLASLt), against the CPU library's product: odd sizes, transposed and
// sliced operands read in place, expression operands through temporaries, mixed types, batch
// axes broadcast, the fused epilogues (bias, relu, gelu) and others after the product, a softmax
// over a product, strided and overlapping destinations, an inner extent of 0, TF32.
//
// Every test skips with a visible message where no CUDA device is available.
#include <loom/cuda.hpp>
#include <loom/loom.hpp>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "gpu_support.hpp"
#include "support.hpp"

using namespace loom;
using loom_gpu_test::to_device;
using loom_gpu_test::to_host;

namespace {

/// The device result of build(device operands) against the CPU's build(host operands), relative
/// to the product's scale (sum over k of |a| |b|, bounded here by the largest |want| + 1).
template <class Build, class... Hs>
void check_product(const std::string& what, double rtol, Build build, const Hs&... hs) {
  INFO(what);
  auto want = eval(build(hs...));
  auto got = to_host(cuda::eval(build(to_device(hs)...)));
  REQUIRE(got.shape().to_dims() == want.shape().to_dims());
  double scale = 1;
  for (std::size_t i = 0; i < want.size(); ++i) scale = std::max(scale, std::abs(double(want.data()[i])));
  std::size_t bad = 0, first = 0;
  for (std::size_t i = 0; i < want.size(); ++i)
    if (!(std::abs(double(got.data()[i]) - double(want.data()[i])) <= rtol * scale) && bad++ == 0) first = i;
  INFO("first at " << first << ": got " << double(got.data()[first]) << ", want " << double(want.data()[first]));
  CHECK(bad == 0);
}

}  // namespace

TEST_CASE("cuda matmul: products of odd sizes and their epilogues match the CPU", "[cuda][gpu][matmul]") {
  LOOM_REQUIRE_GPU();
  for (auto [m, k, n] : {std::array<std::size_t, 3>{1, 1, 1}, {7, 17, 5}, {64, 48, 40}, {130, 257, 129}, {1, 1023, 1025}}) {
    INFO(m << " x " << k << " x " << n);
    tensor<float, shape<dyn, dyn>> a(m, k), w(k, n), wt(n, k);
    tensor<float, shape<dyn>> b(n);
    tensor<double, shape<dyn, dyn>> ad(m, k), wd(k, n);
    loom_test::randomize(a, m + k);
    loom_test::randomize(w, k + n);
    loom_test::randomize(wt, k * n);
    loom_test::randomize(b, n);
    loom_test::randomize(ad, m);
    loom_test::randomize(wd, n);
    check_product("matmul", 1e-5, [](const auto& x, const auto& y) { return matmul(x, y); }, a, w);
    check_product("+ bias", 1e-5, [](const auto& x, const auto& y, const auto& c) { return matmul(x, y) + c; }, a, w, b);
    check_product("relu(+ bias)", 1e-5,
                  [](const auto& x, const auto& y, const auto& c) { return relu(c + matmul(x, y)); }, a, w, b);
    check_product("gelu(+ bias)", 1e-4,
                  [](const auto& x, const auto& y, const auto& c) { return gelu(matmul(x, y) + c); }, a, w, b);
    check_product("gelu", 1e-4, [](const auto& x, const auto& y) { return gelu(matmul(x, y)); }, a, w);
    check_product("a transposed operand", 1e-5, [](const auto& x, const auto& y) { return matmul(x, transpose(y)); }, a,
                  wt);
    check_product("an expression operand", 1e-5, [](const auto& x, const auto& y) { return matmul(x * 2.f - 1.f, y); },
                  a, w);
    check_product("another epilogue", 1e-4,
                  [](const auto& x, const auto& y) { return exp(matmul(x, y) * 0.1f) - 1.f; }, a, w);
    check_product("an activation over another epilogue", 1e-4,
                  [](const auto& x, const auto& y) { return relu(exp(matmul(x, y) * 0.1f) - 1.f); }, a, w);
    check_product("double", 1e-12, [](const auto& x, const auto& y) { return matmul(x, y); }, ad, wd);
    check_product("float x double", 1e-6, [](const auto& x, const auto& y) { return matmul(x, y); }, a, wd);
    check_product("softmax of a product", 1e-5,
                  [](const auto& x, const auto& y) {
                    auto s = matmul(x, y);
                    auto e = exp(s - max(s, axis<1>, keepdims));
                    return e / sum(e, axis<1>, keepdims);
                  },
                  a, w);
  }
}

TEST_CASE("cuda matmul: batches, vectors, strided and overlapping destinations, empty inner axis, TF32",
          "[cuda][gpu][matmul]") {
  LOOM_REQUIRE_GPU();
  tensor<float, shape<dyn, 1, dyn, dyn>> q(3, 9, 16);
  tensor<float, shape<dyn, dyn, dyn>> kk(4, 16, 11);
  tensor<float, shape<dyn>> v(16);
  loom_test::randomize(q, 1);
  loom_test::randomize(kk, 2);
  loom_test::randomize(v, 3);
  check_product("batch axes broadcast", 1e-5, [](const auto& x, const auto& y) { return matmul(x, y); }, q, kk);
  check_product("vector times matrix", 1e-5, [](const auto& x, const auto& y) { return matmul(x, y); }, v, kk);

  tensor<float, shape<dyn, dyn>> a(33, 20), w(20, 33);
  loom_test::randomize(a, 4);
  loom_test::randomize(w, 5);
  auto da = to_device(a);
  auto dw = to_device(w);
  const auto want = eval(matmul(a, w));
  // into every other column of a wider tensor (not a cuBLASLt matrix: through a temporary)
  cuda::tensor<float, shape<dyn, dyn>> wide(33, 66);
  auto every_other = cuda::view(wide.data(), shape<dyn, dyn>{33, 33}, {66, 2});
  every_other = matmul(da, dw);
  auto h = to_host(wide);
  std::size_t bad = 0;
  for (std::size_t i = 0; i < 33; ++i)
    for (std::size_t j = 0; j < 66; ++j) {
      const double x = j % 2 == 0 ? double(want(i, j / 2)) : 0.0;
      if (std::abs(double(h(i, j)) - x) > 1e-4) ++bad;
    }
  CHECK(bad == 0);
  // a square product into one of its operands
  tensor<float, shape<dyn, dyn>> s(32, 32), t(32, 32);
  loom_test::randomize(s, 6);
  loom_test::randomize(t, 7);
  auto ds = to_device(s);
  const auto want_s = eval(matmul(s, t));
  ds = matmul(ds, to_device(t));
  loom_test::check_close(to_host(ds).data(), std::vector<double>(want_s.data(), want_s.data() + want_s.size()), 1e-5,
                         1e-5, "into its own operand");
  // an inner extent of 0: zeros, then the epilogue
  cuda::tensor<float, shape<dyn, dyn>> e0(5, 0), e1(0, 7);
  tensor<float, shape<dyn>> hb(7);
  for (std::size_t i = 0; i < 7; ++i) hb(i) = 1.5f;
  auto bias = to_device(hb);
  auto z = to_host(cuda::eval(relu(matmul(e0, e1) + bias)));
  for (std::size_t i = 0; i < z.size(); ++i) CHECK(z.data()[i] == 1.5f);
  // TF32: about 1e-3 relative
  tensor<float, shape<dyn, dyn>> big(256, 512), bw(512, 128);
  loom_test::randomize(big, 8);
  loom_test::randomize(bw, 9);
  const auto want_b = eval(matmul(big, bw));
  cuda::tensor<float, shape<dyn, dyn>> out(256, 128);
  cuda::options o;
  o.tf32 = true;
  out.assign(matmul(to_device(big), to_device(bw)), cuda::default_stream(), o);
  double worst = 0, scale = 0;
  const auto got_b = to_host(out);
  for (std::size_t i = 0; i < want_b.size(); ++i) {
    worst = std::max(worst, std::abs(double(got_b.data()[i]) - double(want_b.data()[i])));
    scale = std::max(scale, std::abs(double(want_b.data()[i])));
  }
  CHECK(worst <= 5e-3 * scale);
  // integers: not cuBLASLt's
  cuda::tensor<std::int32_t, shape<dyn, dyn>> i1(4, 4), i2(4, 4), i3(4, 4);
  CHECK_THROWS_AS(i3 = matmul(i1, i2), cuda_error);
}
