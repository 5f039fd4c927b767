// loom/cuda/runtime/stream.hpp: streams and events.
//
// Every asynchronous loom operation (a launch, a copy, a stream-ordered allocation) takes a
// stream_ref: a non-owning handle that a loom stream, a CUstream or a cudaStream_t all convert
// to, so loom work can be queued on a stream the user's other libraries also use.
//
// loom's default stream is a stream of its own, created once and never destroyed, rather than the
// legacy NULL stream: work on it does not serialise against every other blocking stream in the
// process. It is created *blocking* (not CU_STREAM_NON_BLOCKING), so it still orders against the
// legacy NULL stream that plain cudaMemcpy and unaware libraries use.
//
// Before a loom stream is destroyed, listeners (the caching allocators) are told, so that no
// cached block stays tagged with a stream handle that no longer exists.
#pragma once

#include <algorithm>
#include <mutex>
#include <utility>
#include <vector>

#include "loom/cuda/runtime/device.hpp"
#include "loom/cuda/runtime/driver.hpp"

namespace loom::cuda {

/// A non-owning reference to a CUDA stream: a loom::cuda::stream, loom's default stream, or a
/// user's CUstream / cudaStream_t. A null handle is the legacy default (NULL) stream.
class stream_ref {
 public:
  constexpr stream_ref() noexcept = default;
  constexpr explicit stream_ref(detail::stream_handle h) noexcept : handle_(h) {}

  /// The driver handle (CUstream).
  [[nodiscard]] constexpr detail::stream_handle handle() const noexcept { return handle_; }

  /// Waits for all work queued on the stream; reports an asynchronous error as loom::cuda_error.
  void synchronize() const {
    detail::make_current();
    detail::check(detail::driver().cuStreamSynchronize(handle_), "cuStreamSynchronize");
  }

  /// True when all work queued on the stream has finished.
  [[nodiscard]] bool ready() const {
    detail::make_current();
    const detail::cu_result r = detail::driver().cuStreamQuery(handle_);
    if (r == detail::cu::error_not_ready) return false;
    detail::check(r, "cuStreamQuery");
    return true;
  }

  friend constexpr bool operator==(stream_ref a, stream_ref b) noexcept { return a.handle_ == b.handle_; }

 private:
  detail::stream_handle handle_ = nullptr;
};

namespace detail {

/// Told before a loom stream is destroyed (implemented by the caching allocators).
class stream_retire_listener {
 public:
  virtual void stream_retiring(stream_handle h) noexcept = 0;

 protected:
  ~stream_retire_listener() = default;
};

struct stream_listener_list {
  std::mutex mutex;
  std::vector<stream_retire_listener*> listeners;
};

inline stream_listener_list& stream_listeners() {
  static stream_listener_list* const list = new stream_listener_list;
  return *list;
}

inline void add_stream_listener(stream_retire_listener* l) {
  stream_listener_list& s = stream_listeners();
  std::lock_guard<std::mutex> lock(s.mutex);
  s.listeners.push_back(l);
}

inline void remove_stream_listener(stream_retire_listener* l) noexcept {
  stream_listener_list& s = stream_listeners();
  std::lock_guard<std::mutex> lock(s.mutex);
  s.listeners.erase(std::remove(s.listeners.begin(), s.listeners.end(), l), s.listeners.end());
}

inline void notify_stream_retiring(stream_handle h) noexcept {
  stream_listener_list& s = stream_listeners();
  std::lock_guard<std::mutex> lock(s.mutex);
  for (stream_retire_listener* l : s.listeners) l->stream_retiring(h);
}

}  // namespace detail

/// An owned CUDA stream of device 0 (RAII, movable). A moved-from stream is empty.
class stream {
 public:
  /// Stream creation flags, as cuStreamCreate takes them.
  enum flags : unsigned {
    blocking = detail::cu::stream_default,          ///< orders against the legacy NULL stream
    non_blocking = detail::cu::stream_non_blocking  ///< runs concurrently with the NULL stream
  };

  /// Creates a stream. Throws loom::cuda_error without a device.
  explicit stream(flags f = blocking) {
    detail::make_current();
    detail::check(detail::driver().cuStreamCreate(&handle_, f), "cuStreamCreate");
  }
  stream(const stream&) = delete;
  stream& operator=(const stream&) = delete;
  stream(stream&& other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
  stream& operator=(stream&& other) noexcept {
    if (this != &other) {
      destroy();
      handle_ = std::exchange(other.handle_, nullptr);
    }
    return *this;
  }
  /// Destroys the stream; queued work still completes (the driver's rule).
  ~stream() { destroy(); }

  [[nodiscard]] detail::stream_handle handle() const noexcept { return handle_; }
  [[nodiscard]] stream_ref ref() const noexcept { return stream_ref(handle_); }
  operator stream_ref() const noexcept { return stream_ref(handle_); }  // NOLINT: meant to convert

  /// Waits for all work queued on the stream.
  void synchronize() const { ref().synchronize(); }
  /// True when all work queued on the stream has finished.
  [[nodiscard]] bool ready() const { return ref().ready(); }

 private:
  void destroy() noexcept {
    if (handle_ == nullptr) return;
    detail::notify_stream_retiring(handle_);
    try {
      detail::make_current();
      detail::driver().cuStreamDestroy(handle_);
    } catch (...) {  // a destructor does not throw; the driver frees the stream with the context
    }
    handle_ = nullptr;
  }

  detail::stream_handle handle_ = nullptr;
};

/// loom's default stream: created on first use, lives for the process. Throws loom::cuda_error
/// without a device.
inline stream_ref default_stream() {
  static stream* const s = new stream(stream::blocking);
  return s->ref();
}

/// A CUDA event (RAII, movable): records a point in a stream, to wait on or to time.
class event {
 public:
  /// Creates an event; timing events can be given to elapsed_ms. Throws without a device.
  explicit event(bool timing = false) {
    detail::make_current();
    detail::check(
        detail::driver().cuEventCreate(&handle_, timing ? detail::cu::event_default : detail::cu::event_disable_timing),
        "cuEventCreate");
  }
  event(const event&) = delete;
  event& operator=(const event&) = delete;
  event(event&& other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
  event& operator=(event&& other) noexcept {
    if (this != &other) {
      destroy();
      handle_ = std::exchange(other.handle_, nullptr);
    }
    return *this;
  }
  ~event() { destroy(); }

  [[nodiscard]] detail::event_handle handle() const noexcept { return handle_; }

  /// Records the point in `s` reached by the work queued so far.
  void record(stream_ref s) {
    detail::make_current();
    detail::check(detail::driver().cuEventRecord(handle_, s.handle()), "cuEventRecord");
  }
  /// Makes `s` wait (on the device, not the host) until this event has completed.
  void make_wait(stream_ref s) const {
    detail::make_current();
    detail::check(detail::driver().cuStreamWaitEvent(s.handle(), handle_, 0), "cuStreamWaitEvent");
  }
  /// Blocks the calling thread until the event has completed.
  void synchronize() const {
    detail::make_current();
    detail::check(detail::driver().cuEventSynchronize(handle_), "cuEventSynchronize");
  }
  /// True once the recorded work has completed (or when nothing was recorded).
  [[nodiscard]] bool ready() const {
    detail::make_current();
    const detail::cu_result r = detail::driver().cuEventQuery(handle_);
    if (r == detail::cu::error_not_ready) return false;
    detail::check(r, "cuEventQuery");
    return true;
  }

  /// Milliseconds between two recorded timing events.
  friend float elapsed_ms(const event& start, const event& stop) {
    const detail::driver_api& d = detail::driver();
    if (d.cuEventElapsedTime == nullptr) throw cuda_error("loom: the CUDA driver has no cuEventElapsedTime");
    float ms = 0.f;
    detail::make_current();
    detail::check(d.cuEventElapsedTime(&ms, start.handle_, stop.handle_), "cuEventElapsedTime");
    return ms;
  }

 private:
  void destroy() noexcept {
    if (handle_ == nullptr) return;
    try {
      detail::make_current();
      detail::driver().cuEventDestroy(handle_);
    } catch (...) {
    }
    handle_ = nullptr;
  }

  detail::event_handle handle_ = nullptr;
};

}  // namespace loom::cuda
