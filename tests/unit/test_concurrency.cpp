// Many user threads at once: assignments of elementwise, reduction and index-map expressions
// from 8 threads sharing loom's process-wide thread pool while another thread keeps changing the
// number of threads, and concurrent cuda::compile / kernel_source of the same and of different
// expressions through the process-wide module cache. Every result must be bit for bit what one
// thread computes alone. Written for ThreadSanitizer (tools/checks/sanitizers.sh builds it with
// LOOM_SANITIZE=thread), and run in the ordinary build too.
#include <loom/cuda.hpp>
#include <loom/loom.hpp>

#include <atomic>
#include <cstring>
#include <latch>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "support.hpp"

using namespace loom;

namespace {

constexpr int user_threads = 8;

/// Iterations per thread: fewer under a sanitizer, which slows everything down tenfold.
int iterations() {
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
  return 6;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
  return 6;
#else
  return 24;
#endif
#else
  return 24;
#endif
}

template <class T, class S>
bool same(const tensor<T, S>& a, const tensor<T, S>& b) {
  return a.shape() == b.shape() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

/// One user thread's tensors and the results one thread alone computes for them.
struct workload {
  using M = shape<dyn, 512>;
  tensor<float, M> x, y, o;
  tensor<float, shape<dyn>> rows;
  tensor<float, M> soft;
  tensor<double, shape<512, dyn>> t;
  tensor<std::int64_t, shape<dyn>> arg;
  // expected
  tensor<float, M> want_o, want_soft;
  tensor<float, shape<dyn>> want_rows;
  tensor<double, shape<512, dyn>> want_t;
  tensor<std::int64_t, shape<dyn>> want_arg;

  explicit workload(std::size_t n, std::uint64_t seed)
      : x(n), y(n), o(n), rows(n), soft(n), t(n), arg(n), want_o(n), want_soft(n), want_rows(n), want_t(n), want_arg(n) {
    loom_test::randomize(x, seed, -3, 3);
    loom_test::randomize(y, seed + 1, -3, 3);
  }
  // Every assignment is a loop nest over 256 x 512 elements, above the parallel threshold.
  template <class O, class R, class Sm, class Tr, class A>
  void compute(O& o_, R& rows_, Sm& soft_, Tr& t_, A& arg_) const {
    o_ = exp(-abs(x)) * 2.f + y * x - maximum(y, 0.f);
    rows_ = sum(x * y, axis<1>) + max(x, axis<1>);
    auto e = exp(x - max(x, axis<1>, keepdims));
    soft_ = e / sum(e, axis<1>, keepdims);
    t_ = cast<double>(transpose(x)) * 0.5;
    arg_ = argmax(x + y, axis<1>);
  }
  void expect() { compute(want_o, want_rows, want_soft, want_t, want_arg); }
  bool run_and_check() {
    compute(o, rows, soft, t, arg);
    return same(o, want_o) && same(rows, want_rows) && same(soft, want_soft) && same(t, want_t) && same(arg, want_arg);
  }
};

}  // namespace

TEST_CASE("concurrency: 8 threads assign at once while the number of threads changes", "[concurrency][threads]") {
  const unsigned before = num_threads();
  std::vector<std::unique_ptr<workload>> w;
  for (int k = 0; k < user_threads; ++k) {
    w.push_back(std::make_unique<workload>(256, 100 + k));
    w.back()->expect();  // alone, with the default number of threads
  }
  std::atomic<int> mismatches{0}, done{0};
  std::latch start(user_threads + 1);
  std::vector<std::thread> ts;
  for (int k = 0; k < user_threads; ++k)
    ts.emplace_back([&, k] {
      start.arrive_and_wait();
      for (int i = 0; i < iterations(); ++i)
        if (!w[std::size_t(k)]->run_and_check()) ++mismatches;
      ++done;
    });
  // meanwhile: the number of threads changes, and is read, over and over
  std::thread changer([&] {
    start.arrive_and_wait();
    unsigned n = 1;
    while (done.load() < user_threads) {
      set_num_threads(n);
      CHECK(num_threads() >= 1);
      n = n % 4 + 1;
      std::this_thread::yield();
    }
  });
  for (auto& t : ts) t.join();
  changer.join();
  set_num_threads(before);
  CHECK(mismatches == 0);
  CHECK(num_threads() == before);
}

TEST_CASE("concurrency: threads read one shared tensor and expression object", "[concurrency][threads]") {
  tensor<float, shape<dyn, 1024>> x(128);
  loom_test::randomize(x, 7, -1, 1);
  const auto e = sum(exp(x) * x, axis<1>) - mean(x, axis<1>);  // one expression object, used by all
  const tensor<float, shape<dyn>> want = e;
  std::atomic<int> mismatches{0};
  std::vector<std::thread> ts;
  for (int k = 0; k < user_threads; ++k)
    ts.emplace_back([&] {
      for (int i = 0; i < iterations(); ++i) {
        tensor<float, shape<dyn>> got = e;
        if (!same(got, want)) ++mismatches;
      }
    });
  for (auto& t : ts) t.join();
  CHECK(mismatches == 0);
}

TEST_CASE("concurrency: cuda::compile of the same and of different expressions from 8 threads",
          "[concurrency][cuda][nvrtc]") {
  if (!cuda::nvrtc_available()) {
    WARN("NVRTC not found: skipped (" << cuda::nvrtc_unavailable_reason() << ")");
    return;
  }
  // device tensors without a device: nothing is allocated, kernels are generated and compiled
  cuda::tensor<float, shape<dyn, 96>> a(3), b(3);
  cuda::tensor<std::int32_t, shape<dyn, 96>> k(3);
  std::latch start(user_threads);
  std::vector<std::string> same_names(user_threads), own_names(user_threads);
  std::vector<const void*> same_programs(user_threads);
  std::vector<const std::string*> sources(user_threads);
  std::atomic<int> failures{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < user_threads; ++t)
    ts.emplace_back([&, t] {
      start.arrive_and_wait();
      try {
        // the same expression type and layout from every thread: one kernel, one program
        const auto& src = cuda::kernel_source(exp(a) * 2.f + b);
        const cuda::compiled_kernel same = cuda::compile(exp(a) * 2.f + b, cuda::options{.arch = "sm_80"});
        sources[std::size_t(t)] = &src;
        same_names[std::size_t(t)] = same.name;
        same_programs[std::size_t(t)] = same.program.get();
        // a different expression in each thread
        cuda::compiled_kernel own;
        switch (t) {
          case 0: own = cuda::compile(a - b); break;
          case 1: own = cuda::compile(maximum(a, b) * 3.f); break;
          case 2: own = cuda::compile(where(a > b, a, b)); break;
          case 3: own = cuda::compile(cast<float>(k) + a); break;
          case 4: own = cuda::compile(k / 3 + k); break;
          case 5: own = cuda::compile(sqrt(abs(a)) + tanh(b)); break;
          case 6: own = cuda::compile(clamp(a, -1.f, 1.f)); break;
          default: own = cuda::compile(gelu(a) + sigmoid(b)); break;
        }
        own_names[std::size_t(t)] = own.name;
        if (own.cubin_bytes == 0 || same.cubin_bytes == 0) ++failures;
      } catch (const std::exception& e) {
        ++failures;
        FAIL_CHECK("thread " << t << ": " << e.what());
      }
    });
  for (auto& t : ts) t.join();
  CHECK(failures == 0);
  for (int t = 1; t < user_threads; ++t) {
    CHECK(sources[std::size_t(t)] == sources[0]);  // the same string object: printed once
    CHECK(same_names[std::size_t(t)] == same_names[0]);
    CHECK(same_programs[std::size_t(t)] == same_programs[0]);  // compiled once, shared
  }
  CHECK(std::set<std::string>(own_names.begin(), own_names.end()).size() == std::size_t(user_threads));
}
