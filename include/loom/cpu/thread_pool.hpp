// loom/cpu/thread_pool.hpp: the process-wide pool that runs the outer blocks of every loop nest.
//
// The calling thread always takes part, so a pool of n threads starts n - 1 workers. Workers spin
// briefly after a job (back-to-back assignments are common) and then sleep on a futex-backed
// atomic wait. A call made while the pool is busy - from another user thread, or from inside a
// task - runs inline on the caller instead of queueing or deadlocking.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

#include "loom/core/config.hpp"
#include "loom/core/error.hpp"

namespace loom {
namespace cpu {

class thread_pool {
 public:
  /// A pool of n threads in all (the caller plus n - 1 workers); n = 0 means hardware_concurrency.
  explicit thread_pool(unsigned n = 0) { start(n == 0 ? default_threads() : n); }
  ~thread_pool() { stop(); }
  thread_pool(const thread_pool&) = delete;
  thread_pool& operator=(const thread_pool&) = delete;

  /// Threads taking part in a job, the caller included. (An atomic copy of workers_.size() + 1:
  /// kernels read it while another user thread may be resizing the pool.)
  unsigned size() const { return threads_.load(std::memory_order_acquire); }

  /// Changes the number of threads; waits for a running job to finish first.
  void resize(unsigned n) {
    if (n == 0) n = default_threads();
    std::lock_guard<std::mutex> lock(busy_);
    if (n == size()) return;
    stop();
    start(n);
  }

  /// Runs f(t) for every t in [0, ntasks), spread over the pool; returns when all are done.
  /// Tasks are handed out in order from a shared counter. Exceptions from a task are rethrown
  /// here (the first one; the remaining tasks still run).
  template <class F>
  void run(index_t ntasks, F&& f) {
    using Fn = std::remove_reference_t<F>;
    run_erased(ntasks, const_cast<void*>(static_cast<const void*>(std::addressof(f))),
               [](void* ctx, index_t t) { (*static_cast<Fn*>(ctx))(t); });
  }

  /// run() of call(ctx, t): one body for every callable, which adds only the call's trampoline.
  LOOM_NOINLINE void run_erased(index_t ntasks, void* ctx, void (*call)(void*, index_t)) {
    if (ntasks <= 0) return;
    if (ntasks == 1 || size() == 1 || in_task_) {
      for (index_t t = 0; t < ntasks; ++t) call(ctx, t);
      return;
    }
    std::unique_lock<std::mutex> lock(busy_, std::try_to_lock);
    // another user thread holds the pool (or has just shrunk it to the caller alone): do the
    // work here; workers_ is only read under the lock, as resize() changes it under the lock
    if (!lock.owns_lock() || workers_.empty()) {
      if (lock.owns_lock()) lock.unlock();
      for (index_t t = 0; t < ntasks; ++t) call(ctx, t);
      return;
    }
    job j;
    j.ctx = ctx;
    j.call = call;
    j.ntasks = ntasks;
    j.next.store(0, std::memory_order_relaxed);
    j.pending.store(static_cast<std::uint32_t>(workers_.size()), std::memory_order_relaxed);
    job_.store(&j, std::memory_order_release);
    generation_.fetch_add(1, std::memory_order_acq_rel);
    generation_.notify_all();
    work(j);
    // Every worker must let go of j before it leaves scope, even one that found no task.
    for (int spin = 0; j.pending.load(std::memory_order_acquire) != 0; ++spin) {
      if (spin < 4096) {
        spin_pause();
      } else {
        std::uint32_t p = j.pending.load(std::memory_order_acquire);
        if (p != 0) j.pending.wait(p, std::memory_order_acquire);
      }
    }
    job_.store(nullptr, std::memory_order_relaxed);
    if (j.failure) std::rethrow_exception(j.failure);
  }

  /// True inside a task run by this pool (nested parallel calls run inline).
  static bool in_task() { return in_task_; }

 private:
  struct job {
    void* ctx = nullptr;
    void (*call)(void*, index_t) = nullptr;
    index_t ntasks = 0;
    std::atomic<index_t> next{0};
    std::atomic<std::uint32_t> pending{0};
    std::mutex failure_mutex;
    std::exception_ptr failure;
  };

  static unsigned default_threads() { return std::max(1u, std::thread::hardware_concurrency()); }

  static void spin_pause() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#else
    std::this_thread::yield();
#endif
  }

  static void work(job& j) {
    bool was = in_task_;
    in_task_ = true;
    for (;;) {
      index_t t = j.next.fetch_add(1, std::memory_order_relaxed);
      if (t >= j.ntasks) break;
      try {
        j.call(j.ctx, t);
      } catch (...) {
        std::lock_guard<std::mutex> g(j.failure_mutex);
        if (!j.failure) j.failure = std::current_exception();
      }
    }
    in_task_ = was;
  }

  // `seen` is the generation when the pool started, so a job posted before this thread first
  // runs is still picked up.
  void worker_loop(std::uint32_t seen) {
    for (;;) {
      std::uint32_t g = generation_.load(std::memory_order_acquire);
      for (int spin = 0; g == seen && spin < 20000; ++spin) {
        spin_pause();
        g = generation_.load(std::memory_order_acquire);
      }
      if (g == seen) {
        generation_.wait(seen, std::memory_order_acquire);
        continue;
      }
      seen = g;
      if (quit_.load(std::memory_order_acquire)) return;
      job* j = job_.load(std::memory_order_acquire);
      if (!j) continue;
      work(*j);
      if (j->pending.fetch_sub(1, std::memory_order_acq_rel) == 1) j->pending.notify_one();
    }
  }

  void start(unsigned n) {
    quit_.store(false);
    workers_.reserve(n - 1);
    const std::uint32_t g0 = generation_.load(std::memory_order_acquire);
    for (unsigned i = 1; i < n; ++i) workers_.emplace_back([this, g0] { worker_loop(g0); });
    threads_.store(n, std::memory_order_release);
  }
  void stop() {
    quit_.store(true, std::memory_order_release);
    generation_.fetch_add(1, std::memory_order_acq_rel);
    generation_.notify_all();
    for (auto& w : workers_) w.join();
    workers_.clear();
    threads_.store(1, std::memory_order_release);
  }

  std::vector<std::thread> workers_;
  std::atomic<unsigned> threads_{1};
  std::atomic<std::uint32_t> generation_{0};
  std::atomic<job*> job_{nullptr};
  std::atomic<bool> quit_{false};
  std::mutex busy_;
  static inline thread_local bool in_task_ = false;
};

/// The process-wide pool (one per program, whatever the number of translation units).
inline thread_pool& default_pool() {
  static thread_pool pool;
  return pool;
}

namespace detail {

/// parallel_chunks() of call(ctx, begin, end): one body for every callable.
LOOM_NOINLINE inline void parallel_chunks_erased(index_t n, index_t parts, index_t grain, index_t align, void* ctx,
                                                 void (*call)(void*, index_t, index_t)) {
  if (n <= 0) return;
  parts = std::max<index_t>(1, std::min<index_t>(parts, (n + grain - 1) / std::max<index_t>(grain, 1)));
  if (parts == 1) {
    call(ctx, index_t(0), n);
    return;
  }
  index_t chunk = (n + parts - 1) / parts;
  chunk = (chunk + align - 1) / align * align;
  const index_t tasks = (n + chunk - 1) / chunk;
  default_pool().run(tasks, [&](index_t t) {
    const index_t b = t * chunk;
    call(ctx, b, std::min(n, b + chunk));
  });
}

}  // namespace detail

/// Splits [0, n) into at most `parts` contiguous chunks of at least `grain` items (multiples of
/// `align` except the last) and runs f(begin, end) on each, in parallel.
template <class F>
void parallel_chunks(index_t n, index_t parts, index_t grain, index_t align, F&& f) {
  using Fn = std::remove_reference_t<F>;
  detail::parallel_chunks_erased(n, parts, grain, align, const_cast<void*>(static_cast<const void*>(std::addressof(f))),
                                 [](void* ctx, index_t b, index_t e) { (*static_cast<Fn*>(ctx))(b, e); });
}

}  // namespace cpu

/// Sets the number of threads loom's CPU kernels use (the caller included); 0 restores the default.
inline void set_num_threads(unsigned n) { cpu::default_pool().resize(n); }

/// The number of threads loom's CPU kernels use.
inline unsigned num_threads() { return cpu::default_pool().size(); }

}  // namespace loom
