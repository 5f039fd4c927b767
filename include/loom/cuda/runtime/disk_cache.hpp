// loom/cuda/runtime/disk_cache.hpp: compiled programs kept on disk between runs.
//
// A second run of a program should not pay NVRTC again, so every compiled program is written to
// a directory (LOOM_CACHE_DIR; by default $XDG_CACHE_HOME/loom or ~/.cache/loom) under the hex of
// its program key. Several processes may share the directory at once, and a process may die in
// the middle of a write, so:
//
// * An entry is written to a temporary file in the same directory (a name no other writer can
//   pick: pid, thread and a counter) and then rename()d onto its final name. rename is atomic
//   within a file system: a reader opens either the old complete file or the new complete file,
//   never a half-written one; concurrent writers of one key simply replace each other.
// * An entry carries a header (magic, format version, payload length, a 64-bit checksum of the
//   payload, and its own key) and is only used when all of it checks out. A truncated, corrupt,
//   foreign or renamed file is reported as corrupt: the caller recompiles and overwrites it.
// * Anything that goes wrong with the directory (cannot be created, is read-only, disk full)
//   silently turns disk caching off or skips the write: compiling still works.
//
// Entry layout (little-endian):
//   0  magic "LOOMJIT" 0x1a      8  format version (u32)   12 flags (u32; bit 0: PTX)
//   16 payload length (u64)      24 payload checksum (u64) 32 key lo, key hi (u64, u64)
//   48 payload: arch (u32 length + bytes), name count (u32), each (expression, lowered) as two
//      length-prefixed strings, then the image up to the end of the file.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include "loom/cuda/runtime/hash.hpp"
#include "loom/cuda/runtime/nvrtc.hpp"

namespace loom::cuda::runtime {

/// What a disk-cache lookup found.
enum class disk_lookup {
  hit,      ///< a valid entry; the program was read
  missing,  ///< no entry (or the cache is off)
  corrupt,  ///< an entry that failed a check: bad magic/version/length/checksum/key, truncated
};

namespace disk_format {

inline constexpr char magic[8] = {'L', 'O', 'O', 'M', 'J', 'I', 'T', '\x1a'};
inline constexpr std::uint32_t version = 1;
inline constexpr std::size_t header_bytes = 48;
inline constexpr std::uint64_t checksum_seed = 0x636865636b73756dull;  // "checksum"

inline void put_u32(std::vector<char>& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xffu));
}
inline void put_string(std::vector<char>& out, std::string_view s) {
  put_u32(out, static_cast<std::uint32_t>(s.size()));
  out.insert(out.end(), s.begin(), s.end());
}
inline void set_u32(char* p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xffu);
}
inline void set_u64(char* p, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xffu);
}
inline std::uint64_t get_u64(const char* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}
inline std::uint32_t get_u32(const char* p) {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

/// The bytes of an entry file for `program` under `key`.
inline std::vector<char> encode(const detail::hash128& key, const compiled_program& program) {
  std::vector<char> payload;
  payload.reserve(program.image.size() + 256);
  put_string(payload, program.arch);
  put_u32(payload, static_cast<std::uint32_t>(program.names.size()));
  for (const auto& [expr, lowered] : program.names) {
    put_string(payload, expr);
    put_string(payload, lowered);
  }
  payload.insert(payload.end(), program.image.begin(), program.image.end());

  std::vector<char> out(header_bytes + payload.size());
  char* h = out.data();
  std::memcpy(h, magic, 8);
  set_u32(h + 8, version);
  set_u32(h + 12, program.is_ptx ? 1u : 0u);
  set_u64(h + 16, payload.size());
  set_u64(h + 24, detail::hash64(payload.data(), payload.size(), checksum_seed));
  set_u64(h + 32, key.lo);
  set_u64(h + 40, key.hi);
  if (!payload.empty()) std::memcpy(h + header_bytes, payload.data(), payload.size());
  return out;
}

/// Parses and checks an entry file; false (and `out` unspecified) when any check fails.
inline bool decode(const detail::hash128& key, const std::vector<char>& file, compiled_program& out) {
  if (file.size() < header_bytes) return false;
  const char* p = file.data();
  if (std::memcmp(p, magic, 8) != 0) return false;
  if (get_u32(p + 8) != version) return false;
  const std::uint32_t flags = get_u32(p + 12);
  const std::uint64_t length = get_u64(p + 16);
  if (length != file.size() - header_bytes) return false;
  const char* payload = p + header_bytes;
  if (get_u64(p + 24) != detail::hash64(payload, length, checksum_seed)) return false;
  if (get_u64(p + 32) != key.lo || get_u64(p + 40) != key.hi) return false;

  // The checksum passed, but the parse is still bounds-checked: a bug must not read past the end.
  std::size_t at = 0;
  auto take_u32 = [&](std::uint32_t& v) {
    if (length - at < 4) return false;
    v = get_u32(payload + at);
    at += 4;
    return true;
  };
  auto take_string = [&](std::string& s) {
    std::uint32_t n = 0;
    if (!take_u32(n) || length - at < n) return false;
    s.assign(payload + at, n);
    at += n;
    return true;
  };
  std::uint32_t count = 0;
  if (!take_string(out.arch) || !take_u32(count)) return false;
  out.names.clear();
  for (std::uint32_t i = 0; i < count; ++i) {
    std::string expr, lowered;
    if (!take_string(expr) || !take_string(lowered)) return false;
    out.names.emplace_back(std::move(expr), std::move(lowered));
  }
  out.image.assign(payload + at, payload + length);
  out.is_ptx = (flags & 1u) != 0;
  out.log.clear();
  return !out.image.empty();
}

}  // namespace disk_format

/// A directory of compiled programs, safe to share between threads and processes.
class disk_cache {
 public:
  /// A cache in `directory`, created on the first store; an empty path turns the cache off.
  explicit disk_cache(std::filesystem::path directory) : directory_(std::move(directory)) {
    enabled_.store(!directory_.empty());
  }
  disk_cache(const disk_cache&) = delete;
  disk_cache& operator=(const disk_cache&) = delete;

  /// The directory the environment asks for: "" (off) when LOOM_DISK_CACHE is 0/off/false/no or
  /// LOOM_CACHE_DIR is set but empty; else LOOM_CACHE_DIR, $XDG_CACHE_HOME/loom, ~/.cache/loom.
  static std::filesystem::path directory_from_environment() {
    if (const char* flag = std::getenv("LOOM_DISK_CACHE")) {
      const std::string_view f(flag);
      if (f == "0" || f == "off" || f == "OFF" || f == "false" || f == "no") return {};
    }
    if (const char* dir = std::getenv("LOOM_CACHE_DIR")) return std::filesystem::path(dir);
    if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg != nullptr && xdg[0] != '\0') {
      return std::filesystem::path(xdg) / "loom";
    }
    if (const char* home = std::getenv("HOME"); home != nullptr && home[0] != '\0') {
      return std::filesystem::path(home) / ".cache" / "loom";
    }
    return {};
  }

  /// True until the cache was found unusable (or when it was created off).
  [[nodiscard]] bool enabled() const noexcept { return enabled_.load(std::memory_order_relaxed); }

  [[nodiscard]] const std::filesystem::path& directory() const noexcept { return directory_; }

  /// The file of the entry for `key`: <directory>/<32 hex digits>.loomjit
  [[nodiscard]] std::filesystem::path entry_path(const detail::hash128& key) const {
    return directory_ / (key.hex() + ".loomjit");
  }

  /// Reads the entry for `key` into `out` when it exists and passes every check.
  disk_lookup load(const detail::hash128& key, compiled_program& out) const noexcept {
    if (!enabled()) return disk_lookup::missing;
    try {
      std::vector<char> file;
      const int fd = ::open(entry_path(key).c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) return disk_lookup::missing;  // absent, or unreadable: either way compile
      const bool read_ok = read_all(fd, file);
      ::close(fd);
      if (!read_ok) return disk_lookup::corrupt;
      return disk_format::decode(key, file, out) ? disk_lookup::hit : disk_lookup::corrupt;
    } catch (...) {
      return disk_lookup::missing;
    }
  }

  /// Writes (or atomically replaces) the entry for `key`. False when it could not be written;
  /// never throws.
  bool store(const detail::hash128& key, const compiled_program& program) noexcept {
    if (!enabled()) return false;
    try {
      std::error_code ec;
      std::filesystem::create_directories(directory_, ec);
      if (ec || !std::filesystem::is_directory(directory_, ec)) {
        enabled_.store(false);  // cannot be created: disk caching is off for this cache
        return false;
      }
      const std::vector<char> bytes = disk_format::encode(key, program);
      return write_atomically(entry_path(key), bytes);
    } catch (...) {
      return false;
    }
  }

  /// Writes `bytes` to `target` through a unique temporary file and rename(); exposed for tests.
  bool write_atomically(const std::filesystem::path& target, const std::vector<char>& bytes) const noexcept {
    try {
      static std::atomic<std::uint64_t> counter{0};
      const std::string tmp_name = "." + target.filename().string() + ".tmp." + std::to_string(::getpid()) + "." +
                                   std::to_string(std::hash<std::thread::id>{}(std::this_thread::get_id())) + "." +
                                   std::to_string(counter.fetch_add(1));
      const std::filesystem::path tmp = target.parent_path() / tmp_name;
      const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
      if (fd < 0) return false;
      bool ok = write_all(fd, bytes.data(), bytes.size());
      ok = (::close(fd) == 0) && ok;
      if (ok) ok = ::rename(tmp.c_str(), target.c_str()) == 0;
      if (!ok) ::unlink(tmp.c_str());
      return ok;
    } catch (...) {
      return false;
    }
  }

 private:
  static bool read_all(int fd, std::vector<char>& out) {
    struct stat st {};
    if (::fstat(fd, &st) != 0 || st.st_size < 0) return false;
    out.resize(static_cast<std::size_t>(st.st_size));
    std::size_t done = 0;
    while (done < out.size()) {
      const ssize_t n = ::read(fd, out.data() + done, out.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      done += static_cast<std::size_t>(n);
    }
    return true;
  }

  static bool write_all(int fd, const char* data, std::size_t n) {
    while (n > 0) {
      const ssize_t w = ::write(fd, data, n);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return false;
      data += w;
      n -= static_cast<std::size_t>(w);
    }
    return true;
  }

  std::filesystem::path directory_;
  std::atomic<bool> enabled_{false};
};

/// The process-wide disk cache, in the directory the environment gives at first use.
inline disk_cache& process_disk_cache() {
  static disk_cache* const cache = new disk_cache(disk_cache::directory_from_environment());
  return *cache;
}

}  // namespace loom::cuda::runtime
