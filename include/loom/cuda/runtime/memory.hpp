// loom/cuda/runtime/memory.hpp: device memory (a caching, stream-ordered allocator) and copies.
//
// Why a caching allocator: an assignment that needs a temporary, or eval() into a new tensor,
// would otherwise call the driver's allocator each time, which costs microseconds to
// milliseconds and (cuMemFree) may synchronise the device. Freed blocks go to a free list per
// size class and the next request of that class reuses one.
//
// Stream order: a block freed on stream A may still be read by work queued on A. Reusing it on A
// is safe at once (later work on A runs after that work). Reusing it on another stream B first
// records an event on A and makes B wait for it -- on the device, the host never blocks. A block
// is tagged with the stream it was freed on; before a loom stream is destroyed, its blocks are
// waited for and untagged (stream.hpp's listeners), so no tag outlives its stream. A raw user
// stream passed as a stream_ref must outlive the blocks freed on it (or be synchronised and the
// cache released).
//
// The raw blocks come from cuMemAllocAsync/cuMemFreeAsync (the device's default memory pool)
// where the driver supports memory pools: allocation and release are then stream-ordered too and
// a release never synchronises the device. Elsewhere cuMemAlloc/cuMemFree. The default pool's
// attributes are left as they are: loom's own cache is what keeps memory for reuse.
//
// Size classes: up to 1 MiB, multiples of 512 B; above, four classes per power of two (waste at
// most 25%) rather than powers of two (up to 50%). A block is only reused for its own class.
// When the driver runs out of memory, the cache is released (after a device synchronisation)
// and the allocation tried once more.
//
// Copies: host pageable memory cannot be DMA'd directly; the driver then stages through its own
// pinned buffer. For large copies loom stages through its own pair of pinned buffers instead, so
// that the host memcpy of one chunk overlaps the DMA of the previous one. Host memory that is
// already pinned is copied directly. Whether loom's staging pays is a measurement for the GPU
// benchmarks; LOOM_CUDA_PINNED_STAGING=0 turns it off.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "loom/core/error.hpp"
#include "loom/cuda/runtime/device.hpp"
#include "loom/cuda/runtime/driver.hpp"
#include "loom/cuda/runtime/stream.hpp"

namespace loom::cuda {

/// What an allocator has done since it was made.
struct memory_stats {
  std::size_t bytes_in_use = 0;          ///< handed out and not yet freed (rounded to size classes)
  std::size_t bytes_cached = 0;          ///< freed and kept for reuse
  std::uint64_t requests = 0;            ///< allocate() calls with a non-zero size
  std::uint64_t reused = 0;              ///< requests served from the cache
  std::uint64_t driver_allocations = 0;  ///< cuMemAllocAsync / cuMemAlloc calls that succeeded
  std::uint64_t driver_frees = 0;        ///< cuMemFreeAsync / cuMemFree calls
  bool stream_ordered_pool = false;      ///< raw blocks come from cuMemAllocAsync
};

}  // namespace loom::cuda

namespace loom::cuda::runtime {

/// Where raw blocks come from.
enum class allocator_backend {
  automatic,    ///< the memory pool where supported, else synchronous; LOOM_CUDA_ALLOCATOR=pool|sync overrides
  memory_pool,  ///< cuMemAllocAsync / cuMemFreeAsync
  synchronous,  ///< cuMemAlloc / cuMemFree
};

/// A caching, stream-ordered allocator of device 0 memory. Thread-safe.
class device_allocator final : private detail::stream_retire_listener {
 public:
  /// An allocator; touches no driver until the first allocation. `caching = false` hands every
  /// request to the driver (for debugging with compute-sanitizer).
  explicit device_allocator(allocator_backend backend = allocator_backend::automatic, bool caching = true)
      : requested_(backend), caching_(caching) {
    detail::add_stream_listener(this);
  }
  device_allocator(const device_allocator&) = delete;
  device_allocator& operator=(const device_allocator&) = delete;

  /// Returns cached blocks to the driver. (The process-wide allocator is never destroyed.)
  ~device_allocator() {
    detail::remove_stream_listener(this);
    try {
      release_cached();
    } catch (...) {
    }
  }

  /// The size class `bytes` is rounded up to: 1000 -> 1024, 1 MiB + 1 -> 1.25 MiB.
  static constexpr std::size_t size_class(std::size_t bytes) noexcept {
    constexpr std::size_t small_step = 512;
    constexpr std::size_t small_limit = std::size_t{1} << 20;
    if (bytes <= small_limit) return (bytes + small_step - 1) / small_step * small_step;
    int top = 63;
    while (((bytes - 1) >> top) == 0) --top;               // 2^top < bytes <= 2^(top+1)
    const std::size_t step = std::size_t{1} << (top - 2);  // four classes up to 2^(top+1)
    return (bytes + step - 1) / step * step;
  }

  /// `bytes` of device memory usable by work queued on `s` (0 for 0 bytes). Throws
  /// loom::cuda_error without a device or when memory is exhausted even after releasing the cache.
  detail::deviceptr allocate(std::size_t bytes, stream_ref s) {
    if (bytes == 0) return 0;
    detail::make_current();
    init();
    const std::size_t cls = caching_ ? size_class(bytes) : bytes;
    if (caching_) {
      std::unique_lock<std::mutex> lock(mutex_);
      ++stats_.requests;
      if (auto it = free_.find(cls); it != free_.end() && !it->second.empty()) {
        std::vector<block>& list = it->second;
        // Prefer a block freed on this very stream (no wait), then an untagged one, then any.
        std::size_t pick = list.size() - 1;
        for (std::size_t i = list.size(); i-- > 0;) {
          if (list[i].stream == s.handle()) {
            pick = i;
            break;
          }
          if (!list[i].tagged) pick = i;
        }
        const block b = list[pick];
        list.erase(list.begin() + static_cast<std::ptrdiff_t>(pick));
        if (b.tagged && b.stream != s.handle()) {
          try {
            order_after(b.stream, s.handle());
          } catch (...) {  // the block stays cached for a later request
            list.push_back(b);
            throw;
          }
        }
        stats_.bytes_cached -= cls;
        stats_.bytes_in_use += cls;
        ++stats_.reused;
        return b.ptr;
      }
    } else {
      std::lock_guard<std::mutex> lock(mutex_);
      ++stats_.requests;
    }
    detail::deviceptr p = 0;
    detail::cu_result r = raw_allocate(&p, cls, s);
    if (r == detail::cu::error_out_of_memory) {
      release_cached();
      r = raw_allocate(&p, cls, s);
    }
    if (r != detail::cu::success) {
      const memory_stats now = stats();
      throw cuda_error("loom: allocating " + std::to_string(bytes) + " bytes of device memory failed: " +
                       detail::error_text(r) + " (loom holds " + std::to_string(now.bytes_in_use) + " bytes in use)");
    }
    std::lock_guard<std::mutex> lock(mutex_);
    ++stats_.driver_allocations;
    stats_.bytes_in_use += cls;
    return p;
  }

  /// Gives back a block from allocate(bytes, ...), usable again after the work queued on `s`
  /// so far. Never throws.
  void deallocate(detail::deviceptr p, std::size_t bytes, stream_ref s) noexcept {
    if (p == 0) return;
    const std::size_t cls = caching_ ? size_class(bytes) : bytes;
    if (caching_) {
      std::lock_guard<std::mutex> lock(mutex_);
      try {
        free_[cls].push_back(block{p, s.handle(), true});
        stats_.bytes_in_use -= cls;
        stats_.bytes_cached += cls;
        return;
      } catch (...) {  // out of host memory for the free list: give the block back instead
      }
    }
    raw_free(p, s.handle());
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.bytes_in_use -= cls;
    ++stats_.driver_frees;
  }

  /// Returns every cached block to the driver (synchronises the device first, so no queued work
  /// can still use one).
  void release_cached() {
    std::vector<block> blocks;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (auto& [cls, list] : free_) {
        for (const block& b : list) blocks.push_back(b);
        stats_.bytes_cached -= cls * list.size();
      }
      free_.clear();
    }
    if (blocks.empty()) return;
    detail::make_current();
    detail::driver().cuCtxSynchronize();
    for (const block& b : blocks) raw_free(b.ptr, nullptr);
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.driver_frees += blocks.size();
  }

  /// Counters and byte totals.
  [[nodiscard]] memory_stats stats() const {
    std::lock_guard<std::mutex> lock(mutex_);
    memory_stats s = stats_;
    s.stream_ordered_pool = use_pool_;
    return s;
  }

 private:
  struct block {
    detail::deviceptr ptr;
    detail::stream_handle stream;  // the stream it was freed on
    bool tagged;                   // false: no work can still use it
  };

  void init() {
    std::call_once(init_once_, [this] {
      const detail::driver_api& d = detail::driver();
      const bool pools = device_info().memory_pools && d.cuMemAllocAsync != nullptr && d.cuMemFreeAsync != nullptr;
      allocator_backend b = requested_;
      if (b == allocator_backend::automatic) {
        const char* env = std::getenv("LOOM_CUDA_ALLOCATOR");
        const std::string_view e = env != nullptr ? env : "";
        b = e == "sync" ? allocator_backend::synchronous
                        : (e == "pool" ? allocator_backend::memory_pool
                                       : (pools ? allocator_backend::memory_pool : allocator_backend::synchronous));
      }
      if (b == allocator_backend::memory_pool && !pools) {
        throw cuda_error("loom: the stream-ordered memory pool (cuMemAllocAsync) is not supported by device " +
                         device_info().name + " with this driver");
      }
      detail::event_handle ev = nullptr;
      detail::check(d.cuEventCreate(&ev, detail::cu::event_disable_timing), "cuEventCreate");
      std::lock_guard<std::mutex> lock(mutex_);
      use_pool_ = b == allocator_backend::memory_pool;
      order_event_ = ev;
    });
  }

  detail::cu_result raw_allocate(detail::deviceptr* p, std::size_t bytes, stream_ref s) {
    const detail::driver_api& d = detail::driver();
    return use_pool_ ? d.cuMemAllocAsync(p, bytes, s.handle()) : d.cuMemAlloc(p, bytes);
  }

  void raw_free(detail::deviceptr p, detail::stream_handle s) noexcept {
    try {
      detail::make_current();
      const detail::driver_api& d = detail::driver();
      if (use_pool_) {
        d.cuMemFreeAsync(p, s);
      } else {
        d.cuMemFree(p);
      }
    } catch (...) {  // no driver left (process teardown): nothing to free
    }
  }

  // Called with mutex_ held: work queued on `to` from now on runs after the work queued on `from`.
  void order_after(detail::stream_handle from, detail::stream_handle to) {
    const detail::driver_api& d = detail::driver();
    detail::check(d.cuEventRecord(order_event_, from), "cuEventRecord (reusing a block across streams)");
    detail::check(d.cuStreamWaitEvent(to, order_event_, 0), "cuStreamWaitEvent (reusing a block across streams)");
  }

  void stream_retiring(detail::stream_handle h) noexcept override {
    std::lock_guard<std::mutex> lock(mutex_);
    bool synced = false;
    for (auto& [cls, list] : free_) {
      for (block& b : list) {
        if (!b.tagged || b.stream != h) continue;
        if (!synced) {
          detail::driver_state_once().api.cuStreamSynchronize(h);
          synced = true;
        }
        b.tagged = false;
        b.stream = nullptr;
      }
    }
  }

  const allocator_backend requested_;
  const bool caching_;
  std::once_flag init_once_;
  mutable std::mutex mutex_;
  bool use_pool_ = false;
  detail::event_handle order_event_ = nullptr;
  std::unordered_map<std::size_t, std::vector<block>> free_;
  memory_stats stats_;
};

/// The process-wide allocator device tensors use; never destroyed.
inline device_allocator& default_allocator() {
  static device_allocator* const a = new device_allocator(allocator_backend::automatic, [] {
    const char* env = std::getenv("LOOM_CUDA_CACHE_ALLOCATIONS");
    return env == nullptr || std::string_view(env) != "0";
  }());
  return *a;
}

}  // namespace loom::cuda::runtime

namespace loom::cuda::detail {

/// Device memory owned by one object (RAII, movable): what a device tensor holds. Freed,
/// stream-ordered, on the stream it is associated with.
class device_buffer {
 public:
  device_buffer() noexcept = default;

  /// `bytes` on loom's default stream from the default allocator; 0 bytes allocates nothing (and
  /// needs no device).
  explicit device_buffer(std::size_t bytes) {
    if (bytes != 0) *this = device_buffer(bytes, default_stream(), runtime::default_allocator());
  }

  /// `bytes` usable by work on `s`, from `allocator` (which must outlive the buffer).
  device_buffer(std::size_t bytes, stream_ref s, runtime::device_allocator& allocator = runtime::default_allocator())
      : ptr_(allocator.allocate(bytes, s)), bytes_(bytes), stream_(s.handle()), allocator_(&allocator) {}

  device_buffer(const device_buffer&) = delete;
  device_buffer& operator=(const device_buffer&) = delete;
  device_buffer(device_buffer&& o) noexcept
      : ptr_(std::exchange(o.ptr_, 0)),
        bytes_(std::exchange(o.bytes_, 0)),
        stream_(std::exchange(o.stream_, nullptr)),
        allocator_(std::exchange(o.allocator_, nullptr)) {}
  device_buffer& operator=(device_buffer&& o) noexcept {
    if (this != &o) {
      reset();
      ptr_ = std::exchange(o.ptr_, 0);
      bytes_ = std::exchange(o.bytes_, 0);
      stream_ = std::exchange(o.stream_, nullptr);
      allocator_ = std::exchange(o.allocator_, nullptr);
    }
    return *this;
  }
  ~device_buffer() { reset(); }

  /// Frees the memory (after the work queued on its stream so far) and becomes empty.
  void reset() noexcept {
    if (allocator_ != nullptr && ptr_ != 0) allocator_->deallocate(ptr_, bytes_, stream_ref(stream_));
    ptr_ = 0;
    bytes_ = 0;
  }

  [[nodiscard]] void* data() const noexcept { return reinterpret_cast<void*>(static_cast<std::uintptr_t>(ptr_)); }
  [[nodiscard]] deviceptr address() const noexcept { return ptr_; }
  [[nodiscard]] std::size_t size() const noexcept { return bytes_; }
  [[nodiscard]] bool empty() const noexcept { return ptr_ == 0; }
  [[nodiscard]] stream_ref stream() const noexcept { return stream_ref(stream_); }

  /// From now on the buffer is freed on `s`. The caller makes sure `s` is ordered after all other
  /// work that uses the buffer (e.g. the buffer is only used on `s` from here on).
  void set_stream(stream_ref s) noexcept { stream_ = s.handle(); }

 private:
  deviceptr ptr_ = 0;
  std::size_t bytes_ = 0;
  stream_handle stream_ = nullptr;
  runtime::device_allocator* allocator_ = nullptr;
};

}  // namespace loom::cuda::detail

namespace loom::cuda {

/// Page-locked host memory (RAII, movable): copies from and to it are truly asynchronous.
class pinned_buffer {
 public:
  pinned_buffer() noexcept = default;
  /// `bytes` of pinned host memory (portable: usable with every context). Throws without a device.
  explicit pinned_buffer(std::size_t bytes) : bytes_(bytes) {
    if (bytes == 0) return;
    detail::make_current();
    detail::check(detail::driver().cuMemHostAlloc(&ptr_, bytes, detail::cu::memhostalloc_portable),
                  "cuMemHostAlloc of " + std::to_string(bytes) + " bytes");
  }
  pinned_buffer(const pinned_buffer&) = delete;
  pinned_buffer& operator=(const pinned_buffer&) = delete;
  pinned_buffer(pinned_buffer&& o) noexcept
      : ptr_(std::exchange(o.ptr_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}
  pinned_buffer& operator=(pinned_buffer&& o) noexcept {
    if (this != &o) {
      reset();
      ptr_ = std::exchange(o.ptr_, nullptr);
      bytes_ = std::exchange(o.bytes_, 0);
    }
    return *this;
  }
  ~pinned_buffer() { reset(); }

  void reset() noexcept {
    if (ptr_ != nullptr) {
      try {
        detail::make_current();
        detail::driver().cuMemFreeHost(ptr_);
      } catch (...) {
      }
    }
    ptr_ = nullptr;
    bytes_ = 0;
  }

  [[nodiscard]] void* data() const noexcept { return ptr_; }
  [[nodiscard]] std::size_t size() const noexcept { return bytes_; }

 private:
  void* ptr_ = nullptr;
  std::size_t bytes_ = 0;
};

}  // namespace loom::cuda

namespace loom::cuda::runtime {

namespace detail_copy {

inline constexpr std::size_t staging_threshold = std::size_t{1} << 20;  // smaller copies: the driver's path
inline constexpr std::size_t staging_chunk = std::size_t{4} << 20;

/// Two pinned chunks and their events, shared by the process; used by one copy at a time.
struct staging_area {
  std::mutex mutex;
  pinned_buffer buffers[2];
  detail::event_handle events[2] = {nullptr, nullptr};
  bool ready = false;

  void setup() {
    if (ready) return;
    const detail::driver_api& d = detail::driver();
    for (int i = 0; i < 2; ++i) {
      buffers[i] = pinned_buffer(staging_chunk);
      detail::check(d.cuEventCreate(&events[i], detail::cu::event_disable_timing), "cuEventCreate");
    }
    ready = true;
  }
};

inline staging_area& staging() {
  static staging_area* const s = new staging_area;
  return *s;
}

inline bool staging_enabled() {
  static const bool on = [] {
    const char* env = std::getenv("LOOM_CUDA_PINNED_STAGING");
    return env == nullptr || std::string_view(env) != "0";
  }();
  return on;
}

/// True when `p` is page-locked (or otherwise known to the driver as host memory).
inline bool is_pinned(const void* p) {
  unsigned type = 0;
  const detail::cu_result r = detail::driver().cuPointerGetAttribute(
      &type, detail::cu::pointer_memory_type, static_cast<detail::deviceptr>(reinterpret_cast<std::uintptr_t>(p)));
  return r == detail::cu::success && type == detail::cu::memorytype_host;
}

inline std::string copy_what(const char* direction, std::size_t bytes) {
  return std::string("copying ") + std::to_string(bytes) + " bytes " + direction;
}

}  // namespace detail_copy

/// Copies `bytes` from host memory to the device, queued on `s`. Returns once `src` may be reused
/// when it is pageable memory (it has been staged); from pinned memory it returns at once and
/// `src` must stay untouched until `s` reaches the copy.
inline void copy_to_device_async(detail::deviceptr dst, const void* src, std::size_t bytes, stream_ref s) {
  if (bytes == 0) return;
  detail::make_current();
  const detail::driver_api& d = detail::driver();
  const char* what = "host -> device";
  if (bytes >= detail_copy::staging_threshold && detail_copy::staging_enabled() && !detail_copy::is_pinned(src)) {
    detail_copy::staging_area& st = detail_copy::staging();
    std::unique_lock<std::mutex> lock(st.mutex, std::try_to_lock);
    if (lock.owns_lock()) {  // another thread is staging: use the driver's path rather than wait
      st.setup();
      const auto* from = static_cast<const unsigned char*>(src);
      for (std::size_t off = 0, chunk = 0; off < bytes; off += detail_copy::staging_chunk, ++chunk) {
        const std::size_t n = std::min(detail_copy::staging_chunk, bytes - off);
        const int i = static_cast<int>(chunk & 1u);
        detail::check(d.cuEventSynchronize(st.events[i]), "waiting for a staging buffer");
        std::memcpy(st.buffers[i].data(), from + off, n);
        detail::check(d.cuMemcpyHtoDAsync(dst + off, st.buffers[i].data(), n, s.handle()),
                      detail_copy::copy_what(what, bytes));
        detail::check(d.cuEventRecord(st.events[i], s.handle()), "cuEventRecord");
      }
      return;
    }
  }
  detail::check(d.cuMemcpyHtoDAsync(dst, src, bytes, s.handle()), detail_copy::copy_what(what, bytes));
}

/// Copies `bytes` from the device to host memory, queued on `s`. Into pageable memory it returns
/// once the data has arrived; into pinned memory it returns at once (synchronise `s` before
/// reading `dst`).
inline void copy_to_host_async(void* dst, detail::deviceptr src, std::size_t bytes, stream_ref s) {
  if (bytes == 0) return;
  detail::make_current();
  const detail::driver_api& d = detail::driver();
  const char* what = "device -> host";
  if (bytes >= detail_copy::staging_threshold && detail_copy::staging_enabled() && !detail_copy::is_pinned(dst)) {
    detail_copy::staging_area& st = detail_copy::staging();
    std::unique_lock<std::mutex> lock(st.mutex, std::try_to_lock);
    if (lock.owns_lock()) {
      st.setup();
      auto* to = static_cast<unsigned char*>(dst);
      // Chunk c is DMA'd into buffer c % 2 while the host copies chunk c - 1 out of the other.
      std::size_t prev_off = 0, prev_n = 0;
      int prev = -1;
      for (std::size_t off = 0, chunk = 0; off < bytes; off += detail_copy::staging_chunk, ++chunk) {
        const std::size_t n = std::min(detail_copy::staging_chunk, bytes - off);
        const int i = static_cast<int>(chunk & 1u);
        detail::check(d.cuEventSynchronize(st.events[i]), "waiting for a staging buffer");
        detail::check(d.cuMemcpyDtoHAsync(st.buffers[i].data(), src + off, n, s.handle()),
                      detail_copy::copy_what(what, bytes));
        detail::check(d.cuEventRecord(st.events[i], s.handle()), "cuEventRecord");
        if (prev >= 0) {
          detail::check(d.cuEventSynchronize(st.events[prev]), detail_copy::copy_what(what, bytes));
          std::memcpy(to + prev_off, st.buffers[prev].data(), prev_n);
        }
        prev = i;
        prev_off = off;
        prev_n = n;
      }
      detail::check(d.cuEventSynchronize(st.events[prev]), detail_copy::copy_what(what, bytes));
      std::memcpy(to + prev_off, st.buffers[prev].data(), prev_n);
      return;
    }
  }
  detail::check(d.cuMemcpyDtoHAsync(dst, src, bytes, s.handle()), detail_copy::copy_what(what, bytes));
}

/// Copies `bytes` between two device buffers, queued on `s`.
inline void copy_on_device_async(detail::deviceptr dst, detail::deviceptr src, std::size_t bytes, stream_ref s) {
  if (bytes == 0) return;
  detail::make_current();
  detail::check(detail::driver().cuMemcpyDtoDAsync(dst, src, bytes, s.handle()),
                detail_copy::copy_what("device -> device", bytes));
}

/// Sets `bytes` bytes at `dst` to `value`, queued on `s`.
inline void fill_bytes_async(detail::deviceptr dst, unsigned char value, std::size_t bytes, stream_ref s) {
  if (bytes == 0) return;
  detail::make_current();
  detail::check(detail::driver().cuMemsetD8Async(dst, value, bytes, s.handle()), "cuMemsetD8Async");
}

/// Host -> device on loom's default stream; returns when the copy has finished.
inline void copy_to_device(detail::deviceptr dst, const void* src, std::size_t bytes) {
  if (bytes == 0) return;
  const stream_ref s = default_stream();
  copy_to_device_async(dst, src, bytes, s);
  s.synchronize();
}

/// Device -> host on loom's default stream; returns when the copy has finished.
inline void copy_to_host(void* dst, detail::deviceptr src, std::size_t bytes) {
  if (bytes == 0) return;
  const stream_ref s = default_stream();
  copy_to_host_async(dst, src, bytes, s);
  s.synchronize();
}

}  // namespace loom::cuda::runtime
