// loom/cpu/tuning.hpp: choices of the tiled reduction kernels that the memory system decides.
//
// Two things the tiled passes (cpu/tiled.hpp) can do over arrays larger than the caches help on
// one x86 vendor's cores and cost on the other's, measured with the same code and the same
// workloads (bench/RESULTS.md):
//   * a software prefetch of the next tile's rows spread over the passes after the first - on a
//     Zen 3, W3 softmax 9-12% faster; on a Xeon with AVX-512 (2026-11-28, 4096 x 1024 floats, 1
//     thread, cached stores) layer norm 1.62 ms with it against 1.53 without, softmax 2.09 / 1.98;
//   * streaming (non-temporal) stores for the consumer's output - on the Zen 4 of 2026-11-27 layer
//     norm 2.0 ms with them against 3.0 with cached stores; on that Xeon 1.92 against 1.53 (and a
//     hand-written layer norm 1.68 ms with streaming stores, 1.26-1.28 with cached ones).
// So both default on, except on Intel; LOOM_TILE_PREFETCH=0/1 and LOOM_TILE_STREAMING=0/1 in the
// environment replace a default. The settings are process-wide; set them before running
// kernels (a kernel reads them once, when it starts), for a machine these defaults do not fit, or
// to exercise both paths in tests. Neither changes a result: only which lines are fetched early
// and whether the output's lines pass through the cache.
#pragma once

#include <atomic>
#include <cstdlib>

namespace loom {
namespace cpu {

/// The tiled kernels' machine-dependent choices.
struct tiled_tuning {
  bool prefetch_next_tile = true;  // fetch the next tile's rows during this tile's later passes
  bool streaming_stores = true;    // a large output's lines bypass the cache (non-reading consumers)
};

namespace detail {
/// Whether this process runs on an Intel x86 core (CPUID, read once).
inline bool intel_cpu() {
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
  static const bool intel = [] {
    __builtin_cpu_init();
    return __builtin_cpu_is("intel") != 0;
  }();
  return intel;
#else
  return false;
#endif
}

/// An environment override of a default: "0" off, "1" on; unset, empty or anything else keeps it.
inline bool env_switch(const char* name, bool fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || v[0] == '\0' || v[1] != '\0') return fallback;
  return v[0] == '1' ? true : v[0] == '0' ? false : fallback;
}
}  // namespace detail

/// The defaults for this machine (see the top of this file), before the environment's
/// LOOM_TILE_PREFETCH and LOOM_TILE_STREAMING (0 or 1), which the settings start from.
inline tiled_tuning default_tiled_tuning() {
  return {!detail::intel_cpu(), !detail::intel_cpu()};
}

namespace detail {
struct tiled_tuning_state {
  std::atomic<bool> prefetch_next_tile, streaming_stores;
  explicit tiled_tuning_state(const tiled_tuning& d)
      : prefetch_next_tile(env_switch("LOOM_TILE_PREFETCH", d.prefetch_next_tile)),
        streaming_stores(env_switch("LOOM_TILE_STREAMING", d.streaming_stores)) {}
};
inline tiled_tuning_state& tiled_tuning_now() {
  static tiled_tuning_state s(default_tiled_tuning());
  return s;
}
}  // namespace detail

/// The settings kernels started from now on use.
inline tiled_tuning get_tiled_tuning() {
  auto& s = detail::tiled_tuning_now();
  return {s.prefetch_next_tile.load(std::memory_order_relaxed), s.streaming_stores.load(std::memory_order_relaxed)};
}

/// Replaces the settings for kernels started from now on (results do not change, only speed).
inline void set_tiled_tuning(const tiled_tuning& t) {
  auto& s = detail::tiled_tuning_now();
  s.prefetch_next_tile.store(t.prefetch_next_tile, std::memory_order_relaxed);
  s.streaming_stores.store(t.streaming_stores, std::memory_order_relaxed);
}

}  // namespace cpu
}  // namespace loom
