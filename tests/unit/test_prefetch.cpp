// The tiled passes' software prefetch (cpu/prefetch.hpp): a stream fetches exactly the lines of
// its slice (across the plan's ranges), one at most per tick, and a disarmed one nothing; and
// above the size where the tile loop arms it (the first pass's reads and the destination over
// 24 MiB), softmax, layer norm, RMS norm, a reduction of two operands and one through a flip
// match float64 and give the same bits at 1, 2 and 3 threads - with row lengths on and off the
// consumer's four-packet groups - with the prefetch and the streaming stores each on and off.
#include "reduce_support.hpp"

#include <cstdlib>
#include <cstring>

using namespace loom;

namespace {

using mat = tensor<float, shape<dyn, dyn>>;
using vec = tensor<float, shape<dyn>>;

// Lines a stream would fetch, walking it as a pass does (ticks of `step` elements).
std::vector<const char*> walk(cpu::prefetch_stream s, index_t elems, index_t step) {
  std::vector<const char*> got;
  for (index_t done = 0; done + step <= elems; done += step) {
    const char* before = s.p;
    s.tick(step);
    if (s.p != before) got.push_back(s.p - cpu::prefetch_stream::line);  // the line just fetched
  }
  return got;
}

}  // namespace

TEST_CASE("a prefetch stream fetches its slice's lines, one at most per tick", "[prefetch]") {
  alignas(64) static char a[64 * 100], b[64 * 40];
  cpu::prefetch_plan plan;
  plan.r[0] = {a, a + sizeof a};
  plan.r[1] = {b, b + 64 * 39 + 1};  // a partial last line counts
  plan.n = 2;
  CHECK(plan.lines() == 140);

  SECTION("a slice inside one range, at the rate asked") {
    const auto s = cpu::prefetch_stream::slice(plan, 10, 20, 64);
    const auto got = walk(s, 64 * 40, 32);  // ticks of 32 elements: one line every other tick
    REQUIRE(got.size() == 20);
    for (std::size_t i = 0; i < got.size(); ++i) CHECK(got[i] == a + 64 * (10 + i));
  }
  SECTION("a slice starting in the second range") {
    const auto got = walk(cpu::prefetch_stream::slice(plan, 105, 10, 1), 1000, 32);
    REQUIRE(got.size() == 10);
    CHECK(got.front() == b + 64 * 5);
    CHECK(got.back() == b + 64 * 14);
  }
  SECTION("a slice across the ranges' boundary goes on in the next range") {
    const auto got = walk(cpu::prefetch_stream::slice(plan, 95, 20, 1), 1000, 32);
    REQUIRE(got.size() == 20);
    CHECK(got[4] == a + 64 * 99);
    CHECK(got[5] == b);
    CHECK(got.back() == b + 64 * 14);
  }
  SECTION("a slice past the plan's end is cut there") {
    const auto got = walk(cpu::prefetch_stream::slice(plan, 130, 50, 1), 1000, 32);
    REQUIRE(got.size() == 10);
    CHECK(got.back() == b + 64 * 39);
  }
  SECTION("faster than one a tick asks for: one a tick, the rest left") {
    const auto got = walk(cpu::prefetch_stream::slice(plan, 0, 50, 8), 32 * 30, 32);
    CHECK(got.size() == 30);
  }
  SECTION("a loop through the stream runs every iteration and fetches as ticks would") {
    auto s = cpu::prefetch_stream::slice(plan, 0, 30, 64);
    index_t calls = 0, sum = 0;
    const index_t end = s.loop(5, 5 + 32 * 40 + 31, 32, [&](index_t j) {
      ++calls;
      sum += j;
    });
    CHECK(calls == 40);
    CHECK(end == 5 + 32 * 40);
    CHECK(sum == 40 * 5 + 32 * (39 * 40 / 2));
    CHECK(s.p == a + 64 * 20);  // 40 iterations of 32 elements, a line every 64
    cpu::prefetch_stream off;
    CHECK(off.loop(0, 1000, 32, [](index_t) {}) == 992);
    CHECK(off.p == nullptr);
  }
  SECTION("nothing to fetch: disarmed") {
    CHECK(walk(cpu::prefetch_stream{}, 1 << 20, 32).empty());
    CHECK(walk(cpu::prefetch_stream::slice(plan, 140, 5, 1), 1000, 32).empty());
    CHECK(walk(cpu::prefetch_stream::slice(plan, 3, 0, 1), 1000, 32).empty());
  }
}

TEST_CASE("normalisations too large for the caches: prefetched tiles give the float64 values and the same bits",
          "[prefetch][fusion][threads]") {
  // 3200 x 1019 and 3100 x 1032 floats: 12.4-12.8 MiB read and as much written, over the 24 MiB
  // where the passes after the first fetch the next tile; 1019 = 31 groups of four packets, three
  // packets and three scalars a row (AVX2), 1032 = 32 groups and one packet.
  for (auto [rows, cols] : {std::pair<std::size_t, std::size_t>{3200, 1019}, {3100, 1032}}) {
    INFO(rows << " x " << cols);
    mat x(rows, cols), y(rows, cols);
    vec g(cols), b(cols);
    loom_test::randomize(x, rows + cols, -5, 5);
    loom_test::randomize(y, 3 * rows + cols, -2, 2);
    loom_test::randomize(g, 2 * cols);
    loom_test::randomize(b, 5 * cols);
    const float eps = 1e-5f;

    std::vector<double> sm(rows * cols), ln(rows * cols), rms(rows * cols), dot(rows * cols), fl(rows * cols);
    for (std::size_t i = 0; i < rows; ++i) {
      double m = -INFINITY, s = 0, mu = 0, var = 0, sq = 0, xy = 0, mf = -INFINITY, sf = 0;
      for (std::size_t j = 0; j < cols; ++j) {
        m = std::max(m, double(x(i, j)));
        mu += x(i, j);
        sq += double(x(i, j)) * x(i, j);
        xy += double(x(i, j)) * y(i, j);
        mf = std::max(mf, 2.0 * x(i, j));
      }
      mu /= double(cols);
      for (std::size_t j = 0; j < cols; ++j) {
        s += std::exp(double(x(i, j)) - m);
        var += (x(i, j) - mu) * (x(i, j) - mu);
        sf += std::exp(2.0 * x(i, j) - mf);
      }
      var /= double(cols);
      for (std::size_t j = 0; j < cols; ++j) {
        const std::size_t k = i * cols + j;
        sm[k] = std::exp(double(x(i, j)) - m) / s;
        ln[k] = (x(i, j) - mu) / std::sqrt(var + eps) * g(j) + b(j);
        rms[k] = x(i, j) / std::sqrt(sq / double(cols) + eps) * g(j);
        dot[k] = double(x(i, j)) * y(i, j) - xy;
        // the softmax of flip<1>(2x), at column j: element cols - 1 - j of the row
        fl[k] = std::exp(2.0 * x(i, cols - 1 - j) - mf);
      }
      for (std::size_t j = 0; j < cols; ++j) fl[i * cols + j] /= sf;
    }

    auto run = [&](unsigned threads) {
      set_num_threads(threads);
      std::vector<mat> out;
      for (int k = 0; k < 5; ++k) out.emplace_back(rows, cols);
      auto e = exp(x - max(x, axis<1>, keepdims));
      out[0] = e / sum(e, axis<1>, keepdims);
      auto mu = mean(x, axis<1>, keepdims);
      auto d = x - mu;
      out[1] = d * rsqrt(mean(d * d, axis<1>, keepdims) + eps) * g + b;
      out[2] = x * rsqrt(mean(x * x, axis<1>, keepdims) + eps) * g;
      out[3] = x * y - sum(x * y, axis<1>, keepdims);  // the first pass reads two arrays
      auto f = flip<1>(x * 2.f);                        // and here one backwards
      auto ef = exp(f - max(f, axis<1>, keepdims));
      out[4] = ef / sum(ef, axis<1>, keepdims);
      return out;
    };
    const auto one = run(1);
    loom_test::check_close(one[0].data(), sm, 2e-6, 1e-12, "softmax");
    loom_test::check_close(one[1].data(), ln, 2e-5, 2e-5, "layer norm");
    loom_test::check_close(one[2].data(), rms, 2e-5, 2e-5, "rms norm");
    loom_test::check_close(one[3].data(), dot, 1e-5, 1e-3, "x * y - sum(x * y)");
    loom_test::check_close(one[4].data(), fl, 2e-6, 1e-12, "softmax of flip<1>(2x)");
    for (unsigned t : {2u, 3u}) {
      INFO("threads = " << t);
      const auto many = run(t);
      for (std::size_t k = 0; k < one.size(); ++k) {
        INFO("expression " << k);
        CHECK(std::memcmp(one[k].data(), many[k].data(), rows * cols * sizeof(float)) == 0);
      }
    }
    // The machine-dependent choices (cpu/tuning.hpp) change which lines are fetched early and
    // whether the output passes through the cache, never a bit of the result: each setting this
    // machine does not use by default is run too.
    const cpu::tiled_tuning saved = cpu::get_tiled_tuning();
    for (bool prefetch : {false, true})
      for (bool stream : {false, true}) {
        INFO("prefetch " << prefetch << ", streaming stores " << stream);
        cpu::set_tiled_tuning({prefetch, stream});
        const auto other = run(2);
        for (std::size_t k = 0; k < one.size(); ++k) {
          INFO("expression " << k);
          CHECK(std::memcmp(one[k].data(), other[k].data(), rows * cols * sizeof(float)) == 0);
        }
      }
    cpu::set_tiled_tuning(saved);
  }
  set_num_threads(0);
}

TEST_CASE("the tiled kernels' machine-dependent choices: defaults by vendor, settable, restored",
          "[prefetch][tuning]") {
  const cpu::tiled_tuning d = cpu::default_tiled_tuning(), now = cpu::get_tiled_tuning();
  CHECK(now.prefetch_next_tile == cpu::detail::env_switch("LOOM_TILE_PREFETCH", d.prefetch_next_tile));
  CHECK(now.streaming_stores == cpu::detail::env_switch("LOOM_TILE_STREAMING", d.streaming_stores));
  // The environment's switches: 0 and 1 only; anything else keeps the default.
  for (bool fallback : {false, true}) {
    ::unsetenv("LOOM_TEST_TILE_SWITCH");
    CHECK(cpu::detail::env_switch("LOOM_TEST_TILE_SWITCH", fallback) == fallback);
    for (const char* v : {"", "yes", "10", "2"}) {
      ::setenv("LOOM_TEST_TILE_SWITCH", v, 1);
      CHECK(cpu::detail::env_switch("LOOM_TEST_TILE_SWITCH", fallback) == fallback);
    }
    ::setenv("LOOM_TEST_TILE_SWITCH", "0", 1);
    CHECK(!cpu::detail::env_switch("LOOM_TEST_TILE_SWITCH", fallback));
    ::setenv("LOOM_TEST_TILE_SWITCH", "1", 1);
    CHECK(cpu::detail::env_switch("LOOM_TEST_TILE_SWITCH", fallback));
  }
  ::unsetenv("LOOM_TEST_TILE_SWITCH");
  CHECK(d.prefetch_next_tile == !cpu::detail::intel_cpu());
  CHECK(d.streaming_stores == !cpu::detail::intel_cpu());
  cpu::set_tiled_tuning({!d.prefetch_next_tile, d.streaming_stores});
  CHECK(cpu::get_tiled_tuning().prefetch_next_tile == !d.prefetch_next_tile);
  CHECK(cpu::get_tiled_tuning().streaming_stores == d.streaming_stores);
  // explain describes what a kernel started now would do.
  mat x(4096, 1024);
  auto e = exp(x - max(x, axis<1>, keepdims));
  auto mu = mean(x, axis<1>, keepdims);
  for (bool prefetch : {false, true}) {
    cpu::set_tiled_tuning({prefetch, true});
    CHECK((explain(e / sum(e, axis<1>, keepdims)).find("prefetch the next tile") != std::string::npos) == prefetch);
  }
  cpu::set_tiled_tuning({false, false});
  CHECK(explain((x - mu) * 2.f).find("cached stores") != std::string::npos);
  cpu::set_tiled_tuning({false, true});
  CHECK(explain((x - mu) * 2.f).find("streaming stores") != std::string::npos);
  cpu::set_tiled_tuning(now);  // as the process started (its environment included)
}
