// The thread pool: results do not depend on the thread count; concurrent and nested use is safe.
#include <loom/loom.hpp>

#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

#include "support.hpp"

using namespace loom;

TEST_CASE("set_num_threads changes the pool and results stay identical", "[threads]") {
  const std::size_t n = (1u << 20) + 7;
  tensor<float, shape<dyn>> x(n), y(n);
  loom_test::randomize(x, 1);
  loom_test::randomize(y, 2);
  set_num_threads(1);
  CHECK(num_threads() == 1);
  tensor<float, shape<dyn>> one = tanh(x) * y + exp(-x * x);
  for (unsigned t : {2u, 3u, 4u, 7u}) {
    set_num_threads(t);
    CHECK(num_threads() == t);
    tensor<float, shape<dyn>> many = tanh(x) * y + exp(-x * x);
    CHECK(std::memcmp(one.data(), many.data(), n * sizeof(float)) == 0);
  }
  set_num_threads(0);
  CHECK(num_threads() == std::max(1u, std::thread::hardware_concurrency()));
}

TEST_CASE("rows of odd length give the same bits with any number of threads", "[threads]") {
  // Found by the long fuzz run (seed 3000, case 554): with rows of 129, a chunk boundary in the
  // middle of a row moved that row's packets, and an element the scalar tail computed with one
  // thread count was a packet lane with another (cos differs in the last ulp between the two).
  tensor<float, shape<dyn, dyn>> x(257, 129);
  loom_test::randomize(x, 3, -1e6, 1e6);
  tensor<double, shape<dyn, dyn>> xd(129, 127);
  loom_test::randomize(xd, 4, -1e6, 1e6);
  set_num_threads(1);
  tensor<float, shape<dyn, dyn>> one = cos(x) + sin(x * x);
  tensor<double, shape<dyn, dyn>> oned = cos(xd) * exp(-xd * xd);
  for (unsigned t : {2u, 3u, 5u}) {
    set_num_threads(t);
    tensor<float, shape<dyn, dyn>> many = cos(x) + sin(x * x);
    tensor<double, shape<dyn, dyn>> manyd = cos(xd) * exp(-xd * xd);
    CHECK(std::memcmp(one.data(), many.data(), one.size() * sizeof(float)) == 0);
    CHECK(std::memcmp(oned.data(), manyd.data(), oned.size() * sizeof(double)) == 0);
  }
  set_num_threads(0);
}

TEST_CASE("column reductions give the same bits with any number of threads", "[threads][reduce]") {
  // Found by the long fuzz run (seed 4002, case 4994): max(cos(a), axis<2>) over [32, 15, 7, 17]
  // differed in the last bit between 1 and 3 threads. The outer-axis reduction started its
  // packets at each thread's first column, so a column cos'd by a packet under one split was
  // cos'd by the scalar path under another.
  tensor<float, shape<dyn, dyn, dyn, 17>> a(shape<dyn, dyn, dyn, 17>{32, 15, 7});
  loom_test::randomize(a, 5, -1e3, 1e3);
  tensor<float, shape<dyn, dyn>> b(9, 1031);
  loom_test::randomize(b, 6, -1e3, 1e3);
  set_num_threads(1);
  tensor<float, shape<dyn, dyn, 17>> one = max(cos(a), axis<2>);
  tensor<float, shape<dyn, dyn, 17>> one_sum = sum(sin(a), axis<2>);
  tensor<float, shape<dyn>> one_cols = min(cos(b) * b, axis<0>);
  for (unsigned t : {2u, 3u, 5u, 7u}) {
    set_num_threads(t);
    tensor<float, shape<dyn, dyn, 17>> many = max(cos(a), axis<2>);
    tensor<float, shape<dyn, dyn, 17>> many_sum = sum(sin(a), axis<2>);
    tensor<float, shape<dyn>> many_cols = min(cos(b) * b, axis<0>);
    CHECK(std::memcmp(one.data(), many.data(), one.size() * sizeof(float)) == 0);
    CHECK(std::memcmp(one_sum.data(), many_sum.data(), one_sum.size() * sizeof(float)) == 0);
    CHECK(std::memcmp(one_cols.data(), many_cols.data(), one_cols.size() * sizeof(float)) == 0);
  }
  set_num_threads(0);
}

TEST_CASE("the pool runs every task exactly once and rethrows a task's exception", "[threads]") {
  set_num_threads(4);
  std::vector<std::atomic<int>> hits(1000);
  cpu::default_pool().run(1000, [&](index_t t) { hits[std::size_t(t)].fetch_add(1); });
  for (auto& h : hits) CHECK(h.load() == 1);
  CHECK_THROWS_AS(cpu::default_pool().run(10,
                                          [](index_t t) {
                                            if (t == 7) throw shape_error("task 7");
                                          }),
                  shape_error);
  // The pool still works after a failed job.
  std::atomic<int> count{0};
  cpu::default_pool().run(64, [&](index_t) { count.fetch_add(1); });
  CHECK(count.load() == 64);
  set_num_threads(0);
}

TEST_CASE("user threads may assign at the same time", "[threads]") {
  set_num_threads(2);
  const std::size_t n = 300000;
  std::vector<tensor<float, shape<dyn>>> in, out;
  for (int t = 0; t < 4; ++t) {
    in.emplace_back(n);
    out.emplace_back(n);
    loom_test::randomize(in.back(), 10 + t);
  }
  std::vector<std::thread> users;
  for (int t = 0; t < 4; ++t)
    users.emplace_back([&, t] {
      for (int rep = 0; rep < 20; ++rep) out[t] = in[t] * 2.f + 1.f;
    });
  for (auto& u : users) u.join();
  for (int t = 0; t < 4; ++t)
    for (std::size_t i = 0; i < n; i += 997) CHECK(out[t](i) == in[t](i) * 2.f + 1.f);
  set_num_threads(0);
}

TEST_CASE("an assignment inside a pool task runs inline", "[threads]") {
  set_num_threads(2);
  std::vector<tensor<float, shape<dyn>>> v;
  for (int i = 0; i < 4; ++i) v.emplace_back(200000), loom_test::randomize(v.back(), i);
  cpu::default_pool().run(4, [&](index_t t) { v[std::size_t(t)] = v[std::size_t(t)] + 1.f; });
  SUCCEED();
  set_num_threads(0);
}

// Destinations over 24 MiB are written with non-temporal stores through an L1 buffer
// (cpu::run_range_streaming); the results must be those of the cached path, element for
// element, for every thread count, for rows that break collapsing, misaligned destinations and
// destinations that are not dense (those take the cached path).
TEST_CASE("streaming stores give the same elements as cached stores", "[threads][streaming]") {
  const std::size_t n = (std::size_t(1) << 23) + 17;  // 32 MiB of float: above the threshold
  tensor<float, shape<dyn>> x(n), y(n);
  loom_test::randomize(x, 3);
  loom_test::randomize(y, 4);
  for (unsigned t : {1u, 2u, 3u}) {
    set_num_threads(t);
    INFO("threads = " << t);
    tensor<float, shape<dyn>> out(n);
    out = x * y + 1.f;
    std::size_t bad = 0;
    for (std::size_t i = 0; i < n; ++i) bad += out(i) != x(i) * y(i) + 1.f;
    CHECK(bad == 0);
    // a destination starting one element past a packet boundary
    std::vector<float> raw(n + 1, -7.f);
    tensor_view<float, shape<dyn>> mis(raw.data() + 1, shape<dyn>(n));
    mis = x - y;
    bad = 0;
    for (std::size_t i = 0; i < n; ++i) bad += raw[i + 1] != x(i) - y(i);
    CHECK(bad == 0);
    CHECK(raw[0] == -7.f);
  }
  // rows that do not collapse (a broadcast row), double and int32 destinations
  const std::size_t rows = 1501, cols = 2049;  // 24.6 MB of double
  tensor<double, shape<dyn, dyn>> a(rows, cols);
  tensor<double, shape<dyn>> bias(cols);
  loom_test::randomize(a, 5);
  loom_test::randomize(bias, 6);
  tensor<double, shape<dyn, dyn>> o(rows, cols);
  tensor<std::int32_t, shape<dyn, dyn>> oi(rows, 2 * cols + 1);
  for (unsigned t : {1u, 2u}) {
    set_num_threads(t);
    o = a * 2.0 + bias;
    std::size_t bad = 0;
    for (std::size_t r = 0; r < rows; ++r)
      for (std::size_t c = 0; c < cols; ++c) bad += o(r, c) != a(r, c) * 2.0 + bias(c);
    CHECK(bad == 0);
    const std::size_t wc = 2 * cols + 1;
    oi = iota<std::int32_t>(shape<dyn, dyn>(rows, wc)) * 3;
    bad = 0;
    for (std::size_t r = 0; r < rows; ++r)
      for (std::size_t c = 0; c < wc; ++c) bad += oi(r, c) != std::int32_t((r * wc + c) * 3);
    CHECK(bad == 0);
    // a destination that is not dense (every other column): the cached path, still correct
    std::vector<double> wide(rows * 2 * cols, -3.0);
    auto half = view(wide.data(), shape<dyn, dyn>(rows, cols),
                     std::array<index_t, 2>{index_t(2 * cols), 2});
    half = a - bias;
    bad = 0;
    for (std::size_t r = 0; r < rows; ++r)
      for (std::size_t c = 0; c < cols; ++c)
        bad += wide[r * 2 * cols + 2 * c] != a(r, c) - bias(c) || wide[r * 2 * cols + 2 * c + 1] != -3.0;
    CHECK(bad == 0);
  }
  set_num_threads(0);
}

TEST_CASE("a softmax too large for the caches gives the same bits with any number of threads",
          "[threads][streaming][reduce]") {
  // Above the streaming threshold (the consumer's traffic over 24 MiB), with rows on and off the
  // packet alignment: the tiles are split among the threads, and every element must take the
  // same path (packet or scalar tail) whatever the split.
  for (auto [rows, cols] : {std::pair<std::size_t, std::size_t>{2304, 1024}, {2300, 1030}}) {
    INFO(rows << " x " << cols);
    tensor<float, shape<dyn, dyn>> x(rows, cols);
    loom_test::randomize(x, 7, -6, 6);
    auto softmax = [&](auto& o) {
      auto e = exp(x - max(x, axis<1>, keepdims));
      o = e / sum(e, axis<1>, keepdims);
    };
    auto log_softmax = [&](auto& o) {
      auto c = x - max(x, axis<1>, keepdims);
      o = c - log(sum(exp(c), axis<1>, keepdims));
    };
    set_num_threads(1);
    tensor<float, shape<dyn, dyn>> one(rows, cols), log_one(rows, cols);
    softmax(one);
    log_softmax(log_one);
    std::vector<double> want(rows * cols), log_want(rows * cols);
    for (std::size_t r = 0; r < rows; ++r) {
      double m = -INFINITY, s = 0;
      for (std::size_t c = 0; c < cols; ++c) m = std::max(m, double(x(r, c)));
      for (std::size_t c = 0; c < cols; ++c) s += std::exp(double(x(r, c)) - m);
      for (std::size_t c = 0; c < cols; ++c) {
        want[r * cols + c] = std::exp(double(x(r, c)) - m) / s;
        log_want[r * cols + c] = double(x(r, c)) - m - std::log(s);
      }
    }
    loom_test::check_close(one.data(), want, 2e-6, 1e-12, "softmax");
    loom_test::check_close(log_one.data(), log_want, 2e-6, 2e-6, "log-softmax");
    for (unsigned t : {2u, 3u}) {
      INFO("threads = " << t);
      set_num_threads(t);
      tensor<float, shape<dyn, dyn>> many(rows, cols), log_many(rows, cols);
      softmax(many);
      log_softmax(log_many);
      CHECK(std::memcmp(one.data(), many.data(), one.size() * sizeof(float)) == 0);
      CHECK(std::memcmp(log_one.data(), log_many.data(), one.size() * sizeof(float)) == 0);
    }
  }
  set_num_threads(0);
}
